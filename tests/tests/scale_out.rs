//! Three dumper-host workers on one jobs queue: every job runs exactly once, and a worker killed while
//! dumping loses nothing (its jobs come back to the others when their leases run out).

use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use dilux_e2e::{Api, App, Azurite, Postgres};
use serde_json::json;

const PASSWORD: &str = "pg-Scale-s3cret";
const DATABASES: usize = 30;
const WORKERS: usize = 3;

/// One worker: app, API and worker, no ticks (only the backups this test asks for), short leases so a dead
/// worker's jobs come back within seconds.
fn worker(az: &Azurite) -> Result<App> {
    let env = [
        ("DILUX_TICKS", "off"),
        ("DILUX_WORKER_LEASE_SECS", "4"),
        ("DILUX_WORKER_IDLE_POLL_MS", "20"),
        ("DILUX_WORKER_CONCURRENCY", "2"),
    ];
    App::start_with(&az.connection_string, &dilux_e2e::root().join("spin.toml"), &env)
}

const DONE: &str = "dilux_jobs_total{queue=\"backup-jobs\",outcome=\"done\"}";
const DUMPED: &str = "dilux_dumps_total{engine=\"postgresql\",outcome=\"completed\"}";
const WITHIN: Duration = Duration::from_secs(180);

async fn files(api: &Api, db: &str) -> Result<usize> {
    let v = api.call(reqwest::Method::GET, &format!("/api/backups/files?database_id={db}"), None).await?.1;
    Ok(v["files"].as_array().map_or(0, Vec::len))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_run_every_job_once_and_a_killed_one_loses_nothing() -> Result<()> {
    let az = std::thread::spawn(Azurite::start);
    let pg = Postgres::start(PASSWORD)?;
    let az = az.join().unwrap()?;
    // Big enough that several dumps overlap across the workers (about 3 MB of SQL each).
    for i in 1..=DATABASES {
        pg.sql("postgres", &format!("CREATE DATABASE shop_{i}"))?;
        pg.sql(
            &format!("shop_{i}"),
            "CREATE TABLE t (id int PRIMARY KEY, v text); \
             INSERT INTO t SELECT g, repeat(md5(g::text), 2) FROM generate_series(1, 40000) g",
        )?;
    }
    let mut workers: Vec<App> = (0..WORKERS).map(|_| worker(&az)).collect::<Result<_>>()?;
    let api = Api::signed_in(&workers[0], "admin").await?;
    let e = json!({ "name": "pg", "engine_type": "postgresql", "host": "127.0.0.1", "port": pg.port,
        "username": "postgres", "password": PASSWORD });
    let e = api.post("/api/engines", e).await?;
    let mut dbs = Vec::new();
    for i in 1..=DATABASES {
        let d = api.post("/api/databases", json!({ "engine_id": e["id"], "name": format!("shop_{i}") })).await?;
        dbs.push(d["id"].as_str().unwrap().to_string());
    }

    // 1. Thirty jobs, three workers: each dump runs once, and the work is shared.
    let t = Instant::now();
    let rows = api.all_completed(&api.back_up_each(&dbs).await?, WITHIN).await?;
    let took = t.elapsed();
    ensure!(rows.iter().all(|r| r["attempts"] == 1), "a job ran twice: {rows:?}");
    let mut dumped = Vec::new();
    for w in &workers {
        dumped.push(w.metric(DUMPED).await?);
    }
    ensure!(dumped.iter().sum::<u64>() == DATABASES as u64, "dumps per worker {dumped:?}: not exactly once");
    ensure!(dumped.iter().all(|n| *n > 0), "a worker took no job: {dumped:?}");
    println!("{DATABASES} backups on {WORKERS} workers in {:.1} s, dumps per worker {dumped:?}", took.as_secs_f64());
    for db in &dbs {
        ensure!(files(&api, db).await? == 1, "database {db} has more than one backup file");
    }

    // 2. Thirty more, and one worker is killed while it dumps: every job still completes, once.
    let victim = workers.pop().unwrap();
    let jobs = api.back_up_each(&dbs).await?;
    let t = Instant::now();
    while victim.metric("dilux_dumps_running").await? == 0 {
        ensure!(t.elapsed() < Duration::from_secs(60), "the last worker never ran a dump");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    victim.crash();
    let rows = api.all_completed(&jobs, WITHIN).await?;
    let retried = rows.iter().filter(|r| r["attempts"] == 2).count();
    ensure!(rows.iter().all(|r| r["attempts"].as_u64() <= Some(2)), "{rows:?}");
    ensure!((1..=2).contains(&retried), "the killed worker's dumps (1 or 2 of them) are the retried ones: {retried}");
    for db in &dbs {
        ensure!(files(&api, db).await? == 2, "database {db}: one file per backup, none half-written or doubled");
    }
    let mut done = 0;
    for w in &workers {
        done += w.metric(DONE).await?;
    }
    ensure!(done >= DATABASES as u64, "the survivors settled {done} jobs");
    Ok(())
}
