//! Users, the last-admin guard, access requests, the caller and their preferences.

use dilux_domain::settings::{AccessRequest, AccessRequestStatus};
use serde_json::json;

use crate::{now, T};

async fn user(t: &T, email: &str, role: &str) -> String {
    let a = t.admin("POST", "/api/users", Some(json!({ "email": email, "role": role }))).await;
    assert_eq!(a.status, 201, "{}", a.body);
    a.body["id"].as_str().unwrap().to_string()
}

fn request(t: &T, id: &str) {
    let r = AccessRequest {
        id: id.into(),
        email: format!("{id}@example.com"),
        name: id.into(),
        status: AccessRequestStatus::Pending,
        requested_at: now(),
        resolved_at: None,
        resolved_by: None,
        rejection_reason: None,
        role: None,
    };
    t.mem.access_requests.put(id, r);
}

#[tokio::test]
async fn users_are_registered_once_by_email() {
    let t = T::new();
    user(&t, "Ann@Example.com", "operator").await;
    let a = t.admin("POST", "/api/users", Some(json!({ "email": "ann@example.com", "role": "viewer" }))).await;
    assert_eq!((a.status, a.code()), (409, Some("duplicate")));
    let a = t.admin("POST", "/api/users", Some(json!({ "email": "not-an-email", "role": "viewer" }))).await;
    assert_eq!(a.field(), Some("email"));
    let list = t.admin("GET", "/api/users", None).await.body;
    assert_eq!((list["total"].as_u64(), list["users"][0]["email"].as_str()), (Some(1), Some("ann@example.com")));
}

#[tokio::test]
async fn the_last_admin_cannot_be_demoted_disabled_or_deleted() {
    let t = T::new();
    let id = user(&t, "boss@example.com", "admin").await;
    for body in [json!({ "role": "viewer" }), json!({ "enabled": false })] {
        let a = t.admin("PUT", &format!("/api/users/{id}"), Some(body)).await;
        assert_eq!((a.status, a.code()), (409, Some("last_admin")));
    }
    assert_eq!(t.admin("DELETE", &format!("/api/users/{id}"), None).await.code(), Some("last_admin"));
    let other = user(&t, "two@example.com", "admin").await;
    assert_eq!(t.admin("PUT", &format!("/api/users/{id}"), Some(json!({ "role": "viewer" }))).await.status, 200);
    assert_eq!(t.admin("DELETE", &format!("/api/users/{other}"), None).await.code(), Some("last_admin"));
}

#[tokio::test]
async fn an_id_escaped_in_the_path_is_the_same_id() {
    let t = T::new();
    let id = user(&t, "ñandú@example.com", "viewer").await;
    assert_eq!(id, "email:ñandú@example.com");
    let escaped = "email%3A%C3%B1and%C3%BA%40example.com";
    let a = t.admin("PUT", &format!("/api/users/{escaped}"), Some(json!({ "role": "operator" }))).await;
    assert_eq!((a.status, a.body["role"].as_str()), (200, Some("operator")), "{}", a.body);
    assert_eq!(t.admin("DELETE", &format!("/api/users/{escaped}"), None).await.status, 200);
    // An escaped `/` is still a character no id holds.
    assert_eq!(t.admin("DELETE", "/api/users/a%2Fb", None).await.field(), Some("id"));
}

#[tokio::test]
async fn a_missing_user_is_404() {
    let t = T::new();
    assert_eq!(t.admin("PUT", "/api/users/nope", Some(json!({ "role": "viewer" }))).await.status, 404);
    assert_eq!(t.admin("DELETE", "/api/users/nope", None).await.status, 404);
}

#[tokio::test]
async fn approving_a_request_makes_a_user_with_that_role_once() {
    let t = T::new();
    request(&t, "oid-1");
    let a = t.admin("POST", "/api/access-requests/oid-1/approve", Some(json!({ "role": "operator" }))).await;
    assert_eq!((a.status, a.body["role"].as_str()), (200, Some("operator")), "{}", a.body);
    assert_eq!(t.mem.users.read("oid-1").unwrap().email, "oid-1@example.com");
    let again = t.admin("POST", "/api/access-requests/oid-1/approve", Some(json!({ "role": "admin" }))).await;
    assert_eq!((again.status, again.code()), (409, Some("already_resolved")));
    let bad = t.admin("POST", "/api/access-requests/oid-1/approve", Some(json!({ "role": "god" }))).await;
    assert_eq!(bad.field(), Some("role"));
}

#[tokio::test]
async fn rejecting_keeps_the_reason_within_500_characters() {
    let t = T::new();
    request(&t, "oid-2");
    let long = t.admin("POST", "/api/access-requests/oid-2/reject", Some(json!({ "reason": "x".repeat(501) }))).await;
    assert_eq!(long.field(), Some("reason"));
    let ok = t.admin("POST", "/api/access-requests/oid-2/reject", None).await;
    assert_eq!((ok.status, ok.body["status"].as_str()), (200, Some("rejected")));
    assert!(t.mem.users.is_empty());
}

#[tokio::test]
async fn access_requests_list_pending_by_default() {
    let t = T::new();
    request(&t, "a");
    request(&t, "b");
    t.admin("POST", "/api/access-requests/b/reject", None).await;
    let pending = t.admin("GET", "/api/access-requests", None).await.body;
    assert_eq!((pending["total"].as_u64(), pending["pending"].as_u64()), (Some(1), Some(1)));
    assert_eq!(t.admin("GET", "/api/access-requests?status=all", None).await.body["total"], 2);
    assert_eq!(t.admin("GET", "/api/access-requests?status=maybe", None).await.field(), Some("status"));
}

#[tokio::test]
async fn me_answers_the_caller_with_their_preferences() {
    let t = T::new();
    let me = t.call("viewer", "GET", "/api/users/me", None).await.body;
    assert_eq!((me["email"].as_str(), me["role"].as_str()), (Some("viewer@example.com"), Some("viewer")));
    assert_eq!(me["preferences"]["page_size"], 25);
}

#[tokio::test]
async fn preferences_are_per_caller_and_validated() {
    let t = T::new();
    let a = t.call("viewer", "PUT", "/api/users/me/preferences", Some(json!({ "page_size": 9 }))).await;
    assert_eq!((a.status, a.field()), (400, Some("page_size")));
    let a =
        t.call("viewer", "PUT", "/api/users/me/preferences", Some(json!({ "dark_mode": true, "page_size": 50 }))).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(t.call("viewer", "GET", "/api/users/me/preferences", None).await.body["page_size"], 50);
    assert_eq!(t.call("operator", "GET", "/api/users/me/preferences", None).await.body["page_size"], 25);
}

#[tokio::test]
async fn until_chosen_the_app_theme_applies() {
    let t = T::new();
    t.admin("PUT", "/api/settings", Some(json!({ "dark_mode": true }))).await;
    assert_eq!(t.call("operator", "GET", "/api/users/me/preferences", None).await.body["dark_mode"], true);
}

#[tokio::test]
async fn keys_storage_would_refuse_are_a_named_400_not_an_outage() {
    let t = T::new();
    let a = t.admin("POST", "/api/users", Some(json!({ "email": "a#b/c@example.com", "role": "viewer" }))).await;
    assert_eq!((a.status, a.field()), (400, Some("email")), "{}", a.body);
    assert!(t.mem.users.is_empty(), "nothing written");
    for path in ["/api/engines/a\\b", "/api/databases/a#b"] {
        let a = t.admin("GET", path, None).await;
        assert_eq!((a.status, a.field()), (400, Some("id")), "{path}: {}", a.body);
    }
}
