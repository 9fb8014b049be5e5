//! Child processes that die with us: every process the local stack starts gets SIGKILL when the
//! thread that started it ends, so no emulator or function outlives a test run or a crash.
//!
//! Each child is also the leader of its own process group, so Ctrl-C in a terminal (SIGINT to the
//! terminal's foreground group) reaches `taskflow` alone: it stops the host's pollers first, then
//! the functions and the emulator, in that order. When the emulator got the SIGINT too, it was gone
//! while the pollers still ran, and `make up` ended in a screenful of connection-refused errors.

use std::path::Path;
use std::process::Stdio;
use tokio::process::Command;

pub fn command(program: &Path) -> Command {
    let mut cmd = Command::new(program);
    cmd.kill_on_drop(true).stdin(Stdio::null());
    #[cfg(unix)]
    cmd.process_group(0);
    #[cfg(target_os = "linux")]
    unsafe {
        cmd.pre_exec(|| {
            // SAFETY: prctl is async-signal-safe; it only changes this child's own settings.
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd
}

/// Appends a child's output to `path` (both streams).
pub fn log_to(cmd: &mut Command, path: &Path) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    cmd.stdout(Stdio::from(file.try_clone()?)).stderr(Stdio::from(file));
    Ok(())
}

/// A free loopback port (bound and released; the emulator binds it right after).
pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Resolves once `shutdown` is true (the guard `wait_for` returns is dropped here, not held).
pub async fn stopped(shutdown: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_child_leads_its_own_process_group_and_so_misses_the_terminals_ctrl_c() {
        let mut child = command(Path::new("/bin/sleep")).arg("5").spawn().expect("sleep runs");
        let pid = child.id().expect("a running child has a pid") as libc::pid_t;
        // SAFETY: getpgid only reads the process table.
        let (ours, its) = unsafe { (libc::getpgid(0), libc::getpgid(pid)) };
        assert_eq!(its, pid, "the child is its group's leader");
        assert_ne!(its, ours, "not in our group: a SIGINT to our group does not reach it");
        child.kill().await.expect("killed");
    }
}
