//! Databases: each on a registered server, with its own credentials or the server's, and a policy.

use dilux_domain::engine::{CreateDatabase, UpdateDatabase};
use dilux_domain::policy::effective_policy_id;
use dilux_domain::user::Permission;
use dilux_domain::{Database, DatabaseView, Engine};
use serde::Serialize;

use crate::error::{changed_meanwhile, ApiError, ApiResult, Kind};
use crate::http::{bool_param, engine_type_param, Cx, Reply};
use crate::App;

#[derive(Serialize, schemars::JsonSchema)]
pub struct DatabaseList {
    pub databases: Vec<DatabaseView>,
    pub total: usize,
    pub page: usize,
    pub page_size: usize,
    pub pages: usize,
}

pub async fn load(app: &App, id: &str) -> ApiResult<(Database, String)> {
    app.stores.databases.get(id).await?.ok_or_else(|| ApiError::not_found("database", id))
}

/// A database and its server; a database whose server is gone is a conflict the user must resolve.
pub async fn with_engine(app: &App, id: &str) -> ApiResult<(Database, Engine)> {
    let (d, _) = load(app, id).await?;
    let (e, _) = app.stores.engines.get(&d.engine_id).await?.ok_or_else(|| {
        ApiError::new(
            Kind::Orphaned,
            format!("database `{id}` refers to server `{}`, which no longer exists", d.engine_id),
        )
    })?;
    Ok((d, e))
}

/// The policy a new database gets: the one asked for, else its server's, else the settings' default.
pub async fn policy_for_new(app: &App, asked: Option<String>, engine: &Engine) -> ApiResult<String> {
    match asked.or_else(|| engine.policy_id.clone()) {
        Some(p) => Ok(p),
        None => Ok(crate::settings::load(app).await?.default_policy_id),
    }
}

/// `GET /api/databases`: filtered by text, engine type, server, effective policy and enabled; paged.
pub async fn list(cx: &Cx<'_>) -> ApiResult<Reply> {
    let q = cx.query;
    let search = cx.param("search").map(|s| s.trim().to_lowercase()).filter(|s| !s.is_empty());
    let engine_type = engine_type_param(q)?;
    let engine_id = cx.param("engine_id");
    let policy_id = cx.param("policy_id");
    let enabled = bool_param(q, "enabled")?;
    let page = match crate::http::typed(cx.query, "page") {
        None => 1,
        Some(s) => s
            .parse::<u32>()
            .ok()
            .filter(|p| *p >= 1)
            .ok_or_else(|| ApiError::field("page", format!("must be a number from 1 to {}", u32::MAX)))?,
    };
    let page_size = crate::backups::page_size(q)?;
    let engines: Vec<Engine> = cx.app.stores.engines.list().await?.into_iter().map(|(e, _)| e).collect();
    let dbs = cx.app.stores.databases.list().await?;
    let engine_of = |d: &Database| engines.iter().find(|e| e.id == d.engine_id);
    let mut views: Vec<DatabaseView> = dbs
        .iter()
        .map(|(d, _)| d)
        .filter(|d| engine_type.is_none_or(|t| d.engine_type == t))
        .filter(|d| engine_id.is_none_or(|id| d.engine_id == id))
        .filter(|d| enabled.is_none_or(|e| d.enabled == e))
        .filter(|d| policy_id.is_none_or(|p| effective_policy_id(d, engine_of(d)) == p))
        .map(|d| DatabaseView::for_role(d, engine_of(d), cx.role()))
        .filter(|v| {
            search.as_ref().is_none_or(|s| {
                [Some(&v.alias), Some(&v.name), v.engine_name.as_ref(), v.host.as_ref()]
                    .into_iter()
                    .flatten()
                    .any(|f| f.to_lowercase().contains(s.as_str()))
            })
        })
        .collect();
    views.sort_by_key(|v| v.alias.to_lowercase());
    let total = views.len();
    // Saturating: a huge page is past the end (empty), never a wrapped-around page on 32-bit Wasm.
    let skip = (page as usize - 1).saturating_mul(page_size);
    let databases: Vec<DatabaseView> = views.into_iter().skip(skip).take(page_size).collect();
    let page = page as usize;
    Ok(Reply::json(&DatabaseList { databases, total, page, page_size, pages: total.div_ceil(page_size) }))
}

