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

#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct Resealed {
    /// Passwords sealed again under the current `seal_key`.
    pub resealed: usize,
    /// Already under the current key.
    pub unchanged: usize,
    /// Servers and databases whose password no configured key opens: set it again on each.
    pub unreadable: Vec<String>,
}

/// `POST /api/settings/reseal`: every stored password sealed again under the current `seal_key`, bound to
/// its record. Run after setting a new `seal_key` with the old one in `seal_key_previous`; once it reports
/// nothing unreadable, `seal_key_previous` can go. A password changed meanwhile is left to its new value.
pub async fn reseal(cx: &Cx<'_>) -> ApiResult<Reply> {
    let (app, mut out) = (cx.app, Resealed { resealed: 0, unchanged: 0, unreadable: vec![] });
    let sealer = &app.sealer;
    for (mut e, etag) in app.stores.engines.list().await? {
        let Some(sealed) = e.password_sealed.clone() else { continue };
        if !sealer.needs_reseal(&sealed) {
            out.unchanged += 1;
            continue;
        }
        match sealer.open(&sealed, &e.id) {
            Ok(p) => {
                e.password_sealed = Some(sealer.seal(&p, &e.id));
                app.stores.engines.replace(&e.id.clone(), &e, Some(&etag)).await?;
                out.resealed += 1;
            }
            Err(_) => out.unreadable.push(format!("server `{}`", e.name)),
        }
    }
    for (mut d, etag) in app.stores.databases.list().await? {
        let Some(sealed) = d.password_sealed.clone() else { continue };
        if !sealer.needs_reseal(&sealed) {
            out.unchanged += 1;
            continue;
        }
        match sealer.open(&sealed, &d.id) {
            Ok(p) => {
                d.password_sealed = Some(sealer.seal(&p, &d.id));
                app.stores.databases.replace(&d.id.clone(), &d, Some(&etag)).await?;
                out.resealed += 1;
            }
            Err(_) => out.unreadable.push(format!("database `{}`", d.alias)),
        }
    }
    let summary = format!("{} resealed, {} unreadable", out.resealed, out.unreadable.len());
    Ok(Reply::json(&out).about("", &summary))
}
