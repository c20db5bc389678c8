//! The restore pipeline: a backup (blob, read in ranges, or a downloaded file) → SHA-256 → age decryption
//! (an encrypted backup) → zstd or gzip → the target's own client (`psql --single-transaction`,
//! `pg_restore --single-transaction --exit-on-error` for a custom archive, `mariadb`), into a database
//! created for it. A custom archive can be restored table by table: its table of contents is read first
//! (the archive's start only), and pg_restore is handed the entries to restore.
//!
//! Nothing half-done is kept: the target is always a fresh database, and it is dropped again when
//! anything fails — the tool stops on an error, the stream is truncated, or the bytes do not hash to
//! the SHA-256 recorded at backup time (checked before the client has its input's last byte, so a
//! mismatch never commits: pg_restore commits once it read the archive's last block, without waiting for
//! the end of its input). Memory is bounded by two download ranges plus one decompressed slice.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use chrono::Utc;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;
use tokio::sync::mpsc;

use dilux_azure::blob;
use dilux_domain::format::{DumpFormat, TableName};
use dilux_domain::manifest::{compare, Comparison, Manifest};
use dilux_domain::ErrorClass;

use crate::dump::{fail, mysql_command, pg_env, pg_tool_for, redact, DumpFailure, DumpOptions, DumpSpec, Engine};
use crate::storage::Storage;

/// Where the backup comes from.
#[derive(Debug, Clone)]
pub enum Source {
    Blob {
        container: String,
        name: String,
    },
    /// A downloaded backup (`.sql.zst` or `.sql.gz`).
    File(PathBuf),
}

/// What to restore, and into which new database. `Debug` is hand-written so the password never prints.
#[derive(Clone)]
pub struct RestoreSpec {
    pub engine: Engine,
    pub host: String,
    pub port: u16,
    pub tls: dilux_domain::tls::Tls,
    pub username: String,
    pub password: String,
    /// Created by the restore; it must not exist yet.
    pub database: String,
    pub source: Source,
    /// The SHA-256 the stored bytes must have; for a blob, its metadata's when not given.
    pub expected_sha256: Option<String>,
    /// Names this restore in the mark it leaves on its database until it finished (a job's restore id:
    /// a retried job then recognises what its dead attempt left).
    pub restore_id: String,
    /// Keep the mark after the restore: a swap follows, which clears it once the copy is in place.
    pub keep_mark: bool,
    /// A selective restore of a custom archive: these tables' rows, into the whole schema; empty: all.
    pub tables: Vec<TableName>,
}

impl std::fmt::Debug for RestoreSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RestoreSpec")
            .field("engine", &self.engine)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls.mode)
            .field("username", &self.username)
            .field("database", &self.database)
            .field("source", &self.source)
            .field("tables", &self.tables.len())
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreOutcome {
    pub compressed_bytes: u64,
    pub uncompressed_bytes: u64,
    /// The SHA-256 of the stored bytes, as verified.
    pub sha256: String,
    /// Whether it was compared with a recorded one (a file restored without `--sha256` is only checked
    /// by its format's own checksums).
    pub verified: bool,
    /// The whole run, and the restore alone (without the check after it: the recovery time).
    pub duration: Duration,
    pub restore_duration: Duration,
    /// The restored database compared with the backup's manifest, when asked for.
    pub check: Option<Check>,
}

/// What a dump of the restored database showed, against the backup's manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// None: the backup has no manifest (made before manifests existed).
    pub comparison: Option<Comparison>,
    pub server_version: String,
    pub duration: Duration,
}

/// Bytes of the source downloaded per request, and how many requests run ahead of the client.
const RANGE: u64 = 4 << 20;
const AHEAD: usize = 2;
/// Decompressed output is handed to the client after each slice this size of compressed input.
const SLICE: usize = 64 << 10;

/// PostgreSQL's database to connect to while creating or dropping the target.
const PG_MAINTENANCE_DB: &str = "postgres";

impl RestoreSpec {
    /// What the backup holds, as its name says (`.dump.*`: a custom archive).
    pub fn format(&self) -> DumpFormat {
        match &self.source {
            Source::Blob { name, .. } => DumpFormat::of_name(name),
            Source::File(path) => DumpFormat::of_name(&path.to_string_lossy()),
        }
    }

    /// The connection as the dump helpers take it, to `database`.
    pub fn conn(&self, database: &str) -> DumpSpec {
        DumpSpec {
            engine: self.engine,
            host: self.host.clone(),
            port: self.port,
            tls: self.tls.clone(),
            database: database.to_string(),
            username: self.username.clone(),
            password: self.password.clone(),
            container: String::new(),
            blob_name: String::new(),
            // Only ever tallied, never stored.
            compression: Default::default(),
            format: Default::default(),
            recipients: vec![],
            metadata: vec![],
        }
    }
}

