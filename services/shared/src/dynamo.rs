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

/// An item's size in bytes as DynamoDB counts it against its 400 KB item limit
/// (`taskflow_contracts::limits::DYNAMODB_ITEM_MAX_BYTES`): each attribute's name (UTF-8 bytes)
/// plus its value — a string its UTF-8 bytes, a number 1 byte per two significant digits plus 1,
/// binary its raw bytes, null and Boolean 1 byte, a list or map 3 bytes plus its elements plus 1
/// byte per element (a map element's name counts too), a set the sum of its elements.
/// Source: "DynamoDB item sizes and formats",
/// <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/CapacityUnitCalculations.html>.
pub fn item_size(item: &Item) -> usize {
    item.iter().map(|(name, value)| name.len() + value_size(value)).sum()
}

fn number_size(n: &str) -> usize {
    // Significant digits: leading and trailing zeroes are trimmed, sign, point and exponent are not digits.
    let mantissa = n.split(['e', 'E']).next().unwrap_or_default();
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let significant = digits.trim_start_matches('0').trim_end_matches('0').len().max(1);
    significant.div_ceil(2) + 1
}

fn value_size(value: &aws_sdk_dynamodb::types::AttributeValue) -> usize {
    use aws_sdk_dynamodb::types::AttributeValue as A;
    match value {
        A::S(s) => s.len(),
        A::N(n) => number_size(n),
        A::B(b) => b.as_ref().len(),
        A::Bool(_) | A::Null(_) => 1,
        A::Ss(ss) => ss.iter().map(String::len).sum(),
        A::Ns(ns) => ns.iter().map(|n| number_size(n)).sum(),
        A::Bs(bs) => bs.iter().map(|b| b.as_ref().len()).sum(),
        A::L(list) => 3 + list.iter().map(|e| value_size(e) + 1).sum::<usize>(),
        A::M(map) => 3 + map.iter().map(|(k, e)| k.len() + value_size(e) + 1).sum::<usize>(),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::types::AttributeValue as A;

    #[test]
    fn item_size_counts_as_dynamodb_does() {
        let item: Item = [
            ("id".to_string(), A::S("abc".into())),                     // 2 + 3
            ("n".to_string(), A::N("1250.00".into())),                  // 1 + (3 digits → 2) + 1
            ("ok".to_string(), A::Bool(true)),                          // 2 + 1
            ("l".to_string(), A::L(vec![A::S("xy".into()), A::Null(true)])), // 1 + 3 + (2+1) + (1+1)
            ("m".to_string(), A::M([("k".to_string(), A::S("v".into()))].into())), // 1 + 3 + (1+1+1)
        ]
        .into();
        assert_eq!(item_size(&item), 5 + 4 + 3 + 9 + 7);
        assert_eq!(number_size("0"), 2);
        assert_eq!(number_size("-0.000123"), 3);
        assert_eq!(number_size("12345678901234567890123456789012345678"), 20);
    }
}

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

/// BatchGetItem takes at most 100 keys a call (BatchGetItem API reference, "RequestItems").
pub const BATCH_GET_MAX_KEYS: usize = 100;

/// How many times keys DynamoDB answers as unprocessed are asked again before it is an error.
const UNPROCESSED_ROUNDS: u32 = 5;

/// The items found for `keys` (each a table and the item's key), as (table, item), in no
/// particular order (keys with no item left out), by BatchGetItem: at most
/// [`BATCH_GET_MAX_KEYS`] keys a call, strongly consistent when `consistent`, and keys answered
/// as unprocessed asked again with a doubling pause from 20 ms, as the API reference advises
/// ("we strongly recommend that you use an exponential backoff algorithm"), [`UNPROCESSED_ROUNDS`]
/// times, then an error. The keys must be distinct (DynamoDB refuses a request naming one twice).
/// Errors: the SDK error, described.
pub async fn batch_get_keys(client: &aws_sdk_dynamodb::Client, keys: Vec<(String, Item)>, consistent: bool) -> Result<Vec<(String, Item)>, String> {
    use aws_sdk_dynamodb::types::KeysAndAttributes;
    let mut found = Vec::new();
    for chunk in keys.chunks(BATCH_GET_MAX_KEYS) {
        let mut by_table: std::collections::HashMap<String, Vec<Item>> = std::collections::HashMap::new();
        for (table, key) in chunk {
            by_table.entry(table.clone()).or_default().push(key.clone());
        }
        let mut request = std::collections::HashMap::new();
        for (table, keys) in by_table {
            let wanted = KeysAndAttributes::builder().set_keys(Some(keys)).consistent_read(consistent).build().map_err(|e| e.to_string())?;
            request.insert(table, wanted);
        }
        for round in 0.. {
            let out = client.batch_get_item().set_request_items(Some(request)).send().await.map_err(|e| describe(&e))?;
            for (table, items) in out.responses.unwrap_or_default() {
                found.extend(items.into_iter().map(|item| (table.clone(), item)));
            }
            match out.unprocessed_keys.filter(|u| u.values().any(|k| !k.keys.is_empty())) {
                None => break,
                Some(_) if round >= UNPROCESSED_ROUNDS => return Err("keys left unprocessed after retries".into()),
                Some(unprocessed) => {
                    tokio::time::sleep(std::time::Duration::from_millis(20 << round)).await;
                    request = unprocessed;
                }
            }
        }
    }
    Ok(found)
}

/// The items of `table` whose string key `key_name` is each of `keys`, in the order of `keys`
/// (keys with no item left out; a key named twice is read once), strongly consistent, by
/// [`batch_get_keys`]. How a query of an index that projects keys only reads the items it
/// found. Errors: the SDK error, described.
pub async fn batch_get(client: &aws_sdk_dynamodb::Client, table: &str, key_name: &str, keys: &[String]) -> Result<Vec<Item>, String> {
    use aws_sdk_dynamodb::types::AttributeValue;
    let mut distinct: Vec<&String> = keys.iter().collect();
    distinct.sort_unstable();
    distinct.dedup();
    let wanted = distinct.into_iter().map(|k| (table.to_string(), Item::from([(key_name.to_string(), AttributeValue::S(k.clone()))]))).collect();
    let mut found: std::collections::HashMap<String, Item> = std::collections::HashMap::new();
    for (_, item) in batch_get_keys(client, wanted, true).await? {
        if let Some(AttributeValue::S(k)) = item.get(key_name) {
            found.insert(k.clone(), item);
        }
    }
    Ok(keys.iter().filter_map(|k| found.remove(k)).collect())
}
