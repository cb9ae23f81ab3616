//! ItemRank (Gori & Pucci, IJCAI 2007).
//!
//! The correlation graph is C̃ᵢⱼ = number of users who interacted with both i
//! and j (zero diagonal), each column divided by its sum (an empty column
//! stays zero). It is never materialised: with A the user×item incidence
//! matrix, C̃ = AᵀA − diag(|Uᵢ|), so C̃·y = Aᵀ(A·y) − |U|∘y costs two passes
//! over the interactions, and every event updates the graph by updating A.
//! Column sums are Σ_{u∈Uⱼ}(|Iᵤ| − 1).
//!
//! Exact mode runs the paper's iteration IR ← α·C·IR + (1−α)·d_u from
//! IR = 1/|items|. Fast mode estimates the same ranking with random walks
//! with restart (as Pixie does): a walk starts at an item drawn from d_u,
//! and at each step continues with probability α along C — a step from j
//! picks one of the (user, item) co-occurrences of j uniformly, which is
//! exactly column j of C — and the visit counts estimate Σₜ αᵗCᵗd_u, the
//! fixed point the exact iteration converges to. Walks stop early once
//! enough unseen items have enough visits.

use rustc_hash::FxHashMap;

use crate::algo::SplitMix64;
use crate::config::ItemRankConfig;
use crate::ids::Dense;
use crate::state::State;

/// d_u: the user's values divided by their sum.
fn preference(state: &State, user: Dense) -> Vec<(Dense, f64)> {
    let pairs = state.user_items(user);
    let total: f64 = pairs.iter().map(|pair| f64::from(pair.value())).sum();
    if total <= 0.0 {
        return Vec::new();
    }
    pairs.iter().map(|pair| (pair.item, f64::from(pair.value()) / total)).collect()
}

/// Exact ItemRank scores for every item.
pub(crate) fn exact(state: &State, user: Dense, config: &ItemRankConfig, scores: &mut [f64]) {
    let items = state.items.len();
    let preference = preference(state, user);
    if items == 0 || preference.is_empty() {
        return;
    }
    let alpha = f64::from(config.alpha);
    let mut column_sum = vec![0.0f64; items];
    for pairs in &state.user_items {
        let others = pairs.len().saturating_sub(1) as f64;
        for pair in pairs {
            column_sum[pair.item as usize] += others;
        }
    }
    let mut d = vec![0.0f64; items];
    for &(item, weight) in &preference {
        d[item as usize] = weight;
    }
    let mut rank = vec![1.0 / items as f64; items];
    let mut scaled = vec![0.0f64; items];
    let mut per_user = vec![0.0f64; state.users.len()];
    for _ in 0..config.iterations {
        for ((scaled, &rank), &sum) in scaled.iter_mut().zip(&rank).zip(&column_sum) {
            *scaled = if sum > 0.0 { rank / sum } else { 0.0 };
        }
        for (total, pairs) in per_user.iter_mut().zip(&state.user_items) {
            *total = pairs.iter().map(|pair| scaled[pair.item as usize]).sum();
        }
        for (item, next) in rank.iter_mut().enumerate() {
            let users = &state.item_users[item];
            let through_users: f64 = users.iter().map(|&u| per_user[u as usize]).sum();
            let correlated = through_users - users.len() as f64 * scaled[item];
            *next = alpha * correlated + (1.0 - alpha) * d[item];
        }
    }
    scores.copy_from_slice(&rank);
}

/// Fast ItemRank: visit counts of random walks with restart, normalised per
/// walk. Repeatable: the walks are seeded by the user's id and the state's
/// LSN.
pub(crate) fn fast(state: &State, user: Dense, config: &ItemRankConfig, scores: &mut [f64]) -> u64 {
    let preference = preference(state, user);
    if preference.is_empty() {
        return 0;
    }
    let mut rng = SplitMix64::new(config.seed ^ (u64::from(user) << 32) ^ state.applied_lsn.rotate_left(17));
    let alpha = f64::from(config.alpha);
    let seen = state.user_items(user);
    let is_seen = |item: Dense| seen.binary_search_by_key(&item, |pair| pair.item).is_ok();
    // Cumulative d_u for drawing start items.
    let mut cumulative = Vec::with_capacity(preference.len());
    let mut acc = 0.0;
    for &(item, weight) in &preference {
        acc += weight;
        cumulative.push((acc, item));
    }
    // Per visited item: the largest (|I_u| − 1) among its users, the bound
    // of the rejection step. Computed once per item per request.
    let mut bound: FxHashMap<Dense, u64> = FxHashMap::default();
    let mut visits_enough = 0u32;
    let mut steps = 0u64;
    let mut walks = 0u64;
    'walks: while steps < u64::from(config.walk_steps_max) {
        walks += 1;
        let draw = rng.unit() * acc;
        let start = cumulative.partition_point(|&(c, _)| c <= draw).min(cumulative.len() - 1);
        let mut at = cumulative[start].1;
        loop {
            steps += 1;
            let score = &mut scores[at as usize];
            *score += 1.0;
            if *score as u32 == config.walk_visits_min && !is_seen(at) {
                visits_enough += 1;
                if visits_enough >= config.walk_stop_items {
                    break 'walks;
                }
            }
            if steps >= u64::from(config.walk_steps_max) || rng.unit() >= alpha {
                break;
            }
            match step(state, at, &mut bound, &mut rng) {
                Some(next) => at = next,
                None => break, // an empty column: the walk's mass leaves the graph
            }
        }
    }
    if walks > 0 {
        let scale = (1.0 - alpha) / walks as f64;
        for score in scores.iter_mut() {
            *score *= scale;
        }
    }
    steps
}

/// One step along column `from` of C: a uniformly chosen pair (u, i) with u
/// a user of `from` and i ≠ `from` one of u's items. Drawing u ∝ (|I_u| − 1)
/// by rejection against the column's largest degree makes this exact.
fn step(state: &State, from: Dense, bound: &mut FxHashMap<Dense, u64>, rng: &mut SplitMix64) -> Option<Dense> {
    let users = &state.item_users[from as usize];
    let max_others = *bound.entry(from).or_insert_with(|| {
        users.iter().map(|&u| state.user_items[u as usize].len().saturating_sub(1) as u64).max().unwrap_or(0)
    });
    if max_others == 0 {
        return None;
    }
    loop {
        let user = users[rng.below(users.len() as u64) as usize];
        let pairs = &state.user_items[user as usize];
        let others = pairs.len() as u64 - 1;
        if rng.below(max_others) < others {
            let skip = pairs.binary_search_by_key(&from, |pair| pair.item).unwrap_or(0);
            let mut pick = rng.below(others) as usize;
            if pick >= skip {
                pick += 1;
            }
            return Some(pairs[pick].item);
        }
    }
}

/// How many users interacted with both `a` and `b` (C̃ₐᵦ).
pub(crate) fn co_occurrences(state: &State, a: Dense, b: Dense) -> u32 {
    let (x, y) = (&state.item_users[a as usize], &state.item_users[b as usize]);
    let (small, large) = if x.len() <= y.len() { (x, y) } else { (y, x) };
    small.iter().filter(|user| large.binary_search(user).is_ok()).count() as u32
}
