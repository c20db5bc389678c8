//! Compiled components kept on disk: cranelift takes seconds per component and loading machine code takes
//! milliseconds, so every start after the first (and every other host of a test run) loads what the first
//! one compiled. Written by us rather than by wasmtime's `cache` feature, which compresses entries with
//! zstd: a C library that was a noticeable part of a fresh build.

use std::fs;
use std::hash::{Hash, Hasher};
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::Engine;

/// Entries nobody loaded for this long are removed when a new one is written (every build of the
/// components makes new ones).
const UNUSED_FOR: Duration = Duration::from_secs(14 * 24 * 3600);

/// The folder for compiled components: `DILUX_COMPILED_DIR`, else `$XDG_CACHE_HOME/dilux/compiled`, else
/// `~/.cache/dilux/compiled`; none when no home is known (components then compile on every start).
pub fn default_dir() -> Option<PathBuf> {
    let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    env("DILUX_COMPILED_DIR")
        .or_else(|| env("XDG_CACHE_HOME").map(|d| d.join("dilux/compiled")))
        .or_else(|| env("HOME").map(|d| d.join(".cache/dilux/compiled")))
}

/// Loads the component at `path`, compiled once per content and engine configuration into `dir`.
pub fn load(engine: &Engine, path: &Path, dir: Option<&Path>) -> anyhow::Result<Component> {
    let wasm = fs::read(path)
        .with_context(|| format!("cannot read component {}: build it first (scripts/build.sh)", path.display()))?;
    let compile = || {
        Component::new(engine, &wasm)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("cannot compile component {}", path.display()))
    };
    let Some(dir) = dir else { return compile() };
    let entry = dir.join(format!("{}.cwasm", key(engine, &wasm)));
    if entry.exists() {
        // SAFETY: entries are written only by `store` below, from `Engine::precompile_component` for an
        // engine whose compatibility hash is part of the name, in a folder only this user may write.
        // wasmtime still checks the header (version, target, settings) and refuses a mismatch.
        match unsafe { Component::deserialize_file(engine, &entry) } {
            Ok(component) => {
                // Marks the entry as used, for the clean-up.
                let _ = fs::File::options().write(true).open(&entry).and_then(|f| f.set_modified(SystemTime::now()));
                return Ok(component);
            }
            Err(e) => tracing::warn!(entry = %entry.display(), error = %e, "compiled component unusable; compiling"),
        }
    }
    let compiled = engine
        .precompile_component(&wasm)
        .map_err(anyhow::Error::from)
        .with_context(|| format!("cannot compile component {}", path.display()))?;
    if let Err(e) = store(dir, &entry, &compiled) {
        tracing::warn!(dir = %dir.display(), error = %e, "cannot keep the compiled component; it compiles next start");
    }
    // SAFETY: `compiled` was produced just now by this engine.
    unsafe { Component::deserialize(engine, &compiled) }
        .map_err(anyhow::Error::from)
        .with_context(|| format!("cannot load compiled component {}", path.display()))
}

/// The entry's name: the component's bytes and everything about the engine that makes compiled code
/// incompatible (wasmtime version, target, settings).
fn key(engine: &Engine, wasm: &[u8]) -> String {
    struct ShaHasher(Sha256);
    impl Hasher for ShaHasher {
        fn write(&mut self, bytes: &[u8]) {
            self.0.update(bytes);
        }
        fn finish(&self) -> u64 {
            0
        }
    }
    let mut h = ShaHasher(Sha256::new());
    engine.precompile_compatibility_hash().hash(&mut h);
    h.0.update(wasm);
    h.0.finalize().iter().take(20).map(|b| format!("{b:02x}")).collect()
}

/// Writes the entry whole or not at all (hosts starting side by side may write the same one), then removes
/// entries unused for [`UNUSED_FOR`].
fn store(dir: &Path, entry: &Path, compiled: &[u8]) -> std::io::Result<()> {
    fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    let tmp = dir.join(format!(".{}.{}.tmp", std::process::id(), uuid::Uuid::new_v4().simple()));
    let written = fs::File::options()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| f.write_all(compiled).and_then(|()| f.sync_all()))
        .and_then(|()| fs::rename(&tmp, entry));
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written?;
    let now = SystemTime::now();
    for old in fs::read_dir(dir)?.flatten() {
        let unused = old
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| now.duration_since(t).unwrap_or_default() > UNUSED_FOR);
        if unused && old.path() != entry {
            let _ = fs::remove_file(old.path());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    // The smallest component there is: the preamble of the component binary format.
    const EMPTY_COMPONENT: &[u8] = b"\0asm\x0d\0\x01\0";

    fn engine() -> Engine {
        let mut config = wasmtime::Config::new();
        config.wasm_component_model(true);
        Engine::new(&config).unwrap()
    }

    #[test]
    fn a_component_is_compiled_once_and_then_loaded() {
        let dir = std::env::temp_dir().join(format!("dilux-compiled-{}", uuid::Uuid::new_v4().simple()));
        let wasm = dir.join("c.wasm");
        fs::create_dir_all(&dir).unwrap();
        fs::write(&wasm, EMPTY_COMPONENT).unwrap();
        let cache = dir.join("compiled");
        let engine = engine();

        load(&engine, &wasm, Some(&cache)).unwrap();
        let entries = || fs::read_dir(&cache).unwrap().flatten().map(|e| e.path()).collect::<Vec<_>>();
        let [entry] = entries().try_into().unwrap();
        assert_eq!(entry.extension().unwrap(), "cwasm");

        // A damaged entry is compiled again and replaced, never trusted.
        fs::write(&entry, b"not machine code").unwrap();
        load(&engine, &wasm, Some(&cache)).unwrap();
        assert_eq!(entries(), std::slice::from_ref(&entry));
        assert_ne!(fs::read(&entry).unwrap(), b"not machine code");

        // Other bytes (a custom section added) are another entry.
        fs::write(&wasm, [EMPTY_COMPONENT, b"\0\x02\x01x"].concat()).unwrap();
        load(&engine, &wasm, Some(&cache)).unwrap();
        assert_eq!(entries().len(), 2);
        fs::remove_dir_all(&dir).unwrap();
    }
}
