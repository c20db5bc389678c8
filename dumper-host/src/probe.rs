//! Connection tests and database discovery with the real clients (psql, mariadb), for the API's
//! `test` and `discover` routes. Credentials travel exactly as in a dump: environment for psql, an
//! inherited pipe for mariadb; never argv. Every message is redacted before it leaves.

use std::time::Instant;

use tokio::process::Command;

use dilux_domain::probe::{ProbeRequest, ProbeResult};
use dilux_domain::{EngineType, ErrorClass};

use crate::dump::{fail, mysql_command, pg_env, pg_toolsets, run_client, DumpFailure, DumpOptions, DumpSpec, Engine};

/// Field and record separators for psql output (names may hold anything printable).
const FS: char = '\u{1f}';

/// The MariaDB/MySQL command-line client next to the configured dump tool.
pub(crate) fn mysql_client(opts: &DumpOptions) -> String {
    match opts.mysqldump.rsplit_once("-dump") {
        Some((base, "")) => base.to_string(),
        _ => opts.mysqldump.replace("mysqldump", "mysql"),
    }
}

fn psql(opts: &DumpOptions) -> String {
    opts.pg_tools_dir
        .as_deref()
        .map(pg_toolsets)
        .and_then(|s| s.last().map(|(_, bin)| bin.join("psql").to_string_lossy().into_owned()))
        .unwrap_or_else(|| "psql".into())
}

/// What this dumper-host can run: its PostgreSQL client majors and its MariaDB/MySQL tools.
pub fn tools(opts: &DumpOptions) -> serde_json::Value {
    let on_path = |tool: &str| {
        let p = std::path::Path::new(tool);
        p.is_absolute() && p.exists()
            || std::env::var_os("PATH").is_some_and(|path| std::env::split_paths(&path).any(|d| d.join(tool).exists()))
    };
    let pg: Vec<u32> =
        opts.pg_tools_dir.as_deref().map(pg_toolsets).unwrap_or_default().into_iter().map(|(m, _)| m).collect();
    serde_json::json!({
        "status": "ok",
        "postgresql_client_majors": pg,
        "pg_dump_on_path": opts.pg_dump.as_deref().map(on_path).unwrap_or_else(|| on_path("pg_dump")),
        "mysqldump": { "tool": opts.mysqldump, "found": on_path(&opts.mysqldump) },
        "mysql_client": { "tool": mysql_client(opts), "found": on_path(&mysql_client(opts)) },
        // Public keys: a policy that encrypts must name one of them, or the product could not restore.
        "encryption_recipients": opts.keys.recipients(),
    })
}

pub async fn probe(req: &ProbeRequest, opts: &DumpOptions) -> ProbeResult {
    let started = Instant::now();
    let outcome = match req.engine_type {
        EngineType::Postgresql => probe_postgres(req, opts).await,
        EngineType::Mysql => probe_mysql(req, opts).await,
        EngineType::Sqlserver => {
            Err(fail(ErrorClass::ToolFailed, "SQL Server connections are not supported by this dumper-host yet"))
        }
    };
    let duration_ms = started.elapsed().as_millis() as u64;
    match outcome {
        Ok((version, mut databases)) => {
            databases.sort();
            ProbeResult {
                success: true,
                error_type: None,
                message: format!("connected to {}:{} as {}", req.host, req.port, req.username),
                duration_ms,
                server_version: Some(version),
                databases,
            }
        }
        Err(f) => ProbeResult {
            success: false,
            error_type: Some(f.class),
            message: f.message,
            duration_ms,
            server_version: None,
            databases: vec![],
        },
    }
}

/// The probed server as the clients take a connection (its TLS included).
fn target(req: &ProbeRequest, engine: Engine, database: &str) -> DumpSpec {
    DumpSpec {
        engine,
        host: req.host.clone(),
        port: req.port,
        tls: req.tls.clone(),
        database: database.to_string(),
        username: req.username.clone(),
        password: req.password.clone(),
        container: String::new(),
        blob_name: String::new(),
        // Nothing is stored.
        compression: Default::default(),
        format: Default::default(),
        recipients: vec![],
        metadata: vec![],
    }
}

async fn probe_postgres(req: &ProbeRequest, opts: &DumpOptions) -> Result<(String, Vec<String>), DumpFailure> {
    // Without a database, connect to the maintenance database every server has.
    let target = target(req, Engine::Postgresql, req.database.as_deref().unwrap_or("postgres"));
    let sql = if req.list_databases {
        "SELECT 'v', current_setting('server_version') UNION ALL SELECT 'd', datname FROM pg_database"
    } else {
        "SELECT 'v', current_setting('server_version')"
    };
    let mut c = Command::new(psql(opts));
    c.args(["-X", "-A", "-t", "--no-password", "-0", "-F"]).arg(FS.to_string()).args(["-c", sql]);
    let keep = pg_env(&mut c, &target, opts)?;
    let out = run_client(c, "psql", &req.password, opts).await;
    drop(keep);
    let out = out?;
    let mut version = String::new();
    let mut names = Vec::new();
    for rec in out.split('\0').map(|r| r.trim_matches('\n')).filter(|r| !r.is_empty()) {
        match rec.split_once(FS) {
            Some(("v", v)) => version = format!("PostgreSQL {v}"),
            Some(("d", n)) => names.push(n.to_string()),
            _ => {}
        }
    }
    Ok((version, names))
}

/// Undoes the escaping of `mariadb --batch` output (`\n`, `\t`, `\\`, `\0`).
fn unescape_batch(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match it.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('0') => out.push('\0'),
            Some(o) => out.push(o),
            None => out.push('\\'),
        }
    }
    out
}

async fn probe_mysql(req: &ProbeRequest, opts: &DumpOptions) -> Result<(String, Vec<String>), DumpFailure> {
    let client = mysql_client(opts);
    let target = target(req, Engine::Mysql, "");
    crate::dump::require_tls(&target, opts).await?;
    let (mut c, fd) = mysql_command(&client, &target)?;
    c.args(["--protocol=TCP", "--batch", "--skip-column-names", "--default-character-set=utf8mb4"])
        .arg(format!("--connect-timeout={}", opts.connect_timeout_secs));
    if let Some(db) = &req.database {
        c.arg(format!("--database={db}"));
    }
    let sql = if req.list_databases {
        "SELECT 'v', VERSION() UNION ALL SELECT 'd', SCHEMA_NAME FROM information_schema.SCHEMATA"
    } else {
        "SELECT 'v', VERSION()"
    };
    c.arg("-e").arg(sql);
    let result = run_client(c, &client, &req.password, opts).await;
    drop(fd);
    let out = result?;
    let mut version = String::new();
    let mut names = Vec::new();
    for line in out.lines() {
        match line.split_once('\t') {
            Some(("v", v)) => version = format!("MariaDB/MySQL {v}"),
            Some(("d", n)) => names.push(unescape_batch(n)),
            _ => {}
        }
    }
    Ok((version, names))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_sits_next_to_the_dump_tool() {
        let mut o = DumpOptions { mysqldump: "mariadb-dump".into(), ..Default::default() };
        assert_eq!(mysql_client(&o), "mariadb");
        o.mysqldump = "/opt/mysql/bin/mysqldump".into();
        assert_eq!(mysql_client(&o), "/opt/mysql/bin/mysql");
    }

    #[test]
    fn batch_escapes_are_undone() {
        assert_eq!(unescape_batch(r"a\tb\\c\nd"), "a\tb\\c\nd");
    }
}
