//! The Dilux REST API as a Spin HTTP component. State lives in Azure Table/Queue/Blob only; every
//! request gets a fresh instance.

mod backups;
mod catalog;
mod http;
mod status;

use dilux_azure::Account;
use dilux_domain::Sealer;
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
    let result = route(req, &method, &path).await;
    let response = match result {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    eprintln!("api method={method} path={path:?} status={}", response.status());
    response
}

async fn route(req: Request, method: &Method, path: &str) -> ApiResult {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    if segments == ["api", "health"] && *method == Method::Get {
        return Ok(http::json(200, &serde_json::json!({ "status": "healthy", "version": env!("CARGO_PKG_VERSION") })));
    }
    let ctx = Ctx::load()?;
    let body = req.body();
    let query = http::query_params(req.query());
    match (method, segments.as_slice()) {
        (Method::Get, ["api", "engines"]) => catalog::list_engines(&ctx).await,
        (Method::Post, ["api", "engines"]) => catalog::create_engine(&ctx, body).await,
        (Method::Get, ["api", "engines", id]) => catalog::get_engine(&ctx, id).await,
        (Method::Delete, ["api", "engines", id]) => catalog::delete_engine(&ctx, id).await,
        (Method::Get, ["api", "databases"]) => catalog::list_databases(&ctx).await,
        (Method::Post, ["api", "databases"]) => catalog::create_database(&ctx, body).await,
        (Method::Get, ["api", "databases", id]) => catalog::get_database(&ctx, id).await,
        (Method::Put, ["api", "databases", id]) => catalog::update_database(&ctx, id, body).await,
        (Method::Delete, ["api", "databases", id]) => catalog::delete_database(&ctx, id).await,
        (Method::Post, ["api", "databases", id, "backup"]) => backups::trigger(&ctx, id).await,
        (Method::Get, ["api", "backups"]) => backups::list(&ctx, &query).await,
        (Method::Get, ["api", "backups", "download"]) => backups::download(&ctx, &query).await,
        (Method::Get, ["api", "system-status"]) => status::system_status(&ctx).await,
        (Method::Get, ["api", "retention", "preview"]) => backups::retention_preview(&ctx, &query).await,
        (_, ["api", ..]) if known_path(&segments) => Err(ApiError::new(405, "method_not_allowed", format!("{method} is not allowed on {path}"))),
        _ => Err(ApiError::new(404, "not_found", format!("no API route {path}"))),
    }
}

fn known_path(s: &[&str]) -> bool {
    matches!(
        s,
        ["api", "health"] | ["api", "engines"] | ["api", "engines", _] | ["api", "databases"] | ["api", "databases", _]
            | ["api", "databases", _, "backup"] | ["api", "backups"] | ["api", "backups", "download"] | ["api", "retention", "preview"] | ["api", "system-status"]
    )
}
