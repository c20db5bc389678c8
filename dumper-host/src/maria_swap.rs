//! Replacing a MariaDB database with its restored copy. MariaDB cannot rename a database, so the swap
//! moves tables: one atomic `RENAME TABLE` takes every base table of the original to the previous
//! copy and every table of the restored one to the original. Triggers block a table's move to another
//! database, and views, routines and events do not move with tables, so all four are saved first with
//! the server's own `mariadb-dump` (schema only, held in memory), dropped, and re-created after the
//! move on the side they belong to: the backup's in the original, the original's in the previous copy.
//!
//! Both saved schemas are written into the previous copy first (a marker table naming the restore),
//! so a worker that dies at any point leaves what the next attempt needs: before the rename it puts the
//! original's triggers back and starts over; after it, it re-creates the objects and finishes.

use std::process::Stdio;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use dilux_domain::ErrorClass;

use crate::dump::{fail, mysql_command, redact, DumpFailure, DumpOptions};
use crate::restore::{
    admin_sql, crash_point, drop_database, marker, mysql_ident, sql_literal, RestoreSpec, Resumed, MARIA_MARKER,
};

/// A saved schema (triggers, routines, events, views) beyond this is refused, not held.
const MAX_SCHEMA: usize = 32 << 20;

/// Object names in `db` from an `information_schema` query answering (type, name) rows.
async fn names(spec: &RestoreSpec, opts: &DumpOptions, sql: &str) -> Result<Vec<(String, String)>, DumpFailure> {
    let out = admin_sql(spec, opts, sql).await?;
    Ok(out
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(kind, name)| (kind.to_string(), name.to_string()))
        .collect())
}

fn lit(v: &str) -> String {
    sql_literal(crate::dump::Engine::Mysql, v)
}

