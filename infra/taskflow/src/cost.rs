//! The cost model's arithmetic: AWS list prices (`bench/prices.json`) times the billed units one
//! order uses, in dollars per million orders. `make bench` measures the units on the local stack
//! (`bench/src/cost.rs`); the console prices what the bench last measured
//! (`target/bench/bench.json`) with the same code.

use anyhow::{Context, Result};
use serde_json::{json, Value};
use std::collections::BTreeMap;

pub struct Prices {
    pub as_of: String,
    per_unit: BTreeMap<String, f64>,
}

impl Prices {
    pub fn load(file: &std::path::Path) -> Result<Prices> {
        Prices::parse(&std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?)
    }

    /// Prices from the text of a `prices.json`.
    pub fn parse(text: &str) -> Result<Prices> {
        let doc: Value = serde_json::from_str(text)?;
        let per_unit = serde_json::from_value(doc["perUnit"].clone()).context("prices.json perUnit")?;
        Ok(Prices { as_of: doc["asOf"].as_str().unwrap_or("?").to_string(), per_unit })
    }

    pub fn of(&self, item: &str) -> Result<f64> {
        self.per_unit.get(item).copied().with_context(|| format!("prices.json has no price for {item}"))
    }
}

/// What one order uses on AWS, in billed units.
#[derive(Debug, Clone, Default)]
pub struct Units {
    pub transitions: f64,
    pub lambda_requests: f64,
    pub lambda_gb_seconds: f64,
    pub sqs_requests: f64,
    pub events: f64,
    pub write_units: f64,
    pub read_units: f64,
    pub s3_puts: f64,
    pub traces: f64,
}

impl Units {
    /// Dollars per million orders, by item and in total.
    pub fn cost_per_million(&self, prices: &Prices) -> Result<(f64, Value)> {
        let items = [
            ("stepFunctions", self.transitions * prices.of("stepFunctionsStandardStateTransition")?),
            ("lambda", self.lambda_requests * prices.of("lambdaRequest")? + self.lambda_gb_seconds * prices.of("lambdaArm64GbSecond")?),
            ("sqs", self.sqs_requests * prices.of("sqsStandardRequest")?),
            ("eventBridge", self.events * prices.of("eventBridgeCustomEvent")?),
            ("dynamoDb", self.write_units * prices.of("dynamoDbWriteRequestUnit")? + self.read_units * prices.of("dynamoDbReadRequestUnit")?),
            ("s3", self.s3_puts * prices.of("s3StandardPut")?),
            ("xRay", self.traces * prices.of("xRayTraceRecorded")?),
        ];
        let total = items.iter().map(|(_, c)| c * 1e6).sum();
        Ok((total, items.iter().map(|(k, c)| (k.to_string(), json!(c * 1e6))).collect::<serde_json::Map<_, _>>().into()))
    }

    pub fn to_json(&self) -> Value {
        json!({
            "stateTransitions": self.transitions, "lambdaRequests": self.lambda_requests,
            "lambdaGbSeconds": self.lambda_gb_seconds, "sqsRequests": self.sqs_requests,
            "eventBridgeEvents": self.events, "dynamoDbWriteUnits": self.write_units,
            "dynamoDbReadUnits": self.read_units, "s3Puts": self.s3_puts, "xRayTraces": self.traces,
        })
    }
}

impl Units {
    /// The units as [`Units::to_json`] wrote them (the bench's `target/bench/bench.json`).
    pub fn from_json(value: &Value) -> Units {
        let f = |key: &str| value[key].as_f64().unwrap_or(0.0);
        Units {
            transitions: f("stateTransitions"),
            lambda_requests: f("lambdaRequests"),
            lambda_gb_seconds: f("lambdaGbSeconds"),
            sqs_requests: f("sqsRequests"),
            events: f("eventBridgeEvents"),
            write_units: f("dynamoDbWriteUnits"),
            read_units: f("dynamoDbReadUnits"),
            s3_puts: f("s3Puts"),
            traces: f("xRayTraces"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_read_back_as_written_and_price_the_same() {
        let prices = Prices::load(&crate::paths::project_root().join("bench/prices.json")).unwrap();
        let units = Units { transitions: 2.0, lambda_requests: 3.0, lambda_gb_seconds: 0.01, sqs_requests: 9.0, events: 4.0, write_units: 24.0, read_units: 10.0, s3_puts: 2.0, traces: 1.0 };
        let again = Units::from_json(&units.to_json());
        assert_eq!(units.cost_per_million(&prices).unwrap().0, again.cost_per_million(&prices).unwrap().0);
        // 2 transitions at $25 a million transitions is $50 of it.
        assert!(units.cost_per_million(&prices).unwrap().0 > 50.0);
    }
}