pub(crate) fn pg_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

pub(crate) fn mysql_ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// A string literal: PostgreSQL keeps backslashes as they are, MariaDB escapes with them.
pub(crate) fn sql_literal(engine: Engine, v: &str) -> String {
    let v = match engine {
        Engine::Postgresql => v.to_string(),
        Engine::Mysql => v.replace('\\', "\\\\"),
    };
    format!("'{}'", v.replace('\'', "''"))
}

/// Runs one statement as the restoring user (on PostgreSQL against the maintenance database) and
/// answers its unaligned output.
pub(crate) async fn admin_sql(spec: &RestoreSpec, opts: &DumpOptions, sql: &str) -> Result<String, DumpFailure> {
    match spec.engine {
        Engine::Postgresql => {
            let conn = spec.conn(PG_MAINTENANCE_DB);
            let mut c = Command::new(pg_tool_for(&conn, opts, "psql").await?);
            c.args(["-X", "-q", "-A", "-t", "--no-password", "-v", "ON_ERROR_STOP=1", "-c", sql]);
            let keep = pg_env(&mut c, &conn, opts)?;
            let r = crate::dump::run_client(c, "psql", &spec.password, opts).await;
            drop(keep);
            r
        }
        Engine::Mysql => {
            let (mut c, fd) = mysql_command(&crate::probe::mysql_client(opts), &spec.conn(""))?;
            c.args(["--protocol=TCP", "--batch", "--skip-column-names", "-e", sql]);
            let r = crate::dump::run_client(c, "mariadb", &spec.password, opts).await;
            drop(fd);
            r
        }
    }
}

/// The mark a restore leaves on the database it creates until it has finished: a restore that died
/// half-way (its worker killed) is recognised by the next attempt as its own leftover, dropped and
/// started over — and a database someone else made is never taken for one.
pub(crate) fn marker(spec: &RestoreSpec) -> String {
    format!("dilux-restore in progress: {}", spec.restore_id)
}

