//! Manual backups, history, files, downloads and deletes.

use chrono::{Duration, NaiveDate};
use dilux_domain::policy::effective_policy_id;
use dilux_domain::{BackupJob, BackupResult, BackupStatus, Database, TriggeredBy};
use dilux_store::HistoryQuery;
use serde::{Deserialize, Serialize};

use crate::error::{ApiError, ApiResult, Kind};
use crate::http::{bad_cursor, cursor_param, date_param, engine_type_param, enum_param, next_cursor, number_param};
use crate::http::{Cx, Reply};
use crate::App;

#[derive(Serialize, schemars::JsonSchema)]
pub struct Triggered {
    pub job_id: String,
    pub backup_id: String,
    pub database_id: String,
    pub status: BackupStatus,
    pub blob_name: String,
    pub message: String,
}

#[derive(Serialize, schemars::JsonSchema)]
pub struct BackupPage {
    pub backups: Vec<BackupResult>,
    pub count: usize,
    pub next_cursor: Option<String>,
}

#[derive(Serialize, schemars::JsonSchema)]
pub struct FileEntry {
    pub name: String,
    pub size_bytes: u64,
    pub last_modified: String,
}

#[derive(Serialize, schemars::JsonSchema)]
pub struct FileList {
    pub files: Vec<FileEntry>,
    pub count: usize,
    pub next_marker: Option<String>,
}

#[derive(Serialize, schemars::JsonSchema)]
pub struct DownloadLink {
    pub url: String,
    pub expires_at: chrono::DateTime<chrono::Utc>,
    pub blob_name: String,
    pub size_bytes: u64,
    pub sha256: Option<String>,
    /// An age file (`.age`): `age -d -i <identity file>` gives the compressed dump.
    pub encrypted: bool,
}

/// `POST /api/databases/{id}/backup`: records a pending history row, then queues the job.
pub async fn trigger(cx: &Cx<'_>) -> ApiResult<Reply> {
    let app = cx.app;
    let (db, engine) = crate::databases::with_engine(app, cx.id()).await?;
    // One backup of a database at a time: a second would race the first for the same blob name.
    let running = HistoryQuery {
        from: Some((cx.now - Duration::days(1)).date_naive()),
        statuses: vec![BackupStatus::Pending, BackupStatus::InProgress],
        ..HistoryQuery::database(&db.id)
    };
    if let Some(r) = app.stores.history.query(&running).await?.into_iter().next() {
        let state = if r.status == BackupStatus::Pending { "queued" } else { "running" };
        return Err(ApiError::new(
            Kind::BackupInProgress,
            format!("a backup of this database is already {state} (id {}); wait for it to finish", r.id),
        ));
    }
    // Stored as its policy says; a policy gone since (its row deleted) leaves the defaults.
    let (compression, encryption, format) =
        match crate::policies::load(app, &effective_policy_id(&db, Some(&engine))).await {
            Ok((policy, _)) => (policy.compression, policy.encryption, policy.postgresql_format),
            Err(e) if e.kind == Kind::NotFound => Default::default(),
            Err(e) => return Err(e),
        };
    let job = BackupJob::new(&db.id, db.engine_type, TriggeredBy::Manual, vec![], cx.now).stored_as(
        compression,
        encryption.as_ref(),
        format,
    );
    let row = BackupResult::pending(&job, &db.name, &db.alias, &engine.id);
    app.stores.history.insert(&row).await?;
    let message = serde_json::to_string(&job).expect("jobs serialize");
    if let Err(e) = app.stores.jobs.put(&message).await {
        // Nothing half-written: a pending row without a job would wait forever, and a job that reached the
        // queue although its answer was lost finds no row and is dropped. A worker that took it already
        // keeps its row: the backup runs, and saying it will not would be wrong.
        if !app.stores.history.withdraw(&row).await.unwrap_or(true) {
            crate::log::event("backup_queued_despite_lost_answer", &[("backup", &job.id)]);
        } else {
            return Err(ApiError::not_queued("backup", e));
        }
    }
    let answer = Triggered {
        job_id: job.id.clone(),
        backup_id: job.id.clone(),
        database_id: db.id.clone(),
        status: BackupStatus::Pending,
        blob_name: job.blob_name.clone(),
        message: "backup queued".into(),
    };
    Ok(Reply::json(&answer).about(&db.id, &db.alias))
}

