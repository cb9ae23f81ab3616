//! Requests and answers: strategies, filters, and the reasons given with
//! each recommended item.

use std::cell::OnceCell;
use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::algo::{ease, ials, itemrank, popularity, top_n, usercf, Profile};
use crate::catalogue::{ItemFilter, LabelCondition, LabelValue};
use crate::config::EngineConfig;
use crate::error::EngineError;
use crate::ids::{self, Dense};
use crate::state::{ItemModel, Label, State};

use crate::limits::N_MAX;
/// Reasons given per item.
const REASONS_PER_ITEM: usize = 3;

/// How candidates are scored.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    /// EASE: a learned item × item model (trained in the background) applied
    /// to the user's current interactions. Without an item model, or for
    /// items it was not trained on, the answer is filled with popular items.
    Ease,
    /// Implicit ALS: learned item factors (trained in the background), the
    /// user's factors folded in at request time from their current
    /// interactions. For catalogues beyond EASE's size; without an iALS
    /// model the answer is filled with popular items.
    Ials,
}

impl Strategy {
    /// Every strategy.
    pub const ALL: [Strategy; 7] = [
        Strategy::UserCf,
        Strategy::ItemRank,
        Strategy::ItemRankExact,
        Strategy::Popularity,
        Strategy::Blend,
        Strategy::Ease,
        Strategy::Ials,
    ];

    /// The strategy's name in the API.
    pub fn name(self) -> &'static str {
        match self {
            Strategy::UserCf => "user_cf",
            Strategy::ItemRank => "item_rank",
            Strategy::ItemRankExact => "item_rank_exact",
            Strategy::Popularity => "popularity",
            Strategy::Blend => "blend",
            Strategy::Ease => "ease",
            Strategy::Ials => "ials",
        }
    }

    /// The strategy called `name` (as `name` spells it).
    pub fn from_name(name: &str) -> Option<Strategy> {
        Strategy::ALL.into_iter().find(|strategy| strategy.name() == name)
    }

    /// The item-model family the strategy scores with, if it is one.
    pub fn item_model_family(self) -> Option<crate::config::ItemModelFamily> {
        match self {
            Strategy::Ease => Some(crate::config::ItemModelFamily::Ease),
            Strategy::Ials => Some(crate::config::ItemModelFamily::Ials),
            _ => None,
        }
    }

    /// Every strategy's name, comma-separated (for the errors that list them).
    pub fn names() -> String {
        Strategy::ALL.map(Strategy::name).join(", ")
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
    /// Categories and label conditions the items must meet.
    #[serde(default)]
    pub filter: ItemFilter,
    /// Items of the full answer to skip (pagination): the answer is items
    /// `offset..offset + n` of the ranking, which is stable while the state
    /// does not change. `offset + n` ≤ `N_MAX`.
    #[serde(default)]
    pub offset: usize,
}

impl RecommendRequest {
    /// `n` items for `user` with `strategy`, no filters.
    pub fn new(user: impl Into<String>, n: usize, strategy: Strategy) -> Self {
        RecommendRequest {
            user: user.into(),
            n,
            strategy,
            exclude: Vec::new(),
            allow: None,
            filter: ItemFilter::default(),
            offset: 0,
        }
    }

    /// Restricts answers to items meeting `filter`.
    pub fn filter(mut self, filter: ItemFilter) -> Self {
        self.filter = filter;
        self
    }

    /// Restricts answers to items in any of `categories`.
    pub fn in_categories<I: Into<String>>(mut self, categories: impl IntoIterator<Item = I>) -> Self {
        self.filter.categories.extend(categories.into_iter().map(Into::into));
        self
    }

