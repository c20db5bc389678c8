//! Entra ID access tokens: signature against the tenant's published keys, then claims, then the user.

use chrono::{DateTime, Utc};
use jwt_simple::prelude::*;
use serde::{Deserialize, Serialize};

use dilux_domain::settings::SigningKeys;
use dilux_domain::user::{pending_user_key, Role, User};
use dilux_store::{ServiceError, StoreError};

use dilux_domain::audit::AuditLog;

use crate::auth::{EntraConfig, Principal};
use crate::error::{ApiError, ApiResult, Kind};
use crate::App;

/// Signing keys are refetched at least this often, and when a token names an unknown one
const KEYS_MAX_AGE_HOURS: i64 = 24;
/// but not sooner than this after the last fetch: tokens with made-up key ids cannot make every request
/// a call to Entra ID.
const KEYS_MIN_REFETCH_SECONDS: i64 = 10;

/// Audit actions of sign-ins (no route writes them).
pub const FIRST_ADMIN: &str = "signin_first_admin";
pub const CLAIMED_REGISTRATION: &str = "signin_claimed_registration";
/// A known user's first request with a token issued after their last one's.
pub const SIGNIN: &str = "signin";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EntraClaims {
    pub oid: String,
    #[serde(default)]
    pub preferred_username: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    /// Set by Entra ID when the `email` claim's domain is verified by the tenant.
    #[serde(default)]
    pub xms_edov: Option<serde_json::Value>,
    /// The user principal name, verified by the tenant.
    #[serde(default)]
    pub upn: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    /// Delegated scopes, space-separated (user tokens).
    #[serde(default)]
    pub scp: Option<String>,
    /// App roles (application tokens, or users assigned a role).
    #[serde(default)]
    pub roles: Vec<String>,
    /// The token's `iat`, from the verified standard claims.
    #[serde(skip)]
    pub issued_at: Option<DateTime<Utc>>,
}

impl EntraClaims {
    /// An address the tenant vouches for: the UPN, or an email whose domain it verified. Only this claims
    /// a registration made by email (anyone can put any `preferred_username` on a guest account).
    pub fn verified_email(&self) -> Option<String> {
        let verified = matches!(&self.xms_edov, Some(serde_json::Value::Bool(true)))
            || matches!(&self.xms_edov, Some(serde_json::Value::String(v)) if v == "1" || v == "true");
        let email = self.email.clone().filter(|_| verified);
        self.upn.clone().or(email).map(|e| e.trim().to_lowercase()).filter(|e| e.contains('@'))
    }

