//! The `ials` strategy end to end: implicit ALS item factors trained from
//! the state, stored, logged as record 11 and loaded at restart like EASE's
//! weights, with the user's factors folded in at request time from their
//! current interactions (a new event changes the next answer without
//! retraining); `auto` picks iALS above `items_max`.
#![allow(clippy::unwrap_used)]

mod item_model_support;

use item_model_support::{artefact, seed};
use recwal::{Engine, EngineConfig, Event, EventKind, ItemModelFamily, Reason, RecommendRequest, Strategy};

/// iALS small enough for the seed (λ 60, the default, is for
/// MovieLens-sized data).
fn config() -> EngineConfig {
    let mut config = item_model_support::config(ItemModelFamily::Ials);
    config.item_model.ials.factors = 8;
    config.item_model.ials.lambda = 1.0;
    config
}

fn names(engine: &Engine, user: &str, n: usize) -> Vec<String> {
    let answer = engine.recommend(&RecommendRequest::new(user, n, Strategy::Ials)).unwrap();
    answer.items.into_iter().map(|scored| scored.item).collect()
}

#[test]
fn a_new_event_changes_the_next_answer_without_retraining() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), config()).unwrap();
    seed(&engine);
    engine.ingest(Event::new("alice", "a", EventKind::Rating(5.0))).unwrap();
    let trained = engine.train_item_model().unwrap();
    assert_eq!((trained.version, trained.family), (1, ItemModelFamily::Ials));
    let before = engine.recommend(&RecommendRequest::new("alice", 3, Strategy::Ials)).unwrap();
    let first: Vec<&str> = before.items.iter().map(|scored| scored.item.as_str()).collect();
    // Her taste first (b; the popular p may come between), the other's not at all.
    assert_eq!(first[0], "b", "{before:?}");
    assert!(first.contains(&"c") && !first.iter().any(|item| ["x", "y", "z"].contains(item)), "{first:?}");
    assert!(before.items.iter().all(|scored| scored.strategy == Strategy::Ials));
    assert!(
        matches!(&before.items[0].reasons[0], Reason::ItemWeight { item, contribution } if item == "a" && *contribution > 0.0),
        "{:?}",
        before.items[0].reasons
    );
    // Alice now takes x: y and z join her answer at once, x leaves it.
    let receipt = engine.ingest(Event::new("alice", "x", EventKind::Rating(5.0))).unwrap();
    let after = engine.recommend(&RecommendRequest::new("alice", 4, Strategy::Ials)).unwrap();
    assert!(after.lsn >= receipt.lsn);
    let then: Vec<&str> = after.items.iter().map(|scored| scored.item.as_str()).collect();
    assert!(then.contains(&"y") && then.contains(&"z"), "{then:?}");
    assert!(!then.contains(&"x") && !then.contains(&"a"), "{then:?}");
    // One event moves a score: bob's score for c changes with his event on a.
    let score_of = |engine: &Engine| {
        let answer = engine.recommend(&RecommendRequest::new("bob", 5, Strategy::Ials)).unwrap();
        answer.items.iter().find(|scored| scored.item == "c").map(|scored| scored.score)
    };
    engine.ingest(Event::new("bob", "x", EventKind::Rating(5.0))).unwrap();
    let without = score_of(&engine);
    engine.ingest(Event::new("bob", "a", EventKind::Rating(5.0))).unwrap();
    let with = score_of(&engine);
    assert_ne!(without, with, "bob's event on a must change c's score");
    let status = engine.item_model_status();
    assert_eq!((status.trainings, status.active.map(|active| active.version)), (1, Some(1)), "retrained?");
    assert_eq!(status.family, Some(ItemModelFamily::Ials));
}

#[test]
fn the_model_is_reloaded_at_restart_and_answers_the_same() {
    item_model_support::reloaded_at_restart_answers_the_same(config(), Strategy::Ials);
}

