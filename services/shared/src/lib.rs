//! What every taskflow service does the same way.
//!
//! - [`driver`]: the SQS task-token driver — reads a batch of work messages, runs the service's
//!   [`driver::TaskWorker`] on each, answers the task token, and reports partial batch failures.
//! - [`tasks`]: the task record and the [`tasks::TaskStore`] port every service records through.
//! - [`callback`]: the [`callback::TaskCallback`] port (answering a task token).
//! - [`payments`], [`ledger`], [`inventory`]: the money and stock ports the purchase and refund
//!   services share, with their DynamoDB adapters (and the sandbox payment provider).
//! - [`catalogue`]: the [`catalogue::Catalogue`] port (per sku: name, unit price, currency,
//!   active), the only source of what is charged, and its DynamoDB adapter.
//! - [`idempotency`]: side effects done once whatever the deliveries (the Powertools pattern).
//! - [`config`], [`clients`], [`telemetry`], [`metrics`]: environment, AWS client setup, traces
//!   and logs, EMF metrics.
//! - [`tasklog`]: a closed task's audit log (JSON Lines in S3, written once) and its port.
//! - [`approvals`]: pending refund approvals and their task tokens (the approval path only).
//! - [`cancel`]: an owner's cancellation of a purchase not yet charged; [`executions`]: the
//!   [`executions::Executions`] port (stop an execution, read its state).
//! - [`on_first_use`]: adapters and clients built when first needed (paths some cold starts never take).
//! - [`fakes`]: in-memory ports for unit tests.

pub mod approvals;
pub mod on_first_use;
pub mod callback;
pub mod cancel;
pub mod catalogue;
pub mod clients;
pub mod config;
pub mod driver;
pub mod dynamo;
pub mod executions;
pub mod fakes;
pub mod idempotency;
pub mod inventory;
pub mod ledger;
pub mod metrics;
pub mod otlp;
pub mod payments;
pub mod tasklog;
pub mod tasks;
pub mod telemetry;
