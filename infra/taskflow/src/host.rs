//! The local Lambda host: each function binary runs as an OS process that polls a Lambda Runtime
//! API served here, exactly as it polls the one Lambda provides on AWS, so the binaries have no
//! local mode. Each function runs [`HostConfig::environments`] processes, each an execution
//! environment with its own Runtime API taking one invocation at a time from the function's
//! queue of invocations, as Lambda runs as many environments as there are concurrent invocations
//! (Lambda Developer Guide, "Understanding Lambda function scaling"); here their number is
//! fixed, not scaled to demand. A process that exits or crashes is restarted, and its in-flight
//! invocation fails.

use crate::plan::FunctionSpec;
use crate::process;
use anyhow::{Context, Result};
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, watch, Notify};

/// How an invocation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The handler's response body.
    Response(Vec<u8>),
    /// The handler returned an error (its JSON error document).
    Error(String),
    /// The process died or did not answer within the function's timeout.
    Crashed(String),
}

struct Invocation {
    id: String,
    payload: Vec<u8>,
    deadline_ms: u64,
    reply: oneshot::Sender<Outcome>,
}

struct Shared {
    function_arn: String,
    queue: Arc<tokio::sync::Mutex<mpsc::Receiver<Invocation>>>,
    /// Each invocation handed to this environment's process: whom to answer, and since when it
    /// runs.
    in_flight: Mutex<HashMap<String, (oneshot::Sender<Outcome>, Instant)>>,
    counters: Arc<Counters>,
    /// Ends this environment's process (a timeout or an injected fault).
    kill: Arc<Notify>,
}

/// Counts per function, for figures and tests.
#[derive(Debug, Default)]
pub struct Counters {
    pub invocations: AtomicU64,
    pub errors: AtomicU64,
    pub restarts: AtomicU64,
    /// What Lambda would bill: from the handler getting the event to its answer, each
    /// invocation rounded up to the millisecond.
    pub billed_ms: AtomicU64,
    /// The process running now in each execution environment (0 while none).
    pub pids: Mutex<Vec<u32>>,
}

impl Counters {
    /// The largest peak resident memory so far of the processes running now (VmHWM, Linux),
    /// in MB.
    pub fn peak_rss_mb(&self) -> Option<f64> {
        let pids = self.pids.lock().unwrap().clone();
        pids.into_iter().filter_map(peak_rss_mb).reduce(f64::max)
    }
}

/// A process's peak resident memory so far (VmHWM in /proc, Linux), in MB.
pub fn peak_rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = status.lines().find_map(|l| l.strip_prefix("VmHWM:"))?.trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kb / 1024.0)
}

/// A running function: invoke it, and it is restarted if it dies.
pub struct Function {
    pub spec: FunctionSpec,
    kill_rate: f64,
    sender: mpsc::Sender<Invocation>,
    /// Its execution environments.
    environments: Vec<Arc<Shared>>,
    next_id: AtomicU64,
    pub counters: Arc<Counters>,
}

pub struct HostConfig {
    pub bin_dir: PathBuf,
    pub log_dir: PathBuf,
    pub region: String,
    pub endpoint: String,
    /// Where DynamoDB, DynamoDB Streams and S3 are served, when not at `endpoint`: the functions
    /// get it as `AWS_ENDPOINT_URL_DYNAMODB`, `AWS_ENDPOINT_URL_DYNAMODB_STREAMS` and
    /// `AWS_ENDPOINT_URL_S3`.
    pub storage_endpoint: Option<String>,
    /// Set on every function on top of the template's environment.
    pub extra_env: BTreeMap<String, String>,
    /// The chance that a process is killed in the middle of an invocation (fault injection).
    pub kill_rate: f64,
    /// Execution environments (processes) per function, at least 1.
    pub environments: usize,
}

