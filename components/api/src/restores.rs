//! Restores: a completed backup into a new database on a server of the same engine, run as a job by
//! the dumper-host workers (`restore-jobs`), with a history a user can follow.

use dilux_domain::drill::DrillState;
use dilux_domain::format::{parse_tables, DumpFormat};
use dilux_domain::manifest::{manifest_blob, Manifest};
use dilux_domain::restore::{
    restored_name, RestoreJob, RestoreMode, RestorePurpose, RestoreRequest, RestoreResult, Verification,
};
use dilux_domain::user::Role;
use dilux_domain::{BackupStatus, Database, EngineType};
use dilux_store::HistoryQuery;
use serde::Serialize;

use crate::error::{ApiError, ApiResult, Kind};
use crate::http::{enum_param, number_param, Cx, Reply};

#[derive(Serialize, schemars::JsonSchema)]
pub struct Requested {
    pub restore_id: String,
    pub status: BackupStatus,
    pub target_engine_id: String,
    pub target_database: String,
    pub message: String,
}

#[derive(Serialize, schemars::JsonSchema)]
pub struct RestoreList {
    pub restores: Vec<RestoreResult>,
    pub count: usize,
}

/// `POST /api/backups/restore`: checks everything that can be checked before anything is written,
/// records a pending restore, then queues its job.
pub async fn request(cx: &Cx<'_>) -> ApiResult<Reply> {
    let (app, who) = (cx.app, cx.who()?);
    let input: RestoreRequest = cx.body()?;
    input.validate()?;
    crate::backups::check_blob_name(&input.blob_name)?;
    let backup = crate::backups::row_of_blob(app, &input.blob_name)
        .await?
        .ok_or_else(|| ApiError::unknown("blob_name", format!("no backup `{}` is in the history", input.blob_name)))?;
    if backup.status != BackupStatus::Completed {
        return Err(ApiError::field("blob_name", "only a completed backup can be restored"));
    }
    let engine_id = input.target_engine_id.clone().unwrap_or_else(|| backup.engine_id.clone());
    let (engine, _) = app
        .stores
        .engines
        .get(&engine_id)
        .await?
        .ok_or_else(|| ApiError::unknown("target_engine_id", format!("no server `{engine_id}` exists")))?;
    if engine.engine_type != backup.database_type {
        return Err(ApiError::field(
            "target_engine_id",
            format!(
                "server `{}` runs {}, but the backup is of {}",
                engine.name,
                engine.engine_type.as_str(),
                backup.database_type.as_str()
            ),
        ));
    }
    if !engine.has_credentials() {
        return Err(ApiError::new(
            Kind::NoCredentials,
            format!("server `{}` has no username/password to restore with; add them first", engine.name),
        ));
    }
    let replace = input.mode == RestoreMode::Replace;
    if replace {
        if who.role != Role::Admin {
            return Err(ApiError::new(Kind::Forbidden, "replacing a database needs an admin; restore into a new one"));
        }
        if engine.engine_type == EngineType::Sqlserver {
            return Err(ApiError::field("mode", "replace is available for PostgreSQL and MariaDB/MySQL"));
        }
    }
    let tables = match &input.tables {
        None => vec![],
        Some(names) => {
            if replace {
                return Err(ApiError::field(
                    "tables",
                    "a restore of chosen tables goes into a new database: use mode `new`",
                ));
            }
            if DumpFormat::of_name(&backup.blob_name) != DumpFormat::Custom {
                return Err(ApiError::new(
                    Kind::NotSelective,
                    "tables: only PostgreSQL backups in the custom format restore table by table; this one is SQL \
                     (set the policy's postgresql_format to `custom` for the next ones), so restore it whole",
                ));
            }
            parse_tables(names)?.iter().map(ToString::to_string).collect()
        }
    };
    let target = input.target_database.clone().unwrap_or_else(|| {
        if replace {
            backup.database_name.clone()
        } else {
            restored_name(&backup.database_name, cx.now)
        }
    });
    if replace && input.confirm.as_deref() != Some(target.as_str()) {
        return Err(ApiError::field("confirm", format!("must be `{target}`, the database this restore overwrites")));
    }
    let registered: Vec<Database> = crate::engines::databases_of(app, &engine.id).await?;
    if !replace && registered.iter().any(|d| d.name == target) {
        return Err(ApiError::new(
            Kind::Duplicate,
            format!("`{target}` is a registered database on `{}`; a restore never overwrites one", engine.name),
        ));
    }
    let all = app.stores.restores.list().await?;
    if let Some((r, _)) =
        all.iter().find(|(r, _)| !r.status.is_final() && r.target_engine_id == engine.id && r.target_database == target)
    {
        return Err(ApiError::new(
            Kind::RestoreInProgress,
            format!("a restore into `{target}` is already {} (id {}); wait for it", r.status.as_str(), r.id),
        ));
    }
    let mut row =
        RestoreResult::queued(&backup, &engine, &target, input.mode, RestorePurpose::Restore, &who.email, cx.now);
    row.tables = tables;
    app.stores.restores.insert(&row.id, &row).await?;
    let message = serde_json::to_string(&RestoreJob::new(&row.id)).expect("jobs serialize");
    if let Err(e) = app.stores.restore_jobs.put(&message).await {
        // Nothing half-written: a pending restore without a job would wait forever. One a worker already
        // took (its answer was lost, the message arrived) runs, and keeps its row.
        let waiting = |r: &RestoreResult| r.status == BackupStatus::Pending;
        if !app.stores.restores.withdraw(&row.id, &waiting).await.unwrap_or(true) {
            crate::log::event("restore_queued_despite_lost_answer", &[("restore", &row.id)]);
        } else {
            return Err(ApiError::not_queued("restore", e));
        }
    }
    let answer = Requested {
        restore_id: row.id.clone(),
        status: BackupStatus::Pending,
        target_engine_id: engine.id.clone(),
        target_database: target.clone(),
        message: if replace {
            format!("restore queued to replace `{target}` on `{}` (the original is kept, renamed)", engine.name)
        } else if !row.tables.is_empty() {
            format!("restore of {} tables queued into `{target}` on `{}`", row.tables.len(), engine.name)
        } else {
            format!("restore queued into `{target}` on `{}`", engine.name)
        },
    };
    Ok(Reply::json(&answer).about(&backup.id, &backup.blob_name))
}

