//! Notifications through the running app: the notify tick (driven here, on the app's clock override)
//! announces a backup that really failed, the dumper-host delivers it to a local webhook that checks
//! the HMAC signature, to aiosmtpd (a real SMTP server), and to Slack and Teams MOCK endpoints whose
//! payloads are checked against the shapes those services document.

use std::time::Duration;

use anyhow::{bail, Result};
use chrono::{DateTime, Utc};
use dilux_e2e::{Api, App, Azurite, HookReceiver, SmtpSink, TICK_TOKEN};
use reqwest::Method as M;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const SECRET: &str = "whsec-0123456789abcdef";

/// HMAC-SHA256 (RFC 2104), written out so that the check does not share code with the signer.
fn hmac_sha256(key: &[u8], msg: &[u8]) -> String {
    let mut k = [0u8; 64];
    k[..key.len()].copy_from_slice(key);
    let pad = |b: u8| k.iter().map(|x| x ^ b).collect::<Vec<u8>>();
    let inner = Sha256::new().chain_update(pad(0x36)).chain_update(msg).finalize();
    let outer = Sha256::new().chain_update(pad(0x5c)).chain_update(inner).finalize();
    outer.iter().map(|b| format!("{b:02x}")).collect()
}

async fn notify_tick(app: &App, now: DateTime<Utc>) -> Result<Value> {
    let r = reqwest::Client::new()
        .post(format!("{}/internal/notify?now={}", app.url, now.to_rfc3339().replace('+', "%2B")))
        .bearer_auth(TICK_TOKEN)
        .send()
        .await?;
    let (s, v) = (r.status().as_u16(), r.json::<Value>().await?);
    if s != 200 {
        bail!("the notify tick answered {s}: {v}");
    }
    Ok(v)
}

fn start(az: &Azurite) -> Result<App> {
    App::start_with(
        &az.connection_string,
        &dilux_e2e::root().join("spin.toml"),
        &[("SPIN_VARIABLE_ALLOW_CLOCK_OVERRIDE", "true"), ("DILUX_TICKS", "off"), ("DILUX_WORKER_IDLE_POLL_MS", "50")],
    )
}

async fn test_send(admin: &Api, id: &str) -> Result<Value> {
    let (s, d) = admin.call(M::POST, &format!("/api/notifications/channels/{id}/test"), None).await?;
    assert_eq!(s, 200, "{d}");
    Ok(d)
}

/// A database `shop` on a server nobody listens for: its backups fail for real. Answers its id.
async fn unreachable_database(admin: &Api) -> Result<String> {
    let engine = admin
        .post(
            "/api/engines",
            json!({ "name": "pg", "engine_type": "postgresql", "host": "127.0.0.1", "port": dilux_e2e::free_port(),
                "username": "u", "password": "p" }),
        )
        .await?;
    let db = admin.post("/api/databases", json!({ "engine_id": engine["id"], "name": "shop" })).await?;
    Ok(db["id"].as_str().unwrap().to_string())
}

