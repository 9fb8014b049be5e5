//! `taskflow`: run the local stack, and talk to a stack.

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;
use taskflow::client::{Client, StatusFeed};
use taskflow::local::{LocalStack, Options};
use taskflow::stack::StackInfo;
use taskflow_contracts::{OrderItem, OrderKind, OrderSubmitted, PaymentToken, TaskStatusChanged, SCHEMA_VERSION};

mod demo;

#[derive(Parser)]
#[command(name = "taskflow", version, about = "Purchases and refunds as tracked tasks on AWS serverless — and on your machine.")]
struct Cli {
    /// Where the local stack keeps stack.json and logs [default: <repo>/.taskflow]
    #[arg(long, global = true, env = "TASKFLOW_STATE_DIR")]
    state_dir: Option<PathBuf>,
    /// Talk to a deployed CloudFormation stack of this name (its outputs, the standard AWS
    /// credential chain and region) instead of the local stack.
    #[arg(long, global = true, env = "TASKFLOW_STACK")]
    stack: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the local stack and show status events live until Ctrl-C.
    Up {
        #[command(flatten)]
        faults: FaultArgs,
        /// The console's port on 127.0.0.1 (0: any free port; if the default is taken, any free port).
        #[arg(long, default_value_t = taskflow::console::DEFAULT_PORT)]
        console_port: u16,
    },
    /// Start the local stack, run sample orders through it, print a summary; exit 0 only if
    /// every order reached the status it should.
    Demo {
        /// Then keep the stack up and serve the console on it (this port; 0: any) until Ctrl-C.
        #[arg(long, num_args = 0..=1, default_missing_value = "7878")]
        console: Option<u16>,
    },
    /// Submit an order to a running stack (publishes OrderSubmitted on its bus).
    Submit {
        #[command(subcommand)]
        order: SubmitOrder,
    },
    /// Show a task: its status, reason and history.
    Status {
        order_id: String,
        /// The order's owner (order ids are per owner); without it, ORDER_ID may also be a task
        /// id, or an order id only one owner used.
        #[arg(long)]
        owner: Option<String>,
        /// Print the task record as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List an owner's tasks, newest first; or, for operators, the tasks of every owner in a
    /// status (`--status FAILED --since 1h [--kind refund] [--limit N] [--next TOKEN]`).
    Tasks {
        #[arg(long, required_unless_present = "status", conflicts_with = "status")]
        owner: Option<String>,
        /// Operators: tasks in this status (RECEIVED, CHARGING, REFUNDING, COMPLETED, FAILED,
        /// REJECTED, CANCELLED, AWAITING_APPROVAL), across owners, through the HTTP API's operator route.
        #[arg(long, requires = "since")]
        status: Option<String>,
        /// Whose latest change is within this: 90s, 30m, 1h, 2d, or an RFC 3339 time.
        #[arg(long)]
        since: Option<String>,
        /// purchase or refund.
        #[arg(long)]
        kind: Option<String>,
        /// At most this many (1-1000, default 50).
        #[arg(long)]
        limit: Option<u32>,
        /// The next page (the token a previous page printed).
        #[arg(long)]
        next: Option<String>,
        #[command(flatten)]
        operator: OperatorArgs,
        #[arg(long)]
        json: bool,
    },
    /// Operators: refunds above the approval threshold waiting for a decision.
    Approvals {
        #[command(subcommand)]
        command: ApprovalsCommand,
    },
    /// Download a task's receipt (the latest, to stdout unless --out).
    Receipt {
        order_id: String,
        /// The order's owner (order ids are per owner); without it, ORDER_ID may also be a task
        /// id, or an order id only one owner used.
        #[arg(long)]
        owner: Option<String>,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// A closed task's audit log from S3 (JSON Lines: the task, every transition with its event
    /// id, charge, refund, receipts, attachments), to stdout unless --out.
    Log {
        order_id: String,
        /// The order's owner (order ids are per owner); without it, ORDER_ID may also be a task
        /// id, or an order id only one owner used.
        #[arg(long)]
        owner: Option<String>,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// The catalogue (per sku: name, unit price, currency, active): the only source of prices.
    Catalogue {
        #[command(subcommand)]
        command: CatalogueCommand,
    },
    /// Inspect and replay dead-letter queues.
    Dlq {
        #[command(subcommand)]
        command: Dlq,
    },
    /// A bearer token for the local HTTP API, signed by the key `taskflow up` generated.
    Token {
        #[arg(long, required_unless_present = "operator", conflicts_with = "operator")]
        owner: Option<String>,
        /// A token for operator NAME (in the `operators` group: the approvals and queries routes).
        #[arg(long)]
        operator: Option<String>,
        /// Seconds it is valid for (negative: an already expired token, for testing refusals).
        #[arg(long, default_value_t = 3600, allow_hyphen_values = true)]
        ttl: i64,
    },
    /// Attach a file to one of an owner's tasks, through the HTTP API and a presigned S3 upload
    /// (pdf, png, jpeg, webp or text; at most the stack's AttachmentMaxBytes, 10 MiB by default).
    Attach {
        order_id: String,
        file: PathBuf,
        /// The owner (locally a token is made for them); or give --token.
        #[arg(long)]
        owner: Option<String>,
        /// A bearer token for the HTTP API (a deployed stack's user pool access token).
        #[arg(long, env = "TASKFLOW_TOKEN")]
        token: Option<String>,
        /// The content type, when the file's extension does not say it.
        #[arg(long)]
        content_type: Option<String>,
    },
    /// List a task's attachments, or download one (--get ID --out FILE).
    Attachments {
        order_id: String,
        #[arg(long)]
        owner: Option<String>,
        #[arg(long, env = "TASKFLOW_TOKEN")]
        token: Option<String>,
        /// The attachment id to download.
        #[arg(long, requires = "out")]
        get: Option<String>,
        /// Where to write the download.
        #[arg(long)]
        out: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Draw an order's trace (from its task record's trace id, via the X-Ray API) as a waterfall.
    Trace {
        order_id: String,
        /// The order's owner (order ids are per owner); without it, ORDER_ID may also be a task
        /// id, or an order id only one owner used.
        #[arg(long)]
        owner: Option<String>,
        /// The segment documents as JSON, one a line, instead.
        #[arg(long)]
        json: bool,
    },
    /// Cancel an owner's purchase that has not been charged (publishes OrderCancelled), and show
    /// what became of it. An order submitted a moment ago is waited for (up to 10 s) until
    /// intake has recorded it.
    Cancel {
        order_id: String,
        #[arg(long)]
        owner: String,
    },
    /// Run the sweeper now (local stack) and print its report: stuck tasks finished, handed to
    /// operators, or left alone.
    Sweep {
        #[arg(long)]
        json: bool,
    },
    /// Redrive a task's failed execution from its failed state (Step Functions RedriveExecution;
    /// refused on the local stack, whose emulator lacks it).
    Redrive {
        order_id: String,
        /// The order's owner (order ids are per owner); without it, ORDER_ID may also be a task
        /// id, or an order id only one owner used.
        #[arg(long)]
        owner: Option<String>,
    },
    /// Serve the console, a web UI for the stack, on 127.0.0.1 until Ctrl-C: tasks live, each
    /// task's path, timeline, ledger, receipts and trace, dead letters with redrive, metrics.
    Console {
        /// The port on 127.0.0.1 (0: any free port).
        #[arg(long, default_value_t = taskflow::console::DEFAULT_PORT)]
        port: u16,
    },
    /// Print TaskStatusChanged events as they arrive.
    Events {
        /// Keep following until Ctrl-C (otherwise stop after --wait seconds without events).
        #[arg(long)]
        follow: bool,
        #[arg(long, default_value_t = 5)]
        wait: u64,
        #[arg(long)]
        json: bool,
    },
}

/// Who an operator command runs as.
#[derive(clap::Args, Default)]
struct OperatorArgs {
    /// The operator's name (locally, a token of the `operators` group is minted for it).
    #[arg(long = "as", env = "TASKFLOW_OPERATOR", default_value = "operator")]
    operator: String,
    /// A bearer token to use instead (an operators-group token).
    #[arg(long, env = "TASKFLOW_TOKEN")]
    token: Option<String>,
}

#[derive(Subcommand)]
enum ApprovalsCommand {
    /// Refunds waiting for a decision, newest first.
    List {
        #[command(flatten)]
        operator: OperatorArgs,
        #[arg(long)]
        json: bool,
    },
    /// Approve a refund: it goes ahead.
    Approve {
        order_id: String,
        #[arg(long)]
        owner: String,
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        operator: OperatorArgs,
    },
    /// Deny a refund: it ends REJECTED REFUND_DENIED with the reason.
    Deny {
        order_id: String,
        #[arg(long)]
        owner: String,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        operator: OperatorArgs,
    },
}

/// Fault injection for the local stack, all off by default.
#[derive(clap::Args, Default)]
struct FaultArgs {
    /// Deliver every SQS batch to its function twice.
    #[arg(long, env = "TASKFLOW_DUPLICATE_DELIVERIES")]
    duplicate_deliveries: bool,
    /// Chance (0-1) that a function process is killed in the middle of an invocation.
    #[arg(long, env = "TASKFLOW_KILL_RATE", default_value_t = 0.0)]
    kill_rate: f64,
    /// Chance (0-1) that the sandbox payment provider fails a request transiently.
    #[arg(long, env = "TASKFLOW_PAYMENT_FAULT_RATE", default_value_t = 0.0)]
    payment_fault_rate: f64,
    /// Extra milliseconds every payment request takes.
    #[arg(long, env = "TASKFLOW_PAYMENT_LATENCY_MS", default_value_t = 0)]
    payment_latency_ms: u64,
    /// Queue visibility timeout in seconds (how soon a crashed batch comes back; template default 60).
    #[arg(long, env = "TASKFLOW_VISIBILITY_TIMEOUT")]
    visibility_timeout: Option<u32>,
}

impl FaultArgs {
    fn apply(&self, options: &mut Options) {
        options.faults = taskflow::local::Faults {
            duplicate_deliveries: self.duplicate_deliveries,
            kill_rate: self.kill_rate,
            payment_fault_rate: self.payment_fault_rate,
            payment_latency_ms: self.payment_latency_ms,
        };
        if let Some(seconds) = self.visibility_timeout {
            options.parameters.insert("QueueVisibilityTimeout".into(), seconds.to_string());
        }
    }
}

#[derive(Subcommand)]
enum Dlq {
    /// How many messages each dead-letter queue holds (--show N prints up to N of each).
    List {
        #[arg(long, default_value_t = 0)]
        show: usize,
    },
    /// Send a dead-letter queue's messages back to their queue (intake, purchase, refund,
    /// notification); for `publisher`, publish their status events again from the task records.
    Redrive {
        queue: String,
        /// Show what would be sent back, and leave it where it is.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Subcommand)]
enum CatalogueCommand {
    /// Write a catalogue file's entries (infra/local/catalogue.json's shape) into the stack's
    /// catalogue table, adding or replacing each sku whole. With --stock, also set each sku's
    /// stock to its `available` (overwrites the count: for a new stack).
    Load {
        file: PathBuf,
        #[arg(long)]
        stock: bool,
    },
    /// Print the stack's catalogue.
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum SubmitOrder {
    /// A purchase: `taskflow submit purchase --owner alice --item BOOK-1:2`
    Purchase {
        #[arg(long)]
        owner: String,
        /// SKU:QUANTITY, charged at the catalogue's price; SKU:QUANTITY:UNIT_PRICE (minor
        /// units) states the price you expect, and the order is REJECTED PRICE_MISMATCH if the
        /// catalogue's differs. Repeat for more lines.
        #[arg(long = "item", required = true)]
        items: Vec<String>,
        #[arg(long, default_value = "EUR")]
        currency: String,
        /// A sandbox test token: tok_approve, tok_decline, tok_insufficient_funds, tok_flaky, tok_unavailable.
        #[arg(long, default_value = "tok_approve")]
        payment_token: String,
        #[arg(long)]
        order_id: Option<String>,
    },
    /// A refund of an earlier order.
    Refund {
        refund_of: String,
        #[arg(long)]
        owner: String,
        /// In minor units; the whole order when absent.
        #[arg(long)]
        amount: Option<u64>,
        #[arg(long, default_value = "EUR")]
        currency: String,
        #[arg(long)]
        order_id: Option<String>,
    },
    /// The `detail` of an OrderSubmitted event from a JSON file, sent as it is.
    File { path: PathBuf },
}

#[tokio::main]
async fn main() {
    // Piped into `head` and the like: end quietly when the reader goes, as CLI tools do.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    let _ = DEPLOYED.set(cli.stack.clone());
    let state_dir = cli.state_dir.clone().unwrap_or_else(|| taskflow::paths::project_root().join(".taskflow"));
    let result = match cli.command {
        Command::Up { faults, console_port } => up(state_dir, faults, console_port).await,
        Command::Console { port } => console(&state_dir, port).await,
        Command::Dlq { command } => dlq(&state_dir, command).await,
        Command::Catalogue { command } => catalogue(&state_dir, command).await,
        Command::Demo { console } => demo::run(state_dir, console).await,
        Command::Submit { order } => submit(&state_dir, order).await,
        Command::Status { order_id, owner, json } => status(&state_dir, owner.as_deref(), &order_id, json).await,
        Command::Events { follow, wait, json } => events(&state_dir, follow, wait, json).await,
        Command::Tasks { owner: Some(owner), json, .. } => tasks(&state_dir, &owner, json).await,
        Command::Tasks { owner: None, status, since, kind, limit, next, operator, json } => {
            let mut query = vec![("status", status.unwrap_or_default()), ("since", since.unwrap_or_default())];
            query.extend(kind.map(|k| ("kind", k)));
            query.extend(limit.map(|l| ("limit", l.to_string())));
            query.extend(next.map(|n| ("next", n)));
            operator_tasks(&state_dir, &operator, &query, json).await
        }
        Command::Approvals { command } => approvals(&state_dir, command).await,
        Command::Receipt { order_id, owner, out } => receipt(&state_dir, owner.as_deref(), &order_id, out).await,
        Command::Log { order_id, owner, out } => task_log(&state_dir, owner.as_deref(), &order_id, out).await,
        Command::Trace { order_id, owner, json } => trace(&state_dir, owner.as_deref(), &order_id, json).await,
        Command::Token { owner: Some(owner), ttl, .. } => token(&state_dir, &owner, ttl),
        Command::Token { owner: None, operator, ttl } => {
            taskflow::operator::local_token(&state_dir, operator.as_deref().unwrap_or("operator"), ttl).map(|t| println!("{t}"))
        }
        Command::Attach { order_id, file, owner, token, content_type } => attach(&state_dir, &order_id, &file, owner.as_deref(), token, content_type.as_deref()).await,
        Command::Attachments { order_id, owner, token, get, out, json } => attachments(&state_dir, &order_id, owner.as_deref(), token, get.as_deref(), out, json).await,
        Command::Cancel { order_id, owner } => cancel(&state_dir, &owner, &order_id).await,
        Command::Sweep { json } => sweep(&state_dir, json).await,
        Command::Redrive { order_id, owner } => redrive(&state_dir, owner.as_deref(), &order_id).await,
    };
    if let Err(e) = result {
        eprintln!("taskflow: {e:#}");
        std::process::exit(1);
    }
}

fn stack_file(state_dir: &std::path::Path) -> PathBuf {
    state_dir.join("stack.json")
}

/// `--stack NAME`, if given: the client commands then talk to that deployed stack.
static DEPLOYED: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();

/// The stack the client commands talk to: a deployed one (`--stack`), or the local one.
async fn load_stack(state_dir: &std::path::Path) -> Result<StackInfo> {
    match DEPLOYED.get().and_then(Option::as_deref) {
        Some(name) => StackInfo::from_cloudformation(name).await,
        None => StackInfo::load(&stack_file(state_dir)),
    }
}

/// `taskflow console`: serves the console until Ctrl-C (or SIGTERM).
async fn console(state_dir: &std::path::Path, port: u16) -> Result<()> {
    let console = taskflow::console::start_in(load_stack(state_dir).await?, port, state_dir).await?;
    println!("taskflow console: {}", console.url());
    println!("(loopback only; Ctrl-C to stop)");
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    console.stop().await;
    Ok(())
}

async fn up(state_dir: PathBuf, faults: FaultArgs, console_port: u16) -> Result<()> {
    // Listening from the start, so a Ctrl-C while the stack starts stops it too (the children
    // lead their own process groups and do not get the terminal's SIGINT themselves).
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    eprintln!("starting the local stack (two moto servers, template, functions)…");
    let mut options = Options::new(&state_dir);
    faults.apply(&mut options);
    options.notifier_from_env()?;
    if options.faults.any() {
        eprintln!("fault injection on: {:?}", options.faults);
    }
    let stack = tokio::select! {
        stack = LocalStack::start(options) => stack?,
        // Dropping the start kills what it had started (`process::command`: kill on drop).
        _ = interrupt.recv() => return stopped_while_starting(&state_dir),
        _ = terminate.recv() => return stopped_while_starting(&state_dir),
    };
    let feed = StatusFeed::open(&stack.info).await?;
    // The console: on its port, or on any free one if that is taken (another console running).
    let console = match taskflow::console::start_in(stack.info.clone(), console_port, &state_dir).await {
        Ok(c) => Some(c),
        Err(_) if console_port != 0 => taskflow::console::start_in(stack.info.clone(), 0, &state_dir).await.map_err(|e| eprintln!("console not started: {e:#}")).ok(),
        Err(e) => {
            eprintln!("console not started: {e:#}");
            None
        }
    };
    println!("taskflow local stack is up ({:.1} s)", stack.started_in.as_secs_f64());
    println!("  endpoint  {}", stack.info.endpoint.as_deref().unwrap_or_default());
    println!("  storage   {}   (DynamoDB, DynamoDB Streams and S3)", stack.info.storage_endpoint.as_deref().unwrap_or_default());
    println!("  bus       {}   (publish OrderSubmitted here; TaskStatusChanged comes out here)", stack.info.output("EventBusName")?);
    println!("  stack     {}", stack_file(&state_dir).display());
    println!("  logs      {}", state_dir.join("logs").display());
    if let Some(console) = &console {
        println!("  console   {}   (open it in a browser)", console.url());
    }
    println!();
    println!("Point the aws CLI at it:");
    println!("  {}", stack.cli_hint());
    println!("  aws --endpoint-url \"$AWS_ENDPOINT_URL\" events put-events --entries file://contracts/examples/order-submitted.purchase.json");
    println!();
    println!("Status events (Ctrl-C to stop):");
    loop {
        tokio::select! {
            events = feed.next(Duration::from_secs(1)) => {
                for event in events? {
                    println!("{}", line(&event));
                }
            }
            _ = interrupt.recv() => break,
            _ = terminate.recv() => break,
        }
    }
    eprintln!("stopping…");
    if let Some(console) = console {
        console.stop().await;
    }
    feed.close().await;
    stack.stop().await;
    let _ = std::fs::remove_file(stack_file(&state_dir));
    Ok(())
}

/// Interrupted before the stack was up: what was started is killed with the start; the stack
/// file, if the start had written it, would name an emulator that is gone.
fn stopped_while_starting(state_dir: &std::path::Path) -> Result<()> {
    eprintln!("stopping… (interrupted while starting)");
    let _ = std::fs::remove_file(stack_file(state_dir));
    Ok(())
}

/// One status event as a line for people.
pub fn line(event: &TaskStatusChanged) -> String {
    let previous = event.previous_status.map(|s| s.as_str()).unwrap_or("—");
    let reason = event.reason.as_deref().map(|r| format!("  reason={r}")).unwrap_or_default();
    format!(
        "{}  {:<24} {:<8} {:<9} → {:<9} (#{}){reason}",
        event.occurred_at.format("%H:%M:%S%.3f"),
        event.order_id,
        event.owner,
        previous,
        event.status.as_str(),
        event.sequence
    )
}

fn parse_item(text: &str) -> Result<OrderItem> {
    let parts: Vec<&str> = text.split(':').collect();
    let (sku, quantity, price) = match parts.as_slice() {
        [sku, quantity] => (sku, quantity, None),
        [sku, quantity, price] => (sku, quantity, Some(price)),
        _ => bail!("--item {text:?}: expected SKU:QUANTITY or SKU:QUANTITY:UNIT_PRICE"),
    };
    Ok(OrderItem {
        sku: sku.to_string(),
        quantity: quantity.parse().with_context(|| format!("--item {text:?}: quantity"))?,
        unit_price: price.map(|p| p.parse().with_context(|| format!("--item {text:?}: unit price in minor units"))).transpose()?,
    })
}

async fn catalogue(state_dir: &std::path::Path, command: CatalogueCommand) -> Result<()> {
    let stack = load_stack(state_dir).await?;
    let aws = stack.sdk_config().await;
    match command {
        CatalogueCommand::Load { file, stock } => {
            let loaded = taskflow::catalogue::load(&aws, &stack, &file, stock).await?;
            println!("{} catalogue entries written to {}", loaded.entries, stack.output("CatalogueTableName")?);
            if stock {
                println!("{} stock counts written to {}", loaded.stock, stack.output("InventoryTableName")?);
            }
        }
        CatalogueCommand::List { json } => {
            let entries = taskflow::catalogue::list(&aws, &stack).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&entries)?);
                return Ok(());
            }
            println!("{:<16} {:>12} {:<8} {:<8} NAME", "SKU", "UNIT PRICE", "CURRENCY", "ACTIVE");
            for e in &entries {
                println!("{:<16} {:>12} {:<8} {:<8} {}", e.sku, e.unit_price, e.currency, if e.active { "yes" } else { "no" }, e.name);
            }
        }
    }
    Ok(())
}

pub fn new_order_id() -> String {
    format!("ord-{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

async fn submit(state_dir: &std::path::Path, order: SubmitOrder) -> Result<()> {
    let client = Client::connect(&load_stack(state_dir).await?).await?;
    let order = match order {
        SubmitOrder::File { path } => {
            let detail = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
            client.submit_detail(&detail).await?;
            println!("submitted {}", path.display());
            return Ok(());
        }
        SubmitOrder::Purchase { owner, items, currency, payment_token, order_id } => OrderSubmitted {
            schema_version: SCHEMA_VERSION,
            order_id: order_id.unwrap_or_else(new_order_id),
            owner,
            kind: OrderKind::Purchase,
            items: items.iter().map(|i| parse_item(i)).collect::<Result<_>>()?,
            currency,
            payment_token: Some(PaymentToken::new(payment_token)),
            refund_of: None,
            amount: None,
            attachments: Vec::new(),
        },
        SubmitOrder::Refund { refund_of, owner, amount, currency, order_id } => OrderSubmitted {
            schema_version: SCHEMA_VERSION,
            order_id: order_id.unwrap_or_else(new_order_id),
            owner,
            kind: OrderKind::Refund,
            items: Vec::new(),
            currency,
            payment_token: None,
            refund_of: Some(refund_of),
            amount,
            attachments: Vec::new(),
        },
    };
    client.submit(&order).await?;
    println!("{}", order.order_id);
    Ok(())
}

async fn cancel(state_dir: &std::path::Path, owner: &str, order_id: &str) -> Result<()> {
    // An owner or order id no order can have is refused at once, as the API refuses it (400),
    // rather than waited for.
    if let Err(e) = taskflow_contracts::OwnerId::parse(owner) {
        bail!("InvalidOwner: {owner:?} is not an owner id: {e}");
    }
    if !taskflow_contracts::keys::order_id_ok(order_id) {
        bail!("InvalidOrderId: {order_id:?}: an order id is 1-{} of [A-Za-z0-9_-]", taskflow_contracts::keys::MAX_ORDER_ID_CHARS);
    }
    let stack = load_stack(state_dir).await?;
    let client = Client::connect(&stack).await?;
    // `taskflow submit` returns before intake has recorded the order: give it a moment.
    let Some(task) = client.find_recorded(owner, order_id, Duration::from_secs(10)).await? else {
        bail!("OrderNotFound: {owner} has no order {order_id} (none recorded within 10 s)")
    };
    taskflow::operations::request_cancel(&stack, owner, order_id).await?;
    // The cancel is decided by intake; wait a little for it to show.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut now = task;
    while now.status == taskflow_contracts::TaskStatus::Received && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(300)).await;
        now = client.find(Some(owner), order_id).await?.unwrap_or(now);
    }
    // Refused: the reason intake gave (services/shared/src/cancel.rs), and a failing exit code.
    match now.status {
        taskflow_contracts::TaskStatus::Cancelled => println!("{order_id}: CANCELLED (nothing charged)"),
        _ if now.kind != Some(taskflow_contracts::OrderKind::Purchase) => {
            bail!("NotCancellable: order {order_id} is a refund (only a purchase can be cancelled)")
        }
        taskflow_contracts::TaskStatus::Received => bail!("{order_id}: still RECEIVED after 10 s: the cancel was not decided yet (see `taskflow status`)"),
        status => bail!("{}", taskflow_shared::cancel::refused(order_id, status)),
    }
    Ok(())
}

async fn sweep(state_dir: &std::path::Path, json: bool) -> Result<()> {
    let report = taskflow::operations::sweep_now(&load_stack(state_dir).await?).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!(
        "looked at {}, finished {}, handed to operators {}, left alone {}",
        report["lookedAt"], report["finished"], report["handedToOperators"], report["leftAlone"]
    );
    for line in report["tasks"].as_array().into_iter().flatten() {
        println!(
            "  {:<24} {:<8} {:<10} {:<18} {}",
            line["orderId"].as_str().unwrap_or_default(),
            line["owner"].as_str().unwrap_or_default(),
            line["status"].as_str().unwrap_or_default(),
            line["outcome"].as_str().unwrap_or_default(),
            line["reason"].as_str().unwrap_or_default()
        );
    }
    Ok(())
}

async fn redrive(state_dir: &std::path::Path, owner: Option<&str>, order_id: &str) -> Result<()> {
    let stack = load_stack(state_dir).await?;
    let client = Client::connect(&stack).await?;
    let Some(task) = client.find(owner, order_id).await? else { bail!("no task for order {order_id}") };
    let taskflow::operations::Redriven::Redriven { execution_arn, redrive_date } = taskflow::operations::redrive(&stack, &task).await?;
    println!("{order_id}: execution {execution_arn} redriven at {redrive_date}");
    Ok(())
}

fn token(state_dir: &std::path::Path, owner: &str, ttl: i64) -> Result<()> {
    if DEPLOYED.get().is_some_and(Option::is_some) {
        bail!("tokens for a deployed stack come from its user pool (OwnerPoolId), not from taskflow");
    }
    let issuer = taskflow::auth::Issuer::load(&state_dir.join(taskflow::local::TOKEN_ISSUER_FILE))?;
    println!("{}", issuer.token(owner, ttl)?);
    Ok(())
}

/// The HTTP API's URL and a bearer token: `--token`, or one made for `--owner` by the local
/// stack's issuer.
async fn api_and_token(state_dir: &std::path::Path, owner: Option<&str>, token: Option<String>) -> Result<(String, String)> {
    let stack = load_stack(state_dir).await?;
    let api = stack.output("ApiUrl")?.to_string();
    let token = match (token, owner) {
        (Some(token), _) => token,
        (None, Some(owner)) if !DEPLOYED.get().is_some_and(Option::is_some) => {
            taskflow::auth::Issuer::load(&state_dir.join(taskflow::local::TOKEN_ISSUER_FILE))?.token(owner, 600)?
        }
        _ => bail!("give --owner (the local stack makes a token) or --token (a deployed stack's user pool token)"),
    };
    Ok((api, token))
}

async fn attach(state_dir: &std::path::Path, order_id: &str, file: &std::path::Path, owner: Option<&str>, token: Option<String>, content_type: Option<&str>) -> Result<()> {
    let (api, token) = api_and_token(state_dir, owner, token).await?;
    let attachment = taskflow::attach::attach(&api, &token, order_id, file, content_type).await?;
    println!(
        "{}  {}  {} bytes  {}  {}",
        attachment["id"].as_str().unwrap_or_default(),
        attachment["name"].as_str().unwrap_or_default(),
        attachment["size"],
        attachment["contentType"].as_str().unwrap_or_default(),
        attachment["checksum"].as_str().unwrap_or_default()
    );
    Ok(())
}

async fn attachments(state_dir: &std::path::Path, order_id: &str, owner: Option<&str>, token: Option<String>, get: Option<&str>, out: Option<PathBuf>, json: bool) -> Result<()> {
    let (api, token) = api_and_token(state_dir, owner, token).await?;
    if let Some(id) = get {
        let (attachment, bytes) = taskflow::attach::download(&api, &token, order_id, id).await?;
        let out = out.context("--out FILE")?;
        std::fs::write(&out, &bytes).with_context(|| format!("writing {}", out.display()))?;
        eprintln!("{} ({} bytes) written to {}", attachment["name"].as_str().unwrap_or_default(), bytes.len(), out.display());
        return Ok(());
    }
    let list = taskflow::attach::list(&api, &token, order_id).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(());
    }
    if list.is_empty() {
        println!("no attachments on {order_id}");
    }
    for a in list {
        println!(
            "{}  {}  {} bytes  {}  {}  {}",
            a["id"].as_str().unwrap_or_default(),
            a["uploadedAt"].as_str().unwrap_or_default(),
            a["size"],
            a["contentType"].as_str().unwrap_or_default(),
            a["checksum"].as_str().unwrap_or_default(),
            a["name"].as_str().unwrap_or_default()
        );
    }
    Ok(())
}

/// The operator's bearer token: `--token`, or one minted by the local stack's issuer.
fn operator_token(state_dir: &std::path::Path, args: &OperatorArgs) -> Result<String> {
    match &args.token {
        Some(token) => Ok(token.clone()),
        None if DEPLOYED.get().is_some_and(Option::is_some) => bail!("pass --token (a Cognito access token of a member of the operators group)"),
        None => taskflow::operator::local_token(state_dir, &args.operator, 3600),
    }
}

async fn operator_call(state_dir: &std::path::Path, args: &OperatorArgs, method: &str, path: &str, body: Option<&serde_json::Value>) -> Result<serde_json::Value> {
    let stack = load_stack(state_dir).await?;
    let api = stack.output("ApiUrl").context("the stack has no ApiUrl output")?.to_string();
    let (status, answer) = taskflow::operator::request(&api, method, path, &operator_token(state_dir, args)?, body).await?;
    if !(200..300).contains(&status) {
        bail!("HTTP {status} {}: {}", answer["error"].as_str().unwrap_or("error"), answer["message"].as_str().unwrap_or(&answer.to_string()));
    }
    Ok(answer)
}

fn print_task_rows(tasks: &[serde_json::Value]) {
    println!("{:<24} {:<16} {:<8} {:<18} {:<24} {:>12} {}", "ORDER", "OWNER", "KIND", "STATUS", "REASON", "AMOUNT", "UPDATED");
    for t in tasks {
        let s = |k: &str| t[k].as_str().unwrap_or("").to_string();
        println!(
            "{:<24} {:<16} {:<8} {:<18} {:<24} {:>12} {}",
            s("orderId"),
            s("owner"),
            s("kind"),
            s("status"),
            s("reason"),
            taskflow::client::amount_text(t["amount"].as_u64().unwrap_or(0), &s("currency")).unwrap_or_else(|| "-".into()),
            s("updatedAt")
        );
    }
}

async fn operator_tasks(state_dir: &std::path::Path, args: &OperatorArgs, query: &[(&str, String)], json: bool) -> Result<()> {
    let query: Vec<String> = query.iter().map(|(k, v)| format!("{k}={}", taskflow::operator::encode(v))).collect();
    let answer = operator_call(state_dir, args, "GET", &format!("/tasks?{}", query.join("&")), None).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
        return Ok(());
    }
    let tasks = answer["tasks"].as_array().cloned().unwrap_or_default();
    print_task_rows(&tasks);
    eprintln!("{} task(s)", tasks.len());
    if let Some(next) = answer["next"].as_str() {
        eprintln!("more: --next {next}");
    }
    Ok(())
}

async fn approvals(state_dir: &std::path::Path, command: ApprovalsCommand) -> Result<()> {
    match command {
        ApprovalsCommand::List { operator, json } => {
            let answer = operator_call(state_dir, &operator, "GET", "/approvals?limit=1000", None).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&answer)?);
                return Ok(());
            }
            let tasks = answer["tasks"].as_array().cloned().unwrap_or_default();
            print_task_rows(&tasks);
            eprintln!("{} refund(s) waiting for a decision", tasks.len());
        }
        ApprovalsCommand::Approve { order_id, owner, reason, operator } => {
            let body = serde_json::json!({"owner": owner, "reason": reason});
            let answer = operator_call(state_dir, &operator, "POST", &format!("/approvals/{}/approve", taskflow::operator::encode(&order_id)), Some(&body)).await?;
            println!("approved {order_id} of {owner} as {}: {}", answer["approval"]["by"].as_str().unwrap_or("?"), answer["note"].as_str().unwrap_or(""));
        }
        ApprovalsCommand::Deny { order_id, owner, reason, operator } => {
            let body = serde_json::json!({"owner": owner, "reason": reason});
            let answer = operator_call(state_dir, &operator, "POST", &format!("/approvals/{}/deny", taskflow::operator::encode(&order_id)), Some(&body)).await?;
            println!("denied {order_id} of {owner} as {}: {}", answer["approval"]["by"].as_str().unwrap_or("?"), answer["note"].as_str().unwrap_or(""));
        }
    }
    Ok(())
}