    /// Skips the first `offset` items of the answer (the next page).
    pub fn offset(mut self, offset: usize) -> Self {
        self.offset = offset;
        self
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

/// One event of an anonymous session, as the caller gives it (not written).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SessionEvent {
    /// External item id; items the engine does not know are ignored.
    pub item: String,
    /// What happened (weights as for ingested events).
    pub kind: crate::event::EventKind,
    /// Overrides the kind's weight (not for ratings).
    #[serde(default)]
    pub weight: Option<f32>,
}

/// Recommendations for an anonymous or new user from the events of their
/// session, given in the request: nothing is written, and the answer is what
/// a user with exactly these interactions would get.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SessionRequest {
    /// The session's events, oldest first, at most `SESSION_EVENTS_MAX`.
    pub events: Vec<SessionEvent>,
    /// Items wanted, 1–`N_MAX`.
    pub n: usize,
    /// Scoring strategy.
    pub strategy: Strategy,
    /// Items never to return (the session's own items never are).
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Categories and label conditions the items must meet.
    #[serde(default)]
    pub filter: ItemFilter,
    /// Items of the full answer to skip (pagination).
    #[serde(default)]
    pub offset: usize,
}

impl SessionRequest {
    /// `n` items with `strategy` for a session of `events`.
    pub fn new(events: Vec<SessionEvent>, n: usize, strategy: Strategy) -> SessionRequest {
        SessionRequest { events, n, strategy, exclude: Vec::new(), filter: ItemFilter::default(), offset: 0 }
    }
}

/// A session's profile: its events on items the state knows, folded into
/// pairs as `apply` folds a user's events (the latest rating; implicit
/// weights summed), sorted by item; and its Σ value².
pub(crate) fn session_pairs(state: &State, events: &[(&str, bool, f32)]) -> (Vec<crate::state::Pair>, f64) {
    let mut pairs: Vec<crate::state::Pair> = Vec::with_capacity(events.len());
    let mut norm_sq = 0.0;
    for &(item, rating, weight) in events {
        let Some(item) = state.items().get(item) else { continue };
        let at = match pairs.binary_search_by_key(&item, |pair| pair.item) {
            Ok(at) => at,
            Err(at) => {
                pairs.insert(at, crate::state::Pair::empty(item));
                at
            }
        };
        norm_sq += pairs[at].add_event(rating, weight, None);
    }
    (pairs, norm_sq)
}

/// Answers a session request whose events were validated and resolved into
/// `(item, is_rating, weight)`.
pub(crate) fn recommend_session(
    state: &State,
    config: &EngineConfig,
    request: &SessionRequest,
    events: &[(&str, bool, f32)],
    now_ms: i64,
) -> Recommendations {
    let (pairs, norm_sq) = session_pairs(state, events);
    let profile = (!pairs.is_empty()).then_some(Profile { user: None, pairs: &pairs, norm_sq });
    let wanted = Wanted {
        n: request.offset + request.n,
        strategy: request.strategy,
        exclude: &request.exclude,
        allow: None,
        filter: &request.filter,
    };
    let mut answer = answer_for(state, config, profile.as_ref(), &wanted, now_ms, false).answer;
    unpage(&mut answer, request.offset);
    answer
}

/// Why an item was recommended.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
        /// Users who interacted with both (estimated from a sample of 1,000
        /// when both items have more users than that).
        users: u32,
    },
    /// One of the user's items adds to this item's score in the learned
    /// item model: EASE (the user's value for it times its weight) or iALS
    /// (its exact share of the folded-in score).
    ItemWeight {
        /// The user's item.
        item: String,
        /// Its share of the score.
        contribution: f32,
    },
    /// One of the most interacted-with items.
    Popular {
        /// Events recorded for it.
        events: u64,
    },
}

/// One recommended item.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    /// The ranking model's score, when a model ordered the answer.
    pub model_score: Option<f32>,
}

/// The answer to a `RecommendRequest`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    /// Whether a ranking model ordered the items, and which version.
    pub ranking: Ranking,
}

/// How an answer was ordered.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Ranking {
    /// In the strategy's order: no model is active, or (with `reason`) the
    /// active version cannot serve (its file is missing or altered, or the
    /// runtime is unavailable; see `Engine::model_status`).
    Unranked {
        /// Why an active version is not used.
        reason: Option<String>,
    },
    /// Reordered by this model version.
    Model {
        /// The version.
        version: u32,
    },
    /// The active version was skipped for this answer (its breaker is open,
    /// or its inference failed) and the items are in the strategy's order.
    Degraded {
        /// The version skipped.
        version: u32,
        /// Why.
        reason: String,
    },
}

