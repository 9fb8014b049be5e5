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
//!    or a body other than the one signed is 403 (X-Ray's error type) and nothing is stored;
//! 2. decoded with `opentelemetry-proto`'s generated messages (`ExportTraceServiceRequest`);
//! 3. converted into X-Ray segment documents with `opentelemetry-aws`'s `SegmentTranslator` (the
//!    translation the X-Ray daemon path used, so a span becomes the same document either way;
//!    X-Ray does the same conversion on AWS: OTLP spans are readable as segments through
//!    BatchGetTraces) and stored in the emulator's X-Ray (PutTraceSegments), where
//!    `taskflow trace` reads them as it reads X-Ray on AWS.
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

struct Receiver {
    xray: aws_sdk_xray::Client,
    /// The emulator's base URL, for the IAM check.
    emulator: String,
    http: reqwest_like::Client,
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
        let state = Arc::new(Receiver {
            xray: aws_sdk_xray::Client::new(aws),
            emulator: emulator.trim_end_matches('/').to_string(),
            http: reqwest_like::Client::new(),
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

async fn traces(
    State(receiver): State<Arc<Receiver>>,
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
    // 1. Who is calling, and may they: the emulator's IAM check of this signed request.
    match receiver
        .http
        .authorise(&receiver.emulator, &headers, &body)
        .await
    {
        Ok(None) => {}
        Ok(Some(refusal)) => return refusal,
        Err(e) => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("the emulator did not answer the IAM check: {e}"),
            )
                .into_response();
        }
    }
    // 2. Decode (a malformed request is refused, as X-Ray refuses it).
    let request = match ExportTraceServiceRequest::decode(body.as_ref()) {
        Ok(request) => request,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("not an ExportTraceServiceRequest: {e}")).into_response(),
    };
    // 3. Into X-Ray segment documents, into the emulator's X-Ray: after the answer, as X-Ray
    // takes spans and processes them asynchronously (and the emulator, one Python process, must
    // not hold a function's flush).
    tokio::spawn(async move {
        let documents = documents_of(&request);
        for chunk in documents.chunks(MAX_BATCH) {
            match receiver.xray.put_trace_segments().set_trace_segment_documents(Some(chunk.to_vec())).send().await {
                Ok(out) if !out.unprocessed_trace_segments().is_empty() => {
                    eprintln!("otlp endpoint: {} segments refused by the emulator", out.unprocessed_trace_segments().len());
                }
                Ok(_) => {}
                Err(e) => eprintln!("otlp endpoint: {}", aws_sdk_xray::error::DisplayErrorContext(&e)),
            }
        }
    });
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

        /// Replays the signed request's headers to the emulator's `POST /v1/traces`; `None`
        /// when it is allowed, the emulator's refusal (X-Ray's AccessDeniedException) when not.
        pub async fn authorise(
            &self,
            emulator: &str,
            headers: &HeaderMap,
            body: &Bytes,
        ) -> Result<Option<Response>> {
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
                return Ok(None);
            }
            let mut refusal = (status, body).into_response();
            refusal.headers_mut().insert(
                "content-type",
                "application/json".parse().expect("a header value"),
            );
            let error_type = response_type.unwrap_or_else(|| "AccessDeniedException".parse().expect("a header value"));
            refusal.headers_mut().insert("x-amzn-errortype", error_type);
            Ok(Some(refusal))
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
