//! What the console offers to do about a task, and the documents it links to. One place, so the
//! operator actions of other features plug in as a variant and a match arm each:
//!
//! - buttons: [`for_task`] lists them on the task page (each a POST form with the console's
//!   CSRF token, to `/task/{taskId}/action/{name}`); [`perform`] runs one, with the rights the
//!   CLI has for the same command:
//!   - `approve` / `deny` a refund AWAITING_APPROVAL: the HTTP API's operator routes
//!     `POST /approvals/{orderId}/approve|deny` (what `taskflow approvals approve|deny` calls),
//!     with a token of the `operators` group minted by the local stack's issuer — the one
//!     approval path, with its checks and its record of who decided. A deployed stack's API
//!     wants a Cognito token of a member of that group; the console holds none, so there the
//!     buttons are shown disabled with that reason ([`Action::unavailable`]);
//!   - `cancel` a purchase still RECEIVED: publishes `OrderCancelled` on the bus, as
//!     `taskflow cancel` does (`crate::operations::request_cancel`), with the stack's
//!     credentials (the emulator's, or the standard chain with `--stack`); intake decides it
//!     (a purchase whose charge has begun is not cancelled: `OrderAlreadyCharged`).
//!
//!   (The dead-letter redrive lives on its own page.)
//! - links: [`links`] lists a task's documents — its receipts, its attachments and, once it is
//!   closed, its task log (all in S3, read with the stack's credentials as `taskflow receipt`,
//!   `taskflow log` read them), served by the console at `/task/{taskId}/receipt/{n}`,
//!   `/task/{taskId}/attachment/{attachmentId}` and `/task/{taskId}/log`.

use super::html::{esc, url};
use anyhow::{bail, Context};
use std::path::PathBuf;
use std::time::Duration;
use taskflow_contracts::{OrderKind, TaskStatus};
use taskflow_shared::tasks::{TaskRecord, TaskStore};

/// An operator action on a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Approve a refund AWAITING_APPROVAL: it goes ahead.
    Approve,
    /// Deny a refund AWAITING_APPROVAL (a reason is required): REJECTED `REFUND_DENIED`.
    Deny,
    /// Cancel a purchase not yet charged (RECEIVED): CANCELLED.
    Cancel,
}

impl Action {
    /// The action a route's `{name}` names, if it exists.
    pub fn parse(name: &str) -> Option<Action> {
        match name {
            "approve" => Some(Action::Approve),
            "deny" => Some(Action::Deny),
            "cancel" => Some(Action::Cancel),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Action::Approve => "approve",
            Action::Deny => "deny",
            Action::Cancel => "cancel",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Action::Approve => "Approve refund",
            Action::Deny => "Deny refund",
            Action::Cancel => "Cancel order",
        }
    }

    /// Whether the button warns (red): it cannot be undone.
    pub fn destructive(self) -> bool {
        match self {
            Action::Approve => false,
            Action::Deny | Action::Cancel => true,
        }
    }

    /// Whether the form has a reason field, and whether it must be filled in (the API answers
    /// `ReasonRequired` to a denial without one).
    pub fn reason(self) -> Option<bool> {
        match self {
            Action::Approve => Some(false),
            Action::Deny => Some(true),
            Action::Cancel => None,
        }
    }

    /// Why the console cannot perform this action on its stack (the button is shown disabled
    /// with this text), or `None` when it can.
    pub fn unavailable(self, console: &super::Console) -> Option<&'static str> {
        match self {
            Action::Approve | Action::Deny if console.operator.is_none() => Some(
                "On a deployed stack a decision needs a Cognito access token of a member of the operators group, which the console does not hold: \
                 decide with the HTTP API (POST /approvals/{orderId}/approve or /deny, over HTTPS, with that token).",
            ),
            _ => None,
        }
    }

    /// What the task page says after the action was taken (`?done={name}`).
    pub fn done(self) -> &'static str {
        match self {
            Action::Approve => "Approved: the refund goes ahead.",
            Action::Deny => "Denied: the refund ends REJECTED (REFUND_DENIED).",
            Action::Cancel => "Cancel sent: intake cancels the purchase unless its charge has begun (then it says OrderAlreadyCharged).",
        }
    }
}

