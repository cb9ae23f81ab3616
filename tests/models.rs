//! Ranking models end to end, on the committed fixtures and the real ONNX
//! Runtime: registry (add, activate, rollback, list, retention), scores
//! that match the version named, bad models refused with the active
//! version untouched, restart on the same version (also after SIGKILL), a
//! tampered file detected, and the circuit breaker driven by a manual clock.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

mod model_support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use model_support::{config, fixture, fixture_bytes, linear_score, seed};
use recwal::model::{BreakerConfig, BreakerState, Clock};
use recwal::{Engine, EngineError, Ranking, RecommendRequest, Strategy};

/// Every item's model score is the named version's function of the
/// item's features.
fn assert_scores_match(engine: &Engine, request: &RecommendRequest, fixture_of: &dyn Fn(u32) -> &'static str) {
    let features = engine.candidate_features(request).unwrap();
    let answer = engine.recommend(request).unwrap();
    let version = answer.ranking.version().unwrap_or_else(|| panic!("not ranked: {:?}", answer.ranking));
    assert_eq!(answer.items.len(), request.n);
    let mut previous = f32::INFINITY;
    for item in &answer.items {
        let row = &features.iter().find(|(name, _)| name == &item.item).unwrap().1;
        let expected = linear_score(fixture_of(version), row);
        let got = item.model_score.unwrap();
        assert!((got - expected).abs() < 1e-4, "v{version} scored {} {got}, expected {expected}", item.item);
        assert!(got <= previous, "not in model order");
        previous = got;
    }
}

/// An engine in `dir`, seeded, with the linear fixtures added as v1 and v2
/// (neither active).
fn with_linear_models(dir: &Path) -> Engine {
    let engine = Engine::open(dir, config()).unwrap();
    seed(&engine);
    engine.add_model(&fixture_bytes("linear_v1")).unwrap();
    engine.add_model(&fixture_bytes("linear_v2")).unwrap();
    engine
}

/// An engine in `dir`, seeded, serving the fixture `name` as version 1.
fn serving(dir: &Path, config: recwal::EngineConfig, name: &str) -> Engine {
    let engine = Engine::open(dir, config).unwrap();
    seed(&engine);
    engine.add_model(&fixture_bytes(name)).unwrap();
    engine.activate_model(1).unwrap();
    engine
}

fn linear(version: u32) -> &'static str {
    if version == 1 {
        "linear_v1"
    } else {
        "linear_v2"
    }
}

#[test]
fn add_activate_rollback_and_list() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), config()).unwrap();
    seed(&engine);
    let request = RecommendRequest::new("u3", 5, Strategy::UserCf);
    assert_eq!(engine.recommend(&request).unwrap().ranking, Ranking::Unranked { reason: None });

    let v1 = engine.add_model_file(&fixture("linear_v1")).unwrap();
    let v2 = engine.add_model(&fixture_bytes("linear_v2")).unwrap();
    assert_eq!((v1.version, v2.version), (1, 2));
    // The same file again is the same version; nothing new is logged.
    let lsn = engine.lsn_applied();
    assert_eq!(engine.add_model(&fixture_bytes("linear_v1")).unwrap().version, 1);
    assert_eq!(engine.lsn_applied(), lsn);
    assert_eq!(v1.sha256.len(), 64);
    assert!(dir.path().join("models/v000001.onnx").is_file());
    // Added is not active.
    assert_eq!(engine.recommend(&request).unwrap().ranking, Ranking::Unranked { reason: None });

    let mut unranked_reasons = std::collections::HashMap::new();
    for strategy in [Strategy::UserCf, Strategy::ItemRank, Strategy::Blend] {
        for item in engine.recommend(&RecommendRequest::new("u5", 100, strategy)).unwrap().items {
            unranked_reasons.insert((strategy, item.item), item.reasons);
        }
    }
    engine.activate_model(1).unwrap();
    assert_scores_match(&engine, &request, &linear);
    assert_eq!(engine.recommend(&request).unwrap().ranking, Ranking::Model { version: 1 });
    engine.activate_model(2).unwrap();
    assert_eq!(engine.recommend(&request).unwrap().ranking, Ranking::Model { version: 2 });
    assert_scores_match(&engine, &request, &linear);
    // Every strategy and a cold-start user are ranked too.
    for strategy in Strategy::ALL {
        assert_scores_match(&engine, &RecommendRequest::new("u5", 4, strategy), &linear);
    }
    assert_scores_match(&engine, &RecommendRequest::new("nobody", 4, Strategy::UserCf), &linear);
    // A ranked item carries the reasons the strategy gives it un-ranked.
    for strategy in [Strategy::UserCf, Strategy::ItemRank, Strategy::Blend] {
        let ranked = engine.recommend(&RecommendRequest::new("u5", 4, strategy)).unwrap();
        for item in &ranked.items {
            let expected = &unranked_reasons[&(strategy, item.item.clone())];
            assert_eq!(&item.reasons, expected, "{strategy:?} {}", item.item);
            assert!(!item.reasons.is_empty(), "{strategy:?} {} has no reasons", item.item);
        }
    }

    let rolled = engine.rollback_model().unwrap();
    assert_eq!(rolled.version, 1);
    assert_eq!(engine.recommend(&request).unwrap().ranking, Ranking::Model { version: 1 });
    assert!(matches!(engine.rollback_model(), Err(EngineError::Invalid { .. })));

    let listed = engine.models();
    assert_eq!(listed.len(), 2);
    assert!(listed[0].active && !listed[1].active);
    assert_eq!(listed[0].activations.len(), 2);
    assert!(listed[0].activations[1].rollback);
    assert!(listed[0].activations[0].lsn < listed[1].activations[0].lsn);
    let status = engine.model_status();
    assert_eq!((status.active, status.serving, status.fault.clone()), (Some(1), Some(1), None));
    assert_eq!(status.breaker, Some(BreakerState::Closed));
    assert!(status.runtime.is_ok());
    assert!(matches!(engine.activate_model(9), Err(EngineError::UnknownModel(9))));
}

