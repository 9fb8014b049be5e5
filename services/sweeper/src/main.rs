//! The sweeper Lambda: invoked on the template's schedule (an EventBridge rule, `rate(…)`),
//! answers with the sweep's report (`SweepReport`).

use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;
use std::sync::Arc;
use taskflow_refund::Refunds;
use taskflow_shared::idempotency::DynamoIdempotency;
use taskflow_shared::{clients, config, executions::StepFunctionsExecutions, inventory::DynamoInventory, ledger::DynamoLedger, payments::SandboxPayments, tasks::DynamoTaskStore, telemetry};
use taskflow_sweeper::adapters::{DynamoInFlight, EventBridgeReports, RefundRepair};
use taskflow_sweeper::{Budgets, Sweeper};
use tracing::{info, Instrument};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let telemetry = Arc::new(telemetry::init("sweeper"));
    let aws = clients::shared().await;
    let task_table = config::required("TASK_TABLE")?;
    let ledger_table = config::required("LEDGER_TABLE")?;
    let refunds = Refunds {
        tasks: DynamoTaskStore::new(&aws, &task_table),
        payments: SandboxPayments::from_env(&aws, config::required("SANDBOX_CHARGES_TABLE")?)?,
        inventory: DynamoInventory::new(&aws, config::required("INVENTORY_TABLE")?, &ledger_table),
        ledger: DynamoLedger::new(&aws, ledger_table),
        window: chrono::Duration::days(config::number_or("REFUND_WINDOW_DAYS", 30)?),
        once: Box::new(DynamoIdempotency::from_env(&aws)?),
        // As the refund service reads them: a refund the sweeper takes up is held to the same
        // approval rule (only a RECEIVED refund can be sent to wait for an operator).
        approval_thresholds: taskflow_refund::ApprovalThresholds::parse(&std::env::var("REFUND_APPROVAL_THRESHOLDS").unwrap_or_default())?,
    };
    let sweeper = Arc::new(Sweeper {
        in_flight: DynamoInFlight::new(&aws, &task_table),
        tasks: DynamoTaskStore::new(&aws, &task_table),
        executions: StepFunctionsExecutions::new(&aws),
        repair: RefundRepair(refunds),
        reports: EventBridgeReports::new(&aws, config::required("EVENT_BUS_NAME")?),
        budgets: Budgets::from_callback_timeout(config::number_or("CALLBACK_TIMEOUT_SECONDS", 1500)?, config::number_or("SWEEP_GRACE_SECONDS", 60)?),
        min_age: chrono::Duration::seconds(config::number_or("SWEEP_MIN_AGE_SECONDS", 60)?),
        max_tasks: config::number_or("SWEEP_MAX_TASKS", 100)?,
        purchase_workflow: config::required("PURCHASE_WORKFLOW_ARN")?,
        refund_workflow: config::required("REFUND_WORKFLOW_ARN")?,
    });
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let (sweeper, telemetry) = (sweeper.clone(), telemetry.clone());
        let invocation = telemetry::invocation(&event.context);
        async move {
            let span = telemetry::continue_trace("sweeper", None);
            let report = async { sweeper.sweep(chrono::Utc::now()).await }.instrument(span).await;
            telemetry.flush();
            let report = report.map_err(|e| lambda_runtime::Error::from(e.to_string()))?;
            info!(looked_at = report.looked_at, left_alone = report.left_alone, finished = report.finished, handed_to_operators = report.handed_to_operators, "sweep done");
            Ok::<_, lambda_runtime::Error>(serde_json::to_value(&report)?)
        }
        .instrument(invocation)
    }))
    .await
}