impl Ranking {
    /// The model version that ordered the answer, if any.
    pub fn version(&self) -> Option<u32> {
        match self {
            Ranking::Model { version } => Some(*version),
            _ => None,
        }
    }

    /// True for `Degraded`.
    pub fn is_degraded(&self) -> bool {
        matches!(self, Ranking::Degraded { .. })
    }
}

/// Checks a requested number of items: 1–`N_MAX`.
pub(crate) fn validate_n(n: usize) -> Result<(), EngineError> {
    if n == 0 || n > N_MAX {
        return Err(EngineError::invalid("n", format!("must be 1–{N_MAX}, got {n}")));
    }
    Ok(())
}

/// Checks a page: `n` and `offset + n` ≤ `N_MAX`.
pub(crate) fn validate_page(n: usize, offset: usize) -> Result<(), EngineError> {
    validate_n(n)?;
    if offset.saturating_add(n) > N_MAX {
        return Err(EngineError::invalid("offset", format!("offset + n must be at most {N_MAX}, got {offset} + {n}")));
    }
    Ok(())
}

/// Checks `n`, the page, the filter and the user id.
pub(crate) fn validate(request: &RecommendRequest) -> Result<(), EngineError> {
    validate_page(request.n, request.offset)?;
    request.filter.validate()?;
    ids::validate_id("user", &request.user)
}

/// A filter resolved against the state: which items a read may return.
/// Always: not removed, not hidden, published and not expired at `now_ms`;
/// and, with a filter, in one of its categories and meeting its label
/// conditions. Names the state does not know resolve to "nothing matches".
pub(crate) struct Eligibility<'s> {
    state: &'s State,
    now_ms: i64,
    /// With categories: the known ones among them (dense ids).
    categories: Option<Vec<u32>>,
    /// With categories: a bit per dense item, set for the items of any of
    /// them, built on the first `admits` (from the categories' item lists,
    /// so a candidate costs a bit test, not a look at its metadata). Reads
    /// that walk the categories' own lists never need it.
    in_categories: OnceCell<Vec<u64>>,
    /// Conditions whose key the state knows; `impossible` if one it does not.
    labels: Vec<(u32, &'s LabelCondition)>,
    impossible: bool,
}

impl<'s> Eligibility<'s> {
    pub(crate) fn new(state: &'s State, filter: &'s ItemFilter, now_ms: i64) -> Eligibility<'s> {
        let categories = (!filter.categories.is_empty())
            .then(|| filter.categories.iter().filter_map(|name| state.categories().get(name)).collect());
        let mut impossible = false;
        let mut labels = Vec::with_capacity(filter.labels.len());
        for condition in &filter.labels {
            match state.label_keys().get(condition.key()) {
                Some(key) => labels.push((key, condition)),
                None => impossible = true,
            }
        }
        Eligibility { state, now_ms, categories, in_categories: OnceCell::new(), labels, impossible }
    }

    /// The categories (dense ids) the filter restricts to, `None` without
    /// a category filter. Empty: none the state knows, nothing matches.
    pub(crate) fn categories(&self) -> Option<&[u32]> {
        self.categories.as_deref()
    }

    /// Whether a read may return `item`.
    #[inline]
    pub(crate) fn admits(&self, item: Dense) -> bool {
        if let Some(categories) = &self.categories {
            let bits = self.in_categories.get_or_init(|| {
                let mut bits = vec![0u64; self.state.items().len().div_ceil(64)];
                for &category in categories {
                    for &item in self.state.category_items(category) {
                        bits[item as usize / 64] |= 1 << (item % 64);
                    }
                }
                bits
            });
            if bits[item as usize / 64] & (1 << (item % 64)) == 0 {
                return false;
            }
        }
        self.admits_listed(item)
    }

    /// Whether a read may return `item`, known to be in one of
    /// `categories()` (taken from their lists): `admits` without the
    /// category test.
    #[inline]
    pub(crate) fn admits_listed(&self, item: Dense) -> bool {
        if self.impossible || !self.state.item_visible(item, self.now_ms) {
            return false;
        }
        if self.labels.is_empty() {
            return true;
        }
        let Some(meta) = self.state.item_meta(item) else { return false };
        self.labels.iter().all(|&(key, condition)| match (meta.label(key), condition) {
            (Some(Label::Text(have)), LabelCondition::Equals { value: LabelValue::Text(want), .. }) => **have == **want,
            (Some(Label::Number(have)), LabelCondition::Equals { value: LabelValue::Number(want), .. }) => have == want,
            (Some(Label::Number(have)), LabelCondition::AtLeast { value, .. }) => have >= value,
            (Some(Label::Number(have)), LabelCondition::AtMost { value, .. }) => have <= value,
            _ => false,
        })
    }
}

