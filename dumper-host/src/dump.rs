//! The dump pipeline: tool stdout (plain SQL, or a PostgreSQL custom archive) → zstd or gzip members (several
//! at once) → age encryption (when the policy asks) → SHA-256 → Put Block (bounded in flight) → Put Block List
//! with `If-None-Match: *`. Memory is bounded by block size × blocks in flight, whatever the database size;
//! nothing touches the local disk.

use std::collections::VecDeque;
use std::io::Write as _;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;
use tokio::process::Command;
use tokio::task::JoinSet;

use dilux_azure::blob;
use dilux_domain::compression::Compression;
use dilux_domain::format::DumpFormat;
use dilux_domain::manifest::{manifest_blob, Manifest, Tally};
use dilux_domain::tls::{Tls, TlsMode};
use dilux_domain::{EngineType, ErrorClass};

use crate::codec;
use crate::crypt::{seal_small, Keys, Sealer};
use crate::storage::Storage;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Postgresql,
    Mysql,
}

impl From<Engine> for EngineType {
    fn from(e: Engine) -> Self {
        match e {
            Engine::Postgresql => EngineType::Postgresql,
            Engine::Mysql => EngineType::Mysql,
        }
    }
}

/// What to dump and where to put it. `Debug` is hand-written so the password never prints.
#[derive(Clone)]
pub struct DumpSpec {
    pub engine: Engine,
    pub host: String,
    pub port: u16,
    pub tls: Tls,
    pub database: String,
    pub username: String,
    pub password: String,
    pub container: String,
    pub blob_name: String,
    pub compression: Compression,
    /// PostgreSQL: plain SQL or pg_dump's custom archive (MariaDB: plain only).
    pub format: DumpFormat,
    /// age recipients to encrypt to; empty: not encrypted.
    pub recipients: Vec<String>,
    pub metadata: Vec<(String, String)>,
}

