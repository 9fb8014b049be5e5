//! A stack the CLI talks to: where it is and what it is made of. For the local stack this is
//! `.taskflow/stack.json`, written by `taskflow up`.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StackInfo {
    /// The emulator's endpoint; `None` for a stack on AWS.
    pub endpoint: Option<String>,
    /// The local stack's second emulator process, which serves the storage services (DynamoDB,
    /// DynamoDB Streams and S3; see [`crate::local`]); `None` for a stack on AWS, or when one
    /// process serves everything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_endpoint: Option<String>,
    pub region: String,
    pub stack_name: String,
    /// Every output of the stack (EventBusName, TaskTableName, queue URLs, ...).
    pub outputs: BTreeMap<String, String>,
}

impl StackInfo {
    pub fn output(&self, key: &str) -> Result<&str> {
        self.outputs.get(key).map(String::as_str).with_context(|| format!("the stack has no output {key}"))
    }

    /// The stack's two workflows (outputs `PurchaseWorkflowArn`, `RefundWorkflowArn`), from which
    /// a task's execution ARN is derived (the task does not note it).
    pub fn workflows(&self) -> Result<taskflow_shared::executions::WorkflowArns> {
        Ok(taskflow_shared::executions::WorkflowArns {
            purchase: self.output("PurchaseWorkflowArn")?.to_string(),
            refund: self.output("RefundWorkflowArn")?.to_string(),
        })
    }

    pub fn load(path: &Path) -> Result<StackInfo> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading {} (is `taskflow up` running?)", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("reading {}", path.display()))
    }

    /// A deployed stack, found by name with the standard AWS configuration (credential chain,
    /// region, and `AWS_ENDPOINT_URL` if set): its outputs are everything the CLI needs.
    pub async fn from_cloudformation(stack_name: &str) -> Result<StackInfo> {
        let aws = aws_config::defaults(aws_config::BehaviorVersion::latest()).load().await;
        let region = aws.region().map(|r| r.to_string()).context("no AWS region configured (AWS_REGION or a profile)")?;
        let out = aws_sdk_cloudformation::Client::new(&aws)
            .describe_stacks()
            .stack_name(stack_name)
            .send()
            .await
            .map_err(|e| {
                use aws_sdk_cloudformation::error::ProvideErrorMetadata;
                let why = e.message().map(str::to_string).unwrap_or_else(|| aws_sdk_cloudformation::error::DisplayErrorContext(&e).to_string());
                anyhow::anyhow!("reading stack {stack_name}: {why}")
            })?;
        let stack = out.stacks().first().with_context(|| format!("no stack {stack_name}"))?;
        let outputs = stack
            .outputs()
            .iter()
            .filter_map(|o| Some((o.output_key()?.to_string(), o.output_value()?.to_string())))
            .collect();
        Ok(StackInfo { endpoint: None, storage_endpoint: None, region, stack_name: stack_name.to_string(), outputs })
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, serde_json::to_string_pretty(self)? + "\n")?;
        Ok(())
    }

    /// SDK configuration for this stack: the emulator with dummy credentials, or AWS with the
    /// standard credential chain. Locally, DynamoDB, DynamoDB Streams and S3 clients built from
    /// it go to [`StackInfo::storage_endpoint`] and every other client to
    /// [`StackInfo::endpoint`], as the SDK routes `AWS_ENDPOINT_URL_DYNAMODB` (and `_S3`) and
    /// `AWS_ENDPOINT_URL` (service-specific endpoints: AWS SDKs and Tools Reference Guide,
    /// "Service-specific endpoints").
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        let loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(self.region.clone()));
        match &self.endpoint {
            Some(endpoint) => {
                let config = loader
                    .credentials_provider(aws_sdk_sqs::config::Credentials::new("test", "test", None, None, "taskflow-local"))
                    .load()
                    .await;
                // Not `ConfigLoader::endpoint_url`: an endpoint set in code takes precedence over
                // a service's own (each client's `From<&SdkConfig>`), so the URL is set on the
                // built configuration, where the service's own still wins.
                config
                    .to_builder()
                    .endpoint_url(endpoint)
                    .service_config(LocalEndpoints { storage: self.storage_endpoint.clone() })
                    .build()
            }
            None => loader.load().await,
        }
    }

    /// The loopback ports of the local stack's emulator processes (none for a stack on AWS).
    pub fn emulator_ports(&self) -> Vec<u16> {
        [&self.endpoint, &self.storage_endpoint]
            .into_iter()
            .flatten()
            .filter_map(|url| url.trim_end_matches('/').rsplit(':').next()?.parse().ok())
            .collect()
    }
}

/// The local stack's service-specific endpoints: DynamoDB, DynamoDB Streams and S3 (service ids
/// `DynamoDB`, `DynamoDB Streams`, `S3`) to the second emulator process, as
/// `AWS_ENDPOINT_URL_DYNAMODB`, `AWS_ENDPOINT_URL_DYNAMODB_STREAMS` and `AWS_ENDPOINT_URL_S3`
/// would; nothing else, so other clients take the configuration's endpoint URL.
#[derive(Debug)]
struct LocalEndpoints {
    storage: Option<String>,
}

impl aws_types::service_config::LoadServiceConfig for LocalEndpoints {
    fn load_config(&self, key: aws_types::service_config::ServiceConfigKey<'_>) -> Option<String> {
        match (key.service_id(), key.env()) {
            ("DynamoDB" | "DynamoDB Streams" | "S3", "AWS_ENDPOINT_URL") => self.storage.clone(),
            _ => None,
        }
    }
}