#[test]
fn bad_models_are_refused_and_the_active_version_stays() {
    let dir = tempfile::tempdir().unwrap();
    let engine = serving(dir.path(), config(), "linear_v1");
    let lsn = engine.lsn_applied();
    let cases = [
        ("corrupt", "cannot load the model"),
        ("wrong_schema", "declares feature schema \"99\""),
        ("no_schema", "no `recwal.feature_schema` metadata"),
        ("wrong_shape", "has shape [N, 5]"),
        ("wrong_names", "input is named `x`"),
        ("nan_output", "row 0 is NaN"),
    ];
    for (name, expected) in cases {
        match engine.add_model(&fixture_bytes(name)) {
            Err(EngineError::BadModel(reason)) => assert!(reason.contains(expected), "{name}: {reason}"),
            other => panic!("{name} was not refused: {other:?}"),
        }
    }
    assert!(matches!(engine.add_model(b""), Err(EngineError::Invalid { .. })));
    assert_eq!(engine.lsn_applied(), lsn, "a refused model wrote to the log");
    assert_eq!(engine.models().len(), 1);
    let files = std::fs::read_dir(dir.path().join("models")).unwrap().count();
    assert_eq!(files, 1, "a refused model left a file");
    let answer = engine.recommend(&RecommendRequest::new("u1", 3, Strategy::UserCf)).unwrap();
    assert_eq!(answer.ranking, Ranking::Model { version: 1 });
}

#[test]
fn restart_comes_back_on_the_active_version_and_detects_a_tampered_file() {
    let dir = tempfile::tempdir().unwrap();
    {
        let engine = with_linear_models(dir.path());
        engine.activate_model(2).unwrap();
        engine.checkpoint().unwrap();
        engine.activate_model(1).unwrap();
        engine.activate_model(2).unwrap();
    }
    let request = RecommendRequest::new("u2", 4, Strategy::ItemRank);
    {
        // The catalog comes from the snapshot plus the log after it.
        let engine = Engine::open(dir.path(), config()).unwrap();
        assert_eq!(engine.recommend(&request).unwrap().ranking, Ranking::Model { version: 2 });
        assert_scores_match(&engine, &request, &linear);
        assert_eq!(engine.rollback_model().unwrap().version, 1);
        engine.activate_model(2).unwrap();
    }
    let file = dir.path().join("models/v000002.onnx");
    let mut bytes = std::fs::read(&file).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    std::fs::write(&file, &bytes).unwrap();
    let engine = Engine::open(dir.path(), config()).unwrap();
    let answer = engine.recommend(&request).unwrap();
    match &answer.ranking {
        Ranking::Unranked { reason: Some(reason) } => assert!(reason.contains("altered"), "{reason}"),
        other => panic!("a tampered model must not serve: {other:?}"),
    }
    assert_eq!(answer.items.len(), 4);
    let status = engine.model_status();
    assert_eq!((status.active, status.serving), (Some(2), None));
    assert!(status.fault.unwrap().contains("SHA-256"));
    // Activating an intact version repairs it.
    engine.activate_model(1).unwrap();
    assert_eq!(engine.recommend(&request).unwrap().ranking, Ranking::Model { version: 1 });
    drop(engine);
    std::fs::remove_file(dir.path().join("models/v000001.onnx")).unwrap();
    let engine = Engine::open(dir.path(), config()).unwrap();
    assert!(engine.model_status().fault.unwrap().contains("cannot read"));
}