impl std::fmt::Debug for DumpSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DumpSpec")
            .field("engine", &self.engine)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls.mode)
            .field("database", &self.database)
            .field("username", &self.username)
            .field("blob_name", &self.blob_name)
            .field("compression", &self.compression)
            .field("format", &self.format)
            .field("recipients", &self.recipients.len())
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DumpOutcome {
    pub compressed_bytes: u64,
    pub uncompressed_bytes: u64,
    pub sha256: String,
    pub duration: Duration,
    /// Rows and digest per table, tallied from the stream; kept beside the backup.
    pub manifest: Manifest,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{class}: {message}")]
pub struct DumpFailure {
    pub class: ErrorClass,
    pub message: String,
}

/// Tunables, with defaults measured on a 2-core machine (see DESIGN.md §3-4).
#[derive(Debug, Clone)]
pub struct DumpOptions {
    /// A fixed pg_dump; otherwise one matching the server is picked from `pg_tools_dir`.
    pub pg_dump: Option<String>,
    /// Folders `<version>/bin/{pg_dump,psql}`, one per PostgreSQL major.
    pub pg_tools_dir: Option<std::path::PathBuf>,
    pub mysqldump: String,
    /// First block size; grows as the blob approaches Azure's 50 000-block limit.
    pub block_size: usize,
    pub blocks_in_flight: usize,
    /// Kill the tool when it produced nothing for this long (mariadb-dump can hang forever).
    pub stall_timeout: Duration,
    pub connect_timeout_secs: u32,
    /// Tally and store the manifest (always, but for `bench-dump` measuring what it costs).
    pub manifest: bool,
    /// A dump running longer than this is stopped (Timeout), whatever it is doing.
    pub deadline: Duration,
    /// How long the tool may take to exit once its output ended.
    pub exit_wait: Duration,
    /// The host's age identities: encrypted backups are made only to recipients among them, and restored
    /// with them. Loaded by the binaries (`Keys::from_lookup`), not by [`DumpOptions::from_env`].
    pub keys: Arc<Keys>,
}

const MYSQLDUMP: &str = "mariadb-dump";

/// Reads nothing from the environment: the tools are whatever `PATH` finds.
impl Default for DumpOptions {
    fn default() -> Self {
        DumpOptions {
            pg_dump: None,
            pg_tools_dir: None,
            mysqldump: MYSQLDUMP.into(),
            block_size: 8 << 20,
            blocks_in_flight: 4,
            stall_timeout: Duration::from_secs(300),
            connect_timeout_secs: 15,
            manifest: true,
            deadline: Duration::from_secs(24 * 3600),
            exit_wait: Duration::from_secs(60),
            keys: Default::default(),
        }
    }
}

impl DumpOptions {
    /// The defaults, with the tools named by `DILUX_PG_DUMP`, `DILUX_PG_TOOLS_DIR` and `DILUX_MYSQLDUMP`, and
    /// the overall deadline of a dump from `DILUX_DUMP_DEADLINE_HOURS` (default 24, at most 47; unreadable, 0 or
    /// infinite is ignored).
    pub fn from_env() -> Self {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// [`DumpOptions::from_env`] over any source of variables.
    pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Self {
        let defaults = DumpOptions::default();
        // At most an hour under the sweeper's bound: a dump still running when the sweeper fails its row
        // would be run a second time beside it.
        let most = (dilux_domain::backup::RUNNING_BOUND.num_hours() - 1) as f64;
        let hours = var("DILUX_DUMP_DEADLINE_HOURS")
            .and_then(|h| h.parse::<f64>().ok())
            .filter(|h| h.is_finite() && *h > 0.0)
            .map(|h| h.min(most));
        DumpOptions {
            pg_dump: var("DILUX_PG_DUMP"),
            pg_tools_dir: var("DILUX_PG_TOOLS_DIR").map(Into::into),
            mysqldump: var("DILUX_MYSQLDUMP").unwrap_or_else(|| MYSQLDUMP.into()),
            deadline: hours.map(|h| Duration::from_secs_f64(h * 3600.0)).unwrap_or(defaults.deadline),
            ..defaults
        }
    }
}

/// Block `index`'s size: doubles every 10 000 blocks (8 MiB → 128 MiB), so one blob holds > 2 TiB.
pub fn block_size_for(base: usize, index: usize) -> usize {
    base << (index / 10_000).min(4)
}

/// Removes the password from anything a tool said before it is stored or logged. Secrets shorter than
/// four characters are left alone: they occur everywhere by chance, so masking them would only mangle
/// the message (the tools never echo passwords; this is a second line of defence).
pub fn redact(text: &str, secret: &str) -> String {
    if secret.chars().count() < 4 {
        text.to_string()
    } else {
        text.replace(secret, "********")
    }
}

pub(crate) fn fail(class: ErrorClass, message: impl Into<String>) -> DumpFailure {
    DumpFailure { class, message: message.into() }
}

/// An option-file value in MariaDB's quoting (backslash escapes inside double quotes).
fn option_value(v: &str) -> String {
    let escaped = v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
    format!("\"{escaped}\"")
}

/// A pipe whose read end the child inherits as `/dev/fd/N`, pre-filled with `content` (small: it
/// fits in the pipe buffer, so the write cannot block). Both ends are close-on-exec, so concurrent
/// spawns never inherit it; the one child that should clears the flag in `pre_exec`.
fn secret_pipe(content: &[u8]) -> std::io::Result<OwnedFd> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two fresh descriptors into fds.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just created and are owned here.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let mut wf = std::fs::File::from(w);
    wf.write_all(content)?;
    drop(wf); // EOF for the reader
    Ok(r)
}

/// A tool starts from an empty environment plus `PATH`: the host's own holds the seal key, the storage
/// credentials and the tokens, none of which a database client needs.
pub(crate) fn bare_env(c: &mut std::process::Command) {
    c.env_clear();
    if let Some(path) = std::env::var_os("PATH") {
        c.env("PATH", path);
    }
}

/// Everything that identifies a PostgreSQL target goes through the environment: nothing secret on
/// argv, and a database name can never be read as an option or a conninfo string. The answer holds the
/// descriptors the client must inherit (a CA bundle): keep it until the client has started.
pub(crate) fn pg_env(c: &mut Command, spec: &DumpSpec, opts: &DumpOptions) -> Result<Inherited, DumpFailure> {
    bare_env(c.as_std_mut());
    c.env("PGHOST", &spec.host)
        .env("PGPORT", spec.port.to_string())
        .env("PGUSER", &spec.username)
        .env("PGDATABASE", &spec.database)
        .env("PGPASSWORD", &spec.password)
        // A server (or an impostor at its address) that asks for anything but SCRAM gets no password:
        // enforced by libpq 16 and later, which every client loads (see `newer_libpq`).
        .env("PGREQUIREAUTH", "scram-sha-256")
        .env("PGCONNECT_TIMEOUT", opts.connect_timeout_secs.to_string())
        .env("PGAPPNAME", "dilux-backup");
    if let Some(lib) = newer_libpq(std::path::Path::new(c.as_std().get_program()), opts) {
        c.env("LD_LIBRARY_PATH", lib);
    }
    let mode = spec.tls.mode.effective(&spec.host);
    c.env("PGSSLMODE", if mode == TlsMode::Auto { "require" } else { mode.as_str() });
    let mut keep = Vec::new();
    if mode == TlsMode::VerifyFull {
        let ca = ca_path(c, &spec.tls, &mut keep)?;
        c.env("PGSSLROOTCERT", ca);
    }
    Ok(keep)
}

/// Descriptors a client inherits (option file, CA bundle), open until it has started.
pub(crate) type Inherited = Vec<OwnedFd>;

/// The system's CA bundle (Debian's), which holds the roots Azure's database certificates chain to.
const SYSTEM_CAS: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Where a client finds the CAs to check the server's certificate against: the server's own bundle in
/// an anonymous memory file (re-readable through `/dev/fd/N`, unlike a pipe; nothing on disk), else the
/// system's.
fn ca_path(c: &mut Command, tls: &Tls, keep: &mut Inherited) -> Result<String, DumpFailure> {
    let Some(pem) = &tls.ca else {
        // libpq 16+ also knows `system`; older ones need a file.
        return Ok(if std::path::Path::new(SYSTEM_CAS).exists() { SYSTEM_CAS } else { "system" }.to_string());
    };
    memory_file(c, c"dilux-ca", pem.as_bytes(), keep)
        .map_err(|e| fail(ErrorClass::ToolFailed, format!("could not hand the CA bundle over: {e}")))
}

/// `content` in an anonymous memory file the child inherits, named as it opens it (`/dev/fd/N`): a file a
/// tool can read more than once, with nothing on disk.
pub(crate) fn memory_file(
    c: &mut Command,
    name: &std::ffi::CStr,
    content: &[u8],
    keep: &mut Inherited,
) -> std::io::Result<String> {
    // SAFETY: the name is NUL-terminated; the answer is a fresh descriptor or -1.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd was just created and is owned here.
    let mut file = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    file.write_all(content)?;
    inherit(c, fd);
    keep.push(file.into());
    Ok(format!("/dev/fd/{fd}"))
}

/// Lets the child inherit `fd` (created close-on-exec, so concurrent spawns never get it).
fn inherit(c: &mut Command, fd: RawFd) {
    // SAFETY: only async-signal-safe calls between fork and exec: clear CLOEXEC on one fd.
    unsafe {
        c.pre_exec(move || {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags < 0 || libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Installed PostgreSQL client versions: (major, bin folder), oldest first.
pub(crate) fn pg_toolsets(dir: &std::path::Path) -> Vec<(u32, std::path::PathBuf)> {
    let mut v: Vec<(u32, std::path::PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let major = e.file_name().to_string_lossy().split('.').next()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("pg_dump").exists().then_some((major, bin))
        })
        .collect();
    v.sort();
    v
}

/// The newest toolset's library folder, for a client of a toolset older than 16. Older libpq ignores
/// `PGREQUIREAUTH` and answers a server asking for a cleartext password with the password; the same
/// tool loading libpq 18 refuses to (libpq.so.5 keeps its interface across versions, and the toolsets'
/// binaries find their libraries through RUNPATH, which `LD_LIBRARY_PATH` overrides).
fn newer_libpq(program: &std::path::Path, opts: &DumpOptions) -> Option<std::path::PathBuf> {
    let sets = pg_toolsets(opts.pg_tools_dir.as_deref()?);
    let (newest, newest_bin) = sets.last()?;
    let (major, _) = sets.iter().find(|(_, bin)| program.parent() == Some(bin.as_path()))?;
    (*major < 16 && *newest >= 16).then(|| newest_bin.with_file_name("lib"))
}

/// Runs a database client to completion with a deadline: its stdout on success, otherwise a
/// classified failure whose message is the client's own (redacted) words.
pub(crate) async fn run_client(
    mut c: Command,
    tool: &str,
    password: &str,
    opts: &DumpOptions,
) -> Result<String, DumpFailure> {
    c.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true).env("LC_ALL", "C");
    let limit = Duration::from_secs(u64::from(opts.connect_timeout_secs) + 10);
    let out = match tokio::time::timeout(limit, c.output()).await {
        Err(_) => {
            return Err(fail(ErrorClass::Timeout, format!("the server did not answer within {}s", limit.as_secs())))
        }
        Ok(Err(e)) => {
            return Err(fail(
                ErrorClass::ToolFailed,
                format!("could not run {tool}: {e}; install the database clients on the dumper-host"),
            ))
        }
        Ok(Ok(o)) => o,
    };
    if !out.status.success() {
        let err = redact(String::from_utf8_lossy(&out.stderr).trim(), password);
        return Err(fail(ErrorClass::from_tool_stderr(&err), err));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The PostgreSQL client `tool` (pg_dump, psql) for this server: next to the fixed pg_dump if one is
/// configured, else the one of the server's major version (asked with the newest psql, which also
/// fails fast on bad credentials), else PATH's. A newer tool writes SQL an older server rejects.
pub(crate) async fn pg_tool_for(spec: &DumpSpec, opts: &DumpOptions, tool: &str) -> Result<String, DumpFailure> {
    if let Some(fixed) = &opts.pg_dump {
        let sibling = std::path::Path::new(fixed).with_file_name(tool);
        return Ok(match tool {
            "pg_dump" => fixed.clone(),
            _ if sibling.exists() => sibling.to_string_lossy().into_owned(),
            _ => tool.into(),
        });
    }
    let Some(sets) = opts.pg_tools_dir.as_deref().map(pg_toolsets).filter(|s| !s.is_empty()) else {
        return Ok(tool.into());
    };
    let (newest_major, newest_bin) = sets.last().cloned().expect("not empty");
    let mut c = Command::new(newest_bin.join("psql"));
    c.args(["-X", "-A", "-t", "--no-password", "-c", "SHOW server_version_num"]);
    let keep = pg_env(&mut c, spec, opts)?;
    let out = run_client(c, "psql", &spec.password, opts).await;
    drop(keep);
    let out = out?;
    let num: u32 = out.trim().parse().unwrap_or(0);
    let major = if num >= 100_000 { num / 10_000 } else { num / 100 };
    if major > newest_major {
        let why = format!(
            "the server runs PostgreSQL {major}, newer than the newest pg_dump installed ({newest_major}); \
             update the dumper-host"
        );
        return Err(fail(ErrorClass::ToolFailed, why));
    }
    // The same major if installed; an older server gets the oldest installed (pg_dump reads back to 9.2).
    let bin = sets.iter().find(|(m, _)| *m >= major).map(|(_, b)| b.clone()).unwrap_or(newest_bin);
    Ok(bin.join(tool).to_string_lossy().into_owned())
}

fn build_command(spec: &DumpSpec, opts: &DumpOptions, pg_dump: &str) -> Result<(Command, Inherited), DumpFailure> {
    match spec.engine {
        Engine::Postgresql => {
            let mut c = Command::new(pg_dump);
            c.args(["--no-password", "--encoding=UTF8"]);
            // A custom archive uncompressed: the pipeline compresses it like SQL, on its own threads.
            match spec.format {
                DumpFormat::Plain => c.arg("--format=plain"),
                DumpFormat::Custom => c.args(["--format=custom", "--compress=0"]),
            };
            let keep = pg_env(&mut c, spec, opts)?;
            Ok((c, keep))
        }
        Engine::Mysql => {
            let (mut c, keep) = mysql_command(&opts.mysqldump, spec)?;
            c.args([
                "--single-transaction",
                "--routines",
                "--triggers",
                "--events",
                "--hex-blob",
                "--default-character-set=utf8mb4",
                "--protocol=TCP",
                // Whatever the name, it is never read as an option.
                "--",
            ])
            .arg(&spec.database);
            Ok((c, keep))
        }
    }
}

/// A MariaDB/MySQL client command whose connection settings, password and TLS included, come from an
/// option file on an inherited pipe (`--defaults-extra-file=/dev/fd/N`, which must be the first argument).
pub(crate) fn mysql_command(program: &str, conn: &DumpSpec) -> Result<(Command, Inherited), DumpFailure> {
    let mut c = Command::new(program);
    bare_env(c.as_std_mut());
    let mut keep = Vec::new();
    let mut cnf = format!(
        "[client]\nhost={}\nport={}\nuser={}\npassword={}\n",
        option_value(&conn.host),
        conn.port,
        option_value(&conn.username),
        option_value(&conn.password)
    );
    // MariaDB's client has no "require without checking": with `ssl` alone it falls back to plain text
    // when the server offers no TLS, so `require` is checked on the session (`require_tls`).
    match conn.tls.mode.effective(&conn.host) {
        TlsMode::Disable => cnf.push_str("skip-ssl\n"),
        TlsMode::Auto | TlsMode::Prefer | TlsMode::Require => cnf.push_str("ssl\nssl-verify-server-cert=0\n"),
        TlsMode::VerifyFull => {
            cnf.push_str("ssl\nssl-verify-server-cert\n");
            // `system` is libpq's word; MariaDB's client then uses OpenSSL's default CAs.
            match ca_path(&mut c, &conn.tls, &mut keep)? {
                ca if ca == "system" => {}
                ca => cnf.push_str(&format!("ssl-ca={}\n", option_value(&ca))),
            }
        }
    }
    let read_end = secret_pipe(cnf.as_bytes())
        .map_err(|e| fail(ErrorClass::ToolFailed, format!("could not prepare {program}: {e}")))?;
    let fd = read_end.as_raw_fd();
    // An option given after the file's would not be read from it, so the file comes first.
    c.arg(format!("--defaults-extra-file=/dev/fd/{fd}"));
    inherit(&mut c, fd);
    keep.push(read_end);
    Ok((c, keep))
}

/// Proof that [`require_tls`] passed, which a restore asks for: checked once, before anything else talks
/// to the server.
#[derive(Debug)]
pub struct TlsChecked(());

/// With `require`, refuses a MariaDB/MySQL server that offers no TLS (its client would fall back to plain
/// text), from the server's greeting: before any password is sent, and before any dump or restore.
pub async fn require_tls(conn: &DumpSpec, opts: &DumpOptions) -> Result<TlsChecked, DumpFailure> {
    if conn.engine != Engine::Mysql || conn.tls.mode.effective(&conn.host) != TlsMode::Require {
        return Ok(TlsChecked(()));
    }
    let limit = Duration::from_secs(u64::from(opts.connect_timeout_secs));
    let greeting = tokio::time::timeout(limit, mysql_greeting(&conn.host, conn.port)).await.map_err(|_| {
        fail(ErrorClass::Timeout, format!("{}:{} sent no greeting within {}s", conn.host, conn.port, limit.as_secs()))
    })??;
    match greeting_offers_tls(&greeting) {
        Ok(true) => Ok(TlsChecked(())),
        Ok(false) => Err(fail(
            ErrorClass::Tls,
            format!(
                "the server at {}:{} does not encrypt connections and this server's TLS mode is `require`; \
                 enable TLS on the database server, or set the mode to `prefer` if it is on a trusted network",
                conn.host, conn.port
            ),
        )),
        Err(why) => Err(fail(ErrorClass::ToolFailed, format!("{}:{}: {why}", conn.host, conn.port))),
    }
}

/// The first packet a MariaDB/MySQL server sends on a new connection (at most 1 KiB of it).
async fn mysql_greeting(host: &str, port: u16) -> Result<Vec<u8>, DumpFailure> {
    use tokio::io::AsyncReadExt as _;
    let unreachable = |e: std::io::Error| fail(ErrorClass::Unreachable, format!("can't connect to {host}:{port}: {e}"));
    let mut s = tokio::net::TcpStream::connect((host, port)).await.map_err(unreachable)?;
    let mut header = [0u8; 4];
    s.read_exact(&mut header).await.map_err(unreachable)?;
    let len = (usize::from(header[0]) | usize::from(header[1]) << 8 | usize::from(header[2]) << 16).min(1024);
    let mut payload = vec![0u8; len];
    s.read_exact(&mut payload).await.map_err(unreachable)?;
    Ok(payload)
}

/// Whether a greeting (protocol 10 handshake) has the CLIENT_SSL capability; an error packet's words
/// otherwise.
fn greeting_offers_tls(p: &[u8]) -> Result<bool, String> {
    const CLIENT_SSL: u16 = 0x0800;
    match p.first() {
        Some(0x0a) => {}
        Some(0xff) => {
            let words = String::from_utf8_lossy(p.get(3..).unwrap_or_default()).into_owned();
            return Err(format!("the server refused the connection: {words}"));
        }
        _ => return Err("this is not a MariaDB/MySQL server (unknown greeting)".into()),
    }
    let version_end = p.iter().skip(1).position(|b| *b == 0).ok_or("the server's greeting is cut short")? + 1;
    // Version, NUL, thread id (4), first auth data (8), filler (1), then the low capability bytes.
    let at = version_end + 1 + 4 + 8 + 1;
    let caps = p.get(at..at + 2).ok_or("the server's greeting is cut short")?;
    Ok(u16::from_le_bytes([caps[0], caps[1]]) & CLIENT_SSL != 0)
}

/// The dump tool, started, with its stdout to read and the tail of its stderr being kept.
struct RunningTool {
    /// The program, to find its siblings (pg_restore beside pg_dump).
    program: std::path::PathBuf,
    child: tokio::process::Child,
    stdout: tokio::process::ChildStdout,
    stderr: tokio::task::JoinHandle<String>,
}

/// Refuses a database name that is not one (a second line of defence: the API validates names where
/// they enter, but a job names its database by what is stored).
pub(crate) fn checked_name(name: &str) -> Result<(), DumpFailure> {
    dilux_domain::engine::validate_db_name(name).map_err(|e| {
        fail(ErrorClass::InvalidJob, format!("database name `{name}` is refused: it {}; rename it", e.message))
    })
}

/// The dump tool exactly as a backup starts it (program, flags, environment, inherited descriptors — keep
/// them until it is spawned); benchmarks compare backups with shell pipelines of this very command.
pub async fn tool_command(spec: &DumpSpec, opts: &DumpOptions) -> Result<(Command, Vec<OwnedFd>), DumpFailure> {
    checked_name(&spec.database)?;
    let pg_dump = match spec.engine {
        Engine::Postgresql => pg_tool_for(spec, opts, "pg_dump").await?,
        Engine::Mysql => {
            require_tls(spec, opts).await?;
            String::new()
        }
    };
    let (mut cmd, keep) = build_command(spec, opts, &pg_dump)?;
    cmd.stdin(Stdio::null()).env("LC_ALL", "C");
    Ok((cmd, keep))
}

async fn start_tool(spec: &DumpSpec, opts: &DumpOptions) -> Result<RunningTool, DumpFailure> {
    let (mut cmd, keep_fd) = tool_command(spec, opts).await?;
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|e| {
        let tool = cmd.as_std().get_program().to_string_lossy();
        let why = format!(
            "could not start `{tool}`: {e}; install it or set its path \
             (DILUX_PG_TOOLS_DIR, DILUX_PG_DUMP, DILUX_MYSQLDUMP)"
        );
        fail(ErrorClass::ToolFailed, why)
    })?;
    drop(keep_fd); // the child has its own copy now
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut stderr = child.stderr.take().expect("stderr is piped");
    // Keep the tail of stderr (bounded) for classification.
    let stderr = tokio::spawn(async move {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 8192];
        while let Ok(n) = stderr.read(&mut chunk).await {
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
            if buf.len() > 64 * 1024 {
                buf.drain(..buf.len() - 32 * 1024);
            }
        }
        String::from_utf8_lossy(&buf).into_owned()
    });
    let program = std::path::PathBuf::from(cmd.as_std().get_program());
    Ok(RunningTool { program, child, stdout, stderr })
}

impl RunningTool {
    /// Waits for the tool (killed first when reading failed) and turns a bad exit into its own words.
    async fn finish(mut self, read_failed: bool, password: &str, exit_wait: Duration) -> Result<(), DumpFailure> {
        if read_failed {
            let _ = self.child.start_kill();
        }
        // A tool that closed its output but never exits is stopped: the wait is bounded.
        let status = match tokio::time::timeout(exit_wait, self.child.wait()).await {
            Ok(s) => s.map_err(|e| fail(ErrorClass::ToolFailed, e.to_string()))?,
            Err(_) => {
                let _ = self.child.kill().await;
                let secs = exit_wait.as_secs();
                return Err(fail(
                    ErrorClass::Timeout,
                    format!("the dump tool did not exit {secs}s after its output ended"),
                ));
            }
        };
        let stderr_text = redact(self.stderr.await.unwrap_or_default().trim(), password);
        if status.success() || read_failed {
            return Ok(());
        }
        let class = ErrorClass::from_tool_stderr(&stderr_text);
        let tail: String =
            stderr_text.lines().rev().take(5).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n");
        Err(fail(class, format!("dump tool exited with {status}: {tail}")))
    }
}

fn stalled(opts: &DumpOptions) -> DumpFailure {
    let secs = opts.stall_timeout.as_secs();
    fail(ErrorClass::Timeout, format!("the dump tool produced no output for {secs}s and was stopped"))
}

/// The manifest tally on a thread of its own, off the pump's path: the pump hands it each chunk it
/// read (a bounded queue, so memory stays flat) and collects the manifest at the end.
pub(crate) struct TallyThread {
    tx: Option<tokio::sync::mpsc::Sender<Arc<Vec<u8>>>>,
    handle: std::thread::JoinHandle<Result<Manifest, String>>,
}

impl TallyThread {
    pub(crate) fn spawn(engine: Engine) -> Self {
        // A few pieces ahead: a tally thread the scheduler left waiting a moment must not stall the dump.
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Arc<Vec<u8>>>(4);
        let handle = std::thread::spawn(move || {
            let mut tally = Tally::new(engine.into());
            while let Some(chunk) = rx.blocking_recv() {
                tally.feed(&chunk);
            }
            Ok(tally.finish())
        });
        TallyThread { tx: Some(tx), handle }
    }

    /// The tally of a PostgreSQL custom archive: `pg_restore -f -` (no connection) turns it back into the
    /// SQL a plain dump holds, which is tallied as one — and which proves, while the backup is made, that
    /// pg_restore reads the archive to its end.
    fn spawn_archive(pg_restore: &std::path::Path) -> Result<Self, DumpFailure> {
        use std::io::Read as _;
        let mut c = std::process::Command::new(pg_restore);
        bare_env(&mut c);
        c.args(["--file=-"]).env("LC_ALL", "C");
        c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = c.spawn().map_err(|e| {
            fail(
                ErrorClass::ToolFailed,
                format!("could not start `{}`: {e}; install it beside pg_dump", pg_restore.display()),
            )
        })?;
        let (mut stdin, mut stdout, mut stderr) = (
            child.stdin.take().expect("piped"),
            child.stdout.take().expect("piped"),
            child.stderr.take().expect("piped"),
        );
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Arc<Vec<u8>>>(4);
        let writer = std::thread::spawn(move || {
            // A pg_restore that stopped reading has failed, and says why at the end: the dump goes on.
            let mut open = true;
            while let Some(chunk) = rx.blocking_recv() {
                open = open && stdin.write_all(&chunk).is_ok();
            }
        });
        let words = std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = (&mut stderr).take(16 * 1024).read_to_end(&mut buf);
            let _ = std::io::copy(&mut stderr, &mut std::io::sink());
            String::from_utf8_lossy(&buf).into_owned()
        });
        let handle = std::thread::spawn(move || {
            let mut tally = Tally::new(EngineType::Postgresql);
            let mut chunk = vec![0u8; 256 * 1024];
            loop {
                match stdout.read(&mut chunk) {
                    Ok(0) => break,
                    Ok(n) => tally.feed(&chunk[..n]),
                    Err(e) => return Err(format!("reading pg_restore's output failed: {e}")),
                }
            }
            let _ = writer.join();
            let status = child.wait().map_err(|e| e.to_string())?;
            let words = words.join().unwrap_or_default();
            match status.success() {
                true => Ok(tally.finish()),
                false => Err(format!("pg_restore could not read the archive back ({status}): {}", words.trim())),
            }
        });
        Ok(TallyThread { tx: Some(tx), handle })
    }

    /// A tally that counts nothing (benchmarks only).
    fn off() -> Self {
        let (tx, handle) = (None, std::thread::spawn(|| Ok(Tally::new(EngineType::Postgresql).finish())));
        TallyThread { tx, handle }
    }

    pub(crate) async fn feed(&self, data: &[u8]) {
        if self.tx.is_some() {
            self.feed_shared(Arc::new(data.to_vec())).await;
        }
    }

    /// The same bytes the compressor gets, without a copy.
    pub(crate) async fn feed_shared(&self, data: Arc<Vec<u8>>) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(data).await;
        }
    }

    pub(crate) fn finish(mut self) -> Result<Manifest, DumpFailure> {
        drop(self.tx.take());
        self.handle.join().expect("the tally thread does not panic").map_err(|m| fail(ErrorClass::ToolFailed, m))
    }
}