const DEFAULT_PAGE: usize = 50;
const MAX_PAGE: usize = 200;
/// How far back the history list looks by default, and at most.
const DEFAULT_DAYS: i64 = 90;
const MAX_DAYS: i64 = 3660;
/// The most days of date partitions one Table query of the list reads.
const WINDOW_DAYS: i64 = 31;

/// `page_size`, 1 to [`MAX_PAGE`] (default [`DEFAULT_PAGE`]).
pub fn page_size(q: &[(String, String)]) -> ApiResult<usize> {
    number_param(q, "page_size", 1..=MAX_PAGE, DEFAULT_PAGE)
}

/// `GET /api/backups`: newest first, filtered (one or several databases, status, trigger, engine type,
/// date range), paged by `cursor`.
pub async fn list(cx: &Cx<'_>) -> ApiResult<Reply> {
    let q = cx.query;
    let page_size = page_size(q)?;
    let days = number_param(q, "days", 1..=MAX_DAYS, DEFAULT_DAYS)?;
    let mut filter = HistoryQuery {
        statuses: enum_param(q, "status", "pending, in_progress, completed, failed, cancelled")?.into_iter().collect(),
        triggered_by: enum_param(q, "triggered_by", "manual, scheduler")?,
        engine_type: engine_type_param(q)?,
        ..Default::default()
    };
    // Rows strictly after the cursor (in newest-first order) come next.
    let cursor = cursor_param(q)?;
    if let Some(ids) = cx.param("database_id") {
        let ids: Vec<String> = ids.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect();
        if ids.len() > 50 {
            return Err(ApiError::field("database_id", "at most 50 databases at once"));
        }
        filter.database_ids = ids;
    }
    let to = date_param(q, "to")?.unwrap_or(cx.now.date_naive());
    // At most MAX_DAYS are searched; `from` after `to` finds nothing.
    let oldest = match date_param(q, "from")? {
        Some(f) => f.max(to - Duration::days(MAX_DAYS - 1)),
        None => to - Duration::days(days - 1),
    };
    let mut end = match &cursor {
        // Never past `to`: a forged cursor must not make the scan longer than the range.
        Some((pk, _)) => NaiveDate::parse_from_str(pk, "%Y-%m-%d").map_err(|_| bad_cursor())?.min(to),
        None => to,
    };
    // Newest day first: one day (its newest rows only, in key order), then windows as wide as the rows
    // found so far say the rest of the page needs, up to WINDOW_DAYS. A busy history fills a page from
    // one query of one day, a filtered or quiet one from a few, never one per day of the range.
    let (mut items, newest): (Vec<(String, String, BackupResult)>, _) = (Vec::new(), end);
    let mut days = 1;
    while end >= oldest && items.len() <= page_size {
        let start = (end - Duration::days(days - 1)).max(oldest);
        let one_day = start == end;
        let cursor_day = cursor.as_ref().filter(|(pk, _)| one_day && *pk == end.format("%Y-%m-%d").to_string());
        let window = HistoryQuery {
            from: Some(start),
            to: Some(end),
            row_after: cursor_day.map(|(_, rk)| rk.clone()),
            limit: one_day.then_some(page_size + 1 - items.len()),
            ..filter.clone()
        };
        let mut rows: Vec<(String, String, BackupResult)> = cx
            .app
            .stores
            .history
            .query(&window)
            .await?
            .into_iter()
            .map(|r| {
                let (pk, rk) = dilux_domain::backup::history_keys(r.created_at, &r.id);
                (pk, rk, r)
            })
            .collect();
        // Newest date first; within a date the inverted-ticks RowKey already sorts newest first.
        rows.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        items.extend(rows.into_iter().filter(|(p, r, _)| match &cursor {
            None => true,
            Some((cp, cr)) => p < cp || (p == cp && r > cr),
        }));
        end = start - Duration::days(1);
        days = next_window(items.len(), page_size + 1, (newest - end).num_days().max(1));
    }
    let has_more = items.len() > page_size;
    items.truncate(page_size);
    let next_cursor = if has_more { items.last().map(|(p, r, _)| next_cursor(p, r)) } else { None };
    let backups: Vec<BackupResult> = items.into_iter().map(|(_, _, r)| r).collect();
    Ok(Reply::json(&BackupPage { count: backups.len(), backups, next_cursor }))
}

