//! Loading a catalogue file into a stack: what `taskflow up` does with `infra/local/catalogue.json`
//! and what an operator does on AWS with `taskflow --stack NAME catalogue load FILE`.
//!
//! A catalogue file is a JSON list of lines `{"sku", "name", "unitPrice" (minor units),
//! "currency" (ISO 4217), "active" (bool), "available" (optional: stock)}`. Every line is checked
//! (see `CatalogueEntry::check`) and skus must be distinct before anything is written. Each entry
//! is written to the catalogue table (PutItem: adds it or replaces it whole, so a price change or a
//! retirement is a load of the changed file). `available` is written to the inventory table only
//! when asked (`--stock`), because it overwrites the stock count: right for a new stack, wrong
//! for one that is selling. A line's `stockShards` (1 when absent) splits its `available` over
//! that many inventory items (`taskflow_shared::inventory::load_stock`: evenly, the remainder one
//! unit each on the first shards; shards an earlier load had beyond the new count are deleted, so
//! the shards hold exactly `available`). Without `--stock` nothing in the inventory changes,
//! whatever `stockShards` says: the layout changes with the next stock load.

use crate::stack::StackInfo;
use anyhow::{bail, Context, Result};
use std::collections::HashSet;
use std::path::Path;
use taskflow_shared::catalogue::{decode, encode, CatalogueEntry};

/// One line of a catalogue file.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CatalogueLine {
    #[serde(flatten)]
    pub entry: CatalogueEntry,
    /// Units in stock to start with.
    #[serde(default)]
    pub available: Option<u64>,
}

/// The lines of a catalogue file, checked: each entry valid, skus distinct.
pub fn read(path: &Path) -> Result<Vec<CatalogueLine>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let lines: Vec<CatalogueLine> = serde_json::from_str(&text).with_context(|| format!("reading {}", path.display()))?;
    let mut skus = HashSet::new();
    for line in &lines {
        line.entry.check().map_err(|why| anyhow::anyhow!("{}: {why}", path.display()))?;
        if !skus.insert(line.entry.sku.as_str()) {
            bail!("{}: sku {:?} is listed twice", path.display(), line.entry.sku);
        }
    }
    Ok(lines)
}

/// What a load wrote.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Loaded {
    pub entries: usize,
    pub stock: usize,
}

/// Writes `path`'s entries into the stack's catalogue table (`CatalogueTableName`), and with
/// `stock` each line's `available` into its inventory table (`InventoryTableName`), split over
/// its `stockShards`.
/// AWS calls: `dynamodb:PutItem` on the catalogue table (and `GetItem`, `PutItem`, `DeleteItem`
/// on the inventory table with `stock`).
pub async fn load(aws: &aws_config::SdkConfig, info: &StackInfo, path: &Path, stock: bool) -> Result<Loaded> {
    let lines = read(path)?;
    let dynamodb = aws_sdk_dynamodb::Client::new(aws);
    let catalogue = info.output("CatalogueTableName")?;
    let mut loaded = Loaded::default();
    for line in &lines {
        dynamodb
            .put_item()
            .table_name(catalogue)
            .set_item(Some(encode(&line.entry)))
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("writing {} to the catalogue: {}", line.entry.sku, taskflow_shared::dynamo::describe(&e)))?;
        loaded.entries += 1;
    }
    if stock {
        let inventory = info.output("InventoryTableName")?;
        for line in &lines {
            let Some(available) = line.available else { continue };
            taskflow_shared::inventory::load_stock(&dynamodb, inventory, &line.entry.sku, available, line.entry.stock_shards)
                .await
                .map_err(|e| anyhow::anyhow!("writing the stock of {}: {e}", line.entry.sku))?;
            loaded.stock += 1;
        }
    }
    Ok(loaded)
}

/// Every entry of the stack's catalogue, by sku (a Scan: for operators, not for orders).
/// AWS calls: `dynamodb:Scan` on the catalogue table.
pub async fn list(aws: &aws_config::SdkConfig, info: &StackInfo) -> Result<Vec<CatalogueEntry>> {
    let dynamodb = aws_sdk_dynamodb::Client::new(aws);
    let table = info.output("CatalogueTableName")?;
    let mut entries = Vec::new();
    let mut start = None;
    loop {
        let out = dynamodb
            .scan()
            .table_name(table)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("reading the catalogue: {}", taskflow_shared::dynamo::describe(&e)))?;
        entries.extend(out.items.unwrap_or_default().iter().filter_map(decode));
        start = out.last_evaluated_key;
        if start.is_none() {
            break;
        }
    }
    entries.sort_by(|a, b| a.sku.cmp(&b.sku));
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> tempfile_path::Temp {
        tempfile_path::Temp::with(text)
    }

    mod tempfile_path {
        /// A file under the temp dir, removed when dropped.
        pub struct Temp(pub std::path::PathBuf);
        impl Temp {
            pub fn with(text: &str) -> Temp {
                let path = std::env::temp_dir().join(format!("catalogue-{}.json", uuid::Uuid::new_v4().simple()));
                std::fs::write(&path, text).unwrap();
                Temp(path)
            }
        }
        impl Drop for Temp {
            fn drop(&mut self) {
                let _ = std::fs::remove_file(&self.0);
            }
        }
    }

    #[test]
    fn the_local_catalogue_reads_and_has_an_inactive_and_a_dollar_sku() {
        let lines = read(&crate::paths::project_root().join("infra/local/catalogue.json")).unwrap();
        assert!(lines.iter().any(|l| !l.entry.active), "an inactive sku for tests and the demo");
        assert!(lines.iter().any(|l| l.entry.currency != "EUR"), "a sku sold in another currency");
        let lamp = lines.iter().find(|l| l.entry.sku == "LAMP-1").unwrap();
        assert_eq!((lamp.entry.unit_price, lamp.entry.currency.as_str(), lamp.available), (4599, "EUR", Some(1000)));
        assert_eq!(lamp.entry.stock_shards, 1, "absent: one shard");
        let hot = lines.iter().find(|l| l.entry.sku == "HOT-1").expect("a hot sku, sharded");
        assert_eq!(hot.entry.stock_shards, 4);
    }

    #[test]
    fn a_file_with_a_broken_line_or_a_repeated_sku_is_refused_whole() {
        let good = r#"{"sku": "A-1", "name": "a", "unitPrice": 100, "currency": "EUR", "active": true}"#;
        assert_eq!(read(&file(&format!("[{good}]")).0).unwrap().len(), 1);
        for bad in [
            format!("[{good}, {good}]"),
            r#"[{"sku": "A-1", "name": "a", "unitPrice": 0, "currency": "EUR", "active": true}]"#.to_string(),
            r#"[{"sku": "A-1", "name": "a", "unitPrice": 100, "currency": "eur", "active": true}]"#.to_string(),
            r#"[{"sku": "A-1", "name": "a", "unitPrice": 100, "currency": "EUR"}]"#.to_string(),
            r#"[{"sku": "A-1", "name": "a", "unitPrice": 1.5, "currency": "EUR", "active": true}]"#.to_string(),
            r#"[{"sku": "A-1", "name": "a", "unitPrice": 100, "currency": "EUR", "active": true, "stockShards": 0}]"#.to_string(),
            r#"[{"sku": "A-1", "name": "a", "unitPrice": 100, "currency": "EUR", "active": true, "stockShards": 17}]"#.to_string(),
        ] {
            assert!(read(&file(&bad).0).is_err(), "{bad}");
        }
    }
}
