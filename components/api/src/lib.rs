//! The Dilux REST API. [`handle`] takes a request through its route row: 404/405, sign-in, the role
//! check, the handler, the audit row. Handlers reach storage only through `dilux-store`'s traits, so the
//! same code runs as a Spin component (over Azure, in `spin`) and natively in tests (in memory).
//!
//! A request, from row to Table call: `GET /api/engines/{id}` matches the row
//! `r(Get, "/api/engines/{id}", "GetEngine", h!(engines::get), …).needs(View)`; [`handle`] verifies the
//! bearer token (`auth`), checks that the role grants `View`, and calls `engines::get` with a [`Cx`];
//! the handler calls `cx.app.stores.engines.get(id)`, which `dilux-azure-spin` sends as a Table
//! `GET engines(PartitionKey='engine',RowKey='{id}')`; the [`Reply`] (view + ETag) goes back as JSON.

pub mod access_requests;
pub mod audit_log;
pub mod auth;
pub mod backups;
pub mod config;
pub mod databases;
pub mod engines;
pub mod entra;
pub mod error;
pub mod http;
mod log;
pub mod me;
pub mod notifications;
pub mod openapi;
pub mod policies;
pub mod probe;
pub mod restores;
pub mod routes;
pub mod settings;
pub mod status;
pub mod users;

#[cfg(target_arch = "wasm32")]
mod spin;

use chrono::{DateTime, Utc};
use dilux_domain::audit::AuditLog;
use dilux_domain::Sealer;
use dilux_store::Stores;

use crate::auth::{AuthMode, Principal};
use crate::error::{ApiError, Kind};
pub use crate::http::{Cx, Reply, Request, Response};
use crate::routes::{Found, Handler, Route};

/// What every handler may use.
pub struct App {
    pub stores: Stores,
    pub sealer: Sealer,
    pub auth: AuthMode,
    /// The time of a request (tests fix it).
    pub clock: fn() -> DateTime<Utc>,
}

/// Answers one request. `app` is `Err` when the deployment is misconfigured: only the routes that
/// need nothing configured answer then; the rest say what to fix.
pub async fn handle(app: Result<&App, &ApiError>, req: &Request) -> Response {
    let verb = http::Verb::parse(&req.method);
    let (route, params) = match routes::find(verb, &req.path) {
        Found::Route(r, p) => (r, p),
        Found::WrongMethod(allowed) => {
            let names: Vec<&str> = allowed.iter().map(|v| v.as_str()).collect();
            let e = ApiError::new(
                Kind::MethodNotAllowed,
                format!("{} is not allowed on {}; see /api/openapi.json", req.method, req.path),
            );
            let mut r = Response::error(&e);
            r.headers.push(("allow".into(), names.join(", ")));
            return r;
        }
        Found::NoRoute => {
            let e = ApiError::new(Kind::NoRoute, format!("no API route {}; see /api/openapi.json", req.path));
            return Response::error(&e);
        }
    };
    // Clients escape what a path segment may not hold (`:` in `email:…`, any non-ASCII): ids are their text.
    let decoded: Vec<String> = params.iter().map(|p| http::percent_decode(p)).collect();
    let params: Vec<&str> = decoded.iter().map(String::as_str).collect();
    // Path ids become Table keys: one storage would refuse is a bad request, not an outage.
    if params.iter().any(|p| !dilux_domain::entity::valid_key(p)) {
        return Response::error(&ApiError::field("id", dilux_domain::entity::KEY_RULE));
    }
    // So are ids given in the query, as the document says: never empty, never what a key cannot hold.
    let query_ids = http::query_params(&req.query);
    if let Some((name, _)) = query_ids
        .iter()
        .filter(|(n, _)| openapi::ID_PARAMS.contains(&n.as_str()) && route.query.iter().any(|(q, _)| q == n))
        .find(|(_, v)| v.is_empty() || v.chars().count() > 260 || !dilux_domain::entity::valid_key(v))
    {
        let rule = format!("must be 1 to 260 characters and {}", dilux_domain::entity::KEY_RULE);
        return Response::error(&ApiError::field(name, rule));
    }
    let app = match (route.handler, app) {
        (Handler::Static(f), _) => return Response::json(route.ok, &f()),
        (Handler::App(_), Err(e)) => return Response::error(e),
        (Handler::App(f), Ok(app)) => (f, app),
    };
    let (handler, app) = app;
    let now = (app.clock)();
    let mut principal = None;
    let query = http::query_params(&req.query);
    let result = async {
        if let Some(needed) = route.permission {
            let p = auth::authenticate(app, req, now).await?;
            let allowed = auth::check(&p, needed);
            principal = Some(p);
            allowed?;
        }
        let cx = Cx {
            app,
            who: principal.as_ref(),
            params: &params,
            query: &query,
            body: &req.body,
            if_match: req.header("if-match"),
            now,
        };
        handler(&cx).await
    }
    .await;
    let response = match &result {
        Ok(reply) => {
            let mut r = Response::json(route.ok, &reply.body);
            if let Some(e) = &reply.etag {
                r.headers.push(("etag".into(), e.clone()));
            }
            r
        }
        Err(e) => Response::error(e),
    };
    if route.audit.is_some() {
        audit(app, route, params.first().copied(), &result, principal.as_ref(), req, now).await;
    }
    let who = principal.as_ref().map(|p| p.user_id.as_str()).unwrap_or("-");
    log::event(
        "request",
        &[
            ("method", &req.method),
            ("path", &req.path),
            ("op", &route.id),
            ("status", &response.status),
            ("user", &who),
        ],
    );
    response
}

/// The audit row of a call, allowed or refused: who, from where, on what, and how it went.
async fn audit(
    app: &App,
    route: &Route,
    path_id: Option<&str>,
    result: &Result<Reply, ApiError>,
    who: Option<&Principal>,
    req: &Request,
    now: DateTime<Utc>,
) {
    let Some(a) = route.audit else { return };
    // Refused before anyone signed in (a signed-in route, or a refused public one like the dev-token route in
    // entra mode): counted per hour, not a row each, so a flood must not fill the trail.
    if who.is_none() && (route.permission.is_some() || result.is_err()) {
        if let Err(e) = app.stores.audit.count_unauthenticated(now).await {
            log::event("unauthenticated_count_failed", &[("error", &e)]);
        }
        return;
    }
    let (id, name, status, error) = match result {
        Ok(r) => (r.target.id.clone(), r.target.name.clone(), route.ok, None),
        Err(e) => (String::new(), String::new(), e.status(), Some(e.message.clone())),
    };
    let id = path_id.map(str::to_string).filter(|_| id.is_empty()).unwrap_or(id);
    let details = serde_json::json!({ "method": req.method, "path": req.path, "status_code": status, "error": error });
    let mut row = AuditLog::system(a.action, a.resource_type, &id, &name, details, now);
    row.user_id = who.map(|p| p.user_id.clone()).unwrap_or_else(|| "anonymous".into());
    row.user_email = who.map(|p| p.email.clone()).unwrap_or_default();
    row.ip_address = req.client_ip.clone();
    row.status = if result.is_ok() { "success" } else { "failed" }.into();
    if let Err(e) = app.stores.audit.insert(&row).await {
        // The call itself already happened; losing its audit row must at least be loud.
        log::event("audit_write_failed", &[("action", &a.action), ("error", &e)]);
    }
}
