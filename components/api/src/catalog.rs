//! Engines (servers) and databases.

use chrono::Utc;
use dilux_azure::table::literal;
use dilux_azure_spin as store;
use dilux_domain::engine::{CreateDatabase, CreateEngine, UpdateDatabase, UpdateEngine};
use dilux_domain::{tables, Database, DatabaseView, Engine, EngineView};

use crate::http::{bool_param, check_if_match, engine_type_param, json, json_tagged, parse, ApiError, ApiResult};
use crate::Ctx;

use dilux_domain::tables::{DATABASE_PK, ENGINE_PK};

async fn load_engine(ctx: &Ctx, id: &str) -> Result<Option<(Engine, String)>, ApiError> {
    Ok(store::get::<Engine>(&ctx.account, tables::ENGINES, ENGINE_PK, id).await?)
}

async fn load_database(ctx: &Ctx, id: &str) -> Result<(Database, String), ApiError> {
    store::get::<Database>(&ctx.account, tables::DATABASES, DATABASE_PK, id).await?.ok_or_else(|| ApiError::not_found("database", id))
}

/// A policy id must name a system policy or one stored in the policies table.
pub async fn check_policy(ctx: &Ctx, policy_id: Option<&str>) -> Result<(), ApiError> {
    let Some(id) = policy_id else { return Ok(()) };
    if dilux_domain::policy::default_policies().iter().any(|p| p.id == id) {
        return Ok(());
    }
    match store::get_policy(&ctx.account, id).await? {
        Some(_) => Ok(()),
        None => Err(ApiError::field("policy_id", format!("no backup policy `{id}` exists"))),
    }
}

pub async fn insert_record<T: serde::Serialize>(ctx: &Ctx, table: &str, pk: &str, rk: &str, record: &T) -> Result<(), ApiError> {
    Ok(store::insert_or_init(&ctx.account, &ctx.container, table, pk, rk, record).await?)
}

/// `GET /api/engines[?engine_type=]`: each with how many databases it has.
pub async fn list_engines(ctx: &Ctx, q: &[(String, String)]) -> ApiResult {
    let only = engine_type_param(q)?;
    let dbs = store::all_databases(&ctx.account).await?;
    let mut engines: Vec<serde_json::Value> = Vec::new();
    let mut all = store::all_engines(&ctx.account).await?;
    all.sort_by_key(|e| e.name.to_lowercase());
    for e in all.iter().filter(|e| only.is_none_or(|t| e.engine_type == t)) {
        let mut v = serde_json::to_value(EngineView::from(e)).expect("views serialize");
        v["database_count"] = dbs.iter().filter(|d| d.engine_id == e.id).count().into();
        engines.push(v);
    }
    Ok(json(200, &serde_json::json!({ "engines": engines, "total": engines.len() })))
}

pub async fn create_engine(ctx: &Ctx, body: &[u8]) -> ApiResult {
    let input: CreateEngine = parse(body)?;
    input.validate()?;
    check_policy(ctx, input.policy_id.as_deref()).await?;
    let port = input.port.unwrap_or(input.engine_type.default_port());
    let host = input.host.trim().to_ascii_lowercase();
    refuse_duplicate(ctx, &host, port, input.engine_type, None).await?;
    let now = Utc::now();
    let engine = Engine {
        id: uuid::Uuid::new_v4().to_string(),
        name: input.name.trim().to_string(),
        engine_type: input.engine_type,
        host,
        port,
        auth_method: input.auth_method,
        username: input.username.clone(),
        password_sealed: input.password.as_deref().map(|p| ctx.sealer.seal(p)),
        policy_id: input.policy_id.clone(),
        discovery_enabled: input.username.is_some(),
        created_at: now,
        updated_at: now,
    };
    insert_record(ctx, tables::ENGINES, ENGINE_PK, &engine.id, &engine).await?;
    Ok(json(201, &EngineView::from(&engine)))
}

pub async fn get_engine(ctx: &Ctx, id: &str) -> ApiResult {
    let (e, etag) = load_engine(ctx, id).await?.ok_or_else(|| ApiError::not_found("engine", id))?;
    Ok(json_tagged(200, &EngineView::from(&e), Some(&etag)))
}

