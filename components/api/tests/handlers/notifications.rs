//! Notifications: channels whose secrets never come back, a test send, and the notify tick on a
//! simulated clock — one message per incident and one when it clears, retries with backoff, and a
//! send that fails never touching a backup.

use chrono::{DateTime, Duration, Utc};
use dilux_domain::notify::{DeliveryState, Outgoing};
use dilux_domain::schedule::ScheduleState;
use dilux_domain::{BackupJob, BackupResult, BackupStatus, EngineType, TriggeredBy};
use serde_json::{json, Value};

use crate::{now, T};

const HOOK: &str = "https://hooks.example.com/services/T000/B000/very-secret-path";
const SECRET: &str = "a-signing-secret-of-some-length";

fn webhook(name: &str, events: &[&str]) -> Value {
    json!({ "name": name, "kind": "webhook", "url": HOOK, "secret": SECRET,
        "headers": { "Authorization": "Bearer hook-token-123" }, "filters": { "events": events } })
}

/// A channel, with no alert about unprotected storage to get in the way; answers its id.
async fn channel(t: &T, body: Value) -> String {
    t.mem.files.protection.borrow_mut().soft_delete_days = Some(7);
    let a = t.admin("POST", "/api/notifications/channels", Some(body)).await;
    assert_eq!(a.status, 201, "{}", a.body);
    a.body["id"].as_str().unwrap().to_string()
}

async fn tick(t: &T, at: DateTime<Utc>) -> dilux_api::notifications::TickReport {
    dilux_api::notifications::tick(&t.app, at).await.expect("the tick runs")
}

/// The events of the webhook messages sent so far.
fn sent(t: &T) -> Vec<Value> {
    t.mem
        .dumper
        .sent
        .borrow()
        .iter()
        .filter_map(|o| match o {
            Outgoing::Http { body, .. } => serde_json::from_str::<Value>(body).ok().map(|b| b["event"].clone()),
            Outgoing::Smtp { .. } | Outgoing::Plugin { .. } => None,
        })
        .collect()
}

fn kinds(messages: &[Value]) -> Vec<(String, bool)> {
    messages.iter().map(|m| (m["kind"].as_str().unwrap().to_string(), m["resolved"] == true)).collect()
}

fn finished(t: &T, db: &str, at: DateTime<Utc>, status: BackupStatus, error: Option<&str>) -> BackupResult {
    let job = BackupJob::new(db, EngineType::Postgresql, TriggeredBy::Scheduler, vec![], at - Duration::minutes(1));
    let mut row = BackupResult::pending(&job, "shop", "shop", "e");
    row.status = status;
    row.completed_at = Some(at);
    row.error_message = error.map(str::to_string);
    t.mem.history.put(row.clone());
    row
}

#[tokio::test]
async fn a_channel_never_shows_its_secrets_and_only_an_admin_manages_it() {
    let t = T::new();
    for role in ["viewer", "operator"] {
        let a = t.call(role, "POST", "/api/notifications/channels", Some(webhook("ops", &[]))).await;
        assert_eq!(a.status, 403, "{role}: a channel decides where alerts (and their details) go");
    }
    let id = channel(&t, webhook("ops", &[])).await;
    let stored = serde_json::to_string(&t.mem.channels.all()).unwrap();
    for (role, path) in
        [("viewer", format!("/api/notifications/channels/{id}")), ("viewer", "/api/notifications/channels".into())]
    {
        let a = t.call(role, "GET", &path, None).await;
        assert_eq!(a.status, 200, "{}", a.body);
        let text = a.body.to_string();
        for secret in ["very-secret-path", SECRET, "hook-token-123"] {
            assert!(!text.contains(secret), "{path} shows {secret}: {text}");
            assert!(!stored.contains(secret), "{secret} is stored in the clear");
        }
    }
    let view = t.call("viewer", "GET", &format!("/api/notifications/channels/{id}"), None).await;
    assert_eq!(view.body["destination"], "https://hooks.example.com/…");
    assert_eq!((view.body["signed"].as_bool(), &view.body["header_names"]), (Some(true), &json!(["Authorization"])));
    // An update that leaves the secrets out keeps them; one that moves the URL elsewhere must give them again.
    let etag = view.header("etag").unwrap().to_string();
    let rename = json!({ "name": "ops-renamed", "kind": "webhook" });
    let path = format!("/api/notifications/channels/{id}");
    let a = t.call_with("admin", "PUT", &path, Some(rename), Some(&etag)).await;
    assert_eq!((a.status, a.body["signed"].as_bool()), (200, Some(true)), "{}", a.body);
    let moved = json!({ "name": "ops", "kind": "webhook", "url": "https://elsewhere.example.net/hook" });
    let a = t.call("admin", "PUT", &path, Some(moved)).await;
    // Valid on its own but not over the stored channel: a conflict, not a malformed body.
    assert_eq!((a.status, a.field()), (409, Some("secret")), "{}", a.body);
    let a = t.call("admin", "PUT", &path, Some(json!({ "name": "ops", "kind": "slack" }))).await;
    assert_eq!((a.status, a.body["error"]["code"].as_str()), (409, Some("kind_fixed")), "{}", a.body);
    assert_eq!(t.call("operator", "DELETE", &path, None).await.status, 403);
    assert_eq!(t.admin("DELETE", &path, None).await.status, 200);
    assert_eq!(t.admin("GET", &path, None).await.status, 404);
    let actions: Vec<String> = t.audit().into_iter().map(|(a, _)| a).collect();
    for a in ["notification_channel_created", "notification_channel_updated", "notification_channel_deleted"] {
        assert!(actions.contains(&a.to_string()), "{a} is audited: {actions:?}");
    }
}

