//! The catalogue: per sku, what it is called, what one unit costs (minor units, in one currency)
//! and whether it is sold at all. It is the only source of what taskflow charges: intake prices
//! every line of a purchase from it, and a price a submitter states is only ever compared with it.
//!
//! It is its own table (`taskflow-<stage>-catalogue`, key `sku`), apart from the inventory's stock:
//! the catalogue is read on every order and written by an operator now and then, while stock is
//! written on every purchase (one hot item per sku); keeping them apart keeps price reads off the
//! stock items' write traffic, lets intake read prices with a grant that cannot touch stock, and
//! lets a catalogue load never reset stock.
//!
//! Item shape: `sku` (S, key), `name` (S), `unitPrice` (N, minor units, at least 1), `currency`
//! (S, ISO 4217 upper case), `active` (BOOL), `stockShards` (N, 1–`MAX_STOCK_SHARDS`; absent
//! means 1). `taskflow catalogue load FILE` writes them.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use taskflow_contracts::Money;
use thiserror::Error;

/// One sku as the catalogue sells it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CatalogueEntry {
    pub sku: String,
    pub name: String,
    /// Price of one unit in the currency's minor units.
    pub unit_price: Money,
    /// ISO 4217 code, upper case: the only currency the sku is sold in.
    pub currency: String,
    /// False: the sku is known but no longer sold (orders of it are REJECTED `SKU_INACTIVE`).
    pub active: bool,
    /// How many inventory items the sku's stock is split over (1–[`MAX_STOCK_SHARDS`]; absent in
    /// a file or an item means 1). Each item sustains ~500 reservations/s (README, "Hot skus");
    /// it takes effect when stock is loaded (`taskflow catalogue load --stock`), which splits
    /// `available` over the shards.
    #[serde(default = "one_shard")]
    pub stock_shards: u32,
}

fn one_shard() -> u32 {
    1
}

impl CatalogueEntry {
    /// What makes an entry loadable: a sku of 1–64 characters, a name, a price of at least one
    /// minor unit, a three-letter upper-case currency code, 1–[`MAX_STOCK_SHARDS`] stock shards.
    /// `Err` says which rule broke.
    pub fn check(&self) -> Result<(), String> {
        let sku_chars = self.sku.chars().count();
        if self.sku.trim().is_empty() || sku_chars > MAX_SKU_CHARS {
            return Err(format!("sku {:?}: must be 1-{MAX_SKU_CHARS} characters", self.sku));
        }
        if self.name.trim().is_empty() {
            return Err(format!("sku {:?}: name is empty", self.sku));
        }
        if self.unit_price == 0 {
            return Err(format!("sku {:?}: unitPrice must be at least 1 (minor units)", self.sku));
        }
        if self.currency.len() != 3 || !self.currency.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(format!("sku {:?}: currency {:?} is not an upper-case ISO 4217 code", self.sku, self.currency));
        }
        if !(1..=MAX_STOCK_SHARDS).contains(&self.stock_shards) {
            return Err(format!("sku {:?}: stockShards must be 1-{MAX_STOCK_SHARDS}, got {}", self.sku, self.stock_shards));
        }
        Ok(())
    }
}

/// The longest sku taskflow takes (intake refuses longer ones before reading the catalogue).
pub const MAX_SKU_CHARS: usize = taskflow_contracts::limits::MAX_SKU_CHARS;

/// The most items one sku's stock may be split over (`stockShards`).
pub const MAX_STOCK_SHARDS: u32 = taskflow_contracts::limits::MAX_STOCK_SHARDS;

#[derive(Debug, Error)]
pub enum CatalogueError {
    /// Transient: the catalogue could not be read now (the order is retried, not judged).
    #[error("catalogue unavailable: {0}")]
    Unavailable(String),
}

#[async_trait]
pub trait Catalogue: Send + Sync {
    /// The entries of `skus` (distinct, each 1–64 characters), by sku; a sku the catalogue does
    /// not have is absent from the answer. Errors are transient only.
    async fn entries(&self, skus: &[&str]) -> Result<HashMap<String, CatalogueEntry>, CatalogueError>;
}

/// The catalogue table's key of a sku: the one place a sku from an order becomes a key.
pub fn sku_key(sku: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([("sku".to_string(), AttributeValue::S(sku.to_string()))])
}

/// An entry as the table holds it, or `None` if the item lacks a field (logged: an operator's
/// mistake, and such a sku is not sold).
pub fn decode(item: &HashMap<String, AttributeValue>) -> Option<CatalogueEntry> {
    let s = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned();
    let entry = (|| {
        Some(CatalogueEntry {
            sku: s("sku")?,
            name: s("name").unwrap_or_default(),
            unit_price: item.get("unitPrice")?.as_n().ok()?.parse().ok()?,
            currency: s("currency")?,
            active: *item.get("active")?.as_bool().ok()?,
            stock_shards: match item.get("stockShards") {
                None => 1,
                Some(n) => n.as_n().ok()?.parse().ok()?,
            },
        })
    })();
    if entry.is_none() {
        tracing::error!(sku = ?s("sku"), "catalogue item without unitPrice, currency or active: not sold");
    }
    entry
}