#[test]
fn a_damaged_artefact_is_reported_and_served_by_the_fallback() {
    let dir = tempfile::tempdir().unwrap();
    {
        let engine = Engine::open(dir.path(), config()).unwrap();
        seed(&engine);
        engine.train_item_model().unwrap();
    }
    let path = artefact(dir.path());
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();
    let engine = Engine::open(dir.path(), config()).unwrap();
    let status = engine.item_model_status();
    assert!(!status.serving && status.family.is_none(), "{status:?}");
    assert!(status.fault.as_deref().is_some_and(|fault| fault.contains("SHA-256")), "{status:?}");
    let answer = engine.recommend(&RecommendRequest::new("u1", 3, Strategy::Ials)).unwrap();
    assert!(answer.items.iter().all(|scored| scored.strategy == Strategy::Popularity), "{answer:?}");
    // A retraining serves again.
    engine.train_item_model().unwrap();
    assert_eq!(names(&engine, "u5", 1), ["c"]); // u5 took a and b, not c
}

#[test]
fn auto_trains_ease_up_to_items_max_and_ials_above() {
    let dir = tempfile::tempdir().unwrap();
    let mut auto = config();
    auto.item_model.family = ItemModelFamily::Auto;
    auto.item_model.lambda = 1.0;
    auto.item_model.items_max = 7;
    let engine = Engine::open(dir.path(), auto).unwrap();
    seed(&engine); // 7 items
    assert_eq!(engine.train_item_model().unwrap().family, ItemModelFamily::Ease);
    let ease = engine.recommend(&RecommendRequest::new("u1", 1, Strategy::Ease)).unwrap();
    assert_eq!(ease.items[0].strategy, Strategy::Ease);
    // `ials` without an iALS model: popular items, marked as such.
    let fallback = engine.recommend(&RecommendRequest::new("u1", 1, Strategy::Ials)).unwrap();
    assert_eq!(fallback.items[0].strategy, Strategy::Popularity);
    engine.ingest(Event::new("u1", "q", EventKind::Rating(4.0))).unwrap(); // 8 items
    assert_eq!(engine.train_item_model().unwrap().family, ItemModelFamily::Ials);
    assert_eq!(names(&engine, "u5", 1), ["c"]);
    let ease = engine.recommend(&RecommendRequest::new("u1", 1, Strategy::Ease)).unwrap();
    assert_eq!(ease.items[0].strategy, Strategy::Popularity);
    assert!(engine.metrics_text().contains("recwal_item_model_version 2"));
}

/// The trainer thread (where scheduled trainings, and an iALS training's
/// own threads, run) is at the model builds' lower priority: nice 10.
#[test]
fn scheduled_trainings_run_at_a_lower_priority() {
    let dir = tempfile::tempdir().unwrap();
    let _engine = Engine::open(dir.path(), config()).unwrap();
    // The thread names and lowers itself as it starts: look for a while.
    let began = std::time::Instant::now();
    loop {
        let trainers = trainer_nice_values();
        if !trainers.is_empty() && trainers.iter().all(|&nice| nice >= 10) {
            break;
        }
        assert!(began.elapsed() < std::time::Duration::from_secs(10), "trainer threads' nice values: {trainers:?}");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// The nice value of every thread of this process named `recwal-item-model`.
fn trainer_nice_values() -> Vec<i32> {
    let mut found = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").unwrap() {
        let task = task.unwrap().path();
        let comm = std::fs::read_to_string(task.join("comm")).unwrap_or_default();
        // comm keeps the first 15 bytes of the name.
        if comm.trim() != "recwal-item-mod" {
            continue;
        }
        let stat = std::fs::read_to_string(task.join("stat")).unwrap_or_default();
        // After "pid (comm) ": state is field 3, nice field 19.
        let Some(close) = stat.rfind(')') else { continue };
        if let Some(nice) = stat[close + 2..].split(' ').nth(16).and_then(|field| field.parse().ok()) {
            found.push(nice);
        }
    }
    found
}
