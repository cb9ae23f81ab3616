//! Ranking with a model, on one machine, in one run:
//!
//! - `model_recommend/{unranked,ranked}`: time per `Engine::recommend`
//!   (UserCF, n = 10, 100 candidates) without a model and with the linear
//!   fixture `linear_v1` active;
//! - a report of recommend latency percentiles (hdrhistogram) with the
//!   model, in steady state and while another thread swaps the active
//!   version back and forth (v1 ↔ v2, each swap loads and warms the new
//!   version and waits for its durable activation record), with the ratio
//!   of the two p99s (goal: ≤ 1.5);
//! - the same report for the heavy ranker of GPU serving (`mlp_v1` ↔
//!   `mlp_v2`: 6 → 256 → 256 → 256 → 1, ReLU) ranking 500 candidates a
//!   request, on a state of its own. On the CPU everywhere; built with
//!   `--features recwal/cuda` on a machine with a GPU, the sessions use
//!   CUDA (the report names the device).
//!
//! The state is the `movielens_like` synthetic workload (100k events).
//! Needs the ONNX Runtime library (`scripts/install-onnxruntime.sh`;
//! `$ORT_DYLIB_PATH` or `.onnxruntime/lib/libonnxruntime.so`).
//!
//! Run: `cargo bench --bench models` (results: docs/BENCHMARKS.md, "Models").
//! Under `cargo test` every case runs once on a few thousand events.
#![allow(clippy::print_stdout)]
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::Criterion;
use hdrhistogram::Histogram;
use recwal::synth::{self, SynthConfig};
use recwal::{Durability, Engine, EngineConfig, RecommendRequest, Strategy};

fn runtime_path() -> PathBuf {
    match std::env::var_os("ORT_DYLIB_PATH") {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("../.onnxruntime/lib/libonnxruntime.so"),
    }
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/models").join(format!("{name}.onnx")))
        .unwrap()
}

