//! Restores: the dialog a completed backup's Restore action opens (target server, new database name,
//! then the restore followed live to its result in words), and the Restores page (the history).

use dilux_domain::restore::RestoreResult;
use dilux_domain::{BackupResult, BackupStatus};
use leptos::prelude::*;
use serde::Deserialize;
use serde_json::{json, Value};

use super::dashboard::status_name;
use crate::api;
use crate::widgets::{badge, fetched, show, when, Notice};

#[derive(Clone, Deserialize)]
struct RestoreList {
    restores: Vec<RestoreResult>,
}

/// A finished restore in one sentence.
fn outcome(r: &RestoreResult) -> Result<String, String> {
    let kept = r.previous_copy.as_ref().map(|p| format!("; the previous copy is `{p}`")).unwrap_or_default();
    let checked = r.verification.as_ref().map(|v| format!(". Content check: {}", v.summary)).unwrap_or_default();
    match r.status {
        BackupStatus::Completed => Ok(format!(
            "Restored into `{}` on {} in {:.1} s: {} stored, {} of SQL, checksum verified{kept}{checked}",
            r.target_database,
            r.target_engine_name,
            r.duration_seconds.unwrap_or(0.0),
            r.bytes_total.map(api::bytes).unwrap_or_default(),
            r.bytes_restored.map(api::bytes).unwrap_or_default(),
        )),
        _ => Err(format!(
            "Restore into `{}` failed ({}): {}",
            r.target_database,
            r.error_class.map(|c| c.to_string()).unwrap_or_else(|| "error".into()),
            r.error_message.clone().unwrap_or_default(),
        )),
    }
}

/// A running restore in words: "in progress: 12.0 MiB of 48.0 MiB (25 %)".
fn progress(r: &RestoreResult) -> String {
    let state = status_name(r.status).replace('_', " ");
    match (r.progress_bytes, r.bytes_total) {
        (Some(done), Some(total)) if total > 0 => format!(
            "{state}: {} of {} ({:.0} %)…",
            api::bytes(done),
            api::bytes(total),
            done as f64 * 100.0 / total as f64
        ),
        _ => format!("{state}…"),
    }
}

/// Restore `backup`: choose where, start it, follow it to its end.
#[component]
pub fn RestoreDialog(backup: BackupResult, on_close: Callback<()>) -> impl IntoView {
    let engines = fetched::<Value>(
        {
            let t = backup.database_type.as_str();
            move || format!("/api/engines?engine_type={t}")
        },
        RwSignal::new(0),
    );
    let target_engine = RwSignal::new(backup.engine_id.clone());
    let target_name = RwSignal::new(String::new());
    let s = crate::session();
    // Replacing the original: admins only, with its name typed.
    let can_replace = backup.database_type != dilux_domain::EngineType::Sqlserver
        && s.me.with_untracked(|m| m.as_ref().is_some_and(|m| m.role == dilux_domain::user::Role::Admin));
    let replace = RwSignal::new(false);
    let confirm = RwSignal::new(String::new());
    // A PostgreSQL custom archive restores table by table too.
    let selective =
        dilux_domain::format::DumpFormat::of_name(&backup.blob_name) == dilux_domain::format::DumpFormat::Custom;
    let tables = RwSignal::new(String::new());
    let original = backup.database_name.clone();
    let message = RwSignal::new(None::<Result<String, String>>);
    let running = RwSignal::new(None::<String>);
    let blob = backup.blob_name.clone();
    let follow = move |id: String| {
        leptos::task::spawn_local(async move {
            loop {
                match api::get::<RestoreResult>(&format!("/api/restores/{id}")).await {
                    Ok(r) if r.status.is_final() => {
                        message.set(Some(outcome(&r)));
                        running.set(None);
                        return;
                    }
                    Ok(r) => running.set(Some(progress(&r))),
                    Err(e) => {
                        message.set(Some(Err(e.message)));
                        running.set(None);
                        return;
                    }
                }
                gloo_timers::future::TimeoutFuture::new(1_000).await;
            }
        });
    };
    let start = move |_| {
        let mut body = json!({ "blob_name": blob.clone(), "target_engine_id": target_engine.get_untracked() });
        let name = target_name.get_untracked();
        if replace.get_untracked() {
            body["mode"] = "replace".into();
            body["confirm"] = confirm.get_untracked().into();
        } else {
            if !name.trim().is_empty() {
                body["target_database"] = name.trim().into();
            }
            let chosen = table_list(&tables.get_untracked());
            if !chosen.is_empty() {
                body["tables"] = chosen.into();
            }
        }
        message.set(None);
        leptos::task::spawn_local(async move {
            match api::post("/api/backups/restore", &body).await {
                Ok(v) => {
                    running.set(Some(format!("queued into `{}`…", v["target_database"].as_str().unwrap_or(""))));
                    follow(v["restore_id"].as_str().unwrap_or_default().to_string());
                }
                Err(e) => message.set(Some(Err(e.message))),
            }
        });
    };
    let engine_options = move || {
        engines
            .with(|e| {
                e.as_ref()
                    .and_then(|r| r.as_ref().ok())
                    .map(|v| v["engines"].as_array().cloned().unwrap_or_default())
                    .unwrap_or_default()
            })
            .into_iter()
            .map(|e| {
                let id = e["id"].as_str().unwrap_or_default().to_string();
                let selected = id == target_engine.get_untracked();
                let label = format!("{} ({})", e["name"].as_str().unwrap_or(""), e["host"].as_str().unwrap_or(""));
                view! { <option value=id selected=selected>{label}</option> }
            })
            .collect_view()
    };
    let default_name = format!("{}_restored_<date>", backup.database_name);
    view! {
        <div class="dialog" id="restore-dialog">
            <h2>{format!("Restore {} of {}", when(&backup.created_at), backup.database_alias)}</h2>
            <Show when=move || !replace.get()>
                <p>
                    "Into a new database; nothing existing is touched. The backup's SHA-256 is checked while it \
                     streams, and nothing is kept unless all of it restored."
                </p>
            </Show>
            <label>"Server"
                <select id="restore-server" on:change=move |ev| target_engine.set(event_target_value(&ev))>
                    {engine_options}
                </select>
            </label>
            <Show when=move || !replace.get()>
                <label>"New database name"
                    <input
                        id="restore-name"
                        placeholder=default_name.clone()
                        prop:value=target_name
                        on:input=move |ev| target_name.set(event_target_value(&ev))
                    />
                </label>
            </Show>
            {selective.then(|| view! {
                <Show when=move || !replace.get()>
                    <label>"Only these tables (optional)"
                        <input
                            id="restore-tables"
                            placeholder="public.orders, sales.customers"
                            prop:value=tables
                            on:input=move |ev| tables.set(event_target_value(&ev))
                        />
                    </label>
                    <p class="hint">
                        "Their rows come back into the whole schema; the other tables come back empty, and foreign \
                         keys between a chosen and an unchosen table are left out. Empty: everything."
                    </p>
                </Show>
            })}
            {can_replace.then(|| view! {
                <label class="toggle">
                    <input
                        type="checkbox"
                        id="restore-replace"
                        on:change=move |ev| replace.set(event_target_checked(&ev))
                    />
                    " Replace the original database"
                </label>
            })}
            <Show when=move || replace.get()>
                <p class="warning" id="restore-replace-warning">
                    {format!(
                        "`{original}` will be replaced by this backup, once it restored and matched the backup \
                         table by table. Its sessions are ended; the current content is kept as \
                         `{original}_before_restore_<date>` until you drop it. Type `{original}` to confirm."
                    )}
                </p>
                <input
                    id="restore-confirm"
                    placeholder="database name"
                    prop:value=confirm
                    on:input=move |ev| confirm.set(event_target_value(&ev))
                />
            </Show>
            <div class="buttons">
                <button id="restore-start" disabled=move || running.with(Option::is_some) on:click=start>
                    "Restore"
                </button>
                <button class="link" on:click=move |_| on_close.run(())>"Close"</button>
            </div>
            {move || running.get().map(|s| view! { <p class="loading" id="restore-progress">{s}</p> })}
            <Notice message=message/>
        </div>
    }
}

