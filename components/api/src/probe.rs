//! Connection tests and discovery. The API cannot run database clients (it is a Wasm component), so
//! it asks the dumper-host's probe (the `Dumper` port) with the credentials backups would use.

use dilux_domain::engine::validate_username;
use dilux_domain::probe::{classify, DiscoveredDatabase, ProbeRequest, ProbeResult};
use dilux_domain::tls::{Tls, TlsMode};
use dilux_domain::{Database, DatabaseView, Engine, EngineType, ErrorClass};
use serde::{Deserialize, Serialize};

use crate::error::{ApiError, ApiResult, Kind};
use crate::http::{Cx, Reply};
use crate::App;

/// `POST /api/databases/test-connection`: settings not saved yet. Either a server (`engine_id`, whose
/// credentials apply unless others are given) or a host, port and type with credentials.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend(
    "dependentSchemas" = dilux_domain::schema::credentials_together(),
    "anyOf" = [
        { "required": ["engine_id"], "properties": { "engine_id": { "type": "string" } },
          "not": { "anyOf": [{ "required": ["host"] }, { "required": ["port"] }, { "required": ["engine_type"] }] } },
        { "required": ["engine_type", "host", "username", "password"],
          "properties": { "engine_id": { "type": "null" }, "engine_type": { "type": "string" },
                          "host": { "type": "string" }, "username": { "type": "string" },
                          "password": { "type": "string" } } },
    ],
))]
pub struct TestConnectionRequest {
    /// A registered server: its host, port and type; its credentials unless others are given; its TLS
    /// unless `tls_mode` or `tls_ca` are given (the stored password only over a TLS as strong as the saved
    /// one, so an edit form tests what it would save).
    #[schemars(regex(pattern = dilux_domain::schema::KEY), length(max = 260))]
    pub engine_id: Option<String>,
    pub engine_type: Option<EngineType>,
    #[schemars(regex(pattern = dilux_domain::schema::HOST), length(min = 1, max = 253))]
    pub host: Option<String>,
    #[schemars(range(min = 1))]
    pub port: Option<u16>,
    /// The database to connect to; the server's default one when left out.
    #[schemars(regex(pattern = dilux_domain::schema::DB_NAME), length(max = 64))]
    pub database: Option<String>,
    #[schemars(regex(pattern = dilux_domain::schema::USERNAME), length(min = 1, max = 128))]
    pub username: Option<String>,
    #[schemars(length(min = 1))]
    pub password: Option<String>,
    /// The TLS to test with, as a server would be saved with it (`auto` when only `tls_ca` is given).
    pub tls_mode: Option<TlsMode>,
    #[schemars(regex(pattern = dilux_domain::schema::CA_BUNDLE), length(max = 32768))]
    pub tls_ca: Option<String>,
}

/// `POST /api/engines/{id}/discover`: without `add`, only lists; with it, registers those databases
/// (on the server's credentials) in the same call.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DiscoverRequest {
    /// At most 500 names of the server's databases.
    #[serde(default)]
    #[schemars(length(max = 500), inner(regex(pattern = dilux_domain::schema::DB_NAME), length(max = 64)))]
    pub add: Vec<String>,
    /// Policy for the added databases; the server's, else the settings' default, when left out.
    #[schemars(regex(pattern = dilux_domain::schema::KEY), length(max = 260))]
    pub policy_id: Option<String>,
}

/// What discovery found, and what it registered.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Discovery {
    pub success: bool,
    /// Why the server could not be listed (with `success: false`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_type: Option<ErrorClass>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_version: Option<String>,
    pub duration_ms: u64,
    pub databases: Vec<DiscoveredDatabase>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub added: Option<Vec<DatabaseView>>,
}

/// Asks the dumper-host. Connection failures come back as a result, not an error.
async fn ask(app: &App, req: &ProbeRequest) -> ApiResult<ProbeResult> {
    app.stores.dumper.probe(req).await.map_err(|e| match e {
        dilux_store::ServiceError::Unreachable(m) => ApiError::new(
            Kind::DumperUnreachable,
            format!("{m}; check that it is running and that dumper_url/dumper_token match"),
        ),
        other => other.into(),
    })
}

