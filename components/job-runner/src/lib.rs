//! The backup job logic as a Wasm guest of the dumper-host: load the job's database and credentials,
//! move the history row through its states, and ask the host to run the dump. Portable logic here,
//! processes and byte streams in the host.

use chrono::Utc;
use dilux_azure::Account;
use dilux_azure_spin::{self as store, log};
use dilux_domain::compression::Compression;
use dilux_domain::tls::{Tls, TlsMode};
use dilux_domain::{tables, BackupJob, BackupResult, Database, Engine, EngineType, ErrorClass, Sealer};

spin_sdk::wit_bindgen::generate!({
    world: "job-runner",
    path: "../../wit",
    runtime_path: "::spin_sdk::wit_bindgen::rt",
});

mod restore;

use dilux::dumper::dump;
use exports::dilux::dumper::job_handler::{Guest, JobOutcome};

/// After this many deliveries a job is failed instead of run again: each one ended with the worker
/// dying mid-job, and running it forever helps nobody.
const MAX_DELIVERIES: u32 = 5;

struct Runner;
export!(Runner);

impl Guest for Runner {
    fn handle_job(message: String, dequeue_count: u32) -> JobOutcome {
        spin_sdk::http::run(handle(message, dequeue_count))
    }
}

/// The component name in log lines.
const COMPONENT: &str = "job-runner";

struct Ctx {
    account: Account,
    sealer: Sealer,
    container: String,
}

fn context() -> Result<Ctx, dilux_domain::config::ConfigError> {
    let vars = store::config::variables();
    let storage = store::config::storage(&vars)?;
    let sealer = dilux_domain::config::sealer(&vars)?;
    Ok(Ctx { account: storage.account, sealer, container: storage.container })
}

async fn handle(message: String, dequeue_count: u32) -> JobOutcome {
    let ctx = match context() {
        Ok(c) => c,
        Err(e) => return JobOutcome::RetryLater(format!("job-runner is misconfigured: {e}")),
    };
    if let Some(job) = dilux_domain::restore::RestoreJob::parse(&message) {
        return restore::handle(&ctx, job, dequeue_count).await;
    }
    let job: BackupJob = match serde_json::from_str(&message) {
        Ok(j) => j,
        Err(e) => {
            // Not ours, or from an incompatible version: retrying cannot help.
            log::event(COMPONENT, "unreadable_job", &[("error", &e)]);
            return JobOutcome::Done;
        }
    };
    let (mut row, etag) =
        match store::get::<BackupResult>(&ctx.account, tables::HISTORY, &job.history_pk, &job.history_rk).await {
            Ok(Some(r)) => r,
            Ok(None) => {
                log::event(COMPONENT, "history_row_missing", &[("job", &job.id)]);
                return JobOutcome::Done;
            }
            Err(e) => return JobOutcome::RetryLater(e.to_string()),
        };
    if row.status.is_final() {
        log::event(COMPONENT, "duplicate_delivery", &[("job", &job.id)]);
        return JobOutcome::Done;
    }
    if dequeue_count > MAX_DELIVERIES {
        let why = format!(
            "gave up after {MAX_DELIVERIES} attempts: the worker stopped while running this backup each time; \
             check the dumper-host's memory and logs"
        );
        row.fail(Utc::now(), ErrorClass::ToolFailed, &why);
        return save(&ctx, &job, &row).await;
    }
    row.start(Utc::now());
    match store::replace(&ctx.account, tables::HISTORY, &job.history_pk, &job.history_rk, &row, Some(&etag)).await {
        Ok(_) => {}
        // Another worker got to it first.
        Err(e) if e.status() == Some(412) => return JobOutcome::RetryLater("history row changed concurrently".into()),
        Err(e) => return JobOutcome::RetryLater(e.to_string()),
    }
    log::event(COMPONENT, "started", &[("job", &job.id), ("database", &job.database_id), ("attempt", &row.attempts)]);
    match prepare(&ctx, &job).await {
        Err(Prepare::Retry(e)) => return JobOutcome::RetryLater(e),
        Err(Prepare::Fail(class, msg)) => row.fail(Utc::now(), class, &msg),
        Ok(request) => match dump::run_dump(&request) {
            Ok(o) => {
                row.complete(Utc::now(), o.compressed_bytes, o.uncompressed_bytes, o.sha256);
                (row.manifest_tables, row.manifest_rows) = (Some(o.tables), Some(o.rows));
                row.suspect = suspect(&ctx, &row, o.compressed_bytes).await;
            }
            Err(f) => row.fail(Utc::now(), f.class.into(), &f.message),
        },
    }
    save(&ctx, &job, &row).await
}

/// Days of history a new backup's size is compared with.
const SUSPECT_LOOK_BACK_DAYS: i64 = 90;

/// Why this completed backup is suspect next to the database's completed backups before it, if it is. The
/// check never fails a backup: history that cannot be read decides nothing.
async fn suspect(ctx: &Ctx, row: &BackupResult, size: u64) -> Option<String> {
    use dilux_azure::table::literal;
    let since = (row.created_at - chrono::Duration::days(SUSPECT_LOOK_BACK_DAYS)).format("%Y-%m-%d").to_string();
    let filter = format!(
        "PartitionKey ge {} and database_id eq {} and status eq 'completed'",
        literal(&since),
        literal(&row.database_id)
    );
    let mut before: Vec<BackupResult> =
        match store::query_all::<BackupResult>(&ctx.account, tables::HISTORY, &filter).await {
            // Suspect ones are no baseline: three tiny backups in a row must not make the fourth look normal.
            Ok(rows) => rows
                .into_iter()
                .map(|(r, _)| r)
                .filter(|r| r.id != row.id && r.created_at < row.created_at && r.suspect.is_none())
                .collect(),
            Err(e) => {
                log::event(COMPONENT, "suspect_check_skipped", &[("backup", &row.id), ("error", &e)]);
                return None;
            }
        };
    before.sort_by_key(|r| std::cmp::Reverse(r.created_at));
    let sizes: Vec<u64> = before.iter().filter_map(|r| r.file_size_bytes).map(|s| s.max(0) as u64).collect();
    let why = dilux_domain::backup::suspect_reason(size, &sizes)?;
    log::event(COMPONENT, "suspect_backup", &[("backup", &row.id), ("database", &row.database_id)]);
    Some(why)
}

