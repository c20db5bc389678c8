//! Connection tests and discovery. The API cannot run database clients (it is a Wasm component), so
//! it asks the dumper-host over its internal endpoint with the `dumper_token`.

use chrono::Utc;
use dilux_azure_spin as store;
use dilux_domain::engine::validate_username;
use dilux_domain::probe::{classify, ProbeRequest, ProbeResult, PROBE_PATH};
use dilux_domain::{tables, Database, Engine, EngineType};
use serde::Deserialize;

use crate::catalog::{database_with_engine, insert_record};
use crate::http::{json, parse, ApiError, ApiResult};
use crate::Ctx;

/// `POST /api/databases/test-connection`: settings not saved yet. Either a server (`engine_id`, whose
/// credentials apply unless others are given) or a host, port and type with credentials.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TestConnectionRequest {
    pub engine_id: Option<String>,
    pub engine_type: Option<EngineType>,
    pub host: Option<String>,
    pub port: Option<u16>,
    /// The database to connect to; the server's default one when left out.
    pub database: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
}

/// `POST /api/engines/{id}/discover`: without `add`, only lists; with it, registers those databases
/// (on the server's credentials) in the same call.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DiscoverRequest {
    #[serde(default)]
    pub add: Vec<String>,
    /// Policy for the added databases; the server's, else the settings' default, when left out.
    pub policy_id: Option<String>,
}

fn dumper() -> Result<(String, String), ApiError> {
    let var = |n: &str| spin_sdk::variables::get(n).ok().filter(|v| !v.is_empty());
    let (Some(url), Some(token)) = (var("dumper_url"), var("dumper_token")) else {
        return Err(ApiError::config("connection tests need the dumper_url and dumper_token variables".into()));
    };
    Ok((format!("{}{PROBE_PATH}", url.trim_end_matches('/')), token))
}

/// For the status page: is the dumper-host answering, and which tools does it have.
pub async fn dumper_health() -> serde_json::Value {
    let (url, token) = match dumper() {
        Ok(d) => d,
        Err(e) => return serde_json::json!({ "reachable": false, "message": e.message }),
    };
    let request = spin_sdk::http::Request::get(&url).header("authorization", format!("Bearer {token}")).build();
    match spin_sdk::http::send::<_, spin_sdk::http::Response>(request).await {
        Ok(r) if *r.status() == 200 => {
            let mut v: serde_json::Value = serde_json::from_slice(r.body()).unwrap_or_default();
            v["reachable"] = true.into();
            v
        }
        Ok(r) => serde_json::json!({ "reachable": false, "message": format!("the dumper-host answered {}; check dumper_token", r.status()) }),
        Err(e) => serde_json::json!({ "reachable": false, "message": format!("the dumper-host at {url} does not answer ({e}); backups cannot run") }),
    }
}

/// Sends a probe to the dumper-host. Connection failures come back as a result, not an error; an
/// error means the dumper-host itself could not be asked.
async fn ask(req: &ProbeRequest) -> Result<ProbeResult, ApiError> {
    let (url, token) = dumper()?;
    let request = spin_sdk::http::Request::post(&url, serde_json::to_vec(req).expect("probe requests serialize"))
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .build();
    let unreachable = |detail: String| {
        ApiError::new(503, "dumper_unreachable", format!("the dumper-host at {url} could not run the test ({detail}); check that it is running and that dumper_url/dumper_token match"))
    };
    let resp: spin_sdk::http::Response = spin_sdk::http::send(request).await.map_err(|e| unreachable(e.to_string()))?;
    if *resp.status() != 200 {
        return Err(unreachable(format!("it answered {}", resp.status())));
    }
    serde_json::from_slice(resp.body()).map_err(|e| unreachable(format!("unreadable answer: {e}")))
}

fn unseal(ctx: &Ctx, sealed: &str, whose: &str) -> Result<String, ApiError> {
    ctx.sealer.open(sealed).map_err(|_| ApiError::new(409, "unreadable_secret", format!("the stored password of {whose} cannot be decrypted (was seal_key changed?); set it again")))
}

fn engine_request(ctx: &Ctx, e: &Engine, database: Option<String>, list: bool) -> Result<ProbeRequest, ApiError> {
    let (Some(username), Some(sealed)) = (e.username.as_deref().filter(|u| !u.is_empty()), e.password_sealed.as_deref()) else {
        return Err(ApiError::new(409, "no_credentials", format!("server `{}` has no username/password; add them to test or discover it", e.name)));
    };
    Ok(ProbeRequest {
        engine_type: e.engine_type,
        host: e.host.clone(),
        port: e.port,
        username: username.to_string(),
        password: unseal(ctx, sealed, &format!("server `{}`", e.name))?,
        database,
        list_databases: list,
    })
}

async fn load_engine(ctx: &Ctx, id: &str) -> Result<Engine, ApiError> {
    Ok(store::get::<Engine>(&ctx.account, tables::ENGINES, tables::ENGINE_PK, id).await?.ok_or_else(|| ApiError::not_found("engine", id))?.0)
}

/// `POST /api/engines/{id}/test`
pub async fn test_engine(ctx: &Ctx, id: &str) -> ApiResult {
    let e = load_engine(ctx, id).await?;
    Ok(json(200, &ask(&engine_request(ctx, &e, None, false)?).await?))
}

