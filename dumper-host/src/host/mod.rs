//! The wasmtime side: one engine and linker for every guest, and the per-instance state. Each host
//! interface a guest imports has its own file: [`variables`] (`fermyon:spin/variables`) and [`dump`]
//! (`dilux:dumper/dump`); [`notifier`] runs the notifier plug-ins, on an engine of their own.

pub mod compiled;
pub mod dump;
pub mod notifier;
pub mod restore;
pub mod variables;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Config, Engine};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::manifest::FileMount;
use crate::outbound::OutboundPolicy;

pub use dump::Dumper;

/// The job-runner world: the dump capability it imports, the job handler it exports.
pub mod job_runner {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "dilux:dumper/job-runner",
        imports: { default: async },
        exports: { default: async },
    });
}

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

pub struct HostState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    guest: GuestConfig,
    /// Restores this instance started and has not yet seen end.
    restores: restore::Tasks,
    /// What one instance may take: a guest asking for more memory fails alone, the host stays up.
    limits: wasmtime::StoreLimits,
}

/// The application variables a job-runner guest reads: storage, the container and the seal keys. Shared
/// tokens and sign-in secrets stay out of its reach.
pub const JOB_RUNNER_VARIABLES: [&str; 4] =
    ["storage_connection_string", "backups_container", "seal_key", "seal_key_previous"];

/// `vars` narrowed to [`JOB_RUNNER_VARIABLES`].
pub fn job_runner_variables(vars: &HashMap<String, String>) -> HashMap<String, String> {
    vars.iter()
        .filter(|(k, _)| JOB_RUNNER_VARIABLES.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Linear memory one guest instance may grow to.
pub const INSTANCE_MEMORY: usize = 256 << 20;

/// A store for one guest instance, with its memory capped at [`INSTANCE_MEMORY`].
pub fn store(engine: &wasmtime::Engine, state: HostState) -> wasmtime::Store<HostState> {
    let mut store = wasmtime::Store::new(engine, state);
    store.limiter(|s| &mut s.limits);
    store
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
        Ok(HostState {
            wasi: b.build(),
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            guest: guest.clone(),
            restores: restore::Tasks::default(),
            limits: wasmtime::StoreLimitsBuilder::new().memory_size(INSTANCE_MEMORY).build(),
        })
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

/// The engine and a linker offering everything our guests import.
pub fn engine_and_linker() -> anyhow::Result<(Engine, Linker<HostState>)> {
    let mut config = Config::new();
    config.wasm_component_model(true);
    let engine = Engine::new(&config)?;
    let mut linker = wasi_linker(&engine)?;
    variables::add_to_linker(&mut linker)?;
    job_runner::dilux::dumper::dump::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)?;
    job_runner::dilux::dumper::restore::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)?;
    Ok((engine, linker))
}

/// A linker offering WASI and `wasi:http` (through [`HostState`]'s outbound policy), and nothing of ours.
pub fn wasi_linker(engine: &Engine) -> anyhow::Result<Linker<HostState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    Ok(linker)
}

/// Loads a component, compiled on the first start and kept in [`compiled::default_dir`] for the next.
pub fn load_component(engine: &Engine, path: &Path) -> anyhow::Result<Component> {
    compiled::load(engine, path, compiled::default_dir().as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_job_runner_gets_storage_and_seal_keys_only() {
        let all: HashMap<String, String> = [
            "storage_connection_string",
            "backups_container",
            "seal_key",
            "seal_key_previous",
            "tick_token",
            "dumper_token",
            "auth_dev_secret",
            "auth_mode",
        ]
        .iter()
        .map(|k| (k.to_string(), "v".to_string()))
        .collect();
        let mut seen: Vec<String> = job_runner_variables(&all).into_keys().collect();
        seen.sort();
        assert_eq!(seen, ["backups_container", "seal_key", "seal_key_previous", "storage_connection_string"]);
    }
}
