//! App settings, the caller's preferences, and access requests.

use chrono::Utc;
use dilux_azure_spin as store;
use dilux_domain::settings::{AccessRequest, AccessRequestStatus, AppSettings, ApproveAccess, Preferences, RejectAccess, UpdatePreferences, UpdateSettings};
use dilux_domain::tables;
use dilux_domain::user::User;

use crate::auth::Principal;
use crate::http::{check_if_match, json, json_tagged, param, parse, ApiError, ApiResult};
use crate::Ctx;

const SETTINGS_PK: &str = "settings";
const SETTINGS_RK: &str = "app";
const PREFS_PK: &str = "preferences";
const REQUEST_PK: &str = "request";

/// The settings, or the defaults before anyone saved them.
pub async fn load(ctx: &Ctx) -> Result<AppSettings, ApiError> {
    Ok(store::get::<AppSettings>(&ctx.account, tables::SETTINGS, SETTINGS_PK, SETTINGS_RK).await?.map(|(s, _)| s).unwrap_or_default())
}

/// The policy a new database gets: the one asked for, else its server's, else the settings' default.
pub async fn policy_for_new_database(ctx: &Ctx, asked: Option<String>, engine: &dilux_domain::Engine) -> Result<String, ApiError> {
    match asked.or_else(|| engine.policy_id.clone()) {
        Some(p) => Ok(p),
        None => Ok(load(ctx).await?.default_policy_id),
    }
}

pub async fn get(ctx: &Ctx) -> ApiResult {
    match store::get::<AppSettings>(&ctx.account, tables::SETTINGS, SETTINGS_PK, SETTINGS_RK).await? {
        Some((s, etag)) => Ok(json_tagged(200, &s, Some(&etag))),
        None => Ok(json(200, &AppSettings::default())),
    }
}

pub async fn update(ctx: &Ctx, who: &Principal, body: &[u8], if_match: Option<&str>) -> ApiResult {
    let input: UpdateSettings = parse(body)?;
    let current = store::get::<AppSettings>(&ctx.account, tables::SETTINGS, SETTINGS_PK, SETTINGS_RK).await?;
    if let Some((_, etag)) = &current {
        check_if_match(if_match, etag, "settings")?;
    }
    let mut s = current.as_ref().map(|(s, _)| s.clone()).unwrap_or_default();
    input.apply(&mut s)?;
    if let Some(id) = &input.default_policy_id {
        if !store::policies(&ctx.account).await?.contains_key(id) {
            return Err(ApiError::field("default_policy_id", format!("no backup policy `{id}` exists")));
        }
    }
    s.updated_at = Some(Utc::now());
    s.updated_by = Some(who.email.clone());
    let written = match &current {
        Some((_, etag)) => store::replace(&ctx.account, tables::SETTINGS, SETTINGS_PK, SETTINGS_RK, &s, Some(etag)).await.map(|_| ()),
        None => store::insert_or_init(&ctx.account, &ctx.container, tables::SETTINGS, SETTINGS_PK, SETTINGS_RK, &s).await,
    };
    match written {
        Err(e) if matches!(e.status(), Some(409 | 412)) => Err(ApiError::new(412, "changed", "the settings were changed meanwhile; reload and try again")),
        other => other.map(|_| json(200, &s)).map_err(Into::into),
    }
}

/// Preferences are keyed by the caller's user id, so dev-mode users (no users row) have them too.
async fn load_preferences(ctx: &Ctx, who: &Principal) -> Result<Preferences, ApiError> {
    if let Some((p, _)) = store::get::<Preferences>(&ctx.account, tables::SETTINGS, PREFS_PK, &key(&who.user_id)).await? {
        return Ok(p);
    }
    // Until a user chooses, the app-wide theme applies.
    Ok(Preferences { dark_mode: load(ctx).await?.dark_mode, ..Preferences::default() })
}

/// Row keys may not hold `/`, `\`, `#` or `?`; user ids are GUIDs or `dev:email`, but be safe.
fn key(id: &str) -> String {
    id.chars().map(|c| if matches!(c, '/' | '\\' | '#' | '?') || c.is_control() { '_' } else { c }).collect()
}

pub async fn preferences(ctx: &Ctx, who: &Principal) -> ApiResult {
    Ok(json(200, &load_preferences(ctx, who).await?))
}

pub async fn update_preferences(ctx: &Ctx, who: &Principal, body: &[u8]) -> ApiResult {
    let input: UpdatePreferences = parse(body)?;
    let mut p = load_preferences(ctx, who).await?;
    input.apply(&mut p)?;
    store::upsert(&ctx.account, &ctx.container, tables::SETTINGS, PREFS_PK, &key(&who.user_id), &p).await?;
    Ok(json(200, &p))
}

pub async fn me(ctx: &Ctx, who: &Principal) -> Result<serde_json::Value, ApiError> {
    let prefs = load_preferences(ctx, who).await?;
    Ok(serde_json::json!({ "id": who.user_id, "email": who.email, "role": who.role, "preferences": prefs }))
}

