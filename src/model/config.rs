//! The configuration of ranking models: which device, how many sessions,
//! the circuit breaker and its clock. It imports nothing from the engine, so
//! `config.rs` (low in the engine's layers) can hold a `ModelConfig` without
//! depending on the model code above it.

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Ranking models (see docs/MODELS.md); `[engine.models]` in a
/// configuration file.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelConfig {
    /// The ONNX Runtime library. `None`: `$ORT_DYLIB_PATH`, else the first
    /// that exists of `<exe dir>/libonnxruntime.so`,
    /// `<exe dir>/../lib/libonnxruntime.so` and `.onnxruntime/lib/` (where
    /// `scripts/install-onnxruntime.sh` puts it) in the working directory
    /// or the source tree the binary was built from. Resolved once per
    /// process (`recwal::model::resolve_runtime`), against the working
    /// directory of that moment; loaded once per process.
    pub runtime_path: Option<PathBuf>,
    /// Sessions per loaded version: how many requests it scores at once.
    pub sessions: usize,
    /// Candidates the strategy proposes for the model to reorder (at least
    /// the `n` asked for).
    pub candidates: usize,
    /// The newest versions kept; older ones are retired and their files
    /// deleted, except the active version and those a rollback can reach.
    pub retention: usize,
    /// Where inference runs.
    pub device: ModelDevice,
    /// The circuit breaker.
    pub breaker: BreakerConfig,
    /// The breaker's clock (tests use a manual one).
    #[serde(skip)]
    pub clock: Clock,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            runtime_path: None,
            sessions: 2,
            candidates: 100,
            retention: 5,
            device: ModelDevice::default(),
            breaker: BreakerConfig::default(),
            clock: Clock::system(),
        }
    }
}

/// Where inference runs; written `"cpu"`, `"cuda"` or `"cuda:<id>"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum ModelDevice {
    /// The CPU.
    Cpu,
    /// A CUDA GPU (with the `cuda` feature and the GPU runtime); falls back
    /// to the CPU, with one warning, when none is usable.
    Cuda {
        /// The GPU's index.
        device_id: i32,
    },
}

impl Default for ModelDevice {
    fn default() -> Self {
        if cfg!(feature = "cuda") {
            ModelDevice::Cuda { device_id: 0 }
        } else {
            ModelDevice::Cpu
        }
    }
}

impl fmt::Display for ModelDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModelDevice::Cpu => f.write_str("cpu"),
            ModelDevice::Cuda { device_id } => write!(f, "cuda:{device_id}"),
        }
    }
}

impl std::str::FromStr for ModelDevice {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "cpu" => Ok(ModelDevice::Cpu),
            "cuda" => Ok(ModelDevice::Cuda { device_id: 0 }),
            _ => text
                .strip_prefix("cuda:")
                .and_then(|id| id.parse::<i32>().ok())
                .filter(|id| *id >= 0)
                .map(|device_id| ModelDevice::Cuda { device_id })
                .ok_or_else(|| format!("{text:?}: must be cpu, cuda or cuda:<device id ≥ 0>")),
        }
    }
}

impl TryFrom<String> for ModelDevice {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        text.parse()
    }
}

impl From<ModelDevice> for String {
    fn from(device: ModelDevice) -> String {
        device.to_string()
    }
}

/// A monotonic time source.
pub trait ClockSource: Send + Sync {
    /// Time since an arbitrary fixed origin; never decreases.
    fn now(&self) -> Duration;
}

/// A shareable clock handle (the system's monotonic clock by default).
#[derive(Clone)]
pub struct Clock(Arc<dyn ClockSource>);

impl Clock {
    /// The system's monotonic clock.
    pub fn system() -> Clock {
        struct System(Instant);
        impl ClockSource for System {
            fn now(&self) -> Duration {
                self.0.elapsed()
            }
        }
        Clock(Arc::new(System(Instant::now())))
    }

    /// A clock that moves only when told (see `ManualClock::advance`).
    pub fn manual() -> (Clock, ManualClock) {
        let manual = ManualClock(Arc::new(AtomicU64::new(0)));
        (Clock(Arc::new(manual.clone())), manual)
    }

    /// Now, by this clock.
    pub fn now(&self) -> Duration {
        self.0.now()
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::system()
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Clock({:?})", self.now())
    }
}

/// The hand of a manual clock: tests advance it.
#[derive(Clone, Debug)]
pub struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        self.0.fetch_add(by.as_nanos().min(u128::from(u64::MAX)) as u64, Ordering::SeqCst);
    }
}

impl ClockSource for ManualClock {
    fn now(&self) -> Duration {
        Duration::from_nanos(self.0.load(Ordering::SeqCst))
    }
}

/// When the breaker opens and for how long.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BreakerConfig {
    /// Failures within `window` that open the breaker.
    pub failures: u32,
    /// See `failures`.
    #[serde(rename = "window_ms", with = "crate::units::ms")]
    pub window: Duration,
    /// How long it stays open before a probe is let through.
    #[serde(rename = "open_for_ms", with = "crate::units::ms")]
    pub open_for: Duration,
    /// An inference slower than this counts as a failure (its answer is
    /// still used).
    #[serde(rename = "latency_budget_ms", with = "crate::units::ms")]
    pub latency_budget: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            failures: 5,
            window: Duration::from_secs(10),
            open_for: Duration::from_secs(5),
            latency_budget: Duration::from_millis(50),
        }
    }
}
