//! Status: storage, queue, dumper-host and its tools, the scheduler's last run, failing databases.

use dilux_domain::user::Permission;
use leptos::prelude::*;
use serde_json::{json, Value};

use crate::api;
use crate::widgets::{fetched, show, Notice};

/// The soft delete an admin turns on from here: two weeks to notice a deletion.
const SOFT_DELETE_DAYS: u32 = 14;

/// Soft delete and immutability in words.
fn protection(p: &Value) -> (String, String) {
    if p["known"] != true {
        let why = p["message"].as_str().unwrap_or("");
        return (format!("unknown ({why})"), "unknown".into());
    }
    let soft = match p["soft_delete_days"].as_u64() {
        Some(d) => format!("on, {d} days"),
        None => "off".into(),
    };
    let mut locks = Vec::new();
    for (key, name) in [
        ("immutability_policy", "retention policy"),
        ("legal_hold", "legal hold"),
        ("version_immutability", "version-level"),
    ] {
        if p[key] == true {
            locks.push(name);
        }
    }
    (soft, if locks.is_empty() { "none".into() } else { locks.join(", ") })
}

#[component]
pub fn Status() -> impl IntoView {
    let session = crate::session();
    let reload = RwSignal::new(0);
    let status = fetched::<Value>(|| "/api/system-status".into(), reload);
    let message = RwSignal::new(None::<Result<String, String>>);
    let soft_delete_on = move |_| {
        leptos::task::spawn_local(async move {
            let r = api::post("/api/system-status/soft-delete", &json!({ "days": SOFT_DELETE_DAYS })).await;
            message.set(Some(r.map(|_| format!("Soft delete is on: {SOFT_DELETE_DAYS} days")).map_err(|e| e.message)));
            reload.update(|n| *n += 1);
        });
    };
    view! {
        <h1>"Status"</h1>
        <button on:click=move |_| reload.update(|n| *n += 1)>"Refresh"</button>
        <Notice message=message />
        {show(status, move |s: &Value| {
            let (soft, locks) = protection(&s["storage"]["protection"]);
            let offer = soft == "off" && session.can(Permission::ManageSettings);
            let yes = |b: &Value| if *b == true { "yes" } else { "no" };
            let tick = |t: &Value| {
                if t.is_null() {
                    "never".to_string()
                } else {
                    format!("{} ({})", t["at"].as_str().unwrap_or(""), if t["ok"] == true { "ok" } else { "failed" })
                }
            };
            let overall = s["status"].as_str().unwrap_or("");
            view! {
                <table class="health" id="health">
                    <tr><th>"Overall"</th><td class=overall.to_string()>{overall.to_string()}</td></tr>
                    <tr><th>"Storage reachable"</th><td>{yes(&s["storage"]["reachable"])}</td></tr>
                    <tr>
                        <th>"Soft delete of backups"</th>
                        <td id="soft-delete">
                            {soft}
                            <Show when=move || offer>
                                " "
                                <button id="enable-soft-delete" on:click=soft_delete_on>
                                    {format!("Turn on ({SOFT_DELETE_DAYS} days)")}
                                </button>
                            </Show>
                        </td>
                    </tr>
                    <tr><th>"Immutability of the backups container"</th><td>{locks}</td></tr>
                    <tr><th>"Jobs queued"</th><td>{s["queue"]["depth"].to_string()}</td></tr>
                    <tr><th>"Dumper-host reachable"</th><td>{yes(&s["dumper_host"]["reachable"])}</td></tr>
                    <tr>
                        <th>"PostgreSQL clients"</th>
                        <td>{s["dumper_host"]["postgresql_client_majors"].to_string()}</td>
                    </tr>
                    <tr><th>"Notifier plug-ins"</th><td>{plugin_names(&s["dumper_host"])}</td></tr>
                    <tr><th>"Backup encryption recipients"</th>
                        <td class="recipients">{encryption_recipients(&s["dumper_host"])}</td></tr>
                    <tr><th>"Last scheduler run"</th><td>{tick(&s["scheduler"]["last_tick"])}</td></tr>
                    <tr><th>"Last retention run"</th><td>{tick(&s["retention"]["last_tick"])}</td></tr>
                    <tr><th>"Databases"</th><td>{s["databases"].to_string()}</td></tr>
                </table>
                <h2>"Failing databases"</h2>
                <ul>{s["failing_databases"].as_array().cloned().unwrap_or_default().into_iter().map(|f| view! {
                    <li>
                        {format!(
                            "{}: {} failure(s) in a row",
                            f["database_alias"].as_str().unwrap_or(""),
                            f["consecutive_failures"]
                        )}
                    </li>
                }).collect_view()}</ul>
                <h2>"Alerts"</h2>
                <ul>{s["alerts"].as_array().cloned().unwrap_or_default().into_iter().map(|a| view! {
                    <li class=format!("alert {}", a["severity"].as_str().unwrap_or(""))>
                        {a["message"].as_str().unwrap_or("").to_string()}
                    </li>
                }).collect_view()}</ul>
            }
        })}
    }
}

/// The dumper-host's notifier plug-ins, comma-separated; "none" when it runs none.
pub fn plugin_names(dumper_host: &Value) -> String {
    listed(dumper_host, "notifier_plugins")
}

/// The age recipients the dumper-host can decrypt for (policies that encrypt must name one).
pub fn encryption_recipients(dumper_host: &Value) -> String {
    listed(dumper_host, "encryption_recipients")
}

/// A list the dumper-host reports, comma-separated; "none" when empty.
fn listed(dumper_host: &Value, key: &str) -> String {
    let names: Vec<&str> =
        dumper_host[key].as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}
