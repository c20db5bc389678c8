//! Reading the audit trail: filtered, paged newest first, and counted.

use std::collections::BTreeMap;

use chrono::{Datelike, Duration, NaiveDate, Utc};
use dilux_azure::table::literal;
use dilux_azure_spin as store;
use dilux_domain::audit::AuditLog;
use dilux_domain::tables;

use crate::http::{bad_cursor, cursor_param, date_param, json, next_cursor, param, ApiError, ApiResult};
use crate::routes::ROUTES;
use crate::Ctx;

/// Actions written by the system rather than through a route.
const SYSTEM_ACTIONS: &[(&str, &str)] = &[(dilux_domain::audit::BACKUP_DELETED_RETENTION, "backup")];

fn known() -> impl Iterator<Item = (&'static str, &'static str)> {
    ROUTES.iter().filter_map(|r| r.audit).chain(SYSTEM_ACTIONS.iter().copied())
}

pub fn actions() -> ApiResult {
    let mut a: Vec<&str> = known().map(|(a, _)| a).collect();
    a.sort();
    a.dedup();
    Ok(json(200, &serde_json::json!({ "actions": a })))
}

pub fn resource_types() -> ApiResult {
    let mut t: Vec<&str> = known().map(|(_, t)| t).collect();
    t.sort();
    t.dedup();
    Ok(json(200, &serde_json::json!({ "resource_types": t })))
}

fn first_of_month(d: NaiveDate) -> NaiveDate {
    d.with_day(1).expect("day 1 exists")
}

fn previous_month(d: NaiveDate) -> NaiveDate {
    first_of_month(first_of_month(d) - Duration::days(1))
}

/// `GET /api/audit`: newest first; month partitions are read newest first until the page is full.
pub async fn list(ctx: &Ctx, q: &[(String, String)]) -> ApiResult {
    let page_size = crate::backups::page_size(q)?;
    let today = Utc::now().date_naive();
    let to = date_param(q, "to")?.unwrap_or(today);
    let from = date_param(q, "from")?.unwrap_or(to - Duration::days(89));
    if from > to {
        return Err(ApiError::field("from", "must not be after `to`"));
    }
    if (to - from).num_days() > 3660 {
        return Err(ApiError::field("from", "the range may span at most ten years"));
    }
    let status = param(q, "status").filter(|s| !s.is_empty());
    if status.is_some_and(|s| s != "success" && s != "failed") {
        return Err(ApiError::field("status", "must be success or failed"));
    }
    let mut extra = String::new();
    for (field, value) in [("action", param(q, "action")), ("resource_type", param(q, "resource_type")), ("resource_id", param(q, "resource_id")), ("user_id", param(q, "user_id")), ("status", status)] {
        if let Some(v) = value.filter(|v| !v.is_empty()) {
            extra.push_str(&format!(" and {field} eq {}", literal(v)));
        }
    }
    let cursor = cursor_param(q)?;
    let mut month = match &cursor {
        Some((pk, _)) => NaiveDate::parse_from_str(&format!("{pk}01"), "%Y%m%d").map_err(|_| bad_cursor())?,
        None => first_of_month(to),
    };
    let (start, end) = (from.and_hms_opt(0, 0, 0).expect("midnight").and_utc(), (to + Duration::days(1)).and_hms_opt(0, 0, 0).expect("midnight").and_utc());
    let mut items: Vec<(String, String, AuditLog)> = Vec::new();
    while month >= first_of_month(from) && items.len() <= page_size {
        let pk = month.format("%Y%m").to_string();
        let filter = format!("PartitionKey eq {}{extra}", literal(&pk));
        let mut rows: Vec<(String, String, AuditLog)> = store::query_all::<AuditLog>(&ctx.account, tables::AUDIT, &filter)
            .await?
            .into_iter()
            .map(|(a, _)| a)
            .filter(|a| a.timestamp >= start && a.timestamp < end)
            .map(|a| {
                let (p, r) = a.keys();
                (p, r, a)
            })
            .filter(|(p, r, _)| cursor.as_ref().is_none_or(|(cp, cr)| p < cp || (p == cp && r > cr)))
            .collect();
        rows.sort_by(|a, b| a.1.cmp(&b.1));
        items.extend(rows);
        month = previous_month(month);
    }
    let has_more = items.len() > page_size;
    items.truncate(page_size);
    let next_cursor = if has_more { items.last().map(|(p, r, _)| next_cursor(p, r)) } else { None };
    let logs: Vec<serde_json::Value> = items
        .into_iter()
        .map(|(_, _, a)| {
            let mut v = serde_json::to_value(&a).expect("audit rows serialize");
            // Stored as text; answered as the JSON it is.
            v["details"] = serde_json::from_str(&a.details).unwrap_or(serde_json::Value::String(a.details.clone()));
            v
        })
        .collect();
    Ok(json(200, &serde_json::json!({ "logs": logs, "count": logs.len(), "next_cursor": next_cursor })))
}

/// `GET /api/audit/stats?days=30`: rows counted by action, resource type and status.
pub async fn stats(ctx: &Ctx, q: &[(String, String)]) -> ApiResult {
    let days = match param(q, "days") {
        None => 30,
        Some(s) => s.parse::<i64>().ok().filter(|d| (1..=366).contains(d)).ok_or_else(|| ApiError::field("days", "must be a number from 1 to 366"))?,
    };
    let since = Utc::now() - Duration::days(days);
    let filter = format!("PartitionKey ge {}", literal(&since.format("%Y%m").to_string()));
    let rows = store::query_all::<AuditLog>(&ctx.account, tables::AUDIT, &filter).await?;
    let (mut by_action, mut by_type, mut by_status) = (BTreeMap::<String, u64>::new(), BTreeMap::<String, u64>::new(), BTreeMap::<String, u64>::new());
    let mut total = 0;
    for (a, _) in rows.into_iter().filter(|(a, _)| a.timestamp >= since) {
        total += 1;
        *by_action.entry(a.action).or_default() += 1;
        *by_type.entry(a.resource_type).or_default() += 1;
        *by_status.entry(a.status).or_default() += 1;
    }
    Ok(json(200, &serde_json::json!({ "days": days, "total": total, "by_action": by_action, "by_resource_type": by_type, "by_status": by_status })))
}
