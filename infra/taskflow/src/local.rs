//! The local stack in one piece: emulator → template deployed → functions running and fed.
//!
//! Two emulator processes serve it, as AWS serves each service at its own endpoint: one serves
//! the storage services (DynamoDB, DynamoDB Streams, S3), the other everything else. moto serves
//! a request on one core at a time (one Python process, its GIL), and an order's calls kept one
//! core busy while the other idled (README, "Local throughput"). The template is deployed to
//! both, so each has every table, bucket, role and identity; each enforces IAM and AWS's limits
//! on what it serves and refuses a request for another service, as another service's endpoint
//! would. The functions get `AWS_ENDPOINT_URL_DYNAMODB`, `_DYNAMODB_STREAMS` and `_S3`, and the
//! CLI's, the tests' and the host's clients the same routing ([`StackInfo::sdk_config`]). S3's
//! event notifications to SQS are handed on to the main process's queues; what else moto does
//! across services inside one process stays in the main one (Step Functions' SQS and
//! EventBridge tasks).

use crate::emulator::Emulator;
use crate::host::{Function, HostConfig};
use crate::plan::{self, DeployPlan};
use crate::sources::{self, Clients};
use crate::stack::StackInfo;
use anyhow::{Context, Result};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::watch;

pub const REGION: &str = "us-east-1";
pub const STAGE: &str = "local";
/// The services the storage process serves, by SigV4 signing name (DynamoDB Streams signs as
/// `dynamodb`).
pub const STORAGE_SERVICES: [&str; 2] = ["dynamodb", "s3"];
pub const STACK_NAME: &str = "taskflow-local";
/// Where `taskflow up` keeps its token issuer's key (in the state directory).
pub const TOKEN_ISSUER_FILE: &str = "token-issuer.json";

pub struct Options {
    pub root: PathBuf,
    pub bin_dir: PathBuf,
    /// Logs go to `state_dir/logs`, and `stack.json` is written here.
    pub state_dir: PathBuf,
    /// Added to every function's environment.
    pub extra_env: BTreeMap<String, String>,
    /// Template parameters besides `Stage` (e.g. `QueueVisibilityTimeout`).
    pub parameters: BTreeMap<String, String>,
    pub faults: Faults,
    /// Function binaries run in place of the template's (binary → stand-in binary, both in
    /// `bin_dir`): `make bench` measures the stack with null workers this way.
    pub stand_ins: BTreeMap<String, String>,
    /// Grants taken out of the template's roles before deploying, each
    /// `ROLE:service:Action[:RESOURCE_LOGICAL_ID]` (e.g.
    /// `RefundFunctionRole:dynamodb:GetItem:SandboxChargesTable`): the tests that prove a
    /// missing grant is refused use it (`infra/local/deploy.py --remove-grant`).
    pub remove_grants: Vec<String>,
    /// Execution environments (processes) per function, each taking one invocation at a time;
    /// each SQS event source runs as many batches at once (default
    /// [`ENVIRONMENTS_PER_FUNCTION`]).
    pub environments: usize,
}

/// How many invocations of one function run at once locally. Lambda runs one environment per
/// concurrent invocation, and an SQS event source starts with five batches at a time ("Lambda
/// starts processing five batches at a time with five concurrent invocations", Lambda Developer
/// Guide, "How Lambda scales SQS event sources"), scaling up to the mapping's
/// `MaximumConcurrency`; a fixed three keeps a 2-core machine's process count moderate (nine
/// functions) while work no longer queues behind one process.
pub const ENVIRONMENTS_PER_FUNCTION: usize = 3;

/// Faults the local stack injects, all off by default: what at-least-once delivery, crashes and
/// a flaky provider do to a real deployment, on demand.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Faults {
    /// Every SQS batch is delivered to its function twice.
    pub duplicate_deliveries: bool,
    /// The chance (0–1) that a function process is killed in the middle of an invocation.
    pub kill_rate: f64,
    /// The chance (0–1) that the sandbox payment provider fails a request transiently.
    pub payment_fault_rate: f64,
    /// Extra time every payment request takes.
    pub payment_latency_ms: u64,
}

impl Faults {
    pub fn any(&self) -> bool {
        *self != Faults::default()
    }
}

impl Options {
    pub fn new(state_dir: impl Into<PathBuf>) -> Options {
        Options {
            root: crate::paths::project_root(),
            bin_dir: crate::paths::bin_dir(),
            state_dir: state_dir.into(),
            extra_env: BTreeMap::new(),
            parameters: BTreeMap::new(),
            faults: Faults::default(),
            stand_ins: BTreeMap::new(),
            remove_grants: Vec::new(),
            environments: ENVIRONMENTS_PER_FUNCTION,
        }
    }

