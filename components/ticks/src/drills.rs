//! The drill tick: for every enabled database whose policy asks for restore drills, settle the drill
//! in flight, and when one is due queue a restore of the newest completed backup into a scratch
//! database (`<name>_drill_<timestamp>`), which the worker checks against the manifest and drops.

use std::collections::HashMap;

use dilux_azure::table::literal;
use dilux_azure_spin::{self as store, log, StoreError};
use dilux_domain::drill::{drill_due, DrillState, DRILL_PK};
use dilux_domain::restore::{drill_name, RestoreJob, RestoreMode, RestorePurpose, RestoreResult, RESTORE_PK};
use dilux_domain::{tables, BackupResult, BackupStatus, Engine, ErrorClass};

use crate::{Ctx, COMPONENT};

/// Who the restore history says asked for a drill.
const REQUESTED_BY: &str = "scheduler (restore drill)";

#[derive(Default)]
struct Counts {
    queued: usize,
    in_flight: usize,
    up_to_date: usize,
    no_backup: usize,
    not_runnable: usize,
    raced: usize,
}

pub async fn tick(ctx: &Ctx) -> Result<serde_json::Value, StoreError> {
    let a = &ctx.account;
    let filter = format!("PartitionKey eq {}", literal(DRILL_PK));
    let (dbs, engines, policies, states) = futures::join!(
        store::all_databases(a),
        store::all_engines(a),
        store::policies(a),
        store::query_all::<DrillState>(a, tables::SCHEDULE, &filter),
    );
    let engines: HashMap<String, Engine> = engines?.into_iter().map(|e| (e.id.clone(), e)).collect();
    let policies = policies?;
    let mut states: HashMap<String, (DrillState, String)> =
        states?.into_iter().map(|(s, e)| (s.database_id.clone(), (s, e))).collect();
    let mut counts = Counts::default();
    let mut asked = 0;
    for db in dbs?.iter().filter(|d| d.enabled) {
        let id = dilux_domain::policy::effective_policy_id(db, engines.get(&db.engine_id));
        let Some(policy) = policies.get(&id).map(|p| &p.verification).filter(|v| v.enabled()) else { continue };
        asked += 1;
        let (mut state, etag) = match states.remove(&db.id) {
            Some((s, e)) => (s, Some(e)),
            None => (DrillState::new(&db.id), None),
        };
        let mut changed = false;
        if let Some(restore_id) = state.active_restore_id.clone() {
            match store::get::<RestoreResult>(a, tables::RESTORES, RESTORE_PK, &restore_id).await? {
                Some((r, _)) if !r.status.is_final() => {
                    counts.in_flight += 1;
                    continue;
                }
                found => state.finish(found.as_ref().map(|(r, _)| r), ctx.now),
            }
            changed = true;
        }
        let newest = newest_completed(ctx, &db.id).await?;
        let has_backup = newest.is_some();
        let Some(backup) = newest.filter(|b| drill_due(policy, &state, b, ctx.now)) else {
            if !has_backup {
                counts.no_backup += 1;
            } else {
                counts.up_to_date += 1;
            }
            if changed {
                save(ctx, &state, etag.as_deref(), &mut counts).await?;
            }
            continue;
        };
        let engine_id = policy.drill_engine_id.clone().unwrap_or_else(|| db.engine_id.clone());
        // A missing drill server is recorded against the database's own (the row needs a server).
        let Some(target) = engines.get(&engine_id).or_else(|| engines.get(&db.engine_id)) else {
            counts.not_runnable += 1;
            if changed {
                save(ctx, &state, etag.as_deref(), &mut counts).await?;
            }
            continue;
        };
        let scratch = drill_name(&db.name, ctx.now);
        let mut row = RestoreResult::queued(
            &backup,
            target,
            &scratch,
            RestoreMode::New,
            RestorePurpose::Drill,
            REQUESTED_BY,
            ctx.now,
        );
        // A drill that cannot run is recorded as a failed one: that is what raises the alert.
        if let Some(why) = not_runnable(engines.get(&engine_id), &backup) {
            row.fail(ctx.now, ErrorClass::InvalidJob, &why);
            store::insert_or_init(a, &ctx.container, tables::RESTORES, RESTORE_PK, &row.id, &row).await?;
            state.start(&row.id, &backup.id, ctx.now);
            state.finish(Some(&row), ctx.now);
            counts.not_runnable += 1;
            save(ctx, &state, etag.as_deref(), &mut counts).await?;
            continue;
        }
        store::insert_or_init(a, &ctx.container, tables::RESTORES, RESTORE_PK, &row.id, &row).await?;
        state.start(&row.id, &backup.id, ctx.now);
        // The state row is the lock: a lost conditional write means another tick queued this drill.
        if !save(ctx, &state, etag.as_deref(), &mut counts).await? {
            let _ = store::delete(a, tables::RESTORES, RESTORE_PK, &row.id).await;
            continue;
        }
        let message = serde_json::to_string(&RestoreJob::new(&row.id)).expect("jobs serialize");
        match store::put_message(a, dilux_domain::restore::RESTORE_JOBS_QUEUE, &message).await {
            Ok(_) => {
                log::event(COMPONENT, "drill_queued", &[("database", &db.id), ("restore", &row.id)]);
                counts.queued += 1;
            }
            Err(e) => {
                // The next tick finds the row gone, counts no result, and queues the drill again — unless a
                // worker took the message whose answer was lost: that drill runs.
                let waiting = |r: &RestoreResult| r.status == BackupStatus::Pending;
                if store::withdraw(a, tables::RESTORES, RESTORE_PK, &row.id, waiting).await.unwrap_or(true) {
                    log::event(COMPONENT, "enqueue_failed", &[("database", &db.id), ("error", &e)]);
                } else {
                    counts.queued += 1;
                }
            }
        }
    }
    Ok(serde_json::json!({
        "now": ctx.now,
        "databases_with_drills": asked,
        "queued": counts.queued,
        "in_flight": counts.in_flight,
        "up_to_date": counts.up_to_date,
        "no_backup": counts.no_backup,
        "not_runnable": counts.not_runnable,
        "raced": counts.raced,
    }))
}