async fn trace(state_dir: &std::path::Path, owner: Option<&str>, order_id: &str, json: bool) -> Result<()> {
    let client = Client::connect(&load_stack(state_dir).await?).await?;
    let Some(task) = client.find(owner, order_id).await? else { bail!("no task for order {order_id}") };
    let Some(trace_id) = task.trace_id.clone() else { bail!("the task of {order_id} has no trace id") };
    let documents = taskflow::trace::documents(&client.aws, &trace_id).await?;
    if json {
        for document in &documents {
            println!("{document}");
        }
        return Ok(());
    }
    let spans = taskflow::trace::spans(&documents)?;
    println!("order {order_id}  trace {trace_id}  {} segments, {} spans", spans.iter().filter(|s| s.segment).count(), spans.len());
    print!("{}", taskflow::trace::waterfall(&spans));
    Ok(())
}

async fn status(state_dir: &std::path::Path, owner: Option<&str>, order_id: &str, json: bool) -> Result<()> {
    let client = Client::connect(&load_stack(state_dir).await?).await?;
    let Some(task) = client.find(owner, order_id).await? else { bail!("no task for order {order_id}") };
    if json {
        println!("{}", serde_json::to_string_pretty(&task)?);
        return Ok(());
    }
    println!("order    {}", task.order_id);
    println!("owner    {}", task.owner);
    println!("task     {}", task.task_id);
    println!("kind     {}", task.kind.map_or("?", |k| k.as_str()));
    println!("status   {}{}", task.status, task.reason.map(|r| format!(" ({r})")).unwrap_or_default());
    if let Some(detail) = &task.reason_detail {
        println!("detail   {detail}");
    }
    // An order rejected at intake was never priced: no amount, no currency.
    if let Some(amount) = taskflow::client::amount_text(task.amount, &task.currency) {
        println!("amount   {amount} (minor units)");
    }
    if let Some(charge) = &task.charge_id {
        println!("charge   {charge}");
    }
    if let Some(refund) = &task.refund_id {
        println!("refund   {refund} ({} {} refunded)", task.refunded, task.currency);
    }
    if let Some(of) = &task.refund_of {
        println!("refunds  {of}");
    }
    if let Some(approval) = &task.approval {
        let reason = approval.reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default();
        println!("approval {:?} by {} at {}{reason}", approval.decision, approval.by, approval.at.format("%Y-%m-%d %H:%M:%S UTC"));
    }
    if let Some(trace_id) = &task.trace_id {
        println!("trace    {trace_id} (taskflow trace {})", task.task_id);
    }
    for receipt in &task.receipts {
        println!("receipt  {receipt}");
    }
    if let Some(execution) = &task.execution_arn {
        println!("workflow {execution}");
    }
    if let Some(attention) = &task.attention {
        println!("ATTENTION {attention}   (the sweeper could not finish it: an operator must)");
    }
    println!("history");
    for entry in &task.history {
        let reason = entry.reason.map(|r| format!("  {r}")).unwrap_or_default();
        println!("  {}  {}{reason}", entry.at.format("%Y-%m-%d %H:%M:%S%.3f"), entry.status);
    }
    Ok(())
}

