//! The benchmarks of recwal live in `benches/` beside this file; see
//! docs/BENCHMARKS.md for what each measures and how to run it. This library
//! holds what several of them share (paths, /proc readings, latency
//! quantiles, a timed restart); the crate exists to keep the benchmarks'
//! dependencies (criterion and the reference logs) out of the `recwal`
//! package's build.
#![forbid(unsafe_code)]

use std::time::{Duration, Instant};

use recwal::{Engine, EngineConfig};

/// `relative` (e.g. `data/ml-100k/ml-100k.inter`, where
/// scripts/fetch-movielens.sh writes it) under the workspace root: cargo runs
/// a benchmark in its package's directory (`bench/`), not where it was
/// started, so a bare relative path would miss the data and the benchmark
/// would fall back to synthetic data.
pub fn workspace_path(relative: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(relative)
}

/// Whether the benchmark runs as a test (`cargo test --benches` passes no
/// `--bench`): a benchmark then runs its smallest case once.
pub fn test_mode() -> bool {
    !std::env::args().any(|arg| arg == "--bench")
}

/// The bytes of `field` of /proc/self/status (`"VmHWM"`, `"VmRSS"`,
/// `"RssAnon"`, …; given in kB there), 0 where it cannot be read.
pub fn proc_status_bytes(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| {
            let value = line.strip_prefix(field)?.strip_prefix(':')?;
            value.trim().strip_suffix("kB")?.trim().parse::<u64>().ok()
        })
        .map_or(0, |kib| kib * 1024)
}

/// p50, p99 and the largest of a set of latencies.
#[derive(Clone, Copy, Debug)]
pub struct Quantiles {
    /// The median.
    pub p50: Duration,
    /// The 99th percentile (nearest rank).
    pub p99: Duration,
    /// The largest.
    pub max: Duration,
}

impl std::fmt::Display for Quantiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "p50 {:?}, p99 {:?}, max {:?}", self.p50, self.p99, self.max)
    }
}

/// The quantiles of `times` (sorted in place); zero for no times.
pub fn quantiles(times: &mut [Duration]) -> Quantiles {
    times.sort_unstable();
    let at = |p: f64| {
        let last = times.len().saturating_sub(1);
        times.get(((last as f64) * p).round() as usize).copied().unwrap_or_default()
    };
    Quantiles { p50: at(0.5), p99: at(0.99), max: at(1.0) }
}

/// /proc/loadavg's first three fields: how busy the shared machine was.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| text.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Checkpoints and closes `engine`, then times `Engine::open` on `dir` with
/// `config` until its item model serves again (the artefact read and
/// checked against the log's SHA-256): a restart with the artefact.
pub fn restart_until_item_model_serves(dir: &std::path::Path, engine: Engine, config: EngineConfig) -> Duration {
    engine.checkpoint().unwrap_or_else(|err| panic!("checkpoint: {err}"));
    engine.close().unwrap_or_else(|err| panic!("close: {err}"));
    let began = Instant::now();
    let engine = Engine::open(dir, config).unwrap_or_else(|err| panic!("open: {err}"));
    while !engine.item_model_status().serving {
        let fault = engine.item_model_status().fault;
        assert!(fault.is_none(), "{fault:?}");
        std::thread::sleep(Duration::from_millis(1));
    }
    let took = began.elapsed();
    engine.close().unwrap_or_else(|err| panic!("close: {err}"));
    took
}

/// `bytes` in MiB.
pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1 << 20)
}
