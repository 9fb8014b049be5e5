//! The operators' commands (`taskflow approvals …`, `taskflow tasks --status …`) go through the
//! HTTP API's operator routes with a bearer token of the `operators` group — the one approval
//! path, with the same checks and the same record of who decided — never around it.
//!
//! Locally the token is minted by the stack's issuer (`taskflow token --operator NAME`); the API
//! is plain HTTP on loopback. Against a deployed stack, pass a Cognito access token of a member
//! of the `operators` group (`--token` / `TASKFLOW_TOKEN`) and use the API over HTTPS (curl): this
//! client speaks only loopback HTTP.

use anyhow::{bail, Context, Result};
use serde_json::Value;

/// The group whose members may use the operators' routes (the API checks the claim).
pub const OPERATORS_GROUP: &str = "operators";

/// A token for operator `name` from the local stack's issuer (`state_dir`), valid `ttl` seconds.
pub fn local_token(state_dir: &std::path::Path, name: &str, ttl: i64) -> Result<String> {
    let issuer = crate::auth::Issuer::load(&state_dir.join(crate::local::TOKEN_ISSUER_FILE))?;
    issuer.token_in_groups(name, &[OPERATORS_GROUP], ttl)
}

/// Percent-encodes a query or path value (RFC 3986 unreserved characters kept).
pub fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b"-._~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

/// One request to the API at `api_url` (`http://127.0.0.1:PORT`): (status, JSON body).
pub async fn request(api_url: &str, method: &str, path: &str, token: &str, body: Option<&Value>) -> Result<(u16, Value)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Some(host) = api_url.strip_prefix("http://127.0.0.1:").map(|p| format!("127.0.0.1:{}", p.trim_end_matches('/'))) else {
        bail!("this client speaks to the local API only ({api_url}); on AWS, call the API with a Cognito token of the operators group");
    };
    let body = body.map(Value::to_string).unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut stream = tokio::net::TcpStream::connect(&host).await.with_context(|| format!("connecting to {api_url}"))?;
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    let response = String::from_utf8_lossy(&response).to_string();
    let (head, payload) = response.split_once("\r\n\r\n").context("no HTTP response")?;
    let status: u16 = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).context("no HTTP status")?;
    Ok((status, serde_json::from_str(payload).unwrap_or(Value::String(payload.to_string()))))
}