/// Files (once) an access request for someone signed in without access, when settings allow.
/// Answers whether a request is pending for them.
pub async fn file_access_request(ctx: &Ctx, oid: &str, email: &str, name: &str) -> Result<bool, ApiError> {
    if let Some((r, _)) = store::get::<AccessRequest>(&ctx.account, tables::ACCESS_REQUESTS, REQUEST_PK, &key(oid)).await? {
        return Ok(r.status == AccessRequestStatus::Pending);
    }
    if !load(ctx).await?.access_requests_enabled {
        return Ok(false);
    }
    let r = AccessRequest {
        id: key(oid),
        email: email.to_string(),
        name: name.to_string(),
        status: AccessRequestStatus::Pending,
        requested_at: Utc::now(),
        resolved_at: None,
        resolved_by: None,
        rejection_reason: None,
        role: None,
    };
    match store::insert_or_init(&ctx.account, &ctx.container, tables::ACCESS_REQUESTS, REQUEST_PK, &r.id, &r).await {
        Err(e) if e.status() != Some(409) => Err(e.into()),
        _ => Ok(true),
    }
}

/// Someone who got access another way (pre-registered by email) no longer waits for approval.
pub async fn withdraw_access_request(ctx: &Ctx, oid: &str) -> Result<(), ApiError> {
    Ok(store::delete(&ctx.account, tables::ACCESS_REQUESTS, REQUEST_PK, &key(oid)).await?)
}

pub async fn access_requests(ctx: &Ctx, q: &[(String, String)]) -> ApiResult {
    let wanted = match param(q, "status").unwrap_or("pending") {
        "all" => None,
        s => Some(serde_json::from_value::<AccessRequestStatus>(s.into()).map_err(|_| ApiError::field("status", "must be pending, approved, rejected or all"))?),
    };
    let mut rows: Vec<AccessRequest> = store::query_all::<AccessRequest>(&ctx.account, tables::ACCESS_REQUESTS, "PartitionKey eq 'request'")
        .await?
        .into_iter()
        .map(|(r, _)| r)
        .filter(|r| wanted.is_none_or(|w| r.status == w))
        .collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.requested_at));
    let pending = rows.iter().filter(|r| r.status == AccessRequestStatus::Pending).count();
    Ok(json(200, &serde_json::json!({ "access_requests": rows, "total": rows.len(), "pending": pending })))
}

async fn pending_request(ctx: &Ctx, id: &str) -> Result<(AccessRequest, String), ApiError> {
    let (r, etag) = store::get::<AccessRequest>(&ctx.account, tables::ACCESS_REQUESTS, REQUEST_PK, id).await?.ok_or_else(|| ApiError::not_found("access request", id))?;
    if r.status != AccessRequestStatus::Pending {
        return Err(ApiError::new(409, "already_resolved", format!("this request was already {}", if r.status == AccessRequestStatus::Approved { "approved" } else { "rejected" })));
    }
    Ok((r, etag))
}

async fn resolve(ctx: &Ctx, r: &AccessRequest, etag: &str) -> Result<(), ApiError> {
    match store::replace(&ctx.account, tables::ACCESS_REQUESTS, REQUEST_PK, &r.id, r, Some(etag)).await {
        Err(e) if e.status() == Some(412) => Err(ApiError::new(412, "changed", "the request was resolved by someone else meanwhile; reload")),
        other => other.map(|_| ()).map_err(Into::into),
    }
}

/// Approving creates the user (their id is the requester's `oid`), then marks the request.
pub async fn approve(ctx: &Ctx, who: &Principal, id: &str, body: &[u8]) -> ApiResult {
    let input: ApproveAccess = parse(body)?;
    let (mut r, etag) = pending_request(ctx, id).await?;
    let user = User { id: r.id.clone(), email: r.email.clone(), name: r.name.clone(), role: input.role, enabled: true, created_at: Utc::now() };
    match store::insert_or_init(&ctx.account, &ctx.container, tables::USERS, "user", &user.id, &user).await {
        Err(e) if e.status() == Some(409) => return Err(ApiError::new(409, "duplicate", format!("{} is already a user", r.email))),
        other => other?,
    }
    r.status = AccessRequestStatus::Approved;
    r.resolved_at = Some(Utc::now());
    r.resolved_by = Some(who.email.clone());
    r.role = Some(input.role);
    resolve(ctx, &r, &etag).await?;
    Ok(json(200, &user))
}

pub async fn reject(ctx: &Ctx, who: &Principal, id: &str, body: &[u8]) -> ApiResult {
    let input: RejectAccess = crate::http::parse_optional(body)?;
    if input.reason.as_deref().is_some_and(|r| r.chars().count() > 500) {
        return Err(ApiError::field("reason", "must be at most 500 characters"));
    }
    let (mut r, etag) = pending_request(ctx, id).await?;
    r.status = AccessRequestStatus::Rejected;
    r.resolved_at = Some(Utc::now());
    r.resolved_by = Some(who.email.clone());
    r.rejection_reason = input.reason;
    resolve(ctx, &r, &etag).await?;
    Ok(json(200, &r))
}
