//! `dilux:dumper/restore`: a job-runner guest asks for a backup blob to be restored into a new
//! database; the pipeline is `crate::restore`'s. The WIT types meet the host's own here.

use super::job_runner::dilux::dumper::dump as wit_dump;
use super::job_runner::dilux::dumper::restore as wit;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::{Dumper, HostState};
use crate::restore::{self, RestoreSpec, Source};

impl From<wit::RestoreRequest> for RestoreSpec {
    fn from(r: wit::RestoreRequest) -> Self {
        RestoreSpec {
            engine: r.engine.into(),
            host: r.host,
            port: r.port,
            tls: r.tls.into(),
            username: r.username,
            password: r.password,
            database: r.database,
            source: Source::Blob { container: r.container, name: r.blob_name },
            expected_sha256: r.sha256,
            restore_id: r.restore_id,
            keep_mark: r.replace.is_some(),
            // The API checked the names; one that does not parse cannot name a table of the backup either.
            tables: r.tables.iter().filter_map(|t| dilux_domain::format::TableName::parse(t)).collect(),
        }
    }
}

impl From<restore::RestoreOutcome> for wit::RestoreOutcome {
    fn from(o: restore::RestoreOutcome) -> Self {
        wit::RestoreOutcome {
            compressed_bytes: o.compressed_bytes,
            uncompressed_bytes: o.uncompressed_bytes,
            sha256: o.sha256,
            duration_ms: o.restore_duration.as_millis() as u64,
            previous_copy: None,
            verification: o.check.map(|c| wit::Verification {
                manifest_found: c.comparison.is_some(),
                tables_checked: c.comparison.as_ref().map_or(0, |c| c.tables_checked),
                rows_checked: c.comparison.as_ref().map_or(0, |c| c.rows_checked),
                mismatched_tables: c.comparison.as_ref().map_or(0, |c| c.mismatched_tables),
                mismatches: c
                    .comparison
                    .iter()
                    .flat_map(|c| &c.mismatches)
                    .map(|m| wit::TableMismatch {
                        table: m.table.clone(),
                        expected_rows: m.expected_rows,
                        actual_rows: m.actual_rows,
                    })
                    .collect(),
                server_version: c.server_version,
                duration_ms: c.duration.as_millis() as u64,
            }),
        }
    }
}

/// Bytes of the stored backup read so far, and its size.
#[derive(Default)]
struct Progress {
    done: AtomicU64,
    total: AtomicU64,
}

struct Task {
    progress: Arc<Progress>,
    run: tokio::task::JoinHandle<Result<wit::RestoreOutcome, wit_dump::DumpFailure>>,
}

/// An instance's running restores. Dropping the instance stops them: the client is killed before it
/// commits, and the database keeps its mark for the retry.
#[derive(Default)]
pub struct Tasks {
    next: u64,
    running: HashMap<u64, Task>,
}

impl Drop for Tasks {
    fn drop(&mut self) {
        self.running.values().for_each(|t| t.run.abort());
    }
}

