//! What the deploy step hands the local host: the stack's outputs, the functions to run and the
//! event sources to feed them from — all read from `infra/template.yaml` by `infra/local/deploy.py`.

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeployPlan {
    pub stack_name: String,
    pub outputs: BTreeMap<String, String>,
    pub functions: Vec<FunctionSpec>,
    pub event_sources: Vec<EventSourceSpec>,
    /// The HTTP API's routes (the functions' `HttpApi` events), served by the local gateway.
    #[serde(default)]
    pub http_routes: Vec<HttpRouteSpec>,
    /// The functions' `Schedule` events (rules with a rate and a function target), run by the host.
    #[serde(default)]
    pub schedules: Vec<ScheduleSpec>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleSpec {
    /// Logical id of the rule.
    pub rule: String,
    /// Logical id of the function invoked.
    pub function: String,
    /// `rate(…)`.
    pub expression: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteSpec {
    /// Logical id of the function invoked.
    pub function: String,
    pub method: String,
    /// With `{name}` path parameters, as in the template.
    pub path: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FunctionSpec {
    pub logical_id: String,
    pub binary: String,
    pub name: String,
    pub timeout: u64,
    pub memory_size: u64,
    pub environment: BTreeMap<String, String>,
    /// The function's own access key (its execution role's identity, registered with the
    /// emulator by the deploy step): every call it makes, and every call its event sources make
    /// for it, is checked against its role (`infra/local/iam.py`).
    pub access_key_id: String,
    pub secret_access_key: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventSourceSpec {
    /// Logical id of the function fed.
    pub function: String,
    pub source_arn: String,
    pub batch_size: u32,
    pub report_batch_item_failures: bool,
    pub starting_position: Option<String>,
    /// -1: retry until the record expires (AWS); the host caps it.
    pub maximum_retry_attempts: i64,
    /// Streams: split a batch in two when the function fails, and retry each half.
    #[serde(default)]
    pub bisect_batch_on_function_error: bool,
    pub on_failure_arn: Option<String>,
}

impl DeployPlan {
    /// This plan with its DynamoDB stream event sources reading the streams of `other`, the
    /// same template deployed to the emulator process that serves DynamoDB (see
    /// [`crate::local`]): a stream's ARN carries its table's creation time, so each process
    /// names the stream of the same table differently. Event sources are matched by position
    /// and function (both plans come from one template); anything else differing is an error.
    pub fn with_streams_of(mut self, other: &DeployPlan) -> Result<DeployPlan> {
        if self.event_sources.len() != other.event_sources.len() {
            bail!("the two deployments have {} and {} event sources", self.event_sources.len(), other.event_sources.len());
        }
        for (mine, theirs) in self.event_sources.iter_mut().zip(&other.event_sources) {
            if mine.function != theirs.function {
                bail!("event sources differ between the two deployments: {} and {}", mine.function, theirs.function);
            }
            if is_dynamodb_stream(&mine.source_arn) {
                if !is_dynamodb_stream(&theirs.source_arn) {
                    bail!("{} reads {} in one deployment and {} in the other", mine.function, mine.source_arn, theirs.source_arn);
                }
                mine.source_arn = theirs.source_arn.clone();
            }
        }
        Ok(self)
    }
}

/// `arn:aws:dynamodb:REGION:ACCOUNT:table/NAME/stream/LABEL`.
fn is_dynamodb_stream(arn: &str) -> bool {
    arn.starts_with("arn:aws:dynamodb:") && arn.contains("/stream/")
}

/// Runs the deploy script against the emulator at `endpoint`.
/// `remove_grants` (`ROLE:service:Action[:RESOURCE_LOGICAL_ID]`) takes actions out of the
/// template's roles first, to prove that a missing grant is refused.
pub async fn deploy(
    root: &Path,
    endpoint: &str,
    region: &str,
    stack_name: &str,
    parameters: &BTreeMap<String, String>,
    remove_grants: &[String],
) -> Result<DeployPlan> {
    let python = crate::paths::venv_bin(root, "python");
    let mut cmd = crate::process::command(&python);
    cmd.arg(root.join("infra/local/deploy.py"));
    for (key, value) in parameters {
        cmd.arg(format!("--parameter={key}={value}"));
    }
    for grant in remove_grants {
        cmd.arg(format!("--remove-grant={grant}"));
    }
    let output = cmd
        .args(["--endpoint", endpoint, "--region", region, "--stack-name", stack_name])
        .arg("--template")
        .arg(root.join("infra/template.yaml"))
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .output()
        .await
        .with_context(|| format!("running {}", python.display()))?;
    if !output.status.success() {
        bail!("deploying the template failed:\n{}", String::from_utf8_lossy(&output.stderr));
    }
    serde_json::from_slice(&output.stdout).context("reading the deploy plan")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(sources: &[(&str, &str)]) -> DeployPlan {
        DeployPlan {
            stack_name: "s".into(),
            outputs: BTreeMap::new(),
            functions: Vec::new(),
            event_sources: sources
                .iter()
                .map(|(function, arn)| EventSourceSpec {
                    function: function.to_string(),
                    source_arn: arn.to_string(),
                    batch_size: 10,
                    report_batch_item_failures: true,
                    starting_position: None,
                    maximum_retry_attempts: -1,
                    bisect_batch_on_function_error: false,
                    on_failure_arn: None,
                })
                .collect(),
            http_routes: Vec::new(),
            schedules: Vec::new(),
        }
    }

    const QUEUE: &str = "arn:aws:sqs:us-east-1:123456789012:intake";
    const STREAM_A: &str = "arn:aws:dynamodb:us-east-1:123456789012:table/tasks/stream/2026-11-30T10:00:00.000";
    const STREAM_B: &str = "arn:aws:dynamodb:us-east-1:123456789012:table/tasks/stream/2026-11-30T10:00:00.123";

    #[test]
    fn stream_sources_take_the_other_deployments_stream_and_queues_stay() {
        let merged = plan(&[("Intake", QUEUE), ("Publisher", STREAM_A)]).with_streams_of(&plan(&[("Intake", QUEUE), ("Publisher", STREAM_B)])).unwrap();
        let arns: Vec<&str> = merged.event_sources.iter().map(|s| s.source_arn.as_str()).collect();
        assert_eq!(arns, [QUEUE, STREAM_B]);
    }

    #[test]
    fn deployments_that_differ_are_refused() {
        let ours = plan(&[("Intake", QUEUE), ("Publisher", STREAM_A)]);
        assert!(ours.clone().with_streams_of(&plan(&[("Intake", QUEUE)])).is_err(), "a missing source");
        assert!(ours.clone().with_streams_of(&plan(&[("Publisher", STREAM_B), ("Intake", QUEUE)])).is_err(), "another order");
        assert!(ours.with_streams_of(&plan(&[("Intake", QUEUE), ("Publisher", QUEUE)])).is_err(), "a stream against a queue");
    }
}
