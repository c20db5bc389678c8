//! Backup jobs (queue messages) and results (history rows), their keys and their life cycle:
//! pending → in_progress → completed | failed.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::compression::Compression;
use crate::encryption::Encryption;
use crate::format::DumpFormat;
use crate::{EngineType, ErrorClass};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BackupStatus {
    Pending,
    InProgress,
    Completed,
    Failed,
    Cancelled,
}

impl BackupStatus {
    /// The name as stored and shown: `pending`, `in_progress`, …
    pub fn as_str(self) -> &'static str {
        match self {
            BackupStatus::Pending => "pending",
            BackupStatus::InProgress => "in_progress",
            BackupStatus::Completed => "completed",
            BackupStatus::Failed => "failed",
            BackupStatus::Cancelled => "cancelled",
        }
    }

    pub fn is_final(self) -> bool {
        matches!(self, BackupStatus::Completed | BackupStatus::Failed | BackupStatus::Cancelled)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum BackupTier {
    Hourly,
    Daily,
    Weekly,
    Monthly,
    Yearly,
}

impl BackupTier {
    /// The name as stored and shown: `hourly`, `daily`, …
    pub fn as_str(self) -> &'static str {
        match self {
            BackupTier::Hourly => "hourly",
            BackupTier::Daily => "daily",
            BackupTier::Weekly => "weekly",
            BackupTier::Monthly => "monthly",
            BackupTier::Yearly => "yearly",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum TriggeredBy {
    Manual,
    Scheduler,
}

/// The message on the `backup-jobs` queue. Carries no secret: the worker resolves credentials.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackupJob {
    pub id: String,
    pub database_id: String,
    pub engine_type: EngineType,
    pub triggered_by: TriggeredBy,
    #[serde(default)]
    pub tiers: Vec<BackupTier>,
    pub created_at: DateTime<Utc>,
    /// Keys of the history row created with the job.
    pub history_pk: String,
    pub history_rk: String,
    pub blob_name: String,
    /// Messages queued before policies chose were all gzip level 6.
    #[serde(default = "legacy_compression")]
    pub compression: Compression,
    /// age recipients the dump is encrypted to (its policy's); empty: not encrypted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub encrypt_to: Vec<String>,
    /// PostgreSQL: plain SQL or pg_dump's custom archive (jobs queued before the choice: plain).
    #[serde(default, skip_serializing_if = "DumpFormat::is_plain")]
    pub dump_format: DumpFormat,
}

fn legacy_compression() -> Compression {
    Compression::LEGACY
}

impl BackupJob {
    pub fn new(
        database_id: &str,
        engine_type: EngineType,
        triggered_by: TriggeredBy,
        tiers: Vec<BackupTier>,
        now: DateTime<Utc>,
    ) -> Self {
        let id = uuid::Uuid::new_v4().to_string();
        let (history_pk, history_rk) = history_keys(now, &id);
        let compression = Compression::default();
        BackupJob {
            blob_name: blob_name(engine_type, database_id, now, &id, compression, DumpFormat::Plain, false),
            compression,
            encrypt_to: vec![],
            dump_format: DumpFormat::Plain,
            id,
            database_id: database_id.into(),
            engine_type,
            triggered_by,
            tiers,
            created_at: now,
            history_pk,
            history_rk,
        }
    }

    /// The job stored as its policy says: a PostgreSQL dump in `format` (other engines': SQL), compressed
    /// with `compression`, encrypted to `encryption`'s recipients if any. The blob name's extension follows
    /// (`.sql.zst`, `.dump.zst`, `.sql.zst.age`).
    pub fn stored_as(mut self, compression: Compression, encryption: Option<&Encryption>, format: DumpFormat) -> Self {
        self.compression = compression;
        self.encrypt_to = encryption.map(|e| e.recipients.clone()).unwrap_or_default();
        self.dump_format = if self.engine_type == EngineType::Postgresql { format } else { DumpFormat::Plain };
        let encrypted = !self.encrypt_to.is_empty();
        let (engine, at) = (self.engine_type, self.created_at);
        self.blob_name = blob_name(engine, &self.database_id, at, &self.id, compression, self.dump_format, encrypted);
        self
    }
}

/// .NET `DateTime.MaxValue.Ticks`: RowKeys count down from it so the newest sorts first.
pub const MAX_TICKS: i64 = 3_155_378_975_999_999_999;

/// History keys: the UTC date as partition, inverted 100-ns ticks + id as row.
pub fn history_keys(at: DateTime<Utc>, id: &str) -> (String, String) {
    let ticks = at.timestamp() * 10_000_000 + i64::from(at.timestamp_subsec_nanos() / 100);
    (at.format("%Y-%m-%d").to_string(), format!("{:019}_{id}", MAX_TICKS - ticks))
}

/// How long a backup may stay queued before the sweeper fails it.
pub const PENDING_BOUND: chrono::Duration = chrono::Duration::hours(12);
/// How long an attempt may run before the sweeper fails it (generous: the biggest dumps take hours).
pub const RUNNING_BOUND: chrono::Duration = chrono::Duration::hours(48);

/// `{engine_type}/{database_id}/{YYYYMMDD_HHMMSS}_{backup id prefix}.{format}`
pub fn blob_name(
    engine_type: EngineType,
    database_id: &str,
    at: DateTime<Utc>,
    backup_id: &str,
    compression: Compression,
    format: DumpFormat,
    encrypted: bool,
) -> String {
    // The backup id's first characters keep two backups started in the same second apart.
    let tag: String = backup_id.chars().filter(char::is_ascii_alphanumeric).take(8).collect();
    format!(
        "{}/{}/{}_{tag}.{}",
        engine_type.as_str(),
        database_id,
        at.format("%Y%m%d_%H%M%S"),
        engine_type.dump_format(compression, format, encrypted)
    )
}

/// A history row: one backup attempt and what came of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct BackupResult {
    pub id: String,
    pub database_id: String,
    pub database_name: String,
    pub database_alias: String,
    pub database_type: EngineType,
    pub engine_id: String,
    pub status: BackupStatus,
    pub triggered_by: TriggeredBy,
    /// Comma-separated tiers, e.g. `hourly,daily`.
    #[serde(with = "crate::entity::comma_list", default)]
    #[schemars(with = "String")]
    pub tiers: Vec<BackupTier>,
    pub created_at: DateTime<Utc>,
    #[serde(default)]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub completed_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub duration_seconds: Option<f64>,
    pub blob_name: String,
    pub file_format: String,
    /// Encrypted to its policy's age recipients: only a holder of one of their identities reads it.
    #[serde(default)]
    pub encrypted: bool,
    #[serde(default)]
    pub file_size_bytes: Option<i64>,
    #[serde(default)]
    pub uncompressed_size_bytes: Option<i64>,
    #[serde(default)]
    pub sha256: Option<String>,
    #[serde(default)]
    pub error_class: Option<ErrorClass>,
    #[serde(default)]
    pub error_message: Option<String>,
    #[serde(default)]
    pub attempts: u32,
    /// Tables and rows in the backup's manifest (`<blob_name>.manifest.json`).
    #[serde(default)]
    pub manifest_tables: Option<u32>,
    #[serde(default)]
    pub manifest_rows: Option<u64>,
    /// The newest restore or drill of this backup and whether it came back whole.
    #[serde(default)]
    pub last_verification: Option<crate::restore::Verification>,
    /// Why this completed backup looks wrong (far smaller than the ones before it); it does not count toward
    /// the keep windows until someone confirms it or a restore of it passes its content check.
    #[serde(default)]
    pub suspect: Option<String>,
}

/// The fields of a history row a database's stats need, read alone (`$select`) so that counting a long
/// history moves a few bytes per row, not the whole row.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct StatsFields {
    pub status: BackupStatus,
    #[serde(default)]
    pub file_size_bytes: Option<i64>,
    pub created_at: DateTime<Utc>,
}

