//! App settings: one record, edited by admins with optimistic concurrency.

use dilux_domain::settings::{AppSettings, UpdateSettings};
use dilux_store::SETTINGS_KEY;

use crate::error::{changed_meanwhile, ApiError, ApiResult};
use crate::http::{Cx, Reply};
use crate::App;

/// The settings, or the defaults before anyone saved them.
pub async fn load(app: &App) -> ApiResult<AppSettings> {
    Ok(app.stores.settings.get(SETTINGS_KEY).await?.map(|(s, _)| s).unwrap_or_default())
}

pub async fn get(cx: &Cx<'_>) -> ApiResult<Reply> {
    Ok(match cx.app.stores.settings.get(SETTINGS_KEY).await? {
        Some((s, etag)) => Reply::json(&s).etag(Some(etag)),
        None => Reply::json(&AppSettings::default()),
    })
}

pub async fn update(cx: &Cx<'_>) -> ApiResult<Reply> {
    let app = cx.app;
    let who = cx.who()?;
    let input: UpdateSettings = cx.body()?;
    let current = app.stores.settings.get(SETTINGS_KEY).await?;
    if let Some((_, etag)) = &current {
        cx.check_if_match(etag, "the settings")?;
    }
    let mut s = current.as_ref().map(|(s, _)| s.clone()).unwrap_or_default();
    input.apply(&mut s)?;
    if let Some(id) = &input.default_policy_id {
        if !crate::policies::all(app).await?.contains_key(id) {
            return Err(ApiError::field("default_policy_id", format!("no backup policy `{id}` exists")));
        }
    }
    s.updated_at = Some(cx.now);
    s.updated_by = Some(who.email.clone());
    let store = &app.stores.settings;
    let written = match &current {
        Some((_, etag)) => store.replace(SETTINGS_KEY, &s, Some(etag)).await.map(|_| ()),
        None => store.insert(SETTINGS_KEY, &s).await,
    };
    written.map_err(changed_meanwhile("the settings"))?;
    Ok(Reply::json(&s).about(SETTINGS_KEY, "settings"))
}
