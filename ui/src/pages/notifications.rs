//! Notifications: where people hear about problems (webhooks, Slack, Teams, email, notifier plug-ins),
//! which events each channel hears about, a test send, and the delivery log with every attempt. Everyone
//! sees them (never a secret); admins add, test and remove channels.

use dilux_domain::notify::EventKind;
use dilux_domain::user::Permission;
use leptos::prelude::*;
use serde_json::{json, Value};

use crate::api;
use crate::widgets::{fetched, show, Notice};

/// The channel form's fields, as typed.
#[derive(Clone, Copy)]
struct Form {
    name: RwSignal<String>,
    kind: RwSignal<String>,
    url: RwSignal<String>,
    secret: RwSignal<String>,
    host: RwSignal<String>,
    port: RwSignal<String>,
    security: RwSignal<String>,
    username: RwSignal<String>,
    password: RwSignal<String>,
    from: RwSignal<String>,
    to: RwSignal<String>,
    plugin: RwSignal<String>,
    /// One `name=value` per line.
    settings: RwSignal<String>,
    events: RwSignal<Vec<EventKind>>,
    severity: RwSignal<String>,
    /// The channel being edited (its id and filters as stored); `None`: a new channel.
    editing: RwSignal<Option<(String, Value)>>,
}

impl Form {
    fn new() -> Self {
        let s = || RwSignal::new(String::new());
        Form {
            name: s(),
            kind: RwSignal::new("webhook".into()),
            url: s(),
            secret: s(),
            host: s(),
            port: s(),
            security: RwSignal::new("starttls".into()),
            username: s(),
            password: s(),
            from: s(),
            to: s(),
            plugin: s(),
            settings: s(),
            events: RwSignal::new(vec![]),
            severity: RwSignal::new("info".into()),
            editing: RwSignal::new(None),
        }
    }

    /// Fills the form with a channel as the API shows it: secrets stay empty (left empty, they are kept).
    fn edit(&self, c: &Value) {
        let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
        self.name.set(text(&c["name"]));
        self.kind.set(text(&c["kind"]));
        for s in [self.url, self.secret, self.password, self.settings] {
            s.set(String::new());
        }
        let smtp = &c["smtp"];
        self.host.set(text(&smtp["host"]));
        self.port.set(smtp["port"].as_u64().map(|p| p.to_string()).unwrap_or_default());
        self.security.set(smtp["security"].as_str().unwrap_or("starttls").to_string());
        self.username.set(text(&smtp["username"]));
        self.from.set(text(&smtp["from"]));
        let to: Vec<String> = smtp["to"].as_array().into_iter().flatten().map(text).collect();
        self.to.set(to.join(", "));
        self.plugin.set(text(&c["plugin"]));
        self.events.set(serde_json::from_value(c["filters"]["events"].clone()).unwrap_or_default());
        self.severity.set(c["filters"]["min_severity"].as_str().unwrap_or("info").to_string());
        self.editing.set(Some((text(&c["id"]), c["filters"].clone())));
    }

    fn clear(&self) {
        for s in [self.name, self.url, self.secret, self.password, self.settings, self.plugin] {
            s.set(String::new());
        }
        self.editing.set(None);
    }

