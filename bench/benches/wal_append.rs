//! Append throughput and latency of recwal's WAL against its references,
//! measured in the same run on the same disk:
//!
//! - `bare_fdatasync`: a `pwrite` + `fdatasync` loop into a zero-filled file,
//!   the floor for any durable append;
//! - `recwal/{always,batch,never}`: our log under each policy;
//! - `sqlite_wal/{full,off}`: SQLite in WAL mode (rusqlite, bundled), one
//!   INSERT per record in autocommit, synchronous FULL (durable) or OFF (lazy);
//! - `fjall/{sync,buffer}`: an insert then `persist(SyncData)` or `persist(Buffer)`;
//! - `okaywal/commit`: okaywal entries (always durable; it has no lazy mode);
//! - `rocksdb/{sync,lazy}` (only with the `bench-rocksdb` feature): one `put`
//!   per record with the WAL on, `WriteOptions::set_sync(true)` (fdatasync of
//!   the WAL before `put` returns) or `set_sync(false)` (written to the WAL,
//!   not synced).
//!
//! Each case runs with 1, 8 and 16 writer threads and 64-byte and 1 KiB
//! records; criterion reports time per record (its median is the figure to
//! quote). After the criterion groups, a latency report prints p50/p99 per
//! append and, for `Batch`, how long a record stays at risk (append until
//! durable). `RECWAL_BENCH_QUICK=1` shortens everything (a smoke run);
//! `RECWAL_BENCH_LATENCY_ONLY=1` runs only the latency report, and
//! `RECWAL_BENCH_LATENCY_POLICY=<always|batch|never>` only that policy's rows.
//!
//! Run: `cargo bench --bench wal_append` (results: docs/BENCHMARKS.md). With
//! RocksDB, which compiles its C++ and needs libclang (so `cargo test` and CI
//! leave it out): `cargo bench --features bench-rocksdb --bench wal_append`.
#![allow(clippy::print_stdout)]

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use hdrhistogram::Histogram;
use recwal::wal::{SyncPolicy, Wal, WalConfig};

const SIZES: [usize; 2] = [64, 1024];
const THREADS: [usize; 3] = [1, 8, 16];

fn quick() -> bool {
    std::env::var("RECWAL_BENCH_QUICK").is_ok()
}

fn wal_config(policy: SyncPolicy) -> WalConfig {
    WalConfig::default().segment_bytes(64 << 20).segments_initial(4).segments_max(8).sync_policy(policy)
}

/// Appends one record as writer thread `t`.
type AppendFn = Arc<dyn Fn(usize) + Send + Sync>;

/// Splits `iters` appends over `threads` threads running `append` and
/// returns the wall time for all of them.
fn run_threads(threads: usize, iters: u64, append: &AppendFn) -> Duration {
    let per_thread = iters.div_ceil(threads as u64);
    let start = Arc::new(std::sync::Barrier::new(threads + 1));
    let handles: Vec<_> = (0..threads)
        .map(|thread| {
            let append = Arc::clone(append);
            let start = Arc::clone(&start);
            std::thread::spawn(move || {
                start.wait();
                for _ in 0..per_thread {
                    append(thread);
                }
            })
        })
        .collect();
    start.wait();
    let began = Instant::now();
    for handle in handles {
        handle.join().expect("bench thread");
    }
    began.elapsed()
}

/// One criterion group over every record size and writer count. `setup`
/// opens the system under test in a fresh directory for (size, threads) and
/// returns how a writer appends one record.
fn bench_grid(c: &mut Criterion, name: &str, setup: impl Fn(&Path, usize, usize) -> AppendFn) {
    let mut group = c.benchmark_group(name);
    for size in SIZES {
        for threads in THREADS {
            group.throughput(Throughput::Elements(1));
            group.bench_function(BenchmarkId::new(format!("{size}B"), threads), |b| {
                let dir = tempfile::tempdir().expect("tempdir");
                let append = setup(dir.path(), size, threads);
                b.iter_custom(|iters| run_threads(threads, iters, &append));
            });
        }
    }
    group.finish();
}

/// Keeps the ring turning the way a real consumer would: release all but the
/// newest records now and then.
fn maybe_checkpoint(wal: &Wal, lsn: u64) {
    if lsn.is_multiple_of(65_536) {
        let _ = wal.checkpoint(lsn.saturating_sub(1024));
    }
}

