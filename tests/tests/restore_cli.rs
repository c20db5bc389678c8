//! Restores, through the app (a job its worker runs) and with the app gone (`dilux-restore`, from the
//! storage account or a downloaded file): a backup comes back into a new database identical to the
//! original, and nothing is kept when the backup is not the one recorded, the target already exists,
//! or the server rejects it half-way.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use anyhow::Result;
use chrono::Utc;
use dilux_dumper_host::storage::Storage;
use dilux_e2e::{said, Api, App, Azurite, Mariadb, Postgres};
use reqwest::Method as M;
use serde_json::json;

const PG_PASSWORD: &str = "pg-Rest0re-s3cret!";
const MARIA_PASSWORD: &str = "maria-Rest0re-s3cret\"'";

/// Emoji, every byte value, NULLs, quotes and backslashes, a view, a trigger and a function.
const PG_SCHEMA: &str = r#"
CREATE TABLE items (id integer PRIMARY KEY, name text NOT NULL, data bytea, note text);
INSERT INTO items SELECT g, 'item ' || g || ' 🦀🎉 ñandú', decode(lpad(to_hex(g % 256), 2, '0') || '00ff', 'hex'),
  CASE WHEN g % 7 = 0 THEN NULL ELSE E'line\nbreak \\ back ''q'' "dq" ' || g END FROM generate_series(1, 3000) g;
CREATE TABLE audit (id serial PRIMARY KEY, item integer, at_name text);
CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN INSERT INTO audit (item, at_name) VALUES (NEW.id, NEW.name); RETURN NEW; END $$;
CREATE TRIGGER items_touch AFTER UPDATE ON items FOR EACH ROW EXECUTE FUNCTION touch();
UPDATE items SET name = name || '!' WHERE id <= 10;
CREATE VIEW named AS SELECT id, name FROM items WHERE note IS NOT NULL;
"#;

const MARIA_SCHEMA: &str = r#"
SET SESSION max_recursive_iterations = 100000;
CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(200) CHARACTER SET utf8mb4 NOT NULL, data BLOB,
  note TEXT CHARACTER SET utf8mb4) ENGINE=InnoDB;
INSERT INTO items WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < 3000)
  SELECT g, CONCAT('item ', g, ' 🦀🎉 ñandú'), UNHEX(CONCAT(LPAD(HEX(g % 256), 2, '0'), '00ff')),
  IF(g % 7 = 0, NULL, CONCAT('line\nbreak \\ back ''q'' "dq" ', g)) FROM s;
CREATE TABLE audit (id INT AUTO_INCREMENT PRIMARY KEY, item INT) ENGINE=InnoDB;
CREATE TRIGGER items_touch AFTER UPDATE ON items FOR EACH ROW INSERT INTO audit (item) VALUES (NEW.id);
UPDATE items SET name = CONCAT(name, '!') WHERE id <= 10;
CREATE VIEW named AS SELECT id, name FROM items WHERE note IS NOT NULL;
CREATE PROCEDURE item_count(OUT n INT) SELECT COUNT(*) INTO n FROM items;
CREATE EVENT nightly ON SCHEDULE EVERY 1 DAY DISABLE DO DELETE FROM audit WHERE id < 0;
"#;

/// Each table's row count and content digest, and the names of views, triggers and routines.
fn pg_fingerprint(pg: &Postgres, db: &str) -> Result<String> {
    let mut out = String::new();
    for t in ["items", "audit"] {
        let sql =
            format!("SELECT '{t}', count(*), md5(coalesce(string_agg(x::text, '|' ORDER BY x.id), '')) FROM {t} x");
        out += &pg.sql(db, &sql)?;
    }
    let objects = "SELECT string_agg(n, ',' ORDER BY n) FROM (SELECT viewname AS n FROM pg_views WHERE schemaname = \
        'public' UNION SELECT tgname FROM pg_trigger WHERE NOT tgisinternal UNION SELECT proname FROM pg_proc \
        WHERE pronamespace = 'public'::regnamespace) o";
    out += &pg.sql(db, objects)?;
    Ok(out)
}

