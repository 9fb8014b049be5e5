//! The console's pages and routes.

use super::html::{esc, money, page, status_badge, url, Nav};
use super::{actions, csrf_ok, graph, Console};
use axum::extract::{Form, Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Redirect, Response};
use chrono::{DateTime, Duration as Span, Timelike, Utc};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Arc;
use taskflow_contracts::{TaskStatus, TaskStatusChanged};
use taskflow_shared::ledger::Ledger;
use taskflow_shared::tasks::{TaskRecord, TaskStore};

type Shared = State<Arc<Console>>;

/// How many tasks a listing reads at most (a Scan of the task table: an operator's tool).
const SCAN_LIMIT: usize = 5000;
/// How many rows the task list shows.
const ROWS: usize = 200;

pub fn error(status: StatusCode, message: &str) -> Response {
    let body = format!(r#"<h1>{}</h1><p class="error">{}</p><p><a href="/">Back to the tasks</a></p>"#, status.as_u16(), esc(message));
    (status, Html(page(&status.to_string(), "", Nav::None, &body))).into_response()
}

fn failed(e: anyhow::Error) -> Response {
    error(StatusCode::BAD_GATEWAY, &format!("{e:#}"))
}

/// A status event as the live list reads it (JSON; the task id is the event id's prefix).
pub fn event_json(event: &TaskStatusChanged) -> serde_json::Value {
    serde_json::json!({
        "taskId": event.event_id.split('#').next().unwrap_or_default(),
        "orderId": event.order_id,
        "owner": event.owner,
        "kind": event.kind.map(|k| k.as_str()),
        "status": event.status.as_str(),
        "previousStatus": event.previous_status.map(|s| s.as_str()),
        "reason": event.reason,
        "sequence": event.sequence,
        "occurredAt": event.occurred_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    })
}

/// `GET /events`: the status events as server-sent events (`event: status`, data: JSON).
pub async fn events(State(console): Shared) -> impl IntoResponse {
    let rx = console.events.subscribe();
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(json) => return Some((Ok::<_, std::convert::Infallible>(Event::default().event("status").data(json)), rx)),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// Every task in the table (at most [`SCAN_LIMIT`]), newest first, and whether there were more.
async fn all_tasks(console: &Console) -> anyhow::Result<(Vec<TaskRecord>, bool)> {
    let table = console.stack.output("TaskTableName")?;
    let mut tasks = Vec::new();
    let mut start = None;
    let mut more = false;
    loop {
        let out = console
            .dynamo
            .scan()
            .table_name(table)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("Scan {table}: {}", aws_sdk_dynamodb::error::DisplayErrorContext(&e)))?;
        for item in out.items.unwrap_or_default() {
            // A record this version cannot read is skipped here; `taskflow status` names it.
            if let Ok(task) = serde_dynamo::from_item::<_, TaskRecord>(item) {
                tasks.push(task);
            }
        }
        start = out.last_evaluated_key;
        if start.is_none() {
            break;
        }
        if tasks.len() >= SCAN_LIMIT {
            more = true;
            break;
        }
    }
    tasks.sort_by_key(|t| std::cmp::Reverse(t.created_at));
    Ok((tasks, more))
}

#[derive(Deserialize, Default)]
pub struct Filters {
    #[serde(default)]
    owner: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    kind: String,
    /// `15m`, `1h`, `24h`, `7d` or empty (any time).
    #[serde(default)]
    since: String,
    /// An order id (or a part of one), or a task id.
    #[serde(default)]
    q: String,
}

fn since(text: &str) -> Option<Span> {
    match text {
        "15m" => Some(Span::minutes(15)),
        "1h" => Some(Span::hours(1)),
        "24h" => Some(Span::hours(24)),
        "7d" => Some(Span::days(7)),
        _ => None,
    }
}

fn select(name: &str, label: &str, current: &str, options: &[(&str, &str)]) -> String {
    let mut out = format!(r#"<label>{label} <select name="{name}">"#);
    for (value, text) in options {
        let selected = if *value == current { " selected" } else { "" };
        let _ = write!(out, r#"<option value="{}"{selected}>{}</option>"#, esc(value), esc(text));
    }
    out.push_str("</select></label>");
    out
}

fn task_row(t: &TaskRecord) -> String {
    format!(
        r#"<tr data-task-id="{tid}"><td><a href="/task/{href}">{order}</a></td><td>{owner}</td><td>{kind}</td><td class="status">{status}</td><td class="reason">{reason}</td><td class="num">{amount}</td><td><time datetime="{created}">{created_short}</time></td></tr>"#,
        tid = esc(&t.task_id),
        href = url(&t.task_id),
        order = esc(&t.order_id),
        owner = esc(&t.owner),
        kind = t.kind.map_or("?", |k| k.as_str()),
        status = status_badge(t.status.as_str()),
        reason = t.reason.map_or("", |r| r.as_str()),
        amount = money(t.amount, &t.currency),
        created = t.created_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        created_short = t.created_at.format("%Y-%m-%d %H:%M:%S"),
    )
}

/// `GET /`: the tasks, newest first, filtered; new status events update it live.
pub async fn tasks(State(console): Shared, Query(f): Query<Filters>) -> Response {
    let q = f.q.trim();
    if taskflow_contracts::keys::is_derived_id(q) {
        return Redirect::to(&format!("/task/{}", url(q))).into_response();
    }
    let owner = f.owner.trim();
    let (list, more) = if owner.is_empty() {
        match all_tasks(&console).await {
            Ok(x) => x,
            Err(e) => return failed(e),
        }
    } else {
        match console.client.tasks_of(owner).await {
            Ok(x) => (x, false),
            Err(e) => return failed(e),
        }
    };
    let cutoff = since(&f.since).map(|s| Utc::now() - s);
    let matching: Vec<&TaskRecord> = list
        .iter()
        .filter(|t| f.status.is_empty() || t.status.as_str() == f.status)
        .filter(|t| f.kind.is_empty() || t.kind.is_some_and(|k| k.as_str() == f.kind))
        .filter(|t| cutoff.is_none_or(|c| t.created_at >= c))
        .filter(|t| q.is_empty() || t.order_id.contains(q))
        .collect();
    let statuses = [("", "any"), ("RECEIVED", "RECEIVED"), ("CHARGING", "CHARGING"), ("REFUNDING", "REFUNDING"), ("AWAITING_APPROVAL", "AWAITING_APPROVAL"), ("COMPLETED", "COMPLETED"), ("FAILED", "FAILED"), ("REJECTED", "REJECTED"), ("CANCELLED", "CANCELLED")];
    // The operators' queue: refunds above the approval threshold waiting for a decision.
    let awaiting = list.iter().filter(|t| t.status == TaskStatus::AwaitingApproval).count();
    let awaiting_view = if f.status == TaskStatus::AwaitingApproval.as_str() {
        r#"<p class="view" id="awaiting">Showing the refunds awaiting approval: open one to approve or deny it. <a href="/">All tasks</a></p>"#.to_string()
    } else {
        format!(r#"<p class="view" id="awaiting"><a href="/?status=AWAITING_APPROVAL">Awaiting approval: <span id="awaiting-count">{awaiting}</span> refund(s)</a></p>"#)
    };
    let mut body = String::new();
    let _ = write!(
        body,
        r#"<h1>Tasks</h1>
{awaiting_view}
<form class="filters" method="get" action="/" role="search" id="filters">
<label>Order id <input type="search" name="q" value="{q}" placeholder="ord-… or t-…" size="22"></label>
<label>Owner <input type="text" name="owner" value="{owner}" size="14" autocomplete="off"></label>
{status}{kind}{since}
<button type="submit">Filter</button> <a href="/">Clear</a>
</form>
<p class="live" id="live" role="status" aria-live="polite" data-state="connecting">Live updates: connecting…</p>
<p class="count"><span id="shown">{shown}</span> of <span id="matching">{n}</span> matching task(s){more}, newest first.</p>
<table class="tasks" id="tasks"><caption class="sr-only">Tasks</caption>
<thead><tr><th scope="col">Order</th><th scope="col">Owner</th><th scope="col">Kind</th><th scope="col">Status</th><th scope="col">Reason</th><th scope="col" class="num">Amount</th><th scope="col">Created</th></tr></thead>
<tbody>"#,
        q = esc(q),
        owner = esc(owner),
        status = select("status", "Status", &f.status, &statuses),
        kind = select("kind", "Kind", &f.kind, &[("", "any"), ("purchase", "purchase"), ("refund", "refund")]),
        since = select("since", "Created", &f.since, &[("", "any time"), ("15m", "last 15 min"), ("1h", "last hour"), ("24h", "last 24 h"), ("7d", "last 7 days")]),
        shown = matching.len().min(ROWS),
        n = matching.len(),
        more = if more { format!(" (the first {SCAN_LIMIT} tasks read; filter by owner to see all of one owner's)") } else { String::new() },
    );
    for t in matching.iter().take(ROWS) {
        body.push_str(&task_row(t));
    }
    body.push_str("</tbody></table>");
    Html(page("Tasks", &console.stack.stack_name, Nav::Tasks, &body)).into_response()
}

/// The states an execution entered, in order, and its status, from its history.
async fn taken(console: &Console, execution_arn: &str) -> anyhow::Result<(graph::Taken, Option<String>)> {
    let described = console
        .sfn
        .describe_execution()
        .execution_arn(execution_arn)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("DescribeExecution: {}", aws_sdk_sfn::error::DisplayErrorContext(&e)))?;
    let mut taken = graph::Taken { entered: Vec::new(), status: Some(described.status().as_str().to_string()) };
    let mut token = None;
    loop {
        let out = console
            .sfn
            .get_execution_history()
            .execution_arn(execution_arn)
            .set_next_token(token)
            .max_results(1000)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("GetExecutionHistory: {}", aws_sdk_sfn::error::DisplayErrorContext(&e)))?;
        for event in out.events() {
            if let Some(details) = event.state_entered_event_details().filter(|_| event.r#type().as_str().ends_with("StateEntered")) {
                taken.entered.push(details.name().to_string());
            }
        }
        token = out.next_token;
        if token.is_none() {
            break;
        }
    }
    let definition = console
        .sfn
        .describe_state_machine()
        .state_machine_arn(described.state_machine_arn())
        .send()
        .await
        .ok()
        .map(|d| d.definition);
    Ok((taken, definition))
}

/// The workflow a task of this kind runs, as the repository writes it (when its execution's
/// own definition cannot be read, or it has none).
fn definition_of(kind: Option<taskflow_contracts::OrderKind>) -> &'static str {
    match kind {
        Some(taskflow_contracts::OrderKind::Refund) => include_str!("../../../../statemachine/refund.asl.json"),
        _ => include_str!("../../../../statemachine/purchase.asl.json"),
    }
}

#[derive(Deserialize, Default)]
pub struct Done {
    /// The action just taken (`/task/{taskId}?done={name}`, after its POST).
    #[serde(default)]
    done: String,
}

/// `GET /task/{taskId}`.
pub async fn task(State(console): Shared, Path(task_id): Path<String>, Query(done): Query<Done>) -> Response {
    let task = match console.tasks.get(&task_id).await {
        Ok(Some(t)) => t,
        Ok(None) => return error(StatusCode::NOT_FOUND, &format!("No task {task_id}.")),
        Err(e) => return failed(e.into()),
    };
    let mut body = String::new();
    let _ = write!(
        body,
        r#"<p class="crumbs"><a href="/">Tasks</a> › {order}</p>
<h1>Order <span class="id">{order}</span> {status}</h1>
<dl class="facts task" data-task-id="{tid}" data-terminal="{terminal}">
<dt>Owner</dt><dd><a href="/?owner={owner_q}">{owner}</a></dd>
<dt>Kind</dt><dd>{kind}</dd>
<dt>Amount</dt><dd>{amount}</dd>
<dt>Reason</dt><dd>{reason}{detail}</dd>
<dt>Task id</dt><dd><code>{tid}</code></dd>
{refund_of}{approval}
<dt>Created</dt><dd>{created}</dd>
</dl>"#,
        order = esc(&task.order_id),
        status = status_badge(task.status.as_str()),
        tid = esc(&task.task_id),
        terminal = task.status.is_terminal(),
        owner_q = url(&task.owner),
        owner = esc(&task.owner),
        kind = task.kind.map_or("?", |k| k.as_str()),
        amount = money(task.amount, &task.currency),
        reason = task.reason.map_or("—", |r| r.as_str()),
        detail = task.reason_detail.as_deref().map(|d| format!(r#" <span class="detail">{}</span>"#, esc(d))).unwrap_or_default(),
        refund_of = task
            .refund_of
            .as_deref()
            .map(|of| format!(r#"<dt>Refund of</dt><dd><a href="/task/{}">{}</a></dd>"#, url(&taskflow_contracts::keys::task_id(&task.owner, of)), esc(of)))
            .unwrap_or_default(),
        approval = task
            .approval
            .as_ref()
            .map(|a| format!(
                r#"<dt>Approval</dt><dd id="approval">{decision:?} by {by} at {at}{reason}</dd>"#,
                decision = a.decision,
                by = esc(&a.by),
                at = a.at.format("%Y-%m-%d %H:%M:%S UTC"),
                reason = a.reason.as_deref().map(|r| format!(r#": <span class="detail">{}</span>"#, esc(r))).unwrap_or_default(),
            ))
            .unwrap_or_default(),
        created = task.created_at.format("%Y-%m-%d %H:%M:%S%.3f UTC"),
    );
    if let Some(done) = actions::Action::parse(&done.done) {
        let _ = write!(body, r#"<p class="done" id="done" role="status">{}</p>"#, esc(done.done()));
    }
    let buttons = actions::for_task(&task);
    if !buttons.is_empty() {
        let _ = write!(body, r#"<section aria-labelledby="h-actions"><h2 id="h-actions">Actions</h2>{}</section>"#, actions::buttons(&console, &task, &buttons, &console.csrf));
    }
    body.push_str(r#"<p class="live" id="live" role="status" aria-live="polite" data-state="connecting"></p><div class="columns"><div>"#);
    // The workflow and the path taken.
    body.push_str(r#"<section aria-labelledby="h-path"><h2 id="h-path">Path through the workflow</h2>"#);
    // Derived from the stack's workflows and the task id (the task does not note it).
    match &console.stack.workflows().ok().and_then(|w| w.execution_of(&task)) {
        Some(arn) => match taken(&console, arn).await {
            Ok((taken, definition)) => {
                let text = definition.unwrap_or_else(|| definition_of(task.kind).to_string());
                match graph::parse(&text) {
                    Ok(wf) => {
                        let _ = write!(
                            body,
                            r#"<p>Execution {}: <span id="path">{}</span></p><div class="graph">{}</div>"#,
                            esc(taken.status.as_deref().unwrap_or("?")),
                            if taken.entered.is_empty() { "no state entered yet".to_string() } else { taken.entered.iter().map(|s| esc(s)).collect::<Vec<_>>().join(" → ") },
                            graph::svg(&wf, &taken, &format!("The {} workflow; the states this order entered are highlighted", task.kind.map_or("", |k| k.as_str())))
                        );
                    }
                    Err(e) => {
                        let _ = write!(body, r#"<p class="error">The workflow's definition could not be read: {}</p>"#, esc(&e.to_string()));
                    }
                }
            }
            Err(e) => {
                let _ = write!(body, r#"<p class="error">{}</p>"#, esc(&format!("{e:#}")));
            }
        },
        None => {
            let why = if task.status == TaskStatus::Rejected { "Rejected before a workflow started." } else { "No workflow started (yet)." };
            let _ = write!(body, r#"<p id="path">{why}</p>"#);
            if let Ok(wf) = graph::parse(definition_of(task.kind)) {
                let _ = write!(body, r#"<div class="graph">{}</div>"#, graph::svg(&wf, &graph::Taken::default(), "The workflow; this order entered none of it"));
            }
        }
    }
    body.push_str("</section></div><div>");
    // The timeline.
    body.push_str(r#"<section aria-labelledby="h-timeline"><h2 id="h-timeline">Status timeline</h2><ol class="timeline" id="timeline">"#);
    let mut previous: Option<DateTime<Utc>> = None;
    for entry in &task.history {
        let delta = previous.map(|p| format!(r#" <span class="delta">+{} ms</span>"#, (entry.at - p).num_milliseconds())).unwrap_or_default();
        previous = Some(entry.at);
        let _ = write!(
            body,
            r#"<li>{} <time datetime="{}">{}</time>{delta}{}</li>"#,
            status_badge(entry.status.as_str()),
            entry.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            entry.at.format("%H:%M:%S%.3f"),
            entry.reason.map(|r| format!(r#" <span class="reason">{}</span>"#, r.as_str())).unwrap_or_default(),
        );
    }
    body.push_str("</ol></section>");
    // The ledger.
    body.push_str(r#"<section aria-labelledby="h-ledger"><h2 id="h-ledger">Ledger</h2>"#);
    let ledger_id = match (&task.refund_of, task.kind) {
        (Some(of), Some(taskflow_contracts::OrderKind::Refund)) => taskflow_contracts::keys::task_id(&task.owner, of),
        _ => task.task_id.clone(),
    };
    match console.ledger.get(&ledger_id).await {
        Ok(Some(entry)) => {
            let refunds: String = entry.refunds.iter().map(|(id, amount)| format!("<li>{} {}</li>", esc(id), money(*amount, &entry.currency))).collect();
            let _ = write!(
                body,
                r#"{note}<dl class="facts ledger"><dt>Charged</dt><dd>{charged} <span class="detail">({charge})</span></dd><dt>Refunded</dt><dd>{refunded}</dd><dt>Entry</dt><dd>{status:?}</dd><dt>Stock</dt><dd>{stock}</dd><dt>Lines</dt><dd>{lines}</dd></dl>{refunds}"#,
                note = if ledger_id != task.task_id { format!(r#"<p>The refunded order's entry (<a href="/task/{}">{}</a>):</p>"#, url(&ledger_id), esc(task.refund_of.as_deref().unwrap_or(""))) } else { String::new() },
                charged = money(entry.charged, &entry.currency),
                charge = esc(&entry.charge_id),
                refunded = money(entry.refunded, &entry.currency),
                status = entry.status,
                stock = entry.stock.map_or("not reserved".to_string(), |s| format!("{s:?}").to_lowercase()),
                lines = entry.items.iter().map(|i| format!("{} × {}", esc(&i.sku), i.quantity)).collect::<Vec<_>>().join(", "),
                refunds = if refunds.is_empty() { String::new() } else { format!(r#"<h3>Refunds</h3><ul>{refunds}</ul>"#) },
            );
        }
        Ok(None) => body.push_str("<p>Nothing charged: no ledger entry.</p>"),
        Err(e) => {
            let _ = write!(body, r#"<p class="error">{}</p>"#, esc(&e.to_string()));
        }
    }
    body.push_str("</section>");
    // Documents.
    body.push_str(r#"<section aria-labelledby="h-docs"><h2 id="h-docs">Documents</h2>"#);
    let links = actions::links(&task);
    if links.is_empty() {
        body.push_str("<p>None yet.</p>");
    } else {
        body.push_str(r#"<ul class="docs">"#);
        for link in links {
            let _ = write!(body, r#"<li><a href="{}">{}</a></li>"#, esc(&link.href), esc(&link.label));
        }
        body.push_str("</ul>");
    }
    body.push_str("</section></div></div>");
    // The trace, the page's width.
    body.push_str(r#"<section aria-labelledby="h-trace"><h2 id="h-trace">Trace</h2>"#);
    body.push_str(&trace_html(&console, &task).await);
    body.push_str("</section>");
    Html(page(&format!("Order {}", task.order_id), &console.stack.stack_name, Nav::Tasks, &body)).into_response()
}

/// The trace waterfall of `task`: `crate::trace::of_order` by task id, the call `taskflow trace`
/// makes, so the console reads whatever trace store the CLI reads.
async fn trace_html(console: &Console, task: &TaskRecord) -> String {
    let trace_id = task.trace_id.clone().unwrap_or_default();
    let spans = match crate::trace::of_order(&console.client, &task.task_id).await {
        Ok(s) => s,
        // No trace id, or no segments yet: the CLI's own words.
        Err(e) => return format!(r#"<p class="note">{}</p>"#, esc(&format!("{e:#}"))),
    };
    let t0 = spans.iter().map(|s| s.start).fold(f64::INFINITY, f64::min);
    let t1 = spans.iter().map(|s| s.end.unwrap_or(s.start)).fold(t0 + 1e-3, f64::max);
    let total = t1 - t0;
    let mut out = format!(
        r#"<p>Trace <code>{}</code>: {} spans over {:.0} ms.</p><table class="waterfall" id="waterfall"><thead><tr><th scope="col">Service / operation</th><th scope="col" class="num">Start ms</th><th scope="col" class="num">ms</th><th scope="col">Status</th><th scope="col" class="bar-col">Timeline</th></tr></thead><tbody>"#,
        esc(&trace_id),
        spans.len(),
        total * 1000.0
    );
    for (depth, span) in crate::trace::tree(&spans) {
        let start = span.start - t0;
        let duration = span.end.map(|e| e - span.start).unwrap_or(0.0);
        let x = start / total * 1000.0;
        let w = (duration / total * 1000.0).max(2.0);
        let _ = write!(
            out,
            r#"<tr class="{kind} st-{status_class}"><td class="depth-{depth}">{name}{op}</td><td class="num">{start:.1}</td><td class="num">{duration:.1}</td><td>{status}</td><td class="bar-col"><svg viewBox="0 0 1000 10" preserveAspectRatio="none" aria-hidden="true"><rect x="{x:.1}" y="1" width="{w:.1}" height="8"/></svg></td></tr>"#,
            kind = if span.segment { "segment" } else { "subsegment" },
            status_class = span.status.replace(' ', "-"),
            depth = depth.min(6),
            name = esc(&span.name),
            op = span.operation.as_deref().map(|o| format!(" <span class=\"op\">{}</span>", esc(o))).unwrap_or_default(),
            start = start * 1000.0,
            duration = duration * 1000.0,
            status = esc(span.status),
        );
    }
    out.push_str("</tbody></table>");
    out
}

/// `GET /task/{taskId}/receipt/{n}`: the receipt, as text.
pub async fn receipt(State(console): Shared, Path((task_id, n)): Path<(String, usize)>) -> Response {
    let task = match console.tasks.get(&task_id).await {
        Ok(Some(t)) => t,
        Ok(None) => return error(StatusCode::NOT_FOUND, "No such task."),
        Err(e) => return failed(e.into()),
    };
    let Some(key) = task.receipts.get(n) else { return error(StatusCode::NOT_FOUND, "No such receipt.") };
    let bucket = match console.stack.output("TaskBucketName") {
        Ok(b) => b,
        Err(e) => return failed(e),
    };
    match console.s3.get_object().bucket(bucket).key(key).send().await {
        Ok(object) => match object.body.collect().await {
            Ok(bytes) => ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], bytes.into_bytes()).into_response(),
            Err(e) => failed(e.into()),
        },
        Err(e) => failed(anyhow::anyhow!("GetObject {key}: {}", aws_sdk_s3::error::DisplayErrorContext(&e))),
    }
}

/// `GET /task/{taskId}/attachment/{attachmentId}`: an attachment the owner uploaded, from S3
/// (its key built by `keys::attachment_key` from the task's owner and order id and an id recorded
/// on the task, never from the URL's text), as a download (`Content-Disposition: attachment`:
/// owner-supplied bytes are never rendered as a page of the console).
pub async fn attachment(State(console): Shared, Path((task_id, attachment_id)): Path<(String, String)>) -> Response {
    let task = match console.tasks.get(&task_id).await {
        Ok(Some(t)) => t,
        Ok(None) => return error(StatusCode::NOT_FOUND, "No such task."),
        Err(e) => return failed(e.into()),
    };
    let Some(found) = task.attachments.iter().find(|a| a.id == attachment_id) else { return error(StatusCode::NOT_FOUND, "No such attachment on this task.") };
    let key = match taskflow_contracts::OwnerId::parse(&task.owner).map_err(|e| e.to_string()).and_then(|owner| taskflow_contracts::keys::attachment_key(&owner, &task.order_id, &found.id).map_err(|e| e.to_string())) {
        Ok(key) => key,
        Err(e) => return error(StatusCode::NOT_FOUND, &e),
    };
    let bucket = match console.stack.output("TaskBucketName") {
        Ok(b) => b,
        Err(e) => return failed(e),
    };
    match console.s3.get_object().bucket(bucket).key(&key).send().await {
        Ok(object) => match object.body.collect().await {
            Ok(bytes) => (
                [
                    // The recorded type is one of the allow-list (`attachment::ALLOWED_CONTENT_TYPES`).
                    (header::CONTENT_TYPE, found.content_type.clone()),
                    (header::CONTENT_DISPOSITION, content_disposition(&found.name)),
                ],
                bytes.into_bytes(),
            )
                .into_response(),
            Err(e) => failed(e.into()),
        },
        Err(e) => failed(anyhow::anyhow!("GetObject {key}: {}", aws_sdk_s3::error::DisplayErrorContext(&e))),
    }
}

/// `attachment; filename*=UTF-8''…` (RFC 6266 §4.3, RFC 8187): the owner's file name
/// percent-encoded, so no byte of it can end the header or name another parameter.
fn content_disposition(name: &str) -> String {
    let mut out = String::from("attachment; filename*=UTF-8''");
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// `GET /task/{taskId}/log`: the task's audit log from S3 (`taskflow_shared::tasklog`, what
/// `taskflow log` prints), one JSON line per entry, shown as a page.
pub async fn task_log(State(console): Shared, Path(task_id): Path<String>) -> Response {
    use taskflow_shared::tasklog::{self, TaskLogs};
    let task = match console.tasks.get(&task_id).await {
        Ok(Some(t)) => t,
        Ok(None) => return error(StatusCode::NOT_FOUND, "No such task."),
        Err(e) => return failed(e.into()),
    };
    let key = match tasklog::key(&task) {
        Ok(k) => k,
        Err(e) => return error(StatusCode::NOT_FOUND, &format!("This task has no log: {e}")),
    };
    let bucket = match console.stack.output("TaskBucketName") {
        Ok(b) => b,
        Err(e) => return failed(e),
    };
    let text = match tasklog::S3TaskLogs::new(&console.aws, bucket).read(&key).await {
        Ok(Some(text)) => text,
        Ok(None) => return error(StatusCode::NOT_FOUND, &format!("Order {} is {} and has no log yet (a log is written once the task is closed).", task.order_id, task.status)),
        Err(e) => return failed(anyhow::anyhow!("{e}")),
    };
    let mut body = format!(
        r#"<p class="crumbs"><a href="/">Tasks</a> › <a href="/task/{href}">{order}</a> › log</p><h1>Task log of <span class="id">{order}</span></h1><p>S3 <code>{key}</code>: {n} line(s), JSON Lines (the task, every transition with its event id, charge, refund, receipts, attachments).</p><ol class="log" id="log">"#,
        href = url(&task.task_id),
        order = esc(&task.order_id),
        key = esc(&key),
        n = text.lines().count(),
    );
    for line in text.lines() {
        let _ = write!(body, r#"<li><pre tabindex="0">{}</pre></li>"#, esc(line));
    }
    body.push_str("</ol>");
    Html(page(&format!("Log of {}", task.order_id), &console.stack.stack_name, Nav::Tasks, &body)).into_response()
}

#[derive(Deserialize)]
pub struct Posted {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    dry_run: Option<String>,
    /// An action's reason field (approve: optional; deny: required).
    #[serde(default)]
    reason: String,
}

/// `POST /task/{taskId}/action/{action}`: an operator action (see [`actions`]).
pub async fn action(State(console): Shared, Path((task_id, name)): Path<(String, String)>, Form(form): Form<Posted>) -> Response {
    if !csrf_ok(&console, &form.csrf) {
        return error(StatusCode::FORBIDDEN, "Refused: the form's token is not this console's (reload the page).");
    }
    let Some(action) = actions::Action::parse(&name) else { return error(StatusCode::NOT_FOUND, "No such action.") };
    let task = match console.tasks.get(&task_id).await {
        Ok(Some(t)) => t,
        Ok(None) => return error(StatusCode::NOT_FOUND, "No such task."),
        Err(e) => return failed(e.into()),
    };
    match actions::perform(&console, &task, action, &form.reason).await {
        Ok(_) => Redirect::to(&format!("/task/{}?done={}", url(&task_id), action.name())).into_response(),
        Err(e) => error(StatusCode::CONFLICT, &format!("{e:#}")),
    }
}

/// `GET /dlq`: each dead-letter queue's depth.
pub async fn dead_letters(State(console): Shared) -> Response {
    let sqs = aws_sdk_sqs::Client::new(&console.aws);
    let mut body = String::from(
        r#"<h1>Dead letters</h1><p>Messages the stack gave up on. Redrive sends a queue's messages back to the queue they came from (the publisher's: publishes their status events again from the task records), as <code>taskflow dlq redrive</code> does.</p><table class="dlq" id="dlq"><thead><tr><th scope="col">Queue</th><th scope="col" class="num">Messages</th><th scope="col">Drains into</th><th scope="col">Actions</th></tr></thead><tbody>"#,
    );
    let mut queues = crate::dlq::queues(&console.stack);
    queues.sort_by(|a, b| a.name.cmp(&b.name));
    for queue in queues {
        let depth = match crate::dlq::depth(&sqs, &queue.url).await {
            Ok(d) => d.to_string(),
            Err(e) => format!("? ({e})"),
        };
        let into = match (&queue.source_url, queue.name.as_str()) {
            (Some(source), _) => esc(source.rsplit('/').next().unwrap_or(source)),
            (None, crate::dlq::PUBLISHER) => "the bus (published again)".into(),
            (None, _) => "nothing (inspect only)".into(),
        };
        let can_redrive = queue.source_url.is_some() || queue.name == crate::dlq::PUBLISHER;
        let _ = write!(
            body,
            r#"<tr data-queue="{name}"><th scope="row"><a href="/dlq/{href}">{name}</a></th><td class="num depth">{depth}</td><td>{into}</td><td>{form}</td></tr>"#,
            name = esc(&queue.name),
            href = url(&queue.name),
            form = if can_redrive { redrive_form(&console, &queue.name) } else { String::new() },
        );
    }
    body.push_str("</tbody></table>");
    Html(page("Dead letters", &console.stack.stack_name, Nav::DeadLetters, &body)).into_response()
}

fn redrive_form(console: &Console, queue: &str) -> String {
    format!(
        r#"<form method="post" action="/dlq/{q}/redrive" class="inline"><input type="hidden" name="csrf" value="{csrf}"><button type="submit" name="dry_run" value="1" class="secondary">Dry run</button> <button type="submit" class="redrive" aria-label="Redrive {name}">Redrive</button></form>"#,
        q = url(queue),
        name = esc(queue),
        csrf = esc(&console.csrf),
    )
}

/// `GET /dlq/{queue}`: a look inside (up to 20 messages, left where they are).
pub async fn dead_letter_queue(State(console): Shared, Path(name): Path<String>) -> Response {
    let queue = match crate::dlq::find(&console.stack, &name) {
        Ok(q) => q,
        Err(e) => return error(StatusCode::NOT_FOUND, &e.to_string()),
    };
    let sqs = aws_sdk_sqs::Client::new(&console.aws);
    let mut messages = Vec::new();
    let read = crate::dlq::drain(&sqs, &queue.url, false, 20, |dead, _| {
        messages.push(dead);
        async { Ok(()) }
    })
    .await;
    let mut body = format!(r#"<p class="crumbs"><a href="/dlq">Dead letters</a> › {}</p><h1>Dead letters: {}</h1>"#, esc(&queue.name), esc(&queue.name));
    if let Err(e) = read {
        let _ = write!(body, r#"<p class="error">{}</p>"#, esc(&format!("{e:#}")));
    }
    if queue.source_url.is_some() || queue.name == crate::dlq::PUBLISHER {
        body.push_str(&redrive_form(&console, &queue.name));
    }
    if messages.is_empty() {
        body.push_str("<p>Empty.</p>");
    }
    for m in &messages {
        let pretty = serde_json::from_str::<serde_json::Value>(&m.body).ok().and_then(|v| serde_json::to_string_pretty(&v).ok()).unwrap_or_else(|| m.body.clone());
        let _ = write!(
            body,
            r#"<article class="message"><h2>{id}</h2><p>Received {count} time(s).</p><pre tabindex="0">{body}</pre></article>"#,
            id = esc(&m.message_id),
            count = esc(&m.receive_count),
            body = esc(&pretty),
        );
    }
    Html(page(&format!("Dead letters: {}", queue.name), &console.stack.stack_name, Nav::DeadLetters, &body)).into_response()
}

/// `POST /dlq/{queue}/redrive`: `crate::dlq::redrive`, what `taskflow dlq redrive` runs.
pub async fn redrive(State(console): Shared, Path(name): Path<String>, Form(form): Form<Posted>) -> Response {
    if !csrf_ok(&console, &form.csrf) {
        return error(StatusCode::FORBIDDEN, "Refused: the form's token is not this console's (reload the page).");
    }
    let dry_run = form.dry_run.is_some();
    let mut lines = Vec::new();
    let result = crate::dlq::redrive(&console.stack, &name, dry_run, |dead| {
        let body: String = dead.body.chars().take(200).collect();
        lines.push(match &dead.error {
            Some(error) => format!(r#"<li class="left">left in the queue: <code>{}</code> — {}<br><code>{}</code></li>"#, esc(&dead.message_id), esc(error), esc(&body)),
            None => format!(r#"<li><code>{}</code>: <code>{}</code></li>"#, esc(&dead.message_id), esc(&body)),
        });
    })
    .await;
    let mut body = format!(r#"<p class="crumbs"><a href="/dlq">Dead letters</a> › {}</p>"#, esc(&name));
    match result {
        Ok(n) => {
            let verb = match (name.eq_ignore_ascii_case(crate::dlq::PUBLISHER), dry_run) {
                (true, false) => "published again",
                (true, true) => "would be published again (dry run: nothing moved)",
                (false, false) => "sent back",
                (false, true) => "would be sent back (dry run: nothing moved)",
            };
            let _ = write!(body, r#"<h1 id="outcome" role="status">{n} message(s) {verb}</h1>"#);
        }
        Err(e) => {
            let _ = write!(body, r#"<h1 id="outcome" role="alert">Redrive failed</h1><p class="error">{}</p>"#, esc(&format!("{e:#}")));
        }
    }
    let _ = write!(body, "<ul>{}</ul><p><a href=\"/dlq\">Back to the dead-letter queues</a></p>", lines.concat());
    Html(page("Redrive", &console.stack.stack_name, Nav::DeadLetters, &body)).into_response()
}

/// The percentile `p` (0–100) of sorted `values` (nearest rank).
fn percentile(sorted: &[i64], p: f64) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    Some(sorted[rank.min(sorted.len()) - 1])
}

/// When a task reached its terminal status, if it has.
fn ended_at(t: &TaskRecord) -> Option<DateTime<Utc>> {
    t.history.iter().rev().find(|h| h.status.is_terminal()).map(|h| h.at)
}

/// `GET /metrics`.
pub async fn metrics(State(console): Shared) -> Response {
    let (tasks, more) = match all_tasks(&console).await {
        Ok(x) => x,
        Err(e) => return failed(e),
    };
    const MINUTES: i64 = 30;
    let now = Utc::now();
    // Calendar minutes (UTC): the current one is the last of the window.
    let this_minute = now - Span::seconds(i64::from(now.second())) - Span::nanoseconds(i64::from(now.nanosecond()));
    let window_start = this_minute - Span::minutes(MINUTES - 1);
    let outcomes = ["COMPLETED", "FAILED", "REJECTED", "CANCELLED"];
    let mut per_minute: BTreeMap<i64, [u32; 4]> = (0..MINUTES).map(|m| (m, [0; 4])).collect();
    let mut latencies: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    let mut in_flight = 0;
    for t in &tasks {
        let Some(end) = ended_at(t) else {
            in_flight += 1;
            continue;
        };
        if end < window_start {
            continue;
        }
        let minute = (end - window_start).num_minutes().clamp(0, MINUTES - 1);
        if let Some(i) = outcomes.iter().position(|o| *o == t.status.as_str()) {
            per_minute.get_mut(&minute).unwrap()[i] += 1;
        }
        let start = t.history.first().map(|h| h.at).unwrap_or(t.created_at);
        let path = path_of(t);
        latencies.entry(path).or_default().push((end - start).num_milliseconds());
        latencies.entry("all").or_default().push((end - start).num_milliseconds());
    }
    let mut body = format!(
        r#"<h1>Metrics</h1><p>From the task table ({n} task(s){more}; {in_flight} in flight), the last {MINUTES} minutes.</p>"#,
        n = tasks.len(),
        more = if more { format!(", the first {SCAN_LIMIT} read") } else { String::new() },
    );
    // Orders per minute by outcome: a bar chart and the same figures as a table.
    let max = per_minute.values().map(|c| c.iter().sum::<u32>()).max().unwrap_or(0).max(1);
    let _ = write!(body, r#"<section aria-labelledby="h-rate"><h2 id="h-rate">Orders per minute by outcome</h2><svg class="chart" viewBox="0 0 {w} 140" role="img" aria-labelledby="rate-title"><title id="rate-title">Orders ending per minute, by outcome, over the last {MINUTES} minutes (oldest left); the table below has the figures</title>"#, w = MINUTES * 20);
    for (minute, counts) in &per_minute {
        let mut y = 130.0;
        for (i, c) in counts.iter().enumerate() {
            if *c == 0 {
                continue;
            }
            let h = *c as f64 / max as f64 * 120.0;
            y -= h;
            let _ = write!(body, r#"<rect class="o-{}" x="{}" y="{y:.1}" width="16" height="{h:.1}"/>"#, outcomes[i].to_lowercase(), minute * 20 + 2);
        }
    }
    body.push_str(r#"<line x1="0" y1="130" x2="600" y2="130" class="axis"/></svg><p class="legend"><span class="key o-completed"></span>COMPLETED <span class="key o-failed"></span>FAILED <span class="key o-rejected"></span>REJECTED <span class="key o-cancelled"></span>CANCELLED</p>"#);
    body.push_str(r#"<details><summary>The figures by minute</summary><table class="rate"><thead><tr><th scope="col">Minute (UTC)</th><th scope="col" class="num">COMPLETED</th><th scope="col" class="num">FAILED</th><th scope="col" class="num">REJECTED</th><th scope="col" class="num">CANCELLED</th></tr></thead><tbody>"#);
    for (minute, counts) in per_minute.iter().rev() {
        if counts.iter().sum::<u32>() == 0 {
            continue;
        }
        let at = window_start + Span::minutes(*minute);
        let _ = write!(body, r#"<tr><td>{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td></tr>"#, at.format("%H:%M"), counts[0], counts[1], counts[2], counts[3]);
    }
    body.push_str("</tbody></table></details></section>");
    // Latency.
    body.push_str(r#"<section aria-labelledby="h-latency"><h2 id="h-latency">Latency to the terminal status</h2><p>From the task's first status (RECEIVED, written by intake as it takes the order off its queue) to its terminal status, for the orders that ended in the window. The time an order spends on the bus and in intake's queue before that is not recorded on the task, so these figures are lower than PutEvents-to-terminal by that wait (<code>make bench</code> measures the whole of it from the producer's side).</p><table class="latency" id="latency"><thead><tr><th scope="col">Path</th><th scope="col" class="num">Orders</th><th scope="col" class="num">p50 ms</th><th scope="col" class="num">p95 ms</th></tr></thead><tbody>"#);
    for (path, values) in latencies.iter_mut() {
        values.sort_unstable();
        let _ = write!(
            body,
            r#"<tr><th scope="row">{}</th><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td></tr>"#,
            esc(path),
            values.len(),
            percentile(values, 50.0).map_or("—".into(), |v| v.to_string()),
            percentile(values, 95.0).map_or("—".into(), |v| v.to_string())
        );
    }
    body.push_str("</tbody></table></section>");
    body.push_str(&cost_html());
    Html(page("Metrics", &console.stack.stack_name, Nav::Metrics, &body)).into_response()
}

/// The bench's path an order took, by its kind and outcome.
fn path_of(t: &TaskRecord) -> &'static str {
    match (t.kind, t.status) {
        (_, TaskStatus::Cancelled) => "purchase cancelled",
        // Refused by an operator, or left undecided: it waited for a person, not a rejection at intake.
        (_, TaskStatus::Rejected) if matches!(t.reason, Some(taskflow_contracts::Reason::RefundDenied | taskflow_contracts::Reason::ApprovalExpired)) => "refund denied or expired",
        (_, TaskStatus::Rejected) => "order rejected",
        (Some(taskflow_contracts::OrderKind::Refund), TaskStatus::Completed) => "refund completed",
        (Some(taskflow_contracts::OrderKind::Refund), _) => "refund failed",
        (_, TaskStatus::Completed) => "purchase completed",
        (_, _) => "purchase failed",
    }
}

/// The cost per million orders by path: the units `make bench` last measured
/// (`target/bench/bench.json`) priced with `bench/prices.json`, through `taskflow::cost` (the
/// bench's own arithmetic).
fn cost_html() -> String {
    let root = crate::paths::project_root();
    let prices = crate::cost::Prices::load(&root.join("bench/prices.json"))
        .or_else(|_| crate::cost::Prices::parse(include_str!("../../../../bench/prices.json")));
    let mut out = String::from(r#"<section aria-labelledby="h-cost"><h2 id="h-cost">Cost per million orders by path</h2>"#);
    let prices = match prices {
        Ok(p) => p,
        Err(e) => return out + &format!(r#"<p class="error">{}</p></section>"#, esc(&e.to_string())),
    };
    let bench = root.join("target/bench/bench.json");
    let report: Option<serde_json::Value> = std::fs::read_to_string(&bench).ok().and_then(|t| serde_json::from_str(&t).ok());
    let paths = report.as_ref().and_then(|r| r["cost"]["paths"].as_array().cloned()).unwrap_or_default();
    if paths.is_empty() {
        let _ = write!(out, "<p>No measured units yet: <code>make bench</code> measures what each path uses on the local stack and writes <code>{}</code>; this page prices it with <code>bench/prices.json</code> (AWS list prices as of {}).</p></section>", esc(&bench.display().to_string()), esc(&prices.as_of));
        return out;
    }
    let _ = write!(out, r#"<p>Units per order measured by <code>make bench</code> ({}), priced with <code>bench/prices.json</code> (AWS list prices, us-east-1, as of {}).</p><table class="cost" id="cost"><thead><tr><th scope="col">Path</th><th scope="col" class="num">State transitions</th><th scope="col" class="num">$ per million</th><th scope="col" class="num">naive design</th></tr></thead><tbody>"#, esc(&bench.display().to_string()), esc(&prices.as_of));
    for path in &paths {
        let units = crate::cost::Units::from_json(&path["taskflow"]["units"]);
        let naive = crate::cost::Units::from_json(&path["naive"]["units"]);
        let dollars = |u: &crate::cost::Units| u.cost_per_million(&prices).map(|(t, _)| format!("{t:.2}")).unwrap_or_else(|e| e.to_string());
        let _ = write!(
            out,
            r#"<tr><th scope="row">{}</th><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td></tr>"#,
            esc(path["path"].as_str().unwrap_or("?")),
            units.transitions,
            dollars(&units),
            dollars(&naive)
        );
    }
    out.push_str("</tbody></table></section>");
    out
}
