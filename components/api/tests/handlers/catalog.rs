//! Servers, databases, connection tests, discovery, policies and settings.

use dilux_domain::tls::TlsMode;
use dilux_domain::ErrorClass;
use serde_json::json;

use crate::T;

fn pg(host: &str) -> serde_json::Value {
    json!({ "name": "pg", "engine_type": "postgresql", "host": host, "username": "backup", "password": "s3cret-pw" })
}

#[tokio::test]
async fn creating_a_server_answers_its_view_without_the_password() {
    let t = T::new();
    let a = t.admin("POST", "/api/engines", Some(pg("DB1.internal"))).await;
    assert_eq!(a.status, 201);
    assert_eq!((a.body["host"].as_str(), a.body["port"].as_u64()), (Some("db1.internal"), Some(5432)));
    assert_eq!((a.body["username"].as_str(), a.body["has_password"].as_bool()), (Some("backup"), Some(true)));
    assert!(!a.body.to_string().contains("s3cret-pw"));
    let stored = t.mem.engines.all().remove(0);
    assert_ne!(stored.password_sealed.as_deref(), Some("s3cret-pw"), "sealed at rest");
}

#[tokio::test]
async fn server_fields_are_validated_by_name_and_nothing_is_written() {
    let t = T::new();
    let cases = [
        (json!({ "name": "pg", "engine_type": "postgresql", "host": "h", "username": "u" }), "password"),
        (json!({ "name": "pg", "engine_type": "postgresql", "host": "h", "port": 0 }), "port"),
        (json!({ "name": "pg", "engine_type": "oracle", "host": "h" }), "engine_type"),
        (json!({ "name": "pg", "engine_type": "postgresql", "host": "h", "colour": 1 }), "colour"),
        (json!({ "name": "", "engine_type": "postgresql", "host": "h" }), "name"),
    ];
    for (body, field) in cases {
        let a = t.admin("POST", "/api/engines", Some(body)).await;
        assert_eq!((a.status, a.field()), (400, Some(field)), "{}", a.body);
    }
    // Right in form, wrong in fact: 404 naming the field.
    let unknown = json!({ "name": "pg", "engine_type": "postgresql", "host": "h", "policy_id": "nope" });
    let a = t.admin("POST", "/api/engines", Some(unknown)).await;
    assert_eq!((a.status, a.field()), (404, Some("policy_id")), "{}", a.body);
    assert!(t.mem.engines.is_empty());
}

#[tokio::test]
async fn the_same_server_twice_is_409() {
    let t = T::new();
    t.engine("a", "db1").await;
    let a = t.admin("POST", "/api/engines", Some(pg("DB1"))).await;
    assert_eq!((a.status, a.code()), (409, Some("duplicate")));
    let other_port = json!({ "name": "b", "engine_type": "postgresql", "host": "db1", "port": 5433 });
    assert_eq!(t.admin("POST", "/api/engines", Some(other_port)).await.status, 201);
}

#[tokio::test]
async fn a_missing_server_is_404() {
    let t = T::new();
    let a = t.admin("GET", "/api/engines/nope", None).await;
    assert_eq!((a.status, a.code()), (404, Some("not_found")));
    assert_eq!(a.body["error"]["message"], "engine `nope` does not exist");
}

#[tokio::test]
async fn viewers_get_views_without_login_names() {
    let t = T::new();
    let e = t.engine("pg", "db1").await;
    let d = t.database(&e, "shop").await;
    for path in [
        "/api/engines".to_string(),
        format!("/api/engines/{e}"),
        "/api/databases".into(),
        format!("/api/databases/{d}"),
    ] {
        let viewer = t.call("viewer", "GET", &path, None).await;
        assert_eq!(viewer.status, 200);
        assert!(!viewer.body.to_string().contains("username"), "{path}: {}", viewer.body);
        let operator = t.call("operator", "GET", &path, None).await;
        assert!(operator.body.to_string().contains("\"username\":\"backup\""), "{path}: {}", operator.body);
    }
}

#[tokio::test]
async fn a_stale_edit_is_412_and_writes_nothing() {
    let t = T::new();
    let e = t.engine("pg", "db1").await;
    let got = t.admin("GET", &format!("/api/engines/{e}"), None).await;
    let etag = got.header("etag").unwrap().to_string();
    let first =
        t.call_with("admin", "PUT", &format!("/api/engines/{e}"), Some(json!({ "name": "main" })), Some(&etag)).await;
    assert_eq!(first.status, 200);
    assert_ne!(first.header("etag"), Some(etag.as_str()), "a new version");
    let stale =
        t.call_with("admin", "PUT", &format!("/api/engines/{e}"), Some(json!({ "name": "x" })), Some(&etag)).await;
    assert_eq!((stale.status, stale.code()), (412, Some("changed")));
    assert!(stale.body["error"]["message"].as_str().unwrap().contains("changed by someone else"));
    assert_eq!(t.mem.engines.read(&e).unwrap().name, "main");
}

