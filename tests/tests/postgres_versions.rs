//! A newer PostgreSQL server than Debian's (17, the newest Azure offers) is backed up with its own
//! major version's pg_dump, and the dump restores into that server.

use std::time::Duration;

use anyhow::Result;
use dilux_e2e::{decompress, Api, App, Azurite, Postgres};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_17_is_dumped_with_pg_dump_17_and_restores() -> Result<()> {
    let az = std::thread::spawn(Azurite::start);
    let pg = Postgres::start_version("pg17-pw", 17)?;
    let az = az.join().unwrap()?;
    let app = App::start(&az.connection_string)?;
    assert_eq!(pg.sql("postgres", "SHOW server_version_num")?.trim().parse::<u32>()? / 10_000, 17);
    pg.sql("postgres", "CREATE DATABASE app")?;
    // transaction_timeout exists from 17 on; an identity column and a JSON value for good measure.
    pg.sql(
        "app",
        "CREATE TABLE t (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, doc jsonb, note text);
                   INSERT INTO t (doc, note) SELECT jsonb_build_object('n', g, 'emoji', '🐘'), \
                   'row ' || g FROM generate_series(1, 1000) g;",
    )?;

    let api = Api::signed_in(&app, "admin").await?;
    let engine = api
        .post(
            "/api/engines",
            json!({"name": "pg17", "engine_type": "postgresql", "host": "127.0.0.1", "port": pg.port,
        "username": "postgres", "password": "pg17-pw"}),
        )
        .await?;
    let db = api.post("/api/databases", json!({"engine_id": engine["id"], "name": "app"})).await?;
    let id = db["id"].as_str().unwrap();
    let job = api.post(&format!("/api/databases/{id}/backup"), json!({})).await?;
    let row = api.wait_final(id, job["backup_id"].as_str().unwrap(), Duration::from_secs(120)).await?;
    assert_eq!(row["status"], "completed", "{row}");
    let (_, bytes) = api.download(row["blob_name"].as_str().unwrap()).await?;
    let sql = decompress(&bytes)?;
    let head = String::from_utf8_lossy(&sql[..sql.len().min(4096)]).to_string();
    assert!(head.contains("Dumped by pg_dump version 17."), "{head}");
    pg.sql("postgres", "CREATE DATABASE app_restored")?;
    pg.restore("app_restored", &sql)?;
    let fp = |db: &str| pg.sql(db, "SELECT count(*), md5(string_agg(t::text, '|' ORDER BY id)) FROM t t");
    assert_eq!(fp("app_restored")?, fp("app")?);
    Ok(())
}

/// A fake server at the database's address that asks for the password in cleartext (what an impostor
/// does to harvest it): pg_dump 14 alone would send it, since its libpq ignores `PGREQUIREAUTH`. As the
/// dumper-host runs it, it sends nothing and the backup fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_pg_dump_never_sends_the_password_to_a_server_asking_for_cleartext() -> Result<()> {
    use std::io::{Read, Write};
    let tools = std::path::PathBuf::from(std::env::var("DILUX_PG_TOOLS_DIR")?);
    let v14 = std::fs::read_dir(&tools)?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("14.")))
        .expect("the PostgreSQL 14 toolset is installed");
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop = done.clone();
    let heard = std::thread::spawn(move || {
        let mut heard = Vec::new();
        while let Ok((mut c, _)) = listener.accept() {
            if stop.load(std::sync::atomic::Ordering::SeqCst) {
                break;
            }
            c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let message = |c: &mut std::net::TcpStream| -> Option<Vec<u8>> {
                let mut len = [0u8; 4];
                c.read_exact(&mut len).ok()?;
                let mut body = vec![0u8; (u32::from_be_bytes(len) as usize).checked_sub(4)?];
                c.read_exact(&mut body).ok()?;
                Some(body)
            };
            // SSL and GSS encryption requests are declined; the startup message is answered with
            // AuthenticationCleartextPassword.
            let mut first = message(&mut c);
            while first.as_ref().is_some_and(|b| b.len() == 4 && b[..2] == [0x04, 0xd2]) {
                c.write_all(b"N").unwrap();
                first = message(&mut c);
            }
            if first.is_some() {
                c.write_all(&[b'R', 0, 0, 0, 8, 0, 0, 0, 3]).unwrap();
                let _ = c.read_to_end(&mut heard);
            }
        }
        heard
    });
    let spec = dilux_dumper_host::dump::DumpSpec {
        tls: Default::default(),
        engine: dilux_dumper_host::dump::Engine::Postgresql,
        host: "127.0.0.1".into(),
        port,
        database: "app".into(),
        username: "postgres".into(),
        password: "harvest-me-pw".into(),
        container: "backups".into(),
        blob_name: "postgresql/x/20261202_000000_ab.sql.zst".into(),
        compression: Default::default(),
        format: Default::default(),
        recipients: vec![],
        metadata: vec![],
    };
    let opts = dilux_dumper_host::dump::DumpOptions {
        // This very pg_dump, not one picked by probing (the probe's newer psql would refuse first).
        pg_dump: Some(v14.join("bin/pg_dump").to_string_lossy().into_owned()),
        pg_tools_dir: Some(tools),
        ..Default::default()
    };
    let (mut cmd, keep) = dilux_dumper_host::dump::tool_command(&spec, &opts).await.map_err(anyhow::Error::msg)?;
    let out = cmd.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::piped()).output().await?;
    drop(keep);
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let _ = std::net::TcpStream::connect(("127.0.0.1", port));
    let said = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success());
    assert!(said.contains("server requested a cleartext password"), "{said}");
    let heard = heard.join().unwrap();
    assert!(!String::from_utf8_lossy(&heard).contains("harvest-me-pw"), "the password was sent: {heard:?}");
    Ok(())
}