pub async fn create(cx: &Cx<'_>) -> ApiResult<Reply> {
    let app = cx.app;
    let input: CreateDatabase = cx.body()?;
    input.validate()?;
    crate::policies::check_exists(app, input.policy_id.as_deref()).await?;
    let (engine, _) = app
        .stores
        .engines
        .get(&input.engine_id)
        .await?
        .ok_or_else(|| ApiError::unknown("engine_id", format!("no engine `{}` exists", input.engine_id)))?;
    if input.use_engine_credentials && !engine.has_credentials() {
        return Err(ApiError::field(
            "use_engine_credentials",
            format!(
                "server `{}` has no username/password; {}",
                engine.name, "give this database its own credentials or add them to the server"
            ),
        ));
    }
    let existing = crate::engines::databases_of(app, &engine.id).await?;
    if existing.iter().any(|d| d.name == input.name) {
        return Err(ApiError::new(
            Kind::Duplicate,
            format!("database `{}` on server `{}` is already registered", input.name, engine.name),
        ));
    }
    let id = uuid::Uuid::new_v4().to_string();
    let db = Database {
        password_sealed: input.password.as_deref().map(|p| app.sealer.seal(p, &id)),
        id,
        engine_id: engine.id.clone(),
        engine_type: engine.engine_type,
        name: input.name.clone(),
        alias: input.alias.clone().unwrap_or_else(|| input.name.clone()),
        use_engine_credentials: input.use_engine_credentials,
        auth_method: input.auth_method,
        username: input.username.clone(),
        policy_id: Some(policy_for_new(app, input.policy_id.clone(), &engine).await?),
        enabled: input.enabled,
        created_at: cx.now,
        updated_at: cx.now,
    };
    app.stores.databases.insert(&db.id, &db).await?;
    Ok(Reply::json(&DatabaseView::for_role(&db, Some(&engine), cx.role())).about(&db.id, &db.alias))
}

pub async fn get(cx: &Cx<'_>) -> ApiResult<Reply> {
    let (d, etag) = load(cx.app, cx.id()).await?;
    let engine = cx.app.stores.engines.get(&d.engine_id).await?.map(|(e, _)| e);
    Ok(Reply::json(&DatabaseView::for_role(&d, engine.as_ref(), cx.role())).etag(Some(etag)))
}

pub async fn update(cx: &Cx<'_>) -> ApiResult<Reply> {
    let (app, id) = (cx.app, cx.id());
    let input: UpdateDatabase = cx.body()?;
    input.validate()?;
    crate::policies::check_exists(app, input.policy_id.as_deref()).await?;
    let (mut d, etag) = load(app, id).await?;
    cx.check_if_match(&etag, "the database")?;
    let engine = app.stores.engines.get(&d.engine_id).await?.map(|(e, _)| e);
    if let Some(to) = &input.policy_id {
        let from = effective_policy_id(&d, engine.as_ref());
        crate::policies::check_keeps_as_much(cx, &from, to).await?;
    }
    let sealed = input.password.as_deref().map(|p| app.sealer.seal(p, id));
    // The input was checked alone; what fails now fails against what is stored (no own password yet).
    input.apply(&mut d, sealed, cx.now).map_err(|e| {
        ApiError::new(crate::error::Kind::NoCredentials, format!("{}: {}", e.field, e.message)).on_field(&e.field)
    })?;
    if d.use_engine_credentials && !engine.as_ref().is_some_and(Engine::has_credentials) {
        return Err(ApiError::field("use_engine_credentials", "the server has no username/password to inherit"));
    }
    let new_etag =
        app.stores.databases.replace(id, &d, Some(&etag)).await.map_err(changed_meanwhile("the database"))?;
    Ok(Reply::json(&DatabaseView::for_role(&d, engine.as_ref(), cx.role())).etag(new_etag).about(id, &d.alias))
}

/// `DELETE /api/databases/{id}[?delete_backups=true]`: its backups stay unless asked for.
pub async fn delete(cx: &Cx<'_>) -> ApiResult<Reply> {
    let (app, id) = (cx.app, cx.id());
    let (d, _) = load(app, id).await?;
    let backups_deleted = match bool_param(cx.query, "delete_backups")? {
        Some(true) => {
            cx.require(Permission::DeleteBackups, "deleting its backups")?;
            let rows = crate::backups::settled_history_of(app, &d).await?;
            crate::backups::delete_all_of(app, &d, &rows).await?
        }
        _ => 0,
    };
    app.stores.databases.delete(id).await?;
    let body = serde_json::json!({ "deleted": id, "alias": d.alias, "backups_deleted": backups_deleted });
    Ok(Reply::json(&body).about(id, &d.alias))
}
