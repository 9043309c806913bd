//! Finding and loading ONNX Runtime. The library is opened at run time, so
//! dshost builds and runs without it; it is looked for, in order, at
//! `DSHOST_ORT_LIB` (a file), in the cache `scripts/setup.sh` fills
//! (`~/.cache/dshost/onnxruntime/<version>/libonnxruntime.so*`), then on the
//! system library path. ONNX Runtime allows one environment per process, so
//! the loaded runtime is process-wide.

use std::ffi::CStr;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use serde::Serialize;

use super::provider::{ProviderStatus, ProviderSupport};

/// The ONNX Runtime release `scripts/fetch-models.sh` installs.
pub const SETUP_VERSION: &str = "1.31.1";
/// Oldest ONNX Runtime minor version (1.x) this build can use: the `api-NN`
/// feature of the `ort` crate.
pub const MIN_MINOR_VERSION: u32 = ort::MINOR_VERSION;
/// Environment variable naming the library file to load.
pub const LIBRARY_ENV: &str = "DSHOST_ORT_LIB";
/// Names tried on the system library path (LD_LIBRARY_PATH, ld.so.cache).
const SYSTEM_NAMES: [&str; 2] = ["libonnxruntime.so", "libonnxruntime.so.1"];
const FIX: &str = "run `bash scripts/setup.sh` (it fetches ONNX Runtime into ~/.cache/dshost/onnxruntime/), \
                   or set DSHOST_ORT_LIB to a libonnxruntime.so file";

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("ONNX Runtime not found; looked at: {}. Fix: {FIX}", looked.join("; "))]
    NotFound { looked: Vec<String> },
    #[error("{} ({origin}) cannot be loaded as a library: {error}. Fix: {FIX}", path.display())]
    NotALibrary { path: PathBuf, origin: Origin, error: String },
    #[error("{} ({origin}) is not ONNX Runtime: it has no `OrtGetApiBase`. Fix: {FIX}", path.display())]
    NotOnnxRuntime { path: PathBuf, origin: Origin },
    #[error(
        "{} ({origin}) is ONNX Runtime {version}; dshost needs 1.{MIN_MINOR_VERSION} or newer. Fix: {FIX}",
        path.display()
    )]
    TooOld { path: PathBuf, origin: Origin, version: String },
    #[error("ONNX Runtime at {} did not start: {source}", path.display())]
    Environment { path: PathBuf, source: ort::Error },
}

/// Where a library candidate came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// `DSHOST_ORT_LIB`.
    Env,
    /// The setup cache.
    Cache,
    /// The system library path.
    System,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Origin::Env => "from DSHOST_ORT_LIB",
            Origin::Cache => "from the setup cache",
            Origin::System => "from the system library path",
        })
    }
}

/// Where to look for the library.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LibrarySearch {
    /// `DSHOST_ORT_LIB`: when set, the only candidate (an explicit choice
    /// that does not load is an error, not a reason to pick another).
    pub env_override: Option<PathBuf>,
    /// `~/.cache/dshost/onnxruntime`.
    pub cache_dir: Option<PathBuf>,
    /// Try the system library path last.
    pub system: bool,
}

/// One place to try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Candidate {
    File {
        path: PathBuf,
        origin: Origin,
    },
    /// A bare name for the dynamic loader.
    Name(&'static str),
}

impl LibrarySearch {
    /// The search of this process: `DSHOST_ORT_LIB`, then
    /// `${XDG_CACHE_HOME:-~/.cache}/dshost/onnxruntime`, then the system.
    pub fn from_env() -> Self {
        let env_override = std::env::var_os(LIBRARY_ENV).filter(|v| !v.is_empty()).map(PathBuf::from);
        let cache = std::env::var_os("XDG_CACHE_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").filter(|v| !v.is_empty()).map(|h| PathBuf::from(h).join(".cache")));
        LibrarySearch { env_override, cache_dir: cache.map(|c| c.join("dshost").join("onnxruntime")), system: true }
    }

    /// Candidates in the order they are tried, and a line per place that
    /// gave none (for the not-found message).
    pub fn candidates(&self) -> (Vec<Candidate>, Vec<String>) {
        let mut empty = Vec::new();
        if let Some(path) = &self.env_override {
            return (vec![Candidate::File { path: path.clone(), origin: Origin::Env }], empty);
        }
        empty.push(format!("{LIBRARY_ENV} (unset)"));
        let mut candidates = Vec::new();
        if let Some(dir) = &self.cache_dir {
            let found = cached_libraries(dir);
            if found.is_empty() {
                empty.push(format!("{}/<version>/libonnxruntime.so* (none)", dir.display()));
            }
            candidates.extend(found.into_iter().map(|path| Candidate::File { path, origin: Origin::Cache }));
        }
        if self.system {
            candidates.extend(SYSTEM_NAMES.iter().map(|name| Candidate::Name(name)));
        }
        (candidates, empty)
    }
}