/// The manifest kept beside backup `name`, if it has one (backups made before manifests have none) and it is
/// the one the backup's commit recorded (`manifest_sha256` in its metadata): two attempts that overlapped can
/// leave one's manifest beside the other's blob, and a manifest of other bytes must never judge a restore.
pub(crate) async fn read_manifest(
    storage: &Storage,
    keys: &Keys,
    container: &str,
    name: &str,
    blob_metadata: &[(String, String)],
) -> Result<Option<Manifest>, DumpFailure> {
    let req = blob::get_blob(&storage.account, Utc::now(), container, &manifest_blob(name));
    let r = storage.send("get manifest", req).await.map_err(|e| fail(ErrorClass::StorageFailed, e.to_string()))?;
    if r.status == 404 {
        return Ok(None);
    }
    let r = r.check("get manifest").map_err(|e| fail(ErrorClass::StorageFailed, e.to_string()))?;
    if let Some(recorded) = metadata(blob_metadata, "manifest_sha256") {
        if sha256_hex(&r.body) != recorded {
            tracing::warn!(blob = %name, "the manifest beside this backup is not the one its commit recorded; ignored");
            return Ok(None);
        }
    }
    // An encrypted backup's manifest is encrypted with it: table names and digests say something of the data.
    let body = match dilux_domain::encryption::is_encrypted(&r.body) {
        true => {
            keys.open_small(&r.body).map_err(|m| fail(ErrorClass::Corrupt, format!("the backup's manifest: {m}")))?
        }
        false => r.body,
    };
    serde_json::from_slice(&body)
        .map(Some)
        .map_err(|e| fail(ErrorClass::Corrupt, format!("the backup's manifest is unreadable: {e}")))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

pub(crate) fn metadata<'a>(m: &'a [(String, String)], key: &str) -> Option<&'a str> {
    m.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// What a committed blob of this name says, when there is one. A redelivered job whose earlier attempt