/// Runs the server's own `mariadb-dump` with `args`, answering its (schema-only) output.
async fn capture(spec: &RestoreSpec, opts: &DumpOptions, args: &[&str]) -> Result<Vec<u8>, DumpFailure> {
    let (mut c, fd) = mysql_command(&opts.mysqldump, &spec.host, spec.port, &spec.username, &spec.password)
        .map_err(|e| fail(ErrorClass::ToolFailed, format!("could not prepare mariadb-dump: {e}")))?;
    c.args(["--no-data", "--single-transaction", "--skip-comments", "--default-character-set=utf8mb4"])
        .args(["--protocol=TCP"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = c.spawn().map_err(|e| fail(ErrorClass::ToolFailed, format!("could not run mariadb-dump: {e}")))?;
    drop(fd);
    let mut out = Vec::new();
    let mut stdout = child.stdout.take().expect("piped");
    let read = (&mut stdout).take(MAX_SCHEMA as u64 + 1).read_to_end(&mut out).await;
    let o = child.wait_with_output().await.map_err(|e| fail(ErrorClass::ToolFailed, e.to_string()))?;
    read.map_err(|e| fail(ErrorClass::ToolFailed, e.to_string()))?;
    if out.len() > MAX_SCHEMA {
        return Err(fail(ErrorClass::ToolFailed, "the database's triggers, routines and views exceed 32 MiB"));
    }
    if !o.status.success() {
        let words = redact(String::from_utf8_lossy(&o.stderr).trim(), &spec.password);
        return Err(fail(ErrorClass::from_tool_stderr(&words), format!("mariadb-dump failed: {words}")));
    }
    Ok(out)
}

/// Feeds saved schema SQL to the client, in `db`.
async fn replay(spec: &RestoreSpec, opts: &DumpOptions, db: &str, sql: &[u8]) -> Result<(), DumpFailure> {
    let client = crate::probe::mysql_client(opts);
    let (mut c, fd) = mysql_command(&client, &spec.host, spec.port, &spec.username, &spec.password)
        .map_err(|e| fail(ErrorClass::ToolFailed, format!("could not prepare mariadb: {e}")))?;
    c.args(["--protocol=TCP", "--default-character-set=utf8mb4", "--batch"])
        .arg(format!("--database={db}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = c.spawn().map_err(|e| fail(ErrorClass::ToolFailed, format!("could not run mariadb: {e}")))?;
    drop(fd);
    let mut stdin = child.stdin.take().expect("piped");
    let written = stdin.write_all(sql).await;
    drop(stdin);
    let o = child.wait_with_output().await.map_err(|e| fail(ErrorClass::ToolFailed, e.to_string()))?;
    if !o.status.success() || written.is_err() {
        let words = redact(String::from_utf8_lossy(&o.stderr).trim(), &spec.password);
        return Err(fail(ErrorClass::from_tool_stderr(&words), words));
    }
    Ok(())
}

/// What a database holds besides table data, as the server lists it.
struct Schema {
    tables: Vec<String>,
    views: Vec<String>,
    triggers: Vec<String>,
    routines: Vec<(String, String)>,
    events: Vec<String>,
    /// Triggers, routines and events, then views, as `mariadb-dump` writes them.
    saved: Vec<u8>,
}

async fn schema(spec: &RestoreSpec, opts: &DumpOptions, db: &str) -> Result<Schema, DumpFailure> {
    let of = lit(db);
    let listed = names(
        spec,
        opts,
        &format!("SELECT TABLE_TYPE, TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = {of}"),
    )
    .await?;
    // A restore's own mark stays where it is (it is dropped with its database).
    let tables = listed
        .iter()
        .filter(|(k, n)| k != "VIEW" && format!("`{n}`") != MARIA_MARKER)
        .map(|(_, n)| n.clone())
        .collect();
    let views: Vec<String> = listed.iter().filter(|(k, _)| k == "VIEW").map(|(_, n)| n.clone()).collect();
    let q = format!("SELECT 'TRIGGER', TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = {of}");
    let triggers = names(spec, opts, &q).await?.into_iter().map(|(_, n)| n).collect();
    let q = format!("SELECT ROUTINE_TYPE, ROUTINE_NAME FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = {of}");
    let routines = names(spec, opts, &q).await?;
    let q = format!("SELECT 'EVENT', EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA = {of}");
    let events = names(spec, opts, &q).await?.into_iter().map(|(_, n)| n).collect();
    let mut saved = capture(spec, opts, &["--no-create-info", "--triggers", "--routines", "--events", db]).await?;
    if !views.is_empty() {
        let mut args = vec!["--skip-triggers", db];
        args.extend(views.iter().map(String::as_str));
        saved.extend(capture(spec, opts, &args).await?);
    }
    Ok(Schema { tables, views, triggers, routines, events, saved })
}

async fn drop_all(
    spec: &RestoreSpec,
    opts: &DumpOptions,
    db: &str,
    s: &Schema,
    triggers_only: bool,
) -> Result<(), DumpFailure> {
    let d = mysql_ident(db);
    let mut sql: Vec<String> =
        s.triggers.iter().map(|t| format!("DROP TRIGGER IF EXISTS {d}.{}", mysql_ident(t))).collect();
    if !triggers_only {
        sql.extend(s.views.iter().map(|v| format!("DROP VIEW IF EXISTS {d}.{}", mysql_ident(v))));
        sql.extend(s.routines.iter().map(|(k, r)| format!("DROP {k} IF EXISTS {d}.{}", mysql_ident(r))));
        sql.extend(s.events.iter().map(|e| format!("DROP EVENT IF EXISTS {d}.{}", mysql_ident(e))));
    }
    if sql.is_empty() {
        return Ok(());
    }
    admin_sql(spec, opts, &sql.join("; ")).await.map(|_| ())
}

/// Swaps the restored `spec.database` in for `original`, which is kept as `previous`.
pub async fn swap_in(
    spec: &RestoreSpec,
    opts: &DumpOptions,
    original: &str,
    previous: &str,
) -> Result<(), DumpFailure> {
    let staging = spec.database.as_str();
    let unchanged = |e: DumpFailure, what: &str| {
        fail(e.class, format!("the restore succeeded, but {what} failed ({}); `{original}` is unchanged", e.message))
    };
    let (old, new) = match (schema(spec, opts, original).await, schema(spec, opts, staging).await) {
        (Ok(o), Ok(n)) => (o, n),
        (Err(e), _) | (_, Err(e)) => {
            drop_database(spec, opts).await;
            return Err(unchanged(e, "reading the databases' objects"));
        }
    };
    let charset = admin_sql(
        spec,
        opts,
        &format!(
            "SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA \
             WHERE SCHEMA_NAME = {}",
            lit(original)
        ),
    )
    .await
    .ok()
    .and_then(|s| s.lines().next().and_then(|l| l.split_once('\t')).map(|(c, k)| (c.to_string(), k.to_string())));
    let create = match &charset {
        Some((c, k)) => format!("CREATE DATABASE {} CHARACTER SET {c} COLLATE {k}", mysql_ident(previous)),
        None => format!("CREATE DATABASE {} CHARACTER SET utf8mb4", mysql_ident(previous)),
    };
    if let Err(e) = admin_sql(spec, opts, &create).await {
        drop_database(spec, opts).await;
        return Err(unchanged(e, "creating the previous copy"));
    }
    let prev = RestoreSpec { database: previous.to_string(), ..spec.clone() };
    // What a retry needs if this worker dies from here on.
    if let Err(e) = save_state(spec, opts, previous, &old.saved, &new.saved).await {
        drop_database(&prev, opts).await;
        drop_database(spec, opts).await;
        return Err(unchanged(e, "saving the swap's state"));
    }
    // Triggers keep a table from moving to another database: they go first, and come back on failure.
    let moved = async {
        drop_all(spec, opts, original, &old, true).await?;
        drop_all(spec, opts, staging, &new, true).await?;
        // Sessions on the original would hold the rename up: ended, as far as this user may.
        let q = format!(
            "SELECT 'ID', ID FROM information_schema.PROCESSLIST WHERE DB = {} AND ID <> CONNECTION_ID()",
            lit(original)
        );
        for (_, id) in names(spec, opts, &q).await.unwrap_or_default() {
            let _ = admin_sql(spec, opts, &format!("KILL CONNECTION {}", id.parse::<u64>().unwrap_or(0))).await;
        }
        let pairs: Vec<String> = old
            .tables
            .iter()
            .map(|t| format!("{}.{t2} TO {}.{t2}", mysql_ident(original), mysql_ident(previous), t2 = mysql_ident(t)))
            .chain(new.tables.iter().map(|t| {
                format!("{}.{t2} TO {}.{t2}", mysql_ident(staging), mysql_ident(original), t2 = mysql_ident(t))
            }))
            .collect();
        if pairs.is_empty() {
            return Ok(());
        }
        admin_sql(spec, opts, &format!("SET SESSION lock_wait_timeout = 30; RENAME TABLE {}", pairs.join(", ")))
            .await
            .map(|_| ())
    }
    .await;
    if let Err(e) = moved {
        if let Err(again) = put_objects(spec, opts, original, &old.saved).await {
            tracing::error!(database = %original, error = %again, "could not put the original's triggers back");
        }
        drop_database(&prev, opts).await;
        drop_database(spec, opts).await;
        return Err(unchanged(e, "moving the tables"));
    }
    crash_point("swap-renamed");
    rebuild(spec, opts, original, previous, &old.saved, &new.saved).await
}

/// After the rename: the objects follow their tables, then the copy's husk and the swap's state go.
/// Each step can run again (a retry after a crash here): what is there is dropped before re-creating.
async fn rebuild(
    spec: &RestoreSpec,
    opts: &DumpOptions,
    original: &str,
    previous: &str,
    old_saved: &[u8],
    new_saved: &[u8],
) -> Result<(), DumpFailure> {
    let rebuilt = async {
        put_objects(spec, opts, original, new_saved).await?;
        put_objects(spec, opts, previous, old_saved).await?;
        drop_database(spec, opts).await;
        admin_sql(spec, opts, &format!("DROP TABLE {}.{MARIA_MARKER}", mysql_ident(previous))).await.map(|_| ())
    }
    .await;
    rebuilt.map_err(|e| {
        fail(
            e.class,
            format!(
                "the tables of `{original}` were replaced (the previous ones are in `{previous}`), but re-creating \
                 its views, triggers, routines or events failed: {}; the next attempt tries again",
                e.message
            ),
        )
    })
}

/// Makes `db`'s triggers, views, routines and events exactly the `saved` ones: whatever is there is
/// dropped first, so this can run again after a crash half-way.
async fn put_objects(spec: &RestoreSpec, opts: &DumpOptions, db: &str, saved: &[u8]) -> Result<(), DumpFailure> {
    let there = schema(spec, opts, db).await?;
    drop_all(spec, opts, db, &there, false).await?;
    replay(spec, opts, db, saved).await
}

/// Writes both saved schemas into the previous copy's marker table (through the client's stdin: they
/// can be far larger than a command line).
async fn save_state(
    spec: &RestoreSpec,
    opts: &DumpOptions,
    previous: &str,
    old: &[u8],
    new: &[u8],
) -> Result<(), DumpFailure> {
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let sql = format!(
        "CREATE TABLE {MARIA_MARKER} (id VARCHAR(200), old_schema LONGBLOB, new_schema LONGBLOB);\n\
         INSERT INTO {MARIA_MARKER} VALUES ({}, UNHEX('{}'), UNHEX('{}'));\n",
        lit(&marker(spec)),
        hex(old),
        hex(new)
    );
    replay(spec, opts, previous, sql.as_bytes()).await
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2).filter_map(|i| u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()).collect()
}

/// Finishes a swap an earlier attempt of this restore began, from the state it left in the previous
/// copy: before the rename, puts the original's triggers back and lets the restore start over; after
/// it, re-creates the objects.
pub async fn resume(
    spec: &RestoreSpec,
    opts: &DumpOptions,
    original: &str,
    previous: &str,
) -> Result<Resumed, DumpFailure> {
    let state = format!("SELECT id, HEX(old_schema), HEX(new_schema) FROM {}.{MARIA_MARKER}", mysql_ident(previous));
    let Ok(row) = admin_sql(spec, opts, &state).await else { return Ok(Resumed::NotStarted) };
    let mut cols = row.trim_end().splitn(3, '\t');
    let (Some(id), Some(old_hex), Some(new_hex)) = (cols.next(), cols.next(), cols.next()) else {
        return Ok(Resumed::NotStarted);
    };
    if id != marker(spec) {
        return Ok(Resumed::NotStarted);
    }
    let (old_saved, new_saved) = (unhex(old_hex), unhex(new_hex));
    let q = format!(
        "SELECT 'BASE TABLE', TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = {} \
         AND TABLE_TYPE = 'BASE TABLE' AND TABLE_NAME <> '_dilux_restore_in_progress'",
        lit(&spec.database)
    );
    let copy_tables = names(spec, opts, &q).await?;
    let prev = RestoreSpec { database: previous.to_string(), ..spec.clone() };
    if !copy_tables.is_empty() {
        tracing::warn!(database = %original, "an earlier attempt died before moving the tables; starting over");
        put_objects(spec, opts, original, &old_saved).await?;
        drop_database(&prev, opts).await;
        return Ok(Resumed::NotStarted);
    }
    tracing::warn!(database = %original, "an earlier attempt died after moving the tables; finishing the swap");
    rebuild(spec, opts, original, previous, &old_saved, &new_saved).await?;
    Ok(Resumed::Finished)
}
