//! A restore whose worker dies half-way: MariaDB has no transaction around a restore, so the killed
//! attempt leaves a half-filled database behind. The job comes back when its lease runs out; the
//! next attempt recognises its own leftover by the mark the restore put on it, drops it, and restores
//! everything — and the result is identical to the source.

use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use dilux_e2e::{Api, App, Azurite, Mariadb};
use reqwest::Method as M;
use serde_json::json;

const PASSWORD: &str = "maria-Recover-s3cret";

fn fingerprint(m: &Mariadb, db: &str) -> Result<String> {
    m.sql(db, "SELECT COUNT(*), SUM(CRC32(CONCAT(id, '#', payload))) FROM t")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_killed_half_way_is_started_over_and_completes() -> Result<()> {
    let az = std::thread::spawn(Azurite::start);
    let maria = Mariadb::start()?;
    let az = az.join().unwrap()?;
    maria.sql(
        "",
        &format!(
            "CREATE DATABASE big CHARACTER SET utf8mb4; CREATE USER 'dilux'@'127.0.0.1' IDENTIFIED BY '{PASSWORD}'; \
             GRANT ALL PRIVILEGES ON *.* TO 'dilux'@'127.0.0.1';"
        ),
    )?;
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
    let deadline = Instant::now() + Duration::from_secs(180);
    let done = loop {
        let (_, r) = api.call(M::GET, &format!("/api/restores/{rid}"), None).await?;
        if r["status"] == "completed" || r["status"] == "failed" {
            break r;
        }
        ensure!(Instant::now() < deadline, "the restore was not finished by the next worker: {r}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    ensure!(done["status"] == "completed" && done["attempts"] == 2, "{done}");
    ensure!(fingerprint(&maria, "big_copy")? == fingerprint(&maria, "big")?, "every row, once");
    let marks = "SELECT COUNT(*) FROM information_schema.tables WHERE table_name = '_dilux_restore_in_progress'";
    ensure!(maria.sql("", marks)?.trim() == "0", "the mark is gone once the restore finished");
    Ok(())
}
