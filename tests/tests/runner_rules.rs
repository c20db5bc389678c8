//! The local Spin runner's rules, end to end: a component may only reach the hosts its manifest
//! allows, and tick routes are called on their timer with the tick token.

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use dilux_e2e::{root, tempdir, App, Azurite};

#[tokio::test]
async fn a_component_cannot_reach_hosts_its_manifest_does_not_allow() -> Result<()> {
    let az = Azurite::start()?;
    let r = root();
    let manifest = std::fs::read_to_string(r.join("spin.toml"))?
        .replace("\"http://127.0.0.1:*\",", "")
        .replace("source = \"target/", &format!("source = \"{}/target/", r.display()))
        .replace("source = \"ui/", &format!("source = \"{}/ui/", r.display()));
    let path = tempdir("manifest").join("spin.toml");
    std::fs::write(&path, manifest)?;
    let app = App::start_with(&az.connection_string, &path, &[])?;
    let token = app.token("viewer").await?;
    let resp = reqwest::Client::new().get(format!("{}/api/engines", app.url)).bearer_auth(token).send().await?;
    assert_eq!(resp.status().as_u16(), 503, "storage on a host not in allowed_outbound_hosts must be unreachable");
    let body: serde_json::Value = resp.json().await?;
    assert_eq!(body["error"]["code"], "storage_unavailable", "{body}");
    // Health needs no storage, so the component itself runs.
    assert_eq!(reqwest::get(format!("{}/api/health", app.url)).await?.status().as_u16(), 200);
    Ok(())
}

#[tokio::test]
async fn tick_routes_are_called_on_their_timer_with_the_token() -> Result<()> {
    // A stand-in for the app: records each request line and authorization header.
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let s = seen.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten().take(3) {
            let mut conn = conn;
            let mut buf = [0u8; 4096];
            let n = conn.read(&mut buf).unwrap_or(0);
            let req = String::from_utf8_lossy(&buf[..n]).to_string();
            let line = req.lines().next().unwrap_or("").to_string();
            let auth =
                req.lines().find(|l| l.to_ascii_lowercase().starts_with("authorization:")).unwrap_or("").to_string();
            s.lock().unwrap().push(format!("{line} | {auth}"));
            let _ = conn.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        }
    });
    let ticks = vec![dilux_dumper_host::manifest::Tick { route: "/internal/tick".into(), every_seconds: 1 }];
    dilux_dumper_host::server::spawn_ticks(&ticks, format!("http://{addr}"), Some("tok-123".into()));
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let seen = seen.lock().unwrap().clone();
    assert!(seen.len() >= 2, "expected a tick a second, got {seen:?}");
    for s in &seen {
        assert!(s.starts_with("POST /internal/tick HTTP/1.1"), "{s}");
        assert!(s.to_ascii_lowercase().ends_with("authorization: bearer tok-123"), "{s}");
    }
    Ok(())
}
