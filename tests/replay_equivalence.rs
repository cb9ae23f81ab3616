//! Replay equivalence: a random stream of ingests (with repeated event ids),
//! forgets, removals, catalogue changes (item upserts with categories,
//! labels and publication times, hides and shows, user labels), feedback
//! expiry, item-model trainings (artefact + record 11), checkpoints, clean restarts and simulated power losses
//! (the log on `SimStorage`, which tears and reorders unsynced sectors) ends
//! in exactly the state of one uninterrupted engine that saw the same
//! acknowledged calls: same state digest, same receipts, and the same
//! recommendations for every user under every strategy, filtered and not,
//! and the same catalogue reads.
//!
//! `RECWAL_REPLAY_CASES=<n>` runs more cases (default 64).
#![allow(clippy::unwrap_used)]

use std::path::Path;

use proptest::prelude::*;
use proptest::strategy::Strategy as PropStrategy;
use recwal::wal::sim::SimStorage;
use recwal::wal::SyncPolicy;
use recwal::{
    Engine, EngineConfig, EngineError, Event, EventKind, Item, ItemModelSpec, ItemQuery, LabelValue, RecommendRequest,
    Strategy, User,
};

#[derive(Clone, Debug)]
enum Op {
    Ingest(Vec<(u8, u8, u8, Option<u8>)>),
    Forget(u8),
    Remove(u8),
    /// Item, category, price label, publication time (or none).
    UpsertItem(u8, u8, u8, Option<u8>),
    Hide(u8, bool),
    UpsertUser(u8, u8),
    /// Expire feedback older than this many seconds of event time.
    Expire(u8),
    /// Train, store, log and activate an item model (λ choice, binary X):
    /// EASE at λ 0.5, 5 or 50, or (choice 3) iALS.
    TrainItemModel(u8, bool),
    Checkpoint,
    Restart,
    PowerLoss,
}

fn op() -> impl PropStrategy<Value = Op> {
    prop_oneof![
        8 => prop::collection::vec((0u8..10, 0u8..16, 0u8..5, prop::option::of(0u8..24)), 1..5).prop_map(Op::Ingest),
        1 => (0u8..10).prop_map(Op::Forget),
        1 => (0u8..16).prop_map(Op::Remove),
        2 => (0u8..16, 0u8..3, 0u8..100, prop::option::of(0u8..50)).prop_map(|(i, c, p, t)| Op::UpsertItem(i, c, p, t)),
        1 => (0u8..16, any::<bool>()).prop_map(|(i, hidden)| Op::Hide(i, hidden)),
        1 => (0u8..10, 0u8..5).prop_map(|(u, v)| Op::UpsertUser(u, v)),
        1 => (0u8..20).prop_map(Op::Expire),
        1 => (0u8..4, any::<bool>()).prop_map(|(lambda, binary)| Op::TrainItemModel(lambda, binary)),
        2 => Just(Op::Checkpoint),
        1 => Just(Op::Restart),
        2 => Just(Op::PowerLoss),
    ]
}

fn config(policy: SyncPolicy, seed: u64) -> EngineConfig {
    let mut config = EngineConfig::default();
    // Half the cases use time-decayed popularity (half-life 5 ms of event time).
    if seed.is_multiple_of(2) {
        config.popularity.half_life = Some(std::time::Duration::from_millis(5));
    }
    config.wal = config.wal.segment_bytes(16 << 10).segments_initial(2).segments_max(8).sync_policy(policy);
    config.checkpoint.disable_automatic();
    // Item models are trained by the ops only.
    config.item_model.retrain_every_events = None;
    config.item_model.retrain_every = None;
    config
}

fn event(step: usize, (user, item, kind, id): (u8, u8, u8, Option<u8>)) -> Event {
    let kind = match kind {
        0 => EventKind::View,
        1 => EventKind::Click,
        2 => EventKind::Cart,
        3 => EventKind::Purchase,
        _ => EventKind::Rating(f32::from(item % 5) + 1.0),
    };
    // A quarter second per step, so feedback expiry (whole seconds) has
    // something to tell apart.
    let event = Event::new(format!("u{user}"), format!("i{item}"), kind).at(1_000 + step as i64 * 250);
    match id {
        Some(id) => event.with_id(format!("e{id}")),
        None => event,
    }
}

fn item(id: u8, category: u8, price: u8, published: Option<u8>) -> Item {
    let item = Item::new(format!("i{id}")).category(format!("c{category}")).label("price", f64::from(price));
    match published {
        Some(at) => item.published(i64::from(at)),
        None => item,
    }
}

