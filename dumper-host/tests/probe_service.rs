//! The probe service on a listener of its own, as a worker started with `--no-serve` runs it.

use std::sync::Arc;

use dilux_dumper_host::dump::DumpOptions;
use dilux_dumper_host::probe_service::{serve, ProbeService};

const TOKEN: &str = "test-dumper-token-0123456789abcdefghij";

async fn start(token: Option<&str>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let service = Arc::new(ProbeService::new(token.map(str::to_string), DumpOptions::default()).unwrap());
    tokio::spawn(serve(service, listener));
    format!("http://{addr}")
}

#[test]
fn a_short_dumper_token_is_refused_at_start() {
    let e = ProbeService::new(Some("short-token".into()), DumpOptions::default()).err().expect("refused");
    assert!(e.to_string().contains("`dumper_token` is shorter than 32 characters"), "{e}");
}

#[tokio::test]
async fn the_probe_service_alone_needs_the_dumper_token() {
    let base = start(Some(TOKEN)).await;
    let url = format!("{base}{}", dilux_domain::probe::PROBE_PATH);
    let http = reqwest::Client::new();

    assert_eq!(http.get(&url).send().await.unwrap().status(), 401);
    assert_eq!(http.get(&url).bearer_auth("guess").send().await.unwrap().status(), 401);
    assert_eq!(http.get(&url).bearer_auth(&TOKEN[..TOKEN.len() - 1]).send().await.unwrap().status(), 401);
    assert_eq!(http.post(&url).body("{}").send().await.unwrap().status(), 401);

    let r = http.get(&url).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let tools: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(tools["status"], "ok", "{tools}");

    let r = http.post(&url).bearer_auth(TOKEN).body("not json").send().await.unwrap();
    assert_eq!(r.status(), 400);
    // Only the probe: the app's routes are not served here.
    let r = http.get(format!("{base}/api/health")).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn without_a_token_connection_tests_are_off() {
    let base = start(None).await;
    let r = reqwest::get(format!("{base}{}", dilux_domain::probe::PROBE_PATH)).await.unwrap();
    assert_eq!(r.status(), 503);
}
