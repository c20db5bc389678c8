//! Dispatch from the route table: 404, 405 with `Allow`, precedence, sign-in, roles, the document.

use dilux_api::error::{ApiError, Kind};
use dilux_api::Request;
use serde_json::json;

use crate::T;

#[tokio::test]
async fn an_unknown_path_is_404_no_route() {
    let t = T::new();
    let a = t.admin("GET", "/api/nothing-here", None).await;
    assert_eq!((a.status, a.code()), (404, Some("no_route")));
    assert!(a.body["error"]["message"].as_str().unwrap().contains("/api/openapi.json"));
}

#[tokio::test]
async fn a_wrong_method_is_405_with_the_allowed_ones() {
    let t = T::new();
    let a = t.admin("PATCH", "/api/engines/x", None).await;
    assert_eq!((a.status, a.code()), (405, Some("method_not_allowed")));
    assert_eq!(a.header("allow"), Some("GET, PUT, DELETE"));
}

#[tokio::test]
async fn put_on_users_me_is_405_not_an_update_of_user_me() {
    let t = T::new();
    let a = t.admin("PUT", "/api/users/me", Some(json!({ "role": "viewer" }))).await;
    assert_eq!(a.status, 405);
    assert_eq!(a.header("allow"), Some("GET"));
    let actions: Vec<String> = t.audit().into_iter().map(|(action, _)| action).collect();
    assert_eq!(actions, ["dev_token_issued"], "only the sign-in: nothing was dispatched, so nothing is audited");
}

#[tokio::test]
async fn test_connection_is_never_database_test_connection() {
    let t = T::new();
    let a = t.admin("GET", "/api/databases/test-connection", None).await;
    assert_eq!(a.status, 405, "a literal segment beats `{{id}}` whatever the method");
}

#[tokio::test]
async fn health_and_the_document_are_public() {
    let t = T::new();
    assert_eq!(t.call("", "GET", "/api/health", None).await.body["status"], "healthy");
    let doc = t.call("", "GET", "/api/openapi.json", None).await;
    assert_eq!(doc.status, 200);
    assert_eq!(doc.body["openapi"], "3.1.0");
}

#[tokio::test]
async fn a_misconfigured_app_still_answers_health_and_names_the_variable_elsewhere() {
    let e = ApiError::config("variable `seal_key` is not set");
    let req = |path: &str| Request { method: "GET".into(), path: path.into(), ..Default::default() };
    let health = dilux_api::handle(Err(&e), &req("/api/health")).await;
    assert_eq!(health.status, 200);
    let engines = dilux_api::handle(Err(&e), &req("/api/engines")).await;
    assert_eq!(engines.status, 500);
    let body = engines.json_body();
    assert_eq!(body["error"]["code"], "misconfigured");
    assert!(body["error"]["message"].as_str().unwrap().contains("seal_key"), "{body}");
}

#[tokio::test]
async fn no_token_is_401_and_counted_not_audited_row_by_row() {
    let t = T::new();
    for _ in 0..50 {
        let a = t.call("", "POST", "/api/engines", Some(json!({}))).await;
        assert_eq!((a.status, a.code()), (401, Some("unauthenticated")));
    }
    assert!(t.mem.audit.all().is_empty(), "a flood of refused calls writes no audit rows");
    let s = t.call("viewer", "GET", "/api/system-status", None).await.body;
    assert_eq!(s["unauthenticated_requests_24h"], 50, "{s}");
}

#[tokio::test]
async fn a_forged_token_is_401_invalid_token() {
    let t = T::new();
    let token = t.token("admin").await;
    let mut forged = token.clone();
    forged.pop();
    forged.push(if token.ends_with('A') { 'B' } else { 'A' });
    let req = Request {
        method: "GET".into(),
        path: "/api/engines".into(),
        headers: vec![("authorization".into(), format!("Bearer {forged}"))],
        ..Default::default()
    };
    let a = t.raw(req).await;
    assert_eq!((a.status, a.code()), (401, Some("invalid_token")));
}

#[tokio::test]
async fn roles_are_checked_from_the_row() {
    let t = T::new();
    let body = json!({ "name": "pg", "engine_type": "postgresql", "host": "h" });
    assert_eq!(t.call("viewer", "POST", "/api/engines", Some(body.clone())).await.status, 403);
    assert_eq!(t.call("operator", "POST", "/api/engines", Some(body)).await.status, 201);
    assert_eq!(t.call("operator", "GET", "/api/users", None).await.status, 403);
    assert_eq!(t.call("operator", "GET", "/api/audit", None).await.status, 403);
    assert_eq!(t.call("viewer", "GET", "/api/engines", None).await.status, 200);
    let refused = t.call("viewer", "PUT", "/api/settings", Some(json!({}))).await;
    assert_eq!(refused.body["error"]["message"], "your role (viewer) may not do this");
}

#[tokio::test]
async fn dev_tokens_refuse_unknown_roles_and_bad_emails_by_field() {
    let t = T::new();
    let ask = |body: serde_json::Value| Request {
        method: "POST".into(),
        path: "/api/auth/dev-token".into(),
        body: serde_json::to_vec(&body).unwrap(),
        ..Default::default()
    };
    assert_eq!(t.raw(ask(json!({ "email": "a@b.c", "role": "root" }))).await.field(), Some("role"));
    assert_eq!(t.raw(ask(json!({ "email": "nobody", "role": "admin" }))).await.field(), Some("email"));
    assert_eq!(t.raw(ask(json!({ "role": "admin" }))).await.field(), Some("email"));
}

