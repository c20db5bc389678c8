//! Restore drills on a simulated clock, for both engines: a policy asking for them makes the drill tick
//! restore each database's newest backup into a scratch database, compare every table with the
//! backup's manifest (exact row counts and content digests tallied while the backup streamed), keep
//! the evidence on the backup and drop the scratch database. A backup altered so that one table lost a
//! row is reported with that table and the difference, and the failed drill raises an alert.

use std::time::Duration;

use anyhow::Result;
use chrono::{DateTime, Utc};
use dilux_azure::{blob, table};
use dilux_dumper_host::storage::Storage;
use dilux_e2e::{root, Api, App, Azurite, Mariadb, Postgres};
use reqwest::Method as M;
use serde_json::{json, Value};

const PG_PASSWORD: &str = "pg-Dr1ll-s3cret";
const MARIA_PASSWORD: &str = "maria-Dr1ll-s3cret'\"";

const PG_SCHEMA: &str = r#"
CREATE TABLE items (id integer PRIMARY KEY, name text NOT NULL, data bytea, note text);
INSERT INTO items SELECT g, 'item ' || g || ' 🦀', decode(lpad(to_hex(g % 256), 2, '0') || '00', 'hex'),
  CASE WHEN g % 5 = 0 THEN NULL ELSE E'tab\there \\ ''q''\nnext' END FROM generate_series(1, 500) g;
CREATE TABLE empty_one (id integer);
CREATE VIEW named AS SELECT id, name FROM items;
"#;

const MARIA_SCHEMA: &str = r#"
CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(100) CHARACTER SET utf8mb4, data BLOB, note TEXT);
INSERT INTO items WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < 500)
  SELECT g, CONCAT('item ', g, ' 🦀'), UNHEX(LPAD(HEX(g % 256), 2, '0')),
  IF(g % 5 = 0, NULL, 'paren ( and ); quote \' back \\ done') FROM s;
CREATE TABLE empty_one (id INT);
"#;

