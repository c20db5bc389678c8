//! `bench-restore`: the restore pipeline (Block Blob ranges → SHA-256 → decompress → psql) against the
//! baseline it must stay close to, `psql -X -v ON_ERROR_STOP=1 -f` of the same plain dump from a local
//! file, both into fresh databases of the same server, in one run. Prints times, the ratio, throughput
//! and the pipeline's peak memory, which must not grow with the database; then the same restore with
//! the content check a drill makes (dump of the restored database compared with the manifest), and
//! what that check costs. One row per stored format (plain SQL with zstd level 3 and gzip level 6, a
//! custom archive with zstd level 3 restored by pg_restore), against the same baseline.
//!
//! usage: bench-restore [SIZE_MB ...]   (default: 1024)

use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{ensure, Context as _, Result};
use dilux_azure::{blob, Account};
use dilux_domain::compression::Compression;
use dilux_domain::format::DumpFormat;
use dilux_dumper_host::dump::{require_tls, run_dump, DumpOptions, DumpSpec, Engine};
use dilux_dumper_host::restore::{run_restore, RestoreSpec, Source};
use dilux_dumper_host::storage::Storage;
use dilux_e2e::{memory_mib, reset_peak, Azurite, Postgres};

#[tokio::main]
async fn main() -> Result<()> {
    // As the dumper-host does: peak memory is measured with its allocator settings.
    dilux_dumper_host::heap::bound();
    let sizes: Vec<u64> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let sizes = if sizes.is_empty() { vec![1024] } else { sizes };
    let az = Azurite::start()?;
    let pg = Postgres::start("bench-pw")?;
    let storage = Storage::new(Account::from_connection_string(&az.connection_string)?);
    blob::parse_create_container(
        storage.send("c", blob::create_container(&storage.account, chrono::Utc::now(), "bench")).await?,
    )?;
    let opts = DumpOptions::from_env();
    let psql = std::path::PathBuf::from(std::env::var("DILUX_PG_BINDIR").context("set DILUX_PG_BINDIR")?).join("psql");
    let work = dilux_e2e::tempdir("bench-restore");
    println!(
        "size_mb      format  sql_mib  stored_mib  psql_file_s  dilux_s  ratio  dilux_sql_mib_per_s  rss_before_mib  \
         peak_rss_mib  checked_s  check_s  checked_peak_rss_mib"
    );
    for size in sizes {
        let db = format!("bench{size}");
        dilux_e2e::pg_bench_database(&pg, &db, size)?;
        let (zstd, gzip) = (Compression::Zstd { level: 3 }, Compression::Gzip { level: 6 });
        let formats = [(zstd, DumpFormat::Plain), (gzip, DumpFormat::Plain), (zstd, DumpFormat::Custom)];
        let mut dumps = Vec::new();
        for (c, f) in formats {
            let spec = DumpSpec {
                tls: Default::default(),
                engine: Engine::Postgresql,
                host: "127.0.0.1".into(),
                port: pg.port,
                database: db.clone(),
                username: "postgres".into(),
                password: "bench-pw".into(),
                container: "bench".into(),
                blob_name: format!("postgresql/{db}.{}", c.extension(f)),
                compression: c,
                format: f,
                recipients: vec![],
                metadata: vec![],
            };
            let dumped = run_dump(&storage, &spec, &opts).await.map_err(|e| anyhow::anyhow!("{e}"))?;
            dumps.push((format!("{}-{}", f.stem(), c.algorithm()), c, spec.blob_name, dumped));
        }

        // The baseline's input: the very same plain dump, as a local file (not timed).
        let (_, c, blob_name, dumped) = &dumps[0];
        let file = work.join(format!("{db}.sql"));
        let unpack = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("exec {} -dc > \"$OUT\"", c.algorithm()))
            .env("OUT", &file)
            .stdin(Stdio::piped())
            .spawn()?;
        {
            let mut stdin = unpack.stdin.as_ref().context("decompressor's stdin")?;
            let mut start = 0;
            while start < dumped.compressed_bytes {
                let len = (8u64 << 20).min(dumped.compressed_bytes - start);
                let req = blob::get_blob_range(&storage.account, chrono::Utc::now(), "bench", blob_name, start, len);
                let body = storage.send("get", req).await?.check("get blob")?.body;
                std::io::Write::write_all(&mut stdin, &body)?;
                start += len;
            }
        }
        ensure!(unpack.wait_with_output()?.status.success(), "decompress of the dump failed");

        pg.sql("postgres", &format!("CREATE DATABASE {db}_psql"))?;
        let t = Instant::now();
        let out = Command::new(&psql)
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-U", "postgres", "-f"])
            .arg(&file)
            .args(["-p", &pg.port.to_string(), "-d", &format!("{db}_psql")])
            .env("PGPASSWORD", "bench-pw")
            .stdout(Stdio::null())
            .output()?;
        let baseline = t.elapsed().as_secs_f64();
        ensure!(out.status.success(), "psql -f failed: {}", String::from_utf8_lossy(&out.stderr));
        std::fs::remove_file(&file)?;

        for (label, _, blob_name, _) in &dumps {
            let restore = RestoreSpec {
                tls: Default::default(),
                engine: Engine::Postgresql,
                host: "127.0.0.1".into(),
                port: pg.port,
                username: "postgres".into(),
                password: "bench-pw".into(),
                database: format!("{db}_dilux_{}", label.replace('-', "_")),
                source: Source::Blob { container: "bench".into(), name: blob_name.clone() },
                expected_sha256: None,
                restore_id: "bench".into(),
                keep_mark: false,
                tables: vec![],
            };
            let tls = require_tls(&restore.conn(""), &opts).await.map_err(|e| anyhow::anyhow!("{e}"))?;
            let before = memory_mib("VmRSS:");
            reset_peak();
            let t = Instant::now();
            let o = run_restore(Some(&storage), &restore, &opts, false, &|_, _| {}, &tls)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let ours = t.elapsed().as_secs_f64();
            ensure!(o.verified, "the restore checked the recorded SHA-256");
            let count = |d: &str| pg.sql(d, "SELECT count(*) FROM t").map(|s| s.trim().to_string());
            ensure!(count(&restore.database)? == count(&db)?, "the restore holds every row");
            let sql_mib = o.uncompressed_bytes as f64 / (1 << 20) as f64;
            let peak = memory_mib("VmHWM:");
            // The same restore, checked against the manifest as every app restore and drill is.
            let checked_spec =
                RestoreSpec { database: format!("{db}_checked_{}", label.replace('-', "_")), ..restore.clone() };
            reset_peak();
            let t = Instant::now();
            let with_check = run_restore(Some(&storage), &checked_spec, &opts, true, &|_, _| {}, &tls)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let checked = t.elapsed().as_secs_f64();
            let check = with_check.check.context("the check ran")?;
            let comparison = check.comparison.context("the dump left a manifest")?;
            ensure!(comparison.passed(), "the restored copy matches: {}", comparison.summary());
            println!(
                "{size:>7} {label:>11} {sql_mib:>8.0} {:>11.0} {baseline:>12.1} {ours:>8.1} {:>6.2} {:>20.1} \
                 {before:>15.0} \
                 {peak:>13.0} {checked:>10.1} {:>8.1} {:>21.0}",
                o.compressed_bytes as f64 / (1 << 20) as f64,
                ours / baseline,
                sql_mib / ours,
                check.duration.as_secs_f64(),
                memory_mib("VmHWM:")
            );
            for d in [&restore.database, &checked_spec.database] {
                pg.sql("postgres", &format!("DROP DATABASE {d}"))?;
            }
        }
        for d in [format!("{db}_psql"), db] {
            pg.sql("postgres", &format!("DROP DATABASE {d}"))?;
        }
    }
    Ok(())
}
