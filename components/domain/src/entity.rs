//! Mapping records to Azure Table entities and back. Table storage has no arrays or nulls and needs
//! Int64 spelled as an annotated string; by convention every `*_bytes` field is an Int64.

use serde::{de::DeserializeOwned, Serialize};
use serde_json::{Map, Value};

pub type Entity = Map<String, Value>;

fn is_int64(field: &str) -> bool {
    field.ends_with("_bytes")
}

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

/// Reads a record back from an entity (keys and annotations are ignored).
pub fn from_entity<T: DeserializeOwned>(mut e: Entity) -> Result<T, serde_json::Error> {
    e.remove("PartitionKey");
    e.remove("RowKey");
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
