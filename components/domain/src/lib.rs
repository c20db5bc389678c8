//! The Dilux domain: models, validation and rules, shared by the Spin components, the dumper-host and
//! the UI so no model exists twice. No I/O here.

pub mod audit;
pub mod backup;
pub mod compression;
pub mod config;
pub mod drill;
pub mod encryption;
pub mod engine;
pub mod entity;
pub mod error;
pub mod format;
pub mod log;
pub mod manifest;
pub mod notify;
pub mod policy;
pub mod probe;
pub mod restore;
pub mod retention;
pub mod schedule;
pub mod schema;
pub mod secret;
pub mod settings;
pub mod tls;
pub mod user;

pub use backup::{BackupJob, BackupResult, BackupStatus, BackupTier, TriggeredBy};
pub use engine::{AuthMethod, Database, DatabaseView, Engine, EngineType, EngineView};
pub use error::{ErrorClass, FieldError};
pub use secret::{SealError, Sealer};

/// Table names (Azure Table storage).
pub mod tables {
    pub const ENGINES: &str = "engines";
    pub const DATABASES: &str = "databaseconfigs";
    pub const HISTORY: &str = "backuphistory";
    pub const SCHEDULE: &str = "schedulestate";
    pub const POLICIES: &str = "backuppolicies";
    pub const AUDIT: &str = "auditlogs";
    pub const USERS: &str = "users";
    /// Cached signing keys of the identity provider.
    pub const AUTH_CACHE: &str = "authcache";
    /// App settings (one row) and per-user preferences.
    pub const SETTINGS: &str = "appsettings";
    pub const ACCESS_REQUESTS: &str = "accessrequests";
    /// Requests refused before sign-in, counted per hour instead of audited one by one.
    pub const COUNTERS: &str = "requestcounters";
    /// One row per restore.
    pub const RESTORES: &str = "restorehistory";
    /// Notification channels, the outbox and delivery log, open incidents, the notify cursor.
    pub const NOTIFICATIONS: &str = "notifications";
    /// The single partition of the engines table.
    pub const ENGINE_PK: &str = "engine";
    /// The single partition of the databases table.
    pub const DATABASE_PK: &str = "database";
}

/// The queue the dumper-host workers lease jobs from.
pub const JOBS_QUEUE: &str = "backup-jobs";
/// The container backups are written to.
pub const BACKUPS_CONTAINER: &str = "backups";