const CHILD_DIR: &str = "RECWAL_MODEL_CRASH_DIR";

/// The child of the SIGKILL test (returns at once without its variable).
#[test]
fn model_crash_child_entry_point() {
    let Ok(dir) = std::env::var(CHILD_DIR) else { return };
    let engine = with_linear_models(Path::new(&dir));
    engine.activate_model(1).unwrap();
    engine.activate_model(2).unwrap();
    println!("ACTIVATED 2");
    // Keep going until killed, so the kill lands while the engine is live
    // (with a deadline, so a failed parent never leaves it running).
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_secs(30) {
        let _ = engine.recommend(&RecommendRequest::new("u1", 3, Strategy::UserCf));
    }
}

#[test]
fn activation_survives_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["model_crash_child_entry_point", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let acknowledged = lines.by_ref().map_while(Result::ok).find(|line| line.contains("ACTIVATED"));
    assert!(acknowledged.is_some_and(|line| line.ends_with("ACTIVATED 2")), "the child did not activate v2");
    std::thread::sleep(Duration::from_millis(20));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let engine = Engine::open(dir.path(), config()).unwrap();
    let request = RecommendRequest::new("u1", 3, Strategy::UserCf);
    assert_eq!(engine.recommend(&request).unwrap().ranking, Ranking::Model { version: 2 });
    assert_scores_match(&engine, &request, &linear);
}

fn breaker_config(latency_budget: Duration) -> (recwal::EngineConfig, recwal::model::ManualClock) {
    let mut config = config();
    let (clock, hand) = Clock::manual();
    config.models.clock = clock;
    config.models.breaker = BreakerConfig {
        failures: 3,
        window: Duration::from_secs(10),
        open_for: Duration::from_secs(5),
        latency_budget,
    };
    (config, hand)
}

#[test]
fn breaker_opens_on_failures_and_a_good_probe_closes_it() {
    let dir = tempfile::tempdir().unwrap();
    let (config, hand) = breaker_config(Duration::from_secs(60));
    let engine = Engine::open(dir.path(), config).unwrap();
    seed(&engine);
    // Fails on users with more than e³ ≈ 20 items.
    engine.add_model(&fixture_bytes("failing")).unwrap();
    engine.activate_model(1).unwrap();
    let heavy = RecommendRequest::new("heavy", 3, Strategy::ItemRank);
    let light = RecommendRequest::new("light", 3, Strategy::ItemRank);
    assert_eq!(engine.recommend(&light).unwrap().ranking, Ranking::Model { version: 1 });
    for _ in 0..3 {
        let answer = engine.recommend(&heavy).unwrap();
        match &answer.ranking {
            Ranking::Degraded { version: 1, reason } => assert!(reason.contains("inference failed"), "{reason}"),
            other => panic!("expected degraded: {other:?}"),
        }
        assert_eq!(answer.items.len(), 3);
        assert!(answer.items.iter().all(|item| item.model_score.is_none()));
    }
    assert_eq!(engine.model_status().breaker, Some(BreakerState::Open));
    // Open: even a request the model could answer is not sent to it.
    for request in [&light, &heavy] {
        match engine.recommend(request).unwrap().ranking {
            Ranking::Degraded { reason, .. } => assert!(reason.contains("breaker is open"), "{reason}"),
            other => panic!("expected degraded: {other:?}"),
        }
    }
    hand.advance(Duration::from_secs(5));
    // Half-open: the probe succeeds and closes it.
    assert_eq!(engine.recommend(&light).unwrap().ranking, Ranking::Model { version: 1 });
    let status = engine.model_status();
    assert_eq!(status.breaker, Some(BreakerState::Closed));
    let counts = status.breaker_counts.unwrap();
    assert_eq!((counts.opened, counts.failures, counts.skipped), (1, 3, 2));
    // A failed probe opens it again.
    for _ in 0..3 {
        engine.recommend(&heavy).unwrap();
    }
    hand.advance(Duration::from_secs(5));
    assert!(engine.recommend(&heavy).unwrap().ranking.is_degraded());
    assert_eq!(engine.model_status().breaker, Some(BreakerState::Open));
}

