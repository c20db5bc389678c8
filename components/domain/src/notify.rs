//! Notifications: what happened (events), where people want to hear about it (channels and their
//! filters), incidents that are announced once when they open and once when they clear, and the outbox
//! rows that carry one event to one channel with retries. Pure: the API's notify tick reads the stores
//! and asks these functions what to send; the dumper-host sends it.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::Sha256;

use crate::error::FieldError;

/// Where the dumper-host takes a rendered notification to send (Bearer `dumper_token`).
pub const NOTIFY_PATH: &str = "/internal/dumper/notify";
/// This many failed backups in a row open a `consecutive_failures` incident.
pub const CONSECUTIVE_FAILURES: u32 = 2;
/// Attempts per delivery before it is given up (the first one included).
pub const MAX_ATTEMPTS: usize = 6;
/// The wait after the n-th failed attempt.
const BACKOFF_SECONDS: [i64; MAX_ATTEMPTS - 1] = [30, 120, 600, 1800, 7200];
/// Longest message kept and sent (Slack sections take 3000 characters, Table properties 64 KiB).
const MAX_MESSAGE: usize = 2000;
/// Delivered and given-up rows are kept this long in the log.
pub const LOG_DAYS: i64 = 30;
/// The single key of the [`NotifyCursor`].
pub const CURSOR_KEY: &str = "cursor";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    BackupFailed,
    /// Off unless a channel asks for it: most people want to hear only about problems.
    BackupSucceeded,
    ConsecutiveFailures,
    MissedBackups,
    RestoreCompleted,
    RestoreFailed,
    DrillFailed,
    SuspectBackup,
    SchedulerStopped,
    DumperUnreachable,
    StorageUnprotected,
    /// "Send a test" from the channel's page.
    Test,
}

impl EventKind {
    pub const ALL: [EventKind; 12] = [
        EventKind::BackupFailed,
        EventKind::BackupSucceeded,
        EventKind::ConsecutiveFailures,
        EventKind::MissedBackups,
        EventKind::RestoreCompleted,
        EventKind::RestoreFailed,
        EventKind::DrillFailed,
        EventKind::SuspectBackup,
        EventKind::SchedulerStopped,
        EventKind::DumperUnreachable,
        EventKind::StorageUnprotected,
        EventKind::Test,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::BackupFailed => "backup_failed",
            EventKind::BackupSucceeded => "backup_succeeded",
            EventKind::ConsecutiveFailures => "consecutive_failures",
            EventKind::MissedBackups => "missed_backups",
            EventKind::RestoreCompleted => "restore_completed",
            EventKind::RestoreFailed => "restore_failed",
            EventKind::DrillFailed => "drill_failed",
            EventKind::SuspectBackup => "suspect_backup",
            EventKind::SchedulerStopped => "scheduler_stopped",
            EventKind::DumperUnreachable => "dumper_unreachable",
            EventKind::StorageUnprotected => "storage_unprotected",
            EventKind::Test => "test",
        }
    }

    /// Whether a channel with no event list hears about it.
    pub fn on_by_default(self) -> bool {
        self != EventKind::BackupSucceeded
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    #[default]
    Info,
    Warning,
    Error,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

/// Something that happened, as every channel is told.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Event {
    /// The same happening always has the same id: it is what keeps a message from being sent twice.
    pub id: String,
    pub kind: EventKind,
    pub severity: Severity,
    /// True for the message that an incident is over (the database backs up again, the scheduler runs…).
    #[serde(default)]
    pub resolved: bool,
    pub title: String,
    pub message: String,
    pub at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_alias: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_id: Option<String>,
}

/// What an event is about, for the channel filters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subject {
    pub database_id: Option<String>,
    pub database_alias: Option<String>,
    pub engine_id: Option<String>,
    pub policy_id: Option<String>,
}

impl Event {
    pub fn new(id: String, kind: EventKind, severity: Severity, title: &str, message: &str, at: DateTime<Utc>) -> Self {
        Event {
            id,
            kind,
            severity,
            resolved: false,
            title: clip(title, 150),
            message: clip(message, MAX_MESSAGE),
            at,
            database_id: None,
            database_alias: None,
            engine_id: None,
            policy_id: None,
        }
    }

    pub fn about(mut self, s: &Subject) -> Self {
        self.database_id = s.database_id.clone();
        self.database_alias = s.database_alias.clone();
        self.engine_id = s.engine_id.clone();
        self.policy_id = s.policy_id.clone();
        self
    }

    /// The message a test send delivers.
    pub fn test(channel_name: &str, now: DateTime<Utc>) -> Self {
        let id = format!("test:{}", uuid::Uuid::new_v4());
        let message = format!("A test message for the channel `{channel_name}`: if you read this, it works.");
        Event::new(id, EventKind::Test, Severity::Info, "Dilux Backup test notification", &message, now)
    }
}

/// `s` cut to at most `max` characters, the last one `…` when it was longer.
pub fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max - 1).collect();
    out.push('…');
    out
}

/// Which events a channel hears about. Empty lists mean "any".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Filters {
    /// Event kinds; empty: every kind but `backup_succeeded`.
    #[serde(default)]
    pub events: Vec<EventKind>,
    /// The least severity sent (`info`, `warning`, `error`); a resolution is sent when its opening was.
    #[serde(default)]
    pub min_severity: Severity,
    /// Only events about these databases.
    #[serde(default)]
    #[schemars(length(max = 500))]
    pub database_ids: Vec<String>,
    /// Only events about databases on these servers.
    #[serde(default)]
    #[schemars(length(max = 500))]
    pub engine_ids: Vec<String>,
    /// Only events about databases under these policies.
    #[serde(default)]
    #[schemars(length(max = 100))]
    pub policy_ids: Vec<String>,
}

