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
/// The library's file name, looked for beside the binary.
const RUNTIME_FILE: &str = "libonnxruntime.so";

/// Where the library is looked for, decided once per process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuntimeResolution {
    /// The library to load: the configured path (absolute), or the first
    /// candidate that exists; `None` when no candidate exists.
    pub path: Option<PathBuf>,
    /// Every path looked at, in order (absolute).
    pub tried: Vec<PathBuf>,
    /// Why no library will load from `path`, when that is known now.
    pub missing: Option<String>,
}

/// The resolution, once made.
static RESOLVED: OnceLock<RuntimeResolution> = OnceLock::new();

/// Resolves the library's path once per process: `configured` (the
/// `runtime_path` setting) if set, else `$ORT_DYLIB_PATH`, either made
/// absolute against the working directory of this moment; else the first
/// that exists of `<exe dir>/libonnxruntime.so`,
/// `<exe dir>/../lib/libonnxruntime.so`,
/// `<exe dir>/../../.onnxruntime/lib/libonnxruntime.so` (a cargo build:
/// `target/<profile>/`) and `./.onnxruntime/lib/libonnxruntime.so`. A
/// server calls this at start, so a later change of working directory
/// changes nothing; later calls return the first answer.
pub fn resolve_runtime(configured: Option<&Path>) -> RuntimeResolution {
    RESOLVED.get_or_init(|| resolve_now(configured)).clone()
}

fn resolve_now(configured: Option<&Path>) -> RuntimeResolution {
    let named = configured.map(Path::to_path_buf).or_else(|| match std::env::var_os(RUNTIME_PATH_ENV) {
        Some(path) if !path.is_empty() => Some(PathBuf::from(path)),
        _ => None,
    });
    if let Some(named) = named {
        let path = std::path::absolute(&named).unwrap_or(named);
        let missing = (!path.is_file()).then(|| {
            format!(
                "no ONNX Runtime library at {} (the configured path, from runtime_path or {RUNTIME_PATH_ENV}); \
                 run scripts/install-onnxruntime.sh or fix the setting",
                path.display()
            )
        });
        return RuntimeResolution { path: Some(path.clone()), tried: vec![path], missing };
    }
    let mut tried: Vec<PathBuf> = Vec::new();
    if let Some(exe_dir) = std::env::current_exe().ok().and_then(|exe| exe.parent().map(Path::to_path_buf)) {
        tried.push(exe_dir.join(RUNTIME_FILE));
        if let Some(up) = exe_dir.parent() {
            tried.push(up.join("lib").join(RUNTIME_FILE));
            if let Some(up2) = up.parent() {
                tried.push(up2.join(RUNTIME_DEFAULT_PATH));
            }
        }
    }
    if let Ok(cwd) = std::env::current_dir() {
        tried.push(cwd.join(RUNTIME_DEFAULT_PATH));
    }
    tried.dedup();
    match tried.iter().find(|path| path.is_file()) {
        Some(found) => RuntimeResolution { path: Some(found.clone()), tried, missing: None },
        None => {
            let missing = Some(not_found(&tried));
            RuntimeResolution { path: None, tried, missing }
        }
    }
}

fn not_found(tried: &[PathBuf]) -> String {
    let list: Vec<String> = tried.iter().map(|path| path.display().to_string()).collect();
    format!(
        "no ONNX Runtime library found; tried {} (run scripts/install-onnxruntime.sh, put {RUNTIME_FILE} beside \
         the binary, or set {RUNTIME_PATH_ENV} or runtime_path)",
        list.join(", ")
    )
}

/// The library's state for status pages: loaded (and from where), or why
/// not, with every path looked at.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RuntimeReport {
    /// Whether the library is loaded in this process.
    pub loaded: bool,
    /// Where it was loaded from, or will be.
    pub path: Option<String>,
    /// Why it is not loaded.
    pub reason: Option<String>,
    /// The paths looked at when it was resolved.
    pub tried: Vec<String>,
}

/// The library's state now (see `RuntimeReport`).
pub fn runtime_report() -> RuntimeReport {
    let resolution = RESOLVED.get();
    let tried = resolution.map(|resolution| resolution.tried.iter().map(|path| path.display().to_string()).collect());
    if let Some(runtime) = RUNTIME.get() {
        return RuntimeReport {
            loaded: true,
            path: Some(runtime.path.display().to_string()),
            reason: None,
            tried: tried.unwrap_or_default(),
        };
    }
    let failure = LOADING.lock().ok().and_then(|failure| failure.clone());
    let reason = failure
        .or_else(|| resolution.and_then(|resolution| resolution.missing.clone()))
        .unwrap_or_else(|| "not loaded yet: it loads when a model is first added or activated".to_string());
    RuntimeReport {
        loaded: false,
        path: resolution.and_then(|resolution| resolution.path.as_ref().map(|path| path.display().to_string())),
        reason: Some(reason),
        tried: tried.unwrap_or_default(),
    }
}

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

/// Where to load the library from: the configured path, else the
/// process's resolution (`resolve_runtime`); a library installed since at
/// one of the paths it tried is found too.
pub(crate) fn resolve(configured: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(path) = configured {
        return Ok(path.to_path_buf());
    }
    let resolution = resolve_runtime(None);
    match resolution.path {
        Some(path) => Ok(path),
        None => {
            resolution.tried.iter().find(|path| path.is_file()).cloned().ok_or_else(|| not_found(&resolution.tried))
        }
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
    match resolve(configured).and_then(|path| load(&path)) {
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