/// `PUT /api/engines/{id}`. Databases on the server's credentials use the new ones from their next
/// backup on; with `apply_to_all_databases`, databases with their own are moved onto the server's.
pub async fn update_engine(ctx: &Ctx, id: &str, body: &[u8], if_match: Option<&str>) -> ApiResult {
    let input: UpdateEngine = parse(body)?;
    input.validate()?;
    check_policy(ctx, input.policy_id.as_deref()).await?;
    let (mut engine, etag) = load_engine(ctx, id).await?.ok_or_else(|| ApiError::not_found("engine", id))?;
    check_if_match(if_match, &etag, "server")?;
    input.apply(&mut engine, input.password.as_deref().map(|p| ctx.sealer.seal(p)), Utc::now());
    if engine.username.is_some() != engine.password_sealed.is_some() {
        return Err(ApiError::field(if engine.username.is_some() { "password" } else { "username" }, "username and password go together"));
    }
    let dbs = databases_of(ctx, id).await?;
    if input.apply_to_all_databases && !engine.has_credentials() {
        return Err(ApiError::field("apply_to_all_databases", "the server has no username/password to apply"));
    }
    refuse_duplicate(ctx, &engine.host, engine.port, engine.engine_type, Some(id)).await?;
    let new_etag = match store::replace(&ctx.account, tables::ENGINES, ENGINE_PK, id, &engine, Some(&etag)).await {
        Err(e) if e.status() == Some(412) => return Err(ApiError::new(412, "changed", "the server was changed by someone else meanwhile; reload and try again")),
        other => other?,
    };
    let mut moved = 0;
    if input.apply_to_all_databases {
        let switch = UpdateDatabase { use_engine_credentials: Some(true), ..Default::default() };
        for mut d in dbs.into_iter().filter(|d| !d.use_engine_credentials) {
            switch.apply(&mut d, None, Utc::now())?;
            store::replace(&ctx.account, tables::DATABASES, DATABASE_PK, &d.id.clone(), &d, None).await?;
            moved += 1;
        }
    }
    let mut view = serde_json::to_value(EngineView::from(&engine)).expect("views serialize");
    view["databases_moved_to_server_credentials"] = moved.into();
    Ok(json_tagged(200, &view, new_etag.as_deref()))
}

/// (host, port, type) identifies a server: a second engine for it would split its databases.
async fn refuse_duplicate(ctx: &Ctx, host: &str, port: u16, engine_type: dilux_domain::EngineType, except: Option<&str>) -> Result<(), ApiError> {
    let filter = format!(
        "PartitionKey eq {} and host eq {} and engine_type eq {}",
        literal(ENGINE_PK),
        literal(host),
        literal(engine_type.as_str())
    );
    let same = store::query_all::<Engine>(&ctx.account, tables::ENGINES, &filter).await?;
    match same.iter().map(|(e, _)| e).find(|e| e.port == port && Some(e.id.as_str()) != except) {
        Some(d) => Err(ApiError::new(409, "duplicate", format!("server {host}:{port} ({}) is already registered as `{}` ({})", engine_type.as_str(), d.name, d.id))),
        None => Ok(()),
    }
}