#[tokio::test]
async fn rotated_server_credentials_can_move_every_database_onto_them() {
    let t = T::new();
    let e = t.engine("pg", "db1").await;
    let own = json!({ "engine_id": e, "name": "own", "use_engine_credentials": false, "username": "u2",
        "password": "own-pw" });
    let d = t.admin("POST", "/api/databases", Some(own)).await.body["id"].as_str().unwrap().to_string();
    let body = json!({ "username": "rotated", "password": "new-pw", "apply_to_all_databases": true });
    let a = t.admin("PUT", &format!("/api/engines/{e}"), Some(body)).await;
    assert_eq!(a.body["databases_moved_to_server_credentials"], 1, "{}", a.body);
    let db = t.admin("GET", &format!("/api/databases/{d}"), None).await.body;
    assert_eq!((db["use_engine_credentials"].as_bool(), db["username"].as_str()), (Some(true), Some("rotated")));
}

#[tokio::test]
async fn moving_a_server_needs_its_password_again_and_forgets_its_databases_own() {
    let t = T::new();
    let e = t.engine("pg", "db1").await;
    let own = json!({ "engine_id": e, "name": "own", "use_engine_credentials": false, "username": "u2",
        "password": "own-pw" });
    let d = t.admin("POST", "/api/databases", Some(own)).await.body["id"].as_str().unwrap().to_string();
    let inherits = t.database(&e, "shop").await;
    for body in [json!({ "host": "attacker.example.com" }), json!({ "port": 6543 })] {
        let a = t.admin("PUT", &format!("/api/engines/{e}"), Some(body)).await;
        assert_eq!((a.status, a.field()), (409, Some("password")), "{}", a.body);
        assert!(a.message().contains("never sent where it could be read"), "{}", a.body);
    }
    let kept = t.mem.engines.read(&e).unwrap();
    assert_eq!((kept.host.as_str(), kept.port), ("db1", 5432), "nothing changed");
    // A rename keeps everything; a move with the password forgets the databases' own passwords.
    assert_eq!(t.admin("PUT", &format!("/api/engines/{e}"), Some(json!({ "name": "renamed" }))).await.status, 200);
    let moved = json!({ "host": "db2", "password": "typed-again" });
    let a = t.admin("PUT", &format!("/api/engines/{e}"), Some(moved)).await;
    assert_eq!((a.status, a.body["databases_needing_password"].clone()), (200, json!([d])), "{}", a.body);
    let own_row = t.mem.databases.read(&d).unwrap();
    assert_eq!((own_row.username.as_deref(), own_row.password_sealed), (Some("u2"), None));
    assert!(t.mem.databases.read(&inherits).unwrap().use_engine_credentials);
    let test = t.admin("POST", &format!("/api/databases/{d}/test"), None).await;
    assert_eq!((test.status, test.code()), (409, Some("no_credentials")), "{}", test.body);
}

const CA: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

