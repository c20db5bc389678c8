//! The scheduler tick: for every enabled database, settle its in-flight scheduled job, evaluate its
//! effective policy, and queue one job carrying every due tier.

use std::collections::HashMap;

use dilux_azure::table::literal;
use dilux_azure_spin::{self as store, StoreError};
use dilux_domain::policy::{due_tiers, BackupPolicy};
use dilux_domain::schedule::ScheduleState;
use dilux_domain::{tables, BackupJob, BackupResult, BackupStatus, Database, Engine, TriggeredBy};
use futures::future::join_all;

use crate::Ctx;

const STATE_PK: &str = "state";
/// Databases evaluated concurrently (each evaluation is a few storage round trips).
const PARALLEL: usize = 32;

#[derive(Default)]
struct Counts {
    queued: usize,
    in_flight: usize,
    up_to_date: usize,
    raced: usize,
    no_policy: usize,
    errors: usize,
}

enum Outcome {
    Queued,
    InFlight,
    UpToDate,
    /// Another tick wrote this database's state first.
    Raced,
    NoPolicy,
}

pub async fn tick(ctx: &Ctx) -> Result<serde_json::Value, StoreError> {
    let a = &ctx.account;
    let state_filter = format!("PartitionKey eq {}", literal(STATE_PK));
    let (dbs, engines, policies, states) = futures::join!(
        store::query_all::<Database>(a, tables::DATABASES, "PartitionKey eq 'database'"),
        store::query_all::<Engine>(a, tables::ENGINES, "PartitionKey eq 'engine'"),
        store::policies(a),
        store::query_all::<ScheduleState>(a, tables::SCHEDULE, &state_filter),
    );
    let engines: HashMap<String, Engine> = engines?.into_iter().map(|(e, _)| (e.id.clone(), e)).collect();
    let policies = policies?;
    let mut states: HashMap<String, (ScheduleState, String)> = states?.into_iter().map(|(s, e)| (s.database_id.clone(), (s, e))).collect();
    let dbs: Vec<Database> = dbs?.into_iter().map(|(d, _)| d).filter(|d| d.enabled).collect();
    let settled = in_flight_statuses(ctx, states.values().map(|(s, _)| s)).await?;

    let mut counts = Counts::default();
    for chunk in dbs.chunks(PARALLEL) {
        let work = chunk.iter().map(|db| {
            let policy_id = store::effective_policy_id(db, engines.get(&db.engine_id));
            let state = states.remove(&db.id);
            evaluate(ctx, db, policies.get(&policy_id), state, &settled)
        });
        for r in join_all(work).await {
            match r {
                Ok(Outcome::Queued) => counts.queued += 1,
                Ok(Outcome::InFlight) => counts.in_flight += 1,
                Ok(Outcome::UpToDate) => counts.up_to_date += 1,
                Ok(Outcome::Raced) => counts.raced += 1,
                Ok(Outcome::NoPolicy) => counts.no_policy += 1,
                Err(e) => {
                    eprintln!("scheduler database_error={e}");
                    counts.errors += 1;
                }
            }
        }
    }
    Ok(serde_json::json!({
        "now": ctx.now,
        "databases": dbs.len(),
        "queued": counts.queued,
        "in_flight": counts.in_flight,
        "up_to_date": counts.up_to_date,
        "raced": counts.raced,
        "no_policy": counts.no_policy,
        "errors": counts.errors,
    }))
}

/// The status of every in-flight scheduled job, read with one range query over the history
/// partitions they live in (one GET per database made a 10 000-database tick take a minute).
async fn in_flight_statuses<'a>(ctx: &Ctx, states: impl Iterator<Item = &'a ScheduleState>) -> Result<HashMap<String, BackupStatus>, StoreError> {
    let oldest = states.filter_map(|s| s.active_history_pk.clone()).min();
    let Some(oldest) = oldest else { return Ok(HashMap::new()) };
    let filter = format!("PartitionKey ge {} and triggered_by eq 'scheduler'", literal(&oldest));
    Ok(store::query_all::<BackupResult>(&ctx.account, tables::HISTORY, &filter).await?.into_iter().map(|(r, _)| (r.id, r.status)).collect())
}

async fn evaluate(
    ctx: &Ctx,
    db: &Database,
    policy: Option<&BackupPolicy>,
    state: Option<(ScheduleState, String)>,
    settled: &HashMap<String, BackupStatus>,
) -> Result<Outcome, StoreError> {
    let a = &ctx.account;
    let Some(policy) = policy else {
        eprintln!("scheduler database={} error=\"policy not found: database skipped\"", db.id);
        return Ok(Outcome::NoPolicy);
    };
    let (mut state, etag) = match state {
        Some((s, e)) => (s, Some(e)),
        None => (ScheduleState::new(&db.id), None),
    };
    let mut changed = false;
    if let Some(job_id) = state.active_job_id.clone() {
        match settled.get(&job_id) {
            // Never a second job while one is queued or running.
            Some(status) if !status.is_final() => return Ok(Outcome::InFlight),
            Some(status) => state.finish(*status == BackupStatus::Completed),
            // The row was deleted (by hand or by retention): the job counts as not done.
            None => state.finish(false),
        }
        changed = true;
    }
    let due = due_tiers(policy, &state.history(), ctx.now);
    if due.is_empty() {
        if changed {
            return match write_state(ctx, &state, etag.as_deref()).await {
                Err(e) if is_race(&e) => Ok(Outcome::Raced),
                other => other.map(|_| Outcome::UpToDate),
            };
        }
        return Ok(Outcome::UpToDate);
    }
    let job = BackupJob::new(&db.id, db.engine_type, TriggeredBy::Scheduler, due, ctx.now);
    state.start(&job);
    // The history row first, so any tick that sees the state naming this job also finds its row;
    // then the state row, which is the lock: only the tick whose conditional write wins queues.
    let row = BackupResult::pending(&job, &db.name, &db.alias, &db.engine_id);
    store::insert_or_init(a, &ctx.container, tables::HISTORY, &job.history_pk, &job.history_rk, &row).await?;
    match write_state(ctx, &state, etag.as_deref()).await {
        Ok(()) => {}
        Err(e) => {
            let _ = store::delete(a, tables::HISTORY, &job.history_pk, &job.history_rk).await;
            return if is_race(&e) { Ok(Outcome::Raced) } else { Err(e) };
        }
    }
    let message = serde_json::to_string(&job).expect("jobs serialize");
    if let Err(e) = store::put_message(a, dilux_domain::JOBS_QUEUE, &message).await {
        // Undo the row: the next tick finds the job gone, counts a failure and retries after RETRY_AFTER.
        let _ = store::delete(a, tables::HISTORY, &job.history_pk, &job.history_rk).await;
        return Err(e);
    }
    Ok(Outcome::Queued)
}

fn is_race(e: &StoreError) -> bool {
    matches!(e.status(), Some(409) | Some(412))
}

async fn write_state(ctx: &Ctx, state: &ScheduleState, etag: Option<&str>) -> Result<(), StoreError> {
    match etag {
        Some(e) => store::replace(&ctx.account, tables::SCHEDULE, STATE_PK, &state.database_id, state, Some(e)).await.map(|_| ()),
        None => store::insert_or_init(&ctx.account, &ctx.container, tables::SCHEDULE, STATE_PK, &state.database_id, state).await,
    }
}
