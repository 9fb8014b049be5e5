//! Spans over OTLP/HTTP (protobuf) to the X-Ray OTLP endpoint, the path AWS supports after the
//! X-Ray daemon's end of support (2027-02-25; X-Ray developer guide, "X-Ray daemon end of
//! support"): `POST https://xray.<region>.amazonaws.com/v1/traces`, SigV4-signed for the service
//! `xray` with the function's own credentials, which needs `xray:PutSpans` on the role and
//! CloudWatch Transaction Search turned on in the account (CloudWatch user guide, "OTLP
//! endpoints" and "Transaction Search"; the template grants and enables both).
//!
//! # Which processor, which client, and why
//!
//! Lambda freezes the process as soon as an invocation answers, and may never thaw it. So the
//! spans of an invocation are exported *at its end*, by [`FlushAtEnd::force_flush`] (what
//! [`crate::telemetry::Telemetry::flush`] calls), and that call returns within a bound
//! (`TRACE_FLUSH_TIMEOUT_MS`, default [`DEFAULT_FLUSH_BOUND`]) whatever the endpoint does: slow,
//! refusing, down, or a black hole. An export that has not finished by then is abandoned (its
//! spans are lost, the order's work is not); an export error is logged, never returned.
//!
//! The SDK's processors do not give that bound:
//! - `SimpleSpanProcessor` exports each span synchronously as it ends: one HTTP request per span,
//!   on the order's path, each as slow as the endpoint.
//! - `BatchSpanProcessor` exports from its own thread with `futures_executor::block_on`, where an
//!   async client (hyper, reqwest) finds no Tokio reactor and panics ("no reactor running",
//!   `../shared/notes/stack.md`); its `force_flush` waits a fixed 5 s, it exports on a 5 s timer
//!   too (possibly while Lambda has the process frozen), and a flush queued behind a slow export
//!   waits for both.
//!
//! So: [`FlushAtEnd`] only buffers ended spans (a mutex push, nothing on the network), and at
//! the flush hands the buffer to `opentelemetry-otlp`'s exporter on a single-thread Tokio runtime
//! of its own (one OS thread, [`ExportThread`]), under `tokio::time::timeout(bound)`, and waits
//! at most `bound` for the answer. The exporter's HTTP client is [`SigV4Client`]: hyper (the HTTP
//! stack the AWS SDK already links, rustls with aws-lc) behind `opentelemetry-http`'s
//! [`HttpClient`] trait, signing each request with `aws-sigv4`. It runs on the export thread's
//! reactor, so nothing depends on which runtime (if any) the caller of `flush` is on, and a
//! handler's runtime with a single worker (one vCPU) never waits on itself.

use async_trait::async_trait;
use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use opentelemetry::Context;
use opentelemetry_http::{HttpClient, HttpError};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter, SpanProcessor};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// How long a flush may take when `TRACE_FLUSH_TIMEOUT_MS` is not set.
pub const DEFAULT_FLUSH_BOUND: Duration = Duration::from_millis(500);
/// Spans kept between two flushes; more are dropped (and counted in the flush's log line).
pub const MAX_BUFFERED_SPANS: usize = 4096;
/// The signing name of the X-Ray OTLP endpoint (CloudWatch user guide, "OTLP endpoints").
pub const SIGNING_SERVICE: &str = "xray";

/// Where and how spans are exported, from the environment:
/// - `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`: the full URL of the traces endpoint (default
///   `https://xray.<AWS_REGION>.amazonaws.com/v1/traces`; the local stack points it at its
///   loopback receiver);
/// - `AWS_REGION` (Lambda sets it): the signing region;
/// - `TRACE_FLUSH_TIMEOUT_MS`: the flush bound in milliseconds (default 500).
#[derive(Debug, Clone, PartialEq)]
pub struct OtlpConfig {
    pub endpoint: String,
    pub region: String,
    pub flush_bound: Duration,
}

