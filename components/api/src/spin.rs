//! The Spin entry point: Spin's request in, the API's [`handle`], Spin's response out. The app's
//! stores are Azure's, built from the Spin variables for every request (instances are fresh).

use dilux_azure_spin::stores::HttpDumper;
use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

use crate::config::ApiConfig;
use crate::error::ApiError;
use crate::App;

fn app() -> Result<App, ApiError> {
    let vars = dilux_azure_spin::config::variables();
    let storage = dilux_azure_spin::config::storage(&vars)?;
    let c = ApiConfig::load(&vars, storage.account.is_local_emulator())?;
    Ok(App {
        stores: storage.stores(HttpDumper::new(c.dumper_url, c.dumper_token)),
        sealer: c.sealer,
        auth: c.auth,
        clock: chrono::Utc::now,
    })
}

fn json(status: u16, v: &serde_json::Value) -> Response {
    Response::builder().status(status).header("content-type", "application/json").body(v.to_string()).build()
}

fn refused(status: u16, msg: &str) -> Response {
    json(status, &serde_json::json!({ "error": { "code": "tick_refused", "message": msg } }))
}

/// `POST /internal/notify` (the tick token): the notify tick, here because it needs what the API has
/// (the status page's conditions, the sealed channel secrets).
async fn notify_tick(req: &Request) -> Response {
    let vars = dilux_azure_spin::config::variables();
    let token = vars
        .required("tick_token", "set the shared secret the timer presents")
        .and_then(|t| dilux_domain::secret::SharedToken::new("tick_token", &t));
    let token = match token {
        Ok(t) => t,
        Err(e) => return refused(500, &e.to_string()),
    };
    if !token.admits(req.header("authorization").and_then(|h| h.as_str())) {
        return refused(401, "a valid tick token (Authorization: Bearer …) is required");
    }
    if *req.method() != spin_sdk::http::Method::Post {
        return refused(405, "ticks are POST");
    }
    let app = match app() {
        Ok(a) => a,
        Err(e) => return refused(500, &e.to_string()),
    };
    let mut now = chrono::Utc::now();
    // Tests drive a simulated clock; production never lets a caller choose the time.
    let local = dilux_azure_spin::config::storage(&vars).is_ok_and(|s| s.account.is_local_emulator());
    match vars.flag("allow_clock_override") {
        Ok(true) if !local => {
            let msg = "variable `allow_clock_override` is only for the local emulator; unset it in production";
            return refused(500, msg);
        }
        Ok(true) => {
            let at = req.query().split('&').find_map(|p| p.strip_prefix("now="));
            if let Some(v) = at {
                match chrono::DateTime::parse_from_rfc3339(&v.replace("%3A", ":").replace("%2B", "+")) {
                    Ok(t) => now = t.with_timezone(&chrono::Utc),
                    Err(_) => return refused(400, "now: must be an RFC 3339 time"),
                }
            }
        }
        Ok(false) => {}
        Err(e) => return refused(500, &e.to_string()),
    }
    let result = crate::notifications::tick(&app, now).await;
    let record = dilux_domain::schedule::TickRecord {
        name: "notify".into(),
        at: chrono::Utc::now(),
        ok: result.is_ok(),
        detail: match &result {
            Ok(r) => r.to_string(),
            Err(e) => e.to_string(),
        },
    };
    if let Err(e) = app.stores.ticks.upsert("notify", &record).await {
        crate::log::event("tick_record_failed", &[("route", &"/internal/notify"), ("error", &e)]);
    }
    match result {
        Ok(r) => json(200, &serde_json::to_value(&r).expect("reports serialize")),
        Err(e) => {
            crate::log::event("tick_failed", &[("route", &"/internal/notify"), ("error", &e)]);
            refused(503, &format!("the notify tick failed ({e}); it runs again at the next interval"))
        }
    }
}

#[http_component]
async fn handle(req: Request) -> Response {
    if req.path().trim_end_matches('/') == "/internal/notify" {
        return notify_tick(&req).await;
    }
    let client_ip = req
        .header("spin-client-addr")
        .and_then(|h| h.as_str())
        .map(|a| a.rsplit_once(':').map(|(ip, _)| ip).unwrap_or(a).to_string())
        .unwrap_or_default();
    let request = crate::Request {
        method: req.method().to_string(),
        path: req.path().to_string(),
        query: req.query().to_string(),
        headers: req.headers().map(|(k, v)| (k.to_ascii_lowercase(), v.as_str().unwrap_or("").to_string())).collect(),
        body: req.body().to_vec(),
        client_ip,
    };
    let app = app();
    let r = crate::handle(app.as_ref(), &request).await;
    let mut b = Response::builder();
    b.status(r.status);
    for (k, v) in &r.headers {
        b.header(k, v);
    }
    b.body(r.body).build()
}
