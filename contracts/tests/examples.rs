//! Every file in contracts/examples is a valid PutEvents entry list whose Detail reads as today's
//! types, so the examples cannot drift from the contracts.

use serde::Deserialize;
use taskflow_contracts::*;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct Entry {
    source: String,
    detail_type: String,
    event_bus_name: String,
    /// PutEvents takes the detail as a JSON string.
    detail: String,
}

#[test]
fn every_example_is_a_put_events_entry_of_a_contract_type() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut checked = 0;
    for file in std::fs::read_dir(&dir).unwrap() {
        let path = file.unwrap().path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let entries: Vec<Entry> = serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(entries.len(), 1, "{}", path.display());
        let entry = &entries[0];
        assert_eq!(entry.event_bus_name, "taskflow-local");
        match (entry.source.as_str(), entry.detail_type.as_str()) {
            (ORDER_SOURCE, ORDER_SUBMITTED) => {
                let order: OrderSubmitted = serde_json::from_str(&entry.detail).unwrap();
                assert_eq!(order.schema_version, SCHEMA_VERSION);
            }
            (ORDER_SOURCE, taskflow_contracts::ORDER_CANCELLED) => {
                let detail: serde_json::Value = serde_json::from_str(&entry.detail).unwrap();
                taskflow_contracts::OrderCancelled::parse(&detail).unwrap();
            }
            (taskflow_contracts::sweep::SWEEPER_SOURCE, taskflow_contracts::sweep::TASK_SWEPT) => {
                let swept: taskflow_contracts::TaskSwept = serde_json::from_str(&entry.detail).unwrap();
                assert_eq!(swept.schema_version, SCHEMA_VERSION);
            }
            (TASK_SOURCE, TASK_STATUS_CHANGED) => {
                let event: TaskStatusChanged = serde_json::from_str(&entry.detail).unwrap();
                assert_eq!(event.event_id, TaskStatusChanged::event_id_for(&event.order_id, event.sequence));
                if let Some(reason) = &event.reason {
                    assert!(Reason::parse(reason).is_some(), "{reason} is a named reason");
                }
            }
            (TASK_SOURCE, TASK_ATTACHMENT_ADDED) => {
                let event: TaskAttachmentAdded = serde_json::from_str(&entry.detail).unwrap();
                assert_eq!(event.schema_version, SCHEMA_VERSION);
                assert!(attachment::is_attachment_id(&event.attachment.id));
                assert_eq!(event.event_id.rsplit('@').next(), Some(event.attachment.id.as_str()));
            }
            other => panic!("{}: unexpected {other:?}", path.display()),
        }
        checked += 1;
    }
    assert!(checked >= 4, "found only {checked} examples");
}

#[test]
fn every_work_message_and_result_has_an_example_that_reads_as_its_type() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/messages");
    let mut seen = std::collections::BTreeSet::new();
    for file in std::fs::read_dir(&dir).unwrap() {
        let path = file.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let text = std::fs::read_to_string(&path).unwrap();
        let type_name = name.split('.').next().unwrap().to_string();
        let parsed = match type_name.as_str() {
            "PurchaseWork" => serde_json::from_str::<PurchaseWork>(&text).map(|_| ()),
            "PurchaseResult" => serde_json::from_str::<PurchaseResult>(&text).map(|_| ()),
            "RefundWork" => serde_json::from_str::<RefundWork>(&text).map(|_| ()),
            "RefundResult" => serde_json::from_str::<RefundResult>(&text).map(|_| ()),
            "NotificationWork" => serde_json::from_str::<NotificationWork>(&text).map(|_| ()),
            "NotificationResult" => serde_json::from_str::<NotificationResult>(&text).map(|_| ()),
            "ApprovalWork" => serde_json::from_str::<taskflow_contracts::ApprovalWork>(&text).map(|_| ()),
            "ApprovalDecision" => serde_json::from_str::<taskflow_contracts::ApprovalDecision>(&text).map(|_| ()),
            other => panic!("{name}: no type {other}"),
        };
        parsed.unwrap_or_else(|e| panic!("{name}: {e}"));
        seen.insert(type_name);
    }
    // Every schema'd type has an example (events are covered by the PutEvents entries).
    for (schema, _) in taskflow_contracts::schemas::all() {
        let type_name = schema.split('.').next().unwrap();
        if !matches!(type_name, "OrderSubmitted" | "TaskStatusChanged" | "TaskAttachmentAdded" | "OrderCancelled" | "TaskSwept") {
            assert!(seen.contains(type_name), "no example of {type_name}");
        }
    }
}
