//! The ONNX Runtime library, loaded once per process from a file
//! (`ort`'s `load-dynamic`): never linked, never downloaded. A missing or
//! too-old library is an error value, not a panic, and the engine keeps
//! serving un-ranked answers.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use ort::environment::Environment;
use tracing::{info, warn};

/// The environment variable naming the library (also read by `ort`).
pub const RUNTIME_PATH_ENV: &str = "ORT_DYLIB_PATH";
/// Where `scripts/install-onnxruntime.sh` puts the library, relative to the
/// working directory.
pub const RUNTIME_DEFAULT_PATH: &str = ".onnxruntime/lib/libonnxruntime.so";

/// The loaded runtime: one per process.
pub(crate) struct Runtime {
    pub env: Environment,
    pub path: PathBuf,
    /// Whether the library offers the CUDA execution provider.
    pub cuda: bool,
}

/// The runtime once loaded. A failed load is not cached (only its reason,
/// for the status): installing the library later makes the next add or
/// activation load it, without a restart.
static RUNTIME: OnceLock<Runtime> = OnceLock::new();
static LOADING: Mutex<Option<String>> = Mutex::new(None);

/// Where to load the library from: the configured path, else
/// `$ORT_DYLIB_PATH`, else `RUNTIME_DEFAULT_PATH`.
pub(crate) fn resolve(configured: Option<&Path>) -> PathBuf {
    if let Some(path) = configured {
        return path.to_path_buf();
    }
    match std::env::var_os(RUNTIME_PATH_ENV) {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => PathBuf::from(RUNTIME_DEFAULT_PATH),
    }
}

/// The process's runtime, loading it on first use from `configured` (see
/// `resolve`). Once loaded, later calls get it whatever path they name:
/// ONNX Runtime allows one library and one environment per process.
pub(crate) fn get(configured: Option<&Path>) -> Result<&'static Runtime, String> {
    if let Some(runtime) = RUNTIME.get() {
        warn_if_other(configured, runtime);
        return Ok(runtime);
    }
    let mut failure = LOADING.lock().map_err(|_| "the runtime loader panicked".to_string())?;
    if let Some(runtime) = RUNTIME.get() {
        return Ok(runtime);
    }
    match load(&resolve(configured)) {
        Ok(loaded) => {
            info!(path = %loaded.path.display(), cuda = loaded.cuda, "ONNX Runtime loaded");
            *failure = None;
            Ok(RUNTIME.get_or_init(|| loaded))
        }
        Err(reason) => {
            warn!(%reason, "ONNX Runtime unavailable: models cannot be added or served");
            *failure = Some(reason.clone());
            Err(reason)
        }
    }
}

fn warn_if_other(configured: Option<&Path>, runtime: &Runtime) {
    if let Some(asked) = configured {
        if std::path::absolute(asked).ok().as_deref() != Some(runtime.path.as_path()) {
            warn!(asked = %asked.display(), loaded = %runtime.path.display(),
                "ONNX Runtime is already loaded from another path; using it");
        }
    }
}

/// The runtime if loaded, else why the last attempt failed (`None`: never
/// attempted).
pub(crate) fn peek() -> Option<Result<&'static Runtime, String>> {
    if let Some(runtime) = RUNTIME.get() {
        return Some(Ok(runtime));
    }
    LOADING.lock().ok().and_then(|failure| failure.clone()).map(Err)
}

fn load(path: &Path) -> Result<Runtime, String> {
    let absolute = std::path::absolute(path).map_err(|err| format!("{}: {err}", path.display()))?;
    if !absolute.is_file() {
        return Err(format!(
            "no ONNX Runtime library at {} (run scripts/install-onnxruntime.sh, or set {RUNTIME_PATH_ENV} or \
             models.runtime_path)",
            absolute.display()
        ));
    }
    let builder = ort::init_from(&absolute).map_err(|err| format!("loading {}: {err}", absolute.display()))?;
    let env = builder
        .with_name("recwal")
        .build()
        .map_err(|err| format!("creating the ONNX Runtime environment from {}: {err}", absolute.display()))?;
    Ok(Runtime { env, path: absolute, cuda: cuda_available() })
}

#[cfg(feature = "cuda")]
fn cuda_available() -> bool {
    use ort::ep::ExecutionProvider;
    match ort::ep::CUDA::is_available() {
        Ok(available) => available,
        Err(err) => {
            warn!(%err, "cannot ask ONNX Runtime for its execution providers; using the CPU");
            false
        }
    }
}

#[cfg(not(feature = "cuda"))]
fn cuda_available() -> bool {
    false
}
