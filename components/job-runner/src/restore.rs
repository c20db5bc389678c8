//! Restore jobs: load the restore row and its target server, open the server's password, move the
//! row pending → in_progress → completed | failed, and ask the host to run the restore. The same
//! delivery rules as backups: a finished row is never run again, a job whose worker died five times
//! is failed instead of retried forever.

use chrono::Utc;
use dilux_azure_spin::{self as store, log};
use dilux_domain::backup::history_keys;
use dilux_domain::manifest::{Comparison, TableMismatch};
use dilux_domain::restore::{
    previous_name, staging_name, RestoreJob, RestoreMode, RestorePurpose, RestoreResult, Verification,
    VerificationResult, RESTORE_PK,
};
use dilux_domain::{tables, BackupResult, BackupStatus, Engine, ErrorClass};

use crate::dilux::dumper::{dump, restore};
use crate::exports::dilux::dumper::job_handler::JobOutcome;
use crate::{Ctx, COMPONENT, MAX_DELIVERIES};

/// How often a running restore's progress is written to its row.
const PROGRESS_EVERY_MS: u32 = 500;

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
        Ok(r) => match follow(ctx, &mut row, &r).await {
            Ok(o) => {
                let now = Utc::now();
                // A retry that only finished an earlier attempt's swap read no bytes itself.
                let stored =
                    if o.compressed_bytes > 0 { o.compressed_bytes } else { row.bytes_total.unwrap_or(0) as u64 };
                row.complete(now, stored, o.uncompressed_bytes);
                row.previous_copy = o.previous_copy;
                let Some(checked) = o.verification.as_ref() else { return save(ctx, &row).await };
                let comparison = checked.manifest_found.then(|| comparison(checked));
                let version = checked.server_version.as_str();
                let v =
                    Verification::of_restore(&row, comparison.as_ref(), o.duration_ms as f64 / 1000.0, version, now);
                if v.result == VerificationResult::Failed {
                    // A drill whose copy differs did its job, and failed: the backup is not what it recorded.
                    let kept = match row.purpose {
                        RestorePurpose::Drill => "the scratch database was dropped".to_string(),
                        RestorePurpose::Restore => format!("`{}` was kept for inspection", row.target_database),
                    };
                    let why = format!("the restored copy differs from the backup: {} ({kept})", v.summary);
                    row.fail(now, ErrorClass::Corrupt, &why);
                }
                row.verification = Some(v);
            }
            Err(f) => {
                row.fail(Utc::now(), f.class.into(), &f.message);
                row.verification = Some(Verification::of_failure(&row, &f.message, Utc::now()));
            }
        },
    }
    // The backup's evidence: a restore or drill that says something about the backup (it came back, or
    // its bytes or content were wrong) — not a server that was down or a target that refused us (the
    // drill's own record and alert say those).
    let about_backup = row.status == BackupStatus::Completed || row.error_class == Some(ErrorClass::Corrupt);
    if let Some(v) = row.verification.clone().filter(|_| about_backup) {
        if let Err(e) = mark_backup(ctx, &row, v).await {
            log::event(COMPONENT, "verification_not_recorded", &[("restore", &row.id), ("error", &e)]);
        }
    }
    save(ctx, &row).await
}

/// Runs the restore in the host, recording its progress on the row while it runs.
async fn follow(
    ctx: &Ctx,
    row: &mut RestoreResult,
    r: &restore::RestoreRequest,
) -> Result<restore::RestoreOutcome, dump::DumpFailure> {
    let task = restore::start_restore(r);
    loop {
        match restore::poll_restore(task, PROGRESS_EVERY_MS) {
            restore::RestoreState::Finished(result) => return result,
            restore::RestoreState::Running((done, total)) => {
                row.progress_bytes = Some(done as i64);
                if total > 0 {
                    row.bytes_total = Some(total as i64);
                }
                // Progress is best effort: a failed write only delays the next figure.
                let _ = store::replace(&ctx.account, tables::RESTORES, RESTORE_PK, &row.id, &*row, None).await;
            }
        }
    }
}

fn comparison(v: &restore::Verification) -> Comparison {
    Comparison {
        tables_checked: v.tables_checked,
        rows_checked: v.rows_checked,
        mismatched_tables: v.mismatched_tables,
        mismatches: v
            .mismatches
            .iter()
            .map(|m| TableMismatch {
                table: m.table.clone(),
                expected_rows: m.expected_rows,
                actual_rows: m.actual_rows,
                content_differs: true,
            })
            .collect(),
    }
}

/// Leaves the evidence on the backup's own history row (the newest restore or drill of it).
async fn mark_backup(ctx: &Ctx, row: &RestoreResult, v: Verification) -> Result<(), store::StoreError> {
    let Some(created) = row.backup_created_at else { return Ok(()) };
    let (pk, rk) = history_keys(created, &row.backup_id);
    for _ in 0..3 {
        let Some((mut backup, etag)) = store::get::<BackupResult>(&ctx.account, tables::HISTORY, &pk, &rk).await?
        else {
            return Ok(()); // deleted by retention meanwhile
        };
        backup.last_verification = Some(v.clone());
        match store::replace(&ctx.account, tables::HISTORY, &pk, &rk, &backup, Some(&etag)).await {
            Err(e) if e.status() == Some(412) => continue,
            other => return other.map(|_| ()),
        }
    }
    Ok(())
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
    let password = match ctx.sealer.open(sealed, &engine.id) {
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
            // The same name on every attempt: a retry finishes a swap its predecessor began.
            Some(previous_name(&row.target_database, row.created_at)),
        ),
    };
    Ok(restore::RestoreRequest {
        engine: kind,
        host: engine.host.clone(),
        port: engine.port,
        tls: engine.tls().into(),
        username,
        password,
        database,
        replace,
        previous_name,
        container: ctx.container.clone(),
        blob_name: row.blob_name.clone(),
        sha256: row.sha256.clone(),
        restore_id: row.id.clone(),
        verify: true,
        drop_after: row.purpose == RestorePurpose::Drill,
        tables: row.tables.clone(),
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
