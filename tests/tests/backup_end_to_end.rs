//! The spine, end to end and through the HTTP API only: register servers and databases, back them
//! up (zstd by default, then on a gzip policy), download through the SAS link, restore into fresh databases
//! (with the clients, and with the product), and compare every table.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use dilux_e2e::{
    decompress, process_command_lines, process_environments, sha256_hex, Api, App, Azurite, Mariadb, Postgres,
};
use serde_json::json;

const PG_SUPER_PASSWORD: &str = "pg-Sup3r-s3cret!";
const MARIA_PASSWORD: &str = "maria-B4ckup-s3cret\"'";
const WRONG_PASSWORD: &str = "definitely-wrong-pw-42";

/// Both servers get the same logical content: emoji text, every byte value in binary columns, NULLs,
/// and a table big enough that a dump takes long enough to be seen in a process listing.
const PG_SCHEMA: &str = r#"
CREATE TABLE items (id integer PRIMARY KEY, name text NOT NULL, data bytea, price numeric(12,2), note text);
INSERT INTO items SELECT g, 'item ' || g || ' 🦀🎉 ñandú', decode(lpad(to_hex(g % 256), 2, '0') || '00ff7f80', 'hex'),
  g * 1.25, CASE WHEN g % 7 = 0 THEN NULL ELSE 'emoji 😀 row ' || g END FROM generate_series(1, 5000) g;
INSERT INTO items VALUES (0, 'all bytes',
  (SELECT string_agg(lpad(to_hex(b), 2, '0'), '') FROM generate_series(0,255) b)::text::bytea, 0,
  E'tab\tquote''s "dq" \\ backslash');
UPDATE items SET data = decode((SELECT string_agg(lpad(to_hex(b), 2, '0'), '') FROM generate_series(0,255) b), 'hex')
  WHERE id = 0;
CREATE TABLE big (id bigint PRIMARY KEY, payload text);
INSERT INTO big SELECT g, md5(g::text) || md5((g * 7)::text) || md5((g * 13)::text) FROM generate_series(1, 600000) g;
CREATE VIEW expensive AS SELECT * FROM items WHERE price > 100;
"#;

const MARIA_SCHEMA: &str = r#"
SET SESSION max_recursive_iterations = 1000000;
CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(200) CHARACTER SET utf8mb4 NOT NULL, data BLOB,
  price DECIMAL(12,2), note TEXT CHARACTER SET utf8mb4) ENGINE=InnoDB;
INSERT INTO items WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < 5000)
  SELECT g, CONCAT('item ', g, ' 🦀🎉 ñandú'), UNHEX(CONCAT(LPAD(HEX(g % 256), 2, '0'), '00ff7f80')), g * 1.25,
  IF(g % 7 = 0, NULL, CONCAT('emoji 😀 row ', g)) FROM s;
INSERT INTO items WITH RECURSIVE b(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM b WHERE x < 255)
  SELECT 0, 'all bytes', (SELECT GROUP_CONCAT(CHAR(x) ORDER BY x SEPARATOR '') FROM b), 0,
  'tab\tquote''s "dq" \\ backslash';
CREATE TABLE big (id BIGINT PRIMARY KEY, payload TEXT) ENGINE=InnoDB;
INSERT INTO big WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < 300000)
  SELECT g, CONCAT(MD5(g), MD5(g * 7), MD5(g * 13)) FROM s;
CREATE TRIGGER items_touch BEFORE UPDATE ON items FOR EACH ROW SET NEW.note = CONCAT(IFNULL(NEW.note, ''), '*');
"#;

fn pg_fingerprint(pg: &Postgres, db: &str) -> Result<Vec<String>> {
    let tables = pg.sql(db, "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")?;
    let mut out = vec![format!("tables: {}", tables.trim().replace('\n', ","))];
    for t in tables.lines() {
        out.push(
            pg.sql(
                db,
                &format!(
                    "SELECT '{t}', count(*), md5(coalesce(string_agg(x::text, '|' ORDER BY x.id), '')) FROM {t} x"
                ),
            )?
            .trim()
            .to_string(),
        );
    }
    out.push(
        pg.sql(
            db,
            "SELECT 'views', string_agg(viewname, ',' ORDER BY viewname) FROM pg_views WHERE schemaname = 'public'",
        )?
        .trim()
        .to_string(),
    );
    Ok(out)
}