/// The whole restore of one request: restore, check, swap (replace) or drop (drill).
async fn execute(
    dumper: Arc<Dumper>,
    r: wit::RestoreRequest,
    progress: Arc<Progress>,
) -> Result<wit::RestoreOutcome, wit_dump::DumpFailure> {
    let swap = r.replace.clone().zip(r.previous_name.clone());
    let (verify, drop_after) = (r.verify || swap.is_some(), r.drop_after);
    let spec = RestoreSpec::from(r);
    let opts = &dumper.options;
    let metrics = crate::metrics::global();
    let _running = metrics.restore_running();
    tracing::info!(source = ?spec.source, host = %spec.host, port = spec.port, database = %spec.database,
        verify, drill = drop_after, "restore started");
    // Before anything talks to the server, a resumed swap included.
    let tls = crate::dump::require_tls(&spec.conn(""), opts).await?;
    if let Some((original, previous)) = &swap {
        // A worker that died mid-swap left the copy marked: finish what it began.
        if restore::resume_swap(&spec, opts, original, previous).await? == restore::Resumed::Finished {
            tracing::info!(database = %original, previous = %previous, "restore completed (an earlier swap finished)");
            metrics.restore_finished("completed");
            return Ok(wit::RestoreOutcome {
                compressed_bytes: 0,
                uncompressed_bytes: 0,
                sha256: spec.expected_sha256.clone().unwrap_or_default(),
                duration_ms: 0,
                previous_copy: Some(previous.clone()),
                verification: None,
            });
        }
    }
    let report = |done: u64, total: u64| {
        progress.done.store(done, Ordering::Relaxed);
        progress.total.store(total, Ordering::Relaxed);
    };
    let mut result = restore::run_restore(Some(&dumper.storage), &spec, opts, verify, &report, &tls).await;
    if let (Ok(o), Some((original, previous))) = (&result, &swap) {
        // A restore that does not match its backup is never swapped in for the original.
        let differs = o.check.as_ref().and_then(|c| c.comparison.as_ref()).filter(|c| !c.passed());
        result = match differs {
            Some(c) => {
                restore::drop_database(&spec, opts).await;
                let why =
                    format!("the restored copy differs from the backup ({}); `{original}` is unchanged", c.summary());
                Err(crate::dump::fail(dilux_domain::ErrorClass::Corrupt, why))
            }
            None => restore::swap_in(&spec, opts, original, previous).await.map(|()| result.expect("checked ok")),
        };
    }
    if drop_after && result.is_ok() {
        restore::drop_database(&spec, opts).await;
    }
    match result {
        Ok(o) => {
            let mut o = wit::RestoreOutcome::from(o);
            o.previous_copy = swap.map(|(_, previous)| previous);
            tracing::info!(database = %spec.database, bytes = o.compressed_bytes, raw_bytes = o.uncompressed_bytes,
                ms = o.duration_ms, previous = ?o.previous_copy, "restore completed");
            metrics.restore_finished("completed");
            Ok(o)
        }
        Err(f) => {
            tracing::warn!(database = %spec.database, class = %f.class, error = %f.message, "restore failed");
            metrics.restore_finished(&f.class.to_string());
            Err(f.into())
        }
    }
}

impl wit::Host for HostState {
    async fn start_restore(&mut self, r: wit::RestoreRequest) -> u64 {
        let tasks = &mut self.restores;
        tasks.next += 1;
        let progress = Arc::new(Progress::default());
        let run = match self.guest.dumper.clone() {
            Some(dumper) => tokio::spawn(execute(dumper, r, progress.clone())),
            None => tokio::spawn(async {
                Err(wit_dump::DumpFailure {
                    class: wit_dump::FailureClass::ToolFailed,
                    message: "this component is not allowed to run restores".into(),
                })
            }),
        };
        tasks.running.insert(tasks.next, Task { progress, run });
        tasks.next
    }

    async fn poll_restore(&mut self, task: u64, wait_ms: u32) -> wit::RestoreState {
        let Some(t) = self.restores.running.get_mut(&task) else {
            return wit::RestoreState::Finished(Err(wit_dump::DumpFailure {
                class: wit_dump::FailureClass::ToolFailed,
                message: format!("no restore task {task} (already reported, or never started)"),
            }));
        };
        let wait = Duration::from_millis(u64::from(wait_ms).min(60_000));
        match tokio::time::timeout(wait, &mut t.run).await {
            Err(_) => wit::RestoreState::Running((
                t.progress.done.load(Ordering::Relaxed),
                t.progress.total.load(Ordering::Relaxed),
            )),
            Ok(joined) => {
                self.restores.running.remove(&task);
                wit::RestoreState::Finished(joined.unwrap_or_else(|e| {
                    Err(wit_dump::DumpFailure {
                        class: wit_dump::FailureClass::ToolFailed,
                        message: format!("the restore stopped unexpectedly: {e}"),
                    })
                }))
            }
        }
    }
}
