//! The process-wide wasmtime engine: compilation (through the artifact
//! cache), the linker with the sandbox's imports, and the epoch ticker that
//! enforces call deadlines.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, OptLevel};

use super::cache::ArtifactCache;
use super::component::{CompileStats, StrategyComponent};
pub use super::sandbox::EPOCH_TICK;
use super::sandbox::{self, GuestState, SandboxLimits};
use super::{ContentHash, LoadError};

/// Options for [`StrategyEngine::new`].
#[derive(Debug, Clone, Default)]
pub struct EngineOptions {
    /// Where compiled components are cached; `None` disables the cache.
    pub cache_dir: Option<std::path::PathBuf>,
}

/// Shared by every strategy and instance of the process.
pub struct StrategyEngine {
    engine: Engine,
    linker: Linker<GuestState>,
    cache: Option<ArtifactCache>,
    ticker: Option<EpochTicker>,
}

/// Errors creating the engine.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("cannot configure the WebAssembly engine: {0}")]
    Wasmtime(String),
    #[error(transparent)]
    Cache(#[from] super::cache::CacheError),
}

impl StrategyEngine {
    pub fn new(options: EngineOptions) -> Result<Arc<Self>, EngineError> {
        let mut config = Config::new();
        config.wasm_component_model(true);
        config.epoch_interruption(true);
        // Async/concurrent component calls are not used; turning their
        // bookkeeping off halves the cost of a call.
        config.concurrency_support(false);
        config.cranelift_opt_level(OptLevel::Speed);
        let engine = Engine::new(&config).map_err(|e| EngineError::Wasmtime(format!("{e:#}")))?;

        let mut linker = Linker::new(&engine);
        sandbox::link_host(&mut linker).map_err(|e| EngineError::Wasmtime(format!("{e:#}")))?;

        let cache = match &options.cache_dir {
            Some(dir) => Some(ArtifactCache::open(dir, &engine)?),
            None => None,
        };
        let ticker = EpochTicker::start(engine.clone())
            .map_err(|e| EngineError::Wasmtime(format!("cannot start the epoch thread: {e}")))?;
        Ok(Arc::new(StrategyEngine { engine, linker, cache, ticker: Some(ticker) }))
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Loads a strategy from a file (see [`StrategyEngine::load_bytes`]).
    pub fn load_file(
        &self,
        name: &str,
        path: &Path,
        limits: &SandboxLimits,
    ) -> Result<Arc<StrategyComponent>, LoadError> {
        let bytes = std::fs::read(path).map_err(|source| LoadError::Read { path: path.to_path_buf(), source })?;
        self.load_bytes(name, &bytes, limits)
    }

    /// Compiles (or fetches from the cache), checks the world, links and
    /// describes a strategy component.
    pub fn load_bytes(
        &self,
        name: &str,
        bytes: &[u8],
        limits: &SandboxLimits,
    ) -> Result<Arc<StrategyComponent>, LoadError> {
        let hash = ContentHash::of(bytes);
        let (component, compile) = self.compile(bytes, &hash)?;
        StrategyComponent::link(&self.engine, &self.linker, name, component, hash, compile, limits).map(Arc::new)
    }

    fn compile(&self, bytes: &[u8], hash: &ContentHash) -> Result<(Component, CompileStats), LoadError> {
        check_is_component(bytes)?;
        let started = Instant::now();
        if let Some(cache) = &self.cache {
            if let Some(component) = cache.get(&self.engine, hash) {
                return Ok((component, CompileStats { from_cache: true, duration: started.elapsed() }));
            }
            // Precompile once, store, then load the stored artifact: the same
            // bytes serve this run and the next.
            match cache.put(&self.engine, hash, bytes) {
                Ok(()) => {
                    if let Some(component) = cache.get(&self.engine, hash) {
                        return Ok((component, CompileStats { from_cache: false, duration: started.elapsed() }));
                    }
                }
                Err(super::cache::CacheError::Precompile(message)) => return Err(LoadError::Compile(message)),
                Err(error) => {
                    tracing::warn!(error = %error, "strategy cache unavailable; compiling in memory")
                }
            }
        }
        let component = Component::new(&self.engine, bytes).map_err(|e| LoadError::Compile(format!("{e:#}")))?;
        Ok((component, CompileStats { from_cache: false, duration: started.elapsed() }))
    }
}

impl Drop for StrategyEngine {
    fn drop(&mut self) {
        if let Some(ticker) = self.ticker.take() {
            ticker.stop();
        }
    }
}

/// Refuses inputs that are not components before wasmtime sees them, with a
/// message that says what the file is instead.
fn check_is_component(bytes: &[u8]) -> Result<(), LoadError> {
    const MAGIC: &[u8; 4] = b"\0asm";
    if bytes.len() < 8 || &bytes[0..4] != MAGIC {
        return Err(LoadError::NotAComponent(
            "the file is not WebAssembly (no `\\0asm` header); is it truncated or the wrong file?".to_string(),
        ));
    }
    // Bytes 4..8: version 1 + layer 0 = core module; layer 1 = component.
    if bytes[6..8] == [0, 0] {
        return Err(LoadError::NotAComponent(
            "this is a core WebAssembly module, not a component; build for `wasm32-wasip2` or wrap it with `wasm-tools component new`".to_string(),
        ));
    }
    Ok(())
}

/// Advances the engine's epoch every [`EPOCH_TICK`] so that deadlines fire.
struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl EpochTicker {
    fn start(engine: Engine) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new().name("dshost-epoch".into()).spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                std::thread::sleep(EPOCH_TICK);
                engine.increment_epoch();
            }
        })?;
        Ok(EpochTicker { stop, thread })
    }

    fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.thread.join();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_non_components() {
        assert!(
            matches!(check_is_component(b"hello"), Err(LoadError::NotAComponent(m)) if m.contains("not WebAssembly"))
        );
        let core = [0, b'a', b's', b'm', 1, 0, 0, 0];
        assert!(
            matches!(check_is_component(&core), Err(LoadError::NotAComponent(m)) if m.contains("core WebAssembly module"))
        );
        let component = [0, b'a', b's', b'm', 0x0d, 0, 1, 0];
        assert!(check_is_component(&component).is_ok());
    }
}