impl Filters {
    /// Whether a channel with these filters is told about `e`. A test always goes through.
    pub fn admits(&self, e: &Event) -> bool {
        if e.kind == EventKind::Test {
            return true;
        }
        let kind_ok = if self.events.is_empty() { e.kind.on_by_default() } else { self.events.contains(&e.kind) };
        // Filters on a database say nothing about app-wide events (scheduler, storage): those still pass.
        let matches = |list: &[String], v: &Option<String>| {
            list.is_empty() || v.is_none() || v.as_ref().is_some_and(|v| list.contains(v))
        };
        kind_ok
            && e.severity >= self.min_severity
            && matches(&self.database_ids, &e.database_id)
            && matches(&self.engine_ids, &e.engine_id)
            && matches(&self.policy_ids, &e.policy_id)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChannelKind {
    /// Any HTTPS endpoint: JSON, signed with HMAC-SHA256 when a secret is set.
    Webhook,
    /// A Slack incoming webhook.
    Slack,
    /// A Microsoft Teams Workflows webhook ("when a Teams webhook request is received"): an Adaptive Card.
    Teams,
    Email,
    /// A notifier plug-in installed on the dumper-host (its `notifiers.toml`): a Wasm component that
    /// reaches only the hosts listed there.
    Plugin,
}

impl ChannelKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Webhook => "webhook",
            ChannelKind::Slack => "slack",
            ChannelKind::Teams => "teams",
            ChannelKind::Email => "email",
            ChannelKind::Plugin => "plugin",
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SmtpSecurity {
    /// Plain connection upgraded with STARTTLS (port 587); refused when the server does not offer it.
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption: only to a relay on this machine (loopback), never with a password.
    None,
}

impl SmtpSecurity {
    pub fn default_port(self) -> u16 {
        match self {
            SmtpSecurity::Starttls => 587,
            SmtpSecurity::Tls => 465,
            SmtpSecurity::None => 25,
        }
    }
}

/// An email channel's server and addresses, as stored (the password sealed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Smtp {
    pub host: String,
    pub port: u16,
    pub security: SmtpSecurity,
    pub username: Option<String>,
    pub password_sealed: Option<String>,
    pub from: String,
    pub to: Vec<String>,
}

/// A channel as stored. Every part of a destination that grants access is sealed: a Slack or Teams URL
/// is itself the credential.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Channel {
    pub id: String,
    pub name: String,
    pub kind: ChannelKind,
    pub enabled: bool,
    #[serde(default)]
    pub url_sealed: Option<String>,
    /// `https://host/…`: enough to recognise the destination, nothing that grants access.
    #[serde(default)]
    pub url_hint: Option<String>,
    /// The webhook's HMAC key.
    #[serde(default)]
    pub secret_sealed: Option<String>,
    /// The webhook's extra headers (JSON object), sealed: they are often an API key.
    #[serde(default)]
    pub headers_sealed: Option<String>,
    #[serde(default)]
    pub header_names: Vec<String>,
    #[serde(default)]
    pub smtp: Option<Smtp>,
    /// The plug-in's name, and its settings (JSON object) sealed: they often hold a token.
    #[serde(default)]
    pub plugin: Option<String>,
    #[serde(default)]
    pub settings_sealed: Option<String>,
    #[serde(default)]
    pub setting_names: Vec<String>,
    #[serde(default)]
    pub filters: Filters,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// `smtp` in a channel's create or update body.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("allOf" = crate::schema::smtp_rules()))]
pub struct SmtpInput {
    /// A host name or IP address; with `security: none`, this machine (`localhost`, `127.x.x.x`, `::1`).
    #[schemars(regex(pattern = crate::schema::HOST), length(min = 1, max = 253))]
    pub host: String,
    /// Default: 587 for `starttls`, 465 for `tls`, 25 for `none`.
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub port: Option<u16>,
    #[serde(default)]
    pub security: SmtpSecurity,
    #[serde(default)]
    pub username: Option<String>,
    /// Kept when an update leaves it out (and the server is unchanged).
    #[serde(default)]
    pub password: Option<String>,
    #[schemars(regex(pattern = crate::schema::MAILBOX), length(max = 254))]
    pub from: String,
    /// 1 to 20 addresses.
    #[schemars(length(min = 1, max = 20), inner(regex(pattern = crate::schema::MAILBOX), length(max = 254)))]
    pub to: Vec<String>,
}

/// The body of `POST /api/notifications/channels` and `PUT /api/notifications/channels/{id}` (which
/// replaces the channel; secrets left out are kept).
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("allOf" = crate::schema::channel_by_kind(false)))]
pub struct ChannelInput {
    /// 1 to 100 characters.
    #[schemars(regex(pattern = crate::schema::NAME), length(max = 100))]
    pub name: String,
    pub kind: ChannelKind,
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Webhook, Slack and Teams: the endpoint, `https://` and a DNS name or IPv4 address (plain `http://`
    /// only to this machine); not the link-local range, where the cloud metadata service answers.
    #[serde(default)]
    #[schemars(regex(pattern = crate::schema::NOTIFY_URL), length(max = 2048), extend("not" = forbidden_url()))]
    pub url: Option<String>,
    /// Webhook only: the HMAC-SHA256 key of the `X-Dilux-Signature` header, 16 to 256 characters.
    #[serde(default)]
    #[schemars(length(min = 16, max = 256))]
    pub secret: Option<String>,
    /// Webhook only: up to 20 extra headers (e.g. an API key); replaced as a whole when given.
    #[serde(default)]
    #[schemars(schema_with = "crate::schema::webhook_headers")]
    pub headers: Option<BTreeMap<String, String>>,
    /// Email only.
    #[serde(default)]
    pub smtp: Option<SmtpInput>,
    /// Plug-in only: the name of a notifier plug-in installed on the dumper-host.
    #[serde(default)]
    #[schemars(regex(pattern = crate::schema::PLUGIN_NAME))]
    pub plugin: Option<String>,
    /// Plug-in only: up to 20 settings the plug-in reads (e.g. its URL and token); replaced as a whole when
    /// given, and required again when the channel moves to another plug-in.
    #[serde(default)]
    #[schemars(schema_with = "crate::schema::plugin_settings")]
    pub settings: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub filters: Option<Filters>,
}

fn forbidden_url() -> serde_json::Value {
    json!({ "type": "string", "pattern": crate::schema::FORBIDDEN_URL })
}

/// The body of `POST /api/notifications/channels`: a channel with its destination.
#[derive(Debug, Clone, Deserialize)]
#[serde(transparent)]
pub struct NewChannel(pub ChannelInput);

impl schemars::JsonSchema for NewChannel {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "NewChannel".into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let mut schema = ChannelInput::json_schema(generator);
        schema.insert("allOf".into(), crate::schema::channel_by_kind(true));
        schema
    }
}

