//! Manual backups, the history, files, downloads, deletes, retention preview, audit and status.

use chrono::Duration;
use dilux_domain::{BackupJob, BackupResult, BackupStatus, EngineType, TriggeredBy};
use serde_json::json;

use crate::{now, T};

/// A finished backup of `db`, `days_ago` days before now, with its file.
fn backup(t: &T, db: &str, days_ago: i64, status: BackupStatus) -> BackupResult {
    let at = now() - Duration::days(days_ago);
    let job = BackupJob::new(db, EngineType::Postgresql, TriggeredBy::Scheduler, vec![], at);
    let mut row = BackupResult::pending(&job, "shop", "shop", "e");
    row.status = status;
    if status == BackupStatus::Completed {
        row.file_size_bytes = Some(1000);
        row.sha256 = Some("ab".repeat(32));
        t.mem.files.put(&row.blob_name, 1000, row.sha256.as_deref());
    }
    t.mem.history.put(row.clone());
    row
}

async fn setup() -> (T, String) {
    let t = T::new();
    let e = t.engine("pg", "db1").await;
    let d = t.database(&e, "shop").await;
    (t, d)
}

#[tokio::test]
async fn back_up_now_writes_a_pending_row_then_queues_the_job() {
    let (t, d) = setup().await;
    let a = t.call("operator", "POST", &format!("/api/databases/{d}/backup"), None).await;
    assert_eq!(a.status, 202, "{}", a.body);
    let rows = t.mem.history.all();
    assert_eq!((rows.len(), rows[0].status), (1, BackupStatus::Pending));
    let job: serde_json::Value = serde_json::from_str(&t.mem.jobs.messages()[0]).unwrap();
    assert_eq!(job["id"], a.body["backup_id"]);
    assert_eq!(a.body["blob_name"].as_str(), Some(rows[0].blob_name.as_str()));
}

#[tokio::test]
async fn a_second_backup_while_one_is_queued_is_409() {
    let (t, d) = setup().await;
    t.admin("POST", &format!("/api/databases/{d}/backup"), None).await;
    let a = t.admin("POST", &format!("/api/databases/{d}/backup"), None).await;
    assert_eq!((a.status, a.code()), (409, Some("backup_in_progress")));
    assert!(a.body["error"]["message"].as_str().unwrap().contains("queued"));
    assert_eq!(t.mem.jobs.messages().len(), 1);
}

#[tokio::test]
async fn a_queue_outage_leaves_no_pending_row_behind() {
    let (t, d) = setup().await;
    *t.mem.jobs.fail.borrow_mut() = true;
    let a = t.admin("POST", &format!("/api/databases/{d}/backup"), None).await;
    assert_eq!((a.status, a.code()), (503, Some("storage_unavailable")));
    assert!(t.mem.history.all().is_empty(), "a pending row without a job would wait forever");
}

#[tokio::test]
async fn a_lost_answer_keeps_the_row_only_of_a_job_a_worker_already_took() {
    let (t, d) = setup().await;
    *t.mem.jobs.lose_answers.borrow_mut() = true;
    let a = t.admin("POST", &format!("/api/databases/{d}/backup"), None).await;
    assert_eq!(a.status, 503);
    assert!(a.body["error"]["message"].as_str().unwrap().contains("not queued"), "{}", a.body);
    assert!(t.mem.history.all().is_empty(), "the copy that arrived finds no row and is dropped");
    // This time a worker starts the job between the Put Message and the API's undo.
    let history = t.mem.history.clone();
    *t.mem.jobs.on_delivery.borrow_mut() = Some(Box::new(move |_| {
        for mut r in history.all().into_iter().filter(|r| r.status == BackupStatus::Pending) {
            r.start(now());
            history.put(r);
        }
    }));
    let a = t.admin("POST", &format!("/api/databases/{d}/backup"), None).await;
    assert_eq!(a.status, 202, "the backup runs: {}", a.body);
    let rows = t.mem.history.all();
    assert_eq!(rows.len(), 1, "the running job's row stays for its result");
    assert_eq!(
        (rows[0].id.as_str(), rows[0].status),
        (a.body["backup_id"].as_str().unwrap(), BackupStatus::InProgress)
    );
}