/// Days the next list query reads: as many as `have` rows found in `searched` days say the rest of
/// `need` takes, with a margin, from 1 to [`WINDOW_DAYS`] (all of them when nothing was found yet).
fn next_window(have: usize, need: usize, searched: i64) -> i64 {
    if have == 0 {
        return WINDOW_DAYS;
    }
    let per_day = have as f64 / searched as f64;
    let days = (need.saturating_sub(have) as f64 / per_day * 1.25).ceil();
    (days as i64).clamp(1, WINDOW_DAYS)
}

/// `GET /api/backups/files`: the files in the backups container (by `prefix` or one database),
/// paged by `marker`.
pub async fn files(cx: &Cx<'_>) -> ApiResult<Reply> {
    let page_size = page_size(cx.query)?;
    for name in ["prefix", "marker"] {
        if cx.param(name).is_some_and(|p| p.chars().count() > 1024 || p.chars().any(char::is_control)) {
            return Err(ApiError::field(name, "must be at most 1024 characters, none of them control characters"));
        }
    }
    // Both filters: the database's files whose names also start with `prefix`.
    let prefix = match (cx.param("prefix"), cx.param("database_id")) {
        (p, Some(id)) => {
            let (db, _) = crate::databases::with_engine(cx.app, id).await?;
            let own = files_prefix(&db);
            match p {
                None => Some(own),
                Some(p) if p.starts_with(&own) => Some(p.to_string()),
                Some(p) if own.starts_with(p) => Some(own),
                Some(_) => None,
            }
        }
        (p, None) => Some(p.unwrap_or_default().to_string()),
    };
    let Some(prefix) = prefix else {
        return Ok(Reply::json(&FileList { count: 0, files: vec![], next_marker: None }));
    };
    let page = cx.app.stores.files.list(&prefix, cx.param("marker"), Some(page_size as u32)).await?;
    let files: Vec<FileEntry> = page
        .items
        .into_iter()
        .map(|i| FileEntry { name: i.name, size_bytes: i.size, last_modified: i.last_modified })
        .collect();
    Ok(Reply::json(&FileList { count: files.len(), files, next_marker: page.next_marker }))
}

fn files_prefix(db: &Database) -> String {
    format!("{}/{}/", db.engine_type.as_str(), db.id)
}

/// Download links live this long.
const SAS_MINUTES: i64 = 15;

fn blob_name_param<'a>(cx: &'a Cx) -> ApiResult<&'a str> {
    let name = cx.param("blob_name").ok_or_else(|| ApiError::field("blob_name", "is required"))?;
    check_blob_name(name)?;
    Ok(name)
}

/// `GET /api/backups/download?blob_name=…`: a short-lived read-only URL for one backup file.
pub async fn download(cx: &Cx<'_>) -> ApiResult<Reply> {
    let name = blob_name_param(cx)?;
    let files = &cx.app.stores.files;
    let props = files.properties(name).await?.ok_or_else(|| ApiError::not_found("backup file", name))?;
    let link = files.read_link(name, cx.now, Duration::minutes(SAS_MINUTES))?;
    let answer = DownloadLink {
        url: link.url,
        expires_at: link.expires_at,
        blob_name: name.to_string(),
        size_bytes: props.size,
        sha256: props.sha256,
        encrypted: name.ends_with(".age"),
    };
    Ok(Reply::json(&answer).about(name, name))
}

