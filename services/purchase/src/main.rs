//! The purchase Lambda: the purchase queue's work messages → charges and reservations.

use taskflow_purchase::Purchase;
use taskflow_shared::{clients, config, driver, inventory::DynamoInventory, ledger::DynamoLedger, payments::SandboxPayments, tasks::DynamoTaskStore, telemetry};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let telemetry = telemetry::init("purchase");
    let aws = clients::shared().await;
    let provider = config::required("PAYMENT_PROVIDER")?;
    if provider != "sandbox" {
        return Err(format!("PAYMENT_PROVIDER {provider:?}: only \"sandbox\" is available in this version").into());
    }
    let ledger_table = config::required("LEDGER_TABLE")?;
    let purchase = Purchase {
        tasks: DynamoTaskStore::new(&aws, config::required("TASK_TABLE")?),
        payments: SandboxPayments::from_env(&aws, config::required("SANDBOX_CHARGES_TABLE")?)?,
        inventory: DynamoInventory::new(&aws, config::required("INVENTORY_TABLE")?, &ledger_table),
        ledger: DynamoLedger::new(&aws, ledger_table),
        charge_hold: taskflow_shared::idempotency::hold_from_env()?,
    };
    driver::run(telemetry, purchase, &aws).await
}
