//! Servers (engines): list with database counts and a type filter; add with a connection test;
//! discovery that imports chosen databases; delete with a cascade confirmation.

use dilux_domain::user::Permission;
use dilux_domain::EngineView;
use leptos::prelude::*;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::api;
use crate::widgets::{connection_test, describe_test, fetched, show, Notice, Saver};

#[derive(Clone, Deserialize)]
pub struct EngineRow {
    #[serde(flatten)]
    pub engine: EngineView,
    #[serde(default)]
    pub database_count: usize,
}

#[derive(Clone, Deserialize)]
pub struct Engines {
    pub engines: Vec<EngineRow>,
}

#[component]
pub fn Servers() -> impl IntoView {
    let s = crate::session();
    let reload = RwSignal::new(0);
    let type_filter = RwSignal::new(String::new());
    let engines = fetched::<Engines>(
        move || {
            let t = type_filter.get();
            if t.is_empty() {
                "/api/engines".into()
            } else {
                format!("/api/engines?engine_type={t}")
            }
        },
        reload,
    );
    let adding = RwSignal::new(false);
    let editing = RwSignal::new(None::<EngineView>);
    let discovering = RwSignal::new(None::<EngineView>);
    let deleting = RwSignal::new(None::<EngineRow>);
    let message = RwSignal::new(None::<Result<String, String>>);
    let can_manage = move || s.can(Permission::ManageDatabases);
    let test = move |id: String| connection_test(message, Some(format!("/api/engines/{id}/test")), Value::Null);
    view! {
        <h1>"Servers"</h1>
        <div class="toolbar">
            <select id="server-type-filter" on:change=move |ev| type_filter.set(event_target_value(&ev))>
                <option value="">"All types"</option>
                <option value="postgresql">"PostgreSQL"</option>
                <option value="mysql">"MySQL / MariaDB"</option>
                <option value="sqlserver">"SQL Server"</option>
            </select>
            <Show when=can_manage>
                <button id="add-server" on:click=move |_| adding.set(true)>"Add server"</button>
            </Show>
        </div>
        <Notice message=message/>
        <Show when=move || adding.get()>
            <ServerForm existing=None on_done=move || { adding.set(false); reload.update(|n| *n += 1); }/>
        </Show>
        {move || editing.get().map(|e| view! {
            <ServerForm existing=Some(e) on_done=move || { editing.set(None); reload.update(|n| *n += 1); }/>
        })}
        {move || discovering.get().map(|e| view! {
            <Discover engine=e on_done=move || { discovering.set(None); reload.update(|n| *n += 1); }/>
        })}
        {move || deleting.get().map(|e| view! {
            <DeleteServer row=e on_done=move || { deleting.set(None); reload.update(|n| *n += 1); }/>
        })}
        {show(engines, move |list: &Engines| view! {
            <table id="servers">
                <thead><tr>
                    <th>"Name"</th><th>"Type"</th><th>"Host"</th><th>"TLS"</th><th>"Databases"</th>
                    <th>"Credentials"</th><th></th>
                </tr></thead>
                <tbody>{list.engines.iter().map(|row| {
                    let e = row.engine.clone();
                    let (id1, e2, row2) = (e.id.clone(), e.clone(), row.clone());
                    view! {
                        <tr>
                            <td>{e.name.clone()}</td>
                            <td>{e.engine_type.as_str()}</td>
                            <td>{format!("{}:{}", e.host, e.port)}</td>
                            <td class="tls">{e.tls_effective.as_str()}</td>
                            <td>{row.database_count}</td>
                            <td>{if e.has_password { "server credentials" } else { "per database" }}</td>
                            <td class="actions">
                                <Show when=can_manage>
                                    <button on:click={let id = id1.clone(); move |_| test(id.clone())}>"Test"</button>
                                    <button
                                        class="edit"
                                        on:click={let e = e2.clone(); move |_| editing.set(Some(e.clone()))}
                                    >
                                        "Edit"
                                    </button>
                                    <button
                                        class="discover"
                                        on:click={let e = e2.clone(); move |_| discovering.set(Some(e.clone()))}
                                    >
                                        "Discover"
                                    </button>
                                    <button
                                        class="danger"
                                        on:click={let r = row2.clone(); move |_| deleting.set(Some(r.clone()))}
                                    >
                                        "Delete"
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

/// Adds a server, or edits `existing` (a blank password keeps the stored one).
#[component]
fn ServerForm(existing: Option<EngineView>, on_done: impl Fn() + Clone + Send + Sync + 'static) -> impl IntoView {
    let e = existing.clone();
    let name = RwSignal::new(e.as_ref().map(|e| e.name.clone()).unwrap_or_default());
    let kind =
        RwSignal::new(e.as_ref().map(|e| e.engine_type.as_str().to_string()).unwrap_or_else(|| "postgresql".into()));
    let host = RwSignal::new(e.as_ref().map(|e| e.host.clone()).unwrap_or_default());
    let port = RwSignal::new(e.as_ref().map(|e| e.port.to_string()).unwrap_or_default());
    let username = RwSignal::new(e.as_ref().and_then(|e| e.username.clone()).unwrap_or_default());
    let password = RwSignal::new(String::new());
    let tls_mode = RwSignal::new(e.as_ref().map(|e| e.tls_mode).unwrap_or_default().as_str().to_string());
    let tls_ca = RwSignal::new(e.as_ref().and_then(|e| e.tls_ca.clone()).unwrap_or_default());
    let apply_all = RwSignal::new(false);
    let message = RwSignal::new(None::<Result<String, String>>);
    let editing = existing.as_ref().map(|e| e.id.clone());
    let is_edit = editing.is_some();
    let saver = Saver::new("/api/engines", editing.clone());
    let body = move || {
        let mut b = json!({ "engine_type": kind.get_untracked(), "host": host.get_untracked() });
        if let Ok(p) = port.get_untracked().trim().parse::<u16>() {
            b["port"] = p.into();
        }
        if !username.get_untracked().is_empty() {
            b["username"] = username.get_untracked().into();
            b["password"] = password.get_untracked().into();
        }
        b["tls_mode"] = tls_mode.get_untracked().into();
        if !tls_ca.get_untracked().trim().is_empty() {
            b["tls_ca"] = tls_ca.get_untracked().into();
        }
        b
    };
    let edit_id = editing.clone();
    let saved_at = e.as_ref().map(|e| (e.host.clone(), e.port.to_string()));
    // Editing without a new password: the stored credentials, with the TLS in the form (the API refuses a
    // weaker one), at the saved address (a new one needs the password, as saving does).
    let test = move |_| {
        let b = body();
        let b = match &edit_id {
            Some(id) if password.get_untracked().is_empty() => {
                let moved = saved_at.as_ref().is_some_and(|(h, p)| {
                    host.get_untracked().trim() != h.as_str() || port.get_untracked().trim() != p.as_str()
                });
                if moved {
                    let why = "Type the password again to test a new host or port: the stored one is never sent \
                               to another address.";
                    message.set(Some(Err(why.into())));
                    return;
                }
                let mut t = json!({ "engine_id": id, "tls_mode": b["tls_mode"] });
                if let Some(ca) = b.get("tls_ca") {
                    t["tls_ca"] = ca.clone();
                }
                t
            }
            _ => b,
        };
        connection_test(message, None, b)
    };
    let done = on_done.clone();
    let save = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let mut b = body();
        b["name"] = name.get_untracked().into();
        if saver.is_edit() {
            // The type never changes; a blank password keeps the stored one.
            if let Some(o) = b.as_object_mut() {
                o.remove("engine_type");
                if o.get("password").and_then(Value::as_str) == Some("") {
                    o.remove("password");
                }
            }
            b["apply_to_all_databases"] = apply_all.get_untracked().into();
            if tls_ca.get_untracked().trim().is_empty() {
                b["tls_ca"] = "".into(); // removes a stored bundle
            }
        }
        saver.save(b, message, done.clone());
    };
    view! {
        <form class="dialog" id=if is_edit { "edit-server-form" } else { "add-server-form" } on:submit=save>
            <h2>{if is_edit { "Edit server" } else { "Add server" }}</h2>
            <label>"Name"
                <input name="name" required prop:value=name on:input=move |ev| name.set(event_target_value(&ev))/>
            </label>
            <label>"Type"
                <select name="engine_type" disabled=is_edit on:change=move |ev| kind.set(event_target_value(&ev))>
                    <option value="postgresql" selected=move || kind.get() == "postgresql">"PostgreSQL"</option>
                    <option value="mysql" selected=move || kind.get() == "mysql">"MySQL / MariaDB"</option>
                </select>
            </label>
            <label>"Host"
                <input name="host" required prop:value=host on:input=move |ev| host.set(event_target_value(&ev))/>
            </label>
            <label>"Port"
                <input
                    name="port"
                    placeholder="default"
                    prop:value=port
                    on:input=move |ev| port.set(event_target_value(&ev))
                />
            </label>
            <label>"TLS"
                <select name="tls_mode" on:change=move |ev| tls_mode.set(event_target_value(&ev))>
                    {[
                        ("auto", "Automatic (require off this machine, prefer on it)"),
                        ("verify-full", "Verify certificate and host name"),
                        ("require", "Require encryption (certificate not checked)"),
                        ("prefer", "Prefer encryption"),
                        ("disable", "Disable (passwords cross the network readable)"),
                    ]
                        .into_iter()
                        .map(|(v, label)| {
                            view! { <option value=v selected=move || tls_mode.get() == v>{label}</option> }
                        })
                        .collect_view()}
                </select>
            </label>
            <Show when=move || tls_mode.get() == "verify-full">
                <label>"CA certificates (PEM; blank uses the system's, which Azure's servers chain to)"
                    <textarea
                        name="tls_ca"
                        rows="4"
                        prop:value=tls_ca
                        on:input=move |ev| tls_ca.set(event_target_value(&ev))
                    ></textarea>
                </label>
            </Show>
            <label>"Username (for discovery and databases using server credentials)"
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
            {is_edit.then(|| view! {
                <label class="toggle">
                    <input
                        type="checkbox"
                        name="apply_to_all_databases"
                        on:change=move |ev| apply_all.set(event_target_checked(&ev))
                    />
                    " Also move databases with their own credentials onto these"
                </label>
            })}
            <div class="buttons">
                <button type="button" id="test-server" on:click=test>"Test connection"</button>
                <button type="submit" id="save-server">"Save"</button>
                <button type="button" class="link" on:click={let d = on_done.clone(); move |_| d()}>"Cancel"</button>
            </div>
            <Notice message=message/>
        </form>
    }
}

#[component]
fn Discover(engine: EngineView, on_done: impl Fn() + Clone + Send + Sync + 'static) -> impl IntoView {
    let found = RwSignal::new(None::<Result<Value, String>>);
    let chosen = RwSignal::new(Vec::<String>::new());
    let message = RwSignal::new(None::<Result<String, String>>);
    let id = engine.id.clone();
    {
        let id = id.clone();
        leptos::task::spawn_local(async move {
            found.set(Some(match api::post(&format!("/api/engines/{id}/discover"), &Value::Null).await {
                Ok(v) if v["success"] == true => Ok(v),
                Ok(v) => Err(describe_test(&v).unwrap_err()),
                Err(e) => Err(e.message),
            }));
        });
    }
    let done = on_done.clone();
    let import = move |_| {
        let (id, add, done) = (id.clone(), chosen.get_untracked(), done.clone());
        leptos::task::spawn_local(async move {
            match api::post(&format!("/api/engines/{id}/discover"), &json!({ "add": add })).await {
                Ok(v) => {
                    message.set(Some(Ok(format!(
                        "Imported {} database(s)",
                        v["added"].as_array().map(Vec::len).unwrap_or(0)
                    ))));
                    done();
                }
                Err(e) => message.set(Some(Err(e.message))),
            }
        });
    };
    view! {
        <div class="dialog" id="discover-dialog">
            <h2>{format!("Databases on {}", engine.name)}</h2>
            {move || match found.get() {
                None => view! { <p class="loading">"Asking the server…"</p> }.into_any(),
                Some(Err(e)) => view! { <p class="error" role="alert">{e}</p> }.into_any(),
                Some(Ok(v)) => {
                    // System databases are not offered; registered ones are shown greyed.
                    let rows: Vec<Value> = v["databases"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default()
                        .into_iter()
                        .filter(|d| d["system"] != true)
                        .collect();
                    view! { <ul class="discovered">{rows.into_iter().map(|d| {
                        let name = d["name"].as_str().unwrap_or_default().to_string();
                        let exists = d["exists"] == true;
                        let n = name.clone();
                        view! {
                            <li class:exists=exists>
                                <label>
                                    <input type="checkbox" value=name.clone() disabled=exists on:change=move |ev| {
                                        let on = event_target_checked(&ev);
                                        chosen.update(|c| if on { c.push(n.clone()) } else { c.retain(|x| *x != n) });
                                    }/>
                                    {name.clone()}{if exists { " (already added)" } else { "" }}
                                </label>
                            </li>
                        }
                    }).collect_view()}</ul> }.into_any()
                }
            }}
            <div class="buttons">
                <button id="import-databases" disabled=move || chosen.with(Vec::is_empty) on:click=import>
                    "Import selected"
                </button>
                <button class="link" on:click={let d = on_done.clone(); move |_| d()}>"Close"</button>
            </div>
            <Notice message=message/>
        </div>
    }
}

#[component]
fn DeleteServer(row: EngineRow, on_done: impl Fn() + Clone + Send + Sync + 'static) -> impl IntoView {
    let with_backups = RwSignal::new(false);
    let message = RwSignal::new(None::<Result<String, String>>);
    let count = row.database_count;
    let id = row.engine.id.clone();
    let done = on_done.clone();
    let confirm = move |_| {
        let mut path = format!("/api/engines/{id}");
        if count > 0 {
            path.push_str("?cascade=true");
            if with_backups.get_untracked() {
                path.push_str("&delete_backups=true");
            }
        }
        let done = done.clone();
        leptos::task::spawn_local(async move {
            match api::delete(&path).await {
                Ok(_) => done(),
                Err(e) => message.set(Some(Err(e.message))),
            }
        });
    };
    // Destroying backups is an admin's call; an operator's delete keeps them.
    let may_delete_backups = crate::session().can(Permission::DeleteBackups);
    let warning = if may_delete_backups {
        format!("Its {count} database(s) will be deleted too. Their backups stay unless you tick the box.")
    } else {
        format!("Its {count} database(s) will be deleted too. Their backups stay.")
    };
    view! {
        <div class="dialog" id="delete-server-dialog">
            <h2>{format!("Delete server {}?", row.engine.name)}</h2>
            {(count > 0).then(|| view! {
                <p class="warning">{warning}</p>
                {may_delete_backups.then(|| view! {
                    <label>
                        <input type="checkbox" on:change=move |ev| with_backups.set(event_target_checked(&ev))/>
                        " Also delete their backups (cannot be undone)"
                    </label>
                })}
            })}
            <div class="buttons">
                <button class="danger" id="confirm-delete-server" on:click=confirm>"Delete"</button>
                <button class="link" on:click={let d = on_done.clone(); move |_| d()}>"Cancel"</button>
            </div>
            <Notice message=message/>
        </div>
    }
}