#[test]
fn breaker_opens_on_a_slow_model_and_answers_keep_coming() {
    let dir = tempfile::tempdir().unwrap();
    // The slow fixture takes tens of milliseconds; the budget is 1 ms.
    let (config, hand) = breaker_config(Duration::from_millis(1));
    let engine = serving(dir.path(), config, "slow");
    let request = RecommendRequest::new("u4", 5, Strategy::UserCf);
    // Slow answers are still the model's (they are correct, only late)...
    for _ in 0..3 {
        let answer = engine.recommend(&request).unwrap();
        assert_eq!(answer.ranking, Ranking::Model { version: 1 });
        assert_eq!(answer.items.len(), 5);
    }
    // ...but they count, and the breaker opens: answers come without it.
    assert_eq!(engine.model_status().breaker, Some(BreakerState::Open));
    let answer = engine.recommend(&request).unwrap();
    assert!(answer.ranking.is_degraded());
    assert_eq!(answer.items.len(), 5);
    // The probe is slow again: open again.
    hand.advance(Duration::from_secs(5));
    assert_eq!(engine.recommend(&request).unwrap().ranking, Ranking::Model { version: 1 });
    assert_eq!(engine.model_status().breaker, Some(BreakerState::Open));
}

#[test]
fn retention_retires_old_versions_and_deletes_their_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config();
    config.models.retention = 1;
    let engine = Engine::open(dir.path(), config.clone()).unwrap();
    seed(&engine);
    engine.add_model(&fixture_bytes("linear_v1")).unwrap();
    engine.activate_model(1).unwrap();
    engine.add_model(&fixture_bytes("linear_v2")).unwrap();
    engine.add_model(&fixture_bytes("failing")).unwrap();
    // v1 is active (kept), v3 is newest (kept), v2 goes.
    let models = engine.models();
    let retired: Vec<u32> = models.iter().filter(|model| model.retired).map(|model| model.version).collect();
    assert_eq!(retired, vec![2]);
    assert!(!dir.path().join("models/v000002.onnx").exists());
    assert!(matches!(engine.activate_model(2), Err(EngineError::UnknownModel(2))));
    // Adding v2's bytes again makes a new version.
    assert_eq!(engine.add_model(&fixture_bytes("linear_v2")).unwrap().version, 4);
    drop(engine);
    let engine = Engine::open(dir.path(), config).unwrap();
    assert_eq!(engine.models().iter().filter(|model| model.retired).count(), 2);
    assert_eq!(engine.model_status().serving, Some(1));
}

#[tokio::test(flavor = "current_thread")]
async fn recommend_async_runs_inference_off_the_executor() {
    let dir = tempfile::tempdir().unwrap();
    let engine = serving(dir.path(), config(), "linear_v1");
    let request = RecommendRequest::new("u6", 4, Strategy::Blend);
    let answer = engine.recommend_async(request.clone()).await.unwrap();
    assert_eq!(answer, engine.recommend(&request).unwrap());
    assert_eq!(answer.ranking, Ranking::Model { version: 1 });
    // The executor's thread is still free: a second request interleaves.
    let (a, b) = tokio::join!(
        engine.recommend_async(RecommendRequest::new("u1", 3, Strategy::UserCf)),
        engine.recommend_async(RecommendRequest::new("nobody", 3, Strategy::UserCf))
    );
    assert!(a.is_ok() && b.is_ok());
    // With the slow model (tens of ms per inference) the single executor
    // thread keeps running other tasks while the request is scored: had the
    // inference run on it, the ticker below would never tick before it ended.
    engine.add_model(&fixture_bytes("slow")).unwrap();
    engine.activate_model(2).unwrap();
    let done = std::sync::atomic::AtomicBool::new(false);
    let mut ticks = 0u32;
    let (answer, ()) = tokio::join!(
        async {
            let answer = engine.recommend_async(RecommendRequest::new("u2", 3, Strategy::UserCf)).await;
            done.store(true, std::sync::atomic::Ordering::SeqCst);
            answer
        },
        async {
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                ticks += 1;
                tokio::task::yield_now().await;
            }
        }
    );
    assert!(answer.unwrap().ranking.version().is_some());
    assert!(ticks > 1, "the executor was blocked during inference ({ticks} ticks)");
    assert!(matches!(
        engine.recommend_async(RecommendRequest::new("u1", 0, Strategy::UserCf)).await,
        Err(EngineError::Invalid { .. })
    ));
}

