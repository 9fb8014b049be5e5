//! One order's trace: task record → trace id → BatchGetTraces → a tree of segments and
//! subsegments, drawn as a waterfall. The same on AWS (where X-Ray nests subsegments inside their
//! segment's document) and locally (where the emulator keeps every document as sent).

use anyhow::{bail, Context, Result};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};

/// One segment or subsegment.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    pub id: String,
    pub trace_id: String,
    pub parent_id: Option<String>,
    /// A segment (one unit of work of a service) rather than a subsegment (a call it made).
    pub segment: bool,
    /// The service (segments) or the called service (subsegments: DynamoDB, SQS, …).
    pub name: String,
    /// The AWS operation of a call (`GetItem`), if any.
    pub operation: Option<String>,
    pub start: f64,
    pub end: Option<f64>,
    pub status: &'static str,
}

/// Every span in `documents` (segment documents as BatchGetTraces returns them), nested
/// subsegments included, each with its parent.
pub fn spans(documents: &[String]) -> Result<Vec<Span>> {
    let mut out = Vec::new();
    for document in documents {
        let value: Value = serde_json::from_str(document).context("a segment document that is not JSON")?;
        collect(&value, None, None, &mut out)?;
    }
    // Sent twice (a retried datagram batch): one is enough.
    let mut seen = std::collections::HashSet::new();
    out.retain(|s| seen.insert(s.id.clone()));
    Ok(out)
}

fn collect(doc: &Value, parent: Option<&str>, trace: Option<&str>, out: &mut Vec<Span>) -> Result<()> {
    let id = doc["id"].as_str().context("a segment without an id")?.to_string();
    let trace_id = doc["trace_id"].as_str().or(trace).context("a segment without a trace id")?.to_string();
    let segment = parent.is_none() && doc["type"].as_str() != Some("subsegment");
    let status = if doc["fault"].as_bool() == Some(true) {
        "fault"
    } else if doc["throttle"].as_bool() == Some(true) {
        "throttle"
    } else if doc["error"].as_bool() == Some(true) {
        "error"
    } else if doc["in_progress"].as_bool() == Some(true) {
        "in progress"
    } else {
        "ok"
    };
    out.push(Span {
        id: id.clone(),
        trace_id: trace_id.clone(),
        parent_id: parent.map(str::to_string).or_else(|| doc["parent_id"].as_str().map(str::to_string)),
        segment,
        name: doc["name"].as_str().unwrap_or("?").to_string(),
        operation: doc["aws"]["operation"].as_str().map(str::to_string),
        start: doc["start_time"].as_f64().unwrap_or(0.0),
        end: doc["end_time"].as_f64(),
        status,
    });
    if let Some(children) = doc["subsegments"].as_array() {
        for child in children {
            collect(child, Some(&id), Some(&trace_id), out)?;
        }
    }
    Ok(())
}

/// The spans as a forest: each root (no parent in the trace) with its descendants, in start
/// order, with their depth.
pub fn tree(spans: &[Span]) -> Vec<(usize, &Span)> {
    let ids: std::collections::HashSet<&str> = spans.iter().map(|s| s.id.as_str()).collect();
    let mut children: HashMap<Option<&str>, Vec<&Span>> = HashMap::new();
    for span in spans {
        let parent = span.parent_id.as_deref().filter(|p| ids.contains(p));
        children.entry(parent).or_default().push(span);
    }
    for list in children.values_mut() {
        list.sort_by(|a, b| a.start.total_cmp(&b.start));
    }
    let mut out = Vec::new();
    fn walk<'a>(span: &'a Span, depth: usize, children: &HashMap<Option<&str>, Vec<&'a Span>>, out: &mut Vec<(usize, &'a Span)>) {
        out.push((depth, span));
        for child in children.get(&Some(span.id.as_str())).into_iter().flatten() {
            walk(child, depth + 1, children, out);
        }
    }
    for root in children.get(&None).into_iter().flatten() {
        walk(root, 0, &children, &mut out);
    }
    out
}

/// The waterfall: one line a span — service, operation, start offset, duration, status, bar.
pub fn waterfall(spans: &[Span]) -> String {
    let rows = tree(spans);
    let Some(t0) = spans.iter().map(|s| s.start).min_by(f64::total_cmp) else { return "no segments\n".into() };
    let t1 = spans.iter().map(|s| s.end.unwrap_or(s.start)).max_by(f64::total_cmp).unwrap_or(t0).max(t0 + 1e-3);
    const BAR: f64 = 40.0;
    let mut out = format!("{:<44} {:>9} {:>9}  {:<8} timeline ({:.0} ms)\n", "service / operation", "start ms", "ms", "status", (t1 - t0) * 1000.0);
    for (depth, span) in rows {
        let label = match &span.operation {
            Some(op) => format!("{}{} {}", "  ".repeat(depth), span.name, op),
            None => format!("{}{}", "  ".repeat(depth), span.name),
        };
        let start = span.start - t0;
        let duration = span.end.map(|e| e - span.start).unwrap_or(0.0);
        let from = (start / (t1 - t0) * BAR).floor() as usize;
        let width = ((duration / (t1 - t0) * BAR).ceil() as usize).max(1);
        let bar = format!("{}{}", " ".repeat(from.min(BAR as usize)), if span.segment { "█" } else { "▒" }.repeat(width));
        out.push_str(&format!(
            "{:<44} {:>9.1} {:>9.1}  {:<8} {}\n",
            truncate(&label, 44),
            start * 1000.0,
            duration * 1000.0,
            span.status,
            bar
        ));
    }
    out
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n { s.to_string() } else { s.chars().take(n - 1).collect::<String>() + "…" }
}

