//! The scoring strategies. Each reads a `State` and fills a dense score
//! vector indexed by item; `recommend` turns scores into answers.

pub(crate) mod itemrank;
pub(crate) mod popularity;
pub(crate) mod usercf;

use std::cmp::Ordering;

use crate::ids::{id_order, Dense, Interner};

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

/// A small, fast, seedable generator (SplitMix64) for the random walks;
/// answers must be repeatable, so no global randomness is used.
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..bound` (`bound` > 0), by multiply-shift.
    pub fn below(&mut self, bound: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(bound)) >> 64) as u64
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
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

    #[test]
    fn below_stays_in_range() {
        let mut rng = SplitMix64::new(1);
        assert!((0..10_000).all(|_| rng.below(7) < 7));
        assert!((0..10_000).map(|_| rng.unit()).all(|x| (0.0..1.0).contains(&x)));
    }
}
