//! Test harness: throwaway servers on loopback, each stopped when dropped. Everything real: Azurite
//! from npm, Debian's PostgreSQL and MariaDB, the release dumper-host serving the built components.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// The checkout under test: `DILUX_ROOT`, else the nearest ancestor of the working directory holding
/// spin.toml. Never a compile-time path: with a shared CARGO_TARGET_DIR, cargo may reuse this crate
/// as built from another checkout, and its baked-in paths would test that checkout instead.
pub fn root() -> PathBuf {
    if let Ok(r) = std::env::var("DILUX_ROOT") {
        return PathBuf::from(r);
    }
    let cwd = std::env::current_dir().expect("a working directory");
    cwd.ancestors().find(|d| d.join("spin.toml").is_file()).map(Path::to_path_buf).unwrap_or(cwd)
}

/// The dumper-host binary `scripts/build.sh` made.
pub fn host_bin() -> PathBuf {
    std::env::var("DILUX_HOST_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|_| target_dir().join("release/dilux-dumper-host"))
}

pub fn target_dir() -> PathBuf {
    std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/dilux/target"))
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub fn tempdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("dilux-e2e-{name}-{}-{}", std::process::id(), free_port()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A `notifiers.toml` with the example Discord plug-in and the tests' misbehaving one, both allowed to
/// reach `http://127.0.0.1:{port}` for these `ports` only.
pub fn notifiers_file(ports: &[u16]) -> Result<PathBuf> {
    let wasm = root().join("target/wasm");
    let allowed: Vec<String> = ports.iter().map(|p| format!("\"http://127.0.0.1:{p}\"")).collect();
    let allowed = allowed.join(", ");
    let text = format!(
        "[[notifier]]\nname = \"discord\"\nsource = \"{}\"\nallowed_outbound_hosts = [{allowed}]\n\n\
         [[notifier]]\nname = \"misbehaving\"\nsource = \"{}\"\nallowed_outbound_hosts = [{allowed}]\n",
        wasm.join("dilux_notify_discord.wasm").display(),
        wasm.join("dilux_test_notifier.wasm").display(),
    );
    let path = tempdir("notifiers").join("notifiers.toml");
    std::fs::write(&path, text)?;
    Ok(path)
}

fn wait_port(port: u16, within: Duration) -> Result<()> {
    let t = Instant::now();
    while t.elapsed() < within {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("nothing listens on port {port} after {within:?}")
}

/// A child process stopped with SIGTERM (then SIGKILL) on drop.
pub struct Proc {
    pub child: Child,
    name: String,
}

impl Drop for Proc {
    fn drop(&mut self) {
        // SAFETY: sending a signal to our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("{} did not stop on SIGTERM; killing it", self.name);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The child's stdout, line by line, on a channel (so a reader can wait with a timeout).
fn stdout_lines(child: &mut Child) -> std::sync::mpsc::Receiver<String> {
    stdout_lines_kept(child, None)
}

/// [`stdout_lines`], each line also appended to `keep`.
fn stdout_lines_kept(child: &mut Child, keep: Option<Captured>) -> std::sync::mpsc::Receiver<String> {
    let stdout = child.stdout.take().expect("stdout is piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(k) = &keep {
                k.push(&line);
            }
            let _ = tx.send(line);
        }
    });
    rx
}

/// Everything a process wrote to stdout and stderr, as it writes it.
#[derive(Clone, Default)]
pub struct Captured(std::sync::Arc<std::sync::Mutex<String>>);

impl Captured {
    fn push(&self, line: &str) {
        let mut text = self.0.lock().unwrap();
        text.push_str(line);
        text.push('\n');
    }

    pub fn text(&self) -> String {
        self.0.lock().unwrap().clone()
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Runs `cmd` as `user` when we are root (servers refuse to run as root), else as ourselves.
fn as_user(user: &str, program: &str) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", user, "--", program]);
        c
    } else {
        Command::new(program)
    }
}

fn chown(path: &Path, user: &str) -> Result<()> {
    if is_root() {
        let ok = Command::new("chown").args(["-R", user]).arg(path).status()?.success();
        if !ok {
            bail!("chown {user} {} failed", path.display());
        }
    }
    Ok(())
}

fn run(cmd: &mut Command, what: &str) -> Result<String> {
    let out = cmd.stdin(Stdio::null()).output().with_context(|| format!("cannot run {what}"))?;
    if !out.status.success() {
        bail!("{what} failed: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn run_with_input(cmd: &mut Command, input: &[u8], what: &str) -> Result<String> {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {what}"))?;
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output()?;
    writer.join().unwrap().with_context(|| format!("writing to {what}"))?;
    if !out.status.success() {
        bail!("{what} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

// ---------------------------------------------------------------- Azurite

pub struct Azurite {
    _proc: Proc,
    pub connection_string: String,
    dir: PathBuf,
    ports: [u16; 3],
}

impl Drop for Azurite {
    fn drop(&mut self) {
        let _ = self._proc.child.kill();
        let _ = self._proc.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Azurite {
    pub fn start() -> Result<Self> {
        let dir = tempdir("azurite");
        let (proc, ports) = Self::spawn(&dir, [0; 3])?;
        Ok(Azurite {
            _proc: proc,
            connection_string: dilux_azure::Account::azurite_connection_string(ports[0], ports[1], ports[2]),
            dir,
            ports,
        })
    }

    /// Stops Azurite (SIGTERM: it saves its data): a storage outage as clients see it (connections refused)
    /// until [`Azurite::restart`].
    pub fn stop(&mut self) -> Result<()> {
        let stand_in = Proc { child: Command::new("true").spawn()?, name: "nothing".into() };
        drop(std::mem::replace(&mut self._proc, stand_in)); // SIGTERM, waited for
        Ok(())
    }

    /// The blob, queue and table ports.
    pub fn ports(&self) -> [u16; 3] {
        self.ports
    }

    /// Starts Azurite again on the same ports and data.
    pub fn restart(&mut self) -> Result<()> {
        self._proc = Self::spawn(&self.dir, self.ports)?.0;
        Ok(())
    }

    fn spawn(dir: &Path, ports: [u16; 3]) -> Result<(Proc, [u16; 3])> {
        let bin = std::env::var("AZURITE_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|_| root().join("scripts/node_modules/.bin/azurite"));
        let [blob, queue, table] = ports.map(|p| p.to_string());
        let mut child = Command::new(&bin)
            .args(["--silent", "--disableTelemetry", "--skipApiVersionCheck"])
            .args(["--blobPort", &blob, "--queuePort", &queue, "--tablePort", &table, "--location"])
            .arg(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| {
                format!("cannot start Azurite at {} (run scripts/test.sh, which installs it)", bin.display())
            })?;
        let rx = stdout_lines(&mut child);
        let proc = Proc { child, name: "azurite".into() };
        let mut ports = [0u16; 3];
        let deadline = Instant::now() + Duration::from_secs(60);
        while ports.contains(&0) {
            let line = rx
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .context("Azurite did not report its ports")?;
            for (i, svc) in ["Blob", "Queue", "Table"].iter().enumerate() {
                if line.contains(&format!("{svc} service is successfully listening at")) {
                    ports[i] =
                        line.rsplit(':').next().and_then(|p| p.trim().trim_end_matches('/').parse().ok()).unwrap_or(0);
                }
            }
        }
        Ok((proc, ports))
    }
}

// ---------------------------------------------------------------- PostgreSQL

pub struct Postgres {
    pub port: u16,
    pub superuser_password: String,
    bindir: PathBuf,
    data: PathBuf,
    /// The server's options, to start it again the same way.
    options: String,
}

impl Postgres {
    /// A server from Debian's PostgreSQL (the newest installed).
    pub fn start(superuser_password: &str) -> Result<Self> {
        Self::start_in(superuser_password, Self::debian_bindir(), None)
    }

    fn debian_bindir() -> PathBuf {
        std::env::var("DILUX_PG_BINDIR").map(PathBuf::from).unwrap_or_else(|_| {
            let mut v: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path().join("bin"))
                .collect();
            v.sort();
            v.pop().unwrap_or_default()
        })
    }

    /// Like [`Postgres::start`], serving TLS with `certs` and refusing any connection without it
    /// (`hostssl` only, as Azure Database for PostgreSQL does by default).
    pub fn start_tls(superuser_password: &str, certs: &TestCerts) -> Result<Self> {
        Self::start_in(superuser_password, Self::debian_bindir(), Some(certs))
    }

    /// A server of major version `major` from the pinned PyPI toolsets (DILUX_PG_TOOLS_DIR), copied
    /// where the `postgres` user can run it.
    pub fn start_version(superuser_password: &str, major: u32) -> Result<Self> {
        let tools = std::env::var("DILUX_PG_TOOLS_DIR")
            .context("DILUX_PG_TOOLS_DIR is not set: run the tests with scripts/test.sh")?;
        let src = std::fs::read_dir(&tools)?
            .flatten()
            .map(|e| e.path())
            .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with(&format!("{major}."))))
            .with_context(|| format!("no PostgreSQL {major} toolset in {tools}"))?;
        let dst = std::env::temp_dir().join(format!("dilux-e2e-pg{major}-{}", std::process::id()));
        if !dst.exists() {
            run(Command::new("cp").arg("-r").arg(&src).arg(&dst), "copy PostgreSQL binaries")?;
            run(Command::new("chmod").args(["-R", "a+rX"]).arg(&dst), "chmod PostgreSQL binaries")?;
        }
        Self::start_in(superuser_password, dst.join("bin"), None)
    }

    fn start_in(superuser_password: &str, bindir: PathBuf, tls: Option<&TestCerts>) -> Result<Self> {
        let dir = tempdir("pg");
        let data = dir.join("data");
        let pwfile = dir.join("pw");
        std::fs::write(&pwfile, superuser_password)?;
        chown(&dir, "postgres")?;
        let port = free_port();
        run(
            as_user("postgres", bindir.join("initdb").to_str().unwrap())
                .arg("-D")
                .arg(&data)
                .args(["-N", "-U", "postgres", "--auth=scram-sha-256", "--encoding=UTF8", "--locale=C"])
                .arg(format!("--pwfile={}", pwfile.display())),
            "initdb",
        )?;
        let mut options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off",
            dir.display()
        );
        if let Some(certs) = tls {
            let (cert, key) = certs.copy_to(&dir, "postgres")?;
            let hba = "local all all scram-sha-256\nhostssl all all 127.0.0.1/32 scram-sha-256\n\
                       hostnossl all all 127.0.0.1/32 reject\n";
            std::fs::write(data.join("pg_hba.conf"), hba)?;
            options += &format!(" -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}", cert.display(), key.display());
        }
        let pg = Postgres { port, superuser_password: superuser_password.into(), bindir, data, options };
        pg.start_again()?;
        Ok(pg)
    }

    /// Starts the server (again, after [`Postgres::kill`]) with its data and options.
    pub fn start_again(&self) -> Result<()> {
        let dir = self.data.parent().expect("the data directory has a parent");
        run(
            as_user("postgres", self.bindir.join("pg_ctl").to_str().unwrap())
                .arg("-D")
                .arg(&self.data)
                .arg("-l")
                .arg(dir.join("log"))
                .arg("-o")
                .arg(&self.options)
                .args(["-w", "start"]),
            "pg_ctl start",
        )?;
        wait_port(self.port, Duration::from_secs(30))
    }

    /// Stops the server at once, as a crash would (`immediate`: every session is cut).
    pub fn kill(&self) -> Result<()> {
        run(
            as_user("postgres", self.bindir.join("pg_ctl").to_str().unwrap()).arg("-D").arg(&self.data).args([
                "-m",
                "immediate",
                "-w",
                "stop",
            ]),
            "pg_ctl stop",
        )
        .map(|_| ())
    }

    fn client(&self, tool: &str, db: &str) -> Command {
        let mut c = Command::new(self.bindir.join(tool));
        c.args([
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-At",
            "-h",
            "127.0.0.1",
            "-p",
            &self.port.to_string(),
            "-U",
            "postgres",
            "-d",
            db,
        ])
        .env("PGPASSWORD", &self.superuser_password);
        c
    }

    /// Runs SQL (from stdin, so scripts of any size work) and returns its unaligned output.
    pub fn sql(&self, db: &str, sql: &str) -> Result<String> {
        run_with_input(&mut self.client("psql", db), sql.as_bytes(), "psql")
    }

    /// Holds an exclusive lock on `table` for `secs` seconds from a session of its own: a dump started
    /// meanwhile waits for it (how fault tests make a dump outlast a lease). Kill the child to let go early.
    pub fn hold_lock(&self, db: &str, table: &str, secs: u32) -> Result<std::process::Child> {
        let sql = format!("BEGIN; LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep({secs}); COMMIT;");
        let child = self.client("psql", db).args(["-c", &sql]).stdout(Stdio::null()).stderr(Stdio::null()).spawn()?;
        Ok(child)
    }

    /// Restores a plain-format dump into `db` the way an operator would: psql, stop at the first error.
    pub fn restore(&self, db: &str, dump: &[u8]) -> Result<()> {
        run_with_input(&mut self.client("psql", db), dump, "psql restore").map(|_| ())
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = as_user("postgres", self.bindir.join("pg_ctl").to_str().unwrap())
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        // Its data directory (hundreds of MB) goes with it: runs must not fill the disk.
        if let Some(dir) = self.data.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

// ---------------------------------------------------------------- MariaDB

pub struct Mariadb {
    _proc: Proc,
    pub port: u16,
    socket: PathBuf,
    dir: PathBuf,
}

impl Drop for Mariadb {
    fn drop(&mut self) {
        // The server first (its own drop then finds it gone), then its data directory.
        let _ = self._proc.child.kill();
        let _ = self._proc.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Mariadb {
    pub fn start() -> Result<Self> {
        Self::start_with(None)
    }

    /// Serving TLS with `certs` and refusing unencrypted connections (`require_secure_transport`, as
    /// Azure Database for MySQL does by default).
    pub fn start_tls(certs: &TestCerts) -> Result<Self> {
        Self::start_with(Some(certs))
    }

    fn start_with(tls: Option<&TestCerts>) -> Result<Self> {
        let dir = tempdir("mariadb");
        let data = dir.join("data");
        std::fs::create_dir_all(&data)?;
        chown(&dir, "mysql")?;
        run(
            Command::new("mariadb-install-db")
                .arg("--no-defaults")
                .arg(format!("--datadir={}", data.display()))
                .args(["--user=mysql", "--auth-root-authentication-method=socket", "--skip-test-db"]),
            "mariadb-install-db",
        )?;
        let port = free_port();
        let socket = dir.join("mysqld.sock");
        let mut tls_args = Vec::new();
        if let Some(certs) = tls {
            let (cert, key) = certs.copy_to(&dir, "mysql")?;
            tls_args = vec![
                format!("--ssl-cert={}", cert.display()),
                format!("--ssl-key={}", key.display()),
                "--require-secure-transport=ON".to_string(),
            ];
        }
        let child = Command::new("mariadbd")
            .arg("--no-defaults")
            .args(tls_args)
            .arg(format!("--datadir={}", data.display()))
            .args([
                "--user=mysql",
                "--bind-address=127.0.0.1",
                "--skip-name-resolve",
                "--innodb-flush-log-at-trx-commit=0",
            ])
            .arg(format!("--port={port}"))
            .arg(format!("--socket={}", socket.display()))
            .arg(format!("--pid-file={}", dir.join("pid").display()))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("log"))?)
            .spawn()
            .context("cannot start mariadbd")?;
        let proc = Proc { child, name: "mariadbd".into() };
        wait_port(port, Duration::from_secs(60))?;
        Ok(Mariadb { _proc: proc, port, socket, dir })
    }

    fn client(&self, db: &str) -> Command {
        let mut c = Command::new("mariadb");
        c.arg("--no-defaults").arg(format!("--socket={}", self.socket.display())).args([
            "-u",
            "root",
            "-N",
            "-B",
            "--default-character-set=utf8mb4",
        ]);
        if !db.is_empty() {
            c.arg(db);
        }
        c
    }

    pub fn sql(&self, db: &str, sql: &str) -> Result<String> {
        run_with_input(&mut self.client(db), sql.as_bytes(), "mariadb")
    }

    pub fn restore(&self, db: &str, dump: &[u8]) -> Result<()> {
        run_with_input(&mut self.client(db), dump, "mariadb restore").map(|_| ())
    }

    /// Creates `db` (utf8mb4) and the user `dilux`@`127.0.0.1` with every privilege, as an app's
    /// restoring account would have.
    pub fn database_and_admin(&self, db: &str, password: &str) -> Result<()> {
        let q = password.replace('\\', "\\\\").replace('\'', "''");
        let sql = format!(
            "CREATE DATABASE {db} CHARACTER SET utf8mb4; CREATE USER 'dilux'@'127.0.0.1' IDENTIFIED BY '{q}'; \
             GRANT ALL PRIVILEGES ON *.* TO 'dilux'@'127.0.0.1';"
        );
        self.sql("", &sql).map(|_| ())
    }
}

// ---------------------------------------------------------------- TLS

/// A throwaway CA with a server certificate it signed for `localhost` and `127.0.0.1`, and a second CA
/// that signed nothing (what a wrong bundle looks like). Made with the openssl CLI.
pub struct TestCerts {
    dir: PathBuf,
    pub ca_pem: String,
    pub other_ca_pem: String,
}

impl TestCerts {
    pub fn new() -> Result<Self> {
        let dir = tempdir("certs");
        let ssl = |args: &[&str], what: &str| run(Command::new("openssl").current_dir(&dir).args(args), what);
        let ca = |name: &str, cn: &str| {
            let subj = format!("/CN={cn}");
            let (key, pem) = (format!("{name}.key"), format!("{name}.pem"));
            ssl(
                &[
                    "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", &key, "-out", &pem, "-days", "30",
                    "-subj", &subj,
                ],
                "openssl CA",
            )
        };
        ca("ca", "Dilux Test CA")?;
        ca("other", "Someone Else's CA")?;
        let csr = ["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr"];
        ssl(&[&csr[..], &["-subj", "/CN=localhost"]].concat(), "openssl server key")?;
        std::fs::write(dir.join("ext.cnf"), "subjectAltName=DNS:localhost,IP:127.0.0.1\n")?;
        ssl(
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "server.pem",
                "-days",
                "30",
                "-extfile",
                "ext.cnf",
            ],
            "openssl sign",
        )?;
        let read = |n: &str| std::fs::read_to_string(dir.join(n));
        Ok(TestCerts { ca_pem: read("ca.pem")?, other_ca_pem: read("other.pem")?, dir })
    }

    /// The server's certificate and key, copied into `dir` for `user` (servers refuse a key others read).
    fn copy_to(&self, dir: &Path, user: &str) -> Result<(PathBuf, PathBuf)> {
        let (cert, key) = (dir.join("server.pem"), dir.join("server.key"));
        std::fs::copy(self.dir.join("server.pem"), &cert)?;
        std::fs::copy(self.dir.join("server.key"), &key)?;
        std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
        chown(dir, user)?;
        Ok((cert, key))
    }
}

impl Drop for TestCerts {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

// ---------------------------------------------------------------- The app

pub const SEAL_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
/// The shared tokens of the app under test (at least 32 characters, as the app requires).
pub const TICK_TOKEN: &str = "test-tick-token-0123456789abcdefghij";
pub const DUMPER_TOKEN: &str = "test-dumper-token-0123456789abcdefghij";

pub struct App {
    _proc: Proc,
    pub url: String,
}

impl App {
    /// Starts the dumper-host serving `spin.toml` and running the worker against `storage`.
    pub fn start(connection_string: &str) -> Result<Self> {
        Self::start_with(connection_string, &root().join("spin.toml"), &[])
    }

    /// Same, with another manifest and extra environment.
    pub fn start_with(connection_string: &str, manifest: &Path, env: &[(&str, &str)]) -> Result<Self> {
        Self::spawn(connection_string, manifest, env, true)
    }

    /// Waits for the app to die by itself (a crash it was told to have); `false` if it still runs.
    pub fn exited_within(&mut self, within: Duration) -> bool {
        let t = Instant::now();
        while t.elapsed() < within {
            if let Ok(Some(_)) = self._proc.child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// One series of its `/metrics` (0 before it first appears), e.g. `dilux_dumps_running`.
    pub async fn metric(&self, series: &str) -> Result<u64> {
        let text = reqwest::Client::new()
            .get(format!("{}/metrics", self.url))
            .bearer_auth(DUMPER_TOKEN)
            .send()
            .await?
            .error_for_status()?
            .text()
            .await?;
        let prefix = format!("{series} ");
        Ok(text.lines().find_map(|l| l.strip_prefix(&prefix)).map_or(Ok(0), str::parse)?)
    }

    /// Runs tick `route` (scheduler, retention, drills, notify) now, or at `now` when the app lets the clock
    /// be overridden (`SPIN_VARIABLE_ALLOW_CLOCK_OVERRIDE`); answers its report.
    pub async fn tick(&self, route: &str, now: Option<chrono::DateTime<chrono::Utc>>) -> Result<serde_json::Value> {
        let at = now.map(|t| format!("?now={}", t.to_rfc3339().replace('+', "%2B"))).unwrap_or_default();
        let r = reqwest::Client::new().post(format!("{}/internal/ticks/{route}{at}", self.url)).bearer_auth(TICK_TOKEN);
        let r = r.send().await?;
        let s = r.status().as_u16();
        let v: serde_json::Value = r.json().await?;
        if s != 200 {
            bail!("{route} tick at {now:?} answered {s}: {v}");
        }
        Ok(v)
    }

    /// Kills the app as a crash would (SIGKILL: no cleanup of any kind).
    pub fn crash(mut self) {
        let _ = self._proc.child.kill();
        let _ = self._proc.child.wait();
    }

    /// The app without the backup worker (jobs stay queued): for measuring the components alone.
    pub fn start_without_worker(connection_string: &str, env: &[(&str, &str)]) -> Result<Self> {
        Self::spawn(connection_string, &root().join("spin.toml"), env, false)
    }

    /// The app with its worker, and everything it and its guests write (their logs).
    pub fn start_captured(connection_string: &str, env: &[(&str, &str)]) -> Result<(Self, Captured)> {
        let out = Captured::default();
        let app = Self::spawn_kept(connection_string, &root().join("spin.toml"), env, true, Some(out.clone()))?;
        Ok((app, out))
    }

    fn spawn(connection_string: &str, manifest: &Path, env: &[(&str, &str)], worker: bool) -> Result<Self> {
        Self::spawn_kept(connection_string, manifest, env, worker, None)
    }

    fn spawn_kept(
        connection_string: &str,
        manifest: &Path,
        env: &[(&str, &str)],
        worker: bool,
        keep: Option<Captured>,
    ) -> Result<Self> {
        let bin = host_bin();
        let root = root();
        let mut child = Command::new(&bin)
            .current_dir(&root)
            .arg("--manifest")
            .arg(manifest)
            .args(["--listen", "127.0.0.1:0"])
            .args(if worker { &["--job-runner", "target/wasm/dilux_job_runner.wasm"][..] } else { &[][..] })
            .env("SPIN_VARIABLE_STORAGE_CONNECTION_STRING", connection_string)
            .env("SPIN_VARIABLE_SEAL_KEY", SEAL_KEY)
            .env("SPIN_VARIABLE_TICK_TOKEN", TICK_TOKEN)
            .env("SPIN_VARIABLE_DUMPER_TOKEN", DUMPER_TOKEN)
            .env("SPIN_VARIABLE_AUTH_MODE", "dev")
            .env("SPIN_VARIABLE_AUTH_DEV_SECRET", "test-dev-secret-0123456789abcdef0123456789")
            .env("DILUX_WORKER_CONCURRENCY", "2")
            .envs(env.iter().copied()) // the caller's settings win
            .stdout(Stdio::piped())
            .stderr(if keep.is_some() { Stdio::piped() } else { Stdio::inherit() })
            .spawn()
            .with_context(|| format!("cannot start {} (run scripts/build.sh first)", bin.display()))?;
        if let (Some(k), Some(stderr)) = (keep.clone(), child.stderr.take()) {
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    k.push(&line);
                }
            });
        }
        let rx = stdout_lines_kept(&mut child, keep);
        let proc = Proc { child, name: "dumper-host".into() };
        loop {
            let line = rx.recv_timeout(Duration::from_secs(120)).context("the app did not start listening")?;
            if let Some(url) = line.strip_prefix("DILUX_LISTENING ") {
                return Ok(App { _proc: proc, url: url.trim_end_matches('/').to_string() });
            }
        }
    }
}

// ---------------------------------------------------------------- lost answers

/// A TCP proxy in front of one storage port that loses answers: the first `lose` connections whose
/// request starts with `prefix` (e.g. `POST /devstoreaccount1/jobs/messages`) reach the service, which
/// applies them, and the connection is then closed without its answer, as a network failure after the
/// request would. Everything else passes both ways unchanged. Stops when dropped.
pub struct LosingProxy {
    pub port: u16,
    lost: std::sync::Arc<std::sync::atomic::AtomicU32>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl LosingProxy {
    pub fn start(upstream: u16, prefix: &str, lose: u32) -> Result<Self> {
        use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
        use std::sync::Arc;
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        listener.set_nonblocking(true)?;
        let (lost, stop) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicBool::new(false)));
        let (counted, stopping, prefix) = (lost.clone(), stop.clone(), prefix.as_bytes().to_vec());
        std::thread::spawn(move || {
            while !stopping.load(Ordering::Relaxed) {
                let Ok((client, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                let (counted, prefix) = (counted.clone(), prefix.clone());
                std::thread::spawn(move || {
                    let _ = Self::serve(client, upstream, &prefix, &counted, lose);
                });
            }
        });
        Ok(LosingProxy { port, lost, stop })
    }

    fn serve(
        mut client: std::net::TcpStream,
        upstream: u16,
        prefix: &[u8],
        counted: &std::sync::atomic::AtomicU32,
        lose: u32,
    ) -> std::io::Result<()> {
        use std::io::Read;
        use std::sync::atomic::Ordering;
        client.set_nonblocking(false)?;
        let mut service = std::net::TcpStream::connect(("127.0.0.1", upstream))?;
        let mut first = vec![0u8; 64 * 1024];
        let n = client.read(&mut first)?;
        service.write_all(&first[..n])?;
        let (mut to_service, mut from_service) = (service.try_clone()?, service.try_clone()?);
        let mut from_client = client.try_clone()?;
        std::thread::spawn(move || std::io::copy(&mut from_client, &mut to_service));
        let losing = first[..n].starts_with(prefix)
            && counted.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |c| (c < lose).then_some(c + 1)).is_ok();
        if losing {
            // The service's answer is read (so the request was applied) and thrown away.
            let mut answer = [0u8; 1];
            from_service.read_exact(&mut answer)?;
            let _ = client.shutdown(std::net::Shutdown::Both);
            return service.shutdown(std::net::Shutdown::Both);
        }
        std::io::copy(&mut from_service, &mut client)?;
        client.shutdown(std::net::Shutdown::Write)
    }

    /// Answers lost so far.
    pub fn lost(&self) -> u32 {
        self.lost.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for LosingProxy {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

// ---------------------------------------------------------------- notification receivers

/// One request a [`HookReceiver`] took.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    /// Names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// A local HTTP endpoint standing in for a webhook, Slack or Teams: keeps every POST it is sent and
/// answers 200, or 500 on paths starting with `/refuse`. Stops when dropped.
pub struct HookReceiver {
    pub port: u16,
    got: std::sync::Arc<std::sync::Mutex<Vec<Received>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl HookReceiver {
    pub fn start() -> Result<Self> {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::{Arc, Mutex};
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        listener.set_nonblocking(true)?;
        let (got, stop) = (Arc::new(Mutex::new(Vec::new())), Arc::new(AtomicBool::new(false)));
        let (keep, stopping) = (got.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stopping.load(Ordering::Relaxed) {
                let Ok((conn, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                let keep = keep.clone();
                std::thread::spawn(move || {
                    let _ = Self::serve(conn, &keep);
                });
            }
        });
        Ok(HookReceiver { port, got, stop })
    }

    fn serve(mut conn: std::net::TcpStream, keep: &std::sync::Mutex<Vec<Received>>) -> std::io::Result<()> {
        use std::io::Read;
        conn.set_nonblocking(false)?;
        conn.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut reader = BufReader::new(conn.try_clone()?);
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            reader.read_line(&mut h)?;
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        let header = |name: &str| headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
        let mut body = Vec::new();
        if header("transfer-encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked")) {
            // What a client that does not know the length up front sends (wasi:http's, for one).
            loop {
                let mut size = String::new();
                reader.read_line(&mut size)?;
                let n = usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16).unwrap_or(0);
                let mut chunk = vec![0; n + 2];
                reader.read_exact(&mut chunk)?;
                if n == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..n]);
            }
        } else {
            body.resize(header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0), 0);
            reader.read_exact(&mut body)?;
        }
        let refuse = path.starts_with("/refuse");
        keep.lock().unwrap().push(Received { path, headers, body: String::from_utf8_lossy(&body).into_owned() });
        let (status, text) = if refuse { ("500 Internal Server Error", "refused") } else { ("200 OK", "ok") };
        write!(conn, "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}", text.len())
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// What was sent to paths starting with `path` so far.
    pub fn received(&self, path: &str) -> Vec<Received> {
        self.got.lock().unwrap().iter().filter(|r| r.path.starts_with(path)).cloned().collect()
    }
}

impl Drop for HookReceiver {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// aiosmtpd (PyPI), a real SMTP server, keeping what it is sent in a Maildir.
pub struct SmtpSink {
    _proc: Proc,
    pub port: u16,
    maildir: PathBuf,
}

impl SmtpSink {
    pub fn start() -> Result<Self> {
        let tools = std::env::var("DILUX_PY_TOOLS")
            .map(PathBuf::from)
            .unwrap_or_else(|_| PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/dilux/py"));
        if !tools.join("aiosmtpd").is_dir() {
            bail!("aiosmtpd is not installed in {} (run scripts/test.sh, which installs it)", tools.display());
        }
        let port = free_port();
        let maildir = tempdir("smtp-sink").join("mail");
        let child = Command::new("python3")
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}"), "-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&maildir)
            .env("PYTHONPATH", &tools)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .context("cannot start aiosmtpd")?;
        let sink = SmtpSink { _proc: Proc { child, name: "aiosmtpd".into() }, port, maildir };
        wait_port(port, Duration::from_secs(20)).context("aiosmtpd did not start")?;
        Ok(sink)
    }

    /// Every message received so far, as its raw text.
    pub fn messages(&self) -> Vec<String> {
        let Ok(dir) = std::fs::read_dir(self.maildir.join("new")) else { return vec![] };
        dir.filter_map(|e| e.ok()).filter_map(|e| std::fs::read_to_string(e.path()).ok()).collect()
    }
}

// ---------------------------------------------------------------- API client

/// A small client for the app's API, as the tests use it, signed in with one role.
pub struct Api {
    pub http: reqwest::Client,
    pub base: String,
    pub token: Option<String>,
}

impl Api {
    /// Signed in as `role`.
    pub async fn signed_in(app: &App, role: &str) -> Result<Self> {
        Ok(Api { http: reqwest::Client::new(), base: app.url.clone(), token: Some(app.token(role).await?) })
    }

    /// Not signed in.
    pub fn anonymous(app: &App) -> Self {
        Api { http: reqwest::Client::new(), base: app.url.clone(), token: None }
    }

    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<(u16, serde_json::Value)> {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        let text = resp.text().await?;
        let v = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
        Ok((status, v))
    }

    pub async fn post(&self, path: &str, body: serde_json::Value) -> Result<serde_json::Value> {
        let (s, v) = self.call(reqwest::Method::POST, path, Some(body)).await?;
        if !(200..300).contains(&s) {
            bail!("POST {path} answered {s}: {v}");
        }
        Ok(v)
    }

    /// Polls the history until the backup reaches a final state.
    pub async fn wait_final(&self, database_id: &str, backup_id: &str, within: Duration) -> Result<serde_json::Value> {
        let t = Instant::now();
        while t.elapsed() < within {
            let (_, v) =
                self.call(reqwest::Method::GET, &format!("/api/backups?database_id={database_id}"), None).await?;
            if let Some(row) = v["backups"].as_array().and_then(|a| a.iter().find(|r| r["id"] == backup_id)) {
                if ["completed", "failed"].contains(&row["status"].as_str().unwrap_or("")) {
                    return Ok(row.clone());
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        bail!("backup {backup_id} did not finish within {within:?}")
    }

    /// Queues one backup of each database; answers (database id, backup id) pairs.
    pub async fn back_up_each(&self, databases: &[String]) -> Result<Vec<(String, String)>> {
        let mut jobs = Vec::new();
        for db in databases {
            let j = self.post(&format!("/api/databases/{db}/backup"), serde_json::Value::Null).await?;
            jobs.push((db.clone(), j["backup_id"].as_str().context("a backup id")?.to_string()));
        }
        Ok(jobs)
    }

    /// Waits for every job of [`Api::back_up_each`]; answers their rows, failing on any that did not complete.
    pub async fn all_completed(&self, jobs: &[(String, String)], within: Duration) -> Result<Vec<serde_json::Value>> {
        let mut rows = Vec::new();
        for (db, id) in jobs {
            let row = self.wait_final(db, id, within).await?;
            if row["status"] != "completed" {
                bail!("backup {id} of {db} did not complete: {row}");
            }
            rows.push(row);
        }
        Ok(rows)
    }

    /// Registers a server (`engine_type` on 127.0.0.1:`port`) and its database `db`, on `policy_id` when
    /// given, backs it up now and answers the completed history row.
    pub async fn backed_up(
        &self,
        engine_type: &str,
        port: u16,
        (user, password): (&str, &str),
        db: &str,
        policy_id: Option<&str>,
    ) -> Result<serde_json::Value> {
        let e = serde_json::json!({ "name": engine_type, "engine_type": engine_type, "host": "127.0.0.1",
            "port": port, "username": user, "password": password });
        let e = self.post("/api/engines", e).await?;
        let d = self
            .post("/api/databases", serde_json::json!({ "engine_id": e["id"], "name": db, "policy_id": policy_id }));
        let d = d.await?;
        let id = d["id"].as_str().unwrap_or_default();
        let b = self.post(&format!("/api/databases/{id}/backup"), serde_json::Value::Null).await?;
        let done = self.wait_final(id, b["backup_id"].as_str().unwrap_or_default(), Duration::from_secs(120)).await?;
        if done["status"] != "completed" {
            bail!("the backup of {db} did not complete: {done}");
        }
        Ok(done)
    }

    /// Registers `db` on server `engine_id` on `policy_id`, backs it up now and answers its final history row
    /// (completed or failed).
    pub async fn back_up(&self, engine_id: &str, db: &str, policy_id: &str) -> Result<serde_json::Value> {
        let body = serde_json::json!({ "engine_id": engine_id, "name": db, "policy_id": policy_id });
        let d = self.post("/api/databases", body).await?;
        let id = d["id"].as_str().context("database id")?;
        let b = self.post(&format!("/api/databases/{id}/backup"), serde_json::Value::Null).await?;
        self.wait_final(id, b["backup_id"].as_str().context("backup id")?, Duration::from_secs(120)).await
    }

    /// Polls restore `id` until it is completed or failed (a restore, a replace, a drill).
    pub async fn wait_restore(&self, id: &str, within: Duration) -> Result<serde_json::Value> {
        let t = Instant::now();
        loop {
            let (_, r) = self.call(reqwest::Method::GET, &format!("/api/restores/{id}"), None).await?;
            if r["status"] == "completed" || r["status"] == "failed" {
                return Ok(r);
            }
            if t.elapsed() > within {
                bail!("restore {id} did not finish within {within:?}: {r}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits until every drill in the restore history is final, at least `expected` of them; answers them,
    /// newest first.
    pub async fn drills_done(&self, expected: usize) -> Result<Vec<serde_json::Value>> {
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let list = self.call(reqwest::Method::GET, "/api/restores", None).await?.1;
            let drills: Vec<serde_json::Value> = list["restores"]
                .as_array()
                .context("restores")?
                .iter()
                .filter(|r| r["purpose"] == "drill")
                .cloned()
                .collect();
            let done = drills.iter().filter(|r| r["status"] == "completed" || r["status"] == "failed").count();
            if drills.len() >= expected && done == drills.len() {
                return Ok(drills);
            }
            anyhow::ensure!(Instant::now() < deadline, "drills did not finish: {list}");
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    pub async fn download(&self, blob_name: &str) -> Result<(serde_json::Value, Vec<u8>)> {
        let (s, link) =
            self.call(reqwest::Method::GET, &format!("/api/backups/download?blob_name={blob_name}"), None).await?;
        if s != 200 {
            bail!("download link answered {s}: {link}");
        }
        let url = link["url"].as_str().context("no url")?;
        let resp = self.http.get(url).send().await?;
        if !resp.status().is_success() {
            bail!("SAS download answered {}", resp.status());
        }
        Ok((link, resp.bytes().await?.to_vec()))
    }
}

impl App {
    /// A dev-mode token for `role` (admin, operator, viewer).
    pub async fn token(&self, role: &str) -> Result<String> {
        let r = reqwest::Client::new()
            .post(format!("{}/api/auth/dev-token", self.url))
            .json(&serde_json::json!({ "email": format!("{role}@example.com"), "role": role }))
            .send()
            .await?;
        let v: serde_json::Value = r.json().await?;
        v["token"].as_str().map(str::to_string).with_context(|| format!("no token: {v}"))
    }
}

/// Command lines of every process on the machine (what `ps -eo args` shows any user).
pub fn process_command_lines() -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        if let Ok(raw) = std::fs::read(e.path().join("cmdline")) {
            if !raw.is_empty() {
                out.push(String::from_utf8_lossy(&raw).replace('\0', " "));
            }
        }
    }
    out
}

/// Every process's command line with its environment (`NAME=value` separated by spaces).
pub fn process_environments() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let (Ok(cmd), Ok(env)) = (std::fs::read(e.path().join("cmdline")), std::fs::read(e.path().join("environ")))
        else {
            continue;
        };
        if !cmd.is_empty() {
            let text = |b: &[u8]| String::from_utf8_lossy(b).replace('\0', " ");
            out.push((text(&cmd), text(&env)));
        }
    }
    out
}

/// An identity from the reference tool: (identity file, its recipient, the secret key line).
pub fn age_keygen(dir: &Path, name: &str) -> Result<(PathBuf, String, String)> {
    let path = dir.join(name);
    let o = Command::new("age-keygen").arg("-o").arg(&path).output().context("age-keygen runs (apt: age)")?;
    anyhow::ensure!(o.status.success(), "age-keygen: {}", String::from_utf8_lossy(&o.stderr));
    let text = std::fs::read_to_string(&path)?;
    let recipient = text.lines().find_map(|l| l.strip_prefix("# public key: ")).context("public key line")?;
    let secret = text.lines().find(|l| l.starts_with("AGE-SECRET-KEY-1")).context("secret key line")?;
    Ok((path, recipient.to_string(), secret.to_string()))
}

/// What a finished command printed, stdout then stderr.
pub fn said(o: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

pub fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(b).iter().map(|x| format!("{x:02x}")).collect()
}

/// A stored backup's dump, read with the formats' own standard readers (not the product's): zstd frames
/// or gzip members, told apart by their first bytes.
pub fn decompress(b: &[u8]) -> Result<Vec<u8>> {
    use std::io::Read;
    let mut out = Vec::new();
    if b.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        zstd::stream::read::Decoder::new(b)?.read_to_end(&mut out).context("the backup is not valid zstd")?;
    } else {
        flate2::read::MultiGzDecoder::new(b).read_to_end(&mut out).context("the backup is not valid gzip")?;
    }
    Ok(out)
}

// ---------------------------------------------------------------- Benchmarks

/// A field of this process's `/proc/self/status` in MiB (`VmRSS:` now, `VmHWM:` at the peak).
pub fn memory_mib(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}

/// Starts a new peak-RSS measurement (Linux: writing 5 to clear_refs resets VmHWM).
pub fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Rows of ~200 bytes for a benchmark table of `size_mb`.
pub fn bench_rows(size_mb: u64) -> u64 {
    size_mb * 1024 * 1024 / 200
}

/// A PostgreSQL database `db` of about `size_mb` (one table `t` of `bench_rows` rows).
pub fn pg_bench_database(pg: &Postgres, db: &str, size_mb: u64) -> Result<()> {
    let rows = bench_rows(size_mb);
    pg.sql("postgres", &format!("CREATE DATABASE {db}"))?;
    pg.sql(
        db,
        &format!(
            "CREATE TABLE t (id bigint PRIMARY KEY, p text); \
             INSERT INTO t SELECT g, repeat(md5(g::text), 5) || g FROM generate_series(1, {rows}) g;"
        ),
    )?;
    Ok(())
}

/// Writes history rows straight into the Table (Azure's batches of up to 100 rows of one day partition, eight
/// batches in flight): history as big as a test or benchmark needs, without running that many backups.
pub async fn store_history(
    storage: &dilux_dumper_host::storage::Storage,
    rows: &[dilux_domain::BackupResult],
) -> Result<()> {
    use chrono::Utc;
    use dilux_azure::table::{self, BatchOp};
    use dilux_domain::{backup::history_keys, entity::to_entity, tables};
    let created = table::create_table(&storage.account, Utc::now(), tables::HISTORY);
    table::parse_create_table(storage.send("create table", created).await?)?;
    // Each day's open batch, by partition.
    let mut by_day: Vec<(String, Vec<BatchOp>)> = Vec::new();
    let mut open: std::collections::HashMap<String, usize> = Default::default();
    for row in rows {
        let (pk, rk) = history_keys(row.created_at, &row.id);
        let op = BatchOp::Insert(to_entity(&pk, &rk, row));
        match open.get(&pk).copied().filter(|i| by_day[*i].1.len() < 100) {
            Some(i) => by_day[i].1.push(op),
            None => {
                open.insert(pk.clone(), by_day.len());
                by_day.push((pk, vec![op]));
            }
        }
    }
    let mut set = tokio::task::JoinSet::new();
    for (n, (_, ops)) in by_day.into_iter().enumerate() {
        if set.len() >= 8 {
            set.join_next().await.context("a batch")???;
        }
        let s = storage.clone();
        set.spawn(async move {
            let req = table::batch(&s.account, Utc::now(), tables::HISTORY, &ops, &format!("b{n}"))?;
            table::parse_batch(s.send("batch", req).await?)?;
            anyhow::Ok(())
        });
    }
    while let Some(r) = set.join_next().await {
        r??;
    }
    Ok(())
}
