//! Engines (database servers) and the databases on them. Every database belongs to an engine and
//! either inherits its credentials or carries its own.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::tls::{Tls, TlsMode};
use crate::FieldError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum EngineType {
    Mysql,
    Postgresql,
    Sqlserver,
}

impl EngineType {
    pub fn default_port(self) -> u16 {
        match self {
            EngineType::Mysql => 3306,
            EngineType::Postgresql => 5432,
            EngineType::Sqlserver => 1433,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            EngineType::Mysql => "mysql",
            EngineType::Postgresql => "postgresql",
            EngineType::Sqlserver => "sqlserver",
        }
    }

    /// File format of this engine's dumps as stored: `sql.zst`, `dump.zst` (a PostgreSQL custom archive),
    /// or `sql.zst.age` encrypted.
    pub fn dump_format(
        self,
        compression: crate::compression::Compression,
        format: crate::format::DumpFormat,
        encrypted: bool,
    ) -> String {
        let format = match self {
            EngineType::Mysql | EngineType::Postgresql => compression.extension(format),
            EngineType::Sqlserver => "bacpac".to_string(),
        };
        if encrypted {
            format!("{format}.age")
        } else {
            format
        }
    }

    /// Databases discovery lists as system ones (never backed up by default).
    pub fn system_databases(self) -> &'static [&'static str] {
        match self {
            EngineType::Mysql => &["mysql", "information_schema", "performance_schema", "sys"],
            EngineType::Postgresql => &["postgres", "template0", "template1", "azure_maintenance", "azure_sys"],
            EngineType::Sqlserver => &["master", "tempdb", "model", "msdb"],
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    #[default]
    UserPassword,
    ManagedIdentity,
    AzureAd,
    ConnectionString,
}

/// An engine as stored. The password is sealed (see [`crate::Sealer`]) and never leaves the server side.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Engine {
    pub id: String,
    pub name: String,
    pub engine_type: EngineType,
    pub host: String,
    pub port: u16,
    #[serde(default)]
    pub auth_method: AuthMethod,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password_sealed: Option<String>,
    #[serde(default)]
    pub policy_id: Option<String>,
    #[serde(default)]
    pub discovery_enabled: bool,
    #[serde(default)]
    pub tls_mode: TlsMode,
    /// PEM CA bundle certificates are checked against; the system's when absent.
    #[serde(default)]
    pub tls_ca: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Engine {
    pub fn has_credentials(&self) -> bool {
        self.username.as_deref().is_some_and(|u| !u.is_empty()) && self.password_sealed.is_some()
    }

    /// The TLS its connections use.
    pub fn tls(&self) -> Tls {
        Tls::for_host(self.tls_mode, self.tls_ca.as_deref(), &self.host)
    }
}

impl Database {
    /// The username and sealed password this database connects with, its server's or its own, and the id
    /// of the record they were sealed for (what opening them needs).
    pub fn sealed_credentials<'a>(&'a self, engine: &'a Engine) -> Option<(&'a str, &'a str, &'a str)> {
        let (u, p, owner) = if self.use_engine_credentials {
            (&engine.username, &engine.password_sealed, &engine.id)
        } else {
            (&self.username, &self.password_sealed, &self.id)
        };
        Some((u.as_deref().filter(|u| !u.is_empty())?, p.as_deref()?, owner.as_str()))
    }
}

/// What the API shows of an engine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct EngineView {
    pub id: String,
    pub name: String,
    pub engine_type: EngineType,
    pub host: String,
    pub port: u16,
    pub auth_method: AuthMethod,
    /// Absent for viewers: they see no part of a credential.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    pub has_password: bool,
    pub policy_id: Option<String>,
    pub discovery_enabled: bool,
    /// As set; `auto` is `require` off this machine and `prefer` on its loopback.
    pub tls_mode: TlsMode,
    /// The mode connections use (never `auto`).
    pub tls_effective: TlsMode,
    pub tls_ca: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<&Engine> for EngineView {
    fn from(e: &Engine) -> Self {
        EngineView {
            id: e.id.clone(),
            name: e.name.clone(),
            engine_type: e.engine_type,
            host: e.host.clone(),
            port: e.port,
            auth_method: e.auth_method,
            username: e.username.clone(),
            has_password: e.password_sealed.is_some(),
            policy_id: e.policy_id.clone(),
            discovery_enabled: e.discovery_enabled,
            tls_mode: e.tls_mode,
            tls_effective: e.tls_mode.effective(&e.host),
            tls_ca: e.tls_ca.clone(),
            created_at: e.created_at,
            updated_at: e.updated_at,
        }
    }
}

