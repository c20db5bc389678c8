//! Entra ID access tokens: signature against the tenant's published keys, then claims, then the user.

use chrono::{DateTime, Utc};
use jwt_simple::prelude::*;
use serde::{Deserialize, Serialize};

use dilux_domain::settings::SigningKeys;
use dilux_domain::user::{pending_user_key, Role, User};
use dilux_store::{ServiceError, StoreError};

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, Kind};
use crate::App;

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

fn unauthorized(msg: &str) -> ApiError {
    ApiError::new(Kind::InvalidToken, msg)
}

fn key_from_jwks(jwks: &str, kid: &str) -> Option<RS256PublicKey> {
    let v: serde_json::Value = serde_json::from_str(jwks).ok()?;
    let k = v["keys"].as_array()?.iter().find(|k| k["kid"] == kid && k["kty"] == "RSA")?;
    let b64 = |s: &str| Base64UrlSafeNoPadding::decode_to_vec(s, None).ok();
    RS256PublicKey::from_components(&b64(k["n"].as_str()?)?, &b64(k["e"].as_str()?)?).ok()
}

/// Verifies an Entra ID token and answers its claims.
pub async fn verify(
    app: &App,
    token: &str,
    tenant: &str,
    client_id: &str,
    authority: &str,
    now: DateTime<Utc>,
) -> ApiResult<EntraClaims> {
    let kid = Token::decode_metadata(token)
        .ok()
        .and_then(|m| m.key_id().map(str::to_string))
        .ok_or_else(|| unauthorized("the token is not a signed Entra ID token"))?;
    let keys = &app.stores.signing_keys;
    let cached = keys.get(tenant).await.ok().flatten().map(|(c, _)| c);
    let fresh = cached.as_ref().filter(|c| now - c.fetched_at < chrono::Duration::hours(KEYS_MAX_AGE_HOURS));
    let key = match fresh.and_then(|c| key_from_jwks(&c.jwks, &kid)) {
        Some(k) => k,
        None => {
            let jwks = app.stores.keys.fetch(authority, tenant).await.map_err(|e| match e {
                ServiceError::NotConfigured(m) | ServiceError::Unreachable(m) => {
                    ApiError::new(Kind::IdentityProviderUnreachable, m)
                }
            })?;
            // A cache that cannot be written only costs a refetch next time.
            let _ = keys.upsert(tenant, &SigningKeys { jwks: jwks.clone(), fetched_at: now }).await;
            key_from_jwks(&jwks, &kid)
                .ok_or_else(|| unauthorized("the token was signed with a key this tenant does not publish"))?
        }
    };
    let options = VerificationOptions {
        allowed_issuers: Some(HashSet::from_strings(&[format!("{authority}/{tenant}/v2.0")])),
        allowed_audiences: Some(HashSet::from_strings(&[client_id.to_string(), format!("api://{client_id}")])),
        time_tolerance: Some(Duration::from_mins(5)),
        ..Default::default()
    };
    let claims = key
        .verify_token::<EntraClaims>(token, Some(options))
        .map_err(|_| unauthorized("the token is invalid, expired, or meant for another application; sign in again"))?;
    Ok(claims.custom)
}

/// A known user gets in with their role, unless disabled.
fn admitted(u: User) -> ApiResult<Principal> {
    if !u.enabled {
        return Err(ApiError::new(Kind::AccountDisabled, "your account is disabled; ask an admin"));
    }
    Ok(Principal { user_id: u.id, email: u.email, role: u.role })
}

/// The signed-in user's role: from the users table; the very first user becomes admin.
pub async fn principal(app: &App, c: EntraClaims, now: DateTime<Utc>) -> ApiResult<Principal> {
    let users = &app.stores.users;
    let email = c.email.clone().or(c.preferred_username.clone()).unwrap_or_default();
    if let Some((u, _)) = users.get(&c.oid).await? {
        return admitted(u);
    }
    // Pre-registered by an admin under their email: claim that row with the real oid.
    if let Some((mut u, _)) = users.get(&pending_user_key(&email)).await? {
        u.id = c.oid.clone();
        match users.insert(&u.id, &u).await {
            Ok(()) | Err(StoreError::Conflict { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        users.delete(&pending_user_key(&email)).await?;
        crate::access_requests::withdraw(app, &c.oid).await?;
        return admitted(u);
    }
    if !users.list().await?.is_empty() {
        let name = c.name.clone().unwrap_or_else(|| email.clone());
        return Err(if crate::access_requests::file(app, &c.oid, &email, &name, now).await? {
            ApiError::new(
                Kind::AccessRequested,
                format!("you are signed in as {email}; your access request is waiting for an admin's approval"),
            )
        } else {
            ApiError::new(
                Kind::NoAccess,
                format!("you are signed in as {email}, but have no access; ask an admin to add you"),
            )
        });
    }
    let name = c.name.unwrap_or_else(|| email.clone());
    let first = User { id: c.oid.clone(), email, name, role: Role::Admin, enabled: true, created_at: now };
    match users.insert(&first.id, &first).await {
        // Another first sign-in may have raced this one; that user won.
        Ok(()) | Err(StoreError::Conflict { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    // Re-read: whoever won the race is admin; if it was not us, we have no access.
    match users.get(&c.oid).await? {
        Some((u, _)) => admitted(u),
        None => {
            Err(ApiError::new(Kind::NoAccess, "another user signed in first and became admin; ask them to add you"))
        }
    }
}
