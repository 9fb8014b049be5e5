//! The template's schedules, run by the local host: EventBridge invokes a function with a
//! `Scheduled Event` on its rule's `rate(…)`; the emulator runs no schedules (and the functions
//! are not in it), so the host does, with the same event. A control endpoint on loopback runs a
//! schedule's invocation at once (`POST {LocalControlUrl}/schedules/{rule}/run`, answering the
//! function's response), which is how `taskflow sweep` and the tests ask for a sweep now.

use crate::host::{Function, Outcome};
use crate::plan::ScheduleSpec;
use anyhow::{bail, Result};
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// The period of an EventBridge rate expression: `rate(N minute|minutes|hour|hours|day|days)`
/// (N ≥ 1; the singular unit only with 1, as EventBridge requires).
pub fn rate(expression: &str) -> Result<Duration> {
    let inner = expression.trim().strip_prefix("rate(").and_then(|e| e.strip_suffix(')'));
    let Some((n, unit)) = inner.and_then(|e| e.split_once(' ')) else { bail!("not a rate expression: {expression:?}") };
    let n: u64 = n.parse().map_err(|_| anyhow::anyhow!("not a rate expression: {expression:?}"))?;
    let seconds = match (n, unit) {
        (0, _) => bail!("a rate of 0: {expression:?}"),
        (1, "minute") | (2.., "minutes") => 60,
        (1, "hour") | (2.., "hours") => 3600,
        (1, "day") | (2.., "days") => 86400,
        _ => bail!("not a rate expression EventBridge takes: {expression:?}"),
    };
    Ok(Duration::from_secs(n * seconds))
}

/// The event EventBridge sends a scheduled rule's target.
pub fn scheduled_event(rule: &str, region: &str) -> Value {
    json!({
        "version": "0",
        "id": uuid::Uuid::new_v4().to_string(),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        "region": region,
        "resources": [format!("arn:aws:events:{region}:123456789012:rule/{rule}")],
        "detail": {},
    })
}

struct Scheduled {
    spec: ScheduleSpec,
    function: Arc<Function>,
    region: String,
}

impl Scheduled {
    async fn run(&self) -> Outcome {
        self.function.invoke(scheduled_event(&self.spec.rule, &self.region).to_string().into_bytes()).await
    }
}

/// Starts each schedule's clock and the control endpoint; returns the endpoint's URL.
pub async fn start(specs: &[ScheduleSpec], functions: &HashMap<String, Arc<Function>>, region: &str, shutdown: watch::Receiver<bool>) -> Result<String> {
    let mut table = HashMap::new();
    for spec in specs {
        let Some(function) = functions.get(&spec.function) else { bail!("schedule {} for unknown function {}", spec.rule, spec.function) };
        let period = rate(&spec.expression)?;
        let scheduled = Arc::new(Scheduled { spec: spec.clone(), function: function.clone(), region: region.to_string() });
        let (ticker, mut stop) = (scheduled.clone(), shutdown.clone());
        tokio::spawn(async move {
            let mut clock = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            loop {
                tokio::select! {
                    _ = clock.tick() => { ticker.run().await; }
                    _ = crate::process::stopped(&mut stop) => return,
                }
            }
        });
        table.insert(spec.rule.clone(), scheduled.clone());
        // The function's logical id names it too.
        table.entry(spec.function.clone()).or_insert(scheduled);
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let app = Router::new().route("/schedules/{name}/run", post(run_now)).with_state(Arc::new(table));
    let mut stop = shutdown;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).with_graceful_shutdown(async move { crate::process::stopped(&mut stop).await }).await;
    });
    Ok(url)
}

async fn run_now(State(table): State<Arc<HashMap<String, Arc<Scheduled>>>>, UrlPath(name): UrlPath<String>) -> Response {
    let Some(scheduled) = table.get(&name) else {
        return (StatusCode::NOT_FOUND, axum::Json(json!({"message": format!("no schedule {name}")}))).into_response();
    };
    match scheduled.run().await {
        Outcome::Response(body) => (StatusCode::OK, body).into_response(),
        Outcome::Error(error) => (StatusCode::BAD_GATEWAY, error).into_response(),
        Outcome::Crashed(why) => (StatusCode::BAD_GATEWAY, axum::Json(json!({"message": why}))).into_response(),
    }
}

/// Asks a running local stack's host to run a schedule now (`POST {control}/schedules/{name}/run`)
/// and returns the function's response.
pub async fn run(control_url: &str, name: &str) -> Result<Value> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = control_url.strip_prefix("http://").unwrap_or(control_url).trim_end_matches('/');
    let mut stream = tokio::net::TcpStream::connect(host).await?;
    let request = format!("POST /schedules/{name}/run HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    let response = String::from_utf8_lossy(&response).to_string();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status: u16 = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    if status != 200 {
        bail!("schedule {name} did not run: {status} {body}");
    }
    Ok(serde_json::from_str(body)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_expressions_are_read_as_eventbridge_reads_them() {
        assert_eq!(rate("rate(5 minutes)").unwrap(), Duration::from_secs(300));
        assert_eq!(rate("rate(1 hour)").unwrap(), Duration::from_secs(3600));
        for bad in ["rate(0 minutes)", "rate(1 minutes)", "rate(5 minute)", "cron(0 * * * ? *)", "rate(x minutes)"] {
            assert!(rate(bad).is_err(), "{bad}");
        }
    }
}