impl EngineView {
    /// What `role` may see of a server: viewers get no login name.
    pub fn for_role(e: &Engine, role: crate::user::Role) -> Self {
        let mut v = EngineView::from(e);
        if !role.sees_credentials() {
            v.username = None;
        }
        v
    }
}

/// `POST /api/engines`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("dependentSchemas" = crate::schema::credentials_together()))]
pub struct CreateEngine {
    #[schemars(regex(pattern = crate::schema::NAME), length(max = 100))]
    pub name: String,
    pub engine_type: EngineType,
    #[schemars(regex(pattern = crate::schema::HOST), length(min = 1, max = 253))]
    pub host: String,
    #[schemars(range(min = 1))]
    pub port: Option<u16>,
    #[serde(default)]
    #[schemars(schema_with = "crate::schema::user_password_only")]
    pub auth_method: AuthMethod,
    #[schemars(regex(pattern = crate::schema::USERNAME), length(min = 1, max = 128))]
    pub username: Option<String>,
    #[schemars(length(min = 1))]
    pub password: Option<String>,
    #[schemars(regex(pattern = crate::schema::KEY), length(max = 260))]
    pub policy_id: Option<String>,
    #[serde(default)]
    pub tls_mode: TlsMode,
    /// PEM CA certificates (at most 32 KiB), used by `verify-full`; the system's CAs when left out.
    #[schemars(regex(pattern = crate::schema::CA_BUNDLE), length(max = 32768))]
    pub tls_ca: Option<String>,
}

impl CreateEngine {
    pub fn validate(&self) -> Result<(), FieldError> {
        validate_name("name", &self.name)?;
        validate_host(&self.host)?;
        if let Some(ca) = self.tls_ca.as_deref().filter(|c| !c.trim().is_empty()) {
            crate::tls::validate_ca("tls_ca", ca)?;
        }
        if self.port == Some(0) {
            return Err(FieldError::new("port", "must be between 1 and 65535"));
        }
        if self.auth_method != AuthMethod::UserPassword {
            return Err(FieldError::new("auth_method", "only user_password is supported by the dumper today"));
        }
        validate_credentials(self.username.as_deref(), self.password.as_deref(), false)
    }
}

