//! The API's error contract against the running app and real Azurite: bad input gets a 4xx naming
//! the field, and nothing is written when a request is refused.

use anyhow::Result;
use dilux_e2e::{App, Azurite};
use serde_json::{json, Value};

async fn call(
    c: &(reqwest::Client, String),
    method: reqwest::Method,
    url: String,
    body: Option<Value>,
) -> Result<(u16, Value)> {
    let mut r = c.0.request(method, url).bearer_auth(&c.1);
    if let Some(b) = body {
        r = r.header("content-type", "application/json").body(b.to_string());
    }
    let resp = r.send().await?;
    let s = resp.status().as_u16();
    Ok((s, resp.json().await.unwrap_or(Value::Null)))
}

#[tokio::test]
async fn bad_input_is_refused_with_the_field_named_and_nothing_written() -> Result<()> {
    let az = Azurite::start()?;
    let app = App::start(&az.connection_string)?;
    let c = (reqwest::Client::new(), app.token("admin").await?);
    let u = |p: &str| format!("{}{p}", app.url);
    use reqwest::Method as M;

    // Nothing listens on this port: backups of its databases fail fast as Unreachable.
    let closed_port = dilux_e2e::free_port();
    let engine = json!({
        "name": "pg", "engine_type": "postgresql", "host": "127.0.0.1", "port": closed_port,
        "username": "u", "password": "p",
    });
    let cases = [
        (json!({"name": "pg", "engine_type": "oracle", "host": "h"}), "engine_type"),
        (json!({"name": "pg", "engine_type": "postgresql", "host": "h", "port": 70000}), "port"),
        (json!({"name": "pg", "engine_type": "postgresql", "host": "h", "port": 0}), "port"),
        (json!({"name": "", "engine_type": "postgresql", "host": "h"}), "name"),
        (json!({"name": "pg", "engine_type": "postgresql", "host": "bad host"}), "host"),
        (json!({"name": "pg", "engine_type": "postgresql", "host": "h", "colour": "red"}), "colour"),
        (json!({"engine_type": "postgresql", "host": "h"}), "name"),
        (json!({"name": "pg", "engine_type": "postgresql", "host": "h", "username": "u"}), "password"),
    ];
    for (body, field) in cases {
        let (s, v) = call(&c, M::POST, u("/api/engines"), Some(body.clone())).await?;
        assert_eq!(s, 400, "{body} → {v}");
        assert_eq!(v["error"]["field"], field, "{body} → {v}");
        assert!(v["error"]["message"].as_str().unwrap().contains(field), "{v}");
    }
    let (s, v) = call(&c, M::GET, u("/api/engines"), None).await?;
    assert_eq!((s, v["total"].as_u64()), (200, Some(0)), "refused requests wrote nothing");

    let big = json!({"name": "x".repeat(70_000), "engine_type": "postgresql", "host": "h"});
    assert_eq!(call(&c, M::POST, u("/api/engines"), Some(big)).await?.0, 413);
    browser_facing_defences(&app.url)?;

    let (s, created) = call(&c, M::POST, u("/api/engines"), Some(engine.clone())).await?;
    assert_eq!(s, 201, "{created}");
    assert!(created.get("password").is_none() && created.get("password_sealed").is_none());
    let (s, dup) = call(&c, M::POST, u("/api/engines"), Some(engine)).await?;
    assert_eq!(s, 409, "the same server twice: {dup}");

    let (s, v) = call(&c, M::POST, u("/api/databases"), Some(json!({"engine_id": "nope", "name": "app"}))).await?;
    assert_eq!((s, v["error"]["field"].as_str()), (404, Some("engine_id")), "an id naming nothing: {v}");
    let id = created["id"].as_str().unwrap();
    let (s, db) = call(&c, M::POST, u("/api/databases"), Some(json!({"engine_id": id, "name": "app"}))).await?;
    assert_eq!(s, 201, "{db}");
    assert_eq!(db["engine_name"], "pg");
    let db_id = db["id"].as_str().unwrap();
    let (s, v) =
        call(&c, M::PUT, u(&format!("/api/databases/{db_id}")), Some(json!({"use_engine_credentials": false}))).await?;
    assert_eq!((s, v["error"]["field"].as_str()), (409, Some("use_engine_credentials")), "{v}");
    let (s, v) =
        call(&c, M::PUT, u(&format!("/api/databases/{db_id}")), Some(json!({"alias": "App DB", "enabled": false})))
            .await?;
    assert_eq!((s, v["alias"].as_str(), v["enabled"].as_bool()), (200, Some("App DB"), Some(false)), "{v}");
    let (s, _) = call(&c, M::DELETE, u(&format!("/api/engines/{id}")), None).await?;
    assert_eq!(s, 409, "an engine with databases is not deleted");

    // Editing a server: validation, a rotated password never echoed, own-credential databases moved over.
    let (s, v) = call(&c, M::PUT, u(&format!("/api/engines/{id}")), Some(json!({"port": 0}))).await?;
    assert_eq!((s, v["error"]["field"].as_str()), (400, Some("port")));
    let (s, v) = call(&c, M::PUT, u(&format!("/api/engines/{id}")), Some(json!({"colour": "red"}))).await?;
    assert_eq!((s, v["error"]["field"].as_str()), (400, Some("colour")));
    let own_credentials = json!({
        "engine_id": id, "name": "own", "use_engine_credentials": false, "username": "u2", "password": "own-secret",
    });
    let (s, own) = call(&c, M::POST, u("/api/databases"), Some(own_credentials)).await?;
    assert_eq!(s, 201, "{own}");
    let (s, v) = call(
        &c,
        M::PUT,
        u(&format!("/api/engines/{id}")),
        Some(json!({"password": "rotated-secret", "apply_to_all_databases": true})),
    )
    .await?;
    assert_eq!((s, v["databases_moved_to_server_credentials"].as_u64()), (200, Some(1)), "{v}");
    assert!(!v.to_string().contains("rotated-secret"));
    let (_, moved) = call(&c, M::GET, u(&format!("/api/databases/{}", own["id"].as_str().unwrap())), None).await?;
    assert_eq!(
        (moved["use_engine_credentials"].as_bool(), moved["username"].as_str()),
        (Some(true), Some("u")),
        "{moved}"
    );
    let (s, v) = call(&c, M::DELETE, u(&format!("/api/engines/{id}?cascade=maybe")), None).await?;
    assert_eq!((s, v["error"]["field"].as_str()), (400, Some("cascade")));
    // Cascade on a second server with two databases.
    let (_, e2) = call(
        &c,
        M::POST,
        u("/api/engines"),
        Some(json!({"name": "e2", "engine_type": "mysql", "host": "db2.internal", "username": "u", "password": "p"})),
    )
    .await?;
    let e2id = e2["id"].as_str().unwrap().to_string();
    for n in ["x", "y"] {
        assert_eq!(call(&c, M::POST, u("/api/databases"), Some(json!({"engine_id": e2id, "name": n}))).await?.0, 201);
    }
    let (s, v) = call(&c, M::DELETE, u(&format!("/api/engines/{e2id}?cascade=true")), None).await?;
    assert_eq!((s, v["databases_deleted"].as_u64()), (200, Some(2)), "{v}");
    let (_, left) = call(&c, M::GET, u("/api/databases"), None).await?;
    assert!(left["databases"].as_array().unwrap().iter().all(|d| d["engine_id"] != e2id.as_str()));
    assert_eq!(call(&c, M::DELETE, u(&format!("/api/databases/{}", own["id"].as_str().unwrap())), None).await?.0, 200);

    assert_eq!(call(&c, M::GET, u("/api/databases/missing"), None).await?.0, 404);
    assert_eq!(call(&c, M::POST, u("/api/databases/missing/backup"), None).await?.0, 404);
    assert_eq!(call(&c, M::GET, u("/api/backups?page_size=0"), None).await?.1["error"]["field"], "page_size");
    assert_eq!(call(&c, M::GET, u("/api/backups?status=done"), None).await?.1["error"]["field"], "status");
    assert_eq!(
        call(&c, M::GET, u("/api/backups/download?blob_name=../../etc/passwd"), None).await?.1["error"]["field"],
        "blob_name"
    );
    assert_eq!(
        call(&c, M::GET, u("/api/backups/download?blob_name=mysql/x/20260101_000000.sql.gz"), None).await?.0,
        404
    );
    assert_eq!(call(&c, M::PATCH, u("/api/engines"), None).await?.0, 405);

    // History: three backups that fail fast (nothing listens on the engine's port), paged two by two.
    let mut ids = Vec::new();
    for _ in 0..3 {
        let (s, job) = call(&c, M::POST, u(&format!("/api/databases/{db_id}/backup")), None).await?;
        assert_eq!(s, 202, "{job}");
        let (s, again) = call(&c, M::POST, u(&format!("/api/databases/{db_id}/backup")), None).await?;
        assert_eq!(
            (s, again["error"]["code"].as_str()),
            (409, Some("backup_in_progress")),
            "one backup at a time: {again}"
        );
        let id = job["backup_id"].as_str().unwrap().to_string();
        let t = std::time::Instant::now();
        loop {
            let (_, v) = call(&c, M::GET, u(&format!("/api/backups?database_id={db_id}")), None).await?;
            let row = v["backups"].as_array().unwrap().iter().find(|r| r["id"] == id.as_str()).cloned().unwrap();
            if row["status"] == "failed" {
                assert_eq!(row["error_class"], "Unreachable", "{row}");
                break;
            }
            assert!(t.elapsed() < std::time::Duration::from_secs(60), "backup never failed: {row}");
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        ids.push(id);
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await; // distinct blob-name seconds
    }
    let (_, p1) = call(&c, M::GET, u(&format!("/api/backups?database_id={db_id}&page_size=2")), None).await?;
    let cursor = p1["next_cursor"].as_str().expect("a second page exists").to_string();
    let (_, p2) =
        call(&c, M::GET, u(&format!("/api/backups?database_id={db_id}&page_size=2&cursor={cursor}")), None).await?;
    let got: Vec<&str> = p1["backups"]
        .as_array()
        .unwrap()
        .iter()
        .chain(p2["backups"].as_array().unwrap())
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    let newest_first: Vec<&str> = ids.iter().rev().map(String::as_str).collect();
    assert_eq!(got, newest_first, "pages are newest first, without gaps or repeats");
    assert!(p2["next_cursor"].is_null());
    let (_, failed_only) = call(&c, M::GET, u("/api/backups?status=completed"), None).await?;
    assert_eq!(failed_only["count"], 0);

    let (s, _) = call(&c, M::DELETE, u(&format!("/api/databases/{db_id}")), None).await?;
    assert_eq!(s, 200);
    assert_eq!(call(&c, M::DELETE, u(&format!("/api/engines/{id}")), None).await?.0, 200);

    // The UI is served at / by the static-files component.
    let page = c.0.get(u("/")).send().await?;
    assert_eq!(page.status().as_u16(), 200);
    assert!(page.text().await?.contains("Dilux Backup"));
    Ok(())
}

/// One raw HTTP/1.1 exchange: the status line and the headers of the answer.
fn raw(base: &str, request: &[u8]) -> Result<String> {
    use std::io::{Read, Write};
    let addr = base.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(20)))?;
    s.write_all(request)?;
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).to_string();
    Ok(text.split("\r\n\r\n").next().unwrap_or_default().to_lowercase())
}

