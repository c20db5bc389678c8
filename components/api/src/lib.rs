//! The Dilux REST API as a Spin HTTP component. State lives in Azure Table/Queue/Blob only; every
//! request gets a fresh instance.

mod audit_log;
mod auth;
mod backups;
mod catalog;
mod entra;
mod http;
mod policies;
mod probe;
mod routes;
mod settings;
mod status;
mod users;

use dilux_azure::Account;
use dilux_domain::Sealer;
use spin_sdk::http::{Method, Request, Response};
use spin_sdk::http_component;

use crate::http::{ApiError, ApiResult};
use crate::routes::Op;

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
    let (route, params) = match routes::find(&method, &segs) {
        routes::Found::Route(r, p) => (r, p),
        routes::Found::WrongMethod => return ApiError::new(405, "method_not_allowed", format!("{method} is not allowed on {path}; see /api/openapi.json")).into_response(),
        routes::Found::NoRoute => return ApiError::new(404, "no_route", format!("no API route {path}; see /api/openapi.json")).into_response(),
    };
    // Loaded once: authentication (Entra keys, users), the handler and the audit row all use it.
    let ctx = Ctx::load();
    let mut principal = None;
    let result = match route.permission {
        None => dispatch(route.op, &req, &ctx, &params, None).await,
        Some(needed) => match auth::authenticate(&req, ctx.as_ref().ok()).await {
            Ok(p) => {
                let allowed = auth::check(&p, needed);
                principal = Some(p);
                match allowed {
                    Ok(()) => dispatch(route.op, &req, &ctx, &params, principal.as_ref()).await,
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        },
    };
    let response = match result {
        Ok(r) if principal.as_ref().is_some_and(|p| p.role == dilux_domain::user::Role::Viewer) => hide_usernames(r),
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    if let (Some((action, resource_type)), Ok(ctx)) = (route.audit, &ctx) {
        audit(ctx, action, resource_type, params.first().copied(), &response, principal.as_ref(), &client_ip, &method, &path).await;
    }
    let who = principal.as_ref().map(|p| p.user_id.as_str()).unwrap_or("-");
    eprintln!("api method={method} path={path:?} op={:?} status={} user={who}", route.op, response.status());
    response
}

/// Viewers see no part of a credential: login names are removed from what they read.
fn hide_usernames(r: Response) -> Response {
    fn strip(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(m) => {
                m.remove("username");
                m.values_mut().for_each(strip);
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let Ok(mut v) = serde_json::from_slice::<serde_json::Value>(r.body()) else { return r };
    strip(&mut v);
    http::json(*r.status(), &v)
}

#[allow(clippy::too_many_arguments)]
async fn audit(ctx: &Ctx, action: &str, resource_type: &str, id: Option<&str>, response: &Response, who: Option<&auth::Principal>, ip: &str, method: &Method, path: &str) {
    let body: serde_json::Value = serde_json::from_slice(response.body()).unwrap_or_default();
    let status = *response.status();
    let resource_id = id.map(str::to_string).or_else(|| body["id"].as_str().or(body["deleted"].as_str()).map(str::to_string)).unwrap_or_default();
    let name = body["name"].as_str().or(body["alias"].as_str()).or(body["blob_name"].as_str()).unwrap_or_default().to_string();
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

async fn dispatch(op: Op, req: &Request, ctx: &Result<Ctx, ApiError>, p: &[&str], who: Option<&auth::Principal>) -> ApiResult {
    let body = req.body();
    match op {
        Op::Health => return Ok(http::json(200, &serde_json::json!({ "status": "healthy", "version": env!("CARGO_PKG_VERSION") }))),
        Op::OpenApi => return Ok(http::json(200, &routes::openapi())),
        Op::DevToken => return Ok(http::json(200, &auth::dev_token(body)?)),
        Op::AuthConfig => return Ok(http::json(200, &auth::public_config()?)),
        _ => {}
    }
    let ctx = ctx.as_ref().map_err(Clone::clone)?;
    let query = http::query_params(req.query());
    let q = &query;
    let who = who.ok_or_else(|| ApiError::new(401, "unauthenticated", "sign in first"))?;
    // The version the client edited, when it says (optimistic concurrency across users).
    let if_match = req.header("if-match").and_then(|h| h.as_str());
    match op {
        Op::Health | Op::OpenApi | Op::DevToken | Op::AuthConfig => unreachable!("answered above"),
        Op::ListEngines => catalog::list_engines(ctx, q).await,
        Op::CreateEngine => catalog::create_engine(ctx, body).await,
        Op::GetEngine => catalog::get_engine(ctx, p[0]).await,
        Op::UpdateEngine => catalog::update_engine(ctx, p[0], body, if_match).await,
        Op::DeleteEngine => catalog::delete_engine(ctx, p[0], q).await,
        Op::TestEngine => probe::test_engine(ctx, p[0]).await,
        Op::DiscoverEngine => probe::discover(ctx, p[0], body).await,
        Op::ListDatabases => catalog::list_databases(ctx, q).await,
        Op::CreateDatabase => catalog::create_database(ctx, body).await,
        Op::TestConnection => probe::test_connection(ctx, body).await,
        Op::GetDatabase => catalog::get_database(ctx, p[0]).await,
        Op::UpdateDatabase => catalog::update_database(ctx, p[0], body, if_match).await,
        Op::DeleteDatabase => catalog::delete_database(ctx, p[0], q).await,
        Op::TestDatabase => probe::test_database(ctx, p[0]).await,
        Op::TriggerBackup => backups::trigger(ctx, p[0]).await,
        Op::ListBackups => backups::list(ctx, q).await,
        Op::ListBackupFiles => backups::files(ctx, q).await,
        Op::DownloadBackup => backups::download(ctx, q).await,
        Op::DeleteBackup => backups::delete(ctx, q).await,
        Op::DeleteBackupsBulk => backups::delete_bulk(ctx, body).await,
        Op::BackupStats => backups::stats(ctx, q).await,
        Op::RetentionPreview => backups::retention_preview(ctx, q).await,
        Op::ListPolicies => policies::list(ctx).await,
        Op::CreatePolicy => policies::create(ctx, body).await,
        Op::GetPolicy => policies::get(ctx, p[0]).await,
        Op::UpdatePolicy => policies::update(ctx, p[0], body, if_match).await,
        Op::DeletePolicy => policies::delete(ctx, p[0]).await,
        Op::ListUsers => users::list(ctx).await,
        Op::CreateUser => users::create(ctx, body).await,
        Op::Me => users::me(ctx, who).await,
        Op::GetPreferences => settings::preferences(ctx, who).await,
        Op::UpdatePreferences => settings::update_preferences(ctx, who, body).await,
        Op::UpdateUser => users::update(ctx, p[0], body).await,
        Op::DeleteUser => users::delete(ctx, p[0]).await,
        Op::ListAccessRequests => settings::access_requests(ctx, q).await,
        Op::ApproveAccessRequest => settings::approve(ctx, who, p[0], body).await,
        Op::RejectAccessRequest => settings::reject(ctx, who, p[0], body).await,
        Op::ListAudit => audit_log::list(ctx, q).await,
        Op::AuditActions => audit_log::actions(),
        Op::AuditResourceTypes => audit_log::resource_types(),
        Op::AuditStats => audit_log::stats(ctx, q).await,
        Op::GetSettings => settings::get(ctx).await,
        Op::UpdateSettings => settings::update(ctx, who, body, if_match).await,
        Op::SystemStatus => status::system_status(ctx).await,
    }
}
