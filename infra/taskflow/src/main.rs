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
    },
    /// Start the local stack, run sample orders through it, print a summary; exit 0 only if
    /// every order reached the status it should.
    Demo,
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
    /// List an owner's tasks, newest first.
    Tasks {
        #[arg(long)]
        owner: String,
        #[arg(long)]
        json: bool,
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
        #[arg(long)]
        owner: String,
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
        Command::Up { faults } => up(state_dir, faults).await,
        Command::Dlq { command } => dlq(&state_dir, command).await,
        Command::Catalogue { command } => catalogue(&state_dir, command).await,
        Command::Demo => demo::run(state_dir).await,
        Command::Submit { order } => submit(&state_dir, order).await,
        Command::Status { order_id, owner, json } => status(&state_dir, owner.as_deref(), &order_id, json).await,
        Command::Events { follow, wait, json } => events(&state_dir, follow, wait, json).await,
        Command::Tasks { owner, json } => tasks(&state_dir, &owner, json).await,
        Command::Receipt { order_id, owner, out } => receipt(&state_dir, owner.as_deref(), &order_id, out).await,
        Command::Trace { order_id, owner, json } => trace(&state_dir, owner.as_deref(), &order_id, json).await,
        Command::Token { owner, ttl } => token(&state_dir, &owner, ttl),
        Command::Attach { order_id, file, owner, token, content_type } => attach(&state_dir, &order_id, &file, owner.as_deref(), token, content_type.as_deref()).await,
        Command::Attachments { order_id, owner, token, get, out, json } => attachments(&state_dir, &order_id, owner.as_deref(), token, get.as_deref(), out, json).await,
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

async fn up(state_dir: PathBuf, faults: FaultArgs) -> Result<()> {
    eprintln!("starting the local stack (moto server, template, functions)…");
    let mut options = Options::new(&state_dir);
    faults.apply(&mut options);
    if options.faults.any() {
        eprintln!("fault injection on: {:?}", options.faults);
    }
    let stack = LocalStack::start(options).await?;
    let feed = StatusFeed::open(&stack.info).await?;
    println!("taskflow local stack is up ({:.1} s)", stack.started_in.as_secs_f64());
    println!("  endpoint  {}", stack.info.endpoint.as_deref().unwrap_or_default());
    println!("  bus       {}   (publish OrderSubmitted here; TaskStatusChanged comes out here)", stack.info.output("EventBusName")?);
    println!("  stack     {}", stack_file(&state_dir).display());
    println!("  logs      {}", state_dir.join("logs").display());
    println!();
    println!("Point the aws CLI at it:");
    println!("  {}", stack.cli_hint());
    println!("  aws --endpoint-url \"$AWS_ENDPOINT_URL\" events put-events --entries file://contracts/examples/order-submitted.purchase.json");
    println!();
    println!("Status events (Ctrl-C to stop):");
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        tokio::select! {
            events = feed.next(Duration::from_secs(1)) => {
                for event in events? {
                    println!("{}", line(&event));
                }
            }
            _ = tokio::signal::ctrl_c() => break,
            _ = terminate.recv() => break,
        }
    }
    eprintln!("stopping…");
    feed.close().await;
    stack.stop().await;
    let _ = std::fs::remove_file(stack_file(&state_dir));
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
    println!("amount   {} {} (minor units)", task.amount, task.currency);
    if let Some(charge) = &task.charge_id {
        println!("charge   {charge}");
    }
    if let Some(refund) = &task.refund_id {
        println!("refund   {refund} ({} {} refunded)", task.refunded, task.currency);
    }
    if let Some(of) = &task.refund_of {
        println!("refunds  {of}");
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
            format!("{} {}", t.amount, t.currency),
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
