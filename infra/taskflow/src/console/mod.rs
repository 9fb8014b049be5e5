//! `taskflow console`: a web UI on loopback for a stack — its tasks live, each task's path
//! through its workflow, timeline, ledger, receipts and trace, the dead-letter queues with
//! redrive, and metrics. It reads what the CLI reads, with the same client code and the same
//! credentials (the local stack's `stack.json`, or `--stack` with the standard credential chain).
//!
//! Security: it listens on 127.0.0.1 only; every request's `Host` must name the loopback address
//! it listens on (a DNS-rebinding page's host does not); the state-changing routes are POST only,
//! carry a per-process CSRF token and are refused when `Origin` or `Sec-Fetch-Site` say they
//! come from another site; every page is served with a strict Content-Security-Policy (scripts
//! and styles from the console only, no inline script) and everything rendered is escaped.

pub mod actions;
pub mod graph;
pub mod html;
mod pages;

use crate::client::{Client, StatusFeed};
use crate::stack::StackInfo;
use anyhow::{Context, Result};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use taskflow_shared::ledger::DynamoLedger;
use taskflow_shared::tasks::DynamoTaskStore;

/// The port `taskflow console` and `taskflow up` use unless told otherwise.
pub const DEFAULT_PORT: u16 = 7878;

/// What the handlers share: the stack, its clients, the CSRF token and the live status events.
pub struct Console {
    pub stack: StackInfo,
    pub client: Client,
    pub aws: aws_config::SdkConfig,
    pub tasks: DynamoTaskStore,
    pub ledger: DynamoLedger,
    pub dynamo: aws_sdk_dynamodb::Client,
    pub sfn: aws_sdk_sfn::Client,
    pub s3: aws_sdk_s3::Client,
    /// The per-process token every state-changing form carries (256 random bits, hex).
    pub csrf: String,
    /// The address it listens on (its port is what `Host` must name).
    pub addr: SocketAddr,
    /// Status events as JSON, fanned out to every open event stream.
    pub events: tokio::sync::broadcast::Sender<String>,
    /// The operators-group rights of the approvals actions: on a local stack, tokens minted by
    /// its issuer (as `taskflow approvals` does); `None` on a deployed stack.
    pub operator: Option<actions::OperatorRights>,
}

/// A running console.
pub struct Running {
    pub addr: SocketAddr,
    server: tokio::task::JoinHandle<()>,
    feed: tokio::task::JoinHandle<()>,
    stop: tokio::sync::watch::Sender<bool>,
}

impl Running {
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Stops serving and removes its status subscription.
    pub async fn stop(self) {
        self.server.abort();
        let _ = self.stop.send(true);
        let _ = self.feed.await;
    }
}

/// Starts the console for `stack` on 127.0.0.1:`port` (0: any free port), without operator
/// rights (the approval buttons are shown disabled): [`start_in`] gives it a local stack's.
pub async fn start(stack: StackInfo, port: u16) -> Result<Running> {
    start_with(stack, port, None).await
}

/// [`start`] for the stack whose state directory (`.taskflow`, with its token issuer) is
/// `state_dir`: on a local stack the console may decide approvals as the CLI does.
pub async fn start_in(stack: StackInfo, port: u16, state_dir: &std::path::Path) -> Result<Running> {
    let operator = actions::OperatorRights::local(&stack, state_dir);
    start_with(stack, port, operator).await
}

async fn start_with(stack: StackInfo, port: u16, operator: Option<actions::OperatorRights>) -> Result<Running> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.with_context(|| format!("listening on 127.0.0.1:{port}"))?;
    let addr = listener.local_addr()?;
    let aws = stack.sdk_config().await;
    let client = Client::connect(&stack).await?;
    let (events, _) = tokio::sync::broadcast::channel(1024);
    let console = Arc::new(Console {
        tasks: DynamoTaskStore::new(&aws, stack.output("TaskTableName")?),
        ledger: DynamoLedger::new(&aws, stack.output("LedgerTableName")?),
        dynamo: aws_sdk_dynamodb::Client::new(&aws),
        sfn: aws_sdk_sfn::Client::new(&aws),
        s3: aws_sdk_s3::Client::new(&aws),
        csrf: random_token(),
        addr,
        events: events.clone(),
        operator,
        client,
        aws,
        stack: stack.clone(),
    });
    let feed = StatusFeed::open(&stack).await.context("subscribing to status events")?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let feed = tokio::spawn(follow(feed, events, stopped));
    let app = router(console);
    let server = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            eprintln!("console: {e}");
        }
    });
    Ok(Running { addr, server, feed, stop })
}

