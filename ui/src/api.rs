//! Calls to `/api`: the bearer token from the sign-in, JSON both ways, and API errors turned into the
//! sentence the API wrote (it names the field and what to do).

use gloo_net::http::{Method, RequestBuilder};
use gloo_storage::Storage as _;
use serde::de::DeserializeOwned;
use serde_json::Value;

const TOKEN_KEY: &str = "dilux.token";

pub fn token() -> Option<String> {
    gloo_storage::LocalStorage::get::<String>(TOKEN_KEY).ok()
}

pub fn set_token(t: Option<&str>) {
    match t {
        Some(t) => {
            let _ = gloo_storage::LocalStorage::set(TOKEN_KEY, t);
        }
        None => gloo_storage::LocalStorage::delete(TOKEN_KEY),
    }
}

/// An API failure as the user reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: u16,
    pub message: String,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

pub async fn call(method: Method, path: &str, body: Option<&Value>) -> Result<Value, ApiError> {
    call_tagged(method, path, body, None).await.map(|(v, _)| v)
}

/// A call that sends `If-Match` when given and answers the resource's `ETag` with the body.
pub async fn call_tagged(
    method: Method,
    path: &str,
    body: Option<&Value>,
    if_match: Option<&str>,
) -> Result<(Value, Option<String>), ApiError> {
    let mut req = RequestBuilder::new(path).method(method);
    if let Some(t) = token() {
        req = req.header("authorization", &format!("Bearer {t}"));
    }
    if let Some(e) = if_match {
        req = req.header("if-match", e);
    }
    let sent = match body {
        Some(b) => req.json(b).map_err(|e| ApiError { status: 0, message: e.to_string() })?.send().await,
        None => req.send().await,
    };
    let resp = sent.map_err(|e| ApiError {
        status: 0,
        message: format!("the server could not be reached ({e}); check your connection and try again"),
    })?;
    let status = resp.status();
    let etag = resp.headers().get("etag");
    let v: Value = resp.json().await.unwrap_or(Value::Null);
    if (200..300).contains(&status) {
        return Ok((v, etag));
    }
    if status == 401 {
        // The token expired or was revoked: back to the sign-in page.
        set_token(None);
    }
    let message =
        v["error"]["message"].as_str().map(str::to_string).unwrap_or_else(|| format!("the server answered {status}"));
    Err(ApiError { status, message })
}

pub async fn get<T: DeserializeOwned>(path: &str) -> Result<T, ApiError> {
    let v = call(Method::GET, path, None).await?;
    serde_json::from_value(v)
        .map_err(|e| ApiError { status: 0, message: format!("unexpected answer from {path}: {e}") })
}

pub async fn post(path: &str, body: &Value) -> Result<Value, ApiError> {
    call(Method::POST, path, Some(body)).await
}

pub async fn put(path: &str, body: &Value) -> Result<Value, ApiError> {
    call(Method::PUT, path, Some(body)).await
}

pub async fn delete(path: &str) -> Result<Value, ApiError> {
    call(Method::DELETE, path, None).await
}

/// Percent-encodes a query value.
pub fn enc(s: &str) -> String {
    js_sys::encode_uri_component(s).as_string().unwrap_or_default()
}

/// `path` with the non-empty `params` appended as an encoded query.
pub fn query(path: &str, params: &[(&str, String)]) -> String {
    let mut q = path.to_string();
    for (k, v) in params.iter().filter(|(_, v)| !v.is_empty()) {
        q.push(if q.contains('?') { '&' } else { '?' });
        q.push_str(&format!("{k}={}", enc(v)));
    }
    q
}

/// `1.5 GB` style sizes.
pub fn bytes(n: i64) -> String {
    let units = ["B", "KB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i < units.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", units[i])
    }
}
