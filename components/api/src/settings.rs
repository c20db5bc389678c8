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
            return Err(ApiError::unknown("default_policy_id", format!("no backup policy `{id}` exists")));
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
    /// Passwords (and notification channel secrets) sealed again under the current `seal_key`.
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
    for (mut e, etag) in app.stores.engines.list().await? {
        if let Some(again) = out.reseal(app, e.password_sealed.as_deref(), &e.id, || format!("server `{}`", e.name)) {
            e.password_sealed = Some(again);
            out.write(app.stores.engines.replace(&e.id.clone(), &e, Some(&etag)).await)?;
        }
    }
    for (mut d, etag) in app.stores.databases.list().await? {
        if let Some(again) = out.reseal(app, d.password_sealed.as_deref(), &d.id, || format!("database `{}`", d.alias))
        {
            d.password_sealed = Some(again);
            out.write(app.stores.databases.replace(&d.id.clone(), &d, Some(&etag)).await)?;
        }
    }
    for (mut c, etag) in app.stores.channels.list().await? {
        let whose = || format!("notification channel `{}`", c.name);
        let mut changed = false;
        let fields = [
            c.url_sealed.clone(),
            c.secret_sealed.clone(),
            c.headers_sealed.clone(),
            c.smtp.as_ref().and_then(|s| s.password_sealed.clone()),
        ];
        let again: Vec<Option<String>> = fields.iter().map(|f| out.reseal(app, f.as_deref(), &c.id, whose)).collect();
        for (slot, new) in [&mut c.url_sealed, &mut c.secret_sealed, &mut c.headers_sealed].into_iter().zip(&again) {
            if let Some(n) = new {
                *slot = Some(n.clone());
                changed = true;
            }
        }
        if let (Some(s), Some(n)) = (c.smtp.as_mut(), &again[3]) {
            s.password_sealed = Some(n.clone());
            changed = true;
        }
        // Each secret counts; a channel changed meanwhile keeps all of its new ones.
        if changed {
            let n = again.iter().flatten().count();
            match app.stores.channels.replace(&c.id.clone(), &c, Some(&etag)).await {
                Err(dilux_store::StoreError::Changed { .. }) => {
                    out.resealed -= n;
                    out.unchanged += n;
                }
                other => other.map(|_| ()).map_err(crate::error::ApiError::from)?,
            }
        }
    }
    let summary = format!("{} resealed, {} unreadable", out.resealed, out.unreadable.len());
    Ok(Reply::json(&out).about("", &summary))
}

impl Resealed {
    /// A record changed meanwhile keeps its new value (sealed under the current key already): not an error.
    fn write(&mut self, written: Result<Option<String>, dilux_store::StoreError>) -> ApiResult<()> {
        match written {
            Err(dilux_store::StoreError::Changed { .. }) => {
                self.resealed -= 1;
                self.unchanged += 1;
                Ok(())
            }
            other => other.map(|_| ()).map_err(Into::into),
        }
    }

    /// The value sealed again for `record`, when it needs it and opens; counts what happened.
    fn reseal(&mut self, app: &App, sealed: Option<&str>, record: &str, whose: impl Fn() -> String) -> Option<String> {
        let sealed = sealed?;
        if !app.sealer.needs_reseal(sealed) {
            self.unchanged += 1;
            return None;
        }
        match app.sealer.open(sealed, record) {
            Ok(p) => {
                self.resealed += 1;
                Some(app.sealer.seal(&p, record))
            }
            Err(_) => {
                self.unreadable.push(whose());
                None
            }
        }
    }
}