#[tokio::test]
async fn a_servers_tls_reaches_its_tests_and_weakening_it_needs_the_password() {
    let t = T::new();
    let e = t.engine("pg", "db.example.com").await;
    let view = t.admin("GET", &format!("/api/engines/{e}"), None).await;
    assert_eq!((view.body["tls_mode"].as_str(), view.body["tls_effective"].as_str()), (Some("auto"), Some("require")));
    // Stronger needs nothing typed again; the probe gets the mode and the CA.
    let verify = json!({ "tls_mode": "verify-full", "tls_ca": CA });
    assert_eq!(t.admin("PUT", &format!("/api/engines/{e}"), Some(verify)).await.status, 200);
    assert_eq!(t.admin("POST", &format!("/api/engines/{e}/test"), None).await.status, 200);
    let asked = t.mem.dumper.asked().pop().unwrap();
    assert_eq!((asked.tls.mode, asked.tls.ca.as_deref()), (TlsMode::VerifyFull, Some(CA)));
    // Weaker, or another CA: the stored password is not sent until typed again.
    for body in [
        json!({ "tls_mode": "disable" }),
        json!({ "tls_mode": "require" }),
        json!({ "tls_ca": CA.replace("MIIB", "MIIC") }),
        json!({ "tls_ca": "" }),
    ] {
        let a = t.admin("PUT", &format!("/api/engines/{e}"), Some(body.clone())).await;
        assert_eq!((a.status, a.field()), (409, Some("password")), "{body}: {}", a.body);
    }
    assert_eq!(t.mem.engines.read(&e).unwrap().tls_mode, TlsMode::VerifyFull, "nothing changed");
    let a =
        t.admin("PUT", &format!("/api/engines/{e}"), Some(json!({ "tls_mode": "prefer", "password": "again" }))).await;
    assert_eq!(a.status, 200, "{}", a.body);
    // Bad bundles name their field, on create and update.
    let bad = json!({ "name": "x", "engine_type": "mysql", "host": "h", "tls_ca": "not a certificate" });
    let a = t.admin("POST", "/api/engines", Some(bad)).await;
    assert_eq!((a.status, a.field()), (400, Some("tls_ca")), "{}", a.body);
    let key = format!("{CA}-----BEGIN PRIVATE KEY-----\nAA\n-----END PRIVATE KEY-----\n");
    let a = t.admin("PUT", &format!("/api/engines/{e}"), Some(json!({ "tls_ca": key }))).await;
    assert_eq!((a.status, a.field()), (400, Some("tls_ca")), "{}", a.body);
    // An edit form's test: the saved server, its stored password, the form's TLS — never a weaker one.
    let test = |body: serde_json::Value| t.admin("POST", "/api/databases/test-connection", Some(body));
    let a = test(json!({ "engine_id": e, "tls_mode": "require" })).await;
    assert_eq!(a.status, 200, "prefer → require protects the password more: {}", a.body);
    let probe = t.mem.dumper.asked().pop().unwrap();
    assert_eq!((probe.tls.mode, probe.password.as_str()), (TlsMode::Require, "again"), "the stored one");
    let verify = json!({ "tls_mode": "verify-full", "tls_ca": CA });
    assert_eq!(t.admin("PUT", &format!("/api/engines/{e}"), Some(verify)).await.status, 200);
    let asked = t.mem.dumper.asked().len();
    let other_ca = json!({ "engine_id": e, "tls_mode": "verify-full", "tls_ca": CA.replace("MIIB", "MIIC") });
    for weaker in [json!({ "engine_id": e, "tls_mode": "prefer" }), other_ca, json!({ "engine_id": e, "tls_ca": "" })] {
        let a = test(weaker.clone()).await;
        assert_eq!((a.status, a.field()), (409, Some("password")), "{weaker}: {}", a.body);
    }
    assert_eq!(t.mem.dumper.asked().len(), asked, "the stored password went nowhere");
    assert_eq!(test(json!({ "engine_id": e, "tls_mode": "verify-full", "tls_ca": CA })).await.status, 200);
    assert_eq!(test(json!({ "engine_id": e })).await.status, 200, "without TLS fields, the saved TLS");
    let typed = json!({ "engine_id": e, "tls_mode": "disable", "username": "u", "password": "typed" });
    assert_eq!(test(typed).await.status, 200, "a typed password may be tested over anything");
    assert_eq!(t.mem.dumper.asked().pop().unwrap().tls.mode, TlsMode::Disable);
    let a = test(json!({ "engine_id": e, "tls_mode": "verify-full", "tls_ca": "not a certificate" })).await;
    assert_eq!((a.status, a.field()), (400, Some("tls_ca")), "{}", a.body);
    let adhoc = json!({ "engine_type": "mysql", "host": "10.1.2.3", "username": "u", "password": "p" });
    assert_eq!(t.admin("POST", "/api/databases/test-connection", Some(adhoc)).await.status, 200);
    assert_eq!(t.mem.dumper.asked().pop().unwrap().tls.mode, TlsMode::Require, "auto off this machine");
}

#[tokio::test]
async fn a_server_with_databases_is_deleted_only_with_cascade() {
    let t = T::new();
    let e = t.engine("pg", "db1").await;
    let d = t.database(&e, "shop").await;
    let a = t.admin("DELETE", &format!("/api/engines/{e}"), None).await;
    assert_eq!((a.status, a.code()), (409, Some("has_databases")));
    let a = t.admin("DELETE", &format!("/api/engines/{e}?delete_backups=true"), None).await;
    assert_eq!((a.status, a.code()), (409, Some("has_databases")), "backups go only with cascade: {}", a.body);
    t.mem.files.put(&format!("postgresql/{d}/20261130_010000_abcdefgh.sql.gz"), 10, None);
    let a = t.admin("DELETE", &format!("/api/engines/{e}?cascade=true&delete_backups=true"), None).await;
    assert_eq!((a.body["databases_deleted"].as_u64(), a.status), (Some(1), 200), "{}", a.body);
    assert!(t.mem.databases.is_empty() && t.mem.engines.is_empty());
    assert!(t.mem.files.names().is_empty(), "files left without a history row go too");
}

