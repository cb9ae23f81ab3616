//! The `ials` strategy through the engine: recommend latency (p50 / p99
//! over many requests through `Engine::recommend`, and a criterion
//! series), training time and memory, and the restart with the artefact, on
//! MovieLens 100k's state and on the 1M-user / 100k-item / 10M-event
//! synthetic state (`SynthConfig::large()`, the state of docs/BENCHMARKS.md).
//!
//! ```text
//! scripts/fetch-movielens.sh
//! cargo bench --bench ials_engine                          # ML-100k
//! RECWAL_IALS_LARGE=1 cargo bench --bench ials_engine      # + the large state (≈ 4 min, ~6 GB)
//! ```
//!
//! Training memory is the process's peak resident set (`VmHWM`) during the
//! training above what it held before.
#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use recwal::eval::{load_ratings, train_engine};
use recwal::synth::{self, SplitMix64, SynthConfig};
use recwal::wal::SyncPolicy;
use recwal::{Durability, Engine, EngineConfig, ItemModelFamily, RecommendRequest, Strategy};
use recwal_bench::{load_average, mib, proc_status_bytes, quantiles, restart_until_item_model_serves, test_mode};

const ML_PATH: &str = "data/ml-100k/ml-100k.inter";

fn config() -> EngineConfig {
    let mut config = EngineConfig::default();
    config.wal = config.wal.sync_policy(SyncPolicy::Never);
    config.checkpoint.disable_automatic();
    config.item_model.family = ItemModelFamily::Ials;
    config.item_model.retrain_every_events = None;
    config.item_model.retrain_every = None;
    config
}

/// Trains iALS on `engine`, timing it and its memory.
fn train(engine: &Engine, what: &str) {
    let before = proc_status_bytes("VmRSS");
    let began = Instant::now();
    let info = engine.train_item_model().unwrap();
    let took = began.elapsed();
    assert_eq!(info.family, ItemModelFamily::Ials);
    println!(
        "ials: {what}: trained {} items in {:.1} s, peak RSS {:.0} MiB above the {:.0} MiB before, artefact {:.1} MiB",
        info.n_items,
        took.as_secs_f64(),
        mib(proc_status_bytes("VmHWM").saturating_sub(before)),
        mib(before),
        mib(info.bytes)
    );
}

/// `requests` recommendations (n = 10, `ials`) for users drawn from
/// `users`; prints p50 / p99 / max.
fn latency(engine: &Engine, users: &[String], requests: usize, what: &str) {
    let mut rng = SplitMix64::new(11);
    let mut times = Vec::with_capacity(requests);
    for _ in 0..requests {
        let user = &users[rng.below(users.len() as u64) as usize];
        let request = RecommendRequest::new(user.as_str(), 10, Strategy::Ials);
        let began = Instant::now();
        let answer = engine.recommend(&request).unwrap();
        times.push(began.elapsed());
        assert_eq!(answer.items.len(), 10);
    }
    println!(
        "ials: recommend n=10 on {what} ({} requests, load {}): {}",
        times.len(),
        load_average(),
        quantiles(&mut times)
    );
}

/// The restart with the artefact, printed.
fn restart(dir: &std::path::Path, engine: Engine, what: &str) {
    let took = restart_until_item_model_serves(dir, engine, config());
    println!("ials: restart of {what} with its item model: {:.2} s until ials serves", took.as_secs_f64());
}

/// ML-100k's state (or, without the file or in test mode, a small
/// synthetic one): training, latency, a criterion series, restart.
fn small(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let (engine, users, what) = match load_ratings(&recwal_bench::workspace_path(ML_PATH)) {
        Ok(ratings) if !test_mode() => {
            let engine = train_engine(dir.path(), config(), &ratings).unwrap();
            let mut users: Vec<String> = ratings.iter().map(|rating| rating.user.clone()).collect();
            users.sort();
            users.dedup();
            (engine, users, "ML-100k")
        }
        _ => {
            let synth = SynthConfig { users: 300, items: 200, events: 6000, ..SynthConfig::default() };
            let engine = Engine::open(dir.path(), config()).unwrap();
            let events: Vec<_> = synth::events(&synth).collect();
            engine.ingest_batch(&events).unwrap();
            let users = (0..300).map(|user| format!("u{user}")).collect();
            (engine, users, "a small synthetic state")
        }
    };
    train(&engine, what);
    latency(&engine, &users, if test_mode() { 100 } else { 20_000 }, what);
    let mut rng = SplitMix64::new(7);
    c.bench_function("ials/recommend_n10", |b| {
        b.iter(|| {
            let user = &users[rng.below(users.len() as u64) as usize];
            engine.recommend(&RecommendRequest::new(user.as_str(), 10, Strategy::Ials)).unwrap()
        })
    });
    restart(dir.path(), engine, what);
}

/// The 1M-user / 100k-item / 10M-event state (`RECWAL_IALS_LARGE=1`).
fn large(_: &mut Criterion) {
    if test_mode() || std::env::var("RECWAL_IALS_LARGE").map_or(true, |value| value != "1") {
        println!("ials: the large state is measured with RECWAL_IALS_LARGE=1");
        return;
    }
    let synth = SynthConfig::large();
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), config()).unwrap();
    let began = Instant::now();
    let mut batch = Vec::with_capacity(1000);
    for event in synth::events(&synth) {
        batch.push(event);
        if batch.len() == 1000 {
            engine.ingest_batch_with(&batch, Durability::Never).unwrap();
            batch.clear();
        }
    }
    engine.ingest_batch_with(&batch, Durability::Never).unwrap();
    let stats = engine.stats();
    println!(
        "ials: large state: {} events ingested in {:.0} s, RSS {:.0} MiB",
        stats.events_applied,
        began.elapsed().as_secs_f64(),
        mib(proc_status_bytes("VmRSS"))
    );
    let what = "1M users / 100k items / 10M events";
    train(&engine, what);
    // Users with at least one event (those drawn by the generator).
    let users: Vec<String> = (0..synth.users)
        .map(|user| format!("u{user}"))
        .filter(|user| engine.interactions(user).is_ok_and(|found| !found.is_empty()))
        .take(200_000)
        .collect();
    latency(&engine, &users, 20_000, what);
    restart(dir.path(), engine, what);
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(3));
    targets = small, large
}
criterion_main!(benches);
