//! PostgreSQL custom archives (`pg_dump --format=custom`, compressed by the product): a policy choosing them
//! stores `.dump.zst` / `.dump.gz` files (`.age` when encrypted) that pg_restore reads, which restore —
//! through the app, in drills and with `dilux-restore` — table for table identical, whole or only the chosen
//! tables into the whole schema. A restore the target rejects (`pg_restore --exit-on-error`) keeps nothing.

use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, Result};
use dilux_e2e::{age_keygen, said, Api, App, Azurite, Postgres};
use reqwest::Method as M;
use serde_json::{json, Value};

const PG_PASSWORD: &str = "pg-Custom-s3cret!";

/// Three tables in two schemas (one name needing quotes), keys of both kinds, foreign keys between them, a view
/// and a materialized view; values with tabs, new lines and non-ASCII.
const FILL: &str = "CREATE SCHEMA sales; \
    CREATE TABLE sales.customers (id serial PRIMARY KEY, name text NOT NULL); \
    CREATE TABLE sales.orders (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, \
        customer_id int NOT NULL REFERENCES sales.customers (id), note text); \
    CREATE TABLE \"Order Items\" (id int PRIMARY KEY, order_id bigint REFERENCES sales.orders (id), qty int); \
    INSERT INTO sales.customers (name) SELECT 'customer ' || g || E' \\t🦀' FROM generate_series(1, 300) g; \
    INSERT INTO sales.orders (customer_id, note) SELECT 1 + g % 300, 'order ' || g || E'\\nline two' \
        FROM generate_series(1, 2000) g; \
    INSERT INTO \"Order Items\" SELECT g, 1 + g % 2000, g % 7 FROM generate_series(1, 3000) g; \
    CREATE VIEW sales.big_orders AS SELECT * FROM sales.orders WHERE id > 1000; \
    CREATE MATERIALIZED VIEW sales.order_count AS SELECT count(*) AS n FROM sales.orders;";

const TABLES: [&str; 3] = ["sales.customers", "sales.orders", "\"Order Items\""];

fn digest(pg: &Postgres, db: &str, table: &str) -> Result<String> {
    pg.sql(db, &format!("SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t.id), '')) FROM {table} t"))
}

fn foreign_keys(pg: &Postgres, db: &str) -> Result<String> {
    pg.sql(db, "SELECT string_agg(conname, ',' ORDER BY conname) FROM pg_constraint WHERE contype = 'f'")
}

fn exists(pg: &Postgres, db: &str) -> Result<bool> {
    Ok(pg.sql("postgres", &format!("SELECT count(*) FROM pg_database WHERE datname = '{db}'"))?.trim() == "1")
}

async fn policy(api: &Api, name: &str, compression: Value, recipients: Option<&str>) -> Result<String> {
    let body = json!({ "name": name, "daily": { "enabled": true, "keep_count": 7, "time": "02:00" },
        "compression": compression, "postgresql_format": "custom",
        "encryption": recipients.map(|r| json!({ "recipients": [r] })),
        "verification": { "after_each_backup": true } });
    Ok(api.post("/api/backup-policies", body).await?["id"].as_str().context("policy id")?.to_string())
}

