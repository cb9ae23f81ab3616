//! The offline evaluation does not depend on the order of the rows in the
//! file: the engine's neighbour pruning keeps, per item, the users who came
//! to it last, and `train_engine` ingests in event-time order, so the same
//! ratings in any row order train the same engine and give the same figures.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use recwal::eval::{evaluate_engine, split, train_engine, EvalSet, Protocol, Rating};
use recwal::{EngineConfig, Strategy};

fn config() -> EngineConfig {
    let mut config = EngineConfig::default();
    config.wal = config.wal.sync_policy(recwal::wal::SyncPolicy::Never);
    config.checkpoint.disable_automatic();
    // Prune hard, so that which users of a popular item are scanned matters.
    config.usercf.scan_users_per_item = 4;
    config.usercf.neighbours = 5;
    config.itemrank.scan_users_per_item = 4;
    config
}

/// 40 users; every one rated the popular items 0–2, and a few of 30 others.
/// Timestamps are not in user order, so that a file sorted by user is not
/// sorted by time.
fn ratings(with_time: bool) -> Vec<Rating> {
    let mut ratings = Vec::new();
    for user in 0..40u32 {
        let mut items = vec![0, 1, 2];
        items.extend((0..6).map(|step| 3 + (user * 7 + step * 11) % 30));
        items.dedup();
        for (step, item) in items.into_iter().enumerate() {
            let seconds = i64::from((user * 37 + step as u32 * 13) % 101) * 60 + i64::from(user);
            ratings.push(Rating {
                user: format!("u{user}"),
                item: format!("i{item}"),
                value: (1 + (user + item) % 5) as f32,
                timestamp_ms: with_time.then_some(seconds * 1000),
            });
        }
    }
    ratings
}

/// Every user's score for every item under `strategy`, as bits.
fn scores(ratings: &[Rating], strategy: Strategy) -> BTreeMap<(String, String), u64> {
    let dir = tempfile::tempdir().unwrap();
    let engine = train_engine(dir.path(), config(), ratings).unwrap();
    let mut all = BTreeMap::new();
    for user in 0..40 {
        let user = format!("u{user}");
        engine.score_items(&user, strategy, |item, score| {
            all.insert((user.clone(), item.to_string()), score.to_bits());
        });
    }
    all
}

fn reports(ratings: &[Rating]) -> Vec<String> {
    let split = split(ratings, Protocol::Hash8020).unwrap();
    let set = EvalSet::new(&split);
    let dir = tempfile::tempdir().unwrap();
    let engine = train_engine(dir.path(), config(), &split.train).unwrap();
    Strategy::ALL
        .iter()
        .map(|&strategy| match evaluate_engine(&engine, &set, strategy, 5, 4.0) {
            Ok(report) => format!("{:?}", report.report),
            Err(err) => format!("not trained: {err}"),
        })
        .collect()
}

#[test]
fn the_same_ratings_in_another_row_order_give_the_same_scores_and_metrics() {
    for with_time in [true, false] {
        let by_user = ratings(with_time);
        let mut reversed = by_user.clone();
        reversed.reverse();
        let mut shuffled = by_user.clone();
        shuffled.sort_by_key(|rating| (rating.item.len(), rating.item.clone(), rating.user.clone()));
        for strategy in [Strategy::UserCf, Strategy::ItemRank, Strategy::Blend] {
            let reference = scores(&by_user, strategy);
            assert!(reference.values().any(|&bits| f64::from_bits(bits) > 0.0));
            assert_eq!(scores(&reversed, strategy), reference, "{strategy:?}, timestamps {with_time}: reversed");
            assert_eq!(scores(&shuffled, strategy), reference, "{strategy:?}, timestamps {with_time}: by item");
        }
        let reference = reports(&by_user);
        assert_eq!(reports(&reversed), reference, "timestamps {with_time}");
        assert_eq!(reports(&shuffled), reference, "timestamps {with_time}");
    }
}

/// With timestamps, the users kept for an item are its latest by event time:
/// a file sorted by time and the same file sorted by user agree, and both
/// agree with the engine fed in time order.
#[test]
fn pruning_keeps_the_latest_users_by_event_time() {
    let by_user = ratings(true);
    let mut by_time = by_user.clone();
    by_time.sort_by_key(|rating| rating.timestamp_ms);
    let dir = tempfile::tempdir().unwrap();
    let engine = recwal::Engine::open(dir.path(), config()).unwrap();
    let events: Vec<recwal::Event> = by_time.iter().map(Rating::to_event).collect();
    engine.ingest_batch(&events).unwrap();
    let mut live = BTreeMap::new();
    for user in 0..40 {
        let user = format!("u{user}");
        engine.score_items(&user, Strategy::UserCf, |item, score| {
            live.insert((user.clone(), item.to_string()), score.to_bits());
        });
    }
    assert_eq!(scores(&by_user, Strategy::UserCf), live);
}
