//! Requests and answers: strategies, filters, and the reasons given with
//! each recommended item.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::algo::{itemrank, popularity, top_n, usercf};
use crate::config::EngineConfig;
use crate::error::EngineError;
use crate::ids::Dense;
use crate::state::State;

/// Most items one request may ask for.
pub const N_MAX: usize = 1000;
/// Reasons given per item.
const REASONS_PER_ITEM: usize = 3;

/// How candidates are scored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// User-based collaborative filtering.
    UserCf,
    /// ItemRank, fast mode (a few exact hops plus the stationary tail).
    ItemRank,
    /// ItemRank, exact mode (the paper's iteration).
    ItemRankExact,
    /// Most events.
    Popularity,
    /// Weighted sum of UserCF, fast ItemRank and popularity, each scaled to
    /// a maximum of 1.
    Blend,
}

impl Strategy {
    /// Every strategy.
    pub const ALL: [Strategy; 5] =
        [Strategy::UserCf, Strategy::ItemRank, Strategy::ItemRankExact, Strategy::Popularity, Strategy::Blend];

    /// The strategy's name in the API.
    pub fn name(self) -> &'static str {
        match self {
            Strategy::UserCf => "user_cf",
            Strategy::ItemRank => "item_rank",
            Strategy::ItemRankExact => "item_rank_exact",
            Strategy::Popularity => "popularity",
            Strategy::Blend => "blend",
        }
    }
}

/// A recommendation request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecommendRequest {
    /// External user id. An unknown user gets popular items.
    pub user: String,
    /// Items wanted, 1–`N_MAX`.
    pub n: usize,
    /// Scoring strategy.
    pub strategy: Strategy,
    /// Items never to return.
    pub exclude: Vec<String>,
    /// When set, only these items may be returned.
    pub allow: Option<Vec<String>>,
}

impl RecommendRequest {
    /// `n` items for `user` with `strategy`, no filters.
    pub fn new(user: impl Into<String>, n: usize, strategy: Strategy) -> Self {
        RecommendRequest { user: user.into(), n, strategy, exclude: Vec::new(), allow: None }
    }

    /// Adds items never to return.
    pub fn exclude<I: Into<String>>(mut self, items: impl IntoIterator<Item = I>) -> Self {
        self.exclude.extend(items.into_iter().map(Into::into));
        self
    }

    /// Restricts answers to these items.
    pub fn allow<I: Into<String>>(mut self, items: impl IntoIterator<Item = I>) -> Self {
        self.allow = Some(items.into_iter().map(Into::into).collect());
        self
    }
}

/// Why an item was recommended.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Reason {
    /// A similar user interacted with it (UserCF).
    Neighbour {
        /// The neighbour.
        user: String,
        /// Cosine similarity to the requesting user.
        similarity: f32,
        /// Similarity × the neighbour's value for the item.
        contribution: f32,
    },
    /// Users who interacted with one of the requesting user's items also
    /// interacted with this one (ItemRank, similar items).
    CoInteracted {
        /// The user's item.
        item: String,
        /// Users who interacted with both.
        users: u32,
    },
    /// One of the most interacted-with items.
    Popular {
        /// Events recorded for it.
        events: u64,
    },
}

/// One recommended item.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Scored {
    /// External item id.
    pub item: String,
    /// The strategy's score (higher is better; scales differ by strategy).
    pub score: f64,
    /// The strategy that placed it (popularity when it filled the list).
    pub strategy: Strategy,
    /// The strongest reasons, best first.
    pub reasons: Vec<Reason>,
}

/// The answer to a `RecommendRequest`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Recommendations {
    /// The strategy asked for.
    pub strategy: Strategy,
    /// True when the user is unknown (or has no interactions left) and the
    /// answer is popularity.
    pub cold_start: bool,
    /// LSN of the last record the state had applied.
    pub lsn: u64,
    /// Best first.
    pub items: Vec<Scored>,
}