#[test]
fn an_empty_candidate_list_is_no_probe() {
    let dir = tempfile::tempdir().unwrap();
    let (config, hand) = breaker_config(Duration::from_secs(60));
    let engine = serving(dir.path(), config, "failing");
    let heavy = RecommendRequest::new("heavy", 3, Strategy::ItemRank);
    for _ in 0..3 {
        engine.recommend(&heavy).unwrap();
    }
    hand.advance(Duration::from_secs(5));
    // Nothing passes the filter: the model does not run, and the probe is
    // not spent on it.
    let empty = RecommendRequest::new("light", 3, Strategy::ItemRank).allow(["no-such-item"]);
    let answer = engine.recommend(&empty).unwrap();
    assert!(answer.items.is_empty());
    assert_eq!(answer.ranking, Ranking::Unranked { reason: Some("no candidates to rank".into()) });
    assert_ne!(engine.model_status().breaker, Some(BreakerState::Closed));
    // The next real request is the probe; it fails, so the breaker opens again.
    assert!(engine.recommend(&heavy).unwrap().ranking.is_degraded());
    assert_eq!(engine.model_status().breaker, Some(BreakerState::Open));
    assert_eq!(engine.model_status().breaker_counts.unwrap().opened, 2);
}

#[test]
fn repairing_a_faulted_version_keeps_rollback_working() {
    let dir = tempfile::tempdir().unwrap();
    {
        let engine = with_linear_models(dir.path());
        engine.activate_model(1).unwrap();
        engine.activate_model(2).unwrap();
    }
    let file = dir.path().join("models/v000002.onnx");
    let good = std::fs::read(&file).unwrap();
    std::fs::write(&file, b"damaged").unwrap();
    let engine = Engine::open(dir.path(), config()).unwrap();
    assert!(engine.model_status().fault.is_some());
    std::fs::write(&file, &good).unwrap();
    engine.activate_model(2).unwrap();
    let status = engine.model_status();
    assert_eq!((status.serving, status.fault), (Some(2), None));
    assert_eq!(engine.rollback_model().unwrap().version, 1);
    assert_eq!(engine.model_status().serving, Some(1));
}

#[test]
fn waiting_for_a_session_is_not_charged_to_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config();
    config.models.sessions = 1;
    let engine = Engine::open(dir.path(), config.clone()).unwrap();
    seed(&engine);
    engine.add_model(&fixture_bytes("slow")).unwrap();
    engine.activate_model(1).unwrap();
    let request = RecommendRequest::new("u3", 3, Strategy::UserCf);
    let mut single = Duration::ZERO;
    for _ in 0..3 {
        let started = std::time::Instant::now();
        engine.recommend(&request).unwrap();
        single = single.max(started.elapsed());
    }
    drop(engine);
    // A budget five times one request: queueing behind five others can take
    // longer than that, but no inference does.
    config.models.breaker.latency_budget = single * 5;
    config.models.breaker.failures = 1;
    let engine = std::sync::Arc::new(Engine::open(dir.path(), config).unwrap());
    let threads: Vec<_> = (0..6)
        .map(|_| {
            let (engine, request) = (std::sync::Arc::clone(&engine), request.clone());
            std::thread::spawn(move || engine.recommend(&request).unwrap().ranking)
        })
        .collect();
    for thread in threads {
        match thread.join().unwrap() {
            Ranking::Model { version: 1 } => {}
            Ranking::Degraded { reason, .. } => assert!(reason.contains("stayed busy"), "{reason}"),
            other => panic!("{other:?}"),
        }
    }
    let status = engine.model_status();
    assert_eq!(status.breaker_counts.unwrap().failures, 0, "{status:?}");
    assert_eq!(status.breaker, Some(BreakerState::Closed));
}