/// committed before its worker died adopts that backup (`backup_id` in its metadata is this job's) instead
/// of dumping again into a name the commit would refuse; another backup's blob is never touched.
async fn committed(storage: &Storage, spec: &DumpSpec, keys: &Keys) -> Result<Option<DumpOutcome>, DumpFailure> {
    let storage_failed = |e: dilux_azure::AzureError| fail(ErrorClass::StorageFailed, e.to_string());
    let req = blob::get_properties(&storage.account, Utc::now(), &spec.container, &spec.blob_name);
    let r = storage.send("get blob properties", req).await.map_err(storage_failed)?;
    if r.status == 404 {
        return Ok(None);
    }
    let props = blob::parse_properties(r).map_err(storage_failed)?;
    let ours = metadata(&spec.metadata, "backup_id");
    let theirs = metadata(&props.metadata, "backup_id");
    let (Some(sha256), true) = (metadata(&props.metadata, "sha256"), ours.is_some() && ours == theirs) else {
        return Err(fail(
            ErrorClass::StorageFailed,
            format!(
                "{} already holds another backup (backup_id {}); it is left untouched",
                spec.blob_name,
                theirs.unwrap_or("unknown")
            ),
        ));
    };
    tracing::info!(blob = %spec.blob_name, "an earlier attempt committed this backup; adopting it");
    let manifest =
        read_manifest(storage, keys, &spec.container, &spec.blob_name, &props.metadata).await?.unwrap_or_else(|| {
            Manifest { format: dilux_domain::manifest::FORMAT, engine: spec.engine.into(), tables: vec![] }
        });
    Ok(Some(DumpOutcome {
        compressed_bytes: props.content_length,
        uncompressed_bytes: metadata(&props.metadata, "uncompressed_bytes").and_then(|v| v.parse().ok()).unwrap_or(0),
        sha256: sha256.to_string(),
        duration: Duration::ZERO,
        manifest,
    }))
}

