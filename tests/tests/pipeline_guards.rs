//! The dump pipeline's guards, run through the dumper-host library against a real PostgreSQL and Azurite:
//! a dump tool that goes silent is stopped, one that closes its output but never exits is stopped, another
//! backup's blob is never touched, and a manifest sidecar that is not the one the backup's commit recorded never
//! judges a restore. Each step leaves no committed blob behind when it fails.

use std::os::unix::fs::PermissionsExt as _;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use chrono::Utc;
use dilux_azure::{blob, Account};
use dilux_domain::manifest::manifest_blob;
use dilux_domain::ErrorClass;
use dilux_dumper_host::dump::{run_dump, DumpOptions, DumpSpec, Engine};
use dilux_dumper_host::restore::{run_restore, RestoreSpec, Source};
use dilux_dumper_host::storage::Storage;
use dilux_e2e::{Azurite, Postgres};

const PASSWORD: &str = "guards-pw-1";
const CONTAINER: &str = "guards";

fn spec(pg: &Postgres, blob_name: &str, backup_id: &str) -> DumpSpec {
    DumpSpec {
        engine: Engine::Postgresql,
        host: "127.0.0.1".into(),
        port: pg.port,
        tls: Default::default(),
        database: "shop".into(),
        username: "postgres".into(),
        password: PASSWORD.into(),
        container: CONTAINER.into(),
        blob_name: blob_name.into(),
        compression: Default::default(),
        format: Default::default(),
        recipients: vec![],
        metadata: vec![("backup_id".into(), backup_id.into())],
    }
}

