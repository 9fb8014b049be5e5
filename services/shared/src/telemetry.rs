//! Traces and logs, set up the same way in every function.
//!
//! Traces: `tracing` spans become OpenTelemetry spans with X-Ray ids, sent over OTLP/HTTP to the
//! X-Ray OTLP endpoint at the end of each invocation (`crate::otlp`; `taskflow up` receives them
//! locally), or, with `TRACE_EXPORTER=daemon`, to the X-Ray daemon over UDP
//! (`AWS_XRAY_DAEMON_ADDRESS`; Lambda provides the daemon, `taskflow up` plays it locally). Each unit of work (an order event, a work message, a status change) is a segment
//! that continues the order's trace from the header it carries ([`continue_trace`]); the AWS SDK's
//! own operation spans (`DynamoDB.GetItem`, …) become its subsegments.
//!
//! Logs: one JSON object a line with `level`, `message`, `function`, the fields of the spans the
//! line was written in (`order_id`, `trace_id`, `request_id`, …) and its own. Level from
//! `AWS_LAMBDA_LOG_LEVEL` or `RUST_LOG` (default info). Secrets never reach a line: task and
//! payment tokens only have a redacted `Debug`/`Display`.

use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState, TracerProvider as _};
use opentelemetry::Context;
use opentelemetry_aws::trace::xray_propagator::span_context_to_string;
use opentelemetry_aws::trace::XrayIdGenerator;
use opentelemetry_sdk::trace::IdGenerator;
use std::cell::Cell;
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

/// Keeps the tracer alive; [`Telemetry::flush`] after each invocation, before Lambda freezes us
/// (with the OTLP exporter it exports the invocation's spans and returns within the flush bound,
/// `crate::otlp`; it never fails).
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
    let mut provider = SdkTracerProvider::builder().with_id_generator(ContinuingIds::default()).with_resource(resource);
    match Exporter::from_env() {
        Exporter::Otlp => match crate::otlp::OtlpConfig::from_env().map(|c| crate::otlp::processor(&c)) {
            // OTLP/HTTP to the X-Ray OTLP endpoint, flushed at the end of each invocation
            // within a bound (services/shared/src/otlp.rs says why this processor and client).
            Some(Ok(processor)) => provider = provider.with_span_processor(processor),
            Some(Err(e)) => eprintln!("{{\"level\":\"WARN\",\"message\":\"no OTLP exporter: {e}\"}}"),
            // Without a region (a unit test, a tool), spans get ids and go nowhere.
            None => {}
        },
        Exporter::Daemon => provider = daemon_exporter(provider),
        Exporter::None => {}
    }
    let provider = provider.build();
    let tracer = provider.tracer(function.to_string());
    init_layers(function, tracer);
    Telemetry { function, provider }
}

/// Where spans go: `TRACE_EXPORTER` = `otlp` (the default: the X-Ray OTLP endpoint), `daemon`
/// (the X-Ray daemon over UDP, for accounts that still run one; its support ends 2027-02-25) or
/// `none`. The template's `TraceExporter` parameter sets it on every function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exporter {
    Otlp,
    Daemon,
    None,
}

impl Exporter {
    pub fn from_env() -> Exporter {
        Exporter::parse(std::env::var("TRACE_EXPORTER").ok().as_deref())
    }

    /// Unknown values fall back to `otlp` (with a warning): tracing never stops a function.
    pub fn parse(value: Option<&str>) -> Exporter {
        match value.map(str::trim).map(str::to_ascii_lowercase).as_deref() {
            None | Some("") | Some("otlp") => Exporter::Otlp,
            Some("daemon") | Some("xray-daemon") => Exporter::Daemon,
            Some("none") | Some("off") => Exporter::None,
            Some(other) => {
                eprintln!("{{\"level\":\"WARN\",\"message\":\"TRACE_EXPORTER={other} is not otlp, daemon or none: otlp is used\"}}");
                Exporter::Otlp
            }
        }
    }
}

/// The X-Ray daemon exporter (the path before OTLP), when `AWS_XRAY_DAEMON_ADDRESS` names one.
fn daemon_exporter(mut provider: opentelemetry_sdk::trace::TracerProviderBuilder) -> opentelemetry_sdk::trace::TracerProviderBuilder {
    // Without a daemon, spans still get ids (log lines and the task record carry them) but go
    // nowhere: a unit test or a tool must not need one.
    if let Some(daemon) = std::env::var("AWS_XRAY_DAEMON_ADDRESS").ok().and_then(|a| daemon_address(&a)) {
        match daemon_span_exporter(daemon) {
            // Each span is sent as it ends (one UDP datagram): nothing is left in a buffer when
            // Lambda freezes the process between invocations.
            Ok(exporter) => provider = provider.with_simple_exporter(exporter),
            Err(e) => eprintln!("{{\"level\":\"WARN\",\"message\":\"no X-Ray daemon socket: {e}\"}}"),
        }
    }
    provider
}

