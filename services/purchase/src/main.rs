//! The purchase Lambda: the purchase queue's work messages → charges.

use taskflow_purchase::{payments::SandboxPayments, Purchase};
use taskflow_shared::{clients, config, driver, tasks::DynamoTaskStore, telemetry};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    telemetry::init();
    let aws = clients::load().await;
    let provider = config::required("PAYMENT_PROVIDER")?;
    if provider != "sandbox" {
        return Err(format!("PAYMENT_PROVIDER {provider:?}: only \"sandbox\" is available in this version").into());
    }
    let purchase = Purchase {
        tasks: DynamoTaskStore::new(&aws, config::required("TASK_TABLE")?),
        payments: SandboxPayments::new(&aws, config::required("SANDBOX_CHARGES_TABLE")?),
    };
    driver::run(purchase, &aws).await
}
