//! `dilux:dumper/dump`: the one capability a job-runner guest gets, running a dump into a new blob.
//! The WIT types meet the host's own here, through one `From` each way.

use dilux_domain::compression::Compression;
use dilux_domain::tls::{Tls, TlsMode};
use dilux_domain::ErrorClass;

use super::job_runner::dilux::dumper::dump as wit;
use super::HostState;
use crate::dump::{self, DumpOptions, DumpSpec};
use crate::storage::Storage;

/// The dump capability as the host provides it.
pub struct Dumper {
    pub storage: Storage,
    pub options: DumpOptions,
}

impl From<wit::EngineKind> for dump::Engine {
    fn from(k: wit::EngineKind) -> Self {
        match k {
            wit::EngineKind::Postgresql => dump::Engine::Postgresql,
            wit::EngineKind::Mysql => dump::Engine::Mysql,
        }
    }
}

impl From<wit::TlsSettings> for Tls {
    fn from(t: wit::TlsSettings) -> Self {
        let mode = match t.mode {
            wit::TlsMode::Disable => TlsMode::Disable,
            wit::TlsMode::Prefer => TlsMode::Prefer,
            wit::TlsMode::Require => TlsMode::Require,
            wit::TlsMode::VerifyFull => TlsMode::VerifyFull,
        };
        Tls { mode, ca: t.ca }
    }
}

impl From<ErrorClass> for wit::FailureClass {
    fn from(c: ErrorClass) -> Self {
        use wit::FailureClass as F;
        match c {
            ErrorClass::AuthFailed => F::AuthFailed,
            ErrorClass::NotFound => F::NotFound,
            ErrorClass::PermissionDenied => F::PermissionDenied,
            ErrorClass::Unreachable => F::Unreachable,
            ErrorClass::Timeout => F::Timeout,
            ErrorClass::Tls => F::Tls,
            ErrorClass::StorageFailed => F::StorageFailed,
            ErrorClass::Corrupt => F::Corrupt,
            // The guest validates jobs itself; from the host, a bad job is the tool's failure.
            ErrorClass::ToolFailed | ErrorClass::InvalidJob => F::ToolFailed,
        }
    }
}

impl From<wit::DumpRequest> for DumpSpec {
    fn from(r: wit::DumpRequest) -> Self {
        DumpSpec {
            engine: r.engine.into(),
            host: r.host,
            port: r.port,
            tls: r.tls.into(),
            database: r.database,
            username: r.username,
            password: r.password,
            container: r.container,
            blob_name: r.blob_name,
            compression: match r.compression {
                wit::Compression::Zstd(level) => Compression::Zstd { level },
                wit::Compression::Gzip(level) => Compression::Gzip { level },
            },
            format: match r.custom_format {
                true => dilux_domain::format::DumpFormat::Custom,
                false => dilux_domain::format::DumpFormat::Plain,
            },
            recipients: r.recipients,
            metadata: r.metadata,
        }
    }
}

impl From<dump::DumpOutcome> for wit::DumpOutcome {
    fn from(o: dump::DumpOutcome) -> Self {
        wit::DumpOutcome {
            compressed_bytes: o.compressed_bytes,
            uncompressed_bytes: o.uncompressed_bytes,
            sha256: o.sha256,
            duration_ms: o.duration.as_millis() as u64,
            tables: o.manifest.tables.len() as u32,
            rows: o.manifest.rows(),
        }
    }
}

impl From<dump::DumpFailure> for wit::DumpFailure {
    fn from(f: dump::DumpFailure) -> Self {
        wit::DumpFailure { class: f.class.into(), message: f.message }
    }
}

impl wit::Host for HostState {
    async fn run_dump(&mut self, r: wit::DumpRequest) -> Result<wit::DumpOutcome, wit::DumpFailure> {
        let Some(dumper) = self.guest.dumper.clone() else {
            return Err(wit::DumpFailure {
                class: wit::FailureClass::ToolFailed,
                message: "this component is not allowed to run dumps".into(),
            });
        };
        let spec = DumpSpec::from(r);
        tracing::info!(blob = %spec.blob_name, engine = ?spec.engine, host = %spec.host, port = spec.port,
            database = %spec.database, "dump started");
        let metrics = crate::metrics::global();
        let engine = dilux_domain::EngineType::from(spec.engine).as_str();
        let _running = metrics.dump_running();
        match dump::run_dump(&dumper.storage, &spec, &dumper.options).await {
            Ok(o) => {
                tracing::info!(blob = %spec.blob_name, bytes = o.compressed_bytes, raw_bytes = o.uncompressed_bytes,
                    seconds = o.duration.as_secs_f64(), tables = o.manifest.tables.len(), rows = o.manifest.rows(),
                    "dump completed");
                let database_id = dump::metadata(&spec.metadata, "database_id");
                let now = chrono::Utc::now().timestamp();
                metrics.dump_completed(engine, database_id, o.duration, o.compressed_bytes, now);
                Ok(o.into())
            }
            Err(f) => {
                tracing::warn!(blob = %spec.blob_name, class = %f.class, error = %f.message, "dump failed");
                metrics.dump_failed(engine, &f.class.to_string());
                Err(f.into())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_class_crosses_the_boundary() {
        use wit::FailureClass as F;
        let pairs = [
            (ErrorClass::AuthFailed, F::AuthFailed),
            (ErrorClass::NotFound, F::NotFound),
            (ErrorClass::PermissionDenied, F::PermissionDenied),
            (ErrorClass::Unreachable, F::Unreachable),
            (ErrorClass::Timeout, F::Timeout),
            (ErrorClass::Tls, F::Tls),
            (ErrorClass::StorageFailed, F::StorageFailed),
            (ErrorClass::ToolFailed, F::ToolFailed),
            (ErrorClass::InvalidJob, F::ToolFailed),
            (ErrorClass::Corrupt, F::Corrupt),
        ];
        for (class, expected) in pairs {
            assert_eq!(wit::FailureClass::from(class), expected, "{class:?}");
        }
        assert_eq!(dump::Engine::from(wit::EngineKind::Postgresql), dump::Engine::Postgresql);
        assert_eq!(dump::Engine::from(wit::EngineKind::Mysql), dump::Engine::Mysql);
    }
}