#[tokio::test]
async fn a_database_whose_server_is_gone_is_409_orphaned() {
    let (t, d) = setup().await;
    let e = t.mem.databases.read(&d).unwrap().engine_id;
    t.mem.engines.remove(&e);
    let a = t.admin("POST", &format!("/api/databases/{d}/backup"), None).await;
    assert_eq!((a.status, a.code()), (409, Some("orphaned")));
}

#[tokio::test]
async fn the_history_is_newest_first_filtered_and_paged_by_cursor() {
    let (t, d) = setup().await;
    for days in 0..5 {
        backup(&t, &d, days, BackupStatus::Completed);
    }
    backup(&t, &d, 1, BackupStatus::Failed);
    backup(&t, "other", 1, BackupStatus::Completed);
    let failed = t.admin("GET", &format!("/api/backups?database_id={d}&status=failed"), None).await.body;
    assert_eq!(failed["count"], 1);
    let p1 = t.admin("GET", &format!("/api/backups?database_id={d}&page_size=4"), None).await.body;
    assert_eq!(p1["count"], 4);
    let times: Vec<&str> =
        p1["backups"].as_array().unwrap().iter().map(|b| b["created_at"].as_str().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first: {times:?}");
    let cursor = p1["next_cursor"].as_str().unwrap().replace('|', "%7C");
    let p2 = t.admin("GET", &format!("/api/backups?database_id={d}&page_size=4&cursor={cursor}"), None).await.body;
    assert_eq!((p2["count"].as_u64(), p2["next_cursor"].is_null()), (Some(2), true));
    let both = t.admin("GET", &format!("/api/backups?database_id={d},other"), None).await.body;
    assert_eq!(both["count"], 7);
}

#[tokio::test]
async fn a_busy_day_fills_the_first_page_from_one_query_and_paging_finds_every_row_once() {
    let (t, d) = setup().await;
    let mut want = Vec::new();
    for minutes in 0..7 {
        let mut r = backup(&t, &d, 0, BackupStatus::Completed);
        t.mem.history.0.borrow_mut().remove(&r.id);
        r.created_at = now() - Duration::minutes(minutes);
        t.mem.history.put(r.clone());
        want.push(r);
    }
    // Sparse older ones, 40 and 85 days back: found by wider windows, not a query per day.
    want.push(backup(&t, &d, 40, BackupStatus::Failed));
    want.push(backup(&t, &d, 85, BackupStatus::Completed));
    want.sort_by_key(|r| std::cmp::Reverse(r.created_at));
    t.mem.history.take_queries();
    let first = t.admin("GET", &format!("/api/backups?database_id={d}&page_size=5"), None).await.body;
    let queries = t.mem.history.take_queries();
    assert_eq!(queries.len(), 1, "one query of today: {queries:?}");
    assert_eq!((queries[0].from, queries[0].limit), (queries[0].to, Some(6)), "today's newest 6 only");
    let mut seen: Vec<String> = Vec::new();
    let mut page = first;
    loop {
        seen.extend(page["backups"].as_array().unwrap().iter().map(|b| b["id"].as_str().unwrap().to_string()));
        let Some(c) = page["next_cursor"].as_str() else { break };
        let url = format!("/api/backups?database_id={d}&page_size=5&cursor={}", c.replace('|', "%7C"));
        page = t.admin("GET", &url, None).await.body;
    }
    assert_eq!(seen, want.iter().map(|r| r.id.clone()).collect::<Vec<_>>(), "every row once, newest first");
    t.mem.history.take_queries();
    t.admin("GET", &format!("/api/backups?database_id={d}&status=cancelled"), None).await;
    let queries = t.mem.history.take_queries().len();
    assert!(queries <= 4, "90 quiet days in {queries} queries, not 90");
}

#[tokio::test]
async fn history_query_values_are_checked_by_name() {
    let (t, _) = setup().await;
    for (q, field) in [
        ("status=done", "status"),
        ("triggered_by=cron", "triggered_by"),
        ("from=yesterday", "from"),
        ("to=+262143-12-31", "to"),
        ("to=0000-01-01", "to"),
        ("from=1969-12-31", "from"),
        ("days=0", "days"),
        ("cursor=garbage", "cursor"),
        ("page_size=201", "page_size"),
    ] {
        let a = t.admin("GET", &format!("/api/backups?{q}"), None).await;
        assert_eq!((a.status, a.field()), (400, Some(field)), "{q}: {}", a.body);
    }
    // Ranges are no refusal: an empty one finds nothing, a long one is searched ten years back from `to`.
    for q in ["from=2026-12-02&to=2026-12-01", "from=1970-01-01&to=9999-12-28"] {
        let a = t.admin("GET", &format!("/api/backups?{q}"), None).await;
        assert_eq!((a.status, a.body["count"].as_u64()), (200, Some(0)), "{q}: {}", a.body);
    }
}

#[tokio::test]
async fn a_date_range_bounds_the_history() {
    let (t, d) = setup().await;
    backup(&t, &d, 0, BackupStatus::Completed);
    backup(&t, &d, 10, BackupStatus::Completed);
    let a = t.admin("GET", "/api/backups?from=2026-11-20&to=2026-11-22", None).await.body;
    assert_eq!(a["count"], 1, "{a}");
    // The ends of the accepted range answer, never overflow.
    for q in ["to=9999-12-31", "from=1970-01-01&to=1970-01-02", "from=9999-12-30&to=9999-12-31"] {
        assert_eq!(t.admin("GET", &format!("/api/backups?{q}"), None).await.status, 200, "{q}");
        assert_eq!(t.admin("GET", &format!("/api/audit?{q}"), None).await.status, 200, "{q}");
    }
}

#[tokio::test]
async fn a_download_link_names_the_size_and_checksum_and_is_audited() {
    let (t, d) = setup().await;
    let b = backup(&t, &d, 1, BackupStatus::Completed);
    let path = format!("/api/backups/download?blob_name={}", b.blob_name);
    // A backup is the whole database: viewers may not take one.
    let refused = t.call("viewer", "GET", &path, None).await;
    assert_eq!((refused.status, refused.code()), (403, Some("forbidden")));
    let a = t.call("operator", "GET", &path, None).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!((a.body["size_bytes"].as_u64(), a.body["sha256"].as_str()), (Some(1000), b.sha256.as_deref()));
    assert_eq!(a.body["expires_at"], json!(now() + Duration::minutes(15)));
    let row = t.mem.audit.all().pop().unwrap();
    assert_eq!((row.action.as_str(), row.resource_id.as_str()), ("backup_downloaded", b.blob_name.as_str()));
}

#[tokio::test]
async fn a_download_of_nothing_or_of_a_bad_name_says_so() {
    let (t, d) = setup().await;
    let a =
        t.admin("GET", &format!("/api/backups/download?blob_name=postgresql/{d}/20260101_000000_x.sql.gz"), None).await;
    assert_eq!(a.status, 404);
    for name in ["../etc/passwd", "postgresql/../x", "oracle/a/b", ""] {
        let a = t.admin("GET", &format!("/api/backups/download?blob_name={name}"), None).await;
        assert_eq!((a.status, a.field()), (400, Some("blob_name")), "{name}");
    }
}

#[tokio::test]
async fn without_an_account_key_a_download_is_501() {
    let (t, d) = setup().await;
    let b = backup(&t, &d, 1, BackupStatus::Completed);
    *t.mem.files.can_sign.borrow_mut() = false;
    let a = t.admin("GET", &format!("/api/backups/download?blob_name={}", b.blob_name), None).await;
    assert_eq!((a.status, a.code()), (501, Some("sas_unavailable")));
}

#[tokio::test]
async fn deleting_a_backup_removes_its_file_then_its_row_but_never_a_running_one() {
    let (t, d) = setup().await;
    let done = backup(&t, &d, 1, BackupStatus::Completed);
    let running = backup(&t, &d, 0, BackupStatus::InProgress);
    let older = backup(&t, &d, 2, BackupStatus::Completed);
    let delete = |b: &BackupResult| format!("/api/backups/delete?blob_name={}", b.blob_name);
    for role in ["viewer", "operator"] {
        assert_eq!(t.call(role, "DELETE", &delete(&older), None).await.status, 403, "{role}: only admins destroy");
    }
    let a = t.admin("DELETE", &delete(&running), None).await;
    assert_eq!((a.status, a.code()), (409, Some("backup_running")));
    // The newest completed backup is the one a restore needs: it goes only when forced.
    let a = t.admin("DELETE", &delete(&done), None).await;
    assert_eq!((a.status, a.field()), (400, Some("force")), "{}", a.body);
    assert!(a.message().contains("newest completed backup"), "{}", a.body);
    assert_eq!(t.admin("DELETE", &delete(&older), None).await.status, 200, "an older one needs no force");
    let a = t.admin("DELETE", &format!("{}&force=true", delete(&done)), None).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(t.mem.files.names().is_empty());
    assert_eq!(t.mem.history.all().len(), 1);
}

#[tokio::test]
async fn a_bulk_delete_answers_per_item() {
    let (t, d) = setup().await;
    let a = backup(&t, &d, 1, BackupStatus::Completed);
    let b = backup(&t, &d, 2, BackupStatus::Completed);
    let names = json!({ "blob_names": [a.blob_name, b.blob_name, "postgresql/x/20260101_000000_y.sql.gz"] });
    let r = t.admin("POST", "/api/backups/delete-bulk", Some(names.clone())).await.body;
    assert_eq!(r["deleted"], json!([b.blob_name]), "the newest stays without force: {r}");
    assert_eq!((r["failed"][0]["status"].as_u64(), r["failed"][1]["status"].as_u64()), (Some(400), Some(404)));
    let forced = json!({ "blob_names": [a.blob_name], "force": true });
    let r = t.admin("POST", "/api/backups/delete-bulk", Some(forced)).await.body;
    assert_eq!(r["deleted"], json!([a.blob_name]), "{r}");
    let empty = t.admin("POST", "/api/backups/delete-bulk", Some(json!({ "blob_names": [] }))).await;
    assert_eq!(empty.field(), Some("blob_names"));
}

#[tokio::test]
async fn deleting_a_database_with_its_backups_refuses_while_one_runs() {
    let (t, d) = setup().await;
    backup(&t, &d, 1, BackupStatus::Completed);
    backup(&t, &d, 0, BackupStatus::Pending);
    let a = t.call("operator", "DELETE", &format!("/api/databases/{d}?delete_backups=true"), None).await;
    assert_eq!((a.status, a.code()), (403, Some("forbidden")), "only admins delete backups with their database");
    assert!(a.message().contains("deleting its backups needs an admin"), "{}", a.body);
    let a = t.admin("DELETE", &format!("/api/databases/{d}?delete_backups=true"), None).await;
    assert_eq!((a.status, a.code()), (409, Some("backup_running")));
    assert_eq!(t.mem.history.all().len(), 2, "nothing deleted");
    assert!(t.mem.databases.read(&d).is_some());
}

#[tokio::test]
async fn stats_count_by_status_and_sum_stored_bytes() {
    let (t, d) = setup().await;
    let newest = backup(&t, &d, 1, BackupStatus::Completed);
    backup(&t, &d, 2, BackupStatus::Completed);
    backup(&t, &d, 3, BackupStatus::Failed);
    backup(&t, &d, 0, BackupStatus::Pending);
    backup(&t, "other", 0, BackupStatus::Completed);
    let s = t.admin("GET", &format!("/api/backups/stats?database_id={d}"), None).await.body;
    assert_eq!(
        (s["total"].as_u64(), s["completed"].as_u64(), s["failed"].as_u64(), s["in_flight"].as_u64()),
        (Some(4), Some(2), Some(1), Some(1))
    );
    assert_eq!(s["total_size_bytes"].as_u64(), Some(2000));
    assert_eq!(s["last_success"], serde_json::to_value(newest.created_at).unwrap());
    assert_eq!(t.admin("GET", "/api/backups/stats", None).await.field(), Some("database_id"));
}

#[tokio::test]
async fn the_file_list_pages_by_marker_and_by_database() {
    let (t, d) = setup().await;
    for days in 1..=3 {
        backup(&t, &d, days, BackupStatus::Completed);
    }
    t.mem.files.put("mysql/other/20261101_000000_x.sql.gz", 5, None);
    let p1 = t.admin("GET", &format!("/api/backups/files?database_id={d}&page_size=2"), None).await.body;
    assert_eq!(p1["count"], 2);
    let marker = p1["next_marker"].as_str().unwrap().to_string();
    let p2 = t.admin("GET", &format!("/api/backups/files?database_id={d}&marker={marker}"), None).await.body;
    assert_eq!(p2["count"], 1);
    // Both filters: their intersection, never a refusal.
    let both = t.admin("GET", &format!("/api/backups/files?prefix=x&database_id={d}"), None).await;
    assert_eq!((both.status, both.body["count"].as_u64()), (200, Some(0)), "{}", both.body);
    let own = p1["files"][0]["name"].as_str().unwrap().to_string();
    let narrower = &own[..own.len() - 3];
    let both = t.admin("GET", &format!("/api/backups/files?prefix={narrower}&database_id={d}"), None).await;
    assert_eq!(both.body["count"], 1, "{}", both.body);
    let wider = t.admin("GET", &format!("/api/backups/files?prefix=post&database_id={d}"), None).await;
    assert_eq!(wider.body["count"], 3, "{}", wider.body);
}

#[tokio::test]
async fn the_retention_preview_explains_what_it_would_delete() {
    let (t, d) = setup().await;
    t.admin("PUT", &format!("/api/databases/{d}"), Some(json!({ "policy_id": "development" }))).await;
    let a = t.admin("GET", &format!("/api/retention/preview?database_id={d}"), None).await.body;
    assert_eq!(a["databases"][0]["policy_id"], "development", "{a}");
    assert_eq!(t.admin("GET", "/api/retention/preview?database_id=nope", None).await.status, 404);
}

#[tokio::test]
async fn an_audited_call_names_who_from_where_and_what() {
    let (t, d) = setup().await;
    t.call("operator", "POST", &format!("/api/databases/{d}/backup"), None).await;
    let row = t.mem.audit.all().pop().unwrap();
    assert_eq!((row.action.as_str(), row.resource_type.as_str()), ("backup_triggered", "database"));
    assert_eq!((row.resource_id.as_str(), row.resource_name.as_str()), (d.as_str(), "shop"));
    assert_eq!(
        (row.user_email.as_str(), row.ip_address.as_str(), row.status.as_str()),
        ("operator@example.com", "10.1.2.3", "success")
    );
    let details: serde_json::Value = serde_json::from_str(&row.details).unwrap();
    assert_eq!(details["status_code"], 202);
}

#[tokio::test]
async fn a_refused_call_is_audited_as_failed_with_the_reason() {
    let (t, d) = setup().await;
    t.call("viewer", "POST", &format!("/api/databases/{d}/backup"), None).await;
    let row = t.mem.audit.all().pop().unwrap();
    assert_eq!((row.status.as_str(), row.resource_id.as_str()), ("failed", d.as_str()));
    let details: serde_json::Value = serde_json::from_str(&row.details).unwrap();
    assert_eq!(
        (details["status_code"].as_u64(), details["error"].as_str()),
        (Some(403), Some("your role (viewer) may not do this"))
    );
}

#[tokio::test]
async fn the_audit_trail_filters_and_counts() {
    let (t, _) = setup().await;
    t.call("viewer", "POST", "/api/engines", Some(json!({}))).await;
    let failed = t.admin("GET", "/api/audit?status=failed", None).await.body;
    assert_eq!(failed["count"], 1, "{failed}");
    let created = t.admin("GET", "/api/audit?action=engine_created&status=success", None).await.body;
    assert_eq!(created["logs"][0]["details"]["status_code"], 201, "details answered as JSON");
    let stats = t.admin("GET", "/api/audit/stats", None).await.body;
    assert_eq!(stats["by_action"]["engine_created"], 2);
    let actions = t.admin("GET", "/api/audit/actions", None).await.body;
    assert!(actions["actions"].as_array().unwrap().contains(&json!("backup_deleted_retention")));
    assert_eq!(t.admin("GET", "/api/audit?status=maybe", None).await.field(), Some("status"));
}

#[tokio::test]
async fn the_status_page_reports_the_queue_the_dumper_and_missed_backups() {
    let (t, d) = setup().await;
    t.admin("POST", &format!("/api/databases/{d}/backup"), None).await;
    *t.mem.dumper.down.borrow_mut() = true;
    let s = t.call("viewer", "GET", "/api/system-status", None).await.body;
    assert_eq!((s["queue"]["depth"].as_u64(), s["status"].as_str()), (Some(1), Some("degraded")));
    let kinds: Vec<&str> = s["alerts"].as_array().unwrap().iter().map(|a| a["kind"].as_str().unwrap()).collect();
    assert!(kinds.contains(&"dumper_unreachable") && kinds.contains(&"scheduler_never_ran"), "{kinds:?}");
}

#[tokio::test]
async fn a_scheduler_silent_for_minutes_or_failing_is_an_error_alert() {
    use dilux_domain::schedule::TickRecord;
    let (t, _) = setup().await;
    let tick = |minutes_ago: i64, ok: bool| TickRecord {
        name: "scheduler".into(),
        at: now() - Duration::minutes(minutes_ago),
        ok,
        detail: if ok { "{}".into() } else { "query entities: storage down".into() },
    };
    let alerts = |s: &serde_json::Value| s["alerts"].as_array().unwrap().clone();
    t.mem.ticks.put("scheduler", tick(1, true));
    let s = t.call("viewer", "GET", "/api/system-status", None).await.body;
    assert!(!alerts(&s).iter().any(|a| a["kind"].as_str().unwrap().starts_with("scheduler")), "{s}");
    t.mem.ticks.put("scheduler", tick(12, true));
    let s = t.call("viewer", "GET", "/api/system-status", None).await.body;
    let stopped = alerts(&s).into_iter().find(|a| a["kind"] == "scheduler_stopped").expect("a stopped scheduler");
    assert_eq!((stopped["severity"].as_str(), s["status"].as_str()), (Some("error"), Some("degraded")));
    assert!(stopped["message"].as_str().unwrap().contains("last ran 12 minutes ago"), "{stopped}");
    t.mem.ticks.put("scheduler", tick(1, false));
    let s = t.call("viewer", "GET", "/api/system-status", None).await.body;
    let failing = alerts(&s).into_iter().find(|a| a["kind"] == "scheduler_failing").expect("a failing scheduler");
    assert!(failing["message"].as_str().unwrap().contains("storage down"), "{failing}");
}

#[tokio::test]
async fn backups_per_day_are_exact_beyond_any_page() {
    let (t, d) = setup().await;
    for _ in 0..250 {
        backup(&t, &d, 0, BackupStatus::Completed);
    }
    backup(&t, &d, 2, BackupStatus::Failed);
    backup(&t, &d, 20, BackupStatus::Completed);
    let a = t.call("viewer", "GET", "/api/backups/daily", None).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let days = a.body["days"].as_array().unwrap();
    assert_eq!(days.len(), 14, "every day of the default range, today included");
    assert_eq!(days[13]["day"].as_str(), Some(now().format("%Y-%m-%d").to_string().as_str()));
    assert_eq!((days[13]["completed"].as_u64(), days[13]["stored_bytes"].as_i64()), (Some(250), Some(250_000)));
    assert_eq!((days[11]["failed"].as_u64(), days[12]["completed"].as_u64()), (Some(1), Some(0)));
    assert_eq!((a.body["totals"]["completed"].as_u64(), a.body["totals"]["failed"].as_u64()), (Some(250), Some(1)));
    let month = t.call("viewer", "GET", "/api/backups/daily?days=30", None).await.body;
    assert_eq!(month["totals"]["total"], 252, "the backup of 20 days ago is inside 30 days");
    for bad in ["0", "91", "two"] {
        assert_eq!(
            t.call("viewer", "GET", &format!("/api/backups/daily?days={bad}"), None).await.field(),
            Some("days")
        );
    }
}

#[tokio::test]
async fn unprotected_backups_are_alerted_and_an_admin_turns_soft_delete_on() {
    let (t, _) = setup().await;
    let s = t.call("viewer", "GET", "/api/system-status", None).await.body;
    assert_eq!(s["storage"]["protection"]["soft_delete_days"], json!(null), "{s}");
    assert!(s["alerts"].to_string().contains("backups_unprotected"), "{s}");
    let on = json!({ "days": 14 });
    for role in ["viewer", "operator"] {
        let a = t.call(role, "POST", "/api/system-status/soft-delete", Some(on.clone())).await;
        assert_eq!(a.status, 403, "{role}: it changes the storage account");
    }
    for (bad, why) in [(json!({ "days": 0 }), "at least a day"), (json!({ "days": 366 }), "at most a year")] {
        let a = t.admin("POST", "/api/system-status/soft-delete", Some(bad)).await;
        assert_eq!((a.status, a.field()), (400, Some("days")), "{why}: {}", a.body);
    }
    assert_eq!(t.mem.files.protection.borrow().soft_delete_days, None, "nothing changed");
    let a = t.admin("POST", "/api/system-status/soft-delete", Some(on)).await;
    assert_eq!((a.status, a.body["soft_delete_days"].as_u64()), (200, Some(14)), "{}", a.body);
    assert!(t.audit().contains(&("storage_soft_delete_enabled".into(), "success".into())));
    let s = t.call("viewer", "GET", "/api/system-status", None).await.body;
    assert_eq!(s["storage"]["protection"]["soft_delete_days"], 14);
    assert!(!s["alerts"].to_string().contains("backups_unprotected"), "{s}");
    // A container under a legal hold is protected too.
    t.mem.files.protection.borrow_mut().soft_delete_days = None;
    t.mem.files.protection.borrow_mut().legal_hold = true;
    let s = t.call("viewer", "GET", "/api/system-status", None).await.body;
    assert!(!s["alerts"].to_string().contains("backups_unprotected"), "{s}");
}

#[tokio::test]
async fn a_suspect_backup_is_alerted_kept_out_of_the_keep_windows_and_confirmed_by_an_admin() {
    let (t, d) = setup().await;
    let older = backup(&t, &d, 2, BackupStatus::Completed);
    let mut tiny = backup(&t, &d, 1, BackupStatus::Completed);
    tiny.suspect = Some("12 bytes, under 10% of the usual 1000".into());
    t.mem.history.put(tiny.clone());
    let s = t.call("viewer", "GET", "/api/system-status", None).await.body;
    let alert = s["alerts"].as_array().unwrap().iter().find(|a| a["kind"] == "suspect_backup").cloned();
    assert_eq!(alert.as_ref().map(|a| a["backup_id"].clone()), Some(json!(tiny.id)), "{s}");
    assert!(alert.unwrap()["message"].as_str().unwrap().contains("is suspect: 12 bytes"));
    let preview = t.admin("GET", &format!("/api/retention/preview?database_id={d}"), None).await.body;
    let reasons = preview["databases"][0]["keep"].to_string();
    assert!(reasons.contains("suspect: kept, outside the keep windows") && reasons.contains(&older.id), "{reasons}");
    let confirm = format!("/api/backups/{}/confirm", tiny.id);
    assert_eq!(t.call("operator", "POST", &confirm, None).await.status, 403, "it lets retention delete: admins only");
    let a = t.admin("POST", &confirm, None).await;
    assert_eq!((a.status, a.body["suspect"].clone()), (200, json!(null)), "{}", a.body);
    assert_eq!(t.mem.history.all().iter().find(|r| r.id == tiny.id).unwrap().suspect, None);
    assert_eq!(t.admin("POST", &confirm, None).await.code(), Some("already_resolved"));
    let s = t.call("viewer", "GET", "/api/system-status", None).await.body;
    assert!(!s["alerts"].to_string().contains("suspect_backup"), "{s}");
}