#[tokio::test]
async fn the_server_list_filters_by_type_and_counts_databases() {
    let t = T::new();
    let e = t.engine("pg", "db1").await;
    t.database(&e, "a").await;
    t.database(&e, "b").await;
    let my = json!({ "name": "my", "engine_type": "mysql", "host": "db2" });
    t.admin("POST", "/api/engines", Some(my)).await;
    let all = t.admin("GET", "/api/engines", None).await.body;
    assert_eq!(all["total"], 2);
    let pgs = t.admin("GET", "/api/engines?engine_type=postgresql", None).await.body;
    assert_eq!((pgs["total"].as_u64(), pgs["engines"][0]["database_count"].as_u64()), (Some(1), Some(2)));
    assert_eq!(t.admin("GET", "/api/engines?engine_type=db2", None).await.field(), Some("engine_type"));
}

#[tokio::test]
async fn a_database_needs_an_existing_server_with_credentials_to_inherit() {
    let t = T::new();
    let a = t.admin("POST", "/api/databases", Some(json!({ "engine_id": "nope", "name": "x" }))).await;
    assert_eq!(a.field(), Some("engine_id"));
    let bare = json!({ "name": "bare", "engine_type": "postgresql", "host": "h" });
    let e = t.admin("POST", "/api/engines", Some(bare)).await.body["id"].as_str().unwrap().to_string();
    let a = t.admin("POST", "/api/databases", Some(json!({ "engine_id": e, "name": "x" }))).await;
    assert_eq!(a.field(), Some("use_engine_credentials"));
    assert!(t.mem.databases.is_empty());
}

#[tokio::test]
async fn the_same_database_twice_on_a_server_is_409() {
    let t = T::new();
    let e = t.engine("pg", "db1").await;
    t.database(&e, "shop").await;
    let a = t.admin("POST", "/api/databases", Some(json!({ "engine_id": e, "name": "shop" }))).await;
    assert_eq!((a.status, a.code()), (409, Some("duplicate")));
}

#[tokio::test]
async fn a_new_database_gets_the_settings_default_policy() {
    let t = T::new();
    let e = t.engine("pg", "db1").await;
    let a = t.admin("PUT", "/api/settings", Some(json!({ "default_policy_id": "development" }))).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let d = t.database(&e, "shop").await;
    assert_eq!(t.mem.databases.read(&d).unwrap().policy_id.as_deref(), Some("development"));
}

#[tokio::test]
async fn the_database_list_searches_filters_and_pages() {
    let t = T::new();
    let e = t.engine("pg", "db1").await;
    for n in ["alpha", "beta", "gamma", "delta"] {
        t.database(&e, n).await;
    }
    let a = t.admin("GET", "/api/databases?page_size=3&page=2", None).await.body;
    assert_eq!(
        (a["total"].as_u64(), a["pages"].as_u64(), a["databases"].as_array().unwrap().len()),
        (Some(4), Some(2), 1)
    );
    assert_eq!(a["databases"][0]["alias"], "gamma", "sorted by alias");
    let s = t.admin("GET", "/api/databases?search=ALP", None).await.body;
    assert_eq!(s["total"], 1);
    let s = t.admin("GET", "/api/databases?search=db1", None).await.body;
    assert_eq!(s["total"], 4, "the server's host matches too");
    for (q, field) in
        [("page=0", "page"), ("page=4294967296", "page"), ("page_size=500", "page_size"), ("enabled=maybe", "enabled")]
    {
        assert_eq!(t.admin("GET", &format!("/api/databases?{q}"), None).await.field(), Some(field), "{q}");
    }
    // The last page number there is: past the end, not wrapped around to the first page.
    let far = t.admin("GET", "/api/databases?page=4294967295&page_size=200", None).await;
    assert_eq!((far.status, far.body["databases"].as_array().map(Vec::len)), (200, Some(0)), "{}", far.body);
}

#[tokio::test]
async fn a_stale_database_edit_is_412() {
    let t = T::new();
    let e = t.engine("pg", "db1").await;
    let d = t.database(&e, "shop").await;
    let path = format!("/api/databases/{d}");
    let etag = t.admin("GET", &path, None).await.header("etag").unwrap().to_string();
    t.admin("PUT", &path, Some(json!({ "alias": "Shop" }))).await;
    let a = t.call_with("admin", "PUT", &path, Some(json!({ "enabled": false })), Some(&etag)).await;
    assert_eq!(a.status, 412);
    assert!(t.mem.databases.read(&d).unwrap().enabled);
}

