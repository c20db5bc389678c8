//! Sign-in. Dev mode (local): pick an email and a role. Entra ID mode: the tenant's sign-in page.

use leptos::prelude::*;
use serde_json::{json, Value};

use crate::api;
use crate::widgets::Notice;

#[component]
pub fn SignIn() -> impl IntoView {
    let s = crate::session();
    let config = RwSignal::new(None::<Value>);
    leptos::task::spawn_local(async move {
        config.set(api::get::<Value>("/api/auth/config").await.ok());
    });
    let email = RwSignal::new("admin@example.com".to_string());
    let role = RwSignal::new("admin".to_string());
    let message = RwSignal::new(None::<Result<String, String>>);
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        leptos::task::spawn_local(async move {
            match api::post(
                "/api/auth/dev-token",
                &json!({ "email": email.get_untracked(), "role": role.get_untracked() }),
            )
            .await
            {
                Ok(v) => {
                    api::set_token(v["token"].as_str());
                    crate::load_me(s).await;
                }
                Err(e) => message.set(Some(Err(e.message))),
            }
        });
    };
    view! {
        <div class="signin">
            <h1>"Dilux Backup"</h1>
            {move || s.sign_in_error.get().map(|e| view! { <p class="error" role="alert" id="signin-error">{e}</p> })}
            {move || match config.get() {
                None => view! { <p class="loading">"Loading…"</p> }.into_any(),
                Some(c) if c["mode"] == "dev" => view! {
                    <form on:submit=submit>
                        <p class="hint">"Local sign-in (dev mode): choose who you are and your role."</p>
                        <label>"Email"
                            <input
                                id="signin-email"
                                type="email"
                                required
                                prop:value=email
                                on:input=move |ev| email.set(event_target_value(&ev))
                            />
                        </label>
                        <label>"Role"
                            <select id="signin-role" on:change=move |ev| role.set(event_target_value(&ev))>
                                <option value="admin" selected=true>"admin"</option>
                                <option value="operator">"operator"</option>
                                <option value="viewer">"viewer"</option>
                            </select>
                        </label>
                        <button type="submit" id="signin-submit">"Sign in"</button>
                        <Notice message=message/>
                    </form>
                }.into_any(),
                Some(c) => view! {
                    <p class="hint">"Sign in with your organization's Microsoft account."</p>
                    <button id="signin-entra" on:click=move |_| crate::entra::start(&c)>
                        "Sign in with Microsoft"
                    </button>
                }.into_any(),
            }}
        </div>
    }
}