fn maria_fingerprint(m: &Mariadb, db: &str) -> Result<String> {
    let mut out = String::new();
    for t in ["items", "audit"] {
        let sql = format!(
            "SELECT '{t}', COUNT(*), MD5(GROUP_CONCAT(CONCAT_WS('#', id, {cols}) ORDER BY id SEPARATOR '|')) FROM {t}",
            cols = if t == "items" { "name, HEX(data), IFNULL(note, 'NULL')" } else { "item" }
        );
        out += &m.sql(db, &format!("SET SESSION group_concat_max_len = 1 << 30; {sql}"))?;
    }
    let objects = format!(
        "SELECT GROUP_CONCAT(n ORDER BY n) FROM (SELECT table_name AS n FROM information_schema.views WHERE \
         table_schema = '{db}' UNION SELECT trigger_name FROM information_schema.triggers WHERE trigger_schema = \
         '{db}' UNION SELECT routine_name FROM information_schema.routines WHERE routine_schema = '{db}' UNION \
         SELECT event_name FROM information_schema.events WHERE event_schema = '{db}') o"
    );
    out += &m.sql(db, &objects)?;
    Ok(out)
}

/// Polls a requested restore until it is final.
async fn wait_restore(api: &Api, requested: &serde_json::Value) -> Result<serde_json::Value> {
    let id = requested["restore_id"].as_str().unwrap_or_else(|| panic!("no restore id: {requested}"));
    api.wait_restore(id, Duration::from_secs(120)).await
}

