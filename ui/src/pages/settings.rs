//! Settings: the caller's own preferences (dark mode, rows per page) and, for admins, the app's
//! defaults (theme, default policy for new databases, access requests).

use dilux_domain::settings::AppSettings;
use dilux_domain::user::Permission;
use leptos::prelude::*;
use serde_json::{json, Value};

use crate::api;
use crate::widgets::{fetched, show, Notice};

#[component]
pub fn Settings() -> impl IntoView {
    let s = crate::session();
    let reload = RwSignal::new(0);
    let settings = fetched::<AppSettings>(|| "/api/settings".into(), reload);
    let policies = fetched::<Value>(|| "/api/backup-policies".into(), RwSignal::new(0));
    let message = RwSignal::new(None::<Result<String, String>>);
    let is_admin = move || s.can(Permission::ManageSettings);
    let save = move |path: &'static str, body: Value, what: &'static str| {
        leptos::task::spawn_local(async move {
            message.set(Some(api::put(path, &body).await.map(|_| what.to_string()).map_err(|e| e.message)));
            crate::load_me(s).await;
            reload.update(|n| *n += 1);
        });
    };
    let save_prefs = move |body: Value| save("/api/users/me/preferences", body, "Preferences saved");
    let save_app = move |body: Value| save("/api/settings", body, "Settings saved");
    let prefs = move || s.me.with(|m| m.as_ref().map(|m| m.preferences.clone()).unwrap_or_default());
    view! {
        <h1>"Settings"</h1>
        <Notice message=message/>
        <section class="dialog">
            <h2>"My preferences"</h2>
            <label class="toggle"><input type="checkbox" id="pref-dark" prop:checked=move || prefs().dark_mode
                on:change=move |ev| save_prefs(json!({ "dark_mode": event_target_checked(&ev) }))/>" Dark mode"</label>
            <label>"Rows per page"
                <select
                    id="pref-page-size"
                    on:change=move |ev| {
                        save_prefs(json!({ "page_size": event_target_value(&ev).parse::<u32>().unwrap_or(25) }))
                    }
                >
                    {[10u32, 25, 50, 100].map(|n| view! {
                        <option value=n.to_string() selected=move || prefs().page_size == n>{n}</option>
                    })}
                </select>
            </label>
        </section>
        {show(settings, move |a: &AppSettings| {
            let a = a.clone();
            let policy_options = policies.with_untracked(|p| {
                p.as_ref()
                    .and_then(|r| r.as_ref().ok())
                    .map(|v| v["policies"].as_array().cloned().unwrap_or_default())
                    .unwrap_or_default()
            });
            view! {
                <section class="dialog">
                    <h2>"Application"</h2>
                    <fieldset disabled=move || !is_admin()>
                        <label class="toggle">
                            <input
                                type="checkbox"
                                prop:checked=a.dark_mode
                                on:change=move |ev| save_app(json!({ "dark_mode": event_target_checked(&ev) }))
                            />
                            " Dark mode by default"
                        </label>
                        <label class="toggle">
                            <input
                                type="checkbox"
                                id="access-requests"
                                prop:checked=a.access_requests_enabled
                                on:change=move |ev| {
                                    save_app(json!({ "access_requests_enabled": event_target_checked(&ev) }))
                                }
                            />
                            " People without access may request it"
                        </label>
                        <label>"Default policy for new databases"
                            <select
                                on:change=move |ev| save_app(json!({ "default_policy_id": event_target_value(&ev) }))
                            >
                                {policy_options.into_iter().map(|p| {
                                    let id = p["id"].as_str().unwrap_or_default().to_string();
                                    let selected = id == a.default_policy_id;
                                    let label = format!(
                                        "{} ({})",
                                        p["name"].as_str().unwrap_or_default(),
                                        p["summary"].as_str().unwrap_or_default()
                                    );
                                    view! { <option value=id.clone() selected=selected>{label}</option> }
                                }).collect_view()}
                            </select>
                        </label>
                    </fieldset>
                    {a.updated_by.clone().map(|by| view! { <p class="hint">{format!("Last changed by {by}")}</p> })}
                    <Show when=move || !is_admin()><p class="hint">"Only admins change these."</p></Show>
                </section>
            }
        })}
    }
}