/// `GET /api/restores[?database_id=&status=]`: newest first.
pub async fn list(cx: &Cx<'_>) -> ApiResult<Reply> {
    let status: Option<BackupStatus> = enum_param(cx.query, "status", "pending, in_progress, completed, failed")?;
    let limit = crate::backups::page_size(cx.query)?;
    let days = number_param(cx.query, "days", 1..=3660, 90)?;
    let since = cx.now - chrono::Duration::days(days);
    let source = cx.param("database_id");
    let mut rows: Vec<RestoreResult> = cx
        .app
        .stores
        .restores
        .list()
        .await?
        .into_iter()
        .map(|(r, _)| r)
        .filter(|r| r.created_at >= since)
        .filter(|r| status.is_none_or(|s| r.status == s))
        .filter(|r| source.is_none_or(|d| r.source_database_id == d))
        .collect();
    rows.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
    rows.truncate(limit);
    Ok(Reply::json(&RestoreList { count: rows.len(), restores: rows }))
}

pub async fn get(cx: &Cx<'_>) -> ApiResult<Reply> {
    let (r, _) = cx.app.stores.restores.get(cx.id()).await?.ok_or_else(|| ApiError::not_found("restore", cx.id()))?;
    Ok(Reply::json(&r))
}

/// `GET /api/backups/{id}/verification`: what the backup holds (its manifest) and what every restore
/// and drill of it showed, newest first.
#[derive(Serialize, schemars::JsonSchema)]
pub struct BackupVerification {
    pub backup_id: String,
    pub blob_name: String,
    pub database_id: String,
    pub database_alias: String,
    /// Per table, exact rows and digest, tallied while the backup streamed; none for a backup made
    /// before manifests existed, or an encrypted one.
    pub manifest: Option<Manifest>,
    /// The backup and its manifest are encrypted: only the dumper-host reads the manifest (a restore or
    /// drill compares with it); `latest` says what the last one found.
    pub manifest_encrypted: bool,
    pub latest: Option<Verification>,
    pub history: Vec<Verification>,
    /// The database's restore drills.
    pub drills: Option<DrillState>,
}

pub async fn verification(cx: &Cx<'_>) -> ApiResult<Reply> {
    let stores = &cx.app.stores;
    let q = HistoryQuery { id: Some(cx.id().to_string()), ..Default::default() };
    let backup =
        stores.history.query(&q).await?.into_iter().next().ok_or_else(|| ApiError::not_found("backup", cx.id()))?;
    let sidecar = manifest_blob(&backup.blob_name);
    let stored = stores.files.read_small(&sidecar).await?;
    let manifest_encrypted = stored.as_deref().is_some_and(dilux_domain::encryption::is_encrypted);
    let manifest = match stored.filter(|_| !manifest_encrypted) {
        Some(bytes) => Some(serde_json::from_slice::<Manifest>(&bytes).map_err(|e| {
            dilux_store::StoreError::Corrupt { table: "backups".into(), key: sidecar.clone(), detail: e.to_string() }
        })?),
        None => None,
    };
    let mut runs: Vec<RestoreResult> =
        stores.restores.list().await?.into_iter().map(|(r, _)| r).filter(|r| r.backup_id == backup.id).collect();
    runs.sort_by_key(|r| std::cmp::Reverse(r.created_at));
    let history: Vec<Verification> = runs.into_iter().filter_map(|r| r.verification).collect();
    let drills = stores.drills.get(&backup.database_id).await?.map(|(d, _)| d);
    let answer = BackupVerification {
        backup_id: backup.id.clone(),
        blob_name: backup.blob_name.clone(),
        database_id: backup.database_id.clone(),
        database_alias: backup.database_alias.clone(),
        manifest,
        manifest_encrypted,
        latest: history.first().cloned().or(backup.last_verification.clone()),
        history,
        drills,
    };
    Ok(Reply::json(&answer))
}
