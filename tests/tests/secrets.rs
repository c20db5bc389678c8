//! A database password goes where it is needed and nowhere else: a run that tests, discovers, backs up,
//! fails on a wrong password and restores, on PostgreSQL and MariaDB, with the dumper-host's own debug logs
//! on — then neither the dumper-host's and its guests' output, nor any API answer, nor any raw Table row
//! holds a password in the clear, and no client it ran (pg_dump, psql, mariadb-dump, mariadb: probes, dumps
//! and restores) had one on its command line or the host's own settings in its environment.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use chrono::Utc;
use dilux_e2e::{Api, App, Azurite, Mariadb, Postgres};
use reqwest::Method as M;
use serde_json::{json, Value};

const PG_SUPER: &str = "pg-super-4f1c7e";
/// Distinctive, so that any appearance is ours; with the characters a shell or a URL would mangle.
const PG_PASSWORD: &str = "PgPw-9d2e61'\"$x&=never-logged";
const MARIA_PASSWORD: &str = "MariaPw-5b7a03'\"%s!never-logged";
const WRONG_PASSWORD: &str = "WrongPw-c84f19-never-logged";
const PASSWORDS: [&str; 3] = [PG_PASSWORD, MARIA_PASSWORD, WRONG_PASSWORD];

/// The passwords (or a tell-tale part of one) found in `text`.
fn leaked(text: &str) -> Vec<&'static str> {
    // The distinctive middles too: a password cut, quoted or escaped on its way still shows them.
    PASSWORDS.into_iter().filter(|p| text.contains(p) || text.contains(&p[..13])).collect()
}

/// Every row of every table the app writes, as the storage service returns it.
async fn raw_rows(az: &Azurite) -> Result<String> {
    use dilux_azure::table;
    use dilux_domain::tables;
    let storage =
        dilux_dumper_host::storage::Storage::new(dilux_azure::Account::from_connection_string(&az.connection_string)?);
    let mut all = String::new();
    for t in [
        tables::ENGINES,
        tables::DATABASES,
        tables::HISTORY,
        tables::SCHEDULE,
        tables::POLICIES,
        tables::AUDIT,
        tables::USERS,
        tables::SETTINGS,
        tables::RESTORES,
        tables::NOTIFICATIONS,
    ] {
        let mut cont = None;
        loop {
            let req = table::query(&storage.account, Utc::now(), t, None, Some(1000), cont.as_ref());
            let page = table::parse_query(storage.send("query", req).await?)?;
            all.push_str(&serde_json::to_string(&page.entities)?);
            match page.continuation {
                Some(c) => cont = Some(c),
                None => break,
            }
        }
    }
    Ok(all)
}

const CLIENTS: [&str; 4] = ["pg_dump", "psql", "mariadb-dump", "mariadb"];

