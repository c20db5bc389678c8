//! `bench-workers`: backups per minute with 1, 2 and 3 dumper-host workers on one jobs queue, the same
//! databases each round (default 60 PostgreSQL databases of 40 000 rows, about 3 MB of SQL each). The
//! baseline is one worker; each round prints its jobs per minute and the ratio to it. On this machine the
//! workers, PostgreSQL and Azurite share the same cores, so the ratio shows the queue's overhead and
//! fairness more than a cluster's scaling.
//!
//! usage: bench-workers [DATABASES [ROWS]]

use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use dilux_e2e::{Api, App, Azurite, Postgres};
use serde_json::json;

const PASSWORD: &str = "pg-Bench-s3cret";
const DUMPED: &str = "dilux_dumps_total{engine=\"postgresql\",outcome=\"completed\"}";

fn worker(az: &Azurite) -> Result<App> {
    let env = [("DILUX_TICKS", "off"), ("DILUX_WORKER_IDLE_POLL_MS", "20"), ("DILUX_WORKER_CONCURRENCY", "2")];
    App::start_with(&az.connection_string, &dilux_e2e::root().join("spin.toml"), &env)
}

#[tokio::main]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>());
    let n = args.next().transpose()?.unwrap_or(60);
    let rows = args.next().transpose()?.unwrap_or(40_000);
    let az = Azurite::start()?;
    let pg = Postgres::start(PASSWORD)?;
    for i in 1..=n {
        pg.sql("postgres", &format!("CREATE DATABASE shop_{i}"))?;
        pg.sql(
            &format!("shop_{i}"),
            &format!(
                "CREATE TABLE t (id int PRIMARY KEY, v text); \
                 INSERT INTO t SELECT g, repeat(md5(g::text), 2) FROM generate_series(1, {rows}) g"
            ),
        )?;
    }
    let mut dbs = Vec::new();
    let mut baseline = None;
    println!("{n} PostgreSQL databases of {rows} rows; 2 jobs at a time per worker");
    for count in 1..=3 {
        let workers: Vec<App> = (0..count).map(|_| worker(&az)).collect::<Result<_>>()?;
        let api = Api::signed_in(&workers[0], "admin").await?;
        if dbs.is_empty() {
            let e = json!({ "name": "pg", "engine_type": "postgresql", "host": "127.0.0.1", "port": pg.port,
                "username": "postgres", "password": PASSWORD });
            let e = api.post("/api/engines", e).await?;
            for i in 1..=n {
                let d =
                    api.post("/api/databases", json!({ "engine_id": e["id"], "name": format!("shop_{i}") })).await?;
                dbs.push(d["id"].as_str().unwrap().to_string());
            }
        }
        let t = Instant::now();
        let done = api.all_completed(&api.back_up_each(&dbs).await?, Duration::from_secs(1800)).await?;
        let secs = t.elapsed().as_secs_f64();
        ensure!(done.iter().all(|r| r["attempts"] == 1), "every job ran once");
        let mut per_worker = Vec::new();
        for w in &workers {
            per_worker.push(w.metric(DUMPED).await?);
        }
        let per_minute = n as f64 * 60.0 / secs;
        let ratio = per_minute / *baseline.get_or_insert(per_minute);
        println!(
            "{count} worker(s): {n} backups in {secs:.1} s = {per_minute:.0} per minute ({ratio:.2}× one worker); \
             dumps per worker {per_worker:?}"
        );
    }
    Ok(())
}