fn bench_bare(c: &mut Criterion) {
    let mut group = c.benchmark_group("bare_fdatasync");
    for size in SIZES {
        group.throughput(Throughput::Elements(1));
        group.bench_function(BenchmarkId::from_parameter(size), |b| {
            use std::os::unix::fs::FileExt;
            let dir = tempfile::tempdir().expect("tempdir");
            let file = std::fs::OpenOptions::new()
                .create(true)
                .truncate(true)
                .read(true)
                .write(true)
                .open(dir.path().join("bare"))
                .expect("open");
            let file_bytes: u64 = 64 << 20;
            file.write_all_at(&vec![0u8; file_bytes as usize], 0).expect("zero fill");
            file.sync_all().expect("sync");
            let record = vec![7u8; size];
            let mut offset = 0u64;
            b.iter(|| {
                file.write_all_at(&record, offset).expect("pwrite");
                file.sync_data().expect("fdatasync");
                offset = (offset + size as u64) % (file_bytes - size as u64);
            });
        });
    }
    group.finish();
}

/// The policies measured, with the `Batch` parameters used throughout.
const POLICIES: [(&str, SyncPolicy); 3] = [
    ("always", SyncPolicy::Always),
    ("batch", SyncPolicy::Batch { max_delay: Duration::from_millis(1), max_bytes: 1 << 20 }),
    ("never", SyncPolicy::Never),
];

fn bench_recwal(c: &mut Criterion) {
    for (name, policy) in POLICIES {
        bench_grid(c, &format!("recwal/{name}"), |dir, size, _| {
            let wal = Wal::open(dir, wal_config(policy)).expect("open");
            let record = vec![7u8; size];
            Arc::new(move |_| {
                let ticket = wal.append(1, &record).expect("append");
                maybe_checkpoint(&wal, ticket.lsn());
            })
        });
    }
}

fn bench_sqlite(c: &mut Criterion) {
    for (name, synchronous) in [("full", "FULL"), ("off", "OFF")] {
        bench_grid(c, &format!("sqlite_wal/{name}"), |dir, size, threads| {
            let path = dir.join("log.db");
            // One connection per writer: SQLite serialises them itself.
            let connections: Vec<_> = (0..threads)
                .map(|_| {
                    let conn = rusqlite::Connection::open(&path).expect("sqlite open");
                    conn.busy_timeout(Duration::from_secs(60)).expect("busy timeout");
                    conn.execute_batch(&format!(
                        "PRAGMA journal_mode=WAL; PRAGMA synchronous={synchronous};
                         CREATE TABLE IF NOT EXISTS log(id INTEGER PRIMARY KEY, payload BLOB NOT NULL);"
                    ))
                    .expect("sqlite setup");
                    std::sync::Mutex::new(conn)
                })
                .collect();
            let record = vec![7u8; size];
            Arc::new(move |thread| {
                let conn = connections[thread].lock().expect("connection");
                conn.prepare_cached("INSERT INTO log(payload) VALUES (?1)")
                    .expect("prepare")
                    .execute([&record[..]])
                    .expect("insert");
            })
        });
    }
}

fn bench_fjall(c: &mut Criterion) {
    for (name, mode) in [("sync", fjall::PersistMode::SyncData), ("buffer", fjall::PersistMode::Buffer)] {
        bench_grid(c, &format!("fjall/{name}"), |dir, size, _| {
            let keyspace = fjall::Config::new(dir).open().expect("fjall open");
            let partition =
                keyspace.open_partition("log", fjall::PartitionCreateOptions::default()).expect("partition");
            let next_key = AtomicU64::new(0);
            let record = vec![7u8; size];
            Arc::new(move |_| {
                let key = next_key.fetch_add(1, Ordering::Relaxed).to_be_bytes();
                partition.insert(key, &record[..]).expect("insert");
                keyspace.persist(mode).expect("persist");
            })
        });
    }
}

fn bench_okaywal(c: &mut Criterion) {
    bench_grid(c, "okaywal/commit", |dir, size, _| {
        let log = okaywal::WriteAheadLog::recover(dir, okaywal::LogVoid).expect("okaywal open");
        let record = vec![7u8; size];
        Arc::new(move |_| {
            let mut entry = log.begin_entry().expect("begin");
            entry.write_chunk(&record).expect("write");
            entry.commit().expect("commit");
        })
    });
}