#[tokio::test]
async fn auth_config_says_dev_mode() {
    let t = T::new();
    assert_eq!(t.call("", "GET", "/api/auth/config", None).await.body, json!({ "mode": "dev" }));
}

#[tokio::test]
async fn the_document_lists_every_route_with_its_permission_and_audit_action() {
    let t = T::new();
    let doc = t.call("", "GET", "/api/openapi.json", None).await.body;
    let mut count = 0;
    for route in dilux_api::routes::ROUTES {
        let op = &doc["paths"][route.path][route.verb.as_str().to_ascii_lowercase()];
        assert_eq!(op["operationId"], route.id);
        assert_eq!(op["x-dilux-audit"]["action"].as_str(), route.audit.map(|a| a.action), "{}", route.id);
        assert_eq!(op["x-dilux-permission"].is_string(), route.permission.is_some(), "{}", route.id);
        count += 1;
    }
    let documented: usize = doc["paths"].as_object().unwrap().values().map(|p| p.as_object().unwrap().len()).sum();
    assert_eq!(documented, count);
    let list = &doc["paths"]["/api/engines"]["get"]["responses"]["200"]["content"]["application/json"]["schema"];
    assert_eq!(list["$ref"], "#/components/schemas/EngineList", "the response schema is the handler's type");
}

#[tokio::test]
async fn oversized_bodies_are_413() {
    let t = T::new();
    let big = json!({ "name": "x".repeat(70 * 1024), "engine_type": "postgresql", "host": "h" });
    let a = t.admin("POST", "/api/engines", Some(big)).await;
    assert_eq!((a.status, a.code()), (413, Some("body_too_large")));
    assert_eq!(Kind::BodyTooLarge.status(), 413);
}

#[tokio::test]
async fn a_body_that_is_not_an_object_is_400_even_where_serde_would_take_it() {
    let t = T::new();
    for body in [json!([null, null]), json!([false, 25]), json!("x")] {
        let a = t.call("viewer", "PUT", "/api/users/me/preferences", Some(body.clone())).await;
        assert_eq!((a.status, a.code()), (400, Some("invalid_body")), "{body}: {}", a.body);
    }
}

#[tokio::test]
async fn the_document_names_every_status_a_route_can_answer() {
    let t = T::new();
    let doc = t.call("", "GET", "/api/openapi.json", None).await.body;
    let codes = |path: &str, verb: &str| -> Vec<String> {
        doc["paths"][path][verb]["responses"].as_object().unwrap().keys().cloned().collect()
    };
    let delete = codes("/api/backups/delete", "delete");
    for c in ["200", "400", "401", "403", "404", "409", "503"] {
        assert!(delete.contains(&c.to_string()), "DeleteBackup documents {c}: {delete:?}");
    }
    let update = codes("/api/backup-policies/{id}", "put");
    for c in ["404", "409", "412", "413"] {
        assert!(update.contains(&c.to_string()), "UpdatePolicy documents {c}: {update:?}");
    }
    assert!(!codes("/api/health", "get").contains(&"503".to_string()), "liveness needs nothing");
}

#[tokio::test]
async fn refused_dev_token_requests_are_counted_not_audited() {
    let t = T::new();
    let ask = || Request {
        method: "POST".into(),
        path: "/api/auth/dev-token".into(),
        body: serde_json::to_vec(&json!({ "email": "a@b.c", "role": "root" })).unwrap(),
        ..Default::default()
    };
    for _ in 0..20 {
        assert_eq!(t.raw(ask()).await.status, 400);
    }
    assert!(t.mem.audit.all().is_empty(), "a flood of refused public calls writes no rows");
    // In entra mode the route does not exist for anyone: still no rows.
    let mut entra = t.with_sealer(dilux_domain::Sealer::from_base64_key(crate::SEAL_KEY).unwrap());
    entra.app.auth = dilux_api::auth::AuthMode::Entra(dilux_api::auth::EntraConfig {
        tenant: "t".into(),
        client_id: "c".into(),
        authority: "https://login.example.com".into(),
        scope: "access_as_user".into(),
        app_role: "Dilux.Access".into(),
        first_admin: None,
    });
    for _ in 0..20 {
        assert_eq!(entra.raw(ask()).await.status, 404);
    }
    assert!(t.mem.audit.all().is_empty());
    assert_eq!(t.mem.audit.1.borrow().values().sum::<u64>(), 40, "all of them counted");
}

#[tokio::test]
async fn ids_in_the_query_are_checked_like_ids_in_the_path() {
    let t = T::new();
    for q in ["database_id=", "database_id=a%23b", "database_id=%C2%9B"] {
        let a = t.admin("GET", &format!("/api/backups/stats?{q}"), None).await;
        assert_eq!((a.status, a.field()), (400, Some("database_id")), "{q}: {}", a.body);
    }
    let a = t.admin("GET", "/api/databases?policy_id=", None).await;
    assert_eq!(a.field(), Some("policy_id"));
    assert_eq!(t.admin("GET", "/api/backups/stats?database_id=some-db", None).await.status, 200);
}