/// Headers the sender sets itself, or that would change how the request travels.
pub const RESERVED_HEADERS: [&str; 8] =
    ["host", "content-length", "content-type", "transfer-encoding", "connection", "te", "upgrade", "trailer"];

impl ChannelInput {
    /// Checks everything that does not depend on what is stored. `creating`: the destination is required.
    pub fn validate(&self, creating: bool) -> Result<(), FieldError> {
        crate::engine::validate_name("name", &self.name)?;
        let http = !matches!(self.kind, ChannelKind::Email | ChannelKind::Plugin);
        match (&self.url, http) {
            (Some(u), true) => validate_url("url", u)?,
            (None, true) if creating => return Err(FieldError::new("url", "is required for this kind of channel")),
            (Some(_), false) => return Err(FieldError::new("url", "is for webhook, slack and teams channels")),
            _ => {}
        }
        self.validate_plugin(creating)?;
        if self.kind != ChannelKind::Webhook && (self.secret.is_some() || self.headers.is_some()) {
            let field = if self.secret.is_some() { "secret" } else { "headers" };
            return Err(FieldError::new(field, "is for webhook channels only"));
        }
        if let Some(s) = &self.secret {
            if !(16..=256).contains(&s.chars().count()) {
                return Err(FieldError::new("secret", "must be 16 to 256 characters"));
            }
        }
        if let Some(h) = &self.headers {
            if h.len() > 20 {
                return Err(FieldError::new("headers", "at most 20 headers"));
            }
            for (k, v) in h {
                let lower = k.to_ascii_lowercase();
                let token = !k.is_empty() && k.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b));
                if !token || RESERVED_HEADERS.contains(&lower.as_str()) || lower.starts_with("x-dilux-") {
                    return Err(FieldError::new(
                        format!("headers.{k}"),
                        "is not a header name that can be set (letters, digits, - and _; not Host, Content-*, \
                         hop-by-hop or X-Dilux-*)",
                    ));
                }
                if v.chars().count() > 4096 || v.chars().any(|c| c.is_control()) {
                    return Err(FieldError::new(format!("headers.{k}"), "value: at most 4096 characters, no control"));
                }
            }
        }
        match (&self.smtp, self.kind) {
            (Some(s), ChannelKind::Email) => s.validate()?,
            (None, ChannelKind::Email) if creating => {
                return Err(FieldError::new("smtp", "is required for an email channel"));
            }
            (Some(_), _) => return Err(FieldError::new("smtp", "is for email channels only")),
            _ => {}
        }
        if let Some(f) = &self.filters {
            for (field, list) in [("database_ids", &f.database_ids), ("engine_ids", &f.engine_ids)] {
                if list.len() > 500 {
                    return Err(FieldError::new(format!("filters.{field}"), "at most 500 ids"));
                }
            }
            if f.policy_ids.len() > 100 {
                return Err(FieldError::new("filters.policy_ids", "at most 100 ids"));
            }
        }
        Ok(())
    }
}

impl ChannelInput {
    fn validate_plugin(&self, creating: bool) -> Result<(), FieldError> {
        let plugin = self.kind == ChannelKind::Plugin;
        match (&self.plugin, plugin) {
            (Some(p), true) if !is_plugin_name(p) => {
                return Err(FieldError::new("plugin", "must be a plug-in name: a-z, then a-z, 0-9 and -, 1 to 63"));
            }
            (None, true) if creating => return Err(FieldError::new("plugin", "is required for a plug-in channel")),
            (Some(_), false) => return Err(FieldError::new("plugin", "is for plug-in channels only")),
            _ => {}
        }
        let Some(settings) = &self.settings else { return Ok(()) };
        if !plugin {
            return Err(FieldError::new("settings", "are for plug-in channels only"));
        }
        if settings.len() > 20 {
            return Err(FieldError::new("settings", "at most 20 settings"));
        }
        for (k, v) in settings {
            let key_ok = (1..=64).contains(&k.len())
                && k.starts_with(|c: char| c.is_ascii_lowercase())
                && k.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if !key_ok {
                return Err(FieldError::new(
                    format!("settings.{k}"),
                    "is not a setting name (a-z, then a-z, 0-9 and _, at most 64)",
                ));
            }
            if v.chars().count() > 2048 || v.chars().any(|c| c.is_control()) {
                return Err(FieldError::new(format!("settings.{k}"), "value: at most 2048 characters, no control"));
            }
        }
        Ok(())
    }
}

