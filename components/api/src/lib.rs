//! The Dilux REST API as a Spin HTTP component. State lives in Azure Table/Queue/Blob only; every
//! request gets a fresh instance.

mod auth;
mod backups;
mod entra;
mod catalog;
mod http;
mod status;
mod users;

use dilux_azure::Account;
use dilux_domain::Sealer;
use dilux_domain::user::Permission;
use spin_sdk::http::{Method, Request, Response};
use spin_sdk::http_component;

use crate::http::{ApiError, ApiResult};

/// What every handler needs, built from Spin variables.
pub struct Ctx {
    pub account: Account,
    pub sealer: Sealer,
    pub container: String,
}

impl Ctx {
    fn load() -> Result<Self, ApiError> {
        let var = |n: &str| {
            spin_sdk::variables::get(n).map_err(|e| ApiError::config(format!("variable `{n}` is not available: {e}")))
        };
        let account = Account::from_connection_string(&var("storage_connection_string")?).map_err(|e| ApiError::config(e.to_string()))?;
        let sealer = Sealer::from_base64_key(&var("seal_key")?).map_err(|e| ApiError::config(e.to_string()))?;
        let container = var("backups_container").unwrap_or_else(|_| dilux_domain::BACKUPS_CONTAINER.into());
        Ok(Ctx { account, sealer, container })
    }
}

