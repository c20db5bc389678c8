//! `dilux-restore`: disaster recovery with the app gone. Restores one backup — a blob in the storage
//! account, or a downloaded `.sql.gz` / `.dump.zst` — into a new database (a PostgreSQL custom archive
//! whole or table by table), checking the SHA-256 recorded at backup
//! time while it streams. Nothing is kept unless the whole backup restored.

use std::io::{BufRead as _, Write as _};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use dilux_azure::Account;
use dilux_domain::tls::{Tls, TlsMode};
use dilux_dumper_host::crypt::Keys;
use dilux_dumper_host::dump::{DumpOptions, Engine};
use dilux_dumper_host::restore::{run_restore, RestoreSpec, Source};
use dilux_dumper_host::storage::Storage;

const USAGE: &str = "\
usage: dilux-restore --engine postgresql|mysql --host HOST [--port PORT] --user USER --database NEW_DB
                     (--blob NAME [--container backups] | --file PATH [--sha256 HEX])
                     [--tls disable|prefer|require|verify-full] [--tls-ca PEM_FILE] [--identity FILE]
                     [--table SCHEMA.TABLE ...]

Restores one backup into NEW_DB, which it creates (it must not exist). A failed restore drops it again.
  --blob NAME          a backup in the storage account, e.g. postgresql/<database id>/20261201_020000_ab12cd34.sql.gz;
                       its SHA-256 metadata is checked while it streams
  --file PATH          a downloaded backup; --sha256 (from the backup's history row) is checked if given,
                       gzip's own checksum always is
  --identity FILE      an age identity file (as age-keygen writes) to decrypt an encrypted backup (.age);
                       default: DILUX_AGE_IDENTITY_FILE, else DILUX_AGE_IDENTITY (the key itself)
  --table NAME         a PostgreSQL custom-format backup (.dump.*) only: restore this table's rows (repeat
                       for more) into the whole schema; other tables come back empty
  --tls MODE           encryption of the database connection: require by default off this machine, prefer on
                       its loopback; verify-full also checks the certificate against --tls-ca (else the system's CAs)

Secrets never go on the command line:
  DILUX_STORAGE_CONNECTION_STRING  the storage account (for --blob)
  DILUX_RESTORE_PASSWORD           the database user's password; asked on the terminal when unset
PostgreSQL clients are picked like the dumper-host's: DILUX_PG_TOOLS_DIR, DILUX_PG_DUMP; MariaDB: DILUX_MYSQLDUMP.";

struct Args {
    engine: Engine,
    host: String,
    port: Option<u16>,
    user: String,
    database: String,
    source: Source,
    sha256: Option<String>,
    tls: TlsMode,
    tls_ca: Option<String>,
    identity: Option<String>,
    tables: Vec<String>,
}

fn parse(mut it: impl Iterator<Item = String>) -> anyhow::Result<Args> {
    let (mut engine, mut host, mut port, mut user, mut database) = (None, None, None, None, None);
    let (mut blob, mut container, mut file, mut sha256) = (None, "backups".to_string(), None, None);
    let (mut tls, mut tls_ca, mut identity, mut tables) = (None, None, None, vec![]);
    while let Some(arg) = it.next() {
        let mut val = || it.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--engine" => {
                engine = Some(match val()?.as_str() {
                    "postgresql" => Engine::Postgresql,
                    "mysql" | "mariadb" => Engine::Mysql,
                    other => bail!("--engine `{other}`: use postgresql or mysql"),
                })
            }
            "--host" => host = Some(val()?),
            "--port" => port = Some(val()?.parse().context("--port must be a number from 1 to 65535")?),
            "--user" => user = Some(val()?),
            "--database" => database = Some(val()?),
            "--blob" => blob = Some(val()?),
            "--container" => container = val()?,
            "--file" => file = Some(val()?),
            "--sha256" => sha256 = Some(val()?),
            "--tls" => {
                let v = val()?;
                tls = Some(
                    serde_json::from_value(serde_json::Value::String(v.clone()))
                        .ok()
                        .filter(|m| *m != TlsMode::Auto)
                        .with_context(|| format!("--tls `{v}`: use disable, prefer, require or verify-full"))?,
                );
            }
            "--tls-ca" => {
                let path = val()?;
                let pem = std::fs::read_to_string(&path).with_context(|| format!("--tls-ca: cannot read {path}"))?;
                dilux_domain::tls::validate_ca("--tls-ca", &pem)?;
                tls_ca = Some(pem);
            }
            "--identity" => identity = Some(val()?),
            "--table" => tables.push(val()?),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown argument `{other}` (try --help)"),
        }
    }
    let need = |v: Option<String>, flag: &str| v.with_context(|| format!("{flag} is required (try --help)"));
    let source = match (blob, file) {
        (Some(name), None) => Source::Blob { container, name },
        (None, Some(path)) => Source::File(path.into()),
        _ => bail!("give either --blob or --file (try --help)"),
    };
    Ok(Args {
        engine: engine.context("--engine is required (try --help)")?,
        host: need(host, "--host")?,
        port,
        user: need(user, "--user")?,
        database: need(database, "--database")?,
        source,
        sha256,
        // A CA is given to have certificates checked.
        tls: match (tls, &tls_ca) {
            (None, Some(_)) => TlsMode::VerifyFull,
            (Some(m), Some(_)) if m != TlsMode::VerifyFull => bail!("--tls-ca is used only with --tls verify-full"),
            (m, _) => m.unwrap_or(TlsMode::Auto),
        },
        tls_ca,
        identity,
        tables,
    })
}

