//! `bench-dump`: the dump pipeline (tool → compression → SHA-256 → Block Blob) against real PostgreSQL,
//! MariaDB and Azurite, side by side with the shell pipelines a user would script, in one run on the same
//! databases. The shell runs the very command a backup runs (`dump::tool_command`):
//!
//! - `tool_s`: `tool > /dev/null`, the limit; `sh_zstd3_s`: `tool | zstd -3 > /dev/null`;
//!   `sh_gzip6_s`: `tool | gzip -6 > /dev/null`;
//! - `zstd3_s`, `gzip6_s`, `gzip1_s`: backups with that compression, manifest included;
//!   `zstd3_nomanifest_s`: without the manifest tally (what the tally costs);
//! - ratios: `zstd3/sh` and `gzip6/sh` (the app's own overhead, target ≤ 1.05), `zstd3/tool` (target ≤ 1.15
//!   for PostgreSQL), `sh_gzip6/gzip1` (how much faster than the scripted gzip, target ≥ 2.0);
//! - `zstd3_age_s`, `age/zstd3`: zstd level 3 encrypted with age (what encryption costs);
//! - PostgreSQL only: `sh_custom_s`: `pg_dump --format=custom --compress=0 | zstd -3 > /dev/null`, and
//!   `custom_s`, `custom/sh`: the backup of that archive (its manifest tallied through `pg_restore -f -`);
//! - `peak_rss_mib`: this process's peak resident memory after each size's backups: it must not grow with
//!   the database.
//!
//! usage: bench-dump [SIZE_MB ...]   (default: 128 512)

use std::process::Stdio;
use std::time::Instant;

use anyhow::{Context, Result};
use dilux_azure::{blob, Account};
use dilux_domain::compression::Compression;
use dilux_domain::format::DumpFormat;
use dilux_dumper_host::dump::{run_dump, tool_command, DumpOptions, DumpSpec, Engine};
use dilux_dumper_host::storage::Storage;
use dilux_e2e::{memory_mib, Azurite, Mariadb, Postgres};

