//! Client-side encryption: a policy naming age recipients stores standard age files (the reference `age` CLI
//! decrypts them with an identity from `age-keygen`), which restore — through the app, in drills and with
//! `dilux-restore` — with the dumper-host's identity, on both engines with zstd and gzip, and are unreadable
//! without one. The identity never shows in logs, and a policy the product could not restore is refused.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, Result};
use dilux_e2e::{age_keygen, said, Api, App, Azurite, Mariadb, Postgres};
use reqwest::Method as M;
use serde_json::{json, Value};

const PG_PASSWORD: &str = "pg-Encrypt-s3cret!";
const MARIA_PASSWORD: &str = "maria-Encrypt-s3cret";
/// A value that must never be readable in the stored bytes.
const MARKER: &str = "secret-ledger-entry-7731";

fn pg_digest(pg: &Postgres, db: &str) -> Result<String> {
    pg.sql(db, "SELECT count(*), md5(string_agg(l::text, '|' ORDER BY l.id)) FROM ledger l")
}

fn maria_digest(m: &Mariadb, db: &str) -> Result<String> {
    m.sql(db, "SELECT COUNT(*), MD5(GROUP_CONCAT(CONCAT_WS('#', id, entry) ORDER BY id SEPARATOR '|')) FROM ledger")
}

async fn policy(api: &Api, name: &str, compression: Value, recipients: &[&str]) -> Result<String> {
    let body = json!({ "name": name, "daily": { "enabled": true, "keep_count": 7, "time": "02:00" },
        "compression": compression, "encryption": { "recipients": recipients },
        "verification": { "after_each_backup": true } });
    Ok(api.post("/api/backup-policies", body).await?["id"].as_str().context("policy id")?.to_string())
}