/// The segment documents of trace `trace_id`, from the X-Ray API.
pub async fn documents(aws: &aws_config::SdkConfig, trace_id: &str) -> Result<Vec<String>> {
    let client = aws_sdk_xray::Client::new(aws);
    let out = client
        .batch_get_traces()
        .trace_ids(trace_id)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("BatchGetTraces: {}", aws_sdk_xray::error::DisplayErrorContext(&e)))?;
    let mut documents = Vec::new();
    for trace in out.traces() {
        for segment in trace.segments() {
            documents.extend(segment.document().map(str::to_string));
        }
    }
    Ok(documents)
}

/// The spans of an order's trace, whose id its task record keeps.
pub async fn of_order(client: &crate::client::Client, order_id: &str) -> Result<Vec<Span>> {
    let Some(task) = client.task(order_id).await? else { bail!("no task for order {order_id}") };
    let Some(trace_id) = task.trace_id else { bail!("the task of {order_id} has no trace id (recorded before tracing)") };
    let spans = spans(&documents(&client.aws, &trace_id).await?)?;
    if spans.is_empty() {
        bail!("trace {trace_id} of {order_id} has no segments (yet): traces arrive a moment after the work");
    }
    Ok(spans)
}

/// How many spans each service (segment name) has.
pub fn segments_by_service(spans: &[Span]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for span in spans.iter().filter(|s| s.segment) {
        *out.entry(span.name.clone()).or_insert(0) += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_and_standalone_subsegments_make_the_same_tree() {
        let t = "1-5f000000-000000000000000000000001";
        // As AWS returns them: subsegments inside their segment.
        let nested = vec![
            format!(r#"{{"id":"a","trace_id":"{t}","name":"intake","start_time":1.0,"end_time":1.2,"subsegments":[{{"id":"b","name":"SFN","aws":{{"operation":"StartExecution"}},"start_time":1.1,"end_time":1.15}}]}}"#),
            format!(r#"{{"id":"c","trace_id":"{t}","parent_id":"a","name":"purchase","start_time":1.3,"end_time":1.5,"fault":true}}"#),
        ];
        // As the emulator keeps them: one document a span.
        let flat = vec![
            format!(r#"{{"id":"a","trace_id":"{t}","name":"intake","start_time":1.0,"end_time":1.2}}"#),
            format!(r#"{{"id":"b","trace_id":"{t}","type":"subsegment","parent_id":"a","name":"SFN","aws":{{"operation":"StartExecution"}},"start_time":1.1,"end_time":1.15}}"#),
            format!(r#"{{"id":"c","trace_id":"{t}","parent_id":"a","name":"purchase","start_time":1.3,"end_time":1.5,"fault":true}}"#),
        ];
        for docs in [nested, flat] {
            let spans = spans(&docs).unwrap();
            let rows: Vec<(usize, &str)> = tree(&spans).into_iter().map(|(d, s)| (d, s.id.as_str())).collect();
            assert_eq!(rows, vec![(0, "a"), (1, "b"), (1, "c")]);
            let text = waterfall(&spans);
            assert!(text.contains("SFN StartExecution"), "{text}");
            assert!(text.lines().any(|l| l.contains("purchase") && l.contains("fault")), "{text}");
        }
    }

    /// `taskflow trace --stack NAME`: X-Ray on AWS answers BatchGetTraces with each segment's
    /// document as a JSON string, subsegments nested inside it, and the services' own segments
    /// (Step Functions) in the same trace. The fixture is a BatchGetTraces response in the API
    /// reference's shape (X-Ray API Reference, "BatchGetTraces": `Traces[].Segments[].Document`)
    /// for an order exported over OTLP, written by hand (no AWS account here), served from a
    /// loopback port to the real SDK client.
    #[tokio::test]
    async fn the_aws_shape_of_a_trace_is_read_through_the_xray_api() {
        use axum::routing::post;
        const FIXTURE: &str = include_str!("fixtures/batch-get-traces.json");
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let recorded = seen.clone();
        let app = axum::Router::new().route(
            "/Traces",
            post(move |body: String| async move {
                recorded.lock().unwrap().push(body);
                ([("content-type", "application/json")], FIXTURE)
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let aws = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(endpoint)
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_xray::config::Credentials::new("AKIDEXAMPLE", "secret", None, None, "test"))
            .load()
            .await;
        let trace_id = "1-6749a3c0-5f1e2d3c4b5a69788796a5b4";
        let documents = documents(&aws, trace_id).await.unwrap();
        assert!(seen.lock().unwrap()[0].contains(trace_id), "BatchGetTraces asked for the order's trace");
        assert_eq!(documents.len(), 3);
        let spans = spans(&documents).unwrap();
        assert_eq!(spans.len(), 8, "3 segments and their 5 nested subsegments");
        let rows: Vec<(usize, &str)> = tree(&spans).into_iter().map(|(d, s)| (d, s.name.as_str())).collect();
        assert_eq!(
            rows,
            vec![(0, "intake"), (1, "DynamoDB"), (1, "SFN"), (2, "taskflow-prod-purchase"), (3, "SQS"), (4, "purchase"), (5, "S3"), (5, "SFN")],
            "one tree from the intake down, through Step Functions' own segment"
        );
        let by_service = segments_by_service(&spans);
        assert_eq!(by_service.get("purchase"), Some(&1));
        let text = waterfall(&spans);
        assert!(text.lines().any(|l| l.contains("purchase") && l.contains("fault")), "{text}");
        assert!(text.contains("SFN SendTaskSuccess"), "{text}");
    }
}
