//! The compiled-artifact cache: a recipe's machine code on disk, keyed by the SHA-256 of its
//! component bytes and the engine's compatibility hash (wasmtime's version and every setting
//! that changes the code), so a restart, another server on the machine or a new leader loads a
//! recipe in about a millisecond instead of compiling it (8 built-ins took 3.0 s to compile at
//! every start of a dev-profile server on this machine; the test suite starts hundreds).
//!
//! The cache directory must be as trusted as the binary: an artifact is machine code, loaded
//! as it is (wasmtime checks its header and engine settings, not its code). A file that does not
//! load is compiled again and replaced; a failed write only costs the next start a compile.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tracing::{debug, warn};
use wasmtime::component::Component;
use wasmtime::Engine;

/// The artifact file of `wasm` for `engine` in `dir`.
pub(crate) fn artifact_path(dir: &Path, engine: &Engine, wasm: &[u8]) -> PathBuf {
    let mut h = DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    let content = sha256_hex(wasm);
    dir.join(format!("{content}-{:016x}.cwasm", h.finish()))
}

/// The SHA-256 of `bytes`, in lowercase hex: a component's name in the cache and in the tree.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `wasm` compiled for `engine`: from the cache in `dir` if it holds it, else compiled and kept
/// there.
pub(crate) fn compile(engine: &Engine, wasm: &[u8], dir: &Path) -> wasmtime::Result<Component> {
    let path = artifact_path(dir, engine, wasm);
    if path.exists() {
        // SAFETY: the file was written by `Component::serialize` of this engine configuration
        // (its name says so), in a directory the operator trusts like the binary (module docs);
        // wasmtime refuses a file whose header or settings do not match.
        match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(c) => {
                debug!(path = %path.display(), "recipe loaded from the artifact cache");
                return Ok(c);
            }
            Err(e) => {
                warn!(path = %path.display(), "a cached artifact does not load, compiling again: {e:#}")
            }
        }
    }
    let component = Component::new(engine, wasm)?;
    if let Err(e) = store(&path, &component) {
        warn!(path = %path.display(), "could not keep the compiled recipe: {e:#}");
    }
    Ok(component)
}

/// Writes `component`'s artifact to `path` whole or not at all (a temporary file renamed).
fn store(path: &Path, component: &Component) -> std::io::Result<()> {
    let dir = path.parent().expect("a file in a directory");
    std::fs::create_dir_all(dir)?;
    let bytes = component.serialize().map_err(std::io::Error::other)?;
    let tmp = dir.join(format!(".{}.{}", std::process::id(), unique()));
    std::fs::write(&tmp, &bytes)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// A name no other writer in this process uses at the same time.
fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cached_artifact_is_loaded_instead_of_compiled_and_a_bad_one_is_replaced() {
        let engine = Engine::default();
        let wasm = wat_free_component();
        let dir = std::env::temp_dir().join(format!("wazoo-cache-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = artifact_path(&dir, &engine, &wasm);
        compile(&engine, &wasm, &dir).expect("compiles");
        let written = std::fs::metadata(&path).expect("kept").modified().unwrap();
        compile(&engine, &wasm, &dir).expect("loads");
        assert_eq!(
            std::fs::metadata(&path).unwrap().modified().unwrap(),
            written,
            "loaded, not written again"
        );
        std::fs::write(&path, b"not an artifact").unwrap();
        compile(&engine, &wasm, &dir).expect("compiled again");
        let fixed = std::fs::read(&path).unwrap();
        assert!(fixed.len() > 100, "replaced by a real artifact");
        let other = artifact_path(&dir, &engine, b"\0asm other");
        assert_ne!(other, path, "keyed by content");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The smallest component: the binary encoding of `(component)`.
    fn wat_free_component() -> Vec<u8> {
        b"\0asm\x0d\x00\x01\x00".to_vec()
    }
}