fn init_layers(function: &'static str, tracer: opentelemetry_sdk::trace::SdkTracer) {
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
}

/// The daemon path's exporter: segment documents over UDP to `daemon`, `order_id` as an
/// annotation (X-Ray can then find an order's traces by filter). Public for the benchmark.
pub fn daemon_span_exporter(daemon: SocketAddr) -> std::io::Result<impl opentelemetry_sdk::trace::SpanExporter> {
    let translator = SegmentTranslator::new().with_indexed_attr("order_id".to_string());
    Ok(XrayExporter::new(Daemon::connect(daemon)?).with_translator(translator))
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
/// `header` (an `AWSTraceHeader` / `X-Amzn-Trace-Id` value, read by [`TraceHeader::parse`]).
///
/// - With a `Parent`, the segment is that segment's child.
/// - With `Root` only (what API Gateway and some producers send), the segment is a root segment
///   *of that trace*: same trace id, no parent (X-Ray drops a segment whose parent id names
///   nothing it has, and the exporter drops spans with a missing parent).
/// - `Sampled=0` continues the trace unsampled (ids in logs and headers, no segments sent);
///   `Sampled=1`, `Sampled=?` or no `Sampled` are recorded (this project traces every order).
///
/// No header, or one whose `Root` is unreadable, starts a new trace rather than failing. The
/// span's `trace_id` field is filled in for the logs.
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
    let continued = header.and_then(TraceHeader::parse);
    let parent = match &continued {
        Some(h) => Context::new().with_remote_span_context(h.span_context()),
        None => Context::new(),
    };
    let _ = span.set_parent(parent);
    // The OpenTelemetry span starts (and takes its ids) at the first `context()` of the span,
    // here, on this thread. A parent without a span id is not taken as a parent by the SDK, so a
    // Root-only trace id is handed to the id generator for exactly this start.
    let root_only = continued.as_ref().filter(|h| h.parent.is_none()).map(|h| h.root);
    let id = with_next_trace_id(root_only, || trace_id_of(&span));
    if let Some(id) = id {
        span.record("trace_id", id.as_str());
    }
    span
}

/// An X-Ray trace header, read (X-Ray developer guide, "Tracing header":
/// `Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1`, with
/// `Lineage=…`, `Self=…` and other fields possible).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceHeader {
    /// The trace (`Root`), as OpenTelemetry's 128-bit id (the 8 hex digits of epoch seconds,
    /// then the 24 hex digits of the identifier).
    pub root: TraceId,
    /// The segment the receiver's work is a child of; `None` for a Root-only header.
    pub parent: Option<SpanId>,
    /// `Sampled=1` / `0`; `None` when absent, `?` or anything else (the receiver decides).
    pub sampled: Option<bool>,
}

impl TraceHeader {
    /// Reads a header; `None` when it has no readable `Root`.
    ///
    /// Fields are `key=value` separated by `;`, in any order, with optional spaces around `;`
    /// and `=`; keys are matched without regard to case; the first of a repeated key counts;
    /// unknown keys (`Lineage`, `Self`, …) are ignored. `Root` must be `1-`, 8 hex digits, `-`
    /// and 24 hex digits, not all zero (X-Ray developer guide, "Trace IDs"). A `Parent` that is
    /// not 16 hex digits (or is all zero) is left out: the trace still continues, as its root.
    pub fn parse(header: &str) -> Option<TraceHeader> {
        let (mut root, mut parent, mut sampled) = (None, None, None);
        for field in header.split(';') {
            let Some((key, value)) = field.split_once('=') else { continue };
            let (key, value) = (key.trim(), value.trim());
            if key.eq_ignore_ascii_case("Root") && root.is_none() {
                root = Some(parse_root(value)?);
            } else if key.eq_ignore_ascii_case("Parent") && parent.is_none() {
                parent = Some(parse_parent(value));
            } else if key.eq_ignore_ascii_case("Sampled") && sampled.is_none() {
                sampled = Some(match value {
                    "1" => Some(true),
                    "0" => Some(false),
                    _ => None,
                });
            }
        }
        Some(TraceHeader { root: root?, parent: parent.flatten(), sampled: sampled.flatten() })
    }

