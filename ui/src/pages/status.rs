//! Status: storage, queue, dumper-host and its tools, the scheduler's last run, failing databases.

use leptos::prelude::*;
use serde_json::Value;

use crate::widgets::{fetched, show};

#[component]
pub fn Status() -> impl IntoView {
    let reload = RwSignal::new(0);
    let status = fetched::<Value>(|| "/api/system-status".into(), reload);
    view! {
        <h1>"Status"</h1>
        <button on:click=move |_| reload.update(|n| *n += 1)>"Refresh"</button>
        {show(status, |s: &Value| {
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
                    <tr><th>"Jobs queued"</th><td>{s["queue"]["depth"].to_string()}</td></tr>
                    <tr><th>"Dumper-host reachable"</th><td>{yes(&s["dumper_host"]["reachable"])}</td></tr>
                    <tr>
                        <th>"PostgreSQL clients"</th>
                        <td>{s["dumper_host"]["postgresql_client_majors"].to_string()}</td>
                    </tr>
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