/// RocksDB (the `rocksdb` crate, bundled RocksDB, no compression libraries
/// compiled in). Options are RocksDB's defaults except `create_if_missing`:
/// WAL on, `fdatasync` for synced writes (`use_fsync` off), 64 MiB memtables
/// flushed in the background; with no compression library the default
/// compression is none. Keys are the writer's id then its counter (both
/// big-endian, so each writer appends in key order and writers never collide);
/// the value is the record.
#[cfg(feature = "bench-rocksdb")]
fn bench_rocksdb(c: &mut Criterion) {
    for (name, sync) in [("sync", true), ("lazy", false)] {
        bench_grid(c, &format!("rocksdb/{name}"), |dir, size, threads| {
            let mut options = rocksdb::Options::default();
            options.create_if_missing(true);
            let db = rocksdb::DB::open(&options, dir).expect("rocksdb open");
            let mut write = rocksdb::WriteOptions::default();
            write.set_sync(sync);
            // One counter per writer; it outlives criterion's repeated runs,
            // so keys stay unique for the whole case.
            let counters: Vec<AtomicU64> = (0..threads).map(|_| AtomicU64::new(0)).collect();
            let record = vec![7u8; size];
            Arc::new(move |thread| {
                let mut key = [0u8; 16];
                key[..8].copy_from_slice(&(thread as u64).to_be_bytes());
                key[8..].copy_from_slice(&counters[thread].fetch_add(1, Ordering::Relaxed).to_be_bytes());
                db.put_opt(key, &record, &write).expect("rocksdb put");
            })
        });
    }
}

/// Without `bench-rocksdb` there is no RocksDB case.
#[cfg(not(feature = "bench-rocksdb"))]
fn bench_rocksdb(_: &mut Criterion) {}

fn config() -> Criterion {
    let (warm_up, measure, samples) = if quick() {
        (Duration::from_millis(100), Duration::from_millis(300), 10)
    } else {
        (Duration::from_secs(1), Duration::from_secs(3), 10)
    };
    Criterion::default().warm_up_time(warm_up).measurement_time(measure).sample_size(samples).configure_from_args()
}

criterion_group! {
    name = throughput;
    config = config();
    targets = bench_bare, bench_recwal, bench_sqlite, bench_fjall, bench_okaywal, bench_rocksdb
}

/// Per-append latency percentiles (microseconds) with `threads` writers for `duration`.
fn append_latency(policy: SyncPolicy, size: usize, threads: usize, duration: Duration) -> Histogram<u64> {
    let dir = tempfile::tempdir().expect("tempdir");
    let wal = Arc::new(Wal::open(dir.path(), wal_config(policy)).expect("open"));
    let record = vec![7u8; size];
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let wal = Arc::clone(&wal);
            let record = record.clone();
            std::thread::spawn(move || {
                let mut histogram = Histogram::<u64>::new(3).expect("histogram");
                let until = Instant::now() + duration;
                while Instant::now() < until {
                    let began = Instant::now();
                    let ticket = wal.append(1, &record).expect("append");
                    histogram.record(began.elapsed().as_nanos() as u64).expect("record");
                    maybe_checkpoint(&wal, ticket.lsn());
                }
                histogram
            })
        })
        .collect();
    let mut total = Histogram::<u64>::new(3).expect("histogram");
    for handle in handles {
        total.add(handle.join().expect("thread")).expect("merge");
    }
    total
}

