//! `dilux:dumper/restore`: a job-runner guest asks for a backup blob to be restored into a new
//! database; the pipeline is `crate::restore`'s. The WIT types meet the host's own here.

use super::job_runner::dilux::dumper::dump as wit_dump;
use super::job_runner::dilux::dumper::restore as wit;
use super::HostState;
use crate::restore::{self, RestoreSpec, Source};

impl From<wit::RestoreRequest> for RestoreSpec {
    fn from(r: wit::RestoreRequest) -> Self {
        RestoreSpec {
            engine: r.engine.into(),
            host: r.host,
            port: r.port,
            username: r.username,
            password: r.password,
            database: r.database,
            source: Source::Blob { container: r.container, name: r.blob_name },
            expected_sha256: r.sha256,
            restore_id: r.restore_id,
        }
    }
}

impl From<restore::RestoreOutcome> for wit::RestoreOutcome {
    fn from(o: restore::RestoreOutcome) -> Self {
        wit::RestoreOutcome {
            compressed_bytes: o.compressed_bytes,
            uncompressed_bytes: o.uncompressed_bytes,
            sha256: o.sha256,
            duration_ms: o.duration.as_millis() as u64,
            previous_copy: None,
        }
    }
}

impl wit::Host for HostState {
    async fn run_restore(&mut self, r: wit::RestoreRequest) -> Result<wit::RestoreOutcome, wit_dump::DumpFailure> {
        let Some(dumper) = self.guest.dumper.clone() else {
            return Err(wit_dump::DumpFailure {
                class: wit_dump::FailureClass::ToolFailed,
                message: "this component is not allowed to run restores".into(),
            });
        };
        let swap = r.replace.clone().zip(r.previous_name.clone());
        let spec = RestoreSpec::from(r);
        tracing::info!(source = ?spec.source, host = %spec.host, port = spec.port, database = %spec.database,
            "restore started");
        let restored = restore::run_restore(Some(&dumper.storage), &spec, &dumper.options, &|_, _| {}).await;
        let swapped = match (restored, &swap) {
            (Ok(o), Some((original, previous))) => {
                restore::swap_in(&spec, &dumper.options, original, previous).await.map(|()| {
                    let mut o = wit::RestoreOutcome::from(o);
                    o.previous_copy = Some(previous.clone());
                    o
                })
            }
            (other, _) => other.map(wit::RestoreOutcome::from),
        };
        match swapped {
            Ok(o) => {
                tracing::info!(database = %spec.database, bytes = o.compressed_bytes, raw_bytes = o.uncompressed_bytes,
                    ms = o.duration_ms, previous = ?o.previous_copy, "restore completed");
                Ok(o)
            }
            Err(f) => {
                tracing::warn!(database = %spec.database, class = %f.class, error = %f.message, "restore failed");
                Err(f.into())
            }
        }
    }
}
