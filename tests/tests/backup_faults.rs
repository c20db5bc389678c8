//! Backups whose worker dies or loses its lease: the job still ends with one complete backup and a
//! consistent history row. One PostgreSQL and one Azurite serve both scenarios.

use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use dilux_e2e::{Api, App, Azurite, Postgres};
use serde_json::{json, Value};

const PASSWORD: &str = "pg-Faults-s3cret";
/// Only the backups these tests start: no scheduler queueing its own.
const NO_TICKS: (&str, &str) = ("DILUX_TICKS", "off");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backups_survive_a_dead_worker_and_a_lost_lease() -> Result<()> {
    let mut az = Azurite::start()?;
    let pg = Postgres::start(PASSWORD)?;
    pg.sql("postgres", "CREATE DATABASE shop")?;
    pg.sql(
        "shop",
        "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 5000) g",
    )?;
    a_worker_dying_right_after_its_commit_leaves_a_completed_backup(&az, &pg).await?;
    a_dump_outlasting_its_lease_many_times_is_one_attempt(&az, &pg).await?;
    a_worker_that_lost_its_lease_stops_and_the_next_one_backs_up(&az, &pg).await?;
    a_backup_nobody_runs_is_failed_by_the_sweeper(&az, &pg).await?;
    a_backup_far_smaller_than_before_is_suspect_until_an_admin_confirms_it(&az, &pg).await?;
    a_dump_past_its_deadline_is_stopped(&az, &pg).await?;
    a_storage_outage_mid_dump_is_ridden_out(&mut az, &pg).await?;
    a_lost_answer_to_queueing_a_job_queues_nothing_twice(&az, &pg).await?;
    a_worker_killed_mid_dump_is_replaced_and_the_job_completes(&az, &pg).await?;
    a_database_server_dying_mid_dump_fails_the_backup_as_unreachable(&az, &pg).await
}

/// Dump tools of `pg` running on this machine (a killed one leaves no command line).
fn dumps_of(pg: &Postgres) -> u32 {
    let port = format!("PGPORT={}", pg.port);
    let procs = dilux_e2e::process_environments();
    procs.iter().filter(|(cmd, env)| cmd.contains("pg_dump") && env.split(' ').any(|v| v == port)).count() as u32
}