fn popular_answers(state: &State, top: Vec<(Dense, f64)>) -> Vec<Scored> {
    top.into_iter()
        .map(|(item, score)| Scored {
            item: state.items().name(item).to_string(),
            score,
            strategy: Strategy::Popularity,
            reasons: vec![Reason::Popular { events: state.item_events(item) }],
            model_score: None,
        })
        .collect()
}

/// Dense scores of `strategy` for every item (0 for items it cannot score).
pub(crate) fn score_all(state: &State, config: &EngineConfig, user: Dense, strategy: Strategy) -> Vec<f64> {
    score_with_neighbours(state, config, &Profile::of(state, user), strategy).0
}

/// Scores, and the UserCF neighbours when the strategy used them (so the
/// reasons do not compute them again).
fn score_with_neighbours(
    state: &State,
    config: &EngineConfig,
    profile: &Profile<'_>,
    strategy: Strategy,
) -> (Vec<f64>, Vec<(Dense, f64)>) {
    let mut scores = vec![0.0; state.items().len()];
    let mut neighbours = Vec::new();
    match strategy {
        Strategy::UserCf => {
            neighbours = usercf::neighbours(state, profile, &config.usercf);
            usercf::scores_from(state, &neighbours, &mut scores);
        }
        Strategy::ItemRank => itemrank::fast(state, profile, &config.itemrank, &mut scores),
        Strategy::ItemRankExact => itemrank::exact(state, profile, &config.itemrank, &mut scores),
        Strategy::Popularity => popularity::scores(state, &mut scores),
        Strategy::Blend => neighbours = blend(state, config, profile, &mut scores),
        Strategy::Ease => {
            if let Some(ItemModel::Ease(model)) = state.item_model() {
                ease::scores(model, profile, &mut scores);
            }
        }
        Strategy::Ials => {
            if let Some(ItemModel::Ials(model)) = state.item_model() {
                ials::scores(model, profile, &mut scores);
            }
        }
    }
    (scores, neighbours)
}

fn blend(state: &State, config: &EngineConfig, profile: &Profile<'_>, scores: &mut [f64]) -> Vec<(Dense, f64)> {
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
        let (part, used) = score_with_neighbours(state, config, profile, strategy);
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

/// Answers `request` (its first page: `offset` is the caller's, see
/// `paged`) from `state` as of `now_ms`.
pub(crate) fn recommend(
    state: &State,
    config: &EngineConfig,
    request: &RecommendRequest,
    now_ms: i64,
) -> Result<Recommendations, EngineError> {
    recommend_with(state, config, request, now_ms, false).map(|candidates| candidates.answer)
}

/// The request for the whole ranking up to the end of `request`'s page
/// (`offset + n` items from the top); `unpage` then drops the first `offset`.
pub(crate) fn paged(request: &RecommendRequest) -> RecommendRequest {
    RecommendRequest { n: request.n + request.offset, offset: 0, ..request.clone() }
}

/// Drops the items before the page.
pub(crate) fn unpage(answer: &mut Recommendations, offset: usize) {
    answer.items.drain(..offset.min(answer.items.len()));
}

/// A query for a list of items: a page (`n` from `offset`) of the items
/// meeting `filter`, for `popular`, `similar_items` and `latest`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ItemQuery {
    /// Items wanted, 1–`N_MAX`.
    pub n: usize,
    /// Items to skip first; `offset + n` ≤ `N_MAX`.
    #[serde(default)]
    pub offset: usize,
    /// Categories and label conditions the items must meet.
    #[serde(default)]
    pub filter: ItemFilter,
}