async fn tasks(state_dir: &std::path::Path, owner: &str, json: bool) -> Result<()> {
    let client = Client::connect(&load_stack(state_dir).await?).await?;
    let tasks = client.tasks_of(owner).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&tasks)?);
        return Ok(());
    }
    println!("{:<24} {:<8} {:<10} {:<28} {:>12} {}", "ORDER", "KIND", "STATUS", "REASON", "AMOUNT", "CREATED");
    for t in &tasks {
        println!(
            "{:<24} {:<8} {:<10} {:<28} {:>12} {}",
            t.order_id,
            t.kind.map_or("?", |k| k.as_str()),
            t.status.as_str(),
            t.reason.map_or("", |r| r.as_str()),
            taskflow::client::amount_text(t.amount, &t.currency).unwrap_or_else(|| "-".into()),
            t.created_at.format("%Y-%m-%d %H:%M:%S")
        );
    }
    eprintln!("{} task(s) of {owner}", tasks.len());
    Ok(())
}

async fn receipt(state_dir: &std::path::Path, owner: Option<&str>, order_id: &str, out: Option<PathBuf>) -> Result<()> {
    let client = Client::connect(&load_stack(state_dir).await?).await?;
    let (key, body) = client.receipt(owner, order_id).await?;
    match out {
        Some(path) => {
            std::fs::write(&path, &body).with_context(|| format!("writing {}", path.display()))?;
            eprintln!("{key} → {}", path.display());
        }
        None => print!("{}", String::from_utf8_lossy(&body)),
    }
    Ok(())
}