fn restore_bin() -> PathBuf {
    std::env::var("DILUX_HOST_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|_| dilux_e2e::target_dir().join("release/dilux-dumper-host"))
        .with_file_name("dilux-restore")
}

/// The flags naming a target server, user and new database.
fn target(engine: &str, port: u16, user: &str, db: &str) -> Vec<String> {
    let port = port.to_string();
    ["--engine", engine, "--host", "127.0.0.1", "--port", &port, "--user", user, "--database", db]
        .map(str::to_string)
        .to_vec()
}

/// Runs `dilux-restore` with the storage account and password in its environment only.
fn restore(conn: &str, password: &str, target: &[String], source: &[&str]) -> Output {
    Command::new(restore_bin())
        .args(target)
        .args(source)
        .env("DILUX_STORAGE_CONNECTION_STRING", conn)
        .env("DILUX_RESTORE_PASSWORD", password)
        .output()
        .expect("dilux-restore runs")
}

/// Replaces a blob's content with `content`, keeping its metadata (so its recorded SHA-256 stays).
async fn overwrite(storage: &Storage, name: &str, content: Vec<u8>) -> Result<()> {
    use dilux_azure::blob;
    let a = &storage.account;
    let props =
        blob::parse_properties(storage.send("props", blob::get_properties(a, Utc::now(), "backups", name)).await?)?;
    let id = blob::block_id(&blob::attempt_prefix(), 0);
    storage.send("block", blob::put_block(a, Utc::now(), "backups", name, &id, content)).await?.check("put block")?;
    let commit = blob::put_block_list(a, Utc::now(), "backups", name, &[id], "application/gzip", &props.metadata, true);
    storage.send("commit", commit).await?.check("put block list")?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backups_restore_with_the_app_gone_and_nothing_bad_is_kept() -> Result<()> {
    let az = std::thread::spawn(Azurite::start);
    let pg = std::thread::spawn(|| Postgres::start(PG_PASSWORD));
    let maria = std::thread::spawn(Mariadb::start);
    let pg17 = std::thread::spawn(|| Postgres::start_version(PG_PASSWORD, 17));
    let (az, pg, maria) = (az.join().unwrap()?, pg.join().unwrap()?, maria.join().unwrap()?);
    let pg17 = pg17.join().unwrap()?;
    pg.sql("postgres", "CREATE DATABASE shop")?;
    pg.sql("shop", PG_SCHEMA)?;
    maria.database_and_admin("shop", MARIA_PASSWORD)?;
    maria.sql("shop", MARIA_SCHEMA)?;

    // Back both up through the app, then take the app away.
    let (pg_blob, pg_sha, maria_blob, maria_sha) = {
        let app = App::start(&az.connection_string)?;
        let api = Api::signed_in(&app, "admin").await?;
        let mut out = vec![];
        for (engine, port, user) in
            [("postgresql", pg.port, ("postgres", PG_PASSWORD)), ("mysql", maria.port, ("dilux", MARIA_PASSWORD))]
        {
            let done = api.backed_up(engine, port, user, "shop", None).await?;
            out.push((done["blob_name"].as_str().unwrap().to_string(), done["sha256"].as_str().unwrap().to_string()));
        }

        // Each dump's manifest, tallied from the stream, holds every table's exact count(*) at backup time
        // (rows with emoji, binary, NULLs, quotes, backslashes and newlines included).
        let storage = Storage::new(dilux_azure::Account::from_connection_string(&az.connection_string)?);
        let count = |sql: String| sql.trim().parse::<u64>().unwrap();
        let pg_counts =
            vec![("public.audit", count(pg.sql("shop", "SELECT count(*) FROM audit")?)), ("public.items", 3000)];
        let maria_counts = vec![("audit", count(maria.sql("shop", "SELECT COUNT(*) FROM audit")?)), ("items", 3000)];
        assert_eq!(pg_counts[0].1, 10, "the trigger wrote rows");
        for ((blob_name, _), counts) in out.iter().zip([pg_counts, maria_counts]) {
            let sidecar = format!("{blob_name}.manifest.json");
            let get = dilux_azure::blob::get_blob(&storage.account, Utc::now(), "backups", &sidecar);
            let m: serde_json::Value = serde_json::from_slice(&storage.send("get", get).await?.check("get")?.body)?;
            let tallied: Vec<(&str, u64)> = m["tables"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| (t["table"].as_str().unwrap(), t["rows"].as_u64().unwrap()))
                .collect();
            assert_eq!(tallied, counts, "{m}");
        }
        let files = api.call(M::GET, "/api/backups/files", None).await?.1;
        assert!(!files.to_string().contains(".manifest.json"), "sidecars are not listed as backups: {files}");

        // Restores through the app: queued, run by its worker, followed in the restore history.
        let viewer = Api::signed_in(&app, "viewer").await?;
        let (s, _) = viewer.call(M::POST, "/api/backups/restore", Some(json!({ "blob_name": out[0].0 }))).await?;
        assert_eq!(s, 403, "viewers cannot restore");
        let pg_api = api.post("/api/backups/restore", json!({ "blob_name": out[0].0, "target_database": "shop_api" }));
        let pg_api = pg_api.await?;
        let maria_api = api.post("/api/backups/restore", json!({ "blob_name": out[1].0 })).await?;
        let done = wait_restore(&viewer, &pg_api).await?;
        assert_eq!(done["status"], "completed", "{done}");
        // Checked table by table against the manifest, like a drill.
        assert_eq!(done["verification"]["result"], "passed", "{done}");
        assert_eq!(done["verification"]["tables_checked"], 2, "{done}");
        assert_eq!(done["verification"]["rows_checked"], 3010, "{done}");
        assert_eq!(done["progress_bytes"], done["bytes_total"], "{done}");
        assert!(done["bytes_restored"].as_i64().unwrap() > done["bytes_total"].as_i64().unwrap(), "{done}");
        assert_eq!(pg_fingerprint(&pg, "shop_api")?, pg_fingerprint(&pg, "shop")?);
        let done = wait_restore(&viewer, &maria_api).await?;
        assert_eq!(done["status"], "completed", "{done}");
        assert_eq!(done["verification"]["result"], "passed", "{done}");
        assert_eq!(done["verification"]["rows_checked"], 3010, "{done}");
        let name = maria_api["target_database"].as_str().unwrap();
        assert!(name.starts_with("shop_restored_"), "{name}");
        assert_eq!(maria_fingerprint(&maria, name)?, maria_fingerprint(&maria, "shop")?);
        // Into a database that exists (not registered in the app): the job fails in the server's words,
        // and that database is left as it was.
        let before = pg_fingerprint(&pg, "shop_api")?;
        let again = api.post("/api/backups/restore", json!({ "blob_name": out[0].0, "target_database": "shop_api" }));
        let done = wait_restore(&viewer, &again.await?).await?;
        assert_eq!(done["status"], "failed", "{done}");
        assert!(done["error_message"].as_str().unwrap().contains("already exists"), "{done}");
        assert_eq!(pg_fingerprint(&pg, "shop_api")?, before);
        let list = viewer.call(M::GET, "/api/restores", None).await?.1;
        assert_eq!(list["count"], 3, "{list}");

        // Replace the original (PostgreSQL): admins only, with its name typed; the original is kept aside
        // under the reported name, and the database now holds the backup's content again.
        let at_backup = pg_fingerprint(&pg, "shop")?;
        pg.sql("shop", "DELETE FROM items WHERE id > 2990; INSERT INTO audit (item, at_name) VALUES (-1, 'late');")?;
        let changed = pg_fingerprint(&pg, "shop")?;
        assert_ne!(changed, at_backup);
        let replace = json!({ "blob_name": out[0].0, "mode": "replace", "confirm": "shop" });
        let operator = Api::signed_in(&app, "operator").await?;
        assert_eq!(operator.call(M::POST, "/api/backups/restore", Some(replace.clone())).await?.0, 403);
        let wrong = json!({ "blob_name": out[0].0, "mode": "replace", "confirm": "shop2" });
        assert_eq!(api.call(M::POST, "/api/backups/restore", Some(wrong)).await?.0, 400);
        let (s, requested) = api.call(M::POST, "/api/backups/restore", Some(replace)).await?;
        assert_eq!(s, 202, "{requested}");
        let done = wait_restore(&viewer, &requested).await?;
        assert_eq!(done["status"], "completed", "{done}");
        let previous = done["previous_copy"].as_str().unwrap().to_string();
        assert!(previous.starts_with("shop_before_restore_"), "{done}");
        assert_eq!(pg_fingerprint(&pg, "shop")?, at_backup, "the original holds the backup's content");
        assert_eq!(pg_fingerprint(&pg, &previous)?, changed, "the previous copy is kept as it was");

        // MariaDB has no RENAME DATABASE: tables move in one atomic RENAME TABLE, and the views, triggers,
        // routines and events of each side are re-created where they belong (the fingerprint names them).
        let at_backup = maria_fingerprint(&maria, "shop")?;
        maria.sql("shop", "DELETE FROM items WHERE id > 2990; INSERT INTO audit (item) VALUES (-1);")?;
        let changed = maria_fingerprint(&maria, "shop")?;
        assert_ne!(changed, at_backup);
        let replace = json!({ "blob_name": out[1].0, "mode": "replace", "confirm": "shop" });
        let (s, requested) = api.call(M::POST, "/api/backups/restore", Some(replace)).await?;
        assert_eq!(s, 202, "{requested}");
        let done = wait_restore(&viewer, &requested).await?;
        assert_eq!(done["status"], "completed", "{done}");
        assert_eq!(done["verification"]["result"], "passed", "{done}");
        let previous = done["previous_copy"].as_str().unwrap().to_string();
        assert_eq!(maria_fingerprint(&maria, "shop")?, at_backup, "the original holds the backup's content");
        assert_eq!(maria_fingerprint(&maria, &previous)?, changed, "the previous copy is kept as it was");
        let staging = maria.sql("", "SHOW DATABASES LIKE 'shop\\_restoring\\_%'")?;
        assert!(staging.trim().is_empty(), "the restored copy's database is gone: {staging}");
        // A re-created trigger works in its new home (the previous copy: the original stays the backup's).
        maria.sql(&previous, "UPDATE items SET name = 'x' WHERE id = 1")?;
        assert_eq!(maria.sql(&previous, "SELECT COUNT(*) FROM audit WHERE item = 1")?.trim(), "2");

        (out[0].0.clone(), out[0].1.clone(), out[1].0.clone(), out[1].1.clone())
    };
    let conn = az.connection_string.as_str();
    let pg_target = |user: &str, db: &str| target("postgresql", pg.port, user, db);
    let maria_target = |db: &str| target("mysql", maria.port, "dilux", db);

    // PostgreSQL, from the storage account: every table, view, trigger and function comes back.
    let o = restore(conn, PG_PASSWORD, &pg_target("postgres", "shop_restored"), &["--blob", &pg_blob]);
    assert!(o.status.success(), "{}", said(&o));
    assert!(said(&o).contains("SHA-256 verified"), "{}", said(&o));
    assert!(said(&o).contains("content checked against the backup's manifest: 2 tables, 3010 rows"), "{}", said(&o));
    assert!(!said(&o).contains(PG_PASSWORD));
    assert_eq!(pg_fingerprint(&pg, "shop_restored")?, pg_fingerprint(&pg, "shop")?);

    // The PostgreSQL 15 backup onto a PostgreSQL 17 server (an upgrade path): psql 17 restores it.
    let o =
        restore(conn, PG_PASSWORD, &target("postgresql", pg17.port, "postgres", "shop_on_17"), &["--blob", &pg_blob]);
    assert!(o.status.success(), "{}", said(&o));
    assert_eq!(pg17.sql("postgres", "SHOW server_version_num")?.trim().parse::<u32>()? / 10_000, 17);
    assert_eq!(pg_fingerprint(&pg17, "shop_on_17")?, pg_fingerprint(&pg, "shop")?);

    // MariaDB, from a downloaded file checked against the recorded SHA-256: events and routines too.
    let file = dilux_e2e::tempdir("restore-file").join("shop.sql.gz");
    let storage = Storage::new(dilux_azure::Account::from_connection_string(conn)?);
    let get = dilux_azure::blob::get_blob(&storage.account, Utc::now(), "backups", &maria_blob);
    std::fs::write(&file, storage.send("get", get).await?.check("get blob")?.body)?;
    let file = file.to_str().unwrap();
    let o = restore(conn, MARIA_PASSWORD, &maria_target("shop_restored"), &["--file", file, "--sha256", &maria_sha]);
    assert!(o.status.success(), "{}", said(&o));
    assert_eq!(maria_fingerprint(&maria, "shop_restored")?, maria_fingerprint(&maria, "shop")?);
    // And from the storage account.
    let o = restore(conn, MARIA_PASSWORD, &maria_target("shop_again"), &["--blob", &maria_blob]);
    assert!(o.status.success(), "{}", said(&o));
    assert_eq!(maria_fingerprint(&maria, "shop_again")?, maria_fingerprint(&maria, "shop")?);

    // An existing database is never a target: refused, and left exactly as it was.
    let before = pg_fingerprint(&pg, "shop")?;
    let o = restore(conn, PG_PASSWORD, &pg_target("postgres", "shop"), &["--blob", &pg_blob]);
    assert!(!o.status.success());
    assert!(said(&o).contains("already exists"), "{}", said(&o));
    assert_eq!(pg_fingerprint(&pg, "shop")?, before);

    // A wrong file hash is named, and nothing is kept.
    let zeros = "0".repeat(64);
    let o = restore(conn, MARIA_PASSWORD, &maria_target("shop_wrong_hash"), &["--file", file, "--sha256", &zeros]);
    assert!(!o.status.success());
    assert!(said(&o).contains("SHA-256 mismatch"), "{}", said(&o));
    let left = maria.sql("", "SHOW DATABASES LIKE 'shop_wrong_hash'")?;
    assert!(left.trim().is_empty(), "the half-restored database is dropped: {left}");

    // A blob altered after the backup — still valid gzip, one row changed — restores nothing.
    let get = dilux_azure::blob::get_blob(&storage.account, Utc::now(), "backups", &pg_blob);
    let original = storage.send("get", get).await?.check("get blob")?.body;
    let sql = String::from_utf8(dilux_e2e::decompress(&original)?)?;
    assert!(sql.contains("ñandú!"), "the dump holds the rows");
    let altered = sql.replacen("ñandú!", "ñandú?", 1);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, altered.as_bytes())?;
    overwrite(&storage, &pg_blob, gz.finish()?).await?;
    let o = restore(conn, PG_PASSWORD, &pg_target("postgres", "shop_altered"), &["--blob", &pg_blob]);
    assert!(!o.status.success());
    assert!(said(&o).contains("SHA-256 mismatch") && said(&o).contains(&pg_sha), "{}", said(&o));
    assert!(said(&o).contains("nothing was kept"), "{}", said(&o));
    assert_eq!(pg.sql("postgres", "SELECT count(*) FROM pg_database WHERE datname = 'shop_altered'")?.trim(), "0");

    // A damaged blob (bytes flipped mid-stream) is named as altered too.
    let mut damaged = original.clone();
    let mid = damaged.len() / 2;
    damaged[mid] ^= 0xff;
    damaged[mid + 1] ^= 0x55;
    overwrite(&storage, &pg_blob, damaged).await?;
    let o = restore(conn, PG_PASSWORD, &pg_target("postgres", "shop_damaged"), &["--blob", &pg_blob]);
    assert!(!o.status.success());
    assert!(said(&o).contains("SHA-256 mismatch"), "{}", said(&o));
    assert_eq!(pg.sql("postgres", "SELECT count(*) FROM pg_database WHERE datname = 'shop_damaged'")?.trim(), "0");

    // A server that rejects the backup half-way (the objects' owner cannot be assumed by this user):
    // the tool's own words, and no half-restored database.
    overwrite(&storage, &pg_blob, original).await?;
    pg.sql("postgres", "CREATE ROLE limited LOGIN CREATEDB PASSWORD 'limited-pw-123'")?;
    let o = restore(conn, "limited-pw-123", &pg_target("limited", "shop_limited"), &["--blob", &pg_blob]);
    assert!(!o.status.success());
    assert!(said(&o).contains("the restore client failed") && said(&o).contains("ERROR"), "{}", said(&o));
    assert_eq!(pg.sql("postgres", "SELECT count(*) FROM pg_database WHERE datname = 'shop_limited'")?.trim(), "0");

    // Without a password in the environment and no terminal, it says how to give one.
    let o = Command::new("setsid")
        .arg(restore_bin())
        .args(maria_target("x"))
        .args(["--file", file])
        .env_remove("DILUX_RESTORE_PASSWORD")
        .stdin(std::process::Stdio::null())
        .output()?;
    assert!(!o.status.success());
    assert!(said(&o).contains("DILUX_RESTORE_PASSWORD"), "{}", said(&o));
    Ok(())
}
