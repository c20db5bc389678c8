//! Sign-in and the role matrix over every API route: admin, operator, viewer and anonymous each get
//! exactly the status their role allows, and every mutating call — allowed or refused — leaves an
//! audit row naming who, from where, and how it went.

use anyhow::Result;
use chrono::Utc;
use dilux_e2e::{Api, App, Azurite};
use reqwest::Method as M;
use serde_json::{json, Value};

const ROLES: [&str; 4] = ["admin", "operator", "viewer", "anonymous"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_each_role_exactly() -> Result<()> {
    let az = Azurite::start()?;
    let app = App::start(&az.connection_string)?;
    let mut apis = Vec::new();
    for r in ROLES {
        apis.push(if r == "anonymous" { Api::anonymous(&app) } else { Api::signed_in(&app, r).await? });
    }
    let admin = &apis[0];
    let closed = dilux_e2e::free_port();
    let engine = admin.post("/api/engines", json!({"name": "e", "engine_type": "postgresql", "host": "127.0.0.1", "port": closed, "username": "u", "password": "p"})).await?;
    let eid = engine["id"].as_str().unwrap().to_string();
    let db = admin.post("/api/databases", json!({"engine_id": eid, "name": "shared"})).await?;
    let dbid = db["id"].as_str().unwrap().to_string();

    let mut mutations = 0usize;
    for (i, role) in ROLES.iter().enumerate() {
        let api = &apis[i];
        // Throwaway resources per role, made by the admin, so each role's call has something to act on.
        let spare_engine = admin.post("/api/engines", json!({"name": format!("spare-{role}"), "engine_type": "mysql", "host": format!("spare-{role}")})).await?;
        let spare_db = admin.post("/api/databases", json!({"engine_id": eid, "name": format!("spare-{role}")})).await?;
        let backup_db = admin.post("/api/databases", json!({"engine_id": eid, "name": format!("backup-{role}")})).await?;
        mutations += 3;
        let (se, sd, bd) = (spare_engine["id"].as_str().unwrap(), spare_db["id"].as_str().unwrap(), backup_db["id"].as_str().unwrap());
        let read = [200, 200, 200, 401];
        let manage_created = [201, 201, 403, 401];
        let manage = [200, 200, 403, 401];
        let cases: Vec<(M, String, Option<Value>, [u16; 4])> = vec![
            (M::GET, "/api/health".into(), None, [200, 200, 200, 200]),
            (M::GET, "/api/engines".into(), None, read),
            (M::GET, format!("/api/engines/{eid}"), None, read),
            (M::POST, "/api/engines".into(), Some(json!({"name": role, "engine_type": "mysql", "host": format!("h-{role}")})), manage_created),
            (M::PUT, format!("/api/engines/{eid}"), Some(json!({"name": format!("renamed by {role}")})), manage),
            (M::DELETE, format!("/api/engines/{se}"), None, manage),
            (M::GET, "/api/databases".into(), None, read),
            (M::GET, format!("/api/databases/{dbid}"), None, read),
            (M::POST, "/api/databases".into(), Some(json!({"engine_id": eid, "name": format!("new-{role}")})), manage_created),
            (M::PUT, format!("/api/databases/{dbid}"), Some(json!({"alias": format!("by {role}")})), manage),
            (M::DELETE, format!("/api/databases/{sd}"), None, manage),
            (M::POST, format!("/api/databases/{bd}/backup"), None, [202, 202, 403, 401]),
            (M::GET, "/api/backups".into(), None, read),
            (M::GET, "/api/backups/download?blob_name=mysql/x/20260101_000000.sql.gz".into(), None, [404, 404, 404, 401]),
            (M::GET, "/api/retention/preview".into(), None, read),
            (M::GET, format!("/api/backups/stats?database_id={dbid}"), None, read),
            (M::DELETE, "/api/backups/delete?blob_name=mysql/x/20260101_000000.sql.gz".into(), None, [404, 404, 403, 401]),
            (M::GET, "/api/system-status".into(), None, read),
            (M::GET, "/api/users/me".into(), None, read),
            (M::GET, "/api/users".into(), None, [200, 403, 403, 401]),
            (M::POST, "/api/users".into(), Some(json!({"email": format!("new-{role}@example.com"), "role": "viewer"})), [201, 403, 403, 401]),
        ];
        for (method, path, body, want) in cases {
            if method != M::GET {
                mutations += 1;
            }
            let (status, v) = api.call(method.clone(), &path, body).await?;
            assert_eq!(status, want[i], "{role} {method} {path}: {v}");
            if status == 401 || status == 403 {
                assert!(v["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "refusals say why: {v}");
            }
        }
    }

    // A forged or foreign token is refused.
    let mut forged = Api::signed_in(&app, "admin").await?;
    let t = forged.token.take().unwrap();
    let (head, sig) = t.rsplit_once('.').unwrap();
    let flipped = if sig.starts_with('A') { format!("B{}", &sig[1..]) } else { format!("A{}", &sig[1..]) };
    forged.token = Some(format!("{head}.{flipped}"));
    assert_eq!(forged.call(M::GET, "/api/engines", None).await?.0, 401);
    let (s, v) = Api::anonymous(&app).call(M::POST, "/api/auth/dev-token", Some(json!({"email": "x@example.com", "role": "root"}))).await?;
    assert_eq!((s, v["error"]["field"].as_str()), (400, Some("role")), "{v}");

    // Every mutating call left an audit row: who, from where, success or failure.
    let storage = dilux_dumper_host::storage::Storage::new(dilux_azure::Account::from_connection_string(&az.connection_string)?);
    let mut rows = Vec::new();
    let mut cont = None;
    loop {
        let q = dilux_azure::table::query(&storage.account, Utc::now(), "auditlogs", None, None, cont.as_ref());
        let page = dilux_azure::table::parse_query(storage.send("q", q).await?)?;
        rows.extend(page.entities.into_iter().map(|(e, _)| e));
        match page.continuation {
            Some(c) => cont = Some(c),
            None => break,
        }
    }
    assert_eq!(rows.len(), mutations + 2, "one audit row per mutating call (plus the two set-up creates)");
    let find = |user: &str, action: &str, status: &str| rows.iter().filter(|r| r["user_id"] == user && r["action"] == action && r["status"] == status).count();
    assert_eq!(find("dev:viewer@example.com", "engine_created", "failed"), 1);
    assert_eq!(find("anonymous", "database_deleted", "failed"), 1, "{:?}", rows.iter().filter(|r| r["user_id"] == "anonymous").map(|r| (r["action"].clone(), r["status"].clone())).collect::<Vec<_>>());
    assert_eq!(find("dev:operator@example.com", "backup_triggered", "success"), 1);
    assert!(rows.iter().all(|r| r["ip_address"] == "127.0.0.1"), "client address recorded");
    let denied = rows.iter().find(|r| r["user_id"] == "dev:viewer@example.com" && r["action"] == "database_updated").unwrap();
    let details: Value = serde_json::from_str(denied["details"].as_str().unwrap())?;
    assert_eq!(details["status_code"], 403);
    Ok(())
}