    /// The request body: empty optional fields are left out, so the API's defaults apply.
    fn body(&self) -> Value {
        let opt = |s: RwSignal<String>| Some(s.get_untracked().trim().to_string()).filter(|v| !v.is_empty());
        let kind = self.kind.get_untracked();
        let editing = self.editing.get_untracked();
        // An edit keeps the filters this form does not show (database, server and policy ids).
        let mut filters = editing.as_ref().map(|(_, f)| f.clone()).filter(Value::is_object).unwrap_or(json!({}));
        filters["events"] = json!(self.events.get_untracked());
        filters["min_severity"] = self.severity.get_untracked().into();
        let mut b = json!({ "name": self.name.get_untracked(), "kind": kind, "filters": filters });
        if kind == "email" {
            let to: Vec<String> =
                self.to.get_untracked().split(',').map(|a| a.trim().to_string()).filter(|a| !a.is_empty()).collect();
            let mut smtp = json!({ "host": self.host.get_untracked(), "security": self.security.get_untracked(),
                "from": self.from.get_untracked(), "to": to });
            if let Some(p) = opt(self.port) {
                smtp["port"] = p.parse::<u16>().map(Value::from).unwrap_or(Value::String(p));
            }
            for (k, s) in [("username", self.username), ("password", self.password)] {
                if let Some(v) = opt(s) {
                    smtp[k] = v.into();
                }
            }
            b["smtp"] = smtp;
        } else if kind == "plugin" {
            b["plugin"] = self.plugin.get_untracked().trim().into();
            if editing.is_some() && self.settings.get_untracked().trim().is_empty() {
                return b;
            }
            let settings: serde_json::Map<String, Value> = self
                .settings
                .get_untracked()
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| {
                    let (k, v) = l.split_once('=').unwrap_or((l, ""));
                    (k.trim().to_string(), Value::from(v.trim()))
                })
                .collect();
            b["settings"] = settings.into();
        } else if let Some(url) = opt(self.url).or_else(|| editing.is_none().then(String::new)) {
            b["url"] = url.into();
        }
        if kind == "webhook" {
            if let Some(s) = opt(self.secret) {
                b["secret"] = s.into();
            }
        }
        b
    }
}

fn text_input(label: &'static str, id: &'static str, kind: &'static str, value: RwSignal<String>) -> impl IntoView {
    view! {
        <label>{label}
            <input id=id type=kind prop:value=move || value.get()
                on:input=move |ev| value.set(event_target_value(&ev))/>
        </label>
    }
}

