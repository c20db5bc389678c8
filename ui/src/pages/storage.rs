//! Storage: bytes kept per database and per server, from the backup files themselves.

use std::collections::BTreeMap;

use leptos::prelude::*;
use serde_json::Value;

use crate::api;

/// Every file in the container (following markers), grouped by `{engine}/{database id}/`.
pub async fn usage() -> Result<BTreeMap<String, (u64, u64)>, String> {
    let mut by_db: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut marker: Option<String> = None;
    for _ in 0..500 {
        let mut q = "/api/backups/files?page_size=200".to_string();
        if let Some(m) = &marker {
            q.push_str(&format!("&marker={}", api::enc(m)));
        }
        let page: Value = api::get(&q).await.map_err(|e| e.message)?;
        for f in page["files"].as_array().cloned().unwrap_or_default() {
            let id = f["name"].as_str().unwrap_or_default().split('/').nth(1).unwrap_or_default().to_string();
            let e = by_db.entry(id).or_default();
            e.0 += 1;
            e.1 += f["size_bytes"].as_u64().unwrap_or(0);
        }
        marker = page["next_marker"].as_str().map(str::to_string);
        if marker.is_none() {
            break;
        }
    }
    Ok(by_db)
}

#[component]
pub fn Storage() -> impl IntoView {
    let data = RwSignal::new(None::<Result<(BTreeMap<String, (u64, u64)>, Value), String>>);
    leptos::task::spawn_local(async move {
        let dbs = api::get::<Value>("/api/databases?page_size=200").await.map_err(|e| e.message);
        data.set(Some(match (usage().await, dbs) {
            (Ok(u), Ok(d)) => Ok((u, d)),
            (Err(e), _) | (_, Err(e)) => Err(e),
        }));
    });
    view! {
        <h1>"Storage"</h1>
        {move || data.with(|d| match d {
            None => view! { <p class="loading">"Counting backup files…"</p> }.into_any(),
            Some(Err(e)) => view! { <p class="error" role="alert">{e.clone()}</p> }.into_any(),
            Some(Ok((usage, dbs))) => {
                let dbs = dbs["databases"].as_array().cloned().unwrap_or_default();
                let name_of = |id: &str| {
                    dbs.iter()
                        .find(|d| d["id"] == id)
                        .map(|d| {
                            (
                                d["alias"].as_str().unwrap_or_default().to_string(),
                                d["engine_name"].as_str().unwrap_or_default().to_string(),
                            )
                        })
                        .unwrap_or_else(|| (format!("{id} (deleted)"), "—".into()))
                };
                let mut by_server: BTreeMap<String, u64> = BTreeMap::new();
                let rows: Vec<(String, String, u64, u64)> = usage.iter().map(|(id, (n, b))| {
                    let (alias, server) = name_of(id);
                    *by_server.entry(server.clone()).or_default() += b;
                    (alias, server, *n, *b)
                }).collect();
                let total: u64 = rows.iter().map(|r| r.3).sum();
                let files: u64 = rows.iter().map(|r| r.2).sum();
                view! {
                    <p class="count">{format!("{} in {} file(s)", api::bytes(total as i64), files)}</p>
                    <h2>"By server"</h2>
                    <table id="storage-servers">
                        <thead><tr><th>"Server"</th><th>"Stored"</th></tr></thead>
                        <tbody>{by_server.into_iter().map(|(s, b)| view! {
                            <tr><td>{s}</td><td>{api::bytes(b as i64)}</td></tr>
                        }).collect_view()}</tbody>
                    </table>
                    <h2>"By database"</h2>
                    <table id="storage-databases">
                        <thead><tr><th>"Database"</th><th>"Server"</th><th>"Files"</th><th>"Stored"</th></tr></thead>
                        <tbody>{rows.into_iter().map(|(a, s, n, b)| view! {
                            <tr><td>{a}</td><td>{s}</td><td>{n}</td><td>{api::bytes(b as i64)}</td></tr>
                        }).collect_view()}</tbody>
                    </table>
                }.into_any()
            }
        })}
    }
}
