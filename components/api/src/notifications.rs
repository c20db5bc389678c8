//! Notifications: channels (where people hear about problems), a test send, the delivery log, and the
//! notify tick. The tick announces backups and restores that finished since the last one, opens and
//! clears incidents from the conditions the status page shows, puts one outbox row per event and
//! channel, and works the outbox with retries. It runs apart from every backup: a notification that
//! cannot be sent never delays or fails one.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use dilux_domain::notify::{
    incident_key, reconcile, render, Channel, ChannelInput, ChannelView, Condition, Delivery, DeliveryState, Event,
    EventKind, Incident, NewChannel, NotifyCursor, Opened, SendResult, Severity, Subject, CONSECUTIVE_FAILURES,
    CURSOR_KEY,
};
use dilux_domain::policy::effective_policy_id;
use dilux_domain::restore::RestorePurpose;
use dilux_domain::{BackupStatus, Database};
use dilux_store::{HistoryQuery, StoreError};
use serde::Serialize;
use serde_json::json;

use crate::error::{changed_meanwhile, ApiError, ApiResult, Kind};
use crate::http::{enum_param, number_param, typed, Cx, Reply};
use crate::App;

/// Rows written this long ago are read: a backup's final write lands a moment after its `completed_at`.
const SETTLE: Duration = Duration::seconds(15);
/// Deliveries tried per tick, and at once.
const SENDS_PER_TICK: usize = 50;
const SENDS_AT_ONCE: usize = 10;
/// A delivery taken by a tick is not taken by another for this long (the send itself times out sooner).
const CLAIM: Duration = Duration::minutes(2);
/// A backup's row is in the partition of the day it was queued: this many days back are read.
const LONGEST_BACKUP_DAYS: i64 = 2;

#[derive(Serialize, schemars::JsonSchema)]
pub struct ChannelList {
    pub channels: Vec<ChannelView>,
    pub total: usize,
}

#[derive(Serialize, schemars::JsonSchema)]
pub struct DeliveryList {
    /// Newest first.
    pub deliveries: Vec<Delivery>,
    /// Matching rows, before `limit`.
    pub total: usize,
}

async fn load(app: &App, id: &str) -> ApiResult<(Channel, String)> {
    app.stores.channels.get(id).await?.ok_or_else(|| ApiError::not_found("notification channel", id))
}

/// Every secret of a channel is sealed for its id: a sealed value copied to another channel does not open.
fn opened(app: &App, c: &Channel) -> Result<Opened, String> {
    let open = |s: &Option<String>| {
        s.as_deref()
            .map(|s| app.sealer.open(s, &c.id))
            .transpose()
            .map_err(|_| "its secrets do not open with the current seal_key; save the channel again".to_string())
    };
    let map = |sealed: &Option<String>| match open(sealed)? {
        Some(h) => serde_json::from_str::<BTreeMap<String, String>>(&h).map_err(|e| e.to_string()),
        None => Ok(BTreeMap::new()),
    };
    let smtp_password = open(&c.smtp.as_ref().and_then(|s| s.password_sealed.clone()))?;
    Ok(Opened {
        url: open(&c.url_sealed)?,
        secret: open(&c.secret_sealed)?,
        headers: map(&c.headers_sealed)?,
        smtp_password,
        settings: map(&c.settings_sealed)?,
    })
}

/// `GET /api/notifications/channels`.
pub async fn list_channels(cx: &Cx<'_>) -> ApiResult<Reply> {
    let mut all: Vec<Channel> = cx.app.stores.channels.list().await?.into_iter().map(|(c, _)| c).collect();
    all.sort_by_key(|c| c.name.to_lowercase());
    let channels: Vec<ChannelView> = all.iter().map(ChannelView::from).collect();
    Ok(Reply::json(&ChannelList { total: channels.len(), channels }))
}

