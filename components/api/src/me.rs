//! The caller: who they are, and their UI preferences (keyed by user id, so dev-mode users, who have
//! no users row, have them too).

use dilux_domain::settings::{Preferences, UpdatePreferences};
use dilux_domain::user::Role;
use serde::Serialize;

use crate::auth::Principal;
use crate::error::ApiResult;
use crate::http::{Cx, Reply};
use crate::App;

#[derive(Serialize, schemars::JsonSchema)]
pub struct Me {
    pub id: String,
    pub email: String,
    pub role: Role,
    pub preferences: Preferences,
}

/// Row keys may not hold `/`, `\`, `#` or `?`; user ids are GUIDs or `dev:email`, but be safe.
pub fn key(id: &str) -> String {
    id.chars().map(|c| if matches!(c, '/' | '\\' | '#' | '?') || c.is_control() { '_' } else { c }).collect()
}

async fn load_preferences(app: &App, who: &Principal) -> ApiResult<Preferences> {
    if let Some((p, _)) = app.stores.preferences.get(&key(&who.user_id)).await? {
        return Ok(p);
    }
    // Until a user chooses, the app-wide theme applies.
    Ok(Preferences { dark_mode: crate::settings::load(app).await?.dark_mode, ..Preferences::default() })
}

/// `GET /api/users/me`
pub async fn me(cx: &Cx<'_>) -> ApiResult<Reply> {
    let who = cx.who()?;
    let preferences = load_preferences(cx.app, who).await?;
    Ok(Reply::json(&Me { id: who.user_id.clone(), email: who.email.clone(), role: who.role, preferences }))
}

pub async fn preferences(cx: &Cx<'_>) -> ApiResult<Reply> {
    Ok(Reply::json(&load_preferences(cx.app, cx.who()?).await?))
}

pub async fn update_preferences(cx: &Cx<'_>) -> ApiResult<Reply> {
    let who = cx.who()?;
    let input: UpdatePreferences = cx.body()?;
    let mut p = load_preferences(cx.app, who).await?;
    input.apply(&mut p)?;
    cx.app.stores.preferences.upsert(&key(&who.user_id), &p).await?;
    Ok(Reply::json(&p).about(&who.user_id, &who.email))
}
