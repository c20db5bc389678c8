//! Sign-in and the role matrix over every API route: admin, operator, viewer and anonymous each get
//! exactly the status their role allows, and every mutating call — allowed or refused — leaves an
//! audit row naming who, from where, and how it went.

use anyhow::Result;
use chrono::Utc;
use dilux_e2e::{Api, App, Azurite};
use reqwest::Method as M;
use serde_json::{json, Value};

const ROLES: [&str; 4] = ["admin", "operator", "viewer", "anonymous"];

/// (method, documented path, called path, body, status for admin/operator/viewer/anonymous)
type Case<'a> = (M, &'a str, String, Option<Value>, [u16; 4]);

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
    let closed_engine = json!({
        "name": "e", "engine_type": "postgresql", "host": "127.0.0.1", "port": closed, "username": "u", "password": "p",
    });
    let engine = admin.post("/api/engines", closed_engine).await?;
    let eid = engine["id"].as_str().unwrap().to_string();
    let db = admin.post("/api/databases", json!({"engine_id": eid, "name": "shared"})).await?;
    let dbid = db["id"].as_str().unwrap().to_string();

    let mut mutations = 0usize;
    let mut documented = std::collections::BTreeSet::<(String, String)>::new();
    let mut audited = std::collections::BTreeSet::<(String, String)>::new();
    for (i, role) in ROLES.iter().enumerate() {
        let api = &apis[i];
        // Throwaway resources per role, made by the admin, so each role's call has something to act on.
        let spare_engine = admin
            .post(
                "/api/engines",
                json!({"name": format!("spare-{role}"), "engine_type": "mysql", "host": format!("spare-{role}")}),
            )
            .await?;
        let spare_db = admin.post("/api/databases", json!({"engine_id": eid, "name": format!("spare-{role}")})).await?;
        let backup_db =
            admin.post("/api/databases", json!({"engine_id": eid, "name": format!("backup-{role}")})).await?;
        mutations += 3;
        let (se, sd, bd) =
            (spare_engine["id"].as_str().unwrap(), spare_db["id"].as_str().unwrap(), backup_db["id"].as_str().unwrap());
        let spare_policy = admin
            .post(
                "/api/backup-policies",
                json!({"name": format!("spare-{role}"), "daily": {"enabled": true, "keep_count": 3, "time": "01:00"}}),
            )
            .await?;
        let spare_user =
            admin.post("/api/users", json!({"email": format!("spare-{role}@example.com"), "role": "viewer"})).await?;
        mutations += 2;
        let (sp, su) = (spare_policy["id"].as_str().unwrap(), spare_user["id"].as_str().unwrap());
        // Nothing listens on the closed port: a test send answers that it failed.
        let hook = json!({"name": format!("hook-{role}"), "kind": "webhook",
            "url": format!("http://127.0.0.1:{closed}/hook")});
        let spare_channel = admin.post("/api/notifications/channels", hook.clone()).await?;
        mutations += 1;
        let sc = spare_channel["id"].as_str().unwrap();
        let read = [200, 200, 200, 401];
        let manage_created = [201, 201, 403, 401];
        let manage = [200, 200, 403, 401];
        let admin_only = [200, 403, 403, 401];
        let blob = "mysql/x/20260101_000000.sql.gz";
        let cases: Vec<Case> = vec![
            (M::GET, "/api/health", "/api/health".into(), None, [200; 4]),
            (M::GET, "/api/openapi.json", "/api/openapi.json".into(), None, [200; 4]),
            (M::GET, "/api/auth/config", "/api/auth/config".into(), None, [200; 4]),
            (
                M::POST,
                "/api/auth/dev-token",
                "/api/auth/dev-token".into(),
                Some(json!({"email": "x@example.com", "role": "viewer"})),
                [200; 4],
            ),
            (M::GET, "/api/engines", "/api/engines".into(), None, read),
            (M::GET, "/api/engines/{id}", format!("/api/engines/{eid}"), None, read),
            (
                M::POST,
                "/api/engines",
                "/api/engines".into(),
                Some(json!({"name": role, "engine_type": "mysql", "host": format!("h-{role}")})),
                manage_created,
            ),
            (
                M::PUT,
                "/api/engines/{id}",
                format!("/api/engines/{eid}"),
                Some(json!({"name": format!("renamed by {role}")})),
                manage,
            ),
            (M::DELETE, "/api/engines/{id}", format!("/api/engines/{se}"), None, manage),
            // The server is a closed port: the test runs and answers that it failed.
            (M::POST, "/api/engines/{id}/test", format!("/api/engines/{eid}/test"), None, manage),
            (M::POST, "/api/engines/{id}/discover", format!("/api/engines/{eid}/discover"), None, manage),
            (M::GET, "/api/databases", "/api/databases".into(), None, read),
            (M::GET, "/api/databases/{id}", format!("/api/databases/{dbid}"), None, read),
            (
                M::POST,
                "/api/databases",
                "/api/databases".into(),
                Some(json!({"engine_id": eid, "name": format!("new-{role}")})),
                manage_created,
            ),
            (
                M::POST,
                "/api/databases/test-connection",
                "/api/databases/test-connection".into(),
                Some(json!({"engine_id": eid, "database": "shared"})),
                manage,
            ),
            (
                M::PUT,
                "/api/databases/{id}",
                format!("/api/databases/{dbid}"),
                Some(json!({"alias": format!("by {role}")})),
                manage,
            ),
            (M::DELETE, "/api/databases/{id}", format!("/api/databases/{sd}"), None, manage),
            (M::POST, "/api/databases/{id}/test", format!("/api/databases/{dbid}/test"), None, manage),
            (M::POST, "/api/databases/{id}/backup", format!("/api/databases/{bd}/backup"), None, [202, 202, 403, 401]),
            (M::GET, "/api/backups", "/api/backups".into(), None, read),
            (M::GET, "/api/backups/files", "/api/backups/files".into(), None, read),
            (
                M::GET,
                "/api/backups/download",
                format!("/api/backups/download?blob_name={blob}"),
                None,
                [404, 404, 403, 401],
            ),
            (
                M::DELETE,
                "/api/backups/delete",
                format!("/api/backups/delete?blob_name={blob}"),
                None,
                [404, 403, 403, 401],
            ),
            (
                M::POST,
                "/api/backups/delete-bulk",
                "/api/backups/delete-bulk".into(),
                Some(json!({"blob_names": [blob]})),
                admin_only,
            ),
            (M::GET, "/api/backups/stats", format!("/api/backups/stats?database_id={dbid}"), None, read),
            (M::GET, "/api/backups/daily", "/api/backups/daily?days=3".into(), None, read),
            (M::POST, "/api/backups/{id}/confirm", "/api/backups/nope/confirm".into(), None, [404, 403, 403, 401]),
            (
                M::POST,
                "/api/backups/restore",
                "/api/backups/restore".into(),
                Some(json!({"blob_name": blob})),
                [404, 404, 403, 401],
            ),
            (M::GET, "/api/restores", "/api/restores".into(), None, read),
            (M::GET, "/api/restores/{id}", "/api/restores/nope".into(), None, [404, 404, 404, 401]),
            (
                M::GET,
                "/api/backups/{id}/verification",
                "/api/backups/nope/verification".into(),
                None,
                [404, 404, 404, 401],
            ),
            (M::GET, "/api/retention/preview", "/api/retention/preview".into(), None, read),
            (M::GET, "/api/backup-policies", "/api/backup-policies".into(), None, read),
            (M::GET, "/api/backup-policies/{id}", "/api/backup-policies/development".into(), None, read),
            (
                M::POST,
                "/api/backup-policies",
                "/api/backup-policies".into(),
                Some(json!({
                    "name": format!("p-{role}"),
                    "weekly": {"enabled": true, "keep_count": 2, "time": "03:00", "day_of_week": 6},
                })),
                [201, 403, 403, 401],
            ),
            (
                M::PUT,
                "/api/backup-policies/{id}",
                format!("/api/backup-policies/{sp}"),
                Some(json!({
                    "name": format!("spare-{role}"),
                    "daily": {"enabled": true, "keep_count": 5, "time": "01:00"},
                })),
                admin_only,
            ),
            (M::DELETE, "/api/backup-policies/{id}", format!("/api/backup-policies/{sp}"), None, admin_only),
            (M::GET, "/api/users", "/api/users".into(), None, admin_only),
            (
                M::POST,
                "/api/users",
                "/api/users".into(),
                Some(json!({"email": format!("new-{role}@example.com"), "role": "viewer"})),
                [201, 403, 403, 401],
            ),
            (M::GET, "/api/users/me", "/api/users/me".into(), None, read),
            (M::GET, "/api/users/me/preferences", "/api/users/me/preferences".into(), None, read),
            (
                M::PUT,
                "/api/users/me/preferences",
                "/api/users/me/preferences".into(),
                Some(json!({"page_size": 50})),
                read,
            ),
            (M::PUT, "/api/users/{id}", format!("/api/users/{su}"), Some(json!({"role": "operator"})), admin_only),
            (M::DELETE, "/api/users/{id}", format!("/api/users/{su}"), None, admin_only),
            (M::GET, "/api/access-requests", "/api/access-requests".into(), None, admin_only),
            // Dev sign-in files no requests: the admin learns there is none.
            (
                M::POST,
                "/api/access-requests/{id}/approve",
                "/api/access-requests/nobody/approve".into(),
                Some(json!({"role": "viewer"})),
                [404, 403, 403, 401],
            ),
            (
                M::POST,
                "/api/access-requests/{id}/reject",
                "/api/access-requests/nobody/reject".into(),
                None,
                [404, 403, 403, 401],
            ),
            (M::GET, "/api/audit", "/api/audit".into(), None, admin_only),
            (M::GET, "/api/audit/actions", "/api/audit/actions".into(), None, admin_only),
            (M::GET, "/api/audit/resource-types", "/api/audit/resource-types".into(), None, admin_only),
            (M::GET, "/api/audit/stats", "/api/audit/stats".into(), None, admin_only),
            (M::GET, "/api/settings", "/api/settings".into(), None, read),
            (M::PUT, "/api/settings", "/api/settings".into(), Some(json!({"dark_mode": false})), admin_only),
            (M::POST, "/api/settings/reseal", "/api/settings/reseal".into(), None, admin_only),
            (M::GET, "/api/system-status", "/api/system-status".into(), None, read),
            (M::GET, "/api/notifications/channels", "/api/notifications/channels".into(), None, read),
            (
                M::POST,
                "/api/notifications/channels",
                "/api/notifications/channels".into(),
                Some(hook.clone()),
                [201, 403, 403, 401],
            ),
            (M::GET, "/api/notifications/channels/{id}", format!("/api/notifications/channels/{sc}"), None, read),
            (
                M::PUT,
                "/api/notifications/channels/{id}",
                format!("/api/notifications/channels/{sc}"),
                Some(hook.clone()),
                admin_only,
            ),
            (
                M::POST,
                "/api/notifications/channels/{id}/test",
                format!("/api/notifications/channels/{sc}/test"),
                None,
                admin_only,
            ),
            (
                M::DELETE,
                "/api/notifications/channels/{id}",
                format!("/api/notifications/channels/{sc}"),
                None,
                admin_only,
            ),
            (M::GET, "/api/notifications/deliveries", "/api/notifications/deliveries".into(), None, read),
            (
                M::POST,
                "/api/system-status/soft-delete",
                "/api/system-status/soft-delete".into(),
                Some(json!({"days": 7})),
                admin_only,
            ),
        ];
        if i == 0 {
            // The document and this independent list name exactly the same routes, both ways.
            let (_, doc) = admin.call(M::GET, "/api/openapi.json", None).await?;
            documented = doc["paths"]
                .as_object()
                .unwrap()
                .iter()
                .flat_map(|(p, ops)| ops.as_object().unwrap().keys().map(move |m| (m.to_uppercase(), p.clone())))
                .collect();
            let tested: std::collections::BTreeSet<(String, String)> =
                cases.iter().map(|(m, p, ..)| (m.to_string(), p.to_string())).collect();
            assert_eq!(tested, documented, "routes tested here vs. routes in /api/openapi.json");
            audited = doc["paths"]
                .as_object()
                .unwrap()
                .iter()
                .flat_map(|(p, ops)| {
                    ops.as_object()
                        .unwrap()
                        .iter()
                        .filter(|(_, o)| o.get("x-dilux-audit").is_some())
                        .map(move |(m, _)| (m.to_uppercase(), p.clone()))
                })
                .collect();
        }
        for (method, template, path, body, want) in cases {
            // Refused before sign-in: counted, not audited (the dev-token route is public, so audited).
            let public = template == "/api/auth/dev-token";
            if audited.contains(&(method.to_string(), template.to_string())) && (*role != "anonymous" || public) {
                mutations += 1;
            }
            let (status, v) = api.call(method.clone(), &path, body).await?;
            assert_eq!(status, want[i], "{role} {method} {path}: {v}");
            if status == 401 || status == 403 {
                assert!(v["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "refusals say why: {v}");
            }
        }
    }
    // Every documented path refuses the methods it does not document, and unknown paths say so.
    for path in documented.iter().map(|(_, p)| p.replace("{id}", "x")).collect::<std::collections::BTreeSet<_>>() {
        for m in [M::GET, M::POST, M::PUT, M::DELETE] {
            let template = documented.iter().find(|(_, p)| p.replace("{id}", "x") == path).unwrap().1.clone();
            if documented.contains(&(m.to_string(), template)) {
                continue;
            }
            let (status, v) = admin.call(m.clone(), &path, None).await?;
            assert_eq!((status, v["error"]["code"].as_str()), (405, Some("method_not_allowed")), "{m} {path}: {v}");
        }
    }
    let (status, v) = admin.call(M::GET, "/api/nothing-here", None).await?;
    assert_eq!((status, v["error"]["code"].as_str()), (404, Some("no_route")), "{v}");

    // A forged or foreign token is refused.
    let mut forged = Api::signed_in(&app, "admin").await?;
    let t = forged.token.take().unwrap();
    let (head, sig) = t.rsplit_once('.').unwrap();
    let flipped = match sig.strip_prefix('A') {
        Some(rest) => format!("B{rest}"),
        None => format!("A{}", &sig[1..]),
    };
    forged.token = Some(format!("{head}.{flipped}"));
    assert_eq!(forged.call(M::GET, "/api/engines", None).await?.0, 401);
    let (s, v) = Api::anonymous(&app)
        .call(M::POST, "/api/auth/dev-token", Some(json!({"email": "x@example.com", "role": "root"})))
        .await?;
    assert_eq!((s, v["error"]["field"].as_str()), (400, Some("role")), "{v}");
    // Request bodies are documented from the types that parse them: unknown fields are refused.
    let (_, doc) = admin.call(M::GET, "/api/openapi.json", None).await?;
    let create_engine = &doc["components"]["schemas"]["CreateEngine"];
    assert_eq!(create_engine["additionalProperties"], false, "{create_engine}");
    assert!(
        create_engine["properties"]["host"].is_object()
            && create_engine["required"].as_array().unwrap().contains(&json!("engine_type")),
        "{create_engine}"
    );

    // Every mutating call left an audit row: who, from where, success or failure.
    let storage =
        dilux_dumper_host::storage::Storage::new(dilux_azure::Account::from_connection_string(&az.connection_string)?);
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
    // Plus the two set-up creates and the four dev tokens issued outside the cases (three sign-ins, the
    // forged one's); the refused role's request is counted, not audited.
    assert_eq!(rows.len(), mutations + 2 + 4, "one audit row per audited call");
    let issued: Vec<_> = rows.iter().filter(|r| r["action"] == "dev_token_issued").collect();
    assert_eq!(issued.len(), 4 + 4, "every dev token issued is audited");
    assert!(
        issued.iter().any(|r| r["resource_id"] == "operator@example.com" && r["status"] == "success"),
        "{issued:?}"
    );
    let find = |user: &str, action: &str, status: &str| {
        rows.iter().filter(|r| r["user_id"] == user && r["action"] == action && r["status"] == status).count()
    };
    assert_eq!(find("dev:viewer@example.com", "engine_created", "failed"), 1);
    assert_eq!(find("anonymous", "database_deleted", "failed"), 0, "anonymous refusals are counted instead");
    let (_, st) = admin.call(M::GET, "/api/system-status", None).await?;
    assert!(st["unauthenticated_requests_24h"].as_u64() >= Some(20), "{st}");
    assert_eq!(find("dev:operator@example.com", "backup_triggered", "success"), 1);
    assert!(rows.iter().all(|r| r["ip_address"] == "127.0.0.1"), "client address recorded");
    let denied =
        rows.iter().find(|r| r["user_id"] == "dev:viewer@example.com" && r["action"] == "database_updated").unwrap();
    let details: Value = serde_json::from_str(denied["details"].as_str().unwrap())?;
    assert_eq!(details["status_code"], 403);
    Ok(())
}

/// Dev sign-in lets anyone be admin: the app refuses to serve it on an address others can reach.
#[test]
fn dev_sign_in_is_refused_on_a_listener_others_can_reach() -> Result<()> {
    let out = std::process::Command::new(dilux_e2e::host_bin())
        .current_dir(dilux_e2e::root())
        .args(["--manifest", "spin.toml", "--listen", "0.0.0.0:0"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("SPIN_VARIABLE_STORAGE_CONNECTION_STRING", "UseDevelopmentStorage=true")
        .env("SPIN_VARIABLE_SEAL_KEY", dilux_e2e::SEAL_KEY)
        .env("SPIN_VARIABLE_TICK_TOKEN", dilux_e2e::TICK_TOKEN)
        .env("SPIN_VARIABLE_DUMPER_TOKEN", dilux_e2e::DUMPER_TOKEN)
        .env("SPIN_VARIABLE_AUTH_MODE", "dev")
        .env("SPIN_VARIABLE_AUTH_DEV_SECRET", "test-dev-secret-0123456789abcdef0123456789")
        .env("DILUX_TICKS", "off")
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "it must not start: {stderr}");
    assert!(stderr.contains("lets anyone sign in as admin") && stderr.contains("0.0.0.0:0"), "{stderr}");
    Ok(())
}
