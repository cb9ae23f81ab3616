//! What the item-model tests (tests/ease.rs, tests/ials.rs) share: an
//! engine configuration in which only the tests train, and a seed of two
//! tastes.
#![allow(dead_code, clippy::unwrap_used)]

use recwal::wal::SyncPolicy;
use recwal::{Engine, EngineConfig, Event, EventKind, ItemModelFamily, RecommendRequest, Strategy};

/// No automatic checkpoints, no scheduled training: the tests train, a
/// model of `family`.
pub fn config(family: ItemModelFamily) -> EngineConfig {
    let mut config = EngineConfig::default();
    config.wal = config.wal.segment_bytes(1 << 20).segments_initial(2).sync_policy(SyncPolicy::Always);
    config.checkpoint.disable_automatic();
    config.item_model.retrain_every_events = None;
    config.item_model.retrain_every = None;
    config.item_model.family = family;
    config
}

/// Two tastes: users 0–19 take a, b and (most) c; users 20–39 take x, y
/// and (most) z; a popular item p is taken by everyone.
pub fn seed(engine: &Engine) {
    let mut events = Vec::new();
    for user in 0..40 {
        let name = format!("u{user}");
        let items: &[&str] = if user < 20 { &["a", "b", "c"] } else { &["x", "y", "z"] };
        for (at, item) in items.iter().enumerate() {
            if at == 2 && user % 5 == 0 {
                continue;
            }
            events.push(Event::new(&name, *item, EventKind::Rating(5.0)));
        }
        events.push(Event::new(&name, "p", EventKind::Rating(3.0)));
    }
    engine.ingest_batch(&events).unwrap();
}

/// The single artefact in `dir`'s `models/`.
pub fn artefact(dir: &std::path::Path) -> std::path::PathBuf {
    let entries: Vec<_> = std::fs::read_dir(dir.join("models")).unwrap().map(|entry| entry.unwrap().path()).collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    entries[0].clone()
}

/// Two models trained in turn (only the active one's artefact kept), then
/// two restarts (from the log, then from a snapshot that carries the
/// reference): the model serves again, of the same family and version,
/// with the same digest and the same answer for `strategy`.
pub fn reloaded_at_restart_answers_the_same(config: EngineConfig, strategy: Strategy) {
    let dir = tempfile::tempdir().unwrap();
    let (answer, digest, active, family) = {
        let engine = Engine::open(dir.path(), config.clone()).unwrap();
        seed(&engine);
        engine.train_item_model().unwrap();
        engine.ingest(Event::new("alice", "a", EventKind::Rating(5.0))).unwrap();
        let second = engine.train_item_model().unwrap();
        assert_eq!((second.version, Some(second.family)), (2, strategy.item_model_family()));
        assert_eq!(std::fs::read_dir(dir.path().join("models")).unwrap().count(), 1, "only the active artefact");
        let answer = engine.recommend(&RecommendRequest::new("alice", 5, strategy)).unwrap();
        assert!(answer.items.iter().any(|scored| scored.strategy == strategy), "{answer:?}");
        let status = engine.item_model_status();
        (answer, engine.state_digest(), status.active, status.family)
    };
    for checkpoint_first in [false, true] {
        let engine = Engine::open(dir.path(), config.clone()).unwrap();
        let status = engine.item_model_status();
        assert!(status.serving && status.fault.is_none(), "{status:?}");
        assert_eq!((&status.active, status.family), (&active, family));
        assert_eq!(engine.state_digest(), digest);
        assert_eq!(engine.recommend(&RecommendRequest::new("alice", 5, strategy)).unwrap(), answer);
        if !checkpoint_first {
            engine.checkpoint().unwrap();
        }
    }
}