#[tokio::test]
async fn a_bad_channel_is_refused_naming_the_field_and_nothing_is_stored() {
    let t = T::new();
    let smtp = |extra: Value| {
        let mut s = json!({ "host": "smtp.example.com", "from": "dilux@example.com", "to": ["dba@example.com"] });
        s.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        json!({ "name": "mail", "kind": "email", "smtp": s })
    };
    for (body, field) in [
        (json!({ "name": "", "kind": "webhook", "url": HOOK }), "name"),
        (json!({ "name": "x", "kind": "webhook" }), "url"),
        (json!({ "name": "x", "kind": "webhook", "url": "http://hooks.example.com/x" }), "url"),
        (json!({ "name": "x", "kind": "webhook", "url": "https://user:pw@hooks.example.com/x" }), "url"),
        (json!({ "name": "x", "kind": "webhook", "url": "https://169.254.169.254/metadata" }), "url"),
        (json!({ "name": "x", "kind": "webhook", "url": HOOK, "secret": "short" }), "secret"),
        (json!({ "name": "x", "kind": "slack", "url": HOOK, "secret": SECRET }), "secret"),
        (json!({ "name": "x", "kind": "webhook", "url": HOOK, "headers": { "Host": "evil" } }), "headers.Host"),
        (json!({ "name": "x", "kind": "teams", "url": HOOK, "filters": { "events": ["nope"] } }), "filters"),
        (json!({ "name": "x", "kind": "email" }), "smtp"),
        (smtp(json!({ "security": "none" })), "smtp.security"),
        (smtp(json!({ "password": "pw" })), "smtp.username"),
        (smtp(json!({ "to": ["not-an-address"] })), "smtp.to[0]"),
        (smtp(json!({ "to": [] })), "smtp.to"),
        (json!({ "name": "x", "kind": "plugin" }), "plugin"),
        (json!({ "name": "x", "kind": "plugin", "plugin": "Discord" }), "plugin"),
        (json!({ "name": "x", "kind": "plugin", "plugin": "d", "url": HOOK }), "url"),
        (json!({ "name": "x", "kind": "plugin", "plugin": "d", "settings": { "Token": "t" } }), "settings.Token"),
        (json!({ "name": "x", "kind": "webhook", "url": HOOK, "settings": { "a": "b" } }), "settings"),
        (json!({ "name": "x", "kind": "slack", "url": HOOK, "plugin": "d" }), "plugin"),
    ] {
        let a = t.admin("POST", "/api/notifications/channels", Some(body.clone())).await;
        assert_eq!(a.status, 400, "{body}: {}", a.body);
        assert!(a.field().is_some_and(|f| f.starts_with(field)), "{body}: field {:?}, {}", a.field(), a.body);
        assert!(a.message().contains(field.split('.').next().unwrap()), "{}", a.message());
    }
    assert!(t.mem.channels.is_empty());
    let a = t.admin("GET", "/api/notifications/deliveries?limit=0", None).await;
    assert_eq!((a.status, a.field()), (400, Some("limit")));
    let a = t.admin("GET", "/api/notifications/deliveries?state=lost", None).await;
    assert_eq!((a.status, a.field()), (400, Some("state")));
}

