//! Measuring the engine: train it by ingesting the training ratings through
//! the same `ingest_batch` path the server uses, then score every test user
//! with each strategy through `Engine::score_items`.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::engine::Engine;
use crate::error::EngineError;
use crate::eval::{evaluate, EvalSet, Rating, Report};
use crate::event::{Event, EventKind};
use crate::recommend::Strategy;
use crate::{Durability, EngineConfig};

/// Events per `ingest_batch` call while training.
const TRAIN_BATCH: usize = 1000;

/// Opens a fresh engine in `dir` and ingests `train` as rating events, in
/// order.
pub fn train_engine(dir: &Path, config: EngineConfig, train: &[Rating]) -> Result<Engine, EngineError> {
    let engine = Engine::open(dir, config)?;
    for chunk in train.chunks(TRAIN_BATCH) {
        let events: Vec<Event> = chunk
            .iter()
            .map(|rating| {
                let event = Event::new(rating.user.clone(), rating.item.clone(), EventKind::Rating(rating.value));
                match rating.timestamp_ms {
                    Some(at) => event.at(at),
                    None => event,
                }
            })
            .collect();
        engine.ingest_batch_with(&events, Durability::Never)?;
    }
    Ok(engine)
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

/// Scores every user of `set` with `strategy` on `engine`.
pub fn evaluate_engine(
    engine: &Engine,
    set: &EvalSet,
    strategy: Strategy,
    k: usize,
    relevant_min: f32,
) -> StrategyReport {
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
    StrategyReport { strategy, report, per_user: started.elapsed() / users.max(1) }
}
