//! The local X-Ray OTLP endpoint: what `https://xray.<region>.amazonaws.com/v1/traces` is on
//! AWS. Functions `POST /v1/traces` (OTLP/HTTP, protobuf, SigV4-signed for `xray`) to a loopback
//! port; each request is
//! 1. authorised like any other call the functions make: its signed headers are replayed to the
//!    emulator's `POST /v1/traces`, where `infra/local/iam.py` reads the caller's access key
//!    from the SigV4 `Authorization` header (the same identity check as for every other request)
//!    and checks `xray:PutSpans` against that function's role; a refusal is answered to the
//!    function as X-Ray's 403 `AccessDeniedException` and lands in `/taskflow/iam/denials`.
//!    Before that the emulator verifies the SigV4 signature itself (`infra/local/sigv4.py`,
//!    botocore's SigV4 with the identity's secret, over the body received and the original
//!    `host`, passed as `x-forwarded-host`): an unsigned request, an unknown key, a wrong secret
//!    or a body other than the one signed is 403 (X-Ray's error type) and nothing is stored.
//!    An allowed answer carries the credential scope's derived signing key (SigV4's kSigning for
//!    that access key, day, region and `xray`; never the secret), and for [`AUTHORISED_FOR`] the
//!    same caller's requests of that scope are verified here instead ([`signature_matches`]:
//!    the same checks, the same canonical request) without a round trip through the emulator, one
//!    Python process busy with the orders' own calls: a function's per-invocation flush no longer
//!    queues behind them. A request that does not verify here goes to the emulator as before,
//!    which answers it (and records any denial), so a refusal is never decided here;
//! 2. decoded with `opentelemetry-proto`'s generated messages (`ExportTraceServiceRequest`);
//! 3. converted into X-Ray segment documents with `opentelemetry-aws`'s `SegmentTranslator` (the
//!    translation the X-Ray daemon path used, so a span becomes the same document either way;
//!    X-Ray does the same conversion on AWS: OTLP spans are readable as segments through
//!    BatchGetTraces) and stored in the emulator's X-Ray (PutTraceSegments), where
//!    `taskflow trace` reads them as it reads X-Ray on AWS. One writer task does that, after the
//!    answer, taking together what arrived while its last call ran (up to 50 documents a call).
//!
//! Why the emulator's X-Ray store rather than one of our own: one reader (`trace.rs`, the
//! BatchGetTraces shape) for the local stack and for AWS, the daemon and OTLP paths side by
//! side, and nothing new to keep or clean. What is not emulated: Transaction Search (the
//! `aws/spans` log group and its span queries), span indexing rules, and the endpoint's quotas
//! (request size, spans a second); partial success is never reported.

use anyhow::{Context, Result};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue, Value};
use opentelemetry_aws::xray_exporter::SegmentTranslator;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value};
use opentelemetry_proto::tonic::trace::v1 as proto;
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};
use prost::Message;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::watch;

/// PutTraceSegments takes up to this many documents a call.
const MAX_BATCH: usize = 50;
/// The largest request taken (the OTLP/HTTP spec leaves it to the server; X-Ray's quota for a
/// PutTraceSegments call is 5 MB, used here too).
const MAX_REQUEST_BYTES: usize = 5 * 1024 * 1024;

/// How long an allowed caller's scope is trusted without asking the emulator again. IAM itself
/// is eventually consistent: "changes that I make are not always immediately visible … a few
/// seconds" (IAM User Guide, "Troubleshoot IAM", changes not immediately visible), so a grant
/// taken away shows here within this, as it may on AWS. Denials are never kept.
pub const AUTHORISED_FOR: Duration = Duration::from_secs(5);

/// How far `X-Amz-Date` may be from this endpoint's clock (SigV4: 5 minutes, as `sigv4.py`).
const MAX_SKEW: Duration = Duration::from_secs(5 * 60);

struct Receiver {
    /// The emulator's base URL, for the IAM check.
    emulator: String,
    http: reqwest_like::Client,
    /// Scopes (`ACCESS_KEY/DAY/REGION/SERVICE`) the emulator verified and allowed: their signing
    /// key, and until when it is trusted.
    authorised: std::sync::Mutex<std::collections::HashMap<String, (Vec<u8>, std::time::Instant)>>,
    /// To the writer task: segment documents to store.
    documents: tokio::sync::mpsc::UnboundedSender<Vec<String>>,
}

