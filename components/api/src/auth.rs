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

use chrono::{DateTime, Utc};
use jwt_simple::prelude::*;
use serde::{Deserialize, Serialize};

use dilux_domain::config::{ConfigError, Variables};
use dilux_domain::user::{Permission, Role};

use crate::error::{ApiError, ApiResult, Kind};
use crate::http::{Cx, Reply, Request};
use crate::App;

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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user_id: String,
    pub email: String,
    pub role: Role,
}

pub enum AuthMode {
    Dev(HS256Key),
    Entra(EntraConfig),
}

/// Entra mode's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntraConfig {
    pub tenant: String,
    pub client_id: String,
    pub authority: String,
    /// The delegated scope a user's token must carry (`scp`), or
    pub scope: String,
    /// the app role an application's token must carry (`roles`).
    pub app_role: String,
    /// The object id or email of the one person who becomes admin while there is none.
    pub first_admin: Option<String>,
}

/// The variable that lets dev sign-in run against real storage: named so nobody sets it by accident.
pub const DEV_AUTH_ANYWHERE: &str = "dev_auth_anywhere_insecure";

impl AuthMode {
    /// `local_storage`: the storage is the local emulator. Dev sign-in lets anyone be admin, so it runs only
    /// there unless [`DEV_AUTH_ANYWHERE`] is `true`.
    pub fn load(vars: &Variables, local_storage: bool) -> Result<Self, ConfigError> {
        match vars.optional("auth_mode").as_deref() {
            Some("dev") if !local_storage && !vars.flag(DEV_AUTH_ANYWHERE)? => Err(ConfigError::new(
                "auth_mode",
                format!(
                    "is dev, which lets anyone sign in as admin, and storage is not the local emulator; use entra \
                     (or, on a machine nobody else can reach, set {DEV_AUTH_ANYWHERE}=true)"
                ),
            )),
            Some("dev") => {
                let secret = vars.optional("auth_dev_secret").filter(|s| s.len() >= 32).ok_or_else(|| {
                    ConfigError::new("auth_dev_secret", "must be at least 32 random characters when auth_mode is dev")
                })?;
                Ok(AuthMode::Dev(HS256Key::from_bytes(secret.as_bytes())))
            }
            Some("entra") => {
                let need = |n: &str| vars.required(n, "auth_mode is entra");
                let authority =
                    vars.optional("entra_authority").unwrap_or_else(|| "https://login.microsoftonline.com".into());
                Ok(AuthMode::Entra(EntraConfig {
                    tenant: need("entra_tenant_id")?,
                    client_id: need("entra_client_id")?,
                    authority: authority.trim_end_matches('/').to_string(),
                    scope: vars.optional("entra_scope").unwrap_or_else(|| "access_as_user".into()),
                    app_role: vars.optional("entra_app_role").unwrap_or_else(|| "Dilux.Access".into()),
                    first_admin: vars.optional("entra_first_admin").map(|v| v.trim().to_lowercase()),
                }))
            }
            Some(other) => Err(ConfigError::new("auth_mode", format!("is `{other}`, not one of dev, entra"))),
            None => Err(ConfigError::new("auth_mode", "is not set (dev or entra)")),
        }
    }

    /// A dev-mode mode with this secret (tests).
    pub fn dev(secret: &str) -> Self {
        AuthMode::Dev(HS256Key::from_bytes(secret.as_bytes()))
    }
}

/// `GET /api/auth/config`: what the UI needs to sign someone in; nothing here is secret.
pub async fn public_config(cx: &Cx<'_>) -> ApiResult<Reply> {
    Ok(Reply::json(&match &cx.app.auth {
        AuthMode::Dev(_) => serde_json::json!({ "mode": "dev" }),
        AuthMode::Entra(c) => serde_json::json!({
            "mode": "entra", "tenant_id": c.tenant, "client_id": c.client_id, "authority": c.authority,
            "scope": c.scope,
        }),
    }))
}

/// Refuses `principal` unless its role grants `needed`.
pub fn check(principal: &Principal, needed: Permission) -> ApiResult<()> {
    if principal.role.can(needed) {
        Ok(())
    } else {
        Err(ApiError::new(Kind::Forbidden, format!("your role ({:?}) may not do this", principal.role).to_lowercase()))
    }
}

/// Who sent the request: 401 without a valid bearer token, 403 for a valid one with no access.
pub async fn authenticate(app: &App, req: &Request, now: DateTime<Utc>) -> ApiResult<Principal> {
    let token = req
        .header("authorization")
        .and_then(|h| h.strip_prefix("Bearer "))
        .ok_or_else(|| ApiError::new(Kind::Unauthenticated, "sign in first: send Authorization: Bearer <token>"))?;
    match &app.auth {
        AuthMode::Dev(key) => {
            let options = VerificationOptions {
                allowed_issuers: Some(HashSet::from_strings(&[ISSUER])),
                allowed_audiences: Some(HashSet::from_strings(&[AUDIENCE])),
                ..Default::default()
            };
            let claims = key
                .verify_token::<DevClaims>(token, Some(options))
                .map_err(|_| ApiError::new(Kind::InvalidToken, "the token is invalid or expired; sign in again"))?;
            Ok(Principal {
                user_id: claims.subject.unwrap_or_default(),
                email: claims.custom.email,
                role: claims.custom.role,
            })
        }
        AuthMode::Entra(c) => {
            let claims = crate::entra::verify(app, token, c, now).await?;
            crate::entra::principal(app, c, claims, req, now).await
        }
    }
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DevTokenRequest {
    #[schemars(regex(pattern = "@"), length(max = 254))]
    email: String,
    role: Role,
    #[serde(default)]
    name: Option<String>,
}

/// `POST /api/auth/dev-token` (dev mode only): a token for any role.
pub async fn dev_token(cx: &Cx<'_>) -> ApiResult<Reply> {
    let AuthMode::Dev(key) = &cx.app.auth else {
        return Err(ApiError::new(Kind::NotFound, "dev tokens exist only when auth_mode is dev"));
    };
    let input: DevTokenRequest = cx.body()?;
    if !input.email.contains('@') || input.email.chars().count() > 254 {
        return Err(ApiError::field("email", "must be an email address"));
    }
    let name = input.name.unwrap_or_else(|| input.email.clone());
    let custom = DevClaims { email: input.email.clone(), name, role: input.role };
    let claims = Claims::with_custom_claims(custom, Duration::from_hours(DEV_TOKEN_HOURS))
        .with_issuer(ISSUER)
        .with_audience(AUDIENCE)
        .with_subject(format!("dev:{}", input.email));
    let token = key.authenticate(claims).map_err(|e| ApiError::new(Kind::TokenError, e.to_string()))?;
    let role = format!("{:?}", input.role).to_lowercase();
    Ok(Reply::json(&serde_json::json!({
        "token": token, "token_type": "Bearer", "expires_in": DEV_TOKEN_HOURS * 3600, "role": input.role,
    }))
    .about(&input.email, &format!("{} as {role}", input.email)))
}