/// `libonnxruntime.so*` files under `dir/<version>/`, newest version first,
/// a GPU build (`<version>-gpu`) before the CPU build of the same version:
/// the GPU build runs on the CPU too, and whoever fetched it wants the GPU.
fn cached_libraries(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut found: Vec<((Vec<u32>, bool), PathBuf)> = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let (version, gpu) = match name.strip_suffix("-gpu") {
            Some(version) => (version.to_string(), true),
            None => (name.clone(), false),
        };
        let Some(key) = parse_version(&version) else { continue };
        let Ok(files) = std::fs::read_dir(entry.path()) else { continue };
        let mut libraries: Vec<PathBuf> = files
            .flatten()
            .map(|f| f.path())
            .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(is_library_name))
            .collect();
        // The fully versioned name first (`libonnxruntime.so.1.31.1`).
        libraries.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
        if let Some(library) = libraries.into_iter().next() {
            found.push(((key, gpu), library));
        }
    }
    found.sort_by(|a, b| b.0.cmp(&a.0));
    found.into_iter().map(|(_, path)| path).collect()
}

fn is_library_name(name: &str) -> bool {
    match name.strip_prefix("libonnxruntime.so") {
        Some("") => true,
        Some(rest) => rest.strip_prefix('.').is_some_and(|v| v.split('.').all(|p| p.parse::<u32>().is_ok())),
        None => false,
    }
}

fn parse_version(text: &str) -> Option<Vec<u32>> {
    let parts: Option<Vec<u32>> = text.split('.').map(|p| p.parse().ok()).collect();
    parts.filter(|p| !p.is_empty())
}

/// What was checked about a library file before handing it to `ort`.
#[derive(Debug, Clone)]
struct Checked {
    path: PathBuf,
    origin: Origin,
    version: String,
}

/// Opens `candidate` and checks that it is an ONNX Runtime new enough for
/// this build, without initialising it.
fn check(candidate: &Candidate) -> Result<Checked, RuntimeError> {
    let (path, origin) = match candidate {
        Candidate::File { path, origin } => (path.clone(), *origin),
        Candidate::Name(name) => (PathBuf::from(name), Origin::System),
    };
    // SAFETY: loading runs the library's initialisers; ONNX Runtime's are
    // benign, and any file here was chosen by the user or by setup.
    let library = unsafe { libloading::Library::new(&path) }.map_err(|e| RuntimeError::NotALibrary {
        path: path.clone(),
        origin,
        error: e.to_string(),
    })?;
    // SAFETY: the prototype is ONNX Runtime's C API (`OrtGetApiBase`).
    let get_base: libloading::Symbol<unsafe extern "C" fn() -> *const ort::sys::OrtApiBase> =
        unsafe { library.get(b"OrtGetApiBase") }
            .map_err(|_| RuntimeError::NotOnnxRuntime { path: path.clone(), origin })?;
    // SAFETY: `OrtGetApiBase` returns a pointer to a static struct, and
    // `GetVersionString` a static NUL-terminated string.
    let version = unsafe {
        let base = get_base();
        if base.is_null() {
            return Err(RuntimeError::NotOnnxRuntime { path, origin });
        }
        CStr::from_ptr(((*base).GetVersionString)()).to_string_lossy().into_owned()
    };
    let minor = version.split('.').nth(1).and_then(|m| m.parse::<u32>().ok()).unwrap_or(0);
    if !version.starts_with("1.") || minor < MIN_MINOR_VERSION {
        return Err(RuntimeError::TooOld { path, origin, version });
    }
    // The resolved file, for the report (a bare name tells the user little).
    let path = match candidate {
        Candidate::Name(_) => resolved_path(&library).unwrap_or(path),
        Candidate::File { .. } => path,
    };
    Ok(Checked { path, origin, version })
}

/// The file the dynamic loader picked for a library opened by name.
fn resolved_path(library: &libloading::Library) -> Option<PathBuf> {
    // SAFETY: `dladdr` on the address of a symbol of a loaded library.
    unsafe {
        let symbol: libloading::Symbol<unsafe extern "C" fn()> = library.get(b"OrtGetApiBase").ok()?;
        let mut info: libc::Dl_info = std::mem::zeroed();
        if libc::dladdr(*symbol as *const libc::c_void, &mut info) == 0 || info.dli_fname.is_null() {
            return None;
        }
        Some(PathBuf::from(CStr::from_ptr(info.dli_fname).to_string_lossy().into_owned()))
    }
}