async fn task_log(state_dir: &std::path::Path, owner: Option<&str>, order_id: &str, out: Option<PathBuf>) -> Result<()> {
    let client = Client::connect(&load_stack(state_dir).await?).await?;
    let (key, text) = client.task_log(owner, order_id).await?;
    match out {
        Some(path) => {
            std::fs::write(&path, &text).with_context(|| format!("writing {}", path.display()))?;
            eprintln!("{key} → {}", path.display());
        }
        None => print!("{text}"),
    }
    Ok(())
}

async fn dlq(state_dir: &std::path::Path, command: Dlq) -> Result<()> {
    let stack = load_stack(state_dir).await?;
    match command {
        Dlq::List { show } => {
            let sqs = aws_sdk_sqs::Client::new(&stack.sdk_config().await);
            for queue in taskflow::dlq::queues(&stack) {
                let depth = taskflow::dlq::depth(&sqs, &queue.url).await?;
                println!("{:<14} {depth:>6} message(s)  {}", queue.name, queue.url);
                if show > 0 && depth > 0 {
                    let mut shown = 0;
                    taskflow::dlq::drain(&sqs, &queue.url, false, show, |dead, _| {
                        if shown < show {
                            let body: String = dead.body.chars().take(160).collect();
                            println!("    {} (received {}×): {body}", dead.message_id, dead.receive_count);
                            shown += 1;
                        }
                        async { Ok(()) }
                    })
                    .await?;
                }
            }
        }
        Dlq::Redrive { queue, dry_run } => {
            let publisher = queue.eq_ignore_ascii_case(taskflow::dlq::PUBLISHER);
            let (done, would) = if publisher { ("published again", "would publish again") } else { ("sent back", "would send back") };
            let mut left = 0;
            let moved = taskflow::dlq::redrive(&stack, &queue, dry_run, |dead| {
                let body: String = dead.body.chars().take(160).collect();
                match &dead.error {
                    Some(error) => {
                        left += 1;
                        println!("left in the queue {}: {error}\n    {body}", dead.message_id);
                    }
                    None => println!("{} {}: {body}", if dry_run { would } else { done }, dead.message_id),
                }
            })
            .await?;
            println!("{moved} message(s) {}", if dry_run { format!("{would} (dry run: nothing moved)") } else { done.to_string() });
            if left > 0 {
                bail!("{left} message(s) left in the {queue} dead-letter queue (see above)");
            }
        }
    }
    Ok(())
}

async fn events(state_dir: &std::path::Path, follow: bool, wait: u64, json: bool) -> Result<()> {
    let feed = StatusFeed::open(&load_stack(state_dir).await?).await?;
    let mut quiet_since = tokio::time::Instant::now();
    let result: Result<()> = async {
        loop {
            let events = tokio::select! {
                events = feed.next(Duration::from_secs(1)) => events?,
                _ = tokio::signal::ctrl_c() => return Ok(()),
            };
            if !events.is_empty() {
                quiet_since = tokio::time::Instant::now();
            }
            for event in events {
                println!("{}", if json { serde_json::to_string(&event)? } else { line(&event) });
            }
            if !follow && quiet_since.elapsed() >= Duration::from_secs(wait) {
                return Ok(());
            }
        }
    }
    .await;
    feed.close().await;
    result
}
