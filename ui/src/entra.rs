//! Entra ID sign-in: the OAuth 2.0 authorization-code flow with PKCE, as a single-page app does it.
//! The verifier and state live in sessionStorage for the round trip; the code is redeemed at the
//! tenant's token endpoint (SPA redirect URIs allow that from the browser).

use base64::Engine as _;
use gloo_storage::Storage as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Digest as _;

const PKCE_KEY: &str = "dilux.pkce";
pub const CALLBACK_PATH: &str = "/auth/callback";

#[derive(Serialize, Deserialize)]
struct Pending {
    verifier: String,
    state: String,
}

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn random(n: usize) -> String {
    let mut buf = vec![0u8; n];
    getrandom::getrandom(&mut buf).expect("the browser has Web Crypto");
    b64url(&buf)
}

fn origin() -> String {
    web_sys::window().and_then(|w| w.location().origin().ok()).unwrap_or_default()
}

fn endpoint(config: &Value, path: &str) -> String {
    format!(
        "{}/{}/oauth2/v2.0/{path}",
        config["authority"].as_str().unwrap_or_default(),
        config["tenant_id"].as_str().unwrap_or_default()
    )
}

/// The access token is for this API: its app registration's delegated scope (`api://{client id}/{scope}`).
fn scope(config: &Value) -> String {
    let client = config["client_id"].as_str().unwrap_or_default();
    format!("openid profile api://{client}/{}", config["scope"].as_str().unwrap_or("access_as_user"))
}

/// Leaves for the tenant's sign-in page.
pub fn start(config: &Value) {
    let pending = Pending { verifier: random(32), state: random(16) };
    let challenge = b64url(&sha2::Sha256::digest(pending.verifier.as_bytes()));
    let enc = |s: &str| crate::api::enc(s);
    let url = format!(
        "{}?client_id={}&response_type=code&response_mode=query&redirect_uri={}&scope={}\
         &code_challenge={challenge}&code_challenge_method=S256&state={}",
        endpoint(config, "authorize"),
        enc(config["client_id"].as_str().unwrap_or_default()),
        enc(&format!("{}{CALLBACK_PATH}", origin())),
        enc(&scope(config)),
        pending.state,
    );
    let _ = gloo_storage::SessionStorage::set(PKCE_KEY, &pending);
    if let Some(w) = web_sys::window() {
        let _ = w.location().set_href(&url);
    }
}

/// Back from the tenant with `?code=…&state=…`: redeems the code for an access token.
pub async fn finish(config: &Value, query: &str) -> Result<String, String> {
    let params =
        web_sys::UrlSearchParams::new_with_str(query).map_err(|_| "the sign-in answer is unreadable".to_string())?;
    if let Some(e) = params.get("error") {
        return Err(format!("Entra ID refused the sign-in: {}", params.get("error_description").unwrap_or(e)));
    }
    let pending: Pending = gloo_storage::SessionStorage::get(PKCE_KEY)
        .map_err(|_| "this sign-in was not started here; sign in again".to_string())?;
    gloo_storage::SessionStorage::delete(PKCE_KEY);
    if params.get("state").as_deref() != Some(pending.state.as_str()) {
        return Err("the sign-in answer does not match the request (state); sign in again".into());
    }
    let code = params.get("code").ok_or("the sign-in answer has no code; sign in again")?;
    let enc = |s: &str| crate::api::enc(s);
    let form = format!(
        "client_id={}&grant_type=authorization_code&code={}&redirect_uri={}&code_verifier={}&scope={}",
        enc(config["client_id"].as_str().unwrap_or_default()),
        enc(&code),
        enc(&format!("{}{CALLBACK_PATH}", origin())),
        enc(&pending.verifier),
        enc(&scope(config)),
    );
    let resp = gloo_net::http::Request::post(&endpoint(config, "token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .map_err(|e| e.to_string())?
        .send()
        .await
        .map_err(|e| format!("Entra ID could not be reached ({e})"))?;
    let v: Value = resp.json().await.unwrap_or(Value::Null);
    v["access_token"].as_str().map(str::to_string).ok_or_else(|| {
        format!(
            "Entra ID did not issue a token: {}",
            v["error_description"].as_str().or(v["error"].as_str()).unwrap_or("no reason given")
        )
    })
}
