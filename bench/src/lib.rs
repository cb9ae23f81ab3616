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