/// The mark the database carries, if any.
pub(crate) async fn read_marker(spec: &RestoreSpec, opts: &DumpOptions) -> Option<String> {
    let sql = match spec.engine {
        Engine::Postgresql => format!(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = {}",
            sql_literal(spec.engine, &spec.database)
        ),
        Engine::Mysql => format!("SELECT id FROM {}.{MARIA_MARKER}", mysql_ident(&spec.database)),
    };
    admin_sql(spec, opts, &sql).await.ok().map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

/// MariaDB has no database comments: the mark is a table, removed once the restore succeeded.
pub(crate) const MARIA_MARKER: &str = "`_dilux_restore_in_progress`";

async fn set_marker(spec: &RestoreSpec, opts: &DumpOptions, on: bool) -> Result<(), DumpFailure> {
    let (db, mark) = (&spec.database, sql_literal(spec.engine, &marker(spec)));
    let sql = match (spec.engine, on) {
        (Engine::Postgresql, true) => format!("COMMENT ON DATABASE {} IS {mark}", pg_ident(db)),
        (Engine::Postgresql, false) => format!("COMMENT ON DATABASE {} IS NULL", pg_ident(db)),
        (Engine::Mysql, true) => {
            let t = format!("{}.{MARIA_MARKER}", mysql_ident(db));
            format!("CREATE TABLE {t} (id VARCHAR(200)); INSERT INTO {t} VALUES ({mark})")
        }
        (Engine::Mysql, false) => format!("DROP TABLE {}.{MARIA_MARKER}", mysql_ident(db)),
    };
    admin_sql(spec, opts, &sql).await.map(|_| ())
}

async fn create_database(spec: &RestoreSpec, opts: &DumpOptions) -> Result<(), DumpFailure> {
    let sql = match spec.engine {
        Engine::Postgresql => format!("CREATE DATABASE {}", pg_ident(&spec.database)),
        Engine::Mysql => format!("CREATE DATABASE {} CHARACTER SET utf8mb4", mysql_ident(&spec.database)),
    };
    match admin_sql(spec, opts, &sql).await {
        Ok(_) => {}
        Err(e) if e.message.contains("already exists") || e.message.contains("1007") => {
            if read_marker(spec, opts).await.as_deref() != Some(marker(spec).as_str()) {
                let why = format!(
                    "database `{}` already exists on the target server; restore into a new name",
                    spec.database
                );
                return Err(fail(ErrorClass::ToolFailed, why));
            }
            let db = &spec.database;
            tracing::warn!(database = %db, "an earlier attempt of this restore died half-way; starting over");
            drop_database(spec, opts).await;
            admin_sql(spec, opts, &sql).await?;
        }
        Err(e) => return Err(e),
    }
    if let Err(e) = set_marker(spec, opts, true).await {
        drop_database(spec, opts).await;
        return Err(e);
    }
    Ok(())
}

/// Drops the database this restore created (after a failure: nothing half-restored stays; after a
/// drill: the scratch database).
pub async fn drop_database(spec: &RestoreSpec, opts: &DumpOptions) {
    let sql = match spec.engine {
        // FORCE ends sessions the killed client may have left behind.
        Engine::Postgresql => format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", pg_ident(&spec.database)),
        Engine::Mysql => format!("DROP DATABASE IF EXISTS {}", mysql_ident(&spec.database)),
    };
    if let Err(e) = admin_sql(spec, opts, &sql).await {
        let db = &spec.database;
        tracing::error!(database = %db, error = %e, "could not drop the half-restored database; drop it by hand");
    }
}

/// The restoring client, reading the dump on stdin; `list` (a custom archive's selective restore) says which
/// of its entries to restore.
async fn client(
    spec: &RestoreSpec,
    opts: &DumpOptions,
    list: Option<&str>,
) -> Result<(Command, crate::dump::Inherited), DumpFailure> {
    match spec.engine {
        Engine::Postgresql => {
            let conn = spec.conn(&spec.database);
            let custom = spec.format() == DumpFormat::Custom;
            let mut c = Command::new(pg_tool_for(&conn, opts, if custom { "pg_restore" } else { "psql" }).await?);
            // One transaction: an error anywhere rolls everything back. pg_restore's empty --dbname connects to
            // PGDATABASE: the name never reaches argv, where it could read as a connection string.
            match custom {
                true => c.args(["--no-password", "--single-transaction", "--exit-on-error", "--dbname="]),
                false => c.args(["-X", "-q", "--no-password", "-v", "ON_ERROR_STOP=1", "--single-transaction"]),
            };
            let mut keep = pg_env(&mut c, &conn, opts)?;
            if let Some(list) = list {
                let path = crate::dump::memory_file(&mut c, c"dilux-restore-list", list.as_bytes(), &mut keep)
                    .map_err(|e| fail(ErrorClass::ToolFailed, format!("could not hand the restore list over: {e}")))?;
                c.arg(format!("--use-list={path}"));
            }
            Ok((c, keep))
        }
        Engine::Mysql => {
            let (mut c, keep) = mysql_command(&crate::probe::mysql_client(opts), &spec.conn(""))?;
            c.args(["--protocol=TCP", "--default-character-set=utf8mb4", "--batch"])
                .arg(format!("--database={}", spec.database));
            Ok((c, keep))
        }
    }
}

/// The source's size and recorded SHA-256, if it has one.
/// The source's size and, for a blob, its metadata (recorded SHA-256, manifest digest).
async fn describe(storage: Option<&Storage>, source: &Source) -> Result<(u64, Vec<(String, String)>), DumpFailure> {
    match source {
        Source::File(path) => {
            let meta = tokio::fs::metadata(path)
                .await
                .map_err(|e| fail(ErrorClass::NotFound, format!("cannot read {}: {e}", path.display())))?;
            Ok((meta.len(), vec![]))
        }
        Source::Blob { container, name } => {
            let storage = storage.ok_or_else(|| fail(ErrorClass::StorageFailed, "no storage account is configured"))?;
            let r = storage
                .send("get blob properties", blob::get_properties(&storage.account, Utc::now(), container, name))
                .await
                .map_err(|e| fail(ErrorClass::StorageFailed, e.to_string()))?;
            if r.status == 404 {
                return Err(fail(ErrorClass::NotFound, format!("backup file {container}/{name} does not exist")));
            }
            let props = blob::parse_properties(r).map_err(|e| fail(ErrorClass::StorageFailed, e.to_string()))?;
            Ok((props.content_length, props.metadata))
        }
    }
}

/// Reads the source in order into `tx`, `RANGE` bytes at a time.
async fn read_source(storage: Option<Storage>, source: Source, size: u64, tx: mpsc::Sender<Result<Vec<u8>, String>>) {
    match source {
        Source::File(path) => {
            let mut f = match tokio::fs::File::open(&path).await {
                Ok(f) => f,
                Err(e) => {
                    let _ = tx.send(Err(format!("cannot open {}: {e}", path.display()))).await;
                    return;
                }
            };
            loop {
                let mut buf = vec![0u8; RANGE as usize];
                match f.read(&mut buf).await {
                    Ok(0) => return,
                    Ok(n) => {
                        buf.truncate(n);
                        if tx.send(Ok(buf)).await.is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Err(format!("reading {} failed: {e}", path.display()))).await;
                        return;
                    }
                }
            }
        }
        Source::Blob { container, name } => {
            // A restore's reads ride out minutes of storage outage, like a dump's writes.
            let storage = storage.expect("described first").patient();
            let mut start = 0;
            while start < size {
                let len = RANGE.min(size - start);
                let req = blob::get_blob_range(&storage.account, Utc::now(), &container, &name, start, len);
                let piece = match storage.send("get blob", req).await {
                    Ok(r) if r.is_success() && r.body.len() as u64 == len => Ok(r.body),
                    Ok(r) if r.is_success() => {
                        Err(format!("get blob: {} bytes at {start}, expected {len}", r.body.len()))
                    }
                    Ok(r) => Err(r.check("get blob").err().map(|e| e.to_string()).unwrap_or_default()),
                    Err(e) => Err(e.to_string()),
                };
                let failed = piece.is_err();
                if tx.send(piece).await.is_err() || failed {
                    return;
                }
                start += len;
            }
        }
    }
}

