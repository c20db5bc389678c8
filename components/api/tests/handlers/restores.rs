//! Restore requests: what is checked before anything is written, the job and row they leave, and the
//! history a user follows.

use chrono::Duration;
use dilux_domain::restore::RestoreJob;
use dilux_domain::{BackupJob, BackupResult, BackupStatus, EngineType, TriggeredBy};
use serde_json::json;

use crate::{now, T};

/// A completed backup of database `db` (named `shop`) on server `engine`.
fn completed(t: &T, db: &str, engine: &str, status: BackupStatus) -> BackupResult {
    let job = BackupJob::new(db, EngineType::Postgresql, TriggeredBy::Manual, vec![], now() - Duration::hours(1));
    let mut row = BackupResult::pending(&job, "shop", "Shop", engine);
    row.status = status;
    row.sha256 = Some("ab".repeat(32));
    row.file_size_bytes = Some(1234);
    t.mem.history.put(row.clone());
    row
}

async fn setup() -> (T, String, BackupResult) {
    let t = T::new();
    let e = t.engine("pg", "db1").await;
    let d = t.database(&e, "shop").await;
    let b = completed(&t, &d, &e, BackupStatus::Completed);
    (t, e, b)
}

#[tokio::test]
async fn a_restore_request_leaves_a_pending_row_and_a_job() {
    let (t, e, b) = setup().await;
    let a = t.call("operator", "POST", "/api/backups/restore", Some(json!({ "blob_name": b.blob_name }))).await;
    assert_eq!(a.status, 202, "{}", a.body);
    assert_eq!(a.body["target_database"], "shop_restored_20261201_120000", "the default name");
    let row = t.mem.restores.all().remove(0);
    assert_eq!(
        (row.status, row.target_engine_id.as_str(), row.backup_id.as_str()),
        (BackupStatus::Pending, e.as_str(), b.id.as_str())
    );
    assert_eq!((row.sha256, row.requested_by.as_str()), (b.sha256.clone(), "operator@example.com"));
    let job = RestoreJob::parse(&t.mem.restore_jobs.messages()[0]).unwrap();
    assert_eq!(job.id, row.id);
    assert!(t.mem.jobs.messages().is_empty(), "backup jobs are another queue");
    let audit = t.mem.audit.all().pop().unwrap();
    assert_eq!((audit.action.as_str(), audit.resource_id.as_str()), ("restore_requested", b.id.as_str()));
}

#[tokio::test]
async fn only_a_completed_backup_onto_a_server_of_its_engine_is_restored() {
    let (t, _, b) = setup().await;
    let failed = completed(&t, "other", "e", BackupStatus::Failed);
    let my = t
        .admin(
            "POST",
            "/api/engines",
            Some(json!({ "name": "my", "engine_type": "mysql", "host": "m",
        "username": "u", "password": "pw-1234" })),
        )
        .await;
    let cases = [
        (json!({ "blob_name": failed.blob_name }), "blob_name"),
        (json!({ "blob_name": "../../etc" }), "blob_name"),
        (json!({ "blob_name": b.blob_name, "target_engine_id": my.body["id"] }), "target_engine_id"),
        (json!({ "blob_name": b.blob_name, "target_database": "-x" }), "target_database"),
        (json!({ "blob_name": b.blob_name, "mode": "replace", "confirm": "shopp" }), "confirm"),
        (json!({ "blob_name": b.blob_name, "mode": "replace" }), "confirm"),
        (json!({ "blob_name": b.blob_name, "mode": "merge" }), "mode"),
    ];
    for (body, field) in cases {
        let a = t.admin("POST", "/api/backups/restore", Some(body.clone())).await;
        assert_eq!((a.status, a.field()), (400, Some(field)), "{body}: {}", a.body);
    }
    let unknown = json!({ "blob_name": b.blob_name, "target_engine_id": "nope" });
    let a = t.admin("POST", "/api/backups/restore", Some(unknown)).await;
    assert_eq!((a.status, a.field()), (404, Some("target_engine_id")), "{}", a.body);
    let unknown = json!({ "blob_name": "postgresql/x/20260101_000000_y.sql.gz" });
    let a = t.admin("POST", "/api/backups/restore", Some(unknown)).await;
    assert_eq!((a.status, a.field()), (404, Some("blob_name")), "{}", a.body);
    assert!(t.mem.restores.is_empty() && t.mem.restore_jobs.messages().is_empty(), "nothing written");
}