/// The console's operator identity on a local stack: a token of the `operators` group is
/// minted for `name` by the issuer in `state_dir`, as `taskflow approvals` does.
#[derive(Debug, Clone)]
pub struct OperatorRights {
    pub state_dir: PathBuf,
    /// `TASKFLOW_OPERATOR`, else `operator` (the CLI's default for `--as`).
    pub name: String,
}

impl OperatorRights {
    /// The local stack's rights, if `state_dir` holds its token issuer and `stack` is local.
    pub fn local(stack: &crate::stack::StackInfo, state_dir: &std::path::Path) -> Option<OperatorRights> {
        let issuer = state_dir.join(crate::local::TOKEN_ISSUER_FILE);
        (stack.endpoint.is_some() && issuer.is_file()).then(|| OperatorRights {
            state_dir: state_dir.to_path_buf(),
            name: std::env::var("TASKFLOW_OPERATOR").ok().filter(|n| !n.trim().is_empty()).unwrap_or_else(|| "operator".into()),
        })
    }
}

/// The actions that apply to `task` as it is now, in the order shown.
pub fn for_task(task: &TaskRecord) -> Vec<Action> {
    match (task.kind, task.status) {
        (Some(OrderKind::Refund), TaskStatus::AwaitingApproval) => vec![Action::Approve, Action::Deny],
        (Some(OrderKind::Purchase), TaskStatus::Received) => vec![Action::Cancel],
        _ => Vec::new(),
    }
}

