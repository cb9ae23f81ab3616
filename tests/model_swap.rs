//! Hot swap under load: reader threads recommend without pause while the
//! active version is swapped (and rolled back) over a hundred times. No
//! request fails, every answer's scores are those of the version it names,
//! and once the last request on an old version ends, that version is freed.
//! (Its own test binary, its tests one at a time: they count the versions
//! loaded in the process.) Once with the linear fixtures, once with the heavy
//! MLP ranker.
#![allow(clippy::unwrap_used)]

mod model_support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use model_support::{config, fixture_bytes, linear_score, mlp_score, seed};
use recwal::{Engine, Ranking, RecommendRequest, Strategy};

const READERS: usize = 3;

/// The tests count the versions loaded in the process: one at a time.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn swaps_under_load_fail_no_request() {
    swaps_under_load(["linear_v1", "linear_v2"], linear_score, 5, 120);
}

/// The heavy ranker of GPU serving (an MLP with three hidden layers of
/// 256), here on the CPU: the same guarantees with a model whose sessions
/// take real time to build and whose runs take real time.
#[test]
fn heavy_model_swaps_under_load_fail_no_request() {
    swaps_under_load(["mlp_v1", "mlp_v2"], mlp_score, 5, 40);
}

/// Reader threads recommend (`n` items each) while the active version is
/// swapped `swaps` times (every 10th a rollback): no request fails or goes
/// un-ranked, every score is `score(fixture of the version named, features)`,
/// and the swapped-out versions are freed.
fn swaps_under_load(fixtures: [&'static str; 2], score: fn(&str, &[f32]) -> f32, n: usize, swaps: u32) {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let mut config = config();
    // Not under test here: a slow moment on a busy machine must not open it.
    config.models.breaker.latency_budget = std::time::Duration::from_secs(30);
    let engine = Arc::new(Engine::open(dir.path(), config).unwrap());
    seed(&engine);
    engine.add_model(&fixture_bytes(fixtures[0])).unwrap();
    engine.add_model(&fixture_bytes(fixtures[1])).unwrap();
    engine.activate_model(1).unwrap();
    // The state does not change during the test, so each request's
    // features are fixed: computed once here.
    type Features = Vec<(String, Vec<f32>)>;
    let requests: Vec<(RecommendRequest, Features)> = ["u1", "u4", "u7", "heavy", "nobody"]
        .iter()
        .zip(Strategy::ALL.iter().cycle())
        .map(|(user, &strategy)| {
            let request = RecommendRequest::new(*user, n, strategy);
            let features = engine.candidate_features(&request).unwrap();
            (request, features)
        })
        .collect();
    let requests = Arc::new(requests);
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
    let readers: Vec<_> = (0..READERS)
        .map(|reader| {
            let (engine, requests, stop, answered) =
                (Arc::clone(&engine), Arc::clone(&requests), Arc::clone(&stop), Arc::clone(&answered));
            std::thread::spawn(move || {
                let mut at = reader;
                while !stop.load(Ordering::Relaxed) {
                    let (request, features) = &requests[at % requests.len()];
                    at += 1;
                    let answer = engine.recommend(request).unwrap();
                    let Ranking::Model { version } = answer.ranking else {
                        panic!("a request was not ranked during a swap: {:?}", answer.ranking);
                    };
                    let fixture = fixtures[version as usize - 1];
                    assert_eq!(answer.items.len(), request.n);
                    for item in &answer.items {
                        let row = &features.iter().find(|(name, _)| name == &item.item).unwrap().1;
                        let expected = score(fixture, row);
                        let got = item.model_score.unwrap();
                        assert!(
                            (got - expected).abs() < 1e-4 * (1.0 + expected.abs()),
                            "v{version}: {} scored {got}, not {expected}",
                            item.item
                        );
                    }
                    answered[version as usize - 1].fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let mut rollbacks = 0;
    for swap in 0..swaps {
        if swap % 10 == 9 {
            engine.rollback_model().unwrap();
            rollbacks += 1;
        } else {
            let current = engine.model_status().serving.unwrap();
            engine.activate_model(3 - current).unwrap();
        }
    }
    stop.store(true, Ordering::Relaxed);
    for reader in readers {
        reader.join().unwrap();
    }
    let (v1, v2) = (answered[0].load(Ordering::Relaxed), answered[1].load(Ordering::Relaxed));
    assert!(v1 > 0 && v2 > 0, "both versions must have answered: v1 {v1}, v2 {v2}");
    assert!(rollbacks >= swaps / 10);
    let activations: usize = engine.models().iter().map(|model| model.activations.len()).sum();
    assert_eq!(activations as u32, swaps + 1);
    // Only the serving version stays loaded: every swapped-out version is
    // freed (by the engine's background thread, within ~20 ms) once its
    // last request ended.
    let started = std::time::Instant::now();
    while engine.model_status().loaded_versions > 1 && started.elapsed() < std::time::Duration::from_secs(5) {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let status = engine.model_status();
    assert_eq!(status.loaded_versions, 1, "{status:?}");
}