/// The backup's manifest, if it has one (a blob backup made before manifests existed has none); `metadata`
/// is the blob's, from [`describe`].
async fn load_manifest(
    storage: Option<&Storage>,
    keys: &crate::crypt::Keys,
    source: &Source,
    metadata: &[(String, String)],
) -> Result<Option<Manifest>, DumpFailure> {
    let (Some(storage), Source::Blob { container, name }) = (storage, source) else { return Ok(None) };
    crate::dump::read_manifest(storage, keys, container, name, metadata).await
}

/// Dumps the restored database with the backup's tool and flags and compares it with the manifest.
async fn check(spec: &RestoreSpec, opts: &DumpOptions, manifest: Option<&Manifest>) -> Result<Check, DumpFailure> {
    let started = Instant::now();
    let version_sql = match spec.engine {
        Engine::Postgresql => "SHOW server_version",
        Engine::Mysql => "SELECT VERSION()",
    };
    let server_version = admin_sql(spec, opts, version_sql).await?.trim().to_string();
    let comparison = match manifest {
        None => None,
        // A manifest of another format or engine is not compared as this one.
        Some(m) if m.format != dilux_domain::manifest::FORMAT || m.engine != spec.engine.into() => {
            tracing::warn!(format = m.format, "the backup's manifest is of another format; content not compared");
            None
        }
        Some(m) => {
            let mut actual = crate::dump::tally_database(&spec.conn(&spec.database), opts).await?;
            // The restore's own mark is not the backup's.
            actual.tables.retain(|t| format!("`{}`", t.table) != MARIA_MARKER);
            // A selective restore brought back its tables' rows only; the others are empty by design.
            match spec.tables.is_empty() {
                true => Some(compare(m, &actual)),
                false => Some(compare(&m.only(&spec.tables), &actual.only(&spec.tables))),
            }
        }
    };
    Ok(Check { comparison, server_version, duration: started.elapsed() })
}

/// Restores the backup of `spec.source` into the new database `spec.database`, and with `verify`
/// compares what came back with the backup's manifest (the database keeps its mark until then).
/// `progress` hears bytes of the source done out of its size; `_tls` says the server's TLS was checked.
pub async fn run_restore(
    storage: Option<&Storage>,
    spec: &RestoreSpec,
    opts: &DumpOptions,
    verify: bool,
    progress: &(dyn Fn(u64, u64) + Sync),
    _tls: &crate::dump::TlsChecked,
) -> Result<RestoreOutcome, DumpFailure> {
    let started = Instant::now();
    crate::dump::checked_name(&spec.database)?;
    let (size, metadata) = describe(storage, &spec.source).await?;
    let recorded = crate::dump::metadata(&metadata, "sha256").map(str::to_string);
    let expected = spec.expected_sha256.clone().or(recorded).map(|s| s.to_ascii_lowercase());
    let manifest = if verify { load_manifest(storage, &opts.keys, &spec.source, &metadata).await? } else { None };
    // Before anything is created: a table the backup lacks fails the restore here.
    let list = match spec.tables.is_empty() {
        true => None,
        false => Some(selection(storage, spec, opts, size).await?),
    };
    create_database(spec, opts).await?;
    let mut restore_duration = Duration::ZERO;
    let fed = match feed(storage, spec, opts, size, expected.as_deref(), list.as_deref(), progress).await {
        Ok(done) => {
            restore_duration = started.elapsed();
            let checked = match verify {
                true => check(spec, opts, manifest.as_ref()).await.map(Some),
                false => Ok(None),
            };
            match checked {
                Ok(c) if spec.keep_mark => Ok((done, c)),
                Ok(c) => set_marker(spec, opts, false).await.map(|()| (done, c)),
                Err(e) => {
                    Err(DumpFailure { message: format!("checking the restored database failed: {}", e.message), ..e })
                }
            }
        }
        Err(e) => Err(e),
    };
    match fed {
        Ok(((compressed, uncompressed, sha256), check)) => Ok(RestoreOutcome {
            compressed_bytes: compressed,
            uncompressed_bytes: uncompressed,
            sha256,
            verified: expected.is_some(),
            duration: started.elapsed(),
            restore_duration,
            check,
        }),
        Err(e) => {
            drop_database(spec, opts).await;
            Err(DumpFailure { message: format!("{}; nothing was kept", e.message), ..e })
        }
    }
}