#[tokio::test]
async fn a_registered_database_is_never_a_restore_target() {
    let (t, _, b) = setup().await;
    let a = t
        .admin("POST", "/api/backups/restore", Some(json!({ "blob_name": b.blob_name, "target_database": "shop" })))
        .await;
    assert_eq!((a.status, a.code()), (409, Some("duplicate")));
}

#[tokio::test]
async fn one_restore_into_a_target_at_a_time() {
    let (t, _, b) = setup().await;
    let body = json!({ "blob_name": b.blob_name, "target_database": "shop_copy" });
    assert_eq!(t.admin("POST", "/api/backups/restore", Some(body.clone())).await.status, 202);
    let a = t.admin("POST", "/api/backups/restore", Some(body)).await;
    assert_eq!((a.status, a.code()), (409, Some("restore_in_progress")));
    let other = json!({ "blob_name": b.blob_name, "target_database": "shop_copy2" });
    assert_eq!(t.admin("POST", "/api/backups/restore", Some(other)).await.status, 202, "another target is fine");
}

#[tokio::test]
async fn viewers_follow_restores_but_cannot_start_one() {
    let (t, _, b) = setup().await;
    let a = t.call("viewer", "POST", "/api/backups/restore", Some(json!({ "blob_name": b.blob_name }))).await;
    assert_eq!(a.status, 403);
    let id = t.admin("POST", "/api/backups/restore", Some(json!({ "blob_name": b.blob_name }))).await.body
        ["restore_id"]
        .as_str()
        .unwrap()
        .to_string();
    let list = t.call("viewer", "GET", &format!("/api/restores?database_id={}", b.database_id), None).await;
    assert_eq!((list.status, list.body["count"].as_u64()), (200, Some(1)));
    let one = t.call("viewer", "GET", &format!("/api/restores/{id}"), None).await;
    assert_eq!((one.body["status"].as_str(), one.body["bytes_total"].as_u64()), (Some("pending"), Some(1234)));
    assert_eq!(t.call("viewer", "GET", "/api/restores/nope", None).await.status, 404);
    assert_eq!(t.call("viewer", "GET", "/api/restores?status=done", None).await.field(), Some("status"));
}

#[tokio::test]
async fn a_queue_outage_leaves_no_pending_restore() {
    let (t, _, b) = setup().await;
    *t.mem.restore_jobs.fail.borrow_mut() = true;
    let a = t.admin("POST", "/api/backups/restore", Some(json!({ "blob_name": b.blob_name }))).await;
    assert_eq!(a.status, 503);
    assert!(t.mem.restores.is_empty());
}

#[tokio::test]
async fn a_lost_answer_keeps_only_a_restore_a_worker_already_took() {
    let (t, _, b) = setup().await;
    *t.mem.restore_jobs.lose_answers.borrow_mut() = true;
    let a = t.admin("POST", "/api/backups/restore", Some(json!({ "blob_name": b.blob_name }))).await;
    assert_eq!(a.status, 503);
    assert!(a.body["error"]["message"].as_str().unwrap().contains("not queued"), "{}", a.body);
    assert!(t.mem.restores.is_empty());
    let restores = t.mem.restores.clone();
    *t.mem.restore_jobs.on_delivery.borrow_mut() = Some(Box::new(move |_| {
        for mut r in restores.all() {
            r.start(now());
            restores.put(&r.id.clone(), r);
        }
    }));
    let a = t.admin("POST", "/api/backups/restore", Some(json!({ "blob_name": b.blob_name }))).await;
    assert_eq!(a.status, 202, "the restore runs: {}", a.body);
    let rows = t.mem.restores.all();
    assert_eq!((rows.len(), rows[0].status), (1, BackupStatus::InProgress));
}

