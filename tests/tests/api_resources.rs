//! The rest of the API surface against real servers: connection tests and discovery (real PostgreSQL
//! and MariaDB through the dumper-host), policies, settings, preferences, list filters and paging,
//! backup files, cascading deletes with backups, the audit trail and the status page.

use std::time::Duration;

use anyhow::Result;
use dilux_e2e::{Api, App, Azurite, Mariadb, Postgres};
use reqwest::Method as M;
use serde_json::{json, Value};

const PG_PASSWORD: &str = "pg-Pr0be-s3cret!";
const MARIA_PASSWORD: &str = "maria-Pr0be-s3cret";

fn names(v: &Value, key: &str) -> Vec<String> {
    v[key].as_array().unwrap().iter().map(|d| d["name"].as_str().or(d["alias"].as_str()).unwrap().to_string()).collect()
}

fn flags<'a>(v: &'a Value, name: &str) -> &'a Value {
    v["databases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == name)
        .unwrap_or_else(|| panic!("{name} not discovered: {v}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tests_discovery_and_configuration_against_real_servers() -> Result<()> {
    let az = std::thread::spawn(Azurite::start);
    let pg = std::thread::spawn(|| Postgres::start(PG_PASSWORD));
    let maria = std::thread::spawn(Mariadb::start);
    let (az, pg, maria) = (az.join().unwrap()?, pg.join().unwrap()?, maria.join().unwrap()?);
    let app = App::start(&az.connection_string)?;
    let api = Api::signed_in(&app, "admin").await?;
    let viewer = Api::signed_in(&app, "viewer").await?;
    for db in ["shop", "crm", "ledger"] {
        pg.sql("postgres", &format!("CREATE DATABASE {db}"))?;
    }
    pg.sql("shop", "CREATE TABLE t (id int); INSERT INTO t SELECT generate_series(1, 100)")?;
    maria.sql(
        "",
        &format!(
            "CREATE DATABASE inventory; CREATE DATABASE billing; \
             CREATE USER 'probe'@'127.0.0.1' IDENTIFIED BY '{MARIA_PASSWORD}'; \
             GRANT SELECT, SHOW VIEW, TRIGGER, LOCK TABLES, EVENT ON *.* TO 'probe'@'127.0.0.1';"
        ),
    )?;

    // ---- Connection tests, before and after saving.
    let shop_connection = json!({
        "engine_type": "postgresql", "host": "127.0.0.1", "port": pg.port,
        "username": "postgres", "password": PG_PASSWORD, "database": "shop",
    });
    let (s, t) = api.call(M::POST, "/api/databases/test-connection", Some(shop_connection)).await?;
    assert_eq!(s, 200, "{t}");
    assert_eq!(t["success"], true, "{t}");
    assert!(t["server_version"].as_str().unwrap().starts_with("PostgreSQL"), "{t}");
    let wrong_password = json!({
        "engine_type": "postgresql", "host": "127.0.0.1", "port": pg.port,
        "username": "postgres", "password": "wrong-password-123",
    });
    let (_, t) = api.call(M::POST, "/api/databases/test-connection", Some(wrong_password)).await?;
    assert_eq!((t["success"].as_bool(), t["error_type"].as_str()), (Some(false), Some("AuthFailed")), "{t}");
    assert!(!t.to_string().contains("wrong-password-123"), "the password never comes back: {t}");
    let missing_database = json!({
        "engine_type": "postgresql", "host": "127.0.0.1", "port": pg.port,
        "username": "postgres", "password": PG_PASSWORD, "database": "nope",
    });
    let (_, t) = api.call(M::POST, "/api/databases/test-connection", Some(missing_database)).await?;
    assert_eq!(t["error_type"], "NotFound", "{t}");
    let (s, t) = api
        .call(
            M::POST,
            "/api/databases/test-connection",
            Some(json!({"engine_type": "postgresql", "host": "127.0.0.1", "username": "u"})),
        )
        .await?;
    assert_eq!((s, t["error"]["field"].as_str()), (400, Some("password")), "{t}");
    let (s, t) = api
        .call(M::POST, "/api/databases/test-connection", Some(json!({"engine_type": "oracle", "host": "h"})))
        .await?;
    assert_eq!((s, t["error"]["field"].as_str()), (400, Some("engine_type")), "{t}");

    let pg_engine = json!({
        "name": "pg", "engine_type": "postgresql", "host": "127.0.0.1", "port": pg.port,
        "username": "postgres", "password": PG_PASSWORD,
    });
    let pge = api.post("/api/engines", pg_engine).await?;
    let pgid = pge["id"].as_str().unwrap().to_string();
    let maria_engine = json!({
        "name": "maria", "engine_type": "mysql", "host": "127.0.0.1", "port": maria.port,
        "username": "probe", "password": MARIA_PASSWORD,
    });
    let me = api.post("/api/engines", maria_engine).await?;
    let mid = me["id"].as_str().unwrap().to_string();
    let t = api.post(&format!("/api/engines/{pgid}/test"), json!(null)).await?;
    assert_eq!(t["success"], true, "{t}");
    assert!(t["duration_ms"].as_u64().is_some(), "{t}");
    let t = api.post(&format!("/api/engines/{mid}/test"), json!(null)).await?;
    assert_eq!(t["success"], true, "{t}");
    assert!(t["server_version"].as_str().unwrap().contains("MariaDB"), "{t}");

    // Viewers never see any part of a credential; nobody ever gets a password back.
    let (_, as_viewer) = viewer.call(M::GET, &format!("/api/engines/{pgid}"), None).await?;
    assert!(as_viewer.get("username").is_none() && as_viewer["has_password"] == true, "{as_viewer}");
    assert_eq!(api.call(M::GET, &format!("/api/engines/{pgid}"), None).await?.1["username"], "postgres");

    // Two people edit the same server: the second, working from what they loaded before the first
    // saved, gets 412 and nothing of theirs is written.
    let http = reqwest::Client::new();
    let token = app.token("admin").await?;
    let loaded = http.get(format!("{}/api/engines/{pgid}", app.url)).bearer_auth(&token).send().await?;
    let etag = loaded.headers().get("etag").expect("GET answers an ETag").to_str()?.to_string();
    let first = http
        .put(format!("{}/api/engines/{pgid}", app.url))
        .bearer_auth(&token)
        .header("if-match", &etag)
        .json(&json!({"name": "pg main"}))
        .send()
        .await?;
    assert_eq!(first.status(), 200);
    let second = http
        .put(format!("{}/api/engines/{pgid}", app.url))
        .bearer_auth(&token)
        .header("if-match", &etag)
        .json(&json!({"name": "pg stale"}))
        .send()
        .await?;
    assert_eq!(second.status(), 412);
    assert_eq!(api.call(M::GET, &format!("/api/engines/{pgid}"), None).await?.1["name"], "pg main");
    let (_, doc) = api.call(M::GET, "/api/openapi.json", None).await?;
    assert!(doc["paths"]["/api/engines/{id}"]["put"]["responses"]["412"].is_object(), "412 is documented");

    // ---- Discovery: system databases flagged, registered ones marked, a chosen subset added at once.
    let d = api.post(&format!("/api/engines/{pgid}/discover"), json!(null)).await?;
    for sys in ["postgres", "template0", "template1"] {
        assert_eq!(flags(&d, sys)["system"], true, "{sys}");
    }
    for user_db in ["shop", "crm", "ledger"] {
        assert_eq!(
            (flags(&d, user_db)["system"].as_bool(), flags(&d, user_db)["exists"].as_bool()),
            (Some(false), Some(false))
        );
    }
    let (s, v) =
        api.call(M::POST, &format!("/api/engines/{pgid}/discover"), Some(json!({"add": ["shop", "missing"]}))).await?;
    assert_eq!((s, v["error"]["field"].as_str()), (400, Some("add")), "{v}");
    assert_eq!(api.call(M::GET, "/api/databases", None).await?.1["total"], 0, "nothing half-added");
    let d = api
        .post(&format!("/api/engines/{pgid}/discover"), json!({"add": ["shop", "crm"], "policy_id": "development"}))
        .await?;
    assert_eq!(d["added"].as_array().unwrap().len(), 2, "{d}");
    assert_eq!(flags(&d, "shop")["exists"], true);
    let d = api.post(&format!("/api/engines/{pgid}/discover"), json!({"add": ["shop"]})).await?;
    assert_eq!(d["added"].as_array().unwrap().len(), 0, "already registered ones are not added twice");
    assert!(flags(&d, "crm")["database_id"].is_string());
    let d = api.post(&format!("/api/engines/{mid}/discover"), json!({"add": ["inventory"]})).await?;
    for sys in ["mysql", "information_schema", "performance_schema"] {
        assert_eq!(flags(&d, sys)["system"], true, "{sys}: {d}");
    }
    assert_eq!(
        (flags(&d, "billing")["system"].as_bool(), flags(&d, "inventory")["exists"].as_bool()),
        (Some(false), Some(true))
    );

    // A database test uses the credentials its backups would use.
    let listed = viewer.call(M::GET, "/api/databases", None).await?.1.to_string();
    assert!(!listed.contains("\"username\"") && !listed.contains(PG_PASSWORD), "{listed}");
    let dbs = api.call(M::GET, "/api/databases?search=shop", None).await?.1;
    let shop = dbs["databases"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(dbs["databases"][0]["policy_id"], "development");
    let t = api.post(&format!("/api/databases/{shop}/test"), json!(null)).await?;
    assert_eq!((t["success"].as_bool(), t["credentials"].as_str()), (Some(true), Some("server")), "{t}");
    let ledger = json!({
        "engine_id": pgid, "name": "ledger", "use_engine_credentials": false,
        "username": "postgres", "password": "not-the-password",
    });
    let own = api.post("/api/databases", ledger).await?;
    let t = api.post(&format!("/api/databases/{}/test", own["id"].as_str().unwrap()), json!(null)).await?;
    assert_eq!(
        (t["success"].as_bool(), t["error_type"].as_str(), t["credentials"].as_str()),
        (Some(false), Some("AuthFailed"), Some("database")),
        "{t}"
    );

    // ---- Database filters and paging.
    let q = |p: &str| {
        let (api, path) = (&api, format!("/api/databases?{p}"));
        async move { api.call(M::GET, &path, None).await }
    };
    assert_eq!(names(&q("engine_type=mysql").await?.1, "databases"), vec!["inventory"]);
    assert_eq!(names(&q(&format!("engine_id={pgid}")).await?.1, "databases"), vec!["crm", "ledger", "shop"]);
    assert_eq!(names(&q("policy_id=development").await?.1, "databases"), vec!["crm", "shop"]);
    assert_eq!(names(&q("search=MARIA").await?.1, "databases"), vec!["inventory"], "search covers the server name");
    let page = q("page_size=2&page=2").await?.1;
    assert_eq!(
        (names(&page, "databases"), page["total"].as_u64(), page["pages"].as_u64()),
        (vec!["ledger".to_string(), "shop".to_string()], Some(4), Some(2))
    );
    api.call(M::PUT, &format!("/api/databases/{shop}"), Some(json!({"enabled": false}))).await?;
    assert_eq!(names(&q("enabled=false").await?.1, "databases"), vec!["shop"]);
    let (s, v) = q("enabled=maybe").await?;
    assert_eq!((s, v["error"]["field"].as_str()), (400, Some("enabled")));
    let (s, v) = q("page_size=0").await?;
    assert_eq!((s, v["error"]["field"].as_str()), (400, Some("page_size")));
    let engines = api.call(M::GET, "/api/engines?engine_type=postgresql", None).await?.1;
    assert_eq!(
        (engines["total"].as_u64(), engines["engines"][0]["database_count"].as_u64()),
        (Some(1), Some(3)),
        "{engines}"
    );
    api.call(M::PUT, &format!("/api/databases/{shop}"), Some(json!({"enabled": true}))).await?;

    // ---- Policies: seeded, summarized, counted; custom ones validated; system ones never deleted.
    let p = viewer.call(M::GET, "/api/backup-policies", None).await?.1;
    let summary = |id: &str| {
        p["policies"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["id"] == id)
            .map(|x| (x["summary"].as_str().unwrap().to_string(), x["database_count"].as_u64().unwrap()))
            .unwrap()
    };
    assert_eq!(summary("production-critical").0, "24h/14d/8w/12m/3y");
    assert_eq!(
        summary("production-standard"),
        ("12h/7d/4w/2m/1y".to_string(), 2),
        "ledger and inventory use the default"
    );
    assert_eq!(summary("development"), ("7d/2w".to_string(), 2));
    let (s, v) = api
        .call(
            M::POST,
            "/api/backup-policies",
            Some(json!({"name": "bad", "daily": {"enabled": true, "keep_count": 3, "time": "25:00"}})),
        )
        .await?;
    assert_eq!((s, v["error"]["field"].as_str()), (400, Some("daily.time")), "{v}");
    let (s, v) = api
        .call(
            M::POST,
            "/api/backup-policies",
            Some(json!({"name": "bad", "daily": {"enabled": true, "keep_count": 3, "time": "01:00", "colour": "red"}})),
        )
        .await?;
    assert_eq!((s, v["error"]["field"].as_str()), (400, Some("daily.colour")), "{v}");
    let (s, v) = api.call(M::POST, "/api/backup-policies", Some(json!({"name": "nothing"}))).await?;
    assert_eq!(s, 400, "a policy that keeps nothing is refused: {v}");
    let nightly = json!({
        "name": "Nightly", "description": "nightly for a month",
        "daily": {"enabled": true, "keep_count": 30, "time": "23:30"},
        "monthly": {"enabled": true, "keep_count": 6, "time": "04:00", "day_of_month": 1},
    });
    let custom = api.post("/api/backup-policies", nightly).await?;
    assert_eq!((custom["summary"].as_str(), custom["is_system"].as_bool()), (Some("30d/6m"), Some(false)));
    let cid = custom["id"].as_str().unwrap().to_string();
    assert_eq!(
        api.call(
            M::POST,
            "/api/backup-policies",
            Some(json!({"name": "nightly", "daily": {"enabled": true, "keep_count": 1, "time": "01:00"}}))
        )
        .await?
        .0,
        409
    );
    let (s, v) = api.call(M::DELETE, "/api/backup-policies/development", None).await?;
    assert_eq!((s, v["error"]["code"].as_str()), (409, Some("system_policy")));
    let (s, v) = api
        .call(
            M::PUT,
            "/api/backup-policies/development",
            Some(json!({"name": "Development", "daily": {"enabled": true, "keep_count": 3, "time": "02:00"}})),
        )
        .await?;
    assert_eq!((s, v["summary"].as_str(), v["is_system"].as_bool()), (200, Some("3d"), Some(true)), "{v}");
    api.call(M::PUT, &format!("/api/databases/{shop}"), Some(json!({"policy_id": cid}))).await?;
    let (s, v) = api.call(M::DELETE, &format!("/api/backup-policies/{cid}"), None).await?;
    assert_eq!((s, v["error"]["code"].as_str()), (409, Some("policy_in_use")), "{v}");
    api.call(M::PUT, &format!("/api/databases/{shop}"), Some(json!({"policy_id": "development"}))).await?;
    assert_eq!(api.call(M::DELETE, &format!("/api/backup-policies/{cid}"), None).await?.0, 200);
    assert_eq!(api.call(M::GET, &format!("/api/backup-policies/{cid}"), None).await?.0, 404);

    // ---- Settings and preferences.
    let s0 = viewer.call(M::GET, "/api/settings", None).await?.1;
    assert_eq!(
        (s0["access_requests_enabled"].as_bool(), s0["default_policy_id"].as_str()),
        (Some(true), Some("production-standard"))
    );
    let (s, v) = api.call(M::PUT, "/api/settings", Some(json!({"default_policy_id": "nope"}))).await?;
    assert_eq!((s, v["error"]["field"].as_str()), (404, Some("default_policy_id")));
    let (s, v) = api.call(M::PUT, "/api/settings", Some(json!({"theme": "dark"}))).await?;
    assert_eq!((s, v["error"]["field"].as_str()), (400, Some("theme")));
    let v = api
        .call(M::PUT, "/api/settings", Some(json!({"dark_mode": true, "default_policy_id": "production-critical"})))
        .await?
        .1;
    assert_eq!(v["updated_by"], "admin@example.com");
    let billing = api.post("/api/databases", json!({"engine_id": mid, "name": "billing"})).await?;
    assert_eq!(billing["policy_id"], "production-critical", "new databases get the default from settings");
    assert_eq!(
        viewer.call(M::GET, "/api/users/me/preferences", None).await?.1,
        json!({"dark_mode": true, "page_size": 25}),
        "app theme until chosen"
    );
    let (s, v) = viewer.call(M::PUT, "/api/users/me/preferences", Some(json!({"page_size": 5}))).await?;
    assert_eq!((s, v["error"]["field"].as_str()), (400, Some("page_size")));
    viewer.call(M::PUT, "/api/users/me/preferences", Some(json!({"dark_mode": false, "page_size": 50}))).await?;
    assert_eq!(
        viewer.call(M::GET, "/api/users/me", None).await?.1["preferences"],
        json!({"dark_mode": false, "page_size": 50})
    );
    assert_eq!(
        api.call(M::GET, "/api/users/me", None).await?.1["preferences"]["page_size"],
        25,
        "preferences are per user"
    );

    // ---- Backups: history filters, files, cascade with backups.
    let inventory = names_ids(&api, "engine_type=mysql").await?;
    let mut ids = Vec::new();
    for db in [shop.as_str(), shop.as_str(), inventory[0].1.as_str()] {
        let job = api.post(&format!("/api/databases/{db}/backup"), json!(null)).await?;
        let row = api.wait_final(db, job["backup_id"].as_str().unwrap(), Duration::from_secs(120)).await?;
        assert_eq!(row["status"], "completed", "{row}");
        ids.push(row);
    }
    let h = |p: String| {
        let api = &api;
        async move { api.call(M::GET, &format!("/api/backups?{p}"), None).await }
    };
    assert_eq!(h(format!("database_id={shop},{}", inventory[0].1)).await?.1["count"], 3);
    assert_eq!(h("engine_type=mysql".into()).await?.1["count"], 1);
    assert_eq!(h("triggered_by=manual&status=completed".into()).await?.1["count"], 3);
    assert_eq!(h("triggered_by=scheduler".into()).await?.1["count"], 0);
    let tomorrow = (chrono::Utc::now() + chrono::Duration::days(1)).format("%Y-%m-%d").to_string();
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    assert_eq!(h(format!("from={tomorrow}&to={tomorrow}")).await?.1["count"], 0);
    assert_eq!(h(format!("from={today}&to={today}")).await?.1["count"], 3);
    let (s, v) = h(format!("from={tomorrow}&to={today}")).await?;
    assert_eq!((s, v["count"].as_u64()), (200, Some(0)), "an empty range finds nothing: {v}");
    let (s, v) = h("triggered_by=robot".into()).await?;
    assert_eq!((s, v["error"]["field"].as_str()), (400, Some("triggered_by")));
    let newest_first = h(format!("database_id={shop}")).await?.1;
    assert!(newest_first["backups"][0]["created_at"].as_str() > newest_first["backups"][1]["created_at"].as_str());

    let files = api.call(M::GET, &format!("/api/backups/files?database_id={shop}&page_size=1"), None).await?.1;
    assert_eq!(files["count"], 1, "{files}");
    assert!(files["files"][0]["size_bytes"].as_u64().unwrap() > 0);
    let marker = files["next_marker"].as_str().expect("a second page").to_string();
    let rest = api
        .call(M::GET, &format!("/api/backups/files?database_id={shop}&marker={}", urlencode(&marker)), None)
        .await?
        .1;
    assert_eq!(rest["count"], 1, "{rest}");
    assert_ne!(rest["files"][0]["name"], files["files"][0]["name"]);

    // Deleting a database with its backups removes files and history; without, both stay.
    let (s, v) = api.call(M::DELETE, &format!("/api/databases/{shop}?delete_backups=true"), None).await?;
    assert_eq!((s, v["backups_deleted"].as_u64()), (200, Some(2)), "{v}");
    assert_eq!(api.call(M::GET, &format!("/api/backups/files?prefix=postgresql/{shop}/"), None).await?.1["count"], 0);
    assert_eq!(h(format!("database_id={shop}")).await?.1["count"], 0);
    let (s, v) = api.call(M::DELETE, &format!("/api/engines/{mid}?delete_backups=true"), None).await?;
    assert_eq!((s, v["error"]["code"].as_str()), (409, Some("has_databases")), "backups go only with cascade: {v}");
    let (s, v) = api.call(M::DELETE, &format!("/api/engines/{mid}?cascade=true&delete_backups=true"), None).await?;
    assert_eq!((s, v["databases_deleted"].as_u64(), v["backups_deleted"].as_u64()), (200, Some(2), Some(1)), "{v}");
    assert_eq!(api.call(M::GET, "/api/backups/files?prefix=mysql/", None).await?.1["count"], 0);

    // ---- Audit trail: filters, lists, stats.
    let a = api.call(M::GET, "/api/audit?action=policy_created&status=success", None).await?.1;
    assert_eq!(a["count"], 1, "one successful policy creation: {a}");
    let failed = api.call(M::GET, "/api/audit?action=policy_created&status=failed", None).await?.1;
    assert!(failed["count"].as_u64().unwrap() >= 3);
    let a = api.call(M::GET, "/api/audit?resource_type=settings", None).await?.1;
    assert_eq!(a["logs"][0]["user_email"], "admin@example.com");
    assert_eq!(a["logs"][0]["details"]["status_code"], 200, "details come back as JSON: {a}");
    let page1 = api.call(M::GET, "/api/audit?page_size=3", None).await?.1;
    let page2 = api
        .call(
            M::GET,
            &format!("/api/audit?page_size=3&cursor={}", urlencode(page1["next_cursor"].as_str().unwrap())),
            None,
        )
        .await?
        .1;
    assert!(page1["logs"][2]["timestamp"].as_str() >= page2["logs"][0]["timestamp"].as_str());
    assert_ne!(page1["logs"][2]["id"], page2["logs"][0]["id"]);
    let actions = api.call(M::GET, "/api/audit/actions", None).await?.1;
    for want in ["policy_created", "backup_deleted_retention", "access_request_approved", "settings_updated"] {
        assert!(actions["actions"].as_array().unwrap().contains(&json!(want)), "{want}");
    }
    assert!(api.call(M::GET, "/api/audit/resource-types", None).await?.1["resource_types"]
        .as_array()
        .unwrap()
        .contains(&json!("access_request")));
    let stats = api.call(M::GET, "/api/audit/stats", None).await?.1;
    assert_eq!(stats["by_action"]["backup_triggered"], 3, "{stats}");
    assert!(stats["by_status"]["failed"].as_u64().unwrap() >= 3);
    let (s, v) = api.call(M::GET, "/api/audit?status=maybe", None).await?;
    assert_eq!((s, v["error"]["field"].as_str()), (400, Some("status")));

    // ---- Status: the dumper-host answers with its tools; the scheduler's last run shows.
    let st = viewer.call(M::GET, "/api/system-status", None).await?.1;
    assert_eq!(st["dumper_host"]["reachable"], true, "{st}");
    assert!(!st["dumper_host"]["postgresql_client_majors"].as_array().unwrap().is_empty(), "{st}");
    let before = st["scheduler"]["last_tick"]["at"].as_str().map(str::to_string);
    let r = reqwest::Client::new()
        .post(format!("{}/internal/ticks/scheduler", app.url))
        .bearer_auth(dilux_e2e::TICK_TOKEN)
        .send()
        .await?;
    assert_eq!(r.status(), 200);
    let st = viewer.call(M::GET, "/api/system-status", None).await?.1;
    assert_eq!(st["scheduler"]["last_tick"]["ok"], true, "{st}");
    assert!(
        st["scheduler"]["last_tick"]["at"].as_str().map(str::to_string) > before,
        "the tick just run is the last one: {st}"
    );
    Ok(())
}

async fn names_ids(api: &Api, query: &str) -> Result<Vec<(String, String)>> {
    let v = api.call(M::GET, &format!("/api/databases?{query}"), None).await?.1;
    Ok(v["databases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["name"].as_str().unwrap().to_string(), d["id"].as_str().unwrap().to_string()))
        .collect())
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The dumper-host's internal endpoint is not open to anyone: it needs the dumper token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_probe_endpoint_needs_the_dumper_token() -> Result<()> {
    let az = Azurite::start()?;
    let app = App::start(&az.connection_string)?;
    let http = reqwest::Client::new();
    let url = format!("{}/internal/dumper/probe", app.url);
    let body = json!({"engine_type": "postgresql", "host": "127.0.0.1", "port": 1, "username": "u", "password": "p"});
    assert_eq!(http.post(&url).json(&body).send().await?.status(), 401);
    assert_eq!(http.post(&url).bearer_auth("guess").json(&body).send().await?.status(), 401);
    let r = http.post(&url).bearer_auth(dilux_e2e::DUMPER_TOKEN).json(&body).send().await?;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await?;
    assert_eq!((v["success"].as_bool(), v["error_type"].as_str()), (Some(false), Some("Unreachable")), "{v}");

    // A fake PostgreSQL server asking for a cleartext password never gets one: SCRAM is required.
    let fake = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = fake.local_addr()?.port();
    let server = std::thread::spawn(move || fake_cleartext_server(fake));
    let body = json!({"engine_type": "postgresql", "host": "127.0.0.1", "port": port, "username": "u",
        "password": "the-real-password"});
    let v: Value = http.post(&url).bearer_auth(dilux_e2e::DUMPER_TOKEN).json(&body).send().await?.json().await?;
    assert_eq!(v["success"], false, "{v}");
    assert!(v["message"].as_str().unwrap_or_default().contains("scram-sha-256"), "says why: {v}");
    let received = server.join().unwrap();
    assert!(!received.windows(17).any(|w| w == b"the-real-password"), "the password reached the fake server");
    Ok(())
}

/// Accepts connections for a few seconds, answers SSLRequest with "no", asks for a cleartext password, and
/// returns everything the clients sent.
fn fake_cleartext_server(listener: std::net::TcpListener) -> Vec<u8> {
    use std::io::{Read, Write};
    listener.set_nonblocking(true).unwrap();
    let mut seen = Vec::new();
    let until = std::time::Instant::now() + std::time::Duration::from_secs(8);
    while std::time::Instant::now() < until {
        let Ok((mut c, _)) = listener.accept() else {
            std::thread::sleep(std::time::Duration::from_millis(20));
            continue;
        };
        c.set_nonblocking(false).unwrap();
        c.set_read_timeout(Some(std::time::Duration::from_secs(2))).unwrap();
        let mut buf = [0u8; 4096];
        loop {
            let n = match c.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            seen.extend_from_slice(&buf[..n]);
            // SSLRequest / GSSENCRequest (8 bytes, code 1234.567x): "not supported".
            if n == 8 && buf[4..6] == [0x04, 0xd2] {
                let _ = c.write_all(b"N");
                continue;
            }
            // The startup message: AuthenticationCleartextPassword.
            let _ = c.write_all(&[b'R', 0, 0, 0, 8, 0, 0, 0, 3]);
        }
    }
    seen
}
