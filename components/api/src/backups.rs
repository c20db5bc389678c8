//! Manual backups, history and downloads.

use chrono::{Duration, NaiveDate, Utc};
use dilux_azure::table::literal;
use dilux_azure::{blob, BlobSas, SasPermissions};
use dilux_azure_spin as store;
use dilux_domain::{tables, BackupJob, BackupResult, BackupStatus, TriggeredBy};

use crate::catalog::{database_with_engine, insert_record};
use crate::http::{bad_cursor, cursor_param, date_param, engine_type_param, enum_param, json, next_cursor, param, ApiError, ApiResult};
use crate::Ctx;

/// `POST /api/databases/{id}/backup`: records a pending history row, then queues the job.
pub async fn trigger(ctx: &Ctx, id: &str) -> ApiResult {
    let (db, engine) = database_with_engine(ctx, id).await?;
    // One backup of a database at a time: a second would race the first for the same blob name.
    let since = (Utc::now() - Duration::days(1)).format("%Y-%m-%d").to_string();
    let filter = format!(
        "PartitionKey ge {} and database_id eq {} and (status eq 'pending' or status eq 'in_progress')",
        literal(&since),
        literal(&db.id)
    );
    if let Some((running, _)) = store::query_all::<BackupResult>(&ctx.account, tables::HISTORY, &filter).await?.into_iter().next() {
        return Err(ApiError::new(409, "backup_in_progress", format!(
            "a backup of this database is already {} (id {}); wait for it to finish",
            if running.status == BackupStatus::Pending { "queued" } else { "running" }, running.id)));
    }
    let job = BackupJob::new(&db.id, db.engine_type, TriggeredBy::Manual, vec![], Utc::now());
    let row = BackupResult::pending(&job, &db.name, &db.alias, &engine.id);
    insert_record(ctx, tables::HISTORY, &job.history_pk, &job.history_rk, &row).await?;
    let message = serde_json::to_string(&job).expect("jobs serialize");
    if let Err(e) = store::put_message(&ctx.account, dilux_domain::JOBS_QUEUE, &message).await {
        // Nothing half-written: a pending row without a job would wait forever.
        let _ = store::delete(&ctx.account, tables::HISTORY, &job.history_pk, &job.history_rk).await;
        return Err(e.into());
    }
    Ok(json(202, &serde_json::json!({
        "job_id": job.id,
        "backup_id": job.id,
        "database_id": db.id,
        "status": BackupStatus::Pending,
        "blob_name": job.blob_name,
        "message": "backup queued",
    })))
}

const DEFAULT_PAGE: usize = 50;
const MAX_PAGE: usize = 200;
/// How far back the history list looks by default, and at most.
const DEFAULT_DAYS: i64 = 90;
const MAX_DAYS: i64 = 3660;
/// Days fetched per Table query (one query per window of date partitions).
const WINDOW_DAYS: i64 = 31;

/// `page_size`, 1 to [`MAX_PAGE`] (default [`DEFAULT_PAGE`]).
pub fn page_size(q: &[(String, String)]) -> Result<usize, ApiError> {
    match param(q, "page_size") {
        None => Ok(DEFAULT_PAGE),
        Some(s) => s.parse::<usize>().ok().filter(|n| (1..=MAX_PAGE).contains(n)).ok_or_else(|| ApiError::field("page_size", format!("must be a number from 1 to {MAX_PAGE}"))),
    }
}

