//! Database connections over TLS, against servers that refuse anything else (PostgreSQL with `hostssl`
//! only, MariaDB with `require_secure_transport`, as Azure's managed servers are by default) and servers
//! that offer none: each TLS mode does what it says, and a backup and its verified restore run with
//! certificates checked.

use anyhow::Result;
use dilux_e2e::{Api, App, Azurite, Mariadb, Postgres, TestCerts};
use reqwest::Method as M;
use serde_json::{json, Value};

const PASSWORD: &str = "tls-Db-s3cret";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_modes_are_enforced_and_backups_restore_with_certificates_checked() -> Result<()> {
    let certs = TestCerts::new()?;
    let az = Azurite::start()?;
    let pg = Postgres::start_tls(PASSWORD, &certs)?;
    pg.sql("postgres", "CREATE DATABASE shop")?;
    pg.sql(
        "shop",
        "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 300) g",
    )?;
    let maria = Mariadb::start_tls(&certs)?;
    maria.database_and_admin("shop", PASSWORD)?;
    maria.sql(
        "shop",
        "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a'), (2, 'b'), (3, 'c');",
    )?;
    let plain_pg = Postgres::start(PASSWORD)?;
    let plain_maria = Mariadb::start()?;
    plain_maria.database_and_admin("shop", PASSWORD)?;

    let app = App::start(&az.connection_string)?;
    let api = Api::signed_in(&app, "admin").await?;
    for (engine, user, port) in [("postgresql", "postgres", pg.port), ("mysql", "dilux", maria.port)] {
        let server = api
            .post(
                "/api/engines",
                json!({ "name": format!("{engine} tls"), "engine_type": engine, "host": "localhost", "port": port,
                    "username": user, "password": PASSWORD, "tls_mode": "disable" }),
            )
            .await?;
        let id = server["id"].as_str().unwrap().to_string();
        // Refused by the server: it takes encrypted connections only.
        let test = api.post(&format!("/api/engines/{id}/test"), Value::Null).await?;
        assert_eq!(test["success"], false, "{engine} without TLS: {test}");

        // A certificate from another CA is refused before any password is sent.
        set_tls(&api, &id, json!({ "tls_mode": "verify-full", "tls_ca": certs.other_ca_pem })).await?;
        let test = api.post(&format!("/api/engines/{id}/test"), Value::Null).await?;
        assert_eq!((test["success"].clone(), test["error_type"].clone()), (json!(false), json!("Tls")), "{test}");

        // The right CA: tested, backed up, restored into a new database and verified against the manifest.
        set_tls(&api, &id, json!({ "tls_mode": "verify-full", "tls_ca": certs.ca_pem })).await?;
        let test = api.post(&format!("/api/engines/{id}/test"), Value::Null).await?;
        assert_eq!(test["success"], true, "{engine} verify-full: {test}");
        let db = api.post("/api/databases", json!({ "engine_id": id, "name": "shop" })).await?;
        let db_id = db["id"].as_str().unwrap();
        let b = api.post(&format!("/api/databases/{db_id}/backup"), Value::Null).await?;
        let done = api.wait_final(db_id, b["backup_id"].as_str().unwrap(), std::time::Duration::from_secs(120)).await?;
        assert_eq!(done["status"], "completed", "{engine} backup over verified TLS: {done}");
        let restore = json!({ "blob_name": done["blob_name"], "target_database": "shop_restored" });
        let r = api.post("/api/backups/restore", restore).await?;
        let r = api.wait_restore(r["restore_id"].as_str().unwrap(), std::time::Duration::from_secs(120)).await?;
        assert_eq!(
            (r["status"].as_str(), r["verification"]["result"].as_str()),
            (Some("completed"), Some("passed")),
            "{r}"
        );
        // `require` encrypts without checking: any CA will do.
        set_tls(&api, &id, json!({ "tls_mode": "require", "password": PASSWORD })).await?;
        let test = api.post(&format!("/api/engines/{id}/test"), Value::Null).await?;
        assert_eq!(test["success"], true, "{engine} require: {test}");
    }
    assert_eq!(pg.sql("shop_restored", "SELECT count(*) FROM t")?.trim(), "300");
    assert_eq!(maria.sql("shop_restored", "SELECT count(*) FROM t")?.trim(), "3");

    // A server that offers no TLS: `require` refuses it (MariaDB's client would fall back to plain text,
    // so the session is checked), `prefer` goes on without.
    for (engine, user, port) in [("postgresql", "postgres", plain_pg.port), ("mysql", "dilux", plain_maria.port)] {
        let ask = |mode: &str| {
            json!({ "engine_type": engine, "host": "127.0.0.1", "port": port, "username": user,
                "password": PASSWORD, "tls_mode": mode })
        };
        let test = api.post("/api/databases/test-connection", ask("require")).await?;
        assert_eq!((test["success"].clone(), test["error_type"].clone()), (json!(false), json!("Tls")), "{test}");
        assert!(!test["message"].as_str().unwrap().contains(PASSWORD), "{test}");
        let test = api.post("/api/databases/test-connection", ask("prefer")).await?;
        assert_eq!(test["success"], true, "{engine} prefer: {test}");
    }
    let test = api
        .post(
            "/api/databases/test-connection",
            json!({ "engine_type": "mysql", "host": "127.0.0.1", "port": plain_maria.port, "username": "dilux",
                "password": PASSWORD, "tls_mode": "require" }),
        )
        .await?;
    assert!(test["message"].as_str().unwrap().contains("does not encrypt connections"), "{test}");
    Ok(())
}

async fn set_tls(api: &Api, id: &str, body: Value) -> Result<()> {
    let mut body = body;
    // Weakening TLS or changing the CA needs the password again.
    body["password"] = PASSWORD.into();
    let (s, v) = api.call(M::PUT, &format!("/api/engines/{id}"), Some(body)).await?;
    anyhow::ensure!(s == 200, "PUT /api/engines/{id} answered {s}: {v}");
    Ok(())
}
