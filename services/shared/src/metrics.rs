//! Metrics as CloudWatch Embedded Metric Format: one JSON line on stdout per data point, which
//! Lambda's log pipeline turns into CloudWatch metrics (namespace `taskflow`) without an API call
//! on the request path. Locally the same lines land in the function's log file.

use serde_json::{json, Map, Value};

pub const NAMESPACE: &str = "taskflow";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Milliseconds,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Milliseconds => "Milliseconds",
        }
    }
}

/// The EMF document for one value of `name`, with `dimensions` (name, value) as its one
/// dimension set.
pub fn document(name: &str, value: f64, unit: Unit, dimensions: &[(&str, &str)], at_millis: i64) -> Value {
    let mut doc = Map::new();
    doc.insert(
        "_aws".into(),
        json!({
            "Timestamp": at_millis,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [dimensions.iter().map(|(k, _)| *k).collect::<Vec<_>>()],
                "Metrics": [{"Name": name, "Unit": unit.as_str()}],
            }],
        }),
    );
    for (k, v) in dimensions {
        doc.insert((*k).to_string(), Value::from(*v));
    }
    doc.insert(name.to_string(), Value::from(value));
    Value::Object(doc)
}

/// Writes one data point (see [`document`]).
pub fn put(name: &str, value: f64, unit: Unit, dimensions: &[(&str, &str)]) {
    let doc = document(name, value, unit, dimensions, chrono::Utc::now().timestamp_millis());
    println!("{doc}");
}

pub fn count(name: &str, dimensions: &[(&str, &str)]) {
    put(name, 1.0, Unit::Count, dimensions);
}

pub fn millis(name: &str, elapsed: std::time::Duration, dimensions: &[(&str, &str)]) {
    put(name, elapsed.as_secs_f64() * 1000.0, Unit::Milliseconds, dimensions);
}

/// Runs `work` and records how long it took as `name` (milliseconds).
pub async fn timed<F: std::future::Future>(name: &str, dimensions: &[(&str, &str)], work: F) -> F::Output {
    let started = std::time::Instant::now();
    let output = work.await;
    millis(name, started.elapsed(), dimensions);
    output
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_data_point_is_a_valid_emf_document() {
        let doc = document("OrdersCompleted", 1.0, Unit::Count, &[("Kind", "purchase")], 1_700_000_000_000);
        let directive = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "taskflow");
        assert_eq!(directive["Dimensions"], json!([["Kind"]]));
        assert_eq!(directive["Metrics"][0], json!({"Name": "OrdersCompleted", "Unit": "Count"}));
        assert_eq!(doc["_aws"]["Timestamp"], 1_700_000_000_000i64);
        // Every dimension and metric the directive names is a top-level member.
        assert_eq!(doc["Kind"], "purchase");
        assert_eq!(doc["OrdersCompleted"], 1.0);
    }
}
