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
