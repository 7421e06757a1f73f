//! Whether this build's event types can still read what an earlier build stored, and what
//! its consumers expect: `herald schema check --against FILE`, FILE a saved
//! `GET /v1/domains` (or `herald schema show`) of the earlier build.
//!
//! Per type of the earlier build, at the same version:
//! - the type is gone: its stored events could not be read, its subscribers lose it;
//! - a field is gone: stored events carry it, and payloads refuse unknown fields;
//! - a field's schema changed (type, format, range, its nested fields): stored values may
//!   not fit;
//! - a field is newly required (new without a default, or optional before): stored events
//!   lack it.
//!
//! A higher version is compatible by declaration: its upcast turns the old layout into the
//! new one (and is tested like any code). A lower version is refused. New types, and new
//! optional fields, are fine.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

/// One change that breaks stored events or consumers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Breaking {
    /// The event type.
    pub type_name: String,
    /// Where in its `data` (a JSON pointer; empty for the whole type).
    pub at: String,
    /// What changed, and why it breaks.
    pub what: String,
}

impl std::fmt::Display for Breaking {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.at.is_empty() {
            true => write!(f, "{}: {}", self.type_name, self.what),
            false => write!(f, "{} data{}: {}", self.type_name, self.at, self.what),
        }
    }
}

/// What a comparison found.
#[derive(Debug, Default)]
pub struct Report {
    /// Types compared.
    pub checked: usize,
    /// Types whose version went up, with both versions: their upcasts cover the change.
    pub upcast: Vec<(String, u64, u64)>,
    /// Changes that break.
    pub breaking: Vec<Breaking>,
}

/// Why a saved topology cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SnapshotError(pub String);

/// Compares the types of `earlier` with those of `now` (each a `GET /v1/domains` body).
pub fn check(earlier: &Value, now: &Value) -> Result<Report, SnapshotError> {
    let before = types_of(earlier, "the saved topology")?;
    let after = types_of(now, "this build's topology")?;
    let mut report = Report::default();
    for (name, old) in &before {
        report.checked += 1;
        let Some((_, new)) = after.iter().find(|(n, _)| n == name) else {
            report.breaking.push(Breaking {
                type_name: name.clone(),
                at: String::new(),
                what: "the type was removed: its stored events could no longer be read, and domains subscribed to it would lose it".into(),
            });
            continue;
        };
        let version = |t: &Value| t.get("version").and_then(Value::as_u64).unwrap_or(1);
        let (was, is) = (version(old), version(new));
        if is < was {
            report.breaking.push(Breaking {
                type_name: name.clone(),
                at: String::new(),
                what: format!("the version went down from {was} to {is}: events stored at {was} have no upcast back"),
            });
            continue;
        }
        if is > was {
            report.upcast.push((name.clone(), was, is));
            continue;
        }
        if old.get("key").is_some() && old.get("key") != new.get("key") {
            report.breaking.push(Breaking {
                type_name: name.clone(),
                at: String::new(),
                what: format!(
                    "the key field changed from {} to {}: stored events are keyed (and partitioned) by the old one",
                    old["key"], new["key"]
                ),
            });
        }
        let (old_root, new_root) = (&old["schema"], &new["schema"]);
        compare(
            name,
            "",
            &resolve(old_root, old_root, 0),
            &resolve(new_root, new_root, 0),
            &mut report.breaking,
        );
    }
    Ok(report)
}

fn types_of(topology: &Value, what: &str) -> Result<Vec<(String, Value)>, SnapshotError> {
    let domains = topology
        .get("domains")
        .and_then(Value::as_array)
        .ok_or_else(|| SnapshotError(format!("{what} has no \"domains\" array: save the body of GET /v1/domains (or the output of herald schema show)")))?;
    let mut types = Vec::new();
    for (index, domain) in domains.iter().enumerate() {
        let listed = domain
            .get("types")
            .and_then(Value::as_object)
            .ok_or_else(|| {
                SnapshotError(format!("{what}: domains[{index}] has no \"types\" object"))
            })?;
        for (name, entry) in listed {
            if entry.get("schema").is_none() {
                return Err(SnapshotError(format!(
                    "{what}: type {name} has no \"schema\""
                )));
            }
            types.push((name.clone(), entry.clone()));
        }
    }
    Ok(types)
}

/// Keys that document a schema without constraining values.
const DOCUMENTATION: &[&str] = &[
    "description",
    "title",
    "examples",
    "default",
    "$comment",
    "$schema",
    "$defs",
    "definitions",
];

/// `schema` with every `$ref` into `root`'s `$defs` inlined and documentation dropped.
fn resolve(schema: &Value, root: &Value, depth: usize) -> Value {
    match schema {
        Value::Object(fields) => {
            if let Some(target) = fields.get("$ref").and_then(Value::as_str) {
                let found = target
                    .strip_prefix('#')
                    .and_then(|pointer| root.pointer(pointer));
                if let (Some(found), true) = (found, depth < 32) {
                    return resolve(found, root, depth + 1);
                }
            }
            let mut out = Map::new();
            for (key, value) in fields {
                if !DOCUMENTATION.contains(&key.as_str()) {
                    out.insert(key.clone(), resolve(value, root, depth));
                }
            }
            Value::Object(out)
        }
        Value::Array(items) => {
            Value::Array(items.iter().map(|v| resolve(v, root, depth)).collect())
        }
        other => other.clone(),
    }
}

