//! The sweeper: a scheduled function that finds tasks left in flight and finishes them, or hands
//! them to operators.
//!
//! Each sweep:
//! 1. reads the sparse `inflight` index of the task table (only tasks in flight carry its keys:
//!    [`taskflow_shared::tasks::INFLIGHT_INDEX`]) for tasks in flight for at least `min_age`, a
//!    query per shard — never a scan;
//! 2. re-reads each task (consistently: the index is eventually consistent) and the state of its
//!    execution, and [`judge`]s it. Only RECEIVED, CHARGING and REFUNDING are the sweeper's: any
//!    other status in flight (one added later, such as a task waiting for a person) has its own
//!    deadline and is left alone. A task whose workflow is still running within what the
//!    workflow allows ([`Budgets`]: the sum of its callback steps' `TimeoutSeconds` along its
//!    longest path) is healthy and left alone;
//! 3. for a stuck one — its execution ended and left it in flight (typically REFUNDING: a
//!    compensation that could not finish, `RefundsOwed`), or it ran longer than its workflow
//!    allows, or no execution ran it in that time — retries the compensation (a purchase) or the
//!    refund (a refund order) through the refund service's own idempotent path
//!    ([`Repair`]: `taskflow_refund::Refunds::finish`), so nothing is charged, refunded or
//!    released twice, whatever the workflow already did;
//! 4. what the retry could not finish is handed to operators: noted on the task
//!    (`attention`), published, and counted (`SweepUnresolved`, which an alarm watches).
//!
//! It publishes a `TaskSwept` event per task it finished or handed over, and emits EMF metrics
//! (`SweptTasks` by `Outcome`, `SweepUnresolved`).

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use taskflow_contracts::{OrderKind, SweepOutcome, TaskStatus, TaskSwept, SCHEMA_VERSION};
use taskflow_shared::executions::{execution_arn, ExecutionState, Executions};
use taskflow_shared::tasks::{Note, StoreError, TaskRecord, TaskStore};

/// Callback steps on the longest path of each workflow (`statemachine/*.asl.json`; a test
/// counts them): purchase Purchase → Compensate → NotifyFailure, refund Refund → Notify….
pub const PURCHASE_CALLBACK_STEPS: i32 = 3;
pub const REFUND_CALLBACK_STEPS: i32 = 2;

/// How long each kind of task may be in flight before it is stuck: every callback step on its
/// workflow's longest path timing out (`CallbackTimeoutSeconds` each), plus a grace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budgets {
    pub purchase: Duration,
    pub refund: Duration,
}

impl Budgets {
    pub fn from_callback_timeout(timeout_seconds: i64, grace_seconds: i64) -> Budgets {
        Budgets {
            purchase: Duration::seconds(timeout_seconds * i64::from(PURCHASE_CALLBACK_STEPS) + grace_seconds),
            refund: Duration::seconds(timeout_seconds * i64::from(REFUND_CALLBACK_STEPS) + grace_seconds),
        }
    }

    pub fn of(&self, kind: OrderKind) -> Duration {
        match kind {
            OrderKind::Purchase => self.purchase,
            OrderKind::Refund => self.refund,
        }
    }
}

/// What to do with one task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Leave(&'static str),
    Repair(&'static str),
}

/// Whether a task in flight is stuck (see the module's documentation).
pub fn judge(task: &TaskRecord, execution: ExecutionState, now: DateTime<Utc>, budgets: &Budgets) -> Verdict {
    if !matches!(task.status, TaskStatus::Received | TaskStatus::Charging | TaskStatus::Refunding) {
        return Verdict::Leave("not a status the sweeper repairs (it has its own deadline)");
    }
    let Some(kind) = task.kind else { return Verdict::Leave("no kind recorded") };
    // A refund that waited for an operator starts its workflow's remaining steps at the decision.
    let since = task.inflight_since.unwrap_or(task.created_at);
    let since = task.approval.as_ref().map_or(since, |decision| decision.at.max(since));
    let within = now - since < budgets.of(kind);
    match execution {
        ExecutionState::Running if within => Verdict::Leave("its workflow is running within its time"),
        ExecutionState::Running => Verdict::Repair("in flight longer than its workflow allows"),
        ExecutionState::Ended => Verdict::Repair("its workflow ended and left it in flight"),
        ExecutionState::Missing if within => Verdict::Leave("its workflow has not started yet"),
        ExecutionState::Missing => Verdict::Repair("no workflow ran it in the time one takes"),
    }
}

/// The sparse in-flight index.
#[async_trait]
pub trait InFlight: Send + Sync {
    /// Tasks in flight since before `cutoff` (every shard), oldest first per shard, at most `limit`.
    async fn since_before(&self, cutoff: DateTime<Utc>, limit: usize) -> Result<Vec<TaskRecord>, StoreError>;
}

/// The refund service's idempotent path (`taskflow_refund::Refunds::finish`).
#[async_trait]
pub trait Repair: Send + Sync {
    /// Finishes `task`; `Err` says why it could not.
    async fn finish(&self, task: &TaskRecord) -> Result<(), String>;
}

/// Where `TaskSwept` events go.
#[async_trait]
pub trait Reports: Send + Sync {
    async fn publish(&self, swept: &[TaskSwept]) -> Result<(), String>;
}