/// Runs the dump described by `spec` into a new block blob, its manifest into a sidecar blob, within
/// `opts.deadline` (then it is stopped: the tool killed, nothing committed). Storage requests of the dump
/// are retried for minutes.
pub async fn run_dump(storage: &Storage, spec: &DumpSpec, opts: &DumpOptions) -> Result<DumpOutcome, DumpFailure> {
    let storage = storage.patient();
    match tokio::time::timeout(opts.deadline, dump_within(&storage, spec, opts)).await {
        Ok(outcome) => outcome,
        Err(_) => {
            let hours = opts.deadline.as_secs_f64() / 3600.0;
            Err(fail(
                ErrorClass::Timeout,
                format!(
                    "the dump ran longer than {hours:.1} h and was stopped; raise DILUX_DUMP_DEADLINE_HOURS if the \
                     database needs longer"
                ),
            ))
        }
    }
}

async fn dump_within(storage: &Storage, spec: &DumpSpec, opts: &DumpOptions) -> Result<DumpOutcome, DumpFailure> {
    let started = Instant::now();
    spec.compression.validate("compression").map_err(|e| fail(ErrorClass::InvalidJob, e.to_string()))?;
    let encrypt_to = match spec.recipients.is_empty() {
        true => None,
        false => Some(opts.keys.recipients_for(&spec.recipients).map_err(|m| fail(ErrorClass::InvalidJob, m))?),
    };
    if spec.engine == Engine::Mysql && spec.format != DumpFormat::Plain {
        return Err(fail(ErrorClass::InvalidJob, "MariaDB/MySQL dumps are plain SQL only"));
    }
    let extension =
        format!(".{}{}", spec.compression.extension(spec.format), if encrypt_to.is_some() { ".age" } else { "" });
    if !spec.blob_name.ends_with(&extension) {
        let why = format!("the blob name must say how it is stored: {} does not end with {extension}", spec.blob_name);
        return Err(fail(ErrorClass::InvalidJob, why));
    }
    if let Some(done) = committed(storage, spec, &opts.keys).await? {
        return Ok(done);
    }
    let sealer = match &encrypt_to {
        Some(to) => Some(Sealer::new(to).map_err(|e| fail(ErrorClass::InvalidJob, format!("encryption: {e}")))?),
        None => None,
    };
    let mut tool = start_tool(spec, opts).await?;
    let tally = match (opts.manifest, spec.format) {
        (false, _) => TallyThread::off(),
        (true, DumpFormat::Plain) => TallyThread::spawn(spec.engine),
        (true, DumpFormat::Custom) => match TallyThread::spawn_archive(&sibling(&tool.program, "pg_restore")) {
            Ok(t) => t,
            Err(e) => {
                let _ = tool.finish(true, &spec.password, opts.exit_wait).await;
                return Err(e);
            }
        },
    };
    // This attempt's own block ids: a second attempt at the same blob never commits this one's blocks.
    let attempt = blob::attempt_prefix();
    let pumped = pump(storage, spec, opts, &attempt, &mut tool.stdout, &tally, sealer).await;
    tool.finish(pumped.is_err(), &spec.password, opts.exit_wait).await?;
    let (ids, uncompressed, compressed, sha) = match pumped {
        Ok(p) => p,
        Err(PumpError::Stalled) => return Err(stalled(opts)),
        Err(PumpError::Storage(m)) => return Err(fail(ErrorClass::StorageFailed, m)),
        Err(PumpError::Read(m)) => return Err(fail(ErrorClass::ToolFailed, m)),
    };
    let manifest = tally.finish()?;
    // Another attempt committed meanwhile (its worker lost the lease to this one, or this one to it):
    // its sidecar describes its blob, so neither is touched.
    if let Some(done) = committed(storage, spec, &opts.keys).await? {
        return Ok(done);
    }
    // The manifest first: a committed backup always has one (a failed commit leaves a stray sidecar,
    // which the next attempt overwrites).
    let mut metadata = spec.metadata.clone();
    if opts.manifest {
        let mut body = serde_json::to_vec(&manifest).expect("manifests serialize");
        if let Some(to) = &encrypt_to {
            body = seal_small(to, &body).map_err(|e| fail(ErrorClass::InvalidJob, format!("encryption: {e}")))?;
        }
        metadata.push(("manifest_sha256".into(), sha256_hex(&body)));
        let sidecar = manifest_blob(&spec.blob_name);
        let req =
            blob::put_blob(&storage.account, Utc::now(), &spec.container, &sidecar, "application/json", &[], body);
        storage
            .send("put manifest", req)
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r.check("put manifest").map(|_| ()).map_err(|e| e.to_string()))
            .map_err(|m| fail(ErrorClass::StorageFailed, m))?;
    }

    metadata.push(("sha256".into(), sha.clone()));
    metadata.push(("compression".into(), format!("{}-{}", spec.compression.algorithm(), spec.compression.level())));
    if spec.format == DumpFormat::Custom {
        metadata.push(("dump_format".into(), "pg-custom".into()));
    }
    metadata.push(("uncompressed_bytes".into(), uncompressed.to_string()));
    let content_type = match encrypt_to {
        Some(_) => {
            metadata.push(("encryption".into(), "age-x25519".into()));
            "application/octet-stream"
        }
        None => spec.compression.content_type(),
    };
    let req = blob::put_block_list(
        &storage.account,
        Utc::now(),
        &spec.container,
        &spec.blob_name,
        &ids,
        content_type,
        &metadata,
        false,
    );
    let answer =
        storage.send("put block list", req).await.map_err(|e| fail(ErrorClass::StorageFailed, e.to_string()))?;
    if answer.status == 412 {
        // Committed by another attempt between the check above and this commit.
        return committed(storage, spec, &opts.keys)
            .await?
            .ok_or_else(|| fail(ErrorClass::StorageFailed, "the commit was refused"));
    }
    answer.check("put block list").map_err(|e| fail(ErrorClass::StorageFailed, e.to_string()))?;
    crate::test_hooks::crash_point("dump-committed");
    Ok(DumpOutcome {
        compressed_bytes: compressed,
        uncompressed_bytes: uncompressed,
        sha256: sha,
        duration: started.elapsed(),
        manifest,
    })
}