fn unseal(app: &App, sealed: &str, record: &str, whose: &str) -> ApiResult<String> {
    app.sealer.open(sealed, record).map_err(|_| {
        ApiError::new(
            Kind::UnreadableSecret,
            format!("the stored password of {whose} cannot be decrypted (was seal_key changed?); set it again"),
        )
    })
}

fn engine_request(app: &App, e: &Engine, database: Option<String>, list: bool) -> ApiResult<ProbeRequest> {
    let (Some(username), Some(sealed)) =
        (e.username.as_deref().filter(|u| !u.is_empty()), e.password_sealed.as_deref())
    else {
        return Err(ApiError::new(
            Kind::NoCredentials,
            format!("server `{}` has no username/password; add them to test or discover it", e.name),
        ));
    };
    Ok(ProbeRequest {
        engine_type: e.engine_type,
        host: e.host.clone(),
        port: e.port,
        username: username.to_string(),
        password: unseal(app, sealed, &e.id, &format!("server `{}`", e.name))?,
        database,
        list_databases: list,
        tls: e.tls(),
    })
}

/// `POST /api/engines/{id}/test`
pub async fn test_engine(cx: &Cx<'_>) -> ApiResult<Reply> {
    let (e, _) = crate::engines::load(cx.app, cx.id()).await?;
    let result = ask(cx.app, &engine_request(cx.app, &e, None, false)?).await?;
    Ok(Reply::json(&result).about(&e.id, &e.name))
}

/// `POST /api/databases/{id}/test`: with the credentials its backups would use.
pub async fn test_database(cx: &Cx<'_>) -> ApiResult<Reply> {
    let (db, e) = crate::databases::with_engine(cx.app, cx.id()).await?;
    let Some((username, sealed, owner)) = db.sealed_credentials(&e) else {
        let whose = if db.use_engine_credentials { "its server" } else { "the database" };
        return Err(ApiError::new(Kind::NoCredentials, format!("no username/password is set on {whose}")));
    };
    let req = ProbeRequest {
        engine_type: e.engine_type,
        host: e.host.clone(),
        port: e.port,
        username: username.to_string(),
        password: unseal(cx.app, sealed, owner, &format!("database `{}`", db.alias))?,
        database: Some(db.name.clone()),
        list_databases: false,
        tls: e.tls(),
    };
    let mut v = serde_json::to_value(ask(cx.app, &req).await?).expect("results serialize");
    v["credentials"] = if db.use_engine_credentials { "server" } else { "database" }.into();
    Ok(Reply::json(&v).about(&db.id, &db.alias))
}

/// `POST /api/databases/test-connection`
pub async fn test_connection(cx: &Cx<'_>) -> ApiResult<Reply> {
    let input: TestConnectionRequest = cx.body()?;
    if let Some(d) = &input.database {
        dilux_domain::engine::validate_db_name(d)?;
    }
    if input.username.is_some() != input.password.is_some() {
        let field = if input.username.is_some() { "password" } else { "username" };
        return Err(ApiError::field(field, "username and password go together"));
    }
    if let Some(u) = &input.username {
        validate_username(u)?;
    }
    if input.password.as_deref() == Some("") {
        return Err(ApiError::field("password", "must not be empty"));
    }
    let req = match &input.engine_id {
        Some(id) => {
            if input.host.is_some() || input.port.is_some() || input.engine_type.is_some() {
                return Err(ApiError::field("engine_id", "give either engine_id or host/port/engine_type, not both"));
            }
            let (e, _) = cx
                .app
                .stores
                .engines
                .get(id)
                .await?
                .ok_or_else(|| ApiError::unknown("engine_id", format!("no engine `{id}` exists")))?;
            let tls = match (input.tls_mode, input.tls_ca.as_deref()) {
                (None, None) => e.tls(),
                (mode, ca) => Tls::for_host(mode.unwrap_or_default(), form_ca(ca)?, &e.host),
            };
            match (input.username, input.password) {
                (Some(username), Some(password)) => ProbeRequest {
                    engine_type: e.engine_type,
                    tls,
                    host: e.host,
                    port: e.port,
                    username,
                    password,
                    database: input.database,
                    list_databases: false,
                },
                // The stored password never goes where the saved TLS would not let it.
                _ if e.tls().weakened_by(&tls) => {
                    let why = "password: is required to test a weaker TLS setting (or another CA) than the saved \
                               one: the stored one is never sent where it could be read";
                    return Err(ApiError::new(Kind::NoCredentials, why).on_field("password"));
                }
                _ => ProbeRequest { tls, ..engine_request(cx.app, &e, input.database, false)? },
            }
        }
        None => {
            let engine_type =
                input.engine_type.ok_or_else(|| ApiError::field("engine_type", "is required without engine_id"))?;
            let host = input.host.ok_or_else(|| ApiError::field("host", "is required without engine_id"))?;
            dilux_domain::engine::validate_host(&host)?;
            if input.port == Some(0) {
                return Err(ApiError::field("port", "must be between 1 and 65535"));
            }
            let (Some(username), Some(password)) = (input.username, input.password) else {
                return Err(ApiError::field("username", "is required without engine_id"));
            };
            let ca = form_ca(input.tls_ca.as_deref())?;
            let host = host.trim().to_string();
            ProbeRequest {
                engine_type,
                tls: Tls::for_host(input.tls_mode.unwrap_or_default(), ca, &host),
                host,
                port: input.port.unwrap_or(engine_type.default_port()),
                username,
                password,
                database: input.database,
                list_databases: false,
            }
        }
    };
    let target = format!("{}:{}", req.host, req.port);
    Ok(Reply::json(&ask(cx.app, &req).await?).about("", &target))
}