impl StatsFields {
    /// Their names, as stored.
    pub const NAMES: &'static [&'static str] = &["status", "file_size_bytes", "created_at"];
}

impl From<&BackupResult> for StatsFields {
    fn from(r: &BackupResult) -> Self {
        StatsFields { status: r.status, file_size_bytes: r.file_size_bytes, created_at: r.created_at }
    }
}

/// One database's history in numbers: backups by state, bytes stored, the newest success.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct HistoryStats {
    pub total: u64,
    pub completed: u64,
    pub failed: u64,
    /// Queued or running.
    pub in_flight: u64,
    /// Of the completed backups.
    pub total_size_bytes: i64,
    pub last_success: Option<DateTime<Utc>>,
}

impl HistoryStats {
    pub fn add(&mut self, f: &StatsFields) {
        self.total += 1;
        match f.status {
            BackupStatus::Completed => {
                self.completed += 1;
                self.total_size_bytes = self.total_size_bytes.saturating_add(f.file_size_bytes.unwrap_or(0));
                self.last_success = self.last_success.max(Some(f.created_at));
            }
            BackupStatus::Failed => self.failed += 1,
            BackupStatus::Pending | BackupStatus::InProgress => self.in_flight += 1,
            BackupStatus::Cancelled => {}
        }
    }
}