/// The restore history.
#[component]
pub fn Restores() -> impl IntoView {
    let reload = RwSignal::new(0);
    let list = fetched::<RestoreList>(|| "/api/restores?page_size=100".into(), reload);
    // While any restore runs, look again every 2 seconds.
    Effect::new(move |_| {
        let busy = list.with(|l| {
            l.as_ref().and_then(|r| r.as_ref().ok()).is_some_and(|l| l.restores.iter().any(|r| !r.status.is_final()))
        });
        if busy {
            leptos::task::spawn_local(async move {
                gloo_timers::future::TimeoutFuture::new(2_000).await;
                reload.update(|n| *n += 1);
            });
        }
    });
    view! {
        <h1>"Restores"</h1>
        {show(list, |l: &RestoreList| view! {
            <table id="restores">
                <thead><tr>
                    <th>"When"</th><th>"Backup of"</th><th>"Into"</th><th>"Status"</th><th>"Size"</th>
                    <th>"Took"</th><th>"By"</th><th>"Checked"</th><th>"Details"</th>
                </tr></thead>
                <tbody>{l.restores.iter().map(|r| {
                    let details = if r.status == BackupStatus::Failed { outcome(r).err() } else { None };
                    view! {
                        <tr data-status=status_name(r.status)>
                            <td>{when(&r.created_at)}</td>
                            <td>{r.source_database_alias.clone()}</td>
                            <td>{format!("{} on {}", r.target_database, r.target_engine_name)}</td>
                            <td>{badge(status_name(r.status))}</td>
                            <td>{if r.status.is_final() {
                                r.bytes_total.map(api::bytes).unwrap_or_default()
                            } else {
                                progress(r)
                            }}</td>
                            <td>{r.duration_seconds.map(|d| format!("{d:.1} s")).unwrap_or_default()}</td>
                            <td>{r.requested_by.clone()}</td>
                            <td class="checked">{r.verification.as_ref().map(|v| v.summary.clone())}</td>
                            <td class="details">{details}</td>
                        </tr>
                    }
                }).collect_view()}</tbody>
            </table>
        })}
    }
}

/// Table names as typed: separated by commas or new lines (a name may hold spaces).
fn table_list(typed: &str) -> Vec<String> {
    typed.split([',', '\n']).map(str::trim).filter(|t| !t.is_empty()).map(str::to_string).collect()
}