/// `POST /api/notifications/channels`.
pub async fn create_channel(cx: &Cx<'_>) -> ApiResult<Reply> {
    let NewChannel(input) = cx.body()?;
    let id = uuid::Uuid::new_v4().to_string();
    let channel = Channel::apply(&id, &input, None, &|s| cx.app.sealer.seal(s, &id), cx.now)?;
    cx.app.stores.channels.insert(&id, &channel).await?;
    Ok(Reply::json(&ChannelView::from(&channel)).about(&id, &channel.name))
}

/// `GET /api/notifications/channels/{id}`.
pub async fn get_channel(cx: &Cx<'_>) -> ApiResult<Reply> {
    let (c, etag) = load(cx.app, cx.id()).await?;
    Ok(Reply::json(&ChannelView::from(&c)).etag(Some(etag)))
}

/// `PUT /api/notifications/channels/{id}`: replaces the channel; secrets left out are kept while the
/// destination stays where it was.
pub async fn update_channel(cx: &Cx<'_>) -> ApiResult<Reply> {
    let (app, id) = (cx.app, cx.id());
    let input: ChannelInput = cx.body()?;
    input.validate(false)?;
    let (old, etag) = load(app, id).await?;
    cx.check_if_match(&etag, "the channel")?;
    // The body is valid on its own: what is left to refuse is what it cannot change over the stored channel.
    let channel = Channel::apply(id, &input, Some(&old), &|s| app.sealer.seal(s, id), cx.now).map_err(|e| {
        let kind = if e.field == "kind" { Kind::KindFixed } else { Kind::NoCredentials };
        ApiError::new(kind, format!("{}: {}", e.field, e.message)).on_field(&e.field)
    })?;
    let new_etag =
        app.stores.channels.replace(id, &channel, Some(&etag)).await.map_err(changed_meanwhile("the channel"))?;
    Ok(Reply::json(&ChannelView::from(&channel)).etag(new_etag).about(id, &channel.name))
}

/// `DELETE /api/notifications/channels/{id}`: its pending deliveries are given up at their next try.
pub async fn delete_channel(cx: &Cx<'_>) -> ApiResult<Reply> {
    let (c, _) = load(cx.app, cx.id()).await?;
    cx.app.stores.channels.delete(&c.id).await?;
    Ok(Reply::json(&json!({ "deleted": c.id })).about(&c.id, &c.name))
}

/// `POST /api/notifications/channels/{id}/test`: sends a test message now and answers how it went (also
/// kept in the delivery log). A disabled channel can be tested.
pub async fn test_channel(cx: &Cx<'_>) -> ApiResult<Reply> {
    let (c, _) = load(cx.app, cx.id()).await?;
    let mut d = Delivery::new(&c, &Event::test(&c.name, cx.now), cx.now);
    let result = send(cx.app, &c, &d, cx.now).await;
    d.record(result, cx.now);
    // A test is not retried: whoever sent it reads the answer.
    if d.state == DeliveryState::Pending {
        d.state = DeliveryState::Failed;
        d.next_attempt_at = None;
    }
    cx.app.stores.deliveries.insert(&d.id, &d).await?;
    let outcome = if d.state == DeliveryState::Delivered { "delivered" } else { "failed" };
    Ok(Reply::json(&d).about(&c.id, &format!("{}: {outcome}", c.name)))
}

/// `GET /api/notifications/deliveries[?channel_id=&state=&limit=]`: the delivery log, newest first.
pub async fn list_deliveries(cx: &Cx<'_>) -> ApiResult<Reply> {
    let channel = typed(cx.query, "channel_id");
    let state: Option<DeliveryState> = enum_param(cx.query, "state", "pending, delivered, failed")?;
    let limit = number_param(cx.query, "limit", 1..=500, 100)?;
    let mut rows: Vec<Delivery> = cx
        .app
        .stores
        .deliveries
        .list()
        .await?
        .into_iter()
        .map(|(d, _)| d)
        .filter(|d| channel.is_none_or(|c| d.channel_id == c) && state.is_none_or(|s| d.state == s))
        .collect();
    rows.sort_by(|a, b| b.created_at.cmp(&a.created_at).then_with(|| b.id.cmp(&a.id)));
    let total = rows.len();
    rows.truncate(limit);
    Ok(Reply::json(&DeliveryList { deliveries: rows, total }))
}