/// A database as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Database {
    pub id: String,
    pub engine_id: String,
    /// Denormalized from the engine (an engine's type never changes): names blobs and picks the tool.
    pub engine_type: EngineType,
    /// The database's name on the server.
    pub name: String,
    /// A friendly name for people.
    pub alias: String,
    pub use_engine_credentials: bool,
    #[serde(default)]
    pub auth_method: AuthMethod,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password_sealed: Option<String>,
    #[serde(default)]
    pub policy_id: Option<String>,
    pub enabled: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What the API shows of a database.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DatabaseView {
    pub id: String,
    pub engine_id: String,
    pub engine_name: Option<String>,
    pub engine_type: EngineType,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub name: String,
    pub alias: String,
    pub use_engine_credentials: bool,
    pub auth_method: AuthMethod,
    /// Absent for viewers: they see no part of a credential.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    pub has_password: bool,
    pub policy_id: Option<String>,
    pub enabled: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl DatabaseView {
    pub fn new(d: &Database, engine: Option<&Engine>) -> Self {
        DatabaseView {
            id: d.id.clone(),
            engine_id: d.engine_id.clone(),
            engine_name: engine.map(|e| e.name.clone()),
            engine_type: d.engine_type,
            host: engine.map(|e| e.host.clone()),
            port: engine.map(|e| e.port),
            name: d.name.clone(),
            alias: d.alias.clone(),
            use_engine_credentials: d.use_engine_credentials,
            auth_method: d.auth_method,
            username: if d.use_engine_credentials {
                engine.and_then(|e| e.username.clone())
            } else {
                d.username.clone()
            },
            has_password: if d.use_engine_credentials {
                engine.is_some_and(|e| e.password_sealed.is_some())
            } else {
                d.password_sealed.is_some()
            },
            policy_id: d.policy_id.clone(),
            enabled: d.enabled,
            created_at: d.created_at,
            updated_at: d.updated_at,
        }
    }
}

impl DatabaseView {
    /// What `role` may see of a database: viewers get no login name.
    pub fn for_role(d: &Database, engine: Option<&Engine>, role: crate::user::Role) -> Self {
        let mut v = DatabaseView::new(d, engine);
        if !role.sees_credentials() {
            v.username = None;
        }
        v
    }
}

/// `POST /api/databases`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("anyOf" = crate::schema::own_credentials_or_none()))]
pub struct CreateDatabase {
    #[schemars(regex(pattern = crate::schema::KEY), length(max = 260))]
    pub engine_id: String,
    #[schemars(regex(pattern = crate::schema::DB_NAME), length(max = 64))]
    pub name: String,
    #[schemars(regex(pattern = crate::schema::NAME), length(max = 100))]
    pub alias: Option<String>,
    #[serde(default = "yes")]
    pub use_engine_credentials: bool,
    #[serde(default)]
    #[schemars(schema_with = "crate::schema::user_password_only")]
    pub auth_method: AuthMethod,
    #[schemars(regex(pattern = crate::schema::USERNAME), length(min = 1, max = 128))]
    pub username: Option<String>,
    #[schemars(length(min = 1))]
    pub password: Option<String>,
    #[schemars(regex(pattern = crate::schema::KEY), length(max = 260))]
    pub policy_id: Option<String>,
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn yes() -> bool {
    true
}

impl CreateDatabase {
    pub fn validate(&self) -> Result<(), FieldError> {
        if self.engine_id.is_empty() {
            return Err(FieldError::new("engine_id", "is required: every database belongs to a server (engine)"));
        }
        validate_db_name(&self.name)?;
        if let Some(a) = &self.alias {
            validate_name("alias", a)?;
        }
        if self.auth_method != AuthMethod::UserPassword {
            return Err(FieldError::new("auth_method", "only user_password is supported by the dumper today"));
        }
        if self.use_engine_credentials {
            if self.username.is_some() || self.password.is_some() {
                return Err(FieldError::new(
                    "use_engine_credentials",
                    concat!(
                        "is true, so username and password come from the server; ",
                        "set it to false to give this database its own"
                    ),
                ));
            }
            Ok(())
        } else {
            validate_credentials(self.username.as_deref(), self.password.as_deref(), true)
        }
    }
}

/// `PUT /api/databases/{id}`: fields left out keep their value.
#[derive(Debug, Clone, Deserialize, Default, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateDatabase {
    #[schemars(regex(pattern = crate::schema::DB_NAME), length(max = 64))]
    pub name: Option<String>,
    #[schemars(regex(pattern = crate::schema::NAME), length(max = 100))]
    pub alias: Option<String>,
    pub use_engine_credentials: Option<bool>,
    #[schemars(regex(pattern = crate::schema::NOT_BLANK))]
    pub username: Option<String>,
    #[schemars(length(min = 1))]
    pub password: Option<String>,
    #[schemars(regex(pattern = crate::schema::KEY), length(max = 260))]
    pub policy_id: Option<String>,
    pub enabled: Option<bool>,
}

impl UpdateDatabase {
    pub fn validate(&self) -> Result<(), FieldError> {
        if let Some(n) = &self.name {
            validate_db_name(n)?;
        }
        if let Some(a) = &self.alias {
            validate_name("alias", a)?;
        }
        if let Some(u) = &self.username {
            if u.trim().is_empty() {
                return Err(FieldError::new("username", "must not be empty"));
            }
        }
        if let Some(p) = &self.password {
            if p.is_empty() {
                return Err(FieldError::new("password", "must not be empty"));
            }
        }
        Ok(())
    }

    /// Applies the change; fails if the result would be a database without usable credentials.
    pub fn apply(
        &self,
        d: &mut Database,
        sealed_password: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<(), FieldError> {
        if let Some(n) = &self.name {
            d.name = n.clone();
        }
        if let Some(a) = &self.alias {
            d.alias = a.clone();
        }
        if let Some(u) = self.use_engine_credentials {
            d.use_engine_credentials = u;
        }
        if let Some(u) = &self.username {
            d.username = Some(u.clone());
        }
        if sealed_password.is_some() {
            d.password_sealed = sealed_password;
        }
        if let Some(p) = &self.policy_id {
            d.policy_id = Some(p.clone());
        }
        if let Some(e) = self.enabled {
            d.enabled = e;
        }
        if d.use_engine_credentials {
            // Own credentials are dropped, not kept dormant: nothing secret lingers unused.
            d.username = None;
            d.password_sealed = None;
        } else if d.username.is_none() || d.password_sealed.is_none() {
            return Err(FieldError::new("use_engine_credentials", "is false, so username and password are required"));
        }
        d.updated_at = now;
        Ok(())
    }
}

pub(crate) fn validate_name(field: &str, v: &str) -> Result<(), FieldError> {
    let t = v.trim();
    if t.is_empty() {
        return Err(FieldError::new(field, "must not be empty"));
    }
    if t.chars().count() > 100 {
        return Err(FieldError::new(field, "must be at most 100 characters"));
    }
    if t.chars().any(char::is_control) {
        return Err(FieldError::new(field, "must not contain control characters"));
    }
    Ok(())
}

pub fn validate_db_name(v: &str) -> Result<(), FieldError> {
    validate_name("name", v)?;
    // Names reach the dump tool as one argument; refuse what would read as an option.
    if v.starts_with('-') {
        return Err(FieldError::new("name", "must not start with '-'"));
    }
    // MariaDB's limit; PostgreSQL's is 63 bytes, which no existing database's name exceeds (a restore
    // creating one checks bytes: PostgreSQL would cut a longer name silently).
    if v.chars().count() > 64 {
        return Err(FieldError::new("name", "must be at most 64 characters (the MariaDB limit)"));
    }
    Ok(())
}

pub fn validate_host(v: &str) -> Result<(), FieldError> {
    if v.is_empty() {
        return Err(FieldError::new("host", "must not be empty"));
    }
    if v.len() > 253
        || v.starts_with('-')
        || !v.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':' | '[' | ']'))
    {
        return Err(FieldError::new("host", "must be a host name or IP address"));
    }
    Ok(())
}