impl ItemQuery {
    /// The first `n` items, no filter.
    pub fn top(n: usize) -> ItemQuery {
        ItemQuery { n, offset: 0, filter: ItemFilter::default() }
    }

    /// Skips the first `offset` items.
    pub fn offset(mut self, offset: usize) -> ItemQuery {
        self.offset = offset;
        self
    }

    /// Restricts the items to those meeting `filter`.
    pub fn filter(mut self, filter: ItemFilter) -> ItemQuery {
        self.filter = filter;
        self
    }

    /// Restricts the items to those in any of `categories`.
    pub fn in_categories<I: Into<String>>(mut self, categories: impl IntoIterator<Item = I>) -> ItemQuery {
        self.filter.categories.extend(categories.into_iter().map(Into::into));
        self
    }

    /// Checks the page and the filter.
    pub(crate) fn validate(&self) -> Result<(), EngineError> {
        validate_page(self.n, self.offset)?;
        self.filter.validate()
    }
}

/// A page of the most popular eligible items.
pub(crate) fn popular_page(state: &State, query: &ItemQuery, now_ms: i64) -> Vec<Scored> {
    let eligible = Eligibility::new(state, &query.filter, now_ms);
    let top =
        popularity::top(state, query.offset + query.n, eligible.categories(), |item| eligible.admits_listed(item));
    let mut found = popular_answers(state, top);
    found.drain(..query.offset.min(found.len()));
    found
}

/// A page of the newest eligible items (by publication time; items without
/// one are not listed), with their publication times.
pub(crate) fn latest_page(state: &State, query: &ItemQuery, now_ms: i64) -> Vec<(Dense, i64)> {
    let eligible = Eligibility::new(state, &query.filter, now_ms);
    let wanted = query.offset + query.n;
    let mut found: Vec<(Dense, i64)> = Vec::with_capacity(wanted);
    let categories: Vec<u32> = query.filter.categories.iter().filter_map(|name| state.categories().get(name)).collect();
    if query.filter.categories.is_empty() {
        found.extend(
            state.latest(None).filter(|&(_, item)| eligible.admits(item)).take(wanted).map(|(at, item)| (item, at)),
        );
    } else {
        // Merge the categories' lists (each newest first); an item in two of
        // them comes up twice in a row, equal, and is kept once.
        let mut lists: Vec<_> = categories.iter().map(|&category| state.latest(Some(category)).peekable()).collect();
        let mut last: Option<(i64, Dense)> = None;
        while found.len() < wanted {
            let next = lists
                .iter_mut()
                .enumerate()
                .filter_map(|(at, list)| list.peek().map(|&entry| (at, entry)))
                .max_by(|a, b| a.1 .0.cmp(&b.1 .0).then(b.1 .1.cmp(&a.1 .1)));
            let Some((at, entry)) = next else { break };
            lists[at].next();
            if last == Some(entry) {
                continue;
            }
            last = Some(entry);
            if eligible.admits(entry.1) {
                found.push((entry.1, entry.0));
            }
        }
    }
    found.drain(..query.offset.min(found.len()));
    found
}

/// An answer and what was computed on the way, for a ranking model: the
/// strategy's dense scores (seen items zeroed; empty at cold start or for
/// popularity) and the UserCF neighbours, so features and reasons need not
/// compute them again.
pub(crate) struct Candidates {
    pub answer: Recommendations,
    pub user: Option<Dense>,
    /// The dense ids of `answer.items`, in the same order.
    pub items: Vec<Dense>,
    pub scores: Vec<f64>,
    pub neighbours: Vec<(Dense, f64)>,
}

/// `recommend`; with `defer_reasons` the strategy's items get no reasons
/// yet (a model keeps only some of them: `fill_reasons` adds them to those).
pub(crate) fn recommend_with(
    state: &State,
    config: &EngineConfig,
    request: &RecommendRequest,
    now_ms: i64,
    defer_reasons: bool,
) -> Result<Candidates, EngineError> {
    validate(request)?;
    let user = state.users().get(&request.user).filter(|&user| !state.user_items(user).is_empty());
    let profile = user.map(|user| Profile::of(state, user));
    let wanted = Wanted {
        n: request.n,
        strategy: request.strategy,
        exclude: &request.exclude,
        allow: request.allow.as_deref(),
        filter: &request.filter,
    };
    Ok(answer_for(state, config, profile.as_ref(), &wanted, now_ms, defer_reasons))
}