/// Renders and sends `d` to `c`. Every way it can go wrong is a failed attempt, with what to do.
async fn send(app: &App, c: &Channel, d: &Delivery, now: DateTime<Utc>) -> SendResult {
    let failed = |message: String| SendResult { ok: false, status: None, message, duration_ms: 0 };
    let opened = match opened(app, c) {
        Ok(o) => o,
        Err(why) => return failed(why),
    };
    let outgoing = render(c, &opened, &d.event, &d.id, now);
    match app.stores.dumper.send(&outgoing).await {
        Ok(r) => r,
        Err(e) => failed(format!("{e}; it is tried again later")),
    }
}

/// Conditions the status page reports, as incidents.
fn conditions(report: &serde_json::Value, subjects: &BTreeMap<String, Subject>) -> Vec<Condition> {
    let mut out = Vec::new();
    let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
    for a in report["alerts"].as_array().into_iter().flatten() {
        let db = a["database_id"].as_str();
        let alias = a["database_alias"].as_str().unwrap_or_default();
        let (kind, severity, title) = match a["kind"].as_str().unwrap_or_default() {
            "missed_backups" => (EventKind::MissedBackups, Severity::Error, format!("{alias}: backups are missing")),
            "restore_drill" => (EventKind::DrillFailed, Severity::Error, format!("{alias}: the restore drill fails")),
            "suspect_backup" => (EventKind::SuspectBackup, Severity::Warning, format!("{alias}: a backup is suspect")),
            "scheduler_stopped" | "scheduler_failing" => {
                (EventKind::SchedulerStopped, Severity::Error, "The scheduler is not running backups".to_string())
            }
            "dumper_unreachable" => {
                (EventKind::DumperUnreachable, Severity::Error, "The dumper-host does not answer".to_string())
            }
            "backups_unprotected" => {
                (EventKind::StorageUnprotected, Severity::Warning, "Deleted backups cannot be recovered".to_string())
            }
            _ => continue,
        };
        let subject = db.and_then(|d| subjects.get(d)).cloned().unwrap_or_default();
        out.push(Condition {
            key: incident_key(kind, db),
            kind,
            severity,
            title,
            message: text(&a["message"]),
            subject,
        });
    }
    for f in report["failing_databases"].as_array().into_iter().flatten() {
        let n = f["consecutive_failures"].as_u64().unwrap_or(0);
        let (Some(db), true) = (f["database_id"].as_str(), n >= u64::from(CONSECUTIVE_FAILURES)) else { continue };
        let alias = f["database_alias"].as_str().unwrap_or(db);
        out.push(Condition {
            key: incident_key(EventKind::ConsecutiveFailures, Some(db)),
            kind: EventKind::ConsecutiveFailures,
            severity: Severity::Error,
            title: format!("{alias}: {n} backups failed in a row"),
            message: format!(
                "The last {n} backups of {alias} failed; see its backup history for the error and what to do"
            ),
            subject: subjects.get(db).cloned().unwrap_or_default(),
        });
    }
    out
}