#[tokio::main]
async fn main() -> Result<()> {
    // As the dumper-host does: peak memory is measured with its allocator settings.
    dilux_dumper_host::heap::bound();
    let sizes: Vec<u64> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let sizes = if sizes.is_empty() { vec![128, 512] } else { sizes };
    for tool in ["zstd", "gzip"] {
        let found = std::process::Command::new(tool).arg("--version").stdout(Stdio::null()).status();
        anyhow::ensure!(found.is_ok(), "`{tool}` is needed for the shell baselines (scripts/bench.sh installs it)");
    }
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
    // Encrypted backups go to a throwaway identity of this run's own.
    let (secret, recipient) = dilux_dumper_host::crypt::generate();
    let keys = dilux_dumper_host::crypt::Keys::from_lookup(|n| (n == "DILUX_AGE_IDENTITY").then(|| secret.clone()));
    let opts = DumpOptions { keys: std::sync::Arc::new(keys.map_err(anyhow::Error::msg)?), ..DumpOptions::from_env() };
    println!(
        "engine     size_mb raw_mib tool_s sh_zstd3_s zstd3_s zstd3/sh zstd3/tool zst_mib zstd3_nomanifest_s \
         zstd3_age_s age/zstd3 sh_gzip6_s gzip6_s gzip6/sh gz6_mib gzip1_s sh_gzip6/gzip1 sh_custom_s custom_s \
         custom/sh peak_rss_mib tally_mib_per_s"
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
                blob_name: String::new(),
                compression: Compression::default(),
                format: Default::default(),
                recipients: vec![],
                metadata: vec![],
            };
            let tool = shell(&spec, &opts, None).await?;
            let sh_zstd = shell(&spec, &opts, Some(("zstd", "-3"))).await?;
            let sh_gzip = shell(&spec, &opts, Some(("gzip", "-6"))).await?;
            let backup = |c: Compression, tag: &str, opts: DumpOptions| {
                let encrypted = tag.ends_with("-age");
                let format = if tag.starts_with("custom") { DumpFormat::Custom } else { DumpFormat::Plain };
                let spec = DumpSpec {
                    compression: c,
                    format,
                    recipients: if encrypted { vec![recipient.clone()] } else { vec![] },
                    blob_name: format!(
                        "{name}/{db}-{tag}.{}{}",
                        c.extension(format),
                        if encrypted { ".age" } else { "" }
                    ),
                    ..spec.clone()
                };
                let storage = storage.clone();
                async move {
                    let t = Instant::now();
                    let out = run_dump(&storage, &spec, &opts).await.map_err(|e| anyhow::anyhow!("{e}"))?;
                    anyhow::Ok((t.elapsed().as_secs_f64(), out, spec.blob_name))
                }
            };
            dilux_e2e::reset_peak();
            let (zstd3, z, zst_blob) = backup(Compression::Zstd { level: 3 }, "zstd3", opts.clone()).await?;
            let (zstd3_plain, ..) = backup(
                Compression::Zstd { level: 3 },
                "zstd3-nomanifest",
                DumpOptions { manifest: false, ..opts.clone() },
            )
            .await?;
            let (zstd3_age, ..) = backup(Compression::Zstd { level: 3 }, "zstd3-age", opts.clone()).await?;
            let (gzip6, g, _) = backup(Compression::Gzip { level: 6 }, "gzip6", opts.clone()).await?;
            let (gzip1, ..) = backup(Compression::Gzip { level: 1 }, "gzip1", opts.clone()).await?;
            let (sh_custom, custom) = match engine {
                Engine::Mysql => ("-".to_string(), "-".to_string()),
                Engine::Postgresql => {
                    let archive = DumpSpec { format: DumpFormat::Custom, ..spec.clone() };
                    let sh = shell(&archive, &opts, Some(("zstd", "-3"))).await?;
                    let (t, ..) = backup(Compression::Zstd { level: 3 }, "custom-zstd3", opts.clone()).await?;
                    (format!("{sh:.1}"), format!("{t:.1} {:>8.2}", t / sh))
                }
            };
            let peak = memory_mib("VmHWM:");
            let tally = tally_rate(&storage, &zst_blob, engine).await?;
            let mib = |b: u64| b as f64 / (1 << 20) as f64;
            println!(
                "{name:<10} {size:>7} {:>7.0} {tool:>6.1} {sh_zstd:>10.1} {zstd3:>7.1} {:>8.2} {:>10.2} {:>7.0} \
                 {zstd3_plain:>18.1} {zstd3_age:>11.1} {:>9.2} {sh_gzip:>10.1} {gzip6:>7.1} {:>8.2} {:>7.0} \
                 {gzip1:>7.1} {:>14.2} {sh_custom:>11} {custom:>17} {peak:>12.0} {tally:>15.0}",
                mib(z.uncompressed_bytes),
                zstd3 / sh_zstd,
                zstd3 / tool,
                mib(z.compressed_bytes),
                zstd3_age / zstd3,
                gzip6 / sh_gzip,
                mib(g.compressed_bytes),
                sh_gzip / gzip1,
            );
        }
    }
    Ok(())
}

/// Seconds of `tool | compressor level > /dev/null` (or `tool > /dev/null`), the tool as backups run it.
async fn shell(spec: &DumpSpec, opts: &DumpOptions, compressor: Option<(&str, &str)>) -> Result<f64> {
    let (mut cmd, keep) = tool_command(spec, opts).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let t = Instant::now();
    let ok = match compressor {
        None => {
            let s = cmd.stdout(Stdio::null()).status().await?;
            drop(keep);
            s.success()
        }
        Some((program, level)) => {
            let mut dump = cmd.stdout(Stdio::piped()).spawn()?;
            drop(keep);
            let out: Stdio = dump.stdout.take().context("piped")?.try_into()?;
            let squeezed =
                tokio::process::Command::new(program).args([level, "-c"]).stdin(out).stdout(Stdio::null()).status();
            let (a, b) = tokio::join!(dump.wait(), squeezed);
            a?.success() && b?.success()
        }
    };
    anyhow::ensure!(ok, "the shell pipeline failed ({compressor:?})");
    Ok(t.elapsed().as_secs_f64())
}

/// MiB/s of the manifest tally alone over the blob's SQL (decompressed ahead, outside the timing).
async fn tally_rate(storage: &Storage, blob_name: &str, engine: Engine) -> Result<f64> {
    let req = blob::get_blob(&storage.account, chrono::Utc::now(), "bench", blob_name);
    let stored = storage.send("get", req).await?.check("get blob")?.body;
    let sql = dilux_e2e::decompress(&stored)?;
    drop(stored);
    let mut tally = dilux_domain::manifest::Tally::new(engine.into());
    let t = Instant::now();
    for chunk in sql.chunks(256 << 10) {
        tally.feed(chunk);
    }
    let m = tally.finish();
    anyhow::ensure!(m.rows() > 0, "the tally found the rows");
    Ok(sql.len() as f64 / (1 << 20) as f64 / t.elapsed().as_secs_f64())
}
