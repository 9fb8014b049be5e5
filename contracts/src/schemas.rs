//! JSON Schemas of every v1 contract type, generated from the Rust types. The committed copies in
//! `contracts/schemas/` are checked against these by a test, so they cannot drift; regenerate
//! them with `make schemas` after changing a type.

use crate::*;

/// (file name, schema) for every message and event type.
pub fn all() -> Vec<(&'static str, schemars::Schema)> {
    vec![
        ("OrderSubmitted.v1.schema.json", schemars::schema_for!(OrderSubmitted)),
        ("TaskStatusChanged.v1.schema.json", schemars::schema_for!(TaskStatusChanged)),
        ("PurchaseWork.v1.schema.json", schemars::schema_for!(PurchaseWork)),
        ("PurchaseResult.v1.schema.json", schemars::schema_for!(PurchaseResult)),
        ("RefundWork.v1.schema.json", schemars::schema_for!(RefundWork)),
        ("RefundResult.v1.schema.json", schemars::schema_for!(RefundResult)),
        ("NotificationWork.v1.schema.json", schemars::schema_for!(NotificationWork)),
        ("NotificationResult.v1.schema.json", schemars::schema_for!(NotificationResult)),
        ("TaskAttachmentAdded.v1.schema.json", schemars::schema_for!(TaskAttachmentAdded)),
        ("ApprovalWork.v1.schema.json", schemars::schema_for!(ApprovalWork)),
        ("ApprovalDecision.v1.schema.json", schemars::schema_for!(ApprovalDecision)),
        ("OrderCancelled.v1.schema.json", schemars::schema_for!(OrderCancelled)),
        ("TaskSwept.v1.schema.json", schemars::schema_for!(TaskSwept)),
    ]
}

/// The file text of a schema: pretty JSON and a final newline.
pub fn render(schema: &schemars::Schema) -> String {
    serde_json::to_string_pretty(schema).expect("schemas serialise") + "\n"
}