/// Backups and restores that finished in (`since`, `until`].
async fn finished(
    app: &App,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    subjects: &BTreeMap<String, Subject>,
) -> ApiResult<Vec<Event>> {
    let mut events = Vec::new();
    let q = HistoryQuery {
        from: Some((since - Duration::days(LONGEST_BACKUP_DAYS)).date_naive()),
        statuses: vec![BackupStatus::Completed, BackupStatus::Failed],
        ..Default::default()
    };
    let in_window = |t: DateTime<Utc>| t > since && t <= until;
    for b in app.stores.history.query(&q).await? {
        let at = b.completed_at.unwrap_or(b.created_at);
        if !in_window(at) {
            continue;
        }
        let subject = subjects.get(&b.database_id).cloned().unwrap_or(Subject {
            database_id: Some(b.database_id.clone()),
            database_alias: Some(b.database_alias.clone()),
            engine_id: Some(b.engine_id.clone()),
            policy_id: None,
        });
        let alias = &b.database_alias;
        let e = if b.status == BackupStatus::Failed {
            let why = b.error_message.clone().unwrap_or_else(|| "no reason was recorded".into());
            let hint = b.error_class.map(|c| format!(" What to do: {}.", c.hint())).unwrap_or_default();
            let message =
                format!("The backup of {alias} queued at {} failed: {why}.{hint}", b.created_at.format("%H:%M"));
            Event::new(
                format!("backup:{}", b.id),
                EventKind::BackupFailed,
                Severity::Error,
                &format!("{alias}: backup failed"),
                &message,
                at,
            )
        } else {
            let size = b.file_size_bytes.map(|s| format!(", {s} bytes stored")).unwrap_or_default();
            let message =
                format!("The backup of {alias} completed in {:.0} s{size}.", b.duration_seconds.unwrap_or(0.0));
            let title = format!("{alias}: backup completed");
            Event::new(format!("backup:{}", b.id), EventKind::BackupSucceeded, Severity::Info, &title, &message, at)
        };
        events.push(e.about(&subject));
    }
    for (r, _) in app.stores.restores.list().await? {
        let at = r.completed_at.unwrap_or(r.created_at);
        let done = matches!(r.status, BackupStatus::Completed | BackupStatus::Failed);
        // A drill's failure is the `drill_failed` incident; a drill that passes is no news.
        if !done || !in_window(at) || r.purpose == RestorePurpose::Drill {
            continue;
        }
        let subject = subjects.get(&r.source_database_id).cloned().unwrap_or_default();
        let (alias, target) = (&r.source_database_alias, &r.target_database);
        let e = if r.status == BackupStatus::Failed {
            let why = r.error_message.clone().unwrap_or_else(|| "no reason was recorded".into());
            let message = format!(
                "The restore of a backup of {alias} into {target} on {} failed: {why}. Nothing was left behind.",
                r.target_engine_name
            );
            let title = format!("{alias}: restore failed");
            Event::new(format!("restore:{}", r.id), EventKind::RestoreFailed, Severity::Error, &title, &message, at)
        } else {
            let message = format!(
                "A backup of {alias} was restored into {target} on {} (requested by {}).",
                r.target_engine_name, r.requested_by
            );
            let title = format!("{alias}: restore completed");
            Event::new(format!("restore:{}", r.id), EventKind::RestoreCompleted, Severity::Info, &title, &message, at)
        };
        events.push(e.about(&subject));
    }
    Ok(events)
}

fn subjects(dbs: &[Database], engines: &[dilux_domain::Engine]) -> BTreeMap<String, Subject> {
    dbs.iter()
        .map(|d| {
            let engine = engines.iter().find(|e| e.id == d.engine_id);
            let s = Subject {
                database_id: Some(d.id.clone()),
                database_alias: Some(d.alias.clone()),
                engine_id: Some(d.engine_id.clone()),
                policy_id: Some(effective_policy_id(d, engine)),
            };
            (d.id.clone(), s)
        })
        .collect()
}

/// What one run of the notify tick did.
#[derive(Debug, Default, Serialize)]
pub struct TickReport {
    pub events: usize,
    pub queued: usize,
    pub delivered: usize,
    pub retrying: usize,
    pub failed: usize,
}

impl std::fmt::Display for TickReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} events, {} queued, {} delivered, {} retrying, {} given up",
            self.events, self.queued, self.delivered, self.retrying, self.failed
        )
    }
}

