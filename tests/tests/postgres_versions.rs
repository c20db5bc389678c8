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