/// `GET /api/backups`: newest first, filtered (one or several databases, status, trigger, engine type,
/// date range), paged by `cursor`.
pub async fn list(ctx: &Ctx, q: &[(String, String)]) -> ApiResult {
    let page_size = page_size(q)?;
    let days = match param(q, "days") {
        None => DEFAULT_DAYS,
        Some(s) => s.parse::<i64>().ok().filter(|n| (1..=MAX_DAYS).contains(n)).ok_or_else(|| ApiError::field("days", format!("must be a number from 1 to {MAX_DAYS}")))?,
    };
    let status: Option<BackupStatus> = enum_param(q, "status", "pending, in_progress, completed, failed, cancelled")?;
    let triggered_by: Option<TriggeredBy> = enum_param(q, "triggered_by", "manual, scheduler")?;
    let engine_type = engine_type_param(q)?;
    // Rows strictly after the cursor (in newest-first order) come next.
    let cursor = cursor_param(q)?;
    let mut extra = String::new();
    if let Some(ids) = param(q, "database_id").filter(|s| !s.is_empty()) {
        let ids: Vec<&str> = ids.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
        if ids.len() > 50 {
            return Err(ApiError::field("database_id", "at most 50 databases at once"));
        }
        let any: Vec<String> = ids.iter().map(|d| format!("database_id eq {}", literal(d))).collect();
        extra.push_str(&format!(" and ({})", any.join(" or ")));
    }
    for (field, value) in [
        ("status", status.map(|s| serde_json::to_value(s).expect("enums serialize"))),
        ("triggered_by", triggered_by.map(|t| serde_json::to_value(t).expect("enums serialize"))),
        ("database_type", engine_type.map(|t| serde_json::Value::String(t.as_str().into()))),
    ] {
        if let Some(v) = value.as_ref().and_then(|v| v.as_str()) {
            extra.push_str(&format!(" and {field} eq {}", literal(v)));
        }
    }

    let today = Utc::now().date_naive();
    let to = date_param(q, "to")?.unwrap_or(today);
    let oldest = match date_param(q, "from")? {
        Some(f) if f > to => return Err(ApiError::field("from", "must not be after `to`")),
        Some(f) if (to - f).num_days() >= MAX_DAYS => return Err(ApiError::field("from", format!("the range may span at most {MAX_DAYS} days"))),
        Some(f) => f,
        None => to - Duration::days(days - 1),
    };
    let mut end = match &cursor {
        Some((pk, _)) => NaiveDate::parse_from_str(pk, "%Y-%m-%d").map_err(|_| bad_cursor())?,
        None => to,
    };
    let mut items: Vec<(String, String, BackupResult)> = Vec::new();
    while end >= oldest && items.len() <= page_size {
        let start = (end - Duration::days(WINDOW_DAYS - 1)).max(oldest);
        let filter = format!(
            "PartitionKey ge {} and PartitionKey le {}{extra}",
            literal(&start.format("%Y-%m-%d").to_string()),
            literal(&end.format("%Y-%m-%d").to_string())
        );
        let mut window: Vec<(String, String, BackupResult)> = store::query_all::<BackupResult>(&ctx.account, tables::HISTORY, &filter)
            .await?
            .into_iter()
            .map(|(r, _)| {
                let (pk, rk) = dilux_domain::backup::history_keys(r.created_at, &r.id);
                (pk, rk, r)
            })
            .collect();
        // Newest date first; within a date the inverted-ticks RowKey already sorts newest first.
        window.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        for item in window {
            let after_cursor = match &cursor {
                None => true,
                Some((cp, cr)) => item.0 < *cp || (item.0 == *cp && item.1 > *cr),
            };
            if after_cursor {
                items.push(item);
            }
        }
        end = start - Duration::days(1);
    }
    let has_more = items.len() > page_size;
    items.truncate(page_size);
    let next_cursor = if has_more { items.last().map(|(p, r, _)| next_cursor(p, r)) } else { None };
    let backups: Vec<&BackupResult> = items.iter().map(|(_, _, r)| r).collect();
    Ok(json(200, &serde_json::json!({ "backups": backups, "count": backups.len(), "next_cursor": next_cursor })))
}