/// `GET /api/retention/preview[?database_id=…]`: what a retention pass would delete now, and why each
/// backup it keeps stays. Changes nothing.
pub async fn retention_preview(cx: &Cx<'_>) -> ApiResult<Reply> {
    let stores = &cx.app.stores;
    let only = cx.param("database_id");
    let dbs: Vec<Database> = stores.databases.list().await?.into_iter().map(|(d, _)| d).collect();
    if let Some(id) = only {
        if !dbs.iter().any(|d| d.id == id) {
            return Err(ApiError::not_found("database", id));
        }
    }
    let engines = stores.engines.list().await?;
    let policies = crate::policies::all(cx.app).await?;
    let history = stores.history.query(&only.map(HistoryQuery::database).unwrap_or_default()).await?;
    let mut out = Vec::new();
    for db in dbs.iter().filter(|d| only.is_none_or(|id| d.id == id)) {
        let engine = engines.iter().map(|(e, _)| e).find(|e| e.id == db.engine_id);
        let policy_id = effective_policy_id(db, engine);
        let rows: Vec<BackupResult> = history.iter().filter(|r| r.database_id == db.id).cloned().collect();
        let Some(policy) = policies.get(&policy_id) else {
            out.push(serde_json::json!({
                "database_id": db.id, "policy_id": policy_id, "error": "policy not found: nothing would be deleted",
            }));
            continue;
        };
        let plan = dilux_domain::retention::plan_history(policy, &rows);
        let describe = |d: &dilux_domain::retention::Decision| {
            let r = rows.iter().find(|r| r.id == d.id);
            serde_json::json!({
                "id": d.id,
                "reason": d.reason,
                "created_at": r.map(|r| r.created_at),
                "blob_name": r.map(|r| r.blob_name.clone()),
                "tiers": r.map(|r| r.tiers.clone()),
            })
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
    Ok(Reply::json(&serde_json::json!({ "databases": out })))
}

/// The history row of a blob: its date partition is in the name (`…/YYYYMMDD_HHMMSS_….ext`).
pub(crate) async fn row_of_blob(app: &App, name: &str) -> ApiResult<Option<BackupResult>> {
    let stamp = name.rsplit('/').next().and_then(|f| f.get(..8)).unwrap_or("");
    let Ok(day) = NaiveDate::parse_from_str(stamp, "%Y%m%d") else { return Ok(None) };
    let q = HistoryQuery { from: Some(day), to: Some(day), blob_name: Some(name.to_string()), ..Default::default() };
    Ok(app.stores.history.query(&q).await?.into_iter().next())
}

pub(crate) fn check_blob_name(name: &str) -> ApiResult<()> {
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

/// Deletes one backup: its file, then its history row. Queued or running backups are refused, and so is a
/// database's newest completed backup unless `force`: it is the one a restore would need.
async fn delete_one(app: &App, name: &str, force: bool) -> ApiResult<()> {
    check_blob_name(name)?;
    let row = row_of_blob(app, name).await?;
    if let Some(r) = row.as_ref().filter(|r| !r.status.is_final()) {
        let msg = format!("{name} is still {}; wait for it to finish", r.status.as_str());
        return Err(ApiError::new(Kind::BackupRunning, msg));
    }
    if let Some(r) = row.as_ref().filter(|r| r.status == BackupStatus::Completed && !force) {
        let completed =
            HistoryQuery { statuses: vec![BackupStatus::Completed], ..HistoryQuery::database(&r.database_id) };
        let rows = app.stores.history.query(&completed).await?;
        // A newer suspect backup is no replacement for this one.
        if !rows.iter().any(|o| o.created_at > r.created_at && o.suspect.is_none()) {
            return Err(ApiError::field(
                "force",
                format!(
                    "{name} is the newest completed backup of `{}`; pass force=true to delete it",
                    r.database_alias
                ),
            ));
        }
    }
    let blob_existed = app.stores.files.delete(name).await?;
    match row {
        Some(r) => Ok(app.stores.history.delete(&r).await?),
        None if blob_existed => Ok(()),
        None => Err(ApiError::not_found("backup", name)),
    }
}

/// A database's history, refused (409) while one of its backups is queued or running: deleting them
/// must not race a dump still writing.
pub async fn settled_history_of(app: &App, db: &Database) -> ApiResult<Vec<BackupResult>> {
    let rows = app.stores.history.query(&HistoryQuery::database(&db.id)).await?;
    if let Some(r) = rows.iter().find(|r| !r.status.is_final()) {
        return Err(ApiError::new(
            Kind::BackupRunning,
            format!("a backup of `{}` is still running ({}); wait for it to finish", db.alias, r.id),
        ));
    }
    Ok(rows)
}

/// Deletes every backup of a database — `rows`, from [`settled_history_of`]: each row's file, then the
/// row, then files left without a row.
pub async fn delete_all_of(app: &App, db: &Database, rows: &[BackupResult]) -> ApiResult<usize> {
    let stores = &app.stores;
    for r in rows {
        stores.files.delete(&r.blob_name).await?;
        stores.history.delete(r).await?;
    }
    let prefix = files_prefix(db);
    let mut marker: Option<String> = None;
    loop {
        let page = stores.files.list(&prefix, marker.as_deref(), None).await?;
        for item in &page.items {
            stores.files.delete(&item.name).await?;
        }
        match page.next_marker {
            Some(m) => marker = Some(m),
            None => break,
        }
    }
    Ok(rows.len())
}

/// `DELETE /api/backups/delete?blob_name=…`
pub async fn delete(cx: &Cx<'_>) -> ApiResult<Reply> {
    let name = cx.param("blob_name").ok_or_else(|| ApiError::field("blob_name", "is required"))?;
    let force = crate::http::bool_param(cx.query, "force")?.unwrap_or(false);
    delete_one(cx.app, name, force).await?;
    Ok(Reply::json(&serde_json::json!({ "deleted": name })).about(name, name))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkDelete {
    /// 1 to 100 backup file names.
    #[schemars(length(min = 1, max = 100), inner(regex(pattern = dilux_domain::schema::BLOB_NAME)))]
    blob_names: Vec<String>,
    /// Also delete a database's newest completed backup when listed.
    #[serde(default)]
    force: bool,
}

/// `POST /api/backups/delete-bulk {"blob_names": […]}`: each one independently; says which failed and why.
pub async fn delete_bulk(cx: &Cx<'_>) -> ApiResult<Reply> {
    let input: BulkDelete = cx.body()?;
    if input.blob_names.is_empty() || input.blob_names.len() > 100 {
        return Err(ApiError::field("blob_names", "must list 1 to 100 backups"));
    }
    // Every name is checked before anything is deleted.
    if let Some(bad) = input.blob_names.iter().find(|n| check_blob_name(n).is_err()) {
        return Err(ApiError::field(
            "blob_names",
            format!("`{bad}` does not look like {{engine_type}}/{{database_id}}/{{YYYYMMDD_HHMMSS}}_{{id}}.{{ext}}"),
        ));
    }
    let (mut deleted, mut failed) = (Vec::new(), Vec::new());
    for name in &input.blob_names {
        match delete_one(cx.app, name, input.force).await {
            Ok(()) => deleted.push(name.clone()),
            Err(e) => failed.push(serde_json::json!({ "blob_name": name, "status": e.status(), "error": e.message })),
        }
    }
    let summary = format!("{} deleted, {} failed", deleted.len(), failed.len());
    Ok(Reply::json(&serde_json::json!({ "deleted": deleted, "failed": failed })).about("", &summary))
}

/// `POST /api/backups/{id}/confirm`: a suspect backup is what its database holds (it was emptied on
/// purpose); it counts toward the keep windows again, which lets retention delete older ones. Only this
/// clears it: a restore of an emptied database's backup matches its (empty) manifest, which proves nothing.
pub async fn confirm(cx: &Cx<'_>) -> ApiResult<Reply> {
    let q = HistoryQuery { id: Some(cx.id().to_string()), ..Default::default() };
    let mut row = cx
        .app
        .stores
        .history
        .query(&q)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::not_found("backup", cx.id()))?;
    if row.suspect.take().is_none() {
        return Err(ApiError::new(Kind::AlreadyResolved, format!("backup {} is not suspect", row.id)));
    }
    cx.app.stores.history.update(&row).await?;
    Ok(Reply::json(&row).about(&row.id, &row.database_alias))
}

/// `GET /api/backups/stats?database_id=…`: counts by status, stored bytes, newest success.
pub async fn stats(cx: &Cx<'_>) -> ApiResult<Reply> {
    let id = cx.param("database_id").ok_or_else(|| ApiError::field("database_id", "is required"))?;
    let stats = cx.app.stores.history.stats(id).await?;
    Ok(Reply::json(&DatabaseStats { database_id: id.to_string(), stats }))
}

/// `GET /api/backups/daily`: backups per UTC day of the last `days` days (today included), every day
/// present, counted from the rows themselves (only the fields counted are read), so the figures are exact
/// however many backups a day holds.
pub async fn daily(cx: &Cx<'_>) -> ApiResult<Reply> {
    let days: i64 = number_param(cx.query, "days", 1..=MAX_DAILY_DAYS, 14)?;
    let to = cx.now.date_naive();
    let from = to - Duration::days(days - 1);
    let q = HistoryQuery { from: Some(from), to: Some(to), ..Default::default() };
    let rows = cx.app.stores.history.fields(&q).await?;
    Ok(Reply::json(&dilux_domain::backup::Daily::count(from, to, &rows)))
}

/// The most days `GET /api/backups/daily` counts at once.
const MAX_DAILY_DAYS: i64 = 90;

#[derive(Serialize, schemars::JsonSchema)]
pub struct DatabaseStats {
    pub database_id: String,
    #[serde(flatten)]
    pub stats: dilux_domain::backup::HistoryStats,
}