#[tokio::test]
async fn a_server_test_sends_the_opened_password_to_the_dumper_only() {
    let t = T::new();
    let e = t.engine("pg", "db1").await;
    let a = t.admin("POST", &format!("/api/engines/{e}/test"), None).await;
    assert_eq!((a.status, a.body["success"].as_bool()), (200, Some(true)), "{}", a.body);
    let asked = t.mem.dumper.asked();
    assert_eq!((asked[0].username.as_str(), asked[0].password.as_str()), ("backup", "s3cret-pw"));
    assert!(!a.body.to_string().contains("s3cret-pw"));
    assert!(!format!("{:?}", t.mem.audit.all()).contains("s3cret-pw"), "not in the audit trail");
}

#[tokio::test]
async fn a_database_test_says_whose_credentials_it_used() {
    let t = T::new();
    let e = t.engine("pg", "db1").await;
    let d = t.database(&e, "shop").await;
    let a = t.admin("POST", &format!("/api/databases/{d}/test"), None).await;
    assert_eq!(a.body["credentials"], "server");
    assert_eq!(t.mem.dumper.asked()[0].database.as_deref(), Some("shop"));
}

#[tokio::test]
async fn a_server_without_credentials_cannot_be_tested() {
    let t = T::new();
    let bare = json!({ "name": "bare", "engine_type": "postgresql", "host": "h" });
    let e = t.admin("POST", "/api/engines", Some(bare)).await.body["id"].as_str().unwrap().to_string();
    let a = t.admin("POST", &format!("/api/engines/{e}/test"), None).await;
    assert_eq!((a.status, a.code()), (409, Some("no_credentials")));
    assert!(t.mem.dumper.asked().is_empty());
}

#[tokio::test]
async fn a_dumper_that_does_not_answer_is_503_with_what_to_check() {
    let t = T::new();
    let e = t.engine("pg", "db1").await;
    *t.mem.dumper.down.borrow_mut() = true;
    let a = t.admin("POST", &format!("/api/engines/{e}/test"), None).await;
    assert_eq!((a.status, a.code()), (503, Some("dumper_unreachable")));
    assert!(a.body["error"]["message"].as_str().unwrap().contains("dumper_url/dumper_token"));
}

#[tokio::test]
async fn unsaved_settings_are_validated_before_the_dumper_is_asked() {
    let t = T::new();
    let cases = [
        (json!({ "host": "h", "username": "u", "password": "p" }), "engine_type"),
        (json!({ "engine_type": "postgresql", "host": "h", "username": "u" }), "password"),
        (json!({ "engine_type": "postgresql", "host": "h", "port": 0, "username": "u", "password": "p" }), "port"),
        (json!({ "engine_id": "x", "host": "h" }), "engine_id"),
        (json!({ "engine_type": "postgresql", "host": "h", "username": "-u", "password": "p" }), "username"),
    ];
    for (body, field) in cases {
        let a = t.admin("POST", "/api/databases/test-connection", Some(body)).await;
        assert_eq!((a.status, a.field()), (400, Some(field)), "{}", a.body);
    }
    assert!(t.mem.dumper.asked().is_empty());
    let ok = json!({ "engine_type": "mysql", "host": "h", "username": "u", "password": "p" });
    t.admin("POST", "/api/databases/test-connection", Some(ok)).await;
    assert_eq!(t.mem.dumper.asked()[0].port, 3306, "the engine's default port");
}

#[tokio::test]
async fn discovery_flags_system_databases_and_adds_only_valid_names() {
    let t = T::new();
    let e = t.engine("pg", "db1").await;
    t.mem.dumper.answer.borrow_mut().databases = vec!["postgres".into(), "shop".into(), "crm".into()];
    let a = t.admin("POST", &format!("/api/engines/{e}/discover"), None).await;
    let flag = |name: &str| a.body["databases"].as_array().unwrap().iter().find(|d| d["name"] == name).unwrap().clone();
    assert_eq!((flag("postgres")["system"].as_bool(), flag("shop")["system"].as_bool()), (Some(true), Some(false)));
    let bad = t.admin("POST", &format!("/api/engines/{e}/discover"), Some(json!({ "add": ["shop", "nope"] }))).await;
    assert_eq!((bad.status, bad.field()), (400, Some("add")));
    assert!(t.mem.databases.is_empty(), "nothing half-added");
    let ok = t.admin("POST", &format!("/api/engines/{e}/discover"), Some(json!({ "add": ["shop"] }))).await;
    assert_eq!(ok.body["added"].as_array().unwrap().len(), 1);
    let again = t.admin("POST", &format!("/api/engines/{e}/discover"), None).await;
    let shop = again.body["databases"].as_array().unwrap().iter().find(|d| d["name"] == "shop").unwrap().clone();
    assert_eq!(shop["exists"], true);
}