fn maria_fingerprint(m: &Mariadb, db: &str) -> Result<Vec<String>> {
    let tables =
        m.sql(db, "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE() ORDER BY 1")?;
    let mut out = vec![format!("tables: {}", tables.trim().replace('\n', ","))];
    for t in tables.lines() {
        let cols = m.sql(
            db,
            &format!(
                "SELECT GROUP_CONCAT(CONCAT('IFNULL(HEX(`', column_name, '`), ''NULL'')') ORDER BY ordinal_position) \
                 FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = '{t}'"
            ),
        )?;
        out.push(
            m.sql(
                db,
                &format!(
                    "SET SESSION group_concat_max_len = 1073741824; SELECT '{t}', COUNT(*), \
                     MD5(IFNULL(GROUP_CONCAT(CONCAT_WS(',', {}) ORDER BY id SEPARATOR '|'), '')) FROM `{t}`",
                    cols.trim()
                ),
            )?
            .trim()
            .to_string(),
        );
    }
    out.push(
        m.sql(
            db,
            "SELECT 'triggers', GROUP_CONCAT(trigger_name) FROM information_schema.triggers \
             WHERE trigger_schema = DATABASE()",
        )?
        .trim()
        .to_string(),
    );
    Ok(out)
}

/// Watches process listings in the background, recording whether the dump tool was seen and whether
/// any command line contained a secret.
struct PsWatch {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<(usize, Vec<String>)>,
}

impl PsWatch {
    fn start(tool: &'static str, secrets: Vec<String>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let handle = std::thread::spawn(move || {
            let (mut seen, mut leaks) = (0, Vec::new());
            while !s.load(Ordering::Relaxed) {
                for line in process_command_lines() {
                    if line.contains(tool) {
                        seen += 1;
                    }
                    if secrets.iter().any(|x| line.contains(x.as_str())) {
                        leaks.push(line);
                    }
                }
                // The tool's environment holds what it needs, never the host's own settings and keys.
                for (line, env) in process_environments() {
                    if line.contains(tool) && (env.contains("SPIN_VARIABLE_") || env.contains("DILUX_")) {
                        leaks.push(format!("{line}: environment {env}"));
                    }
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            (seen, leaks)
        });
        PsWatch { stop, handle }
    }

