//! The refund Lambda: the refund queue's work messages → refunds and compensations.

use taskflow_refund::Refunds;
use taskflow_shared::idempotency::DynamoIdempotency;
use taskflow_shared::{clients, config, driver, inventory::DynamoInventory, ledger::DynamoLedger, payments::SandboxPayments, tasks::DynamoTaskStore, telemetry};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let telemetry = telemetry::init("refund");
    let aws = clients::shared().await;
    let ledger_table = config::required("LEDGER_TABLE")?;
    let refunds = Refunds {
        tasks: DynamoTaskStore::new(&aws, config::required("TASK_TABLE")?),
        payments: SandboxPayments::from_env(&aws, config::required("SANDBOX_CHARGES_TABLE")?)?,
        inventory: DynamoInventory::new(&aws, config::required("INVENTORY_TABLE")?, &ledger_table),
        ledger: DynamoLedger::new(&aws, ledger_table),
        window: chrono::Duration::days(config::number_or("REFUND_WINDOW_DAYS", 30)?),
        once: Box::new(DynamoIdempotency::from_env(&aws)?),
        approval_thresholds: taskflow_refund::ApprovalThresholds::parse(&std::env::var("REFUND_APPROVAL_THRESHOLDS").unwrap_or_default())?,
    };
    driver::run(telemetry, refunds, &aws).await
}