impl OtlpConfig {
    /// `None` without a region (a unit test, a tool): spans then go nowhere.
    pub fn from_env() -> Option<OtlpConfig> {
        let region = std::env::var("AWS_REGION")
            .or_else(|_| std::env::var("AWS_DEFAULT_REGION"))
            .ok()
            .filter(|r| !r.is_empty())?;
        let endpoint = std::env::var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .ok()
            .filter(|e| !e.is_empty())
            .unwrap_or_else(|| format!("https://xray.{region}.amazonaws.com/v1/traces"));
        let flush_bound = std::env::var("TRACE_FLUSH_TIMEOUT_MS")
            .ok()
            .and_then(|ms| ms.trim().parse::<u64>().ok())
            .map(Duration::from_millis)
            .unwrap_or(DEFAULT_FLUSH_BOUND);
        Some(OtlpConfig {
            endpoint,
            region,
            flush_bound,
        })
    }
}

/// A single-thread Tokio runtime on its own OS thread, for the exports (see the module docs).
/// The runtime lives as long as the process; it is never dropped inside another runtime.
#[derive(Debug, Clone)]
pub struct ExportThread {
    handle: tokio::runtime::Handle,
}

impl ExportThread {
    pub fn start() -> std::io::Result<ExportThread> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let handle = runtime.handle().clone();
        std::thread::Builder::new()
            .name("otlp-export".into())
            .spawn(move || {
                // Drives the spawned exports for the life of the process.
                runtime.block_on(std::future::pending::<()>());
            })?;
        Ok(ExportThread { handle })
    }
}

/// The span processor that exports at the end of each invocation, within a bound (see the
/// module docs). Works with any [`SpanExporter`]; the functions use `opentelemetry-otlp`'s.
pub struct FlushAtEnd<E: SpanExporter + 'static> {
    buffer: Mutex<Vec<SpanData>>,
    dropped: AtomicUsize,
    exporter: Arc<tokio::sync::Mutex<E>>,
    thread: ExportThread,
    bound: Duration,
    /// Run on the export thread when the first span ends (see [`FlushAtEnd::warming_up`]).
    warm_up: Mutex<Option<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>>>,
}

impl<E: SpanExporter + 'static> std::fmt::Debug for FlushAtEnd<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlushAtEnd").field("bound", &self.bound).field("dropped", &self.dropped).finish_non_exhaustive()
    }
}

/// What one flush did (for tests and the benchmark).
#[derive(Debug, Clone, PartialEq)]
pub enum Flushed {
    /// Nothing was buffered: no request.
    Nothing,
    /// The endpoint took the spans.
    Exported(usize),
    /// The export failed (refused, unreachable, an error status): the spans are lost.
    Failed(usize, String),
    /// The bound passed first: the spans are abandoned, the export cancelled.
    TimedOut(usize),
}

impl<E: SpanExporter + 'static> FlushAtEnd<E> {
    pub fn new(exporter: E, thread: ExportThread, bound: Duration) -> Self {
        FlushAtEnd {
            buffer: Mutex::new(Vec::new()),
            dropped: AtomicUsize::new(0),
            exporter: Arc::new(tokio::sync::Mutex::new(exporter)),
            thread,
            bound,
            warm_up: Mutex::new(None),
        }
    }

    /// Has `work` run on the export thread when the first span ends: in the first invocation,
    /// alongside its work (which mostly waits on AWS), rather than on the init path (a cold
    /// start) or inside the first flush (which would spend its bound on it).
    pub fn warming_up(self, work: impl std::future::Future<Output = ()> + Send + 'static) -> Self {
        *self.warm_up.lock().unwrap_or_else(|e| e.into_inner()) = Some(Box::pin(work));
        self
    }

    /// Exports what is buffered and returns within `bound` (plus the time to hand the batch to
    /// the export thread), whatever the endpoint does. Never fails.
    pub fn flush(&self) -> Flushed {
        let batch = std::mem::take(&mut *self.buffer.lock().unwrap_or_else(|e| e.into_inner()));
        let dropped = self.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            warn(&format!(
                "{dropped} spans dropped: more than {MAX_BUFFERED_SPANS} ended between two flushes"
            ));
        }
        if batch.is_empty() {
            return Flushed::Nothing;
        }
        let count = batch.len();
        let started = Instant::now();
        let (answer, answered) = std::sync::mpsc::sync_channel(1);
        let (exporter, bound) = (self.exporter.clone(), self.bound);
        self.thread.handle.spawn(async move {
            let outcome =
                tokio::time::timeout(
                    bound,
                    async move { exporter.lock().await.export(batch).await },
                )
                .await;
            let _ = answer.send(match outcome {
                Ok(Ok(())) => Flushed::Exported(count),
                Ok(Err(e)) => Flushed::Failed(count, e.to_string()),
                Err(_) => Flushed::TimedOut(count),
            });
        });
        // The export thread enforces the bound; this wait is the guard that the caller never
        // waits longer even if that thread is starved.
        let flushed = answered
            .recv_timeout(bound.saturating_sub(started.elapsed()))
            .unwrap_or(Flushed::TimedOut(count));
        // `took_ms`: how long this flush held the invocation (at most the bound, plus scheduling).
        let took_ms = started.elapsed().as_millis() as u64;
        match &flushed {
            Flushed::Failed(n, e) => warn_took(&format!("{n} spans not exported: {e}"), took_ms),
            Flushed::TimedOut(n) => warn_took(
                &format!(
                    "{n} spans not exported: the endpoint did not answer within {} ms",
                    bound.as_millis()
                ),
                took_ms,
            ),
            _ => {}
        }
        flushed
    }
}

