//! iALS (implicit ALS with CG updates, `recwal::ials`): training time and
//! memory, artefact size, and fold-in + scoring latency per user, on
//! synthetic Zipf workloads (`recwal::synth`) and on MovieLens 100k when
//! present.
//!
//! ```text
//! cargo bench --bench ials
//! RECWAL_IALS_SIZES=943:1682:100000,1000000:100000:10000000 cargo bench --bench ials
//! RECWAL_IALS_FACTORS=128 cargo bench --bench ials
//! ```
//!
//! Sizes are `users:items:events` triples. Events are aggregated into pairs
//! as the state does (the latest rating plus the implicit kinds' default
//! weights, `Pair::value`), then trained with `IalsParams::default()` (but
//! `RECWAL_IALS_FACTORS` factors) on every core.
//!
//! Training memory is the process's peak resident set (`VmHWM`, reset
//! through `/proc/self/clear_refs` before training) above what it held
//! before, next to `ials::train_bytes`. Latency is the algorithm alone on
//! one thread: fold-in (`user_vector`: an exact f × f solve from the user's
//! pairs) plus y·x for every item into a reused buffer, for random users
//! with at least one pair (at least 2000 of them; p50 / p99 / max).
#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use recwal::eval::load_ratings;
use recwal::ials::{self, IalsFactors, IalsParams, Progress, TrainingSet};
use recwal::synth::{self, SplitMix64, SynthConfig};
use recwal::{EventKind, KindWeights};
use recwal_bench::{mib, proc_status_bytes, quantiles, test_mode};

const ML_PATH: &str = "data/ml-100k/ml-100k.inter";

/// The events of `config` as a training set: one pair per (user, item),
/// valued as `Pair::value` (the latest rating plus the implicit weights).
fn synthetic_set(config: &SynthConfig) -> TrainingSet {
    let weights = KindWeights::default();
    let number = |id: &str| id[1..].parse::<u32>().unwrap();
    let mut raw: Vec<Vec<(u32, f32, bool)>> = vec![Vec::new(); config.users as usize];
    for event in synth::events(config) {
        let (weight, rating) = match event.kind {
            EventKind::View => (weights.view, false),
            EventKind::Click => (weights.click, false),
            EventKind::Cart => (weights.cart, false),
            EventKind::Purchase => (weights.purchase, false),
            EventKind::Rating(value) => (value, true),
            EventKind::Custom(_) => continue,
        };
        raw[number(&event.user) as usize].push((number(&event.item), weight, rating));
    }
    let rows = raw
        .into_iter()
        .map(|mut events| {
            // Stable: a later rating of an item replaces an earlier one.
            events.sort_by_key(|event| event.0);
            let mut row: Vec<(u32, f32)> = Vec::new();
            let mut at = 0;
            while at < events.len() {
                let item = events[at].0;
                let (mut rating, mut implicit) = (0.0f32, 0.0f32);
                while at < events.len() && events[at].0 == item {
                    if events[at].2 {
                        rating = events[at].1;
                    } else {
                        implicit += events[at].1;
                    }
                    at += 1;
                }
                row.push((item, rating + implicit));
            }
            row
        })
        .collect();
    TrainingSet { names: (0..config.items).map(|item| format!("i{item}")).collect(), rows, lsn: 0 }
}

/// MovieLens 100k's ratings as a training set (x = the rating).
fn movielens_set() -> Option<TrainingSet> {
    let ratings = load_ratings(&recwal_bench::workspace_path(ML_PATH)).ok()?;
    let mut users = std::collections::HashMap::new();
    let mut items = std::collections::HashMap::new();
    let mut names = Vec::new();
    let mut rows: Vec<Vec<(u32, f32)>> = Vec::new();
    for rating in &ratings {
        let next_user = users.len();
        let user = *users.entry(rating.user.clone()).or_insert(next_user);
        if user == rows.len() {
            rows.push(Vec::new());
        }
        let item = *items.entry(rating.item.clone()).or_insert_with(|| {
            names.push(rating.item.clone());
            names.len() as u32 - 1
        });
        rows[user].push((item, rating.value));
    }
    for row in &mut rows {
        row.sort_by_key(|pair| pair.0);
        row.dedup_by_key(|pair| pair.0);
    }
    Some(TrainingSet { names, rows, lsn: 0 })
}

