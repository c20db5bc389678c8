//! Timer-fired routes (scheduler, retention, drills, sweeper), called by a Kubernetes CronJob in production and by the
//! dumper-host locally, with the shared tick token. Each tick is idempotent: calling it twice, or
//! concurrently, queues nothing twice.

mod drills;
mod retention;
mod scheduler;
mod sweeper;

use chrono::{DateTime, Utc};
use dilux_azure::Account;
use dilux_azure_spin::log;
use dilux_domain::secret::SharedToken;
use spin_sdk::http::{Method, Request, Response};
use spin_sdk::http_component;

/// The component name in log lines.
const COMPONENT: &str = "ticks";

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
    let vars = dilux_azure_spin::config::variables();
    let token = vars
        .required("tick_token", "set the shared secret the timer presents")
        .and_then(|t| SharedToken::new("tick_token", &t));
    let token = match token {
        Ok(t) => t,
        Err(e) => return error(500, &e.to_string()),
    };
    if !token.admits(req.header("authorization").and_then(|h| h.as_str())) {
        return error(401, "a valid tick token (Authorization: Bearer …) is required");
    }
    if *req.method() != Method::Post {
        return error(405, "ticks are POST");
    }
    let storage = match dilux_azure_spin::config::storage(&vars) {
        Ok(s) => s,
        Err(e) => return error(500, &e.to_string()),
    };
    // Tests drive a simulated clock; production never lets a caller choose the time.
    let mut now = Utc::now();
    let clock_override = match vars.flag("allow_clock_override") {
        Ok(true) if !storage.account.is_local_emulator() => {
            let msg = "variable `allow_clock_override` is only for the local emulator; unset it in production";
            return error(500, msg);
        }
        Ok(on) => on,
        Err(e) => return error(500, &e.to_string()),
    };
    if clock_override {
        if let Some(v) = req.query().split('&').find_map(|p| p.strip_prefix("now=")) {
            match DateTime::parse_from_rfc3339(&v.replace("%3A", ":").replace("%2B", "+")) {
                Ok(t) => now = t.with_timezone(&Utc),
                Err(_) => return error(400, "now: must be an RFC 3339 time"),
            }
        }
    }
    let ctx = Ctx { account: storage.account, container: storage.container, now };
    let path = req.path().trim_end_matches('/').to_string();
    let result = match path.as_str() {
        "/internal/ticks/scheduler" => scheduler::tick(&ctx).await,
        "/internal/ticks/retention" => retention::tick(&ctx).await,
        "/internal/ticks/drills" => drills::tick(&ctx).await,
        "/internal/ticks/sweeper" => sweeper::tick(&ctx).await,
        _ => return error(404, "no such tick"),
    };
    // Remembered for the status page: when each tick last ran and how it went.
    let name = path.rsplit('/').next().unwrap_or_default().to_string();
    let record = dilux_domain::schedule::TickRecord {
        name: name.clone(),
        at: Utc::now(),
        ok: result.is_ok(),
        detail: match &result {
            Ok(r) => r.to_string(),
            Err(e) => e.to_string(),
        },
    };
    if let Err(e) = dilux_azure_spin::upsert(
        &ctx.account,
        &ctx.container,
        dilux_domain::tables::SCHEDULE,
        dilux_domain::schedule::TICK_PK,
        &name,
        &record,
    )
    .await
    {
        log::event(COMPONENT, "tick_record_failed", &[("route", &path), ("error", &e)]);
    }
    match result {
        Ok(report) => {
            log::event(COMPONENT, "tick_done", &[("route", &path), ("report", &report)]);
            json(200, &report)
        }
        Err(e) => {
            log::event(COMPONENT, "tick_failed", &[("route", &path), ("error", &e)]);
            error(
                503,
                &format!("the tick could not read or write storage ({e}); it will run again at the next interval"),
            )
        }
    }
}
