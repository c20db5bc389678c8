//! The Dilux web UI: a client-side Leptos app. Models come from `dilux-domain`; every change goes
//! through `/api`, which enforces the roles again — hiding a control is a courtesy, not the check.

mod api;
mod entra;
mod pages;
mod widgets;

use dilux_domain::settings::Preferences;
use dilux_domain::user::{Permission, Role};
use leptos::prelude::*;
use leptos_router::components::{Redirect, Route, Router, Routes, A};
use leptos_router::path;
use serde::Deserialize;

/// The signed-in user, as `/api/users/me` answers.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Me {
    pub id: String,
    pub email: String,
    pub role: Role,
    pub preferences: Preferences,
}

/// Shared by every page: who is signed in (None: show the sign-in page).
#[derive(Clone, Copy)]
pub struct Session {
    pub me: RwSignal<Option<Me>>,
    /// Why the last sign-in failed, for the sign-in page.
    pub sign_in_error: RwSignal<Option<String>>,
    /// Dev sign-in is on: anyone can be admin, and every page says so.
    pub dev_mode: RwSignal<bool>,
}

impl Session {
    pub fn can(&self, p: Permission) -> bool {
        self.me.with(|m| m.as_ref().is_some_and(|m| m.role.can(p)))
    }
}

pub fn session() -> Session {
    expect_context::<Session>()
}

fn apply_theme(dark: bool) {
    if let Some(body) = web_sys::window().and_then(|w| w.document()).and_then(|d| d.body()) {
        let _ = if dark { body.class_list().add_1("dark") } else { body.class_list().remove_1("dark") };
    }
}

/// Loads the signed-in user, if the stored token is still good.
pub async fn load_me(session: Session) {
    if api::token().is_none() {
        session.me.set(None);
        return;
    }
    match api::get::<Me>("/api/users/me").await {
        Ok(m) => {
            apply_theme(m.preferences.dark_mode);
            session.me.set(Some(m));
        }
        Err(e) => {
            // Signed in but not let in (no access yet, request pending, disabled): say so.
            if e.status == 403 {
                api::set_token(None);
                session.sign_in_error.set(Some(e.message));
            }
            session.me.set(None);
        }
    }
}

#[component]
fn Nav() -> impl IntoView {
    let s = session();
    let sign_out = move |_| {
        api::set_token(None);
        s.sign_in_error.set(None);
        s.me.set(None);
    };
    let toggle_dark = move |_| {
        let dark = !s.me.with_untracked(|m| m.as_ref().is_some_and(|m| m.preferences.dark_mode));
        apply_theme(dark);
        s.me.update(|m| {
            if let Some(m) = m {
                m.preferences.dark_mode = dark;
            }
        });
        leptos::task::spawn_local(async move {
            let _ = api::put("/api/users/me/preferences", &serde_json::json!({ "dark_mode": dark })).await;
        });
    };
    let email = move || s.me.with(|m| m.as_ref().map(|m| m.email.clone()).unwrap_or_default());
    let role = move || s.me.with(|m| m.as_ref().map(|m| format!("{:?}", m.role).to_lowercase()).unwrap_or_default());
    view! {
        <nav class="sidebar">
            <div class="brand">"Dilux Backup"</div>
            <A href="/">"Dashboard"</A>
            <A href="/servers">"Servers"</A>
            <A href="/databases">"Databases"</A>
            <A href="/backups">"Backups"</A>
            <A href="/restores">"Restores"</A>
            <A href="/policies">"Policies"</A>
            <A href="/storage">"Storage"</A>
            <A href="/notifications">"Notifications"</A>
            <Show when=move || s.can(Permission::ManageUsers)>
                <A href="/users">"Users"</A>
                <A href="/audit">"Audit"</A>
            </Show>
            <A href="/settings">"Settings"</A>
            <A href="/status">"Status"</A>
            <div class="who">
                <span class="email">{email}</span>
                <span class="role">{role}</span>
                <button class="link" on:click=toggle_dark>"Dark mode"</button>
                <button class="link" id="sign-out" on:click=sign_out>"Sign out"</button>
            </div>
        </nav>
    }
}

#[component]
fn App() -> impl IntoView {
    let s = Session { me: RwSignal::new(None), sign_in_error: RwSignal::new(None), dev_mode: RwSignal::new(false) };
    provide_context(s);
    let checked = RwSignal::new(false);
    leptos::task::spawn_local(async move {
        let location = web_sys::window().map(|w| w.location());
        if location.as_ref().and_then(|l| l.pathname().ok()).as_deref() == Some(entra::CALLBACK_PATH) {
            // Back from Entra ID: redeem the code, then continue at the dashboard.
            let query = location.as_ref().and_then(|l| l.search().ok()).unwrap_or_default();
            let outcome = match api::get::<serde_json::Value>("/api/auth/config").await {
                Ok(config) => entra::finish(&config, &query).await,
                Err(e) => Err(e.message),
            };
            match outcome {
                Ok(token) => api::set_token(Some(&token)),
                Err(e) => s.sign_in_error.set(Some(e)),
            }
        }
        if let Ok(config) = api::get::<serde_json::Value>("/api/auth/config").await {
            s.dev_mode.set(config["mode"] == "dev");
        }
        load_me(s).await;
        checked.set(true);
    });
    view! {
        <Router>
            <Show when=move || checked.get() fallback=|| view! { <p class="loading">"Loading…"</p> }>
                <Show when=move || s.me.with(Option::is_some) fallback=pages::signin::SignIn>
                    <div class="shell">
                        <Nav/>
                        <main>
                            <Show when=move || s.dev_mode.get()>
                                <p class="banner warning" id="dev-mode-banner" role="alert">
                                    "Dev sign-in is on: anyone who reaches this address can sign in as admin. "
                                    "Never expose it; use Entra ID for anything but a local trial."
                                </p>
                            </Show>
                            <Routes fallback=|| view! { <h1>"Not found"</h1> }>
                                <Route path=path!("/") view=pages::dashboard::Dashboard/>
                                // Signed in from Entra ID's redirect: continue at the dashboard.
                                <Route path=path!("/auth/callback") view=|| view! { <Redirect path="/"/> }/>
                                <Route path=path!("/servers") view=pages::servers::Servers/>
                                <Route path=path!("/databases") view=pages::databases::Databases/>
                                <Route path=path!("/backups") view=pages::backups::Backups/>
                                <Route path=path!("/restores") view=pages::restores::Restores/>
                                <Route path=path!("/policies") view=pages::policies::Policies/>
                                <Route path=path!("/storage") view=pages::storage::Storage/>
                                <Route path=path!("/users") view=pages::users::Users/>
                                <Route path=path!("/audit") view=pages::audit::Audit/>
                                <Route path=path!("/notifications") view=pages::notifications::Notifications/>
                                <Route path=path!("/settings") view=pages::settings::Settings/>
                                <Route path=path!("/status") view=pages::status::Status/>
                            </Routes>
                        </main>
                    </div>
                </Show>
            </Show>
        </Router>
    }
}

#[wasm_bindgen::prelude::wasm_bindgen(start)]
pub fn start() {
    leptos::mount::mount_to_body(App);
}
