//! Notifications: where people hear about problems (webhooks, Slack, Teams, email), which events each
//! channel hears about, a test send, and the delivery log with every attempt. Everyone sees them (never
//! a secret); admins add, test and remove channels.

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
    events: RwSignal<Vec<EventKind>>,
    severity: RwSignal<String>,
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
            events: RwSignal::new(vec![]),
            severity: RwSignal::new("info".into()),
        }
    }

    /// The request body: empty optional fields are left out, so the API's defaults apply.
    fn body(&self) -> Value {
        let opt = |s: RwSignal<String>| Some(s.get_untracked().trim().to_string()).filter(|v| !v.is_empty());
        let kind = self.kind.get_untracked();
        let mut b = json!({
            "name": self.name.get_untracked(),
            "kind": kind,
            "filters": { "events": self.events.get_untracked(), "min_severity": self.severity.get_untracked() },
        });
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
        } else {
            b["url"] = self.url.get_untracked().trim().into();
            if let Some(s) = opt(self.secret).filter(|_| kind == "webhook") {
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

#[component]
fn NewChannel(reload: RwSignal<u32>, message: RwSignal<Option<Result<String, String>>>) -> impl IntoView {
    let f = Form::new();
    let email = move || f.kind.get() == "email";
    let create = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        leptos::task::spawn_local(async move {
            match api::post("/api/notifications/channels", &f.body()).await {
                Ok(c) => {
                    message.set(Some(Ok(format!("Channel {} added", c["name"].as_str().unwrap_or_default()))));
                    f.name.set(String::new());
                    f.secret.set(String::new());
                    f.password.set(String::new());
                    reload.update(|n| *n += 1);
                }
                Err(e) => message.set(Some(Err(e.message))),
            }
        });
    };
    view! {
        <form class="dialog" id="new-channel" on:submit=create>
            <h2>"Add a channel"</h2>
            {text_input("Name", "channel-name", "text", f.name)}
            <label>"Kind"
                <select id="channel-kind" on:change=move |ev| f.kind.set(event_target_value(&ev))>
                    <option value="webhook">"Webhook (JSON, signed)"</option>
                    <option value="slack">"Slack incoming webhook"</option>
                    <option value="teams">"Microsoft Teams (Workflows webhook)"</option>
                    <option value="email">"Email (SMTP)"</option>
                </select>
            </label>
            <Show when=move || !email()>
                {text_input("URL", "channel-url", "url", f.url)}
                <Show when=move || f.kind.get() == "webhook">
                    {text_input("Signing secret (16+ characters, optional)", "channel-secret", "password", f.secret)}
                </Show>
            </Show>
            <Show when=email>
                {text_input("SMTP server", "smtp-host", "text", f.host)}
                {text_input("Port (default for the security)", "smtp-port", "number", f.port)}
                <label>"Security"
                    <select id="smtp-security" on:change=move |ev| f.security.set(event_target_value(&ev))>
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
                <select on:change=move |ev| f.severity.set(event_target_value(&ev))>
                    <option value="info">"info"</option>
                    <option value="warning">"warning"</option>
                    <option value="error">"error"</option>
                </select>
            </label>
            <button type="submit" id="create-channel">"Add channel"</button>
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
    let test = move |id: String| {
        leptos::task::spawn_local(async move {
            let out = api::post(&format!("/api/notifications/channels/{id}/test"), &json!({})).await;
            message.set(Some(match out {
                Ok(d) if d["state"] == "delivered" => Ok(format!("Test delivered to {}", d["channel_name"])),
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
        <Show when=is_admin><NewChannel reload=reload message=message/></Show>
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
