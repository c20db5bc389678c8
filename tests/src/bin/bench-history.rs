//! `bench-history`: how long the history reads take with ROWS backups stored in Azurite (default
//! 100 000, over DATABASES databases, default 100, spread over the last 365 days). Prints, for each
//! read, the median of 5 calls through the API and its ratio to the target (first page ≤ 100 ms,
//! per-database stats ≤ 200 ms), and the floor under all of them: one Table query of a single day
//! partition asking for one row (Azurite evaluates a query's filter on every row of the table).
//!
//! usage: bench-history [ROWS] [DATABASES]

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use chrono::Utc;
use dilux_azure::table;
use dilux_azure::Account;
use dilux_domain::{tables, BackupJob, BackupResult, EngineType, TriggeredBy};
use dilux_dumper_host::storage::Storage;
use dilux_e2e::{App, Azurite};

#[tokio::main]
async fn main() -> Result<()> {
    let arg = |i: usize, default: usize| std::env::args().nth(i).and_then(|a| a.parse().ok()).unwrap_or(default);
    let (rows, dbs) = (arg(1, 100_000), arg(2, 100).max(1));
    let az = Azurite::start()?;
    let app = App::start_without_worker(&az.connection_string, &[("DILUX_TICKS", "off")])?;
    let storage = Storage::new(Account::from_connection_string(&az.connection_string)?);
    let t = Instant::now();
    store_rows(&storage, rows, dbs).await?;
    println!("stored {rows} history rows of {dbs} databases in {:.1}s", t.elapsed().as_secs_f64());

    let (c, token) = (reqwest::Client::new(), app.token("admin").await?);
    let reads = [
        ("first page, all databases", "/api/backups".to_string(), 100),
        ("first page, one database", "/api/backups?database_id=db-0000".to_string(), 100),
        ("stats, one database", "/api/backups/stats?database_id=db-0000".to_string(), 200),
    ];
    println!("{:<34} {:>10} {:>8} {:>8}", "read (median of 5)", "ms", "target", "ratio");
    for (label, path, target) in reads {
        let mut times = Vec::new();
        for _ in 0..5 {
            let t = Instant::now();
            let r = c.get(format!("{}{path}", app.url)).bearer_auth(&token).send().await?;
            let status = r.status();
            let body = r.text().await?;
            if !status.is_success() {
                bail!("{path} answered {status}: {body}");
            }
            times.push(t.elapsed());
        }
        let ms = median(times).as_secs_f64() * 1000.0;
        println!("{label:<34} {ms:>10.1} {target:>8} {:>7.2}x", ms / target as f64);
    }
    let today = Utc::now().format("%Y-%m-%d").to_string();
    let filter = format!("PartitionKey eq {}", table::literal(&today));
    let mut times = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let req = table::query(&storage.account, Utc::now(), tables::HISTORY, Some(&filter), Some(1), None);
        table::parse_query(storage.send("query", req).await?)?;
        times.push(t.elapsed());
    }
    let floor = median(times).as_secs_f64() * 1000.0;
    println!("{:<34} {floor:>10.1} {:>8} {:>8}", "Azurite: 1 row of 1 day partition", "-", "-");
    Ok(())
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

/// `rows` completed backups, newest now, one every `365 days / rows`, database by database in turn.
async fn store_rows(storage: &Storage, rows: usize, dbs: usize) -> Result<()> {
    let now = Utc::now();
    let step = chrono::Duration::seconds(365 * 86_400 / rows.max(1) as i64).max(chrono::Duration::seconds(1));
    let history: Vec<BackupResult> = (0..rows)
        .map(|i| {
            let at = now - step * i as i32;
            let db = format!("db-{:04}", i % dbs);
            let job = BackupJob::new(&db, EngineType::Postgresql, TriggeredBy::Scheduler, vec![], at);
            let mut row = BackupResult::pending(&job, &db, &db, "engine");
            row.complete(at, 1_000_000 + i as u64, 4_000_000, "0".repeat(64));
            row
        })
        .collect();
    dilux_e2e::store_history(storage, &history).await
}