#[tokio::test]
async fn replacing_needs_an_admin_and_the_typed_name() {
    let (t, _, b) = setup().await;
    let body = json!({ "blob_name": b.blob_name, "mode": "replace", "confirm": "shop" });
    let a = t.call("operator", "POST", "/api/backups/restore", Some(body.clone())).await;
    assert_eq!((a.status, a.code()), (403, Some("forbidden")));
    let a = t.admin("POST", "/api/backups/restore", Some(body)).await;
    assert_eq!((a.status, a.body["target_database"].as_str()), (202, Some("shop")), "{}", a.body);
    let row = t.mem.restores.all().remove(0);
    assert_eq!((row.mode, row.target_database.as_str()), (dilux_domain::restore::RestoreMode::Replace, "shop"));
}

#[tokio::test]
async fn a_backups_verification_shows_its_manifest_and_every_check_newest_first() {
    use dilux_domain::manifest::{manifest_blob, Manifest, TableTally};
    use dilux_domain::restore::{RestorePurpose, RestoreResult, Verification};
    let (t, e, b) = setup().await;
    let a = t.call("viewer", "GET", &format!("/api/backups/{}/verification", b.id), None).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(a.body["manifest"].is_null() && a.body["latest"].is_null(), "an old backup: nothing yet");
    let manifest = Manifest {
        format: 1,
        engine: EngineType::Postgresql,
        tables: vec![TableTally { table: "public.items".into(), rows: 7, digest: "0".repeat(32) }],
    };
    t.mem.files.put_content(&manifest_blob(&b.blob_name), &serde_json::to_vec(&manifest).unwrap());
    let engine = t.mem.engines.read(&e).unwrap();
    for (hours, why) in [(3, "older"), (1, "newer")] {
        let mut r =
            RestoreResult::queued(&b, &engine, "scratch", Default::default(), RestorePurpose::Drill, "s", now());
        r.created_at = now() - Duration::hours(hours);
        r.fail(now(), dilux_domain::ErrorClass::Corrupt, why);
        r.verification = Some(Verification::of_failure(&r, why, now()));
        t.mem.restores.put(&r.id.clone(), r);
    }
    let a = t.call("viewer", "GET", &format!("/api/backups/{}/verification", b.id), None).await;
    assert_eq!(a.body["manifest"]["tables"][0]["rows"], 7, "{}", a.body);
    assert_eq!(a.body["history"].as_array().unwrap().len(), 2);
    assert!(a.body["latest"]["summary"].as_str().unwrap().ends_with("newer"), "{}", a.body);
    assert_eq!(t.call("viewer", "GET", "/api/backups/nope/verification", None).await.status, 404);
    // Deleting the backup takes its manifest with it.
    let d = t.admin("DELETE", &format!("/api/backups/delete?blob_name={}&force=true", b.blob_name), None).await;
    assert_eq!(d.status, 200, "{}", d.body);
    assert!(t.mem.files.names().is_empty(), "{:?}", t.mem.files.names());
}