/// Runs `action` on `task` with the console's (the operator's) credentials; the message shown
/// after it, or why it was refused. `reason`: the form's reason field (trimmed; empty = none).
pub async fn perform(console: &super::Console, task: &TaskRecord, action: Action, reason: &str) -> anyhow::Result<String> {
    if !for_task(task).contains(&action) {
        bail!("{} does not apply to this task: it is a {} {} (reload the page)", action.name(), task.kind.map_or("?", |k| k.as_str()), task.status);
    }
    if let Some(why) = action.unavailable(console) {
        bail!("{why}");
    }
    let reason = reason.trim();
    match action {
        Action::Approve | Action::Deny => {
            if action.reason() == Some(true) && reason.is_empty() {
                bail!("ReasonRequired: a denial needs a reason (it is recorded and told to the owner)");
            }
            let rights = console.operator.as_ref().context("no operator rights")?;
            let api = console.stack.output("ApiUrl").context("the stack has no ApiUrl output")?;
            let token = crate::operator::local_token(&rights.state_dir, &rights.name, 300)?;
            let mut body = serde_json::json!({"owner": task.owner});
            if !reason.is_empty() {
                body["reason"] = reason.into();
            }
            let path = format!("/approvals/{}/{}", crate::operator::encode(&task.order_id), action.name());
            // The approval path records the task token a moment after the status is written:
            // until then the API answers ApprovalNotReady (nothing decided); ask again briefly.
            for _ in 0..50 {
                let (status, answer) = crate::operator::request(api, "POST", &path, &token, Some(&body)).await?;
                if (200..300).contains(&status) {
                    return Ok(answer["note"].as_str().unwrap_or(action.done()).to_string());
                }
                if answer["error"] != "ApprovalNotReady" {
                    bail!("HTTP {status} {}: {}", answer["error"].as_str().unwrap_or("error"), answer["message"].as_str().unwrap_or(&answer.to_string()));
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            bail!("ApprovalNotReady: the approval path has not recorded this refund's decision point yet; try again in a moment")
        }
        Action::Cancel => {
            crate::operations::request_cancel(&console.stack, &task.owner, &task.order_id).await?;
            // Intake decides the cancel; wait a little for it to show, as `taskflow cancel` does.
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            loop {
                let now = console.tasks.get(&task.task_id).await?.map(|t| t.status);
                match now {
                    Some(TaskStatus::Cancelled) => return Ok("CANCELLED (nothing charged)".into()),
                    Some(TaskStatus::Received) | None if tokio::time::Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(300)).await,
                    Some(status) => return Ok(format!("{status}: a cancel is refused once the charge has begun (OrderAlreadyCharged); ask for a refund instead")),
                    None => return Ok("the cancel was sent; the task is not readable now".into()),
                }
            }
        }
    }
}

/// A document of a task the console links to.
pub struct Link {
    pub label: String,
    pub href: String,
}

/// The task's documents: its receipts (`/task/{taskId}/receipt/{n}`), its attachments
/// (`/task/{taskId}/attachment/{attachmentId}`, a download) and, once the task is closed
/// (`tasklog::ready`), its task log (`/task/{taskId}/log`).
pub fn links(task: &TaskRecord) -> Vec<Link> {
    let id = url(&task.task_id);
    let mut out: Vec<Link> = task
        .receipts
        .iter()
        .enumerate()
        .map(|(n, key)| Link { label: format!("receipt {}", key.rsplit('/').next().unwrap_or(key)), href: format!("/task/{id}/receipt/{n}") })
        .collect();
    out.extend(task.attachments.iter().map(|a| Link {
        label: format!("attachment {} ({}, {} bytes)", a.name, a.content_type, a.size),
        href: format!("/task/{id}/attachment/{}", url(&a.id)),
    }));
    if taskflow_shared::tasklog::ready(task) {
        out.push(Link { label: "task log".into(), href: format!("/task/{id}/log") });
    }
    out
}

/// The buttons of `actions` as HTML forms (an action the console cannot take here is shown
/// disabled, with the reason beside it).
pub fn buttons(console: &super::Console, task: &TaskRecord, actions: &[Action], csrf: &str) -> String {
    actions
        .iter()
        .map(|a| {
            let unavailable = a.unavailable(console);
            let reason = match a.reason() {
                Some(required) => format!(
                    r#"<label>Reason{opt} <input type="text" name="reason" maxlength="{max}" size="28" autocomplete="off"{req}{dis}></label> "#,
                    opt = if required { "" } else { " (optional)" },
                    max = taskflow_contracts::limits::MAX_REASON_DETAIL_CHARS,
                    req = if required { " required" } else { "" },
                    dis = if unavailable.is_some() { " disabled" } else { "" },
                ),
                None => String::new(),
            };
            format!(
                r#"<form method="post" action="/task/{id}/action/{name}" class="action" data-action="{name}"><input type="hidden" name="csrf" value="{csrf}">{reason}<button type="submit" class="{class}"{dis}>{label}</button>{why}</form>"#,
                id = url(&task.task_id),
                name = a.name(),
                csrf = esc(csrf),
                class = if a.destructive() { "danger" } else { "" },
                dis = if unavailable.is_some() { " disabled" } else { "" },
                label = esc(a.label()),
                why = unavailable.map(|w| format!(r#" <span class="detail unavailable">{}</span>"#, esc(w))).unwrap_or_default(),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_round_trips_its_name() {
        for a in [Action::Approve, Action::Deny, Action::Cancel] {
            assert_eq!(Action::parse(a.name()), Some(a));
        }
        assert_eq!(Action::parse("redrive"), None);
        assert_eq!(Action::Deny.reason(), Some(true), "a denial needs a reason");
    }

    #[test]
    fn the_actions_follow_the_task_kind_and_status() {
        let task = |kind, status| {
            let mut t = TaskRecord::new("ord-1", "alice", status, None, chrono::Utc::now());
            t.kind = Some(kind);
            t
        };
        assert_eq!(for_task(&task(OrderKind::Refund, TaskStatus::AwaitingApproval)), [Action::Approve, Action::Deny]);
        assert_eq!(for_task(&task(OrderKind::Purchase, TaskStatus::Received)), [Action::Cancel]);
        for (kind, status) in [(OrderKind::Purchase, TaskStatus::Charging), (OrderKind::Refund, TaskStatus::Received), (OrderKind::Refund, TaskStatus::Completed), (OrderKind::Purchase, TaskStatus::Cancelled)] {
            assert!(for_task(&task(kind, status)).is_empty(), "{kind:?} {status:?}");
        }
    }
}
