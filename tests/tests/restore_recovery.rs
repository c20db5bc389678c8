//! Restores whose worker dies half-way. MariaDB has no transaction around a restore, so the killed
//! attempt leaves a half-filled database behind: the job comes back when its lease runs out, the next
//! attempt recognises its own leftover by the mark the restore put on it, drops it, and restores
//! everything. PostgreSQL restores in one transaction whose client dies with the worker: a killed attempt
//! commits nothing. A replace whose worker dies mid-swap is finished by the next attempt. One MariaDB serves all
//! (two MariaDB installs at once are not reliable here).

use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use dilux_e2e::{Api, App, Azurite, Mariadb, Postgres};
use reqwest::Method as M;
use serde_json::json;

const PASSWORD: &str = "maria-Recover-s3cret";

fn fingerprint(m: &Mariadb, db: &str) -> Result<String> {
    m.sql(db, "SELECT COUNT(*), SUM(CRC32(CONCAT(id, '#', payload))) FROM t")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restores_and_replaces_survive_their_worker() -> Result<()> {
    let az = std::thread::spawn(Azurite::start);
    let pg = std::thread::spawn(|| dilux_e2e::Postgres::start("pg-Swap-s3cret"));
    let maria = Mariadb::start()?;
    let (az, pg) = (az.join().unwrap()?, pg.join().unwrap()?);
    a_restore_killed_half_way_is_started_over(&az, &maria).await?;
    a_postgres_restore_killed_half_way_commits_nothing(&az, &pg).await?;
    // A storage account of its own: the first part registered this MariaDB server already.
    a_replace_whose_worker_died_mid_swap_is_finished(&Azurite::start()?, &pg, &maria).await
}

async fn a_restore_killed_half_way_is_started_over(az: &Azurite, maria: &Mariadb) -> Result<()> {
    maria.database_and_admin("big", PASSWORD)?;
    // ~80 MB of SQL: a restore that takes seconds, long enough to be interrupted.
    maria.sql(
        "big",
        "SET SESSION max_recursive_iterations = 500000; CREATE TABLE t (id INT PRIMARY KEY, payload TEXT); \
         INSERT INTO t WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < 400000) \
         SELECT g, CONCAT(REPEAT(MD5(g), 6), ' 🦀 ', g) FROM s;",
    )?;
    let env = [("DILUX_WORKER_LEASE_SECS", "2")];
    let manifest = dilux_e2e::root().join("spin.toml");
    let app = App::start_with(&az.connection_string, &manifest, &env)?;
    let api = Api::signed_in(&app, "admin").await?;
    let e = api
        .post(
            "/api/engines",
            json!({ "name": "maria", "engine_type": "mysql", "host": "127.0.0.1", "port": maria.port,
                "username": "dilux", "password": PASSWORD }),
        )
        .await?;
    let d = api.post("/api/databases", json!({ "engine_id": e["id"], "name": "big" })).await?;
    let id = d["id"].as_str().unwrap();
    let b = api.post(&format!("/api/databases/{id}/backup"), json!(null)).await?;
    let backup = api.wait_final(id, b["backup_id"].as_str().unwrap(), Duration::from_secs(180)).await?;
    ensure!(backup["status"] == "completed", "{backup}");

    let r = api
        .post("/api/backups/restore", json!({ "blob_name": backup["blob_name"], "target_database": "big_copy" }))
        .await?;
    let rid = r["restore_id"].as_str().unwrap().to_string();
    // Wait until the restore is writing rows (its table exists; the dump holds a write lock on it while
    // it inserts, so count nothing yet), then kill the app as a crash would.
    let deadline = Instant::now() + Duration::from_secs(60);
    let table = "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'big_copy' AND table_name = 't'";
    while maria.sql("", table)?.trim() != "1" {
        ensure!(Instant::now() < deadline, "the restore never started writing");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // While it runs, its row shows how far it is: bytes of the backup the server took, of its size.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, r) = api.call(M::GET, &format!("/api/restores/{rid}"), None).await?;
        let (done, total) = (r["progress_bytes"].as_i64().unwrap_or(0), r["bytes_total"].as_i64().unwrap_or(0));
        if done > 0 && done < total {
            ensure!(r["status"] == "in_progress", "{r}");
            break;
        }
        ensure!(r["status"] != "completed" && Instant::now() < deadline, "no progress seen while it ran: {r}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app.crash();
    let half: u64 = maria.sql("big_copy", "SELECT COUNT(*) FROM t")?.trim().parse()?;
    ensure!(half < 400_000, "the crash left a half-restored database ({half} rows), as it would in production");
    let mark = maria.sql("big_copy", "SELECT id FROM _dilux_restore_in_progress")?;
    ensure!(mark.contains(&rid), "the leftover carries this restore's mark: {mark}");

    // A new worker gets the job back when the lease runs out, recognises the leftover, starts over.
    let app = App::start_with(&az.connection_string, &manifest, &env)?;
    let api = Api::signed_in(&app, "viewer").await?;
    let done = api.wait_restore(&rid, Duration::from_secs(180)).await?;
    ensure!(done["status"] == "completed" && done["attempts"] == 2, "{done}");
    ensure!(fingerprint(maria, "big_copy")? == fingerprint(maria, "big")?, "every row, once");
    let marks = "SELECT COUNT(*) FROM information_schema.tables WHERE table_name = '_dilux_restore_in_progress'";
    ensure!(maria.sql("", marks)?.trim() == "0", "the mark is gone once the restore finished");
    Ok(())
}

/// The client (psql) dies with the worker (`PR_SET_PDEATHSIG`) and its transaction with it. Had it outlived the
/// worker, it would have read the end of its input and committed the rows it had; the database keeps only its
/// mark, and the next attempt drops it and restores everything.
async fn a_postgres_restore_killed_half_way_commits_nothing(az: &Azurite, pg: &Postgres) -> Result<()> {
    pg.sql("postgres", "CREATE DATABASE bigpg")?;
    pg.sql(
        "bigpg",
        "CREATE TABLE t (id int PRIMARY KEY, payload text); INSERT INTO t SELECT g, repeat(md5(g::text), 6) || \
         ' 🦀 ' || g FROM generate_series(1, 400000) g",
    )?;
    let fingerprint = |db: &str| pg.sql(db, "SELECT count(*), sum(hashtext(id || '#' || payload)::bigint) FROM t");
    let env = [("DILUX_WORKER_LEASE_SECS", "2")];
    let manifest = dilux_e2e::root().join("spin.toml");
    let app = App::start_with(&az.connection_string, &manifest, &env)?;
    let api = Api::signed_in(&app, "admin").await?;
    let e = json!({ "name": "pg", "engine_type": "postgresql", "host": "127.0.0.1", "port": pg.port,
        "username": "postgres", "password": "pg-Swap-s3cret" });
    let e = api.post("/api/engines", e).await?;
    let d = api.post("/api/databases", json!({ "engine_id": e["id"], "name": "bigpg" })).await?;
    let id = d["id"].as_str().unwrap();
    let b = api.post(&format!("/api/databases/{id}/backup"), json!(null)).await?;
    let backup = api.wait_final(id, b["backup_id"].as_str().unwrap(), Duration::from_secs(180)).await?;
    ensure!(backup["status"] == "completed", "{backup}");
    let body = json!({ "blob_name": backup["blob_name"], "target_database": "bigpg_copy" });
    let rid = api.post("/api/backups/restore", body).await?["restore_id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, r) = api.call(M::GET, &format!("/api/restores/{rid}"), None).await?;
        let (done, total) = (r["progress_bytes"].as_i64().unwrap_or(0), r["bytes_total"].as_i64().unwrap_or(0));
        if done > 0 && done < total {
            break;
        }
        ensure!(r["status"] != "completed" && Instant::now() < deadline, "never seen half-way: {r}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app.crash();
    // Time for a surviving psql to read the end of its input and commit.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let tables = pg.sql("bigpg_copy", "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")?;
    ensure!(tables.trim() == "0", "the killed restore committed {} tables; it must commit none", tables.trim());
    let mark = "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = 'bigpg_copy'";
    let mark = pg.sql("postgres", mark)?;
    ensure!(mark.contains(&rid), "the leftover carries this restore's mark: {mark}");

    let app = App::start_with(&az.connection_string, &manifest, &env)?;
    let api = Api::signed_in(&app, "viewer").await?;
    let done = api.wait_restore(&rid, Duration::from_secs(180)).await?;
    ensure!(done["status"] == "completed" && done["attempts"] == 2, "{done}");
    ensure!(fingerprint("bigpg_copy")? == fingerprint("bigpg")?, "every row, once");
    Ok(())
}

/// Replaces, with the worker made to die right after the swap's first move, then a new worker: it
/// finishes the swap instead of leaving the original half-swapped (PostgreSQL: renamed away, MariaDB:
/// tables moved but triggers, views and routines not yet re-created).
async fn a_replace_whose_worker_died_mid_swap_is_finished(az: &Azurite, pg: &Postgres, maria: &Mariadb) -> Result<()> {
    pg.sql("postgres", "CREATE DATABASE shop")?;
    pg.sql(
        "shop",
        "CREATE TABLE t (id int PRIMARY KEY, v text); \
         INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 1000) g; CREATE VIEW tv AS SELECT id FROM t;",
    )?;
    maria.sql("", "CREATE DATABASE shop CHARACTER SET utf8mb4")?; // the user exists already
    maria.sql(
        "shop",
        "SET SESSION max_recursive_iterations = 5000; CREATE TABLE t (id INT PRIMARY KEY, v TEXT); \
         INSERT INTO t WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < 1000) \
         SELECT g, CONCAT('v', g) FROM s; CREATE TABLE log (id INT); \
         CREATE TRIGGER tr AFTER UPDATE ON t FOR EACH ROW INSERT INTO log VALUES (NEW.id); \
         CREATE VIEW tv AS SELECT id FROM t; CREATE PROCEDURE p() SELECT COUNT(*) FROM t;",
    )?;
    let manifest = dilux_e2e::root().join("spin.toml");
    let lease = ("DILUX_WORKER_LEASE_SECS", "2");
    let crash = ("DILUX_TEST_CRASH_AT", "swap-renamed");
    let app = App::start_with(&az.connection_string, &manifest, &[lease])?;
    let api = Api::signed_in(&app, "admin").await?;
    let mut blobs = vec![];
    for (engine, port, user) in
        [("postgresql", pg.port, ("postgres", "pg-Swap-s3cret")), ("mysql", maria.port, ("dilux", PASSWORD))]
    {
        blobs.push(api.backed_up(engine, port, user, "shop", None).await?["blob_name"].as_str().unwrap().to_string());
    }
    drop(app);
    pg.sql("shop", "DELETE FROM t WHERE id > 990")?;
    maria.sql("shop", "DELETE FROM t WHERE id > 990")?;
    let replace = |blob: &str| json!({ "blob_name": blob, "mode": "replace", "confirm": "shop" });

    // PostgreSQL: the worker dies between the two renames; `shop` is gone for a moment.
    let mut app = App::start_with(&az.connection_string, &manifest, &[lease, crash])?;
    let api = Api::signed_in(&app, "admin").await?;
    let pg_rid =
        api.post("/api/backups/restore", replace(&blobs[0])).await?["restore_id"].as_str().unwrap().to_string();
    ensure!(app.exited_within(Duration::from_secs(120)), "the worker was to die mid-swap");
    ensure!(pg.sql("postgres", "SELECT count(*) FROM pg_database WHERE datname = 'shop'")?.trim() == "0");

    // MariaDB, with the next worker (which finishes the PostgreSQL swap first): it dies right after the
    // tables moved, before the views, triggers and routines are re-created.
    let mut app = App::start_with(&az.connection_string, &manifest, &[lease, crash])?;
    let api = Api::signed_in(&app, "admin").await?;
    let done = api.wait_restore(&pg_rid, Duration::from_secs(180)).await?;
    ensure!(done["status"] == "completed" && done["attempts"] == 2, "{done}");
    let previous = done["previous_copy"].as_str().unwrap().to_string();
    let rows = |db: &str| pg.sql(db, "SELECT count(*) FROM t").map(|s| s.trim().to_string());
    ensure!(rows("shop")? == "1000" && rows(&previous)? == "990", "the swap was finished, nothing lost");
    ensure!(
        pg.sql("postgres", "SELECT count(*) FROM pg_database WHERE datname LIKE 'shop\\_restoring%'")?.trim() == "0"
    );
    let maria_rid =
        api.post("/api/backups/restore", replace(&blobs[1])).await?["restore_id"].as_str().unwrap().to_string();
    ensure!(app.exited_within(Duration::from_secs(120)), "the worker was to die mid-swap");
    let objects = |db: &str| {
        maria.sql(
            "",
            &format!(
                "SELECT (SELECT COUNT(*) FROM information_schema.triggers WHERE trigger_schema = '{db}') + \
                 (SELECT COUNT(*) FROM information_schema.views WHERE table_schema = '{db}') + \
                 (SELECT COUNT(*) FROM information_schema.routines WHERE routine_schema = '{db}')"
            ),
        )
    };
    ensure!(objects("shop")?.trim() != "3", "the crash came before the objects were re-created");

    let app = App::start_with(&az.connection_string, &manifest, &[lease])?;
    let api = Api::signed_in(&app, "viewer").await?;
    let done = api.wait_restore(&maria_rid, Duration::from_secs(180)).await?;
    ensure!(done["status"] == "completed" && done["attempts"] == 2, "{done}");
    let previous = done["previous_copy"].as_str().unwrap().to_string();
    let rows = |db: &str| maria.sql(db, "SELECT COUNT(*) FROM t").map(|s| s.trim().to_string());
    ensure!(rows("shop")? == "1000" && rows(&previous)? == "990", "the swap was finished, nothing lost");
    ensure!(objects("shop")?.trim() == "3" && objects(&previous)?.trim() == "3", "views, triggers, routines on both");
    let left = maria.sql("", "SHOW DATABASES LIKE 'shop\\_restoring%'")?;
    ensure!(left.trim().is_empty(), "the copy's database is gone: {left}");
    let marks = "SELECT COUNT(*) FROM information_schema.tables WHERE table_name = '_dilux_restore_in_progress'";
    ensure!(maria.sql("", marks)?.trim() == "0", "no swap state is left");
    drop(app);
    Ok(())
}
