//! Seeded synthetic workloads for benchmarks (filled in by the bench work).