#[tokio::test]
async fn an_smtp_password_is_sealed_never_shown_and_typed_again_for_another_server() {
    let t = T::new();
    let smtp = |host: &str, password: Option<&str>| {
        let mut s =
            json!({ "host": host, "username": "dilux", "from": "dilux@example.com", "to": ["dba@example.com"] });
        if let Some(p) = password {
            s["password"] = p.into();
        }
        json!({ "name": "mail", "kind": "email", "smtp": s })
    };
    let id = channel(&t, smtp("smtp.example.com", Some("smtp-pass-7d41c2"))).await;
    let path = format!("/api/notifications/channels/{id}");
    let view = t.call("viewer", "GET", &path, None).await;
    assert_eq!(view.body["smtp"]["has_password"], true, "{}", view.body);
    let stored = serde_json::to_string(&t.mem.channels.all()).unwrap();
    for text in [view.body.to_string(), stored] {
        assert!(!text.contains("smtp-pass-7d41c2"), "the SMTP password is shown or stored in the clear: {text}");
    }
    // The same server keeps it; another server must be given it again (it was meant for the first one).
    let a = t.admin("PUT", &path, Some(smtp("smtp.example.com", None))).await;
    assert_eq!((a.status, a.body["smtp"]["has_password"].as_bool()), (200, Some(true)), "{}", a.body);
    let a = t.admin("PUT", &path, Some(smtp("mail.elsewhere.example", None))).await;
    assert_eq!((a.status, a.field()), (409, Some("smtp.password")), "{}", a.body);
    assert!(t.admin("POST", &format!("{path}/test"), None).await.status == 200);
    let Outgoing::Smtp { password, .. } = t.mem.dumper.sent.borrow()[0].clone() else { panic!("an email") };
    assert_eq!(password.as_deref(), Some("smtp-pass-7d41c2"), "the dumper-host is given the opened password");
}

#[tokio::test]
async fn a_plugin_channel_hands_the_plugin_its_settings_and_shows_only_their_names() {
    let t = T::new();
    let body = json!({ "name": "chat", "kind": "plugin", "plugin": "discord",
        "settings": { "webhook_url": "https://discord.example/api/webhooks/1/plugin-secret-token" } });
    let id = channel(&t, body).await;
    let path = format!("/api/notifications/channels/{id}");
    let view = t.call("viewer", "GET", &path, None).await;
    assert_eq!(
        (view.body["destination"].as_str(), &view.body["setting_names"]),
        (Some("plug-in discord"), &json!(["webhook_url"]))
    );
    let stored = serde_json::to_string(&t.mem.channels.all()).unwrap();
    for text in [view.body.to_string(), stored] {
        assert!(!text.contains("plugin-secret-token"), "a setting's value is shown or stored in the clear: {text}");
    }
    let a = t.admin("POST", &format!("{path}/test"), None).await;
    assert_eq!((a.status, a.body["state"].as_str()), (200, Some("delivered")), "{}", a.body);
    let Outgoing::Plugin { plugin, settings, event, .. } = t.mem.dumper.sent.borrow()[0].clone() else {
        panic!("a plug-in delivery")
    };
    assert_eq!(plugin, "discord");
    assert_eq!(
        settings,
        [("webhook_url".to_string(), "https://discord.example/api/webhooks/1/plugin-secret-token".into())]
    );
    assert_eq!(event.kind.as_str(), "test");
    // Renamed, the settings stay; moved to another plug-in, they must be given again (they were meant for
    // the first one).
    let a = t.admin("PUT", &path, Some(json!({ "name": "chat 2", "kind": "plugin" }))).await;
    assert_eq!((a.status, &a.body["setting_names"]), (200, &json!(["webhook_url"])), "{}", a.body);
    let a = t.admin("PUT", &path, Some(json!({ "name": "chat", "kind": "plugin", "plugin": "pager" }))).await;
    assert_eq!((a.status, a.field()), (409, Some("settings")), "{}", a.body);
}

