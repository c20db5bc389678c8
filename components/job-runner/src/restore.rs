//! Restore jobs: load the restore row and its target server, open the server's password, move the
//! row pending → in_progress → completed | failed, and ask the host to run the restore. The same
//! delivery rules as backups: a finished row is never run again, a job whose worker died five times
//! is failed instead of retried forever.

use chrono::Utc;
use dilux_azure_spin::{self as store, log};
use dilux_domain::restore::{previous_name, staging_name, RestoreJob, RestoreMode, RestoreResult, RESTORE_PK};
use dilux_domain::{tables, Engine, ErrorClass};

use crate::dilux::dumper::{dump, restore};
use crate::exports::dilux::dumper::job_handler::JobOutcome;
use crate::{Ctx, COMPONENT, MAX_DELIVERIES};

pub async fn handle(ctx: &Ctx, job: RestoreJob, dequeue_count: u32) -> JobOutcome {
    let (mut row, etag) = match store::get::<RestoreResult>(&ctx.account, tables::RESTORES, RESTORE_PK, &job.id).await {
        Ok(Some(r)) => r,
        Ok(None) => {
            log::event(COMPONENT, "restore_row_missing", &[("restore", &job.id)]);
            return JobOutcome::Done;
        }
        Err(e) => return JobOutcome::RetryLater(e.to_string()),
    };
    if row.status.is_final() {
        log::event(COMPONENT, "duplicate_delivery", &[("restore", &job.id)]);
        return JobOutcome::Done;
    }
    if dequeue_count > MAX_DELIVERIES {
        let why = format!(
            "gave up after {MAX_DELIVERIES} attempts: the worker stopped while running this restore each time; \
             check the dumper-host's memory and logs"
        );
        row.fail(Utc::now(), ErrorClass::ToolFailed, &why);
        return save(ctx, &row).await;
    }
    row.start(Utc::now());
    match store::replace(&ctx.account, tables::RESTORES, RESTORE_PK, &row.id, &row, Some(&etag)).await {
        Ok(_) => {}
        // Another worker got to it first.
        Err(e) if e.status() == Some(412) => return JobOutcome::RetryLater("restore row changed concurrently".into()),
        Err(e) => return JobOutcome::RetryLater(e.to_string()),
    }
    log::event(COMPONENT, "restore_started", &[("restore", &row.id), ("target", &row.target_database)]);
    match request(ctx, &row).await {
        Err(Some(retry)) => return JobOutcome::RetryLater(retry),
        // The row already says why it could not run.
        Err(None) => return JobOutcome::Done,
        Ok(r) => match restore::run_restore(&r) {
            Ok(o) => {
                row.complete(Utc::now(), o.compressed_bytes, o.uncompressed_bytes);
                row.previous_copy = o.previous_copy;
            }
            Err(f) => row.fail(Utc::now(), f.class.into(), &f.message),
        },
    }
    save(ctx, &row).await
}

/// The host's request for this restore; `Err(Some)` to retry later, `Err(None)` when the row was
/// failed with the reason.
async fn request(ctx: &Ctx, row: &RestoreResult) -> Result<restore::RestoreRequest, Option<String>> {
    let engine = match store::get::<Engine>(&ctx.account, tables::ENGINES, tables::ENGINE_PK, &row.target_engine_id)
        .await
    {
        Ok(Some((e, _))) => e,
        Ok(None) => return Err(fail_row(ctx, row, "the target server was deleted after this restore was queued").await),
        Err(e) => return Err(Some(e.to_string())),
    };
    let (Some(username), Some(sealed)) = (engine.username.clone(), engine.password_sealed.as_deref()) else {
        return Err(fail_row(ctx, row, "the target server has no username/password; add them and restore again").await);
    };
    let password = match ctx.sealer.open(sealed) {
        Ok(p) => p,
        Err(e) => return Err(fail_row(ctx, row, &e.to_string()).await),
    };
    let kind = match dump::EngineKind::try_from(engine.engine_type) {
        Ok(k) => k,
        Err(e) => return Err(fail_row(ctx, row, &e.to_string()).await),
    };
    // A replace restores beside the original first, then swaps names.
    let (database, replace, previous_name) = match row.mode {
        RestoreMode::New => (row.target_database.clone(), None, None),
        RestoreMode::Replace => (
            staging_name(&row.target_database, &row.id),
            Some(row.target_database.clone()),
            Some(previous_name(&row.target_database, Utc::now())),
        ),
    };
    Ok(restore::RestoreRequest {
        engine: kind,
        host: engine.host.clone(),
        port: engine.port,
        username,
        password,
        database,
        replace,
        previous_name,
        container: ctx.container.clone(),
        blob_name: row.blob_name.clone(),
        sha256: row.sha256.clone(),
        restore_id: row.id.clone(),
    })
}

/// Records a restore that cannot run as queued.
async fn fail_row(ctx: &Ctx, row: &RestoreResult, why: &str) -> Option<String> {
    let mut row = row.clone();
    row.fail(Utc::now(), ErrorClass::InvalidJob, why);
    match save(ctx, &row).await {
        JobOutcome::Done => None,
        JobOutcome::RetryLater(e) => Some(e),
    }
}

async fn save(ctx: &Ctx, row: &RestoreResult) -> JobOutcome {
    let status = row.status.as_str();
    let class = row.error_class.map(|c| c.to_string()).unwrap_or_default();
    log::event(COMPONENT, "restore_finished", &[("restore", &row.id), ("status", &status), ("error_class", &class)]);
    match store::replace(&ctx.account, tables::RESTORES, RESTORE_PK, &row.id, row, None).await {
        Ok(_) => JobOutcome::Done,
        Err(e) => JobOutcome::RetryLater(format!("could not record the result: {e}")),
    }
}
