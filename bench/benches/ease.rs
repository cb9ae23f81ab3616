//! The `ease` strategy: recommend latency on MovieLens 100k state (p50 /
//! p99 over many requests, and a criterion series), and item-model training
//! time and memory per catalogue size (synthetic, Zipf popularity).
//!
//! ```text
//! scripts/fetch-movielens.sh
//! cargo bench --bench ease
//! RECWAL_EASE_SIZES=1000,2000,4000,8000 cargo bench --bench ease   # training sizes
//! ```
//!
//! Training memory is the process's peak resident set (`VmHWM`) during the
//! training above what it held before (sizes run in increasing order, so the
//! high-water mark moves with each), next to the 24·n² bytes the algorithm
//! needs (docs/EVALUATION.md).
#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use recwal::eval::{load_ratings, train_engine};
use recwal::synth::{self, SplitMix64, SynthConfig};
use recwal::wal::SyncPolicy;
use recwal::{Engine, EngineConfig, RecommendRequest, Strategy};
use recwal_bench::{load_average, proc_status_bytes, quantiles, restart_until_item_model_serves, test_mode};

const ML_PATH: &str = "data/ml-100k/ml-100k.inter";

fn config() -> EngineConfig {
    let mut config = EngineConfig::default();
    config.wal = config.wal.sync_policy(SyncPolicy::Never);
    config.checkpoint.disable_automatic();
    config.item_model.retrain_every_events = None;
    config.item_model.retrain_every = None;
    config.item_model.items_max = recwal::ITEM_MODEL_ITEMS_MAX;
    config
}

/// Recommend latency on ML-100k: every user, `rounds` times, p50 / p99.
fn latency(c: &mut Criterion) {
    let Ok(ratings) = load_ratings(&recwal_bench::workspace_path(ML_PATH)) else {
        println!("ease: {ML_PATH} missing (scripts/fetch-movielens.sh): latency skipped");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let engine = train_engine(dir.path(), config(), &ratings).unwrap();
    let info = engine.train_item_model().unwrap();
    println!("ease: ML-100k item model: {} items, trained in {} ms", info.n_items, info.train_ms);
    let users: Vec<String> = {
        let mut seen: Vec<String> = ratings.iter().map(|rating| rating.user.clone()).collect();
        seen.sort();
        seen.dedup();
        seen
    };
    let rounds = if test_mode() { 1 } else { 20 };
    let mut times = Vec::with_capacity(users.len() * rounds);
    for _ in 0..rounds {
        for user in &users {
            let request = RecommendRequest::new(user.as_str(), 10, Strategy::Ease);
            let began = Instant::now();
            let answer = engine.recommend(&request).unwrap();
            times.push(began.elapsed());
            assert_eq!(answer.items.len(), 10);
        }
    }
    println!(
        "ease: recommend n=10 on ML-100k ({} requests, load {}): {}",
        times.len(),
        load_average(),
        quantiles(&mut times)
    );
    let mut rng = SplitMix64::new(7);
    c.bench_function("ease/recommend_ml100k_n10", |b| {
        b.iter(|| {
            let user = &users[rng.below(users.len() as u64) as usize];
            engine.recommend(&RecommendRequest::new(user.as_str(), 10, Strategy::Ease)).unwrap()
        })
    });
    let restart = restart_until_item_model_serves(dir.path(), engine, config());
    println!(
        "ease: restart of the ML-100k state with its item model: {:.3} s until ease serves",
        restart.as_secs_f64()
    );
}

/// Training time and memory per catalogue size.
fn training(_: &mut Criterion) {
    let sizes: Vec<u32> = match std::env::var("RECWAL_EASE_SIZES") {
        Ok(list) => list.split(',').filter_map(|size| size.trim().parse().ok()).collect(),
        Err(_) if test_mode() => vec![200],
        Err(_) => vec![1000, 2000, 4000],
    };
    println!(
        "| items | users | events | train s | peak RSS above baseline MiB | 24·n² MiB | artefact MiB | restart s \
         (snapshot + artefact, until ease answers from the model) |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for items in sizes {
        let users = items * 10;
        let synth = SynthConfig { users, items, events: u64::from(users) * 20, ..SynthConfig::default() };
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(dir.path(), config()).unwrap();
        let events: Vec<_> = synth::events(&synth).collect();
        for chunk in events.chunks(5000) {
            engine.ingest_batch(chunk).unwrap();
        }
        let before = proc_status_bytes("VmRSS");
        let began = Instant::now();
        let info = engine.train_item_model().unwrap();
        let elapsed = began.elapsed();
        let peak = proc_status_bytes("VmHWM").saturating_sub(before);
        let restart = restart_until_item_model_serves(dir.path(), engine, config());
        println!(
            "| {} | {users} | {} | {:.1} | {:.0} | {:.0} | {:.0} | {:.2} |",
            info.n_items,
            events.len(),
            elapsed.as_secs_f64(),
            peak as f64 / (1 << 20) as f64,
            (24.0 * f64::from(info.n_items) * f64::from(info.n_items)) / (1 << 20) as f64,
            info.bytes as f64 / (1 << 20) as f64,
            restart.as_secs_f64()
        );
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(3));
    targets = latency, training
}
criterion_main!(benches);
