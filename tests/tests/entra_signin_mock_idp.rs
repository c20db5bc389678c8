//! Entra ID sign-in against a MOCK identity provider (Entra ID cannot run here): a local endpoint
//! publishing RS256 signing keys the way Entra does. The app validates signature, issuer, audience and
//! expiry and the API's scope; only the configured first admin becomes admin, strangers get 403 until an
//! admin registers them by email (claimed only with an address the tenant verified); the last admin cannot
//! be removed; keys are cached, refetched on rotation, and not refetched for every unknown key id.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::Result;
use dilux_e2e::{root, App, Azurite};
use jwt_simple::prelude::*;

const TENANT: &str = "tenant-1";
const CLIENT: &str = "client-1";

struct MockEntra {
    url: String,
    jwks: Arc<Mutex<String>>,
    hits: Arc<AtomicUsize>,
}

fn jwks(keys: &[&RS256KeyPair]) -> String {
    let b64 = |b: &[u8]| Base64UrlSafeNoPadding::encode_to_string(b).unwrap();
    let ks: Vec<serde_json::Value> = keys
        .iter()
        .map(|k| {
            let c = k.public_key().to_components();
            serde_json::json!({
                "kty": "RSA", "use": "sig", "kid": k.key_id().clone().unwrap(), "n": b64(&c.n), "e": b64(&c.e)
            })
        })
        .collect();
    serde_json::json!({ "keys": ks }).to_string()
}