/// What a request asks for, whoever it is for (a user or a session).
pub(crate) struct Wanted<'r> {
    pub n: usize,
    pub strategy: Strategy,
    pub exclude: &'r [String],
    pub allow: Option<&'r [String]>,
    pub filter: &'r ItemFilter,
}

/// The answer for `profile` (`None`: cold start, popularity only): the
/// strategy's best eligible unseen items, filled with popular ones.
pub(crate) fn answer_for(
    state: &State,
    config: &EngineConfig,
    profile: Option<&Profile<'_>>,
    wanted: &Wanted<'_>,
    now_ms: i64,
    defer_reasons: bool,
) -> Candidates {
    let eligible = Eligibility::new(state, wanted.filter, now_ms);
    let excluded: HashSet<Dense> = wanted.exclude.iter().filter_map(|name| state.items().get(name)).collect();
    let allowed: Option<HashSet<Dense>> =
        wanted.allow.map(|names| names.iter().filter_map(|name| state.items().get(name)).collect());
    // Whether a read may return `item`, a popular item of the filter's
    // categories (the fill walks their lists).
    let keep = |item: Dense| {
        eligible.admits_listed(item)
            && !excluded.contains(&item)
            && allowed.as_ref().is_none_or(|allowed| allowed.contains(&item))
            && profile.is_none_or(|profile| !profile.holds(item))
    };
    let mut items = Vec::with_capacity(wanted.n);
    let mut chosen: HashSet<Dense> = HashSet::new();
    let cold_start = profile.is_none();
    let (mut dense, mut used_neighbours) = (Vec::new(), Vec::new());
    let mut dense_items: Vec<Dense> = Vec::with_capacity(wanted.n);
    if let (Some(profile), false) = (profile, wanted.strategy == Strategy::Popularity) {
        let (mut scores, neighbours) = score_with_neighbours(state, config, profile, wanted.strategy);
        // Seen items drop out here, in O(seen), so the scan below needs no
        // lookup per item.
        for pair in profile.pairs {
            scores[pair.item as usize] = 0.0;
        }
        let candidates: Vec<(Dense, f64)> = scores
            .iter()
            .enumerate()
            .filter(|&(item, &score)| {
                score > 0.0
                    && eligible.admits(item as Dense)
                    && (excluded.is_empty() || !excluded.contains(&(item as Dense)))
                    && allowed.as_ref().is_none_or(|allowed| allowed.contains(&(item as Dense)))
            })
            .map(|(item, &score)| (item as Dense, score))
            .collect();
        let best = top_n(state.items(), candidates, wanted.n);
        chosen.extend(best.iter().map(|&(item, _)| item));
        dense_items.extend(best.iter().map(|&(item, _)| item));
        let mut co = CoInteraction::new(state, profile.pairs);
        for (item, score) in best {
            let reasons =
                if defer_reasons { Vec::new() } else { reasons(state, item, wanted.strategy, &neighbours, &mut co) };
            let name = state.items().name(item).to_string();
            items.push(Scored { item: name, score, strategy: wanted.strategy, reasons, model_score: None });
        }
        dense = scores;
        used_neighbours = neighbours;
    }
    if items.len() < wanted.n {
        // Cold start, or not enough scored candidates: fill with popular items.
        let fill = popularity::top(state, wanted.n - items.len(), eligible.categories(), |item| {
            keep(item) && !chosen.contains(&item)
        });
        dense_items.extend(fill.iter().map(|&(item, _)| item));
        items.extend(popular_answers(state, fill));
    }
    let ranking = Ranking::Unranked { reason: None };
    let answer = Recommendations { strategy: wanted.strategy, cold_start, lsn: state.lsn_applied(), items, ranking };
    let user = profile.and_then(|profile| profile.user);
    Candidates { answer, user, items: dense_items, scores: dense, neighbours: used_neighbours }
}

