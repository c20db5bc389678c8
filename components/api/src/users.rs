//! Users (admin only): list, pre-register by email, change role or enable/disable, delete. The last
//! enabled admin can never be removed, disabled or demoted: the app would be locked.

use dilux_domain::user::{pending_user_key, CreateUser, UpdateUser, User};
use serde::Serialize;

use crate::error::{changed_meanwhile, ApiError, ApiResult, Kind};
use crate::http::{Cx, Reply};
use crate::App;

#[derive(Serialize, schemars::JsonSchema)]
pub struct UserList {
    pub users: Vec<User>,
    pub total: usize,
}

async fn all(app: &App) -> ApiResult<Vec<User>> {
    Ok(app.stores.users.list().await?.into_iter().map(|(u, _)| u).collect())
}

pub async fn list(cx: &Cx<'_>) -> ApiResult<Reply> {
    let mut users = all(cx.app).await?;
    users.sort_by(|a, b| a.email.cmp(&b.email));
    Ok(Reply::json(&UserList { total: users.len(), users }))
}

pub async fn create(cx: &Cx<'_>) -> ApiResult<Reply> {
    let input: CreateUser = cx.body()?;
    input.validate()?;
    let email = input.email.trim().to_lowercase();
    if all(cx.app).await?.iter().any(|u| u.email.eq_ignore_ascii_case(&email)) {
        return Err(ApiError::new(Kind::Duplicate, format!("{email} is already a user")));
    }
    let name = input.name.unwrap_or_else(|| email.clone());
    let user = User {
        id: pending_user_key(&email),
        name,
        email,
        role: input.role,
        enabled: true,
        created_at: cx.now,
        last_sign_in_at: None,
    };
    cx.app.stores.users.insert(&user.id, &user).await?;
    Ok(Reply::json(&user).about(&user.id, &user.email))
}

/// Refuses a change that would leave no enabled admin.
fn keeps_an_admin(users: &[User], changed: &User, removed: bool) -> ApiResult<()> {
    let before = users.iter().filter(|u| u.is_active_admin()).count();
    let others = users.iter().filter(|u| u.id != changed.id && u.is_active_admin()).count();
    let remaining = others + usize::from(!removed && changed.is_active_admin());
    // Only a change that removes the last admin is refused (dev sign-in has no admin rows at all).
    if before > 0 && remaining == 0 {
        return Err(ApiError::new(Kind::LastAdmin, "this would leave no enabled admin; make someone else admin first"));
    }
    Ok(())
}

pub async fn update(cx: &Cx<'_>) -> ApiResult<Reply> {
    let (app, id) = (cx.app, cx.id());
    let input: UpdateUser = cx.body()?;
    let (mut user, etag) = app.stores.users.get(id).await?.ok_or_else(|| ApiError::not_found("user", id))?;
    if let Some(n) = input.name.filter(|n| !n.trim().is_empty()) {
        user.name = n;
    }
    if let Some(r) = input.role {
        user.role = r;
    }
    if let Some(e) = input.enabled {
        user.enabled = e;
    }
    keeps_an_admin(&all(app).await?, &user, false)?;
    app.stores.users.replace(id, &user, Some(&etag)).await.map_err(changed_meanwhile("the user"))?;
    Ok(Reply::json(&user).about(id, &user.email))
}

pub async fn delete(cx: &Cx<'_>) -> ApiResult<Reply> {
    let (app, id) = (cx.app, cx.id());
    let (user, _) = app.stores.users.get(id).await?.ok_or_else(|| ApiError::not_found("user", id))?;
    keeps_an_admin(&all(app).await?, &user, true)?;
    app.stores.users.delete(id).await?;
    Ok(Reply::json(&serde_json::json!({ "deleted": id })).about(id, &user.email))
}
