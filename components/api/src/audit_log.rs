//! Reading the audit trail: filtered, paged newest first, and counted.

use std::collections::BTreeMap;

use chrono::{Datelike, Duration, NaiveDate};
use dilux_domain::audit::AuditLog;
use dilux_store::AuditQuery;
use serde::Serialize;

use crate::error::{ApiError, ApiResult};
use crate::http::{bad_cursor, cursor_param, date_param, next_cursor, number_param, Cx, Reply};
use crate::routes::ROUTES;

/// Actions written by the system rather than through a route.
const SYSTEM_ACTIONS: &[(&str, &str)] = &[
    (dilux_domain::audit::BACKUP_DELETED_RETENTION, "backup"),
    (crate::entra::FIRST_ADMIN, "user"),
    (crate::entra::CLAIMED_REGISTRATION, "user"),
    (crate::entra::SIGNIN, "user"),
];

/// An audit row as answered: `details` (stored as text) is the JSON it is.
#[derive(Serialize, schemars::JsonSchema)]
pub struct AuditEntry {
    pub id: String,
    pub action: String,
    pub resource_type: String,
    pub resource_id: String,
    pub resource_name: String,
    pub user_id: String,
    pub user_email: String,
    pub ip_address: String,
    pub status: String,
    pub details: serde_json::Value,
    pub timestamp: chrono::DateTime<chrono::Utc>,
}

impl From<AuditLog> for AuditEntry {
    fn from(a: AuditLog) -> Self {
        let details = serde_json::from_str(&a.details).unwrap_or(serde_json::Value::String(a.details.clone()));
        AuditEntry {
            id: a.id,
            action: a.action,
            resource_type: a.resource_type,
            resource_id: a.resource_id,
            resource_name: a.resource_name,
            user_id: a.user_id,
            user_email: a.user_email,
            ip_address: a.ip_address,
            status: a.status,
            details,
            timestamp: a.timestamp,
        }
    }
}

#[derive(Serialize, schemars::JsonSchema)]
pub struct AuditPage {
    pub logs: Vec<AuditEntry>,
    pub count: usize,
    pub next_cursor: Option<String>,
}

fn known() -> impl Iterator<Item = (&'static str, &'static str)> {
    ROUTES.iter().filter_map(|r| r.audit).map(|a| (a.action, a.resource_type)).chain(SYSTEM_ACTIONS.iter().copied())
}

fn sorted(mut v: Vec<&str>) -> Vec<&str> {
    v.sort();
    v.dedup();
    v
}

pub async fn actions(_: &Cx<'_>) -> ApiResult<Reply> {
    Ok(Reply::json(&serde_json::json!({ "actions": sorted(known().map(|(a, _)| a).collect()) })))
}

pub async fn resource_types(_: &Cx<'_>) -> ApiResult<Reply> {
    Ok(Reply::json(&serde_json::json!({ "resource_types": sorted(known().map(|(_, t)| t).collect()) })))
}

fn first_of_month(d: NaiveDate) -> NaiveDate {
    d.with_day(1).expect("day 1 exists")
}

fn previous_month(d: NaiveDate) -> NaiveDate {
    first_of_month(first_of_month(d) - Duration::days(1))
}

/// `GET /api/audit`: newest first; month partitions are read newest first until the page is full.
pub async fn list(cx: &Cx<'_>) -> ApiResult<Reply> {
    let q = cx.query;
    let page_size = crate::backups::page_size(q)?;
    let to = date_param(q, "to")?.unwrap_or(cx.now.date_naive());
    // At most ten years are searched (one query per month); `from` after `to` finds nothing.
    let from = date_param(q, "from")?.unwrap_or(to - Duration::days(89)).max(to - Duration::days(3660));
    let status = crate::http::typed(cx.query, "status");
    if status.is_some_and(|s| s != "success" && s != "failed") {
        return Err(ApiError::field("status", "must be success or failed"));
    }
    let own = |name: &str| cx.param(name).map(str::to_string);
    let filter = AuditQuery {
        action: own("action"),
        resource_type: own("resource_type"),
        resource_id: own("resource_id"),
        user_id: own("user_id"),
        status: status.map(str::to_string),
        ..Default::default()
    };
    let cursor = cursor_param(q)?;
    let mut month = match &cursor {
        Some((pk, _)) => {
            NaiveDate::parse_from_str(&format!("{pk}01"), "%Y%m%d").map_err(|_| bad_cursor())?.min(first_of_month(to))
        }
        None => first_of_month(to),
    };
    let midnight = |d: NaiveDate| d.and_hms_opt(0, 0, 0).expect("midnight").and_utc();
    let (start, end) = (midnight(from), midnight(to + Duration::days(1)));
    let mut items: Vec<(String, String, AuditLog)> = Vec::new();
    while month >= first_of_month(from) && items.len() <= page_size {
        let pk = month.format("%Y%m").to_string();
        let one_month = AuditQuery { from_month: Some(pk.clone()), to_month: Some(pk), ..filter.clone() };
        let mut rows: Vec<(String, String, AuditLog)> = cx
            .app
            .stores
            .audit
            .query(&one_month)
            .await?
            .into_iter()
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
    let logs: Vec<AuditEntry> = items.into_iter().map(|(_, _, a)| a.into()).collect();
    Ok(Reply::json(&AuditPage { count: logs.len(), logs, next_cursor }))
}

/// `GET /api/audit/stats?days=30`: rows counted by action, resource type and status.
pub async fn stats(cx: &Cx<'_>) -> ApiResult<Reply> {
    let days = number_param(cx.query, "days", 1..=366, 30)?;
    let since = cx.now - Duration::days(days);
    let q = AuditQuery { from_month: Some(since.format("%Y%m").to_string()), ..Default::default() };
    let rows = cx.app.stores.audit.query(&q).await?;
    let mut by = [BTreeMap::<String, u64>::new(), BTreeMap::new(), BTreeMap::new()];
    let mut total = 0;
    for a in rows.into_iter().filter(|a| a.timestamp >= since) {
        total += 1;
        for (map, key) in by.iter_mut().zip([a.action, a.resource_type, a.status]) {
            *map.entry(key).or_default() += 1;
        }
    }
    let [by_action, by_type, by_status] = by;
    Ok(Reply::json(&serde_json::json!({
        "days": days, "total": total, "by_action": by_action, "by_resource_type": by_type, "by_status": by_status,
    })))
}
