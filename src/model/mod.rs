//! Ranking models: ONNX models that reorder a strategy's candidates.
//!
//! - `schema`: the features the engine computes (schema v1) and the
//!   contract a model must meet.
//! - `features`: builds a request's feature matrix from the state.
//! - `runtime`: the ONNX Runtime library, loaded once per process.
//! - `loaded`: a version loaded into a pool of sessions, warmed up.
//! - `config`: `ModelConfig` with the device, the breaker's settings and
//!   its clock; imports nothing from the engine (`config.rs` holds one).
//! - `breaker`: the per-model circuit breaker.
//! - `catalog` (in `state/catalog.rs`, re-exported here): versions and
//!   activations, as the log recorded them; part of the state.
//! - `store`: the model files in the data directory.
//! - `latency`: inference latency per version (histograms for `/metrics`).
//!
//! The engine (`engine/models.rs`, `engine/read.rs`) ties them together: `add_model`, `activate_model`,
//! `rollback_model`, `models`, `model_status`, and ranking in `recommend`.

pub(crate) mod breaker;
pub(crate) mod build_thread;
// The catalogue lives with the state (it is part of it); this path stays for
// the model code and the engine.
pub(crate) use crate::state::catalog;
pub(crate) mod config;
pub(crate) mod features;
pub mod latency;
pub(crate) mod loaded;
pub(crate) mod ranker;
pub(crate) mod runtime;
pub mod schema;
pub(crate) mod store;

pub use breaker::{BreakerCounts, BreakerState};
pub use catalog::{Activation, ModelEntry};
pub use config::{BreakerConfig, Clock, ClockSource, ManualClock, ModelConfig, ModelDevice};
pub use latency::{Answer, Role};
pub use ranker::user_bucket;
pub use runtime::{
    resolve_runtime, runtime_report, RuntimeReport, RuntimeResolution, RUNTIME_DEFAULT_PATH, RUNTIME_PATH_ENV,
};

use serde::{Deserialize, Serialize};

/// A model version, as `Engine::models` lists it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// Version number, from 1, never reused.
    pub version: u32,
    /// SHA-256 of the model file, hex.
    pub sha256: String,
    /// File size in bytes.
    pub bytes: u64,
    /// When it was added (ms since the Unix epoch).
    pub added_ms: i64,
    /// LSN of the record that added it.
    pub lsn_added: u64,
    /// Its activations, oldest first (LSN, time, rollback or not).
    pub activations: Vec<Activation>,
    /// It is the active version (per the log).
    pub active: bool,
    /// Retired by the retention setting: its file is deleted.
    pub retired: bool,
}

impl ModelInfo {
    pub(crate) fn from_entry(entry: &ModelEntry, active: Option<u32>) -> ModelInfo {
        ModelInfo {
            version: entry.version,
            sha256: store::hex(&entry.sha256),
            bytes: entry.bytes,
            added_ms: entry.added_ms,
            lsn_added: entry.lsn_added,
            activations: entry.activations.clone(),
            active: active == Some(entry.version),
            retired: entry.lsn_retired.is_some(),
        }
    }
}

/// `ModelStatus::runtime` as serde writes a `Result`: `{"Ok": path}` or
/// `{"Err": reason}`.
#[cfg(feature = "openapi")]
fn runtime_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
    let one = |key: &str, what: &str| {
        ObjectBuilder::new()
            .property(key, ObjectBuilder::new().schema_type(Type::String).description(Some(what)))
            .required(key)
    };
    OneOfBuilder::new()
        .item(one("Ok", "Loaded: the library's path."))
        .item(one("Err", "Not loaded: why."))
        .build()
        .into()
}

/// A version served beside the active one.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RouteStatus {
    /// The version.
    pub version: u32,
    /// The canary's share of users, in percent (0.1 steps); absent for a
    /// shadow.
    pub percent: Option<f64>,
    /// It is loaded and gets its requests.
    pub loaded: bool,
}

/// The ranking side of the engine now, for status pages and metrics.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelStatus {
    /// The ONNX Runtime library: its path once loaded, or why it is not.
    #[cfg_attr(feature = "openapi", schema(schema_with = runtime_schema))]
    pub runtime: Result<String, String>,
    /// The active version according to the log.
    pub active: Option<u32>,
    /// The version answers are ranked with (`None`: un-ranked).
    pub serving: Option<u32>,
    /// "cpu" or "cuda", for the serving version.
    pub device: Option<String>,
    /// On CUDA: inputs and outputs go through buffers bound at load
    /// (`IoBinding`), not allocated per request.
    pub io_binding: bool,
    /// Why the active version is not serving (missing or altered file, no
    /// runtime, failed warm-up at start-up).
    pub fault: Option<String>,
    /// The serving version's breaker.
    pub breaker: Option<BreakerState>,
    /// Its counters.
    pub breaker_counts: Option<BreakerCounts>,
    /// Versions loaded in this process (the serving one, plus any still
    /// finishing requests that began before a swap).
    pub loaded_versions: usize,
    /// The canary: a version ranking the answers of a share of users
    /// (docs/MODELS.md, "Versions side by side").
    pub canary: Option<RouteStatus>,
    /// The shadow: a version scored beside every ranked answer, never
    /// served.
    pub shadow: Option<RouteStatus>,
    /// Why a canary or shadow the log names is not loaded (it then gets no
    /// requests).
    pub route_fault: Option<String>,
    /// On a cluster node: the stream sequence of the activation message
    /// that last swapped the serving version (or failed to), identical on
    /// every replica that applied it; `None` on a single node and until
    /// the first such swap after a start.
    #[serde(default)]
    pub swapped_at_stream_seq: Option<u64>,
}
