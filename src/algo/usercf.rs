//! User-based collaborative filtering: cosine similarity between users'
//! interaction vectors (0 where a user has no interaction), the k most
//! similar other users (ties to the lower id), and
//! score(u, i) = Σ over those neighbours of similarity × their value for i.
//! Neighbours are found through the item→users index, so only users who
//! share an item with `u` are ever touched.

use std::cell::RefCell;

use crate::algo::{top_n, Profile};
use crate::config::UserCfConfig;
use crate::ids::Dense;
use crate::state::State;

thread_local! {
    /// Dot-product accumulator reused across requests on this thread: a
    /// dense array plus the list of entries touched, so a request costs what
    /// it touches, not the number of users.
    static DOTS: RefCell<(Vec<f64>, Vec<Dense>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// The profile's neighbours, most similar first: `(user, cosine)`.
pub(crate) fn neighbours(state: &State, profile: &Profile<'_>, config: &UserCfConfig) -> Vec<(Dense, f64)> {
    let norm_u = profile.norm_sq.sqrt();
    if norm_u <= 0.0 {
        return Vec::new();
    }
    DOTS.with(|cell| {
        let mut guard = cell.borrow_mut();
        let (dots, touched) = &mut *guard;
        if dots.len() < state.users().len() {
            dots.resize(state.users().len(), 0.0);
        }
        for pair in profile.pairs {
            let mine = f64::from(pair.value());
            if mine == 0.0 {
                continue;
            }
            let users = state.item_users(pair.item);
            // Pruning: scan only the most recently arrived users of a very
            // popular item (exact while the cap is above the item's degree).
            let start = users.len().saturating_sub(config.scan_users_per_item);
            for entry in &users[start..] {
                let (other, theirs) = (entry.user, f64::from(entry.value));
                if Some(other) == profile.user || theirs == 0.0 {
                    continue;
                }
                let dot = &mut dots[other as usize];
                if *dot == 0.0 {
                    touched.push(other);
                }
                *dot += mine * theirs;
            }
        }
        let mut candidates = Vec::with_capacity(touched.len());
        for &other in touched.iter() {
            let dot = std::mem::take(&mut dots[other as usize]);
            let norm_v = state.user_norm_sq(other).sqrt();
            if dot > 0.0 && norm_v > 0.0 {
                candidates.push((other, dot / (norm_u * norm_v)));
            }
        }
        touched.clear();
        top_n(state.users(), candidates, config.neighbours)
    })
}

/// Adds Σ sim × value over `neighbours` into `scores` (indexed by item).
pub(crate) fn scores_from(state: &State, neighbours: &[(Dense, f64)], scores: &mut [f64]) {
    for &(other, similarity) in neighbours {
        for pair in state.user_items(other) {
            scores[pair.item as usize] += similarity * f64::from(pair.value());
        }
    }
}

/// The neighbours that contributed most to `item`'s score.
pub(crate) fn top_contributors(
    state: &State,
    neighbours: &[(Dense, f64)],
    item: Dense,
    count: usize,
) -> Vec<(Dense, f64, f64)> {
    let mut contributions: Vec<(Dense, f64, f64)> = neighbours
        .iter()
        .filter_map(|&(other, similarity)| {
            state.pair(other, item).map(|pair| (other, similarity, similarity * f64::from(pair.value())))
        })
        .filter(|&(_, _, contribution)| contribution > 0.0)
        .collect();
    contributions.sort_by(|a, b| b.2.total_cmp(&a.2));
    contributions.truncate(count);
    contributions
}
