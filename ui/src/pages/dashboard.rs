//! Dashboard: how many databases, today's backups, success rate, stored bytes, recent backups,
//! alerts, and two small charts (backups per day by status, stored bytes over time). The counts come
//! from the API's per-day figures, exact however many backups a day holds.

use dilux_domain::backup::{Daily, DayCounts};
use dilux_domain::{BackupResult, BackupStatus};
use leptos::prelude::*;
use serde::Deserialize;
use serde_json::Value;

use crate::api;
use crate::widgets::{badge, fetched, show, when};

#[derive(Deserialize)]
struct History {
    backups: Vec<BackupResult>,
}

const DAYS: i64 = 14;

#[component]
pub fn Dashboard() -> impl IntoView {
    let reload = RwSignal::new(0);
    let dbs = fetched::<Value>(|| "/api/databases?page_size=1".into(), reload);
    let history = fetched::<History>(|| format!("/api/backups?days={DAYS}&page_size=10"), reload);
    let daily = fetched::<Daily>(|| format!("/api/backups/daily?days={DAYS}"), reload);
    let status = fetched::<Value>(|| "/api/system-status".into(), reload);
    // What the backups occupy now, from the files themselves (retention included).
    let stored = RwSignal::new(None::<Result<u64, String>>);
    leptos::task::spawn_local(async move {
        stored.set(Some(super::storage::usage().await.map(|u| u.values().map(|(_, b)| b).sum())));
    });
    let db_count = move || {
        dbs.with(|d| d.as_ref().and_then(|r| r.as_ref().ok()).map(|v| v["total"].to_string()).unwrap_or_default())
    };
    view! {
        <h1>"Dashboard"</h1>
        <div class="cards">
            <div class="card">
                <div class="label">"Storage used"</div>
                <div class="value" id="stat-storage">{move || match stored.get() {
                    None => "…".to_string(),
                    Some(Ok(b)) => api::bytes(b as i64),
                    Some(Err(_)) => "?".to_string(),
                }}</div>
            </div>
            <div class="card">
                <div class="label">"Databases"</div>
                <div class="value" id="stat-databases">{db_count}</div>
            </div>
            {show(daily, |d: &Daily| {
                let todays = d.days.last().map(|t| t.completed + t.failed + t.in_flight).unwrap_or(0);
                let (done, failed) = (d.totals.completed, d.totals.failed);
                let rate = if done + failed == 0 {
                    "—".to_string()
                } else {
                    format!("{:.0} %", 100.0 * done as f64 / (done + failed) as f64)
                };
                view! {
                    <div class="card">
                        <div class="label">"Backups today"</div>
                        <div class="value" id="stat-today">{todays}</div>
                    </div>
                    <div class="card">
                        <div class="label">{format!("Success rate ({DAYS} days)")}</div>
                        <div class="value">{rate}</div>
                    </div>
                }
            })}
        </div>
        <section>
            <h2>"Alerts"</h2>
            {show(status, |s: &Value| {
                let alerts = s["alerts"].as_array().cloned().unwrap_or_default();
                if alerts.is_empty() {
                    view! { <p class="ok">"No alerts: every database is on schedule."</p> }.into_any()
                } else {
                    view! { <ul class="alerts">{alerts.into_iter().map(|a| view! {
                        <li class=format!("alert {}", a["severity"].as_str().unwrap_or("warning"))>
                            {a["message"].as_str().unwrap_or_default().to_string()}
                        </li>
                    }).collect_view()}</ul> }.into_any()
                }
            })}
        </section>
        <section id="drills">
            <h2>"Restore drills"</h2>
            {show(status, |s: &Value| {
                let rows = s["drills"]["databases"].as_array().cloned().unwrap_or_default();
                if rows.is_empty() {
                    return view! {
                        <p class="hint">"No policy asks for restore drills; set \"every N days\" on a policy."</p>
                    }
                    .into_any();
                }
                view! {
                    <table>
                        <thead><tr>
                            <th>"Database"</th><th>"Last drill"</th><th>"Last verified restore"</th>
                            <th>"Measured RTO"</th><th>"Result"</th>
                        </tr></thead>
                        <tbody>{rows.into_iter().map(|d| {
                            let text = |k: &str| d[k].as_str().unwrap_or_default().to_string();
                            let result = if d["running"] == true { "running".to_string() } else { text("last_result") };
                            let rto = d["rto_seconds"].as_f64().map(|s| format!("{s:.1} s")).unwrap_or_default();
                            view! {
                                <tr data-database=text("database_id")>
                                    <td>{text("database_alias")}</td>
                                    <td>{text("last_finished_at")}</td>
                                    <td class="verified-at">{text("last_verified_restore")}</td>
                                    <td class="rto">{rto}</td>
                                    <td>
                                        {(!result.is_empty()).then(|| badge(&result))}
                                        <div class="hint">{text("last_summary")}</div>
                                    </td>
                                </tr>
                            }
                        }).collect_view()}</tbody>
                    </table>
                }
                .into_any()
            })}
        </section>
        <section class="charts">
            {show(daily, |d: &Daily| charts(&d.days))}
        </section>
        <section>
            <h2>"Recent backups"</h2>
            {show(history, |h: &History| view! {
                <table>
                    <thead><tr><th>"When"</th><th>"Database"</th><th>"Status"</th><th>"Size"</th></tr></thead>
                    <tbody>{h.backups.iter().take(10).map(|b| view! {
                        <tr>
                            <td>{when(&b.created_at)}</td>
                            <td>{b.database_alias.clone()}</td>
                            <td>{badge(status_name(b.status))}</td>
                            <td>{b.file_size_bytes.map(api::bytes).unwrap_or_default()}</td>
                        </tr>
                    }).collect_view()}</tbody>
                </table>
            })}
        </section>
    }
}

pub fn status_name(s: BackupStatus) -> &'static str {
    s.as_str()
}

/// Bars per day: completed and failed backups, and the bytes stored by that day's backups.
fn charts(days: &[DayCounts]) -> impl IntoView {
    let most = days.iter().map(|d| d.completed + d.failed).max().unwrap_or(1).max(1) as f64;
    let mut total = 0i64;
    let cumulative: Vec<(String, i64)> = days
        .iter()
        .map(|d| {
            total += d.stored_bytes;
            (d.day.clone(), total)
        })
        .collect();
    let biggest = cumulative.last().map(|(_, b)| *b).unwrap_or(1).max(1) as f64;
    view! {
        <div class="chart">
            <h3>"Backups per day"</h3>
            <div class="bars" id="backups-per-day">{days.iter().map(|d| {
                let (ok, failed) = (d.completed, d.failed);
                let title = format!("{}: {ok} completed, {failed} failed", d.day);
                view! {
                    <div class="bar" title=title data-day=d.day.clone()>
                        <div class="seg failed" style=format!("height:{}%", 100.0 * failed as f64 / most)></div>
                        <div class="seg completed" style=format!("height:{}%", 100.0 * ok as f64 / most)></div>
                        <span>{d.day[5..].to_string()}</span>
                    </div>
                }
            }).collect_view()}</div>
        </div>
        <div class="chart">
            <h3>"Backed up over time (cumulative)"</h3>
            <div class="bars">{cumulative.into_iter().map(|(day, b)| {
                let title = format!("{day}: {}", api::bytes(b));
                view! {
                    <div class="bar" title=title>
                        <div class="seg stored" style=format!("height:{}%", 100.0 * b as f64 / biggest)></div>
                        <span>{day[5..].to_string()}</span>
                    </div>
                }
            }).collect_view()}</div>
        </div>
    }
}
