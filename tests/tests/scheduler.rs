//! The scheduler, driven by a simulated clock over real Azurite, PostgreSQL and the worker: every
//! tick queues exactly the jobs the policies call for, a tick never queues a second job while one is
//! in flight (not even two ticks at once), after downtime one backup catches up every missed tier, and
//! retention deletes exactly what the policies no longer keep.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use chrono::{DateTime, Datelike, Duration as Days, TimeZone, Timelike, Utc, Weekday};
use dilux_e2e::{root, App, Azurite, Postgres};
use serde_json::{json, Value};

const TOKEN: &str = dilux_e2e::TICK_TOKEN;

struct Sim {
    c: reqwest::Client,
    url: String,
    token: String,
}

impl Sim {
    async fn tick(&self, now: DateTime<Utc>) -> Result<Value> {
        let r = self
            .c
            .post(format!("{}/internal/ticks/scheduler?now={}", self.url, now.to_rfc3339().replace('+', "%2B")))
            .bearer_auth(TOKEN)
            .send()
            .await?;
        let s = r.status().as_u16();
        let v: Value = r.json().await?;
        if s != 200 {
            bail!("tick at {now} answered {s}: {v}");
        }
        Ok(v)
    }

    async fn history(&self, db: &str) -> Result<Vec<Value>> {
        let v: Value = self
            .c
            .get(format!("{}/api/backups?database_id={db}&days=60&page_size=200", self.url))
            .bearer_auth(&self.token)
            .send()
            .await?
            .json()
            .await?;
        let mut rows = v["backups"].as_array().cloned().unwrap_or_default();
        rows.reverse(); // oldest first
        Ok(rows)
    }