fn warn(message: &str) {
    // Straight to stderr (Lambda sends it to the function's log group), not through `tracing`:
    // a log line about exporting must not become a span to export.
    eprintln!(
        "{}",
        serde_json::json!({"level": "WARN", "target": "taskflow::otlp", "message": message})
    );
}

fn warn_took(message: &str, took_ms: u64) {
    let bound_ms = std::env::var("TRACE_FLUSH_TIMEOUT_MS").ok();
    eprintln!(
        "{}",
        serde_json::json!({"level": "WARN", "target": "taskflow::otlp", "message": message, "flush_ms": took_ms, "bound_ms": bound_ms})
    );
}

impl<E: SpanExporter + 'static> SpanProcessor for FlushAtEnd<E> {
    fn on_start(&self, _span: &mut opentelemetry_sdk::trace::Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        if let Some(work) = self.warm_up.lock().unwrap_or_else(|e| e.into_inner()).take() {
            self.thread.handle.spawn(work);
        }
        if !span.span_context.is_sampled() {
            return;
        }
        let mut buffer = self.buffer.lock().unwrap_or_else(|e| e.into_inner());
        if buffer.len() < MAX_BUFFERED_SPANS {
            buffer.push(span);
        } else {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        // Errors and timeouts are logged by `flush`; the caller (the end of an invocation) has
        // nothing to do about them.
        self.flush();
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        self.flush();
        Ok(())
    }

    fn set_resource(&mut self, resource: &Resource) {
        match self.exporter.try_lock() {
            Ok(mut exporter) => exporter.set_resource(resource),
            Err(_) => warn("the exporter is busy: its resource (service name) is not set"),
        }
    }
}

/// The functions' exporter: `opentelemetry-otlp` over HTTP/protobuf to `config.endpoint`,
/// through [`SigV4Client`], with no retries (a retry would sleep past the bound; the next
/// invocation's spans are the next attempt).
pub fn exporter(
    config: &OtlpConfig,
    credentials: Option<SharedCredentialsProvider>,
) -> Result<opentelemetry_otlp::SpanExporter, String> {
    exporter_with(config, Arc::new(client(config, credentials)))
}

/// The functions' [`SigV4Client`] for `config`.
fn client(config: &OtlpConfig, credentials: Option<SharedCredentialsProvider>) -> SigV4Client {
    // The flush's own timeout (the bound) decides when an export is abandoned, and drops the
    // request with it; the client's is only a backstop for a request used on its own.
    SigV4Client::new(config.region.clone(), credentials, config.flush_bound * 2)
}

fn exporter_with(config: &OtlpConfig, client: Arc<SigV4Client>) -> Result<opentelemetry_otlp::SpanExporter, String> {
    opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .with_endpoint(config.endpoint.clone())
        .with_timeout(config.flush_bound)
        .with_retry_policy(opentelemetry_otlp::RetryPolicy::disabled())
        .with_shared_http_client(client)
        .build()
        .map_err(|e| e.to_string())
}