#[http_component]
async fn handle(req: Request) -> Response {
    let method = req.method().clone();
    let path = req.path().to_string();
    let client_ip = req.header("spin-client-addr").and_then(|h| h.as_str()).map(|a| a.rsplit_once(':').map(|(ip, _)| ip).unwrap_or(a).to_string()).unwrap_or_default();
    let segments: Vec<String> = path.trim_end_matches('/').split('/').skip(1).map(str::to_string).collect();
    let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
    // Loaded once: authentication (Entra keys, users), the handler and the audit row all use it.
    let ctx = Ctx::load();
    let mut principal = None;
    let result = match permission(&method, &segs) {
        None => route(req, &ctx, &method, &path, &segs).await,
        Some(needed) => match auth::authenticate(&req, ctx.as_ref().ok()).await {
            Ok(p) => {
                let allowed = auth::check(&p, needed);
                principal = Some(p);
                match allowed {
                    Ok(()) if segs == ["api", "users", "me"] => users::me(principal.as_ref().expect("just set")),
                    Ok(()) => route(req, &ctx, &method, &path, &segs).await,
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        },
    };
    let response = match result {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    if let (Some((action, resource_type, id)), Ok(ctx)) = (audited(&method, &segs), &ctx) {
        audit(ctx, action, resource_type, id, &response, principal.as_ref(), &client_ip, &method, &path).await;
    }
    let who = principal.as_ref().map(|p| p.user_id.as_str()).unwrap_or("-");
    eprintln!("api method={method} path={path:?} status={} user={who}", response.status());
    response
}

/// What a route needs; `None` for the public ones.
fn permission(method: &Method, s: &[&str]) -> Option<Permission> {
    match (method, s) {
        (Method::Get, ["api", "health"]) | (Method::Post, ["api", "auth", "dev-token"]) => None,
        (Method::Post, ["api", "databases", _, "backup"]) => Some(Permission::TriggerBackup),
        (Method::Get, ["api", "users", "me"]) => Some(Permission::View),
        (_, ["api", "users", ..]) => Some(Permission::ManageUsers),
        (Method::Get, _) => Some(Permission::View),
        _ => Some(Permission::ManageDatabases),
    }
}

/// Mutating calls are audited, successful or not: (action, resource type, resource id from the path).
fn audited<'a>(method: &Method, s: &[&'a str]) -> Option<(&'static str, &'static str, Option<&'a str>)> {
    match (method, s) {
        (Method::Post, ["api", "engines"]) => Some(("engine_created", "engine", None)),
        (Method::Put, ["api", "engines", id]) => Some(("engine_updated", "engine", Some(*id))),
        (Method::Delete, ["api", "engines", id]) => Some(("engine_deleted", "engine", Some(*id))),
        (Method::Post, ["api", "databases"]) => Some(("database_created", "database", None)),
        (Method::Put, ["api", "databases", id]) => Some(("database_updated", "database", Some(*id))),
        (Method::Delete, ["api", "databases", id]) => Some(("database_deleted", "database", Some(*id))),
        (Method::Post, ["api", "databases", id, "backup"]) => Some(("backup_triggered", "database", Some(*id))),
        (Method::Delete, ["api", "backups", "delete"]) => Some(("backup_deleted", "backup", None)),
        (Method::Post, ["api", "backups", "delete-bulk"]) => Some(("backups_deleted_bulk", "backup", None)),
        (Method::Post, ["api", "users"]) => Some(("user_created", "user", None)),
        (Method::Put, ["api", "users", id]) => Some(("user_updated", "user", Some(*id))),
        (Method::Delete, ["api", "users", id]) => Some(("user_deleted", "user", Some(*id))),
        (Method::Get, _) | (Method::Post, ["api", "auth", "dev-token"]) => None,
        _ => Some(("unknown_mutation", "unknown", None)),
    }
}

#[allow(clippy::too_many_arguments)]
async fn audit(ctx: &Ctx, action: &str, resource_type: &str, id: Option<&str>, response: &Response, who: Option<&auth::Principal>, ip: &str, method: &Method, path: &str) {
    let body: serde_json::Value = serde_json::from_slice(response.body()).unwrap_or_default();
    let status = *response.status();
    let resource_id = id.map(str::to_string).or_else(|| body["id"].as_str().or(body["deleted"].as_str()).map(str::to_string)).unwrap_or_default();
    let name = body["name"].as_str().or(body["alias"].as_str()).unwrap_or_default().to_string();
    let details = serde_json::json!({ "method": method.to_string(), "path": path, "status_code": status, "error": body["error"]["message"] });
    let mut row = dilux_domain::audit::AuditLog::system(action, resource_type, &resource_id, &name, details, chrono::Utc::now());
    row.user_id = who.map(|p| p.user_id.clone()).unwrap_or_else(|| "anonymous".into());
    row.user_email = who.map(|p| p.email.clone()).unwrap_or_default();
    row.ip_address = ip.to_string();
    row.status = if (200..300).contains(&status) { "success" } else { "failed" }.into();
    let (pk, rk) = row.keys();
    if let Err(e) = dilux_azure_spin::insert_or_init(&ctx.account, &ctx.container, dilux_domain::tables::AUDIT, &pk, &rk, &row).await {
        // The call itself already happened; losing its audit row must at least be loud.
        eprintln!("api audit_write_failed action={action} error={e}");
    }
}

async fn route(req: Request, ctx: &Result<Ctx, ApiError>, method: &Method, path: &str, segments: &[&str]) -> ApiResult {
    if segments == ["api", "health"] && *method == Method::Get {
        return Ok(http::json(200, &serde_json::json!({ "status": "healthy", "version": env!("CARGO_PKG_VERSION") })));
    }
    if segments == ["api", "auth", "dev-token"] && *method == Method::Post {
        return Ok(http::json(200, &auth::dev_token(req.body())?));
    }
    let ctx = ctx.as_ref().map_err(Clone::clone)?;
    let body = req.body();
    let query = http::query_params(req.query());
    match (method, segments) {
        (Method::Get, ["api", "engines"]) => catalog::list_engines(ctx).await,
        (Method::Post, ["api", "engines"]) => catalog::create_engine(ctx, body).await,
        (Method::Get, ["api", "engines", id]) => catalog::get_engine(ctx, id).await,
        (Method::Put, ["api", "engines", id]) => catalog::update_engine(ctx, id, body).await,
        (Method::Delete, ["api", "engines", id]) => catalog::delete_engine(ctx, id, &query).await,
        (Method::Get, ["api", "databases"]) => catalog::list_databases(ctx).await,
        (Method::Post, ["api", "databases"]) => catalog::create_database(ctx, body).await,
        (Method::Get, ["api", "databases", id]) => catalog::get_database(ctx, id).await,
        (Method::Put, ["api", "databases", id]) => catalog::update_database(ctx, id, body).await,
        (Method::Delete, ["api", "databases", id]) => catalog::delete_database(ctx, id).await,
        (Method::Post, ["api", "databases", id, "backup"]) => backups::trigger(ctx, id).await,
        (Method::Get, ["api", "backups"]) => backups::list(ctx, &query).await,
        (Method::Get, ["api", "backups", "download"]) => backups::download(ctx, &query).await,
        (Method::Get, ["api", "system-status"]) => status::system_status(ctx).await,
        (Method::Get, ["api", "users"]) => users::list(ctx).await,
        (Method::Post, ["api", "users"]) => users::create(ctx, body).await,
        (Method::Put, ["api", "users", id]) => users::update(ctx, id, body).await,
        (Method::Delete, ["api", "users", id]) => users::delete(ctx, id).await,
        (Method::Delete, ["api", "backups", "delete"]) => backups::delete(ctx, &query).await,
        (Method::Post, ["api", "backups", "delete-bulk"]) => backups::delete_bulk(ctx, body).await,
        (Method::Get, ["api", "backups", "stats"]) => backups::stats(ctx, &query).await,
        (Method::Get, ["api", "retention", "preview"]) => backups::retention_preview(ctx, &query).await,
        (_, ["api", ..]) if known_path(segments) => Err(ApiError::new(405, "method_not_allowed", format!("{method} is not allowed on {path}"))),
        _ => Err(ApiError::new(404, "not_found", format!("no API route {path}"))),
    }
}

fn known_path(s: &[&str]) -> bool {
    matches!(
        s,
        ["api", "health"] | ["api", "auth", "dev-token"] | ["api", "engines"] | ["api", "engines", _] | ["api", "databases"] | ["api", "databases", _]
            | ["api", "databases", _, "backup"] | ["api", "backups"] | ["api", "backups", "download"] | ["api", "backups", "delete"] | ["api", "backups", "delete-bulk"] | ["api", "backups", "stats"] | ["api", "retention", "preview"] | ["api", "system-status"] | ["api", "users"] | ["api", "users", _]
    )
}