    fn finish(self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backups_restore_identically_and_failures_are_classified() -> Result<()> {
    // Servers start in parallel: each takes a few seconds.
    let az = std::thread::spawn(Azurite::start);
    let pg = std::thread::spawn(|| Postgres::start(PG_SUPER_PASSWORD));
    let maria = std::thread::spawn(Mariadb::start);
    let az = az.join().unwrap()?;
    let pg = pg.join().unwrap()?;
    let maria = maria.join().unwrap()?;
    // A 2-second lease: dumps outlive it, so they only finish once because the worker renews it.
    let app = App::start_with(
        &az.connection_string,
        &dilux_e2e::root().join("spin.toml"),
        &[("DILUX_WORKER_LEASE_SECS", "2")],
    )?;

    pg.sql("postgres", "CREATE DATABASE shop")?;
    pg.sql("shop", PG_SCHEMA)?;
    maria.sql(
        "",
        &format!(
            "CREATE DATABASE shop CHARACTER SET utf8mb4; CREATE USER 'dilux'@'127.0.0.1' IDENTIFIED BY '{}'; \
         GRANT SELECT, SHOW VIEW, TRIGGER, LOCK TABLES, EVENT ON shop.* TO 'dilux'@'127.0.0.1';",
            MARIA_PASSWORD.replace('\'', "''")
        ),
    )?;
    maria.sql("shop", MARIA_SCHEMA)?;

    let api = Api::signed_in(&app, "admin").await?;
    let (s, health) = api.call(reqwest::Method::GET, "/api/health", None).await?;
    assert_eq!((s, health["status"].as_str()), (200, Some("healthy")));

    let pg_engine = api
        .post(
            "/api/engines",
            json!({"name": "Local PostgreSQL", "engine_type": "postgresql", "host": "127.0.0.1",
        "port": pg.port, "username": "postgres", "password": PG_SUPER_PASSWORD}),
        )
        .await?;
    assert_eq!(pg_engine["has_password"], true);
    assert!(!pg_engine.to_string().contains(PG_SUPER_PASSWORD), "engine responses never carry the password");
    let maria_engine = api
        .post(
            "/api/engines",
            json!({"name": "Local MariaDB", "engine_type": "mysql", "host": "127.0.0.1",
        "port": maria.port, "username": "dilux", "password": MARIA_PASSWORD}),
        )
        .await?;

    let pg_db =
        api.post("/api/databases", json!({"engine_id": pg_engine["id"], "name": "shop", "alias": "Shop (PG)"})).await?;
    let maria_db = api
        .post("/api/databases", json!({"engine_id": maria_engine["id"], "name": "shop", "alias": "Shop (MariaDB)"}))
        .await?;
    let bad_db = api
        .post(
            "/api/databases",
            json!({"engine_id": pg_engine["id"], "name": "postgres", "alias": "wrong password",
        "use_engine_credentials": false, "username": "postgres", "password": WRONG_PASSWORD}),
        )
        .await?;
    let listed = api.call(reqwest::Method::GET, "/api/databases", None).await?.1;
    assert_eq!(listed["total"], 3);
    for secret in [PG_SUPER_PASSWORD, MARIA_PASSWORD, WRONG_PASSWORD] {
        assert!(!listed.to_string().contains(secret), "database listings never carry passwords");
    }

    // Both real backups at once, with process listings watched for secrets the whole time.
    let secrets = vec![PG_SUPER_PASSWORD.to_string(), MARIA_PASSWORD.to_string(), WRONG_PASSWORD.to_string()];
    let pg_watch = PsWatch::start("pg_dump", secrets.clone());
    let maria_watch = PsWatch::start("mariadb-dump", secrets);
    let pg_job = api.post(&format!("/api/databases/{}/backup", pg_db["id"].as_str().unwrap()), json!({})).await?;
    let maria_job = api.post(&format!("/api/databases/{}/backup", maria_db["id"].as_str().unwrap()), json!({})).await?;
    assert_eq!(pg_job["status"], "pending");
    let pg_row = api
        .wait_final(pg_db["id"].as_str().unwrap(), pg_job["backup_id"].as_str().unwrap(), Duration::from_secs(180))
        .await?;
    let maria_row = api
        .wait_final(
            maria_db["id"].as_str().unwrap(),
            maria_job["backup_id"].as_str().unwrap(),
            Duration::from_secs(180),
        )
        .await?;
    let (pg_seen, pg_leaks) = pg_watch.finish();
    let (maria_seen, maria_leaks) = maria_watch.finish();
    assert_eq!(pg_row["status"], "completed", "PostgreSQL backup: {pg_row}");
    assert_eq!(maria_row["status"], "completed", "MariaDB backup: {maria_row}");
    assert_eq!(
        (pg_row["attempts"].as_u64(), maria_row["attempts"].as_u64()),
        (Some(1), Some(1)),
        "leases were renewed: each job ran once"
    );
    assert!(pg_row["duration_seconds"].as_f64().unwrap() > 0.0);
    assert!(
        pg_seen > 0 && maria_seen > 0,
        "the dump tools were never seen running (pg {pg_seen}, maria {maria_seen}): the listing check proved nothing"
    );
    assert!(
        pg_leaks.is_empty() && maria_leaks.is_empty(),
        "a password appeared in a process listing: {pg_leaks:?} {maria_leaks:?}"
    );

    // Download through the SAS link, verify integrity, restore into fresh databases, compare.
    for (row, engine) in [(&pg_row, "postgresql"), (&maria_row, "mysql")] {
        let blob = row["blob_name"].as_str().unwrap();
        assert!(
            blob.starts_with(&format!("{engine}/{}/", row["database_id"].as_str().unwrap()))
                && blob.ends_with(".sql.zst"),
            "zstd by default: {blob}"
        );
        assert_eq!(row["file_format"], "sql.zst");
        let (link, bytes) = api.download(blob).await?;
        assert_eq!(bytes.len() as u64, row["file_size_bytes"].as_u64().unwrap(), "stored size matches history");
        assert_eq!(sha256_hex(&bytes), row["sha256"].as_str().unwrap(), "stored SHA-256 matches history");
        assert_eq!(link["sha256"], row["sha256"]);
        let sql = decompress(&bytes)?;
        assert_eq!(sql.len() as u64, row["uncompressed_size_bytes"].as_u64().unwrap());
        if engine == "postgresql" {
            // Dumped by the pg_dump of the server's own major version, so the server's psql restores it.
            let head = String::from_utf8_lossy(&sql[..sql.len().min(4096)]).to_string();
            let server_major = pg.sql("postgres", "SHOW server_version_num")?.trim().parse::<u32>()? / 10_000;
            assert!(head.contains(&format!("Dumped by pg_dump version {server_major}.")), "{head}");
            pg.sql("postgres", "CREATE DATABASE shop_restored")?;
            pg.restore("shop_restored", &sql)?;
            assert_eq!(pg_fingerprint(&pg, "shop_restored")?, pg_fingerprint(&pg, "shop")?);
        } else {
            maria.sql("", "CREATE DATABASE shop_restored CHARACTER SET utf8mb4")?;
            maria.restore("shop_restored", &sql)?;
            assert_eq!(maria_fingerprint(&maria, "shop_restored")?, maria_fingerprint(&maria, "shop")?);
        }
    }
    let fp = pg_fingerprint(&pg, "shop")?;
    assert!(fp.iter().any(|l| l.starts_with("big|600000|")), "the fingerprint covers the data: {fp:?}");

    // A wrong password fails fast with its class, and the message never echoes the password.
    let t = Instant::now();
    let bad_job = api.post(&format!("/api/databases/{}/backup", bad_db["id"].as_str().unwrap()), json!({})).await?;
    let bad_row = api
        .wait_final(bad_db["id"].as_str().unwrap(), bad_job["backup_id"].as_str().unwrap(), Duration::from_secs(30))
        .await?;
    assert_eq!(bad_row["status"], "failed");
    assert_eq!(bad_row["error_class"], "AuthFailed", "{bad_row}");
    assert!(t.elapsed() < Duration::from_secs(15), "auth failure took {:?}", t.elapsed());
    assert!(!bad_row.to_string().contains(WRONG_PASSWORD));
    let (s, missing) = api
        .call(
            reqwest::Method::GET,
            &format!("/api/backups/download?blob_name={}", bad_row["blob_name"].as_str().unwrap()),
            None,
        )
        .await?;
    assert_eq!(s, 404, "a failed backup leaves no file behind: {missing}");

    // Prometheus sees the same: two dumps completed, one refused login, nothing left running or queued.
    let http = reqwest::Client::new();
    let scrape = http.get(format!("{}/metrics", app.url));
    assert_eq!(scrape.try_clone().unwrap().send().await?.status(), 401, "metrics need the dumper token");
    let pg_id = pg_db["id"].as_str().unwrap();
    let expected = [
        "dilux_dumps_total{engine=\"postgresql\",outcome=\"completed\"} 1".to_string(),
        "dilux_dumps_total{engine=\"mysql\",outcome=\"completed\"} 1".into(),
        "dilux_dumps_total{engine=\"postgresql\",outcome=\"AuthFailed\"} 1".into(),
        "dilux_dump_duration_seconds_count{engine=\"postgresql\"} 1".into(),
        "dilux_jobs_total{queue=\"backup-jobs\",outcome=\"done\"} 3".into(),
        "dilux_queue_depth{queue=\"backup-jobs\"} 0".into(),
        "dilux_dumps_running 0".into(),
        "dilux_dump_bytes_in_flight 0".into(),
    ];
    // The worker counts a job once it has settled its message, just after the row's last write.
    let since = Instant::now();
    let text = loop {
        let text = scrape.try_clone().unwrap().bearer_auth(dilux_e2e::DUMPER_TOKEN).send().await?.text().await?;
        let missing: Vec<&String> = expected.iter().filter(|e| !text.lines().any(|l| l == e.as_str())).collect();
        if missing.is_empty() {
            break text;
        }
        assert!(since.elapsed() < Duration::from_secs(15), "{missing:?} missing from /metrics:\n{text}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let last = format!("dilux_last_success_timestamp_seconds{{database_id=\"{pg_id}\"}} ");
    let at: i64 = text.lines().find_map(|l| l.strip_prefix(&last)).expect("the database's last success").parse()?;
    let finished = chrono::DateTime::parse_from_rfc3339(pg_row["completed_at"].as_str().unwrap())?.timestamp();
    assert!((at - finished).abs() <= 5, "last success {at} vs the row's {finished}");

    // History is newest first.
    let (_, all) = api.call(reqwest::Method::GET, "/api/backups", None).await?;
    let times: Vec<&str> =
        all["backups"].as_array().unwrap().iter().map(|r| r["created_at"].as_str().unwrap()).collect();
    assert_eq!(times.len(), 3);
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "{times:?}");

    // Stats, then deleting: one backup, and in bulk the failed row plus a bad name.
    let (_, st) = api
        .call(reqwest::Method::GET, &format!("/api/backups/stats?database_id={}", pg_db["id"].as_str().unwrap()), None)
        .await?;
    assert_eq!((st["total"].as_u64(), st["completed"].as_u64()), (Some(1), Some(1)), "{st}");
    assert_eq!(st["total_size_bytes"], pg_row["file_size_bytes"]);
    let maria_blob = maria_row["blob_name"].as_str().unwrap();
    let (s, v) =
        api.call(reqwest::Method::DELETE, &format!("/api/backups/delete?blob_name={maria_blob}"), None).await?;
    assert_eq!((s, v["error"]["field"].as_str()), (400, Some("force")), "the newest completed backup: {v}");
    let (s, v) = api
        .call(reqwest::Method::DELETE, &format!("/api/backups/delete?blob_name={maria_blob}&force=true"), None)
        .await?;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        api.call(reqwest::Method::GET, &format!("/api/backups/download?blob_name={maria_blob}"), None).await?.0,
        404,
        "the file is gone"
    );
    let (_, left) = api
        .call(reqwest::Method::GET, &format!("/api/backups?database_id={}", maria_db["id"].as_str().unwrap()), None)
        .await?;
    assert_eq!(left["count"], 0, "and so is its history row");
    assert_eq!(
        api.call(reqwest::Method::DELETE, &format!("/api/backups/delete?blob_name={maria_blob}"), None).await?.0,
        404
    );
    let bad_blob = bad_row["blob_name"].as_str().unwrap();
    // A malformed name refuses the whole list before anything is deleted; a missing file fails alone.
    let (s, bulk) = api
        .call(reqwest::Method::POST, "/api/backups/delete-bulk", Some(json!({"blob_names": [bad_blob, "mysql/../x"]})))
        .await?;
    assert_eq!((s, bulk["error"]["field"].as_str()), (400, Some("blob_names")), "{bulk}");
    let gone = "mysql/nobody/20260101_000000_00000000.sql.gz";
    let (s, bulk) = api
        .call(reqwest::Method::POST, "/api/backups/delete-bulk", Some(json!({"blob_names": [bad_blob, gone]})))
        .await?;
    assert_eq!(s, 200);
    assert_eq!(bulk["deleted"], json!([bad_blob]), "{bulk}");
    assert_eq!(bulk["failed"][0]["status"], 404, "{bulk}");
    let (_, all) = api.call(reqwest::Method::GET, "/api/backups", None).await?;
    assert_eq!(all["count"], 1, "only the PostgreSQL backup remains");
    // The same databases on a gzip policy: `.sql.gz` files any gunzip reads, and the product restores them.
    let mut gzip = json!({"name": "Gzip for old tools", "daily": {"enabled": true, "keep_count": 3, "time": "02:00"}});
    gzip["compression"] = json!({"algorithm": "gzip", "level": 1});
    let gzip = api.post("/api/backup-policies", gzip).await?;
    for (db, engine) in [(&pg_db, "postgresql"), (&maria_db, "mysql")] {
        let id = db["id"].as_str().unwrap();
        let (s, v) = api
            .call(reqwest::Method::PUT, &format!("/api/databases/{id}"), Some(json!({"policy_id": gzip["id"]})))
            .await?;
        assert_eq!(s, 200, "{v}");
        let job = api.post(&format!("/api/databases/{id}/backup"), json!({})).await?;
        let row = api.wait_final(id, job["backup_id"].as_str().unwrap(), Duration::from_secs(180)).await?;
        assert_eq!((row["status"].as_str(), row["file_format"].as_str()), (Some("completed"), Some("sql.gz")), "{row}");
        let (_, bytes) = api.download(row["blob_name"].as_str().unwrap()).await?;
        assert_eq!(&bytes[..2], &[0x1f, 0x8b], "a gzip file");
        let target = format!("shop_gzip_{}", &engine[..5]);
        if engine == "mysql" {
            // The backup user reads `shop` only; restoring makes a database, and a trigger defined by root.
            maria.sql(
                "",
                &format!(
                    "GRANT ALL ON `{target}`.* TO 'dilux'@'127.0.0.1'; GRANT SET USER ON *.* TO 'dilux'@'127.0.0.1'"
                ),
            )?;
        }
        let restore = json!({"blob_name": row["blob_name"], "target_database": target});
        let rid = api.post("/api/backups/restore", restore).await?["restore_id"].as_str().unwrap().to_string();
        let done = api.wait_restore(&rid, Duration::from_secs(180)).await?;
        assert_eq!(done["status"], "completed", "{done}");
        if engine == "postgresql" {
            assert_eq!(pg_fingerprint(&pg, &target)?, pg_fingerprint(&pg, "shop")?);
        } else {
            assert_eq!(maria_fingerprint(&maria, &target)?, maria_fingerprint(&maria, "shop")?);
        }
    }
    Ok(())
}