async fn until_dumps(pg: &Postgres, want: u32, within: Duration, what: &str) -> Result<()> {
    let t = Instant::now();
    while dumps_of(pg) != want {
        ensure!(t.elapsed() < within, "{what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// Ends the session [`Postgres::hold_lock`] opened (killing psql alone would leave its server session
/// sleeping with the lock).
fn release_lock(pg: &Postgres, lock: &mut std::process::Child, secs: u32) -> Result<()> {
    let sql = format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%pg_sleep({secs})%' \
         AND pid <> pg_backend_pid()"
    );
    pg.sql("postgres", &sql)?;
    let _ = lock.kill();
    let _ = lock.wait();
    Ok(())
}

/// Registers the server and `shop` once; answers the database id.
async fn database(api: &Api, pg: &Postgres) -> Result<String> {
    let list = api.call(reqwest::Method::GET, "/api/databases", None).await?.1;
    if let Some(d) = list["databases"].as_array().and_then(|a| a.first()) {
        return Ok(d["id"].as_str().unwrap().to_string());
    }
    let e = json!({ "name": "pg", "engine_type": "postgresql", "host": "127.0.0.1", "port": pg.port,
        "username": "postgres", "password": PASSWORD });
    let e = api.post("/api/engines", e).await?;
    let d = api.post("/api/databases", json!({ "engine_id": e["id"], "name": "shop" })).await?;
    Ok(d["id"].as_str().unwrap().to_string())
}

/// Asks for a backup of `db`; answers its id.
async fn backup(api: &Api, db: &str) -> Result<String> {
    Ok(api.post(&format!("/api/databases/{db}/backup"), Value::Null).await?["backup_id"].as_str().unwrap().to_string())
}

/// A dumper-host that takes over a job at once (it polls every 10 ms and holds leases for 30 s).
fn second_worker(az: &Azurite, manifest: &std::path::Path) -> Result<App> {
    App::start_with(
        &az.connection_string,
        manifest,
        &[("DILUX_WORKER_LEASE_SECS", "30"), ("DILUX_WORKER_IDLE_POLL_MS", "10"), NO_TICKS],
    )
}

async fn row(api: &Api, db: &str, id: &str) -> Result<Value> {
    let v = api.call(reqwest::Method::GET, &format!("/api/backups?database_id={db}"), None).await?.1;
    Ok(v["backups"].as_array().and_then(|a| a.iter().find(|r| r["id"] == id)).cloned().unwrap_or(Value::Null))
}

async fn files(api: &Api, db: &str) -> Result<Vec<Value>> {
    let v = api.call(reqwest::Method::GET, &format!("/api/backups/files?database_id={db}"), None).await?.1;
    Ok(v["files"].as_array().cloned().unwrap_or_default())
}

/// The worker commits the blob and dies before it records the result: the redelivered job adopts the
/// committed backup (its `backup_id` is the job's) instead of failing on a name that is taken.
async fn a_worker_dying_right_after_its_commit_leaves_a_completed_backup(az: &Azurite, pg: &Postgres) -> Result<()> {
    let manifest = dilux_e2e::root().join("spin.toml");
    let lease = ("DILUX_WORKER_LEASE_SECS", "2");
    let mut app = App::start_with(
        &az.connection_string,
        &manifest,
        &[lease, ("DILUX_TEST_CRASH_AT", "dump-committed"), NO_TICKS],
    )?;
    let api = Api::signed_in(&app, "admin").await?;
    let db = database(&api, pg).await?;
    let id = backup(&api, &db).await?;
    ensure!(app.exited_within(Duration::from_secs(120)), "the worker was to die right after the commit");
    ensure!(row(&api_of(&az.connection_string).await?.1, &db, &id).await?["status"] == "in_progress");

    let app = App::start_with(&az.connection_string, &manifest, &[lease, NO_TICKS])?;
    let api = Api::signed_in(&app, "admin").await?;
    let done = api.wait_final(&db, &id, Duration::from_secs(120)).await?;
    ensure!(done["status"] == "completed" && done["attempts"] == 2, "adopted, not failed: {done}");
    let stored = files(&api, &db).await?;
    ensure!(stored.len() == 1 && stored[0]["name"] == done["blob_name"], "one blob: {stored:?}");
    ensure!(stored[0]["size_bytes"] == done["file_size_bytes"], "the row describes the blob: {done} {stored:?}");
    let (_, bytes) = api.download(done["blob_name"].as_str().unwrap()).await?;
    ensure!(dilux_e2e::sha256_hex(&bytes) == done["sha256"].as_str().unwrap_or_default(), "{done}");
    ensure!(done["manifest_rows"] == 5000, "the manifest came along: {done}");
    Ok(())
}

/// The dumper-host is killed (SIGKILL) while its dump waits on a lock: once the lease lapses, the next
/// worker runs the job again and commits one whole backup; the dead attempt left no blob.
async fn a_worker_killed_mid_dump_is_replaced_and_the_job_completes(az: &Azurite, pg: &Postgres) -> Result<()> {
    let manifest = dilux_e2e::root().join("spin.toml");
    let mut lock = pg.hold_lock("shop", "t", 120)?;
    let first = App::start_with(&az.connection_string, &manifest, &[("DILUX_WORKER_LEASE_SECS", "4"), NO_TICKS])?;
    let api = Api::signed_in(&first, "admin").await?;
    let db = database(&api, pg).await?;
    let before = files(&api, &db).await?.len();
    let id = backup(&api, &db).await?;
    until_dumps(pg, 1, Duration::from_secs(30), "the first worker's dump never started").await?;
    first.crash();
    let second = second_worker(az, &manifest)?;
    // The killed host's pg_dump is an orphan until it writes to its closed pipe; the second one starts beside it.
    until_dumps(pg, 2, Duration::from_secs(30), "no worker took the job of the killed one").await?;
    release_lock(pg, &mut lock, 120)?;
    let api = Api::signed_in(&second, "admin").await?;
    completed_on_the_second_attempt(&api, &db, &id, before).await?;
    Ok(())
}

/// The database server dies while a dump reads it: the backup fails as Unreachable with the tool's words
/// and what to check, commits nothing, and the next backup (the server back) completes.
async fn a_database_server_dying_mid_dump_fails_the_backup_as_unreachable(az: &Azurite, pg: &Postgres) -> Result<()> {
    let manifest = dilux_e2e::root().join("spin.toml");
    let mut lock = pg.hold_lock("shop", "t", 120)?;
    let app = App::start_with(&az.connection_string, &manifest, &[NO_TICKS])?;
    let api = Api::signed_in(&app, "admin").await?;
    let db = database(&api, pg).await?;
    let before = files(&api, &db).await?.len();
    let id = backup(&api, &db).await?;
    until_dumps(pg, 1, Duration::from_secs(30), "the dump never started").await?;
    pg.kill()?;
    let _ = lock.kill();
    let _ = lock.wait();
    let failed = api.wait_final(&db, &id, Duration::from_secs(120)).await?;
    ensure!(failed["status"] == "failed" && failed["error_class"] == "Unreachable", "{failed}");

    ensure!(files(&api, &db).await?.len() == before, "nothing committed");
    pg.start_again()?;
    let again = backup(&api, &db).await?;
    let done = api.wait_final(&db, &again, Duration::from_secs(120)).await?;
    ensure!(done["status"] == "completed", "{done}");
    Ok(())
}

/// Backup `id` completed on its second attempt as one new blob (beside `before` others) holding a whole dump
/// whose SHA-256 is the recorded one.
async fn completed_on_the_second_attempt(api: &Api, db: &str, id: &str, before: usize) -> Result<()> {
    let done = api.wait_final(db, id, Duration::from_secs(120)).await?;
    ensure!(done["status"] == "completed" && done["attempts"] == 2, "{done}");
    let stored = files(api, db).await?;
    ensure!(stored.len() == before + 1, "one new blob: {stored:?}");
    let (_, bytes) = api.download(done["blob_name"].as_str().unwrap()).await?;
    ensure!(dilux_e2e::sha256_hex(&bytes) == done["sha256"].as_str().unwrap_or_default(), "{done}");
    let dump = String::from_utf8(dilux_e2e::decompress(&bytes)?)?;
    ensure!(dump.contains("PostgreSQL database dump complete"), "a whole dump, from one attempt");
    Ok(())
}

/// An app without a worker, to read the API while no worker runs.
async fn api_of(connection_string: &str) -> Result<(App, Api)> {
    let app = App::start_without_worker(connection_string, &[NO_TICKS])?;
    let api = Api::signed_in(&app, "viewer").await?;
    Ok((app, api))
}

/// A dump that waits on a lock for four times its 2-second lease: the worker renews the lease all along, so
/// the message never reappears — no second dump starts, on this worker or another — and the backup completes
/// from one attempt. (With renewals held back, DILUX_TEST_HOLD_LEASE, a second dump starts within 3 s.)
async fn a_dump_outlasting_its_lease_many_times_is_one_attempt(az: &Azurite, pg: &Postgres) -> Result<()> {
    let manifest = dilux_e2e::root().join("spin.toml");
    let mut lock = pg.hold_lock("shop", "t", 123)?;
    let fast = [("DILUX_WORKER_LEASE_SECS", "2"), ("DILUX_WORKER_IDLE_POLL_MS", "10"), NO_TICKS];
    let app = App::start_with(&az.connection_string, &manifest, &fast)?;
    let other = App::start_with(&az.connection_string, &manifest, &fast)?;
    let api = Api::signed_in(&app, "admin").await?;
    let db = database(&api, pg).await?;
    let id = backup(&api, &db).await?;
    until_dumps(pg, 1, Duration::from_secs(30), "the dump never started").await?;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(8) {
        ensure!(dumps_of(pg) <= 1, "a second dump started after {:?}: the lease lapsed", started.elapsed());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    release_lock(pg, &mut lock, 123)?;
    let done = api.wait_final(&db, &id, Duration::from_secs(60)).await?;
    ensure!(done["status"] == "completed" && done["attempts"] == 1, "{done}");
    ensure!(done["duration_seconds"].as_f64().unwrap_or(0.0) >= 8.0, "the dump outlasted four leases: {done}");
    drop(other);
    Ok(())
}

/// A worker whose renewals never get through loses its lease while its dump waits on a lock: it stops
/// (its dump's session goes away) once it notices, the job goes to the next worker, and one backup is
/// committed, from one attempt.
async fn a_worker_that_lost_its_lease_stops_and_the_next_one_backs_up(az: &Azurite, pg: &Postgres) -> Result<()> {
    let manifest = dilux_e2e::root().join("spin.toml");
    let mut lock = pg.hold_lock("shop", "t", 120)?;
    let first = App::start_with(
        &az.connection_string,
        &manifest,
        &[
            ("DILUX_WORKER_LEASE_SECS", "6"),
            ("DILUX_TEST_HOLD_LEASE", "1"),
            ("DILUX_WORKER_CONCURRENCY", "1"),
            NO_TICKS,
        ],
    )?;
    let api = Api::signed_in(&first, "admin").await?;
    let db = database(&api, pg).await?;
    let before = files(&api, &db).await?.len();
    let id = backup(&api, &db).await?;
    until_dumps(pg, 1, Duration::from_secs(30), "the first worker's dump never started").await?;
    // The second worker takes the job when the lapsed lease lets it reappear (6 s); the first notices a tick
    // later (8 s) and stops its dump: one dump runs again. (Both wait on the lock meanwhile.)
    let second = second_worker(az, &manifest)?;
    until_dumps(pg, 2, Duration::from_secs(30), "the second worker never got the job").await?;
    until_dumps(pg, 1, Duration::from_secs(10), "the first worker did not stop its dump after losing the lease")
        .await?;
    release_lock(pg, &mut lock, 120)?;
    let api = Api::signed_in(&second, "admin").await?;
    completed_on_the_second_attempt(&api, &db, &id, before).await?;
    drop(first);
    Ok(())
}

/// With no worker at all, a queued backup is failed by the sweeper once it has waited past the bound, with
/// the reason, and the database takes backups again.
async fn a_backup_nobody_runs_is_failed_by_the_sweeper(az: &Azurite, pg: &Postgres) -> Result<()> {
    let app =
        App::start_without_worker(&az.connection_string, &[NO_TICKS, ("SPIN_VARIABLE_ALLOW_CLOCK_OVERRIDE", "true")])?;
    let api = Api::signed_in(&app, "admin").await?;
    let db = database(&api, pg).await?;
    let id = backup(&api, &db).await?;
    let sweep = |hours: i64| {
        let at = (chrono::Utc::now() + chrono::Duration::hours(hours)).to_rfc3339().replace('+', "%2B");
        let url = format!("{}/internal/ticks/sweeper?now={at}", app.url);
        async move {
            let r = reqwest::Client::new().post(url).bearer_auth(dilux_e2e::TICK_TOKEN).send().await?;
            ensure!(r.status() == 200, "the sweeper answered {}", r.status());
            anyhow::Ok(r.json::<Value>().await?)
        }
    };
    let early = sweep(11).await?;
    ensure!(early["failed"] == 0 && row(&api, &db, &id).await?["status"] == "pending", "{early}");
    let late = sweep(13).await?;
    ensure!(late["failed"] == 1, "{late}");
    let failed = row(&api, &db, &id).await?;
    ensure!(failed["status"] == "failed", "{failed}");
    ensure!(failed["error_message"].as_str().unwrap_or_default().contains("no worker started this backup"), "{failed}");
    let (s, v) = api.call(reqwest::Method::POST, &format!("/api/databases/{db}/backup"), None).await?;
    ensure!(s == 202, "no longer in flight: {v}");
    Ok(())
}

/// After three backups of `shop`, those of the emptied database are marked suspect and alerted, however
/// many follow (suspect ones are no baseline); a restore that matches the (empty) manifest settles nothing,
/// an admin's confirmation does.
async fn a_backup_far_smaller_than_before_is_suspect_until_an_admin_confirms_it(
    az: &Azurite,
    pg: &Postgres,
) -> Result<()> {
    let manifest = dilux_e2e::root().join("spin.toml");
    let app = App::start_with(&az.connection_string, &manifest, &[NO_TICKS])?;
    let api = Api::signed_in(&app, "admin").await?;
    let db = database(&api, pg).await?;
    // The backup queued while no worker ran completes first (at least the third); then the database is emptied.
    let t = Instant::now();
    loop {
        let v = api.call(reqwest::Method::GET, &format!("/api/backups?database_id={db}"), None).await?.1;
        let rows = v["backups"].as_array().cloned().unwrap_or_default();
        let running = rows.iter().any(|r| r["status"] == "pending" || r["status"] == "in_progress");
        if !running && rows.iter().filter(|r| r["status"] == "completed").count() >= 3 {
            break;
        }
        ensure!(t.elapsed() < Duration::from_secs(60), "the queued backup did not run: {v}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    pg.sql("shop", "TRUNCATE t")?;
    let mut tiny = Vec::new();
    for _ in 0..4 {
        let id = backup(&api, &db).await?;
        let done = api.wait_final(&db, &id, Duration::from_secs(60)).await?;
        let why = done["suspect"].as_str().unwrap_or_default();
        ensure!(done["status"] == "completed" && why.contains("under 10% of the usual"), "{done}");
        tiny.push(done);
    }
    let status = api.call(reqwest::Method::GET, "/api/system-status", None).await?.1;
    ensure!(status["alerts"].to_string().contains("suspect_backup"), "{status}");
    let newest = tiny.last().unwrap();
    let restore = json!({ "blob_name": newest["blob_name"], "target_database": "shop_checked" });
    let rid = api.post("/api/backups/restore", restore).await?["restore_id"].as_str().unwrap().to_string();
    let restored = api.wait_restore(&rid, Duration::from_secs(120)).await?;
    ensure!(restored["status"] == "completed", "{restored}");
    let id = newest["id"].as_str().unwrap();
    let after = row(&api, &db, id).await?;
    ensure!(after["last_verification"]["result"] == "passed" && after["suspect"].is_string(), "still suspect: {after}");
    let confirmed = api.post(&format!("/api/backups/{id}/confirm"), Value::Null).await?;
    ensure!(confirmed["suspect"].is_null(), "{confirmed}");
    Ok(())
}

/// A dump still running at its deadline (here 3.6 s, waiting on a lock) is stopped and failed as Timeout.
async fn a_dump_past_its_deadline_is_stopped(az: &Azurite, pg: &Postgres) -> Result<()> {
    let manifest = dilux_e2e::root().join("spin.toml");
    let mut lock = pg.hold_lock("shop", "t", 121)?;
    let app = App::start_with(&az.connection_string, &manifest, &[NO_TICKS, ("DILUX_DUMP_DEADLINE_HOURS", "0.001")])?;
    let api = Api::signed_in(&app, "admin").await?;
    let db = database(&api, pg).await?;
    let id = backup(&api, &db).await?;
    let done = api.wait_final(&db, &id, Duration::from_secs(60)).await?;
    release_lock(pg, &mut lock, 121)?;
    let why = done["error_message"].as_str().unwrap_or_default();
    ensure!(done["status"] == "failed" && done["error_class"] == "Timeout", "{done}");
    ensure!(why.contains("ran longer than 0.0 h") && why.contains("DILUX_DUMP_DEADLINE_HOURS"), "{done}");
    ensure!(dumps_of(pg) == 0, "the tool was stopped");
    Ok(())
}

/// The queue takes a backup's job but the answer is lost on the way back: the API does not send it again
/// (a second copy would be a second job). It says the backup was not queued and undoes its row, so the
/// copy that did arrive finds no row and is dropped; asked again, it queues one backup.
async fn a_lost_answer_to_queueing_a_job_queues_nothing_twice(az: &Azurite, pg: &Postgres) -> Result<()> {
    let [blob, queue, table] = az.ports();
    let prefix = format!("POST /devstoreaccount1/{}/messages", dilux_domain::JOBS_QUEUE);
    let proxy = dilux_e2e::LosingProxy::start(queue, &prefix, 1)?;
    let storage = dilux_azure::Account::azurite_connection_string(blob, proxy.port, table);
    let app = App::start_with(&storage, &dilux_e2e::root().join("spin.toml"), &[NO_TICKS])?;
    let api = Api::signed_in(&app, "admin").await?;
    let db = database(&api, pg).await?;
    let history = format!("/api/backups?database_id={db}");
    let (before, rows_before) =
        (files(&api, &db).await?.len(), api.call(reqwest::Method::GET, &history, None).await?.1);
    let (status, v) = api.call(reqwest::Method::POST, &format!("/api/databases/{db}/backup"), None).await?;
    ensure!(proxy.lost() == 1, "the answer was to be lost");
    ensure!(status == 503 && v["error"]["message"].as_str().unwrap_or_default().contains("not queued"), "{status} {v}");
    // The copy in the queue reaches a worker, which finds no row and drops it: no dump, no row, no file.
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(10) {
        let (_, h) = api.call(reqwest::Method::GET, &history, None).await?;
        ensure!(h["count"] == rows_before["count"], "the undone backup is in the history: {h}");
        ensure!(dumps_of(pg) == 0, "the lost job ran");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    ensure!(files(&api, &db).await?.len() == before, "no file");
    let id = backup(&api, &db).await?;
    let done = api.wait_final(&db, &id, Duration::from_secs(120)).await?;
    ensure!(done["status"] == "completed" && done["attempts"] == 1, "{done}");
    let (_, h) = api.call(reqwest::Method::GET, &history, None).await?;
    ensure!(h["count"].as_u64() == rows_before["count"].as_u64().map(|c| c + 1), "one backup: {h}");
    ensure!(files(&api, &db).await?.len() == before + 1, "one file");
    Ok(())
}

/// Storage goes away while a dump uploads (Azurite stopped for 60 s): the dump waits it out and commits
/// one complete backup, in one attempt (its lease, 120 s, is renewed once storage is back).
async fn a_storage_outage_mid_dump_is_ridden_out(az: &mut Azurite, pg: &Postgres) -> Result<()> {
    let manifest = dilux_e2e::root().join("spin.toml");
    pg.sql("shop", "INSERT INTO t SELECT g, repeat('v', 100) || g FROM generate_series(1, 20000) g")?;
    let mut lock = pg.hold_lock("shop", "t", 122)?;
    let app = App::start_with(&az.connection_string, &manifest, &[NO_TICKS])?;
    let api = Api::signed_in(&app, "admin").await?;
    let db = database(&api, pg).await?;
    let id = backup(&api, &db).await?;
    until_dumps(pg, 1, Duration::from_secs(30), "the dump never started").await?;
    // Storage goes down, then the dump's data starts to flow.
    tokio::task::block_in_place(|| az.stop())?;
    release_lock(pg, &mut lock, 122)?;
    tokio::time::sleep(Duration::from_secs(60)).await;
    tokio::task::block_in_place(|| az.restart())?;
    let done = api.wait_final(&db, &id, Duration::from_secs(180)).await?;
    ensure!(done["status"] == "completed" && done["attempts"] == 1, "ridden out, not retried: {done}");
    let (_, bytes) = api.download(done["blob_name"].as_str().unwrap()).await?;
    ensure!(dilux_e2e::sha256_hex(&bytes) == done["sha256"].as_str().unwrap_or_default(), "{done}");
    let dump = String::from_utf8(dilux_e2e::decompress(&bytes)?)?;
    ensure!(dump.contains("PostgreSQL database dump complete") && dump.contains("vvvv"), "a whole dump");
    ensure!(done["manifest_rows"] == 20000, "{done}");
    Ok(())
}