/// The running receiver.
pub struct OtlpEndpoint {
    pub address: SocketAddr,
}

impl OtlpEndpoint {
    /// The URL a function exports to (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`).
    pub fn url(&self) -> String {
        format!("http://{}/v1/traces", self.address)
    }

    /// Listens on a free loopback port until `shutdown`.
    pub async fn start(
        aws: &aws_config::SdkConfig,
        emulator: &str,
        shutdown: watch::Receiver<bool>,
    ) -> Result<OtlpEndpoint> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the local OTLP endpoint")?;
        let address = listener.local_addr()?;
        let (documents, pending) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(store(aws_sdk_xray::Client::new(aws), pending));
        let state = Arc::new(Receiver {
            emulator: emulator.trim_end_matches('/').to_string(),
            http: reqwest_like::Client::new(),
            authorised: Default::default(),
            documents,
        });
        let app = Router::new()
            .route("/v1/traces", post(traces))
            .with_state(state);
        let mut stop = shutdown.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    crate::process::stopped(&mut stop).await;
                })
                .await;
        });
        Ok(OtlpEndpoint { address })
    }
}

/// Stores the documents sent to it in the emulator's X-Ray until every sender is gone: each
/// PutTraceSegments call takes what has arrived since the last one (at most [`MAX_BATCH`]).
async fn store(
    xray: aws_sdk_xray::Client,
    mut pending: tokio::sync::mpsc::UnboundedReceiver<Vec<String>>,
) {
    while let Some(mut documents) = pending.recv().await {
        while documents.len() < MAX_BATCH {
            match pending.try_recv() {
                Ok(more) => documents.extend(more),
                Err(_) => break,
            }
        }
        for chunk in documents.chunks(MAX_BATCH) {
            match xray
                .put_trace_segments()
                .set_trace_segment_documents(Some(chunk.to_vec()))
                .send()
                .await
            {
                Ok(out) if !out.unprocessed_trace_segments().is_empty() => {
                    eprintln!(
                        "otlp endpoint: {} segments refused by the emulator",
                        out.unprocessed_trace_segments().len()
                    );
                }
                Ok(_) => {}
                Err(e) => eprintln!(
                    "otlp endpoint: {}",
                    aws_sdk_xray::error::DisplayErrorContext(&e)
                ),
            }
        }
    }
}

impl Receiver {
    /// Whether the request verifies against a scope the emulator allowed less than
    /// [`AUTHORISED_FOR`] ago.
    fn allowed_before(&self, uri: &axum::http::Uri, headers: &HeaderMap, body: &[u8]) -> bool {
        let Some(authorization) = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(Authorization::parse)
        else {
            return false;
        };
        let key = {
            let mut authorised = self.authorised.lock().unwrap_or_else(|e| e.into_inner());
            let now = std::time::Instant::now();
            authorised.retain(|_, (_, until)| *until > now);
            match authorised.get(&authorization.scope()) {
                Some((key, _)) => key.clone(),
                None => return false,
            }
        };
        signature_matches(
            &key,
            &authorization,
            "POST",
            uri,
            headers,
            body,
            SystemTime::now(),
        )
    }

    fn remember(&self, grant: reqwest_like::Grant) {
        let until = std::time::Instant::now() + AUTHORISED_FOR;
        self.authorised
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(grant.scope, (grant.signing_key, until));
    }
}

/// A SigV4 `Authorization` header's parts (`AWS4-HMAC-SHA256 Credential=KEY/DAY/REGION/SERVICE/
/// aws4_request, SignedHeaders=a;b, Signature=HEX`).
#[derive(Debug, PartialEq)]
pub struct Authorization {
    pub access_key_id: String,
    pub day: String,
    pub region: String,
    pub service: String,
    pub signed_headers: Vec<String>,
    pub signature: Vec<u8>,
}

