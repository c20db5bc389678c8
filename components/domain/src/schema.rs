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

/// A table a selective restore names: `schema.table` (the first dot ends the schema) or `table`, each part 1
/// to 63 characters without control characters.
pub const TABLE_NAME: &str = concat!("^(?:[^.", ctrl!(), "]{1,63}\\.[^", ctrl!(), "]{1,63}|[^.", ctrl!(), "]{1,63})$");

/// Any text without control characters (a blob name prefix).
pub const NO_CONTROL: &str = concat!("^[^", ctrl!(), "]*$");

/// A Table key (an id): 1 to 260 characters, none of `/ \ # ?` or control characters.
pub const KEY: &str = concat!("^[^/\\\\#?", ctrl!(), "]+$");

/// An IPv4 octet as Rust's parser takes it (no leading zeros).
macro_rules! octet {
    () => {
        "(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
    };
}
/// A port: up to five digits, at most 65535.
macro_rules! port {
    () => {
        "(0[0-9]{4}|[0-9]{1,4}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
    };
}
/// This machine: `localhost` (any case), `127.0.0.0/8` or `[::1]`.
macro_rules! loopback {
    () => {
        concat!(
            "([Ll][Oo][Cc][Aa][Ll][Hh][Oo][Ss][Tt]|127\\.",
            octet!(),
            "\\.",
            octet!(),
            "\\.",
            octet!(),
            "|\\[::1\\])"
        )
    };
}

/// A notification endpoint: `https://` and a DNS name or IPv4 address, or plain `http://` to this machine;
/// an optional port; no `user:password@`, no whitespace or control characters.
pub const NOTIFY_URL: &str =
    concat!("^(https://[A-Za-z0-9._-]+|http://", loopback!(), ")(:", port!(), ")?([/?#][^", space!(), ctrl!(), "]*)?$");

/// What a notification endpoint must not be: the link-local range (the cloud metadata service), the
/// unspecified or the broadcast address.
pub const FORBIDDEN_URL: &str =
    concat!("^https://(169\\.254\\.", octet!(), "\\.", octet!(), "|0\\.0\\.0\\.0|255\\.255\\.255\\.255)([:/?#]|$)");

/// `smtp.host` with `security: none`: a relay on this machine.
pub const LOOPBACK_HOST: &str = concat!("^(", loopback!(), "|::1)$");

/// An email address as a channel sends to it: something, `@`, a domain with a dot (not first); no
/// whitespace, control characters or `<>,;"`.
pub const MAILBOX: &str = concat!(
    "^[^@<>,;\"",
    space!(),
    ctrl!(),
    "]+@[^.<>,;\"",
    space!(),
    ctrl!(),
    "][^<>,;\"",
    space!(),
    ctrl!(),
    "]*\\.[^<>,;\"",
    space!(),
    ctrl!(),
    "]*$"
);

/// A header name a webhook may set: letters, digits, `-` and `_`.
pub const HEADER_NAME: &str = "^[A-Za-z0-9_-]+$";

/// A notifier plug-in's name.
pub const PLUGIN_NAME: &str = "^[a-z][a-z0-9-]{0,62}$";
/// A plug-in setting's name.
pub const SETTING_NAME: &str = "^[a-z][a-z0-9_]{0,63}$";

/// `names` as one anchored pattern that ignores ASCII case (`[Hh][Oo]…`: no inline flags, which not
/// every dialect reads); `prefix` names match as prefixes.
pub fn any_case(names: &[&str], prefixes: &[&str]) -> String {
    let class = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphabetic() {
                    format!("[{}{}]", c.to_ascii_uppercase(), c.to_ascii_lowercase())
                } else {
                    regex_escape(c)
                }
            })
            .collect()
    };
    let alts: Vec<String> =
        names.iter().map(|n| class(n)).chain(prefixes.iter().map(|p| format!("{}.*", class(p)))).collect();
    format!("^({})$", alts.join("|"))
}

fn regex_escape(c: char) -> String {
    if "\\.+*?()|[]{}^$".contains(c) {
        format!("\\{c}")
    } else {
        c.to_string()
    }
}

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

/// A channel's fields by kind: a URL for webhook, Slack and Teams, `smtp` for email, `secret` and `headers`
/// only on a webhook. `creating`: the destination is required (an update keeps the stored one).
pub fn channel_by_kind(creating: bool) -> serde_json::Value {
    let absent = serde_json::json!({ "type": "null" });
    let kind = |k: &[&str]| serde_json::json!({ "required": ["kind"], "properties": { "kind": { "enum": k } } });
    let mut email = serde_json::json!({ "properties": { "url": absent, "plugin": absent, "settings": absent } });
    let mut plugin = serde_json::json!({ "properties": { "url": absent, "smtp": absent } });
    let mut http = serde_json::json!({ "properties": { "smtp": absent, "plugin": absent, "settings": absent } });
    if creating {
        for (rules, field, ty) in
            [(&mut email, "smtp", "object"), (&mut plugin, "plugin", "string"), (&mut http, "url", "string")]
        {
            rules["required"] = serde_json::json!([field]);
            rules["properties"][field] = serde_json::json!({ "type": ty });
        }
    }
    serde_json::json!([
        { "if": kind(&["email"]), "then": email },
        { "if": kind(&["plugin"]), "then": plugin },
        { "if": kind(&["webhook", "slack", "teams"]), "then": http },
        { "if": { "not": kind(&["webhook"]) }, "then": { "properties": { "secret": absent, "headers": absent } } }
    ])
}