    /// Whether the token is for this API: the delegated scope, or the app role.
    fn grants(&self, c: &EntraConfig) -> bool {
        self.scp.as_deref().is_some_and(|s| s.split(' ').any(|x| x == c.scope)) || self.roles.contains(&c.app_role)
    }
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
pub async fn verify(app: &App, token: &str, c: &EntraConfig, now: DateTime<Utc>) -> ApiResult<EntraClaims> {
    let (tenant, client_id, authority) = (c.tenant.as_str(), c.client_id.as_str(), c.authority.as_str());
    let kid = Token::decode_metadata(token)
        .ok()
        .and_then(|m| m.key_id().map(str::to_string))
        .ok_or_else(|| unauthorized("the token is not a signed Entra ID token"))?;
    let keys = &app.stores.signing_keys;
    let cached = keys.get(tenant).await.ok().flatten().map(|(c, _)| c);
    let fresh = cached.as_ref().filter(|c| now - c.fetched_at < chrono::Duration::hours(KEYS_MAX_AGE_HOURS));
    let recent =
        cached.as_ref().is_some_and(|c| now - c.fetched_at < chrono::Duration::seconds(KEYS_MIN_REFETCH_SECONDS));
    let key = match fresh.and_then(|c| key_from_jwks(&c.jwks, &kid)) {
        Some(k) => k,
        None if recent => return Err(unauthorized("the token was signed with a key this tenant does not publish")),
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
    let issued_at = claims.issued_at.and_then(|t| DateTime::from_timestamp(t.as_secs() as i64, 0));
    if !claims.custom.grants(c) {
        return Err(ApiError::new(
            Kind::NoAccess,
            format!(
                "the token carries neither the `{}` scope nor the `{}` app role of this API; sign in through the app",
                c.scope, c.app_role
            ),
        ));
    }
    Ok(EntraClaims { issued_at, ..claims.custom })
}

async fn audit(app: &App, action: &str, u: &User, req: &crate::Request, now: DateTime<Utc>) {
    let mut row = AuditLog::system(action, "user", &u.id, &u.email, serde_json::json!({ "role": u.role }), now);
    (row.user_id, row.user_email, row.ip_address) = (u.id.clone(), u.email.clone(), req.client_ip.clone());
    // The sign-in goes ahead either way: a lost audit row is logged, not a refused user.
    if let Err(e) = app.stores.audit.insert(&row).await {
        crate::log::event("audit_write_failed", &[("action", &action), ("error", &e)]);
    }
}

/// Records (and audits) a sign-in when `token_issued` is newer than the user's last: once per token, whatever
/// how many requests it makes. Of two requests with the same new token, only the one whose write wins
/// audits it.
async fn note_sign_in(
    app: &App,
    mut u: User,
    etag: &str,
    token_issued: DateTime<Utc>,
    req: &crate::Request,
    now: DateTime<Utc>,
) -> User {
    if !u.enabled || u.last_sign_in_at.is_some_and(|t| t >= token_issued) {
        return u;
    }
    u.last_sign_in_at = Some(token_issued);
    match app.stores.users.replace(&u.id.clone(), &u, Some(etag)).await {
        Ok(_) => audit(app, SIGNIN, &u, req, now).await,
        Err(StoreError::Changed { .. }) => {}
        Err(e) => crate::log::event("signin_not_recorded", &[("user", &u.id), ("error", &e)]),
    }
    u
}

/// A known user gets in with their role, unless disabled.
fn admitted(u: User) -> ApiResult<Principal> {
    if !u.enabled {
        return Err(ApiError::new(Kind::AccountDisabled, "your account is disabled; ask an admin"));
    }
    Ok(Principal { user_id: u.id, email: u.email, role: u.role })
}

/// The signed-in user's role: from the users table, or a registration by email the tenant's verified address
/// claims; while there is no user at all, only the configured first admin gets in (as admin).
pub async fn principal(
    app: &App,
    cfg: &EntraConfig,
    c: EntraClaims,
    req: &crate::Request,
    now: DateTime<Utc>,
) -> ApiResult<Principal> {
    let users = &app.stores.users;
    let email = c.email.clone().or(c.preferred_username.clone()).unwrap_or_default();
    if let Some((u, etag)) = users.get(&c.oid).await? {
        let u = note_sign_in(app, u, &etag, c.issued_at.unwrap_or(now), req, now).await;
        return admitted(u);
    }
    // Pre-registered by an admin under their email: claim that row with the real oid.
    if let Some(verified) = c.verified_email() {
        if let Some((mut u, _)) = users.get(&pending_user_key(&verified)).await? {
            u.id = c.oid.clone();
            u.last_sign_in_at = Some(c.issued_at.unwrap_or(now));
            match users.insert(&u.id, &u).await {
                Ok(()) | Err(StoreError::Conflict { .. }) => {}
                Err(e) => return Err(e.into()),
            }
            users.delete(&pending_user_key(&verified)).await?;
            crate::access_requests::withdraw(app, &c.oid).await?;
            audit(app, CLAIMED_REGISTRATION, &u, req, now).await;
            return admitted(u);
        }
    }
    let is_first_admin =
        cfg.first_admin.as_deref().is_some_and(|f| f == c.oid || Some(f.to_string()) == c.verified_email());
    if is_first_admin && users.list().await?.is_empty() {
        let name = c.name.clone().unwrap_or_else(|| email.clone());
        let signed_in = Some(c.issued_at.unwrap_or(now));
        let first = User {
            id: c.oid.clone(),
            email,
            name,
            role: Role::Admin,
            enabled: true,
            created_at: now,
            last_sign_in_at: signed_in,
        };
        match users.insert(&first.id, &first).await {
            Ok(()) | Err(StoreError::Conflict { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        audit(app, FIRST_ADMIN, &first, req, now).await;
        return admitted(users.get(&c.oid).await?.map(|(u, _)| u).unwrap_or(first));
    }
    let name = c.name.clone().unwrap_or_else(|| email.clone());
    if crate::access_requests::file(app, &c.oid, &email, &name, now).await? {
        return Err(ApiError::new(
            Kind::AccessRequested,
            format!("you are signed in as {email}; your access request is waiting for an admin's approval"),
        ));
    }
    let hint = if cfg.first_admin.is_none() && users.list().await?.is_empty() {
        "; nobody is admin yet: set the entra_first_admin variable to the first admin's object id or email"
    } else {
        "; ask an admin to add you"
    };
    Err(ApiError::new(Kind::NoAccess, format!("you are signed in as {email}, but have no access{hint}")))
}
