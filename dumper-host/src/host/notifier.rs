//! Notifier plug-ins: components of the `dilux:notify/plugin` world that an operator installs by listing
//! them in `notifiers.toml`. Each delivery runs in a fresh instance that may reach only the plug-in's own
//! hosts, has [`PLUGIN_MEMORY`] of memory and [`PLUGIN_TIME`] of time; a plug-in that traps, spins or
//! waits longer fails that delivery alone (it is retried like any other) and the host goes on.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dilux_domain::notify::{is_plugin_name, Event, Severity};
use serde::Deserialize;
use wasmtime::component::Linker;
use wasmtime::{Config, Engine, UpdateDeadline};

use super::{GuestConfig, HostState};
use crate::outbound::{AllowedHost, OutboundPolicy};

pub mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit/notify",
        world: "dilux:notify/plugin",
        imports: { default: async },
        exports: { default: async },
    });
}

use bindings::dilux::notify::types as wit;

/// How long one delivery may take, from instantiation to answer.
pub const PLUGIN_TIME: Duration = Duration::from_secs(10);
/// Linear memory one plug-in instance may grow to.
pub const PLUGIN_MEMORY: usize = 64 << 20;
/// How often the plug-ins' engine advances its epoch: a guest computing without end is stopped at the
/// first check past its deadline.
const EPOCH_TICK: Duration = Duration::from_millis(50);

/// An unusable `notifiers.toml`, said so the operator knows which entry to fix.
#[derive(Debug, thiserror::Error)]
pub enum NotifiersError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path} is not valid: {source}")]
    Parse { path: PathBuf, source: toml::de::Error },
    #[error("{path}: notifier `{name}`: {why}")]
    Entry { path: PathBuf, name: String, why: String },
}

/// `notifiers.toml`: the notifier plug-ins this host runs.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifiersFile {
    #[serde(default)]
    pub notifier: Vec<NotifierEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifierEntry {
    /// What a plug-in channel names (`plugin`).
    pub name: String,
    /// The component, relative to the file.
    pub source: PathBuf,
    /// Where it may send, as Spin's `allowed_outbound_hosts`: `https://discord.com`, `https://*.example.com`.
    #[serde(default)]
    pub allowed_outbound_hosts: Vec<String>,
}

struct Plugin {
    pre: bindings::PluginPre<HostState>,
    guest: GuestConfig,
}

/// The installed plug-ins, compiled and linked once.
pub struct Notifiers {
    plugins: HashMap<String, Plugin>,
    engine: Engine,
}

impl Notifiers {
    /// Loads the plug-ins `path` lists; every entry is checked and linked now, so a plug-in that cannot run
    /// stops the host at start with its name, not a delivery later.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text =
            std::fs::read_to_string(path).map_err(|source| NotifiersError::Read { path: path.into(), source })?;
        let file: NotifiersFile =
            toml::from_str(&text).map_err(|source| NotifiersError::Parse { path: path.into(), source })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let (engine, linker) = engine_and_linker()?;
        let mut plugins = HashMap::new();
        for entry in file.notifier {
            let bad = |why: String| NotifiersError::Entry { path: path.into(), name: entry.name.clone(), why };
            if !is_plugin_name(&entry.name) {
                return Err(bad("the name must be a-z, then a-z, 0-9 and -, 1 to 63".into()).into());
            }
            if plugins.contains_key(&entry.name) {
                return Err(bad("is listed twice".into()).into());
            }
            let allowed = entry
                .allowed_outbound_hosts
                .iter()
                .map(|h| allowed_host(h).map_err(|why| bad(why.clone())))
                .collect::<Result<Vec<_>, _>>()?;
            let component = super::load_component(&engine, &base.join(&entry.source))?;
            let pre = linker
                .instantiate_pre(&component)
                .and_then(bindings::PluginPre::new)
                .map_err(|e| bad(format!("is not a dilux:notify plug-in this host can run: {e:#}")))?;
            let name = format!("notifier {}", entry.name);
            let guest = GuestConfig {
                name: name.clone(),
                variables: Arc::default(),
                outbound: OutboundPolicy { allowed, component: name },
                files: vec![],
                dumper: None,
            };
            tracing::info!(notifier = %entry.name, hosts = ?entry.allowed_outbound_hosts, "notifier plug-in loaded");
            plugins.insert(entry.name, Plugin { pre, guest });
        }
        Ok(Notifiers { plugins, engine })
    }

    /// The installed plug-ins' names, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.plugins.keys().cloned().collect();
        names.sort();
        names
    }

    /// Runs plug-in `name` for one delivery; whatever it does, the answer is whether it delivered, the
    /// destination's status, and what it said or why it failed (uncut: the sender cuts every answer alike).
    pub async fn notify(
        &self,
        name: &str,
        event: &Event,
        delivery_id: &str,
        settings: &[(String, String)],
    ) -> (bool, Option<u16>, String) {
        let outcome = match self.plugins.get(name) {
            None => Err(format!(
                "no notifier plug-in `{name}` is installed on the dumper-host (installed: {}); add it to \
                 notifiers.toml, or pick another plug-in",
                if self.plugins.is_empty() { "none".into() } else { self.names().join(", ") }
            )),
            Some(p) => match tokio::time::timeout(PLUGIN_TIME, self.run(p, event, delivery_id, settings)).await {
                Ok(Ok(Ok(d))) => Ok(d),
                Ok(Ok(Err(said))) => Err(format!("the plug-in {name} says: {said}")),
                Ok(Err(trap)) => {
                    tracing::warn!(notifier = %name, error = %format!("{trap:#}"), "notifier plug-in failed");
                    Err(format!("the plug-in {name} failed ({}); see the dumper-host log", root_cause(&trap)))
                }
                Err(_) => Err(format!("the plug-in {name} did not finish in {} s", PLUGIN_TIME.as_secs())),
            },
        };
        match outcome {
            Ok(d) => (true, d.status, d.message),
            Err(message) => (false, None, message),
        }
    }

    async fn run(
        &self,
        p: &Plugin,
        event: &Event,
        delivery_id: &str,
        settings: &[(String, String)],
    ) -> wasmtime::Result<Result<wit::Delivered, String>> {
        let mut state = HostState::new(&p.guest).map_err(wasmtime::Error::from_anyhow)?;
        state.limits = wasmtime::StoreLimitsBuilder::new().memory_size(PLUGIN_MEMORY).build();
        let mut store = super::store(&self.engine, state);
        // Every tick, a guest that computes gives its thread back to the other tasks (two cores run the whole
        // host); past its time it traps, whether it loops with calls or without.
        let deadline = Instant::now() + PLUGIN_TIME;
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            Ok(if Instant::now() >= deadline { UpdateDeadline::Interrupt } else { UpdateDeadline::Yield(1) })
        });
        let plugin = p.pre.instantiate_async(&mut store).await?;
        plugin.dilux_notify_notifier().call_notify(&mut store, &to_wit(event), delivery_id, settings).await
    }
}