/// `DELETE /api/engines/{id}[?cascade=true[&delete_backups=true]]`: refuses while databases exist
/// unless cascading, which deletes the databases' configuration; their backups stay unless asked.
pub async fn delete_engine(ctx: &Ctx, id: &str, q: &[(String, String)]) -> ApiResult {
    load_engine(ctx, id).await?.ok_or_else(|| ApiError::not_found("engine", id))?;
    let cascade = bool_param(q, "cascade")?.unwrap_or(false);
    let with_backups = bool_param(q, "delete_backups")?.unwrap_or(false);
    if with_backups && !cascade {
        return Err(ApiError::field("delete_backups", "needs cascade=true: backups go with their databases"));
    }
    let dbs = databases_of(ctx, id).await?;
    if !dbs.is_empty() && !cascade {
        return Err(ApiError::new(409, "has_databases", format!("engine `{id}` still has {} database(s); delete them first, or pass cascade=true", dbs.len())));
    }
    // Every history is read (and any running backup refused) before anything is deleted.
    let mut histories = Vec::new();
    if with_backups {
        for d in &dbs {
            histories.push(crate::backups::settled_history_of(ctx, d).await?);
        }
    }
    let mut backups_deleted = 0;
    for (i, d) in dbs.iter().enumerate() {
        if let Some(rows) = histories.get(i) {
            backups_deleted += crate::backups::delete_all_of(ctx, d, rows).await?;
        }
        store::delete(&ctx.account, tables::DATABASES, DATABASE_PK, &d.id).await?;
    }
    store::delete(&ctx.account, tables::ENGINES, ENGINE_PK, id).await?;
    Ok(json(200, &serde_json::json!({ "deleted": id, "databases_deleted": dbs.len(), "backups_deleted": backups_deleted })))
}

async fn databases_of(ctx: &Ctx, engine_id: &str) -> Result<Vec<Database>, ApiError> {
    let filter = format!("PartitionKey eq {} and engine_id eq {}", literal(DATABASE_PK), literal(engine_id));
    Ok(store::query_all::<Database>(&ctx.account, tables::DATABASES, &filter).await?.into_iter().map(|(d, _)| d).collect())
}

/// `GET /api/databases`: filtered by text, engine type, server, effective policy and enabled; paged.
pub async fn list_databases(ctx: &Ctx, q: &[(String, String)]) -> ApiResult {
    let search = crate::http::param(q, "search").map(|s| s.trim().to_lowercase()).filter(|s| !s.is_empty());
    let engine_type = engine_type_param(q)?;
    let engine_id = crate::http::param(q, "engine_id").filter(|s| !s.is_empty());
    let policy_id = crate::http::param(q, "policy_id").filter(|s| !s.is_empty());
    let enabled = bool_param(q, "enabled")?;
    let page = match crate::http::param(q, "page") {
        None => 1,
        Some(s) => s.parse::<usize>().ok().filter(|p| *p >= 1).ok_or_else(|| ApiError::field("page", "must be a number from 1"))?,
    };
    let page_size = crate::backups::page_size(q)?;
    let engines = store::all_engines(&ctx.account).await?;
    let dbs = store::all_databases(&ctx.account).await?;
    let mut views: Vec<DatabaseView> = dbs
        .iter()
        .filter(|d| engine_type.is_none_or(|t| d.engine_type == t))
        .filter(|d| engine_id.is_none_or(|id| d.engine_id == id))
        .filter(|d| enabled.is_none_or(|e| d.enabled == e))
        .filter(|d| policy_id.is_none_or(|p| store::effective_policy_id(d, engines.iter().find(|e| e.id == d.engine_id)) == p))
        .map(|d| DatabaseView::new(d, engines.iter().find(|e| e.id == d.engine_id)))
        .filter(|v| {
            search.as_ref().is_none_or(|s| {
                [Some(&v.alias), Some(&v.name), v.engine_name.as_ref(), v.host.as_ref()].into_iter().flatten().any(|f| f.to_lowercase().contains(s.as_str()))
            })
        })
        .collect();
    views.sort_by_key(|v| v.alias.to_lowercase());
    let total = views.len();
    let page_items: Vec<DatabaseView> = views.into_iter().skip((page - 1) * page_size).take(page_size).collect();
    Ok(json(200, &serde_json::json!({ "databases": page_items, "total": total, "page": page, "page_size": page_size, "pages": total.div_ceil(page_size) })))
}