/// The item of an entry, as `decode` reads it back.
pub fn encode(entry: &CatalogueEntry) -> HashMap<String, AttributeValue> {
    let mut item = sku_key(&entry.sku);
    item.insert("name".into(), AttributeValue::S(entry.name.clone()));
    item.insert("unitPrice".into(), AttributeValue::N(entry.unit_price.to_string()));
    item.insert("currency".into(), AttributeValue::S(entry.currency.clone()));
    item.insert("active".into(), AttributeValue::Bool(entry.active));
    item.insert("stockShards".into(), AttributeValue::N(entry.stock_shards.to_string()));
    item
}

/// The catalogue table through BatchGetItem, eventually consistent: a catalogue is written by an
/// operator, rarely, and read on every order. A price change may take a moment (typically under a
/// second) to reach every read; the price an order is accepted at is the one intake read, and
/// from then on the task record carries it, so nothing downstream reads the catalogue again.
/// Eventually consistent reads cost half a strongly consistent one. (DynamoDB developer guide,
/// "Read consistency": https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/HowItWorks.ReadConsistency.html;
/// read request units: one per strongly consistent read of up to 4 KB, half for eventually
/// consistent.)
pub struct DynamoCatalogue {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoCatalogue {
    pub fn new(aws: &impl crate::clients::ClientSource, table: impl Into<String>) -> Self {
        Self { client: aws.dynamodb(), table: table.into() }
    }
}

#[async_trait]
impl Catalogue for DynamoCatalogue {
    async fn entries(&self, skus: &[&str]) -> Result<HashMap<String, CatalogueEntry>, CatalogueError> {
        let mut found = HashMap::new();
        let mut distinct: Vec<&str> = skus.to_vec();
        distinct.sort_unstable();
        // BatchGetItem refuses a request with the same key twice ("ValidationException: Provided
        // list of item keys contains duplicates"; BatchGetItem API reference, Errors).
        distinct.dedup();
        let keys = distinct.iter().map(|sku| (self.table.clone(), sku_key(sku))).collect();
        let items = crate::dynamo::batch_get_keys(&self.client, keys, false).await.map_err(CatalogueError::Unavailable)?;
        for (_, item) in items {
            if let Some(entry) = decode(&item) {
                found.insert(entry.sku.clone(), entry);
            }
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lamp() -> CatalogueEntry {
        CatalogueEntry { sku: "LAMP-1".into(), name: "A desk lamp".into(), unit_price: 4599, currency: "EUR".into(), active: true, stock_shards: 1 }
    }

    #[test]
    fn an_entry_round_trips_through_its_item() {
        let entry = lamp();
        assert_eq!(decode(&encode(&entry)), Some(entry.clone()));
        let retired = CatalogueEntry { active: false, ..entry };
        assert_eq!(decode(&encode(&retired)), Some(retired));
        let hot = CatalogueEntry { stock_shards: 4, ..lamp() };
        assert_eq!(decode(&encode(&hot)), Some(hot));
        let mut before_shards = encode(&lamp());
        before_shards.remove("stockShards");
        assert_eq!(decode(&before_shards).map(|e| e.stock_shards), Some(1), "an item written before shards has one");
    }

    #[test]
    fn an_item_without_price_currency_or_active_is_not_an_entry() {
        for field in ["unitPrice", "currency", "active", "sku"] {
            let mut item = encode(&lamp());
            item.remove(field);
            assert_eq!(decode(&item), None, "without {field}");
        }
        let mut item = encode(&lamp());
        item.insert("unitPrice".into(), AttributeValue::N("12.5".into()));
        assert_eq!(decode(&item), None, "a fractional price");
    }

    #[test]
    fn check_names_the_rule_an_entry_breaks() {
        assert_eq!(lamp().check(), Ok(()));
        let broken = [
            CatalogueEntry { sku: " ".into(), ..lamp() },
            CatalogueEntry { sku: "S".repeat(65), ..lamp() },
            CatalogueEntry { name: "".into(), ..lamp() },
            CatalogueEntry { unit_price: 0, ..lamp() },
            CatalogueEntry { currency: "eur".into(), ..lamp() },
            CatalogueEntry { currency: "EURO".into(), ..lamp() },
            CatalogueEntry { stock_shards: 0, ..lamp() },
            CatalogueEntry { stock_shards: MAX_STOCK_SHARDS + 1, ..lamp() },
        ];
        for entry in broken {
            assert!(entry.check().is_err(), "{entry:?}");
        }
        let too_many = CatalogueEntry { stock_shards: 17, ..lamp() }.check().unwrap_err();
        assert!(too_many.contains("stockShards must be 1-16"), "{too_many}");
        assert_eq!(CatalogueEntry { stock_shards: MAX_STOCK_SHARDS, ..lamp() }.check(), Ok(()));
        let parsed: CatalogueEntry = serde_json::from_str(r#"{"sku":"A","name":"a","unitPrice":1,"currency":"EUR","active":true}"#).unwrap();
        assert_eq!(parsed.stock_shards, 1, "absent in a file means one shard");
    }
}
