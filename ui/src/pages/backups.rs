//! Backup history: filters, paging, live status of queued and running jobs, download, and delete
//! (one or several) with confirmation.

use dilux_domain::user::Permission;
use dilux_domain::BackupResult;
use leptos::prelude::*;
use serde::Deserialize;
use serde_json::{json, Value};

use super::dashboard::status_name;
use crate::api;
use crate::widgets::{badge, current_cursor, fetched, show, when, Notice, Pager};

#[derive(Clone, Deserialize)]
struct History {
    backups: Vec<BackupResult>,
    next_cursor: Option<String>,
}

#[component]
pub fn Backups() -> impl IntoView {
    let s = crate::session();
    let reload = RwSignal::new(0);
    let (database, status) = (RwSignal::new(String::new()), RwSignal::new(String::new()));
    // Cursors of the pages before this one, and this page's.
    let cursors = RwSignal::new(Vec::<String>::new());
    let page_size = s.me.with_untracked(|m| m.as_ref().map(|m| m.preferences.page_size).unwrap_or(25));
    let history = fetched::<History>(
        move || {
            let cursor = current_cursor(cursors);
            api::query(
                &format!("/api/backups?page_size={page_size}"),
                &[("database_id", database.get()), ("status", status.get()), ("cursor", cursor)],
            )
        },
        reload,
    );
    let dbs = fetched::<Value>(|| "/api/databases?page_size=200".into(), RwSignal::new(0));
    // While anything is queued or running, look again every 2 seconds.
    Effect::new(move |_| {
        let busy = history.with(|h| {
            h.as_ref().and_then(|r| r.as_ref().ok()).is_some_and(|h| h.backups.iter().any(|b| !b.status.is_final()))
        });
        if busy {
            leptos::task::spawn_local(async move {
                gloo_timers::future::TimeoutFuture::new(2_000).await;
                reload.update(|n| *n += 1);
            });
        }
    });
    let selected = RwSignal::new(Vec::<String>::new());
    let restoring = RwSignal::new(None::<BackupResult>);
    let confirming = RwSignal::new(false);
    let message = RwSignal::new(None::<Result<String, String>>);
    let can_delete = move || s.can(Permission::DeleteBackups);
    let can_restore = move || s.can(Permission::ManageDatabases);
    let can_download = move || s.can(Permission::DownloadBackups);
    let force = RwSignal::new(false);
    let download = move |blob: String| {
        leptos::task::spawn_local(async move {
            match api::get::<Value>(&format!("/api/backups/download?blob_name={}", api::enc(&blob))).await {
                Ok(v) => {
                    let url = v["url"].as_str().unwrap_or_default().to_string();
                    let encrypted = match v["encrypted"].as_bool() {
                        Some(true) => "; it is encrypted: age -d -i <identity file> decrypts it",
                        _ => "",
                    };
                    message.set(Some(Ok(format!(
                        "Download link ready (valid 15 minutes), SHA-256 {}{encrypted}",
                        v["sha256"].as_str().unwrap_or("?")
                    ))));
                    save_link(&url);
                }
                Err(e) => message.set(Some(Err(e.message))),
            }
        });
    };
    // A suspect backup confirmed by an admin counts toward the keep windows again.
    let confirm_suspect = move |id: String| {
        leptos::task::spawn_local(async move {
            match api::post(&format!("/api/backups/{}/confirm", api::enc(&id)), &json!({})).await {
                Ok(_) => message.set(Some(Ok("Confirmed: the backup counts toward its policy's keep windows".into()))),
                Err(e) => message.set(Some(Err(e.message))),
            }
            reload.update(|n| *n += 1);
        });
    };
    let delete_selected = move |_| {
        let names = selected.get_untracked();
        leptos::task::spawn_local(async move {
            let body = json!({ "blob_names": names, "force": force.get_untracked() });
            match api::post("/api/backups/delete-bulk", &body).await {
                Ok(v) => {
                    let failed = v["failed"].as_array().cloned().unwrap_or_default();
                    message.set(Some(if failed.is_empty() {
                        Ok(format!("Deleted {} backup(s)", v["deleted"].as_array().map(Vec::len).unwrap_or(0)))
                    } else {
                        Err(failed
                            .iter()
                            .map(|f| {
                                format!(
                                    "{}: {}",
                                    f["blob_name"].as_str().unwrap_or(""),
                                    f["error"].as_str().unwrap_or("")
                                )
                            })
                            .collect::<Vec<_>>()
                            .join("; "))
                    }));
                    selected.set(vec![]);
                }
                Err(e) => message.set(Some(Err(e.message))),
            }
            confirming.set(false);
            force.set(false);
            reload.update(|n| *n += 1);
        });
    };
    let db_options = move || {
        dbs.with(|d| {
            d.as_ref()
                .and_then(|r| r.as_ref().ok())
                .map(|v| v["databases"].as_array().cloned().unwrap_or_default())
                .unwrap_or_default()
        })
        .into_iter()
        .map(|d| {
            let id = d["id"].as_str().unwrap_or_default().to_string();
            view! { <option value=id>{d["alias"].as_str().unwrap_or_default().to_string()}</option> }
        })
        .collect_view()
    };
    view! {
        <h1>"Backups"</h1>
        <div class="toolbar">
            <select
                id="backup-db-filter"
                on:change=move |ev| { cursors.set(vec![]); database.set(event_target_value(&ev)) }
            >
                <option value="">"All databases"</option>
                {db_options}
            </select>
            <select
                id="backup-status-filter"
                on:change=move |ev| { cursors.set(vec![]); status.set(event_target_value(&ev)) }
            >
                <option value="">"Any status"</option>
                {["pending", "in_progress", "completed", "failed"].map(|s| view! {
                    <option value=s>{s.replace('_', " ")}</option>
                })}
            </select>
            <Show when=move || can_delete() && selected.with(|s| !s.is_empty())>
                <button class="danger" id="delete-selected" on:click=move |_| confirming.set(true)>
                    {move || format!("Delete {} selected", selected.with(Vec::len))}
                </button>
            </Show>
        </div>
        <Show when=move || confirming.get()>
            <div class="dialog" id="confirm-delete-backups">
                <p class="warning">
                    {move || selected.with(|s| format!(
                        "Delete {} backup file(s) and their history? This cannot be undone. ({})",
                        s.len(),
                        s.join(", ")
                    ))}
                </p>
                <label>
                    <input
                        type="checkbox"
                        id="force-delete"
                        prop:checked=move || force.get()
                        on:change=move |ev| force.set(event_target_checked(&ev))
                    />
                    " Also a database's newest completed backup (the one a restore would use)"
                </label>
                <button class="danger" id="confirm-delete" on:click=delete_selected>"Delete"</button>
                <button class="link" on:click=move |_| confirming.set(false)>"Cancel"</button>
            </div>
        </Show>
        {move || restoring.get().map(|b| view! {
            <super::restores::RestoreDialog backup=b on_close=Callback::new(move |()| restoring.set(None))/>
        })}
        <Notice message=message/>
        {show(history, move |h: &History| {
            let next = h.next_cursor.clone();
            view! {
                <table id="backups">
                    <thead><tr>
                        <th></th><th>"When"</th><th>"Database"</th><th>"Status"</th><th>"Tiers / trigger"</th>
                        <th>"Size"</th><th>"Took"</th><th>"Verified restore"</th><th>"Details"</th><th></th>
                    </tr></thead>
                    <tbody>{h.backups.iter().map(|b| {
                        let blob = b.blob_name.clone();
                        let (b1, b2, b3) = (blob.clone(), blob.clone(), blob.clone());
                        let done = b.status == dilux_domain::BackupStatus::Completed;
                        let this = b.clone();
                        let is_final = b.status.is_final();
                        let tiers = if b.tiers.is_empty() {
                            format!("{:?}", b.triggered_by).to_lowercase()
                        } else {
                            b.tiers.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(", ")
                        };
                        let kind = b.error_class.unwrap_or(dilux_domain::ErrorClass::ToolFailed);
                        let details = b.error_message.clone().map(|m| format!("{kind:?}: {m}")).unwrap_or_default();
                        let verified = verified_cell(b);
                        view! {
                            <tr data-status=status_name(b.status)>
                                <td><Show when=move || can_delete() && is_final>
                                    <input type="checkbox" class="select" on:change={let n = b1.clone(); move |ev| {
                                        let on = event_target_checked(&ev);
                                        selected.update(|s| if on { s.push(n.clone()) } else { s.retain(|x| *x != n) });
                                    }}/>
                                </Show></td>
                                <td>{when(&b.created_at)}</td>
                                <td>{b.database_alias.clone()}</td>
                                <td>
                                    {badge(status_name(b.status))}
                                    {b.suspect.clone().map(|why| view! {
                                        <span class="badge suspect" title=why.clone()>"suspect"</span>
                                        <p class="hint suspect-reason">{why}</p>
                                    })}
                                </td>
                                <td>{tiers}</td>
                                <td>
                                    {b.file_size_bytes.map(api::bytes).unwrap_or_default()}
                                    {b.encrypted.then(|| view! {
                                        <span class="badge encrypted" title="Encrypted with age to its policy's \
                                            recipients: the product restores it with the dumper-host's identity">
                                            "encrypted"
                                        </span>
                                    })}
                                </td>
                                <td>{b.duration_seconds.map(|d| format!("{d:.1} s")).unwrap_or_default()}</td>
                                <td class="verified">{verified}</td>
                                <td class="details">{details}</td>
                                <td class="actions">
                                    {(done && can_download()).then(|| view! {
                                        <button
                                            class="download"
                                            on:click={let n = b2.clone(); move |_| download(n.clone())}
                                        >
                                            "Download"
                                        </button>
                                    })}
                                    {(done && can_restore()).then(|| view! {
                                        <button
                                            class="restore"
                                            on:click={let b = this.clone(); move |_| restoring.set(Some(b.clone()))}
                                        >
                                            "Restore"
                                        </button>
                                    })}
                                    {(b.suspect.is_some() && can_delete()).then(|| view! {
                                        <button
                                            class="confirm-suspect"
                                            on:click={let id = this.id.clone(); move |_| confirm_suspect(id.clone())}
                                        >
                                            "Confirm"
                                        </button>
                                    })}
                                    <Show when=move || can_delete() && is_final>
                                        <button
                                            class="danger delete-one"
                                            on:click={
                                                let n = b3.clone();
                                                move |_| { selected.set(vec![n.clone()]); confirming.set(true) }
                                            }
                                        >
                                            "Delete"
                                        </button>
                                    </Show>
                                </td>
                            </tr>
                        }
                    }).collect_view()}</tbody>
                </table>
                <Pager cursors=cursors next=next/>
            }
        })}
    }
}