/// An allow-list entry of a plug-in: Spin's syntax, but never every host.
fn allowed_host(entry: &str) -> Result<AllowedHost, String> {
    let host = AllowedHost::parse(entry).map_err(|e| e.0)?;
    if !host.names_hosts() {
        return Err(format!("`{entry}` would let the plug-in reach any host; list the hosts it needs"));
    }
    Ok(host)
}

/// The error's innermost cause, on one line.
fn root_cause(e: &wasmtime::Error) -> String {
    if matches!(e.downcast_ref::<wasmtime::Trap>(), Some(wasmtime::Trap::Interrupt)) {
        return format!("it was stopped at its {} s limit", PLUGIN_TIME.as_secs());
    }
    e.root_cause().to_string().lines().next().unwrap_or("unknown error").to_string()
}

fn to_wit(e: &Event) -> wit::Event {
    wit::Event {
        id: e.id.clone(),
        kind: e.kind.as_str().into(),
        severity: match e.severity {
            Severity::Info => wit::Severity::Info,
            Severity::Warning => wit::Severity::Warning,
            Severity::Error => wit::Severity::Error,
        },
        resolved: e.resolved,
        title: e.title.clone(),
        message: e.message.clone(),
        at: e.at.to_rfc3339(),
        database_id: e.database_id.clone(),
        database_alias: e.database_alias.clone(),
        engine_id: e.engine_id.clone(),
        policy_id: e.policy_id.clone(),
    }
}

/// The plug-ins' own engine (the epoch deadline is an engine setting) and a linker with WASI and
/// `wasi:http` only: none of our interfaces, no variables.
fn engine_and_linker() -> anyhow::Result<(Engine, Linker<HostState>)> {
    let mut config = Config::new();
    config.wasm_component_model(true).epoch_interruption(true);
    let engine = Engine::new(&config)?;
    let weak = engine.weak();
    std::thread::Builder::new().name("notifier-epoch".into()).spawn(move || {
        while let Some(engine) = weak.upgrade() {
            engine.increment_epoch();
            drop(engine);
            std::thread::sleep(EPOCH_TICK);
        }
    })?;
    let linker = super::wasi_linker(&engine)?;
    Ok((engine, linker))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plugin_names_its_hosts() {
        assert!(allowed_host("https://discord.com").is_ok());
        assert!(allowed_host("https://*.example.com").is_ok());
        for any in ["https://*", "*://*:*", "http://*:8080"] {
            assert!(allowed_host(any).unwrap_err().contains("any host"), "{any}");
        }
        assert!(allowed_host("discord.com").unwrap_err().contains("scheme"));
    }

    #[test]
    fn a_bad_entry_is_named() {
        let dir = std::env::temp_dir().join(format!("dilux-notifiers-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("notifiers.toml");
        for (text, says) in [
            ("[[notifier]]\nname = \"Discord\"\nsource = \"x.wasm\"\n", "notifier `Discord`: the name"),
            ("[[notifier]]\nname = \"d\"\nsource = \"x.wasm\"\nallowed_outbound_hosts = [\"https://*\"]\n", "any host"),
            ("[[notifier]]\nname = \"d\"\nsource = \"missing.wasm\"\n", "missing.wasm"),
            ("[[notifier]]\nname = \"d\"\nsrc = \"x.wasm\"\n", "unknown field"),
        ] {
            std::fs::write(&file, text).unwrap();
            let e = format!("{:#}", Notifiers::load(&file).err().expect("refused"));
            assert!(e.contains(says), "{text}: {e}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