impl Function {
    /// Serves the Runtime API for `spec` and starts its process under a supervisor.
    pub async fn start(spec: FunctionSpec, config: &HostConfig, shutdown: watch::Receiver<bool>) -> Result<Arc<Function>> {
        let binary = config.bin_dir.join(&spec.binary);
        if !binary.is_file() {
            anyhow::bail!("function binary {} not found: build it first (`cargo build --workspace`)", binary.display());
        }
        let (sender, receiver) = mpsc::channel(16);
        let queue = Arc::new(tokio::sync::Mutex::new(receiver));
        let counters = Arc::new(Counters::default());
        let count = config.environments.max(1);
        *counters.pids.lock().unwrap() = vec![0; count];
        let mut environments = Vec::with_capacity(count);
        for _ in 0..count {
            environments.push(Arc::new(Shared {
                function_arn: format!("arn:aws:lambda:{}:123456789012:function:{}", config.region, spec.name),
                queue: queue.clone(),
                in_flight: Mutex::new(HashMap::new()),
                counters: counters.clone(),
                kill: Arc::new(Notify::new()),
            }));
        }
        let mut env = spec.environment.clone();
        env.extend(config.extra_env.clone());
        for (key, value) in [
            ("AWS_ENDPOINT_URL", config.endpoint.as_str()),
            ("AWS_REGION", config.region.as_str()),
            ("AWS_DEFAULT_REGION", config.region.as_str()),
            // Its own identity, as Lambda hands a function its execution role's credentials.
            ("AWS_ACCESS_KEY_ID", spec.access_key_id.as_str()),
            ("AWS_SECRET_ACCESS_KEY", spec.secret_access_key.as_str()),
            ("AWS_LAMBDA_FUNCTION_NAME", spec.name.as_str()),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
            ("AWS_LAMBDA_LOG_STREAM_NAME", "local"),
        ] {
            env.insert(key.to_string(), value.to_string());
        }
        if let Some(storage) = &config.storage_endpoint {
            for service in ["DYNAMODB", "DYNAMODB_STREAMS", "S3"] {
                env.insert(format!("AWS_ENDPOINT_URL_{service}"), storage.clone());
            }
        }
        env.insert("AWS_LAMBDA_FUNCTION_MEMORY_SIZE".into(), spec.memory_size.to_string());
        env.insert("AWS_LAMBDA_LOG_GROUP_NAME".into(), format!("/aws/lambda/{}", spec.name));

        let log = config.log_dir.join(format!("{}.log", spec.binary));
        let function = Arc::new(Function {
            spec,
            kill_rate: config.kill_rate,
            sender,
            environments: environments.clone(),
            next_id: AtomicU64::new(1),
            counters,
        });
        for (index, shared) in environments.into_iter().enumerate() {
            // Each environment serves its own Runtime API, as each Lambda environment has one.
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            let mut env = env.clone();
            env.insert("AWS_LAMBDA_RUNTIME_API".into(), listener.local_addr()?.to_string());
            let app = Router::new()
                .route("/2018-06-01/runtime/invocation/next", get(next))
                .route("/2018-06-01/runtime/invocation/{id}/response", post(response))
                .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
                .route("/2018-06-01/runtime/init/error", post(init_error))
                .with_state(shared.clone());
            let mut server_shutdown = shutdown.clone();
            tokio::spawn(async move {
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async move {
                        crate::process::stopped(&mut server_shutdown).await;
                    })
                    .await;
            });
            tokio::spawn(supervise(index, binary.clone(), env, log.clone(), shared, shutdown.clone()));
        }
        Ok(function)
    }

    /// How many execution environments it has (invocations it runs at once).
    pub fn environments(&self) -> usize {
        self.environments.len()
    }

    /// Ends the process running invocation `id` (the first environment's when none is).
    fn kill(&self, id: &str) {
        let running = self.environments.iter().find(|e| e.in_flight.lock().unwrap().contains_key(id));
        if let Some(environment) = running.or(self.environments.first()) {
            environment.kill.notify_one();
        }
    }

    /// Invokes the function with `payload` and waits for the outcome (at most its timeout).
    pub async fn invoke(self: &Arc<Self>, payload: Vec<u8>) -> Outcome {
        self.counters.invocations.fetch_add(1, Ordering::Relaxed);
        let timeout = Duration::from_secs(self.spec.timeout);
        let (reply, outcome) = oneshot::channel();
        let id = format!("{}-{:08}", self.spec.binary, self.next_id.fetch_add(1, Ordering::Relaxed));
        let deadline_ms = (chrono::Utc::now() + timeout).timestamp_millis() as u64;
        if self.sender.send(Invocation { id: id.clone(), payload, deadline_ms, reply }).await.is_err() {
            return Outcome::Crashed("host is shutting down".into());
        }
        if self.kill_rate > 0.0 && rand::random::<f64>() < self.kill_rate {
            // Somewhere in the middle of the batch, as a crash or an out-of-memory kill would.
            let (function, id) = (self.clone(), id.clone());
            let after = Duration::from_millis(rand::random_range(0..40));
            tokio::spawn(async move {
                tokio::time::sleep(after).await;
                function.kill(&id);
            });
        }
        // Waiting for a process to pick it up is not part of the timeout, as on Lambda; but a
        // dead host must not hang the caller forever, hence the outer bound.
        let outcome = match tokio::time::timeout(timeout + Duration::from_secs(30), outcome).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) => Outcome::Crashed("process exited during the invocation".into()),
            Err(_) => {
                self.kill(&id);
                Outcome::Crashed(format!("timed out after {} s", self.spec.timeout))
            }
        };
        if !matches!(outcome, Outcome::Response(_)) {
            self.counters.errors.fetch_add(1, Ordering::Relaxed);
        }
        outcome
    }
}