/// `GET /api/backups/files`: the files in the backups container (by `prefix` or one database),
/// paged by `marker`.
pub async fn files(ctx: &Ctx, q: &[(String, String)]) -> ApiResult {
    let page_size = page_size(q)?;
    let prefix = match (param(q, "prefix").filter(|s| !s.is_empty()), param(q, "database_id").filter(|s| !s.is_empty())) {
        (Some(_), Some(_)) => return Err(ApiError::field("prefix", "give either prefix or database_id, not both")),
        (Some(p), None) => p.to_string(),
        (None, Some(id)) => {
            let (db, _) = crate::catalog::database_with_engine(ctx, id).await?;
            format!("{}/{}/", db.engine_type.as_str(), db.id)
        }
        (None, None) => String::new(),
    };
    let marker = param(q, "marker").filter(|m| !m.is_empty());
    let resp = store::send("list blobs", blob::list_blobs(&ctx.account, Utc::now(), &ctx.container, &prefix, marker, Some(page_size as u32))).await?;
    let (items, next_marker) = if resp.status == 404 {
        (vec![], None)
    } else {
        let page = blob::parse_list_blobs(resp).map_err(store::StoreError::from)?;
        (page.items, page.next_marker)
    };
    let files: Vec<serde_json::Value> = items
        .iter()
        .map(|i| serde_json::json!({ "name": i.name, "size_bytes": i.size, "last_modified": i.last_modified }))
        .collect();
    Ok(json(200, &serde_json::json!({ "files": files, "count": files.len(), "next_marker": next_marker })))
}

/// Download links live this long.
const SAS_MINUTES: i64 = 15;

/// `GET /api/backups/download?blob_name=…`: a short-lived read-only URL for one backup file.
pub async fn download(ctx: &Ctx, q: &[(String, String)]) -> ApiResult {
    let name = param(q, "blob_name").filter(|n| !n.is_empty()).ok_or_else(|| ApiError::field("blob_name", "is required"))?;
    check_blob_name(name)?;
    let props = store::send("get blob properties", blob::get_properties(&ctx.account, Utc::now(), &ctx.container, name)).await?;
    if props.status == 404 {
        return Err(ApiError::not_found("backup file", name));
    }
    let props = blob::parse_properties(props).map_err(store::StoreError::from)?;
    let sas = BlobSas::new(&ctx.account, &ctx.container, name, SasPermissions::Read, Utc::now(), Duration::minutes(SAS_MINUTES))
        .map_err(|e| ApiError::new(501, "sas_unavailable", format!("download links need an account key: {e}")))?;
    let sha256 = props.metadata.iter().find(|(k, _)| k == "sha256").map(|(_, v)| v.clone());
    Ok(json(200, &serde_json::json!({
        "url": sas.url,
        "expires_at": sas.expires_at,
        "blob_name": name,
        "size_bytes": props.content_length,
        "sha256": sha256,
    })))
}

/// `GET /api/retention/preview[?database_id=…]`: what a retention pass would delete now, and why each
/// backup it keeps stays. Changes nothing.
pub async fn retention_preview(ctx: &Ctx, q: &[(String, String)]) -> ApiResult {
    let only = param(q, "database_id").filter(|s| !s.is_empty());
    let a = &ctx.account;
    let dbs = store::all_databases(a).await?;
    if let Some(id) = only {
        if !dbs.iter().any(|d| d.id == id) {
            return Err(ApiError::not_found("database", id));
        }
    }
    let engines = store::all_engines(a).await?;
    let policies = store::policies(a).await?;
    let history = store::history_by_database(a, only).await?;
    let mut out = Vec::new();
    for db in dbs.iter().filter(|d| only.is_none_or(|id| d.id == id)) {
        let engine = engines.iter().find(|e| e.id == db.engine_id);
        let policy_id = store::effective_policy_id(db, engine);
        let rows = history.get(&db.id).map(Vec::as_slice).unwrap_or(&[]);
        let Some(policy) = policies.get(&policy_id) else {
            out.push(serde_json::json!({ "database_id": db.id, "policy_id": policy_id, "error": "policy not found: nothing would be deleted" }));
            continue;
        };
        let plan = store::retention_plan(policy, rows);
        let describe = |d: &dilux_domain::retention::Decision| {
            let r = rows.iter().find(|r| r.id == d.id);
            serde_json::json!({ "id": d.id, "reason": d.reason, "created_at": r.map(|r| r.created_at), "blob_name": r.map(|r| r.blob_name.clone()), "tiers": r.map(|r| r.tiers.clone()) })
        };
        out.push(serde_json::json!({
            "database_id": db.id,
            "database_alias": db.alias,
            "policy_id": policy.id,
            "policy_summary": policy.summary(),
            "delete": plan.delete.iter().map(describe).collect::<Vec<_>>(),
            "keep": plan.keep.iter().map(describe).collect::<Vec<_>>(),
        }));
    }
    Ok(json(200, &serde_json::json!({ "databases": out })))
}

