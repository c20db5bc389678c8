//! Restores: the request a user makes (a completed backup into a new database on a server of the
//! same engine), the job on the `restore-jobs` queue, and the restore history row with its life
//! cycle pending → in_progress → completed | failed.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::manifest::{Comparison, TableMismatch};
use crate::{BackupResult, BackupStatus, Engine, EngineType, ErrorClass, FieldError};

/// The queue restore jobs wait on (the same workers lease it, under the same rules as backups).
pub const RESTORE_JOBS_QUEUE: &str = "restore-jobs";
/// The partition of the restore history table.
pub const RESTORE_PK: &str = "restore";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RestoreMode {
    /// Into a new database; nothing existing is touched.
    #[default]
    New,
    /// Over the original: restore beside it, check it, then swap it in (PostgreSQL renames databases,
    /// MariaDB moves tables and re-creates views, triggers, routines and events); the original stays as
    /// `<name>_before_restore_<timestamp>` until someone drops it.
    Replace,
}

/// `POST /api/backups/restore`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RestoreRequest {
    /// The backup file (as listed by `GET /api/backups`).
    #[schemars(regex(pattern = crate::schema::BLOB_NAME))]
    pub blob_name: String,
    /// The server to restore onto, of the backup's engine type; the backup's own server by default.
    #[schemars(regex(pattern = crate::schema::KEY), length(max = 260))]
    pub target_engine_id: Option<String>,
    /// The new database's name, at most 63 bytes of UTF-8; `<name>_restored_<YYYYMMDD_HHMMSS>` by default.
    #[schemars(regex(pattern = crate::schema::DB_NAME), length(max = 63))]
    pub target_database: Option<String>,
    #[serde(default)]
    pub mode: RestoreMode,
    /// With `replace`: must equal the target database's name.
    pub confirm: Option<String>,
    /// A selective restore (PostgreSQL backups in the `custom` format, mode `new`): the rows of these tables
    /// only (`schema.table`, or `table` for `public.table`), into the whole schema; the other tables come back
    /// empty, and foreign keys between a chosen and an unchosen table are left out. Left out: everything.
    #[serde(default)]
    #[schemars(schema_with = "crate::format::tables_schema")]
    pub tables: Option<Vec<String>>,
}

impl RestoreRequest {
    pub fn validate(&self) -> Result<(), FieldError> {
        if let Some(name) = &self.target_database {
            crate::engine::validate_db_name(name).map_err(|e| FieldError::new("target_database", e.message))?;
            if name.len() > 63 {
                return Err(FieldError::new("target_database", "must be at most 63 bytes (PostgreSQL cuts longer)"));
            }
        }
        if let Some(tables) = &self.tables {
            crate::format::parse_tables(tables)?;
        }
        Ok(())
    }
}

/// `original` + `suffix` within PostgreSQL's 63 bytes (it would cut a longer name silently).
fn suffixed(original: &str, suffix: &str) -> String {
    let mut keep = (63 - suffix.len()).min(original.len());
    while !original.is_char_boundary(keep) {
        keep -= 1;
    }
    format!("{}{suffix}", &original[..keep])
}

/// The default name of a restored database.
pub fn restored_name(original: &str, at: DateTime<Utc>) -> String {
    suffixed(original, &format!("_restored_{}", at.format("%Y%m%d_%H%M%S")))
}

/// Where a replacing restore writes before the swap.
pub fn staging_name(original: &str, restore_id: &str) -> String {
    suffixed(original, &format!("_restoring_{}", restore_id.get(..8).unwrap_or(restore_id)))
}

/// The scratch database a drill restores into (dropped again when it is done).
pub fn drill_name(original: &str, at: DateTime<Utc>) -> String {
    suffixed(original, &format!("_drill_{}", at.format("%Y%m%d_%H%M%S")))
}

/// What the original is renamed to when a restore replaces it.
pub fn previous_name(original: &str, at: DateTime<Utc>) -> String {
    suffixed(original, &format!("_before_restore_{}", at.format("%Y%m%d_%H%M%S")))
}

/// The message on the `restore-jobs` queue. Carries no secret: the worker resolves credentials.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RestoreJob {
    /// Tells a restore message from a backup one.
    pub kind: String,
    pub id: String,
}

impl RestoreJob {
    pub const KIND: &'static str = "restore";

    pub fn new(id: &str) -> Self {
        RestoreJob { kind: Self::KIND.into(), id: id.into() }
    }

