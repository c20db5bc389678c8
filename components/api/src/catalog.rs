//! Engines (servers) and databases.

use chrono::Utc;
use dilux_azure::table::literal;
use dilux_azure_spin as store;
use dilux_domain::engine::{CreateDatabase, CreateEngine, UpdateDatabase, UpdateEngine};
use dilux_domain::{tables, Database, DatabaseView, Engine, EngineView};

use crate::http::{json, parse, ApiError, ApiResult};
use crate::Ctx;

use dilux_domain::tables::{DATABASE_PK, ENGINE_PK};

async fn load_engine(ctx: &Ctx, id: &str) -> Result<Option<(Engine, String)>, ApiError> {
    Ok(store::get::<Engine>(&ctx.account, tables::ENGINES, ENGINE_PK, id).await?)
}

async fn load_database(ctx: &Ctx, id: &str) -> Result<(Database, String), ApiError> {
    store::get::<Database>(&ctx.account, tables::DATABASES, DATABASE_PK, id).await?.ok_or_else(|| ApiError::not_found("database", id))
}

/// A policy id must name a system policy or one stored in the policies table.
async fn check_policy(ctx: &Ctx, policy_id: Option<&str>) -> Result<(), ApiError> {
    let Some(id) = policy_id else { return Ok(()) };
    if dilux_domain::policy::default_policies().iter().any(|p| p.id == id) {
        return Ok(());
    }
    match store::get::<dilux_domain::policy::BackupPolicy>(&ctx.account, tables::POLICIES, "policy", id).await? {
        Some(_) => Ok(()),
        None => Err(ApiError::field("policy_id", format!("no backup policy `{id}` exists"))),
    }
}

pub async fn insert_record<T: serde::Serialize>(ctx: &Ctx, table: &str, pk: &str, rk: &str, record: &T) -> Result<(), ApiError> {
    Ok(store::insert_or_init(&ctx.account, &ctx.container, table, pk, rk, record).await?)
}

pub async fn list_engines(ctx: &Ctx) -> ApiResult {
    let mut engines: Vec<EngineView> = store::all_engines(&ctx.account)
        .await?
        .iter()
        .map(EngineView::from)
        .collect();
    engines.sort_by(|a, b| a.name.to_lowercase().cmp(&b.name.to_lowercase()));
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
    let (e, _) = load_engine(ctx, id).await?.ok_or_else(|| ApiError::not_found("engine", id))?;
    Ok(json(200, &EngineView::from(&e)))
}

