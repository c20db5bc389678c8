//! What handlers need from the outside world, as narrow traits: keyed records (servers, databases,
//! policies, users, settings…), the backup history, the audit trail, the jobs queue, the backup files,
//! and the two services the API asks (the dumper-host's probe, the identity provider's signing keys).
//!
//! `dilux-azure-spin` implements them over Azure Table/Queue/Blob; `dilux-test-support` in memory, so
//! handlers are tested natively in seconds. Queries are typed (no OData strings here): each carries a
//! `matches` rule that the in-memory store applies and the Azure store turns into a filter.

mod error;
mod query;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use dilux_domain::audit::AuditLog;
use dilux_domain::backup::HistoryStats;
use dilux_domain::notify::{Channel, Delivery, Incident, NotifyCursor, Outgoing, SendResult};
use dilux_domain::policy::PolicyRow;
use dilux_domain::probe::{ProbeRequest, ProbeResult};
use dilux_domain::restore::RestoreResult;
use dilux_domain::schedule::{ScheduleState, TickRecord};
use dilux_domain::settings::{AccessRequest, AppSettings, Preferences, SigningKeys};
use dilux_domain::user::User;
use dilux_domain::{BackupResult, Database, Engine};

pub use error::{ServiceError, StoreError};
pub use query::{AuditQuery, HistoryQuery};

pub type StoreResult<T> = Result<T, StoreError>;

/// A record and its ETag (the version a later conditional write names).
pub type Tagged<T> = (T, String);

/// Records of one kind, each under a key (one Table partition).
#[async_trait(?Send)]
pub trait Records<T> {
    async fn get(&self, key: &str) -> StoreResult<Option<Tagged<T>>>;
    async fn list(&self) -> StoreResult<Vec<Tagged<T>>>;
    /// [`StoreError::Conflict`] when the key exists.
    async fn insert(&self, key: &str, record: &T) -> StoreResult<()>;
    /// `etag: Some`: [`StoreError::Changed`] if it changed since it was read. Answers the new ETag.
    async fn replace(&self, key: &str, record: &T, etag: Option<&str>) -> StoreResult<Option<String>>;
    /// Last writer wins: for records only ever replaced whole (preferences, caches).
    async fn upsert(&self, key: &str, record: &T) -> StoreResult<()>;
    /// Deleting a missing record is not an error.
    async fn delete(&self, key: &str) -> StoreResult<()>;
    /// Deletes the record of a job whose message may not have been queued, unless it is no longer
    /// `waiting` (a worker took the job): answers whether it is gone.
    async fn withdraw(&self, key: &str, waiting: &dyn for<'a> Fn(&'a T) -> bool) -> StoreResult<bool>;
}

/// The backup history (one row per backup, partitioned by day).
#[async_trait(?Send)]
pub trait History {
    async fn query(&self, q: &HistoryQuery) -> StoreResult<Vec<BackupResult>>;
    /// One database's stats, from its rows' [`StatsFields`](dilux_domain::backup::StatsFields) only.
    async fn stats(&self, database_id: &str) -> StoreResult<HistoryStats>;
    /// The [`StatsFields`](dilux_domain::backup::StatsFields) alone of the rows `q` matches (no limit).
    async fn fields(&self, q: &HistoryQuery) -> StoreResult<Vec<dilux_domain::backup::StatsFields>>;
    async fn insert(&self, row: &BackupResult) -> StoreResult<()>;
    /// Replaces an existing row, whatever its version (a row deleted meanwhile is an error).
    async fn update(&self, row: &BackupResult) -> StoreResult<()>;
    async fn delete(&self, row: &BackupResult) -> StoreResult<()>;
    /// Deletes the pending row of a job whose message may not have been queued, unless a worker took
    /// the job meanwhile (then the row stays for its result): answers whether it is gone.
    async fn withdraw(&self, row: &BackupResult) -> StoreResult<bool>;
}

/// The audit trail (partitioned by month).
#[async_trait(?Send)]
pub trait Audit {
    async fn insert(&self, row: &AuditLog) -> StoreResult<()>;
    async fn query(&self, q: &AuditQuery) -> StoreResult<Vec<AuditLog>>;
    /// Counts one request refused before sign-in in `now`'s hour: floods of them write no rows.
    async fn count_unauthenticated(&self, now: DateTime<Utc>) -> StoreResult<()>;
    /// Such requests counted in the hours from `since`'s on.
    async fn unauthenticated_since(&self, since: DateTime<Utc>) -> StoreResult<u64>;
}

/// The counter row of an hour (`YYYYMMDDHH`).
pub fn counter_hour(at: DateTime<Utc>) -> String {
    at.format("%Y%m%d%H").to_string()
}

/// One hour's count.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct HourCount {
    pub count: u32,
}

