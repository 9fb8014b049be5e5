//! Traces and logs, set up the same way in every function.
//!
//! Traces: `tracing` spans become OpenTelemetry spans with X-Ray ids, sent to the X-Ray daemon
//! over UDP (`AWS_XRAY_DAEMON_ADDRESS`; Lambda provides the daemon, `taskflow up` plays it
//! locally). Each unit of work (an order event, a work message, a status change) is a segment
//! that continues the order's trace from the header it carries ([`continue_trace`]); the AWS SDK's
//! own operation spans (`DynamoDB.GetItem`, …) become its subsegments.
//!
//! Logs: one JSON object a line with `level`, `message`, `function`, the fields of the spans the
//! line was written in (`order_id`, `trace_id`, `request_id`, …) and its own. Level from
//! `AWS_LAMBDA_LOG_LEVEL` or `RUST_LOG` (default info). Secrets never reach a line: task and
//! payment tokens only have a redacted `Debug`/`Display`.

use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry::Context;
use opentelemetry_aws::trace::xray_propagator::{span_context_from_str, span_context_to_string};
use opentelemetry_aws::trace::XrayIdGenerator;
use opentelemetry_aws::xray_exporter::{SegmentDocument, SegmentDocumentExporter, SegmentTranslator, XrayExporter};
use opentelemetry_sdk::trace::SdkTracerProvider;
use serde_json::{Map, Value};
use std::net::{SocketAddr, UdpSocket};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Record};
use tracing::{Event, Id, Span, Subscriber};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::{EnvFilter, LevelFilter, Targets};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::{Context as LayerContext, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

/// The header an AWS service passes a trace on in (`Root=1-…;Parent=…;Sampled=1`).
pub const TRACE_HEADER: &str = "AWSTraceHeader";

/// Keeps the tracer alive; [`Telemetry::flush`] after each invocation, before Lambda freezes us.
pub struct Telemetry {
    function: &'static str,
    provider: SdkTracerProvider,
}

impl Telemetry {
    pub fn flush(&self) {
        let _ = self.provider.force_flush();
    }
    pub fn function(&self) -> &'static str {
        self.function
    }
}

/// Sets up traces and logs for `function` (its name in logs and in the trace's segments).
pub fn init(function: &'static str) -> Telemetry {
    // The service name is what X-Ray calls each segment of this function.
    let resource = opentelemetry_sdk::Resource::builder().with_service_name(function).build();
    let mut provider = SdkTracerProvider::builder().with_id_generator(XrayIdGenerator::default()).with_resource(resource);
    // Without a daemon, spans still get ids (log lines and the task record carry them) but go
    // nowhere: a unit test or a tool must not need one.
    if let Some(daemon) = std::env::var("AWS_XRAY_DAEMON_ADDRESS").ok().and_then(|a| daemon_address(&a)) {
        match Daemon::connect(daemon) {
            // Each span is sent as it ends (one UDP datagram): nothing is left in a buffer when
            // Lambda freezes the process between invocations.
            Ok(daemon) => {
                // `order_id` as an annotation: X-Ray can then find an order's traces by filter.
                let translator = SegmentTranslator::new().with_indexed_attr("order_id".to_string());
                provider = provider.with_simple_exporter(XrayExporter::new(daemon).with_translator(translator));
            }
            Err(e) => eprintln!("{{\"level\":\"WARN\",\"message\":\"no X-Ray daemon socket: {e}\"}}"),
        }
    }
    let provider = provider.build();
    let tracer = provider.tracer(function.to_string());

    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".to_string())
        .to_lowercase();
    let logs = tracing_subscriber::fmt::layer()
        .event_format(JsonLines { function: function.to_string() })
        .with_filter(EnvFilter::try_new(&level).unwrap_or_else(|_| EnvFilter::new("info")));
    // Our spans, and the SDK's one span per AWS operation (debug level, whatever the log level).
    let spans = Targets::new()
        .with_target("taskflow", LevelFilter::INFO)
        .with_target("aws_sdk_dynamodb", LevelFilter::DEBUG)
        .with_target("aws_sdk_sqs", LevelFilter::DEBUG)
        .with_target("aws_sdk_sfn", LevelFilter::DEBUG)
        .with_target("aws_sdk_s3", LevelFilter::DEBUG)
        .with_target("aws_sdk_eventbridge", LevelFilter::DEBUG);
    let traces = tracing_opentelemetry::layer().with_tracer(tracer).with_filter(spans);
    let _ = tracing_subscriber::registry().with(SpanFields).with(logs).with(traces).try_init();
    Telemetry { function, provider }
}

/// `AWS_XRAY_DAEMON_ADDRESS` is `host:port`, or `tcp:host:port udp:host:port`.
fn daemon_address(value: &str) -> Option<SocketAddr> {
    let udp = value.split_whitespace().find_map(|p| p.strip_prefix("udp:")).unwrap_or(value);
    udp.parse().ok()
}

/// The X-Ray daemon's UDP protocol: a header line, then one segment document a datagram.
/// (Ours rather than the crate's client so that, sending to a loopback daemon, the socket is bound
/// to loopback too.)
#[derive(Debug)]
struct Daemon {
    socket: UdpSocket,
}

impl Daemon {
    fn connect(daemon: SocketAddr) -> std::io::Result<Self> {
        let local: SocketAddr = if daemon.ip().is_loopback() { "127.0.0.1:0" } else { "0.0.0.0:0" }.parse().expect("an address");
        let socket = UdpSocket::bind(local)?;
        socket.set_nonblocking(true)?;
        socket.connect(daemon)?;
        Ok(Daemon { socket })
    }
}