/// `PUT /api/engines/{id}`. Databases on the server's credentials use the new ones from their next
/// backup on; with `apply_to_all_databases`, databases with their own are moved onto the server's.
pub async fn update_engine(ctx: &Ctx, id: &str, body: &[u8]) -> ApiResult {
    let input: UpdateEngine = parse(body)?;
    input.validate()?;
    check_policy(ctx, input.policy_id.as_deref()).await?;
    let (mut engine, etag) = load_engine(ctx, id).await?.ok_or_else(|| ApiError::not_found("engine", id))?;
    input.apply(&mut engine, input.password.as_deref().map(|p| ctx.sealer.seal(p)), Utc::now());
    if engine.username.is_some() != engine.password_sealed.is_some() {
        return Err(ApiError::field(if engine.username.is_some() { "password" } else { "username" }, "username and password go together"));
    }
    let dbs = databases_of(ctx, id).await?;
    if input.apply_to_all_databases && !engine.has_credentials() {
        return Err(ApiError::field("apply_to_all_databases", "the server has no username/password to apply"));
    }
    refuse_duplicate(ctx, &engine.host, engine.port, engine.engine_type, Some(id)).await?;
    match store::replace(&ctx.account, tables::ENGINES, ENGINE_PK, id, &engine, Some(&etag)).await {
        Err(e) if e.status() == Some(412) => return Err(ApiError::new(412, "changed", "the server was changed by someone else meanwhile; reload and try again")),
        other => {
            other?;
        }
    }
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
    Ok(json(200, &view))
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

/// `DELETE /api/engines/{id}[?cascade=true]`: refuses while databases exist unless cascading, which
/// deletes the databases' configuration; their backups stay (delete those explicitly).
pub async fn delete_engine(ctx: &Ctx, id: &str, q: &[(String, String)]) -> ApiResult {
    load_engine(ctx, id).await?.ok_or_else(|| ApiError::not_found("engine", id))?;
    let cascade = match crate::http::param(q, "cascade") {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(ApiError::field("cascade", "must be true or false")),
    };
    let dbs = databases_of(ctx, id).await?;
    if !dbs.is_empty() && !cascade {
        return Err(ApiError::new(409, "has_databases", format!("engine `{id}` still has {} database(s); delete them first, or pass cascade=true", dbs.len())));
    }
    for d in &dbs {
        store::delete(&ctx.account, tables::DATABASES, DATABASE_PK, &d.id).await?;
    }
    store::delete(&ctx.account, tables::ENGINES, ENGINE_PK, id).await?;
    Ok(json(200, &serde_json::json!({ "deleted": id, "databases_deleted": dbs.len() })))
}

async fn databases_of(ctx: &Ctx, engine_id: &str) -> Result<Vec<Database>, ApiError> {
    let filter = format!("PartitionKey eq {} and engine_id eq {}", literal(DATABASE_PK), literal(engine_id));
    Ok(store::query_all::<Database>(&ctx.account, tables::DATABASES, &filter).await?.into_iter().map(|(d, _)| d).collect())
}

pub async fn list_databases(ctx: &Ctx) -> ApiResult {
    let engines = store::all_engines(&ctx.account).await?;
    let dbs = store::all_databases(&ctx.account).await?;
    let mut views: Vec<DatabaseView> = dbs
        .iter()
        .map(|d| DatabaseView::new(d, engines.iter().find(|e| e.id == d.engine_id)))
        .collect();
    views.sort_by(|a, b| a.alias.to_lowercase().cmp(&b.alias.to_lowercase()));
    Ok(json(200, &serde_json::json!({ "databases": views, "total": views.len() })))
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
        policy_id: input.policy_id.clone().or(engine.policy_id.clone()),
        enabled: input.enabled,
        created_at: now,
        updated_at: now,
    };
    insert_record(ctx, tables::DATABASES, DATABASE_PK, &db.id, &db).await?;
    Ok(json(201, &DatabaseView::new(&db, Some(&engine))))
}

pub async fn get_database(ctx: &Ctx, id: &str) -> ApiResult {
    let (d, _) = load_database(ctx, id).await?;
    let engine = load_engine(ctx, &d.engine_id).await?.map(|(e, _)| e);
    Ok(json(200, &DatabaseView::new(&d, engine.as_ref())))
}

pub async fn update_database(ctx: &Ctx, id: &str, body: &[u8]) -> ApiResult {
    let input: UpdateDatabase = parse(body)?;
    input.validate()?;
    check_policy(ctx, input.policy_id.as_deref()).await?;
    let (mut d, etag) = load_database(ctx, id).await?;
    let engine = load_engine(ctx, &d.engine_id).await?.map(|(e, _)| e);
    let sealed = input.password.as_deref().map(|p| ctx.sealer.seal(p));
    input.apply(&mut d, sealed, Utc::now())?;
    if d.use_engine_credentials && !engine.as_ref().is_some_and(Engine::has_credentials) {
        return Err(ApiError::field("use_engine_credentials", "the server has no username/password to inherit"));
    }
    match store::replace(&ctx.account, tables::DATABASES, DATABASE_PK, id, &d, Some(&etag)).await {
        Err(e) if e.status() == Some(412) => {
            return Err(ApiError::new(412, "changed", "the database was changed by someone else meanwhile; reload and try again"))
        }
        other => {
            other?;
        }
    }
    Ok(json(200, &DatabaseView::new(&d, engine.as_ref())))
}

pub async fn delete_database(ctx: &Ctx, id: &str) -> ApiResult {
    load_database(ctx, id).await?;
    // Its backups stay: deleting a database's configuration must never delete its backups.
    store::delete(&ctx.account, tables::DATABASES, DATABASE_PK, id).await?;
    Ok(json(200, &serde_json::json!({ "deleted": id })))
}

pub async fn database_with_engine(ctx: &Ctx, id: &str) -> Result<(Database, Engine), ApiError> {
    let (d, _) = load_database(ctx, id).await?;
    let (e, _) = load_engine(ctx, &d.engine_id).await?.ok_or_else(|| {
        ApiError::new(409, "orphaned", format!("database `{id}` refers to server `{}`, which no longer exists", d.engine_id))
    })?;
    Ok((d, e))
}