impl Authorization {
    pub fn parse(header: &str) -> Option<Authorization> {
        let rest = header.strip_prefix("AWS4-HMAC-SHA256")?.trim_start();
        let (mut credential, mut signed, mut signature) = (None, None, None);
        for part in rest.split(',') {
            let (name, value) = part.trim().split_once('=')?;
            match name {
                "Credential" => credential = Some(value),
                "SignedHeaders" => signed = Some(value),
                "Signature" => signature = Some(value),
                _ => return None,
            }
        }
        let mut scope = credential?.split('/');
        let (access_key_id, day, region, service) =
            (scope.next()?, scope.next()?, scope.next()?, scope.next()?);
        if scope.next()? != "aws4_request" || scope.next().is_some() || day.len() != 8 {
            return None;
        }
        let signature = signature?;
        if signature.len() != 64 {
            return None;
        }
        let signature = (0..64)
            .step_by(2)
            .map(|i| u8::from_str_radix(signature.get(i..i + 2)?, 16).ok())
            .collect::<Option<Vec<u8>>>()?;
        let signed_headers: Vec<String> = signed?.split(';').map(str::to_string).collect();
        if signed_headers
            .iter()
            .any(|h| h.is_empty() || h.bytes().any(|b| b.is_ascii_uppercase()))
        {
            return None;
        }
        Some(Authorization {
            access_key_id: access_key_id.into(),
            day: day.into(),
            region: region.into(),
            service: service.into(),
            signed_headers,
            signature,
        })
    }

    /// `ACCESS_KEY/DAY/REGION/SERVICE`, as the emulator names an allowed scope.
    pub fn scope(&self) -> String {
        format!(
            "{}/{}/{}/{}",
            self.access_key_id, self.day, self.region, self.service
        )
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `authorization`'s signature is the SigV4 signature, with the scope's derived
/// `signing_key`, of the request as received (AWS general reference, "Create a signature for an
/// AWS API request": canonical request, string to sign, HMAC-SHA256), with the checks
/// `infra/local/sigv4.py` makes first: `host` signed, `X-Amz-Date` of the scope's day and within
/// 5 minutes of `now`, a signed `x-amz-content-sha256` equal to the body's hash. `false` on
/// anything else (then the emulator decides, and names the refusal).
pub fn signature_matches(
    signing_key: &[u8],
    authorization: &Authorization,
    method: &str,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
    body: &[u8],
    now: SystemTime,
) -> bool {
    use aws_lc_rs::{digest, hmac};
    let Some(amz_date) = headers.get("x-amz-date").and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let Ok(signed_at) = chrono::NaiveDateTime::parse_from_str(amz_date, "%Y%m%dT%H%M%SZ") else {
        return false;
    };
    let signed_at =
        SystemTime::UNIX_EPOCH + Duration::from_secs(signed_at.and_utc().timestamp().max(0) as u64);
    let skew = now
        .duration_since(signed_at)
        .unwrap_or_else(|e| e.duration());
    if skew > MAX_SKEW
        || !amz_date.starts_with(&authorization.day)
        || !authorization.signed_headers.iter().any(|h| h == "host")
    {
        return false;
    }
    // Only the shape functions send: no query string (its canonical form is then empty) and a
    // path that is its own canonical form.
    if uri.query().is_some()
        || !uri
            .path()
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/-_.~".contains(&b))
    {
        return false;
    }
    let payload = hex(digest::digest(&digest::SHA256, body).as_ref());
    if headers
        .get("x-amz-content-sha256")
        .is_some_and(|claimed| claimed.as_bytes() != payload.as_bytes())
    {
        return false;
    }
    let mut canonical = format!("{method}\n{}\n\n", uri.path());
    for name in &authorization.signed_headers {
        let mut values = Vec::new();
        for value in headers.get_all(name.as_str()) {
            let Ok(value) = value.to_str() else {
                return false;
            };
            values.push(value.split_whitespace().collect::<Vec<_>>().join(" "));
        }
        if values.is_empty() {
            return false;
        }
        canonical.push_str(&format!("{name}:{}\n", values.join(",")));
    }
    canonical.push_str(&format!(
        "\n{}\n{payload}",
        authorization.signed_headers.join(";")
    ));
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{}/{}/{}/aws4_request\n{}",
        authorization.day,
        authorization.region,
        authorization.service,
        hex(digest::digest(&digest::SHA256, canonical.as_bytes()).as_ref())
    );
    let key = hmac::Key::new(hmac::HMAC_SHA256, signing_key);
    hmac::verify(&key, string_to_sign.as_bytes(), &authorization.signature).is_ok()
}

async fn traces(
    State(receiver): State<Arc<Receiver>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if body.len() > MAX_REQUEST_BYTES {
        return (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("more than {MAX_REQUEST_BYTES} bytes"),
        )
            .into_response();
    }
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type.starts_with("application/x-protobuf") {
        // OTLP/HTTP JSON exists; the functions send protobuf, and only that is taken here.
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "only application/x-protobuf",
        )
            .into_response();
    }
    // 1. Who is calling, and may they: the emulator's IAM check of this signed request (or this
    // endpoint's check against a scope the emulator allowed moments ago).
    match receiver.allowed_before(&uri, &headers, &body) {
        true => {}
        false => match receiver
            .http
            .authorise(&receiver.emulator, &headers, &body)
            .await
        {
            Ok(Ok(grant)) => {
                if let Some(grant) = grant {
                    receiver.remember(grant);
                }
            }
            Ok(Err(refusal)) => return refusal,
            Err(e) => {
                return (
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("the emulator did not answer the IAM check: {e}"),
                )
                    .into_response();
            }
        },
    }
    // 2. Decode (a malformed request is refused, as X-Ray refuses it).
    let request = match ExportTraceServiceRequest::decode(body.as_ref()) {
        Ok(request) => request,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("not an ExportTraceServiceRequest: {e}"),
            )
                .into_response();
        }
    };
    // 3. Into X-Ray segment documents, into the emulator's X-Ray: after the answer, as X-Ray
    // takes spans and processes them asynchronously (and the emulator, one Python process, must
    // not hold a function's flush).
    let documents = documents_of(&request);
    if !documents.is_empty() {
        let _ = receiver.documents.send(documents);
    }
    let answer = ExportTraceServiceResponse {
        partial_success: None,
    };
    (
        [("content-type", "application/x-protobuf")],
        answer.encode_to_vec(),
    )
        .into_response()
}