/// Finds the history row of a blob: its date partition is in the name (`…/YYYYMMDD_HHMMSS_….ext`).
async fn row_of_blob(ctx: &Ctx, name: &str) -> Result<Option<BackupResult>, ApiError> {
    let stamp = name.rsplit('/').next().and_then(|f| f.get(..8)).unwrap_or("");
    let Ok(day) = NaiveDate::parse_from_str(stamp, "%Y%m%d") else { return Ok(None) };
    let filter = format!("PartitionKey eq {} and blob_name eq {}", literal(&day.format("%Y-%m-%d").to_string()), literal(name));
    Ok(store::query_all::<BackupResult>(&ctx.account, tables::HISTORY, &filter).await?.into_iter().next().map(|(r, _)| r))
}

fn check_blob_name(name: &str) -> Result<(), ApiError> {
    let parts: Vec<&str> = name.split('/').collect();
    let valid = parts.len() == 3
        && ["mysql", "postgresql", "sqlserver"].contains(&parts[0])
        && parts.iter().all(|p| !p.is_empty() && *p != "." && *p != "..");
    if valid {
        Ok(())
    } else {
        Err(ApiError::field("blob_name", "must look like {engine_type}/{database_id}/{YYYYMMDD_HHMMSS}_{id}.{ext}"))
    }
}

/// Deletes one backup: its file, then its history row. Queued or running backups are refused.
async fn delete_one(ctx: &Ctx, name: &str) -> Result<(), ApiError> {
    check_blob_name(name)?;
    let row = row_of_blob(ctx, name).await?;
    if let Some(r) = &row {
        if !r.status.is_final() {
            return Err(ApiError::new(409, "backup_running", format!("{name} is still {}; wait for it to finish", serde_json::to_value(r.status).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default())));
        }
    }
    let resp = store::send("delete blob", blob::delete_blob(&ctx.account, Utc::now(), &ctx.container, name)).await?;
    let blob_existed = resp.status != 404;
    blob::parse_delete_blob(resp).map_err(store::StoreError::from)?;
    match row {
        Some(r) => {
            let (pk, rk) = dilux_domain::backup::history_keys(r.created_at, &r.id);
            store::delete(&ctx.account, tables::HISTORY, &pk, &rk).await?;
            Ok(())
        }
        None if blob_existed => Ok(()),
        None => Err(ApiError::not_found("backup", name)),
    }
}

/// A database's history, refused (409) while one of its backups is queued or running: deleting them
/// must not race a dump still writing.
pub async fn settled_history_of(ctx: &Ctx, db: &dilux_domain::Database) -> Result<Vec<BackupResult>, ApiError> {
    let rows = store::history_by_database(&ctx.account, Some(&db.id)).await?.remove(&db.id).unwrap_or_default();
    if let Some(r) = rows.iter().find(|r| !r.status.is_final()) {
        return Err(ApiError::new(409, "backup_running", format!("a backup of `{}` is still running ({}); wait for it to finish", db.alias, r.id)));
    }
    Ok(rows)
}

