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
//! Fast mode computes the first h terms of that series exactly and replaces
//! the tail Σ_{t>h} (1−α)αᵗCᵗd_u by its limit: C is a symmetric graph
//! normalised by column, whose random walk has the stationary distribution
//! π ∝ column sums (Cπ = π), and Cᵗd_u → π as t grows where the walk mixes.
//! So IR_fast = (1−α)·Σ_{t≤h} αᵗCᵗd_u + α^{h+1}·π. The column sums are part
//! of the state, maintained per new pair.
//!
//! **The error bound.** C is non-expansive in L1 (its columns sum to 1 or
//! 0), so ‖Cˢd − π‖₁ = ‖C^{s−h}(Cʰd − π)‖₁ ≤ ‖Cʰd − π‖₁ for s ≥ h, and
//!
//! ‖IR_fast − IR∞‖₁ ≤ Σ_{s>h} (1−α)αˢ‖Cˢd − π‖₁ ≤ α^{h+1}·‖Cʰd − π‖₁,
//!
//! IR∞ the walk's limit (what the exact mode converges to; its scores sum to
//! at most 1). The right side is known once hop h is computed, so fast mode
//! adds hops until it is at most `fast_tolerance` (and at least `fast_hops`
//! hops are done), or `iterations` hops are. Where the walk mixes fast (a
//! dense graph like MovieLens) one or two hops suffice; where it mixes
//! slowly (communities, sparse data, disconnected parts) the bound keeps
//! adding hops, up to the exact walk's own length: the approximation never
//! silently replaces a walk that has not mixed by popularity.
//!
//! Each hop is exact: the first from the sparse d_u (only the users of the
//! user's items are touched), the next ones one pass over the interactions.
//! On states above `fast_dense_pairs_max` pairs, where a pass is too slow
//! for a request, the pruned path of earlier versions serves instead: it
//! starts from the user's strongest items and samples long user and item
//! lists (each sample scaled to stand for its list), runs `fast_hops` hops,
//! and computes its bound (seeds, sampling and tail, see `pruned`) without
//! enforcing it. docs/EVALUATION.md measures both.

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
/// renormalised to sum to 1, and the share of the whole they held before;
/// unchanged (share 1) when it is short enough.
fn strongest(mut preference: Vec<(Dense, f64)>, max: usize) -> (Vec<(Dense, f64)>, f64) {
    if preference.len() <= max {
        return (preference, 1.0);
    }
    preference.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    preference.truncate(max);
    let total: f64 = preference.iter().map(|&(_, share)| share).sum();
    if total > 0.0 {
        for (_, share) in &mut preference {
            *share /= total;
        }
    }
    (preference, total)
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

/// Fast ItemRank: the first hops of the series plus the stationary tail,
/// with as many hops as the error bound asks (module docs).
pub(crate) fn fast(state: &State, profile: &Profile<'_>, config: &ItemRankConfig, scores: &mut [f64]) {
    let run = fast_bounded(state, profile, config, scores);
    tracing::trace!(hops = run.hops, dense = run.dense, bound = run.bound, "fast ItemRank");
}

/// What a fast ItemRank computation did.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct FastRun {
    /// Terms of the series computed after d_u (hops of the walk).
    pub hops: u32,
    /// Whether it took the dense path (exact hops, bound ≤ tolerance or
    /// `iterations` hops), rather than the pruned one of large states.
    pub dense: bool,
    /// The bound on ‖fast − IR∞‖₁, IR∞ the walk's limit (its scores sum to
    /// at most 1).
    pub bound: f64,
}

/// Σᵢ |xᵢ − πᵢ|, π = column sums ÷ their total (all zeros when no item
/// co-occurs with another: then C = 0, and Cπ = π holds too).
fn distance_to_stationary(x: &[f64], column_sum: &[u64], inverse_total: f64) -> f64 {
    x.iter().zip(column_sum).map(|(&x, &sum)| (x - sum as f64 * inverse_total).abs()).sum()
}

/// scores += weight · π.
fn add_tail(scores: &mut [f64], column_sum: &[u64], inverse_total: f64, weight: f64) {
    let tail = weight * inverse_total;
    if tail > 0.0 {
        for (score, &sum) in scores.iter_mut().zip(column_sum) {
            *score += tail * sum as f64;
        }
    }
}

