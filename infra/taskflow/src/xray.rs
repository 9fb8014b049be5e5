//! The local X-Ray daemon: what Lambda provides on AWS. Functions send segment documents over
//! UDP (`AWS_XRAY_DAEMON_ADDRESS`, the daemon protocol: a JSON header line, then one document);
//! this forwards them in batches to the emulator's X-Ray API (PutTraceSegments), so the same
//! function code is traced the same way on AWS and on one machine. Used by functions deployed
//! with `TraceExporter=daemon`; the default exporter sends OTLP to `otlp.rs`.

use anyhow::{Context, Result};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::sync::watch;

/// PutTraceSegments takes up to this many documents a call.
const MAX_BATCH: usize = 50;
/// How long a document may wait for others to share its call.
const LINGER: Duration = Duration::from_millis(200);

pub struct Daemon {
    pub address: SocketAddr,
}

impl Daemon {
    /// Listens on a free loopback port until `shutdown`.
    pub async fn start(aws: &aws_config::SdkConfig, mut shutdown: watch::Receiver<bool>) -> Result<Daemon> {
        let socket = UdpSocket::bind("127.0.0.1:0").await.context("binding the local X-Ray daemon")?;
        let address = socket.local_addr()?;
        let client = aws_sdk_xray::Client::new(aws);
        tokio::spawn(async move {
            let mut datagram = vec![0u8; 65_535];
            let mut batch: Vec<String> = Vec::new();
            loop {
                tokio::select! {
                    _ = shutdown.changed() => break,
                    received = socket.recv(&mut datagram) => {
                        let Ok(n) = received else { continue };
                        if let Some(document) = document_of(&datagram[..n]) {
                            batch.push(document);
                        }
                        if batch.len() < MAX_BATCH {
                            // Linger for more, unless nothing else comes.
                            let deadline = tokio::time::Instant::now() + LINGER;
                            while batch.len() < MAX_BATCH {
                                match tokio::time::timeout_at(deadline, socket.recv(&mut datagram)).await {
                                    Ok(Ok(n)) => batch.extend(document_of(&datagram[..n])),
                                    _ => break,
                                }
                            }
                        }
                        forward(&client, std::mem::take(&mut batch)).await;
                    }
                }
            }
        });
        Ok(Daemon { address })
    }
}

/// The segment document in a daemon datagram (after its header line), if there is one.
pub fn document_of(datagram: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(datagram).ok()?;
    let (header, document) = text.split_once('\n')?;
    let header: serde_json::Value = serde_json::from_str(header).ok()?;
    (header["format"] == "json" && !document.trim().is_empty()).then(|| document.trim().to_string())
}

async fn forward(client: &aws_sdk_xray::Client, documents: Vec<String>) {
    if documents.is_empty() {
        return;
    }
    match client.put_trace_segments().set_trace_segment_documents(Some(documents)).send().await {
        Ok(out) if !out.unprocessed_trace_segments().is_empty() => {
            eprintln!("x-ray daemon: {} segments refused by the emulator", out.unprocessed_trace_segments().len());
        }
        Ok(_) => {}
        // Like the real daemon: traces are best effort and never hold up the work.
        Err(e) => eprintln!("x-ray daemon: {}", aws_sdk_xray::error::DisplayErrorContext(&e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_daemon_datagram_yields_its_document() {
        let datagram = b"{\"format\": \"json\", \"version\": 1}\n{\"name\":\"purchase\",\"id\":\"1\"}";
        assert_eq!(document_of(datagram).as_deref(), Some("{\"name\":\"purchase\",\"id\":\"1\"}"));
        assert_eq!(document_of(b"no header line"), None);
        assert_eq!(document_of(b"{\"format\": \"xml\"}\n<a/>"), None);
    }
}