#[test]
fn files_the_log_does_not_own_are_swept_at_start() {
    let dir = tempfile::tempdir().unwrap();
    {
        let _engine = serving(dir.path(), config(), "linear_v1");
    }
    // What a crash leaves: a file stored but never logged, a temp file.
    let models = dir.path().join("models");
    std::fs::write(models.join("v000002.onnx"), fixture_bytes("linear_v2")).unwrap();
    std::fs::write(models.join("v000003.onnx.tmp"), b"partial").unwrap();
    std::fs::write(models.join("notes.txt"), b"not ours").unwrap();
    let engine = Engine::open(dir.path(), config()).unwrap();
    let mut left: Vec<String> =
        std::fs::read_dir(&models).unwrap().map(|entry| entry.unwrap().file_name().into_string().unwrap()).collect();
    left.sort();
    assert_eq!(left, vec!["notes.txt", "v000001.onnx"]);
    assert_eq!(engine.model_status().serving, Some(1));
    // The next version number is 2 again, and its file is the new one.
    assert_eq!(engine.add_model(&fixture_bytes("failing")).unwrap().version, 2);
    assert_eq!(std::fs::read(models.join("v000002.onnx")).unwrap(), fixture_bytes("failing"));
}

/// The version that ranks `user`'s answer.
fn ranked_version(engine: &Engine, user: &str) -> Option<u32> {
    engine.recommend(&RecommendRequest::new(user, 5, Strategy::UserCf)).unwrap().ranking.version()
}

const SEEDED_USERS: [&str; 14] =
    ["u0", "u1", "u2", "u3", "u4", "u5", "u6", "u7", "u8", "u9", "u10", "u11", "heavy", "light"];

/// Every seeded user is ranked by the canary exactly when their bucket is
/// below its share, by the active version otherwise.
fn assert_split(engine: &Engine, stable: u32, canary: u32, per_mille: u16) -> usize {
    let mut in_canary = 0;
    for user in SEEDED_USERS {
        let expected = if recwal::model::user_bucket(user) < per_mille { canary } else { stable };
        in_canary += usize::from(expected == canary);
        assert_eq!(
            ranked_version(engine, user),
            Some(expected),
            "{user} (bucket {})",
            recwal::model::user_bucket(user)
        );
    }
    in_canary
}

#[test]
fn a_canary_serves_its_share_of_users_across_restarts_until_promoted() {
    let dir = tempfile::tempdir().unwrap();
    let engine = with_linear_models(dir.path());
    engine.activate_model(1).unwrap();
    // Refused, nothing logged: the active version, an unknown one, a share
    // out of range.
    let lsn = engine.lsn_applied();
    assert!(matches!(engine.set_canary(1, 100), Err(EngineError::Invalid { .. })));
    assert!(matches!(engine.set_canary(9, 100), Err(EngineError::UnknownModel(9))));
    assert!(matches!(engine.set_canary(2, 0), Err(EngineError::Invalid { .. })));
    assert!(matches!(engine.set_canary(2, 1000), Err(EngineError::Invalid { .. })));
    assert!(matches!(engine.promote_canary(), Err(EngineError::Invalid { .. })));
    assert_eq!(engine.lsn_applied(), lsn);

    let status = engine.set_canary(2, 500).unwrap();
    let canary = status.canary.clone().unwrap();
    assert_eq!((canary.version, canary.percent, canary.loaded), (2, Some(50.0), true));
    let in_canary = assert_split(&engine, 1, 2, 500);
    assert!(in_canary > 0 && in_canary < SEEDED_USERS.len(), "{in_canary} of {} users", SEEDED_USERS.len());
    // The canary's scores are the canary's fixture.
    let canary_user = SEEDED_USERS.iter().find(|user| recwal::model::user_bucket(user) < 500).unwrap();
    assert_scores_match(&engine, &RecommendRequest::new(*canary_user, 5, Strategy::UserCf), &linear);
    // Neither the canary nor the active version can be retired.
    assert!(matches!(engine.retire_model(2), Err(EngineError::Invalid { .. })));
    assert!(matches!(engine.retire_model(1), Err(EngineError::Invalid { .. })));

    // A restart from the log, then one from a snapshot: the same split.
    let digest = engine.state_digest();
    engine.close().unwrap();
    let engine = Engine::open(dir.path(), config()).unwrap();
    assert_eq!(engine.state_digest(), digest);
    assert_split(&engine, 1, 2, 500);
    engine.checkpoint().unwrap();
    engine.close().unwrap();
    let engine = Engine::open(dir.path(), config()).unwrap();
    assert_eq!(engine.model_status().canary.map(|canary| (canary.version, canary.loaded)), Some((2, true)));
    assert_split(&engine, 1, 2, 500);

    // A smaller share keeps a subset of the users.
    engine.set_canary(2, 100).unwrap();
    assert_split(&engine, 1, 2, 100);
    // Promoted: every user gets v2, the canary ends; a rollback goes back
    // to v1 for everyone.
    let promoted = engine.promote_canary().unwrap();
    assert_eq!((promoted.version, promoted.active), (2, true));
    assert!(engine.model_status().canary.is_none());
    for user in SEEDED_USERS {
        assert_eq!(ranked_version(&engine, user), Some(2), "{user}");
    }
    assert_eq!(engine.rollback_model().unwrap().version, 1);
    for user in SEEDED_USERS {
        assert_eq!(ranked_version(&engine, user), Some(1), "{user}");
    }
    // Per version and role in /metrics.
    let metrics = engine.metrics_text();
    for series in [
        "recwal_model_answers_total{version=\"1\",role=\"stable\",outcome=\"ranked\"}",
        "recwal_model_answers_total{version=\"2\",role=\"canary\",outcome=\"ranked\"}",
        "recwal_model_answers_total{version=\"2\",role=\"stable\",outcome=\"ranked\"}",
    ] {
        let count = metrics.lines().find_map(|line| line.strip_prefix(series)?.trim().parse::<u64>().ok());
        assert!(count.is_some_and(|count| count > 0), "{series} in {metrics}");
    }
}