/// Adds a channel, or changes the one [`Form::edit`] filled in.
#[component]
fn ChannelForm(f: Form, reload: RwSignal<u32>, message: RwSignal<Option<Result<String, String>>>) -> impl IntoView {
    let email = move || f.kind.get() == "email";
    let plugin = move || f.kind.get() == "plugin";
    let status = fetched::<Value>(|| "/api/system-status".into(), reload);
    let create = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        leptos::task::spawn_local(async move {
            let editing = f.editing.get_untracked();
            let out = match &editing {
                Some((id, _)) => api::put(&format!("/api/notifications/channels/{id}"), &f.body()).await,
                None => api::post("/api/notifications/channels", &f.body()).await,
            };
            match out {
                Ok(c) => {
                    let done = if editing.is_some() { "saved" } else { "added" };
                    message.set(Some(Ok(format!("Channel {} {done}", c["name"].as_str().unwrap_or_default()))));
                    f.clear();
                    reload.update(|n| *n += 1);
                }
                Err(e) => message.set(Some(Err(e.message))),
            }
        });
    };
    view! {
        <form class="dialog" id="new-channel" on:submit=create>
            <h2>{move || if f.editing.with(Option::is_some) { "Edit the channel" } else { "Add a channel" }}</h2>
            <Show when=move || f.editing.with(Option::is_some)>
                <p class="hint">
                    "Secrets left empty are kept; a URL, server or plug-in that changes needs them again."
                </p>
            </Show>
            {text_input("Name", "channel-name", "text", f.name)}
            <label>"Kind"
                <select id="channel-kind" prop:value=move || f.kind.get()
                    prop:disabled=move || f.editing.with(Option::is_some)
                    on:change=move |ev| f.kind.set(event_target_value(&ev))>
                    <option value="webhook">"Webhook (JSON, signed)"</option>
                    <option value="slack">"Slack incoming webhook"</option>
                    <option value="teams">"Microsoft Teams (Workflows webhook)"</option>
                    <option value="email">"Email (SMTP)"</option>
                    <option value="plugin">"Notifier plug-in"</option>
                </select>
            </label>
            <Show when=plugin>
                {text_input("Plug-in (its name in notifiers.toml)", "channel-plugin", "text", f.plugin)}
                <p class="hint" id="installed-plugins">"Installed: "{show(status, |s: &Value| {
                    crate::pages::status::plugin_names(&s["dumper_host"])
                })}</p>
                <label>"Settings (one name=value per line; stored sealed, shown by name only)"
                    <textarea id="channel-settings" rows="3" prop:value=move || f.settings.get()
                        on:input=move |ev| f.settings.set(event_target_value(&ev))></textarea>
                </label>
            </Show>
            <Show when=move || !email() && !plugin()>
                {text_input("URL", "channel-url", "url", f.url)}
                <Show when=move || f.kind.get() == "webhook">
                    {text_input("Signing secret (16+ characters, optional)", "channel-secret", "password", f.secret)}
                </Show>
            </Show>
            <Show when=email>
                {text_input("SMTP server", "smtp-host", "text", f.host)}
                {text_input("Port (default for the security)", "smtp-port", "number", f.port)}
                <label>"Security"
                    <select id="smtp-security" prop:value=move || f.security.get()
                        on:change=move |ev| f.security.set(event_target_value(&ev))>
                        <option value="starttls">"STARTTLS"</option>
                        <option value="tls">"TLS"</option>
                        <option value="none">"None (a relay on this machine only)"</option>
                    </select>
                </label>
                {text_input("User name", "smtp-username", "text", f.username)}
                {text_input("Password", "smtp-password", "password", f.password)}
                {text_input("From", "smtp-from", "email", f.from)}
                {text_input("To (comma-separated)", "smtp-to", "text", f.to)}
            </Show>
            <fieldset class="events">
                <legend>"Events (none ticked: every kind but successful backups)"</legend>
                {EventKind::ALL.into_iter().filter(|k| *k != EventKind::Test).map(|k| view! {
                    <label class="toggle">
                        <input type="checkbox" value=k.as_str()
                            prop:checked=move || f.events.with(|e| e.contains(&k))
                            on:change=move |ev| {
                                let on = event_target_checked(&ev);
                                f.events.update(|e| { e.retain(|x| *x != k); if on { e.push(k) } });
                            }/>
                        {format!(" {}", k.as_str().replace('_', " "))}
                    </label>
                }).collect_view()}
            </fieldset>
            <label>"Least severity"
                <select id="channel-severity" prop:value=move || f.severity.get()
                    on:change=move |ev| f.severity.set(event_target_value(&ev))>
                    <option value="info">"info"</option>
                    <option value="warning">"warning"</option>
                    <option value="error">"error"</option>
                </select>
            </label>
            <button type="submit" id="create-channel">
                {move || if f.editing.with(Option::is_some) { "Save channel" } else { "Add channel" }}
            </button>
            <Show when=move || f.editing.with(Option::is_some)>
                <button type="button" class="link" id="cancel-edit" on:click=move |_| f.clear()>"Cancel"</button>
            </Show>
        </form>
    }
}