/// Replaces a backup blob (with its SHA-256 in the metadata) and the SHA-256 its history row records,
/// as a backup that was wrong from the start would be: only the manifest can tell.
async fn rewrite_backup(storage: &Storage, backup: &Value, sql: &str) -> Result<()> {
    let a = &storage.account;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, sql.as_bytes())?;
    let bytes = gz.finish()?;
    let sha = dilux_e2e::sha256_hex(&bytes);
    let name = backup["blob_name"].as_str().unwrap();
    let meta = vec![("sha256".to_string(), sha.clone())];
    let put = blob::put_blob(a, Utc::now(), "backups", name, "application/gzip", &meta, bytes);
    storage.send("put", put).await?.check("put blob")?;
    let created: DateTime<Utc> = backup["created_at"].as_str().unwrap().parse()?;
    let (pk, rk) = dilux_domain::backup::history_keys(created, backup["id"].as_str().unwrap());
    let got = storage.send("get", table::get_entity(a, Utc::now(), "backuphistory", &pk, &rk)).await?;
    let (mut e, etag) = table::parse_get_entity(got)?.expect("the history row exists");
    e.insert("sha256".into(), sha.into());
    let update = table::update_entity(a, Utc::now(), "backuphistory", &e, Some(&etag))?;
    table::parse_write(storage.send("update", update).await?, "update")?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drills_prove_each_backup_restores_and_name_what_does_not() -> Result<()> {
    let az = std::thread::spawn(Azurite::start);
    let pg = std::thread::spawn(|| Postgres::start(PG_PASSWORD));
    let maria = std::thread::spawn(Mariadb::start);
    let (az, pg, maria) = (az.join().unwrap()?, pg.join().unwrap()?, maria.join().unwrap()?);
    pg.sql("postgres", "CREATE DATABASE shop")?;
    pg.sql("shop", PG_SCHEMA)?;
    maria.database_and_admin("shop", MARIA_PASSWORD)?;
    maria.sql("shop", MARIA_SCHEMA)?;
    let app = App::start_with(
        &az.connection_string,
        &root().join("spin.toml"),
        &[("SPIN_VARIABLE_ALLOW_CLOCK_OVERRIDE", "true"), ("DILUX_TICKS", "off"), ("DILUX_WORKER_IDLE_POLL_MS", "50")],
    )?;
    let api = Api::signed_in(&app, "admin").await?;

    // A policy asking for a drill every day; bad drill settings are refused by name.
    let bad = json!({ "name": "x", "daily": { "enabled": true, "keep_count": 3, "time": "02:00" },
        "verification": { "every_days": 0 } });
    let (s, v) = api.call(M::POST, "/api/backup-policies", Some(bad)).await?;
    assert_eq!((s, v["error"]["field"].as_str()), (400, Some("verification.every_days")), "{v}");
    let policy = api
        .post(
            "/api/backup-policies",
            json!({ "name": "Drilled daily", "daily": { "enabled": true, "keep_count": 3, "time": "02:00" },
                "verification": { "every_days": 1 } }),
        )
        .await?;
    assert_eq!(policy["verification"]["every_days"], 1, "{policy}");
    let mut backups = vec![];
    for (engine, port, user) in
        [("postgresql", pg.port, ("postgres", PG_PASSWORD)), ("mysql", maria.port, ("dilux", MARIA_PASSWORD))]
    {
        let done = api.backed_up(engine, port, user, "shop", policy["id"].as_str()).await?;
        // The manifest was tallied from the stream: 2 tables (one empty), 500 rows.
        assert_eq!((done["manifest_tables"].as_u64(), done["manifest_rows"].as_u64()), (Some(2), Some(500)), "{done}");
        backups.push(done);
    }

    // Day 1: both databases are drilled; the evidence is on the backups; the scratch databases are gone.
    let t0 = Utc::now();
    let r = app.tick("drills", Some(t0)).await?;
    assert_eq!(r["queued"], 2, "{r}");
    assert_eq!(app.tick("drills", Some(t0)).await?["queued"], 0, "a drill in flight is not queued twice");
    let drills = api.drills_done(2).await?;
    for d in &drills {
        assert_eq!(d["status"], "completed", "{d}");
        assert_eq!(d["verification"]["result"], "passed", "{d}");
        let v = &d["verification"];
        assert_eq!((v["tables_checked"].as_u64(), v["rows_checked"].as_u64()), (Some(2), Some(500)), "{d}");
        assert!(d["verification"]["restore_seconds"].as_f64().unwrap() > 0.0, "{d}");
        assert!(d["target_database"].as_str().unwrap().starts_with("shop_drill_"), "{d}");
    }
    assert_eq!(pg.sql("postgres", "SELECT count(*) FROM pg_database WHERE datname LIKE 'shop_drill%'")?.trim(), "0");
    assert!(maria.sql("", "SHOW DATABASES LIKE 'shop_drill%'")?.trim().is_empty(), "the scratch database is dropped");
    let r = app.tick("drills", Some(t0 + chrono::Duration::minutes(5))).await?;
    assert_eq!((r["queued"].as_u64(), r["up_to_date"].as_u64()), (Some(0), Some(2)), "{r}");
    let status = api.call(M::GET, "/api/system-status", None).await?.1;
    let rows = status["drills"]["databases"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{status}");
    for row in rows {
        assert_eq!(row["last_result"], "passed", "{row}");
        assert!(row["rto_seconds"].as_f64().unwrap() > 0.0 && row["last_verified_restore"].is_string(), "{row}");
    }
    assert!(!status["alerts"].as_array().unwrap().iter().any(|a| a["kind"] == "restore_drill"), "{status}");
    let viewer = Api::signed_in(&app, "viewer").await?;
    let pg_backup = &backups[0];
    let path = format!("/api/backups/{}/verification", pg_backup["id"].as_str().unwrap());
    let (s, v) = viewer.call(M::GET, &path, None).await?;
    assert_eq!(s, 200, "{v}");
    let tables: Vec<(&str, u64)> = v["manifest"]["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["table"].as_str().unwrap(), t["rows"].as_u64().unwrap()))
        .collect();
    assert_eq!(tables, vec![("public.empty_one", 0), ("public.items", 500)], "{v}");
    assert_eq!(v["latest"]["result"], "passed", "{v}");
    assert_eq!(v["latest"]["purpose"], "drill", "{v}");
    assert!(v["latest"]["server_version"].as_str().unwrap().starts_with(char::is_numeric), "{v}");
    let of_db = format!("/api/backups?database_id={}", pg_backup["database_id"].as_str().unwrap());
    let listed = api.call(M::GET, &of_db, None).await?.1;
    assert_eq!(listed["backups"][0]["last_verification"]["result"], "passed", "{listed}");
    assert_eq!(api.call(M::GET, "/api/backups/nope/verification", None).await?.0, 404);

    // A backup that lost one row of `items` (its SHA-256 re-recorded, so only the manifest can tell):
    // the next day's drill fails naming the table and the difference, and the alert is raised.
    let storage = Storage::new(dilux_azure::Account::from_connection_string(&az.connection_string)?);
    let get = blob::get_blob(&storage.account, Utc::now(), "backups", pg_backup["blob_name"].as_str().unwrap());
    let sql = String::from_utf8(dilux_e2e::decompress(&storage.send("get", get).await?.check("get")?.body)?)?;
    let row = sql.lines().find(|l| l.starts_with("42\t")).expect("row 42 is in the COPY block").to_string();
    rewrite_backup(&storage, pg_backup, &sql.replacen(&format!("{row}\n"), "", 1)).await?;
    let t1 = t0 + chrono::Duration::days(1) + chrono::Duration::minutes(1);
    assert_eq!(app.tick("drills", Some(t1)).await?["queued"], 2);
    let drills = api.drills_done(4).await?;
    let failed: Vec<&Value> = drills.iter().filter(|d| d["status"] == "failed").collect();
    assert_eq!(failed.len(), 1, "only the altered backup fails: {drills:?}");
    let f = failed[0];
    assert_eq!(f["error_class"], "Corrupt", "{f}");
    let mismatch = &f["verification"]["mismatches"][0];
    assert_eq!(mismatch["table"], "public.items", "{f}");
    assert_eq!((mismatch["expected_rows"].as_u64(), mismatch["actual_rows"].as_u64()), (Some(500), Some(499)));
    assert!(f["error_message"].as_str().unwrap().contains("499 rows restored, 500 in the backup (1 missing)"), "{f}");
    assert_eq!(pg.sql("postgres", "SELECT count(*) FROM pg_database WHERE datname LIKE 'shop_drill%'")?.trim(), "0");
    app.tick("drills", Some(t1 + chrono::Duration::minutes(5))).await?;
    let status = api.call(M::GET, "/api/system-status", None).await?.1;
    let alert = status["alerts"].as_array().unwrap().iter().find(|a| a["kind"] == "restore_drill").cloned();
    let alert = alert.unwrap_or_else(|| panic!("a failed drill raises the alert: {status}"));
    assert_eq!(alert["database_id"], pg_backup["database_id"], "{alert}");
    assert!(alert["message"].as_str().unwrap().contains("public.items: 499 rows restored"), "{alert}");
    assert_eq!(status["status"], "degraded", "{status}");
    let v = viewer.call(M::GET, &path, None).await?.1;
    assert_eq!(v["latest"]["result"], "failed", "{v}");
    assert_eq!(v["history"].as_array().unwrap().len(), 2, "{v}");

    // Replacing the original with that backup: the copy is checked before the swap, so the original stays.
    let before = pg.sql("shop", "SELECT count(*), md5(string_agg(name, ',' ORDER BY id)) FROM items")?;
    let replace = json!({ "blob_name": pg_backup["blob_name"], "mode": "replace", "confirm": "shop" });
    let (s, requested) = api.call(M::POST, "/api/backups/restore", Some(replace)).await?;
    assert_eq!(s, 202, "{requested}");
    let done = api.wait_restore(requested["restore_id"].as_str().unwrap(), Duration::from_secs(120)).await?;
    assert_eq!(done["status"], "failed", "{done}");
    let said = done["error_message"].as_str().unwrap();
    assert!(said.contains("differs from the backup") && said.contains("`shop` is unchanged"), "{done}");
    assert!(done["previous_copy"].is_null(), "{done}");
    assert_eq!(pg.sql("shop", "SELECT count(*), md5(string_agg(name, ',' ORDER BY id)) FROM items")?, before);
    let left = "SELECT count(*) FROM pg_database WHERE datname LIKE 'shop\\_%'";
    assert_eq!(pg.sql("postgres", left)?.trim(), "0", "neither the copy nor a previous copy is left");

    // A block of the stored backup overwritten (its recorded SHA-256 left as it was): the replace stops
    // on the hash before anything is swapped, and names it.
    let name = pg_backup["blob_name"].as_str().unwrap();
    let get = blob::get_blob(&storage.account, Utc::now(), "backups", name);
    let mut bytes = storage.send("get", get).await?.check("get")?.body;
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x5a;
    let meta = vec![("sha256".to_string(), dilux_e2e::sha256_hex(b"not these bytes"))];
    storage
        .send("put", blob::put_blob(&storage.account, Utc::now(), "backups", name, "application/gzip", &meta, bytes))
        .await?
        .check("put blob")?;
    let replace = json!({ "blob_name": name, "mode": "replace", "confirm": "shop" });
    let (s, requested) = api.call(M::POST, "/api/backups/restore", Some(replace)).await?;
    assert_eq!(s, 202, "{requested}");
    let done = api.wait_restore(requested["restore_id"].as_str().unwrap(), Duration::from_secs(120)).await?;
    assert_eq!(done["error_class"], "Corrupt", "{done}");
    assert!(done["error_message"].as_str().unwrap().contains("SHA-256 mismatch"), "{done}");
    assert_eq!(pg.sql("shop", "SELECT count(*), md5(string_agg(name, ',' ORDER BY id)) FROM items")?, before);
    assert_eq!(pg.sql("postgres", left)?.trim(), "0", "nothing half-restored is left");
    Ok(())
}
