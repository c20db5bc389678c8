//! `GET /api/system-status`: is storage reachable, how deep is the job queue, is the dumper-host
//! there, did the ticks run, and which databases are missing backups.

use chrono::{DateTime, Duration, Utc};
use dilux_domain::drill::{drill_alert, DrillState};
use dilux_domain::policy::{effective_policy_id, overdue};
use dilux_domain::schedule::{ScheduleState, TickRecord};
use dilux_domain::BackupStatus;
use dilux_store::HistoryQuery;
use serde_json::json;

use crate::error::ApiResult;
use crate::http::{Cx, Reply};
use crate::App;

/// How far back a suspect newest backup is looked for.
const SUSPECT_ALERT_DAYS: i64 = 14;
/// The scheduler ticks every minute; this long without one is an outage.
const SCHEDULER_STALE_MINUTES: i64 = 5;

pub async fn system_status(cx: &Cx<'_>) -> ApiResult<Reply> {
    Ok(Reply::json(&report(cx.app, cx.now).await?))
}

/// The status page's document: also what the notify tick reads its incidents from.
pub async fn report(app: &App, now: DateTime<Utc>) -> ApiResult<serde_json::Value> {
    let stores = &app.stores;
    let queue_depth = stores.jobs.depth().await?;
    let dbs = stores.databases.list().await?;
    let engines = stores.engines.list().await?;
    let states: Vec<ScheduleState> = stores.schedule.list().await?.into_iter().map(|(s, _)| s).collect();
    let policies = crate::policies::all(app).await?;
    let drill_states: Vec<DrillState> = stores.drills.list().await?.into_iter().map(|(s, _)| s).collect();
    let mut alerts = Vec::new();
    let mut drills = Vec::new();
    // The recent completed backups: a database whose newest one is suspect is alerted.
    let recent = HistoryQuery {
        from: Some((now - Duration::days(SUSPECT_ALERT_DAYS)).date_naive()),
        statuses: vec![BackupStatus::Completed],
        ..Default::default()
    };
    let recent = stores.history.query(&recent).await?;
    for (db, _) in dbs.iter().filter(|(d, _)| d.enabled) {
        let engine = engines.iter().map(|(e, _)| e).find(|e| e.id == db.engine_id);
        let Some(policy) = policies.get(&effective_policy_id(db, engine)) else { continue };
        let drill = drill_states.iter().find(|s| s.database_id == db.id);
        if policy.verification.enabled() {
            drills.push(json!({
                "database_id": db.id,
                "database_alias": db.alias,
                "every_days": policy.verification.every_days,
                "after_each_backup": policy.verification.after_each_backup,
                "running": drill.is_some_and(|d| d.active_restore_id.is_some()),
                "last_result": drill.and_then(|d| d.last_result),
                "last_finished_at": drill.and_then(|d| d.last_finished_at),
                "last_summary": drill.and_then(|d| d.last_summary.clone()),
                "last_verified_restore": drill.and_then(|d| d.last_success_at),
                "rto_seconds": drill.and_then(|d| d.last_success_rto_seconds),
            }));
        }
        if let Some(why) = drill_alert(&policy.verification, drill, now) {
            alerts.push(json!({
                "kind": "restore_drill",
                "severity": "error",
                "database_id": db.id,
                "database_alias": db.alias,
                "message": format!("{}: {why}", db.alias),
            }));
        }
        // Until an admin confirms them, every recent suspect backup keeps the alert up (the newest one named).
        let suspect =
            recent.iter().filter(|r| r.database_id == db.id && r.suspect.is_some()).max_by_key(|r| r.created_at);
        if let Some((b, why)) = suspect.and_then(|b| b.suspect.as_ref().map(|w| (b, w))) {
            alerts.push(json!({
                "kind": "suspect_backup",
                "severity": "warning",
                "database_id": db.id,
                "database_alias": db.alias,
                "backup_id": b.id,
                "message": format!(
                    "{}: its backup of {} is suspect: {why}",
                    db.alias,
                    b.created_at.format("%Y-%m-%d %H:%M UTC")
                ),
            }));
        }
        let state = states.iter().find(|s| s.database_id == db.id);
        let last = state.and_then(ScheduleState::last_success);
        if let Some(late) = overdue(policy, last, db.created_at, now) {
            let failures = state.map(|s| s.consecutive_failures).unwrap_or(0);
            let hours = late.num_minutes() as f64 / 60.0;
            let every = policy.most_frequent_interval().map(|d| d.num_hours()).unwrap_or(0);
            let failed = if failures > 0 {
                format!("; the last {failures} attempt(s) failed: see its backup history")
            } else {
                String::new()
            };
            alerts.push(json!({
                "kind": "missed_backups",
                "severity": "error",
                "database_id": db.id,
                "database_alias": db.alias,
                "policy_id": policy.id,
                "last_success": last,
                "hours_since": hours,
                "consecutive_failures": failures,
                "message": format!(
                    "{} has had no successful backup for {hours:.1} hours (policy {} expects one every {every} \
                     hours){failed}",
                    db.alias, policy.id
                ),
            }));
        }
    }
    let failing: Vec<serde_json::Value> = states
        .iter()
        .filter(|s| s.consecutive_failures > 0)
        .filter_map(|s| {
            dbs.iter().map(|(d, _)| d).find(|d| d.id == s.database_id).map(|d| {
                let failures = s.consecutive_failures;
                json!({ "database_id": d.id, "database_alias": d.alias, "consecutive_failures": failures })
            })
        })
        .collect();
    // When the timer-driven ticks last ran: a stopped scheduler means no backups at all.
    let ticks: Vec<TickRecord> = stores.ticks.list().await?.into_iter().map(|(t, _)| t).collect();
    let tick = |name: &str| ticks.iter().find(|t| t.name == name);
    let scheduler = tick("scheduler");
    match scheduler {
        Some(t) if now - t.at > Duration::minutes(SCHEDULER_STALE_MINUTES) => alerts.push(json!({
            "kind": "scheduler_stopped", "severity": "error",
            "message": format!(
                "the scheduler last ran {} minutes ago; check the dumper-host (or the CronJob) that calls \
                 /internal/ticks/scheduler",
                (now - t.at).num_minutes()
            ),
        })),
        Some(t) if !t.ok => alerts.push(json!({
            "kind": "scheduler_failing", "severity": "error",
            "message": format!("the last scheduler run failed: {}", t.detail),
        })),
        None if !dbs.is_empty() => alerts.push(json!({
            "kind": "scheduler_never_ran", "severity": "warning",
            "message": "the scheduler has not run yet; scheduled backups start once it does",
        })),
        _ => {}
    }
    let dumper = match stores.dumper.health().await {
        Ok(mut v) => {
            v["reachable"] = true.into();
            v
        }
        Err(e) => json!({ "reachable": false, "message": e.to_string() }),
    };
    if dumper["reachable"] != true {
        alerts.push(json!({ "kind": "dumper_unreachable", "severity": "error", "message": dumper["message"] }));
    }
    // Whether a deleted or overwritten backup can be brought back. Credentials that may not read the account's
    // settings leave it unknown, not the status page broken.
    let protection = match stores.files.protection().await {
        Ok(p) => {
            if !p.any() {
                alerts.push(json!({
                    "kind": "backups_unprotected", "severity": "warning",
                    "message": "blob soft delete is off and the backups container is not immutable: a backup deleted \
                                or overwritten (by mistake, or by ransomware with the storage key) cannot be \
                                recovered; turn soft delete on here, and versioning and container soft delete on the \
                                storage account",
                }));
            }
            let mut view = serde_json::to_value(&p).expect("protection serializes");
            view["known"] = true.into();
            view
        }
        Err(e) => json!({ "known": false, "message": e.to_string() }),
    };
    let tick_view = |t: Option<&TickRecord>| t.map(|t| json!({ "at": t.at, "ok": t.ok, "detail": t.detail }));
    let degraded = alerts.iter().any(|a| a["severity"] == "error");
    Ok(json!({
        "status": if degraded { "degraded" } else { "healthy" },
        "storage": { "reachable": true, "protection": protection },
        "queue": { "name": dilux_domain::JOBS_QUEUE, "depth": queue_depth },
        "dumper_host": dumper,
        "scheduler": { "last_tick": tick_view(scheduler) },
        "retention": { "last_tick": tick_view(tick("retention")) },
        "drills": { "last_tick": tick_view(tick("drills")), "databases": drills },
        "databases": dbs.len(),
        // Changes refused for want of a sign-in, counted (not audited one by one).
        "unauthenticated_requests_24h": stores.audit.unauthenticated_since(now - Duration::hours(24)).await?,
        "failing_databases": failing,
        "alerts": alerts,
    }))
}

/// `POST /api/system-status/soft-delete`: how long deleted or overwritten backups stay recoverable.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SoftDelete {
    /// Days, 1 to 365.
    #[schemars(range(min = 1, max = 365))]
    pub days: u32,
}

/// `POST /api/system-status/soft-delete`: turns blob soft delete on for the storage account (the identity must
/// be allowed to change the Blob service's properties); answers the protection read back.
pub async fn enable_soft_delete(cx: &Cx<'_>) -> ApiResult<Reply> {
    let input: SoftDelete = cx.body()?;
    if !(1..=365).contains(&input.days) {
        return Err(crate::error::ApiError::field("days", "must be between 1 and 365"));
    }
    let files = &cx.app.stores.files;
    files.enable_soft_delete(input.days).await?;
    let p = files.protection().await?;
    Ok(Reply::json(&p).about("", &format!("soft delete {} days", input.days)))
}
