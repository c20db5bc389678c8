//! Who is calling, and may they. Every route names the permission it needs; a request without a
//! valid bearer token gets 401, a role without the permission 403.
//!
//! Modes (variable `auth_mode`):
//! - `entra` (production): Entra ID access tokens, RS256, checked against the tenant's signing keys
//!   (cached in Table storage, refetched when a token names an unknown `kid`), `iss`, `aud`, `exp`,
//!   `nbf`. The `oid` claim is the user; roles come from the users table, and the very first user to
//!   sign in becomes admin.
//! - `dev`: tokens signed with the local `auth_dev_secret`, issued by `POST /api/auth/dev-token` for any
//!   role, for local use and tests.

use jwt_simple::prelude::*;
use serde::{Deserialize, Serialize};
use spin_sdk::http::Request;

use dilux_domain::user::{Permission, Role};

use crate::http::{parse, ApiError};

const ISSUER: &str = "dilux-dev";
const AUDIENCE: &str = "dilux-api";
/// Dev tokens live a working day.
const DEV_TOKEN_HOURS: u64 = 8;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct DevClaims {
    email: String,
    name: String,
    role: Role,
}

/// The caller, as authenticated.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user_id: String,
    pub email: String,
    pub role: Role,
}

enum Mode {
    Dev(HS256Key),
    Entra { tenant: String, client_id: String, authority: String },
}

fn mode() -> Result<Mode, ApiError> {
    let var = |n: &str| spin_sdk::variables::get(n).ok().filter(|v| !v.is_empty());
    match var("auth_mode").as_deref() {
        Some("dev") => {
            let secret = var("auth_dev_secret").filter(|s| s.len() >= 32).ok_or_else(|| {
                ApiError::config("auth_mode is dev, so auth_dev_secret must be set to at least 32 random characters".into())
            })?;
            Ok(Mode::Dev(HS256Key::from_bytes(secret.as_bytes())))
        }
        Some("entra") => {
            let need = |n: &str| var(n).ok_or_else(|| ApiError::config(format!("auth_mode is entra, so {n} must be set")));
            Ok(Mode::Entra {
                tenant: need("entra_tenant_id")?,
                client_id: need("entra_client_id")?,
                authority: var("entra_authority").unwrap_or_else(|| "https://login.microsoftonline.com".into()).trim_end_matches('/').to_string(),
            })
        }
        Some(other) => Err(ApiError::config(format!("auth_mode `{other}` is not one of dev, entra"))),
        None => Err(ApiError::config("auth_mode is not set (dev or entra)".into())),
    }
}

/// What the UI needs to sign someone in; nothing here is secret.
pub fn public_config() -> Result<serde_json::Value, ApiError> {
    Ok(match mode()? {
        Mode::Dev(_) => serde_json::json!({ "mode": "dev" }),
        Mode::Entra { tenant, client_id, authority } => serde_json::json!({ "mode": "entra", "tenant_id": tenant, "client_id": client_id, "authority": authority }),
    })
}

/// Refuses `principal` unless its role grants `needed`.
pub fn check(principal: &Principal, needed: Permission) -> Result<(), ApiError> {
    if principal.role.can(needed) {
        Ok(())
    } else {
        Err(ApiError::new(403, "forbidden", format!("your role ({:?}) may not do this", principal.role).to_lowercase()))
    }
}

/// Who sent the request: 401 without a valid bearer token, 403 for a valid one with no access.
pub async fn authenticate(req: &Request, ctx: Option<&crate::Ctx>) -> Result<Principal, ApiError> {
    let token = req
        .header("authorization")
        .and_then(|h| h.as_str())
        .and_then(|h| h.strip_prefix("Bearer "))
        .ok_or_else(|| ApiError::new(401, "unauthenticated", "sign in first: send Authorization: Bearer <token>"))?;
    let principal = match mode()? {
        Mode::Dev(key) => {
            let options = VerificationOptions {
                allowed_issuers: Some(HashSet::from_strings(&[ISSUER])),
                allowed_audiences: Some(HashSet::from_strings(&[AUDIENCE])),
                ..Default::default()
            };
            let claims = key
                .verify_token::<DevClaims>(token, Some(options))
                .map_err(|_| ApiError::new(401, "invalid_token", "the token is invalid or expired; sign in again"))?;
            Principal { user_id: claims.subject.unwrap_or_default(), email: claims.custom.email, role: claims.custom.role }
        }
        Mode::Entra { tenant, client_id, authority } => {
            let ctx = ctx.ok_or_else(|| ApiError::config("storage is needed to sign in".into()))?;
            let claims = crate::entra::verify(ctx, token, &tenant, &client_id, &authority).await?;
            crate::entra::principal(ctx, claims).await?
        }
    };
    Ok(principal)
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DevTokenRequest {
    email: String,
    role: Role,
    #[serde(default)]
    name: Option<String>,
}

/// `POST /api/auth/dev-token` (dev mode only): a token for any role.
pub fn dev_token(body: &[u8]) -> Result<serde_json::Value, ApiError> {
    let Mode::Dev(key) = mode()? else {
        return Err(ApiError::new(404, "not_found", "dev tokens exist only when auth_mode is dev"));
    };
    let input: DevTokenRequest = parse(body)?;
    if !input.email.contains('@') || input.email.len() > 254 {
        return Err(ApiError::field("email", "must be an email address"));
    }
    let custom = DevClaims { email: input.email.clone(), name: input.name.unwrap_or_else(|| input.email.clone()), role: input.role };
    let claims = Claims::with_custom_claims(custom, Duration::from_hours(DEV_TOKEN_HOURS))
        .with_issuer(ISSUER)
        .with_audience(AUDIENCE)
        .with_subject(format!("dev:{}", input.email));
    let token = key.authenticate(claims).map_err(|e| ApiError::new(500, "token_error", e.to_string()))?;
    Ok(serde_json::json!({ "token": token, "token_type": "Bearer", "expires_in": DEV_TOKEN_HOURS * 3600, "role": input.role }))
}