/// The blob's bytes, or None when it does not exist.
async fn stored(storage: &Storage, name: &str) -> Result<Option<Vec<u8>>> {
    let r = storage.send("get", blob::get_blob(&storage.account, Utc::now(), CONTAINER, name)).await?;
    Ok(if r.status == 404 { None } else { Some(r.check("get blob")?.body) })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dump_pipeline_stops_bad_tools_and_never_trusts_foreign_files() -> Result<()> {
    let az = std::thread::spawn(Azurite::start);
    let pg = Postgres::start(PASSWORD)?;
    let az = az.join().unwrap()?;
    let storage = Storage::new(Account::from_connection_string(&az.connection_string)?);
    blob::parse_create_container(
        storage.send("c", blob::create_container(&storage.account, Utc::now(), CONTAINER)).await?,
    )?;
    pg.sql("postgres", "CREATE DATABASE shop")?;
    let fill = "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, md5(g::text) FROM \
                generate_series(1, 5000) g";
    pg.sql("shop", fill)?;
    let opts = DumpOptions::from_env();

    // A tool that goes silent (pg_dump waiting on a lock) is stopped after the stall timeout: Timeout, no blob.
    let mut lock = pg.hold_lock("shop", "t", 117)?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let quick = DumpOptions { stall_timeout: Duration::from_secs(2), ..opts.clone() };
    let name = "postgresql/shop/20261204_000000_silent.sql.zst";
    let started = Instant::now();
    let e = run_dump(&storage, &spec(&pg, name, "b-silent"), &quick).await.expect_err("a silent tool is stopped");
    assert_eq!(e.class, ErrorClass::Timeout, "{e}");
    assert!(e.message.contains("produced no output for 2s"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(30), "stopped at the stall timeout: {:?}", started.elapsed());
    assert!(stored(&storage, name).await?.is_none(), "nothing committed");
    let sql = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(117)%' AND pid <> \
               pg_backend_pid()";
    pg.sql("postgres", sql)?;
    let _ = (lock.kill(), lock.wait());
    // The stopped pg_dump's session ends once the lock is gone (it notices its client left when it next writes).
    let sessions = "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'dilux-backup'";
    let gone = Instant::now();
    while pg.sql("postgres", sessions)?.trim() != "0" {
        assert!(gone.elapsed() < Duration::from_secs(15), "the stopped pg_dump's session is still there");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // A tool that closes its output and never exits (MOCK: a script standing in for a hung pg_dump) is stopped
    // once the exit wait is over: Timeout, no blob.
    let dir = dilux_e2e::tempdir("hung-tool");
    let hung = dir.join("pg_dump");
    std::fs::write(&hung, "#!/bin/sh\nexec 1>&-\nexec sleep 60\n")?;
    std::fs::set_permissions(&hung, std::fs::Permissions::from_mode(0o755))?;
    let hung_opts = DumpOptions {
        pg_dump: Some(hung.to_string_lossy().into_owned()),
        exit_wait: Duration::from_secs(2),
        ..opts.clone()
    };
    let name = "postgresql/shop/20261204_000000_hung.sql.zst";
    let started = Instant::now();
    let e = run_dump(&storage, &spec(&pg, name, "b-hung"), &hung_opts).await.expect_err("a hung tool is stopped");
    assert_eq!(e.class, ErrorClass::Timeout, "{e}");
    assert!(e.message.contains("did not exit 2s after its output ended"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(30), "{:?}", started.elapsed());
    assert!(stored(&storage, name).await?.is_none(), "nothing committed");

    // Another backup's blob under the name is never overwritten nor adopted.
    let name = "postgresql/shop/20261204_000000_taken.sql.zst";
    let theirs = vec![("backup_id".to_string(), "someone-else".to_string()), ("sha256".into(), "ab".repeat(32))];
    let put =
        blob::put_blob(&storage.account, Utc::now(), CONTAINER, name, "application/zstd", &theirs, b"theirs".to_vec());
    storage.send("put", put).await?.check("put blob")?;
    let e = run_dump(&storage, &spec(&pg, name, "b-mine"), &opts).await.expect_err("the name is taken");
    assert_eq!(e.class, ErrorClass::StorageFailed, "{e}");
    assert!(e.message.contains("already holds another backup (backup_id someone-else)"), "{e}");
    assert_eq!(stored(&storage, name).await?.as_deref(), Some(&b"theirs"[..]), "left untouched");

    // A restore is judged by the manifest the commit recorded, and by no other sidecar.
    let name = "postgresql/shop/20261204_000000_judged.sql.zst";
    let done = run_dump(&storage, &spec(&pg, name, "b-judged"), &opts).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    assert_eq!(done.manifest.rows(), 5000);
    let restore = |db: &str| RestoreSpec {
        engine: Engine::Postgresql,
        host: "127.0.0.1".into(),
        port: pg.port,
        tls: Default::default(),
        username: "postgres".into(),
        password: PASSWORD.into(),
        database: db.into(),
        source: Source::Blob { container: CONTAINER.into(), name: name.into() },
        expected_sha256: None,
        restore_id: format!("r-{db}"),
        keep_mark: false,
        tables: vec![],
    };
    let tls = dilux_dumper_host::dump::require_tls(&restore("x").conn(""), &opts)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let check = |o: dilux_dumper_host::restore::RestoreOutcome| o.check.context("checked").map(|c| c.comparison);
    let genuine = run_restore(Some(&storage), &restore("judged_one"), &opts, true, &|_, _| {}, &tls).await;
    let genuine = check(genuine.map_err(|e| anyhow::anyhow!("{e}"))?)?.context("the recorded manifest is used")?;
    assert!(genuine.passed() && genuine.rows_checked == 5000, "{}", genuine.summary());
    // An overlapping attempt's sidecar (here: one claiming other content) is not the recorded one: ignored.
    let stray = serde_json::json!({ "format": 1, "engine": "postgresql",
        "tables": [{ "table": "public.t", "rows": 1, "digest": "00000000000000000000000000000000" }] });
    let put = blob::put_blob(
        &storage.account,
        Utc::now(),
        CONTAINER,
        &manifest_blob(name),
        "application/json",
        &[],
        serde_json::to_vec(&stray)?,
    );
    storage.send("put", put).await?.check("put manifest")?;
    let judged = run_restore(Some(&storage), &restore("judged_two"), &opts, true, &|_, _| {}, &tls).await;
    let judged = check(judged.map_err(|e| anyhow::anyhow!("{e}"))?)?;
    assert!(judged.is_none(), "a sidecar the commit did not record never judges the restore: {judged:?}");
    Ok(())
}
