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
//! IR = 1/|items|, which after n steps is
//! IRₙ = (1−α)·Σ_{t<n} αᵗCᵗd_u + αⁿCⁿ(1/|items|).
//!
//! Fast mode computes the first `fast_hops` terms of that series exactly,
//! starting from the sparse d_u, and replaces the tail Σ_{t>h} αᵗCᵗd_u by
//! its limit: C is a symmetric graph normalised by column, whose random walk
//! has the stationary distribution π ∝ column sums, and Cᵗd_u → π as t grows.
//! So IR_fast = (1−α)·Σ_{t≤h} αᵗCᵗd_u + α^{h+1}·π. The column sums are
//! part of the state, maintained per new pair. So that a request's cost does
//! not grow with the state, the first hop starts from the user's strongest
//! items and samples long user and item lists (each sample scaled to stand
//! for its list); docs/EVALUATION.md measures what that costs.

use crate::algo::Profile;
use crate::config::ItemRankConfig;
use crate::ids::Dense;
use crate::state::State;

/// d_u: the profile's values divided by their sum.
fn preference(profile: &Profile<'_>) -> Vec<(Dense, f64)> {
    let pairs = profile.pairs;
    let total: f64 = pairs.iter().map(|pair| f64::from(pair.value())).sum();
    if total <= 0.0 {
        return Vec::new();
    }
    pairs.iter().map(|pair| (pair.item, f64::from(pair.value()) / total)).collect()
}

/// out = C·x (dense), through the factored graph.
fn multiply(state: &State, x: &[f64], per_user: &mut [f64], scaled: &mut [f64], out: &mut [f64]) {
    for ((scaled, &x), &sum) in scaled.iter_mut().zip(x).zip(state.item_others()) {
        *scaled = if sum > 0 { x / sum as f64 } else { 0.0 };
    }
    for (total, pairs) in per_user.iter_mut().zip(state.all_user_items()) {
        *total = pairs.iter().map(|pair| scaled[pair.item as usize]).sum();
    }
    for (item, out) in out.iter_mut().enumerate() {
        let users = state.item_users(item as Dense);
        let through_users: f64 = users.iter().map(|entry| per_user[entry.user as usize]).sum();
        *out = through_users - users.len() as f64 * scaled[item];
    }
}

/// The `max` largest shares of `preference` (ties to the lower item),
/// renormalised to sum to 1; unchanged when it is short enough.
fn strongest(mut preference: Vec<(Dense, f64)>, max: usize) -> Vec<(Dense, f64)> {
    if preference.len() <= max {
        return preference;
    }
    preference.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    preference.truncate(max);
    let total: f64 = preference.iter().map(|&(_, share)| share).sum();
    if total > 0.0 {
        for (_, share) in &mut preference {
            *share /= total;
        }
    }
    preference
}

/// Exact ItemRank scores for every item.
pub(crate) fn exact(state: &State, profile: &Profile<'_>, config: &ItemRankConfig, scores: &mut [f64]) {
    let items = state.items().len();
    let preference = preference(profile);
    if items == 0 || preference.is_empty() {
        return;
    }
    let alpha = f64::from(config.alpha);
    let mut d = vec![0.0f64; items];
    for &(item, weight) in &preference {
        d[item as usize] = weight;
    }
    let mut rank = vec![1.0 / items as f64; items];
    let mut next = vec![0.0f64; items];
    let mut scaled = vec![0.0f64; items];
    let mut per_user = vec![0.0f64; state.users().len()];
    for _ in 0..config.iterations {
        multiply(state, &rank, &mut per_user, &mut scaled, &mut next);
        for ((rank, &next), &d) in rank.iter_mut().zip(&next).zip(&d) {
            *rank = alpha * next + (1.0 - alpha) * d;
        }
    }
    scores.copy_from_slice(&rank);
}

/// Fast ItemRank: `fast_hops` exact terms plus the stationary tail.
pub(crate) fn fast(state: &State, profile: &Profile<'_>, config: &ItemRankConfig, scores: &mut [f64]) {
    let items = state.items().len();
    let preference = preference(profile);
    if items == 0 || preference.is_empty() {
        return;
    }
    let alpha = f64::from(config.alpha);
    let column_sum = state.item_others();
    // Pruning for very active users: the walk starts from their
    // `seed_items_max` strongest items (renormalised).
    let preference = strongest(preference, config.seed_items_max);
    // Hop 0, then the first hop from the sparse d_u: only the users of the
    // user's items are touched. Pruning: of a very popular item, only the
    // `scan_users_per_item` users who interacted with it last are walked through, each
    // standing for |U_j| / scanned of its users (exact below the cap).
    let mut term = vec![0.0f64; items];
    let mut weight = 1.0 - alpha;
    for &(item, share) in &preference {
        scores[item as usize] += weight * share;
    }
    if config.fast_hops >= 1 {
        let mut per_user: rustc_hash::FxHashMap<Dense, f64> = rustc_hash::FxHashMap::default();
        for &(item, share) in &preference {
            let sum = column_sum[item as usize];
            let users = state.item_users(item);
            if sum == 0 || users.is_empty() {
                continue;
            }
            let start = users.len().saturating_sub(config.scan_users_per_item);
            let scale = users.len() as f64 / (users.len() - start) as f64;
            for entry in &users[start..] {
                *per_user.entry(entry.user).or_default() += scale * share / sum as f64;
            }
        }
        for (&other, &total) in &per_user {
            // A very active co-user's items are sampled evenly across its
            // list (old and new items alike), each standing for `step`.
            let pairs = state.user_items(other);
            let step = pairs.len().div_ceil(config.scan_items_per_user).max(1);
            let sampled = pairs.len().div_ceil(step);
            let total = total * pairs.len() as f64 / sampled.max(1) as f64;
            for pair in pairs.iter().step_by(step) {
                term[pair.item as usize] += total;
            }
        }
        for &(item, share) in &preference {
            let sum = column_sum[item as usize];
            if sum > 0 {
                // The diagonal. Sampling makes the estimate above inexact,
                // so the difference is kept from going negative.
                let term = &mut term[item as usize];
                *term = (*term - state.item_users(item).len() as f64 * share / sum as f64).max(0.0);
            }
        }
        weight *= alpha;
        for (score, &term) in scores.iter_mut().zip(&term) {
            *score += weight * term;
        }
    }
    if config.fast_hops >= 2 {
        let mut next = vec![0.0f64; items];
        let mut scaled = vec![0.0f64; items];
        let mut per_user = vec![0.0f64; state.users().len()];
        for _ in 1..config.fast_hops {
            multiply(state, &term, &mut per_user, &mut scaled, &mut next);
            std::mem::swap(&mut term, &mut next);
            weight *= alpha;
            for (score, &term) in scores.iter_mut().zip(&term) {
                *score += weight * term;
            }
        }
    }
    // The tail: α^{h+1}·π with π ∝ column sums.
    let total: u64 = column_sum.iter().sum();
    if total > 0 {
        let tail = alpha.powi(config.fast_hops as i32 + 1) / total as f64;
        for (score, &sum) in scores.iter_mut().zip(column_sum.iter()) {
            *score += tail * sum as f64;
        }
    }
}