/// A notifier plug-in's name, as `notifiers.toml` and a plug-in channel give it.
pub fn is_plugin_name(name: &str) -> bool {
    (1..=63).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

impl SmtpInput {
    fn validate(&self) -> Result<(), FieldError> {
        crate::engine::validate_host(&self.host).map_err(|e| FieldError::new("smtp.host", e.message))?;
        let host = self.host.as_str();
        if self.port == Some(0) {
            return Err(FieldError::new("smtp.port", "must be between 1 and 65535"));
        }
        if self.security == SmtpSecurity::None {
            if !is_loopback_host(host) {
                return Err(FieldError::new(
                    "smtp.security",
                    "none sends mail unencrypted: only to a relay on this machine (localhost); use starttls or tls",
                ));
            }
            if self.password.is_some() {
                return Err(FieldError::new("smtp.password", "is never sent over an unencrypted connection"));
            }
        }
        if self.password.is_some() && self.username.is_none() {
            return Err(FieldError::new("smtp.username", "is required with a password"));
        }
        validate_address("smtp.from", &self.from)?;
        if self.to.is_empty() || self.to.len() > 20 {
            return Err(FieldError::new("smtp.to", "1 to 20 addresses"));
        }
        for (i, a) in self.to.iter().enumerate() {
            validate_address(&format!("smtp.to[{i}]"), a)?;
        }
        Ok(())
    }
}

pub(crate) fn validate_address(field: &str, a: &str) -> Result<(), FieldError> {
    let ok = a.chars().count() <= 254
        && a.split_once('@').is_some_and(|(l, d)| !l.is_empty() && d.contains('.') && !d.starts_with('.'))
        && !a.contains(|c: char| c.is_whitespace() || c.is_control() || "<>,;\"".contains(c));
    if ok {
        Ok(())
    } else {
        Err(FieldError::new(field, "must be an email address (name@example.com)"))
    }
}

/// `localhost` (any case), an IPv4 address in `127.0.0.0/8`, or `::1` (bracketed or not). Literal forms
/// only: what the API's schema can say exactly.
fn is_loopback_host(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<std::net::Ipv4Addr>().is_ok_and(|ip| ip.is_loopback())
        || host == "::1"
        || host == "[::1]"
}

/// The host of an `http(s)://` URL, and whether it is https: a DNS name or IPv4 address (or `[::1]`), then
/// an optional port, then nothing or `/`, `?`, `#`. No userinfo: a password in a URL leaks.
fn url_host(url: &str) -> Option<(bool, &str)> {
    let (https, rest) =
        if let Some(r) = url.strip_prefix("https://") { (true, r) } else { (false, url.strip_prefix("http://")?) };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let (host, port) = match authority.strip_prefix("[::1]") {
        Some(after) => ("[::1]", after),
        None => authority.split_at(authority.find(':').unwrap_or(authority.len())),
    };
    let name_ok = (host == "[::1]" && !https)
        || (!host.is_empty() && host.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)));
    let port_ok = port.is_empty()
        || port.strip_prefix(':').is_some_and(|p| {
            (1..=5).contains(&p.len())
                && p.bytes().all(|b| b.is_ascii_digit())
                && p.parse::<u32>().is_ok_and(|p| p <= 65535)
        });
    (name_ok && port_ok).then_some((https, host))
}

/// Addresses a notification must never be sent to: the cloud's metadata service and the unspecified
/// address, which would hand the channel's owner the host's own identity.
pub fn is_forbidden_ip(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(v4) => v4.is_link_local() || v4.is_unspecified() || v4.is_broadcast(),
        std::net::IpAddr::V6(v6) => {
            v6.is_unspecified()
                || (v6.segments()[0] & 0xffc0) == 0xfe80
                || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_link_local() || v4.is_unspecified())
        }
    }
}

fn validate_url(field: &str, url: &str) -> Result<(), FieldError> {
    let bad = |why: &str| Err(FieldError::new(field, why));
    if url.chars().count() > 2048 || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("must be a URL of at most 2048 characters, without spaces");
    }
    let Some((https, host)) = url_host(url) else {
        return bad(
            "must be an https:// URL with a DNS name or IPv4 address, an optional port (and no user:password@)",
        );
    };
    if !https && (host.is_empty() || !is_loopback_host(host)) {
        return bad("must be https:// (plain http:// only to this machine)");
    }
    if host.trim_start_matches('[').trim_end_matches(']').parse::<std::net::IpAddr>().is_ok_and(is_forbidden_ip) {
        return bad("must not point at a link-local or unspecified address (the cloud metadata service)");
    }
    Ok(())
}

/// `https://hooks.slack.com/…`: the scheme and host only.
pub fn url_hint(url: &str) -> String {
    match url_host(url) {
        Some((https, host)) => format!("{}://{host}/…", if https { "https" } else { "http" }),
        None => "…".into(),
    }
}

/// A channel as the API shows it: destinations recognisable, secrets never.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ChannelView {
    pub id: String,
    pub name: String,
    pub kind: ChannelKind,
    pub enabled: bool,
    /// `https://hooks.slack.com/…`, or `smtp.example.com:587 → ops@example.com`.
    pub destination: String,
    /// Webhook: whether requests are signed.
    pub signed: bool,
    /// Webhook: the extra headers' names (their values are sealed).
    pub header_names: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub smtp: Option<SmtpView>,
    /// Plug-in: its name, and the names of its settings (their values are sealed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plugin: Option<String>,
    pub setting_names: Vec<String>,
    pub filters: Filters,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct SmtpView {
    pub host: String,
    pub port: u16,
    pub security: SmtpSecurity,
    pub username: Option<String>,
    pub has_password: bool,
    pub from: String,
    pub to: Vec<String>,
}

