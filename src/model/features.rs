//! Builds the feature matrix of schema v1 (see `schema`) for a user's
//! candidates, from the state alone, so the same state always yields the
//! same features.

use crate::config::EngineConfig;
use crate::ids::Dense;
use crate::model::schema::FEATURES;
use crate::recommend::{score_all, Strategy};
use crate::state::State;

/// Row-major `[candidates.len(), FEATURES]`.
/// `strategy_scores`: the strategy's dense scores if already computed (by
/// `recommend_with`), so they are not computed again.
pub(crate) fn build(
    state: &State,
    config: &EngineConfig,
    user: Option<Dense>,
    strategy: Strategy,
    strategy_scores: &[f64],
    candidates: &[Dense],
) -> Vec<f32> {
    let pick = |all: &[f64]| -> Vec<f64> {
        candidates.iter().map(|&item| all.get(item as usize).copied().unwrap_or(0.0)).collect()
    };
    let popularity: Vec<f64> = candidates.iter().map(|&item| state.popularity_score(item)).collect();
    let (usercf, itemrank, own) = match user {
        // Cold start: the answer is popularity, whatever was asked.
        None => (vec![0.0; candidates.len()], vec![0.0; candidates.len()], popularity.clone()),
        Some(user) => {
            // The strategy's own scores are reused; the others computed.
            let scores_of = |wanted: Strategy| {
                if wanted == strategy && !strategy_scores.is_empty() {
                    pick(strategy_scores)
                } else {
                    pick(&score_all(state, config, user, wanted))
                }
            };
            let (usercf, itemrank) = (scores_of(Strategy::UserCf), scores_of(Strategy::ItemRank));
            let own = match strategy {
                Strategy::UserCf => usercf.clone(),
                Strategy::ItemRank => itemrank.clone(),
                Strategy::Popularity => popularity.clone(),
                other => scores_of(other),
            };
            (usercf, itemrank, own)
        }
    };
    let activity = user.map_or(0.0, |user| ln1p(state.user_items(user).len() as f64));
    let (own_max, usercf_max, itemrank_max) = (max(&own), max(&usercf), max(&itemrank));
    let mut rows = Vec::with_capacity(candidates.len() * FEATURES);
    for (at, &item) in candidates.iter().enumerate() {
        rows.extend_from_slice(&[
            scaled(own[at], own_max),
            scaled(usercf[at], usercf_max),
            scaled(itemrank[at], itemrank_max),
            ln1p(popularity[at].max(0.0)),
            ln1p(state.item_users(item).len() as f64),
            activity,
        ]);
    }
    rows
}

fn max(values: &[f64]) -> f64 {
    values.iter().copied().fold(0.0, f64::max)
}

/// `value / max` in [0, 1]; 0 when nothing scored.
fn scaled(value: f64, max: f64) -> f32 {
    if max > 0.0 && value > 0.0 {
        (value / max) as f32
    } else {
        0.0
    }
}

fn ln1p(value: f64) -> f32 {
    value.ln_1p() as f32
}