/// Watches every process's command line and environment until stopped; answers the clients seen and what
/// leaked.
fn watch_clients(stop: Arc<AtomicBool>) -> std::thread::JoinHandle<(Vec<&'static str>, Vec<String>)> {
    std::thread::spawn(move || {
        let (mut seen, mut leaks) = (Vec::new(), Vec::new());
        while !stop.load(Ordering::Relaxed) {
            for (line, env) in dilux_e2e::process_environments() {
                let program = line.split(' ').next().unwrap_or_default().rsplit('/').next().unwrap_or_default();
                let Some(client) = CLIENTS.into_iter().find(|c| *c == program) else { continue };
                if !seen.contains(&client) {
                    seen.push(client);
                }
                if !leaked(&line).is_empty() {
                    leaks.push(format!("command line: {line}"));
                }
                if env.contains("SPIN_VARIABLE_") || env.contains("DILUX_") {
                    leaks.push(format!("{line}: environment {env}"));
                }
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        (seen, leaks)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_never_appears_in_logs_answers_rows_or_messages() -> Result<()> {
    let az = std::thread::spawn(Azurite::start);
    let pg = std::thread::spawn(|| Postgres::start(PG_SUPER));
    let maria = std::thread::spawn(Mariadb::start);
    let (az, pg, maria) = (az.join().unwrap()?, pg.join().unwrap()?, maria.join().unwrap()?);
    let q = PG_PASSWORD.replace('\'', "''");
    pg.sql("postgres", &format!("CREATE ROLE dba LOGIN CREATEDB PASSWORD '{q}'"))?;
    pg.sql("postgres", "CREATE DATABASE shop OWNER dba")?;
    pg.sql("shop", "SET ROLE dba; CREATE TABLE t (x int); INSERT INTO t VALUES (1), (2)")?;
    maria.database_and_admin("shop", MARIA_PASSWORD)?;
    maria.sql("shop", "CREATE TABLE t (x int); INSERT INTO t VALUES (1), (2)")?;
    let (app, out) = App::start_captured(
        &az.connection_string,
        &[("DILUX_LOG", "info,dilux_dumper_host=debug,wasmtime=warn,cranelift=warn")],
    )?;
    let admin = Api::signed_in(&app, "admin").await?;
    let stop = Arc::new(AtomicBool::new(false));
    let watch = watch_clients(stop.clone());
    let mut answers = Vec::<Value>::new();

    let engine = |name: &str, kind: &str, port: u16, user: &str, password: &str| {
        json!({ "name": name, "engine_type": kind, "host": "127.0.0.1", "port": port, "username": user,
            "password": password })
    };
    let pg_engine = admin.post("/api/engines", engine("pg", "postgresql", pg.port, "dba", PG_PASSWORD)).await?;
    let maria_engine =
        admin.post("/api/engines", engine("maria", "mysql", maria.port, "dilux", MARIA_PASSWORD)).await?;
    answers.extend([pg_engine.clone(), maria_engine.clone()]);
    for e in [&pg_engine, &maria_engine] {
        let id = e["id"].as_str().unwrap();
        let (_, tested) = admin.call(M::POST, &format!("/api/engines/{id}/test"), None).await?;
        assert_eq!(tested["success"].as_bool(), Some(true), "{tested}");
        let (_, found) = admin.call(M::POST, &format!("/api/engines/{id}/discover"), None).await?;
        answers.extend([tested, found]);
    }

    // Two good databases, and one with its own (wrong) credentials.
    let wrong = json!({ "engine_id": pg_engine["id"], "name": "postgres", "use_engine_credentials": false,
        "username": "dba", "password": WRONG_PASSWORD });
    let mut backups = Vec::new();
    for (body, status) in [
        (json!({ "engine_id": pg_engine["id"], "name": "shop" }), "completed"),
        (json!({ "engine_id": maria_engine["id"], "name": "shop" }), "completed"),
        (wrong, "failed"),
    ] {
        let d = admin.post("/api/databases", body).await?;
        let id = d["id"].as_str().unwrap().to_string();
        let (_, tested) = admin.call(M::POST, &format!("/api/databases/{id}/test"), None).await?;
        assert_eq!(tested["success"].as_bool(), Some(status == "completed"), "{tested}");
        let b = admin.post(&format!("/api/databases/{id}/backup"), json!(null)).await?;
        let row = admin.wait_final(&id, b["backup_id"].as_str().unwrap(), Duration::from_secs(120)).await?;
        assert_eq!(row["status"], status, "{row}");
        backups.push(row.clone());
        answers.extend([d, tested, row]);
    }
    for (i, b) in backups.iter().take(2).enumerate() {
        let r = admin
            .post("/api/backups/restore", json!({ "blob_name": b["blob_name"], "target_database": format!("copy{i}") }))
            .await?;
        let done = admin.wait_restore(r["restore_id"].as_str().unwrap(), Duration::from_secs(120)).await?;
        assert_eq!(done["status"], "completed", "{done}");
        answers.push(done);
    }
    for path in ["/api/engines", "/api/databases", "/api/backups", "/api/restores", "/api/audit", "/api/system-status"]
    {
        let (s, v) = admin.call(M::GET, path, None).await?;
        assert_eq!(s, 200, "{path}: {v}");
        answers.push(v);
    }

    stop.store(true, Ordering::Relaxed);
    let (mut seen, leaks) = watch.join().unwrap();
    seen.sort();
    assert_eq!(seen, ["mariadb", "mariadb-dump", "pg_dump", "psql"], "the watch saw every client run");
    assert_eq!(leaks, Vec::<String>::new(), "a client got a password on its command line or the host's settings");
    let said = out.text();
    assert!(said.contains("DEBUG") && said.contains("job-runner event=finished"), "the logs were captured: {said}");
    assert_eq!(leaked(&said), Vec::<&str>::new(), "a password is in the dumper-host's or its guests' output");
    assert_eq!(leaked(&serde_json::to_string(&answers)?), Vec::<&str>::new(), "a password is in an API answer");
    assert_eq!(leaked(&raw_rows(&az).await?), Vec::<&str>::new(), "a password is stored in the clear");
    // The failed backup's own words say what happened, without the password.
    let failed = &backups[2];
    assert!(failed["error_message"].as_str().unwrap_or_default().contains("password"), "{failed}");
    Ok(())
}