fn required(schema: &Value) -> BTreeSet<String> {
    schema
        .get("required")
        .and_then(Value::as_array)
        .map(|names| {
            names
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn push(found: &mut Vec<Breaking>, type_name: &str, at: String, what: String) {
    found.push(Breaking {
        type_name: type_name.to_owned(),
        at,
        what,
    });
}

fn compare(type_name: &str, at: &str, old: &Value, new: &Value, found: &mut Vec<Breaking>) {
    let fields = |schema: &Value| schema.get("properties").and_then(Value::as_object).cloned();
    if let (Some(old_fields), Some(new_fields)) = (fields(old), fields(new)) {
        for (field, old_field) in &old_fields {
            let here = format!("{at}/{field}");
            match new_fields.get(field) {
                None => push(found, type_name, here, "the field was removed: stored events carry it, and a payload refuses fields it does not know (keep it, or raise the version with an upcast that drops it)".into()),
                Some(new_field) => compare(type_name, &here, old_field, new_field, found),
            }
        }
        for field in required(new).difference(&required(old)) {
            let what = match old_fields.contains_key(field) {
                true => "the field became required: stored events may lack it (give it a default, or raise the version with an upcast that fills it)",
                false => "a new required field without a default: stored events lack it (add #[serde(default)], or raise the version with an upcast that fills it)",
            };
            push(found, type_name, format!("{at}/{field}"), what.into());
        }
        // The rest of the object's schema (unknown fields refused or not, combinators).
        let rest = |schema: &Value| {
            let mut rest = schema.clone();
            if let Some(fields) = rest.as_object_mut() {
                fields.remove("properties");
                fields.remove("required");
            }
            rest
        };
        if rest(old) != rest(new) {
            let what = format!("changed from {} to {}", rest(old), rest(new));
            push(found, type_name, at.to_owned(), what);
        }
        return;
    }
    if let (Some(old_items), Some(new_items)) = (old.get("items"), new.get("items")) {
        let without_items = |schema: &Value| {
            let mut rest = schema.clone();
            if let Some(fields) = rest.as_object_mut() {
                fields.remove("items");
            }
            rest
        };
        let (old_rest, new_rest) = (without_items(old), without_items(new));
        if old_rest != new_rest {
            push(
                found,
                type_name,
                at.to_owned(),
                format!("changed from {old_rest} to {new_rest}"),
            );
        }
        compare(
            type_name,
            &format!("{at}/items"),
            old_items,
            new_items,
            found,
        );
    } else if old != new {
        push(found, type_name, at.to_owned(), format!("changed from {old} to {new}: stored values may not fit (raise the version with an upcast)"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn topology(schema: Value, version: u64) -> Value {
        json!({"domains": [{"name": "orders", "types": {"orders.Placed": {"schema": schema, "version": version}}}]})
    }

    fn placed(properties: Value, required: Value) -> Value {
        json!({"type": "object", "properties": properties, "required": required, "additionalProperties": false})
    }

    #[test]
    fn removed_retyped_and_newly_required_fields_break_and_a_version_raise_does_not() {
        let old = topology(
            placed(
                json!({"id": {"type": "string"}, "n": {"type": "integer", "description": "x"}, "note": {"type": "string"}}),
                json!(["id", "n"]),
            ),
            1,
        );
        let same = topology(
            placed(
                json!({"id": {"type": "string"}, "n": {"type": "integer", "description": "changed wording"}, "note": {"type": "string"}, "extra": {"type": "string"}}),
                json!(["id", "n"]),
            ),
            1,
        );
        let report = check(&old, &same).unwrap();
        assert!(report.breaking.is_empty(), "{:?}", report.breaking);
        let changed = topology(
            placed(
                json!({"id": {"type": "integer"}, "note": {"type": "string"}, "due": {"type": "string"}}),
                json!(["id", "due", "note"]),
            ),
            1,
        );
        let found: Vec<String> = check(&old, &changed)
            .unwrap()
            .breaking
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(found.len(), 4, "{found:#?}");
        assert!(
            found[0].starts_with("orders.Placed data/id: changed from"),
            "{found:#?}"
        );
        assert!(
            found[1].starts_with("orders.Placed data/n: the field was removed"),
            "{found:#?}"
        );
        assert!(
            found[2].starts_with("orders.Placed data/due: a new required field"),
            "{found:#?}"
        );
        assert!(
            found[3].starts_with("orders.Placed data/note: the field became required"),
            "{found:#?}"
        );
        let raised = topology(placed(json!({}), json!([])), 2);
        let report = check(&old, &raised).unwrap();
        assert!(report.breaking.is_empty());
        assert_eq!(report.upcast, vec![("orders.Placed".to_owned(), 1, 2)]);
        assert_eq!(check(&raised, &old).unwrap().breaking.len(), 1);
        let gone = json!({"domains": [{"name": "orders", "types": {}}]});
        assert!(check(&old, &gone).unwrap().breaking[0]
            .what
            .contains("removed"));
        assert!(check(&json!({"nope": 1}), &old).is_err());
    }

    #[test]
    fn nested_definitions_are_compared_through_their_references() {
        let with = |quantity: &str| {
            topology(
                json!({
                    "type": "object",
                    "properties": {"lines": {"type": "array", "items": {"$ref": "#/$defs/Line"}}},
                    "required": ["lines"],
                    "$defs": {"Line": {"type": "object", "properties": {"quantity": {"type": quantity}}, "required": ["quantity"]}},
                }),
                1,
            )
        };
        assert!(check(&with("integer"), &with("integer"))
            .unwrap()
            .breaking
            .is_empty());
        let found = check(&with("integer"), &with("string")).unwrap().breaking;
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].at, "/lines/items/quantity");
    }
}