/// Backups of one UTC day, by state, with the bytes its completed ones stored.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DayCounts {
    /// `YYYY-MM-DD` (UTC).
    pub day: String,
    pub completed: u64,
    pub failed: u64,
    /// Queued or running.
    pub in_flight: u64,
    pub stored_bytes: i64,
}

/// Every day of a range, oldest first (days without backups included: gaps are what a DBA looks for), and the
/// range's totals.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Daily {
    pub days: Vec<DayCounts>,
    pub totals: HistoryStats,
}

impl Daily {
    /// The days `from` to `to` (inclusive) counted from `rows`; rows outside the range are left out.
    pub fn count<'a>(
        from: chrono::NaiveDate,
        to: chrono::NaiveDate,
        rows: impl IntoIterator<Item = &'a StatsFields>,
    ) -> Daily {
        let dates: Vec<chrono::NaiveDate> = from.iter_days().take_while(|d| *d <= to).collect();
        // Each day counted by the same rule as the totals.
        let mut per_day = vec![HistoryStats::default(); dates.len()];
        let mut totals = HistoryStats::default();
        for r in rows {
            let Some(i) = (r.created_at.date_naive() - from).num_days().try_into().ok() else { continue };
            let Some(day) = per_day.get_mut::<usize>(i) else { continue };
            day.add(r);
            totals.add(r);
        }
        let days = dates
            .iter()
            .zip(per_day)
            .map(|(d, s)| DayCounts {
                day: d.format("%Y-%m-%d").to_string(),
                completed: s.completed,
                failed: s.failed,
                in_flight: s.in_flight,
                stored_bytes: s.total_size_bytes,
            })
            .collect();
        Daily { days, totals }
    }
}

/// A completed backup under this fraction of its predecessors' median size is suspect.
pub const SUSPECT_FRACTION: f64 = 0.10;
/// Completed backups compared (the newest ones before it); fewer than [`SUSPECT_MIN_HISTORY`] decide nothing.
pub const SUSPECT_HISTORY: usize = 5;
pub const SUSPECT_MIN_HISTORY: usize = 3;

/// Why a completed backup of `size` stored bytes is suspect next to the stored sizes of the completed backups
/// before it (newest first), if it is: under [`SUSPECT_FRACTION`] of their median, which a database emptied,
/// truncated or pointed at the wrong place would show.
pub fn suspect_reason(size: u64, before: &[u64]) -> Option<String> {
    let mut sizes: Vec<u64> = before.iter().copied().take(SUSPECT_HISTORY).collect();
    if sizes.len() < SUSPECT_MIN_HISTORY {
        return None;
    }
    sizes.sort_unstable();
    let median = sizes[sizes.len() / 2];
    ((size as f64) < median as f64 * SUSPECT_FRACTION).then(|| {
        format!(
            "{size} bytes, under {:.0}% of the usual {median} (median of the {} completed backups before it): check \
             that the database was not emptied or truncated, then confirm it or restore it to verify",
            SUSPECT_FRACTION * 100.0,
            sizes.len()
        )
    })
}

