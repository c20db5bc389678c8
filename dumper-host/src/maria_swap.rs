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
use crate::restore::{admin_sql, drop_database, marker, mysql_ident, sql_literal, RestoreSpec, Resumed, MARIA_MARKER};

/// A saved schema (triggers, routines, events, views) beyond this is refused, not held.
const MAX_SCHEMA: usize = 32 << 20;
/// Hex digits of saved schema per statement (the server's packet limit is 16 MiB by default).
const STATE_CHUNK: usize = 1 << 20;
/// How long the rename may wait for other sessions' locks: far less than the client is given, so a
/// rename is never still waiting on the server when the client has given up on it.
const LOCK_WAIT_SECS: u32 = 10;

/// A `--batch` field back to its text (the client escapes tab, newline, NUL and backslash).
fn unescape(field: &str) -> String {
    let mut out = String::new();
    let mut chars = field.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('0') => out.push('\0'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

/// (first column, second column) rows of an `information_schema` query.
async fn names(spec: &RestoreSpec, opts: &DumpOptions, sql: &str) -> Result<Vec<(String, String)>, DumpFailure> {
    let out = admin_sql(spec, opts, sql).await?;
    Ok(out.lines().filter_map(|l| l.split_once('\t')).map(|(kind, name)| (unescape(kind), unescape(name))).collect())
}

fn lit(v: &str) -> String {
    sql_literal(crate::dump::Engine::Mysql, v)
}

/// Tables (base tables, sequences, system-versioned: anything but views) in `db`, the mark excluded.
async fn table_count(spec: &RestoreSpec, opts: &DumpOptions, db: &str) -> Result<usize, DumpFailure> {
    let q = format!(
        "SELECT 'T', TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = {} AND TABLE_TYPE <> 'VIEW' \
         AND TABLE_NAME <> '_dilux_restore_in_progress'",
        lit(db)
    );
    Ok(names(spec, opts, &q).await?.len())
}

/// Runs the server's own `mariadb-dump` with `args`, answering its (schema-only) output.
async fn capture(spec: &RestoreSpec, opts: &DumpOptions, args: &[&str]) -> Result<Vec<u8>, DumpFailure> {
    let (mut c, fd) = mysql_command(&opts.mysqldump, &spec.conn(""))?;
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
    let limit = opts.stall_timeout;
    let read = tokio::time::timeout(limit, (&mut stdout).take(MAX_SCHEMA as u64 + 1).read_to_end(&mut out)).await;
    if out.len() > MAX_SCHEMA || !matches!(read, Ok(Ok(_))) {
        let _ = child.start_kill();
        let _ = child.wait().await;
        return Err(match read {
            Ok(Ok(_)) => fail(ErrorClass::ToolFailed, "the database's triggers, routines and views exceed 32 MiB"),
            Ok(Err(e)) => fail(ErrorClass::ToolFailed, format!("reading mariadb-dump failed: {e}")),
            Err(_) => fail(ErrorClass::Timeout, format!("mariadb-dump gave no schema within {}s", limit.as_secs())),
        });
    }
    drop(stdout);
    let o = tokio::time::timeout(limit, child.wait_with_output())
        .await
        .map_err(|_| fail(ErrorClass::Timeout, "mariadb-dump did not finish"))?
        .map_err(|e| fail(ErrorClass::ToolFailed, e.to_string()))?;
    if !o.status.success() {
        let words = redact(String::from_utf8_lossy(&o.stderr).trim(), &spec.password);
        return Err(fail(ErrorClass::from_tool_stderr(&words), format!("mariadb-dump failed: {words}")));
    }
    Ok(out)
}

/// Feeds SQL to the client on stdin (no command-line limit), in `db` when given.
async fn replay(spec: &RestoreSpec, opts: &DumpOptions, db: Option<&str>, sql: &[u8]) -> Result<(), DumpFailure> {
    let client = crate::probe::mysql_client(opts);
    let (mut c, fd) = mysql_command(&client, &spec.conn(""))?;
    c.args(["--protocol=TCP", "--default-character-set=utf8mb4", "--batch", "--max-allowed-packet=1G"])
        .args(db.map(|d| format!("--database={d}")))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = c.spawn().map_err(|e| fail(ErrorClass::ToolFailed, format!("could not run mariadb: {e}")))?;
    drop(fd);
    let mut stdin = child.stdin.take().expect("piped");
    let run = async {
        let written = stdin.write_all(sql).await;
        drop(stdin);
        (written, child.wait_with_output().await)
    };
    let (written, o) = tokio::time::timeout(opts.stall_timeout, run).await.map_err(|_| {
        fail(ErrorClass::Timeout, format!("the server did not finish within {}s", opts.stall_timeout.as_secs()))
    })?;
    let o = o.map_err(|e| fail(ErrorClass::ToolFailed, e.to_string()))?;
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
    // View names go on mariadb-dump's command line: one that reads as an option is refused.
    if let Some(v) = views.iter().find(|v| v.starts_with('-')) {
        let why = format!("`{db}` has a view named `{v}`, which cannot be saved safely; rename it and replace again");
        return Err(fail(ErrorClass::ToolFailed, why));
    }
    let q = format!("SELECT 'TRIGGER', TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = {of}");
    let triggers = names(spec, opts, &q).await?.into_iter().map(|(_, n)| n).collect();
    let q = format!("SELECT ROUTINE_TYPE, ROUTINE_NAME FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = {of}");
    let routines = names(spec, opts, &q).await?;
    let q = format!("SELECT 'EVENT', EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA = {of}");
    let events = names(spec, opts, &q).await?.into_iter().map(|(_, n)| n).collect();
    let mut saved =
        capture(spec, opts, &["--no-create-info", "--triggers", "--routines", "--events", "--", db]).await?;
    if !views.is_empty() {
        let mut args = vec!["--skip-triggers", "--", db];
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
        s.triggers.iter().map(|t| format!("DROP TRIGGER IF EXISTS {d}.{};", mysql_ident(t))).collect();
    if !triggers_only {
        sql.extend(s.views.iter().map(|v| format!("DROP VIEW IF EXISTS {d}.{};", mysql_ident(v))));
        sql.extend(s.routines.iter().map(|(k, r)| format!("DROP {k} IF EXISTS {d}.{};", mysql_ident(r))));
        sql.extend(s.events.iter().map(|e| format!("DROP EVENT IF EXISTS {d}.{};", mysql_ident(e))));
    }
    if sql.is_empty() {
        return Ok(());
    }
    replay(spec, opts, None, sql.join("\n").as_bytes()).await
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
    let prev = RestoreSpec { database: previous.to_string(), ..spec.clone() };
    if let Err(e) = create_previous(spec, opts, original, previous).await {
        drop_database(spec, opts).await;
        return Err(unchanged(e, "creating the previous copy"));
    }
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
        let sql = format!("SET SESSION lock_wait_timeout = {LOCK_WAIT_SECS};\nRENAME TABLE {};\n", pairs.join(",\n"));
        replay(spec, opts, None, sql.as_bytes()).await
    }
    .await;
    if let Err(e) = moved {
        // Ask the server what happened rather than trust the error: the rename is atomic, either way.
        let renamed = match (table_count(spec, opts, previous).await, table_count(spec, opts, staging).await) {
            (Ok(p), Ok(c)) => p > 0 || (c == 0 && !new.tables.is_empty()),
            _ => true, // unknown: keep everything and let the next step or a person decide
        };
        if !renamed {
            return match put_objects(spec, opts, original, &old.saved).await {
                Ok(()) => {
                    drop_database(&prev, opts).await;
                    drop_database(spec, opts).await;
                    Err(unchanged(e, "moving the tables"))
                }
                Err(again) => Err(fail(
                    e.class,
                    format!(
                        "moving the tables failed ({}), and putting `{original}`'s triggers back failed too ({}); \
                         its data is untouched, and its triggers, views, routines and events are saved in \
                         `{previous}`.{MARIA_MARKER} (column old_schema, SQL to replay in `{original}`)",
                        e.message, again.message
                    ),
                )),
            };
        }
        tracing::warn!(database = %original, error = %e.message, "the rename reported a failure but took place");
    }
    crate::test_hooks::crash_point("swap-renamed");
    rebuild(spec, opts, original, previous, &old.saved, &new.saved).await
}

/// `previous`, new; or an empty one of that name an earlier attempt of this restore made and died.
async fn create_previous(
    spec: &RestoreSpec,
    opts: &DumpOptions,
    original: &str,
    previous: &str,
) -> Result<(), DumpFailure> {
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
    match admin_sql(spec, opts, &create).await {
        Err(e) if e.message.contains("1007") || e.message.contains("exists") => {
            let q =
                format!("SELECT 'T', TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = {}", lit(previous));
            if names(spec, opts, &q).await?.is_empty() {
                Ok(())
            } else {
                Err(fail(ErrorClass::ToolFailed, format!("database `{previous}` already exists and is not empty")))
            }
        }
        other => other.map(|_| ()),
    }
}

/// Makes `db`'s triggers, views, routines and events exactly the `saved` ones: whatever is there is
/// dropped first, so this can run again after a crash half-way.
async fn put_objects(spec: &RestoreSpec, opts: &DumpOptions, db: &str, saved: &[u8]) -> Result<(), DumpFailure> {
    let there = schema(spec, opts, db).await?;
    drop_all(spec, opts, db, &there, false).await?;
    replay(spec, opts, Some(db), saved).await
}

/// After the rename: the objects follow their tables (the previous copy's events disabled: they belong
/// to a database nobody uses any more), then the copy's husk and the swap's state go. Each step can
/// run again; a failure keeps the state for the next attempt or a person.
async fn rebuild(
    spec: &RestoreSpec,
    opts: &DumpOptions,
    original: &str,
    previous: &str,
    old_saved: &[u8],
    new_saved: &[u8],
) -> Result<(), DumpFailure> {
    let once = || async {
        put_objects(spec, opts, original, new_saved).await?;
        put_objects(spec, opts, previous, old_saved).await?;
        let events = schema(spec, opts, previous).await?.events;
        let disable: Vec<String> = events
            .iter()
            .map(|e| format!("ALTER EVENT {}.{} DISABLE;", mysql_ident(previous), mysql_ident(e)))
            .collect();
        if !disable.is_empty() {
            replay(spec, opts, None, disable.join("\n").as_bytes()).await?;
        }
        drop_database(spec, opts).await;
        admin_sql(spec, opts, &format!("DROP TABLE {}.{MARIA_MARKER}", mysql_ident(previous))).await.map(|_| ())
    };
    let mut last = None;
    for pause in [0, 2, 5] {
        tokio::time::sleep(std::time::Duration::from_secs(pause)).await;
        match once().await {
            Ok(()) => return Ok(()),
            Err(e) => last = Some(e),
        }
    }
    let e = last.expect("three attempts");
    Err(fail(
        e.class,
        format!(
            "the tables of `{original}` were replaced (the previous ones are in `{previous}`), but re-creating \
             the views, triggers, routines or events failed: {}; both sides' are saved in `{previous}`.{MARIA_MARKER} \
             (columns new_schema for `{original}`, old_schema for `{previous}`: SQL to replay there)",
            e.message
        ),
    ))
}

/// Writes both saved schemas into the previous copy's marker table, in pieces under the server's
/// packet limit.
async fn save_state(
    spec: &RestoreSpec,
    opts: &DumpOptions,
    previous: &str,
    old: &[u8],
    new: &[u8],
) -> Result<(), DumpFailure> {
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let t = format!("{}.{MARIA_MARKER}", mysql_ident(previous));
    let mut sql = format!(
        "DROP TABLE IF EXISTS {t};\nCREATE TABLE {t} (id VARCHAR(200), old_schema LONGBLOB, new_schema LONGBLOB);\n\
         INSERT INTO {t} VALUES ({}, '', '');\n",
        lit(&marker(spec))
    );
    for (column, bytes) in [("old_schema", old), ("new_schema", new)] {
        for piece in bytes.chunks(STATE_CHUNK / 2) {
            sql += &format!("UPDATE {t} SET {column} = CONCAT({column}, UNHEX('{}'));\n", hex(piece));
        }
    }
    replay(spec, opts, None, sql.as_bytes()).await
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2).filter_map(|i| u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()).collect()
}

/// Finishes a swap an earlier attempt of this restore began, from the state it left in the previous
/// copy: before the rename, puts the original's objects back and lets the restore start over; after
/// it, re-creates the objects.
pub async fn resume(
    spec: &RestoreSpec,
    opts: &DumpOptions,
    original: &str,
    previous: &str,
) -> Result<Resumed, DumpFailure> {
    let state = format!("SELECT id, HEX(old_schema), HEX(new_schema) FROM {}.{MARIA_MARKER}", mysql_ident(previous));
    let row = match admin_sql(spec, opts, &state).await {
        Ok(r) => r,
        // No previous copy, or no state in it: no swap began.
        Err(e) if e.message.contains("1049") || e.message.contains("1146") => return Ok(Resumed::NotStarted),
        Err(e) => return Err(e),
    };
    let mut cols = row.trim_end().splitn(3, '\t');
    let (Some(id), Some(old_hex), Some(new_hex)) = (cols.next(), cols.next(), cols.next()) else {
        return Ok(Resumed::NotStarted);
    };
    if id != marker(spec) {
        return Ok(Resumed::NotStarted);
    }
    let (old_saved, new_saved) = (unhex(old_hex), unhex(new_hex));
    let (moved_out, left_in_copy) =
        (table_count(spec, opts, previous).await?, table_count(spec, opts, &spec.database).await?);
    let prev = RestoreSpec { database: previous.to_string(), ..spec.clone() };
    // Atomic: the original's tables are in the previous copy, or the copy's are still in the copy.
    if moved_out == 0 && left_in_copy > 0 {
        tracing::warn!(database = %original, "an earlier attempt died before moving the tables; starting over");
        put_objects(spec, opts, original, &old_saved).await?;
        drop_database(&prev, opts).await;
        return Ok(Resumed::NotStarted);
    }
    tracing::warn!(database = %original, "an earlier attempt died after moving the tables; finishing the swap");
    rebuild(spec, opts, original, previous, &old_saved, &new_saved).await?;
    Ok(Resumed::Finished)
}