/// The segment documents (JSON text) of every span in `request`, each resource's spans named
/// after its `service.name` (the function), `order_id` indexed as an annotation (as the daemon
/// path does).
pub fn documents_of(request: &ExportTraceServiceRequest) -> Vec<String> {
    let mut out = Vec::new();
    for resource_spans in &request.resource_spans {
        let attributes = resource_spans
            .resource
            .as_ref()
            .map(|r| key_values(&r.attributes))
            .unwrap_or_default();
        let resource = opentelemetry_sdk::Resource::builder_empty()
            .with_attributes(attributes)
            .build();
        let mut translator = SegmentTranslator::new().with_indexed_attr("order_id".to_string());
        translator.set_resource(&resource);
        let mut spans = Vec::new();
        for scope_spans in &resource_spans.scope_spans {
            let scope = scope_spans
                .scope
                .as_ref()
                .map(|s| InstrumentationScope::builder(s.name.clone()).build())
                .unwrap_or_default();
            spans.extend(
                scope_spans
                    .spans
                    .iter()
                    .filter_map(|span| span_data(span, &scope)),
            );
        }
        for document in translator.translate_spans(&spans) {
            let mut text = Vec::new();
            document.to_writer(&mut text);
            out.extend(String::from_utf8(text).ok());
        }
    }
    out
}

/// OTLP's `SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK` (trace.proto, `SpanFlags`).
const PARENT_IS_REMOTE: u32 = 0x200;

/// One OTLP span as the SDK's `SpanData` (what the translator reads); `None` when its ids are
/// not valid (16 and 8 bytes, not all zero).
fn span_data(span: &proto::Span, scope: &InstrumentationScope) -> Option<SpanData> {
    let trace_id = TraceId::from_bytes(span.trace_id.as_slice().try_into().ok()?);
    let span_id = SpanId::from_bytes(span.span_id.as_slice().try_into().ok()?);
    if trace_id == TraceId::INVALID || span_id == SpanId::INVALID {
        return None;
    }
    let parent_span_id = span
        .parent_span_id
        .as_slice()
        .try_into()
        .map(SpanId::from_bytes)
        .unwrap_or(SpanId::INVALID);
    let kind = match proto::span::SpanKind::try_from(span.kind)
        .unwrap_or(proto::span::SpanKind::Unspecified)
    {
        proto::span::SpanKind::Server => SpanKind::Server,
        proto::span::SpanKind::Client => SpanKind::Client,
        proto::span::SpanKind::Producer => SpanKind::Producer,
        proto::span::SpanKind::Consumer => SpanKind::Consumer,
        _ => SpanKind::Internal,
    };
    let status = match &span.status {
        Some(s) if s.code == proto::status::StatusCode::Error as i32 => {
            Status::error(s.message.clone())
        }
        Some(s) if s.code == proto::status::StatusCode::Ok as i32 => Status::Ok,
        _ => Status::Unset,
    };
    Some(SpanData {
        span_context: SpanContext::new(
            trace_id,
            span_id,
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        ),
        parent_span_id,
        parent_span_is_remote: span.flags & PARENT_IS_REMOTE != 0,
        span_kind: kind,
        name: span.name.clone().into(),
        start_time: SystemTime::UNIX_EPOCH + Duration::from_nanos(span.start_time_unix_nano),
        end_time: SystemTime::UNIX_EPOCH + Duration::from_nanos(span.end_time_unix_nano),
        attributes: key_values(&span.attributes),
        dropped_attributes_count: span.dropped_attributes_count,
        // Span events (exceptions) and links are not carried into the local documents.
        events: SpanEvents::default(),
        links: SpanLinks::default(),
        status,
        instrumentation_scope: scope.clone(),
    })
}

