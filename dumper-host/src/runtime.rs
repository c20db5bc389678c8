//! The wasmtime side: one engine and linker for every guest, per-instance state, and the host
//! implementations of `fermyon:spin/variables` and `dilux:dumper/dump`.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Config, Engine};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::dump::{self, DumpOptions, DumpSpec};
use crate::manifest::FileMount;
use crate::outbound::OutboundPolicy;
use crate::storage::Storage;

pub mod spin_variables {
    wasmtime::component::bindgen!({ path: "../wit", world: "fermyon:spin/variables-host" });
}

pub mod job_runner {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "dilux:dumper/job-runner",
        imports: { default: async },
        exports: { default: async },
    });
}

use job_runner::dilux::dumper::dump as wit_dump;
use spin_variables::fermyon::spin::variables as wit_vars;

/// What a guest instance may use: its variables, its outbound hosts, its files, and (job runners
/// only) the dump capability.
#[derive(Clone)]
pub struct GuestConfig {
    pub name: String,
    pub variables: Arc<HashMap<String, String>>,
    pub outbound: OutboundPolicy,
    pub files: Vec<FileMount>,
    pub dumper: Option<Arc<Dumper>>,
}

/// The dump capability as the host provides it.
pub struct Dumper {
    pub storage: Storage,
    pub options: DumpOptions,
}

pub struct HostState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    guest: GuestConfig,
}

impl HostState {
    pub fn new(guest: &GuestConfig) -> anyhow::Result<Self> {
        let mut b = WasiCtx::builder();
        // Guests log to stderr; they never see the host's environment.
        b.inherit_stderr().inherit_stdout();
        for f in &guest.files {
            b.preopened_dir(&f.source, &f.destination, FsPerms::ReadOnly)
                .map_err(anyhow::Error::from)
                .with_context(|| format!("component `{}`: cannot mount {}", guest.name, f.source.display()))?;
        }
        Ok(HostState { wasi: b.build(), http: WasiHttpCtx::new(), table: ResourceTable::new(), guest: guest.clone() })
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView { ctx: &mut self.http, table: &mut self.table, hooks: &mut self.guest.outbound }
    }
}

impl wit_vars::Host for HostState {
    fn get(&mut self, name: String) -> Result<String, wit_vars::Error> {
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
            return Err(wit_vars::Error::InvalidName(name));
        }
        self.guest.variables.get(&name).cloned().ok_or(wit_vars::Error::Undefined(format!(
            "component `{}` has no variable `{name}`: declare it under [component.{}.variables] in spin.toml",
            self.guest.name, self.guest.name
        )))
    }
}

impl wit_dump::Host for HostState {
    async fn run_dump(&mut self, r: wit_dump::DumpRequest) -> Result<wit_dump::DumpOutcome, wit_dump::DumpFailure> {
        use dilux_domain::ErrorClass as C;
        use wit_dump::FailureClass as F;
        let Some(dumper) = self.guest.dumper.clone() else {
            return Err(wit_dump::DumpFailure { class: F::ToolFailed, message: "this component is not allowed to run dumps".into() });
        };
        let spec = DumpSpec {
            engine: match r.engine {
                wit_dump::EngineKind::Postgresql => dump::Engine::Postgresql,
                wit_dump::EngineKind::Mysql => dump::Engine::Mysql,
            },
            host: r.host,
            port: r.port,
            database: r.database,
            username: r.username,
            password: r.password,
            container: r.container,
            blob_name: r.blob_name,
            metadata: r.metadata,
        };
        tracing::info!(blob = %spec.blob_name, engine = ?spec.engine, host = %spec.host, port = spec.port, database = %spec.database, "dump started");
        match dump::run_dump(&dumper.storage, &spec, &dumper.options).await {
            Ok(o) => {
                tracing::info!(blob = %spec.blob_name, bytes = o.compressed_bytes, raw_bytes = o.uncompressed_bytes,
                    seconds = o.duration.as_secs_f64(), "dump completed");
                Ok(wit_dump::DumpOutcome {
                    compressed_bytes: o.compressed_bytes,
                    uncompressed_bytes: o.uncompressed_bytes,
                    sha256: o.sha256,
                    duration_ms: o.duration.as_millis() as u64,
                })
            }
            Err(f) => {
                tracing::warn!(blob = %spec.blob_name, class = %f.class, error = %f.message, "dump failed");
                let class = match f.class {
                    C::AuthFailed => F::AuthFailed,
                    C::NotFound => F::NotFound,
                    C::PermissionDenied => F::PermissionDenied,
                    C::Unreachable => F::Unreachable,
                    C::Timeout => F::Timeout,
                    C::Tls => F::Tls,
                    C::StorageFailed => F::StorageFailed,
                    C::ToolFailed | C::InvalidJob => F::ToolFailed,
                };
                Err(wit_dump::DumpFailure { class, message: f.message })
            }
        }
    }
}

/// The engine (with the on-disk compilation cache) and a linker offering everything our guests import.
pub fn engine_and_linker() -> anyhow::Result<(Engine, Linker<HostState>)> {
    let mut config = Config::new();
    config.wasm_component_model(true);
    match wasmtime::Cache::from_file(None) {
        Ok(cache) => {
            config.cache(Some(cache));
        }
        Err(e) => tracing::warn!(error = %e, "wasmtime compilation cache unavailable; components compile on every start"),
    }
    let engine = Engine::new(&config)?;
    let mut linker = Linker::new(&engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    wit_vars::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)?;
    wit_dump::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)?;
    Ok((engine, linker))
}

pub fn load_component(engine: &Engine, path: &Path) -> anyhow::Result<Component> {
    Component::from_file(engine, path).map_err(anyhow::Error::from).with_context(|| {
        format!("cannot load component {}: build it first (scripts/build.sh)", path.display())
    })
}