    /// A restore job, if `message` is one.
    pub fn parse(message: &str) -> Option<Self> {
        serde_json::from_str::<RestoreJob>(message).ok().filter(|j| j.kind == Self::KIND)
    }
}

/// Why a restore ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RestorePurpose {
    /// Someone asked for the data back.
    #[default]
    Restore,
    /// The scheduler proving the backup restores: into a scratch database, checked, then dropped.
    Drill,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum VerificationResult {
    /// Restored, and every table's row count and content digest equal the backup's manifest.
    Passed,
    /// The restore failed, or the restored database differs from the manifest.
    Failed,
    /// Restored, but the backup predates manifests: only its SHA-256 was checked.
    Unverified,
}

/// The evidence a restore or drill leaves on its backup: did the backup come back whole?
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Verification {
    pub result: VerificationResult,
    /// In words: "3 tables, 6010 rows identical to the backup", or what differs, or why it failed.
    pub summary: String,
    pub checked_at: DateTime<Utc>,
    pub restore_id: String,
    pub purpose: RestorePurpose,
    /// Seconds the restore itself took (the measured recovery time), without the check after it.
    #[serde(default)]
    pub restore_seconds: Option<f64>,
    #[serde(default)]
    pub tables_checked: u32,
    #[serde(default)]
    pub rows_checked: u64,
    #[serde(default)]
    pub mismatched_tables: u32,
    /// By table, the first 50.
    #[serde(default)]
    pub mismatches: Vec<TableMismatch>,
    /// The server restored onto, by name, and its own version string.
    pub server: String,
    #[serde(default)]
    pub server_version: String,
}

impl Verification {
    /// From a restore that ran: its comparison (None when the backup had no manifest).
    pub fn of_restore(
        row: &RestoreResult,
        comparison: Option<&Comparison>,
        restore_seconds: f64,
        server_version: &str,
        now: DateTime<Utc>,
    ) -> Self {
        let (result, summary) = match comparison {
            Some(c) if c.passed() => (VerificationResult::Passed, c.summary()),
            Some(c) => (VerificationResult::Failed, c.summary()),
            None => (
                VerificationResult::Unverified,
                "restored; this backup has no manifest (made before manifests existed), so only its SHA-256 was \
                 checked"
                    .to_string(),
            ),
        };
        Verification {
            result,
            summary,
            checked_at: now,
            restore_id: row.id.clone(),
            purpose: row.purpose,
            restore_seconds: Some(restore_seconds),
            tables_checked: comparison.map_or(0, |c| c.tables_checked),
            rows_checked: comparison.map_or(0, |c| c.rows_checked),
            mismatched_tables: comparison.map_or(0, |c| c.mismatched_tables),
            mismatches: comparison.map(|c| c.mismatches.clone()).unwrap_or_default(),
            server: row.target_engine_name.clone(),
            server_version: server_version.to_string(),
        }
    }

    /// From a restore that failed before anything could be compared.
    pub fn of_failure(row: &RestoreResult, why: &str, now: DateTime<Utc>) -> Self {
        Verification {
            result: VerificationResult::Failed,
            summary: format!("the restore failed: {}", why.chars().take(500).collect::<String>()),
            checked_at: now,
            restore_id: row.id.clone(),
            purpose: row.purpose,
            restore_seconds: None,
            tables_checked: 0,
            rows_checked: 0,
            mismatched_tables: 0,
            mismatches: vec![],
            server: row.target_engine_name.clone(),
            server_version: String::new(),
        }
    }
}

/// A restore as the history shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RestoreResult {
    pub id: String,
    pub backup_id: String,
    pub blob_name: String,
    /// The SHA-256 recorded at backup time, checked while the restore streams.
    pub sha256: Option<String>,
    pub source_database_id: String,
    pub source_database_alias: String,
    pub engine_type: EngineType,
    pub target_engine_id: String,
    pub target_engine_name: String,
    pub target_database: String,
    pub mode: RestoreMode,
    pub status: BackupStatus,
    pub requested_by: String,
    pub created_at: DateTime<Utc>,
    #[serde(default)]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub completed_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub duration_seconds: Option<f64>,
    /// Bytes of the stored backup (compressed).
    #[serde(default)]
    pub bytes_total: Option<i64>,
    #[serde(default)]
    pub bytes_restored: Option<i64>,
    /// While it runs: bytes of the stored backup the server has taken so far, of `bytes_total`.
    #[serde(default)]
    pub progress_bytes: Option<i64>,
    #[serde(default)]
    pub error_class: Option<ErrorClass>,
    /// The tool's or service's own words, without secrets.
    #[serde(default)]
    pub error_message: Option<String>,
    #[serde(default)]
    pub attempts: u32,
    /// After a replace: the name the original now has (kept until someone drops it).
    #[serde(default)]
    pub previous_copy: Option<String>,
    #[serde(default)]
    pub purpose: RestorePurpose,
    /// Finds the backup's history row again (with `backup_id`), to leave the evidence on it.
    #[serde(default)]
    pub backup_created_at: Option<DateTime<Utc>>,
    /// The restored database compared with the backup's manifest.
    #[serde(default)]
    pub verification: Option<Verification>,
    /// A selective restore's tables (`schema.table`); empty: the whole backup.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tables: Vec<String>,
}

