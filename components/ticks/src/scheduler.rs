//! The scheduler tick: for every enabled database, settle its in-flight scheduled job, evaluate its
//! effective policy, and queue one job carrying every due tier.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use dilux_azure::table::{self, literal, BatchOp};
use dilux_azure_spin::{self as store, log, StoreError};
use dilux_domain::entity::to_entity;
use dilux_domain::policy::{due_tiers, BackupPolicy};
use dilux_domain::schedule::ScheduleState;
use dilux_domain::{tables, BackupJob, BackupResult, BackupStatus, Database, Engine, TriggeredBy};
use futures::future::join_all;

use crate::{Ctx, COMPONENT};

const STATE_PK: &str = "state";
/// How far back in-flight jobs are looked for.
const SCAN_DAYS: i64 = 14;
/// Jobs enqueued concurrently.
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

/// What one database needs this tick, decided without I/O.
#[allow(clippy::large_enum_variant)] // one at a time, moved straight into a list: boxing buys nothing
enum Plan {
    InFlight,
    UpToDate,
    NoPolicy,
    /// Only the state changed (a finished job was folded in).
    Save {
        state: ScheduleState,
        etag: Option<String>,
    },
    /// Queue `job`: write its pending row, take the state lock, then enqueue.
    Queue {
        state: ScheduleState,
        etag: Option<String>,
        job: BackupJob,
        row: BackupResult,
    },
}