#[tokio::test]
async fn a_test_send_answers_how_it_went_and_is_in_the_delivery_log() {
    let t = T::new();
    let id = channel(&t, webhook("ops", &[])).await;
    assert_eq!(t.call("operator", "POST", &format!("/api/notifications/channels/{id}/test"), None).await.status, 403);
    let a = t.admin("POST", &format!("/api/notifications/channels/{id}/test"), None).await;
    assert_eq!((a.status, a.body["state"].as_str()), (200, Some("delivered")), "{}", a.body);
    let Outgoing::Http { url, headers, body } = t.mem.dumper.sent.borrow()[0].clone() else { panic!("a webhook") };
    assert_eq!(url, HOOK, "the dumper-host is given the opened URL");
    let header = |n: &str| headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(n)).map(|(_, v)| v.clone());
    assert_eq!(header("authorization").as_deref(), Some("Bearer hook-token-123"));
    let ts: i64 = header("x-dilux-timestamp").unwrap().parse().unwrap();
    let expected = dilux_domain::notify::signature(SECRET, ts, &body);
    assert_eq!(header("x-dilux-signature"), Some(expected), "signed over the exact body");
    // A refusing endpoint: the log says so, and a test is not retried.
    t.mem.dumper.refusing.borrow_mut().push("https://hooks.example.com".into());
    let a = t.admin("POST", &format!("/api/notifications/channels/{id}/test"), None).await;
    assert_eq!((a.body["state"].as_str(), a.body["next_attempt_at"].as_str()), (Some("failed"), None), "{}", a.body);
    let log = t.call("viewer", "GET", &format!("/api/notifications/deliveries?channel_id={id}"), None).await;
    assert_eq!(log.body["total"], 2, "{}", log.body);
    let states: Vec<&str> =
        log.body["deliveries"].as_array().unwrap().iter().map(|d| d["state"].as_str().unwrap()).collect();
    assert!(states.contains(&"delivered") && states.contains(&"failed"), "{states:?}");
    let tests = t.audit().into_iter().filter(|(a, s)| a == "notification_test_sent" && s == "success").count();
    assert_eq!(tests, 2, "{:?}", t.audit());
}

#[tokio::test]
async fn two_failures_are_one_message_and_a_success_one_recovery() {
    let t = T::new();
    let e = t.engine("pg", "db1").await;
    let d = t.database(&e, "shop").await;
    channel(&t, webhook("ops", &[])).await;
    let start = now();
    tick(&t, start).await;
    assert!(sent(&t).is_empty(), "the first tick starts from now: history before it is not news");

    let mut state = ScheduleState::new(&d);
    for (minute, n) in [(10, 1), (20, 2)] {
        finished(&t, &d, start + Duration::minutes(minute), BackupStatus::Failed, Some("connection refused"));
        state.consecutive_failures = n;
        t.mem.schedule.put(&d, state.clone());
        tick(&t, start + Duration::minutes(minute + 1)).await;
    }
    for m in 22..30 {
        tick(&t, start + Duration::minutes(m)).await;
    }
    let all = sent(&t);
    assert_eq!(
        kinds(&all),
        [("backup_failed", false), ("backup_failed", false), ("consecutive_failures", false)]
            .map(|(k, r)| (k.to_string(), r)),
        "{all:#?}"
    );
    assert!(all[0]["message"].as_str().unwrap().contains("connection refused"), "{}", all[0]);
    assert_eq!(all[2]["database_id"], d.as_str());

    finished(&t, &d, start + Duration::minutes(30), BackupStatus::Completed, None);
    state.consecutive_failures = 0;
    state.last_success_hourly = Some(start + Duration::minutes(30));
    t.mem.schedule.put(&d, state);
    for m in 31..35 {
        tick(&t, start + Duration::minutes(m)).await;
    }
    let after: Vec<Value> = sent(&t).split_off(3);
    assert_eq!(kinds(&after), [("consecutive_failures".to_string(), true)], "a success is news only as a recovery");
    assert!(after[0]["message"].as_str().unwrap().starts_with("Resolved"), "{}", after[0]);
}

#[tokio::test]
async fn a_missed_backup_is_one_message_however_many_ticks_see_it() {
    let t = T::new();
    let e = t.engine("pg", "db1").await;
    let d = t.database(&e, "shop").await;
    channel(&t, webhook("ops", &["missed_backups"])).await;
    // The standard policy backs up hourly: after two hours without one, backups are missing.
    for m in (0..=240).step_by(10) {
        tick(&t, now() + Duration::minutes(m)).await;
    }
    assert_eq!(kinds(&sent(&t)), [("missed_backups".to_string(), false)]);
    let mut state = ScheduleState::new(&d);
    state.last_success_hourly = Some(now() + Duration::minutes(245));
    t.mem.schedule.put(&d, state);
    for m in (250..=300).step_by(10) {
        tick(&t, now() + Duration::minutes(m)).await;
    }
    assert_eq!(kinds(&sent(&t)), [("missed_backups".to_string(), false), ("missed_backups".to_string(), true)]);
    assert!(t.mem.incidents.is_empty(), "the incident is closed");
}