/// Fast ItemRank, saying what it did. `scores` must be zeroed.
pub(crate) fn fast_bounded(
    state: &State,
    profile: &Profile<'_>,
    config: &ItemRankConfig,
    scores: &mut [f64],
) -> FastRun {
    let items = state.items().len();
    let preference = preference(profile);
    if items == 0 || preference.is_empty() {
        return FastRun { hops: 0, dense: true, bound: 0.0 };
    }
    let column_sum = state.item_others();
    let total: u64 = column_sum.iter().sum();
    let inverse_total = if total > 0 { 1.0 / total as f64 } else { 0.0 };
    if state.pairs() <= config.fast_dense_pairs_max {
        dense(state, &preference, config, scores, inverse_total)
    } else {
        pruned(state, preference, config, scores, inverse_total)
    }
}

/// The dense path: the series from the whole d_u, each hop exact (the
/// first from the sparse d_u, the others one pass over the interactions),
/// until at least `fast_hops` hops are done and the bound
/// α^{h+1}·‖Cʰd − π‖₁ is at most `fast_tolerance`, or `iterations` hops are
/// done; then the tail α^{h+1}·π.
fn dense(
    state: &State,
    preference: &[(Dense, f64)],
    config: &ItemRankConfig,
    scores: &mut [f64],
    inverse_total: f64,
) -> FastRun {
    let items = scores.len();
    let alpha = f64::from(config.alpha);
    let column_sum = state.item_others();
    let mut term = vec![0.0f64; items];
    for &(item, share) in preference {
        term[item as usize] = share;
    }
    let mut weight = 1.0 - alpha;
    for &(item, share) in preference {
        scores[item as usize] += weight * share;
    }
    let mut next = vec![0.0f64; items];
    let mut scaled = vec![0.0f64; items];
    let mut per_user = vec![0.0f64; state.users().len()];
    let mut hops = 0u32;
    let mut tail = alpha;
    loop {
        let bound = tail * distance_to_stationary(&term, column_sum, inverse_total);
        if (hops >= config.fast_hops && bound <= config.fast_tolerance) || hops >= config.iterations {
            add_tail(scores, column_sum, inverse_total, tail);
            return FastRun { hops, dense: true, bound };
        }
        if hops == 0 {
            multiply_sparse(state, preference, &mut per_user, &mut scaled, &mut next);
        } else {
            multiply_by_items(state, &term, &mut per_user, &mut scaled, &mut next);
        }
        std::mem::swap(&mut term, &mut next);
        hops += 1;
        weight *= alpha;
        tail *= alpha;
        for (score, &term) in scores.iter_mut().zip(&term) {
            *score += weight * term;
        }
    }
}

/// out = C·x (dense), as `multiply`, with the per-user sums scattered from
/// the item lists (8 bytes an entry) rather than gathered from the user
/// lists (a whole `Pair` an entry): the same sums in another order, about
/// half the memory traffic.
fn multiply_by_items(state: &State, x: &[f64], per_user: &mut [f64], scaled: &mut [f64], out: &mut [f64]) {
    per_user.fill(0.0);
    for (item, ((scaled, &x), &sum)) in scaled.iter_mut().zip(x).zip(state.item_others()).enumerate() {
        *scaled = if sum > 0 { x / sum as f64 } else { 0.0 };
        if *scaled != 0.0 {
            for entry in state.item_users(item as Dense) {
                per_user[entry.user as usize] += *scaled;
            }
        }
    }
    for (item, out) in out.iter_mut().enumerate() {
        let users = state.item_users(item as Dense);
        let through_users: f64 = users.iter().map(|entry| per_user[entry.user as usize]).sum();
        *out = through_users - users.len() as f64 * scaled[item];
    }
}

/// out = C·x for a sparse x (`preference`): the per-user sums from the
/// item lists of x's items only, then the same item-side pass as
/// `multiply`. `per_user` and `scaled` must be zeroed; they are left dirty.
fn multiply_sparse(
    state: &State,
    preference: &[(Dense, f64)],
    per_user: &mut [f64],
    scaled: &mut [f64],
    out: &mut [f64],
) {
    let column_sum = state.item_others();
    for &(item, share) in preference {
        let sum = column_sum[item as usize];
        if sum > 0 {
            let x = share / sum as f64;
            scaled[item as usize] = x;
            for entry in state.item_users(item) {
                per_user[entry.user as usize] += x;
            }
        }
    }
    for (item, out) in out.iter_mut().enumerate() {
        let users = state.item_users(item as Dense);
        let through_users: f64 = users.iter().map(|entry| per_user[entry.user as usize]).sum();
        *out = through_users - users.len() as f64 * scaled[item];
    }
}