#[tokio::test]
async fn a_failed_backup_reaches_a_signed_webhook_and_an_smtp_server() -> Result<()> {
    let az = Azurite::start()?;
    let app = start(&az)?;
    let (hooks, smtp) = (HookReceiver::start()?, SmtpSink::start()?);
    let admin = Api::signed_in(&app, "admin").await?;
    let hook = admin
        .post(
            "/api/notifications/channels",
            json!({ "name": "ops webhook", "kind": "webhook", "url": hooks.url("/hook"), "secret": SECRET,
                "headers": { "X-Team": "dba" }, "filters": { "events": ["backup_failed", "test"] } }),
        )
        .await?;
    let mail = admin
        .post(
            "/api/notifications/channels",
            json!({ "name": "dba mail", "kind": "email", "filters": { "events": ["backup_failed"] },
                "smtp": { "host": "127.0.0.1", "port": smtp.port, "security": "none",
                    "from": "dilux@example.com", "to": ["dba@example.com", "oncall@example.com"] } }),
        )
        .await?;
    let refusing = admin
        .post(
            "/api/notifications/channels",
            json!({ "name": "down", "kind": "webhook", "url": hooks.url("/refuse"),
                "filters": { "events": ["backup_failed"] } }),
        )
        .await?;
    let (hook_id, mail_id) = (hook["id"].as_str().unwrap(), mail["id"].as_str().unwrap());

    // A test send, to both.
    assert_eq!(test_send(&admin, hook_id).await?["state"], "delivered");
    let d = test_send(&admin, mail_id).await?;
    assert_eq!(d["state"], "delivered", "{d}");
    assert_eq!(smtp.messages().len(), 1, "aiosmtpd has the test email");

    // A backup that fails for real (nothing listens on the server's port).
    notify_tick(&app, Utc::now()).await?;
    let db_id = unreachable_database(&admin).await?;
    let db_id = db_id.as_str();
    let queued = admin.post(&format!("/api/databases/{db_id}/backup"), json!({})).await?;
    let row = admin.wait_final(db_id, queued["backup_id"].as_str().unwrap(), Duration::from_secs(90)).await?;
    assert_eq!(row["status"], "failed", "{row}");
    let report = notify_tick(&app, Utc::now() + chrono::Duration::minutes(1)).await?;
    assert!(report["delivered"].as_u64() >= Some(2), "{report}");

    let got = hooks.received("/hook");
    assert_eq!(got.len(), 2, "the test and the failure: {got:?}");
    for r in &got {
        let ts = r.header("x-dilux-timestamp").expect("a timestamp");
        let expected = format!("sha256={}", hmac_sha256(SECRET.as_bytes(), format!("{ts}.{}", r.body).as_bytes()));
        assert_eq!(r.header("x-dilux-signature"), Some(expected.as_str()), "signed over the exact body");
        assert_eq!((r.header("x-team"), r.header("content-type")), (Some("dba"), Some("application/json")));
    }
    let failed = got[1].json();
    assert_eq!(got[1].header("x-dilux-event"), Some("backup_failed"));
    assert_eq!(
        (failed["source"].as_str(), failed["event"]["kind"].as_str()),
        (Some("dilux-backup"), Some("backup_failed"))
    );
    assert_eq!(
        (failed["event"]["database_id"].as_str(), failed["event"]["severity"].as_str()),
        (Some(db_id), Some("error"))
    );
    assert!(failed["event"]["message"].as_str().unwrap().contains("shop"), "{failed}");

    let mails = smtp.messages();
    let failure = mails.iter().find(|m| m.contains("backup failed")).expect("the failure is emailed");
    assert!(failure.contains("To: dba@example.com, oncall@example.com"), "{failure}");
    assert!(failure.contains("From: dilux@example.com"), "{failure}");

    // The refusing endpoint: tried, logged with its answer, and due again after the backoff, not before.
    let (_, log) = admin
        .call(M::GET, &format!("/api/notifications/deliveries?channel_id={}", refusing["id"].as_str().unwrap()), None)
        .await?;
    let d = &log["deliveries"][0];
    assert_eq!((d["state"].as_str(), d["attempts"][0]["status"].as_u64()), (Some("pending"), Some(500)), "{log}");
    assert!(d["next_attempt_at"].is_string(), "{d}");
    notify_tick(&app, Utc::now() + chrono::Duration::minutes(1)).await?;
    assert_eq!(hooks.received("/refuse").len(), 1, "not again before its backoff");
    let (_, log) = admin.call(M::GET, &format!("/api/notifications/deliveries?channel_id={hook_id}"), None).await?;
    assert_eq!(log["total"], 2, "{log}");
    Ok(())
}

