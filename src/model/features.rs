//! Builds the feature matrix of a schema (see `schema`) for a user's
//! candidates, from the state alone, so the same state always yields the
//! same features. Schema 2's first six columns are schema 1's, so one
//! matrix built at the wider schema serves models of both (`LoadedModel`
//! reads the columns its schema has).

use crate::config::EngineConfig;
use crate::ids::Dense;
use crate::model::schema;
use crate::recommend::{score_all, Strategy};
use crate::state::State;

/// Users of an item read for its mean value (the most recent ones, in the
/// item's list order): bounds the work per candidate on very popular items.
const MEAN_VALUE_USERS_MAX: usize = 1000;

const MS_PER_DAY: f64 = 86_400_000.0;

/// Row-major `[candidates.len(), schema::width(schema)]`.
/// `strategy_scores`: the strategy's dense scores if already computed (by
/// `recommend_with`), so they are not computed again. `candidates` are in
/// the strategy's order, best first.
pub(crate) fn build(
    state: &State,
    config: &EngineConfig,
    user: Option<Dense>,
    strategy: Strategy,
    strategy_scores: &[f64],
    candidates: &[Dense],
    schema: u32,
) -> Vec<f32> {
    let width = schema::width(schema);
    let pick = |all: &[f64]| -> Vec<f64> {
        candidates.iter().map(|&item| all.get(item as usize).copied().unwrap_or(0.0)).collect()
    };
    // The strategy's own scores are reused; the others computed.
    let scores_of = |user: Dense, wanted: Strategy| {
        if wanted == strategy && !strategy_scores.is_empty() {
            pick(strategy_scores)
        } else {
            pick(&score_all(state, config, user, wanted))
        }
    };
    let zeros = || vec![0.0; candidates.len()];
    let popularity: Vec<f64> = candidates.iter().map(|&item| state.popularity_score(item)).collect();
    let (usercf, itemrank, own) = match user {
        // Cold start: the answer is popularity, whatever was asked.
        None => (zeros(), zeros(), popularity.clone()),
        Some(user) => {
            let (usercf, itemrank) = (scores_of(user, Strategy::UserCf), scores_of(user, Strategy::ItemRank));
            let own = match strategy {
                Strategy::UserCf => usercf.clone(),
                Strategy::ItemRank => itemrank.clone(),
                Strategy::Popularity => popularity.clone(),
                other => scores_of(user, other),
            };
            (usercf, itemrank, own)
        }
    };
    let activity = user.map_or(0.0, |user| ln1p(state.user_items(user).len() as f64));
    let (own_max, usercf_max, itemrank_max) = (max(&own), max(&usercf), max(&itemrank));
    let extra = (width > schema::FEATURES_V1).then(|| Extra::of(state, user, strategy, &own, &scores_of, candidates));
    let mut rows = Vec::with_capacity(candidates.len() * width);
    for (at, &item) in candidates.iter().enumerate() {
        rows.extend_from_slice(&[
            scaled(own[at], own_max),
            scaled(usercf[at], usercf_max),
            scaled(itemrank[at], itemrank_max),
            ln1p(popularity[at].max(0.0)),
            ln1p(state.item_users(item).len() as f64),
            activity,
        ]);
        if let Some(extra) = &extra {
            extra.push_row(state, at, item, &mut rows);
        }
    }
    rows
}

/// What schema 2 adds, computed once per request.
struct Extra {
    /// The item model's scores (whatever family is trained), if any.
    item_model: Vec<f64>,
    item_model_max: f64,
    /// The user's mean pair value.
    user_mean: f32,
    /// The user's items that have a category in the catalogue.
    user_items: Vec<Dense>,
    /// The user's newest event, ms since the epoch.
    user_last_ms: Option<i64>,
}

impl Extra {
    fn of(
        state: &State,
        user: Option<Dense>,
        strategy: Strategy,
        own: &[f64],
        scores_of: &dyn Fn(Dense, Strategy) -> Vec<f64>,
        candidates: &[Dense],
    ) -> Extra {
        // The active item model's own strategy (`ease` or `ials`).
        let family = state.item_model().map(|model| match model {
            crate::state::ItemModel::Ease(_) => Strategy::Ease,
            crate::state::ItemModel::Ials(_) => Strategy::Ials,
        });
        let item_model = match (user, family) {
            (Some(_), Some(family)) if family == strategy => own.to_vec(),
            (Some(user), Some(family)) => scores_of(user, family),
            _ => vec![0.0; candidates.len()],
        };
        let pairs = user.map_or(&[][..], |user| state.user_items(user));
        let user_mean = if pairs.is_empty() {
            0.0
        } else {
            pairs.iter().map(|pair| pair.value()).sum::<f32>() / pairs.len() as f32
        };
        let user_items: Vec<Dense> = pairs
            .iter()
            .map(|pair| pair.item)
            .filter(|&item| state.item_meta(item).is_some_and(|meta| !meta.categories.is_empty()))
            .collect();
        let user_last_ms = pairs.iter().map(|pair| i64::from(pair.last_s) * 1000).max();
        Extra { item_model_max: max(&item_model), item_model, user_mean, user_items, user_last_ms }
    }

    /// Columns 6–11 of schema 2 for candidate `at` (`item`).
    fn push_row(&self, state: &State, at: usize, item: Dense, rows: &mut Vec<f32>) {
        let users = state.item_users(item);
        let recent = &users[users.len().saturating_sub(MEAN_VALUE_USERS_MAX)..];
        let item_mean = if recent.is_empty() {
            0.0
        } else {
            recent.iter().map(|user| user.value).sum::<f32>() / recent.len() as f32
        };
        let meta = state.item_meta(item);
        let category_match = match meta {
            Some(meta) if !self.user_items.is_empty() && !meta.categories.is_empty() => {
                // Share of the user's categorised items with a category in
                // common with the candidate (one item counted once).
                let shared = self
                    .user_items
                    .iter()
                    .filter(|&&own| {
                        state.item_meta(own).is_some_and(|own| {
                            own.categories.iter().any(|category| meta.categories.binary_search(category).is_ok())
                        })
                    })
                    .count();
                shared as f32 / self.user_items.len() as f32
            }
            _ => 0.0,
        };
        let age_days = match (meta.and_then(|meta| meta.timestamp_ms), self.user_last_ms) {
            (Some(published), Some(last)) => ln1p(((last - published).max(0) as f64) / MS_PER_DAY),
            _ => 0.0,
        };
        rows.extend_from_slice(&[
            scaled(self.item_model[at], self.item_model_max),
            1.0 / (1.0 + at as f32),
            item_mean,
            self.user_mean,
            category_match,
            age_days,
        ]);
    }
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