impl BackupResult {
    pub fn pending(job: &BackupJob, database_name: &str, database_alias: &str, engine_id: &str) -> Self {
        BackupResult {
            id: job.id.clone(),
            database_id: job.database_id.clone(),
            database_name: database_name.into(),
            database_alias: database_alias.into(),
            database_type: job.engine_type,
            engine_id: engine_id.into(),
            status: BackupStatus::Pending,
            triggered_by: job.triggered_by,
            tiers: job.tiers.clone(),
            created_at: job.created_at,
            started_at: None,
            completed_at: None,
            duration_seconds: None,
            blob_name: job.blob_name.clone(),
            file_format: job.engine_type.dump_format(job.compression, job.dump_format, !job.encrypt_to.is_empty()),
            encrypted: !job.encrypt_to.is_empty(),
            file_size_bytes: None,
            uncompressed_size_bytes: None,
            sha256: None,
            error_class: None,
            error_message: None,
            attempts: 0,
            manifest_tables: None,
            manifest_rows: None,
            last_verification: None,
            suspect: None,
        }
    }

    /// Marks an attempt as started. `false` when the row is already final (a redelivered message
    /// for a finished job must not run again).
    pub fn start(&mut self, now: DateTime<Utc>) -> bool {
        if self.status.is_final() {
            return false;
        }
        self.status = BackupStatus::InProgress;
        self.started_at = Some(now);
        self.attempts += 1;
        self.error_class = None;
        self.error_message = None;
        true
    }

    pub fn complete(&mut self, now: DateTime<Utc>, size: u64, uncompressed: u64, sha256: String) {
        self.status = BackupStatus::Completed;
        self.finish(now);
        self.file_size_bytes = Some(size as i64);
        self.uncompressed_size_bytes = Some(uncompressed as i64);
        self.sha256 = Some(sha256);
    }

    /// Why this row is stuck, when it is: queued longer than [`PENDING_BOUND`] (its job was lost, or no worker
    /// ran for that long) or running longer than [`RUNNING_BOUND`] since its last attempt started (its worker
    /// stopped without anyone settling it). A stuck row keeps its database "in flight" forever, so the
    /// sweeper fails it with this reason.
    pub fn stuck(&self, now: DateTime<Utc>) -> Option<String> {
        match self.status {
            BackupStatus::Pending if now - self.created_at > PENDING_BOUND => Some(format!(
                "no worker started this backup within {} hours of it being queued (its job was lost, or no \
                 dumper-host ran); the next one runs as scheduled — check that a dumper-host worker is running",
                PENDING_BOUND.num_hours()
            )),
            BackupStatus::InProgress if now - self.started_at.unwrap_or(self.created_at) > RUNNING_BOUND => {
                Some(format!(
                    "this backup was still running {} hours after its last attempt started: its worker stopped \
                     without recording a result; check the dumper-host's logs (the next backup runs as scheduled)",
                    RUNNING_BOUND.num_hours()
                ))
            }
            _ => None,
        }
    }

    pub fn fail(&mut self, now: DateTime<Utc>, class: ErrorClass, message: &str) {
        self.status = BackupStatus::Failed;
        self.finish(now);
        self.error_class = Some(class);
        self.error_message = Some(message.chars().take(2000).collect());
    }

