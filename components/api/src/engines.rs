//! Servers (engines): registered by host, port and type, with optional credentials their databases
//! can inherit.

use dilux_domain::engine::{CreateEngine, UpdateDatabase, UpdateEngine};
use dilux_domain::policy::effective_policy_id;
use dilux_domain::{Database, Engine, EngineType, EngineView};
use serde::Serialize;

use crate::error::{changed_meanwhile, ApiError, ApiResult, Kind};
use crate::http::{bool_param, engine_type_param, Cx, Reply};
use crate::App;

#[derive(Serialize, schemars::JsonSchema)]
pub struct EngineSummary {
    #[serde(flatten)]
    pub engine: EngineView,
    pub database_count: usize,
}

#[derive(Serialize, schemars::JsonSchema)]
pub struct EngineList {
    pub engines: Vec<EngineSummary>,
    pub total: usize,
}

pub async fn load(app: &App, id: &str) -> ApiResult<(Engine, String)> {
    app.stores.engines.get(id).await?.ok_or_else(|| ApiError::not_found("engine", id))
}

/// The databases registered on a server.
pub async fn databases_of(app: &App, engine_id: &str) -> ApiResult<Vec<Database>> {
    Ok(app.stores.databases.list().await?.into_iter().map(|(d, _)| d).filter(|d| d.engine_id == engine_id).collect())
}

/// `GET /api/engines[?engine_type=]`: each with how many databases it has.
pub async fn list(cx: &Cx<'_>) -> ApiResult<Reply> {
    let only = engine_type_param(cx.query)?;
    let dbs = cx.app.stores.databases.list().await?;
    let mut all: Vec<Engine> = cx.app.stores.engines.list().await?.into_iter().map(|(e, _)| e).collect();
    all.sort_by_key(|e| e.name.to_lowercase());
    let engines: Vec<EngineSummary> = all
        .iter()
        .filter(|e| only.is_none_or(|t| e.engine_type == t))
        .map(|e| EngineSummary {
            engine: EngineView::for_role(e, cx.role()),
            database_count: dbs.iter().filter(|(d, _)| d.engine_id == e.id).count(),
        })
        .collect();
    Ok(Reply::json(&EngineList { total: engines.len(), engines }))
}

pub async fn create(cx: &Cx<'_>) -> ApiResult<Reply> {
    let input: CreateEngine = cx.body()?;
    input.validate()?;
    crate::policies::check_exists(cx.app, input.policy_id.as_deref()).await?;
    let port = input.port.unwrap_or(input.engine_type.default_port());
    let host = input.host.trim().to_ascii_lowercase();
    refuse_duplicate(cx.app, &host, port, input.engine_type, None).await?;
    let id = uuid::Uuid::new_v4().to_string();
    let engine = Engine {
        password_sealed: input.password.as_deref().map(|p| cx.app.sealer.seal(p, &id)),
        id,
        name: input.name.trim().to_string(),
        engine_type: input.engine_type,
        host,
        port,
        auth_method: input.auth_method,
        username: input.username.clone(),
        policy_id: input.policy_id.clone(),
        discovery_enabled: input.username.is_some(),
        tls_mode: input.tls_mode,
        tls_ca: input.tls_ca.clone().filter(|c| !c.trim().is_empty()),
        created_at: cx.now,
        updated_at: cx.now,
    };
    cx.app.stores.engines.insert(&engine.id, &engine).await?;
    Ok(Reply::json(&EngineView::for_role(&engine, cx.role())).about(&engine.id, &engine.name))
}

pub async fn get(cx: &Cx<'_>) -> ApiResult<Reply> {
    let (e, etag) = load(cx.app, cx.id()).await?;
    Ok(Reply::json(&EngineView::for_role(&e, cx.role())).etag(Some(etag)))
}