/// Dumps `spec.database` with the backup's own tool and flags, only to tally it (nothing is stored):
/// what a restore compares with the backup's manifest.
pub async fn tally_database(spec: &DumpSpec, opts: &DumpOptions) -> Result<Manifest, DumpFailure> {
    let mut tool = start_tool(spec, opts).await?;
    let tally = TallyThread::spawn(spec.engine);
    let mut chunk = vec![0u8; 256 * 1024];
    let read = loop {
        match tokio::time::timeout(opts.stall_timeout, tool.stdout.read(&mut chunk)).await {
            Err(_) => break Err(stalled(opts)),
            Ok(Err(e)) => {
                break Err(fail(ErrorClass::ToolFailed, format!("reading the dump tool's output failed: {e}")))
            }
            Ok(Ok(0)) => break Ok(()),
            Ok(Ok(n)) => tally.feed(&chunk[..n]).await,
        }
    };
    tool.finish(read.is_err(), &spec.password, opts.exit_wait).await?;
    read?;
    tally.finish()
}

/// `tool` beside `program` (which PATH finds when `program` is a bare name).
pub(crate) fn sibling(program: &std::path::Path, tool: &str) -> std::path::PathBuf {
    match program.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(dir) => dir.join(tool),
        None => tool.into(),
    }
}

enum PumpError {
    Stalled,
    Storage(String),
    Read(String),
}