/// `POST /api/databases/{id}/test`: with the credentials its backups would use.
pub async fn test_database(ctx: &Ctx, id: &str) -> ApiResult {
    let (db, e) = database_with_engine(ctx, id).await?;
    let Some((username, sealed)) = db.sealed_credentials(&e) else {
        let whose = if db.use_engine_credentials { "its server" } else { "the database" };
        return Err(ApiError::new(409, "no_credentials", format!("no username/password is set on {whose}")));
    };
    let req = ProbeRequest {
        engine_type: e.engine_type,
        host: e.host.clone(),
        port: e.port,
        username: username.to_string(),
        password: unseal(ctx, sealed, &format!("database `{}`", db.alias))?,
        database: Some(db.name.clone()),
        list_databases: false,
    };
    let mut v = serde_json::to_value(ask(&req).await?).expect("results serialize");
    v["credentials"] = if db.use_engine_credentials { "server" } else { "database" }.into();
    Ok(json(200, &v))
}

/// `POST /api/databases/test-connection`
pub async fn test_connection(ctx: &Ctx, body: &[u8]) -> ApiResult {
    let input: TestConnectionRequest = parse(body)?;
    if let Some(d) = &input.database {
        dilux_domain::engine::validate_db_name(d)?;
    }
    if input.username.is_some() != input.password.is_some() {
        return Err(ApiError::field(if input.username.is_some() { "password" } else { "username" }, "username and password go together"));
    }
    if let Some(u) = &input.username {
        validate_username(u)?;
    }
    let req = match &input.engine_id {
        Some(id) => {
            if input.host.is_some() || input.port.is_some() || input.engine_type.is_some() {
                return Err(ApiError::field("engine_id", "give either engine_id or host/port/engine_type, not both"));
            }
            let e = store::get::<Engine>(&ctx.account, tables::ENGINES, tables::ENGINE_PK, id).await?.ok_or_else(|| ApiError::field("engine_id", format!("no engine `{id}` exists")))?.0;
            match (input.username, input.password) {
                (Some(username), Some(password)) => ProbeRequest { engine_type: e.engine_type, host: e.host, port: e.port, username, password, database: input.database, list_databases: false },
                _ => engine_request(ctx, &e, input.database, false)?,
            }
        }
        None => {
            let engine_type = input.engine_type.ok_or_else(|| ApiError::field("engine_type", "is required without engine_id"))?;
            let host = input.host.ok_or_else(|| ApiError::field("host", "is required without engine_id"))?;
            dilux_domain::engine::validate_host(&host)?;
            if input.port == Some(0) {
                return Err(ApiError::field("port", "must be between 1 and 65535"));
            }
            let (Some(username), Some(password)) = (input.username, input.password) else {
                return Err(ApiError::field("username", "is required without engine_id"));
            };
            ProbeRequest { engine_type, host: host.trim().to_string(), port: input.port.unwrap_or(engine_type.default_port()), username, password, database: input.database, list_databases: false }
        }
    };
    Ok(json(200, &ask(&req).await?))
}

/// `POST /api/engines/{id}/discover`: the server's databases flagged `exists` / `system`; with `add`,
/// registers the chosen ones on the server's credentials.
pub async fn discover(ctx: &Ctx, id: &str, body: &[u8]) -> ApiResult {
    let input: DiscoverRequest = crate::http::parse_optional(body)?;
    if input.add.len() > 500 {
        return Err(ApiError::field("add", "at most 500 databases at once"));
    }
    crate::catalog::check_policy(ctx, input.policy_id.as_deref()).await?;
    let e = load_engine(ctx, id).await?;
    let result = ask(&engine_request(ctx, &e, None, true)?).await?;
    if !result.success {
        // The test's own classification tells the user what to fix.
        return Ok(json(200, &serde_json::json!({ "success": false, "error_type": result.error_type, "message": result.message, "duration_ms": result.duration_ms, "databases": [] })));
    }
    let registered: Vec<Database> = store::all_databases(&ctx.account).await?.into_iter().filter(|d| d.engine_id == e.id).collect();
    let pairs: Vec<(String, String)> = registered.iter().map(|d| (d.name.clone(), d.id.clone())).collect();
    let mut found = classify(e.engine_type, &result.databases, &pairs);
    // Nothing is written unless every name is valid.
    for name in &input.add {
        if !found.iter().any(|d| &d.name == name) {
            return Err(ApiError::field("add", format!("`{name}` is not a database on server `{}`", e.name)));
        }
    }
    let policy_id = crate::settings::policy_for_new_database(ctx, input.policy_id, &e).await?;
    let mut added = Vec::new();
    for name in &input.add {
        let Some(entry) = found.iter_mut().find(|d| &d.name == name && !d.exists) else { continue };
        let now = Utc::now();
        let db = Database {
            id: uuid::Uuid::new_v4().to_string(),
            engine_id: e.id.clone(),
            engine_type: e.engine_type,
            name: name.clone(),
            alias: name.clone(),
            use_engine_credentials: true,
            auth_method: e.auth_method,
            username: None,
            password_sealed: None,
            policy_id: Some(policy_id.clone()),
            enabled: true,
            created_at: now,
            updated_at: now,
        };
        insert_record(ctx, tables::DATABASES, tables::DATABASE_PK, &db.id, &db).await?;
        entry.exists = true;
        entry.database_id = Some(db.id.clone());
        added.push(dilux_domain::DatabaseView::new(&db, Some(&e)));
    }
    Ok(json(200, &serde_json::json!({
        "success": true,
        "id": e.id,
        "name": e.name,
        "server_version": result.server_version,
        "duration_ms": result.duration_ms,
        "databases": found,
        "added": added,
    })))
}