#[component]
pub fn Notifications() -> impl IntoView {
    let s = crate::session();
    let reload = RwSignal::new(0);
    let channels = fetched::<Value>(|| "/api/notifications/channels".into(), reload);
    let deliveries = fetched::<Value>(|| "/api/notifications/deliveries?limit=100".into(), reload);
    let message = RwSignal::new(None::<Result<String, String>>);
    let is_admin = move || s.can(Permission::ManageSettings);
    let form = Form::new();
    let test = move |id: String| {
        leptos::task::spawn_local(async move {
            let out = api::post(&format!("/api/notifications/channels/{id}/test"), &json!({})).await;
            message.set(Some(match out {
                Ok(d) if d["state"] == "delivered" => {
                    Ok(format!("Test delivered to {}", d["channel_name"].as_str().unwrap_or_default()))
                }
                Ok(d) => Err(format!(
                    "The test was not delivered: {}",
                    d["attempts"][0]["message"].as_str().unwrap_or("no answer")
                )),
                Err(e) => Err(e.message),
            }));
            reload.update(|n| *n += 1);
        });
    };
    let remove = move |id: String| {
        leptos::task::spawn_local(async move {
            let out = api::delete(&format!("/api/notifications/channels/{id}")).await;
            message.set(Some(out.map(|_| "Channel deleted".to_string()).map_err(|e| e.message)));
            reload.update(|n| *n += 1);
        });
    };
    view! {
        <h1>"Notifications"</h1>
        <Notice message=message/>
        {show(channels, move |v: &Value| {
            let rows = v["channels"].as_array().cloned().unwrap_or_default();
            view! {
                <table id="channels">
                    <thead><tr>
                        <th>"Name"</th><th>"Kind"</th><th>"Destination"</th><th>"Events"</th><th></th>
                    </tr></thead>
                    <tbody>{rows.into_iter().map(|c| {
                        let id = c["id"].as_str().unwrap_or_default().to_string();
                        let stored = c.clone();
                        let (tid, did) = (id.clone(), id.clone());
                        let events: Vec<String> = c["filters"]["events"].as_array().cloned().unwrap_or_default()
                            .iter().filter_map(|e| e.as_str().map(|e| e.replace('_', " "))).collect();
                        let events = if events.is_empty() { "default".to_string() } else { events.join(", ") };
                        let signed = if c["signed"] == true { " (signed)" } else { "" };
                        view! {
                            <tr>
                                <td>{c["name"].as_str().unwrap_or_default().to_string()}</td>
                                <td>{format!("{}{signed}", c["kind"].as_str().unwrap_or_default())}</td>
                                <td>{c["destination"].as_str().unwrap_or_default().to_string()}</td>
                                <td>{events}</td>
                                <td>
                                    <Show when=is_admin>
                                        <button class="test-channel" on:click={
                                            let tid = tid.clone();
                                            move |_| test(tid.clone())
                                        }>"Send a test"</button>
                                        <button class="link edit-channel" on:click={
                                            let stored = stored.clone();
                                            move |_| form.edit(&stored)
                                        }>"Edit"</button>
                                        <button class="link" on:click={
                                            let did = did.clone();
                                            move |_| remove(did.clone())
                                        }>"Delete"</button>
                                    </Show>
                                </td>
                            </tr>
                        }
                    }).collect_view()}</tbody>
                </table>
                {v["channels"].as_array().is_none_or(|a| a.is_empty()).then(|| view! {
                    <p class="hint">"No channels yet: nobody is told when a backup fails."</p>
                })}
            }
        })}
        <Show when=is_admin><ChannelForm f=form reload=reload message=message/></Show>
        <h2>"Delivery log"</h2>
        {show(deliveries, move |v: &Value| view! {
            <table id="deliveries">
                <thead><tr>
                    <th>"When"</th><th>"Channel"</th><th>"Event"</th><th>"State"</th><th>"Last attempt"</th>
                </tr></thead>
                <tbody>{v["deliveries"].as_array().cloned().unwrap_or_default().into_iter().map(|d| {
                    let at = d["created_at"].as_str().unwrap_or_default().replace('T', " ");
                    let state = d["state"].as_str().unwrap_or_default().to_string();
                    let badge = match state.as_str() {
                        "delivered" => "badge completed",
                        "failed" => "badge failed",
                        _ => "badge pending",
                    };
                    let tries = d["attempts"].as_array().cloned().unwrap_or_default();
                    let last = tries.last().map(|a| {
                        let status = a["status"].as_u64().map(|s| format!("{s}: ")).unwrap_or_default();
                        format!("{status}{} ({} attempt(s))", a["message"].as_str().unwrap_or_default(), tries.len())
                    });
                    let next = d["next_attempt_at"].as_str().map(|t| format!("; next try {}", t.replace('T', " ")));
                    view! {
                        <tr>
                            <td>{at.chars().take(19).collect::<String>()}</td>
                            <td>{d["channel_name"].as_str().unwrap_or_default().to_string()}</td>
                            <td>{d["event"]["title"].as_str().unwrap_or_default().to_string()}</td>
                            <td><span class=badge>{state}</span></td>
                            <td>{format!("{}{}", last.unwrap_or_default(), next.unwrap_or_default())}</td>
                        </tr>
                    }
                }).collect_view()}</tbody>
            </table>
        })}
    }
}