/// Why a drill onto `engine` cannot run, if it cannot.
fn not_runnable(engine: Option<&Engine>, backup: &BackupResult) -> Option<String> {
    let Some(engine) = engine else {
        return Some("the policy's drill server does not exist; choose another in the policy".into());
    };
    if engine.engine_type != backup.database_type {
        return Some(format!(
            "the drill server `{}` runs {}, but the backup is of {}; choose a drill server of the same engine",
            engine.name,
            engine.engine_type.as_str(),
            backup.database_type.as_str()
        ));
    }
    (!engine.has_credentials())
        .then(|| format!("the drill server `{}` has no username/password to restore with; add them", engine.name))
}

/// The database's newest completed backup, if any.
async fn newest_completed(ctx: &Ctx, database_id: &str) -> Result<Option<BackupResult>, StoreError> {
    let rows = store::history_by_database(&ctx.account, Some(database_id)).await?;
    Ok(rows
        .into_values()
        .flatten()
        .filter(|b| b.status == BackupStatus::Completed && b.created_at <= ctx.now)
        .max_by_key(|b| b.created_at))
}

/// Writes the state row under its ETag; `false` when another tick changed it first.
async fn save(ctx: &Ctx, state: &DrillState, etag: Option<&str>, counts: &mut Counts) -> Result<bool, StoreError> {
    let a = &ctx.account;
    let written = match etag {
        Some(t) => store::replace(a, tables::SCHEDULE, DRILL_PK, &state.database_id, state, Some(t)).await.map(|_| ()),
        None => store::insert_or_init(a, &ctx.container, tables::SCHEDULE, DRILL_PK, &state.database_id, state).await,
    };
    match written {
        Ok(()) => Ok(true),
        Err(e) if matches!(e.status(), Some(409) | Some(412)) => {
            counts.raced += 1;
            Ok(false)
        }
        Err(e) => Err(e),
    }
}