    fn finish(&mut self, now: DateTime<Utc>) {
        self.completed_at = Some(now);
        let start = self.started_at.unwrap_or(self.created_at);
        self.duration_seconds = Some((now - start).num_milliseconds() as f64 / 1000.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::entity::{from_entity, to_entity};
    use chrono::TimeZone;

    #[test]
    fn every_day_of_the_range_is_counted_and_nothing_outside_it() {
        let at = |d: &str, h: u32| format!("{d}T{h:02}:00:00Z").parse::<DateTime<Utc>>().unwrap();
        let row = |d: &str, h: u32, status: BackupStatus, size: Option<i64>| StatsFields {
            status,
            file_size_bytes: size,
            created_at: at(d, h),
        };
        let mut rows = vec![
            row("2026-11-30", 23, BackupStatus::Completed, Some(5)),
            row("2026-12-03", 0, BackupStatus::Completed, Some(5)),
            row("2026-12-01", 1, BackupStatus::Failed, None),
            row("2026-12-02", 9, BackupStatus::InProgress, None),
        ];
        rows.extend((0..250).map(|i| row("2026-12-02", i % 24, BackupStatus::Completed, Some(10))));
        let day = |s: &str| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        let d = Daily::count(day("2026-12-01"), day("2026-12-02"), &rows);
        assert_eq!(d.days.iter().map(|d| d.day.as_str()).collect::<Vec<_>>(), ["2026-12-01", "2026-12-02"]);
        assert_eq!((d.days[0].completed, d.days[0].failed), (0, 1));
        assert_eq!((d.days[1].completed, d.days[1].in_flight, d.days[1].stored_bytes), (250, 1, 2500));
        assert_eq!((d.totals.total, d.totals.completed, d.totals.failed), (252, 250, 1), "the edges are outside");
        let quiet = Daily::count(day("2026-12-05"), day("2026-12-07"), &rows);
        assert_eq!((quiet.days.len(), quiet.totals.total), (3, 0), "empty days are there, with zeros");
    }

    #[test]
    fn newer_rows_sort_first_within_a_day() {
        let t1 = Utc.with_ymd_and_hms(2025, 12, 5, 10, 0, 0).unwrap();
        let t2 = t1 + chrono::Duration::milliseconds(1);
        let (p1, r1) = history_keys(t1, "a");
        let (p2, r2) = history_keys(t2, "b");
        assert_eq!(p1, "2025-12-05");
        assert_eq!(p1, p2);
        assert!(r2 < r1);
        assert_eq!(r1.len(), 19 + 2);
    }

    #[test]
    fn blob_names_follow_the_layout() {
        let t = Utc.with_ymd_and_hms(2024, 1, 15, 0, 0, 7).unwrap();
        assert_eq!(
            blob_name(EngineType::Mysql, "db-1", t, "1a2b3c4d-ffff", Compression::LEGACY, DumpFormat::Plain, false),
            "mysql/db-1/20240115_000007_1a2b3c4d.sql.gz"
        );
        let job = BackupJob::new("db-1", EngineType::Postgresql, TriggeredBy::Manual, vec![], t).stored_as(
            Compression::Gzip { level: 1 },
            None,
            DumpFormat::Plain,
        );
        assert!(job.blob_name.ends_with(".sql.gz"), "{}", job.blob_name);
        assert_eq!(BackupResult::pending(&job, "d", "d", "e").file_format, "sql.gz");
        let to =
            Encryption { recipients: vec!["age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p".into()] };
        let sealed = job.clone().stored_as(Compression::default(), Some(&to), DumpFormat::Plain);
        assert!(sealed.blob_name.ends_with(".sql.zst.age"), "{}", sealed.blob_name);
        assert_eq!(sealed.encrypt_to, to.recipients);
        let row = BackupResult::pending(&sealed, "d", "d", "e");
        assert_eq!((row.file_format.as_str(), row.encrypted), ("sql.zst.age", true));
        assert!(!serde_json::to_string(&job).unwrap().contains("encrypt_to"), "unencrypted jobs read as before");
        let custom = job.clone().stored_as(Compression::default(), Some(&to), DumpFormat::Custom);
        assert!(custom.blob_name.ends_with(".dump.zst.age"), "{}", custom.blob_name);
        assert_eq!(BackupResult::pending(&custom, "d", "d", "e").file_format, "dump.zst.age");
        let maria = BackupJob::new("db-1", EngineType::Mysql, TriggeredBy::Manual, vec![], t);
        let maria = maria.stored_as(Compression::default(), None, DumpFormat::Custom);
        assert!(maria.blob_name.ends_with(".sql.zst"), "MariaDB dumps are SQL whatever the policy says");
        assert!(!serde_json::to_string(&maria).unwrap().contains("dump_format"));
        let zstd = BackupJob::new("db-1", EngineType::Postgresql, TriggeredBy::Manual, vec![], t);
        assert!(zstd.blob_name.ends_with(".sql.zst"), "{}", zstd.blob_name);
        // A message from before the choice existed reads as what it made: gzip level 6.
        let mut old = serde_json::to_value(&job).unwrap();
        old.as_object_mut().unwrap().remove("compression");
        let old: BackupJob = serde_json::from_value(old).unwrap();
        assert_eq!(old.compression, Compression::LEGACY);
    }

    #[test]
    fn results_round_trip_through_table_entities() {
        let job = BackupJob::new(
            "d1",
            EngineType::Postgresql,
            TriggeredBy::Manual,
            vec![BackupTier::Daily, BackupTier::Weekly],
            Utc::now(),
        );
        let mut r = BackupResult::pending(&job, "app", "App", "e1");
        assert!(r.start(Utc::now()));
        r.complete(Utc::now(), 5_000_000_000, 9_000_000_000, "ab".into());
        let e = to_entity(&job.history_pk, &job.history_rk, &r);
        assert_eq!(e["file_size_bytes"], "5000000000");
        assert_eq!(e["file_size_bytes@odata.type"], "Edm.Int64");
        assert_eq!(e["tiers"], "daily,weekly");
        assert!(!e.contains_key("error_class"), "nulls are not stored");
        let back: BackupResult = from_entity(e).unwrap();
        assert_eq!(back, r);
        assert!(!r.clone().start(Utc::now()), "a finished row never restarts");
    }

    #[test]
    fn a_backup_far_smaller_than_its_predecessors_is_suspect() {
        assert_eq!(suspect_reason(1, &[1000, 1000]), None, "two before it decide nothing");
        assert_eq!(suspect_reason(100, &[1000, 1000, 1000]), None, "10% is not under 10%");
        let why = suspect_reason(99, &[1000, 900, 1100, 5, 1_000_000]).unwrap();
        assert!(why.contains("usual 1000 (median of the 5"), "{why}");
        assert_eq!(suspect_reason(99, &[1000, 10, 10, 10]), None, "the median, not the largest");
        assert!(suspect_reason(0, &[50, 60, 70, 1000, 1000, 1000, 1000]).is_some(), "only the newest five count");
    }

    #[test]
    fn rows_queued_or_running_too_long_are_stuck() {
        let t0 = Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap();
        let job = BackupJob::new("d1", EngineType::Mysql, TriggeredBy::Scheduler, vec![], t0);
        let mut r = BackupResult::pending(&job, "app", "App", "e1");
        assert_eq!(r.stuck(t0 + chrono::Duration::hours(12)), None, "12 h queued is within the bound");
        assert!(r.stuck(t0 + chrono::Duration::hours(13)).unwrap().contains("no worker started this backup"));
        // Running: counted from the last attempt's start, not from when it was queued.
        r.start(t0 + chrono::Duration::hours(11));
        assert_eq!(r.stuck(t0 + chrono::Duration::hours(58)), None);
        assert!(r.stuck(t0 + chrono::Duration::hours(60)).unwrap().contains("still running 48 hours"));
        r.complete(t0, 1, 1, "ab".into());
        assert_eq!(r.stuck(t0 + chrono::Duration::days(400)), None, "a finished row is never stuck");
    }

    #[test]
    fn failure_records_class_and_duration() {
        let t0 = Utc::now();
        let job = BackupJob::new("d1", EngineType::Mysql, TriggeredBy::Scheduler, vec![], t0);
        let mut r = BackupResult::pending(&job, "app", "App", "e1");
        r.start(t0);
        r.fail(t0 + chrono::Duration::seconds(2), ErrorClass::AuthFailed, "denied");
        assert_eq!(r.status, BackupStatus::Failed);
        assert_eq!(r.duration_seconds, Some(2.0));
        assert_eq!(serde_json::to_value(&r).unwrap()["error_class"], "AuthFailed");
    }
}
