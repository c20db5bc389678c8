//! Databases: filter by server, type, policy or text; add with "use server credentials"; test the
//! connection; back up now; enable or disable.

use dilux_domain::user::Permission;
use dilux_domain::DatabaseView;
use leptos::prelude::*;
use serde::Deserialize;
use serde_json::{json, Value};

use super::servers::Engines;
use crate::api;
use crate::widgets::{connection_test, describe_test, fetched, show, Notice, Saver};

#[derive(Clone, Deserialize)]
struct Databases {
    databases: Vec<DatabaseView>,
    total: usize,
}

#[derive(Clone, Deserialize)]
struct Policies {
    policies: Vec<Value>,
}

#[component]
pub fn Databases() -> impl IntoView {
    let s = crate::session();
    let reload = RwSignal::new(0);
    let (server, kind, policy, search) = (
        RwSignal::new(String::new()),
        RwSignal::new(String::new()),
        RwSignal::new(String::new()),
        RwSignal::new(String::new()),
    );
    let page_size = s.me.with_untracked(|m| m.as_ref().map(|m| m.preferences.page_size).unwrap_or(25));
    let dbs = fetched::<Databases>(
        move || {
            api::query(
                &format!("/api/databases?page_size={page_size}"),
                &[
                    ("engine_id", server.get()),
                    ("engine_type", kind.get()),
                    ("policy_id", policy.get()),
                    ("search", search.get()),
                ],
            )
        },
        reload,
    );
    let engines = fetched::<Engines>(|| "/api/engines".into(), reload);
    let policies = fetched::<Policies>(|| "/api/backup-policies".into(), RwSignal::new(0));
    let adding = RwSignal::new(false);
    let editing = RwSignal::new(None::<DatabaseView>);
    let message = RwSignal::new(None::<Result<String, String>>);
    let can_manage = move || s.can(Permission::ManageDatabases);
    let can_backup = move || s.can(Permission::TriggerBackup);
    let act =
        move |label: &'static str,
              run: std::pin::Pin<Box<dyn std::future::Future<Output = Result<Value, api::ApiError>>>>| {
            message.set(Some(Ok(format!("{label}…"))));
            leptos::task::spawn_local(async move {
                let out = run.await;
                message.set(Some(match out {
                    Ok(v) if v.get("success").is_some() => describe_test(&v),
                    Ok(v) if v.get("backup_id").is_some() => Ok("Backup queued: follow it on the Backups page".into()),
                    Ok(_) => Ok(format!("{label}: done")),
                    Err(e) => Err(e.message),
                }));
                reload.update(|n| *n += 1);
            });
        };
    let engine_options = move || {
        engines.with(|e| {
            e.as_ref()
                .and_then(|r| r.as_ref().ok())
                .map(|l| l.engines.iter().map(|r| (r.engine.id.clone(), r.engine.name.clone())).collect::<Vec<_>>())
                .unwrap_or_default()
        })
    };
    let policy_options = move || {
        policies.with(|p| {
            p.as_ref()
                .and_then(|r| r.as_ref().ok())
                .map(|l| {
                    l.policies
                        .iter()
                        .map(|p| {
                            (
                                p["id"].as_str().unwrap_or_default().to_string(),
                                format!(
                                    "{} ({})",
                                    p["name"].as_str().unwrap_or_default(),
                                    p["summary"].as_str().unwrap_or_default()
                                ),
                            )
                        })
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
        })
    };
    let backup_now = move |id: String| {
        act(
            "Queueing backup",
            Box::pin(async move { api::post(&format!("/api/databases/{id}/backup"), &Value::Null).await }),
        )
    };
    let test = move |id: String| {
        act("Testing", Box::pin(async move { api::post(&format!("/api/databases/{id}/test"), &Value::Null).await }))
    };
    let toggle = move |id: String, enabled: bool| {
        act(
            if enabled { "Disabling" } else { "Enabling" },
            Box::pin(async move { api::put(&format!("/api/databases/{id}"), &json!({ "enabled": !enabled })).await }),
        )
    };
    view! {
        <h1>"Databases"</h1>
        <div class="toolbar">
            <input id="db-search" placeholder="Search" on:input=move |ev| search.set(event_target_value(&ev))/>
            <select id="db-server-filter" on:change=move |ev| server.set(event_target_value(&ev))>
                <option value="">"All servers"</option>
                {move || engine_options().into_iter().map(|(id, name)| view! {
                    <option value=id>{name}</option>
                }).collect_view()}
            </select>
            <select on:change=move |ev| kind.set(event_target_value(&ev))>
                <option value="">"All types"</option>
                <option value="postgresql">"PostgreSQL"</option>
                <option value="mysql">"MySQL / MariaDB"</option>
            </select>
            <select on:change=move |ev| policy.set(event_target_value(&ev))>
                <option value="">"All policies"</option>
                {move || policy_options().into_iter().map(|(id, name)| view! {
                    <option value=id>{name}</option>
                }).collect_view()}
            </select>
            <Show when=can_manage>
                <button id="add-database" on:click=move |_| adding.set(true)>"Add database"</button>
            </Show>
        </div>
        <Notice message=message/>
        <Show when=move || adding.get()>
            <DatabaseForm
                existing=None
                engines=engine_options()
                policies=policy_options()
                on_done=move || { adding.set(false); reload.update(|n| *n += 1); }
            />
        </Show>
        {move || editing.get().map(|d| view! {
            <DatabaseForm
                existing=Some(d)
                engines=engine_options()
                policies=policy_options()
                on_done=move || { editing.set(None); reload.update(|n| *n += 1); }
            />
        })}
        {show(dbs, move |list: &Databases| view! {
            <p class="count">{format!("{} database(s)", list.total)}</p>
            <table id="databases">
                <thead><tr>
                    <th>"Alias"</th><th>"Database"</th><th>"Server"</th><th>"Policy"</th><th>"Credentials"</th>
                    <th>"Enabled"</th><th></th>
                </tr></thead>
                <tbody>{list.databases.iter().map(|d| {
                    let (id, enabled) = (d.id.clone(), d.enabled);
                    let (i1, i2, i3) = (id.clone(), id.clone(), id.clone());
                    let for_edit = d.clone();
                    view! {
                        <tr data-alias=d.alias.clone()>
                            <td>{d.alias.clone()}</td>
                            <td>{d.name.clone()}</td>
                            <td>{d.engine_name.clone().unwrap_or_default()}</td>
                            <td>{d.policy_id.clone().unwrap_or_else(|| "server's".into())}</td>
                            <td>{if d.use_engine_credentials { "server's" } else { "own" }}</td>
                            <td>{if enabled { "yes" } else { "no" }}</td>
                            <td class="actions">
                                <Show when=can_backup>
                                    <button
                                        class="backup-now"
                                        on:click={let i = i1.clone(); move |_| backup_now(i.clone())}
                                    >
                                        "Backup now"
                                    </button>
                                </Show>
                                <Show when=can_manage>
                                    <button
                                        class="edit"
                                        on:click={let d = for_edit.clone(); move |_| editing.set(Some(d.clone()))}
                                    >
                                        "Edit"
                                    </button>
                                    <button on:click={let i = i2.clone(); move |_| test(i.clone())}>"Test"</button>
                                    <button on:click={let i = i3.clone(); move |_| toggle(i.clone(), enabled)}>
                                        {if enabled { "Disable" } else { "Enable" }}
                                    </button>
                                </Show>
                            </td>
                        </tr>
                    }
                }).collect_view()}</tbody>
            </table>
        })}
    }
}

/// Adds a database, or edits `existing` (a blank password keeps the stored one).
#[component]
fn DatabaseForm(
    existing: Option<DatabaseView>,
    engines: Vec<(String, String)>,
    policies: Vec<(String, String)>,
    on_done: impl Fn() + Clone + Send + Sync + 'static,
) -> impl IntoView {
    let d = existing.clone();
    let editing = d.as_ref().map(|d| d.id.clone());
    let is_edit = editing.is_some();
    let saver = Saver::new("/api/databases", editing.clone());
    let engine_id = RwSignal::new(
        d.as_ref()
            .map(|d| d.engine_id.clone())
            .or_else(|| engines.first().map(|(id, _)| id.clone()))
            .unwrap_or_default(),
    );
    let name = RwSignal::new(d.as_ref().map(|d| d.name.clone()).unwrap_or_default());
    let alias = RwSignal::new(d.as_ref().map(|d| d.alias.clone()).unwrap_or_default());
    let policy = RwSignal::new(d.as_ref().and_then(|d| d.policy_id.clone()).unwrap_or_default());
    let inherit = RwSignal::new(d.as_ref().is_none_or(|d| d.use_engine_credentials));
    let username = RwSignal::new(d.as_ref().and_then(|d| d.username.clone()).unwrap_or_default());
    let password = RwSignal::new(String::new());
    let message = RwSignal::new(None::<Result<String, String>>);
    let credentials = move |b: &mut Value| {
        if !inherit.get_untracked() {
            b["username"] = username.get_untracked().into();
            // Editing: a blank password keeps the stored one.
            if !(is_edit && password.get_untracked().is_empty()) {
                b["password"] = password.get_untracked().into();
            }
        }
    };
    let edit_id = editing.clone();
    let test = move |_| {
        let mut b = json!({ "engine_id": engine_id.get_untracked(), "database": name.get_untracked() });
        credentials(&mut b);
        // Editing without a new password: test what is stored.
        let saved = edit_id.clone().filter(|_| inherit.get_untracked() || password.get_untracked().is_empty());
        connection_test(message, saved.map(|id| format!("/api/databases/{id}/test")), b);
    };
    let done = on_done.clone();
    let save = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let mut b = json!({
            "engine_id": engine_id.get_untracked(),
            "name": name.get_untracked(),
            "use_engine_credentials": inherit.get_untracked()
        });
        if !alias.get_untracked().is_empty() {
            b["alias"] = alias.get_untracked().into();
        }
        if !policy.get_untracked().is_empty() {
            b["policy_id"] = policy.get_untracked().into();
        }
        credentials(&mut b);
        if saver.is_edit() {
            if let Some(o) = b.as_object_mut() {
                o.remove("engine_id");
            }
        }
        saver.save(b, message, done.clone());
    };
    view! {
        <form class="dialog" id=if is_edit { "edit-database-form" } else { "add-database-form" } on:submit=save>
            <h2>{if is_edit { "Edit database" } else { "Add database" }}</h2>
            <label>"Server"
                <select name="engine_id" disabled=is_edit on:change=move |ev| engine_id.set(event_target_value(&ev))>
                    {engines.into_iter().map(|(id, n)| {
                        let sel = id == engine_id.get_untracked();
                        view! { <option value=id selected=sel>{n}</option> }
                    }).collect_view()}
                </select>
            </label>
            <label>"Database name"
                <input name="name" required prop:value=name on:input=move |ev| name.set(event_target_value(&ev))/>
            </label>
            <label>"Alias"
                <input
                    name="alias"
                    placeholder="same as the name"
                    prop:value=alias
                    on:input=move |ev| alias.set(event_target_value(&ev))
                />
            </label>
            <label>"Policy"
                <select name="policy_id" on:change=move |ev| policy.set(event_target_value(&ev))>
                    <option value="">"The server's, else the default"</option>
                    {policies.into_iter().map(|(id, n)| {
                        let sel = id == policy.get_untracked();
                        view! { <option value=id selected=sel>{n}</option> }
                    }).collect_view()}
                </select>
            </label>
            <label class="toggle">
                <input
                    type="checkbox"
                    name="use_engine_credentials"
                    prop:checked=inherit
                    on:change=move |ev| inherit.set(event_target_checked(&ev))
                />
                " Use server credentials"
            </label>
            <Show when=move || !inherit.get()>
                <label>"Username"
                    <input
                        name="username"
                        autocomplete="off"
                        prop:value=username
                        on:input=move |ev| username.set(event_target_value(&ev))
                    />
                </label>
                <label>
                    {if is_edit { "New password (blank keeps the current one)" } else { "Password" }}
                    <input
                        name="password"
                        type="password"
                        autocomplete="new-password"
                        on:input=move |ev| password.set(event_target_value(&ev))
                    />
                </label>
            </Show>
            <div class="buttons">
                <button type="button" id="test-database" on:click=test>"Test connection"</button>
                <button type="submit" id="save-database">"Save"</button>
                <button type="button" class="link" on:click={let d = on_done.clone(); move |_| d()}>"Cancel"</button>
            </div>
            <Notice message=message/>
        </form>
    }
}