fn key_values(attributes: &[opentelemetry_proto::tonic::common::v1::KeyValue]) -> Vec<KeyValue> {
    attributes
        .iter()
        .filter_map(|kv| Some(KeyValue::new(kv.key.clone(), value(kv.value.as_ref()?)?)))
        .collect()
}

fn value(value: &AnyValue) -> Option<Value> {
    Some(match value.value.as_ref()? {
        any_value::Value::StringValue(s) => Value::from(s.clone()),
        any_value::Value::BoolValue(b) => Value::from(*b),
        any_value::Value::IntValue(i) => Value::from(*i),
        any_value::Value::DoubleValue(d) => Value::from(*d),
        // Arrays, maps and bytes: as text, enough for a local waterfall.
        other => Value::from(format!("{other:?}")),
    })
}

/// The IAM check, over plain HTTP to the emulator on loopback.
mod reqwest_like {
    use super::*;
    use http_body_util::{BodyExt, Full};

    pub struct Client {
        http: hyper_util::client::legacy::Client<
            hyper_util::client::legacy::connect::HttpConnector,
            Full<Bytes>,
        >,
    }

    impl Client {
        pub fn new() -> Client {
            Client {
                http: hyper_util::client::legacy::Client::builder(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .build_http(),
            }
        }

        /// Replays the signed request's headers to the emulator's `POST /v1/traces`; `Ok`
        /// when it is allowed (with the scope's signing key when the emulator gives one), the
        /// emulator's refusal (X-Ray's AccessDeniedException, …) when not.
        pub async fn authorise(
            &self,
            emulator: &str,
            headers: &HeaderMap,
            body: &Bytes,
        ) -> Result<std::result::Result<Option<Grant>, Response>> {
            let mut request = axum::http::Request::post(format!("{emulator}/v1/traces"));
            for (name, value) in headers {
                if name != "host" && name != "content-length" && name != "x-forwarded-host" {
                    request = request.header(name, value);
                }
            }
            // The signature covers the `host` the function sent to (this endpoint's): passed
            // on for the emulator to verify it (infra/local/sigv4.py), never taken from the caller.
            if let Some(host) = headers.get("host") {
                request = request.header("x-forwarded-host", host);
            }
            let request = request.body(Full::new(body.clone()))?;
            let response = self.http.request(request).await?;
            let status = response.status();
            // X-Ray's error type as the emulator named it (AccessDeniedException,
            // InvalidSignatureException, UnrecognizedClientException, …).
            let response_type = response.headers().get("x-amzn-errortype").cloned();
            let body = response.into_body().collect().await?.to_bytes();
            if status.is_success() {
                return Ok(Ok(Grant::of(&body)));
            }
            let mut refusal = (status, body).into_response();
            refusal.headers_mut().insert(
                "content-type",
                "application/json".parse().expect("a header value"),
            );
            let error_type = response_type
                .unwrap_or_else(|| "AccessDeniedException".parse().expect("a header value"));
            refusal.headers_mut().insert("x-amzn-errortype", error_type);
            Ok(Err(refusal))
        }
    }

    /// An allowed scope and its derived signing key, as the emulator answers an allowed check
    /// (`{"scope": "KEY/DAY/REGION/SERVICE", "signingKey": BASE64}`).
    pub struct Grant {
        pub scope: String,
        pub signing_key: Vec<u8>,
    }

