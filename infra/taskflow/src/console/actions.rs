//! What the console offers to do about a task, and the documents it links to. One place, so the
//! operator actions of other features plug in as a variant and a match arm each:
//!
//! - buttons: [`for_task`] lists them on the task page (each a POST form with the console's
//!   CSRF token, to `/task/{taskId}/action/{name}`); [`perform`] runs one. Today no task action
//!   exists on this branch (the dead-letter redrive lives on its own page); approvals
//!   (`approve`/`deny` of a refund awaiting approval) and cancellation (`cancel`) are added here
//!   by calling the same client code the CLI's `taskflow approvals …` and the API's
//!   `DELETE /orders/{orderId}` use;
//! - links: [`links`] lists a task's documents — its receipts today; attachments and the task log
//!   (S3) are added here, served by a route beside `/task/{taskId}/receipt/{n}`.

use super::html::{esc, url};
use taskflow_shared::tasks::TaskRecord;

/// An operator action on a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {}

impl Action {
    /// The action a route's `{name}` names, if it exists.
    #[allow(clippy::match_single_binding)] // the arms of the actions to come go here
    pub fn parse(name: &str) -> Option<Action> {
        match name {
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {}
    }

    pub fn label(self) -> &'static str {
        match self {}
    }

    /// Whether the button warns (red): it cannot be undone.
    pub fn destructive(self) -> bool {
        match self {}
    }
}

/// The actions that apply to `task` as it is now, in the order shown.
pub fn for_task(_task: &TaskRecord) -> Vec<Action> {
    Vec::new()
}

/// Runs `action` on `task` with the console's (the operator's) credentials; the message shown
/// after it, or why it was refused.
pub async fn perform(_console: &super::Console, _task: &TaskRecord, action: Action) -> anyhow::Result<String> {
    match action {}
}

/// A document of a task the console links to.
pub struct Link {
    pub label: String,
    pub href: String,
}

/// The task's documents: its receipts (S3, served by the console at `/task/{taskId}/receipt/{n}`).
pub fn links(task: &TaskRecord) -> Vec<Link> {
    task.receipts
        .iter()
        .enumerate()
        .map(|(n, key)| Link {
            label: format!("receipt {}", key.rsplit('/').next().unwrap_or(key)),
            href: format!("/task/{}/receipt/{n}", url(&task.task_id)),
        })
        .collect()
}

/// The buttons of `actions` as HTML forms.
pub fn buttons(task: &TaskRecord, actions: &[Action], csrf: &str) -> String {
    actions
        .iter()
        .map(|a| {
            format!(
                r#"<form method="post" action="/task/{id}/action/{name}" class="inline"><input type="hidden" name="csrf" value="{csrf}"><button type="submit" class="{class}">{label}</button></form>"#,
                id = url(&task.task_id),
                name = a.name(),
                csrf = esc(csrf),
                class = if a.destructive() { "danger" } else { "" },
                label = esc(a.label()),
            )
        })
        .collect()
}