    /// Notices by email through the emulator's SES instead of the outbox: the template's
    /// `Notifier=ses` with `sender` as `SenderAddress` (made a verified identity by the local
    /// deploy). Owners' addresses then come from the local user pool (`OwnerPoolId` output).
    pub fn email_notices(&mut self, sender: &str) {
        self.parameters.insert("Notifier".into(), "ses".into());
        self.parameters.insert("SenderAddress".into(), sender.into());
    }

    /// `TASKFLOW_NOTIFIER=ses` (and optionally `TASKFLOW_SENDER`, default [`LOCAL_SENDER`]) in the
    /// environment: [`Options::email_notices`]. Unset or `outbox`: the outbox (the default).
    pub fn notifier_from_env(&mut self) -> Result<()> {
        match std::env::var("TASKFLOW_NOTIFIER").as_deref() {
            Err(_) | Ok("" | "outbox") => Ok(()),
            Ok("ses") => {
                let sender = std::env::var("TASKFLOW_SENDER").unwrap_or_else(|_| LOCAL_SENDER.to_string());
                self.email_notices(&sender);
                Ok(())
            }
            Ok(other) => anyhow::bail!("TASKFLOW_NOTIFIER={other:?}: \"ses\" or \"outbox\""),
        }
    }
}

/// The local stack's sender address when notices are emailed.
pub const LOCAL_SENDER: &str = "notices@taskflow.example.com";

/// The stack output naming the local host's control endpoint (see `schedules`).
pub const CONTROL_URL_OUTPUT: &str = "LocalControlUrl";

pub struct LocalStack {
    pub info: StackInfo,
    pub plan: DeployPlan,
    pub functions: HashMap<String, Arc<Function>>,
    pub started_in: std::time::Duration,
    emulator: Emulator,
    /// The emulator process serving the storage services: DynamoDB, DynamoDB Streams and S3.
    storage: Emulator,
    shutdown: watch::Sender<bool>,
}

impl LocalStack {
    /// The emulator processes' ids (for figures: their CPU time), while they run.
    pub fn emulator_pids(&self) -> Vec<u32> {
        [self.emulator.pid(), self.storage.pid()].into_iter().flatten().collect()
    }

