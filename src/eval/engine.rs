//! Measuring the engine: train it by ingesting the training ratings through
//! the same `ingest_batch` path the server uses, then score every test user
//! with each strategy through `Engine::score_items`.

use std::path::Path;
use std::time::{Duration, Instant};

use recwal_wal::Durability;

use crate::config::{EngineConfig, ItemModelFamily};
use crate::engine::{Engine, ItemModelSpec};
use crate::error::EngineError;
use crate::eval::{evaluate, EvalSet, Rating, Report};
use crate::event::Event;
use crate::recommend::{RecommendRequest, Strategy};

/// Events per `ingest_batch` call while training.
const TRAIN_BATCH: usize = 1000;

/// Opens a fresh engine in `dir`, ingests `train` as rating events in
/// event-time order ([`ingest_order`]), so that the trained engine does not
/// depend on the order of the rows in the file, and trains the item model of
/// the `ease` strategy with the configured λ and input (where it cannot, e.g.
/// above `item_model.items_max`, the reason is logged and `ease` scores
/// nothing).
///
/// The order matters: UserCF and fast ItemRank scan, per item, only the
/// users who came to it last (`scan_users_per_item`), which in a live engine
/// are the latest by arrival. Fed in file order, "last" would mean "last in
/// the file", e.g. the highest user ids of a file sorted by user.
pub fn train_engine(dir: &Path, config: EngineConfig, train: &[Rating]) -> Result<Engine, EngineError> {
    let engine = Engine::open(dir, config)?;
    let ordered = ingest_order(train);
    for chunk in ordered.chunks(TRAIN_BATCH) {
        let events: Vec<Event> = chunk.iter().map(|rating| rating.to_event()).collect();
        engine.ingest_batch_with(&events, Durability::Never)?;
    }
    if let Err(err) = engine.train_item_model() {
        tracing::warn!(%err, "evaluation: the ease strategy has no item model");
    }
    Ok(engine)
}

/// `ratings` in the order [`train_engine`] ingests them, a function of the
/// set of ratings and not of their order: by timestamp (ratings without one
/// first), then by a hash of the (user, item) pair (so that equal times, or
/// no times at all, give a pseudo-random order rather than one by id), then
/// by user, item and value.
pub fn ingest_order(ratings: &[Rating]) -> Vec<&Rating> {
    let mut ordered: Vec<(u64, &Rating)> =
        ratings.iter().map(|rating| (super::split::pair_hash(&rating.user, &rating.item), rating)).collect();
    ordered.sort_by(|(hash_a, a), (hash_b, b)| {
        (a.timestamp_ms, hash_a, &a.user, &a.item)
            .cmp(&(b.timestamp_ms, hash_b, &b.user, &b.item))
            .then(a.value.total_cmp(&b.value))
    });
    ordered.into_iter().map(|(_, rating)| rating).collect()
}

/// One strategy's figures.
#[derive(Clone, Debug)]
pub struct StrategyReport {
    /// The strategy.
    pub strategy: Strategy,
    /// Its metrics.
    pub report: Report,
    /// Mean time to score one user over all items.
    pub per_user: Duration,
}

/// For `ease` and `ials`: makes the engine's item model one of the
/// strategy's family, training one with the configured parameters when the
/// active model is of the other family or missing (the reason is logged
/// when it cannot be trained, and the strategy then scores nothing).
///
/// An error says why the strategy has no item model (too many items for
/// EASE, too little data): its scores would then be all zero, and a caller
/// that prints figures must say so instead (`recwal eval` prints the row as
/// not trained).
pub fn prepare_strategy(engine: &Engine, strategy: Strategy) -> Result<(), EngineError> {
    let Some(family) = strategy.item_model_family() else { return Ok(()) };
    if engine.item_model_status().family == Some(family) {
        return Ok(());
    }
    let config = &engine.config().item_model;
    let spec = match family {
        ItemModelFamily::Ials => ItemModelSpec::Ials(ItemModelSpec::ials_params(config)),
        _ => ItemModelSpec::Ease { lambda: config.lambda, input: config.input },
    };
    engine.train_item_model_spec(spec).map(|_| ()).map_err(|err| {
        tracing::warn!(%err, strategy = strategy.name(), "evaluation: no item model of the strategy's family");
        err
    })
}

/// Scores every user of `set` with `strategy` on `engine` (after
/// [`prepare_strategy`]). An error when the strategy's item model cannot be
/// trained: its figures would be those of all-zero scores.
pub fn evaluate_engine(
    engine: &Engine,
    set: &EvalSet,
    strategy: Strategy,
    k: usize,
    relevant_min: f32,
) -> Result<StrategyReport, EngineError> {
    prepare_strategy(engine, strategy)?;
    let index: rustc_hash::FxHashMap<&str, usize> =
        set.items().iter().enumerate().map(|(at, item)| (item.as_str(), at)).collect();
    let started = Instant::now();
    let mut users = 0u32;
    let report = evaluate(set, k, relevant_min, |user, scores| {
        users += 1;
        engine.score_items(user, strategy, |item, score| {
            if let Some(&at) = index.get(item) {
                scores[at] = score;
            }
        });
    });
    Ok(StrategyReport { strategy, report, per_user: started.elapsed() / users.max(1) })
}

/// Like `evaluate_engine`, with the engine's active ranking model: the
/// strategy proposes `models.candidates` items per user through
/// `Engine::recommend`, the model orders them, and they are scored above
/// every other item in the model's order (the rest keep the strategy's
/// scores). Comparing it with `evaluate_engine` on the same engine measures
/// what the model adds. Users whose answer is not ranked by the model
/// (breaker open, inference failed) are counted in the second value.
pub fn evaluate_engine_ranked(
    engine: &Engine,
    set: &EvalSet,
    strategy: Strategy,
    k: usize,
    relevant_min: f32,
) -> Result<(StrategyReport, u32), EngineError> {
    prepare_strategy(engine, strategy)?;
    let index: rustc_hash::FxHashMap<&str, usize> =
        set.items().iter().enumerate().map(|(at, item)| (item.as_str(), at)).collect();
    let candidates = engine.config().models.candidates;
    let started = Instant::now();
    let mut users = 0u32;
    let mut unranked = 0u32;
    let report = evaluate(set, k, relevant_min, |user, scores| {
        users += 1;
        engine.score_items(user, strategy, |item, score| {
            if let Some(&at) = index.get(item) {
                scores[at] = score;
            }
        });
        let top = scores.iter().copied().fold(0.0f64, f64::max);
        match engine.recommend(&RecommendRequest::new(user, candidates, strategy)) {
            Ok(answer) if answer.ranking.version().is_some() => {
                let count = answer.items.len();
                for (rank, item) in answer.items.iter().enumerate() {
                    if let Some(&at) = index.get(item.item.as_str()) {
                        scores[at] = top + 1.0 + (count - rank) as f64;
                    }
                }
            }
            _ => unranked += 1,
        }
    });
    Ok((StrategyReport { strategy, report, per_user: started.elapsed() / users.max(1) }, unranked))
}