/// Reads the tool's output, compresses, hashes and uploads it in blocks. Returns the block ids in
/// order, bytes read, bytes stored and the hex SHA-256 of what was stored.
///
/// Compression runs on the blocking pool, a member at a time, several at once: the tool, the
/// compressors and the uploads all progress together, and this task only moves buffers. With a
/// `sealer`, the compressed members are encrypted in order on the blocking pool too.
async fn pump(
    storage: &Storage,
    spec: &DumpSpec,
    opts: &DumpOptions,
    attempt: &str,
    stdout: &mut tokio::process::ChildStdout,
    tally: &TallyThread,
    mut sealer: Option<Sealer>,
) -> Result<(Vec<String>, u64, u64, String), PumpError> {
    let compression = spec.compression;
    let mut member = Vec::with_capacity(codec::MEMBER);
    let mut compressing: VecDeque<tokio::task::JoinHandle<std::io::Result<Vec<u8>>>> = VecDeque::new();
    let mut block: Vec<u8> = Vec::with_capacity(opts.block_size + codec::MEMBER);
    let mut hasher = Sha256::new();
    let mut ids: Vec<String> = Vec::new();
    let mut uploads: JoinSet<Result<(), String>> = JoinSet::new();
    let mut read_total = 0u64;
    let mut stored_total = crate::metrics::global().staged();

    let upload = |data: Vec<u8>, ids: &mut Vec<String>, uploads: &mut JoinSet<Result<(), String>>| {
        let id = blob::block_id(attempt, ids.len() as u32);
        ids.push(id.clone());
        let storage = storage.clone();
        let (container, name) = (spec.container.clone(), spec.blob_name.clone());
        uploads.spawn(async move {
            let req = blob::put_block(&storage.account, Utc::now(), &container, &name, &id, data);
            let r = storage.send("put block", req).await.map_err(|e| e.to_string())?;
            r.check("put block").map(|_| ()).map_err(|e| e.to_string())
        });
    };
    // Takes the oldest member once compressed; a full block goes to storage.
    macro_rules! settle_oldest {
        () => {{
            let done = compressing.pop_front().expect("a member is compressing");
            let out = done
                .await
                .map_err(|e| PumpError::Read(format!("compression stopped: {e}")))?
                .map_err(|e| PumpError::Read(format!("compression failed: {e}")))?;
            let out = match sealer.take() {
                None => out,
                Some(mut s) => {
                    let (s, sealed) = tokio::task::spawn_blocking(move || {
                        let sealed = s.push(&out);
                        (s, sealed)
                    })
                    .await
                    .map_err(|e| PumpError::Read(format!("encryption stopped: {e}")))?;
                    sealer = Some(s);
                    sealed.map_err(|e| PumpError::Read(format!("encryption failed: {e}")))?
                }
            };
            block.extend_from_slice(&out);
            if block.len() >= block_size_for(opts.block_size, ids.len()) {
                let data = std::mem::replace(&mut block, Vec::with_capacity(opts.block_size + codec::MEMBER));
                send_block(data, &mut hasher, &mut stored_total, &mut ids, &mut uploads, opts, &upload).await?;
            }
        }};
    }

    loop {
        // Straight into the member: the tool's bytes are copied nowhere else.
        let n = match tokio::time::timeout(opts.stall_timeout, stdout.read_buf(&mut member)).await {
            Err(_) => return Err(PumpError::Stalled),
            Ok(Err(e)) => return Err(PumpError::Read(format!("reading the dump tool's output failed: {e}"))),
            Ok(Ok(n)) => n,
        };
        read_total += n as u64;
        let finished = n == 0;
        // At the end, the last member (an empty one if the tool wrote nothing: still a valid file).
        if member.len() >= codec::MEMBER || (finished && (!member.is_empty() || read_total == 0)) {
            while compressing.len() >= compressors() {
                settle_oldest!();
            }
            let data = Arc::new(std::mem::replace(&mut member, Vec::with_capacity(codec::MEMBER)));
            tally.feed_shared(data.clone()).await;
            compressing.push_back(tokio::task::spawn_blocking(move || codec::compress(compression, &data)));
        }
        if finished {
            break;
        }
    }
    while !compressing.is_empty() {
        settle_oldest!();
    }
    if let Some(s) = sealer {
        block.extend(s.finish().map_err(|e| PumpError::Read(format!("encryption failed: {e}")))?);
    }
    if !block.is_empty() {
        send_block(block, &mut hasher, &mut stored_total, &mut ids, &mut uploads, opts, &upload).await?;
    }
    while let Some(r) = uploads.join_next().await {
        r.map_err(|e| PumpError::Storage(e.to_string()))?.map_err(PumpError::Storage)?;
    }
    let sha = hex(&hasher.finalize());
    Ok((ids, read_total, stored_total.total(), sha))
}

/// Members compressing at once: one per core (more only wait for a core, holding memory meanwhile), four at
/// most — that already outruns every dump tool, and a big machine's cores must not multiply the memory.
fn compressors() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get()).min(4)
}

/// Hashes `data` and queues its upload, first waiting for a slot: memory stays bounded.
async fn send_block(
    data: Vec<u8>,
    hasher: &mut Sha256,
    stored_total: &mut crate::metrics::Staged<'_>,
    ids: &mut Vec<String>,
    uploads: &mut JoinSet<Result<(), String>>,
    opts: &DumpOptions,
    upload: &impl Fn(Vec<u8>, &mut Vec<String>, &mut JoinSet<Result<(), String>>),
) -> Result<(), PumpError> {
    if ids.len() >= blob::MAX_BLOCKS {
        return Err(PumpError::Storage("the dump exceeds Azure's 50 000-block limit for one blob".into()));
    }
    hasher.update(&data);
    stored_total.add(data.len() as u64);
    while uploads.len() >= opts.blocks_in_flight {
        if let Some(r) = uploads.join_next().await {
            r.map_err(|e| PumpError::Storage(e.to_string()))?.map_err(PumpError::Storage)?;
        }
    }
    upload(data, ids, uploads);
    Ok(())
}

#[cfg(test)]
mod tests {

    #[test]
    fn the_dump_deadline_is_read_bounded() {
        let with =
            |v: &'static str| DumpOptions::from_lookup(move |n| (n == "DILUX_DUMP_DEADLINE_HOURS").then(|| v.into()));
        assert_eq!(with("2").deadline, Duration::from_secs(7200));
        assert_eq!(with("1000").deadline, Duration::from_secs(47 * 3600), "under the sweeper's 48 h");
        for ignored in ["inf", "NaN", "0", "-3", "soon"] {
            assert_eq!(with(ignored).deadline, DumpOptions::default().deadline, "{ignored}");
        }
    }

    use super::*;

    /// A target on host `h`, port 1, user `u`, into blob `b` of container `c`.
    fn spec_of(engine: Engine, database: &str, password: &str) -> DumpSpec {
        DumpSpec {
            tls: Default::default(),
            engine,
            host: "h".into(),
            port: 1,
            database: database.into(),
            username: "u".into(),
            password: password.into(),
            container: "c".into(),
            blob_name: "b".into(),
            compression: Compression::default(),
            format: DumpFormat::Plain,
            recipients: vec![],
            metadata: vec![],
        }
    }