    pub async fn start(options: Options) -> Result<LocalStack> {
        let started = Instant::now();
        let logs = options.state_dir.join("logs");
        std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
        // Either one failing drops (and so kills) the other.
        let (main_log, storage_log) = (logs.join("moto.log"), logs.join("moto-storage.log"));
        let (emulator, storage) = tokio::try_join!(Emulator::start(&options.root, &main_log), Emulator::start(&options.root, &storage_log))?;
        let mut parameters = options.parameters.clone();
        parameters.insert("Stage".into(), STAGE.into());
        let deployed = tokio::try_join!(
            plan::deploy(&options.root, &emulator.endpoint, REGION, STACK_NAME, &parameters, &options.remove_grants),
            plan::deploy(&options.root, &storage.endpoint, REGION, STACK_NAME, &parameters, &options.remove_grants),
        );
        // Each process then serves its services only (SigV4 signing names: DynamoDB Streams signs
        // as `dynamodb`); S3's event notifications to SQS go on to the main process's queues.
        let serving = async {
            let plan = deployed.and_then(|(plan, on_storage)| plan.with_streams_of(&on_storage))?;
            emulator.serve(&serde_json::json!({"except": STORAGE_SERVICES})).await?;
            storage.serve(&serde_json::json!({"only": STORAGE_SERVICES, "queueNotificationsTo": emulator.endpoint})).await?;
            anyhow::Ok(plan)
        };
        let plan = match serving.await {
            Ok(plan) => plan,
            Err(e) => {
                emulator.stop().await;
                return Err(e);
            }
        };
        let info = StackInfo {
            endpoint: Some(emulator.endpoint.clone()),
            storage_endpoint: Some(storage.endpoint.clone()),
            region: REGION.into(),
            stack_name: plan.stack_name.clone(),
            outputs: plan.outputs.clone(),
        };
        info.save(&options.state_dir.join("stack.json"))?;
        let aws = info.sdk_config().await;
        // The catalogue and its starting stock, as an operator loads them
        // (`taskflow catalogue load --stock`).
        if let Err(e) = crate::catalogue::load(&aws, &info, &options.root.join("infra/local/catalogue.json"), true).await {
            emulator.stop().await;
            return Err(e);
        }

        let (shutdown, watcher) = watch::channel(false);
        let mut extra_env = options.extra_env.clone();
        // Lambda runs an X-Ray daemon beside every function; here the stack does.
        let daemon = match crate::xray::Daemon::start(&aws, watcher.clone()).await {
            Ok(daemon) => daemon,
            Err(e) => {
                emulator.stop().await;
                return Err(e);
            }
        };
        extra_env.insert("AWS_XRAY_DAEMON_ADDRESS".into(), daemon.address.to_string());
        // And the X-Ray OTLP endpoint (the default exporter: TRACE_EXPORTER=otlp), on loopback;
        // an endpoint given in the options (a test's black hole) is kept.
        let otlp = match crate::otlp::OtlpEndpoint::start(&aws, &emulator.endpoint, watcher.clone()).await {
            Ok(otlp) => otlp,
            Err(e) => {
                emulator.stop().await;
                return Err(e);
            }
        };
        extra_env.entry("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT".into()).or_insert_with(|| otlp.url());
        // The local endpoint checks each request with the emulator (one Python process, busy
        // with the orders' own calls): a wider flush bound than the template's 500 ms, so that
        // a loaded machine does not lose spans. A flush still returns as soon as its export
        // does; a test that checks the bound sets its own.
        extra_env.entry("TRACE_FLUSH_TIMEOUT_MS".into()).or_insert_with(|| "2000".into());
        let faults = &options.faults;
        if faults.payment_fault_rate > 0.0 {
            extra_env.insert("SANDBOX_FAULT_RATE".into(), faults.payment_fault_rate.to_string());
        }
        if faults.payment_latency_ms > 0 {
            extra_env.insert("SANDBOX_LATENCY_MS".into(), faults.payment_latency_ms.to_string());
        }
        let host = HostConfig {
            bin_dir: options.bin_dir.clone(),
            log_dir: logs,
            region: REGION.into(),
            endpoint: emulator.endpoint.clone(),
            storage_endpoint: Some(storage.endpoint.clone()),
            extra_env,
            kill_rate: faults.kill_rate,
            environments: options.environments,
        };
        let mut functions = HashMap::new();
        for spec in &plan.functions {
            let mut spec = spec.clone();
            if let Some(stand_in) = options.stand_ins.get(&spec.binary) {
                spec.binary = stand_in.clone();
            }
            match Function::start(spec.clone(), &host, watcher.clone()).await {
                Ok(function) => {
                    functions.insert(spec.logical_id.clone(), function);
                }
                Err(e) => {
                    let _ = shutdown.send(true);
                    emulator.stop().await;
                    return Err(e);
                }
            }
        }
        // The HTTP API, as API Gateway would serve it: its URL and token issuer become outputs.
        let mut info = info;
        if !plan.http_routes.is_empty() {
            let endpoints = match crate::gateway::start(&plan.http_routes, &functions, &options.state_dir.join(TOKEN_ISSUER_FILE), watcher.clone()).await {
                Ok(endpoints) => endpoints,
                Err(e) => {
                    let _ = shutdown.send(true);
                    emulator.stop().await;
                    return Err(e);
                }
            };
            info.outputs.insert("ApiUrl".into(), endpoints.api_url);
            info.outputs.insert("TokenIssuer".into(), endpoints.issuer_url);
            info.save(&options.state_dir.join("stack.json"))?;
        }
        // The template's schedules, and the control endpoint that runs one now.
        if !plan.schedules.is_empty() {
            match crate::schedules::start(&plan.schedules, &functions, REGION, watcher.clone()).await {
                Ok(url) => {
                    info.outputs.insert(CONTROL_URL_OUTPUT.into(), url);
                    info.save(&options.state_dir.join("stack.json"))?;
                }
                Err(e) => {
                    let _ = shutdown.send(true);
                    emulator.stop().await;
                    return Err(e);
                }
            }
        }
        for mapping in &plan.event_sources {
            let function = functions
                .get(&mapping.function)
                .with_context(|| format!("event source for unknown function {}", mapping.function))?;
            let clients = Arc::new(Clients::of(&aws, &function.spec, REGION, faults.duplicate_deliveries));
            sources::start(mapping.clone(), function.clone(), clients, watcher.clone());
        }
        Ok(LocalStack { info, plan, functions, started_in: started.elapsed(), emulator, storage, shutdown })
    }