impl SegmentDocumentExporter for Daemon {
    type Error = std::io::Error;

    async fn export_segment_documents(&self, batch: Vec<SegmentDocument<'_>>) -> Result<(), Self::Error> {
        for document in batch {
            let mut datagram = b"{\"format\": \"json\", \"version\": 1}\n".to_vec();
            document.to_writer(&mut datagram);
            self.socket.send(&datagram)?;
        }
        Ok(())
    }
}

/// A span for one unit of work of `function` — an X-Ray segment — continuing the trace in
/// `header` (an `AWSTraceHeader` value). No header, or one that does not parse, starts a new
/// trace rather than failing. The span's `trace_id` field is filled in for the logs.
pub fn continue_trace(function: &str, header: Option<&str>) -> Span {
    let span = tracing::info_span!(
        target: "taskflow",
        "work",
        otel.name = function,
        otel.kind = "server",
        trace_id = tracing::field::Empty,
        order_id = tracing::field::Empty,
    );
    // Never the child of whatever span happens to be current: the header decides.
    let parent = match header.and_then(|h| span_context_from_str(h.trim())).filter(|c| c.is_valid()) {
        Some(parent) => Context::new().with_remote_span_context(parent),
        None => Context::new(),
    };
    let _ = span.set_parent(parent);
    if let Some(id) = trace_id_of(&span) {
        span.record("trace_id", id.as_str());
    }
    span
}

/// A span for one invocation, for the logs only (`request_id`); not part of any trace, because an
/// invocation's batch holds the work of many orders, each in its own trace.
pub fn invocation(context: &lambda_runtime::Context) -> Span {
    tracing::info_span!(target: "lambda", "invocation", request_id = context.request_id.as_str())
}

/// The X-Ray trace id (`1-xxxxxxxx-…`) of `span`, if it is traced.
pub fn trace_id_of(span: &Span) -> Option<String> {
    trace_id_in(&header_of(span)?).map(str::to_string)
}

/// The trace header that makes a receiver's work a child of `span`.
pub fn header_of(span: &Span) -> Option<String> {
    let context = span.context();
    let span_context = context.span().span_context().clone();
    span_context_to_string(&span_context)
}

/// The trace header of the work in progress (see [`header_of`]).
pub fn current_header() -> Option<String> {
    header_of(&Span::current())
}

/// The current trace header, or (outside any traced work, as in a unit test) a new trace's, so
/// a message that must carry one always does.
pub fn current_header_or_new() -> String {
    current_header().unwrap_or_else(|| {
        let random: u128 = rand::random();
        format!(
            "Root=1-{:08x}-{:024x};Parent={:016x};Sampled=1",
            chrono::Utc::now().timestamp() as u32,
            random >> 32,
            rand::random::<u64>().max(1)
        )
    })
}

/// The `Root=` part of a trace header.
pub fn trace_id_in(header: &str) -> Option<&str> {
    header.split(';').find_map(|p| p.trim().strip_prefix("Root="))
}

/// The span fields, kept on each span for [`JsonLines`].
struct SpanFields;

#[derive(Default)]
struct Fields(Map<String, Value>);

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_string(), Value::from(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_string(), Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_string(), Value::from(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().to_string(), Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_string(), Value::from(value));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_string(), Value::from(format!("{value:?}")));
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for SpanFields {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: LayerContext<'_, S>) {
        if attrs.metadata().target().starts_with("lambda_runtime") {
            // Its `xrayTraceId` is the invocation's, not the order's: ours are the ones to read.
            return;
        }
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        // `otel.*` steer the trace exporter; they are not log context.
        fields.0.retain(|k, _| !k.starts_with("otel.") && !k.contains('.'));
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(fields);
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: LayerContext<'_, S>) {
        if let Some(span) = ctx.span(id) {
            if let Some(fields) = span.extensions_mut().get_mut::<Fields>() {
                values.record(fields);
            }
        }
    }
}

/// One JSON object a line: time, level, function, span fields (outermost first), event fields.
struct JsonLines {
    function: String,
}

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> std::fmt::Result {
        let mut line = Map::new();
        line.insert("timestamp".into(), Value::from(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)));
        line.insert("level".into(), Value::from(event.metadata().level().as_str()));
        line.insert("function".into(), Value::from(self.function.as_str()));
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                if let Some(fields) = span.extensions().get::<Fields>() {
                    line.extend(fields.0.iter().map(|(k, v)| (k.clone(), v.clone())));
                }
            }
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        line.extend(fields.0);
        writeln!(writer, "{}", Value::Object(line))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_daemon_address_is_read_in_both_forms() {
        assert_eq!(daemon_address("127.0.0.1:2000"), Some("127.0.0.1:2000".parse().unwrap()));
        assert_eq!(daemon_address("tcp:169.254.79.129:2000 udp:169.254.79.129:2000"), Some("169.254.79.129:2000".parse().unwrap()));
        assert_eq!(daemon_address("nonsense"), None);
    }

    #[test]
    fn a_new_trace_header_is_a_valid_xray_header() {
        let header = current_header_or_new();
        let context = span_context_from_str(&header).expect("parses");
        assert!(context.is_valid() && context.is_sampled(), "{header}");
        assert_eq!(trace_id_in(&header).unwrap().len(), 35, "{header}");
    }
}
