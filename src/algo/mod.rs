//! The scoring strategies. Each reads a `State` and fills a dense score
//! vector indexed by item; `recommend` turns scores into answers.

pub mod ease;
pub mod ials;
pub(crate) mod itemrank;
pub(crate) mod popularity;
pub(crate) mod usercf;

use std::cmp::Ordering;

use crate::ids::{id_order, Dense, Interner};
use crate::state::{Pair, State};

/// Whose tastes a strategy scores for: a known user (their pairs in the
/// state) or an anonymous session (pairs built from the request's events,
/// never written).
#[derive(Clone, Copy)]
pub(crate) struct Profile<'a> {
    /// The user, when the profile is a known user's (left out of their own
    /// neighbours).
    pub user: Option<Dense>,
    /// Sorted by item.
    pub pairs: &'a [Pair],
    /// Σ value² over `pairs`.
    pub norm_sq: f64,
}

impl<'a> Profile<'a> {
    /// `user`'s profile in `state`.
    pub(crate) fn of(state: &'a State, user: Dense) -> Profile<'a> {
        Profile { user: Some(user), pairs: state.user_items(user), norm_sq: state.user_norm_sq(user) }
    }

    /// Whether the profile holds `item` (a seen item).
    pub(crate) fn holds(&self, item: Dense) -> bool {
        self.pairs.binary_search_by_key(&item, |pair| pair.item).is_ok()
    }
}

/// Best-first order: higher score first, ties to the lower external id.
pub(crate) fn rank_order(names: &Interner, a: (Dense, f64), b: (Dense, f64)) -> Ordering {
    b.1.total_cmp(&a.1).then_with(|| id_order(names.name(a.0), names.name(b.0)))
}

/// The `n` best `(id, score)` pairs in `candidates`, best first.
pub(crate) fn top_n(names: &Interner, mut candidates: Vec<(Dense, f64)>, n: usize) -> Vec<(Dense, f64)> {
    if n == 0 {
        return Vec::new();
    }
    if candidates.len() > n {
        candidates.select_nth_unstable_by(n - 1, |&a, &b| rank_order(names, a, b));
        candidates.truncate(n);
    }
    candidates.sort_unstable_by(|&a, &b| rank_order(names, a, b));
    candidates
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_n_breaks_ties_by_lower_id() {
        let names = Interner::from_names(vec!["10".into(), "9".into(), "11".into(), "2".into()]);
        let got = top_n(&names, vec![(0, 1.0), (1, 1.0), (2, 2.0), (3, 0.5)], 3);
        assert_eq!(got, vec![(2, 2.0), (1, 1.0), (0, 1.0)]);
        assert_eq!(top_n(&names, vec![(0, 1.0)], 0), vec![]);
    }
}