#[tokio::test]
async fn slack_and_teams_get_their_documented_payloads_at_mock_endpoints() -> Result<()> {
    let az = Azurite::start()?;
    let app = start(&az)?;
    let hooks = HookReceiver::start()?;
    let admin = Api::signed_in(&app, "admin").await?;
    let slack = admin
        .post("/api/notifications/channels", json!({ "name": "s", "kind": "slack", "url": hooks.url("/slack") }))
        .await?;
    let teams = admin
        .post("/api/notifications/channels", json!({ "name": "t", "kind": "teams", "url": hooks.url("/teams") }))
        .await?;
    test_send(&admin, slack["id"].as_str().unwrap()).await?;
    test_send(&admin, teams["id"].as_str().unwrap()).await?;

    // Slack incoming webhooks: `text` (the fallback) and Block Kit blocks of known types.
    let s = hooks.received("/slack")[0].json();
    assert!(s["text"].as_str().is_some_and(|t| !t.is_empty()), "{s}");
    let blocks = s["blocks"].as_array().expect("blocks");
    for b in blocks {
        assert!(["header", "section", "context"].contains(&b["type"].as_str().unwrap()), "{b}");
    }
    assert_eq!(blocks[0]["text"]["type"], "plain_text", "a header's text is plain");
    assert!(blocks[0]["text"]["text"].as_str().unwrap().chars().count() <= 150, "Slack's header limit");

    // Teams Workflows ("post to a channel when a webhook request is received"): a message with one
    // Adaptive Card attachment.
    let t = hooks.received("/teams")[0].json();
    assert_eq!(t["type"], "message", "{t}");
    let a = &t["attachments"][0];
    assert_eq!(a["contentType"], "application/vnd.microsoft.card.adaptive");
    let card = &a["content"];
    assert_eq!((card["type"].as_str(), card["version"].as_str()), (Some("AdaptiveCard"), Some("1.4")));
    assert_eq!(card["$schema"], "http://adaptivecards.io/schemas/adaptive-card.json");
    let kinds: Vec<&str> = card["body"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert!(kinds.iter().all(|k| ["TextBlock", "FactSet"].contains(k)) && kinds[0] == "TextBlock", "{kinds:?}");
    Ok(())
}

async fn plugin_channel(admin: &Api, name: &str, plugin: &str, settings: Value) -> Result<String> {
    let c = admin
        .post(
            "/api/notifications/channels",
            json!({ "name": name, "kind": "plugin", "plugin": plugin, "settings": settings,
                "filters": { "events": ["test"] } }),
        )
        .await?;
    Ok(c["id"].as_str().unwrap().to_string())
}

fn last_message(d: &Value) -> &str {
    d["attempts"][0]["message"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn a_plugin_reaches_only_its_own_hosts_and_one_that_traps_or_hangs_fails_alone() -> Result<()> {
    let az = Azurite::start()?;
    let (hooks, elsewhere) = (HookReceiver::start()?, HookReceiver::start()?);
    // A listener that takes connections and never answers: a request that hangs.
    let silent = std::net::TcpListener::bind("127.0.0.1:0")?;
    let file = dilux_e2e::notifiers_file(&[hooks.port, silent.local_addr()?.port()])?;
    let app = App::start_with(
        &az.connection_string,
        &dilux_e2e::root().join("spin.toml"),
        &[("DILUX_NOTIFIERS", file.to_str().unwrap()), ("DILUX_TICKS", "off"), ("DILUX_WORKER_IDLE_POLL_MS", "50")],
    )?;
    let admin = Api::signed_in(&app, "admin").await?;
    let (_, status) = admin.call(M::GET, "/api/system-status", None).await?;
    assert_eq!(status["dumper_host"]["notifier_plugins"], json!(["discord", "misbehaving"]), "{status}");

    // The example plug-in renders its own payload, Discord's webhook message, and posts it where told.
    let discord = plugin_channel(&admin, "discord", "discord", json!({ "webhook_url": hooks.url("/discord") })).await?;
    let d = test_send(&admin, &discord).await?;
    assert_eq!(d["state"], "delivered", "{d}");
    let got = hooks.received("/discord");
    assert_eq!(got.len(), 1);
    let m = got[0].json();
    assert_eq!((m["username"].as_str(), &m["allowed_mentions"]), (Some("Dilux Backup"), &json!({ "parse": [] })));
    assert!(m["embeds"][0]["title"].as_str().unwrap().contains("test notification"), "{m}");
    assert_eq!(m["embeds"][0]["fields"][0], json!({ "name": "Event", "value": "test", "inline": true }), "{m}");

    // Told to post to a host its entry does not list: the host refuses the request, nothing arrives there.
    let outside =
        plugin_channel(&admin, "outside", "discord", json!({ "webhook_url": elsewhere.url("/stolen") })).await?;
    let d = test_send(&admin, &outside).await?;
    assert_eq!(d["state"], "failed", "{d}");
    assert!(last_message(&d).contains("allowed_outbound_hosts"), "{d}");
    assert!(elsewhere.received("/").is_empty(), "a host outside the plug-in's list was reached");

    // A plug-in that is not installed, one that traps, one that needs more than its 64 MiB: each fails its
    // delivery, saying so; within its memory the same plug-in delivers.
    let nope = plugin_channel(&admin, "nope", "not-installed", json!({})).await?;
    let d = test_send(&admin, &nope).await?;
    assert!(last_message(&d).contains("no notifier plug-in `not-installed`"), "{d}");
    for (name, settings, state, says) in [
        ("trap", json!({ "behave": "trap" }), "failed", "failed (wasm trap"),
        ("hog 96", json!({ "behave": "hog", "mib": "96" }), "failed", "failed (wasm trap"),
        ("hog 32", json!({ "behave": "hog", "mib": "32" }), "delivered", "took test"),
    ] {
        let id = plugin_channel(&admin, name, "misbehaving", settings).await?;
        let d = test_send(&admin, &id).await?;
        assert_eq!(d["state"], state, "{name}: {d}");
        assert!(last_message(&d).contains(says), "{name}: {d}");
    }

    // One that computes forever, one that sleeps and one whose request never gets an answer are stopped at 10 s;
    // meanwhile the app answers and a backup runs to its end (it fails: nothing listens on its server's port).
    let db_id = unreachable_database(&admin).await?;
    let hang = format!("http://{}/never-answers", silent.local_addr()?);
    for (behave, settings) in [
        ("spin", json!({ "behave": "spin" })),
        ("sleep", json!({ "behave": "sleep" })),
        ("fetch", json!({ "behave": "fetch", "url": hang })),
    ] {
        let id = plugin_channel(&admin, behave, "misbehaving", settings).await?;
        let started = std::time::Instant::now();
        let hung = async {
            let d = test_send(&admin, &id).await?;
            Ok::<_, anyhow::Error>((d, started.elapsed()))
        };
        let meanwhile = async {
            let queued = admin.post(&format!("/api/databases/{db_id}/backup"), json!({})).await?;
            let row = admin.wait_final(&db_id, queued["backup_id"].as_str().unwrap(), Duration::from_secs(60)).await?;
            let (s, _) = admin.call(M::GET, "/api/notifications/channels", None).await?;
            Ok::<_, anyhow::Error>((row, s, started.elapsed()))
        };
        let (hung, meanwhile) = tokio::join!(hung, meanwhile);
        let ((d, took), (row, listed, backed_up)) = (hung?, meanwhile?);
        assert_eq!(d["state"], "failed", "{behave}: {d}");
        assert!(took >= Duration::from_secs(9) && took < Duration::from_secs(20), "{behave}: took {took:?}");
        assert!(last_message(&d).contains("10 s"), "{behave}: {d}");
        assert_eq!((row["status"].as_str(), listed), (Some("failed"), 200), "{row}");
        assert!(
            backed_up < took,
            "{behave}: the backup ended after {backed_up:?}, the plug-in was stopped at {took:?}"
        );
    }
    // And the host is still there for the next delivery.
    assert_eq!(test_send(&admin, &discord).await?["state"], "delivered");
    Ok(())
}