impl MockEntra {
    fn start(initial: String) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let jwks = Arc::new(Mutex::new(initial));
        let hits = Arc::new(AtomicUsize::new(0));
        let (j, h) = (jwks.clone(), hits.clone());
        std::thread::spawn(move || {
            for mut conn in listener.incoming().flatten() {
                let mut buf = [0u8; 8192];
                let n = conn.read(&mut buf).unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]).to_string();
                let (status, body) = if req.starts_with(&format!("GET /{TENANT}/discovery/v2.0/keys ")) {
                    h.fetch_add(1, Ordering::SeqCst);
                    ("200 OK", j.lock().unwrap().clone())
                } else {
                    ("404 Not Found", "{}".to_string())
                };
                let _ = write!(
                    conn,
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\n\
                     content-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        MockEntra { url, jwks, hits }
    }

    fn token(&self, key: &RS256KeyPair, oid: &str, audience: &str, valid: bool) -> String {
        self.token_with(key, oid, audience, valid, serde_json::json!({ "scp": "access_as_user" }))
    }

    /// A token with `extra` claims beside `oid` and `preferred_username` (no scope unless `extra` has one).
    fn token_with(
        &self,
        key: &RS256KeyPair,
        oid: &str,
        audience: &str,
        valid: bool,
        extra: serde_json::Value,
    ) -> String {
        let mut custom = serde_json::json!({ "oid": oid, "preferred_username": format!("{oid}@contoso.com") });
        custom.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        let mut claims = Claims::with_custom_claims(custom, Duration::from_hours(1))
            .with_issuer(format!("{}/{TENANT}/v2.0", self.url))
            .with_audience(audience);
        if !valid {
            claims.issued_at = Some(UnixTimeStamp::from_secs(1_000_000));
            claims.invalid_before = Some(UnixTimeStamp::from_secs(1_000_000));
            claims.expires_at = Some(UnixTimeStamp::from_secs(1_003_600));
        }
        key.sign(claims).unwrap()
    }
}

async fn status(app: &App, method: reqwest::Method, path: &str, token: &str) -> Result<(u16, serde_json::Value)> {
    let host = format!("h{}", dilux_e2e::free_port());
    send(app, method, path, token, serde_json::json!({"name": "e", "engine_type": "mysql", "host": host})).await
}

async fn send(
    app: &App,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: serde_json::Value,
) -> Result<(u16, serde_json::Value)> {
    let r = reqwest::Client::new()
        .request(method, format!("{}{path}", app.url))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await?;
    let s = r.status().as_u16();
    Ok((s, r.json().await.unwrap_or_default()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entra_tokens_are_validated_and_the_first_user_becomes_admin() -> Result<()> {
    let k1 = RS256KeyPair::generate(2048)?.with_key_id("k1");
    let k2 = RS256KeyPair::generate(2048)?.with_key_id("k2");
    let idp = MockEntra::start(jwks(&[&k1]));
    let az = Azurite::start()?;
    let app = App::start_with(
        &az.connection_string,
        &root().join("spin.toml"),
        &[
            ("SPIN_VARIABLE_AUTH_MODE", "entra"),
            ("SPIN_VARIABLE_ENTRA_TENANT_ID", TENANT),
            ("SPIN_VARIABLE_ENTRA_CLIENT_ID", CLIENT),
            ("SPIN_VARIABLE_ENTRA_AUTHORITY", &idp.url),
            ("SPIN_VARIABLE_ENTRA_FIRST_ADMIN", "alice"),
        ],
    )?;
    use reqwest::Method as M;

    // Whoever signs in first is not admin: only the configured one is.
    let started = std::time::Instant::now();
    let mallory = idp.token(&k1, "mallory", CLIENT, true);
    let (s, v) = status(&app, M::GET, "/api/engines", &mallory).await?;
    assert_eq!((s, v["error"]["code"].as_str()), (403, Some("access_requested")), "{v}");
    let alice = idp.token(&k1, "alice", CLIENT, true);
    assert_eq!(status(&app, M::GET, "/api/engines", &alice).await?.0, 200, "the first admin signs in");
    assert_eq!(status(&app, M::POST, "/api/engines", &alice).await?.0, 201, "and is admin");
    // A token for this audience but without the API's scope or app role is refused.
    let (s, v) =
        status(&app, M::GET, "/api/engines", &idp.token_with(&k1, "alice", CLIENT, true, serde_json::json!({})))
            .await?;
    assert_eq!((s, v["error"]["code"].as_str()), (403, Some("no_access")), "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("access_as_user"), "{v}");
    let app_token = idp.token_with(&k1, "alice", CLIENT, true, serde_json::json!({ "roles": ["Dilux.Access"] }));
    assert_eq!(status(&app, M::GET, "/api/engines", &app_token).await?.0, 200, "or the app role");
    // Unknown key ids do not make every request a key fetch.
    let k9 = RS256KeyPair::generate(2048)?.with_key_id("k9");
    for _ in 0..3 {
        assert_eq!(status(&app, M::GET, "/api/engines", &idp.token(&k9, "alice", CLIENT, true)).await?.0, 401);
    }
    assert_eq!(idp.hits.load(Ordering::SeqCst), 1, "no refetch within 10 s of the last fetch");
    let bob = idp.token(&k1, "bob", CLIENT, true);
    let (s, v) = status(&app, M::GET, "/api/engines", &bob).await?;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (403, Some("access_requested")),
        "strangers get no access, but a request: {v}"
    );
    assert!(v["error"]["message"].as_str().unwrap().contains("bob@contoso.com"));
    assert_eq!(idp.hits.load(Ordering::SeqCst), 1, "signing keys are fetched once and cached");
    let (_, first) = status(&app, M::GET, "/api/audit?action=signin_first_admin", &alice).await?;
    assert_eq!(first["logs"][0]["user_id"], "alice", "the bootstrap is audited: {first}");
    // Each new token is one sign-in, however many requests it makes; the bootstrap was alice's first.
    let signins = |v: &serde_json::Value| v["logs"].as_array().map(Vec::len).unwrap_or(99);
    // `iat` counts seconds: `app_token` is a sign-in of its own only if the clock passed a second after `alice`.
    let iat = |t: &str| k1.public_key().verify_token::<NoCustomClaims>(t, None).map(|c| c.issued_at);
    let before = usize::from(iat(&app_token)? != iat(&alice)?);
    let (_, rows) = status(&app, M::GET, "/api/audit?action=signin", &alice).await?;
    assert_eq!(signins(&rows), before, "{rows}");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await; // `iat` counts seconds
    let alice_later = idp.token(&k1, "alice", CLIENT, true);
    for _ in 0..3 {
        assert_eq!(status(&app, M::GET, "/api/engines", &alice_later).await?.0, 200);
    }
    let (_, rows) = status(&app, M::GET, "/api/audit?action=signin", &alice).await?;
    assert_eq!(signins(&rows), before + 1, "one sign-in for three requests: {rows}");
    assert_eq!(
        (rows["logs"][0]["user_id"].as_str(), rows["logs"][0]["status"].as_str()),
        (Some("alice"), Some("success"))
    );
    let (_, users) = status(&app, M::GET, "/api/users", &alice_later).await?;
    let row = users["users"].as_array().and_then(|u| u.iter().find(|u| u["id"] == "alice")).cloned();
    assert!(row.as_ref().is_some_and(|r| r["last_sign_in_at"].is_string()), "shown to admins: {users}");

    for (why, token) in [
        ("another audience", idp.token(&k1, "alice", "someone-else", true)),
        ("expired", idp.token(&k1, "alice", CLIENT, false)),
        (
            "a key the tenant does not publish",
            idp.token(&RS256KeyPair::generate(2048)?.with_key_id("k1"), "alice", CLIENT, true),
        ),
        ("not a JWT", "nonsense".to_string()),
    ] {
        assert_eq!(status(&app, M::GET, "/api/engines", &token).await?.0, 401, "{why}");
    }
    let dev = reqwest::Client::new()
        .post(format!("{}/api/auth/dev-token", app.url))
        .json(&serde_json::json!({"email": "x@y.z", "role": "admin"}))
        .send()
        .await?;
    assert_eq!(dev.status().as_u16(), 404, "no dev tokens in entra mode");

    // Access requests: approved ones become users with the chosen role; rejected ones stay out.
    let carol = idp.token(&k1, "carol", CLIENT, true);
    let dave = idp.token(&k1, "dave", CLIENT, true);
    for t in [&carol, &dave, &carol] {
        assert_eq!(status(&app, M::GET, "/api/engines", t).await?.0, 403);
    }
    let (_, reqs) = status(&app, M::GET, "/api/access-requests", &alice).await?;
    let pending: Vec<&str> =
        reqs["access_requests"].as_array().unwrap().iter().map(|r| r["email"].as_str().unwrap()).collect();
    assert_eq!(reqs["pending"], 4, "one request per person however often they try: {reqs}");
    assert!(pending.contains(&"carol@contoso.com") && pending.contains(&"bob@contoso.com"));
    assert_eq!(status(&app, M::GET, "/api/access-requests", &carol).await?.0, 403);
    let (s, v) =
        send(&app, M::POST, "/api/access-requests/carol/approve", &alice, serde_json::json!({"role": "superuser"}))
            .await?;
    assert_eq!((s, v["error"]["field"].as_str()), (400, Some("role")), "{v}");
    let (s, v) =
        send(&app, M::POST, "/api/access-requests/carol/approve", &alice, serde_json::json!({"role": "viewer"}))
            .await?;
    assert_eq!((s, v["role"].as_str()), (200, Some("viewer")), "{v}");
    assert_eq!(status(&app, M::GET, "/api/engines", &carol).await?.0, 200, "approved: in, as a viewer");
    assert_eq!(status(&app, M::POST, "/api/engines", &carol).await?.0, 403);
    assert_eq!(
        send(&app, M::POST, "/api/access-requests/carol/approve", &alice, serde_json::json!({"role": "admin"}))
            .await?
            .0,
        409,
        "resolved once"
    );
    let (s, v) = send(
        &app,
        M::POST,
        "/api/access-requests/dave/reject",
        &alice,
        serde_json::json!({"reason": "not on the team"}),
    )
    .await?;
    assert_eq!(
        (s, v["status"].as_str(), v["resolved_by"].as_str()),
        (200, Some("rejected"), Some("alice@contoso.com")),
        "{v}"
    );
    let (s, v) = status(&app, M::GET, "/api/engines", &dave).await?;
    assert_eq!((s, v["error"]["code"].as_str()), (403, Some("no_access")), "rejected: no new request: {v}");
    assert_eq!(
        send(&app, M::PUT, "/api/settings", &alice, serde_json::json!({"access_requests_enabled": false})).await?.0,
        200
    );
    let (s, v) = status(&app, M::GET, "/api/engines", &idp.token(&k1, "erin", CLIENT, true)).await?;
    assert_eq!((s, v["error"]["code"].as_str()), (403, Some("no_access")), "requests switched off: {v}");
    let (_, all) = status(&app, M::GET, "/api/access-requests?status=all", &alice).await?;
    assert_eq!(all["total"], 4, "mallory, bob, carol, dave; erin filed none: {all}");

    // The admin registers bob by email; his first sign-in claims that row, with its role, but only with an
    // address the tenant verified (his UPN), not a `preferred_username` anyone can set.
    let (s, v) =
        send(&app, M::POST, "/api/users", &alice, serde_json::json!({"email": "Bob@Contoso.com", "role": "operator"}))
            .await?;
    assert_eq!(s, 201, "{v}");
    assert_eq!(status(&app, M::POST, "/api/engines", &bob).await?.0, 403, "an unverified address claims nothing");
    let bob = idp.token_with(
        &k1,
        "bob",
        CLIENT,
        true,
        serde_json::json!({"scp": "access_as_user", "upn": "bob@contoso.com"}),
    );
    assert_eq!(status(&app, M::POST, "/api/engines", &bob).await?.0, 201, "operators manage servers");
    let (s, me) = status(&app, M::GET, "/api/users/me", &bob).await?;
    assert_eq!((s, me["id"].as_str(), me["role"].as_str()), (200, Some("bob"), Some("operator")));
    assert_eq!(status(&app, M::GET, "/api/users", &bob).await?.0, 403, "only admins manage users");
    let (_, users) = status(&app, M::GET, "/api/users", &alice).await?;
    let ids: Vec<&str> = users["users"].as_array().unwrap().iter().map(|u| u["id"].as_str().unwrap()).collect();
    assert_eq!(ids, vec!["alice", "bob", "carol"], "the pending email row became bob's oid row");
    let (_, reqs) = status(&app, M::GET, "/api/access-requests", &alice).await?;
    assert_eq!(reqs["pending"], 1, "bob's request went away when he got in (mallory's waits): {reqs}");
    let (_, claimed) = status(&app, M::GET, "/api/audit?action=signin_claimed_registration", &alice).await?;
    assert_eq!(claimed["logs"][0]["user_id"], "bob", "the claim is audited: {claimed}");
    // The last admin cannot lock everyone out.
    let (s, v) = send(&app, M::PUT, "/api/users/alice", &alice, serde_json::json!({"role": "viewer"})).await?;
    assert_eq!((s, v["error"]["code"].as_str()), (409, Some("last_admin")), "{v}");
    assert_eq!(send(&app, M::DELETE, "/api/users/alice", &alice, serde_json::json!({})).await?.0, 409);
    let (s, v) = send(&app, M::PUT, "/api/users/bob", &alice, serde_json::json!({"enabled": false})).await?;
    assert_eq!(s, 200, "{v}");
    let (s, v) = status(&app, M::GET, "/api/engines", &bob).await?;
    assert_eq!((s, v["error"]["code"].as_str()), (403, Some("account_disabled")));

    // Key rotation: a token signed with a newly published key is accepted after one refetch (once 10 s
    // have passed since the last fetch).
    *idp.jwks.lock().unwrap() = jwks(&[&k1, &k2]);
    tokio::time::sleep(std::time::Duration::from_secs(11).saturating_sub(started.elapsed())).await;
    let before = idp.hits.load(Ordering::SeqCst);
    assert_eq!(status(&app, M::GET, "/api/engines", &idp.token(&k2, "alice", CLIENT, true)).await?.0, 200);
    assert_eq!(idp.hits.load(Ordering::SeqCst), before + 1);
    Ok(())
}