/// The notify tick. Safe to run twice at once: an outbox row is keyed by event and channel, and a
/// delivery is claimed (a conditional write) before it is sent.
pub async fn tick(app: &App, now: DateTime<Utc>) -> ApiResult<TickReport> {
    let s = &app.stores;
    let mut report = TickReport::default();
    let until = now - SETTLE;
    let cursor = s.notify_cursor.get(CURSOR_KEY).await?;
    let channels: Vec<Channel> = s.channels.list().await?.into_iter().map(|(c, _)| c).filter(|c| c.enabled).collect();
    if !channels.is_empty() {
        let dbs: Vec<Database> = s.databases.list().await?.into_iter().map(|(d, _)| d).collect();
        let engines: Vec<_> = s.engines.list().await?.into_iter().map(|(e, _)| e).collect();
        let subjects = subjects(&dbs, &engines);
        // The first run starts from now: the history before it is not news.
        let mut events = match &cursor {
            Some((c, _)) => finished(app, c.since, until, &subjects).await?,
            None => vec![],
        };
        let status = crate::status::report(app, now).await?;
        let open: Vec<Incident> = s.incidents.list().await?.into_iter().map(|(i, _)| i).collect();
        let (opened, cleared) = reconcile(&open, &conditions(&status, &subjects), now);
        events.extend(opened.iter().map(Incident::opening));
        events.extend(cleared.iter().map(|i| i.clearing(now)));
        report.events = events.len();
        // The outbox first, the incident after: a tick that dies between them announces twice, never not at all.
        for e in &events {
            for c in channels.iter().filter(|c| c.filters.admits(e)) {
                let d = Delivery::new(c, e, now);
                match s.deliveries.insert(&d.id, &d).await {
                    Ok(()) => report.queued += 1,
                    Err(StoreError::Conflict { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        for i in &opened {
            match s.incidents.insert(&i.key, i).await {
                Ok(()) | Err(StoreError::Conflict { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        for i in &cleared {
            s.incidents.delete(&i.key).await?;
        }
    }
    if cursor.as_ref().is_none_or(|(c, _)| c.since < until) {
        s.notify_cursor.upsert(CURSOR_KEY, &NotifyCursor { since: until }).await?;
    }
    work_outbox(app, &channels, now, &mut report).await?;
    Ok(report)
}

/// Sends what is due to the `enabled` channels, a few at once; forgets what the log no longer keeps.
async fn work_outbox(app: &App, enabled: &[Channel], now: DateTime<Utc>, report: &mut TickReport) -> ApiResult<()> {
    let s = &app.stores;
    let all = s.deliveries.list().await?;
    let channels: BTreeMap<&str, &Channel> = enabled.iter().map(|c| (c.id.as_str(), c)).collect();
    let mut due = Vec::new();
    for (d, etag) in all {
        if d.expired(now) {
            s.deliveries.delete(&d.id).await?;
        } else if d.due(now) && due.len() < SENDS_PER_TICK {
            due.push((d, etag));
        }
    }
    due.sort_by_key(|(d, _)| d.created_at);
    for batch in due.chunks(SENDS_AT_ONCE) {
        let mut claimed = Vec::new();
        for (d, etag) in batch {
            let mut held = d.clone();
            held.next_attempt_at = Some(now + CLAIM);
            match s.deliveries.replace(&d.id, &held, Some(etag)).await {
                Ok(tag) => claimed.push((d.clone(), tag)),
                // Another tick took it (or it was deleted): it is theirs.
                Err(StoreError::Changed { .. } | StoreError::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let sends = claimed.iter().map(|(d, _)| async {
            match channels.get(d.channel_id.as_str()) {
                Some(c) => Some(send(app, c, d, now).await),
                None => None,
            }
        });
        let results = futures::future::join_all(sends).await;
        for ((mut d, tag), result) in claimed.into_iter().zip(results) {
            match result {
                Some(r) => d.record(r, now),
                None => d.abandon("the channel was deleted or disabled before it could be sent", now),
            }
            match d.state {
                DeliveryState::Delivered => report.delivered += 1,
                DeliveryState::Pending => report.retrying += 1,
                DeliveryState::Failed => report.failed += 1,
            }
            s.deliveries.replace(&d.id.clone(), &d, tag.as_deref()).await?;
        }
    }
    Ok(())
}
