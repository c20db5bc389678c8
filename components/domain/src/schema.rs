//! The request fields' rules written as JSON Schema, next to the validators they describe: the OpenAPI
//! document says exactly what a field accepts, and a schema-valid value is never refused for its form.
//! Character classes are spelled out (no `\s` or `\p{…}`), so every regex dialect reads them alike.

/// Control characters (C0, DEL, C1): no name or key holds them.
macro_rules! ctrl {
    () => {
        "\\u0000-\\u001f\\u007f-\\u009f"
    };
}
/// What Rust's `trim` removes (Unicode White_Space) besides the control characters.
macro_rules! space {
    () => {
        " \\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000"
    };
}

/// A display name: at most 100 characters, no control characters, not blank.
pub const NAME: &str = concat!("^[^", ctrl!(), "]*[^", space!(), ctrl!(), "][^", ctrl!(), "]*$");

/// A database name: a name that does not start with `-` (it reaches the dump tool as an argument).
pub const DB_NAME: &str = concat!(
    "^(?:[^-",
    space!(),
    ctrl!(),
    "][^",
    ctrl!(),
    "]*|[",
    space!(),
    "][^",
    ctrl!(),
    "]*[^",
    space!(),
    ctrl!(),
    "][^",
    ctrl!(),
    "]*)$"
);

/// A host name or IP address (brackets and colons for IPv6), not starting with `-`.
pub const HOST: &str = r"^[A-Za-z0-9._:\[\]][A-Za-z0-9._:\[\]-]*$";

/// A database login name: not starting with `-`.
pub const USERNAME: &str = "^[^-]";

/// Not blank.
pub const NOT_BLANK: &str = concat!("[^", space!(), "]");

/// An email address as the API checks it: something, `@`, a domain with a dot; no whitespace, and none of
/// the characters a Table key forbids (it becomes part of a row key).
pub const EMAIL: &str = concat!(
    "^[^@/\\\\#?",
    space!(),
    ctrl!(),
    "]+@[^/\\\\#?",
    space!(),
    ctrl!(),
    "]*\\.[^/\\\\#?",
    space!(),
    ctrl!(),
    "]*$"
);

/// A backup file name: `{engine_type}/{database_id}/{file}`, no part empty, `.` or `..`.
pub const BLOB_NAME: &str = r"^(mysql|postgresql|sqlserver)(/([^/.][^/]*|\.[^/.][^/]*|\.\.[^/]+)){2}$";

/// Any text without control characters (a blob name prefix).
pub const NO_CONTROL: &str = concat!("^[^", ctrl!(), "]*$");

/// A Table key (an id): 1 to 260 characters, none of `/ \ # ?` or control characters.
pub const KEY: &str = concat!("^[^/\\\\#?", ctrl!(), "]+$");

/// PEM CA certificates (and only certificates), or nothing.
pub const CA_BUNDLE: &str = r"^(\s*-----BEGIN CERTIFICATE-----\n[A-Za-z0-9+/=\s]*-----END CERTIFICATE-----)*\s*$";

/// `auth_method` as requests may give it: only `user_password` works today.
pub fn user_password_only(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({ "type": "string", "enum": ["user_password"], "default": "user_password" })
}

/// A database on its server's credentials names none (`use_engine_credentials` true, the default); one with
/// its own gives both.
pub fn own_credentials_or_none() -> serde_json::Value {
    serde_json::json!([
        {
            "properties": { "use_engine_credentials": { "const": true } },
            "not": { "anyOf": [{ "required": ["username"] }, { "required": ["password"] }] }
        },
        {
            "required": ["use_engine_credentials", "username", "password"],
            "properties": {
                "use_engine_credentials": { "const": false },
                "username": { "type": "string" },
                "password": { "type": "string" }
            }
        }
    ])
}

