//! Every vector in `docs/vectors/` (the contract's key vectors) reproduced, read from the files.

use std::path::PathBuf;

use oncefetch_core::{job_key, op_key, url::canonicalize, KeyValue};
use serde_json::Value;

fn vectors(name: &str) -> Vec<Value> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../docs/vectors")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let rows: Vec<Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(!rows.is_empty(), "{name} has no vectors");
    rows
}

fn s<'a>(row: &'a Value, field: &str) -> &'a str {
    row[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} missing in {row}"))
}

#[test]
fn canonical_urls() {
    for row in vectors("canonical_urls.jsonl") {
        assert_eq!(canonicalize(s(&row, "url")).unwrap(), s(&row, "canonical_url"), "{row}");
    }
}

#[test]
fn job_keys() {
    for row in vectors("keys.jsonl") {
        let key = job_key(s(&row, "work_id"), s(&row, "artifact_id"), s(&row, "canonical_url"));
        assert_eq!(key, s(&row, "job_key"), "{row}");
    }
}

#[test]
fn op_keys() {
    for row in vectors("op_keys.jsonl") {
        let context: Vec<(&str, KeyValue<'_>)> = row["context"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| {
                let value = match v {
                    Value::String(s) => KeyValue::Str(s),
                    Value::Number(n) => KeyValue::Int(n.as_i64().unwrap()),
                    other => panic!("unexpected context value {other}"),
                };
                (k.as_str(), value)
            })
            .collect();
        let key = op_key(s(&row, "kind"), s(&row, "job_id"), &context);
        assert_eq!(key, s(&row, "op_key"), "{row}");
    }
}