impl From<&Channel> for ChannelView {
    fn from(c: &Channel) -> Self {
        let destination = match (&c.smtp, &c.plugin) {
            (Some(s), _) => format!("{}:{} → {}", s.host, s.port, s.to.join(", ")),
            (None, Some(p)) => format!("plug-in {p}"),
            (None, None) => c.url_hint.clone().unwrap_or_default(),
        };
        ChannelView {
            id: c.id.clone(),
            name: c.name.clone(),
            kind: c.kind,
            enabled: c.enabled,
            destination,
            signed: c.secret_sealed.is_some(),
            header_names: c.header_names.clone(),
            smtp: c.smtp.as_ref().map(|s| SmtpView {
                host: s.host.clone(),
                port: s.port,
                security: s.security,
                username: s.username.clone(),
                has_password: s.password_sealed.is_some(),
                from: s.from.clone(),
                to: s.to.clone(),
            }),
            plugin: c.plugin.clone(),
            setting_names: c.setting_names.clone(),
            filters: c.filters.clone(),
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

impl Channel {
    /// Builds the channel `id` from `input` over `old` (an update), sealing with `seal(plaintext)`. Secrets
    /// left out of an update are kept — unless the destination moved: a secret is never sent somewhere
    /// new without being typed again.
    pub fn apply(
        id: &str,
        input: &ChannelInput,
        old: Option<&Channel>,
        seal: &dyn Fn(&str) -> String,
        now: DateTime<Utc>,
    ) -> Result<Channel, FieldError> {
        input.validate(old.is_none())?;
        if let Some(old) = old.filter(|o| o.kind != input.kind) {
            return Err(FieldError::new(
                "kind",
                format!("a {} channel stays one; create a new channel instead", old.kind.as_str()),
            ));
        }
        let keep = |f: fn(&Channel) -> Option<String>| old.and_then(f);
        let (url_sealed, hint) = match &input.url {
            Some(u) => (Some(seal(u)), Some(url_hint(u))),
            None => (keep(|o| o.url_sealed.clone()), keep(|o| o.url_hint.clone())),
        };
        let moved = old.is_some_and(|o| input.url.as_ref().is_some_and(|u| Some(url_hint(u)) != o.url_hint));
        let secret_sealed = match &input.secret {
            Some(s) => Some(seal(s)),
            None if moved && keep(|o| o.secret_sealed.clone()).is_some() => {
                return Err(FieldError::new("secret", "is required again when the URL moves to another host"));
            }
            None => keep(|o| o.secret_sealed.clone()),
        };
        let (headers_sealed, header_names) = match &input.headers {
            Some(h) if h.is_empty() => (None, vec![]),
            Some(h) => (Some(seal(&serde_json::to_string(h).expect("maps serialize"))), h.keys().cloned().collect()),
            None if moved && keep(|o| o.headers_sealed.clone()).is_some() => {
                return Err(FieldError::new("headers", "are required again when the URL moves to another host"));
            }
            None => (keep(|o| o.headers_sealed.clone()), old.map(|o| o.header_names.clone()).unwrap_or_default()),
        };
        let smtp = match &input.smtp {
            Some(s) => {
                let security = s.security;
                let port = s.port.unwrap_or(security.default_port());
                let host = s.host.trim().to_ascii_lowercase();
                let before = old.and_then(|o| o.smtp.as_ref());
                let same_server = before.is_some_and(|b| b.host == host && b.port == port && b.security == security);
                let password_sealed = match &s.password {
                    Some(p) => Some(seal(p)),
                    None if s.username.is_none() => None,
                    None if same_server => before.and_then(|b| b.password_sealed.clone()),
                    None if before.is_some_and(|b| b.password_sealed.is_some()) => {
                        return Err(FieldError::new(
                            "smtp.password",
                            "is required again when the server or its security changes",
                        ));
                    }
                    None => None,
                };
                Some(Smtp {
                    host,
                    port,
                    security,
                    username: s.username.clone(),
                    password_sealed,
                    from: s.from.trim().to_string(),
                    to: s.to.iter().map(|t| t.trim().to_string()).collect(),
                })
            }
            None => old.and_then(|o| o.smtp.clone()),
        };
        let plugin = input.plugin.clone().or(old.and_then(|o| o.plugin.clone()));
        let other_plugin = old.is_some_and(|o| input.plugin.is_some() && input.plugin != o.plugin);
        let (settings_sealed, setting_names) = match &input.settings {
            Some(s) if s.is_empty() => (None, vec![]),
            Some(s) => (Some(seal(&serde_json::to_string(s).expect("maps serialize"))), s.keys().cloned().collect()),
            None if other_plugin && keep(|o| o.settings_sealed.clone()).is_some() => {
                return Err(FieldError::new(
                    "settings",
                    "are required again when the channel moves to another plug-in",
                ));
            }
            None => (keep(|o| o.settings_sealed.clone()), old.map(|o| o.setting_names.clone()).unwrap_or_default()),
        };
        Ok(Channel {
            id: id.to_string(),
            name: input.name.trim().to_string(),
            kind: input.kind,
            enabled: input.enabled.or(old.map(|o| o.enabled)).unwrap_or(true),
            url_sealed,
            url_hint: hint,
            secret_sealed,
            headers_sealed,
            header_names,
            smtp,
            plugin,
            settings_sealed,
            setting_names,
            filters: input.filters.clone().or(old.map(|o| o.filters.clone())).unwrap_or_default(),
            created_at: old.map(|o| o.created_at).unwrap_or(now),
            updated_at: now,
        })
    }
}

/// A channel's secrets, opened for one send.
#[derive(Default)]
pub struct Opened {
    pub url: Option<String>,
    pub secret: Option<String>,
    pub headers: BTreeMap<String, String>,
    pub smtp_password: Option<String>,
    pub settings: BTreeMap<String, String>,
}

/// A rendered notification, as the dumper-host sends it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "transport", rename_all = "snake_case")]
pub enum Outgoing {
    Http {
        url: String,
        headers: Vec<(String, String)>,
        body: String,
    },
    Smtp {
        host: String,
        port: u16,
        security: SmtpSecurity,
        username: Option<String>,
        password: Option<String>,
        from: String,
        to: Vec<String>,
        subject: String,
        text: String,
    },
    /// For a notifier plug-in, which renders the event itself.
    Plugin {
        plugin: String,
        settings: Vec<(String, String)>,
        delivery_id: String,
        event: Event,
    },
}

impl Outgoing {
    /// Where it goes, for logs (never a URL's path or query: Slack's and Teams' carry the credential).
    pub fn target(&self) -> String {
        match self {
            Outgoing::Http { url, .. } => url_hint(url),
            Outgoing::Smtp { host, port, .. } => format!("smtp {host}:{port}"),
            Outgoing::Plugin { plugin, .. } => format!("plug-in {plugin}"),
        }
    }
}

/// How one attempt went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SendResult {
    pub ok: bool,
    /// The HTTP status, or the SMTP reply code.
    pub status: Option<u16>,
    /// What the destination said (shortened), or why nothing reached it.
    pub message: String,
    pub duration_ms: u64,
}

/// The webhook's signature over `"{timestamp}.{body}"`: `sha256=<hex>`.
pub fn signature(secret: &str, timestamp: i64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(format!("{timestamp}.{body}").as_bytes());
    let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

fn subject_line(e: &Event) -> String {
    let mark = if e.resolved { "Resolved" } else { e.severity.as_str() };
    format!("[Dilux Backup · {mark}] {}", e.title)
}

fn facts(e: &Event) -> Vec<(&'static str, String)> {
    let mut f = vec![("Event", e.kind.as_str().to_string()), ("Severity", e.severity.as_str().to_string())];
    if let Some(a) = e.database_alias.as_ref().or(e.database_id.as_ref()) {
        f.push(("Database", a.clone()));
    }
    f.push(("When", e.at.format("%Y-%m-%d %H:%M:%S UTC").to_string()));
    f
}

/// The Slack incoming-webhook payload: `text` for notifications, blocks for the message.
pub fn slack_payload(e: &Event) -> serde_json::Value {
    let context: Vec<String> = facts(e).iter().map(|(k, v)| format!("*{k}:* {v}")).collect();
    json!({
        "text": format!("{}: {}", subject_line(e), e.message),
        "blocks": [
            { "type": "header", "text": { "type": "plain_text", "text": clip(&subject_line(e), 150) } },
            { "type": "section", "text": { "type": "mrkdwn", "text": e.message } },
            { "type": "context", "elements": [{ "type": "mrkdwn", "text": context.join("  ·  ") }] },
        ],
    })
}

/// The Teams Workflows payload: a message with one Adaptive Card attachment.
pub fn teams_payload(e: &Event) -> serde_json::Value {
    let color = match (e.resolved, e.severity) {
        (true, _) => "Good",
        (false, Severity::Error) => "Attention",
        (false, Severity::Warning) => "Warning",
        (false, Severity::Info) => "Default",
    };
    let facts: Vec<serde_json::Value> = facts(e).into_iter().map(|(k, v)| json!({ "title": k, "value": v })).collect();
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.4",
                "body": [
                    { "type": "TextBlock", "text": subject_line(e), "weight": "Bolder", "size": "Medium",
                      "wrap": true, "color": color },
                    { "type": "TextBlock", "text": e.message, "wrap": true },
                    { "type": "FactSet", "facts": facts },
                ],
            },
        }],
    })
}