/// `username` and `password` go together: either given (even as null) needs the other as a string.
pub fn credentials_together() -> serde_json::Value {
    let needs = |other: &str| serde_json::json!({ "required": [other], "properties": { other: { "type": "string" } } });
    serde_json::json!({ "username": needs("password"), "password": needs("username") })
}

/// A policy tier as `PolicyInput` takes it: the fields its schedule needs are required once it is active
/// (enabled with a keep count above 0).
fn tier(needs: &[&str]) -> schemars::Schema {
    let int = |lo: u32, hi: u32| serde_json::json!({ "type": "integer", "minimum": lo, "maximum": hi });
    let time = serde_json::json!({ "type": "string", "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9]$" });
    let field = |name: &str| match name {
        "interval_hours" => int(1, 12),
        "time" => time.clone(),
        "day_of_week" => int(0, 6),
        "day_of_month" => int(1, 28),
        _ => int(1, 12),
    };
    let mut properties = serde_json::Map::new();
    properties.insert("enabled".into(), serde_json::json!({ "type": "boolean" }));
    properties.insert("keep_count".into(), int(0, u32::MAX));
    let mut then = serde_json::Map::new();
    for n in needs {
        let mut nullable = field(n);
        nullable["type"] = serde_json::json!([nullable["type"].clone(), "null"]);
        properties.insert((*n).into(), nullable);
        then.insert((*n).into(), field(n));
    }
    schemars::json_schema!({
        "type": "object",
        "additionalProperties": false,
        "required": ["enabled", "keep_count"],
        "properties": properties,
        "if": { "properties": { "enabled": { "const": true }, "keep_count": { "minimum": 1 } } },
        "then": { "required": needs, "properties": then },
    })
}

pub fn hourly_tier(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    tier(&["interval_hours"])
}
pub fn daily_tier(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    tier(&["time"])
}
pub fn weekly_tier(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    tier(&["time", "day_of_week"])
}
pub fn monthly_tier(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    tier(&["time", "day_of_month"])
}
pub fn yearly_tier(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    tier(&["time", "day_of_month", "month"])
}

/// A policy has at least one active tier.
pub fn some_active_tier() -> serde_json::Value {
    let active = serde_json::json!({ "properties": { "enabled": { "const": true }, "keep_count": { "minimum": 1 } },
        "required": ["enabled", "keep_count"] });
    serde_json::Value::Array(
        ["hourly", "daily", "weekly", "monthly", "yearly"]
            .iter()
            .map(|t| serde_json::json!({ "required": [t], "properties": { *t: active.clone() } }))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(pattern: &str, s: &str) -> bool {
        regex::Regex::new(pattern).unwrap().is_match(s)
    }

    #[test]
    fn patterns_accept_what_the_validators_accept() {
        use crate::engine::validate_db_name;
        for ok in ["shop", "Café 2026", " x", "a-b"] {
            assert!(matches(DB_NAME, ok) && validate_db_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "   ", "-x", "a\nb"] {
            assert!(!matches(DB_NAME, bad) && validate_db_name(bad).is_err(), "{bad}");
        }
        assert!(matches(NAME, "-ok") && !matches(NAME, " \u{3000}") && !matches(NAME, "a\tb"));
        assert!(matches(HOST, "db.example.com") && matches(HOST, "[::1]") && !matches(HOST, "-h"));
        assert!(matches(EMAIL, "a@b.c") && !matches(EMAIL, "a#b/c@example.com") && !matches(EMAIL, "a@b"));
        let blob = "postgresql/0b0e/20261201_020000_ab12cd34.sql.gz";
        assert!(matches(BLOB_NAME, blob) && !matches(BLOB_NAME, "mysql/../x") && !matches(BLOB_NAME, "mysql/a"));
        let pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        assert!(matches(CA_BUNDLE, pem) && matches(CA_BUNDLE, "") && crate::tls::validate_ca("f", pem).is_ok());
        assert!(!matches(CA_BUNDLE, "-----BEGIN PRIVATE KEY-----\nAA\n-----END PRIVATE KEY-----"));
    }
}
