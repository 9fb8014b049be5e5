//! Trace export, the OTLP exporter next to the X-Ray daemon exporter, in one run:
//! - cold start: a function binary spawned with `TRACE_EXPORTER=otlp` and with `daemon` (what
//!   each adds to init: the OTLP one starts its export thread, loads no credentials until the
//!   first flush);
//! - per invocation: one invocation's spans (a work segment and six AWS-call subsegments, with
//!   the attributes the SDK sets) ended and flushed as a function does, through the functions'
//!   own exporter set-ups (`taskflow_shared::otlp::processor`, `telemetry::daemon_span_exporter`),
//!   to a loopback OTLP endpoint that answers at once and to a loopback UDP socket. Wall time and
//!   process CPU time (the export thread included) per invocation, each minus the same spans with
//!   no exporter. On AWS the OTLP figure also pays the round trip to the regional endpoint (the
//!   flush waits for it, up to the bound); the daemon's UDP send does not wait for anything.

use anyhow::Result;
use opentelemetry::trace::{
    Span as _, SpanKind, TraceContextExt as _, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::SdkTracerProvider;
use std::time::{Duration, Instant};
// X-Ray ids, as the functions make them: the daemon exporter drops spans whose trace id does not
// start with a recent time.
use taskflow_shared::telemetry::ContinuingIds;

pub struct ExportCost {
    /// Median wall time an invocation's spans + flush take, minus no exporter (µs).
    pub wall_us: f64,
    /// Process CPU time per invocation, minus no exporter (µs).
    pub cpu_us: f64,
}

pub struct Figures {
    pub otlp: ExportCost,
    pub daemon: ExportCost,
    pub invocations: usize,
}

fn process_cpu() -> Duration {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let t = |tv: libc::timeval| {
        Duration::from_secs(tv.tv_sec as u64) + Duration::from_micros(tv.tv_usec as u64)
    };
    t(usage.ru_utime) + t(usage.ru_stime)
}

/// One invocation's spans, ended, then the provider flushed (as `Telemetry::flush` does).
fn invocation(provider: &SdkTracerProvider) {
    let tracer = provider.tracer("bench");
    let work = tracer
        .span_builder("purchase")
        .with_kind(SpanKind::Server)
        .with_attributes([KeyValue::new("order_id", "bench-order")])
        .start(&tracer);
    let cx = Context::current_with_span(work);
    for (service, method) in [
        ("DynamoDB", "GetItem"),
        ("DynamoDB", "TransactWriteItems"),
        ("S3", "PutObject"),
        ("DynamoDB", "UpdateItem"),
        ("SFN", "SendTaskSuccess"),
        ("SQS", "DeleteMessage"),
    ] {
        let mut call = tracer
            .span_builder(format!("{service}.{method}"))
            .with_kind(SpanKind::Client)
            .with_attributes([
                KeyValue::new("rpc.system", "aws-api"),
                KeyValue::new("rpc.service", service),
                KeyValue::new("rpc.method", method),
                KeyValue::new("aws.region", "us-east-1"),
                KeyValue::new("aws.request_id", "0123456789ABCDEF0123456789ABCDEF"),
            ])
            .start_with_context(&tracer, &cx);
        call.end();
    }
    cx.span().end();
    let _ = provider.force_flush();
}

/// (median wall µs, CPU µs) per invocation over `n`.
fn measure(provider: &SdkTracerProvider, n: usize) -> (f64, f64) {
    for _ in 0..n / 10 {
        invocation(provider); // warm: connections, credentials, allocations
    }
    let mut walls = Vec::with_capacity(n);
    let cpu = process_cpu();
    for _ in 0..n {
        let started = Instant::now();
        invocation(provider);
        walls.push(started.elapsed().as_secs_f64() * 1e6);
    }
    let cpu_us = (process_cpu() - cpu).as_secs_f64() * 1e6 / n as f64;
    walls.sort_by(f64::total_cmp);
    (walls[n / 2], cpu_us)
}

/// A loopback OTLP endpoint that takes every export at once (`200`, an empty
/// ExportTraceServiceResponse), on a runtime of its own.
static EXPORTS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn answering_endpoint() -> Result<String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let url = format!("http://{}/v1/traces", listener.local_addr()?);
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(async move {
            let app = axum::Router::new().route(
                "/v1/traces",
                axum::routing::post(|| async {
                    EXPORTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    (
                        [("content-type", "application/x-protobuf")],
                        Vec::<u8>::new(),
                    )
                }),
            );
            let listener = tokio::net::TcpListener::from_std(listener).expect("a listener");
            let _ = axum::serve(listener, app).await;
        });
    });
    Ok(url)
}

pub fn per_invocation(n: usize) -> Result<Figures> {
    let none = SdkTracerProvider::builder().with_id_generator(ContinuingIds::default()).build();
    let (none_wall, none_cpu) = measure(&none, n);

    // SAFETY of the environment: set before any other thread of this bench reads it.
    let config = taskflow_shared::otlp::OtlpConfig {
        endpoint: answering_endpoint()?,
        region: "us-east-1".into(),
        flush_bound: Duration::from_millis(500),
    };
    unsafe {
        std::env::set_var("AWS_ACCESS_KEY_ID", "bench");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "bench");
    }
    let processor = taskflow_shared::otlp::processor(&config).map_err(anyhow::Error::msg)?;
    let otlp = SdkTracerProvider::builder().with_id_generator(ContinuingIds::default())
        .with_span_processor(processor)
        .build();
    let (otlp_wall, otlp_cpu) = measure(&otlp, n);
    anyhow::ensure!(EXPORTS.load(std::sync::atomic::Ordering::Relaxed) >= n, "the OTLP endpoint got fewer exports than invocations");

    let socket = std::net::UdpSocket::bind("127.0.0.1:0")?; // the "daemon": kept, never read
    let daemon = SdkTracerProvider::builder().with_id_generator(ContinuingIds::default())
        .with_simple_exporter(taskflow_shared::telemetry::daemon_span_exporter(
            socket.local_addr()?,
        )?)
        .build();
    let (daemon_wall, daemon_cpu) = measure(&daemon, n);
    // The daemon exporter drops what it cannot translate, silently: check datagrams arrived.
    socket.set_nonblocking(true)?;
    let mut datagram = vec![0u8; 65_536];
    anyhow::ensure!(socket.recv(&mut datagram).is_ok(), "the daemon exporter sent nothing: the figure would measure nothing");
    drop(socket);

    Ok(Figures {
        otlp: ExportCost {
            wall_us: otlp_wall - none_wall,
            cpu_us: otlp_cpu - none_cpu,
        },
        daemon: ExportCost {
            wall_us: daemon_wall - none_wall,
            cpu_us: daemon_cpu - none_cpu,
        },
        invocations: n,
    })
}