/// A sweep's report: counts, and a line per task looked at.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SweepReport {
    pub looked_at: usize,
    pub left_alone: usize,
    pub finished: usize,
    pub handed_to_operators: usize,
    pub tasks: Vec<TaskSwept>,
}

pub mod adapters;

pub struct Sweeper<I, S, E, R, P> {
    pub in_flight: I,
    pub tasks: S,
    pub executions: E,
    pub repair: R,
    pub reports: P,
    pub budgets: Budgets,
    /// Tasks in flight for less than this are not looked at.
    pub min_age: Duration,
    /// The most tasks one sweep looks at (the next sweep takes the rest).
    pub max_tasks: usize,
    pub purchase_workflow: String,
    pub refund_workflow: String,
}

impl<I: InFlight, S: TaskStore, E: Executions, R: Repair, P: Reports> Sweeper<I, S, E, R, P> {
    /// One sweep at `now`. Fails only if the index cannot be read; a task that cannot be looked
    /// at is handed to operators, not skipped silently.
    pub async fn sweep(&self, now: DateTime<Utc>) -> Result<SweepReport, StoreError> {
        let mut report = SweepReport::default();
        for found in self.in_flight.since_before(now - self.min_age, self.max_tasks).await? {
            report.looked_at += 1;
            let line = self.look_at(found, now).await;
            match line.outcome {
                SweepOutcome::LeftAlone => report.left_alone += 1,
                SweepOutcome::Finished => report.finished += 1,
                SweepOutcome::HandedToOperators => report.handed_to_operators += 1,
            }
            let outcome = format!("{:?}", line.outcome);
            taskflow_shared::metrics::count("SweptTasks", &[("Outcome", outcome.as_str())]);
            report.tasks.push(line);
        }
        let acted: Vec<TaskSwept> = report.tasks.iter().filter(|t| t.outcome != SweepOutcome::LeftAlone).cloned().collect();
        if !acted.is_empty()
            && let Err(e) = self.reports.publish(&acted).await
        {
            // The task records and the metrics still say what happened.
            tracing::error!(error = e.as_str(), "the sweep's events could not be published");
        }
        Ok(report)
    }

    async fn look_at(&self, found: TaskRecord, now: DateTime<Utc>) -> TaskSwept {
        let mut line = TaskSwept {
            schema_version: SCHEMA_VERSION,
            order_id: found.order_id.clone(),
            owner: found.owner.clone(),
            kind: found.kind,
            status: found.status,
            outcome: SweepOutcome::LeftAlone,
            status_after: None,
            reason: String::new(),
            age_seconds: (now - found.inflight_since.unwrap_or(found.created_at)).num_seconds(),
            swept_at: now,
        };
        // The index lags the table: judge the task as it is now.
        let task = match self.tasks.get(&found.task_id).await {
            Ok(Some(task)) if !task.status.is_terminal() => task,
            Ok(_) => {
                line.reason = "it ended meanwhile".into();
                return line;
            }
            Err(e) => return self.hand_over(line, &found, format!("cannot read the task: {e}")).await,
        };
        line.status = task.status;
        let arn = task.execution_arn.clone().unwrap_or_else(|| {
            let machine = if task.kind == Some(OrderKind::Refund) { &self.refund_workflow } else { &self.purchase_workflow };
            execution_arn(machine, &task.task_id)
        });
        let execution = match self.executions.state(&arn).await {
            Ok(state) => state,
            Err(e) => return self.hand_over(line, &task, format!("cannot read its execution: {e}")).await,
        };
        let why = match judge(&task, execution, now, &self.budgets) {
            Verdict::Leave(why) => {
                line.reason = why.into();
                return line;
            }
            Verdict::Repair(why) => why,
        };
        tracing::warn!(order_id = task.order_id.as_str(), task_id = task.task_id.as_str(), status = %task.status, why, "retrying a stuck task");
        let result = self.repair.finish(&task).await;
        let after = self.tasks.get(&task.task_id).await.ok().flatten().map(|t| t.status);
        line.status_after = after;
        match (result, after) {
            (Ok(()), Some(status)) if status.is_terminal() => {
                line.outcome = SweepOutcome::Finished;
                line.reason = why.into();
                line
            }
            (Ok(()), _) => self.hand_over(line, &task, format!("{why}; the retry left it in flight")).await,
            (Err(e), _) => self.hand_over(line, &task, format!("{why}; the retry failed: {e}")).await,
        }
    }

    /// An operator must finish this one: noted on the task, counted, and (by the caller) published.
    async fn hand_over(&self, mut line: TaskSwept, task: &TaskRecord, reason: String) -> TaskSwept {
        tracing::error!(order_id = task.order_id.as_str(), task_id = task.task_id.as_str(), reason = reason.as_str(), "handed to operators");
        taskflow_shared::metrics::count("SweepUnresolved", &[]);
        let note = Note::Attention(taskflow_shared::tasks::bounded_detail(&format!("{}: {reason}", line.swept_at.format("%Y-%m-%dT%H:%M:%SZ"))));
        if let Err(e) = self.tasks.note(&task.task_id, &note).await {
            tracing::error!(error = %e, "could not note the hand-over on the task");
        }
        line.outcome = SweepOutcome::HandedToOperators;
        line.reason = reason;
        line
    }
}

#[cfg(test)]
mod tests;
