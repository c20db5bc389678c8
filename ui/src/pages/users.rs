//! Users (admins): roles, enable/disable, pre-registration by email, and access requests to approve
//! or reject.

use dilux_domain::settings::AccessRequest;
use dilux_domain::user::User;
use leptos::prelude::*;
use serde::Deserialize;
use serde_json::json;

use crate::api;
use crate::widgets::{fetched, show, when, Notice};

#[derive(Clone, Deserialize)]
struct Users {
    users: Vec<User>,
}

#[derive(Clone, Deserialize)]
struct Requests {
    access_requests: Vec<AccessRequest>,
}

const ROLES: [&str; 3] = ["admin", "operator", "viewer"];

fn role_name(u: &User) -> String {
    format!("{:?}", u.role).to_lowercase()
}

#[component]
pub fn Users() -> impl IntoView {
    let reload = RwSignal::new(0);
    let users = fetched::<Users>(|| "/api/users".into(), reload);
    let requests = fetched::<Requests>(|| "/api/access-requests".into(), reload);
    let message = RwSignal::new(None::<Result<String, String>>);
    let email = RwSignal::new(String::new());
    let role = RwSignal::new("viewer".to_string());
    let run = move |what: &'static str,
                    fut: std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<serde_json::Value, api::ApiError>>>,
    >| {
        leptos::task::spawn_local(async move {
            message.set(Some(fut.await.map(|_| what.to_string()).map_err(|e| e.message)));
            reload.update(|n| *n += 1);
        });
    };
    let add = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let body = json!({ "email": email.get_untracked(), "role": role.get_untracked() });
        run(
            "User added: they get in at their first sign-in",
            Box::pin(async move { api::post("/api/users", &body).await }),
        );
    };
    let set_role = move |id: String, r: String| {
        run(
            "Role changed",
            Box::pin(async move { api::put(&format!("/api/users/{}", api::enc(&id)), &json!({ "role": r })).await }),
        )
    };
    let toggle = move |id: String, enabled: bool| {
        run(
            if enabled { "User disabled" } else { "User enabled" },
            Box::pin(async move {
                api::put(&format!("/api/users/{}", api::enc(&id)), &json!({ "enabled": !enabled })).await
            }),
        )
    };
    let remove = move |id: String| {
        run("User deleted", Box::pin(async move { api::delete(&format!("/api/users/{}", api::enc(&id))).await }))
    };
    let approve = move |id: String, role: String| {
        run(
            "Approved",
            Box::pin(async move {
                api::post(&format!("/api/access-requests/{}/approve", api::enc(&id)), &json!({ "role": role })).await
            }),
        )
    };
    let reject = move |id: String| {
        run(
            "Rejected",
            Box::pin(
                async move { api::post(&format!("/api/access-requests/{}/reject", api::enc(&id)), &json!({})).await },
            ),
        )
    };
    view! {
        <h1>"Users"</h1>
        <Notice message=message/>
        <form class="toolbar" id="add-user" on:submit=add>
            <input
                type="email"
                required
                placeholder="email@company.com"
                on:input=move |ev| email.set(event_target_value(&ev))
            />
            <select on:change=move |ev| role.set(event_target_value(&ev))>
                {ROLES.map(|r| view! { <option value=r selected=r == "viewer">{r}</option> })}
            </select>
            <button type="submit">"Add user"</button>
        </form>
        {show(users, move |list: &Users| view! {
            <table id="users">
                <thead><tr>
                    <th>"Email"</th><th>"Name"</th><th>"Role"</th><th>"Enabled"</th><th>"Since"</th>
                    <th>"Last sign-in"</th><th></th>
                </tr></thead>
                <tbody>{list.users.iter().map(|u| {
                    let (id1, id2, id3) = (u.id.clone(), u.id.clone(), u.id.clone());
                    let current = role_name(u);
                    let enabled = u.enabled;
                    view! {
                        <tr>
                            <td>{u.email.clone()}</td>
                            <td>{u.name.clone()}</td>
                            <td>
                                <select on:change=move |ev| set_role(id1.clone(), event_target_value(&ev))>
                                    {ROLES.map(|r| view! { <option value=r selected=r == current>{r}</option> })}
                                </select>
                            </td>
                            <td>{if enabled { "yes" } else { "no" }}</td>
                            <td>{when(&u.created_at)}</td>
                            <td>{u.last_sign_in_at.as_ref().map(when).unwrap_or_else(|| "never".into())}</td>
                            <td class="actions">
                                <button on:click=move |_| toggle(id2.clone(), enabled)>
                                    {if enabled { "Disable" } else { "Enable" }}
                                </button>
                                <button class="danger" on:click=move |_| remove(id3.clone())>"Delete"</button>
                            </td>
                        </tr>
                    }
                }).collect_view()}</tbody>
            </table>
        })}
        <h2>"Access requests"</h2>
        {show(requests, move |list: &Requests| {
            if list.access_requests.is_empty() {
                return view! { <p class="hint">"Nobody is waiting for access."</p> }.into_any();
            }
            view! {
                <table id="access-requests">
                    <thead><tr><th>"Who"</th><th>"Asked"</th><th>"Role"</th><th></th></tr></thead>
                    <tbody>{list.access_requests.iter().map(|r| {
                        let chosen = RwSignal::new("viewer".to_string());
                        let (id1, id2) = (r.id.clone(), r.id.clone());
                        view! {
                            <tr>
                                <td>{format!("{} <{}>", r.name, r.email)}</td>
                                <td>{when(&r.requested_at)}</td>
                                <td>
                                    <select on:change=move |ev| chosen.set(event_target_value(&ev))>
                                        {ROLES.map(|x| view! { <option value=x selected=x == "viewer">{x}</option> })}
                                    </select>
                                </td>
                                <td class="actions">
                                    <button on:click=move |_| approve(id1.clone(), chosen.get_untracked())>
                                        "Approve"
                                    </button>
                                    <button class="danger" on:click=move |_| reject(id2.clone())>"Reject"</button>
                                </td>
                            </tr>
                        }
                    }).collect_view()}</tbody>
                </table>
            }.into_any()
        })}
    }
}