    impl Grant {
        fn of(body: &[u8]) -> Option<Grant> {
            use base64::Engine;
            let answer: serde_json::Value = serde_json::from_slice(body).ok()?;
            Some(Grant {
                scope: answer["scope"].as_str()?.to_string(),
                signing_key: base64::engine::general_purpose::STANDARD
                    .decode(answer["signingKey"].as_str()?)
                    .ok()?,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{
        InstrumentationScope as ProtoScope, KeyValue as ProtoKeyValue,
    };
    use opentelemetry_proto::tonic::resource::v1::Resource as ProtoResource;

    fn text(key: &str, value: &str) -> ProtoKeyValue {
        ProtoKeyValue {
            key: key.into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(value.into())),
            }),
            ..Default::default()
        }
    }

    fn span(
        id: u8,
        parent: Option<u8>,
        kind: proto::span::SpanKind,
        name: &str,
        attributes: Vec<ProtoKeyValue>,
    ) -> proto::Span {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        let mut trace_id = 0x5759e988_bd862e3fe1be46a994272793u128
            .to_be_bytes()
            .to_vec();
        trace_id[0..4].copy_from_slice(&((now / 1_000_000_000) as u32).to_be_bytes());
        proto::Span {
            trace_id,
            span_id: vec![0, 0, 0, 0, 0, 0, 0, id],
            parent_span_id: parent
                .map(|p| vec![0, 0, 0, 0, 0, 0, 0, p])
                .unwrap_or_default(),
            name: name.into(),
            kind: kind as i32,
            start_time_unix_nano: now,
            end_time_unix_nano: now + 2_000_000,
            attributes,
            ..Default::default()
        }
    }

