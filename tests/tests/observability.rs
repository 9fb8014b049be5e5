//! What an operator reads: one trace per order across every hop, and logs without secrets.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use taskflow::trace::{self, Span};
use taskflow_contracts::TaskStatus;
use taskflow_e2e::{log_dir, order_id, purchase, refund, Run};

/// Polls the X-Ray API until the order's trace has a segment from each of `services` and
/// `publishes` publisher segments (one per status change), or 20 s pass.
async fn trace_of(run: &Run, order_id: &str, services: &[&str], publishes: usize) -> Vec<Span> {
    let client = taskflow::client::Client::connect(taskflow_e2e::stack()).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let spans = trace::of_order(&client, order_id).await.unwrap_or_default();
        let by_service = trace::segments_by_service(&spans);
        let complete = services.iter().all(|s| by_service.contains_key(*s)) && by_service.get("publisher").copied().unwrap_or(0) >= publishes;
        if complete || Instant::now() > deadline {
            let _ = run;
            return spans;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_is_one_trace_rooted_at_the_intake() {
    let run = Run::new().await;
    let sku = run.new_sku("TRACED", 5, 700).await;
    let id = order_id("traced");
    run.submit(purchase(&id, "tracy", &[(&sku, 1, 700)], "tok_approve")).await;
    let events = run.events_until_terminal(&id).await;
    assert_eq!(events.last().unwrap().status, TaskStatus::Completed, "{events:?}");

    let spans = trace_of(&run, &id, &["intake", "purchase", "notification", "publisher"], events.len()).await;
    let task = run.task(&id).await;
    let trace_id = task.trace_id.clone().expect("the task record keeps its trace id");

    // One trace id across every segment and subsegment.
    let ids: BTreeSet<&str> = spans.iter().map(|s| s.trace_id.as_str()).collect();
    assert_eq!(ids, BTreeSet::from([trace_id.as_str()]), "{}", trace::waterfall(&spans));

    // Every service took part, and every status event was published in the trace.
    let by_service = trace::segments_by_service(&spans);
    for service in ["intake", "purchase", "notification", "publisher"] {
        assert!(by_service.contains_key(service), "no {service} segment: {by_service:?}\n{}", trace::waterfall(&spans));
    }
    assert!(by_service["publisher"] >= events.len(), "{} status events, {by_service:?}", events.len());

    // The parent links form one tree, rooted at the intake's segment.
    let tree = trace::tree(&spans);
    assert_eq!(tree.len(), spans.len(), "every span is in the tree");
    let roots: Vec<&Span> = tree.iter().filter(|(depth, _)| *depth == 0).map(|(_, s)| *s).collect();
    assert_eq!(roots.len(), 1, "one root, not {}:\n{}", roots.len(), trace::waterfall(&spans));
    assert!(roots[0].segment && roots[0].name == "intake", "root is {:?}", roots[0]);
    let ids_in_trace: BTreeSet<&str> = spans.iter().map(|s| s.id.as_str()).collect();
    for span in spans.iter().filter(|s| s.id != roots[0].id) {
        let parent = span.parent_id.as_deref().unwrap_or_default();
        assert!(ids_in_trace.contains(parent), "{} ({}) has a parent outside the trace: {parent:?}", span.name, span.id);
    }

    // The AWS calls are there as subsegments of the work that made them.
    let calls: BTreeSet<(String, String)> =
        spans.iter().filter(|s| !s.segment).filter_map(|s| s.operation.clone().map(|op| (s.name.clone(), op))).collect();
    for (service, operation) in [("SFN", "StartExecution"), ("DynamoDB", "UpdateItem"), ("SFN", "SendTaskSuccess"), ("EventBridge", "PutEvents"), ("S3", "PutObject")] {
        assert!(calls.contains(&(service.to_string(), operation.to_string())), "no {service} {operation} call in {calls:?}");
    }
    println!("{}", trace::waterfall(&spans));
    run.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_log_line_holds_a_task_token_or_a_payment_token() {
    let run = Run::new().await;
    let sku = run.new_sku("SECRET", 10, 900).await;
    // A full run: approved, declined, refunded; each path logs differently.
    let (bought, declined, refunded) = (order_id("secret-buy"), order_id("secret-decline"), order_id("secret-refund"));
    run.submit(purchase(&bought, "sam", &[(&sku, 2, 900)], "tok_approve")).await;
    run.submit(purchase(&declined, "sam", &[(&sku, 1, 900)], "tok_decline")).await;
    run.all_until_terminal(&[bought.clone(), declined.clone()]).await;
    run.submit(refund(&refunded, "sam", &bought, Some(900))).await;
    assert_eq!(run.events_until_terminal(&refunded).await.last().unwrap().status, TaskStatus::Completed);

    // The task tokens the state machine handed out for these orders, from execution history.
    let sfn = aws_sdk_sfn::Client::new(&run.aws);
    let mut task_tokens = BTreeSet::new();
    for id in [&bought, &declined, &refunded] {
        let arn = run.execution_of(&run.task(id).await).expect("a workflow ran for the task");
        let history = sfn.get_execution_history().execution_arn(arn).send().await.unwrap();
        for event in history.events() {
            let Some(parameters) = event.task_scheduled_event_details().map(|d| d.parameters()) else { continue };
            let parameters: serde_json::Value = serde_json::from_str(parameters).unwrap();
            let body = &parameters["MessageBody"];
            let body: serde_json::Value = body.as_str().map(|b| serde_json::from_str(b).unwrap()).unwrap_or_else(|| body.clone());
            if let Some(token) = body["taskToken"].as_str() {
                task_tokens.insert(token.to_string());
            }
        }
    }
    assert!(task_tokens.len() >= 5, "expected the tokens of every callback step, found {}", task_tokens.len());

    // Let the last lines reach the files.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut secrets: Vec<&str> = task_tokens.iter().map(String::as_str).collect();
    secrets.extend(["tok_approve", "tok_decline"]);
    let mut lines = 0;
    let mut mentioned = BTreeSet::new();
    for entry in std::fs::read_dir(log_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().is_some_and(|n| n == "moto.log") {
            continue; // the emulator's request log is AWS's side, not ours
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for line in text.lines() {
            lines += 1;
            for id in [&bought, &declined, &refunded] {
                if line.contains(&format!("\"order_id\":\"{id}\"")) {
                    mentioned.insert(id.clone());
                }
            }
            for secret in &secrets {
                assert!(!line.contains(secret), "{} logs a secret ({}…): {line}", path.display(), &secret[..secret.len().min(12)]);
            }
        }
    }
    // The scan read the lines these orders produced (with their order ids), not nothing.
    assert!(lines > 0 && mentioned.len() == 3, "{lines} lines scanned; orders seen in them: {mentioned:?}");
    run.close().await;
}

/// A new X-Ray trace id of now, as a producer makes one (`1-` + 8 hex digits of epoch seconds +
/// `-` + 24 hex digits).
fn producer_trace_id() -> String {
    format!("1-{:08x}-{}", chrono::Utc::now().timestamp(), &uuid::Uuid::new_v4().simple().to_string()[..24])
}

/// An order event as the bus's rule delivers it to the intake queue.
fn delivered(detail: serde_json::Value) -> String {
    serde_json::json!({
        "version": "0", "id": uuid::Uuid::new_v4().to_string(), "detail-type": "OrderSubmitted", "source": "taskflow.orders",
        "account": "123456789012", "time": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "region": "us-east-1", "resources": [], "detail": detail,
    })
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_valid_trace_header_continues_the_producers_trace() {
    let run = Run::new().await;
    let sku = run.new_sku("HEADER", 20, 700).await;
    let sqs = aws_sdk_sqs::Client::new(&run.aws);
    let intake = taskflow_e2e::stack().output("IntakeQueueUrl").unwrap().to_string();
    const PARENT: &str = "53995c3f42cd8ad8";
    // (label, header with `{root}` for the producer's trace id, whether it continues it)
    let variants = [
        ("root-only", "Root={root};Sampled=1", true),
        ("root-bare", "Root={root}", true),
        ("parent", "Root={root};Parent=53995c3f42cd8ad8;Sampled=1", true),
        ("spaces", " Root = {root} ; Sampled = 1 ; ", true),
        ("lineage", "Root={root};Sampled=1;Lineage=a87bd80c:1|68fd508a:5", true),
        ("any-order", "Sampled=?;Self=1-67891234-12456789abcdef012345678;Root={root}", true),
        ("unsampled", "Root={root};Sampled=0", true),
        ("bad-root", "Root=1-{root}x;Sampled=1", false),
    ];
    let mut orders = Vec::new();
    for (label, template, continues) in variants {
        let (id, root) = (order_id(&format!("hdr-{label}")), producer_trace_id());
        let header = template.replace("{root}", &root);
        // As SQS carries it from a producer: the AWSTraceHeader system attribute.
        sqs.send_message()
            .queue_url(&intake)
            .message_body(delivered(purchase(&id, "tracy", &[(&sku, 1, 700)], "tok_approve")))
            .message_system_attributes(
                aws_sdk_sqs::types::MessageSystemAttributeNameForSends::AwsTraceHeader,
                aws_sdk_sqs::types::MessageSystemAttributeValue::builder().data_type("String").string_value(&header).build().unwrap(),
            )
            .send()
            .await
            .unwrap();
        orders.push((label, id, root, continues));
    }
    // And through the bus: PutEvents' TraceHeader reaches the intake queue as AWSTraceHeader.
    let (bus_id, bus_root) = (order_id("hdr-bus"), producer_trace_id());
    let entry = aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
        .source("taskflow.orders")
        .detail_type("OrderSubmitted")
        .event_bus_name(taskflow_e2e::stack().output("EventBusName").unwrap())
        .detail(purchase(&bus_id, "tracy", &[(&sku, 1, 700)], "tok_approve").to_string())
        .trace_header(format!("Root={bus_root};Sampled=1"))
        .build();
    taskflow_e2e::publish(&run.aws, entry).await;
    orders.push(("bus", bus_id, bus_root, true));

    let ids: Vec<String> = orders.iter().map(|(_, id, _, _)| id.clone()).collect();
    let events = run.all_until_terminal(&ids).await;
    for (label, id, root, continues) in &orders {
        assert_eq!(events[id].last().unwrap().status, TaskStatus::Completed, "{label}: {:?}", events[id]);
        let trace_id = run.task(id).await.trace_id.expect("the task keeps its trace id");
        if *continues {
            assert_eq!(&trace_id, root, "{label}: the producer's trace is continued");
        } else {
            assert_ne!(&trace_id, root, "{label}");
            assert!(taskflow_shared::telemetry::TraceHeader::parse(&format!("Root={trace_id}")).is_some(), "{label}: a new X-Ray trace id, {trace_id}");
        }
    }

    // Root only: the whole order is recorded in the producer's trace, rooted at the intake's
    // segment (a root segment of that trace: there is no parent segment to point at).
    let (_, id, root, _) = &orders[0];
    let spans = trace_of(&run, id, &["intake", "purchase", "notification", "publisher"], events[id].len()).await;
    let ids_in_trace: BTreeSet<&str> = spans.iter().map(|s| s.trace_id.as_str()).collect();
    assert_eq!(ids_in_trace, BTreeSet::from([root.as_str()]), "{}", trace::waterfall(&spans));
    let by_service = trace::segments_by_service(&spans);
    for service in ["intake", "purchase", "notification", "publisher"] {
        assert!(by_service.contains_key(service), "no {service} segment: {by_service:?}\n{}", trace::waterfall(&spans));
    }
    let roots: Vec<&Span> = trace::tree(&spans).into_iter().filter(|(depth, _)| *depth == 0).map(|(_, s)| s).collect();
    assert!(roots.len() == 1 && roots[0].name == "intake" && roots[0].parent_id.is_none(), "{}", trace::waterfall(&spans));

    // With a Parent: the intake's segment is that segment's child.
    let (_, id, root, _) = orders.iter().find(|o| o.0 == "parent").unwrap();
    let spans = trace_of(&run, id, &["intake"], 0).await;
    let intake_segment = spans.iter().find(|s| s.segment && s.name == "intake").expect("an intake segment");
    assert_eq!((intake_segment.trace_id.as_str(), intake_segment.parent_id.as_deref()), (root.as_str(), Some(PARENT)));
    run.close().await;
}

/// One OTLP export of one span of trace `trace_id` (32 hex digits), as protobuf.
fn export_of(trace_id: &str) -> Vec<u8> {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    use prost::Message;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
    let span = Span {
        trace_id: (0..16).map(|i| u8::from_str_radix(&trace_id[2 * i..2 * i + 2], 16).unwrap()).collect(),
        span_id: vec![1, 2, 3, 4, 5, 6, 7, 8],
        name: "signature-check".into(),
        kind: 2,
        start_time_unix_nano: now - 1_000_000,
        end_time_unix_nano: now,
        ..Default::default()
    };
    let service = KeyValue { key: "service.name".into(), value: Some(AnyValue { value: Some(any_value::Value::StringValue("signature-check".into())) }), ..Default::default() };
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource { attributes: vec![service], ..Default::default() }),
            scope_spans: vec![ScopeSpans { spans: vec![span], ..Default::default() }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

/// A POST of `body` to `url` with `headers`, over plain TCP: the answer's status.
async fn post(url: &str, headers: &http::HeaderMap, body: &[u8]) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_at(rest.find('/').unwrap());
    let mut request = format!("POST {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for (name, value) in headers {
        request.push_str(&format!("{name}: {}\r\n", value.to_str().unwrap()));
    }
    request.push_str("\r\n");
    let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut answer)).await.unwrap().unwrap();
    String::from_utf8_lossy(&answer).split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// The local X-Ray OTLP endpoint (the CLI's, on this stack's emulator) verifies SigV4 as X-Ray
/// does: unsigned, signed with a wrong secret or an unknown key, or with another body than the
/// one signed is 403 and nothing is stored; the same request signed right is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_otlp_endpoint_stores_only_requests_signed_right_over_the_body_sent() {
    use aws_sdk_s3::config::Credentials;
    let run = Run::new().await;
    let (_stop, stopped) = tokio::sync::watch::channel(false);
    let endpoint = taskflow::otlp::OtlpEndpoint::start(&run.aws, taskflow_e2e::stack().endpoint.as_deref().unwrap(), stopped).await.unwrap();
    let url = endpoint.url();
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let trace = |tail: &str| format!("{secs:08x}{tail}");
    let signed = |body: &[u8], key: &str, secret: &str| {
        let mut request = http::Request::post(&url).header("content-type", "application/x-protobuf").body(bytes::Bytes::copy_from_slice(body)).unwrap();
        taskflow_shared::otlp::sign(&mut request, &Credentials::new(key, secret, None, None, "test"), "us-east-1", std::time::SystemTime::now()).unwrap();
        request.headers().clone()
    };
    let (unsigned, wrong_secret, unknown_key, tampered, good) =
        (trace("a00000000000000000000001"), trace("a00000000000000000000002"), trace("a00000000000000000000003"), trace("a00000000000000000000004"), trace("a00000000000000000000005"));
    let mut plain = http::HeaderMap::new();
    plain.insert("content-type", "application/x-protobuf".parse().unwrap());
    assert_eq!(post(&url, &plain, &export_of(&unsigned)).await, 403, "unsigned");
    // (Each body made once: an export carries the time it was made.)
    let body = export_of(&wrong_secret);
    assert_eq!(post(&url, &signed(&body, "test", "not-the-secret"), &body).await, 403, "wrong secret");
    let body = export_of(&unknown_key);
    assert_eq!(post(&url, &signed(&body, "AKIAUNKNOWN", "x"), &body).await, 403, "unknown key");
    let body = export_of(&good);
    assert_eq!(post(&url, &signed(&body, "test", "test"), &export_of(&tampered)).await, 403, "another body than signed");
    assert_eq!(post(&url, &signed(&body, "test", "test"), &body).await, 200, "signed right");
    let xray_id = |t: &str| format!("1-{}-{}", &t[..8], &t[8..]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while trace::documents(&run.aws, &xray_id(&good)).await.unwrap_or_default().is_empty() {
        assert!(Instant::now() < deadline, "the signed request's span is stored");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    for refused in [&unsigned, &wrong_secret, &unknown_key, &tampered] {
        assert!(trace::documents(&run.aws, &xray_id(refused)).await.unwrap_or_default().is_empty(), "{refused} stored");
    }
}