pub async fn tick(ctx: &Ctx) -> Result<serde_json::Value, StoreError> {
    let a = &ctx.account;
    let state_filter = format!("PartitionKey eq {}", literal(STATE_PK));
    let (dbs, engines, policies, states) = futures::join!(
        store::all_databases(a),
        store::all_engines(a),
        store::policies(a),
        store::query_all::<ScheduleState>(a, tables::SCHEDULE, &state_filter),
    );
    let engines: HashMap<String, Engine> = engines?.into_iter().map(|e| (e.id.clone(), e)).collect();
    let policies = policies?;
    let mut states: HashMap<String, (ScheduleState, String)> =
        states?.into_iter().map(|(s, e)| (s.database_id.clone(), (s, e))).collect();
    let all_dbs = dbs?;
    let known: std::collections::HashSet<String> = all_dbs.iter().map(|d| d.id.clone()).collect();
    let dbs: Vec<Database> = all_dbs.into_iter().filter(|d| d.enabled).collect();
    // Only enabled databases' jobs are settled: a disabled or deleted one must not hold the scan's start.
    let enabled: std::collections::HashSet<&str> = dbs.iter().map(|d| d.id.as_str()).collect();
    let active = states.values().map(|(s, _)| s).filter(|s| enabled.contains(s.database_id.as_str()));
    let settled = in_flight_statuses(ctx, active).await?;

    let mut counts = Counts::default();
    let mut saves = Vec::new();
    let mut queues = Vec::new();
    for db in &dbs {
        let policy = policies.get(&dilux_domain::policy::effective_policy_id(db, engines.get(&db.engine_id)));
        match plan(db, policy, states.remove(&db.id), &settled, ctx.now) {
            Plan::InFlight => counts.in_flight += 1,
            Plan::UpToDate => counts.up_to_date += 1,
            Plan::NoPolicy => {
                log::event(COMPONENT, "policy_not_found", &[("database", &db.id), ("outcome", &"skipped")]);
                counts.no_policy += 1
            }
            Plan::Save { state, etag } => saves.push((state, etag)),
            Plan::Queue { state, etag, job, row } => queues.push((state, etag, job, row)),
        }
    }

    // States of deleted databases go; disabled ones keep theirs for when they are enabled again.
    for (id, (_, etag)) in states.iter().filter(|(id, _)| !known.contains(*id)) {
        if let Err(e) = store::delete_if(&ctx.account, tables::SCHEDULE, STATE_PK, id, etag).await {
            log::event(COMPONENT, "stale_state_kept", &[("database", id), ("error", &e)]);
        }
    }
    // 1. Pending history rows, so any tick that sees a state naming a job also finds its row.
    let rows: Vec<(String, String, table::Entity)> = queues
        .iter()
        .map(|(_, _, job, row)| {
            (job.history_pk.clone(), job.history_rk.clone(), to_entity(&job.history_pk, &job.history_rk, row))
        })
        .collect();
    let inserted = write_grouped(
        ctx,
        tables::HISTORY,
        rows.iter().map(|(pk, _, e)| (pk.clone(), BatchOp::Insert(e.clone()))).collect(),
    )
    .await;
    let mut locked = Vec::new();
    let mut state_ops = Vec::new();
    for (i, ok) in inserted.into_iter().enumerate() {
        if ok.is_err() {
            counts.errors += 1;
            continue;
        }
        let (state, etag, job, _) = &queues[i];
        state_ops.push((STATE_PK.to_string(), state_op(state, etag.as_deref())));
        locked.push(job.clone());
    }
    // 2. State rows: the lock. A lost conditional write means another tick owns that database.
    let n_saves = saves.len();
    for (state, etag) in &saves {
        state_ops.push((STATE_PK.to_string(), state_op(state, etag.as_deref())));
    }
    let written = write_grouped(ctx, tables::SCHEDULE, state_ops).await;
    let (queue_results, save_results) = written.split_at(written.len() - n_saves);
    for r in save_results {
        match r {
            Ok(()) => counts.up_to_date += 1,
            Err(e) if is_race(e) => counts.raced += 1,
            Err(_) => counts.errors += 1,
        }
    }
    let mut to_send = Vec::new();
    for (job, r) in locked.into_iter().zip(queue_results) {
        match r {
            Ok(()) => to_send.push(job),
            Err(e) => {
                let _ = store::delete(&ctx.account, tables::HISTORY, &job.history_pk, &job.history_rk).await;
                if is_race(e) {
                    counts.raced += 1
                } else {
                    counts.errors += 1
                }
            }
        }
    }
    // 3. The jobs.
    for chunk in to_send.chunks(PARALLEL) {
        let sends = chunk.iter().map(|job| async move {
            let message = serde_json::to_string(job).expect("jobs serialize");
            let r = store::put_message(&ctx.account, dilux_domain::JOBS_QUEUE, &message).await;
            if r.is_err() {
                // Undo the row: the next tick finds the job gone, counts a failure and retries after RETRY_AFTER.
                // Unless a worker took the message whose answer was lost: that backup runs.
                let (pk, rk) = (&job.history_pk, &job.history_rk);
                let waiting = |r: &BackupResult| r.status == BackupStatus::Pending;
                if !store::withdraw(&ctx.account, tables::HISTORY, pk, rk, waiting).await.unwrap_or(true) {
                    return Ok(String::new());
                }
            }
            r
        });
        for r in join_all(sends).await {
            match r {
                Ok(_) => counts.queued += 1,
                Err(e) => {
                    log::event(COMPONENT, "enqueue_failed", &[("error", &e)]);
                    counts.errors += 1
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
async fn in_flight_statuses<'a>(
    ctx: &Ctx,
    states: impl Iterator<Item = &'a ScheduleState>,
) -> Result<HashMap<String, BackupStatus>, StoreError> {
    let oldest = states.filter_map(|s| s.active_history_pk.clone()).min();
    let Some(oldest) = oldest else { return Ok(HashMap::new()) };
    // Bounded: a job queued longer ago than this is long dead (the sweeper fails it after two days); it
    // is not found, so it counts as not done and the database gets its next backup.
    let bound = (ctx.now - chrono::Duration::days(SCAN_DAYS)).format("%Y-%m-%d").to_string();
    let oldest = oldest.max(bound);
    let filter = format!("PartitionKey ge {} and triggered_by eq 'scheduler'", literal(&oldest));
    Ok(store::query_all::<BackupResult>(&ctx.account, tables::HISTORY, &filter)
        .await?
        .into_iter()
        .map(|(r, _)| (r.id, r.status))
        .collect())
}

/// One database's decision for this tick (pure).
fn plan(
    db: &Database,
    policy: Option<&BackupPolicy>,
    state: Option<(ScheduleState, String)>,
    settled: &HashMap<String, BackupStatus>,
    now: DateTime<Utc>,
) -> Plan {
    let Some(policy) = policy else { return Plan::NoPolicy };
    let (mut state, etag) = match state {
        Some((s, e)) => (s, Some(e)),
        None => (ScheduleState::new(&db.id), None),
    };
    let mut changed = false;
    if let Some(job_id) = state.active_job_id.clone() {
        match settled.get(&job_id) {
            // Never a second job while one is queued or running.
            Some(status) if !status.is_final() => return Plan::InFlight,
            Some(status) => state.finish(*status == BackupStatus::Completed),
            // The row was deleted (by hand or by retention): the job counts as not done.
            None => state.finish(false),
        }
        changed = true;
    }
    let due = due_tiers(policy, &state.history(), now);
    if due.is_empty() {
        return if changed { Plan::Save { state, etag } } else { Plan::UpToDate };
    }
    let job = BackupJob::new(&db.id, db.engine_type, TriggeredBy::Scheduler, due, now).stored_as(
        policy.compression,
        policy.encryption.as_ref(),
        policy.postgresql_format,
    );
    state.start(&job);
    let row = BackupResult::pending(&job, &db.name, &db.alias, &db.engine_id);
    Plan::Queue { state, etag, job, row }
}

fn is_race(e: &StoreError) -> bool {
    matches!(e.status(), Some(409) | Some(412))
}

fn state_op(state: &ScheduleState, etag: Option<&str>) -> BatchOp {
    let e = to_entity(STATE_PK, &state.database_id, state);
    match etag {
        Some(t) => BatchOp::Update(e, Some(t.to_string())),
        None => BatchOp::Insert(e),
    }
}

/// Applies `ops` (partition key, operation) in entity-group batches of up to 100 per partition. A
/// batch fails as a whole, so a failed one is replayed one operation at a time to learn which failed.
/// Answers one result per operation, in order.
async fn write_grouped(ctx: &Ctx, tbl: &str, ops: Vec<(String, BatchOp)>) -> Vec<Result<(), StoreError>> {
    let mut results: Vec<Option<Result<(), StoreError>>> = (0..ops.len()).map(|_| None).collect();
    let mut by_pk: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, (pk, _)) in ops.iter().enumerate() {
        by_pk.entry(pk.as_str()).or_default().push(i);
    }
    for idx in by_pk.values() {
        for chunk in idx.chunks(table::MAX_BATCH) {
            let batch: Vec<BatchOp> = chunk.iter().map(|i| ops[*i].1.clone()).collect();
            let (mut outcome, mut unsure) = run_batch(ctx, tbl, &batch).await;
            if matches!(&outcome, Err(e) if e.status() == Some(404)) {
                // A fresh account has no tables yet.
                if store::ensure_app_storage(&ctx.account, &ctx.container).await.is_ok() {
                    let (again, was_unsure) = run_batch(ctx, tbl, &batch).await;
                    (outcome, unsure) = (again, unsure || was_unsure);
                }
            }
            match outcome {
                Ok(()) => chunk.iter().for_each(|i| results[*i] = Some(Ok(()))),
                Err(_) => {
                    for i in chunk {
                        results[*i] = Some(single(ctx, tbl, &ops[*i].1, unsure).await);
                    }
                }
            }
        }
    }
    results.into_iter().map(|r| r.expect("every operation was applied")).collect()
}

/// One batch, and whether an attempt of it may have been applied with its answer lost. Repeating a
/// batch applies nothing twice (its inserts and conditional updates are refused the second time), but
/// then the refusals are checked one by one.
async fn run_batch(ctx: &Ctx, tbl: &str, ops: &[BatchOp]) -> (Result<(), StoreError>, bool) {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let req = match table::batch(&ctx.account, Utc::now(), tbl, ops, &id) {
        Ok(r) => r,
        Err(e) => return (Err(e.into()), false),
    };
    match store::send_with(dilux_azure::retry::RetryPolicy::DEFAULT.start("batch"), req).await {
        Ok((r, unsure)) => (table::parse_batch(r).map_err(StoreError::from), unsure),
        Err(e) => (Err(e), true),
    }
}

/// One operation of a failed batch. `unsure`: the batch may have been applied, so an insert or a
/// conditional update refused because the row is already what it writes succeeded.
async fn single(ctx: &Ctx, tbl: &str, op: &BatchOp, unsure: bool) -> Result<(), StoreError> {
    let a = &ctx.account;
    match op {
        BatchOp::Insert(e) => store::insert_entity(a, tbl, e, unsure).await,
        BatchOp::Update(e, etag) => store::update_entity(a, tbl, e, etag.as_deref(), unsure).await.map(|_| ()),
        BatchOp::Delete { pk, rk } => {
            let req = table::delete_entity(a, Utc::now(), tbl, pk, rk, None);
            table::parse_write(store::send("write", req).await?, "write")?;
            Ok(())
        }
    }
}