/// The newest restore or drill of a backup: its result, the measured recovery time and what was
/// compared; or the manifest it will be checked against.
fn verified_cell(b: &dilux_domain::BackupResult) -> impl IntoView {
    use dilux_domain::restore::{RestorePurpose, VerificationResult};
    let manifest = match (b.manifest_tables, b.manifest_rows) {
        (Some(t), Some(r)) => format!("manifest: {t} tables, {r} rows"),
        _ => String::new(),
    };
    match &b.last_verification {
        None => view! { <span class="hint">{manifest}</span> }.into_any(),
        Some(v) => {
            let result = match v.result {
                VerificationResult::Passed => "passed",
                VerificationResult::Failed => "failed",
                VerificationResult::Unverified => "unverified",
            };
            let by = match v.purpose {
                RestorePurpose::Drill => "drill",
                RestorePurpose::Restore => "restore",
            };
            let rto = v.restore_seconds.map(|s| format!(", restored in {s:.1} s")).unwrap_or_default();
            view! {
                <span data-verification=result>
                    {badge(result)}
                    <div class="hint">{format!("{by} {}{rto}", when(&v.checked_at))}</div>
                    <div class="hint summary">{v.summary.clone()}</div>
                </span>
            }
            .into_any()
        }
    }
}

/// Starts the download of `url` from a detached link: no navigation, so the signed link never becomes an
/// entry of the tab's history, and `noreferrer` keeps this page's address from the storage service.
fn save_link(url: &str) {
    use wasm_bindgen::JsCast as _;
    let Some(doc) = web_sys::window().and_then(|w| w.document()) else { return };
    let Some(a) = doc.create_element("a").ok().and_then(|e| e.dyn_into::<web_sys::HtmlAnchorElement>().ok()) else {
        return;
    };
    a.set_href(url);
    a.set_download("");
    a.set_rel("noreferrer noopener");
    a.click();
}