    /// Stops the functions, their feeds and the emulator.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        // Give supervisors a moment to kill their processes before the emulator goes.
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        self.emulator.stop().await;
        self.storage.stop().await;
    }

    /// What the emulators counted that AWS would bill for since the last reset (see
    /// `infra/local/emulator.py`), by `service.Item`, summed over both processes; `reset`
    /// starts a new count.
    pub async fn usage(&self, reset: bool) -> Result<BTreeMap<String, f64>> {
        usage(&self.info, reset).await
    }

    /// Where the emulators' CPU went, per operation (`SERVICE.Operation`: requests and thread
    /// CPU microseconds), since the last reset, summed over both processes; `reset` reads and
    /// empties it (`infra/local/emulator.py`, `/taskflow/cpu`).
    pub async fn emulator_cpu(&self, reset: bool) -> Result<BTreeMap<String, (u64, u64)>> {
        let mut total: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        for cpu in from_each::<BTreeMap<String, (u64, u64)>>(&self.info, "/taskflow/cpu", reset, "CPU by operation").await? {
            for (operation, (requests, micros)) in cpu {
                let sum = total.entry(operation).or_default();
                sum.0 += requests;
                sum.1 += micros;
            }
        }
        Ok(total)
    }

    /// The calls the emulators refused (or, with `TASKFLOW_IAM=record`, would have refused) as
    /// not allowed by the caller's role, oldest first; `clear` empties the log. Each entry:
    /// `function` (or `stateMachine`, for a workflow's role) with the caller's name, `principal`
    /// (`arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION`), `action`, `resource` (ARN), `at`
    /// (UTC, seconds) and `enforced` (false in `TASKFLOW_IAM=record` mode); see `infra/local/iam.py`.
    pub async fn iam_denials(&self, clear: bool) -> Result<Vec<serde_json::Value>> {
        iam_denials(&self.info, clear).await
    }

    /// How to point the aws CLI at this stack.
    pub fn cli_hint(&self) -> String {
        format!(
            "export AWS_ENDPOINT_URL={} AWS_ENDPOINT_URL_DYNAMODB={storage} AWS_ENDPOINT_URL_DYNAMODB_STREAMS={storage} AWS_ENDPOINT_URL_S3={storage} AWS_REGION={REGION} AWS_DEFAULT_REGION={REGION} AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test",
            self.info.endpoint.as_deref().unwrap_or_default(),
            storage = self.info.storage_endpoint.as_deref().unwrap_or_default()
        )
    }
}

/// The local stack's IAM denial log (see [`LocalStack::iam_denials`]) from both emulator
/// processes, oldest first.
pub async fn iam_denials(info: &StackInfo, clear: bool) -> Result<Vec<serde_json::Value>> {
    let mut all = Vec::new();
    for value in from_each::<serde_json::Value>(info, "/taskflow/iam/denials", clear, "IAM denials").await? {
        all.extend(value["denials"].as_array().cloned().unwrap_or_default());
    }
    // `at` is UTC to the second (`%Y-%m-%dT%H:%M:%SZ`): a stable sort keeps each process's order.
    all.sort_by(|a, b| a["at"].as_str().cmp(&b["at"].as_str()));
    Ok(all)
}

/// The local stack's usage counts (see [`LocalStack::usage`]), summed over both emulator
/// processes.
pub async fn usage(info: &StackInfo, reset: bool) -> Result<BTreeMap<String, f64>> {
    let mut total: BTreeMap<String, f64> = BTreeMap::new();
    for counts in from_each::<BTreeMap<String, f64>>(info, "/taskflow/usage", reset, "usage counts").await? {
        for (item, count) in counts {
            *total.entry(item).or_default() += count;
        }
    }
    Ok(total)
}

/// Each emulator process's answer to `GET path` (`DELETE` with `clear`: read and empty it), read
/// as JSON; `what` names it in errors.
async fn from_each<T: serde::de::DeserializeOwned>(info: &StackInfo, path: &str, clear: bool, what: &str) -> Result<Vec<T>> {
    let mut answers = Vec::new();
    for port in info.emulator_ports() {
        let (status, body) = crate::emulator::http(port, if clear { "DELETE" } else { "GET" }, path, "").await?;
        if status != 200 {
            anyhow::bail!("the emulator did not give its {what}: {status} {body}");
        }
        answers.push(serde_json::from_str(&body).with_context(|| format!("reading the emulator's {what}"))?);
    }
    Ok(answers)
}
