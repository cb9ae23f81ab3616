//! The benchmarks of recwal live in `benches/` beside this file; see
//! docs/BENCHMARKS.md for what each measures and how to run it. This library
//! is empty: the crate exists to keep the benchmarks' dependencies (criterion
//! and the reference logs) out of the `recwal` package's build.
#![forbid(unsafe_code)]