/// The processor the functions use: [`exporter`] behind [`FlushAtEnd`].
pub fn processor(
    config: &OtlpConfig,
) -> Result<FlushAtEnd<opentelemetry_otlp::SpanExporter>, String> {
    let thread = ExportThread::start().map_err(|e| format!("starting the export thread: {e}"))?;
    let client = Arc::new(client(config, None));
    // Credentials and the TLS client (reading the root certificates) are made on the export
    // thread during the first invocation: not on the init path, not inside the first flush.
    let warm = client.clone();
    Ok(FlushAtEnd::new(exporter_with(config, client)?, thread, config.flush_bound).warming_up(async move {
        let _ = warm.credentials().await;
        let _ = warm.http();
    }))
}

type Https = hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>;

/// `opentelemetry-http`'s [`HttpClient`] on hyper, signing every request with SigV4 (service
/// `xray`, the configured region, the function's credentials from the default chain, which on
/// Lambda are the execution role's, from the environment). Each request, body included, must
/// finish within `timeout`.
pub struct SigV4Client {
    /// Made at the first request, on the export thread: reading the root certificates is a
    /// few milliseconds that a cold start should not pay.
    http: std::sync::OnceLock<hyper_util::client::legacy::Client<Https, Full<Bytes>>>,
    region: String,
    credentials: tokio::sync::OnceCell<SharedCredentialsProvider>,
    timeout: Duration,
}

impl std::fmt::Debug for SigV4Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigV4Client")
            .field("region", &self.region)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl SigV4Client {
    /// `credentials`: `None` loads the default chain at the first request.
    pub fn new(
        region: String,
        credentials: Option<SharedCredentialsProvider>,
        timeout: Duration,
    ) -> Self {
        let cell = tokio::sync::OnceCell::new();
        if let Some(credentials) = credentials {
            let _ = cell.set(credentials);
        }
        SigV4Client {
            http: std::sync::OnceLock::new(),
            region,
            credentials: cell,
            timeout,
        }
    }

    fn http(&self) -> &hyper_util::client::legacy::Client<Https, Full<Bytes>> {
        self.http.get_or_init(|| {
            // The process's root certificates, the ones the AWS SDK's client trusts
            // (`crate::clients::roots`: Mozilla's, compiled in, or `SSL_CERT_FILE`), rustls
            // with aws-lc; the platform loader with `SSL_CERT_DIR`.
            if let Some(roots) = crate::clients::roots() {
                let mut store = rustls::RootCertStore::empty();
                store.add_parsable_certificates(roots.certificates());
                let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
                let config = rustls::ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()
                    .expect("aws-lc-rs supports the default protocol versions")
                    .with_root_certificates(store)
                    .with_no_client_auth();
                let connector = hyper_rustls::HttpsConnectorBuilder::new()
                    .with_tls_config(config)
                    .https_or_http()
                    .enable_http1()
                    .build();
                return hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build(connector);
            }
            let connector = match hyper_rustls::HttpsConnectorBuilder::new().with_native_roots() {
                Ok(builder) => builder.https_or_http().enable_http1().build(),
                Err(e) => {
                    warn(&format!(
                        "no root certificates ({e}): only plain-HTTP endpoints will answer"
                    ));
                    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
                    let config = rustls::ClientConfig::builder_with_provider(provider)
                        .with_safe_default_protocol_versions()
                        .expect("aws-lc-rs supports the default protocol versions")
                        .with_root_certificates(rustls::RootCertStore::empty())
                        .with_no_client_auth();
                    hyper_rustls::HttpsConnectorBuilder::new()
                        .with_tls_config(config)
                        .https_or_http()
                        .enable_http1()
                        .build()
                }
            };
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build(connector)
        })
    }

    async fn credentials(&self) -> Result<Credentials, HttpError> {
        let provider = self
            .credentials
            .get_or_init(|| async {
                let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
                    .http_client(crate::clients::http_client())
                    .load()
                    .await;
                config
                    .credentials_provider()
                    .unwrap_or_else(|| SharedCredentialsProvider::new(Credentials::for_tests()))
            })
            .await;
        Ok(provider.provide_credentials().await?)
    }
}