/// Swaps the restored database `spec.database` in for `original`. PostgreSQL: ends the original's
/// sessions, renames it to `previous`, renames the restored one to `original` (MariaDB moves tables
/// instead: see `maria_swap`). On failure the original keeps its name and the restored database is
/// dropped.
pub async fn swap_in(
    spec: &RestoreSpec,
    opts: &DumpOptions,
    original: &str,
    previous: &str,
) -> Result<(), DumpFailure> {
    if spec.engine == Engine::Mysql {
        return crate::maria_swap::swap_in(spec, opts, original, previous).await;
    }
    let terminate = format!(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = {} AND pid <> pg_backend_pid()",
        sql_literal(spec.engine, original)
    );
    let mut last = None;
    // Clients may reconnect between the two statements: a few tries before giving up.
    for _ in 0..5 {
        admin_sql(spec, opts, &terminate).await?;
        let rename = format!("ALTER DATABASE {} RENAME TO {}", pg_ident(original), pg_ident(previous));
        match admin_sql(spec, opts, &rename).await {
            Ok(_) => {
                last = None;
                break;
            }
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    if let Some(e) = last {
        drop_database(spec, opts).await;
        let why =
            format!("the restore succeeded, but `{original}` could not be renamed ({}); it is unchanged", e.message);
        return Err(fail(e.class, why));
    }
    crate::test_hooks::crash_point("swap-renamed");
    let swap = format!("ALTER DATABASE {} RENAME TO {}", pg_ident(&spec.database), pg_ident(original));
    if let Err(e) = admin_sql(spec, opts, &swap).await {
        let back = format!("ALTER DATABASE {} RENAME TO {}", pg_ident(previous), pg_ident(original));
        if let Err(again) = admin_sql(spec, opts, &back).await {
            // Keep both: the retry finishes the swap (the copy is still marked), or a person does.
            let why = format!(
                "the swap failed ({}) and renaming the original back failed too ({}); the original is \
                 `{previous}` and the restored copy `{}`, both intact",
                e.message, again.message, spec.database
            );
            return Err(fail(e.class, why));
        }
        drop_database(spec, opts).await;
        return Err(fail(e.class, format!("the swap failed ({}); `{original}` is unchanged", e.message)));
    }
    // The mark came along with the copy; the swap is done once it is gone.
    set_marker(&RestoreSpec { database: original.to_string(), ..spec.clone() }, opts, false).await
}

/// Where a swap stands when a retried replace starts: a worker that died half-way through one left
/// the restored copy marked, so the next attempt can tell its own leftovers and finish the job.
#[derive(Debug, PartialEq, Eq)]
pub enum Resumed {
    /// Nothing of a swap happened: restore as usual (a marked copy is dropped and made again).
    NotStarted,
    /// The swap has been completed now; the original is the restored copy.
    Finished,
}

/// Finishes a swap an earlier attempt of this restore began (PostgreSQL: the first rename done, or
/// both with the mark still on; MariaDB: see `maria_swap::resume`).
pub async fn resume_swap(
    spec: &RestoreSpec,
    opts: &DumpOptions,
    original: &str,
    previous: &str,
) -> Result<Resumed, DumpFailure> {
    if spec.engine == Engine::Mysql {
        return crate::maria_swap::resume(spec, opts, original, previous).await;
    }
    let at = |db: &str| RestoreSpec { database: db.to_string(), ..spec.clone() };
    let ours = Some(marker(spec));
    if read_marker(&at(original), opts).await == ours {
        tracing::warn!(database = %original, "an earlier attempt swapped the copy in; clearing its mark");
        set_marker(&at(original), opts, false).await?;
        return Ok(Resumed::Finished);
    }
    let exists =
        |db: &str| format!("SELECT count(*) FROM pg_database WHERE datname = {}", sql_literal(spec.engine, db));
    let count = |out: String| out.trim() == "1";
    let original_there = admin_sql(spec, opts, &exists(original)).await.map(count)?;
    let previous_there = admin_sql(spec, opts, &exists(previous)).await.map(count)?;
    if !original_there && previous_there && read_marker(spec, opts).await == ours {
        tracing::warn!(database = %original, "an earlier attempt died between the renames; finishing the swap");
        let swap = format!("ALTER DATABASE {} RENAME TO {}", pg_ident(&spec.database), pg_ident(original));
        admin_sql(spec, opts, &swap).await?;
        set_marker(&at(original), opts, false).await?;
        return Ok(Resumed::Finished);
    }
    Ok(Resumed::NotStarted)
}

/// The `--use-list` of a selective restore: the archive's table of contents, read from its start (decrypted
/// and decompressed like the restore; `pg_restore --list` stops reading there), filtered by
/// [`crate::archive::select`].
async fn selection(
    storage: Option<&Storage>,
    spec: &RestoreSpec,
    opts: &DumpOptions,
    size: u64,
) -> Result<String, DumpFailure> {
    if spec.engine != Engine::Postgresql || spec.format() != DumpFormat::Custom {
        let why =
            "only PostgreSQL backups in the custom format (`.dump.*`) restore table by table; restore this one whole";
        return Err(fail(ErrorClass::InvalidJob, why));
    }
    // The target database does not exist yet: the server's version is asked of the maintenance one.
    let conn = spec.conn(PG_MAINTENANCE_DB);
    let mut c = Command::new(pg_tool_for(&conn, opts, "pg_restore").await?);
    crate::dump::bare_env(c.as_std_mut());
    c.args(["--list", "--verbose"]).env("LC_ALL", "C");
    c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    let mut child =
        c.spawn().map_err(|e| fail(ErrorClass::ToolFailed, format!("could not start pg_restore --list: {e}")))?;
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let (mut stdout, mut stderr) = (child.stdout.take().expect("piped"), child.stderr.take().expect("piped"));
    let listed = tokio::spawn(async move {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let words = async {
            let _ = (&mut stderr).take(16 * 1024).read_to_end(&mut err).await;
            // Drain the rest so pg_restore never blocks on a full pipe.
            let _ = tokio::io::copy(&mut stderr, &mut tokio::io::sink()).await;
        };
        let _ = tokio::join!(stdout.read_to_end(&mut out), words);
        (String::from_utf8_lossy(&out).into_owned(), String::from_utf8_lossy(&err).into_owned())
    });
    let (tx, mut rx) = mpsc::channel(AHEAD);
    let reader = tokio::spawn(read_source(storage.cloned(), spec.source.clone(), size, tx));
    let mut decoder = crate::codec::Decoder::new(&opts.keys);
    let (mut sent, mut held, mut gone) = (0u64, None, false);
    'read: while let Some(piece) = rx.recv().await {
        let piece = piece.map_err(|m| fail(ErrorClass::StorageFailed, m))?;
        for slice in piece.chunks(SLICE) {
            decoder.push(slice).map_err(|e| fail(ErrorClass::Corrupt, format!("the backup is damaged: {e}")))?;
            match deliver(&mut decoder, &mut stdin, opts, &mut sent, &mut held).await {
                Delivered::All => {}
                // pg_restore has the table of contents and stopped reading.
                Delivered::ClientGone => {
                    gone = true;
                    break 'read;
                }
                Delivered::Damaged(e) => return Err(fail(ErrorClass::Corrupt, format!("the backup is damaged: {e}"))),
                Delivered::Stalled(f) => return Err(f),
            }
        }
    }
    reader.abort();
    if !gone {
        // The archive is all table of contents (no rows at all).
        decoder.end();
        let _ = deliver(&mut decoder, &mut stdin, opts, &mut sent, &mut held).await;
        let _ =
            stdin.write_all(&held.into_iter().chain(decoder.finish().unwrap_or_default()).collect::<Vec<u8>>()).await;
    }
    drop(stdin);
    let status = child.wait().await.map_err(|e| fail(ErrorClass::ToolFailed, e.to_string()))?;
    let (list, words) = listed.await.unwrap_or_default();
    if !status.success() {
        return Err(fail(
            ErrorClass::Corrupt,
            format!("pg_restore could not read the archive's contents: {}", words.trim()),
        ));
    }
    let chosen = crate::archive::select(&crate::archive::parse_list(&list), &spec.tables)
        .map_err(|m| fail(ErrorClass::NotFound, m))?;
    if !chosen.left_out.is_empty() {
        let left_out = chosen.left_out.join("; ");
        tracing::info!(database = %spec.database, %left_out, "foreign keys to tables not restored are left out");
    }
    Ok(chosen.list)
}

/// Streams the source through hash and decompression into the client; answers (stored, restored, sha256).
async fn feed(
    storage: Option<&Storage>,
    spec: &RestoreSpec,
    opts: &DumpOptions,
    size: u64,
    expected: Option<&str>,
    list: Option<&str>,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<(u64, u64, String), DumpFailure> {
    let (mut cmd, keep_fd) = client(spec, opts, list).await?;
    // If this process dies, the client dies with it instead of reading EOF on stdin — which psql
    // would take as the end of the dump, and commit. (The mark on the database covers the rest.)
    // SAFETY: prctl is async-signal-safe; it only sets this child's parent-death signal.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::piped()).kill_on_drop(true).env("LC_ALL", "C");
    let mut child =
        cmd.spawn().map_err(|e| fail(ErrorClass::ToolFailed, format!("could not start the restore client: {e}")))?;
    drop(keep_fd);
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let mut stderr = child.stderr.take().expect("stderr is piped");
    let stderr_task = tokio::spawn(async move {
        let mut buf = Vec::new();
        let _ = (&mut stderr).take(64 * 1024).read_to_end(&mut buf).await;
        // Drain the rest so the client never blocks on a full pipe.
        let _ = tokio::io::copy(&mut stderr, &mut tokio::io::sink()).await;
        String::from_utf8_lossy(&buf).into_owned()
    });
    let (tx, mut rx) = mpsc::channel(AHEAD);
    tokio::spawn(read_source(storage.cloned(), spec.source.clone(), size, tx));
    progress(0, size);

    let mut hasher = Sha256::new();
    let mut decoder = crate::codec::Decoder::new(&opts.keys);
    let (mut stored, mut restored) = (0u64, 0u64);
    // The client gets the last byte only once the stream proved whole (see the module's comment).
    let mut held: Option<u8> = None;
    // A damaged stream is read to its end anyway: the hash then names the cause (an altered blob).
    let mut damaged: Option<String> = None;
    while let Some(piece) = rx.recv().await {
        let piece = match piece {
            Ok(p) => p,
            Err(m) => return abort(child, stderr_task, spec, Some(fail(ErrorClass::StorageFailed, m))).await,
        };
        hasher.update(&piece);
        stored += piece.len() as u64;
        if damaged.is_some() {
            continue;
        }
        let mut fed = stored - piece.len() as u64;
        for slice in piece.chunks(SLICE) {
            fed += slice.len() as u64;
            match decoder.push(slice) {
                Ok(()) => match deliver(&mut decoder, &mut stdin, opts, &mut restored, &mut held).await {
                    Delivered::All => {}
                    Delivered::Damaged(e) => damaged = Some(e),
                    Delivered::ClientGone => return abort(child, stderr_task, spec, None).await,
                    Delivered::Stalled(f) => return abort(child, stderr_task, spec, Some(f)).await,
                },
                Err(e) => damaged = Some(e),
            }
            if damaged.is_some() {
                break;
            }
            // What the server has taken, not what was downloaded ahead of it.
            progress(fed, size);
        }
    }
    if stored != size {
        let short = fail(ErrorClass::Corrupt, format!("the backup ended after {stored} of {size} bytes"));
        return abort(child, stderr_task, spec, Some(short)).await;
    }
    let sha = crate::dump::hex(&hasher.finalize());
    if let Some(want) = expected.filter(|want| *want != sha) {
        let why =
            format!("SHA-256 mismatch: the stored backup hashes to {sha}, but {want} was recorded at backup time");
        return abort(child, stderr_task, spec, Some(fail(ErrorClass::Corrupt, why))).await;
    }
    // The end of an encrypted stream is known only now: its last chunk is delivered here.
    if damaged.is_none() {
        decoder.end();
        match deliver(&mut decoder, &mut stdin, opts, &mut restored, &mut held).await {
            Delivered::All => {}
            Delivered::Damaged(e) => damaged = Some(e),
            Delivered::ClientGone => return abort(child, stderr_task, spec, None).await,
            Delivered::Stalled(f) => return abort(child, stderr_task, spec, Some(f)).await,
        }
    }
    // Each format's own checks (gzip's CRC-32 and length, zstd's frame checksum, age's authenticated
    // chunks) catch a truncated or damaged stream even without a hash.
    let tail = match damaged.map_or_else(|| decoder.finish(), Err) {
        Ok(tail) => tail,
        Err(e) => {
            let bad = fail(ErrorClass::Corrupt, format!("the backup stream is incomplete or damaged: {e}"));
            return abort(child, stderr_task, spec, Some(bad)).await;
        }
    };
    restored += tail.len() as u64;
    let last: Vec<u8> = held.into_iter().chain(tail).collect();
    if stdin.write_all(&last).await.is_err() {
        return abort(child, stderr_task, spec, None).await;
    }
    // Only now does the client see the end of its input, and commit.
    drop(stdin);
    let status = child.wait().await.map_err(|e| fail(ErrorClass::ToolFailed, e.to_string()))?;
    let words = redact(stderr_task.await.unwrap_or_default().trim(), &spec.password);
    if !status.success() {
        return Err(client_failed(&words));
    }
    Ok((stored, restored, sha))
}

enum Delivered {
    /// Everything decoded so far went to the client.
    All,
    Damaged(String),
    /// The client stopped reading: it failed, and its own words say why.
    ClientGone,
    Stalled(DumpFailure),
}

/// Writes what the decoder has ready to the client but for its last byte, which waits in `held` and goes out
/// ahead of the next output.
async fn deliver(
    decoder: &mut crate::codec::Decoder<'_>,
    stdin: &mut tokio::process::ChildStdin,
    opts: &DumpOptions,
    restored: &mut u64,
    held: &mut Option<u8>,
) -> Delivered {
    loop {
        let mut out = match decoder.pull() {
            Ok(Some(out)) => out,
            Ok(None) => return Delivered::All,
            Err(e) => return Delivered::Damaged(e),
        };
        *restored += out.len() as u64;
        let before = out.pop().and_then(|last| held.replace(last));
        let write = async {
            if let Some(b) = before {
                stdin.write_all(&[b]).await?;
            }
            stdin.write_all(&out).await
        };
        match tokio::time::timeout(opts.stall_timeout, write).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Delivered::ClientGone,
            Err(_) => {
                let why = format!("the server accepted nothing for {}s", opts.stall_timeout.as_secs());
                return Delivered::Stalled(fail(ErrorClass::Timeout, why));
            }
        }
    }
}

fn client_failed(words: &str) -> DumpFailure {
    let tail: Vec<&str> = words.lines().rev().take(5).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    fail(ErrorClass::from_tool_stderr(words), format!("the restore client failed: {}", tail.join("\n")))
}

/// Stops the client before it sees the end of its input (PostgreSQL then rolls back); `why: None`
/// means the client failed by itself and its own words say why.
async fn abort(
    mut child: tokio::process::Child,
    stderr: tokio::task::JoinHandle<String>,
    spec: &RestoreSpec,
    why: Option<DumpFailure>,
) -> Result<(u64, u64, String), DumpFailure> {
    let _ = child.start_kill();
    let _ = child.wait().await;
    let words = redact(stderr.await.unwrap_or_default().trim(), &spec.password);
    Err(why.unwrap_or_else(|| client_failed(&words)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(engine: Engine) -> RestoreSpec {
        RestoreSpec {
            tls: Default::default(),
            engine,
            host: "h".into(),
            port: 1,
            username: "u".into(),
            password: "pw-never-shown".into(),
            database: "a\"b`c".into(),
            source: Source::File("x.sql.gz".into()),
            expected_sha256: None,
            restore_id: "r-1".into(),
            keep_mark: false,
            tables: vec![],
        }
    }

    #[test]
    fn names_and_values_are_quoted_for_each_engine() {
        assert_eq!(pg_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(mysql_ident("a`b"), "`a``b`");
        assert_eq!(sql_literal(Engine::Postgresql, "it's \\ ok"), "'it''s \\ ok'");
        assert_eq!(sql_literal(Engine::Mysql, "it's \\ ok"), "'it''s \\\\ ok'");
    }

    #[test]
    fn the_mark_names_the_restore_and_debug_hides_the_password() {
        let s = spec(Engine::Mysql);
        assert_eq!(marker(&s), "dilux-restore in progress: r-1");
        assert!(!format!("{s:?}").contains("pw-never-shown"));
    }
}
