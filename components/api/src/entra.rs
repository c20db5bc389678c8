//! Entra ID access tokens: signature against the tenant's published keys, then claims, then the user.

use chrono::Utc;
use jwt_simple::prelude::*;
use serde::{Deserialize, Serialize};

use dilux_azure_spin as store;
use dilux_domain::tables;
use dilux_domain::user::{pending_user_key, Role, User};

use crate::auth::Principal;
use crate::http::ApiError;
use crate::Ctx;

/// Signing keys are refetched at least this often, and whenever a token names an unknown one.
const KEYS_MAX_AGE_HOURS: i64 = 24;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EntraClaims {
    pub oid: String,
    #[serde(default)]
    pub preferred_username: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct KeyCache {
    jwks: String,
    fetched_at: chrono::DateTime<Utc>,
}

fn unauthorized(msg: &str) -> ApiError {
    ApiError::new(401, "invalid_token", msg)
}

fn key_from_jwks(jwks: &str, kid: &str) -> Option<RS256PublicKey> {
    let v: serde_json::Value = serde_json::from_str(jwks).ok()?;
    let k = v["keys"].as_array()?.iter().find(|k| k["kid"] == kid && k["kty"] == "RSA")?;
    let b64 = |s: &str| Base64UrlSafeNoPadding::decode_to_vec(s, None).ok();
    RS256PublicKey::from_components(&b64(k["n"].as_str()?)?, &b64(k["e"].as_str()?)?).ok()
}

async fn fetch_jwks(authority: &str, tenant: &str) -> Result<String, ApiError> {
    let url = format!("{authority}/{tenant}/discovery/v2.0/keys");
    let resp: spin_sdk::http::Response = spin_sdk::http::send(spin_sdk::http::Request::get(url).build())
        .await
        .map_err(|e| ApiError::new(503, "identity_provider_unreachable", format!("cannot fetch Entra ID signing keys: {e}; check allowed_outbound_hosts and entra_authority")))?;
    if *resp.status() != 200 {
        return Err(ApiError::new(503, "identity_provider_unreachable", format!("Entra ID answered {} for the signing keys; check entra_tenant_id", resp.status())));
    }
    String::from_utf8(resp.into_body()).map_err(|_| ApiError::new(503, "identity_provider_unreachable", "Entra ID signing keys are not text"))
}

/// Verifies an Entra ID token and answers its claims.
pub async fn verify(ctx: &Ctx, token: &str, tenant: &str, client_id: &str, authority: &str) -> Result<EntraClaims, ApiError> {
    let kid = Token::decode_metadata(token).ok().and_then(|m| m.key_id().map(str::to_string)).ok_or_else(|| unauthorized("the token is not a signed Entra ID token"))?;
    let cached = store::get::<KeyCache>(&ctx.account, tables::AUTH_CACHE, "jwks", tenant).await.ok().flatten().map(|(c, _)| c);
    let fresh = cached.as_ref().filter(|c| Utc::now() - c.fetched_at < chrono::Duration::hours(KEYS_MAX_AGE_HOURS));
    let key = match fresh.and_then(|c| key_from_jwks(&c.jwks, &kid)) {
        Some(k) => k,
        None => {
            let jwks = fetch_jwks(authority, tenant).await?;
            let entry = KeyCache { jwks: jwks.clone(), fetched_at: Utc::now() };
            if let Err(e) = store::replace(&ctx.account, tables::AUTH_CACHE, "jwks", tenant, &entry, None).await {
                if e.status() == Some(404) {
                    let _ = store::insert_or_init(&ctx.account, &ctx.container, tables::AUTH_CACHE, "jwks", tenant, &entry).await;
                }
            }
            key_from_jwks(&jwks, &kid).ok_or_else(|| unauthorized("the token was signed with a key this tenant does not publish"))?
        }
    };
    let options = VerificationOptions {
        allowed_issuers: Some(HashSet::from_strings(&[format!("{authority}/{tenant}/v2.0")])),
        allowed_audiences: Some(HashSet::from_strings(&[client_id.to_string(), format!("api://{client_id}")])),
        time_tolerance: Some(Duration::from_mins(5)),
        ..Default::default()
    };
    let claims = key.verify_token::<EntraClaims>(token, Some(options)).map_err(|_| unauthorized("the token is invalid, expired, or meant for another application; sign in again"))?;
    Ok(claims.custom)
}

/// A known user gets in with their role, unless disabled.
fn admitted(u: User) -> Result<Principal, ApiError> {
    if !u.enabled {
        return Err(ApiError::new(403, "account_disabled", "your account is disabled; ask an admin"));
    }
    Ok(Principal { user_id: u.id, email: u.email, role: u.role })
}

/// The signed-in user's role: from the users table; the very first user becomes admin.
pub async fn principal(ctx: &Ctx, c: EntraClaims) -> Result<Principal, ApiError> {
    let email = c.email.clone().or(c.preferred_username.clone()).unwrap_or_default();
    if let Some((u, _)) = store::get::<User>(&ctx.account, tables::USERS, "user", &c.oid).await? {
        return admitted(u);
    }
    // Pre-registered by an admin under their email: claim that row with the real oid.
    if let Some((mut u, _)) = store::get::<User>(&ctx.account, tables::USERS, "user", &pending_user_key(&email)).await? {
        u.id = c.oid.clone();
        store::insert_or_init(&ctx.account, &ctx.container, tables::USERS, "user", &u.id, &u).await.or_else(|e| if e.status() == Some(409) { Ok(()) } else { Err(e) })?;
        store::delete(&ctx.account, tables::USERS, "user", &pending_user_key(&email)).await?;
        crate::settings::withdraw_access_request(ctx, &c.oid).await?;
        return admitted(u);
    }
    let anyone = store::query_all::<User>(&ctx.account, tables::USERS, "PartitionKey eq 'user'").await?;
    if !anyone.is_empty() {
        let name = c.name.clone().unwrap_or_else(|| email.clone());
        return Err(if crate::settings::file_access_request(ctx, &c.oid, &email, &name).await? {
            ApiError::new(403, "access_requested", format!("you are signed in as {email}; your access request is waiting for an admin's approval"))
        } else {
            ApiError::new(403, "no_access", format!("you are signed in as {email}, but have no access; ask an admin to add you"))
        });
    }
    let first = User { id: c.oid.clone(), email: email.clone(), name: c.name.unwrap_or_else(|| email.clone()), role: Role::Admin, enabled: true, created_at: Utc::now() };
    match store::insert_or_init(&ctx.account, &ctx.container, tables::USERS, "user", &first.id, &first).await {
        Ok(()) => {}
        // Another first sign-in raced this one; that user won.
        Err(e) if e.status() == Some(409) => {}
        Err(e) => return Err(e.into()),
    }
    // Re-read: whoever won the race is admin; if it was not us, we have no access.
    match store::get::<User>(&ctx.account, tables::USERS, "user", &c.oid).await? {
        Some((u, _)) => admitted(u),
        None => Err(ApiError::new(403, "no_access", "another user signed in first and became admin; ask them to add you")),
    }
}