#[async_trait]
impl HttpClient for SigV4Client {
    async fn send_bytes(
        &self,
        mut request: http::Request<Bytes>,
    ) -> Result<http::Response<Bytes>, HttpError> {
        let credentials = self.credentials().await?;
        sign(&mut request, &credentials, &self.region, SystemTime::now())?;
        let exchange = async {
            let response = self.http().request(request.map(Full::new)).await?;
            let (parts, body) = response.into_parts();
            let body = body.collect().await?.to_bytes();
            Ok::<_, HttpError>(http::Response::from_parts(parts, body))
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| format!("no answer within {} ms", self.timeout.as_millis()))?
    }
}

/// Signs `request` in place with SigV4 for the X-Ray OTLP endpoint (service `xray`, `region`,
/// `credentials`, at `time`), with the official `aws-sigv4` crate: adds `authorization`,
/// `x-amz-date` and, with temporary credentials, `x-amz-security-token`. The payload is hashed
/// into the signature (the body is in memory).
pub fn sign(
    request: &mut http::Request<Bytes>,
    credentials: &Credentials,
    region: &str,
    time: SystemTime,
) -> Result<(), HttpError> {
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings};
    let identity = credentials.clone().into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(SIGNING_SERVICE)
        .time(time)
        .settings(SigningSettings::default())
        .build()?
        .into();
    let headers: Vec<(&str, &str)> = request
        .headers()
        .iter()
        .filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?)))
        .collect();
    let uri = request.uri().to_string();
    let signable = SignableRequest::new(
        request.method().as_str(),
        &uri,
        headers.into_iter(),
        SignableBody::Bytes(request.body()),
    )?;
    let (instructions, _signature) = aws_sigv4::http_request::sign(signable, &params)?.into_parts();
    instructions.apply_to_request_http1x(request);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{SpanContext, SpanId, SpanKind, TraceFlags, TraceId, TraceState};
    use opentelemetry_sdk::trace::{SpanEvents, SpanLinks};

    /// A request signed with fixed credentials at a fixed time has exactly the signature an
    /// independent SigV4 implementation computes for it: botocore's `SigV4Auth` (boto3 1.x, in
    /// the project's .venv), run on the same method, URL, headers, body, credentials, region,
    /// service and time:
    ///
    /// ```python
    /// from botocore.auth import SigV4Auth; from botocore.awsrequest import AWSRequest
    /// from botocore.credentials import Credentials; import datetime, unittest.mock as m
    /// r = AWSRequest("POST", "https://xray.us-east-1.amazonaws.com/v1/traces", data=b"\x0a\x00",
    ///                headers={"content-type": "application/x-protobuf"})
    /// with m.patch("botocore.auth.get_current_datetime", return_value=datetime.datetime(2026, 11, 29, 12, 0, 0)):
    ///     SigV4Auth(Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"), "xray", "us-east-1").add_auth(r)
    /// print(r.headers["Authorization"])
    /// ```
    #[test]
    fn a_signed_request_has_the_known_signature() {
        let mut request = http::Request::post("https://xray.us-east-1.amazonaws.com/v1/traces")
            .header("content-type", "application/x-protobuf")
            .body(Bytes::from_static(b"\x0a\x00"))
            .unwrap();
        let credentials = Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            None,
            None,
            "test",
        );
        let time = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_953_600); // 2026-11-29T12:00:00Z
        sign(&mut request, &credentials, "us-east-1", time).unwrap();
        assert_eq!(request.headers()["x-amz-date"], "20261129T120000Z");
        assert_eq!(request.headers()["authorization"], KNOWN_AUTHORIZATION);
    }

    const KNOWN_AUTHORIZATION: &str = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261129/us-east-1/xray/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=76bd78f85295ddd69fe5799e4e77a58fd9bf1351d628519f9a678da22956af4f";

    fn span(name: &'static str) -> SpanData {
        SpanData {
            span_context: SpanContext::new(
                TraceId::from(0x5759e988_bd862e3fe1be46a994272793u128),
                SpanId::from(7u64),
                TraceFlags::SAMPLED,
                false,
                TraceState::default(),
            ),
            parent_span_id: SpanId::INVALID,
            parent_span_is_remote: false,
            span_kind: SpanKind::Server,
            name: name.into(),
            start_time: SystemTime::now(),
            end_time: SystemTime::now(),
            attributes: Vec::new(),
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status: opentelemetry::trace::Status::Unset,
            instrumentation_scope: Default::default(),
        }
    }

    /// A loopback endpoint that accepts connections and never answers (`silent`), or a port
    /// that refuses them.
    fn endpoint(silent: bool) -> (String, Option<std::net::TcpListener>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/v1/traces", listener.local_addr().unwrap());
        // Kept open (and never read) it is a black hole; dropped, the port refuses.
        (url, silent.then_some(listener))
    }

    fn otlp(url: &str, bound: Duration) -> FlushAtEnd<opentelemetry_otlp::SpanExporter> {
        let config = OtlpConfig {
            endpoint: url.to_string(),
            region: "us-east-1".into(),
            flush_bound: bound,
        };
        let credentials = SharedCredentialsProvider::new(Credentials::new(
            "AKIDEXAMPLE",
            "secret",
            None,
            None,
            "test",
        ));
        FlushAtEnd::new(
            exporter(&config, Some(credentials)).unwrap(),
            ExportThread::start().unwrap(),
            bound,
        )
    }

    #[test]
    fn a_black_hole_or_a_refusing_endpoint_costs_at_most_the_bound_and_never_fails() {
        let bound = Duration::from_millis(300);
        // Scheduling slack on a shared 2-core machine: the logic is what is checked (a flush
        // that waited for the exporter's own 10 s default, or the SDK's 5 s, would fail).
        let slack = Duration::from_millis(700);
        for silent in [true, false] {
            let (url, _listener) = endpoint(silent);
            let processor = otlp(&url, bound);
            for round in 0..2 {
                processor.on_end(span("work"));
                let started = Instant::now();
                let flushed = processor.flush();
                let took = started.elapsed();
                assert!(
                    took <= bound + slack,
                    "silent={silent} round {round}: the flush took {took:?}"
                );
                match (silent, &flushed) {
                    (true, Flushed::TimedOut(1)) | (false, Flushed::Failed(1, _)) => {}
                    other => panic!("silent={silent} round {round}: {other:?}"),
                }
                // And through the SDK's entry point, as the functions call it: never an error.
                processor.on_end(span("work"));
                assert!(processor.force_flush().is_ok());
            }
        }
    }

    #[test]
    fn nothing_buffered_sends_nothing_and_unsampled_spans_are_not_kept() {
        let (url, _listener) = endpoint(true);
        let processor = otlp(&url, Duration::from_millis(100));
        assert_eq!(processor.flush(), Flushed::Nothing);
        let mut unsampled = span("work");
        unsampled.span_context = SpanContext::new(
            unsampled.span_context.trace_id(),
            SpanId::from(8u64),
            TraceFlags::default(),
            false,
            TraceState::default(),
        );
        processor.on_end(unsampled);
        assert_eq!(processor.flush(), Flushed::Nothing);
    }

    #[test]
    fn spans_reach_an_answering_endpoint_signed() {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/v1/traces", listener.local_addr().unwrap());
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut request = Vec::new();
            let mut chunk = [0u8; 4096];
            // Headers, then the body of the announced length.
            loop {
                let n = stream.read(&mut chunk).unwrap();
                request.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&request).to_string();
                if let Some(end) = text.find("\r\n\r\n") {
                    let length: usize = text
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse().unwrap())
                        })
                        .unwrap_or(0);
                    if request.len() >= end + 4 + length {
                        break;
                    }
                }
            }
            stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n").unwrap();
            String::from_utf8_lossy(&request).to_string()
        });
        let processor = otlp(&url, Duration::from_secs(5));
        processor.on_end(span("work"));
        assert_eq!(processor.flush(), Flushed::Exported(1));
        let request = server.join().unwrap().to_ascii_lowercase();
        assert!(request.starts_with("post /v1/traces "), "{request}");
        assert!(
            request.contains("content-type: application/x-protobuf"),
            "{request}"
        );
        assert!(
            request.contains("authorization: aws4-hmac-sha256 credential=akidexample/"),
            "{request}"
        );
        assert!(
            request.contains("/us-east-1/xray/aws4_request"),
            "{request}"
        );
    }
}
