//! `bench-scheduler`: how long one scheduler tick takes over N databases stored in Azurite (default
//! 10 000). Prints the first tick (every database due: state, history row and job written for each)
//! and the second (every database has a job in flight: its history row is read).
//!
//! usage: bench-scheduler [DATABASES]

use std::time::Instant;

use anyhow::{bail, Result};
use chrono::Utc;
use dilux_azure::{table, Account};
use dilux_domain::entity::to_entity;
use dilux_domain::{tables, AuthMethod, Database, EngineType};
use dilux_dumper_host::storage::Storage;
use dilux_e2e::{App, Azurite};

#[tokio::main]
async fn main() -> Result<()> {
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let az = Azurite::start()?;
    let app = App::start_without_worker(&az.connection_string, &[("DILUX_TICKS", "off")])?;
    let storage = Storage::new(Account::from_connection_string(&az.connection_string)?);
    let c = reqwest::Client::new();
    let body = serde_json::json!({
        "name": "bench", "engine_type": "postgresql", "host": "127.0.0.1", "port": 1, "username": "u", "password": "p",
    });
    let engine: serde_json::Value = c
        .post(format!("{}/api/engines", app.url))
        .bearer_auth(app.token("admin").await?)
        .json(&body)
        .send()
        .await?
        .json()
        .await?;
    let engine_id = engine["id"].as_str().unwrap().to_string();
    let t = Instant::now();
    let now = Utc::now();
    let mut set = tokio::task::JoinSet::new();
    for i in 0..n {
        if set.len() >= 32 {
            set.join_next().await.unwrap()??;
        }
        let (s, engine_id) = (storage.clone(), engine_id.clone());
        set.spawn(async move {
            let db = Database {
                id: format!("db-{i:05}"),
                engine_id,
                engine_type: EngineType::Postgresql,
                name: format!("d{i}"),
                alias: format!("d{i}"),
                use_engine_credentials: true,
                auth_method: AuthMethod::UserPassword,
                username: None,
                password_sealed: None,
                policy_id: None,
                enabled: true,
                created_at: now,
                updated_at: now,
            };
            let req =
                table::insert_entity(&s.account, Utc::now(), tables::DATABASES, &to_entity("database", &db.id, &db));
            table::parse_write(s.send("insert", req).await?, "insert")?;
            anyhow::Ok(())
        });
    }
    while let Some(r) = set.join_next().await {
        r??;
    }
    println!("stored {n} databases in {:.1}s", t.elapsed().as_secs_f64());
    for label in ["first tick (all due)", "second tick (all in flight)"] {
        let t = Instant::now();
        let r =
            c.post(format!("{}/internal/ticks/scheduler", app.url)).bearer_auth(dilux_e2e::TICK_TOKEN).send().await?;
        let status = r.status();
        let body: serde_json::Value = r.json().await?;
        if !status.is_success() {
            bail!("tick failed: {body}");
        }
        println!("{label:<28} {:>7.1}s  {body}", t.elapsed().as_secs_f64());
    }
    Ok(())
}