fn restore_cli(conn: &str, password: &str, args: &[&str], identity: Option<&Path>) -> std::process::Output {
    let bin = dilux_e2e::host_bin().with_file_name("dilux-restore");
    let mut c = Command::new(bin);
    c.args(args).env("DILUX_STORAGE_CONNECTION_STRING", conn).env("DILUX_RESTORE_PASSWORD", password);
    if let Some(id) = identity {
        c.arg("--identity").arg(id);
    }
    c.output().expect("dilux-restore runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_backups_restore_with_the_identity_and_are_unreadable_without_it() -> Result<()> {
    let az = std::thread::spawn(Azurite::start);
    let pg = std::thread::spawn(|| Postgres::start(PG_PASSWORD));
    let maria = std::thread::spawn(Mariadb::start);
    let (az, pg, maria) = (az.join().unwrap()?, pg.join().unwrap()?, maria.join().unwrap()?);
    let fill_pg = format!(
        "CREATE TABLE ledger (id int PRIMARY KEY, entry text); INSERT INTO ledger SELECT g, '{MARKER} ' || g || \
         ' 🦀' FROM generate_series(1, 2000) g;"
    );
    let fill_maria = format!(
        "SET SESSION max_recursive_iterations = 100000; CREATE TABLE ledger (id INT PRIMARY KEY, entry VARCHAR(100) \
         CHARACTER SET utf8mb4); INSERT INTO ledger WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s \
         WHERE g < 2000) SELECT g, CONCAT('{MARKER} ', g, ' 🦀') FROM s;"
    );
    maria.database_and_admin("zs", MARIA_PASSWORD)?;
    maria.sql("", "CREATE DATABASE gz CHARACTER SET utf8mb4")?;
    for db in ["zs", "gz"] {
        pg.sql("postgres", &format!("CREATE DATABASE {db}"))?;
        pg.sql(db, &fill_pg)?;
        maria.sql(db, &fill_maria)?;
    }
    let dir = dilux_e2e::tempdir("age-keys");
    let (host_id, host_recipient, host_secret) = age_keygen(&dir, "host.txt")?;
    let (offline_id, offline_recipient, _) = age_keygen(&dir, "offline.txt")?;
    let (stranger_id, stranger_recipient, _) = age_keygen(&dir, "stranger.txt")?;

    let host_id_str = host_id.to_str().unwrap();
    let (app, logs) = App::start_captured(&az.connection_string, &[("DILUX_AGE_IDENTITY_FILE", host_id_str)])?;
    let api = Api::signed_in(&app, "admin").await?;
    // The dumper-host says which recipient a policy must include.
    let status = api.call(M::GET, "/api/system-status", None).await?.1;
    assert_eq!(status["dumper_host"]["encryption_recipients"], json!([host_recipient]), "{status}");

    // Recipients are checked to their checksum and named by position; only admins set them.
    let typo = format!("{}{}", &host_recipient[..10], if &host_recipient[10..11] == "q" { "p" } else { "q" })
        + &host_recipient[11..];
    let bad = json!({ "name": "bad", "daily": { "enabled": true, "keep_count": 1, "time": "02:00" },
        "encryption": { "recipients": [host_recipient, typo] } });
    let (s, e) = api.call(M::POST, "/api/backup-policies", Some(bad.clone())).await?;
    assert_eq!(s, 400, "{e}");
    assert!(e.to_string().contains("encryption.recipients[1]"), "{e}");
    let operator = Api::signed_in(&app, "operator").await?;
    assert_eq!(operator.call(M::POST, "/api/backup-policies", Some(bad)).await?.0, 403);

    let both = [host_recipient.as_str(), offline_recipient.as_str()];
    let zstd = policy(&api, "enc-zstd", json!({ "algorithm": "zstd", "level": 3 }), &both).await?;
    let gzip = policy(&api, "enc-gzip", json!({ "algorithm": "gzip", "level": 6 }), &both).await?;
    let mut backups = vec![];
    let mut pg_engine = String::new();
    for (engine, port, user, pass) in
        [("postgresql", pg.port, "postgres", PG_PASSWORD), ("mysql", maria.port, "dilux", MARIA_PASSWORD)]
    {
        let e = json!({ "name": engine, "engine_type": engine, "host": "127.0.0.1", "port": port,
            "username": user, "password": pass });
        let engine_id = api.post("/api/engines", e).await?["id"].as_str().unwrap().to_string();
        if engine == "postgresql" {
            pg_engine = engine_id.clone();
        }
        for (db, policy_id) in [("zs", &zstd), ("gz", &gzip)] {
            let done = api.back_up(&engine_id, db, policy_id).await?;
            assert_eq!(done["status"], "completed", "{done}");
            backups.push((engine, db, done));
        }
    }
    for (engine, db, done) in &backups {
        let format = if *db == "zs" { "sql.zst.age" } else { "sql.gz.age" };
        assert_eq!((done["encrypted"].as_bool(), done["file_format"].as_str()), (Some(true), Some(format)), "{done}");
        let blob = done["blob_name"].as_str().unwrap();
        assert!(blob.ends_with(&format!(".{format}")), "{blob}");
        let (link, bytes) = api.download(blob).await?;
        assert_eq!(link["encrypted"], true, "{link}");
        assert_eq!(dilux_e2e::sha256_hex(&bytes), done["sha256"].as_str().unwrap(), "the hash covers the stored bytes");
        assert!(bytes.starts_with(b"age-encryption.org/v1\n"), "{engine}/{db}: a standard age file");
        assert!(dilux_e2e::decompress(&bytes).is_err(), "{engine}/{db}: not readable as zstd or gzip");
        assert!(!bytes.windows(MARKER.len()).any(|w| w == MARKER.as_bytes()));
        // The reference CLI decrypts it with the offline identity; the standard readers then give the dump.
        let file = dir.join(format!("{engine}-{db}.age"));
        std::fs::write(&file, &bytes)?;
        let o = Command::new("age").arg("-d").arg("-i").arg(&offline_id).arg(&file).output()?;
        assert!(o.status.success(), "age -d: {}", String::from_utf8_lossy(&o.stderr));
        let dump = String::from_utf8(dilux_e2e::decompress(&o.stdout)?)?;
        assert!(dump.contains(&format!("{MARKER} 1999")), "{engine}/{db}: the dump holds the rows");
        let o = Command::new("age").arg("-d").arg("-i").arg(&stranger_id).arg(&file).output()?;
        assert!(!o.status.success(), "another identity cannot decrypt it");
        // The manifest (table names, digests) is encrypted with it; the API says so.
        let id = done["id"].as_str().unwrap();
        let v = api.call(M::GET, &format!("/api/backups/{id}/verification"), None).await?.1;
        assert_eq!((v["manifest_encrypted"].as_bool(), &v["manifest"]), (Some(true), &Value::Null), "{v}");
    }

    // Each backup was drilled after it completed, decrypted by the dumper-host and compared table by table.
    assert_eq!(app.tick("drills", None).await?["queued"], 4);
    let drilled = api.drills_done(4).await?;
    for d in &drilled {
        assert_eq!(d["status"], "completed", "{d}");
        assert_eq!(d["verification"]["result"], "passed", "{d}");
        assert_eq!(d["verification"]["rows_checked"], 2000, "{d}");
    }
    // Restores through the app, into new databases identical to the originals.
    for (engine, db, done) in &backups {
        let target = format!("{db}_back");
        let body = json!({ "blob_name": done["blob_name"], "target_database": target });
        let r = api.post("/api/backups/restore", body).await?;
        let r = api.wait_restore(r["restore_id"].as_str().unwrap(), Duration::from_secs(120)).await?;
        assert_eq!(r["status"], "completed", "{r}");
        assert_eq!(r["verification"]["result"], "passed", "{r}");
        match *engine {
            "postgresql" => assert_eq!(pg_digest(&pg, &target)?, pg_digest(&pg, db)?),
            _ => assert_eq!(maria_digest(&maria, &target)?, maria_digest(&maria, db)?),
        }
    }

    // A policy the dumper-host cannot decrypt is refused at backup time, saying what to do; nothing is stored.
    let zstd3 = json!({ "algorithm": "zstd", "level": 3 });
    let offline_only = policy(&api, "offline-only", zstd3, &[offline_recipient.as_str()]).await?;
    pg.sql("postgres", "CREATE DATABASE off")?;
    let failed = api.back_up(&pg_engine, "off", &offline_only).await?;
    assert_eq!(failed["status"], "failed", "{failed}");
    let why = failed["error_message"].as_str().unwrap_or_default();
    assert!(why.contains("none of the policy's recipients is this dumper-host's"), "{failed}");
    let files = api.call(M::GET, "/api/backups/files", None).await?.1;
    assert_eq!(files["count"], 4, "only the four encrypted backups are stored: {files}");

    // The identity appears in no log line, and no tool got it.
    let text = logs.text();
    assert!(!text.contains(&host_secret) && !text.contains(&host_secret[16..]), "the identity is never logged");
    assert!(text.contains(&host_recipient), "the public recipient is logged at start");
    drop(app);

    // With the app gone: dilux-restore needs an identity, says which one is missing, and restores with it.
    let conn = az.connection_string.as_str();
    let (pg_blob, maria_blob) =
        (backups[0].2["blob_name"].as_str().unwrap(), backups[3].2["blob_name"].as_str().unwrap());
    let pg_port = pg.port.to_string();
    let pg_args = |db: &'static str| {
        ["--engine", "postgresql", "--host", "127.0.0.1", "--port", &pg_port, "--user", "postgres", "--database", db]
            .map(str::to_string)
    };
    let args = |base: [String; 10], blob: &str| {
        let mut v: Vec<String> = base.to_vec();
        v.extend(["--blob".to_string(), blob.to_string()]);
        v
    };
    let run = |a: &Vec<String>, pass: &str, id: Option<&Path>| {
        restore_cli(conn, pass, &a.iter().map(String::as_str).collect::<Vec<_>>(), id)
    };
    let o = run(&args(pg_args("cli_none"), pg_blob), PG_PASSWORD, None);
    assert!(!o.status.success() && said(&o).contains("no identity"), "{}", said(&o));
    let o = run(&args(pg_args("cli_stranger"), pg_blob), PG_PASSWORD, Some(&stranger_id));
    assert!(!o.status.success() && said(&o).contains("other recipients"), "{}", said(&o));
    assert!(said(&o).contains(&stranger_recipient), "names the identity it has: {}", said(&o));
    let left = pg.sql("postgres", "SELECT count(*) FROM pg_database WHERE datname LIKE 'cli_%'")?;
    assert_eq!(left.trim(), "0", "a refused restore keeps nothing");
    let o = run(&args(pg_args("cli_offline"), pg_blob), PG_PASSWORD, Some(&offline_id));
    assert!(o.status.success(), "{}", said(&o));
    assert!(said(&o).contains("content checked against the backup's manifest: 1 tables, 2000 rows"), "{}", said(&o));
    assert_eq!(pg_digest(&pg, "cli_offline")?, pg_digest(&pg, "zs")?);
    let maria_port = maria.port.to_string();
    let maria_args =
        ["--engine", "mysql", "--host", "127.0.0.1", "--port", &maria_port, "--user", "dilux", "--database", "cli_gz"]
            .map(str::to_string);
    let o = run(&args(maria_args, maria_blob), MARIA_PASSWORD, Some(&host_id));
    assert!(o.status.success(), "{}", said(&o));
    assert_eq!(maria_digest(&maria, "cli_gz")?, maria_digest(&maria, "gz")?);
    Ok(())
}
