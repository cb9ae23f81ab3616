//! Popularity restricted to categories walks each category's own order
//! (kept beside the global one). Property: for any history of events,
//! category changes, hiding, forgotten users and expired feedback, the
//! filtered answer is exactly the global order with the other items left
//! out — through `popular_matching` and through the `popularity` strategy's
//! answer for a user — before and after a restart from the log.
//!
//! `RECWAL_POPULAR_CASES` sets the number of histories (default 24).
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use proptest::prelude::{
    any, prop, prop_assert_eq, prop_oneof, proptest, ProptestConfig, Strategy as Generator, TestCaseError,
};
use recwal::wal::SyncPolicy;
use recwal::{Engine, EngineConfig, EngineError, Event, EventKind, Item, ItemQuery, RecommendRequest, Strategy};

const CATEGORIES: [&str; 4] = ["a", "b", "c", "d"];
const ITEMS: usize = 24;
const USERS: usize = 8;

#[derive(Clone, Debug)]
enum Op {
    /// Events of one user at a time (`ms` apart from a base).
    Events(Vec<(usize, usize, i64)>),
    /// An item gets these categories (bits of `CATEGORIES`).
    Categorise(usize, u8),
    Hide(usize, bool),
    Forget(usize),
    /// Feedback before `base + ms` expires.
    Expire(i64),
}

fn op() -> impl Generator<Value = Op> {
    prop_oneof![
        4 => prop::collection::vec((0..USERS, 0..ITEMS, 0..100i64), 1..12).prop_map(Op::Events),
        3 => (0..ITEMS, 0u8..16).prop_map(|(item, bits)| Op::Categorise(item, bits)),
        1 => (0..ITEMS, any::<bool>()).prop_map(|(item, hidden)| Op::Hide(item, hidden)),
        1 => (0..USERS).prop_map(Op::Forget),
        1 => (0..60i64).prop_map(Op::Expire),
    ]
}

fn open(dir: &Path) -> Engine {
    let mut config = EngineConfig::default();
    config.wal = config.wal.segment_bytes(1 << 20).segments_initial(2).sync_policy(SyncPolicy::Never);
    config.checkpoint.disable_automatic();
    Engine::open(dir, config).unwrap()
}

/// Base time of the events: a day ago, so every event is in the past.
fn base_ms() -> i64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    (now - 86_400_000) / 1000 * 1000
}

fn apply(engine: &Engine, op: &Op, base: i64, categories: &mut BTreeMap<usize, u8>) {
    match op {
        Op::Events(events) => {
            let batch: Vec<Event> = events
                .iter()
                .map(|&(user, item, at)| {
                    Event::new(format!("u{user}"), format!("i{item}"), EventKind::View).at(base + at * 1000)
                })
                .collect();
            engine.ingest_batch(&batch).unwrap();
        }
        Op::Categorise(item, bits) => {
            let item_entry = CATEGORIES
                .iter()
                .enumerate()
                .filter(|(at, _)| bits & (1 << at) != 0)
                .fold(Item::new(format!("i{item}")), |entry, (_, name)| entry.category(*name));
            engine.upsert_item(&item_entry).unwrap();
            categories.insert(*item, *bits);
        }
        Op::Hide(item, hidden) => {
            // Hiding needs the item in the catalogue.
            if categories.contains_key(item) {
                engine.set_item_hidden(&format!("i{item}"), *hidden).unwrap();
            }
        }
        Op::Forget(user) => match engine.forget_user(&format!("u{user}")) {
            Ok(_) | Err(EngineError::UnknownUser(_)) => {}
            Err(err) => panic!("forget u{user}: {err}"),
        },
        Op::Expire(at) => {
            engine.expire_feedback_before(base + at * 1000).unwrap();
        }
    }
}

/// The category filters asked: single, several, overlapping, unknown.
fn filters() -> Vec<Vec<&'static str>> {
    vec![vec!["a"], vec!["b"], vec!["d"], vec!["a", "b"], vec!["c", "a", "d"], vec!["zz"], vec!["zz", "c"]]
}

fn in_any(bits: Option<&u8>, filter: &[&str]) -> bool {
    let Some(bits) = bits else { return false };
    CATEGORIES.iter().enumerate().any(|(at, name)| bits & (1 << at) != 0 && filter.contains(name))
}

fn item_number(id: &str) -> usize {
    id[1..].parse().unwrap()
}

/// Every filtered answer against the unfiltered order, restricted.
fn check(engine: &Engine, categories: &BTreeMap<usize, u8>) -> Result<(), TestCaseError> {
    let all: Vec<(String, f64)> = engine
        .popular_matching(&ItemQuery::top(ITEMS * 2))
        .unwrap()
        .into_iter()
        .map(|scored| (scored.item, scored.score))
        .collect();
    for filter in filters() {
        let expected: Vec<(String, f64)> =
            all.iter().filter(|(id, _)| in_any(categories.get(&item_number(id)), &filter)).cloned().collect();
        for n in [1, 3, ITEMS] {
            let got: Vec<(String, f64)> = engine
                .popular_matching(&ItemQuery::top(n).in_categories(filter.iter().copied()))
                .unwrap()
                .into_iter()
                .map(|scored| (scored.item, scored.score))
                .collect();
            let want: Vec<_> = expected.iter().take(n).cloned().collect();
            prop_assert_eq!(&got, &want, "popular_matching, categories {:?}, n {}", &filter, n);
        }
        // The popularity strategy for a user: the same order, less what the
        // user has seen.
        for user in 0..3 {
            let user = format!("u{user}");
            let seen: BTreeSet<String> = match engine.interactions(&user) {
                Ok(interactions) => interactions.into_iter().map(|interaction| interaction.item).collect(),
                Err(EngineError::UnknownUser(_)) => BTreeSet::new(),
                Err(err) => panic!("interactions of {user}: {err}"),
            };
            let want: Vec<String> =
                expected.iter().map(|(id, _)| id.clone()).filter(|id| !seen.contains(id)).take(5).collect();
            let request = RecommendRequest::new(&user, 5, Strategy::Popularity).in_categories(filter.iter().copied());
            let got: Vec<String> = engine.recommend(&request).unwrap().items.into_iter().map(|s| s.item).collect();
            prop_assert_eq!(&got, &want, "recommend popularity for {}, categories {:?}", &user, &filter);
        }
    }
    Ok(())
}

fn cases() -> u32 {
    std::env::var("RECWAL_POPULAR_CASES").ok().and_then(|cases| cases.parse().ok()).unwrap_or(24)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn filtered_popularity_is_the_global_order_restricted(ops in prop::collection::vec(op(), 1..40)) {
        let dir = tempfile::tempdir().unwrap();
        let engine = open(dir.path());
        let base = base_ms();
        let mut categories = BTreeMap::new();
        for (at, op) in ops.iter().enumerate() {
            apply(&engine, op, base, &mut categories);
            if at % 8 == 7 {
                check(&engine, &categories)?;
            }
        }
        check(&engine, &categories)?;
        let digest = engine.state_digest();
        engine.close().unwrap();
        // From the log alone: the orders are rebuilt at the replay's end.
        let engine = open(dir.path());
        prop_assert_eq!(engine.state_digest(), digest);
        check(&engine, &categories)?;
        // And from a snapshot.
        engine.checkpoint().unwrap();
        engine.close().unwrap();
        let engine = open(dir.path());
        check(&engine, &categories)?;
    }
}