#[tokio::test]
async fn a_failed_discovery_says_why_in_the_tests_words() {
    let t = T::new();
    let e = t.engine("pg", "db1").await;
    {
        let mut answer = t.mem.dumper.answer.borrow_mut();
        answer.success = false;
        answer.error_type = Some(ErrorClass::AuthFailed);
        answer.message = "password authentication failed for user \"backup\"".into();
    }
    let a = t.admin("POST", &format!("/api/engines/{e}/discover"), None).await;
    assert_eq!((a.status, a.body["success"].as_bool()), (200, Some(false)));
    assert_eq!(a.body["error_type"], "AuthFailed", "{}", a.body);
}

#[tokio::test]
async fn policies_come_with_summary_and_usage() {
    let t = T::new();
    let e = t.engine("pg", "db1").await;
    t.database(&e, "shop").await;
    let list = t.admin("GET", "/api/backup-policies", None).await.body;
    assert_eq!(list["policies"][0]["id"], "production-critical", "system ones first, seeded order");
    let std = list["policies"].as_array().unwrap().iter().find(|p| p["id"] == "production-standard").unwrap().clone();
    assert_eq!((std["summary"].as_str(), std["database_count"].as_u64()), (Some("12h/7d/4w/2m/1y"), Some(1)));
}

fn policy(name: &str) -> serde_json::Value {
    json!({ "name": name, "daily": { "enabled": true, "keep_count": 5, "time": "02:00" } })
}

#[tokio::test]
async fn a_policy_name_is_unique_and_system_policies_are_never_deleted() {
    let t = T::new();
    let a = t.admin("POST", "/api/backup-policies", Some(policy("Nightly"))).await;
    assert_eq!(a.status, 201, "{}", a.body);
    assert_eq!(t.admin("POST", "/api/backup-policies", Some(policy("nightly"))).await.status, 409);
    let a = t.admin("DELETE", "/api/backup-policies/production-standard", None).await;
    assert_eq!((a.status, a.code()), (409, Some("system_policy")));
}

#[tokio::test]
async fn a_policy_in_use_or_the_default_is_not_deleted() {
    let t = T::new();
    let id =
        t.admin("POST", "/api/backup-policies", Some(policy("Nightly"))).await.body["id"].as_str().unwrap().to_string();
    let e = t.engine("pg", "db1").await;
    let d = t.admin("POST", "/api/databases", Some(json!({ "engine_id": e, "name": "x", "policy_id": id }))).await;
    assert_eq!(d.status, 201);
    let a = t.admin("DELETE", &format!("/api/backup-policies/{id}"), None).await;
    assert_eq!(a.code(), Some("policy_in_use"));
    t.admin("DELETE", &format!("/api/databases/{}", d.body["id"].as_str().unwrap()), None).await;
    t.admin("PUT", "/api/settings", Some(json!({ "default_policy_id": id }))).await;
    let a = t.admin("DELETE", &format!("/api/backup-policies/{id}"), None).await;
    assert!(a.body["error"]["message"].as_str().unwrap().contains("default for new databases"), "{}", a.body);
}

#[tokio::test]
async fn editing_a_system_policy_stores_it_and_a_stale_edit_is_412() {
    let t = T::new();
    let a = t.admin("PUT", "/api/backup-policies/development", Some(policy("Development"))).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(t.mem.policies.read("development").unwrap().is_system);
    let etag = t.admin("GET", "/api/backup-policies/development", None).await.header("etag").unwrap().to_string();
    t.admin("PUT", "/api/backup-policies/development", Some(policy("Dev 2"))).await;
    let stale =
        t.call_with("admin", "PUT", "/api/backup-policies/development", Some(policy("Dev 3")), Some(&etag)).await;
    assert_eq!(stale.status, 412);
}

#[tokio::test]
async fn settings_default_until_saved_then_tagged() {
    let t = T::new();
    let a = t.call("viewer", "GET", "/api/settings", None).await;
    assert_eq!((a.status, a.header("etag")), (200, None));
    assert_eq!(a.body["default_policy_id"], "production-standard");
    let a = t.admin("PUT", "/api/settings", Some(json!({ "default_policy_id": "nope" }))).await;
    assert_eq!(a.field(), Some("default_policy_id"));
    let saved = t.admin("PUT", "/api/settings", Some(json!({ "dark_mode": true }))).await;
    assert_eq!(saved.body["updated_by"], "admin@example.com");
    let etag = t.admin("GET", "/api/settings", None).await.header("etag").unwrap().to_string();
    t.admin("PUT", "/api/settings", Some(json!({ "dark_mode": false }))).await;
    let stale = t.call_with("admin", "PUT", "/api/settings", Some(json!({ "dark_mode": true })), Some(&etag)).await;
    assert_eq!(stale.status, 412);
}