/// Runs environment `index`'s process, restarting it when it ends, until `shutdown`.
async fn supervise(
    index: usize,
    binary: PathBuf,
    env: BTreeMap<String, String>,
    log: PathBuf,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let (kill, counters) = (shared.kill.clone(), shared.counters.clone());
    let mut backoff = Duration::from_millis(100);
    loop {
        let mut child = match spawn(&binary, &env, &log) {
            Ok(child) => child,
            Err(e) => {
                eprintln!("host: cannot start {}: {e:#}", binary.display());
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let started = std::time::Instant::now();
        counters.pids.lock().unwrap()[index] = child.id().unwrap_or(0);
        let status = tokio::select! {
            status = child.wait() => status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string()),
            _ = kill.notified() => {
                let _ = child.kill().await;
                "killed (timeout or injected fault)".to_string()
            }
            _ = crate::process::stopped(&mut shutdown) => {
                let _ = child.kill().await;
                return;
            }
        };
        counters.pids.lock().unwrap()[index] = 0;
        // Whatever it was doing will never be answered.
        for (_, (reply, _)) in shared.in_flight.lock().unwrap().drain() {
            let _ = reply.send(Outcome::Crashed(format!("process ended: {status}")));
        }
        if *shutdown.borrow() {
            return;
        }
        counters.restarts.fetch_add(1, Ordering::Relaxed);
        append_line(&log, &format!("host: {} ended ({status}); restarting", binary.display()));
        if started.elapsed() > Duration::from_secs(10) {
            backoff = Duration::from_millis(100);
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

fn spawn(binary: &Path, env: &BTreeMap<String, String>, log: &Path) -> Result<tokio::process::Child> {
    let mut cmd = process::command(binary);
    // A clean environment, as on Lambda: only what the template and the host set.
    cmd.env_clear().envs(env);
    if let Some(path) = std::env::var_os("PATH") {
        cmd.env("PATH", path);
    }
    process::log_to(&mut cmd, log)?;
    cmd.spawn().with_context(|| format!("spawning {}", binary.display()))
}

fn append_line(path: &Path, line: &str) {
    use std::io::Write;
    if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
        let _ = writeln!(f, "{line}");
    }
}

async fn next(State(shared): State<Arc<Shared>>) -> Response {
    let invocation = {
        let mut queue = shared.queue.lock().await;
        match queue.recv().await {
            Some(invocation) => invocation,
            None => return StatusCode::GONE.into_response(),
        }
    };
    shared.in_flight.lock().unwrap().insert(invocation.id.clone(), (invocation.reply, Instant::now()));
    let mut headers = HeaderMap::new();
    let header = |v: &str| HeaderValue::from_str(v).expect("header values are ASCII");
    headers.insert("Lambda-Runtime-Aws-Request-Id", header(&invocation.id));
    headers.insert("Lambda-Runtime-Deadline-Ms", header(&invocation.deadline_ms.to_string()));
    headers.insert("Lambda-Runtime-Invoked-Function-Arn", header(&shared.function_arn));
    headers.insert("Content-Type", header("application/json"));
    (StatusCode::OK, headers, invocation.payload).into_response()
}

fn finish(shared: &Shared, id: &str, outcome: Outcome) -> StatusCode {
    match shared.in_flight.lock().unwrap().remove(id) {
        Some((reply, started)) => {
            let billed = started.elapsed().as_micros().div_ceil(1000) as u64;
            shared.counters.billed_ms.fetch_add(billed, Ordering::Relaxed);
            let _ = reply.send(outcome);
            StatusCode::ACCEPTED
        }
        None => StatusCode::BAD_REQUEST,
    }
}

async fn response(State(shared): State<Arc<Shared>>, UrlPath(id): UrlPath<String>, body: Bytes) -> StatusCode {
    finish(&shared, &id, Outcome::Response(body.to_vec()))
}

async fn error(State(shared): State<Arc<Shared>>, UrlPath(id): UrlPath<String>, body: Bytes) -> StatusCode {
    finish(&shared, &id, Outcome::Error(String::from_utf8_lossy(&body).into_owned()))
}

async fn init_error(body: Bytes) -> StatusCode {
    eprintln!("host: a function failed to initialise: {}", String::from_utf8_lossy(&body));
    StatusCode::ACCEPTED
}
