//! The benchmarks of recwal live in `benches/` beside this file; see
//! docs/BENCHMARKS.md for what each measures and how to run it. This library
//! is empty: the crate exists to keep the benchmarks' dependencies (criterion
//! and the reference logs) out of the `recwal` package's build.
#![forbid(unsafe_code)]

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

/// The `p` quantile (0–1, nearest rank) of `sorted`, which must not be
/// empty.
pub fn percentile(sorted: &[std::time::Duration], p: f64) -> std::time::Duration {
    let at = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[at.min(sorted.len() - 1)]
}

/// `bytes` in MiB.
pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1 << 20)
}