/// The loaded ONNX Runtime of this process.
pub struct OrtRuntime {
    library: PathBuf,
    origin: Origin,
    version: String,
    environment: ort::environment::Environment,
    providers: Mutex<Vec<((super::provider::Provider, u32), ProviderStatus)>>,
}

impl std::fmt::Debug for OrtRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrtRuntime").field("library", &self.library).field("version", &self.version).finish()
    }
}

static RUNTIME: OnceLock<OrtRuntime> = OnceLock::new();
static LOADING: Mutex<()> = Mutex::new(());

impl OrtRuntime {
    /// The process's runtime, loading it on first use. A failed load is
    /// not remembered: a later call (after setup ran) tries again.
    pub fn get_or_load(search: &LibrarySearch) -> Result<&'static OrtRuntime, RuntimeError> {
        if let Some(runtime) = RUNTIME.get() {
            return Ok(runtime);
        }
        let _guard = LOADING.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(runtime) = RUNTIME.get() {
            return Ok(runtime);
        }
        let runtime = Self::load(search)?;
        Ok(RUNTIME.get_or_init(|| runtime))
    }

    /// The runtime if it was loaded already.
    pub fn loaded() -> Option<&'static OrtRuntime> {
        RUNTIME.get()
    }

    fn load(search: &LibrarySearch) -> Result<OrtRuntime, RuntimeError> {
        let (candidates, mut looked) = search.candidates();
        let mut first_error = None;
        for candidate in &candidates {
            match check(candidate) {
                Ok(checked) => return Self::start(checked),
                // An explicit file, or a file setup put in the cache, that
                // does not load is worth its own message; a system name that
                // is simply absent is one line of the not-found list.
                Err(RuntimeError::NotALibrary { path, origin: Origin::System, error }) => {
                    looked.push(format!("{} on the system library path ({error})", path.display()));
                }
                Err(error) => {
                    if matches!(candidate, Candidate::File { origin: Origin::Env, .. }) {
                        return Err(error);
                    }
                    looked.push(error.to_string());
                    first_error.get_or_insert(error);
                }
            }
        }
        match first_error {
            Some(error) if candidates.len() == 1 => Err(error),
            _ => Err(RuntimeError::NotFound { looked }),
        }
    }

    fn start(checked: Checked) -> Result<OrtRuntime, RuntimeError> {
        let Checked { path, origin, version } = checked;
        let builder = ort::init_from(&path).map_err(|e| RuntimeError::NotALibrary {
            path: path.clone(),
            origin,
            error: e.to_string(),
        })?;
        let environment = builder
            .with_name("dshost")
            .with_telemetry(false)
            .build()
            .map_err(|source| RuntimeError::Environment { path: path.clone(), source })?;
        tracing::info!(library = %path.display(), %version, "ONNX Runtime loaded ({origin})");
        Ok(OrtRuntime { library: path, origin, version, environment, providers: Mutex::new(Vec::new()) })
    }

    pub fn version(&self) -> &str {
        &self.version
    }

    pub fn library(&self) -> &Path {
        &self.library
    }

    pub fn origin(&self) -> Origin {
        self.origin
    }

    pub fn environment(&self) -> &ort::environment::Environment {
        &self.environment
    }

    /// Whether `provider` starts on `device_id` (tried once per process:
    /// it creates a small session on the device).
    pub fn provider_status(&self, provider: super::provider::Provider, device_id: u32) -> ProviderStatus {
        let mut cache = self.providers.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((_, status)) = cache.iter().find(|(key, _)| *key == (provider, device_id)) {
            return status.clone();
        }
        let status = super::provider::try_provider(self, provider, device_id);
        cache.push(((provider, device_id), status.clone()));
        status
    }

    /// CUDA and TensorRT on `device_id`, for provider selection and probes.
    pub fn provider_support(&self, device_id: u32) -> ProviderSupport {
        ProviderSupport {
            cpu: self.provider_status(super::provider::Provider::Cpu, device_id),
            cuda: self.provider_status(super::provider::Provider::Cuda, device_id),
            tensorrt: self.provider_status(super::provider::Provider::TensorRt, device_id),
        }
    }

    /// What `dshost probe` and `dshost model check` print.
    pub fn report(&self, device_id: u32) -> RuntimeReport {
        RuntimeReport {
            loaded: true,
            version: Some(self.version.clone()),
            library: Some(self.library.display().to_string()),
            origin: Some(self.origin),
            error: None,
            providers: Some(self.provider_support(device_id)),
        }
    }
}

