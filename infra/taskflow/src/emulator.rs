//! The local AWS emulator: a pinned moto server process on a free loopback port, with real ASL
//! execution switched on before anything is created. It is started through
//! `infra/local/emulator.py`, which serialises moto's DynamoDB operations: moto's cancelled
//! transactions otherwise roll back concurrent writes of other requests (see that file).

use crate::process;
use anyhow::{bail, Context, Result};
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Child;

pub struct Emulator {
    pub endpoint: String,
    pub port: u16,
    child: Child,
}

impl Emulator {
    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    pub async fn start(root: &Path, log: &Path) -> Result<Emulator> {
        let python = crate::paths::venv_bin(root, "python");
        if !crate::paths::venv_bin(root, "moto_server").is_file() {
            bail!("{} not found: run `make setup` first (it installs the pinned moto into .venv)", python.display());
        }
        let port = process::free_port()?;
        let mut cmd = process::command(&python);
        cmd.arg(root.join("infra/local/emulator.py")).args(["-H", "127.0.0.1", "-p", &port.to_string()]);
        process::log_to(&mut cmd, log)?;
        let child = cmd.spawn().with_context(|| format!("starting the emulator with {}", python.display()))?;
        let mut emulator = Emulator { endpoint: format!("http://127.0.0.1:{port}"), port, child };

        let started = Instant::now();
        loop {
            if let Some(status) = emulator.child.try_wait()? {
                bail!("moto server exited at start ({status}); see {}", log.display());
            }
            if http(port, "GET", "/moto-api/", "").await.is_ok() {
                break;
            }
            if started.elapsed() > Duration::from_secs(30) {
                bail!("moto server did not answer within 30 s; see {}", log.display());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Without this, executions stay RUNNING forever; it must precede any state machine.
        let (status, body) = http(port, "POST", "/moto-api/config", r#"{"stepfunctions": {"execute_state_machine": true}}"#).await?;
        if !(200..300).contains(&status) {
            bail!("moto refused to enable state machine execution: {status} {body}");
        }
        Ok(emulator)
    }

    /// From now on serve only requests signed for these services, or for all but these
    /// (`{"only": [...]}` / `{"except": [...]}`, SigV4 signing names): a request for another is
    /// refused as an AWS endpoint refuses one for another service (`infra/local/emulator.py`,
    /// "Which services this process serves").
    pub async fn serve(&self, which: &serde_json::Value) -> Result<()> {
        let (status, body) = http(self.port, "POST", "/taskflow/services", &which.to_string()).await?;
        if status != 200 {
            bail!("the emulator refused {which} as the services it serves: {status} {body}");
        }
        Ok(())
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// A minimal HTTP/1.1 exchange on loopback: the emulator's own API (not an AWS API, so no SDK)
/// and the local token issuer's JWKS.
pub async fn http(port: u16, method: &str, path: &str, body: &str) -> Result<(u16, String)> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("no HTTP status in the answer")?;
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Ok((status, body))
}