    #[test]
    fn toolsets_are_found_by_major_version() {
        let d = std::env::temp_dir().join(format!("dilux-pgsets-{}", std::process::id()));
        for v in ["17.11.0", "14.23.0", "notaversion"] {
            std::fs::create_dir_all(d.join(v).join("bin")).unwrap();
            std::fs::write(d.join(v).join("bin/pg_dump"), "").unwrap();
        }
        let sets: Vec<u32> = pg_toolsets(&d).into_iter().map(|(m, _)| m).collect();
        assert_eq!(sets, vec![14, 17]);
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn old_toolsets_load_a_libpq_that_enforces_scram() {
        let d = std::env::temp_dir().join(format!("dilux-libpq-{}", std::process::id()));
        for v in ["14.23.0", "15.19.0", "18.6.0"] {
            std::fs::create_dir_all(d.join(v).join("bin")).unwrap();
            std::fs::write(d.join(v).join("bin/pg_dump"), "").unwrap();
        }
        let opts = DumpOptions { pg_tools_dir: Some(d.clone()), ..Default::default() };
        let spec = spec_of(Engine::Postgresql, "d", "p");
        let library = |version: &str| {
            let tool = d.join(version).join("bin/pg_dump");
            let (c, _keep) = build_command(&spec, &opts, tool.to_str().unwrap()).unwrap();
            let env = c.as_std().get_envs().find(|(k, _)| *k == "LD_LIBRARY_PATH").and_then(|(_, v)| v);
            env.map(std::path::PathBuf::from)
        };
        assert_eq!(library("14.23.0"), Some(d.join("18.6.0/lib")));
        assert_eq!(library("15.19.0"), Some(d.join("18.6.0/lib")));
        assert_eq!(library("18.6.0"), None, "its own libpq enforces it");
        let (c, _keep) = build_command(&spec, &opts, "pg_dump").unwrap();
        assert!(c.as_std().get_envs().all(|(k, _)| k != "LD_LIBRARY_PATH"), "a tool from PATH is left alone");
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn block_size_grows_to_fit_large_dumps() {
        assert_eq!(block_size_for(8 << 20, 0), 8 << 20);
        assert_eq!(block_size_for(8 << 20, 10_000), 16 << 20);
        assert_eq!(block_size_for(8 << 20, 49_999), 128 << 20);
        let capacity: u64 = (0..50_000).map(|i| block_size_for(8 << 20, i) as u64).sum();
        assert!(capacity > 2 << 40, "capacity {capacity}");
    }

    #[test]
    fn redaction_and_debug_hide_the_password() {
        assert_eq!(redact("Access denied for 's3cr3t'", "s3cr3t"), "Access denied for '********'");
        assert_eq!(redact("pg_dump: port 1 failed", "p"), "pg_dump: port 1 failed");
        let spec = spec_of(Engine::Mysql, "d", "s3cr3t");
        assert!(!format!("{spec:?}").contains("s3cr3t"));
    }

    #[test]
    fn options_come_from_the_environment_only_when_asked() {
        let d = DumpOptions::default();
        assert_eq!((d.pg_dump, d.pg_tools_dir, d.mysqldump.as_str()), (None, None, "mariadb-dump"));
        let vars = [("DILUX_PG_DUMP", "/opt/pg/pg_dump"), ("DILUX_PG_TOOLS_DIR", "/opt/pgs")];
        let o = DumpOptions::from_lookup(|k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string()));
        assert_eq!(o.pg_dump.as_deref(), Some("/opt/pg/pg_dump"));
        assert_eq!(o.pg_tools_dir, Some("/opt/pgs".into()));
        assert_eq!(o.mysqldump, "mariadb-dump");
        assert_eq!(o.block_size, 8 << 20);
        let o = DumpOptions::from_lookup(|k| (k == "DILUX_MYSQLDUMP").then(|| "mysqldump".to_string()));
        assert_eq!(o.mysqldump, "mysqldump");
    }

    #[test]
    fn a_database_name_is_never_an_option() {
        let spec = spec_of(Engine::Mysql, "--all-databases", "p");
        let (cmd, _fd) = build_command(&spec, &DumpOptions::default(), "pg_dump").unwrap();
        let argv: Vec<String> = cmd.as_std().get_args().map(|a| a.to_string_lossy().into_owned()).collect();
        assert_eq!(argv[argv.len() - 2..], ["--", "--all-databases"], "{argv:?}");
        let refused = checked_name(&spec.database).unwrap_err();
        assert_eq!(refused.class, ErrorClass::InvalidJob);
        assert!(refused.message.contains("must not start with '-'"), "{}", refused.message);
        assert!(checked_name("shop_2026").is_ok());
    }

    #[test]
    fn option_file_values_are_quoted() {
        assert_eq!(option_value("a\"b\\c\nd"), "\"a\\\"b\\\\c\\nd\"");
    }

    #[test]
    fn password_is_never_on_the_command_line() {
        for engine in [Engine::Postgresql, Engine::Mysql] {
            let spec = spec_of(engine, "d", "pw-on-argv?");
            let (cmd, _fd) = build_command(&spec, &DumpOptions::default(), "pg_dump").unwrap();
            let argv: Vec<String> = cmd.as_std().get_args().map(|a| a.to_string_lossy().into_owned()).collect();
            assert!(argv.iter().all(|a| !a.contains("pw-on-argv")), "{argv:?}");
        }
    }

    #[test]
    fn each_client_gets_the_servers_tls() {
        use std::io::Read as _;
        let ca = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        let spec = |engine, mode, host: &str| DumpSpec {
            host: host.into(),
            tls: Tls::for_host(mode, Some(ca), host),
            ..spec_of(engine, "d", "p")
        };
        let env = |c: &Command, k: &str| {
            c.as_std().get_envs().find(|(n, _)| *n == k).and_then(|(_, v)| v).map(|v| v.to_string_lossy().into_owned())
        };
        let opts = DumpOptions::default();
        let (c, _keep) =
            build_command(&spec(Engine::Postgresql, TlsMode::Auto, "db.example.com"), &opts, "pg_dump").unwrap();
        assert_eq!(env(&c, "PGSSLMODE").as_deref(), Some("require"), "auto off this machine");
        assert_eq!(env(&c, "PGSSLROOTCERT"), None, "require checks no certificate");
        let (c, _keep) =
            build_command(&spec(Engine::Postgresql, TlsMode::Auto, "127.0.0.1"), &opts, "pg_dump").unwrap();
        assert_eq!(env(&c, "PGSSLMODE").as_deref(), Some("prefer"));
        let (c, keep) =
            build_command(&spec(Engine::Postgresql, TlsMode::VerifyFull, "db.example.com"), &opts, "pg_dump").unwrap();
        assert_eq!(env(&c, "PGSSLMODE").as_deref(), Some("verify-full"));
        let path = env(&c, "PGSSLROOTCERT").unwrap();
        assert_eq!(path, format!("/dev/fd/{}", keep[0].as_raw_fd()));
        // Readable as a file, more than once (libpq may open it per connection attempt).
        for _ in 0..2 {
            let proc_path = format!("/proc/self/fd/{}", keep[0].as_raw_fd());
            assert_eq!(std::fs::read_to_string(proc_path).unwrap(), ca);
        }

        let option_file = |mode| {
            let (_, keep) = build_command(&spec(Engine::Mysql, mode, "db.example.com"), &opts, "").unwrap();
            let mut text = String::new();
            std::fs::File::from(keep.into_iter().last().unwrap()).read_to_string(&mut text).unwrap();
            text
        };
        assert!(option_file(TlsMode::Disable).ends_with("skip-ssl\n"));
        assert!(option_file(TlsMode::Require).ends_with("ssl\nssl-verify-server-cert=0\n"));
        let verify = option_file(TlsMode::VerifyFull);
        assert!(verify.contains("ssl\nssl-verify-server-cert\nssl-ca=\"/dev/fd/"), "{verify}");
    }

    #[test]
    fn a_greeting_says_whether_the_server_offers_tls() {
        let greeting = |caps: u16| {
            let mut p = vec![0x0a];
            p.extend_from_slice(b"10.11.19-MariaDB\0");
            p.extend_from_slice(&[1, 0, 0, 0]);
            p.extend_from_slice(b"12345678\0");
            p.extend_from_slice(&caps.to_le_bytes());
            p
        };
        assert_eq!(greeting_offers_tls(&greeting(0xf7fe)), Ok(false));
        assert_eq!(greeting_offers_tls(&greeting(0xfffe)), Ok(true));
        assert!(greeting_offers_tls(&greeting(0xfffe)[..20]).is_err(), "cut short");
        let refused = [&[0xff, 0x6a, 0x04][..], b"Host '10.0.0.9' is blocked"].concat();
        assert!(greeting_offers_tls(&refused).unwrap_err().contains("is blocked"));
        assert!(greeting_offers_tls(b"SSH-2.0-OpenSSH").is_err());
    }
}