/// The password from the environment, else typed on the terminal without echo.
fn password() -> anyhow::Result<String> {
    if let Ok(p) = std::env::var("DILUX_RESTORE_PASSWORD") {
        return Ok(p);
    }
    let Ok(mut tty) = std::fs::OpenOptions::new().read(true).write(true).open("/dev/tty") else {
        bail!("set DILUX_RESTORE_PASSWORD, or run dilux-restore in a terminal to type the password");
    };
    write!(tty, "password: ")?;
    tty.flush()?;
    let fd = std::os::fd::AsRawFd::as_raw_fd(&tty);
    // SAFETY: termios calls on a terminal descriptor we own; the old state is restored below.
    let mut term: libc::termios = unsafe { std::mem::zeroed() };
    let echo_off = unsafe { libc::tcgetattr(fd, &mut term) } == 0 && {
        let mut quiet = term;
        quiet.c_lflag &= !libc::ECHO;
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, &quiet) == 0 }
    };
    let mut line = String::new();
    let read = std::io::BufReader::new(&tty).read_line(&mut line);
    if echo_off {
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, &term) };
    }
    writeln!(tty)?;
    read?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

fn mib(b: u64) -> f64 {
    b as f64 / (1 << 20) as f64
}

#[tokio::main]
async fn main() {
    dilux_dumper_host::heap::bound();
    if let Err(e) = run().await {
        eprintln!("dilux-restore: {e:#}");
        std::process::exit(1);
    }
}

async fn run() -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_env("DILUX_LOG").unwrap_or_else(|_| "warn".into());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    let args = parse(std::env::args().skip(1))?;
    let storage = match &args.source {
        Source::Blob { .. } => {
            let conn = std::env::var("DILUX_STORAGE_CONNECTION_STRING")
                .context("--blob needs the storage account: set DILUX_STORAGE_CONNECTION_STRING")?;
            Some(Storage::new(Account::from_connection_string(&conn).context("DILUX_STORAGE_CONNECTION_STRING")?))
        }
        Source::File(_) => None,
    };
    let default_port = match args.engine {
        Engine::Postgresql => 5432,
        Engine::Mysql => 3306,
    };
    let spec = RestoreSpec {
        engine: args.engine,
        tls: Tls::for_host(args.tls, args.tls_ca.as_deref(), &args.host),
        host: args.host,
        port: args.port.unwrap_or(default_port),
        username: args.user,
        password: password()?,
        database: args.database,
        source: args.source,
        expected_sha256: args.sha256,
        restore_id: uuid::Uuid::new_v4().to_string(),
        keep_mark: false,
        tables: match args.tables.is_empty() {
            true => vec![],
            false => dilux_domain::format::parse_tables(&args.tables)
                .map_err(|e| anyhow::anyhow!("--table: {}", e.message))?,
        },
    };
    let started = Instant::now();
    let last = std::sync::Mutex::new(Instant::now());
    let progress = |done: u64, total: u64| {
        let mut last = last.lock().expect("progress lock");
        if last.elapsed() >= Duration::from_secs(2) || done == total {
            *last = Instant::now();
            let pct = if total == 0 { 100.0 } else { done as f64 * 100.0 / total as f64 };
            eprintln!("restoring: {:.1} of {:.1} MiB ({pct:.0}%)", mib(done), mib(total));
        }
    };
    let keys = match &args.identity {
        Some(path) => Keys::from_lookup(|n| (n == "DILUX_AGE_IDENTITY_FILE").then(|| path.clone())),
        None => Keys::from_lookup(|n| std::env::var(n).ok()),
    };
    let flag = if args.identity.is_some() { "--identity" } else { "DILUX_AGE_IDENTITY_FILE" };
    let keys = keys.map_err(|m| anyhow::anyhow!(m.replace("DILUX_AGE_IDENTITY_FILE", flag)))?;
    let opts = DumpOptions { keys: std::sync::Arc::new(keys), ..DumpOptions::from_env() };
    let restored = match dilux_dumper_host::dump::require_tls(&spec.conn(""), &opts).await {
        Ok(tls) => run_restore(storage.as_ref(), &spec, &opts, true, &progress, &tls).await,
        Err(f) => Err(f),
    };
    let o = restored.map_err(|f| {
        use dilux_domain::ErrorClass as C;
        let connection = matches!(f.class, C::AuthFailed | C::PermissionDenied | C::Unreachable | C::Timeout | C::Tls);
        let hint = if connection || f.class == C::Corrupt { format!("\n{}", f.class.hint()) } else { String::new() };
        anyhow::anyhow!("restore failed ({}): {}{hint}", f.class, f.message)
    })?;
    let check = if o.verified { "SHA-256 verified" } else { "gzip checksum verified (no SHA-256 given)" };
    println!(
        "restored into `{}` on {}:{}: {:.1} MiB stored, {:.1} MiB of dump, {check} ({}), in {:.1}s",
        spec.database,
        spec.host,
        spec.port,
        mib(o.compressed_bytes),
        mib(o.uncompressed_bytes),
        o.sha256,
        started.elapsed().as_secs_f64()
    );
    match o.check.and_then(|c| c.comparison) {
        Some(c) if c.passed() => println!("content checked against the backup's manifest: {}", c.summary()),
        Some(c) => anyhow::bail!(
            "the restored database differs from the backup's manifest: {}\nit was kept as `{}` for inspection",
            c.summary(),
            spec.database
        ),
        None => {
            println!("no manifest for this backup (a file, or a backup made before manifests): content not compared")
        }
    }
    Ok(())
}