/// `PUT /api/engines/{id}`. Databases on the server's credentials use the new ones from their next
/// backup on; with `apply_to_all_databases`, databases with their own are moved onto the server's.
pub async fn update(cx: &Cx<'_>) -> ApiResult<Reply> {
    let (app, id) = (cx.app, cx.id());
    let input: UpdateEngine = cx.body()?;
    input.validate()?;
    crate::policies::check_exists(app, input.policy_id.as_deref()).await?;
    let (mut engine, etag) = load(app, id).await?;
    cx.check_if_match(&etag, "the server")?;
    let (old_host, old_port, old_tls) = (engine.host.clone(), engine.port, engine.tls());
    let dbs = databases_of(app, id).await?;
    if let Some(to) = input.policy_id.as_deref() {
        // Databases without a policy of their own follow the server's.
        if let Some(d) = dbs.iter().find(|d| d.policy_id.is_none()) {
            crate::policies::check_keeps_as_much(cx, &effective_policy_id(d, Some(&engine)), to).await?;
        }
    }
    input.apply(&mut engine, input.password.as_deref().map(|p| app.sealer.seal(p, id)), cx.now);
    // A stored password is never sent to a new address, nor over a connection that protects it less:
    // whoever moves the server or weakens its TLS types it again.
    let moved = engine.host != old_host || engine.port != old_port || old_tls.weakened_by(&engine.tls());
    // Whether it is needed depends on what is stored: a conflict with the server's state, not a bad field.
    if moved && engine.password_sealed.is_some() && input.password.is_none() {
        let why = "password: is required again when host, port or a weaker TLS setting (or another CA) is saved: \
                   the stored one is never sent where it could be read";
        return Err(ApiError::new(Kind::NoCredentials, why).on_field("password"));
    }
    // Well-formed, but with what the server has it would leave half a login: a conflict with its state.
    if engine.username.is_some() != engine.password_sealed.is_some() {
        let field = if engine.username.is_some() { "password" } else { "username" };
        let why = format!("{field}: the server has no {field} to go with this one; give username and password");
        return Err(ApiError::new(Kind::NoCredentials, why).on_field(field));
    }
    if input.apply_to_all_databases && !engine.has_credentials() {
        let why = "apply_to_all_databases: the server has no username/password to apply; give them first";
        return Err(ApiError::new(Kind::NoCredentials, why).on_field("apply_to_all_databases"));
    }
    refuse_duplicate(app, &engine.host, engine.port, engine.engine_type, Some(id)).await?;
    if moved && !input.apply_to_all_databases {
        // Before the server moves: should this stop half-way, no database's password can reach the new
        // address (a retry of the move would no longer see a move).
        forget_own_passwords(app, &dbs, cx.now).await?;
    }
    let new_etag =
        app.stores.engines.replace(id, &engine, Some(&etag)).await.map_err(changed_meanwhile("the server"))?;
    let (mut switched, mut forgotten) = (0, Vec::new());
    for mut d in dbs.into_iter().filter(|d| !d.use_engine_credentials) {
        if input.apply_to_all_databases {
            let switch = UpdateDatabase { use_engine_credentials: Some(true), ..Default::default() };
            switch.apply(&mut d, None, cx.now)?;
            switched += 1;
        } else if moved && d.username.is_some() {
            forgotten.push(d.id.clone());
            continue;
        } else {
            continue;
        }
        app.stores.databases.replace(&d.id.clone(), &d, None).await?;
    }
    let mut view = serde_json::to_value(EngineView::for_role(&engine, cx.role())).expect("views serialize");
    view["databases_moved_to_server_credentials"] = switched.into();
    view["databases_needing_password"] = forgotten.into();
    Ok(Reply::json(&view).etag(new_etag).about(id, &engine.name))
}

/// Forgets the own passwords of a moving server's databases: each is entered again before its next backup.
async fn forget_own_passwords(app: &App, dbs: &[Database], now: chrono::DateTime<chrono::Utc>) -> ApiResult<()> {
    for d in dbs.iter().filter(|d| !d.use_engine_credentials && d.password_sealed.is_some()) {
        let mut d = d.clone();
        d.password_sealed = None;
        d.updated_at = now;
        app.stores.databases.replace(&d.id.clone(), &d, None).await?;
    }
    Ok(())
}

/// (host, port, type) identifies a server: a second engine for it would split its databases.
async fn refuse_duplicate(app: &App, host: &str, port: u16, t: EngineType, except: Option<&str>) -> ApiResult<()> {
    let all = app.stores.engines.list().await?;
    let same = all
        .iter()
        .map(|(e, _)| e)
        .find(|e| e.host == host && e.port == port && e.engine_type == t && Some(e.id.as_str()) != except);
    match same {
        Some(d) => Err(ApiError::new(
            Kind::Duplicate,
            format!("server {host}:{port} ({}) is already registered as `{}` ({})", t.as_str(), d.name, d.id),
        )),
        None => Ok(()),
    }
}

/// `DELETE /api/engines/{id}[?cascade=true[&delete_backups=true]]`: refuses while databases exist
/// unless cascading, which deletes the databases' configuration; their backups stay unless asked.
pub async fn delete(cx: &Cx<'_>) -> ApiResult<Reply> {
    let (app, id) = (cx.app, cx.id());
    let (engine, _) = load(app, id).await?;
    let cascade = bool_param(cx.query, "cascade")?.unwrap_or(false);
    let with_backups = bool_param(cx.query, "delete_backups")?.unwrap_or(false);
    // Without cascade there are no databases whose backups could go (a server with any is refused below).
    if with_backups {
        cx.require(dilux_domain::user::Permission::DeleteBackups, "deleting backups")?;
    }
    let dbs = databases_of(app, id).await?;
    if !dbs.is_empty() && !cascade {
        return Err(ApiError::new(
            Kind::HasDatabases,
            format!("engine `{id}` still has {} database(s); delete them first, or pass cascade=true", dbs.len()),
        ));
    }
    // Every history is read (and any running backup refused) before anything is deleted.
    let mut histories = Vec::new();
    if with_backups {
        for d in &dbs {
            histories.push(crate::backups::settled_history_of(app, d).await?);
        }
    }
    let mut backups_deleted = 0;
    for (i, d) in dbs.iter().enumerate() {
        if let Some(rows) = histories.get(i) {
            backups_deleted += crate::backups::delete_all_of(app, d, rows).await?;
        }
        app.stores.databases.delete(&d.id).await?;
    }
    app.stores.engines.delete(id).await?;
    let body = serde_json::json!({ "deleted": id, "databases_deleted": dbs.len(), "backups_deleted": backups_deleted });
    Ok(Reply::json(&body).about(id, &engine.name))
}