#[tokio::test]
async fn filters_choose_what_a_channel_hears_about() {
    let t = T::new();
    let e = t.engine("pg", "db1").await;
    let shop = t.database(&e, "shop").await;
    let crm = t.database(&e, "crm").await;
    let mut only_crm = webhook("crm-team", &["backup_failed", "backup_succeeded"]);
    only_crm["url"] = json!("https://crm.example.com/hook");
    only_crm["filters"]["database_ids"] = json!([crm]);
    channel(&t, only_crm).await;
    let mut errors = webhook("errors", &[]);
    errors["filters"]["min_severity"] = json!("error");
    channel(&t, errors).await;
    tick(&t, now()).await;
    finished(&t, &shop, now() + Duration::minutes(1), BackupStatus::Failed, Some("disk full"));
    finished(&t, &crm, now() + Duration::minutes(2), BackupStatus::Completed, None);
    tick(&t, now() + Duration::minutes(5)).await;
    let mut to: Vec<(String, String)> = t
        .mem
        .dumper
        .sent
        .borrow()
        .iter()
        .map(|o| match o {
            Outgoing::Http { url, body, .. } => {
                let b: Value = serde_json::from_str(body).unwrap();
                (url.split('/').nth(2).unwrap().to_string(), b["event"]["kind"].as_str().unwrap().to_string())
            }
            Outgoing::Smtp { .. } | Outgoing::Plugin { .. } => unreachable!(),
        })
        .collect();
    to.sort();
    assert_eq!(
        to,
        [("crm.example.com", "backup_succeeded"), ("hooks.example.com", "backup_failed")]
            .map(|(a, b)| (a.to_string(), b.to_string())),
        "the shop failure goes to the error channel only; the crm success, opted in, to the crm team only"
    );
}

#[tokio::test]
async fn a_refusing_destination_is_retried_with_backoff_then_given_up() {
    let t = T::new();
    let e = t.engine("pg", "db1").await;
    let d = t.database(&e, "shop").await;
    let id = channel(&t, webhook("ops", &["backup_failed"])).await;
    t.mem.dumper.refusing.borrow_mut().push("https://hooks.example.com".into());
    tick(&t, now()).await;
    let failed = finished(&t, &d, now() + Duration::minutes(1), BackupStatus::Failed, Some("boom"));
    // A tick every 30 s for three hours.
    let mut at = now() + Duration::minutes(2);
    while at < now() + Duration::hours(3) {
        tick(&t, at).await;
        at += Duration::seconds(30);
    }
    let log = t.mem.deliveries.all();
    assert_eq!(log.len(), 1, "{log:#?}");
    let attempts: Vec<i64> =
        log[0].attempts.iter().map(|a| (a.at - (now() + Duration::minutes(2))).num_seconds()).collect();
    assert_eq!(attempts, [0, 30, 150, 750, 2550, 9750], "30 s, 2 min, 10 min, 30 min and 2 h apart");
    assert_eq!(log[0].state, DeliveryState::Failed);
    assert_eq!(t.mem.history.all().into_iter().find(|b| b.id == failed.id).unwrap().status, BackupStatus::Failed);
    let a = t.call("viewer", "GET", &format!("/api/notifications/deliveries?channel_id={id}&state=failed"), None).await;
    assert_eq!(a.body["total"], 1, "{}", a.body);
    assert_eq!(a.body["deliveries"][0]["attempts"][5]["message"], "refused");
}

#[tokio::test]
async fn an_unreachable_dumper_host_delays_notifications_not_backups() {
    let t = T::new();
    let e = t.engine("pg", "db1").await;
    let d = t.database(&e, "shop").await;
    channel(&t, webhook("ops", &["backup_failed"])).await;
    tick(&t, now()).await;
    finished(&t, &d, now() + Duration::minutes(1), BackupStatus::Failed, Some("boom"));
    *t.mem.dumper.down.borrow_mut() = true;
    let r = tick(&t, now() + Duration::minutes(2)).await;
    assert_eq!((r.queued, r.retrying, r.delivered), (1, 1, 0));
    let a = t.admin("POST", &format!("/api/databases/{d}/backup"), None).await;
    assert_eq!(a.status, 202, "a backup is queued whatever the notifications do: {}", a.body);
    *t.mem.dumper.down.borrow_mut() = false;
    let r = tick(&t, now() + Duration::minutes(3)).await;
    assert_eq!(r.delivered, 1, "sent at the next try");
    assert_eq!(kinds(&sent(&t)), [("backup_failed".to_string(), false)]);
}
