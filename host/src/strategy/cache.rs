//! On-disk cache of compiled strategy components, keyed by content hash and
//! engine compatibility, so a known component loads in about a millisecond
//! instead of being compiled again (startup, reload, rollback).
//!
//! Loading a cached artifact runs native code produced by an earlier run of
//! dshost, so the cache directory must only be writable by the dshost user:
//! it is created with mode 0700 and entries are only ever written by us.

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};

use wasmtime::component::Component;
use wasmtime::Engine;

use super::ContentHash;

/// A directory of precompiled components.
#[derive(Debug, Clone)]
pub struct ArtifactCache {
    dir: PathBuf,
    /// Distinguishes engines (wasmtime version and settings) that cannot
    /// share artifacts.
    engine_tag: String,
}

/// Why the cache could not be opened or written.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cannot create the strategy cache directory {dir}: {source}")]
    CreateDir { dir: PathBuf, source: std::io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("cannot precompile the component: {0}")]
    Precompile(String),
}

impl ArtifactCache {
    /// Opens (creating) the cache at `dir` for artifacts of `engine`.
    pub fn open(dir: &Path, engine: &Engine) -> Result<Self, CacheError> {
        create_private_dir(dir).map_err(|source| CacheError::CreateDir { dir: dir.to_path_buf(), source })?;
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let engine_tag = format!("{:016x}", hasher.finish());
        Ok(ArtifactCache { dir: dir.to_path_buf(), engine_tag })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path_for(&self, hash: &ContentHash) -> PathBuf {
        self.dir.join(format!("{}-{}-wasmtime{}.cwasm", hash.hex(), self.engine_tag, env!("CARGO_PKG_VERSION")))
    }

    /// The cached component for `hash`, if a usable artifact exists. A
    /// corrupt or incompatible artifact is removed and reported as a miss.
    pub fn get(&self, engine: &Engine, hash: &ContentHash) -> Option<Component> {
        let path = self.path_for(hash);
        // Read into memory rather than mapping the file: a mapped artifact
        // that someone truncates while we run would crash the process.
        let bytes = std::fs::read(&path).ok()?;
        // SAFETY: artifacts in this directory are written only by `put`
        // below, from `Engine::precompile_component`, into a directory only
        // the dshost user can write; wasmtime checks the version and engine
        // settings recorded in the artifact and refuses mismatches.
        match unsafe { Component::deserialize(engine, &bytes) } {
            Ok(component) => Some(component),
            Err(error) => {
                tracing::warn!(path = %path.display(), error = %error, "discarding unusable compiled strategy artifact");
                let _ = std::fs::remove_file(&path);
                None
            }
        }
    }

    /// Precompiles `wasm` and stores it under `hash` (atomically: readers
    /// never see a partial file).
    pub fn put(&self, engine: &Engine, hash: &ContentHash, wasm: &[u8]) -> Result<(), CacheError> {
        let artifact = engine.precompile_component(wasm).map_err(|e| CacheError::Precompile(format!("{e:#}")))?;
        let path = self.path_for(hash);
        let write = || -> std::io::Result<()> {
            let mut tmp = tempfile_in(&self.dir)?;
            tmp.1.write_all(&artifact)?;
            tmp.1.sync_all()?;
            std::fs::rename(&tmp.0, &path)
        };
        write().map_err(|source| CacheError::Write { path: path.clone(), source })
    }
}

/// A uniquely named temporary file in `dir`.
fn tempfile_in(dir: &Path) -> std::io::Result<(PathBuf, std::fs::File)> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = format!(".tmp-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed));
    let path = dir.join(name);
    let file = std::fs::OpenOptions::new().write(true).create_new(true).open(&path)?;
    Ok((path, file))
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
    }
    #[cfg(not(unix))]
    {
        std::fs::create_dir_all(dir)
    }
}
