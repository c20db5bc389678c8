//! `bench-dump`: measures the dump pipeline (tool → gzip → SHA-256 → Block Blob) against real
//! PostgreSQL, MariaDB and Azurite, and prints throughput and peak memory per database size. The
//! memory figure is what shows streaming works: it must not grow with the database. Each dump runs
//! twice side by side: without the manifest tally (the baseline) and with it (what backups do), and
//! `ratio` is their time ratio; `tally_mib_per_s` is the tally alone over the same SQL, from memory.
//!
//! usage: bench-dump [SIZE_MB ...]   (default: 128 512)

use std::time::Instant;

use anyhow::Result;
use dilux_azure::{blob, Account};
use dilux_dumper_host::dump::{run_dump, DumpOptions, DumpSpec, Engine};
use dilux_dumper_host::storage::Storage;
use dilux_e2e::{memory_mib, Azurite, Mariadb, Postgres};

#[tokio::main]
async fn main() -> Result<()> {
    let sizes: Vec<u64> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let sizes = if sizes.is_empty() { vec![128, 512] } else { sizes };
    let az = Azurite::start()?;
    let pg = Postgres::start("bench-pw")?;
    let maria = Mariadb::start()?;
    maria.sql(
        "",
        "CREATE USER 'bench'@'127.0.0.1' IDENTIFIED BY 'bench-pw'; GRANT ALL ON *.* TO 'bench'@'127.0.0.1';",
    )?;
    let storage = Storage::new(Account::from_connection_string(&az.connection_string)?);
    blob::parse_create_container(
        storage.send("c", blob::create_container(&storage.account, chrono::Utc::now(), "bench")).await?,
    )?;
    let opts = DumpOptions::from_env();
    println!(
        "engine      size_mb  raw_mib  stored_mib  no_manifest_s  seconds  ratio  raw_mib_per_s  rss_before_mib  \
         peak_rss_mib  tally_mib_per_s"
    );
    for size in sizes {
        let rows = dilux_e2e::bench_rows(size);
        let db = format!("bench{size}");
        dilux_e2e::pg_bench_database(&pg, &db, size)?;
        maria.sql("", &format!("CREATE DATABASE {db}"))?;
        maria.sql(
            &db,
            &format!(
                "SET SESSION max_recursive_iterations = {}; CREATE TABLE t (id BIGINT PRIMARY KEY, p TEXT); \
                 INSERT INTO t WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < {rows}) \
                 SELECT g, CONCAT(REPEAT(MD5(g), 5), g) FROM s;",
                rows + 10
            ),
        )?;
        for (engine, name, port, user) in
            [(Engine::Postgresql, "postgresql", pg.port, "postgres"), (Engine::Mysql, "mariadb", maria.port, "bench")]
        {
            let spec = DumpSpec {
                tls: Default::default(),
                engine,
                host: "127.0.0.1".into(),
                port,
                database: db.clone(),
                username: user.into(),
                password: "bench-pw".into(),
                container: "bench".into(),
                blob_name: format!("{name}/{db}.sql.gz"),
                metadata: vec![],
            };
            let baseline_spec = DumpSpec { blob_name: format!("{name}/{db}-baseline.sql.gz"), ..spec.clone() };
            let no_manifest = DumpOptions { manifest: false, ..opts.clone() };
            let t = Instant::now();
            run_dump(&storage, &baseline_spec, &no_manifest).await.map_err(|e| anyhow::anyhow!("{e}"))?;
            let baseline = t.elapsed().as_secs_f64();
            let before = memory_mib("VmRSS:");
            dilux_e2e::reset_peak();
            let t = Instant::now();
            let out = run_dump(&storage, &spec, &opts).await.map_err(|e| anyhow::anyhow!("{e}"))?;
            let secs = t.elapsed().as_secs_f64();
            let raw = out.uncompressed_bytes as f64 / (1 << 20) as f64;
            let peak = memory_mib("VmHWM:");
            let tally = tally_rate(&storage, &spec.blob_name, engine).await?;
            println!(
                "{name:<10} {size:>8} {raw:>8.0} {:>11.0} {baseline:>14.1} {secs:>8.1} {:>6.2} {:>14.1} {before:>15.0} \
                 {peak:>13.0} {tally:>16.0}",
                out.compressed_bytes as f64 / (1 << 20) as f64,
                secs / baseline,
                raw / secs,
            );
        }
    }
    Ok(())
}

/// MiB/s of the manifest tally alone over the blob's SQL (decompressed ahead, outside the timing).
async fn tally_rate(storage: &Storage, blob_name: &str, engine: Engine) -> Result<f64> {
    let req = blob::get_blob(&storage.account, chrono::Utc::now(), "bench", blob_name);
    let gz = storage.send("get", req).await?.check("get blob")?.body;
    let mut sql = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut sql)?;
    drop(gz);
    let mut tally = dilux_domain::manifest::Tally::new(engine.into());
    let t = Instant::now();
    for chunk in sql.chunks(256 << 10) {
        tally.feed(chunk);
    }
    let m = tally.finish();
    anyhow::ensure!(m.rows() > 0, "the tally found the rows");
    Ok(sql.len() as f64 / (1 << 20) as f64 / t.elapsed().as_secs_f64())
}