#[tokio::test]
async fn only_admins_move_databases_to_a_policy_that_keeps_less() {
    let t = T::new();
    let e = t.engine("pg", "db1").await;
    let d = t.database(&e, "shop").await;
    let to = |p: &str| Some(json!({ "policy_id": p }));
    let a = t.call("operator", "PUT", &format!("/api/databases/{d}"), to("development")).await;
    assert_eq!((a.status, a.code()), (403, Some("forbidden")), "{}", a.body);
    assert!(a.message().contains("keeps fewer hourly, weekly, monthly, yearly backups"), "{}", a.body);
    let a = t.call("operator", "PUT", &format!("/api/engines/{e}"), to("development")).await;
    assert_eq!(a.status, 200, "no database follows the server's policy: {}", a.body);
    let a = t.call("operator", "PUT", &format!("/api/databases/{d}"), to("production-critical")).await;
    assert_eq!(a.status, 200, "keeping more is an operator's call: {}", a.body);
    let a = t.admin("PUT", &format!("/api/databases/{d}"), to("development")).await;
    assert_eq!(a.status, 200, "{}", a.body);
}

#[tokio::test]
async fn a_seal_key_rotation_reseals_every_password_so_the_old_key_can_go() {
    use dilux_domain::Sealer;
    const NEW_KEY: &str = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=";
    let t = T::new();
    let e = t.engine("pg", "db1").await;
    let own = json!({ "engine_id": e, "name": "own", "use_engine_credentials": false, "username": "u2",
        "password": "own-pw" });
    let d = t.admin("POST", "/api/databases", Some(own)).await.body["id"].as_str().unwrap().to_string();
    // A sealed password is bound to its record: copied onto another, it does not open.
    let mut stolen = t.mem.databases.read(&d).unwrap();
    stolen.password_sealed = t.mem.engines.read(&e).unwrap().password_sealed;
    assert!(t.app.sealer.open(stolen.password_sealed.as_deref().unwrap(), &d).is_err());

    let only_new = t.with_sealer(Sealer::from_base64_key(NEW_KEY).unwrap());
    let a = only_new.admin("POST", &format!("/api/databases/{d}/test"), None).await;
    assert_eq!(a.code(), Some("unreadable_secret"), "the new key alone cannot open them yet: {}", a.body);
    let rotating = t.with_sealer(Sealer::with_previous(NEW_KEY, &[crate::SEAL_KEY]).unwrap());
    assert_eq!(rotating.call("operator", "POST", "/api/settings/reseal", None).await.status, 403);
    let a = rotating.admin("POST", "/api/settings/reseal", None).await;
    assert_eq!((a.status, a.body["resealed"].as_u64(), a.body["unreadable"].clone()), (200, Some(2), json!([])));
    assert_eq!(rotating.admin("POST", "/api/settings/reseal", None).await.body["unchanged"], 2, "idempotent");
    for path in [format!("/api/databases/{d}/test"), format!("/api/engines/{e}/test")] {
        let a = only_new.admin("POST", &path, None).await;
        assert_ne!(a.code(), Some("unreadable_secret"), "{path}: {}", a.body);
    }
    assert_eq!(t.admin("POST", &format!("/api/engines/{e}/test"), None).await.code(), Some("unreadable_secret"));
}

#[tokio::test]
async fn a_policys_compression_names_new_backups_and_bad_levels_name_the_field() {
    let t = T::new();
    let std = t.admin("GET", "/api/backup-policies/production-standard", None).await.body;
    assert_eq!(std["compression"], json!({ "algorithm": "zstd", "level": 3 }), "the default");
    let mut gzip = policy("Legacy tools");
    gzip["compression"] = json!({ "algorithm": "gzip", "level": 9 });
    let created = t.admin("POST", "/api/backup-policies", Some(gzip.clone())).await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.body["compression"]["algorithm"], "gzip");
    for (bad, field) in [
        (json!({ "algorithm": "gzip", "level": 10 }), "compression.level"),
        (json!({ "algorithm": "zstd", "level": 0 }), "compression.level"),
        (json!({ "algorithm": "brotli", "level": 3 }), "compression.algorithm"),
    ] {
        let mut p = policy("Bad");
        p["compression"] = bad;
        let a = t.admin("POST", "/api/backup-policies", Some(p)).await;
        assert_eq!((a.status, a.field()), (400, Some(field)), "{}", a.body);
    }
    assert!(t.mem.policies.all().iter().all(|p| p.name != "Bad"), "nothing written");

    // Back up now: the database's policy decides; the row says the format.
    let e = t.engine("pg", "db1").await;
    let id = created.body["id"].as_str().unwrap();
    let on_gzip =
        t.admin("POST", "/api/databases", Some(json!({ "engine_id": e, "name": "old", "policy_id": id }))).await;
    let on_default = t.database(&e, "new").await;
    for (db, ext) in [(on_gzip.body["id"].as_str().unwrap().to_string(), "sql.gz"), (on_default, "sql.zst")] {
        let a = t.call("operator", "POST", &format!("/api/databases/{db}/backup"), None).await;
        assert_eq!(a.status, 202, "{}", a.body);
        assert!(a.body["blob_name"].as_str().unwrap().ends_with(&format!(".{ext}")), "{}", a.body);
        let row = t.mem.history.all().into_iter().find(|r| r.database_id == db).unwrap();
        assert_eq!(row.file_format, ext);
    }
    let jobs: Vec<serde_json::Value> = t.mem.jobs.messages().iter().map(|m| serde_json::from_str(m).unwrap()).collect();
    assert_eq!(jobs[0]["compression"], json!({ "algorithm": "gzip", "level": 9 }));
}

