//! Users (admin only): list, pre-register by email, change role or enable/disable, delete. The last
//! enabled admin can never be removed, disabled or demoted: the app would be locked.

use chrono::Utc;
use dilux_azure_spin as store;
use dilux_domain::tables;
use dilux_domain::user::{pending_user_key, CreateUser, UpdateUser, User};

use crate::auth::Principal;
use crate::http::{json, parse, ApiError, ApiResult};
use crate::Ctx;

const PK: &str = "user";

async fn all(ctx: &Ctx) -> Result<Vec<User>, ApiError> {
    Ok(store::query_all::<User>(&ctx.account, tables::USERS, "PartitionKey eq 'user'").await?.into_iter().map(|(u, _)| u).collect())
}

pub async fn list(ctx: &Ctx) -> ApiResult {
    let mut users = all(ctx).await?;
    users.sort_by(|a, b| a.email.cmp(&b.email));
    Ok(json(200, &serde_json::json!({ "users": users, "total": users.len() })))
}

/// `GET /api/users/me`: the caller, with their preferences.
pub async fn me(ctx: &Ctx, p: &Principal) -> ApiResult {
    Ok(json(200, &crate::settings::me(ctx, p).await?))
}

pub async fn create(ctx: &Ctx, body: &[u8]) -> ApiResult {
    let input: CreateUser = parse(body)?;
    input.validate()?;
    let email = input.email.trim().to_lowercase();
    if all(ctx).await?.iter().any(|u| u.email.eq_ignore_ascii_case(&email)) {
        return Err(ApiError::new(409, "duplicate", format!("{email} is already a user")));
    }
    let user = User { id: pending_user_key(&email), name: input.name.unwrap_or_else(|| email.clone()), email, role: input.role, enabled: true, created_at: Utc::now() };
    store::insert_or_init(&ctx.account, &ctx.container, tables::USERS, PK, &user.id, &user).await?;
    Ok(json(201, &user))
}

/// Refuses a change that would leave no enabled admin.
fn keeps_an_admin(users: &[User], changed: &User, removed: bool) -> Result<(), ApiError> {
    let before = users.iter().filter(|u| u.is_active_admin()).count();
    let remaining = users.iter().filter(|u| u.id != changed.id && u.is_active_admin()).count() + usize::from(!removed && changed.is_active_admin());
    // Only a change that removes the last admin is refused (dev sign-in has no admin rows at all).
    if before > 0 && remaining == 0 {
        return Err(ApiError::new(409, "last_admin", "this would leave no enabled admin; make someone else admin first"));
    }
    Ok(())
}

pub async fn update(ctx: &Ctx, id: &str, body: &[u8]) -> ApiResult {
    let input: UpdateUser = parse(body)?;
    let (mut user, etag) = store::get::<User>(&ctx.account, tables::USERS, PK, id).await?.ok_or_else(|| ApiError::not_found("user", id))?;
    if let Some(n) = input.name.filter(|n| !n.trim().is_empty()) {
        user.name = n;
    }
    if let Some(r) = input.role {
        user.role = r;
    }
    if let Some(e) = input.enabled {
        user.enabled = e;
    }
    keeps_an_admin(&all(ctx).await?, &user, false)?;
    match store::replace(&ctx.account, tables::USERS, PK, id, &user, Some(&etag)).await {
        Err(e) if e.status() == Some(412) => Err(ApiError::new(412, "changed", "the user was changed meanwhile; reload and try again")),
        other => other.map(|_| json(200, &user)).map_err(Into::into),
    }
}

pub async fn delete(ctx: &Ctx, id: &str) -> ApiResult {
    let (user, _) = store::get::<User>(&ctx.account, tables::USERS, PK, id).await?.ok_or_else(|| ApiError::not_found("user", id))?;
    keeps_an_admin(&all(ctx).await?, &user, true)?;
    store::delete(&ctx.account, tables::USERS, PK, id).await?;
    Ok(json(200, &serde_json::json!({ "deleted": id })))
}