/// Checks `n` (1–`N_MAX`) and the filter ids.
pub(crate) fn validate(request: &RecommendRequest) -> Result<(), EngineError> {
    if request.n == 0 || request.n > N_MAX {
        return Err(EngineError::invalid("n", format!("must be 1–{N_MAX}, got {}", request.n)));
    }
    crate::event::validate_id("user", &request.user)?;
    Ok(())
}

/// Dense scores of `strategy` for every item (0 for items it cannot score).
pub(crate) fn score_all(state: &State, config: &EngineConfig, user: Dense, strategy: Strategy) -> Vec<f64> {
    score_with_neighbours(state, config, user, strategy).0
}

/// Scores, and the UserCF neighbours when the strategy used them (so the
/// reasons do not compute them again).
fn score_with_neighbours(
    state: &State,
    config: &EngineConfig,
    user: Dense,
    strategy: Strategy,
) -> (Vec<f64>, Vec<(Dense, f64)>) {
    let mut scores = vec![0.0; state.items.len()];
    let mut neighbours = Vec::new();
    match strategy {
        Strategy::UserCf => {
            neighbours = usercf::neighbours(state, user, &config.usercf);
            usercf::scores_from(state, &neighbours, &mut scores);
        }
        Strategy::ItemRank => itemrank::fast(state, user, &config.itemrank, &mut scores),
        Strategy::ItemRankExact => itemrank::exact(state, user, &config.itemrank, &mut scores),
        Strategy::Popularity => popularity::scores(state, &mut scores),
        Strategy::Blend => neighbours = blend(state, config, user, &mut scores),
    }
    (scores, neighbours)
}

fn blend(state: &State, config: &EngineConfig, user: Dense, scores: &mut [f64]) -> Vec<(Dense, f64)> {
    let weights = &config.blend;
    let parts: [(f32, Strategy); 3] = [
        (weights.usercf, Strategy::UserCf),
        (weights.itemrank, Strategy::ItemRank),
        (weights.popularity, Strategy::Popularity),
    ];
    let mut neighbours = Vec::new();
    for (weight, strategy) in parts {
        if weight <= 0.0 {
            continue;
        }
        let (part, used) = score_with_neighbours(state, config, user, strategy);
        if strategy == Strategy::UserCf {
            neighbours = used;
        }
        let max = part.iter().copied().fold(0.0f64, f64::max);
        if max > 0.0 {
            let scale = f64::from(weight) / max;
            for (score, value) in scores.iter_mut().zip(part) {
                *score += scale * value;
            }
        }
    }
    neighbours
}

/// Answers `request` from `state`.
pub(crate) fn recommend(
    state: &State,
    config: &EngineConfig,
    request: &RecommendRequest,
) -> Result<Recommendations, EngineError> {
    validate(request)?;
    let excluded: HashSet<Dense> = request.exclude.iter().filter_map(|name| state.items.get(name)).collect();
    let allowed: Option<HashSet<Dense>> =
        request.allow.as_ref().map(|names| names.iter().filter_map(|name| state.items.get(name)).collect());
    let user = state.users.get(&request.user).filter(|&user| !state.user_items(user).is_empty());
    let keep = |item: Dense| {
        !state.item_removed[item as usize]
            && !excluded.contains(&item)
            && allowed.as_ref().is_none_or(|allowed| allowed.contains(&item))
            && user.is_none_or(|user| state.pair(user, item).is_none())
    };
    let mut items = Vec::with_capacity(request.n);
    let cold_start = user.is_none();
    if let (Some(user), false) = (user, request.strategy == Strategy::Popularity) {
        let (scores, neighbours) = score_with_neighbours(state, config, user, request.strategy);
        let candidates: Vec<(Dense, f64)> = scores
            .iter()
            .enumerate()
            .filter(|&(item, &score)| score > 0.0 && keep(item as Dense))
            .map(|(item, &score)| (item as Dense, score))
            .collect();
        let best = top_n(&state.items, candidates, request.n);
        for (item, score) in best {
            let reasons = reasons(state, user, item, request.strategy, &neighbours);
            items.push(Scored { item: state.items.name(item).to_string(), score, strategy: request.strategy, reasons });
        }
    }
    if items.len() < request.n {
        // Cold start, or not enough scored candidates: fill with popular items.
        let chosen: HashSet<&str> = items.iter().map(|scored: &Scored| scored.item.as_str()).collect();
        let chosen: HashSet<Dense> = chosen.iter().filter_map(|name| state.items.get(name)).collect();
        let fill = popularity::top(state, request.n - items.len(), |item| keep(item) && !chosen.contains(&item));
        for (item, score) in fill {
            items.push(Scored {
                item: state.items.name(item).to_string(),
                score,
                strategy: Strategy::Popularity,
                reasons: vec![Reason::Popular { events: state.item_events[item as usize] }],
            });
        }
    }
    Ok(Recommendations { strategy: request.strategy, cold_start, lsn: state.applied_lsn, items })
}