/// Every observable answer of the engine, for comparison.
fn observe(engine: &Engine) -> (u64, u64, Vec<String>) {
    let mut answers = Vec::new();
    for user in 0..10 {
        for strategy in Strategy::ALL {
            let answer = engine.recommend(&RecommendRequest::new(format!("u{user}"), 5, strategy)).unwrap();
            answers.push(format!("{answer:?}"));
            let filtered = RecommendRequest::new(format!("u{user}"), 3, strategy).in_categories(["c1"]).offset(1);
            answers.push(format!("{:?}", engine.recommend(&filtered).unwrap()));
        }
        answers.push(format!("{:?}", engine.user(&format!("u{user}")).unwrap()));
    }
    for category in ["c0", "c1", "c2"] {
        answers.push(format!("{:?}", engine.latest(&ItemQuery::top(4).in_categories([category])).unwrap()));
        answers.push(format!("{:?}", engine.popular_matching(&ItemQuery::top(4).in_categories([category])).unwrap()));
    }
    answers.push(format!("{:?}", engine.items(None, 100).unwrap()));
    (engine.state_digest(), engine.lsn_applied(), answers)
}

fn outcome<T: std::fmt::Debug>(result: Result<T, EngineError>) -> String {
    match result {
        Ok(value) => format!("ok {value:?}"),
        Err(err) => format!("err {err}"),
    }
}

fn run(ops: &[Op], seed: u64) {
    let crashed_dir = tempfile::tempdir().unwrap();
    let reference_dir = tempfile::tempdir().unwrap();
    let storage = SimStorage::new(seed);
    let open_crashed = |dir: &Path| {
        Engine::open_with_wal_storage(dir, Box::new(storage.clone()), config(SyncPolicy::Always, seed)).unwrap()
    };
    let mut engine = open_crashed(crashed_dir.path());
    let reference = Engine::open(reference_dir.path(), config(SyncPolicy::Never, seed)).unwrap();
    for (step, op) in ops.iter().enumerate() {
        match op {
            Op::Ingest(events) => {
                let events: Vec<Event> = events.iter().map(|&e| event(step, e)).collect();
                let got = outcome(engine.ingest_batch(&events));
                let want = outcome(reference.ingest_batch(&events));
                assert_eq!(got, want, "step {step}: receipts differ");
            }
            Op::Forget(user) => {
                let user = format!("u{user}");
                assert_eq!(outcome(engine.forget_user(&user)), outcome(reference.forget_user(&user)), "step {step}");
            }
            Op::Remove(item) => {
                let item = format!("i{item}");
                assert_eq!(outcome(engine.remove_item(&item)), outcome(reference.remove_item(&item)), "step {step}");
            }
            Op::UpsertItem(id, category, price, published) => {
                let item = item(*id, *category, *price, *published);
                assert_eq!(outcome(engine.upsert_item(&item)), outcome(reference.upsert_item(&item)), "step {step}");
            }
            Op::Hide(id, hidden) => {
                let id = format!("i{id}");
                let got = outcome(engine.set_item_hidden(&id, *hidden));
                assert_eq!(got, outcome(reference.set_item_hidden(&id, *hidden)), "step {step}");
            }
            Op::UpsertUser(id, value) => {
                let user = User {
                    id: format!("u{id}"),
                    labels: [("v".to_string(), LabelValue::Number(f64::from(*value)))].into(),
                };
                assert_eq!(outcome(engine.upsert_user(&user)), outcome(reference.upsert_user(&user)), "step {step}");
            }
            Op::Expire(seconds) => {
                let before = i64::from(*seconds) * 1000;
                let got = outcome(engine.expire_feedback_before(before));
                assert_eq!(got, outcome(reference.expire_feedback_before(before)), "step {step}");
            }
            Op::TrainItemModel(choice, binary) => {
                let input = if *binary { recwal::ItemModelInput::Binary } else { recwal::ItemModelInput::Value };
                let spec = match [0.5, 5.0, 50.0].get(usize::from(*choice)) {
                    Some(&lambda) => ItemModelSpec::Ease { lambda, input },
                    None => {
                        let mut params = ItemModelSpec::ials_params(&engine.config().item_model);
                        (params.factors, params.iterations, params.lambda, params.input) = (4, 3, 1.0, input);
                        ItemModelSpec::Ials(params)
                    }
                };
                // Everything but the wall time of the training.
                let trained = |engine: &Engine| {
                    outcome(
                        engine
                            .train_item_model_spec(spec.clone())
                            .map(|info| (info.version, info.n_items, info.lsn_trained, info.lsn, info.bytes)),
                    )
                };
                assert_eq!(trained(&engine), trained(&reference), "step {step}");
            }
            Op::Checkpoint => {
                engine.checkpoint().unwrap();
            }
            Op::Restart | Op::PowerLoss => {
                drop(engine);
                if matches!(op, Op::PowerLoss) {
                    storage.crash();
                }
                engine = open_crashed(crashed_dir.path());
                assert_eq!(observe(&engine), observe(&reference), "step {step}: state differs after {op:?}");
            }
        }
    }
    assert_eq!(observe(&engine), observe(&reference), "final state differs");
}

fn cases() -> u32 {
    std::env::var("RECWAL_REPLAY_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(64)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn restarts_and_power_losses_end_where_an_uninterrupted_run_ends(
        ops in prop::collection::vec(op(), 1..60),
        seed in any::<u64>(),
    ) {
        run(&ops, seed);
    }
}
