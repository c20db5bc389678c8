//! Mapping records to Azure Table entities and back. Table storage has no arrays, objects or nulls and
//! needs Int64 spelled as an annotated string; by convention every `*_bytes` and `*_rows` field is an
//! Int64, and a nested object or array is kept as JSON text under `<field>__json`.

use serde::{de::DeserializeOwned, Serialize};
use serde_json::{Map, Value};

pub type Entity = Map<String, Value>;

fn is_int64(field: &str) -> bool {
    field.ends_with("_bytes") || field.ends_with("_rows")
}

const JSON_SUFFIX: &str = "__json";

/// Whether `s` can be a PartitionKey or RowKey: Azure Table storage refuses `/`, `\\`, `#`, `?` and
/// control characters there, and more than 1 KiB.
pub fn valid_key(s: &str) -> bool {
    s.len() <= 1024 && !s.chars().any(|c| matches!(c, '/' | '\\' | '#' | '?') || c.is_control())
}

/// What [`valid_key`] refuses, for messages.
pub const KEY_RULE: &str = "must not contain / \\ # ? or control characters";

/// Serializes `record` as the entity (`pk`, `rk`). Nulls are dropped (absent = none).
pub fn to_entity<T: Serialize>(pk: &str, rk: &str, record: &T) -> Entity {
    let Value::Object(fields) = serde_json::to_value(record).expect("records serialize to objects") else {
        panic!("records serialize to objects");
    };
    let mut e = Entity::new();
    e.insert("PartitionKey".into(), pk.into());
    e.insert("RowKey".into(), rk.into());
    for (k, v) in fields {
        match v {
            Value::Null => {}
            v @ (Value::Object(_) | Value::Array(_)) => {
                e.insert(format!("{k}{JSON_SUFFIX}"), Value::String(v.to_string()));
            }
            Value::Number(n) if is_int64(&k) => {
                e.insert(format!("{k}@odata.type"), "Edm.Int64".into());
                e.insert(k, Value::String(n.to_string()));
            }
            v => {
                e.insert(k, v);
            }
        }
    }
    e
}

/// Whether `stored` (as the service answers it) holds exactly the properties of `sent` (as
/// [`to_entity`] builds it): the service's own (`Timestamp`, `odata.*`) and type annotations aside,
/// numbers compared by value (a service may spell 2.0 as 2).
pub fn same_entity(sent: &Entity, stored: &Entity) -> bool {
    let own = |k: &&String| k.as_str() != "Timestamp" && !k.starts_with("odata.") && !k.contains("@odata.");
    let equal = |a: &Value, b: &Value| match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    };
    let (mine, theirs): (Vec<&String>, Vec<&String>) =
        (sent.keys().filter(own).collect(), stored.keys().filter(own).collect());
    mine.len() == theirs.len()
        && mine.iter().all(|k| stored.get(k.as_str()).is_some_and(|v| equal(&sent[k.as_str()], v)))
}

/// Reads a record back from an entity (keys and annotations are ignored).
pub fn from_entity<T: DeserializeOwned>(mut e: Entity) -> Result<T, serde_json::Error> {
    e.remove("PartitionKey");
    e.remove("RowKey");
    let nested: Vec<String> = e.keys().filter(|k| k.ends_with(JSON_SUFFIX)).cloned().collect();
    for k in nested {
        if let Some(Value::String(text)) = e.remove(&k) {
            e.insert(k.trim_end_matches(JSON_SUFFIX).to_string(), serde_json::from_str(&text).unwrap_or(Value::Null));
        }
    }
    for (k, v) in e.iter_mut() {
        if is_int64(k) {
            if let Value::String(s) = v {
                if let Ok(n) = s.parse::<i64>() {
                    *v = Value::from(n);
                }
            }
        }
    }
    serde_json::from_value(Value::Object(e))
}

/// Serde adapter storing a list of simple enums as one comma-separated string.
pub mod comma_list {
    use serde::{de::DeserializeOwned, Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<T: Serialize, S: Serializer>(v: &[T], s: S) -> Result<S::Ok, S::Error> {
        let parts: Vec<String> = v
            .iter()
            .map(|x| serde_json::to_value(x).ok().and_then(|j| j.as_str().map(str::to_string)).unwrap_or_default())
            .collect();
        s.serialize_str(&parts.join(","))
    }

    pub fn deserialize<'de, T: DeserializeOwned, D: Deserializer<'de>>(d: D) -> Result<Vec<T>, D::Error> {
        let s = String::deserialize(d)?;
        s.split(',')
            .filter(|p| !p.is_empty())
            .map(|p| serde_json::from_value(serde_json::Value::String(p.to_string())).map_err(serde::de::Error::custom))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Row {
        note: String,
        total_rows: u64,
        nested: Option<Vec<u32>>,
    }

    #[test]
    fn a_stored_row_is_ours_only_if_it_holds_exactly_what_was_sent() {
        let row = Row { note: "a".into(), total_rows: 7, nested: Some(vec![1]) };
        let sent = to_entity("p", "r", &row);
        let mut stored = sent.clone();
        stored.insert("Timestamp".into(), "2026-12-01T10:00:00.1234567Z".into());
        stored.insert("odata.etag".into(), "W/\"x\"".into());
        stored.remove("total_rows@odata.type");
        assert!(same_entity(&sent, &stored), "the service's own properties and annotations aside");
        let mut two = to_entity("p", "r", &serde_json::json!({"ratio": 2.0}));
        let mut answered = two.clone();
        answered.insert("ratio".into(), serde_json::json!(2));
        assert!(same_entity(&two, &answered), "2.0 spelled 2");
        two.insert("ratio".into(), serde_json::json!(2.5));
        assert!(!same_entity(&two, &answered));
        let other = to_entity("p", "r", &Row { note: "b".into(), ..row });
        assert!(!same_entity(&sent, &other), "another writer's row");
        let mut more = stored.clone();
        more.insert("extra".into(), "x".into());
        assert!(!same_entity(&sent, &more), "a property we did not send");
        let mut less = stored;
        less.remove("note");
        assert!(!same_entity(&sent, &less), "a property we sent is missing");
    }

    #[test]
    fn keys_table_storage_refuses_are_told_apart() {
        assert!(valid_key("ab12-cd") && valid_key("email:ana@example.com") && valid_key("ñandú"));
        for bad in ["a/b", "a\\b", "a#b", "a?b", "a\nb"] {
            assert!(!valid_key(bad), "{bad}");
        }
        assert!(!valid_key(&"x".repeat(1025)));
    }

    #[test]
    fn nested_values_travel_as_json_text_and_rows_as_int64() {
        let r = Row { note: "[not json]".into(), total_rows: 5_000_000_000, nested: Some(vec![1, 2]) };
        let e = to_entity("p", "r", &r);
        assert_eq!(e["nested__json"], "[1,2]");
        assert_eq!(e["total_rows"], "5000000000");
        assert_eq!(from_entity::<Row>(e).unwrap(), r);
    }
}