fn reasons(state: &State, user: Dense, item: Dense, strategy: Strategy, neighbours: &[(Dense, f64)]) -> Vec<Reason> {
    match strategy {
        Strategy::UserCf | Strategy::Blend if !neighbours.is_empty() => {
            let top = usercf::top_contributors(state, neighbours, item, REASONS_PER_ITEM);
            if !top.is_empty() || strategy == Strategy::UserCf {
                return top
                    .into_iter()
                    .map(|(other, similarity, contribution)| Reason::Neighbour {
                        user: state.users.name(other).to_string(),
                        similarity: similarity as f32,
                        contribution: contribution as f32,
                    })
                    .collect();
            }
            co_interacted(state, user, item)
        }
        Strategy::ItemRank | Strategy::ItemRankExact | Strategy::Blend => co_interacted(state, user, item),
        Strategy::UserCf => Vec::new(),
        Strategy::Popularity => vec![Reason::Popular { events: state.item_events[item as usize] }],
    }
}

/// The user's items that co-occur most with `item`, among the user's
/// strongest interactions (bounded work per answer).
fn co_interacted(state: &State, user: Dense, item: Dense) -> Vec<Reason> {
    const HISTORY_CHECKED: usize = 8;
    let mut history: Vec<_> = state.user_items(user).to_vec();
    history.sort_by(|a, b| b.value().total_cmp(&a.value()).then(a.item.cmp(&b.item)));
    history.truncate(HISTORY_CHECKED);
    let mut found: Vec<(Dense, u32)> = history
        .iter()
        .map(|pair| (pair.item, itemrank::co_occurrences(state, pair.item, item)))
        .filter(|&(_, users)| users > 0)
        .collect();
    found.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    found
        .into_iter()
        .take(REASONS_PER_ITEM)
        .map(|(other, users)| Reason::CoInteracted { item: state.items.name(other).to_string(), users })
        .collect()
}

/// Items most often interacted with together with `item`, by cosine
/// (C̃ᵢⱼ / √(|Uᵢ|·|Uⱼ|)), ties to the lower id.
pub(crate) fn similar_items(state: &State, item: Dense, n: usize) -> Vec<Scored> {
    let mut counts: rustc_hash::FxHashMap<Dense, u32> = rustc_hash::FxHashMap::default();
    for entry in &state.item_users[item as usize] {
        for pair in state.user_items(entry.user) {
            if pair.item != item {
                *counts.entry(pair.item).or_default() += 1;
            }
        }
    }
    let degree = state.item_users[item as usize].len() as f64;
    let candidates: Vec<(Dense, f64)> = counts
        .iter()
        .filter(|&(&other, _)| !state.item_removed[other as usize])
        .map(|(&other, &both)| {
            (other, f64::from(both) / (degree * state.item_users[other as usize].len() as f64).sqrt())
        })
        .collect();
    top_n(&state.items, candidates, n)
        .into_iter()
        .map(|(other, score)| Scored {
            item: state.items.name(other).to_string(),
            score,
            strategy: Strategy::ItemRank,
            reasons: vec![Reason::CoInteracted {
                item: state.items.name(item).to_string(),
                users: counts.get(&other).copied().unwrap_or(0),
            }],
        })
        .collect()
}