#[tokio::test]
async fn status_shows_each_databases_drills_and_alerts_when_none_passed() {
    use dilux_domain::drill::DrillState;
    use dilux_domain::policy::{default_policies, PolicyRow, VerifyPolicy, DEFAULT_POLICY_ID};
    use dilux_domain::restore::VerificationResult;
    let (t, _, b) = setup().await;
    let status = t.call("viewer", "GET", "/api/system-status", None).await;
    assert!(status.body["drills"]["databases"].as_array().unwrap().is_empty(), "no policy asks: {}", status.body);
    let mut p = default_policies().into_iter().find(|p| p.id == DEFAULT_POLICY_ID).unwrap();
    p.verification = VerifyPolicy { every_days: Some(7), ..Default::default() };
    t.mem.policies.put(&p.id.clone(), PolicyRow::from(&p));
    let alerts = |v: &serde_json::Value| -> Vec<String> {
        let all = v["alerts"].as_array().unwrap().iter();
        all.filter(|a| a["kind"] == "restore_drill").map(|a| a["message"].as_str().unwrap().to_string()).collect()
    };
    let status = t.call("viewer", "GET", "/api/system-status", None).await;
    assert_eq!(alerts(&status.body), vec!["shop: no successful restore drill yet (every 7 days asked)"]);
    let mut state = DrillState::new(&b.database_id);
    state.last_result = Some(VerificationResult::Passed);
    state.last_success_at = Some(now() - Duration::days(2));
    state.last_success_rto_seconds = Some(12.5);
    t.mem.drills.put(&b.database_id, state.clone());
    let status = t.call("viewer", "GET", "/api/system-status", None).await;
    assert!(alerts(&status.body).is_empty(), "{}", status.body);
    let row = &status.body["drills"]["databases"][0];
    assert_eq!((row["rto_seconds"].as_f64(), row["last_result"].as_str()), (Some(12.5), Some("passed")), "{row}");
    state.last_success_at = Some(now() - Duration::days(9));
    t.mem.drills.put(&b.database_id, state);
    let status = t.call("viewer", "GET", "/api/system-status", None).await;
    assert_eq!(alerts(&status.body), vec!["shop: no successful restore drill for 9 days (every 7 days asked)"]);
}

#[tokio::test]
async fn only_a_custom_archive_restores_chosen_tables_and_the_row_names_them() {
    use dilux_domain::compression::Compression;
    use dilux_domain::format::DumpFormat;
    let (t, e, plain) = setup().await;
    let d = t.database(&e, "shop2").await;
    let job = BackupJob::new(&d, EngineType::Postgresql, TriggeredBy::Manual, vec![], now() - Duration::hours(1))
        .stored_as(Compression::default(), None, DumpFormat::Custom);
    let mut custom = BackupResult::pending(&job, "shop2", "Shop 2", &e);
    custom.status = BackupStatus::Completed;
    t.mem.history.put(custom.clone());
    assert!(custom.blob_name.ends_with(".dump.zst"), "{}", custom.blob_name);

    let a = t
        .call(
            "operator",
            "POST",
            "/api/backups/restore",
            Some(json!({ "blob_name": plain.blob_name,
        "tables": ["orders"] })),
        )
        .await;
    assert_eq!((a.status, a.code()), (409, Some("not_selective")), "{}", a.body);
    let cases = [
        (json!({ "blob_name": custom.blob_name, "tables": [] }), "tables"),
        (json!({ "blob_name": custom.blob_name, "tables": ["orders", ".x"] }), "tables[1]"),
        (json!({ "blob_name": custom.blob_name, "tables": ["a\u{1}b"] }), "tables[0]"),
        (json!({ "blob_name": custom.blob_name, "mode": "replace", "confirm": "shop2", "tables": ["t"] }), "tables"),
    ];
    for (body, field) in cases {
        let a = t.admin("POST", "/api/backups/restore", Some(body.clone())).await;
        assert_eq!((a.status, a.field()), (400, Some(field)), "{body}: {}", a.body);
    }
    assert!(t.mem.restores.is_empty(), "nothing written");

    let body = json!({ "blob_name": custom.blob_name, "tables": ["orders", "public.orders", "sales.Order Items"] });
    let a = t.call("operator", "POST", "/api/backups/restore", Some(body)).await;
    assert_eq!(a.status, 202, "{}", a.body);
    assert!(a.body["message"].as_str().unwrap().contains("restore of 2 tables"), "{}", a.body);
    let row = t.mem.restores.all().remove(0);
    assert_eq!(row.tables, ["public.orders", "sales.Order Items"], "one table named twice counts once");
}