/// Deletes every backup of a database — `rows`, from [`settled_history_of`]: each row's file, then the
/// row, then files left without a row.
pub async fn delete_all_of(ctx: &Ctx, db: &dilux_domain::Database, rows: &[BackupResult]) -> Result<usize, ApiError> {
    let mut deleted = 0;
    for r in rows {
        let resp = store::send("delete blob", blob::delete_blob(&ctx.account, Utc::now(), &ctx.container, &r.blob_name)).await?;
        blob::parse_delete_blob(resp).map_err(store::StoreError::from)?;
        let (pk, rk) = dilux_domain::backup::history_keys(r.created_at, &r.id);
        store::delete(&ctx.account, tables::HISTORY, &pk, &rk).await?;
        deleted += 1;
    }
    let prefix = format!("{}/{}/", db.engine_type.as_str(), db.id);
    let mut marker: Option<String> = None;
    loop {
        let resp = store::send("list blobs", blob::list_blobs(&ctx.account, Utc::now(), &ctx.container, &prefix, marker.as_deref(), None)).await?;
        if resp.status == 404 {
            break;
        }
        let page = blob::parse_list_blobs(resp).map_err(store::StoreError::from)?;
        for item in &page.items {
            let resp = store::send("delete blob", blob::delete_blob(&ctx.account, Utc::now(), &ctx.container, &item.name)).await?;
            blob::parse_delete_blob(resp).map_err(store::StoreError::from)?;
        }
        match page.next_marker {
            Some(m) => marker = Some(m),
            None => break,
        }
    }
    Ok(deleted)
}

/// `DELETE /api/backups/delete?blob_name=…`
pub async fn delete(ctx: &Ctx, q: &[(String, String)]) -> ApiResult {
    let name = param(q, "blob_name").filter(|n| !n.is_empty()).ok_or_else(|| ApiError::field("blob_name", "is required"))?;
    delete_one(ctx, name).await?;
    Ok(json(200, &serde_json::json!({ "deleted": name })))
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkDelete {
    /// 1 to 100 backup file names.
    blob_names: Vec<String>,
}

/// `POST /api/backups/delete-bulk {"blob_names": […]}`: each one independently; says which failed and why.
pub async fn delete_bulk(ctx: &Ctx, body: &[u8]) -> ApiResult {
    let input: BulkDelete = crate::http::parse(body)?;
    if input.blob_names.is_empty() || input.blob_names.len() > 100 {
        return Err(ApiError::field("blob_names", "must list 1 to 100 backups"));
    }
    let (mut deleted, mut failed) = (Vec::new(), Vec::new());
    for name in &input.blob_names {
        match delete_one(ctx, name).await {
            Ok(()) => deleted.push(name.clone()),
            Err(e) => failed.push(serde_json::json!({ "blob_name": name, "status": e.status, "error": e.message })),
        }
    }
    Ok(json(200, &serde_json::json!({ "deleted": deleted, "failed": failed })))
}

/// `GET /api/backups/stats?database_id=…`: counts by status, stored bytes, newest success.
pub async fn stats(ctx: &Ctx, q: &[(String, String)]) -> ApiResult {
    let id = param(q, "database_id").filter(|s| !s.is_empty()).ok_or_else(|| ApiError::field("database_id", "is required"))?;
    let rows = store::history_by_database(&ctx.account, Some(id)).await?.remove(id).unwrap_or_default();
    let count = |s: BackupStatus| rows.iter().filter(|r| r.status == s).count();
    let completed: Vec<&BackupResult> = rows.iter().filter(|r| r.status == BackupStatus::Completed).collect();
    Ok(json(200, &serde_json::json!({
        "database_id": id,
        "total": rows.len(),
        "completed": count(BackupStatus::Completed),
        "failed": count(BackupStatus::Failed),
        "in_flight": count(BackupStatus::Pending) + count(BackupStatus::InProgress),
        "total_size_bytes": completed.iter().filter_map(|r| r.file_size_bytes).sum::<i64>(),
        "last_success": completed.iter().map(|r| r.created_at).max(),
    })))
}
