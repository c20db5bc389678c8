//! `GET /api/system-status`: is storage reachable, how deep is the job queue, and which databases
//! are missing backups.

use chrono::Utc;
use dilux_azure::queue;
use dilux_azure_spin as store;
use dilux_domain::policy::overdue;
use dilux_domain::schedule::ScheduleState;
use dilux_domain::tables;

use crate::http::{json, ApiResult};
use crate::Ctx;

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
    Ok(json(200, &serde_json::json!({
        "status": if alerts.is_empty() { "healthy" } else { "degraded" },
        "storage": { "reachable": true },
        "queue": { "name": dilux_domain::JOBS_QUEUE, "depth": queue_depth },
        "databases": dbs.len(),
        "alerts": alerts,
    })))
}