impl RestoreResult {
    /// A pending restore of `backup` into `target` on `engine`.
    pub fn queued(
        backup: &BackupResult,
        engine: &Engine,
        target: &str,
        mode: RestoreMode,
        purpose: RestorePurpose,
        requested_by: &str,
        now: DateTime<Utc>,
    ) -> Self {
        RestoreResult {
            id: uuid::Uuid::new_v4().to_string(),
            backup_id: backup.id.clone(),
            blob_name: backup.blob_name.clone(),
            sha256: backup.sha256.clone(),
            source_database_id: backup.database_id.clone(),
            source_database_alias: backup.database_alias.clone(),
            engine_type: backup.database_type,
            target_engine_id: engine.id.clone(),
            target_engine_name: engine.name.clone(),
            target_database: target.to_string(),
            mode,
            status: BackupStatus::Pending,
            requested_by: requested_by.to_string(),
            created_at: now,
            started_at: None,
            completed_at: None,
            duration_seconds: None,
            bytes_total: backup.file_size_bytes,
            bytes_restored: None,
            progress_bytes: None,
            error_class: None,
            error_message: None,
            attempts: 0,
            previous_copy: None,
            purpose,
            backup_created_at: Some(backup.created_at),
            verification: None,
            tables: vec![],
        }
    }

    /// Marks an attempt as started; `false` when the row is already final (a redelivered message
    /// for a finished restore must not run again).
    pub fn start(&mut self, now: DateTime<Utc>) -> bool {
        if self.status.is_final() {
            return false;
        }
        self.status = BackupStatus::InProgress;
        self.started_at = Some(now);
        self.attempts += 1;
        true
    }

    pub fn complete(&mut self, now: DateTime<Utc>, stored: u64, restored: u64) {
        self.status = BackupStatus::Completed;
        self.finish(now);
        self.bytes_total = Some(stored as i64);
        self.progress_bytes = Some(stored as i64);
        self.bytes_restored = Some(restored as i64);
        self.error_class = None;
        self.error_message = None;
    }

    pub fn fail(&mut self, now: DateTime<Utc>, class: ErrorClass, message: &str) {
        self.status = BackupStatus::Failed;
        self.finish(now);
        self.error_class = Some(class);
        // Table properties are bounded; the tool's first words say what went wrong.
        self.error_message = Some(message.chars().take(2000).collect());
    }

    fn finish(&mut self, now: DateTime<Utc>) {
        self.completed_at = Some(now);
        self.duration_seconds = self.started_at.map(|s| (now - s).num_milliseconds() as f64 / 1000.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restore_messages_are_told_from_backup_ones() {
        let m = serde_json::to_string(&RestoreJob::new("r1")).unwrap();
        assert_eq!(RestoreJob::parse(&m).unwrap().id, "r1");
        assert!(RestoreJob::parse(r#"{"id":"b1","database_id":"d"}"#).is_none());
    }

    #[test]
    fn names_and_modes_are_checked() {
        let at = chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 12, 1, 2, 3, 4).unwrap();
        assert_eq!(restored_name("shop", at), "shop_restored_20261201_020304");
        assert_eq!(restored_name(&"é".repeat(40), at).len(), 63, "cut on a character boundary");
        let r: RestoreRequest = serde_json::from_value(serde_json::json!({
            "blob_name": "b", "target_database": "-bad", "mode": "new"
        }))
        .unwrap();
        assert_eq!(r.validate().unwrap_err().field, "target_database");
        assert_eq!(staging_name("shop", "0123456789"), "shop_restoring_01234567");
        assert_eq!(previous_name("shop", at), "shop_before_restore_20261201_020304");
    }
}