#[test]
fn a_shadow_is_scored_beside_every_answer_and_never_served() {
    let dir = tempfile::tempdir().unwrap();
    let engine = with_linear_models(dir.path());
    engine.activate_model(1).unwrap();
    let shadow_count = |engine: &Engine| {
        let metrics = engine.metrics_text();
        let series = "recwal_model_answers_total{version=\"2\",role=\"shadow\",outcome=\"ranked\"}";
        metrics.lines().find_map(|line| line.strip_prefix(series)?.trim().parse::<u64>().ok()).unwrap_or(0)
    };
    let before = shadow_count(&engine);
    let status = engine.set_shadow(2).unwrap();
    assert_eq!(status.shadow.map(|shadow| (shadow.version, shadow.percent, shadow.loaded)), Some((2, None, true)));
    for user in SEEDED_USERS {
        assert_eq!(ranked_version(&engine, user), Some(1), "{user}");
    }
    // Scored on the shadow's own thread: counted soon after the answers.
    let started = std::time::Instant::now();
    while shadow_count(&engine) - before < SEEDED_USERS.len() as u64 && started.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(shadow_count(&engine) - before, SEEDED_USERS.len() as u64);
    // A canary of the shadow's version ends the shadow; the same routing
    // comes back after a restart.
    engine.set_canary(2, 300).unwrap();
    let status = engine.model_status();
    assert!(status.shadow.is_none() && status.canary.is_some());
    engine.set_shadow(2).unwrap();
    assert!(engine.model_status().canary.is_none());
    engine.close().unwrap();
    let engine = Engine::open(dir.path(), config()).unwrap();
    assert_eq!(engine.model_status().shadow.map(|shadow| shadow.version), Some(2));
    engine.clear_shadow().unwrap();
    assert!(engine.model_status().shadow.is_none());
    // Not routed any more: it can be retired (unloaded), and then not
    // routed again.
    let retired = engine.retire_model(2).unwrap();
    assert!(retired.retired);
    assert!(matches!(engine.set_shadow(2), Err(EngineError::UnknownModel(2))));
    assert!(dir.path().join("models").join("v000001.onnx").exists());
    assert!(!dir.path().join("models").join("v000002.onnx").exists());
}

