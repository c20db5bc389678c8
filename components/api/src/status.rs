//! `GET /api/system-status`: is storage reachable, how deep is the job queue, and which databases
//! are missing backups.

use chrono::{Duration, Utc};
use dilux_azure::queue;
use dilux_azure_spin as store;
use dilux_domain::policy::overdue;
use dilux_domain::schedule::{ScheduleState, TickRecord, TICK_PK};
use dilux_domain::tables;

use crate::http::{json, ApiResult};
use crate::Ctx;

/// The scheduler ticks every minute; this long without one is an outage.
const SCHEDULER_STALE_MINUTES: i64 = 5;

pub async fn system_status(ctx: &Ctx) -> ApiResult {
    let a = &ctx.account;
    let now = Utc::now();
    let depth = store::send("get queue metadata", queue::get_metadata(a, now, dilux_domain::JOBS_QUEUE)).await?;
    let queue_depth = if depth.status == 404 { 0 } else { queue::parse_approximate_count(depth).map_err(store::StoreError::from)? };
    let dbs = store::all_databases(a).await?;
    let engines = store::all_engines(a).await?;
    let states = store::query_all::<ScheduleState>(a, tables::SCHEDULE, "PartitionKey eq 'state'").await?;
    let policies = store::policies(a).await?;
    let mut alerts = Vec::new();
    for db in dbs.iter().filter(|d| d.enabled) {
        let engine = engines.iter().find(|e| e.id == db.engine_id);
        let Some(policy) = policies.get(&store::effective_policy_id(db, engine)) else { continue };
        let state = states.iter().map(|(s, _)| s).find(|s| s.database_id == db.id);
        let last = state.and_then(ScheduleState::last_success);
        if let Some(late) = overdue(policy, last, db.created_at, now) {
            let failures = state.map(|s| s.consecutive_failures).unwrap_or(0);
            alerts.push(serde_json::json!({
                "kind": "missed_backups",
                "severity": "error",
                "database_id": db.id,
                "database_alias": db.alias,
                "policy_id": policy.id,
                "last_success": last,
                "hours_since": late.num_minutes() as f64 / 60.0,
                "consecutive_failures": failures,
                "message": format!(
                    "{} has had no successful backup for {:.1} hours (policy {} expects one every {} hours){}",
                    db.alias,
                    late.num_minutes() as f64 / 60.0,
                    policy.id,
                    policy.most_frequent_interval().map(|d| d.num_hours()).unwrap_or(0),
                    if failures > 0 { format!("; the last {failures} attempt(s) failed: see its backup history") } else { String::new() }
                ),
            }));
        }
    }
    let failing: Vec<serde_json::Value> = states
        .iter()
        .map(|(s, _)| s)
        .filter(|s| s.consecutive_failures > 0)
        .filter_map(|s| dbs.iter().find(|d| d.id == s.database_id).map(|d| serde_json::json!({ "database_id": d.id, "database_alias": d.alias, "consecutive_failures": s.consecutive_failures })))
        .collect();
    // When the timer-driven ticks last ran: a stopped scheduler means no backups at all.
    let ticks = store::query_all::<TickRecord>(a, tables::SCHEDULE, &format!("PartitionKey eq '{TICK_PK}'")).await?;
    let tick = |name: &str| ticks.iter().map(|(t, _)| t).find(|t| t.name == name);
    let scheduler = tick("scheduler");
    match scheduler {
        Some(t) if now - t.at > Duration::minutes(SCHEDULER_STALE_MINUTES) => alerts.push(serde_json::json!({
            "kind": "scheduler_stopped", "severity": "error",
            "message": format!("the scheduler last ran {} minutes ago; check the dumper-host (or the CronJob) that calls /internal/ticks/scheduler", (now - t.at).num_minutes()),
        })),
        Some(t) if !t.ok => alerts.push(serde_json::json!({ "kind": "scheduler_failing", "severity": "error", "message": format!("the last scheduler run failed: {}", t.detail) })),
        None if !dbs.is_empty() => alerts.push(serde_json::json!({ "kind": "scheduler_never_ran", "severity": "warning", "message": "the scheduler has not run yet; scheduled backups start once it does" })),
        _ => {}
    }
    let dumper = crate::probe::dumper_health().await;
    if dumper["reachable"] != true {
        alerts.push(serde_json::json!({ "kind": "dumper_unreachable", "severity": "error", "message": dumper["message"] }));
    }
    let tick_view = |t: Option<&TickRecord>| t.map(|t| serde_json::json!({ "at": t.at, "ok": t.ok, "detail": t.detail }));
    let degraded = alerts.iter().any(|a| a["severity"] == "error");
    Ok(json(200, &serde_json::json!({
        "status": if degraded { "degraded" } else { "healthy" },
        "storage": { "reachable": true },
        "queue": { "name": dilux_domain::JOBS_QUEUE, "depth": queue_depth },
        "dumper_host": dumper,
        "scheduler": { "last_tick": tick_view(scheduler) },
        "retention": { "last_tick": tick_view(tick("retention")) },
        "databases": dbs.len(),
        "failing_databases": failing,
        "alerts": alerts,
    })))
}
