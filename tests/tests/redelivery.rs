//! Queue faults against the real queue (Azurite). A job whose worker died with it five times is failed with the
//! reason instead of being run forever, for backups and restores alike: the five dead workers are played by
//! receiving each message five times and never deleting it, and the queue counts the deliveries the job-runner
//! reads. A drill whose queueing answer was lost (a proxy drops it after the queue took the message) is undone:
//! the message finds no row and runs nothing, and the next tick queues the drill again.

use std::time::Duration;

use anyhow::{ensure, Context as _, Result};
use chrono::Utc;
use dilux_azure::{queue, Account};
use dilux_domain::restore::RESTORE_JOBS_QUEUE;
use dilux_domain::JOBS_QUEUE;
use dilux_dumper_host::storage::Storage;
use dilux_e2e::{Api, App, Azurite, Postgres};
use reqwest::Method as M;
use serde_json::{json, Value};

const PASSWORD: &str = "redeliver-pw-1";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_delivered_five_times_already_is_failed_not_run_again() -> Result<()> {
    let az = std::thread::spawn(Azurite::start);
    let pg = Postgres::start(PASSWORD)?;
    let az = az.join().unwrap()?;
    let conn = az.connection_string.as_str();
    pg.sql("postgres", "CREATE DATABASE shop")?;
    pg.sql("shop", "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 100)")?;
    // A completed backup first, to have something to restore.
    let app = App::start(conn)?;
    let first = Api::signed_in(&app, "admin").await?;
    let e = json!({ "name": "pg", "engine_type": "postgresql", "host": "127.0.0.1", "port": pg.port,
        "username": "postgres", "password": PASSWORD });
    let engine = first.post("/api/engines", e).await?;
    // Disabled: the scheduler queues nothing of its own beside the jobs this test follows.
    let d = json!({ "engine_id": engine["id"], "name": "shop", "enabled": false });
    let db = first.post("/api/databases", d).await?["id"].as_str().context("database id")?.to_string();
    let b = first.post(&format!("/api/databases/{db}/backup"), Value::Null).await?;
    let done = first.wait_final(&db, b["backup_id"].as_str().unwrap(), Duration::from_secs(60)).await?;
    assert_eq!(done["status"], "completed", "{done}");
    drop(app);

    // With no worker running, a backup and a restore wait on their queues.
    let app = App::start_without_worker(conn, &[])?;
    let api = Api::signed_in(&app, "admin").await?;
    let backup = api.post(&format!("/api/databases/{db}/backup"), Value::Null).await?;
    let body = json!({ "blob_name": done["blob_name"], "target_database": "shop_again" });
    let restore = api.post("/api/backups/restore", body).await?;
    let storage = Storage::new(Account::from_connection_string(conn)?);
    for _ in 0..5 {
        for q in [JOBS_QUEUE, RESTORE_JOBS_QUEUE] {
            let got = storage.send("get", queue::get_messages(&storage.account, Utc::now(), q, 1, 1)).await?;
            ensure!(queue::parse_get_messages(got)?.len() == 1, "{q}: the job is delivered");
        }
        // Each delivery's lease runs out, as a dead worker's does.
        tokio::time::sleep(Duration::from_millis(1200)).await;
    }
    drop(app);

    // The sixth delivery is not run: both end failed, saying why and what to check; nothing is made.
    let app = App::start(conn)?;
    let api = Api::signed_in(&app, "admin").await?;
    let b = api.wait_final(&db, backup["backup_id"].as_str().unwrap(), Duration::from_secs(60)).await?;
    let r = api.wait_restore(restore["restore_id"].as_str().unwrap(), Duration::from_secs(60)).await?;
    for (what, row) in [("backup", &b), ("restore", &r)] {
        assert_eq!(row["status"], "failed", "{row}");
        let why = row["error_message"].as_str().unwrap_or_default();
        assert!(why.contains("gave up after 5 attempts") && why.contains("memory and logs"), "{what}: {why}");
    }
    assert_eq!(pg.sql("postgres", "SELECT count(*) FROM pg_database WHERE datname = 'shop_again'")?.trim(), "0");
    let files = api.call(M::GET, "/api/backups/files", None).await?.1;
    assert_eq!(files["count"], 1, "only the first backup is stored: {files}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drill_whose_queueing_answer_was_lost_is_undone_and_queued_again() -> Result<()> {
    let az = std::thread::spawn(Azurite::start);
    let pg = Postgres::start(PASSWORD)?;
    let az = az.join().unwrap()?;
    pg.sql("postgres", "CREATE DATABASE ledger")?;
    pg.sql("ledger", "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 300)")?;
    let [blob, queue_port, table] = az.ports();
    let prefix = format!("POST /devstoreaccount1/{RESTORE_JOBS_QUEUE}/messages");
    let proxy = dilux_e2e::LosingProxy::start(queue_port, &prefix, 1)?;
    let storage = Account::azurite_connection_string(blob, proxy.port, table);
    let app = App::start_with(&storage, &dilux_e2e::root().join("spin.toml"), &[("DILUX_TICKS", "off")])?;
    let api = Api::signed_in(&app, "admin").await?;
    let policy = json!({ "name": "drilled", "daily": { "enabled": true, "keep_count": 7, "time": "02:00" },
        "verification": { "after_each_backup": true } });
    let policy = api.post("/api/backup-policies", policy).await?["id"].as_str().context("policy id")?.to_string();
    let e = json!({ "name": "pg", "engine_type": "postgresql", "host": "127.0.0.1", "port": pg.port,
        "username": "postgres", "password": PASSWORD });
    let engine = api.post("/api/engines", e).await?["id"].as_str().context("engine id")?.to_string();
    let done = api.back_up(&engine, "ledger", &policy).await?;
    assert_eq!(done["status"], "completed", "{done}");

    let tick = app.tick("drills", None).await?;
    assert_eq!((proxy.lost(), &tick["queued"]), (1, &json!(0)), "the answer was lost: {tick}");
    // The message the queue did take reaches the worker, finds no drill and runs nothing.
    let drills = "SELECT count(*) FROM pg_database WHERE datname LIKE 'ledger_drill_%'";
    let t = std::time::Instant::now();
    while t.elapsed() < Duration::from_secs(6) {
        let list = api.call(M::GET, "/api/restores", None).await?.1;
        assert_eq!(list["count"], 0, "the undone drill is not in the history: {list}");
        assert_eq!(pg.sql("postgres", drills)?.trim(), "0", "the lost drill ran");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // The next tick queues it again; it runs once and passes.
    assert_eq!(app.tick("drills", None).await?["queued"], 1);
    let drilled = api.drills_done(1).await?;
    assert_eq!(drilled.len(), 1, "one drill: {drilled:?}");
    assert_eq!(drilled[0]["verification"]["result"], "passed", "{}", drilled[0]);
    Ok(())
}