/// The pruned path, for states above `fast_dense_pairs_max` pairs, where a
/// pass over the interactions is too slow for a request: hop 0 and (with
/// `fast_hops` ≥ 1) hop 1 from the user's strongest items through sampled
/// lists, touching only the users of those items and their items; further
/// hops up to `fast_hops` are dense passes; then the tail. Its bound is
/// computed, not enforced: 2(1 − m) for the seeds (m: the share of d_u
/// kept; IR is linear in d with an L1 gain ≤ 1), α·e for the sampling (e:
/// a bound on the L1 error of the sampled hop; C is non-expansive in L1, so
/// it enters every later term and the tail's distance at most once each),
/// and α^{h+1}·‖Cʰd′ − π‖₁ for the tail.
fn pruned(
    state: &State,
    preference: Vec<(Dense, f64)>,
    config: &ItemRankConfig,
    scores: &mut [f64],
    inverse_total: f64,
) -> FastRun {
    let items = scores.len();
    let alpha = f64::from(config.alpha);
    let column_sum = state.item_others();
    // Pruning for very active users: the walk starts from their
    // `seed_items_max` strongest items (renormalised).
    let (preference, kept_mass) = strongest(preference, config.seed_items_max);
    let seeds_error = 2.0 * (1.0 - kept_mass).max(0.0);
    let mut weight = 1.0 - alpha;
    let mut term = vec![0.0f64; items];
    for &(item, share) in &preference {
        scores[item as usize] += weight * share;
        term[item as usize] = share;
    }
    let mut sampling_error = 0.0f64;
    if config.fast_hops >= 1 {
        term.fill(0.0);
        // Hop 1 from the sparse d′. Of a very popular item, only the
        // `scan_users_per_item` users who interacted with it last are
        // walked through, each standing for |U_j| / scanned of its users
        // (exact below the cap).
        let mut per_user: rustc_hash::FxHashMap<Dense, f64> = rustc_hash::FxHashMap::default();
        for &(item, share) in &preference {
            let sum = column_sum[item as usize];
            let users = state.item_users(item);
            if sum == 0 || users.is_empty() {
                continue;
            }
            let start = users.len().saturating_sub(config.scan_users_per_item);
            let scale = users.len() as f64 / (users.len() - start) as f64;
            let mut scanned_items = 0usize;
            for entry in &users[start..] {
                *per_user.entry(entry.user).or_default() += scale * share / sum as f64;
                scanned_items += state.user_items(entry.user).len();
            }
            if start > 0 {
                // The exact mass through the item's users (Σ_{u∈Uⱼ} |Iᵤ| =
                // sⱼ + |Uⱼ|) plus the sampled one.
                let exact = (sum as f64 + users.len() as f64) * share / sum as f64;
                sampling_error += exact + scale * scanned_items as f64 * share / sum as f64;
            }
        }
        for (&other, &total) in &per_user {
            // A very active co-user's items are sampled evenly across its
            // list (old and new items alike), each standing for `step`.
            let pairs = state.user_items(other);
            let step = pairs.len().div_ceil(config.scan_items_per_user).max(1);
            let sampled = pairs.len().div_ceil(step);
            if sampled < pairs.len() {
                sampling_error += 2.0 * total * (pairs.len() - sampled) as f64;
            }
            let total = total * pairs.len() as f64 / sampled.max(1) as f64;
            for pair in pairs.iter().step_by(step) {
                term[pair.item as usize] += total;
            }
        }
        for &(item, share) in &preference {
            let sum = column_sum[item as usize];
            if sum > 0 {
                // The diagonal. Sampling makes the estimate above inexact,
                // so the difference is kept from going negative (which only
                // brings it closer to the exact, non-negative value).
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
    let tail = alpha.powi(config.fast_hops as i32 + 1);
    add_tail(scores, column_sum, inverse_total, tail);
    let bound = seeds_error + alpha * sampling_error + tail * distance_to_stationary(&term, column_sum, inverse_total);
    FastRun { hops: config.fast_hops, dense: false, bound }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DedupConfig;
    use crate::record::{EventsV1, LogRecord, LoggedEvent, LoggedKind};
    use proptest::prelude::*;

    /// A state holding `pairs` (user, item, rating), one record per pair.
    fn state_of(pairs: &[(String, String, f32)]) -> State {
        let mut state = State::new(None);
        for (lsn, (user, item, rating)) in pairs.iter().enumerate() {
            let events = vec![LoggedEvent {
                user,
                item,
                kind: LoggedKind::Rating,
                weight: *rating,
                timestamp_ms: lsn as i64,
                event_id: None,
            }];
            state.apply(
                lsn as u64 + 1,
                &LogRecord::Events(EventsV1 { ingested_ms: 0, events }),
                &DedupConfig::default(),
            );
        }
        state
    }

    fn scores_of(
        state: &State,
        user: &str,
        config: &ItemRankConfig,
        run: impl Fn(&State, &Profile<'_>, &ItemRankConfig, &mut [f64]),
    ) -> Vec<f64> {
        let mut scores = vec![0.0; state.items().len()];
        if let Some(user) = state.users().get(user) {
            run(state, &Profile::of(state, user), config, &mut scores);
        }
        scores
    }

    /// The `n` best unseen items of `user`, by name.
    fn top(state: &State, user: &str, scores: &[f64], n: usize) -> Vec<String> {
        let seen: Vec<Dense> = state
            .users()
            .get(user)
            .map(|user| state.user_items(user).iter().map(|pair| pair.item).collect())
            .unwrap_or_default();
        let candidates =
            (0..scores.len() as Dense).filter(|item| !seen.contains(item)).map(|item| (item, scores[item as usize]));
        crate::algo::top_n(state.items(), candidates.collect(), n)
            .into_iter()
            .map(|(item, _)| state.items().name(item).to_string())
            .collect()
    }

    /// Two communities that share no user: a chain a0 – a1 – … – a7 (user
    /// `c{k}` rated a_k and a_{k+1}) and a popular clique b0..b4 rated by 30
    /// users. The walk from a0 never leaves the chain, so the exact ranking
    /// is a1, a2, a3; the stationary tail, which puts most of its mass on
    /// the clique, must not be taken for the chain's own tail (one hop plus
    /// the tail ranked b0 second).
    #[test]
    fn fast_ranks_like_exact_where_the_walk_mixes_slowly() {
        let mut pairs = Vec::new();
        for k in 0..7 {
            pairs.push((format!("c{k}"), format!("a{k}"), 4.0));
            pairs.push((format!("c{k}"), format!("a{}", k + 1), 4.0));
        }
        for user in 0..30 {
            for item in 0..5 {
                pairs.push((format!("p{user}"), format!("b{item}"), 5.0));
            }
        }
        pairs.push(("me".to_string(), "a0".to_string(), 5.0));
        let state = state_of(&pairs);
        let config = ItemRankConfig::default();
        let exact = scores_of(&state, "me", &config, exact);
        let fast = scores_of(&state, "me", &config, fast);
        assert_eq!(top(&state, "me", &exact, 3), ["a1", "a2", "a3"]);
        assert_eq!(top(&state, "me", &fast, 3), ["a1", "a2", "a3"]);
    }

    /// ‖x − y‖₁.
    fn distance(x: &[f64], y: &[f64]) -> f64 {
        x.iter().zip(y).map(|(x, y)| (x - y).abs()).sum()
    }

    proptest! {
        /// On random small graphs, the fast scores are within the bound they
        /// report of the walk's limit (the exact walk run until αⁿ is
        /// negligible), on both paths, and the dense path's bound is within
        /// the tolerance.
        #[test]
        fn the_fast_answer_is_within_its_error_bound_of_the_limit(
            pairs in prop::collection::vec((0u8..10, 0u8..14, 1u8..6), 1..80),
            alpha in prop::sample::select(vec![0.1f32, 0.5, 0.85, 0.95]),
            tolerance in prop::sample::select(vec![0.0f64, 0.001, 0.05, 0.1, 0.5, 1.0]),
            fast_hops in 0u32..4,
            scan in 1usize..4,
            seeds in 1usize..4,
        ) {
            let pairs: Vec<(String, String, f32)> =
                pairs.iter().map(|&(u, i, r)| (format!("u{u}"), format!("i{i}"), f32::from(r))).collect();
            let state = state_of(&pairs);
            let limit_config = ItemRankConfig { alpha, iterations: 600, ..ItemRankConfig::default() };
            let dense_config = ItemRankConfig {
                alpha,
                iterations: 400,
                fast_hops,
                fast_tolerance: tolerance,
                ..ItemRankConfig::default()
            };
            let pruned_config = ItemRankConfig {
                fast_dense_pairs_max: 0,
                scan_users_per_item: scan,
                scan_items_per_user: scan,
                seed_items_max: seeds,
                ..dense_config.clone()
            };
            for user in 0..10u8 {
                let user = format!("u{user}");
                let limit = scores_of(&state, &user, &limit_config, exact);
                for config in [&dense_config, &pruned_config] {
                    let mut scores = vec![0.0; state.items().len()];
                    let Some(id) = state.users().get(&user) else { continue };
                    let run = fast_bounded(&state, &Profile::of(&state, id), config, &mut scores);
                    let error = distance(&scores, &limit);
                    prop_assert!(error <= run.bound + 1e-9, "{user}: error {error} > bound {run:?}");
                    prop_assert_eq!(run.dense, config.fast_dense_pairs_max > 0);
                    if run.dense {
                        prop_assert!(run.bound <= tolerance + 1e-12 || run.hops == config.iterations, "{run:?}");
                        prop_assert!(run.hops >= fast_hops);
                    }
                }
            }
        }
    }
}