#[tokio::test]
async fn a_policys_recipients_are_checked_and_its_backups_are_queued_encrypted() {
    let t = T::new();
    // age's own example recipient; one character changed fails the checksum.
    let good = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p";
    let typo = good.replace("hjy", "hjz");
    for (bad, field) in [
        (json!({ "recipients": [good, typo] }), "encryption.recipients[1]"),
        (json!({ "recipients": [good, good] }), "encryption.recipients[1]"),
        (json!({ "recipients": [] }), "encryption.recipients"),
        (json!({ "recipients": ["AGE-SECRET-KEY-1QQQQ"] }), "encryption.recipients[0]"),
    ] {
        let mut p = policy("Bad");
        p["encryption"] = bad;
        let a = t.admin("POST", "/api/backup-policies", Some(p)).await;
        assert_eq!((a.status, a.field()), (400, Some(field)), "{}", a.body);
    }
    let mut sealed = policy("Sealed");
    sealed["encryption"] = json!({ "recipients": [good] });
    assert_eq!(t.call("operator", "POST", "/api/backup-policies", Some(sealed.clone())).await.status, 403);
    assert!(t.mem.policies.all().iter().all(|p| p.name != "Bad" && p.name != "Sealed"), "nothing written");
    let created = t.admin("POST", "/api/backup-policies", Some(sealed)).await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.body["encryption"]["recipients"][0], good);

    let e = t.engine("pg", "db1").await;
    let id = created.body["id"].as_str().unwrap();
    let db = t.admin("POST", "/api/databases", Some(json!({ "engine_id": e, "name": "s", "policy_id": id }))).await;
    let db = db.body["id"].as_str().unwrap().to_string();
    let a = t.call("operator", "POST", &format!("/api/databases/{db}/backup"), None).await;
    assert_eq!(a.status, 202, "{}", a.body);
    assert!(a.body["blob_name"].as_str().unwrap().ends_with(".sql.zst.age"), "{}", a.body);
    let row = t.mem.history.all().into_iter().find(|r| r.database_id == db).unwrap();
    assert!(row.encrypted && row.file_format == "sql.zst.age", "{row:?}");
    let job: serde_json::Value = serde_json::from_str(&t.mem.jobs.messages()[0]).unwrap();
    assert_eq!(job["encrypt_to"], json!([good]), "the worker is told whom to encrypt to");
}

#[tokio::test]
async fn a_policys_postgresql_format_is_kept_and_its_backups_are_queued_as_custom_archives() {
    let t = T::new();
    let mut p = policy("Archives");
    p["postgresql_format"] = json!("directory");
    let a = t.admin("POST", "/api/backup-policies", Some(p.clone())).await;
    assert_eq!((a.status, a.field()), (400, Some("postgresql_format")), "{}", a.body);
    p["postgresql_format"] = json!("custom");
    let created = t.admin("POST", "/api/backup-policies", Some(p)).await;
    assert_eq!((created.status, &created.body["postgresql_format"]), (201, &json!("custom")), "{}", created.body);
    let id = created.body["id"].as_str().unwrap();
    let listed = t.admin("GET", &format!("/api/backup-policies/{id}"), None).await;
    assert_eq!(listed.body["postgresql_format"], "custom", "{}", listed.body);

    let e = t.engine("pg", "db1").await;
    let db = t.admin("POST", "/api/databases", Some(json!({ "engine_id": e, "name": "s", "policy_id": id }))).await;
    let db = db.body["id"].as_str().unwrap().to_string();
    let a = t.call("operator", "POST", &format!("/api/databases/{db}/backup"), None).await;
    assert!(a.body["blob_name"].as_str().unwrap().ends_with(".dump.zst"), "{}", a.body);
    let job: serde_json::Value = serde_json::from_str(&t.mem.jobs.messages()[0]).unwrap();
    assert_eq!(job["dump_format"], "custom", "the worker is told to dump an archive");
}