/// The generic webhook's body.
pub fn webhook_payload(e: &Event, delivery_id: &str) -> serde_json::Value {
    json!({ "source": "dilux-backup", "delivery_id": delivery_id, "event": e })
}

/// Renders `event` for `channel` with its opened secrets; `now` stamps the signature.
pub fn render(channel: &Channel, opened: &Opened, event: &Event, delivery_id: &str, now: DateTime<Utc>) -> Outgoing {
    if let Some(plugin) = channel.plugin.as_ref().filter(|_| channel.kind == ChannelKind::Plugin) {
        return Outgoing::Plugin {
            plugin: plugin.clone(),
            settings: opened.settings.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            delivery_id: delivery_id.into(),
            event: event.clone(),
        };
    }
    if let Some(s) = &channel.smtp {
        let mut text = format!("{}\n\n", event.message);
        for (k, v) in facts(event) {
            text.push_str(&format!("{k}: {v}\n"));
        }
        text.push_str("\n-- \nDilux Backup. Change what this address hears about under Notifications.\n");
        return Outgoing::Smtp {
            host: s.host.clone(),
            port: s.port,
            security: s.security,
            username: s.username.clone(),
            password: opened.smtp_password.clone(),
            from: s.from.clone(),
            to: s.to.clone(),
            subject: subject_line(event),
            text,
        };
    }
    let body = match channel.kind {
        ChannelKind::Slack => slack_payload(event),
        ChannelKind::Teams => teams_payload(event),
        _ => webhook_payload(event, delivery_id),
    }
    .to_string();
    let mut headers: Vec<(String, String)> = vec![("content-type".into(), "application/json".into())];
    if channel.kind == ChannelKind::Webhook {
        headers.extend(opened.headers.iter().map(|(k, v)| (k.clone(), v.clone())));
        let ts = now.timestamp();
        headers.push(("x-dilux-event".into(), event.kind.as_str().into()));
        headers.push(("x-dilux-delivery".into(), delivery_id.into()));
        headers.push(("x-dilux-timestamp".into(), ts.to_string()));
        if let Some(secret) = &opened.secret {
            headers.push(("x-dilux-signature".into(), signature(secret, ts, &body)));
        }
    }
    Outgoing::Http { url: opened.url.clone().unwrap_or_default(), headers, body }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Waiting for its first attempt, or for the next one after a failure.
    Pending,
    Delivered,
    /// Every attempt failed (or the channel is gone): nothing more is tried.
    Failed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Attempt {
    pub at: DateTime<Utc>,
    #[serde(flatten)]
    pub result: SendResult,
}

/// One event on its way to one channel: the outbox row, and once done the delivery log's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Delivery {
    pub id: String,
    pub channel_id: String,
    pub channel_name: String,
    pub channel_kind: ChannelKind,
    pub event: Event,
    pub state: DeliveryState,
    pub attempts: Vec<Attempt>,
    /// When a pending delivery is tried next.
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The one key of event `event_id` to channel `channel_id`: a second tick that finds the same event
/// inserts the same key, and is refused.
pub fn delivery_key(event_id: &str, channel_id: &str) -> String {
    let clean: String =
        event_id.chars().map(|c| if crate::entity::valid_key(&c.to_string()) { c } else { '_' }).collect();
    format!("{clean}~{channel_id}")
}

impl Delivery {
    pub fn new(channel: &Channel, event: &Event, now: DateTime<Utc>) -> Self {
        Delivery {
            id: delivery_key(&event.id, &channel.id),
            channel_id: channel.id.clone(),
            channel_name: channel.name.clone(),
            channel_kind: channel.kind,
            event: event.clone(),
            state: DeliveryState::Pending,
            attempts: vec![],
            next_attempt_at: Some(now),
            created_at: now,
            updated_at: now,
        }
    }

    pub fn due(&self, now: DateTime<Utc>) -> bool {
        self.state == DeliveryState::Pending && self.next_attempt_at.is_none_or(|t| t <= now)
    }

    /// Records an attempt: delivered, retried after the backoff, or given up after [`MAX_ATTEMPTS`].
    pub fn record(&mut self, result: SendResult, now: DateTime<Utc>) {
        let ok = result.ok;
        self.attempts.push(Attempt { at: now, result });
        self.updated_at = now;
        if ok {
            self.state = DeliveryState::Delivered;
            self.next_attempt_at = None;
        } else if self.attempts.len() >= MAX_ATTEMPTS {
            self.state = DeliveryState::Failed;
            self.next_attempt_at = None;
        } else {
            self.next_attempt_at = Some(now + Duration::seconds(BACKOFF_SECONDS[self.attempts.len() - 1]));
        }
    }

    /// Gives up without sending (the channel was deleted or disabled meanwhile).
    pub fn abandon(&mut self, why: &str, now: DateTime<Utc>) {
        self.record(SendResult { ok: false, status: None, message: why.into(), duration_ms: 0 }, now);
        self.state = DeliveryState::Failed;
        self.next_attempt_at = None;
    }

    /// Whether the log may forget it.
    pub fn expired(&self, now: DateTime<Utc>) -> bool {
        self.state != DeliveryState::Pending && now - self.updated_at > Duration::days(LOG_DAYS)
    }
}

/// A condition that holds now (a database without a recent backup, a stopped scheduler…), as the
/// status page sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    /// Names the condition and what it is about: `missed_backups:<database id>`.
    pub key: String,
    pub kind: EventKind,
    pub severity: Severity,
    pub title: String,
    pub message: String,
    pub subject: Subject,
}