/// Status events from the subscription, to every open event stream, until `stop`; then the
/// subscription's rule and queue are removed.
async fn follow(feed: StatusFeed, events: tokio::sync::broadcast::Sender<String>, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            batch = feed.next(Duration::from_secs(2)) => match batch {
                Ok(batch) => {
                    for event in batch {
                        let _ = events.send(pages::event_json(&event).to_string());
                    }
                }
                Err(e) => {
                    eprintln!("console: status events: {e:#}");
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
            },
        }
    }
    feed.close().await;
}

fn random_token() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn router(console: Arc<Console>) -> Router {
    Router::new()
        .route("/", get(pages::tasks))
        .route("/events", get(pages::events))
        .route("/task/{task_id}", get(pages::task))
        .route("/task/{task_id}/receipt/{n}", get(pages::receipt))
        .route("/task/{task_id}/attachment/{attachment_id}", get(pages::attachment))
        .route("/task/{task_id}/log", get(pages::task_log))
        .route("/task/{task_id}/action/{action}", post(pages::action))
        .route("/dlq", get(pages::dead_letters))
        .route("/dlq/{queue}", get(pages::dead_letter_queue))
        .route("/dlq/{queue}/redrive", post(pages::redrive))
        .route("/metrics", get(pages::metrics))
        .route("/assets/style.css", get(|| async { asset("text/css; charset=utf-8", include_str!("assets/style.css")) }))
        .route("/assets/app.js", get(|| async { asset("text/javascript; charset=utf-8", include_str!("assets/app.js")) }))
        .fallback(|| async { pages::error(StatusCode::NOT_FOUND, "No such page.") })
        .layer(axum::middleware::from_fn_with_state(console.clone(), guard))
        .with_state(console)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "no-cache")], body).into_response()
}

/// The hosts a request may name: the loopback address and port the console listens on, as an
/// IP or as `localhost`. Anything else is a page of another site reaching us by DNS rebinding.
fn allowed_host(host: &str, port: u16) -> bool {
    host == format!("127.0.0.1:{port}") || host == format!("localhost:{port}")
}

/// Whether a state-changing request comes from the console's own pages: `Origin` (when sent)
/// is the console's, and `Sec-Fetch-Site` (when sent) is `same-origin` or `none` (typed by the
/// user). The CSRF token is checked by the handlers, in the form.
pub fn same_origin(headers: &HeaderMap, port: u16) -> bool {
    let origin_ok = match headers.get(header::ORIGIN).map(|v| v.to_str().unwrap_or("")) {
        None => true,
        Some(origin) => origin == format!("http://127.0.0.1:{port}") || origin == format!("http://localhost:{port}"),
    };
    let site_ok = match headers.get("sec-fetch-site").map(|v| v.to_str().unwrap_or("")) {
        None => true,
        Some(site) => site == "same-origin" || site == "none",
    };
    origin_ok && site_ok
}

/// Constant-time comparison of the form's CSRF token with the console's.
pub fn csrf_ok(console: &Console, sent: &str) -> bool {
    let (a, b) = (sent.as_bytes(), console.csrf.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Every request: the Host check, the cross-site check for anything but GET/HEAD, and the
/// security headers on every response.
async fn guard(State(console): State<Arc<Console>>, request: Request, next: Next) -> Response {
    let port = console.addr.port();
    let host = request.headers().get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
    let mut response = if !allowed_host(host, port) {
        (StatusCode::MISDIRECTED_REQUEST, "this console answers only at its loopback address\n").into_response()
    } else if !matches!(*request.method(), axum::http::Method::GET | axum::http::Method::HEAD) && !same_origin(request.headers(), port) {
        pages::error(StatusCode::FORBIDDEN, "Refused: a state-changing request from another site.")
    } else {
        next.run(request).await
    };
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    );
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // Not `no-referrer`: under it the browser sends `Origin: null` with the console's own forms.
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    headers.insert("cross-origin-resource-policy", HeaderValue::from_static("same-origin"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_loopback_host_and_port_are_answered() {
        assert!(allowed_host("127.0.0.1:7878", 7878));
        assert!(allowed_host("localhost:7878", 7878));
        assert!(!allowed_host("evil.example:7878", 7878));
        assert!(!allowed_host("127.0.0.1:80", 7878));
        assert!(!allowed_host("", 7878));
    }

    #[test]
    fn cross_site_posts_are_told_apart() {
        let mut h = HeaderMap::new();
        assert!(same_origin(&h, 7878));
        h.insert(header::ORIGIN, HeaderValue::from_static("http://127.0.0.1:7878"));
        h.insert("sec-fetch-site", HeaderValue::from_static("same-origin"));
        assert!(same_origin(&h, 7878));
        h.insert(header::ORIGIN, HeaderValue::from_static("http://evil.example"));
        assert!(!same_origin(&h, 7878));
        let mut h = HeaderMap::new();
        h.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(!same_origin(&h, 7878));
    }
}