    async fn wait_idle(&self, dbs: &[&str]) -> Result<()> {
        let t = Instant::now();
        loop {
            let mut busy = false;
            for db in dbs {
                busy |=
                    self.history(db).await?.iter().any(|r| r["status"] == "pending" || r["status"] == "in_progress");
            }
            if !busy {
                return Ok(());
            }
            if t.elapsed() > Duration::from_secs(60) {
                bail!("jobs did not finish");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The tiers a tick at `t` (always HH:30) must queue, from the policy definitions alone.
fn expected(policy: &str, t: DateTime<Utc>, first: bool) -> Vec<&'static str> {
    let (h, sun, day1, jan1) = (t.hour(), t.weekday() == Weekday::Sun, t.day() == 1, t.month() == 1 && t.day() == 1);
    let mut v = Vec::new();
    match policy {
        "production-standard" => {
            v.push("hourly");
            if first || h == 2 {
                v.push("daily")
            }
            if first || (sun && h == 3) {
                v.push("weekly")
            }
            if first || (day1 && h == 4) {
                v.push("monthly")
            }
            if first || (jan1 && h == 5) {
                v.push("yearly")
            }
        }
        "development" => {
            if first || h == 2 {
                v.push("daily")
            }
            if first || (sun && h == 3) {
                v.push("weekly")
            }
        }
        _ => unreachable!(),
    }
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduler_and_retention_follow_the_policies_exactly() -> Result<()> {
    let az = std::thread::spawn(Azurite::start);
    let pg = Postgres::start("sched-pw")?;
    let az = az.join().unwrap()?;
    let app = App::start_with(
        &az.connection_string,
        &root().join("spin.toml"),
        &[("SPIN_VARIABLE_ALLOW_CLOCK_OVERRIDE", "true"), ("DILUX_TICKS", "off"), ("DILUX_WORKER_IDLE_POLL_MS", "50")],
    )?;
    pg.sql("postgres", "CREATE DATABASE a; CREATE DATABASE b;")?;
    pg.sql("a", "CREATE TABLE t (id int primary key); INSERT INTO t SELECT generate_series(1, 100);")?;
    let sim = Sim { c: reqwest::Client::new(), url: app.url.clone(), token: app.token("admin").await? };

    // Ticks are refused without the token.
    let r = sim.c.post(format!("{}/internal/ticks/scheduler", app.url)).send().await?;
    assert_eq!(r.status().as_u16(), 401);

    let engine: Value = sim
        .c
        .post(format!("{}/api/engines", app.url))
        .bearer_auth(&sim.token)
        .json(&json!({"name": "pg", "engine_type": "postgresql",
        "host": "127.0.0.1", "port": pg.port, "username": "postgres", "password": "sched-pw"}))
        .send()
        .await?
        .json()
        .await?;
    let mut ids = Vec::new();
    for (name, policy) in [("a", "production-standard"), ("b", "development")] {
        let db: Value = sim
            .c
            .post(format!("{}/api/databases", app.url))
            .bearer_auth(&sim.token)
            .json(&json!({"engine_id": engine["id"], "name": name, "policy_id": policy}))
            .send()
            .await?
            .json()
            .await?;
        ids.push((db["id"].as_str().unwrap().to_string(), policy));
    }
    let bad = sim
        .c
        .post(format!("{}/api/databases", app.url))
        .bearer_auth(&sim.token)
        .json(&json!({"engine_id": engine["id"], "name": "c", "policy_id": "nope"}))
        .send()
        .await?;
    assert_eq!(bad.status().as_u16(), 404, "unknown policies are refused");
    let db_ids: Vec<&str> = ids.iter().map(|(i, _)| i.as_str()).collect();
    let status: Value =
        sim.c.get(format!("{}/api/system-status", app.url)).bearer_auth(&sim.token).send().await?.json().await?;
    let missed = |s: &Value| {
        s["alerts"].as_array().unwrap().iter().filter(|a| a["kind"] == "missed_backups").cloned().collect::<Vec<_>>()
    };
    assert_eq!(missed(&status).len(), 0, "new databases are not overdue yet: {status}");
    assert_eq!(status["status"], "healthy", "a scheduler that has not run yet is only a warning: {status}");

    // Start on a Saturday at 00:30 about two weeks ago, and tick hourly for 30 simulated hours.
    let mut start = Utc::now().date_naive() - Days::days(14);
    while start.weekday() != Weekday::Sat {
        start -= Days::days(1);
    }
    let t0 = Utc.from_utc_datetime(&start.and_hms_opt(0, 30, 0).unwrap());
    let mut want: Vec<Vec<Vec<&str>>> = vec![Vec::new(), Vec::new()];
    for step in 0..30 {
        let now = t0 + Days::hours(step);
        let report = sim.tick(now).await?;
        // Same minute, job still in flight: nothing more is queued.
        let again = sim.tick(now).await?;
        assert_eq!(again["queued"], 0, "second tick at {now}: {again}");
        for (i, (_, policy)) in ids.iter().enumerate() {
            let e = expected(policy, now, step == 0);
            if !e.is_empty() {
                want[i].push(e);
            }
        }
        let queued_now = ids.iter().filter(|(_, p)| !expected(p, now, step == 0).is_empty()).count();
        assert_eq!(report["queued"].as_u64(), Some(queued_now as u64), "tick at {now}: {report}");
        sim.wait_idle(&db_ids).await?;
    }

    // Two ticks at once after an 8-day outage: one job per database, carrying every missed tier.
    let last = t0 + Days::hours(29);
    let later = last + Days::days(8);
    let (r1, r2) = tokio::join!(sim.tick(later), sim.tick(later));
    let (r1, r2) = (r1?, r2?);
    assert_eq!(r1["queued"].as_u64().unwrap() + r2["queued"].as_u64().unwrap(), 2, "concurrent ticks: {r1} {r2}");
    // A monthly (yearly) slot passed during the outage iff a 1st at 04:00 (Jan 1st at 05:00) lies in it.
    let passed = |f: &dyn Fn(DateTime<Utc>) -> bool| {
        let mut h = last + Days::minutes(30);
        while h <= later {
            if f(h) {
                return true;
            }
            h += Days::hours(1);
        }
        false
    };
    let mut a = vec!["hourly", "daily", "weekly"];
    if passed(&|h| h.day() == 1 && h.hour() == 4) {
        a.push("monthly")
    }
    if passed(&|h| h.month() == 1 && h.day() == 1 && h.hour() == 5) {
        a.push("yearly")
    }
    want[0].push(a);
    want[1].push(vec!["daily", "weekly"]);
    sim.wait_idle(&db_ids).await?;

    for (i, (id, policy)) in ids.iter().enumerate() {
        let rows = sim.history(id).await?;
        let got: Vec<Vec<String>> = rows
            .iter()
            .map(|r| r["tiers"].as_str().unwrap_or("").split(',').filter(|s| !s.is_empty()).map(String::from).collect())
            .collect();
        let want_s: Vec<Vec<String>> = want[i].iter().map(|v| v.iter().map(|s| s.to_string()).collect()).collect();
        assert_eq!(got, want_s, "{policy}: the exact jobs, in order");
        assert!(
            rows.iter().all(|r| r["status"] == "completed" && r["triggered_by"] == "scheduler"),
            "{policy}: {rows:?}"
        );
    }

    // By the real clock the simulated backups are days old: both databases are overdue.
    let status: Value =
        sim.c.get(format!("{}/api/system-status", app.url)).bearer_auth(&sim.token).send().await?.json().await?;
    let missed_now = missed(&status);
    let mut alerted: Vec<&str> = missed_now.iter().map(|a| a["database_id"].as_str().unwrap()).collect();
    alerted.sort();
    let mut all = db_ids.clone();
    all.sort();
    assert_eq!(alerted, all, "{status}");
    assert_eq!(status["status"], "degraded");

    // Retention. Oracle, from the policies alone: standard keeps the newest 12 hourlies and every
    // backup of another tier (none has more than its keep_count here); development keeps all 5.
    let a_rows = sim.history(&ids[0].0).await?;
    let mut hourly_rank = 0;
    let mut a_keep = Vec::new();
    for r in a_rows.iter().rev() {
        let tiers = r["tiers"].as_str().unwrap();
        let hourly = tiers.split(',').any(|t| t == "hourly");
        if hourly {
            hourly_rank += 1;
        }
        if (hourly && hourly_rank <= 12) || tiers.split(',').any(|t| t != "hourly") {
            a_keep.push(r["id"].as_str().unwrap().to_string());
        }
    }
    let a_delete: Vec<String> =
        a_rows.iter().map(|r| r["id"].as_str().unwrap().to_string()).filter(|id| !a_keep.contains(id)).collect();
    assert_eq!(a_delete.len(), a_rows.len() - a_keep.len());
    assert!(!a_delete.is_empty());

    let preview: Value =
        sim.c.get(format!("{}/api/retention/preview", app.url)).bearer_auth(&sim.token).send().await?.json().await?;
    let of =
        |id: &str| preview["databases"].as_array().unwrap().iter().find(|d| d["database_id"] == id).cloned().unwrap();
    let ids_of = |v: &Value, k: &str| -> Vec<String> {
        v[k].as_array().unwrap().iter().map(|d| d["id"].as_str().unwrap().to_string()).collect()
    };
    let mut previewed = ids_of(&of(&ids[0].0), "delete");
    previewed.sort();
    let mut expect_del = a_delete.clone();
    expect_del.sort();
    assert_eq!(previewed, expect_del, "the dry run names exactly the backups the policy no longer needs");
    assert!(ids_of(&of(&ids[1].0), "delete").is_empty());
    assert!(
        of(&ids[0].0)["keep"].as_array().unwrap().iter().all(|k| !k["reason"].as_str().unwrap().is_empty()),
        "every kept backup says why"
    );
    assert_eq!(sim.history(&ids[0].0).await?.len(), a_rows.len(), "a dry run deletes nothing");

    let r = sim.c.post(format!("{}/internal/ticks/retention", app.url)).bearer_auth(TOKEN).send().await?;
    let report: Value = r.json().await?;
    assert_eq!(report["deleted"].as_u64(), Some(a_delete.len() as u64), "{report}");
    let mut survivors: Vec<String> =
        sim.history(&ids[0].0).await?.iter().map(|r| r["id"].as_str().unwrap().to_string()).collect();
    survivors.sort();
    a_keep.sort();
    assert_eq!(survivors, a_keep, "exactly the kept set survives");
    assert_eq!(sim.history(&ids[1].0).await?.len(), 5);
    for r in &a_rows {
        let status = sim
            .c
            .get(format!("{}/api/backups/download?blob_name={}", app.url, r["blob_name"].as_str().unwrap()))
            .bearer_auth(&sim.token)
            .send()
            .await?
            .status()
            .as_u16();
        let kept = a_keep.contains(&r["id"].as_str().unwrap().to_string());
        assert_eq!(status, if kept { 200 } else { 404 }, "blob of {} ({})", r["id"], r["tiers"]);
    }
    // Each deletion left an audit row.
    let storage =
        dilux_dumper_host::storage::Storage::new(dilux_azure::Account::from_connection_string(&az.connection_string)?);
    let q = dilux_azure::table::query(
        &storage.account,
        Utc::now(),
        "auditlogs",
        Some("action eq 'backup_deleted_retention'"),
        None,
        None,
    );
    let audit = dilux_azure::table::parse_query(storage.send("q", q).await?)?;
    assert_eq!(audit.entities.len(), a_delete.len());
    // A second pass has nothing left to delete.
    let again: Value =
        sim.c.post(format!("{}/internal/ticks/retention", app.url)).bearer_auth(TOKEN).send().await?.json().await?;
    assert_eq!(again["deleted"], 0);

    // A deleted database's schedule state goes at the next tick (it would pin the in-flight scan forever).
    let states = || async {
        let q = dilux_azure::table::query(
            &storage.account,
            Utc::now(),
            dilux_domain::tables::SCHEDULE,
            Some("PartitionKey eq 'state'"),
            None,
            None,
        );
        let page = dilux_azure::table::parse_query(storage.send("q", q).await?)?;
        anyhow::Ok(
            page.entities.iter().map(|(e, _)| e["RowKey"].as_str().unwrap_or_default().to_string()).collect::<Vec<_>>(),
        )
    };
    assert!(states().await?.contains(&ids[1].0));
    let r = sim.c.delete(format!("{}/api/databases/{}", app.url, ids[1].0)).bearer_auth(&sim.token).send().await?;
    assert_eq!(r.status().as_u16(), 200);
    sim.tick(Utc::now()).await?;
    let left = states().await?;
    assert!(!left.contains(&ids[1].0) && left.contains(&ids[0].0), "{left:?}");
    Ok(())
}