/// Gives the strategy's items of `items` (those `recommend_with` left
/// without reasons) their reasons, from `state` as it is now.
pub(crate) fn fill_reasons(state: &State, user: Option<Dense>, neighbours: &[(Dense, f64)], items: &mut [Scored]) {
    let Some(user) = user.filter(|&user| (user as usize) < state.users().len()) else { return };
    let mut co = CoInteraction::new(state, state.user_items(user));
    for scored in items.iter_mut().filter(|scored| scored.reasons.is_empty() && scored.strategy != Strategy::Popularity)
    {
        if let Some(item) = state.items().get(&scored.item) {
            scored.reasons = reasons(state, item, scored.strategy, neighbours, &mut co);
        }
    }
}

fn reasons(
    state: &State,
    item: Dense,
    strategy: Strategy,
    neighbours: &[(Dense, f64)],
    co: &mut CoInteraction<'_>,
) -> Vec<Reason> {
    match strategy {
        Strategy::UserCf | Strategy::Blend if !neighbours.is_empty() => {
            let top = usercf::top_contributors(state, neighbours, item, REASONS_PER_ITEM);
            if !top.is_empty() || strategy == Strategy::UserCf {
                return top
                    .into_iter()
                    .map(|(other, similarity, contribution)| Reason::Neighbour {
                        user: state.users().name(other).to_string(),
                        similarity: similarity as f32,
                        contribution: contribution as f32,
                    })
                    .collect();
            }
            co.reasons(item)
        }
        Strategy::ItemRank | Strategy::ItemRankExact | Strategy::Blend => co.reasons(item),
        Strategy::Ease | Strategy::Ials => {
            let contributors = match state.item_model() {
                Some(ItemModel::Ease(model)) if strategy == Strategy::Ease => {
                    ease::contributors(model, co.pairs, item, REASONS_PER_ITEM)
                }
                Some(ItemModel::Ials(model)) if strategy == Strategy::Ials => {
                    match co.ials.get_or_init(|| ials::explainer(model, co.pairs)) {
                        Some(explainer) => explainer.contributors(model, co.pairs, item, REASONS_PER_ITEM),
                        None => Vec::new(),
                    }
                }
                _ => Vec::new(),
            };
            contributors
                .into_iter()
                .map(|(other, contribution)| Reason::ItemWeight {
                    item: state.items().name(other).to_string(),
                    contribution,
                })
                .collect()
        }
        Strategy::UserCf => Vec::new(),
        Strategy::Popularity => vec![Reason::Popular { events: state.item_events(item) }],
    }
}

thread_local! {
    /// Per user, a bit per history item they share with the requesting
    /// user; reused across requests on this thread, cleared after each.
    static MARKS: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Which of the requesting user's strongest items each answered item
/// co-occurs with, and how often. The users of those (at most 8) items are
/// marked once per answer, so each answered item costs one pass over its
/// users. Long lists are sampled (their last `SCAN` users) and the counts
/// scaled, so the work is bounded on any state.
struct CoInteraction<'a> {
    state: &'a State,
    history: Vec<Dense>,
    /// Users marked, to clear afterwards; `None` until first needed.
    marked: Option<Vec<Dense>>,
    /// The requesting profile's pairs.
    pairs: &'a [crate::state::Pair],
    /// The profile's iALS system, factored once for all the items of an
    /// answer (`ials` reasons); built when first needed.
    ials: OnceCell<Option<ials::Explainer>>,
}

impl<'a> CoInteraction<'a> {
    const HISTORY: usize = 8;
    const SCAN: usize = 1000;

    fn new(state: &'a State, pairs: &'a [crate::state::Pair]) -> Self {
        CoInteraction { state, history: Vec::new(), marked: None, pairs, ials: OnceCell::new() }
    }

    fn sample(&self, item: Dense) -> (&'a [crate::state::ItemUser], f64) {
        let users = self.state.item_users(item);
        let sample = &users[users.len().saturating_sub(Self::SCAN)..];
        (sample, if sample.is_empty() { 1.0 } else { users.len() as f64 / sample.len() as f64 })
    }

