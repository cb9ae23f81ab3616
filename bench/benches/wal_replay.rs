//! Replay: opening a 1 GiB log (recovery scans every segment and checks every
//! CRC and the LSN chain) and reading every record back through `Reader`,
//! from the page cache and from disk (pages evicted with
//! `posix_fadvise(DONTNEED)` before each run). 64-byte records.
//!
//! Run: `cargo bench --bench wal_replay` (results: docs/BENCHMARKS.md).
//! Under `cargo test` the log is 16 MiB so the check stays quick.
#![allow(clippy::print_stdout)]

use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{criterion_group, Criterion, Throughput};
use recwal::wal::{SyncPolicy, Wal, WalConfig};

const SEGMENT_BYTES: u64 = 64 << 20;

fn config() -> WalConfig {
    WalConfig::default()
        .segment_bytes(SEGMENT_BYTES)
        .segments_initial(4)
        .segments_max(24)
        .sync_policy(SyncPolicy::Never)
}

fn benchmarking() -> bool {
    std::env::args().any(|arg| arg == "--bench")
}

/// Fills a log with 64-byte records until it holds `bytes`; returns the record count.
fn build(dir: &Path, bytes: u64) -> u64 {
    let wal = Wal::open(dir, config()).expect("open");
    let record = [0xA5u8; 64];
    let mut count = 0;
    while wal.metrics().bytes_appended < bytes {
        for _ in 0..4096 {
            let _ = wal.append(1, &record).expect("append");
            count += 1;
        }
    }
    wal.close().expect("close");
    count
}

fn evict(dir: &Path) {
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("entry").path();
        let file = std::fs::File::open(&path).expect("open segment");
        file.sync_all().expect("sync");
        // SAFETY: plain system call on a file descriptor we own.
        let rc = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        assert_eq!(rc, 0, "posix_fadvise failed");
    }
}

fn bench_replay(c: &mut Criterion) {
    let bytes: u64 = if benchmarking() { 1 << 30 } else { 16 << 20 };
    let dir = tempfile::tempdir().expect("tempdir");
    let records = build(dir.path(), bytes);
    let mut group = c.benchmark_group("replay");
    group.throughput(Throughput::Bytes(bytes));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(if benchmarking() { 20 } else { 1 }));

    group.bench_function("open_cached", |b| {
        b.iter(|| {
            let wal = Wal::open(dir.path(), config()).expect("open");
            assert_eq!(wal.recovery_report().records_recovered, records);
        });
    });
    group.bench_function("read_all_cached", |b| {
        let wal = Wal::open(dir.path(), config()).expect("open");
        b.iter(|| {
            let mut sum = 0u64;
            for record in wal.read_from(1).expect("reader") {
                sum += record.expect("record").payload().len() as u64;
            }
            assert_eq!(sum, records * 64);
        });
    });
    group.bench_function("open_from_disk", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                evict(dir.path());
                let began = Instant::now();
                let wal = Wal::open(dir.path(), config()).expect("open");
                total += began.elapsed();
                assert_eq!(wal.recovery_report().records_recovered, records);
            }
            total
        });
    });
    group.finish();
}

criterion_group!(benches, bench_replay);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