/// An open incident: announced when it opened, announced again when it clears.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    pub key: String,
    pub kind: EventKind,
    pub severity: Severity,
    pub title: String,
    pub message: String,
    pub opened_at: DateTime<Utc>,
    pub database_id: Option<String>,
    pub database_alias: Option<String>,
    pub engine_id: Option<String>,
    pub policy_id: Option<String>,
}

impl Incident {
    fn subject(&self) -> Subject {
        Subject {
            database_id: self.database_id.clone(),
            database_alias: self.database_alias.clone(),
            engine_id: self.engine_id.clone(),
            policy_id: self.policy_id.clone(),
        }
    }

    fn id(&self) -> String {
        format!("{}@{}", self.key, self.opened_at.timestamp_millis())
    }

    pub fn opening(&self) -> Event {
        Event::new(self.id(), self.kind, self.severity, &self.title, &self.message, self.opened_at)
            .about(&self.subject())
    }

    pub fn clearing(&self, now: DateTime<Utc>) -> Event {
        let since = self.opened_at.format("%Y-%m-%d %H:%M UTC");
        let message = format!("Resolved (open since {since}): {}", self.message);
        let mut e = Event::new(format!("{}~resolved", self.id()), self.kind, self.severity, &self.title, &message, now)
            .about(&self.subject());
        e.resolved = true;
        e
    }
}

/// What changed between the incidents that are open and the conditions that hold now: one incident
/// opens per new condition, one clears per condition gone. A condition that stays adds nothing, so a
/// missed backup is one message however many ticks see it.
pub fn reconcile(open: &[Incident], now_holding: &[Condition], now: DateTime<Utc>) -> (Vec<Incident>, Vec<Incident>) {
    let opened = now_holding
        .iter()
        .filter(|c| !open.iter().any(|i| i.key == c.key))
        .map(|c| Incident {
            key: c.key.clone(),
            kind: c.kind,
            severity: c.severity,
            title: c.title.clone(),
            message: c.message.clone(),
            opened_at: now,
            database_id: c.subject.database_id.clone(),
            database_alias: c.subject.database_alias.clone(),
            engine_id: c.subject.engine_id.clone(),
            policy_id: c.subject.policy_id.clone(),
        })
        .collect();
    let cleared = open.iter().filter(|i| !now_holding.iter().any(|c| c.key == i.key)).cloned().collect();
    (opened, cleared)
}

/// Up to when finished backups and restores have been announced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotifyCursor {
    pub since: DateTime<Utc>,
}

