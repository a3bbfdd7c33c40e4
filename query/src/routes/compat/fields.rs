//! Building an event's `fields` from other tools' attribute maps.
//!
//! Attribute keys are dotted names (`k8s.pod.name`, `http.response.status_code`). The query
//! language walks `fields` as nested objects (`fields.k8s.pod.name:x`), and the index does
//! the same, so [`insert_path`] expands dots into nested objects. When a path collides with
//! a value that is not an object (`a` = 1 and `a.b` = 2), the dotted key is kept as is
//! (stored, returned, not reachable by a path query) instead of losing a value.

use serde_json::{Map, Value};

/// Deepest nesting [`insert_path`] expands; longer paths keep their dots.
pub const MAX_DEPTH: usize = 16;

/// Inserts `value` at the dotted `key`, creating objects on the way; the last write wins.
pub fn insert_path(map: &mut Map<String, Value>, key: &str, value: Value) {
    let parts: Vec<&str> = key.split('.').collect();
    if parts.len() == 1 || parts.len() > MAX_DEPTH || parts.iter().any(|p| p.is_empty()) {
        map.insert(key.to_string(), value);
        return;
    }
    if !fits(map, &parts) {
        map.insert(key.to_string(), value);
        return;
    }
    let mut node = map;
    for part in &parts[..parts.len() - 1] {
        let entry = node
            .entry(part.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        let Value::Object(next) = entry else {
            debug_assert!(false, "fits() checked every step is an object");
            return;
        };
        node = next;
    }
    let last = parts[parts.len() - 1];
    match (node.get_mut(last), value) {
        (Some(Value::Object(old)), Value::Object(new)) => {
            for (k, v) in new {
                old.insert(k, v);
            }
        }
        (_, value) => {
            node.insert(last.to_string(), value);
        }
    }
}

/// Whether every step but the last is missing or an object.
fn fits(map: &Map<String, Value>, parts: &[&str]) -> bool {
    let mut node = map;
    for part in &parts[..parts.len() - 1] {
        match node.get(*part) {
            None => return true,
            Some(Value::Object(next)) => node = next,
            Some(_) => return false,
        }
    }
    true
}

/// Removes and returns the value at a dotted path, looked up both as a literal dotted key
/// and as nested objects (`{"service.name": x}` or `{"service": {"name": x}}`); an object
/// left empty by the removal is removed too.
pub fn take_path(map: &mut Map<String, Value>, path: &str) -> Option<Value> {
    if let Some(v) = map.remove(path) {
        return Some(v);
    }
    let (head, rest) = path.split_once('.')?;
    let Some(Value::Object(inner)) = map.get_mut(head) else {
        return None;
    };
    let found = take_path(inner, rest);
    if found.is_some() && inner.is_empty() {
        map.remove(head);
    }
    found
}

/// Removes the first of `paths` that holds a non-empty string and returns it; values of
/// other types are left where they are.
pub fn take_string(map: &mut Map<String, Value>, paths: &[&str]) -> Option<String> {
    for path in paths {
        let Some(v) = peek_path(map, path) else {
            continue;
        };
        match v {
            Value::String(s) if !s.is_empty() => {
                let s = s.clone();
                take_path(map, path);
                return Some(s);
            }
            _ => continue,
        }
    }
    None
}

/// The value at a dotted path, literal or nested, without removing it.
pub fn peek_path<'a>(map: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    if let Some(v) = map.get(path) {
        return Some(v);
    }
    let (head, rest) = path.split_once('.')?;
    match map.get(head) {
        Some(Value::Object(inner)) => peek_path(inner, rest),
        _ => None,
    }
}

/// Copies every key of `from` into `into`, expanding dotted keys at every level.
pub fn merge_expanded(into: &mut Map<String, Value>, from: Map<String, Value>) {
    for (k, v) in from {
        let v = expand_value(v, 1);
        insert_path(into, &k, v);
    }
}

fn expand_value(v: Value, depth: usize) -> Value {
    match v {
        Value::Object(obj) if depth < MAX_DEPTH => {
            let mut out = Map::new();
            for (k, inner) in obj {
                insert_path(&mut out, &k, expand_value(inner, depth + 1));
            }
            Value::Object(out)
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn dots_expand_and_collisions_keep_the_dotted_key() {
        let mut m = Map::new();
        insert_path(&mut m, "k8s.pod.name", json!("p1"));
        insert_path(&mut m, "k8s.namespace", json!("ns"));
        insert_path(&mut m, "a", json!(1));
        insert_path(&mut m, "a.b", json!(2));
        insert_path(&mut m, "x..y", json!(3));
        assert_eq!(
            Value::Object(m),
            json!({"k8s": {"pod": {"name": "p1"}, "namespace": "ns"}, "a": 1, "a.b": 2, "x..y": 3})
        );
    }

    #[test]
    fn take_finds_dotted_and_nested_values_and_prunes_empty_objects() {
        let mut m = json!({"service": {"name": "web", "version": "1"}, "host.name": "n1",
            "log": {"level": "warn"}})
        .as_object()
        .cloned()
        .unwrap();
        assert_eq!(take_string(&mut m, &["service.name"]), Some("web".into()));
        assert_eq!(take_string(&mut m, &["host.name"]), Some("n1".into()));
        assert_eq!(take_path(&mut m, "log.level"), Some(json!("warn")));
        assert_eq!(Value::Object(m), json!({"service": {"version": "1"}}));
    }

    #[test]
    fn merge_expands_nested_dotted_keys() {
        let mut m = Map::new();
        merge_expanded(
            &mut m,
            json!({"http": {"response.status": 200}, "a.b": true})
                .as_object()
                .cloned()
                .unwrap(),
        );
        assert_eq!(
            Value::Object(m),
            json!({"http": {"response": {"status": 200}}, "a": {"b": true}})
        );
    }
}