pub async fn create_database(ctx: &Ctx, body: &[u8]) -> ApiResult {
    let input: CreateDatabase = parse(body)?;
    input.validate()?;
    check_policy(ctx, input.policy_id.as_deref()).await?;
    let (engine, _) = load_engine(ctx, &input.engine_id).await?.ok_or_else(|| ApiError::field("engine_id", format!("no engine `{}` exists", input.engine_id)))?;
    if input.use_engine_credentials && !engine.has_credentials() {
        return Err(ApiError::field("use_engine_credentials", format!(
            "server `{}` has no username/password; give this database its own credentials or add them to the server", engine.name)));
    }
    let existing = databases_of(ctx, &engine.id).await?;
    if existing.iter().any(|d| d.name == input.name) {
        return Err(ApiError::new(409, "duplicate", format!("database `{}` on server `{}` is already registered", input.name, engine.name)));
    }
    let now = Utc::now();
    let db = Database {
        id: uuid::Uuid::new_v4().to_string(),
        engine_id: engine.id.clone(),
        engine_type: engine.engine_type,
        name: input.name.clone(),
        alias: input.alias.clone().unwrap_or_else(|| input.name.clone()),
        use_engine_credentials: input.use_engine_credentials,
        auth_method: input.auth_method,
        username: input.username.clone(),
        password_sealed: input.password.as_deref().map(|p| ctx.sealer.seal(p)),
        policy_id: Some(crate::settings::policy_for_new_database(ctx, input.policy_id.clone(), &engine).await?),
        enabled: input.enabled,
        created_at: now,
        updated_at: now,
    };
    insert_record(ctx, tables::DATABASES, DATABASE_PK, &db.id, &db).await?;
    Ok(json(201, &DatabaseView::new(&db, Some(&engine))))
}

pub async fn get_database(ctx: &Ctx, id: &str) -> ApiResult {
    let (d, etag) = load_database(ctx, id).await?;
    let engine = load_engine(ctx, &d.engine_id).await?.map(|(e, _)| e);
    Ok(json_tagged(200, &DatabaseView::new(&d, engine.as_ref()), Some(&etag)))
}

pub async fn update_database(ctx: &Ctx, id: &str, body: &[u8], if_match: Option<&str>) -> ApiResult {
    let input: UpdateDatabase = parse(body)?;
    input.validate()?;
    check_policy(ctx, input.policy_id.as_deref()).await?;
    let (mut d, etag) = load_database(ctx, id).await?;
    check_if_match(if_match, &etag, "database")?;
    let engine = load_engine(ctx, &d.engine_id).await?.map(|(e, _)| e);
    let sealed = input.password.as_deref().map(|p| ctx.sealer.seal(p));
    input.apply(&mut d, sealed, Utc::now())?;
    if d.use_engine_credentials && !engine.as_ref().is_some_and(Engine::has_credentials) {
        return Err(ApiError::field("use_engine_credentials", "the server has no username/password to inherit"));
    }
    let new_etag = match store::replace(&ctx.account, tables::DATABASES, DATABASE_PK, id, &d, Some(&etag)).await {
        Err(e) if e.status() == Some(412) => {
            return Err(ApiError::new(412, "changed", "the database was changed by someone else meanwhile; reload and try again"))
        }
        other => other?,
    };
    Ok(json_tagged(200, &DatabaseView::new(&d, engine.as_ref()), new_etag.as_deref()))
}

/// `DELETE /api/databases/{id}[?delete_backups=true]`: its backups stay unless asked for.
pub async fn delete_database(ctx: &Ctx, id: &str, q: &[(String, String)]) -> ApiResult {
    let (d, _) = load_database(ctx, id).await?;
    let backups_deleted = match bool_param(q, "delete_backups")? {
        Some(true) => crate::backups::delete_all_of(ctx, &d, &crate::backups::settled_history_of(ctx, &d).await?).await?,
        _ => 0,
    };
    store::delete(&ctx.account, tables::DATABASES, DATABASE_PK, id).await?;
    Ok(json(200, &serde_json::json!({ "deleted": id, "alias": d.alias, "backups_deleted": backups_deleted })))
}

pub async fn database_with_engine(ctx: &Ctx, id: &str) -> Result<(Database, Engine), ApiError> {
    let (d, _) = load_database(ctx, id).await?;
    let (e, _) = load_engine(ctx, &d.engine_id).await?.ok_or_else(|| {
        ApiError::new(409, "orphaned", format!("database `{id}` refers to server `{}`, which no longer exists", d.engine_id))
    })?;
    Ok((d, e))
}