/// ONNX Runtime as `dshost probe` reports it.
#[derive(Debug, Clone, Serialize)]
pub struct RuntimeReport {
    pub loaded: bool,
    pub version: Option<String>,
    pub library: Option<String>,
    pub origin: Option<Origin>,
    /// Why it could not be loaded, with the fix.
    pub error: Option<String>,
    /// CPU is always usable once loaded; CUDA and TensorRT with the reason
    /// when not.
    pub providers: Option<ProviderSupport>,
}

/// Loads the runtime (if it is not loaded) and reports it; never fails.
pub fn probe(search: &LibrarySearch, device_id: u32) -> RuntimeReport {
    match OrtRuntime::get_or_load(search) {
        Ok(runtime) => runtime.report(device_id),
        Err(error) => RuntimeReport {
            loaded: false,
            version: None,
            library: None,
            origin: None,
            error: Some(error.to_string()),
            providers: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(path: &Path) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, b"").unwrap();
    }

    #[test]
    fn env_override_is_the_only_candidate() {
        let search = LibrarySearch {
            env_override: Some(PathBuf::from("/x/libonnxruntime.so")),
            cache_dir: Some(PathBuf::from("/nonexistent")),
            system: true,
        };
        let (candidates, _) = search.candidates();
        assert_eq!(
            candidates,
            vec![Candidate::File { path: PathBuf::from("/x/libonnxruntime.so"), origin: Origin::Env }]
        );
    }

    #[test]
    fn cache_is_searched_newest_and_gpu_first_then_the_system() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        touch(&root.join("1.31.1/libonnxruntime.so.1.31.1"));
        touch(&root.join("1.31.1/libonnxruntime_providers_shared.so"));
        touch(&root.join("1.31.1-gpu/libonnxruntime.so.1.31.1"));
        touch(&root.join("1.9.0/libonnxruntime.so.1.9.0"));
        touch(&root.join("1.32.0/libonnxruntime.so"));
        touch(&root.join("junk/libonnxruntime.so"));
        touch(&root.join("1.40.0/README"));
        let search = LibrarySearch { env_override: None, cache_dir: Some(root.to_path_buf()), system: true };
        let (candidates, looked) = search.candidates();
        let files: Vec<String> = candidates
            .iter()
            .map(|c| match c {
                Candidate::File { path, .. } => path.strip_prefix(root).unwrap().display().to_string(),
                Candidate::Name(name) => name.to_string(),
            })
            .collect();
        assert_eq!(
            files,
            [
                "1.32.0/libonnxruntime.so",
                "1.31.1-gpu/libonnxruntime.so.1.31.1",
                "1.31.1/libonnxruntime.so.1.31.1",
                "1.9.0/libonnxruntime.so.1.9.0",
                "libonnxruntime.so",
                "libonnxruntime.so.1",
            ]
        );
        assert_eq!(looked, vec!["DSHOST_ORT_LIB (unset)".to_string()]);
    }

    #[test]
    fn empty_places_are_named() {
        let search =
            LibrarySearch { env_override: None, cache_dir: Some(PathBuf::from("/nonexistent/c")), system: false };
        let (candidates, looked) = search.candidates();
        assert!(candidates.is_empty());
        assert_eq!(looked[1], "/nonexistent/c/<version>/libonnxruntime.so* (none)");
    }

    #[test]
    fn a_file_that_is_not_a_library_is_named_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("libonnxruntime.so");
        std::fs::write(&path, b"not an ELF file").unwrap();
        let error = check(&Candidate::File { path: path.clone(), origin: Origin::Env }).unwrap_err();
        let text = error.to_string();
        assert!(matches!(error, RuntimeError::NotALibrary { .. }), "{text}");
        assert!(text.contains(&path.display().to_string()) && text.contains("DSHOST_ORT_LIB"), "{text}");
        assert!(text.contains("scripts/setup.sh"), "{text}");
    }

    #[test]
    fn a_library_that_is_not_onnx_runtime_is_refused() {
        // libc is a real shared library without ONNX Runtime's entry point.
        let error = check(&Candidate::File { path: PathBuf::from("libc.so.6"), origin: Origin::Env }).unwrap_err();
        assert!(matches!(error, RuntimeError::NotOnnxRuntime { .. }), "{error}");
    }

    #[test]
    fn library_names() {
        assert!(is_library_name("libonnxruntime.so"));
        assert!(is_library_name("libonnxruntime.so.1.31.1"));
        assert!(!is_library_name("libonnxruntime_providers_cuda.so"));
        assert!(!is_library_name("libonnxruntime.so.1.31.1.bak"));
    }
}
