//! Audit trail (admins): who did what, filtered by action, resource type and outcome, with details.

use leptos::prelude::*;
use serde_json::Value;

use crate::api;
use crate::widgets::{current_cursor, fetched, show, Pager};

#[component]
pub fn Audit() -> impl IntoView {
    let reload = RwSignal::new(0);
    let (action, kind, status) =
        (RwSignal::new(String::new()), RwSignal::new(String::new()), RwSignal::new(String::new()));
    let cursors = RwSignal::new(Vec::<String>::new());
    let logs = fetched::<Value>(
        move || {
            let cursor = current_cursor(cursors);
            api::query(
                "/api/audit?page_size=50",
                &[
                    ("action", action.get()),
                    ("resource_type", kind.get()),
                    ("status", status.get()),
                    ("cursor", cursor),
                ],
            )
        },
        reload,
    );
    let actions = fetched::<Value>(|| "/api/audit/actions".into(), RwSignal::new(0));
    let kinds = fetched::<Value>(|| "/api/audit/resource-types".into(), RwSignal::new(0));
    let options = move |l: Loaded, key: &'static str| {
        move || {
            l.with(|v| {
                v.as_ref()
                    .and_then(|r| r.as_ref().ok())
                    .map(|v| v[key].as_array().cloned().unwrap_or_default())
                    .unwrap_or_default()
            })
            .into_iter()
            .map(|a| {
                let a = a.as_str().unwrap_or_default().to_string();
                view! { <option value=a.clone()>{a.replace('_', " ")}</option> }
            })
            .collect_view()
        }
    };
    view! {
        <h1>"Audit"</h1>
        <div class="toolbar">
            <select id="audit-action" on:change=move |ev| { cursors.set(vec![]); action.set(event_target_value(&ev)) }>
                <option value="">"Any action"</option>
                {options(actions, "actions")}
            </select>
            <select on:change=move |ev| { cursors.set(vec![]); kind.set(event_target_value(&ev)) }>
                <option value="">"Any resource"</option>
                {options(kinds, "resource_types")}
            </select>
            <select on:change=move |ev| { cursors.set(vec![]); status.set(event_target_value(&ev)) }>
                <option value="">"Any outcome"</option>
                <option value="success">"success"</option>
                <option value="failed">"failed"</option>
            </select>
        </div>
        {show(logs, move |v: &Value| {
            let next = v["next_cursor"].as_str().map(str::to_string);
            view! {
                <table id="audit">
                    <thead><tr>
                        <th>"When"</th><th>"Who"</th><th>"Action"</th>
                        <th>"Resource"</th><th>"Outcome"</th><th>"Details"</th>
                    </tr></thead>
                    <tbody>{v["logs"].as_array().cloned().unwrap_or_default().into_iter().map(|l| {
                        let at = l["timestamp"].as_str().unwrap_or_default().replace('T', " ");
                        let email = l["user_email"].as_str().filter(|e| !e.is_empty());
                        let who = email.unwrap_or(l["user_id"].as_str().unwrap_or_default());
                        let name = l["resource_name"].as_str().filter(|n| !n.is_empty());
                        let resource = name.unwrap_or(l["resource_id"].as_str().unwrap_or_default());
                        let outcome = if l["status"] == "success" { "badge completed" } else { "badge failed" };
                        let details = serde_json::to_string_pretty(&l["details"]).unwrap_or_default();
                        view! {
                            <tr>
                                <td>{at.chars().take(19).collect::<String>()}</td>
                                <td>{format!("{} {}", who, l["ip_address"].as_str().unwrap_or_default())}</td>
                                <td>{l["action"].as_str().unwrap_or_default().replace('_', " ")}</td>
                                <td>{format!("{} {}", l["resource_type"].as_str().unwrap_or_default(), resource)}</td>
                                <td>
                                    <span class=outcome>{l["status"].as_str().unwrap_or_default().to_string()}</span>
                                </td>
                                <td class="details">
                                    <details><summary>"details"</summary><pre>{details}</pre></details>
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

type Loaded = crate::widgets::Loaded<Value>;