/// A model family of the bench: its two fixtures and how many candidates
/// each request ranks.
struct Family {
    label: &'static str,
    fixtures: [&'static str; 2],
    candidates: usize,
}

/// The linear fixtures (what the criterion series and the first report use)
/// and the heavy ranker of GPU serving, an MLP with three hidden layers of
/// 256 over 500 candidates a request (issue 18).
const FAMILIES: [Family; 2] = [
    Family { label: "linear, 100 candidates", fixtures: ["linear_v1", "linear_v2"], candidates: 100 },
    Family { label: "MLP 3×256, 500 candidates", fixtures: ["mlp_v1", "mlp_v2"], candidates: 500 },
];

fn build(dir: &Path, events: u64, family: &Family) -> (Engine, Vec<String>) {
    let mut config = EngineConfig::default();
    config.models.candidates = family.candidates;
    config.checkpoint.disable_automatic();
    config.models.runtime_path = Some(runtime_path());
    // A busy moment must not open the breaker mid-measurement.
    config.models.breaker.latency_budget = Duration::from_secs(10);
    let engine = Engine::open(dir, config).unwrap();
    let all: Vec<_> = synth::events(&SynthConfig { events, ..SynthConfig::movielens_like() }).collect();
    let mut users: Vec<String> = all.iter().map(|event| event.user.clone()).collect();
    users.sort();
    users.dedup();
    for chunk in all.chunks(1000) {
        engine.ingest_batch_with(chunk, Durability::Never).unwrap();
    }
    engine.add_model(&fixture(family.fixtures[0])).unwrap();
    engine.add_model(&fixture(family.fixtures[1])).unwrap();
    (engine, users)
}

fn request(users: &[String], at: usize) -> RecommendRequest {
    RecommendRequest::new(users[(at * 7919) % users.len()].clone(), 10, Strategy::UserCf)
}

/// Latencies of `count` requests in µs, while `background` runs.
fn measure(engine: &Engine, users: &[String], count: usize) -> Histogram<u64> {
    let mut histogram = Histogram::<u64>::new(3).unwrap();
    for at in 0..count {
        let started = Instant::now();
        let answer = engine.recommend(&request(users, at)).unwrap();
        let micros = started.elapsed().as_micros() as u64;
        assert!(answer.ranking.version().is_some(), "unranked: {:?}", answer.ranking);
        histogram.record(micros.max(1)).unwrap();
    }
    histogram
}

fn show(label: &str, histogram: &Histogram<u64>) {
    println!(
        "{label:34} n {:6}  p50 {:6} µs  p99 {:6} µs  p99.9 {:6} µs  max {:6} µs",
        histogram.len(),
        histogram.value_at_quantile(0.5),
        histogram.value_at_quantile(0.99),
        histogram.value_at_quantile(0.999),
        histogram.max()
    );
}

fn main() {
    let test_mode = !std::env::args().any(|arg| arg == "--bench");
    let (events, requests) = if test_mode { (3_000, 50) } else { (100_000, 20_000) };
    let dir = tempfile::tempdir().unwrap();
    let (engine, users) = build(dir.path(), events, &FAMILIES[0]);
    println!(
        "models bench: {} events, {} users, {} CPUs, runtime {}",
        events,
        users.len(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        runtime_path().display()
    );

    let mut criterion = Criterion::default().configure_from_args();
    if test_mode {
        criterion = criterion
            .sample_size(10)
            .measurement_time(Duration::from_millis(10))
            .warm_up_time(Duration::from_millis(1));
    } else {
        criterion = criterion.measurement_time(Duration::from_secs(5));
    }
    {
        let mut group = criterion.benchmark_group("model_recommend");
        let mut at = 0;
        group.bench_function("unranked", |b| {
            b.iter(|| {
                at += 1;
                engine.recommend(&request(&users, at)).unwrap()
            })
        });
        engine.activate_model(1).unwrap();
        group.bench_function("ranked", |b| {
            b.iter(|| {
                at += 1;
                engine.recommend(&request(&users, at)).unwrap()
            })
        });
        group.finish();
    }
    criterion.final_summary();
    swap_report(&FAMILIES[0], engine, &users, requests);
    drop(dir);
    // The heavy ranker on a state of its own (fewer requests: each ranks 5×
    // the candidates through a model ~1,000× the linear one's work).
    let dir = tempfile::tempdir().unwrap();
    let (engine, users) = build(dir.path(), events, &FAMILIES[1]);
    engine.activate_model(1).unwrap();
    swap_report(&FAMILIES[1], engine, &users, (requests / 4).max(20));
}

/// Steady-state latency, then the same requests while another thread swaps
/// the active version back and forth; the ratio of the p99s (goal ≤ 1.5).
fn swap_report(family: &Family, engine: Engine, users: &[String], requests: usize) {
    let status = engine.model_status();
    println!("\n{}: device {:?}, io_binding {}", family.label, status.device, status.io_binding);
    // Steady state, then the same requests while versions swap.
    let steady = measure(&engine, users, requests);
    let engine = Arc::new(engine);
    let stop = Arc::new(AtomicBool::new(false));
    let swaps = Arc::new(AtomicU64::new(0));
    let swapper = {
        let (engine, stop, swaps) = (Arc::clone(&engine), Arc::clone(&stop), Arc::clone(&swaps));
        std::thread::spawn(move || {
            let mut version = 1;
            let probe = std::env::var("RECWAL_SWAP_PROBE").unwrap_or_default();
            while !stop.load(Ordering::Relaxed) {
                version = 3 - version;
                if probe == "ingest" {
                    let event = recwal::Event::new("probe", format!("p{version}"), recwal::EventKind::Click);
                    engine.ingest_with(event, Durability::Always).unwrap();
                } else if probe == "status" {
                    let _ = engine.model_status();
                } else {
                    engine.activate_model(version).unwrap();
                }
                swaps.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };
    let started = Instant::now();
    let swapping = measure(&engine, users, requests);
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    swapper.join().unwrap();
    let swaps = swaps.load(Ordering::Relaxed);
    println!();
    show(&format!("{}: steady", family.label), &steady);
    show(&format!("{}: during swaps", family.label), &swapping);
    let ratio = swapping.value_at_quantile(0.99) as f64 / steady.value_at_quantile(0.99).max(1) as f64;
    println!(
        "swaps: {swaps} in {:.1} s ({:.0}/s); p99 during swaps / steady p99 = {ratio:.2} (goal ≤ 1.5) {}",
        elapsed.as_secs_f64(),
        swaps as f64 / elapsed.as_secs_f64(),
        if ratio <= 1.5 { "✔" } else { "✘" }
    );
    // Swapped-out versions are freed by the engine's background thread
    // (every 20 ms) once their last request ended.
    let waited = Instant::now();
    while engine.model_status().loaded_versions > 1 && waited.elapsed() < Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let status = engine.model_status();
    println!(
        "loaded versions after the run: {} (device {:?}, io_binding {})",
        status.loaded_versions, status.device, status.io_binding
    );
}