    /// The X-Ray form of the trace id (`1-xxxxxxxx-xxxxxxxxxxxxxxxxxxxxxxxx`, lower case).
    pub fn trace_id(&self) -> String {
        xray_trace_id(self.root)
    }

    /// The remote span context a receiver's span continues. Root-only: a context without a span
    /// id, which the SDK does not take as a parent but its parent-based sampler still reads.
    fn span_context(&self) -> SpanContext {
        // Unsampled only when the sender said so; `?` or nothing: this receiver decides, and it
        // traces every order.
        let flags = if self.sampled == Some(false) { TraceFlags::default() } else { TraceFlags::SAMPLED };
        SpanContext::new(self.root, self.parent.unwrap_or(SpanId::INVALID), flags, true, TraceState::default())
    }
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn parse_root(value: &str) -> Option<TraceId> {
    let mut parts = value.split('-');
    let (version, time, id) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || version != "1" || !is_hex(time, 8) || !is_hex(id, 24) {
        return None;
    }
    TraceId::from_hex(&format!("{time}{id}")).ok().filter(|t| *t != TraceId::INVALID)
}

fn parse_parent(value: &str) -> Option<SpanId> {
    if !is_hex(value, 16) {
        return None;
    }
    SpanId::from_hex(value).ok().filter(|s| *s != SpanId::INVALID)
}

fn xray_trace_id(id: TraceId) -> String {
    let hex = format!("{id:032x}");
    format!("1-{}-{}", &hex[..8], &hex[8..])
}

thread_local! {
    /// The trace id the next span started on this thread takes (see [`ContinuingIds`]).
    static NEXT_TRACE_ID: Cell<Option<TraceId>> = const { Cell::new(None) };
}

/// Runs `f` with `trace_id` (if any) handed to the next new trace started on this thread, and
/// withdraws it afterwards whether or not a span took it.
fn with_next_trace_id<T>(trace_id: Option<TraceId>, f: impl FnOnce() -> T) -> T {
    NEXT_TRACE_ID.with(|next| next.set(trace_id));
    let out = f();
    NEXT_TRACE_ID.with(|next| next.set(None));
    out
}

/// X-Ray ids (a trace id starts with the epoch seconds), except that a span started by
/// [`continue_trace`] for a Root-only header takes that header's trace id: the SDK has no other
/// way to start a root span in a given trace.
#[derive(Debug, Default)]
pub struct ContinuingIds {
    xray: XrayIdGenerator,
}

impl IdGenerator for ContinuingIds {
    fn new_trace_id(&self) -> TraceId {
        NEXT_TRACE_ID.with(|next| next.take()).unwrap_or_else(|| self.xray.new_trace_id())
    }
    fn new_span_id(&self) -> SpanId {
        self.xray.new_span_id()
    }
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

/// The trace id (`Root`) of a trace header, as written in it, if it is readable (see
/// [`TraceHeader::parse`] for what is read).
pub fn trace_id_in(header: &str) -> Option<&str> {
    TraceHeader::parse(header)?;
    header.split(';').find_map(|field| {
        let (key, value) = field.split_once('=')?;
        key.trim().eq_ignore_ascii_case("Root").then(|| value.trim())
    })
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
    use opentelemetry_aws::trace::xray_propagator::span_context_from_str;
    use opentelemetry_sdk::trace::{SpanData, SpanProcessor};
    use std::sync::{Arc, Mutex};

    const ROOT: &str = "1-5759e988-bd862e3fe1be46a994272793";
    const PARENT: &str = "53995c3f42cd8ad8";

    fn root() -> TraceId {
        TraceId::from_hex("5759e988bd862e3fe1be46a994272793").unwrap()
    }

    #[test]
    fn every_valid_header_form_is_read() {
        let parent = Some(SpanId::from_hex(PARENT).unwrap());
        #[rustfmt::skip]
        let cases: &[(&str, Option<SpanId>, Option<bool>)] = &[
            // Root only, as API Gateway and many producers send it.
            (&format!("Root={ROOT}"), None, None),
            (&format!("Root={ROOT};Sampled=1"), None, Some(true)),
            (&format!("Root={ROOT};Sampled=0"), None, Some(false)),
            (&format!("Root={ROOT};Sampled=?"), None, None),
            (&format!("Root={ROOT};Parent={PARENT}"), parent, None),
            (&format!("Root={ROOT};Parent={PARENT};Sampled=1"), parent, Some(true)),
            (&format!("Root={ROOT};Parent={PARENT};Sampled=0"), parent, Some(false)),
            (&format!("Root={ROOT};Parent={PARENT};Sampled=?"), parent, None),
            // Lineage (Lambda, SQS), Self (load balancers) and unknown keys are ignored.
            (&format!("Root={ROOT};Parent={PARENT};Sampled=1;Lineage=a87bd80c:1|68fd508a:5|c512fbe3:2"), parent, Some(true)),
            (&format!("Self=1-67891234-12456789abcdef012345678;Root={ROOT};Sampled=1"), None, Some(true)),
            (&format!("Root={ROOT};Sampled=1;CalledFrom=app;x=y=z"), None, Some(true)),
            // Any order, spaces around `;` and `=`, a trailing `;`, keys in any case.
            (&format!("Sampled=1;Parent={PARENT};Root={ROOT}"), parent, Some(true)),
            (&format!("Root = {ROOT} ; Parent = {PARENT} ; Sampled = 1"), parent, Some(true)),
            (&format!("  Root={ROOT};Sampled=1;  "), None, Some(true)),
            (&format!("root={ROOT};parent={PARENT};sampled=1"), parent, Some(true)),
            (&format!("Root={};Sampled=1", ROOT.to_uppercase()), None, Some(true)),
            // An unreadable Parent leaves the trace id readable: continued as a root segment.
            (&format!("Root={ROOT};Parent=garbage;Sampled=1"), None, Some(true)),
            (&format!("Root={ROOT};Parent=0000000000000000"), None, None),
            (&format!("Root={ROOT};Sampled=yes"), None, None),
        ];
        for (header, parent, sampled) in cases {
            let read = TraceHeader::parse(header).unwrap_or_else(|| panic!("{header:?} is a valid header"));
            assert_eq!(read, TraceHeader { root: root(), parent: *parent, sampled: *sampled }, "{header:?}");
            assert_eq!(read.trace_id(), ROOT, "{header:?}");
            assert_eq!(trace_id_in(header).map(str::to_ascii_lowercase).as_deref(), Some(ROOT), "{header:?}");
        }
    }

    #[test]
    fn only_a_missing_or_unreadable_root_is_refused() {
        for header in [
            "",
            "   ",
            "Sampled=1",
            &format!("Parent={PARENT};Sampled=1"),
            "Root=",
            "Root=1-bogus-bad",
            "Root=1-5759e988-bd862e3fe1be46a99427279",     // 23 hex digits
            "Root=1-5759e988-bd862e3fe1be46a9942727933",   // 25
            "Root=1-5759e98-bd862e3fe1be46a994272793",     // 7 for the time
            "Root=2-5759e988-bd862e3fe1be46a994272793",    // version 2 does not exist
            "Root=1-5759e988-bd862e3fe1be46a99427279g",    // not hex
            "Root=1-5759e988-bd862e3fe1be46a994272793-1",  // a fourth part
            "Root=1-00000000-000000000000000000000000",    // the invalid id
            "Root=15759e988bd862e3fe1be46a994272793",
            "Root 1-5759e988-bd862e3fe1be46a994272793",
            "garbage",
        ] {
            assert_eq!(TraceHeader::parse(header), None, "{header:?}");
            assert_eq!(trace_id_in(header), None, "{header:?}");
        }
    }

    /// The spans a tracer provider with the functions' id generator ended.
    #[derive(Debug, Default, Clone)]
    struct Ended(Arc<Mutex<Vec<SpanData>>>);

    impl SpanProcessor for Ended {
        fn on_start(&self, _span: &mut opentelemetry_sdk::trace::Span, _cx: &Context) {}
        fn on_end(&self, span: SpanData) {
            self.0.lock().unwrap().push(span);
        }
        fn force_flush(&self) -> opentelemetry_sdk::error::OTelSdkResult {
            Ok(())
        }
        fn shutdown_with_timeout(&self, _timeout: std::time::Duration) -> opentelemetry_sdk::error::OTelSdkResult {
            Ok(())
        }
    }

    /// `continue_trace` on `header` under the functions' tracer setup: the span's trace id as
    /// logged, the header it passes on, and what was recorded (`None`: not sampled).
    fn continued(header: Option<&str>) -> (Option<String>, Option<String>, Option<SpanData>) {
        let ended = Ended::default();
        let provider = SdkTracerProvider::builder().with_id_generator(ContinuingIds::default()).with_span_processor(ended.clone()).build();
        let subscriber = tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        let (id, passed_on) = tracing::subscriber::with_default(subscriber, || {
            let span = continue_trace("test", header);
            let out = (trace_id_of(&span), span.in_scope(current_header));
            drop(span);
            out
        });
        let recorded = ended.0.lock().unwrap().pop();
        (id, passed_on, recorded)
    }

    #[test]
    fn a_root_only_header_continues_its_trace_as_a_root_segment() {
        for header in [format!("Root={ROOT};Sampled=1"), format!("Root={ROOT}"), format!("Root = {ROOT} ;Sampled=?;Lineage=a87bd80c:1")] {
            let (id, passed_on, recorded) = continued(Some(&header));
            assert_eq!(id.as_deref(), Some(ROOT), "{header}");
            let span = recorded.unwrap_or_else(|| panic!("{header}: sampled, so recorded"));
            assert_eq!(span.span_context.trace_id(), root(), "{header}");
            assert_eq!(span.parent_span_id, SpanId::INVALID, "{header}: a root segment, not the child of a segment that does not exist");
            // What it passes on makes the next hop its child, in the same trace.
            let next = TraceHeader::parse(&passed_on.unwrap()).unwrap();
            assert_eq!((next.root, next.parent, next.sampled), (root(), Some(span.span_context.span_id()), Some(true)), "{header}");
        }
    }

    #[test]
    fn a_header_with_a_parent_makes_a_child_segment() {
        let (id, passed_on, recorded) = continued(Some(&format!("Root={ROOT};Parent={PARENT};Sampled=1;Lineage=a87bd80c:1")));
        assert_eq!(id.as_deref(), Some(ROOT));
        let span = recorded.expect("recorded");
        assert_eq!((span.span_context.trace_id(), span.parent_span_id), (root(), SpanId::from_hex(PARENT).unwrap()));
        assert!(passed_on.unwrap().starts_with(&format!("Root={ROOT};Parent={:016x};Sampled=1", span.span_context.span_id())));
    }

    #[test]
    fn sampled_0_continues_the_trace_unrecorded() {
        for header in [format!("Root={ROOT};Parent={PARENT};Sampled=0"), format!("Root={ROOT};Sampled=0")] {
            let (id, passed_on, recorded) = continued(Some(&header));
            assert_eq!(id.as_deref(), Some(ROOT), "{header}");
            assert!(recorded.is_none(), "{header}: the sender decided not to sample");
            let next = TraceHeader::parse(&passed_on.unwrap()).unwrap();
            assert_eq!((next.root, next.sampled), (root(), Some(false)), "{header}");
        }
    }

    #[test]
    fn no_header_or_an_unreadable_one_starts_a_new_trace_and_root_only_ids_do_not_leak() {
        let (first, _, _) = continued(Some(&format!("Root={ROOT}")));
        assert_eq!(first.as_deref(), Some(ROOT));
        for header in [None, Some("Root=1-bogus-bad;Sampled=1"), Some("")] {
            let (id, _, recorded) = continued(header);
            let id = id.expect("a new trace");
            assert_ne!(id, ROOT, "{header:?}");
            assert!(TraceHeader::parse(&format!("Root={id}")).is_some(), "{id} is an X-Ray trace id");
            assert_eq!(recorded.expect("recorded").parent_span_id, SpanId::INVALID);
        }
    }

    #[test]
    fn the_daemon_address_is_read_in_both_forms() {
        assert_eq!(daemon_address("127.0.0.1:2000"), Some("127.0.0.1:2000".parse().unwrap()));
        assert_eq!(daemon_address("tcp:169.254.79.129:2000 udp:169.254.79.129:2000"), Some("169.254.79.129:2000".parse().unwrap()));
        assert_eq!(daemon_address("nonsense"), None);
    }

    #[test]
    fn the_exporter_is_otlp_unless_the_daemon_or_none_is_asked_for() {
        assert_eq!(Exporter::parse(None), Exporter::Otlp);
        assert_eq!(Exporter::parse(Some("otlp")), Exporter::Otlp);
        assert_eq!(Exporter::parse(Some(" OTLP ")), Exporter::Otlp);
        assert_eq!(Exporter::parse(Some("daemon")), Exporter::Daemon);
        assert_eq!(Exporter::parse(Some("none")), Exporter::None);
        assert_eq!(Exporter::parse(Some("zipkin")), Exporter::Otlp);
    }

    #[test]
    fn a_new_trace_header_is_a_valid_xray_header() {
        let header = current_header_or_new();
        let context = span_context_from_str(&header).expect("parses");
        assert!(context.is_valid() && context.is_sampled(), "{header}");
        assert_eq!(trace_id_in(&header).unwrap().len(), 35, "{header}");
    }
}
