//! Timer-fired routes (scheduler, retention), called by a Kubernetes CronJob in production and by the dumper-host locally,
//! with the shared tick token. Each tick is idempotent: calling it twice, or concurrently, queues
//! nothing twice.

mod retention;
mod scheduler;

use chrono::{DateTime, Utc};
use dilux_azure::Account;
use spin_sdk::http::{Method, Request, Response};
use spin_sdk::http_component;

pub struct Ctx {
    pub account: Account,
    pub container: String,
    pub now: DateTime<Utc>,
}

fn json(status: u16, v: &serde_json::Value) -> Response {
    Response::builder().status(status).header("content-type", "application/json").body(v.to_string()).build()
}

fn error(status: u16, msg: &str) -> Response {
    json(status, &serde_json::json!({ "error": { "code": "tick_refused", "message": msg } }))
}

#[http_component]
async fn handle(req: Request) -> Response {
    let var = |n: &str| spin_sdk::variables::get(n).ok();
    let (Some(token), Some(conn)) = (var("tick_token"), var("storage_connection_string")) else {
        return error(500, "tick_token and storage_connection_string must be set");
    };
    let presented = req.header("authorization").and_then(|h| h.as_str()).and_then(|h| h.strip_prefix("Bearer "));
    if token.is_empty() || !constant_time_eq(presented.unwrap_or("").as_bytes(), token.as_bytes()) {
        return error(401, "a valid tick token (Authorization: Bearer …) is required");
    }
    if *req.method() != Method::Post {
        return error(405, "ticks are POST");
    }
    // Tests drive a simulated clock; production never lets a caller choose the time.
    let mut now = Utc::now();
    if var("allow_clock_override").as_deref() == Some("true") {
        if let Some(v) = req.query().split('&').find_map(|p| p.strip_prefix("now=")) {
            match DateTime::parse_from_rfc3339(&v.replace("%3A", ":").replace("%2B", "+")) {
                Ok(t) => now = t.with_timezone(&Utc),
                Err(_) => return error(400, "now: must be an RFC 3339 time"),
            }
        }
    }
    let account = match Account::from_connection_string(&conn) {
        Ok(a) => a,
        Err(e) => return error(500, &e.to_string()),
    };
    let ctx = Ctx { account, container: var("backups_container").unwrap_or_else(|| dilux_domain::BACKUPS_CONTAINER.into()), now };
    let path = req.path().trim_end_matches('/').to_string();
    let result = match path.as_str() {
        "/internal/ticks/scheduler" => scheduler::tick(&ctx).await,
        "/internal/ticks/retention" => retention::tick(&ctx).await,
        _ => return error(404, "no such tick"),
    };
    // Remembered for the status page: when each tick last ran and how it went.
    let name = path.rsplit('/').next().unwrap_or_default().to_string();
    let record = dilux_domain::schedule::TickRecord {
        name: name.clone(),
        at: Utc::now(),
        ok: result.is_ok(),
        detail: match &result { Ok(r) => r.to_string(), Err(e) => e.to_string() },
    };
    if let Err(e) = dilux_azure_spin::upsert(&ctx.account, &ctx.container, dilux_domain::tables::SCHEDULE, dilux_domain::schedule::TICK_PK, &name, &record).await {
        eprintln!("tick route={path} record_failed={e}");
    }
    match result {
        Ok(report) => {
            eprintln!("tick route={path} report={report}");
            json(200, &report)
        }
        Err(e) => {
            eprintln!("tick route={path} error={e}");
            error(503, &format!("the tick could not read or write storage ({e}); it will run again at the next interval"))
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