async fn restore(api: &Api, body: Value) -> Result<Value> {
    let r = api.post("/api/backups/restore", body).await?;
    api.wait_restore(r["restore_id"].as_str().context("restore id")?, Duration::from_secs(120)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_archives_restore_whole_and_table_by_table() -> Result<()> {
    let az = std::thread::spawn(Azurite::start);
    let pg = Postgres::start(PG_PASSWORD)?;
    let az = az.join().unwrap()?;
    let dir = dilux_e2e::tempdir("custom-format");
    let (host_id, recipient, _) = age_keygen(&dir, "host.txt")?;
    let (app, _logs) =
        App::start_captured(&az.connection_string, &[("DILUX_AGE_IDENTITY_FILE", host_id.to_str().unwrap())])?;
    let api = Api::signed_in(&app, "admin").await?;
    let e = json!({ "name": "pg", "engine_type": "postgresql", "host": "127.0.0.1", "port": pg.port,
        "username": "postgres", "password": PG_PASSWORD });
    let engine = api.post("/api/engines", e).await?["id"].as_str().unwrap().to_string();

    // Every combination: zstd or gzip, encrypted or not.
    let (zstd, gzip) = (json!({ "algorithm": "zstd", "level": 3 }), json!({ "algorithm": "gzip", "level": 6 }));
    let combos = [
        ("cz", "dump.zst", policy(&api, "custom-zstd", zstd.clone(), None).await?),
        ("cg", "dump.gz", policy(&api, "custom-gzip", gzip.clone(), None).await?),
        ("cza", "dump.zst.age", policy(&api, "custom-zstd-age", zstd, Some(&recipient)).await?),
        ("cga", "dump.gz.age", policy(&api, "custom-gzip-age", gzip, Some(&recipient)).await?),
    ];
    let mut backups = vec![];
    for (db, format, policy_id) in &combos {
        pg.sql("postgres", &format!("CREATE DATABASE {db}"))?;
        pg.sql(db, FILL)?;
        let done = api.back_up(&engine, db, policy_id).await?;
        assert_eq!(
            (done["status"].as_str(), done["file_format"].as_str()),
            (Some("completed"), Some(*format)),
            "{done}"
        );
        assert_eq!(done["manifest_tables"], 3, "{done}");
        // What is stored is pg_dump's own archive under the compression (and age) the policy names.
        let (_, bytes) = api.download(done["blob_name"].as_str().unwrap()).await?;
        let compressed = match format.ends_with(".age") {
            false => bytes,
            true => {
                let file = dir.join(format!("{db}.age"));
                std::fs::write(&file, &bytes)?;
                let o = Command::new("age").arg("-d").arg("-i").arg(&host_id).arg(&file).output()?;
                assert!(o.status.success(), "age -d: {}", said(&o));
                o.stdout
            }
        };
        assert!(dilux_e2e::decompress(&compressed)?.starts_with(b"PGDMP"), "{db}: a pg_dump custom archive");
        backups.push((*db, done));
    }

    // Drills restore each with pg_restore and compare every table with the manifest.
    assert_eq!(app.tick("drills", None).await?["queued"], 4);
    for d in api.drills_done(4).await? {
        assert_eq!((d["status"].as_str(), d["verification"]["result"].as_str()), (Some("completed"), Some("passed")));
        assert_eq!(
            (&d["verification"]["tables_checked"], &d["verification"]["rows_checked"]),
            (&json!(3), &json!(5300))
        );
    }
    // Whole restores: every table identical, the sequences where they were, the materialized view filled.
    for (db, done) in &backups {
        let target = format!("{db}_back");
        let r = restore(&api, json!({ "blob_name": done["blob_name"], "target_database": target })).await?;
        assert_eq!((r["status"].as_str(), r["verification"]["result"].as_str()), (Some("completed"), Some("passed")));
        for t in TABLES {
            assert_eq!(digest(&pg, &target, t)?, digest(&pg, db, t)?, "{target}: {t}");
        }
        assert_eq!(pg.sql(&target, "SELECT n FROM sales.order_count")?.trim(), "2000");
        let next = pg.sql(&target, "INSERT INTO sales.orders (customer_id) VALUES (1) RETURNING id")?;
        assert_eq!(next.lines().next().unwrap_or_default().trim(), "2001", "identity continues");
    }

    // A selective restore (of an encrypted gzip archive): the chosen tables' rows into the whole schema.
    let cga = &backups[3].1;
    let body = json!({ "blob_name": cga["blob_name"], "target_database": "some_tables",
        "tables": ["sales.orders", "Order Items"] });
    let r = restore(&api, body).await?;
    let outcome = (r["status"].as_str(), r["verification"]["result"].as_str());
    assert_eq!(outcome, (Some("completed"), Some("passed")), "{r}");
    assert_eq!(r["tables"], json!(["sales.orders", "public.Order Items"]), "{r}");
    assert_eq!((&r["verification"]["tables_checked"], &r["verification"]["rows_checked"]), (&json!(2), &json!(5000)));
    for t in ["sales.orders", "\"Order Items\""] {
        assert_eq!(digest(&pg, "some_tables", t)?, digest(&pg, "cga", t)?, "{t}");
    }
    assert_eq!(pg.sql("some_tables", "SELECT count(*) FROM sales.customers")?.trim(), "0", "not chosen: empty");
    assert_eq!(pg.sql("some_tables", "SELECT count(*) FROM sales.big_orders")?.trim(), "1000", "the view is there");
    // The orders' key to the customers that did not come back is left out; the items' key to the orders holds.
    assert_eq!(foreign_keys(&pg, "cga")?.trim(), "Order Items_order_id_fkey,orders_customer_id_fkey");
    assert_eq!(foreign_keys(&pg, "some_tables")?.trim(), "Order Items_order_id_fkey");

    // A table the backup lacks fails the restore before anything is created, naming what it holds.
    let body = json!({ "blob_name": cga["blob_name"], "target_database": "lacking", "tables": ["sales.nope"] });
    let r = restore(&api, body).await?;
    assert_eq!(r["status"], "failed", "{r}");
    let why = r["error_message"].as_str().unwrap_or_default();
    assert!(why.contains("`sales.nope` is not in this backup") && why.contains("sales.orders"), "{why}");
    assert!(!exists(&pg, "lacking")?);

    // Plain SQL backups restore only whole; a selective restore never replaces.
    pg.sql("postgres", "CREATE DATABASE plain_one")?;
    pg.sql("plain_one", "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)")?;
    let plain = api.back_up(&engine, "plain_one", "production-standard").await?;
    assert_eq!(plain["file_format"], "sql.zst", "{plain}");
    let body = json!({ "blob_name": plain["blob_name"], "tables": ["t"] });
    let (s, e) = api.call(M::POST, "/api/backups/restore", Some(body)).await?;
    assert_eq!((s, e["error"]["code"].as_str()), (409, Some("not_selective")), "{e}");
    assert!(e.to_string().contains("postgresql_format"), "says how to get one: {e}");
    let body = json!({ "blob_name": cga["blob_name"], "mode": "replace", "confirm": "cga", "tables": ["t"] });
    let (s, e) = api.call(M::POST, "/api/backups/restore", Some(body)).await?;
    assert_eq!((s, e["error"]["field"].as_str()), (400, Some("tables")), "{e}");

    // pg_restore stops at the first error, in one transaction: a restore the target rejects keeps nothing.
    pg.sql("postgres", "CREATE DATABASE owned")?;
    pg.sql("postgres", "CREATE ROLE gone_owner")?;
    pg.sql("owned", "CREATE TABLE t (id int); INSERT INTO t VALUES (1); ALTER TABLE t OWNER TO gone_owner")?;
    let owned = api.back_up(&engine, "owned", &combos[0].2).await?;
    assert_eq!(owned["status"], "completed", "{owned}");
    pg.sql("owned", "REASSIGN OWNED BY gone_owner TO postgres")?;
    pg.sql("postgres", "DROP ROLE gone_owner")?;
    let r = restore(&api, json!({ "blob_name": owned["blob_name"], "target_database": "owned_back" })).await?;
    assert_eq!(r["status"], "failed", "{r}");
    let why = r["error_message"].as_str().unwrap_or_default();
    assert!(why.contains("gone_owner") && why.contains("nothing was kept"), "{why}");
    assert!(!exists(&pg, "owned_back")?);
    let file = dir.join("cg.dump.gz");
    std::fs::write(&file, api.download(backups[1].1["blob_name"].as_str().unwrap()).await?.1)?;
    drop(app);

    // With the app gone, dilux-restore restores a downloaded archive table by table.
    let o = Command::new(dilux_e2e::host_bin().with_file_name("dilux-restore"))
        .args(["--engine", "postgresql", "--host", "127.0.0.1", "--port", &pg.port.to_string(), "--user", "postgres"])
        .args(["--database", "cli_customers", "--table", "sales.customers", "--file"])
        .arg(&file)
        .args(["--sha256", backups[1].1["sha256"].as_str().unwrap()])
        .env("DILUX_RESTORE_PASSWORD", PG_PASSWORD)
        .output()?;
    assert!(o.status.success(), "{}", said(&o));
    assert_eq!(digest(&pg, "cli_customers", "sales.customers")?, digest(&pg, "cg", "sales.customers")?);
    assert_eq!(pg.sql("cli_customers", "SELECT count(*) FROM sales.orders")?.trim(), "0");
    Ok(())
}