    fn mark(&mut self) {
        // The strongest items (value descending, ties to the lower dense
        // id), kept in a small sorted list: one pass, no copy of the user's
        // list, however long it is.
        let mut strongest: Vec<(f32, Dense)> = Vec::with_capacity(Self::HISTORY + 1);
        for pair in self.pairs {
            let entry = (pair.value(), pair.item);
            let at =
                strongest.partition_point(|&(value, item)| value.total_cmp(&entry.0).then(entry.1.cmp(&item)).is_gt());
            if at < Self::HISTORY {
                strongest.insert(at, entry);
                strongest.truncate(Self::HISTORY);
            }
        }
        self.history = strongest.into_iter().map(|(_, item)| item).collect();
        let mut marked = Vec::new();
        MARKS.with(|cell| {
            let mut marks = cell.borrow_mut();
            if marks.len() < self.state.users().len() {
                marks.resize(self.state.users().len(), 0);
            }
            for (bit, &item) in self.history.iter().enumerate() {
                for entry in self.sample(item).0 {
                    let mark = &mut marks[entry.user as usize];
                    if *mark == 0 {
                        marked.push(entry.user);
                    }
                    *mark |= 1 << bit;
                }
            }
        });
        self.marked = Some(marked);
    }

    fn reasons(&mut self, item: Dense) -> Vec<Reason> {
        if self.marked.is_none() {
            self.mark();
        }
        let mut counts = [0u32; Self::HISTORY];
        let (sample, scale) = self.sample(item);
        MARKS.with(|cell| {
            let marks = cell.borrow();
            for entry in sample {
                let mut mark = marks.get(entry.user as usize).copied().unwrap_or(0);
                while mark != 0 {
                    counts[mark.trailing_zeros() as usize] += 1;
                    mark &= mark - 1;
                }
            }
        });
        let mut found: Vec<(Dense, u32)> = self
            .history
            .iter()
            .zip(counts)
            .filter(|&(_, hits)| hits > 0)
            .map(|(&other, hits)| {
                let other_scale = self.sample(other).1;
                (other, (f64::from(hits) * scale * other_scale).round() as u32)
            })
            .collect();
        found.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        found
            .into_iter()
            .take(REASONS_PER_ITEM)
            .map(|(other, users)| Reason::CoInteracted { item: self.state.items().name(other).to_string(), users })
            .collect()
    }
}

impl Drop for CoInteraction<'_> {
    fn drop(&mut self) {
        if let Some(marked) = self.marked.take() {
            MARKS.with(|cell| {
                let mut marks = cell.borrow_mut();
                for user in marked {
                    if let Some(mark) = marks.get_mut(user as usize) {
                        *mark = 0;
                    }
                }
            });
        }
    }
}

/// A page of the items most often interacted with together with `item`,
/// by cosine (C̃ᵢⱼ / √(|Uᵢ|·|Uⱼ|)), ties to the lower id, among those
/// `query` admits (the filter applies while candidates are gathered, so
/// `n` come back whenever `n` eligible items co-occur with `item`).
pub(crate) fn similar_page(state: &State, item: Dense, query: &ItemQuery, now_ms: i64) -> Vec<Scored> {
    let eligible = Eligibility::new(state, &query.filter, now_ms);
    let mut counts: rustc_hash::FxHashMap<Dense, u32> = rustc_hash::FxHashMap::default();
    for entry in state.item_users(item) {
        for pair in state.user_items(entry.user) {
            if pair.item != item {
                *counts.entry(pair.item).or_default() += 1;
            }
        }
    }
    let degree = state.item_users(item).len() as f64;
    let candidates: Vec<(Dense, f64)> = counts
        .iter()
        .filter(|&(&other, _)| eligible.admits(other))
        .map(|(&other, &both)| (other, f64::from(both) / (degree * state.item_users(other).len() as f64).sqrt()))
        .collect();
    let best = top_n(state.items(), candidates, query.offset + query.n);
    let mut found: Vec<Scored> = best
        .iter()
        .map(|&(other, score)| Scored {
            item: state.items().name(other).to_string(),
            score,
            strategy: Strategy::ItemRank,
            reasons: vec![Reason::CoInteracted {
                item: state.items().name(item).to_string(),
                users: counts.get(&other).copied().unwrap_or(0),
            }],
            model_score: None,
        })
        .collect();
    found.drain(..query.offset.min(found.len()));
    found
}