/// The backup jobs queue.
#[async_trait(?Send)]
pub trait Jobs {
    async fn put(&self, message: &str) -> StoreResult<()>;
    /// Approximate number of waiting messages.
    async fn depth(&self) -> StoreResult<u64>;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileItem {
    pub name: String,
    pub size: u64,
    pub last_modified: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FilePage {
    pub items: Vec<FileItem>,
    pub next_marker: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileProperties {
    pub size: u64,
    pub sha256: Option<String>,
}

/// What keeps backups recoverable after a delete or an overwrite (what the storage's data plane shows).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct Protection {
    /// Days a deleted or overwritten backup stays recoverable; `None`: soft delete is off.
    pub soft_delete_days: Option<u32>,
    /// A time-based retention (immutability) policy on the backups container.
    pub immutability_policy: bool,
    pub legal_hold: bool,
    /// Version-level immutability on the backups container.
    pub version_immutability: bool,
}

impl Protection {
    /// Whether anything keeps a deleted or overwritten backup recoverable.
    pub fn any(&self) -> bool {
        self.soft_delete_days.is_some() || self.immutability_policy || self.legal_hold || self.version_immutability
    }
}

/// A short-lived read-only URL of one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadLink {
    pub url: String,
    pub expires_at: DateTime<Utc>,
}

/// The backup files (one Blob container).
#[async_trait(?Send)]
pub trait Files {
    /// One page of backup names under `prefix` (manifest sidecars are not listed); a missing container
    /// is an empty page.
    async fn list(&self, prefix: &str, marker: Option<&str>, max: Option<u32>) -> StoreResult<FilePage>;
    async fn properties(&self, name: &str) -> StoreResult<Option<FileProperties>>;
    /// Deletes a backup and its manifest sidecar; answers whether the backup existed.
    async fn delete(&self, name: &str) -> StoreResult<bool>;
    /// A small file whole (a manifest), if it exists.
    async fn read_small(&self, name: &str) -> StoreResult<Option<Vec<u8>>>;
    /// [`StoreError::Unsupported`] when the credentials cannot sign links (no account key).
    fn read_link(&self, name: &str, now: DateTime<Utc>, ttl: chrono::Duration) -> StoreResult<ReadLink>;
    /// Soft delete and the container's immutability.
    async fn protection(&self) -> StoreResult<Protection>;
    /// Turns blob soft delete on for `days` (1–365).
    async fn enable_soft_delete(&self, days: u32) -> StoreResult<()>;
}

/// The dumper-host's probe: connection tests and discovery with the real clients.
#[async_trait(?Send)]
pub trait Dumper {
    /// A connection failure is a result (`success: false`), not an error; an error means the
    /// dumper-host itself could not be asked.
    async fn probe(&self, request: &ProbeRequest) -> Result<ProbeResult, ServiceError>;
    /// Its own report (installed tools).
    async fn health(&self) -> Result<serde_json::Value, ServiceError>;
    /// Sends one rendered notification. A destination that refuses it is a result (`ok: false`); an error
    /// means the dumper-host itself could not be asked.
    async fn send(&self, outgoing: &Outgoing) -> Result<SendResult, ServiceError>;
}

/// Where the identity provider publishes its signing keys.
#[async_trait(?Send)]
pub trait KeySource {
    /// The JWKS document of `tenant` at `authority`.
    async fn fetch(&self, authority: &str, tenant: &str) -> Result<String, ServiceError>;
}

/// Everything the API reads and writes.
pub struct Stores {
    pub engines: Box<dyn Records<Engine>>,
    pub databases: Box<dyn Records<Database>>,
    pub policies: Box<dyn Records<PolicyRow>>,
    pub users: Box<dyn Records<User>>,
    pub access_requests: Box<dyn Records<AccessRequest>>,
    /// One record, [`SETTINGS_KEY`].
    pub settings: Box<dyn Records<AppSettings>>,
    /// By user id.
    pub preferences: Box<dyn Records<Preferences>>,
    /// By tenant.
    pub signing_keys: Box<dyn Records<SigningKeys>>,
    /// By database id.
    pub schedule: Box<dyn Records<ScheduleState>>,
    /// Restore drills, by database id.
    pub drills: Box<dyn Records<dilux_domain::drill::DrillState>>,
    /// By tick name.
    pub ticks: Box<dyn Records<TickRecord>>,
    pub history: Box<dyn History>,
    /// By restore id.
    pub restores: Box<dyn Records<RestoreResult>>,
    pub audit: Box<dyn Audit>,
    /// The backup jobs queue.
    pub jobs: Box<dyn Jobs>,
    /// The restore jobs queue.
    pub restore_jobs: Box<dyn Jobs>,
    pub files: Box<dyn Files>,
    /// Notification channels, by id.
    pub channels: Box<dyn Records<Channel>>,
    /// The notification outbox and delivery log, by [`dilux_domain::notify::delivery_key`].
    pub deliveries: Box<dyn Records<Delivery>>,
    /// Open incidents, by key.
    pub incidents: Box<dyn Records<Incident>>,
    /// One record, [`dilux_domain::notify::CURSOR_KEY`].
    pub notify_cursor: Box<dyn Records<NotifyCursor>>,
    pub dumper: Box<dyn Dumper>,
    pub keys: Box<dyn KeySource>,
}

/// The key of the single settings record.
pub const SETTINGS_KEY: &str = "app";