/// `smtp`'s rules across fields: no encryption only to this machine and never with a password; a password
/// needs its user name.
pub fn smtp_rules() -> serde_json::Value {
    serde_json::json!([
        {
            "if": { "required": ["security"], "properties": { "security": { "const": "none" } } },
            "then": { "properties": { "host": { "pattern": LOOPBACK_HOST }, "password": { "type": "null" } } }
        },
        {
            "if": { "required": ["password"], "properties": { "password": { "type": "string" } } },
            "then": { "required": ["username"], "properties": { "username": { "type": "string" } } }
        }
    ])
}

/// A webhook's extra headers: up to 20, names a sender may set, values without control characters.
pub fn webhook_headers(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let reserved = any_case(&crate::notify::RESERVED_HEADERS, &["x-dilux-"]);
    schemars::json_schema!({
        "type": ["object", "null"],
        "maxProperties": 20,
        "propertyNames": { "pattern": HEADER_NAME, "not": { "pattern": reserved } },
        "additionalProperties": { "type": "string", "maxLength": 4096, "pattern": NO_CONTROL }
    })
}

/// A plug-in channel's settings: up to 20, lowercase names, values without control characters.
pub fn plugin_settings(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": ["object", "null"],
        "maxProperties": 20,
        "propertyNames": { "pattern": SETTING_NAME },
        "additionalProperties": { "type": "string", "maxLength": 2048, "pattern": NO_CONTROL }
    })
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

    #[test]
    fn channel_patterns_say_what_the_channel_validator_takes() {
        let url_ok = |u: &str| crate::notify::tests::webhook_input(u).validate(true).is_ok();
        let urls = [
            "https://hooks.example.com/x?y#z",
            "https://h",
            "https://h:443",
            "https://h:65535/",
            "https://h:65536",
            "https://h:",
            "https://h:00080",
            "https://:80",
            "https://",
            "http://localhost:8080/x",
            "http://LocalHost",
            "http://127.0.0.1:9/h",
            "http://127.1.2.3",
            "http://127.0.0.01/",
            "http://[::1]:9/x",
            "http://[::1]x",
            "http://example.com/",
            "https://[::1]/",
            "https://u:p@h/",
            "https://h/a b",
            "https://h/\u{85}",
            "https://169.254.169.254/latest",
            "https://169.254.1.1:80",
            "https://0.0.0.0",
            "https://0.0.0.0.example/",
            "https://255.255.255.255#x",
            "https://169.254.1.300/",
            "HTTPS://h/",
            "https://h:8:9",
            "https://h\u{e9}/",
        ];
        for u in urls {
            let schema = matches(NOTIFY_URL, u) && !matches(FORBIDDEN_URL, u);
            assert_eq!(schema, url_ok(u), "{u}");
        }
        let mailbox_ok = |a: &str| crate::notify::validate_address("a", a).is_ok();
        for a in [
            "ops@example.com",
            "a@b.c",
            "a@b@c.d",
            "@b.c",
            "a@.b",
            "a@b",
            "a b@c.d",
            "<a>@b.c",
            "a@b.",
            "a@b\u{3000}.c",
        ] {
            assert_eq!(matches(MAILBOX, a), mailbox_ok(a), "{a}");
        }
        let reserved = regex::Regex::new(&any_case(&crate::notify::RESERVED_HEADERS, &["x-dilux-"])).unwrap();
        for (h, taken) in [("Content-Type", true), ("X-DILUX-Sig", true), ("Authorization", false), ("hosts", false)] {
            assert_eq!(reserved.is_match(h), taken, "{h}");
        }
        let (longest, too_long) = ("a".repeat(63), "a".repeat(64));
        for n in ["discord", "a", "a-1", "1a", "A", "a_b", "", "a\n", longest.as_str(), too_long.as_str()] {
            assert_eq!(matches(PLUGIN_NAME, n), crate::notify::is_plugin_name(n), "{n}");
        }
        let setting_ok = |k: &str| {
            let body = serde_json::json!({ "name": "p", "kind": "plugin", "plugin": "x", "settings": { k: "v" } });
            serde_json::from_value::<crate::notify::ChannelInput>(body).unwrap().validate(true).is_ok()
        };
        for k in ["url", "api_token2", "Url", "2a", "a-b", "", "a\n", too_long.as_str(), "a".repeat(65).as_str()] {
            assert_eq!(matches(SETTING_NAME, k), setting_ok(k), "{k}");
        }
        for (h, local) in
            [("localhost", true), ("127.0.0.1", true), ("::1", true), ("[::1]", true), ("127.0.0.1.x", false)]
        {
            assert_eq!(matches(LOOPBACK_HOST, h), local, "{h}");
        }
    }
}