#[test]
fn a_slow_shadow_is_scored_off_the_request_path_and_every_request_is_accounted_for() {
    let dir = tempfile::tempdir().unwrap();
    // A budget the slow model stays within: its breaker never opens, so
    // whatever the shadow skips, it skips because its queue is full —
    // scoring in the request would have skipped nothing.
    let (config, _clock) = breaker_config(Duration::from_secs(30));
    let engine = serving(dir.path(), config, "linear_v1");
    // The per-version counters are per process, and other tests here shadow
    // v2: the slow model is v4.
    for fixture in ["linear_v2", "mlp_v1", "slow"] {
        engine.add_model(&fixture_bytes(fixture)).unwrap();
    }
    engine.set_shadow(4).unwrap();
    let count = |engine: &Engine, outcome: &str| {
        let metrics = engine.metrics_text();
        let series = format!("recwal_model_answers_total{{version=\"4\",role=\"shadow\",outcome=\"{outcome}\"}}");
        metrics.lines().find_map(|line| line.strip_prefix(series.as_str())?.trim().parse::<u64>().ok()).unwrap_or(0)
    };
    // Far more requests than the slow shadow (tens of ms per inference)
    // can score while they run: every answer is still v1's, and the shadow
    // skips what its queue cannot hold instead of holding the requests.
    let requests = 400;
    for at in 0..requests {
        let user = SEEDED_USERS[at % SEEDED_USERS.len()];
        assert_eq!(ranked_version(&engine, user), Some(1), "{user}");
    }
    // Skips for a full queue are counted in the request itself.
    assert!(count(&engine, "skipped") > 0, "a queue of 256 cannot hold 400 slow scorings");
    // Ending the shadow drops what still waits (counted as skipped).
    engine.clear_shadow().unwrap();
    let outcomes = ["ranked", "failed", "busy", "skipped"];
    let started = std::time::Instant::now();
    while outcomes.iter().map(|outcome| count(&engine, outcome)).sum::<u64>() < requests as u64
        && started.elapsed() < Duration::from_secs(60)
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    let total: u64 = outcomes.iter().map(|outcome| count(&engine, outcome)).sum();
    assert_eq!(total, requests as u64, "every request is accounted for once");
    assert!(count(&engine, "skipped") > 0, "a queue of 256 cannot hold 400 slow scorings");
    assert!(count(&engine, "ranked") > 0);
    assert_eq!(engine.model_status().serving, Some(1));
}

/// Feature schema 2 beside schema 1: a schema-2 model is scored on the
/// twelve columns `candidate_features_of(.., 2)` gives (its order is not
/// the strategy's: it weighs the items' mean value), a schema-1 model
/// keeps scoring its six while a schema-2 shadow widens the matrix built
/// per request, and both survive a restart.
#[test]
fn a_schema_2_model_serves_beside_schema_1_models() {
    let dir = tempfile::tempdir().unwrap();
    let request = RecommendRequest::new("u3", 6, Strategy::UserCf);
    {
        let engine = Engine::open(dir.path(), config()).unwrap();
        seed(&engine);
        let v1 = engine.add_model(&fixture_bytes("linear_v1")).unwrap();
        let v2 = engine.add_model(&fixture_bytes("linear_schema2")).unwrap();
        assert_eq!((v1.version, v2.version), (1, 2));

        engine.activate_model(2).unwrap();
        let wide = engine.candidate_features_of(&request, 2).unwrap();
        let narrow = engine.candidate_features(&request).unwrap();
        assert!(wide.iter().all(|(_, row)| row.len() == 12));
        // Schema 2 begins with schema 1.
        for ((item, row), (same, short)) in wide.iter().zip(&narrow) {
            assert_eq!((item, &row[..6]), (same, &short[..]));
        }
        // Column 7, strategy_rank, is 1 / (1 + position) in the strategy's order.
        for (at, (_, row)) in wide.iter().enumerate() {
            assert!((row[7] - 1.0 / (1.0 + at as f32)).abs() < 1e-6);
        }
        let answer = engine.recommend(&request).unwrap();
        assert_eq!(answer.ranking.version(), Some(2));
        let mut reordered = false;
        for (at, item) in answer.items.iter().enumerate() {
            let row = &wide.iter().find(|(name, _)| name == &item.item).unwrap().1;
            let expected = linear_score("linear_schema2", row);
            assert!((item.model_score.unwrap() - expected).abs() < 1e-4, "{}: {:?} vs {expected}", item.item, item);
            reordered |= wide[at].0 != item.item;
        }
        assert!(reordered, "the schema-2 fixture should reorder the strategy's candidates");

        // v1 serves, v2 shadows: one matrix of twelve columns per request,
        // v1 reads its six.
        engine.activate_model(1).unwrap();
        engine.set_shadow(2).unwrap();
        assert_scores_match(&engine, &request, &|_| "linear_v1");
        assert!(engine.candidate_features_of(&request, 3).unwrap_err().to_string().contains("schema"));
    }
    let engine = Engine::open(dir.path(), config()).unwrap();
    assert_scores_match(&engine, &request, &|_| "linear_v1");
    engine.clear_shadow().unwrap();
    engine.activate_model(2).unwrap();
    assert_eq!(engine.recommend(&request).unwrap().ranking.version(), Some(2));
}
