//! The committed JSON Schemas are exactly what the types generate. Set TASKFLOW_WRITE_SCHEMAS=1
//! (`make schemas`) to rewrite them after a deliberate change.

#[test]
fn committed_schemas_match_the_types() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas");
    let write = std::env::var_os("TASKFLOW_WRITE_SCHEMAS").is_some();
    let mut drifted = Vec::new();
    for (name, schema) in taskflow_contracts::schemas::all() {
        let path = dir.join(name);
        let expected = taskflow_contracts::schemas::render(&schema);
        if write {
            std::fs::write(&path, &expected).unwrap();
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(expected.as_str()) {
            drifted.push(name);
        }
    }
    let committed = std::fs::read_dir(&dir).unwrap().count();
    assert_eq!(committed, taskflow_contracts::schemas::all().len(), "a schema file without a type in {}", dir.display());
    assert!(drifted.is_empty(), "schemas differ from the types: {drifted:?}; run `make schemas` and review the diff");
}

#[test]
fn a_schema_describes_the_wire_form() {
    let (_, schema) = taskflow_contracts::schemas::all().into_iter().find(|(n, _)| n.starts_with("OrderSubmitted")).unwrap();
    let json = serde_json::to_value(&schema).unwrap();
    let required: Vec<&str> = json["required"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    for field in ["schemaVersion", "orderId", "owner", "kind", "currency"] {
        assert!(required.contains(&field), "{field} is required");
    }
    assert_eq!(json["properties"]["kind"]["$ref"].as_str().map(|r| r.ends_with("OrderKind")), Some(true));
}