/// For `Batch`: how long each record waits between its append returning and
/// the moment it is durable, with one writer appending every `gap`.
fn batch_risk_window(max_delay: Duration, size: usize, gap: Duration, duration: Duration) -> Histogram<u64> {
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = SyncPolicy::Batch { max_delay, max_bytes: 1 << 30 };
    let wal = Arc::new(Wal::open(dir.path(), wal_config(policy)).expect("open"));
    let epoch = Instant::now();
    let appended_ns: Arc<Vec<AtomicU64>> = Arc::new((0..2_000_000).map(|_| AtomicU64::new(0)).collect());
    let done = Arc::new(AtomicBool::new(false));
    let watcher = {
        let wal = Arc::clone(&wal);
        let appended_ns = Arc::clone(&appended_ns);
        let done = Arc::clone(&done);
        std::thread::spawn(move || {
            let mut histogram = Histogram::<u64>::new(3).expect("histogram");
            let mut seen = 0u64;
            while !done.load(Ordering::Acquire) || seen < wal.lsn_appended() {
                let durable = wal.lsn_durable();
                let now = epoch.elapsed().as_nanos() as u64;
                for lsn in seen + 1..=durable {
                    let at = appended_ns[lsn as usize].load(Ordering::Acquire);
                    if at > 0 {
                        histogram.record(now.saturating_sub(at)).expect("record");
                    }
                }
                seen = seen.max(durable);
                std::thread::sleep(Duration::from_micros(20));
            }
            histogram
        })
    };
    let record = vec![7u8; size];
    let until = Instant::now() + duration;
    let mut next = Instant::now();
    while Instant::now() < until {
        let before = epoch.elapsed().as_nanos() as u64;
        let ticket = wal.append(1, &record).expect("append");
        if (ticket.lsn() as usize) < appended_ns.len() {
            appended_ns[ticket.lsn() as usize].store(before.max(1), Ordering::Release);
        }
        next += gap;
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    done.store(true, Ordering::Release);
    let histogram = watcher.join().expect("watcher");
    let syncs = wal.metrics().sync_latency_us;
    println!(
        "        ({} group commits, sync p50 <= {} µs, p99 <= {} µs)",
        syncs.count,
        syncs.quantile_upper_bound(0.5),
        syncs.quantile_upper_bound(0.99)
    );
    histogram
}

fn micros(histogram: &Histogram<u64>, quantile: f64) -> f64 {
    histogram.value_at_quantile(quantile) as f64 / 1000.0
}

/// Lets the disk settle before a latency case: the previous case's dirty
/// pages (hundreds of MB) would otherwise be written back during this one.
fn settle() {
    // SAFETY: sync(2) takes no arguments and cannot fail.
    unsafe { libc::sync() };
    std::thread::sleep(Duration::from_millis(200));
}

fn latency_report() {
    let duration = if quick() { Duration::from_millis(300) } else { Duration::from_secs(3) };
    // `RECWAL_BENCH_LATENCY_POLICY=batch` reports only that policy.
    let only = std::env::var("RECWAL_BENCH_LATENCY_POLICY").ok();
    println!("\nlatency per append (µs): policy size threads -> p50 p99 p99.9 (records/s)");
    for (name, policy) in POLICIES {
        if only.as_deref().is_some_and(|only| only != name) {
            continue;
        }
        for size in SIZES {
            for threads in THREADS {
                settle();
                let histogram = append_latency(policy, size, threads, duration);
                println!(
                    "latency {name:6} {size:5}B {threads:2}t -> p50 {:9.2} p99 {:9.2} p99.9 {:9.2} ({:.0}/s)",
                    micros(&histogram, 0.5),
                    micros(&histogram, 0.99),
                    micros(&histogram, 0.999),
                    histogram.len() as f64 / duration.as_secs_f64()
                );
            }
        }
    }
    println!("\nBatch: time a record is at risk (append returned, not yet durable), one writer every 50 µs");
    for max_delay_ms in [1u64, 2, 5] {
        settle();
        let histogram = batch_risk_window(Duration::from_millis(max_delay_ms), 64, Duration::from_micros(50), duration);
        println!(
            "risk   max_delay {max_delay_ms} ms -> p50 {:9.2} p99 {:9.2} max {:9.2} µs ({} records)",
            micros(&histogram, 0.5),
            micros(&histogram, 0.99),
            histogram.max() as f64 / 1000.0,
            histogram.len()
        );
    }
}

fn main() {
    // `cargo test --benches` runs this binary without `--bench`: check that
    // every case works, quickly, and skip the latency report.
    let benchmarking = std::env::args().any(|arg| arg == "--bench");
    if std::env::var("RECWAL_BENCH_LATENCY_ONLY").is_err() {
        throughput();
    }
    if benchmarking {
        latency_report();
    }
    Criterion::default().configure_from_args().final_summary();
}
