//! Small pieces every page uses: data that loads (and reloads), error and status display.

use leptos::prelude::*;
use serde::de::DeserializeOwned;

use crate::api;

/// What a page shows of something it loads.
pub type Loaded<T> = RwSignal<Option<Result<T, String>>>;

/// Loads `path()` now, again whenever a signal it reads changes, and whenever `reload` is bumped.
pub fn fetched<T>(path: impl Fn() -> String + Send + Sync + 'static, reload: RwSignal<u32>) -> Loaded<T>
where
    T: DeserializeOwned + Send + Sync + 'static,
{
    let out: Loaded<T> = RwSignal::new(None);
    Effect::new(move |_| {
        reload.track();
        let p = path();
        leptos::task::spawn_local(async move {
            out.set(Some(api::get::<T>(&p).await.map_err(|e| e.message)));
        });
    });
    out
}

/// Renders a loaded value, a spinner while loading, or the API's own error sentence.
pub fn show<T: Send + Sync + 'static, V: IntoView + 'static>(
    data: Loaded<T>,
    render: impl Fn(&T) -> V + Send + Sync + 'static,
) -> impl IntoView {
    move || {
        data.with(|d| match d {
            None => view! { <p class="loading">"Loading…"</p> }.into_any(),
            Some(Err(e)) => view! { <p class="error" role="alert">{e.clone()}</p> }.into_any(),
            Some(Ok(v)) => render(v).into_any(),
        })
    }
}

/// The message line under a form or action: errors in red, outcomes in plain words.
#[component]
pub fn Notice(message: RwSignal<Option<Result<String, String>>>) -> impl IntoView {
    move || {
        message.get().map(|m| match m {
            Ok(text) => view! { <p class="ok" role="status">{text}</p> }.into_any(),
            Err(text) => view! { <p class="error" role="alert">{text}</p> }.into_any(),
        })
    }
}

/// A connection test's outcome in one sentence.
pub fn describe_test(v: &serde_json::Value) -> Result<String, String> {
    if v["success"] == true {
        Ok(format!("Connection OK: {} ({} ms)", v["server_version"].as_str().unwrap_or("server"), v["duration_ms"]))
    } else {
        Err(format!(
            "Connection failed ({}): {}",
            v["error_type"].as_str().unwrap_or("error"),
            v["message"].as_str().unwrap_or("")
        ))
    }
}

/// Runs a connection test — of saved settings (`saved`: a `…/test` route) or of the unsaved ones in
/// `unsaved` — and says how it went in `message`.
pub fn connection_test(
    message: RwSignal<Option<Result<String, String>>>,
    saved: Option<String>,
    unsaved: serde_json::Value,
) {
    message.set(Some(Ok("Testing…".into())));
    leptos::task::spawn_local(async move {
        let r = match saved {
            Some(route) => api::post(&route, &serde_json::Value::Null).await,
            None => api::post("/api/databases/test-connection", &unsaved).await,
        };
        message.set(Some(r.map_err(|e| e.message).and_then(|v| describe_test(&v))));
    });
}

/// Newer/Older over a newest-first list paged by cursor: `cursors` is the stack of cursors that led to
/// this page (its top is this page's), `next` the API's `next_cursor`.
#[component]
pub fn Pager(cursors: RwSignal<Vec<String>>, next: Option<String>) -> impl IntoView {
    view! {
        <div class="pager">
            <button
                disabled=move || cursors.with(Vec::is_empty)
                on:click=move |_| cursors.update(|c| { c.pop(); })
            >
                "Newer"
            </button>
            <button
                disabled=next.is_none()
                on:click=move |_| if let Some(n) = next.clone() { cursors.update(|c| c.push(n)) }
            >
                "Older"
            </button>
        </div>
    }
}

/// The cursor of the page shown now ("" for the first).
pub fn current_cursor(cursors: RwSignal<Vec<String>>) -> String {
    cursors.with(|c| c.last().cloned()).unwrap_or_default()
}

pub fn badge(status: &str) -> impl IntoView {
    let label = status.replace('_', " ");
    view! { <span class=format!("badge {status}")>{label}</span> }
}

/// `2026-11-23 10:04:05 UTC`.
pub fn when(t: &chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// What an add/edit form saves to. Editing, it loads the version it edits and sends it back as
/// `If-Match`, so a save over someone else's newer change is refused (412) instead of losing it.
#[derive(Clone)]
pub struct Saver {
    collection: &'static str,
    resource: Option<String>,
    etag: RwSignal<Option<String>>,
}

impl Saver {
    /// `collection` is e.g. `/api/engines`; `id` is the edited one, if any.
    pub fn new(collection: &'static str, id: Option<String>) -> Self {
        let resource = id.map(|id| format!("{collection}/{id}"));
        let etag = RwSignal::new(None);
        if let Some(r) = resource.clone() {
            leptos::task::spawn_local(async move {
                if let Ok((_, tag)) = api::call_tagged(gloo_net::http::Method::GET, &r, None, None).await {
                    etag.set(tag);
                }
            });
        }
        Saver { collection, resource, etag }
    }

    pub fn is_edit(&self) -> bool {
        self.resource.is_some()
    }

    /// PUT (editing) or POST (adding) `body`; `done` on success, the API's sentence in `message` otherwise.
    pub fn save(
        &self,
        body: serde_json::Value,
        message: RwSignal<Option<Result<String, String>>>,
        done: impl FnOnce() + 'static,
    ) {
        let (collection, resource, etag) = (self.collection, self.resource.clone(), self.etag.get_untracked());
        leptos::task::spawn_local(async move {
            let r = match resource {
                Some(r) => api::call_tagged(gloo_net::http::Method::PUT, &r, Some(&body), etag.as_deref())
                    .await
                    .map(|(v, _)| v),
                None => api::post(collection, &body).await,
            };
            match r {
                Ok(_) => done(),
                Err(e) => message.set(Some(Err(e.message))),
            }
        });
    }
}
