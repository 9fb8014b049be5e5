//! `taskflow attach` and `taskflow attachments`: an owner's attachments through the HTTP API,
//! exactly as any client does it: ask the API for a presigned upload (`POST
//! /tasks/{orderId}/attachments`), send the file to that URL with the headers it names (all of
//! them, as signed: `content-type`, `content-length`, `x-amz-meta-name` and `if-none-match: *`,
//! which makes the URL upload once; S3 answers a second PUT 412 `PreconditionFailed`), then
//! read what was recorded (`GET …/attachments`) and download through a presigned URL
//! (`GET …/attachments/{id}`).
//!
//! The requests are plain HTTP/1.1 over TCP: the local stack's API and S3 URLs are loopback
//! `http://`. A deployed stack's URLs are `https://`; this client refuses them by name (use
//! curl with the URL and headers the API answers, as the README shows).

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// An HTTP/1.1 exchange: (status, body bytes).
pub async fn send(method: &str, url: &str, headers: &[(String, String)], body: &[u8]) -> Result<(u16, Vec<u8>)> {
    let Some(rest) = url.strip_prefix("http://") else {
        bail!("{url}: this client speaks plain HTTP only (the local stack); use curl for https URLs");
    };
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("content-length")) {
        request.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    let mut stream = tokio::net::TcpStream::connect(host).await.with_context(|| format!("connecting to {host}"))?;
    stream.write_all(request.as_bytes()).await?;
    stream.write_all(body).await?;
    let mut response = Vec::new();
    let mut buf = vec![0u8; 65536];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(60), stream.read(&mut buf)).await.context("no answer within 60 s")??;
        if n == 0 {
            break;
        }
        response.extend_from_slice(&buf[..n]);
        if let Some(end) = response.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&response[..end]).to_ascii_lowercase();
            let length = head.lines().find_map(|l| l.strip_prefix("content-length:").and_then(|v| v.trim().parse::<usize>().ok()));
            if length.is_some_and(|l| response.len() >= end + 4 + l) {
                break;
            }
        }
    }
    let end = response.windows(4).position(|w| w == b"\r\n\r\n").context("not an HTTP answer")?;
    let head = String::from_utf8_lossy(&response[..end]).to_string();
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).context("no status")?;
    let mut payload = response[end + 4..].to_vec();
    if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        let mut out = Vec::new();
        let mut rest = &payload[..];
        while let Some(line) = rest.windows(2).position(|w| w == b"\r\n") {
            let size = usize::from_str_radix(std::str::from_utf8(&rest[..line])?.trim(), 16).unwrap_or(0);
            if size == 0 || rest.len() < line + 2 + size {
                break;
            }
            out.extend_from_slice(&rest[line + 2..line + 2 + size]);
            rest = &rest[(line + 4 + size).min(rest.len())..];
        }
        payload = out;
    }
    Ok((status, payload))
}

async fn api(api_url: &str, token: &str, method: &str, path: &str, body: Option<&Value>) -> Result<(u16, Value)> {
    let mut headers = vec![("Authorization".to_string(), format!("Bearer {token}"))];
    let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
    if body.is_some() {
        headers.push(("Content-Type".into(), "application/json".into()));
    }
    let (status, payload) = send(method, &format!("{}{path}", api_url.trim_end_matches('/')), &headers, &bytes).await?;
    Ok((status, serde_json::from_slice(&payload).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&payload).into()))))
}

/// The content type of a file, by its extension (the API's allow-list).
pub fn content_type_of(path: &Path) -> Option<&'static str> {
    match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
        "pdf" => Some("application/pdf"),
        "png" => Some("image/png"),
        "jpg" | "jpeg" => Some("image/jpeg"),
        "webp" => Some("image/webp"),
        "txt" | "text" | "log" => Some("text/plain"),
        _ => None,
    }
}

/// Attaches `file` to the caller's task `order_id`; waits until it is recorded (or refused).
pub async fn attach(api_url: &str, token: &str, order_id: &str, file: &Path, content_type: Option<&str>) -> Result<Value> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let name = file.file_name().and_then(|n| n.to_str()).context("the file needs a UTF-8 name")?;
    let Some(content_type) = content_type.or_else(|| content_type_of(file)) else {
        bail!("{}: unknown type; say it with --content-type (allowed: pdf, png, jpeg, webp, text/plain)", file.display());
    };
    let request = json!({"name": name, "contentType": content_type, "size": bytes.len()});
    let (status, answer) = api(api_url, token, "POST", &format!("/tasks/{order_id}/attachments"), Some(&request)).await?;
    if status != 201 {
        bail!("the API refused ({status}): {answer}");
    }
    let upload = &answer["upload"];
    let headers: Vec<(String, String)> = upload["headers"].as_object().map(|h| h.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect()).unwrap_or_default();
    if !headers.iter().any(|(k, v)| k.eq_ignore_ascii_case("if-none-match") && v == "*") {
        // The API signs every upload with it (services/api/src/attachments.rs): a URL without it
        // could be used twice. Not sent blind: refused by name.
        bail!("the upload URL is not single-use (no signed `if-none-match: *` among its headers): {upload}");
    }
    let (status, body) = send(upload["method"].as_str().unwrap_or("PUT"), upload["url"].as_str().context("no upload URL")?, &headers, &bytes).await?;
    if status != 200 {
        bail!("S3 refused the upload ({status}): {}", String::from_utf8_lossy(&body));
    }
    let id = answer["attachmentId"].as_str().context("no attachment id")?.to_string();
    // Recorded once the attachments function has checked it (a second or so).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (status, read) = api(api_url, token, "GET", &format!("/tasks/{order_id}/attachments/{id}"), None).await?;
        if status == 200 {
            return Ok(read["attachment"].clone());
        }
        if tokio::time::Instant::now() > deadline {
            bail!("uploaded as {id}, but not recorded within 30 s: it was refused by the attachments function (see its log for the reason) or is still being checked");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// The caller's attachments of `order_id`.
pub async fn list(api_url: &str, token: &str, order_id: &str) -> Result<Vec<Value>> {
    let (status, answer) = api(api_url, token, "GET", &format!("/tasks/{order_id}/attachments"), None).await?;
    if status != 200 {
        bail!("{status}: {answer}");
    }
    Ok(answer["attachments"].as_array().cloned().unwrap_or_default())
}

/// Downloads attachment `id` of `order_id`: (the attachment, its bytes).
pub async fn download(api_url: &str, token: &str, order_id: &str, id: &str) -> Result<(Value, Vec<u8>)> {
    let (status, answer) = api(api_url, token, "GET", &format!("/tasks/{order_id}/attachments/{id}"), None).await?;
    if status != 200 {
        bail!("{status}: {answer}");
    }
    let (status, bytes) = send("GET", answer["download"]["url"].as_str().context("no download URL")?, &[], b"").await?;
    if status != 200 {
        bail!("S3 refused the download ({status}): {}", String::from_utf8_lossy(&bytes));
    }
    Ok((answer["attachment"].clone(), bytes))
}
