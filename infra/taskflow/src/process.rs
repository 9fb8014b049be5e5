//! Child processes that die with us: every process the local stack starts gets SIGKILL when the
//! thread that started it ends, so no emulator or function outlives a test run or a crash.

use std::path::Path;
use std::process::Stdio;
use tokio::process::Command;

pub fn command(program: &Path) -> Command {
    let mut cmd = Command::new(program);
    cmd.kill_on_drop(true).stdin(Stdio::null());
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