/// The incident key of a condition.
pub fn incident_key(kind: EventKind, about: Option<&str>) -> String {
    match about {
        Some(id) => format!("{}:{id}", kind.as_str()),
        None => kind.as_str().to_string(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A webhook channel's body with only `url` set.
    pub(crate) fn webhook_input(url: &str) -> ChannelInput {
        ChannelInput {
            name: "n".into(),
            kind: ChannelKind::Webhook,
            enabled: None,
            url: Some(url.into()),
            secret: None,
            headers: None,
            smtp: None,
            plugin: None,
            settings: None,
            filters: None,
        }
    }

    /// A stored channel `c` of `kind`, sealed secret or not, made at hour 1.
    fn channel(kind: ChannelKind, secret_sealed: Option<&str>) -> Channel {
        Channel {
            id: "c".into(),
            name: "n".into(),
            kind,
            enabled: true,
            url_sealed: None,
            url_hint: None,
            secret_sealed: secret_sealed.map(Into::into),
            headers_sealed: None,
            header_names: vec![],
            smtp: None,
            plugin: None,
            settings_sealed: None,
            setting_names: vec![],
            filters: Filters::default(),
            created_at: at(1),
            updated_at: at(1),
        }
    }

    fn at(h: u32) -> DateTime<Utc> {
        chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 3, 1, h, 0, 0).unwrap()
    }

    fn cond(key: &str) -> Condition {
        Condition {
            key: key.into(),
            kind: EventKind::MissedBackups,
            severity: Severity::Error,
            title: "t".into(),
            message: "m".into(),
            subject: Subject { database_id: Some("db1".into()), ..Default::default() },
        }
    }

    #[test]
    fn an_incident_opens_once_and_clears_once() {
        let (opened, cleared) = reconcile(&[], &[cond("missed_backups:db1")], at(1));
        assert_eq!((opened.len(), cleared.len()), (1, 0));
        let open = opened;
        // Still holding an hour later: nothing new.
        let (o, c) = reconcile(&open, &[cond("missed_backups:db1")], at(2));
        assert!(o.is_empty() && c.is_empty());
        let (o, c) = reconcile(&open, &[], at(3));
        assert_eq!((o.len(), c.len()), (0, 1));
        let (open_e, clear_e) = (open[0].opening(), c[0].clearing(at(3)));
        assert_ne!(open_e.id, clear_e.id);
        assert!(clear_e.resolved && !open_e.resolved);
        assert_eq!(delivery_key(&open_e.id, "ch"), delivery_key(&open[0].opening().id, "ch"));
    }

    #[test]
    fn filters_pick_kinds_severity_and_databases() {
        let e = Event::new("x".into(), EventKind::BackupFailed, Severity::Error, "t", "m", at(1))
            .about(&Subject { database_id: Some("db1".into()), ..Default::default() });
        let f = Filters::default();
        assert!(f.admits(&e));
        let ok = Event { kind: EventKind::BackupSucceeded, severity: Severity::Info, ..e.clone() };
        assert!(!f.admits(&ok), "successes are opt-in");
        assert!(Filters { events: vec![EventKind::BackupSucceeded], ..f.clone() }.admits(&ok));
        assert!(!Filters { database_ids: vec!["db2".into()], ..f.clone() }.admits(&e));
        assert!(Filters { database_ids: vec!["db1".into()], ..f.clone() }.admits(&e));
        let warn = Event { severity: Severity::Warning, ..e.clone() };
        assert!(!Filters { min_severity: Severity::Error, ..f.clone() }.admits(&warn));
        // App-wide events pass database filters.
        let sched = Event::new("s".into(), EventKind::SchedulerStopped, Severity::Error, "t", "m", at(1));
        assert!(Filters { database_ids: vec!["db2".into()], ..f }.admits(&sched));
    }

    #[test]
    fn webhooks_are_signed_over_timestamp_and_body() {
        let ch = channel(ChannelKind::Webhook, Some("x"));
        let opened = Opened {
            url: Some("https://example.com/hook".into()),
            secret: Some("0123456789abcdef".into()),
            ..Default::default()
        };
        let e = Event::test("n", at(2));
        let Outgoing::Http { headers, body, .. } = render(&ch, &opened, &e, "d1", at(2)) else { panic!() };
        let h = |k: &str| headers.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()).unwrap();
        assert_eq!(h("x-dilux-signature"), signature("0123456789abcdef", at(2).timestamp(), &body));
        // Known vector (Python's hmac): HMAC-SHA256("key", "1.{}").
        assert_eq!(
            signature("key", 1, "{}"),
            "sha256=1ba6b8171186efc613e8bcc0cbdab2748f24984d7c5a84faa2637afa0e40d224"
        );
    }

    #[test]
    fn deliveries_back_off_then_give_up() {
        let ch_event = Event::test("n", at(1));
        let ch = channel(ChannelKind::Slack, None);
        let mut d = Delivery::new(&ch, &ch_event, at(1));
        let fail = SendResult { ok: false, status: Some(500), message: "no".into(), duration_ms: 1 };
        d.record(fail.clone(), at(1));
        assert_eq!(d.next_attempt_at, Some(at(1) + Duration::seconds(30)));
        assert!(!d.due(at(1)));
        for _ in 1..MAX_ATTEMPTS {
            d.record(fail.clone(), at(2));
        }
        assert_eq!(d.state, DeliveryState::Failed);
        assert!(!d.due(at(23)));
    }

    #[test]
    fn urls_must_be_https_and_not_the_metadata_service() {
        let input = webhook_input;
        assert!(input("https://hooks.example.com/x").validate(true).is_ok());
        assert!(input("http://127.0.0.1:9000/x").validate(true).is_ok());
        assert_eq!(input("http://example.com/x").validate(true).unwrap_err().field, "url");
        assert!(input("https://169.254.169.254/metadata").validate(true).is_err());
        assert!(input("https://user:pw@example.com/").validate(true).is_err());
        assert_eq!(url_hint("https://hooks.slack.com/services/T/B/secret"), "https://hooks.slack.com/…");
    }

    #[test]
    fn a_moved_url_needs_its_secret_again() {
        let seal = |s: &str| format!("sealed({s})");
        let mut input =
            ChannelInput { secret: Some("0123456789abcdef".into()), ..webhook_input("https://a.example.com/x") };
        let ch = Channel::apply("c", &input, None, &seal, at(1)).unwrap();
        input.secret = None;
        input.url = Some("https://a.example.com/y".into());
        let same = Channel::apply("c", &input, Some(&ch), &seal, at(2)).unwrap();
        assert_eq!(same.secret_sealed, ch.secret_sealed);
        input.url = Some("https://b.example.com/y".into());
        assert_eq!(Channel::apply("c", &input, Some(&ch), &seal, at(2)).unwrap_err().field, "secret");
    }
}