    /// What a function's OTLP export carries becomes the segment documents `trace.rs` reads: the
    /// work span a segment named after the function, the SDK's AWS calls its subsegments.
    #[test]
    fn an_otlp_export_becomes_segments_and_subsegments() {
        let request = ExportTraceServiceRequest {
            resource_spans: vec![proto::ResourceSpans {
                resource: Some(ProtoResource {
                    attributes: vec![text("service.name", "purchase")],
                    ..Default::default()
                }),
                scope_spans: vec![proto::ScopeSpans {
                    scope: Some(ProtoScope {
                        name: "purchase".into(),
                        ..Default::default()
                    }),
                    spans: vec![
                        span(
                            1,
                            None,
                            proto::span::SpanKind::Server,
                            "purchase",
                            vec![text("order_id", "o-1")],
                        ),
                        span(
                            2,
                            Some(1),
                            proto::span::SpanKind::Client,
                            "DynamoDB.UpdateItem",
                            vec![
                                text("rpc.system", "aws-api"),
                                text("rpc.service", "DynamoDB"),
                                text("rpc.method", "UpdateItem"),
                            ],
                        ),
                    ],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let documents = documents_of(&request);
        assert_eq!(documents.len(), 2, "{documents:?}");
        let spans = crate::trace::spans(&documents).unwrap();
        let segment = spans.iter().find(|s| s.segment).expect("a segment");
        assert_eq!(segment.name, "purchase");
        assert!(
            segment.trace_id.starts_with("1-")
                && segment.trace_id.ends_with("-bd862e3fe1be46a994272793"),
            "{}",
            segment.trace_id
        );
        let call = spans.iter().find(|s| !s.segment).expect("a subsegment");
        assert_eq!(
            (
                call.name.as_str(),
                call.operation.as_deref(),
                call.parent_id.as_deref()
            ),
            ("DynamoDB", Some("UpdateItem"), Some(segment.id.as_str())),
            "{documents:?}"
        );
        assert!(
            documents.iter().any(|d| d.contains("\"order_id\":\"o-1\"")),
            "order_id is an annotation: {documents:?}"
        );
    }

    /// SigV4's derived key, computed here step by step (AWS general reference, "Create a
    /// signature for an AWS API request", step 4).
    fn signing_key(secret: &str, day: &str, region: &str, service: &str) -> Vec<u8> {
        use aws_lc_rs::hmac;
        let mut key = format!("AWS4{secret}").into_bytes();
        for part in [day, region, service, "aws4_request"] {
            key = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &key), part.as_bytes())
                .as_ref()
                .to_vec();
        }
        key
    }

    /// The request `services/shared/src/otlp.rs`'s test signs with aws-sigv4 and
    /// `infra/local/test_sigv4.py` checks with botocore: its known signature.
    const SIGNED: &str = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261129/us-east-1/xray/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=76bd78f85295ddd69fe5799e4e77a58fd9bf1351d628519f9a678da22956af4f";

    fn signed_headers(authorization: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", "application/x-protobuf".parse().unwrap());
        headers.insert("host", "xray.us-east-1.amazonaws.com".parse().unwrap());
        headers.insert("x-amz-date", "20261129T120000Z".parse().unwrap());
        headers.insert("authorization", authorization.parse().unwrap());
        headers
    }

    #[test]
    fn a_request_verifies_against_its_scopes_signing_key_and_nothing_else_does() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_953_600); // 2026-11-29T12:00:00Z
        let key = signing_key(
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            "20261129",
            "us-east-1",
            "xray",
        );
        let uri: axum::http::Uri = "/v1/traces".parse().unwrap();
        let authorization = Authorization::parse(SIGNED).expect("a SigV4 header");
        assert_eq!(authorization.scope(), "AKIDEXAMPLE/20261129/us-east-1/xray");
        assert_eq!(
            authorization.signed_headers,
            ["content-type", "host", "x-amz-date"]
        );
        let headers = signed_headers(SIGNED);
        let body = b"\x0a\x00";
        let check = |key: &[u8],
                     headers: &HeaderMap,
                     uri: &axum::http::Uri,
                     body: &[u8],
                     now: SystemTime| {
            signature_matches(key, &authorization, "POST", uri, headers, body, now)
        };
        assert!(
            check(&key, &headers, &uri, body, at),
            "the request as signed"
        );
        assert!(
            check(&key, &headers, &uri, body, at + Duration::from_secs(299)),
            "within 5 minutes"
        );
        // Anything else is left to the emulator.
        assert!(
            !check(&key, &headers, &uri, b"\x0a\x01", at),
            "another body"
        );
        assert!(
            !check(
                &signing_key("not-the-secret", "20261129", "us-east-1", "xray"),
                &headers,
                &uri,
                body,
                at
            ),
            "another secret"
        );
        assert!(
            !check(
                &signing_key(
                    "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                    "20261129",
                    "eu-west-1",
                    "xray"
                ),
                &headers,
                &uri,
                body,
                at
            ),
            "another region's key"
        );
        assert!(
            !check(&key, &headers, &uri, body, at + Duration::from_secs(301)),
            "signed more than 5 minutes ago"
        );
        assert!(
            !check(&key, &headers, &"/v1/traces?x=1".parse().unwrap(), body, at),
            "a query"
        );
        assert!(
            !check(&key, &headers, &"/v1/logs".parse().unwrap(), body, at),
            "another path"
        );
        let mut moved = headers.clone();
        moved.insert("host", "127.0.0.1:4318".parse().unwrap());
        assert!(!check(&key, &moved, &uri, body, at), "another host");
        let mut claimed = headers.clone();
        claimed.insert("x-amz-content-sha256", "00".repeat(32).parse().unwrap());
        assert!(
            !check(&key, &claimed, &uri, body, at),
            "a claimed payload hash that is not the body's"
        );
        let mut unsigned_type = headers.clone();
        unsigned_type.insert("content-type", "application/json".parse().unwrap());
        assert!(
            !check(&key, &unsigned_type, &uri, body, at),
            "a signed header changed"
        );
        let flipped = SIGNED.replace("Signature=76", "Signature=77");
        assert!(!signature_matches(
            &key,
            &Authorization::parse(&flipped).unwrap(),
            "POST",
            &uri,
            &signed_headers(&flipped),
            body,
            at
        ));
        for malformed in [
            "",
            "AWS4-HMAC-SHA256 Credential=A/20261129/us-east-1/xray/aws4_request, SignedHeaders=host",
            &SIGNED.replace("aws4_request", "aws5_request"),
            &SIGNED.replace("Signature=76bd", "Signature=76b"),
        ] {
            assert!(Authorization::parse(malformed).is_none(), "{malformed}");
        }
    }

    #[test]
    fn spans_with_invalid_ids_are_left_out() {
        let mut bad = span(1, None, proto::span::SpanKind::Server, "purchase", vec![]);
        bad.trace_id = vec![0; 16];
        let mut short = span(2, None, proto::span::SpanKind::Server, "purchase", vec![]);
        short.span_id = vec![1, 2, 3];
        let request = ExportTraceServiceRequest {
            resource_spans: vec![proto::ResourceSpans {
                scope_spans: vec![proto::ScopeSpans {
                    spans: vec![bad, short],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        assert!(documents_of(&request).is_empty());
    }
}
