//! What the DynamoDB adapters share: reading an SDK error.

use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

/// The error with its causes, for a log line or an error message.
pub fn describe<E: std::error::Error + 'static, R: std::fmt::Debug>(e: &SdkError<E, R>) -> String {
    DisplayErrorContext(e).to_string()
}

/// A condition expression did not hold: the write was refused, not lost.
pub fn conditional_failed<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> bool {
    e.as_service_error().and_then(|e| e.code()) == Some("ConditionalCheckFailedException")
}

/// An item as the SDK returns it.
pub type Item = std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>;

/// The item of `table` whose string key `key_name` is `key`, read strongly consistent: every
/// adapter reads right after its own (or a duplicate delivery's) write and must see it.
pub async fn get(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    key_name: &str,
    key: &str,
) -> Result<Option<Item>, SdkError<aws_sdk_dynamodb::operation::get_item::GetItemError>> {
    let out = client
        .get_item()
        .table_name(table)
        .key(key_name, aws_sdk_dynamodb::types::AttributeValue::S(key.to_string()))
        .consistent_read(true)
        .send()
        .await?;
    Ok(out.item)
}