async fn save(ctx: &Ctx, job: &BackupJob, row: &BackupResult) -> JobOutcome {
    let status = row.status.as_str();
    let class = row.error_class.map(|c| c.to_string()).unwrap_or_default();
    log::event(COMPONENT, "finished", &[("job", &job.id), ("status", &status), ("error_class", &class)]);
    match store::replace(&ctx.account, tables::HISTORY, &job.history_pk, &job.history_rk, row, None).await {
        Ok(_) => JobOutcome::Done,
        Err(e) => JobOutcome::RetryLater(format!("could not record the result: {e}")),
    }
}

enum Prepare {
    Retry(String),
    Fail(ErrorClass, String),
}

/// Resolves the job's database, engine and credentials into a dump request.
async fn prepare(ctx: &Ctx, job: &BackupJob) -> Result<dump::DumpRequest, Prepare> {
    let retry = |e: store::StoreError| Prepare::Retry(e.to_string());
    let invalid = |m: String| Prepare::Fail(ErrorClass::InvalidJob, m);
    let (db, _) = store::get::<Database>(&ctx.account, tables::DATABASES, "database", &job.database_id)
        .await
        .map_err(retry)?
        .ok_or_else(|| invalid(format!("database {} was deleted after this backup was queued", job.database_id)))?;
    let (engine, _) = store::get::<Engine>(&ctx.account, tables::ENGINES, "engine", &db.engine_id)
        .await
        .map_err(retry)?
        .ok_or_else(|| invalid(format!("server {} of this database no longer exists", db.engine_id)))?;
    let Some((username, sealed, owner)) = db.sealed_credentials(&engine) else {
        let whose = if db.use_engine_credentials { "its server" } else { "the database" };
        return Err(invalid(format!(
            "no username/password is set on {whose}; add credentials and run the backup again"
        )));
    };
    let username = username.to_string();
    let password = ctx.sealer.open(sealed, owner).map_err(|e| invalid(e.to_string()))?;
    let kind = dump::EngineKind::try_from(engine.engine_type)
        .map_err(|e| Prepare::Fail(ErrorClass::ToolFailed, e.to_string()))?;
    Ok(dump::DumpRequest {
        engine: kind,
        host: engine.host.clone(),
        port: engine.port,
        tls: engine.tls().into(),
        database: db.name.clone(),
        username,
        password,
        container: ctx.container.clone(),
        blob_name: job.blob_name.clone(),
        compression: match job.compression {
            Compression::Zstd { level } => dump::Compression::Zstd(level),
            Compression::Gzip { level } => dump::Compression::Gzip(level),
        },
        recipients: job.encrypt_to.clone(),
        custom_format: job.dump_format == dilux_domain::format::DumpFormat::Custom,
        metadata: vec![
            ("database_id".into(), db.id.clone()),
            ("engine_type".into(), engine.engine_type.as_str().into()),
            ("backup_id".into(), job.id.clone()),
        ],
    })
}

/// An engine the dump capability does not know.
#[derive(Debug)]
pub struct Unsupported(EngineType);

impl std::fmt::Display for Unsupported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            EngineType::Sqlserver => write!(f, "SQL Server backups are not supported by this dumper yet"),
            other => write!(f, "{} backups are not supported by this dumper", other.as_str()),
        }
    }
}

/// The engines the dump capability knows; the error says why the others cannot be dumped.
impl TryFrom<EngineType> for dump::EngineKind {
    type Error = Unsupported;

    fn try_from(t: EngineType) -> Result<Self, Unsupported> {
        match t {
            EngineType::Postgresql => Ok(dump::EngineKind::Postgresql),
            EngineType::Mysql => Ok(dump::EngineKind::Mysql),
            other => Err(Unsupported(other)),
        }
    }
}

/// A server's TLS as the dump capability takes it (`auto` is resolved by [`Engine::tls`] already).
impl From<Tls> for dump::TlsSettings {
    fn from(t: Tls) -> Self {
        let mode = match t.mode {
            TlsMode::Disable => dump::TlsMode::Disable,
            TlsMode::Prefer => dump::TlsMode::Prefer,
            TlsMode::Auto | TlsMode::Require => dump::TlsMode::Require,
            TlsMode::VerifyFull => dump::TlsMode::VerifyFull,
        };
        dump::TlsSettings { mode, ca: t.ca }
    }
}

impl From<dump::FailureClass> for ErrorClass {
    fn from(c: dump::FailureClass) -> Self {
        use dump::FailureClass as F;
        match c {
            F::AuthFailed => ErrorClass::AuthFailed,
            F::NotFound => ErrorClass::NotFound,
            F::PermissionDenied => ErrorClass::PermissionDenied,
            F::Unreachable => ErrorClass::Unreachable,
            F::Timeout => ErrorClass::Timeout,
            F::Tls => ErrorClass::Tls,
            F::ToolFailed => ErrorClass::ToolFailed,
            F::StorageFailed => ErrorClass::StorageFailed,
            F::Corrupt => ErrorClass::Corrupt,
        }
    }
}