fn params() -> IalsParams {
    let mut params = IalsParams::default();
    if let Some(factors) = std::env::var("RECWAL_IALS_FACTORS").ok().and_then(|value| value.parse().ok()) {
        params.factors = factors;
    }
    if test_mode() {
        params.factors = 8;
        params.iterations = 2;
    }
    params
}

/// Trains on `set`, prints one table row, and returns the model.
fn measure(name: &str, set: &TrainingSet, params: &IalsParams) -> IalsFactors {
    let pairs: usize = set.rows.iter().map(Vec::len).sum();
    // Resets VmHWM to the current RSS (Linux ≥ 4.0; ignored elsewhere).
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let before = proc_status_bytes("VmRSS");
    let began = Instant::now();
    let model = ials::train(set, params, &Progress::default()).unwrap();
    let elapsed = began.elapsed();
    let peak = proc_status_bytes("VmHWM").saturating_sub(before);
    let artefact = ials::artefact(&model).unwrap().len() as u64;

    let mut rng = SplitMix64::new(7);
    let active: Vec<usize> = (0..set.rows.len()).filter(|&user| !set.rows[user].is_empty()).collect();
    let requests = if test_mode() { 50 } else { active.len().clamp(2000, 20_000) };
    let mut scores = vec![0.0f64; set.names.len()];
    let mut times = Vec::with_capacity(requests);
    for _ in 0..requests {
        let user = active[rng.below(active.len() as u64) as usize];
        let began = Instant::now();
        ials::score_user(&model, &set.rows[user], &mut scores);
        times.push(began.elapsed());
        assert!(scores[0].is_finite());
    }
    let latency = quantiles(&mut times);
    println!(
        "| {name} | {} | {} | {pairs} | {} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:?} | {:?} | {:?} |",
        set.rows.len(),
        set.names.len(),
        params.factors,
        params.iterations,
        elapsed.as_secs_f64(),
        mib(peak),
        mib(ials::train_bytes(set.rows.len(), set.names.len(), pairs, params.factors)),
        mib(artefact),
        latency.p50,
        latency.p99,
        latency.max,
    );
    model
}

fn training(c: &mut Criterion) {
    let sizes: Vec<(u32, u32, u64)> = match std::env::var("RECWAL_IALS_SIZES") {
        Ok(list) => list
            .split(',')
            .filter_map(|size| {
                let mut parts = size.trim().split(':').map(str::trim);
                Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
            })
            .collect(),
        Err(_) if test_mode() => vec![(500, 200, 5000)],
        Err(_) => vec![(943, 1682, 100_000), (20_000, 5000, 200_000)],
    };
    let params = params();
    println!(
        "| data | users | items | pairs | factors | iterations | train s | peak RSS above baseline MiB | \
         train_bytes MiB | artefact MiB | fold-in + score p50 | p99 | max |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    if let Some(set) = movielens_set() {
        measure("ML-100k", &set, &params);
    }
    let mut last = None;
    for (users, items, events) in sizes {
        let config = SynthConfig { users, items, events, ..SynthConfig::default() };
        let set = synthetic_set(&config);
        let model = measure(&format!("synth {users}:{items}:{events}"), &set, &params);
        last = Some((set, model));
    }
    let Some((set, model)) = last else { return };
    let active: Vec<usize> = (0..set.rows.len()).filter(|&user| !set.rows[user].is_empty()).collect();
    let mut scores = vec![0.0f64; set.names.len()];
    let mut rng = SplitMix64::new(11);
    c.bench_function("ials/fold_in_and_score", |b| {
        b.iter(|| {
            let user = active[rng.below(active.len() as u64) as usize];
            ials::score_user(&model, &set.rows[user], &mut scores);
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(3));
    targets = training
}
criterion_main!(benches);
