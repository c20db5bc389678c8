//! Native handler tests: every request goes through `dilux_api::handle` (route row, sign-in, role,
//! handler, audit) against the in-memory stores of `dilux-test-support`. No Azurite, no servers.

mod backups;
mod catalog;
mod notifications;
mod people;
mod restores;
mod routing;

use chrono::{DateTime, TimeZone, Utc};
use dilux_api::auth::AuthMode;
use dilux_api::{App, Request};
use dilux_domain::Sealer;
use dilux_test_support::Memory;
use serde_json::{json, Value};

pub const SEAL_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
const DEV_SECRET: &str = "a-dev-secret-of-at-least-thirty-two-characters";

pub fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap()
}

/// One app over fresh in-memory state; `mem` is that state, to arrange and inspect.
pub struct T {
    pub mem: Memory,
    pub app: App,
}

pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub headers: Vec<(String, String)>,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The `error.field` of a 400.
    pub fn field(&self) -> Option<&str> {
        self.body["error"]["field"].as_str()
    }

    pub fn code(&self) -> Option<&str> {
        self.body["error"]["code"].as_str()
    }

    pub fn message(&self) -> &str {
        self.body["error"]["message"].as_str().unwrap_or_default()
    }
}

impl Default for T {
    fn default() -> Self {
        T::new()
    }
}

impl T {
    pub fn new() -> Self {
        let mem = Memory::default();
        let app = App {
            stores: mem.stores(),
            sealer: Sealer::from_base64_key(SEAL_KEY).unwrap(),
            auth: AuthMode::dev(DEV_SECRET),
            clock: now,
        };
        T { mem, app }
    }

    /// The same state behind an app with another seal key set (a key rotation).
    pub fn with_sealer(&self, sealer: Sealer) -> T {
        let app = App { stores: self.mem.stores(), sealer, auth: AuthMode::dev(DEV_SECRET), clock: now };
        T { mem: self.mem.clone(), app }
    }

    pub async fn raw(&self, req: Request) -> Answer {
        let r = dilux_api::handle(Ok(&self.app), &req).await;
        let body = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
        Answer { status: r.status, body, headers: r.headers }
    }

    /// A call as `role` ("admin", "operator", "viewer"; "" for anonymous).
    pub async fn call_with(
        &self,
        role: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
        if_match: Option<&str>,
    ) -> Answer {
        let (path, query) = path.split_once('?').unwrap_or((path, ""));
        let mut headers = vec![];
        if !role.is_empty() {
            headers.push(("authorization".into(), format!("Bearer {}", self.token(role).await)));
        }
        if let Some(m) = if_match {
            headers.push(("if-match".into(), m.to_string()));
        }
        let body = body.map(|b| serde_json::to_vec(&b).unwrap()).unwrap_or_default();
        let req = Request {
            method: method.into(),
            path: path.into(),
            query: query.into(),
            headers,
            body,
            client_ip: "10.1.2.3".into(),
        };
        self.raw(req).await
    }

    pub async fn call(&self, role: &str, method: &str, path: &str, body: Option<Value>) -> Answer {
        self.call_with(role, method, path, body, None).await
    }

    pub async fn admin(&self, method: &str, path: &str, body: Option<Value>) -> Answer {
        self.call("admin", method, path, body).await
    }

    pub async fn token(&self, role: &str) -> String {
        let req = Request {
            method: "POST".into(),
            path: "/api/auth/dev-token".into(),
            body: serde_json::to_vec(&json!({ "email": format!("{role}@example.com"), "role": role })).unwrap(),
            ..Default::default()
        };
        let a = self.raw(req).await;
        assert_eq!(a.status, 200, "{}", a.body);
        a.body["token"].as_str().unwrap().to_string()
    }

    /// A PostgreSQL server with credentials; answers its id.
    pub async fn engine(&self, name: &str, host: &str) -> String {
        let a = self
            .admin(
                "POST",
                "/api/engines",
                Some(json!({ "name": name, "engine_type": "postgresql", "host": host, "username": "backup",
                    "password": "s3cret-pw" })),
            )
            .await;
        assert_eq!(a.status, 201, "{}", a.body);
        a.body["id"].as_str().unwrap().to_string()
    }

    /// A database on the server's credentials; answers its id.
    pub async fn database(&self, engine_id: &str, name: &str) -> String {
        let a = self.admin("POST", "/api/databases", Some(json!({ "engine_id": engine_id, "name": name }))).await;
        assert_eq!(a.status, 201, "{}", a.body);
        a.body["id"].as_str().unwrap().to_string()
    }

    /// The audit rows written so far, as (action, status).
    pub fn audit(&self) -> Vec<(String, String)> {
        self.mem.audit.all().into_iter().map(|a| (a.action, a.status)).collect()
    }
}