fn validate_credentials(user: Option<&str>, pass: Option<&str>, required: bool) -> Result<(), FieldError> {
    match (user, pass) {
        (None, None) if !required => Ok(()),
        (None, _) | (Some(""), _) => Err(FieldError::new("username", "is required with a password")),
        (Some(_), None) | (Some(_), Some("")) => Err(FieldError::new("password", "is required with a username")),
        (Some(u), Some(_)) => validate_username(u),
    }
}

/// User names reach the tools as option values: bounded, and never readable as an option.
pub fn validate_username(u: &str) -> Result<(), FieldError> {
    if u.is_empty() || u.chars().count() > 128 || u.starts_with('-') {
        return Err(FieldError::new("username", "must be 1 to 128 characters and not start with '-'"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine_input() -> CreateEngine {
        serde_json::from_value(serde_json::json!({
            "name": "pg", "engine_type": "postgresql", "host": "127.0.0.1", "port": 5432,
            "username": "u", "password": "p",
        }))
        .unwrap()
    }

    #[test]
    fn engine_validation_names_fields() {
        assert!(engine_input().validate().is_ok());
        let mut e = engine_input();
        e.port = Some(0);
        assert_eq!(e.validate().unwrap_err().field, "port");
        let mut e = engine_input();
        e.host = "bad host;rm".into();
        assert_eq!(e.validate().unwrap_err().field, "host");
        let mut e = engine_input();
        e.password = None;
        assert_eq!(e.validate().unwrap_err().field, "password");
        let r: Result<CreateEngine, _> =
            serde_json::from_value(serde_json::json!({"name":"x","engine_type":"postgresql","host":"h","colour":1}));
        assert!(r.unwrap_err().to_string().contains("colour"));
    }

    #[test]
    fn database_credentials_rules() {
        let ok: CreateDatabase = serde_json::from_value(serde_json::json!({"engine_id":"e","name":"app"})).unwrap();
        assert!(ok.use_engine_credentials && ok.validate().is_ok());
        let own: CreateDatabase = serde_json::from_value(
            serde_json::json!({"engine_id":"e","name":"app","use_engine_credentials":false,"username":"u"}),
        )
        .unwrap();
        assert_eq!(own.validate().unwrap_err().field, "password");
        let dash: CreateDatabase = serde_json::from_value(serde_json::json!({"engine_id":"e","name":"--all"})).unwrap();
        assert_eq!(dash.validate().unwrap_err().field, "name");
    }

    #[test]
    fn switching_to_engine_credentials_drops_own_secret() {
        let now = Utc::now();
        let mut d = Database {
            id: "d".into(),
            engine_id: "e".into(),
            engine_type: EngineType::Mysql,
            name: "n".into(),
            alias: "a".into(),
            use_engine_credentials: false,
            auth_method: AuthMethod::UserPassword,
            username: Some("u".into()),
            password_sealed: Some("v1:x".into()),
            policy_id: None,
            enabled: true,
            created_at: now,
            updated_at: now,
        };
        UpdateDatabase { use_engine_credentials: Some(true), ..Default::default() }.apply(&mut d, None, now).unwrap();
        assert_eq!((&d.username, &d.password_sealed), (&None, &None));
        let err = UpdateDatabase { use_engine_credentials: Some(false), ..Default::default() }.apply(
            &mut d.clone(),
            None,
            now,
        );
        assert_eq!(err.unwrap_err().field, "use_engine_credentials");
    }
}

/// `PUT /api/engines/{id}`: fields left out keep their value. The type never changes.
#[derive(Debug, Clone, Deserialize, Default, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateEngine {
    #[schemars(regex(pattern = crate::schema::NAME), length(max = 100))]
    pub name: Option<String>,
    #[schemars(regex(pattern = crate::schema::HOST), length(min = 1, max = 253))]
    pub host: Option<String>,
    #[schemars(range(min = 1))]
    pub port: Option<u16>,
    #[schemars(regex(pattern = crate::schema::USERNAME), length(min = 1, max = 128))]
    pub username: Option<String>,
    #[schemars(length(min = 1))]
    pub password: Option<String>,
    #[schemars(regex(pattern = crate::schema::KEY), length(max = 260))]
    pub policy_id: Option<String>,
    pub tls_mode: Option<TlsMode>,
    /// PEM CA certificates (at most 32 KiB), used by `verify-full`; blank removes them (the system's CAs
    /// are used).
    #[schemars(regex(pattern = crate::schema::CA_BUNDLE), length(max = 32768))]
    pub tls_ca: Option<String>,
    /// Also move every database with its own credentials onto the server's.
    #[serde(default)]
    pub apply_to_all_databases: bool,
}

impl UpdateEngine {
    pub fn validate(&self) -> Result<(), FieldError> {
        if let Some(n) = &self.name {
            validate_name("name", n)?;
        }
        if let Some(h) = &self.host {
            validate_host(h)?;
        }
        if self.port == Some(0) {
            return Err(FieldError::new("port", "must be between 1 and 65535"));
        }
        if let Some(u) = &self.username {
            validate_username(u)?;
        }
        if self.password.as_deref() == Some("") {
            return Err(FieldError::new("password", "must not be empty"));
        }
        if let Some(ca) = self.tls_ca.as_deref().filter(|c| !c.trim().is_empty()) {
            crate::tls::validate_ca("tls_ca", ca)?;
        }
        Ok(())
    }

    pub fn apply(&self, e: &mut Engine, sealed_password: Option<String>, now: DateTime<Utc>) {
        if let Some(n) = &self.name {
            e.name = n.trim().to_string();
        }
        if let Some(h) = &self.host {
            e.host = h.trim().to_ascii_lowercase();
        }
        if let Some(p) = self.port {
            e.port = p;
        }
        if let Some(u) = &self.username {
            e.username = Some(u.clone());
        }
        if sealed_password.is_some() {
            e.password_sealed = sealed_password;
        }
        if let Some(p) = &self.policy_id {
            e.policy_id = Some(p.clone());
        }
        if let Some(m) = self.tls_mode {
            e.tls_mode = m;
        }
        if let Some(ca) = &self.tls_ca {
            e.tls_ca = Some(ca.clone()).filter(|c| !c.trim().is_empty());
        }
        e.discovery_enabled = e.has_credentials();
        e.updated_at = now;
    }
}