/// What a browser elsewhere could try: a rebound DNS name, a body streamed without end, framing the UI.
fn browser_facing_defences(base: &str) -> Result<()> {
    let addr = base.trim_start_matches("http://");
    let rebound = raw(base, b"GET /api/health HTTP/1.1\r\nHost: evil.example.com\r\nConnection: close\r\n\r\n")?;
    assert!(rebound.starts_with("http/1.1 421"), "a foreign Host is refused: {rebound}");
    let own = raw(base, format!("GET /api/health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes())?;
    assert!(own.starts_with("http/1.1 200"), "{own}");
    // A chunked body (no Content-Length) is cut off at 64 KiB by the host, before any component reads it:
    // the answer comes without the body ever ending.
    let mut chunked = format!(
        "POST /api/engines HTTP/1.1\r\nHost: {addr}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    .into_bytes();
    for _ in 0..65 {
        chunked.extend_from_slice(format!("{:x}\r\n{}\r\n", 1024, "x".repeat(1024)).as_bytes());
    }
    let cut = raw(base, &chunked)?;
    assert!(cut.starts_with("http/1.1 413"), "{cut}");
    let ui = raw(base, format!("GET / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes())?;
    for header in [
        "content-security-policy: default-src 'self'; script-src 'self' 'wasm-unsafe-eval';",
        "frame-ancestors 'none'",
        "referrer-policy: no-referrer",
        "x-frame-options: deny",
    ] {
        assert!(ui.contains(header), "the UI sends {header}: {ui}");
    }
    Ok(())
}