/// A CA bundle typed in a form: none when blank.
fn form_ca(ca: Option<&str>) -> ApiResult<Option<&str>> {
    let ca = ca.filter(|c| !c.trim().is_empty());
    if let Some(ca) = ca {
        dilux_domain::tls::validate_ca("tls_ca", ca)?;
    }
    Ok(ca)
}

/// `POST /api/engines/{id}/discover`: the server's databases flagged `exists` / `system`; with `add`,
/// registers the chosen ones on the server's credentials.
pub async fn discover(cx: &Cx<'_>) -> ApiResult<Reply> {
    let app = cx.app;
    let input: DiscoverRequest = cx.optional_body()?;
    if input.add.len() > 500 {
        return Err(ApiError::field("add", "at most 500 databases at once"));
    }
    crate::policies::check_exists(app, input.policy_id.as_deref()).await?;
    let (e, _) = crate::engines::load(app, cx.id()).await?;
    let result = ask(app, &engine_request(app, &e, None, true)?).await?;
    if !result.success {
        // The test's own classification tells the user what to fix.
        let failed = Discovery {
            success: false,
            error_type: result.error_type,
            message: Some(result.message),
            id: None,
            name: None,
            server_version: None,
            duration_ms: result.duration_ms,
            databases: vec![],
            added: None,
        };
        return Ok(Reply::json(&failed).about(&e.id, &e.name));
    }
    let registered = crate::engines::databases_of(app, &e.id).await?;
    let pairs: Vec<(String, String)> = registered.iter().map(|d| (d.name.clone(), d.id.clone())).collect();
    let mut found = classify(e.engine_type, &result.databases, &pairs);
    // Nothing is written unless every name is valid.
    for name in &input.add {
        if !found.iter().any(|d| &d.name == name) {
            return Err(ApiError::field("add", format!("`{name}` is not a database on server `{}`", e.name)));
        }
    }
    let policy_id = crate::databases::policy_for_new(app, input.policy_id, &e).await?;
    let mut added = Vec::new();
    for name in &input.add {
        let Some(entry) = found.iter_mut().find(|d| &d.name == name && !d.exists) else { continue };
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
            created_at: cx.now,
            updated_at: cx.now,
        };
        app.stores.databases.insert(&db.id, &db).await?;
        entry.exists = true;
        entry.database_id = Some(db.id.clone());
        added.push(DatabaseView::new(&db, Some(&e)));
    }
    let discovery = Discovery {
        success: true,
        error_type: None,
        message: None,
        id: Some(e.id.clone()),
        name: Some(e.name.clone()),
        server_version: result.server_version,
        duration_ms: result.duration_ms,
        databases: found,
        added: Some(added),
    };
    Ok(Reply::json(&discovery).about(&e.id, &e.name))
}
