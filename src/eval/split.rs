//! Evaluation protocols: which ratings train the model and which test it.
//!
//! Every protocol is deterministic, and both halves keep the input's order.

use std::fmt;

use rustc_hash::FxHashMap;

use super::{EvalError, Rating};

/// How ratings are divided into train and test.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Protocol {
    /// MovieLens 100k's five folds (`u1.base`/`u1.test` …): fold `k` (1..=5)
    /// tests rows `[(k−1)·N/5, k·N/5)` in file order and trains on the rest.
    MovieLensFold {
        /// Which fold, 1..=5.
        fold: u8,
    },
    /// Per user, a fifth of the ratings (rounded up) chosen by a hash of the
    /// user and item ids.
    ///
    /// A rating whose user and item ids are both non-negative integers
    /// (decimal, fitting a u64) gets the key
    /// `splitmix64((42 << 42) ^ (user << 21) ^ item)` (wrapping u64
    /// arithmetic); any other gets the key of its ids' UTF-8 bytes,
    /// `splitmix64(splitmix64(42 ^ fnv1a64(user)) ^ fnv1a64(item))`
    /// ([`pair_hash`]; FNV-1a 64: offset basis 0xcbf29ce484222325, prime
    /// 0x100000001b3). A user's ratings sorted by (key, item; integer items
    /// before the others, in numeric order) send the first `ceil(n/5)` to
    /// test. On MovieLens 100k this gives 79,619 train and 20,381 test
    /// ratings.
    Hash8020,
    /// Per user, the latest `ceil(n · test_fraction)` ratings by timestamp
    /// (ties in file order) are tested. Needs a timestamp on every rating.
    Temporal {
        /// The share of each user's ratings tested, in (0, 1).
        test_fraction: f64,
    },
    /// Per user with at least two ratings, the latest by timestamp (ties: the
    /// later in the file) is tested; a user with one rating only trains.
    /// Needs a timestamp on every rating.
    LeaveLastOut,
    /// Each rating is tested with probability `test_fraction`, drawn from a
    /// hash of `seed` and its row index: the same seed gives the same split.
    RandomHoldout {
        /// Picks the split; any value.
        seed: u64,
        /// The expected share of ratings tested, in (0, 1).
        test_fraction: f64,
    },
}

impl Protocol {
    /// A short name for errors and reports.
    pub fn name(&self) -> &'static str {
        match self {
            Protocol::MovieLensFold { .. } => "movielens-fold",
            Protocol::Hash8020 => "hash-80-20",
            Protocol::Temporal { .. } => "temporal",
            Protocol::LeaveLastOut => "leave-last-out",
            Protocol::RandomHoldout { .. } => "random-holdout",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Protocol::MovieLensFold { fold } => write!(f, "movielens fold {fold}"),
            Protocol::Hash8020 => write!(f, "hash 80/20"),
            Protocol::Temporal { test_fraction } => write!(f, "temporal (test fraction {test_fraction})"),
            Protocol::LeaveLastOut => write!(f, "leave-last-out"),
            Protocol::RandomHoldout { seed, test_fraction } => {
                write!(f, "random holdout (seed {seed}, test fraction {test_fraction})")
            }
        }
    }
}

/// The two halves of a split, each in input order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Split {
    /// What the model learns from.
    pub train: Vec<Rating>,
    /// What it is measured on.
    pub test: Vec<Rating>,
}

/// Divides `ratings` by `protocol`. Every rating lands in exactly one half,
/// and each half keeps the order of `ratings`.
pub fn split(ratings: &[Rating], protocol: Protocol) -> Result<Split, EvalError> {
    let in_test = match protocol {
        Protocol::MovieLensFold { fold } => movielens_fold(ratings.len(), fold, protocol)?,
        Protocol::Hash8020 => hash_80_20(ratings),
        Protocol::Temporal { test_fraction } => {
            check_fraction(test_fraction, protocol)?;
            temporal(ratings, |n| ceil_share(n, test_fraction), protocol)?
        }
        Protocol::LeaveLastOut => temporal(ratings, |n| usize::from(n >= 2), protocol)?,
        Protocol::RandomHoldout { seed, test_fraction } => {
            check_fraction(test_fraction, protocol)?;
            random_holdout(ratings.len(), seed, test_fraction)
        }
    };
    debug_assert_eq!(in_test.len(), ratings.len());
    let in_test = hold_out_pairs_whole(ratings, in_test);
    let mut result = Split::default();
    for (rating, is_test) in ratings.iter().zip(in_test) {
        if is_test {
            result.test.push(rating.clone());
        } else {
            result.train.push(rating.clone());
        }
    }
    Ok(result)
}

/// A (user, item) pair held out once is held out whole: a user who rated an
/// item again (or viewed it twice) would otherwise keep it in training too,
/// where the model learns it and never recommends it (a user's training
/// items are not candidates), so the held-out rating could only count as a
/// miss. Every protocol could divide one (its rows are chosen one by one).
fn hold_out_pairs_whole(ratings: &[Rating], mut in_test: Vec<bool>) -> Vec<bool> {
    let held: rustc_hash::FxHashSet<(&str, &str)> = ratings
        .iter()
        .zip(&in_test)
        .filter(|(_, is_test)| **is_test)
        .map(|(rating, _)| (rating.user.as_str(), rating.item.as_str()))
        .collect();
    for (rating, is_test) in ratings.iter().zip(in_test.iter_mut()) {
        if !*is_test && held.contains(&(rating.user.as_str(), rating.item.as_str())) {
            *is_test = true;
        }
    }
    in_test
}

/// SplitMix64's output function (Steele, Lea & Flood 2014): the state is
/// advanced by the golden-ratio increment, then mixed.
pub(crate) fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn split_error(protocol: Protocol, field: &'static str, rule: String) -> EvalError {
    EvalError::Split { protocol: protocol.name(), field, rule }
}

fn check_fraction(test_fraction: f64, protocol: Protocol) -> Result<(), EvalError> {
    if test_fraction > 0.0 && test_fraction < 1.0 {
        Ok(())
    } else {
        Err(split_error(protocol, "test_fraction", format!("must be in (0, 1), got {test_fraction}")))
    }
}

fn movielens_fold(n_ratings: usize, fold: u8, protocol: Protocol) -> Result<Vec<bool>, EvalError> {
    if !(1..=5).contains(&fold) {
        return Err(split_error(protocol, "fold", format!("must be in 1..=5, got {fold}")));
    }
    let fold = usize::from(fold);
    // u128 so that (k · N) cannot overflow for any slice length.
    let boundary = |k: usize| (k as u128 * n_ratings as u128 / 5) as usize;
    let (start, end) = (boundary(fold - 1), boundary(fold));
    Ok((0..n_ratings).map(|row| (start..end).contains(&row)).collect())
}

fn hash_80_20(ratings: &[Rating]) -> Vec<bool> {
    // Per user: (key, integer item or u64::MAX, item, row).
    let mut by_user: FxHashMap<&str, Vec<(u64, u64, &str, usize)>> = FxHashMap::default();
    for (row, rating) in ratings.iter().enumerate() {
        let (user, item) = (rating.user.as_str(), rating.item.as_str());
        let (key, item_number) = match (user.parse::<u64>(), item.parse::<u64>()) {
            (Ok(user), Ok(item)) if is_decimal(&rating.user) && is_decimal(&rating.item) => {
                (splitmix64((42u64 << 42) ^ (user << 21) ^ item), item)
            }
            _ => (pair_hash(user, item), u64::MAX),
        };
        by_user.entry(user).or_default().push((key, item_number, item, row));
    }
    let mut in_test = vec![false; ratings.len()];
    for user_ratings in by_user.values_mut() {
        user_ratings.sort_unstable();
        let n_test = user_ratings.len().div_ceil(5);
        for &(_, _, _, row) in &user_ratings[..n_test] {
            in_test[row] = true;
        }
    }
    in_test
}

/// Only ASCII digits (`u64::from_str` also takes a leading `+`).
fn is_decimal(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit())
}

/// FNV-1a, 64 bits, of `bytes`.
pub(crate) fn fnv1a64(bytes: &[u8]) -> u64 {
    fnv1a64_continue(0xcbf2_9ce4_8422_2325, bytes)
}

/// FNV-1a-64 of the bytes hashed into `hash` followed by `bytes`.
fn fnv1a64_continue(hash: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(hash, |hash, &byte| (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3))
}

/// The hash 80/20 key of a (user, item) pair of any ids:
/// `splitmix64(splitmix64(42 ^ fnv1a64(user)) ^ fnv1a64(item))` over the ids'
/// UTF-8 bytes.
pub fn pair_hash(user: &str, item: &str) -> u64 {
    splitmix64(splitmix64(42 ^ fnv1a64(user.as_bytes())) ^ fnv1a64(item.as_bytes()))
}

/// The validation carve of a training part, used wherever hyper-parameters
/// or a ranker are fitted without the test split (docs/EVALUATION.md): per
/// user, the first ⌈n/10⌉ of their ratings ordered by (key, item), key =
/// splitmix64(FNV-1a-64(user ‖ 0x00 ‖ item)), go to `test` (validation), the
/// rest to `train` (fit); both keep the input's order.
pub fn validation_split(train: &[Rating]) -> Split {
    let mut by_user = by_validation_key(train);
    let mut in_validation = vec![false; train.len()];
    for ratings in by_user.values_mut() {
        for &(_, _, at) in ratings.iter().take(ratings.len().div_ceil(10)) {
            in_validation[at] = true;
        }
    }
    divide(train, &in_validation)
}

/// `folds` carves of a training part that together hold out each rating
/// once: per user, with the ratings in the order of `validation_split`, the
/// one at position p is held out in fold p mod `folds` (a user with fewer
/// ratings than folds is held out in the first ones only). Fold f's `test`
/// is what it holds out, its `train` the rest; both keep the input's order.
pub fn validation_folds(train: &[Rating], folds: usize) -> Vec<Split> {
    let folds = folds.max(1);
    let by_user = by_validation_key(train);
    let mut fold_of = vec![0usize; train.len()];
    for ratings in by_user.values() {
        for (position, &(_, _, at)) in ratings.iter().enumerate() {
            fold_of[at] = position % folds;
        }
    }
    (0..folds)
        .map(|fold| {
            let held_out: Vec<bool> = fold_of.iter().map(|&of| of == fold).collect();
            divide(train, &held_out)
        })
        .collect()
}

/// Per user, (key, item, index) sorted: the validation order.
fn by_validation_key(train: &[Rating]) -> FxHashMap<&str, Vec<(u64, &str, usize)>> {
    let mut by_user: FxHashMap<&str, Vec<(u64, &str, usize)>> = FxHashMap::default();
    for (at, rating) in train.iter().enumerate() {
        by_user.entry(&rating.user).or_default().push((validation_key(&rating.user, &rating.item), &rating.item, at));
    }
    for ratings in by_user.values_mut() {
        ratings.sort_unstable();
    }
    by_user
}

/// `ratings` held out where `held_out` says (into `test`), the rest into
/// `train`, in the input's order.
fn divide(ratings: &[Rating], held_out: &[bool]) -> Split {
    let mut split = Split::default();
    for (rating, &out) in ratings.iter().zip(held_out) {
        if out {
            split.test.push(rating.clone());
        } else {
            split.train.push(rating.clone());
        }
    }
    split
}

/// splitmix64(FNV-1a-64(user ‖ 0x00 ‖ item)): a training rating's key in
/// the validation carve.
fn validation_key(user: &str, item: &str) -> u64 {
    splitmix64(fnv1a64_continue(fnv1a64_continue(fnv1a64(user.as_bytes()), &[0]), item.as_bytes()))
}

/// Per user, the last `n_test(n)` of the user's `n` ratings by (timestamp,
/// row) are tested.
fn temporal(ratings: &[Rating], n_test: impl Fn(usize) -> usize, protocol: Protocol) -> Result<Vec<bool>, EvalError> {
    // Per user: (timestamp, row).
    let mut by_user: FxHashMap<&str, Vec<(i64, usize)>> = FxHashMap::default();
    for (row, rating) in ratings.iter().enumerate() {
        let timestamp_ms = rating.timestamp_ms.ok_or_else(|| {
            split_error(
                protocol,
                "timestamp",
                format!(
                    "rating {} (user {:?}, item {:?}) has none, and the protocol orders by time",
                    row + 1,
                    rating.user,
                    rating.item
                ),
            )
        })?;
        by_user.entry(rating.user.as_str()).or_default().push((timestamp_ms, row));
    }
    let mut in_test = vec![false; ratings.len()];
    for user_ratings in by_user.values_mut() {
        user_ratings.sort_unstable();
        let n_test = n_test(user_ratings.len()).min(user_ratings.len());
        for &(_, row) in &user_ratings[user_ratings.len() - n_test..] {
            in_test[row] = true;
        }
    }
    Ok(in_test)
}

/// `ceil(n · fraction)`, clamped to `n`. The product is nudged down by a
/// relative 1e-9 so that 0.1 · 30 (3.0000000000000004 in binary) gives 3.
fn ceil_share(n: usize, fraction: f64) -> usize {
    let share = n as f64 * fraction;
    let share = (share - share * 1e-9).ceil();
    (share as usize).min(n)
}

fn random_holdout(n_ratings: usize, seed: u64, test_fraction: f64) -> Vec<bool> {
    let seed_mixed = splitmix64(seed);
    (0..n_ratings)
        .map(|row| {
            let draw = splitmix64(seed_mixed ^ splitmix64(row as u64));
            // The top 53 bits as a uniform double in [0, 1).
            let unit = (draw >> 11) as f64 / (1u64 << 53) as f64;
            unit < test_fraction
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Ratings whose `value` is their row index, so tests can trace rows.
    fn rows(pairs: &[(&str, &str, Option<i64>)]) -> Vec<Rating> {
        pairs
            .iter()
            .enumerate()
            .map(|(row, (user, item, timestamp_ms))| Rating {
                user: user.to_string(),
                item: item.to_string(),
                value: row as f32,
                timestamp_ms: *timestamp_ms,
            })
            .collect()
    }

    fn row_ids(ratings: &[Rating]) -> Vec<usize> {
        ratings.iter().map(|rating| rating.value as usize).collect()
    }

    fn numbered(n: usize) -> Vec<Rating> {
        (0..n)
            .map(|row| Rating {
                user: (row % 7).to_string(),
                item: row.to_string(),
                value: row as f32,
                timestamp_ms: Some(row as i64),
            })
            .collect()
    }

    #[test]
    fn splitmix64_matches_reference_outputs() {
        // The first outputs of the SplitMix64 generator seeded with 0: the
        // generator's state after n steps is n · 0x9E3779B97F4A7C15.
        assert_eq!(splitmix64(0), 0xE220_A839_7B1D_CDAF);
        assert_eq!(splitmix64(0x9E37_79B9_7F4A_7C15), 0x6E78_9E6A_A1B9_65F4);
        assert_eq!(splitmix64(0x9E37_79B9_7F4A_7C15u64.wrapping_mul(2)), 0x06C4_5D18_8009_454F);
    }

    #[test]
    fn movielens_folds_follow_file_order() {
        let ratings = numbered(100_000);
        for fold in 1..=5u8 {
            let result = split(&ratings, Protocol::MovieLensFold { fold }).unwrap();
            let start = (usize::from(fold) - 1) * 20_000;
            assert_eq!(row_ids(&result.test), (start..start + 20_000).collect::<Vec<_>>());
            assert_eq!(result.train.len(), 80_000);
            assert_eq!(result.train.first().unwrap().value as usize, if fold == 1 { 20_000 } else { 0 });
        }
        // 7 rows: boundaries 0, 1, 2, 4, 5, 7 (k · 7 / 5 rounded down).
        let ratings = numbered(7);
        let tests: Vec<Vec<usize>> =
            (1..=5u8).map(|fold| row_ids(&split(&ratings, Protocol::MovieLensFold { fold }).unwrap().test)).collect();
        assert_eq!(tests, vec![vec![0], vec![1], vec![2, 3], vec![4], vec![5, 6]]);
    }

    #[test]
    fn movielens_fold_out_of_range() {
        for fold in [0u8, 6] {
            let message = split(&numbered(10), Protocol::MovieLensFold { fold }).unwrap_err().to_string();
            assert_eq!(message, format!("movielens-fold split: field `fold`: must be in 1..=5, got {fold}"));
        }
    }

    #[test]
    fn hash_split_tests_a_fifth_per_user_rounded_up() {
        // User 1: 1 rating → 1 test; user 2: 5 → 1; user 3: 6 → 2; user 4: 11 → 3.
        let mut pairs = Vec::new();
        for (user, n) in [("1", 1), ("2", 5), ("3", 6), ("4", 11)] {
            for item in 0..n {
                pairs.push((user, item, None));
            }
        }
        let items: Vec<String> = pairs.iter().map(|(_, item, _)| item.to_string()).collect();
        let pairs: Vec<(&str, &str, Option<i64>)> =
            pairs.iter().zip(&items).map(|((user, _, ts), item)| (*user, item.as_str(), *ts)).collect();
        let ratings = rows(&pairs);
        let result = split(&ratings, Protocol::Hash8020).unwrap();
        for (user, n_test) in [("1", 1), ("2", 1), ("3", 2), ("4", 3)] {
            assert_eq!(result.test.iter().filter(|rating| rating.user == user).count(), n_test, "user {user}");
        }
        assert_eq!(result.train.len() + result.test.len(), ratings.len());
        // The tested ratings are those with the smallest keys.
        for user in ["3", "4"] {
            let key = |rating: &Rating| {
                let user: u64 = rating.user.parse().unwrap();
                let item: u64 = rating.item.parse().unwrap();
                (splitmix64((42u64 << 42) ^ (user << 21) ^ item), item)
            };
            let max_test = result.test.iter().filter(|rating| rating.user == user).map(key).max().unwrap();
            let min_train = result.train.iter().filter(|rating| rating.user == user).map(key).min().unwrap();
            assert!(max_test < min_train, "user {user}");
        }
    }

    #[test]
    fn hash_split_takes_any_id_by_its_bytes() {
        // Users with string ids, and one with integer ids beside them.
        let mut owned = Vec::new();
        for (user, n) in [("u_1", 6), ("alice", 11), ("7", 5), ("-1", 3)] {
            for item in 0..n {
                let item = if user == "7" { item.to_string() } else { format!("item {item}") };
                owned.push((user.to_string(), item));
            }
        }
        let pairs: Vec<(&str, &str, Option<i64>)> =
            owned.iter().map(|(user, item)| (user.as_str(), item.as_str(), None)).collect();
        let ratings = rows(&pairs);
        let result = split(&ratings, Protocol::Hash8020).unwrap();
        for (user, n_test) in [("u_1", 2), ("alice", 3), ("7", 1), ("-1", 1)] {
            assert_eq!(result.test.iter().filter(|rating| rating.user == user).count(), n_test, "user {user}");
        }
        // The tested ratings are those with the smallest byte keys, as documented.
        let key = |rating: &Rating| {
            let fnv = |text: &str| {
                text.bytes().fold(0xcbf29ce484222325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100000001b3))
            };
            splitmix64(splitmix64(42 ^ fnv(&rating.user)) ^ fnv(&rating.item))
        };
        for user in ["u_1", "alice", "-1"] {
            let max_test = result.test.iter().filter(|rating| rating.user == user).map(key).max().unwrap();
            let min_train = result.train.iter().filter(|rating| rating.user == user).map(key).min().unwrap();
            assert!(max_test < min_train, "user {user}");
        }
        // FNV-1a 64's published test vectors.
        assert_eq!(fnv1a64(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a64(b"a"), 0xaf63dc4c8601ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x85944171f73967e8);
        // Row order does not change which ratings are tested.
        let mut reversed = ratings.clone();
        reversed.reverse();
        let again = split(&reversed, Protocol::Hash8020).unwrap();
        let mut tested: Vec<usize> = row_ids(&result.test);
        let mut tested_again: Vec<usize> = row_ids(&again.test);
        tested.sort_unstable();
        tested_again.sort_unstable();
        assert_eq!(tested, tested_again);
    }

    #[test]
    fn leave_last_out_tests_each_users_latest_rating() {
        // a: latest is row 0; b: a tie at 7 goes to the later row (6); c has
        // one rating only and trains.
        let ratings = rows(&[
            ("a", "1", Some(50)),
            ("a", "2", Some(10)),
            ("b", "1", Some(7)),
            ("a", "3", Some(40)),
            ("c", "4", Some(20)),
            ("b", "5", Some(3)),
            ("b", "2", Some(7)),
            ("b", "3", Some(1)),
        ]);
        let result = split(&ratings, Protocol::LeaveLastOut).unwrap();
        assert_eq!(row_ids(&result.test), vec![0, 6]);
        assert_eq!(row_ids(&result.train), vec![1, 2, 3, 4, 5, 7]);
        let untimed = rows(&[("a", "1", Some(1)), ("a", "2", None)]);
        assert_eq!(
            split(&untimed, Protocol::LeaveLastOut).unwrap_err().to_string(),
            "leave-last-out split: field `timestamp`: rating 2 (user \"a\", item \"2\") has none, and the protocol orders by time"
        );
    }

    #[test]
    fn a_pair_held_out_once_is_held_out_whole() {
        // a rated 1, then 2, then 1 again: leave-last-out holds out the
        // second rating of 1, and the first goes with it (it would leak the
        // held-out item into training).
        let ratings = rows(&[("a", "1", Some(1)), ("a", "2", Some(2)), ("a", "1", Some(3)), ("b", "1", Some(1))]);
        let result = split(&ratings, Protocol::LeaveLastOut).unwrap();
        assert_eq!(row_ids(&result.test), vec![0, 2]);
        assert_eq!(row_ids(&result.train), vec![1, 3]);
        // Every rating still lands in exactly one half, under every protocol.
        for protocol in [
            Protocol::Hash8020,
            Protocol::LeaveLastOut,
            Protocol::Temporal { test_fraction: 0.5 },
            Protocol::RandomHoldout { seed: 3, test_fraction: 0.5 },
        ] {
            let result = split(&ratings, protocol).unwrap();
            assert_eq!(result.train.len() + result.test.len(), ratings.len(), "{protocol:?}");
            for rating in &result.test {
                assert!(
                    !result.train.iter().any(|kept| kept.user == rating.user && kept.item == rating.item),
                    "{protocol:?}: {rating:?} on both sides"
                );
            }
        }
    }

    #[test]
    fn temporal_tests_the_latest_ratings_per_user() {
        // User a: 5 ratings out of time order, fraction 0.4 → the 2 latest.
        // User b: 3 ratings, two at the same time → ceil(1.2) = 2 latest; the tie
        // goes by file order, so row 6 (later in the file) is the later one.
        let ratings = rows(&[
            ("a", "1", Some(50)),
            ("a", "2", Some(10)),
            ("b", "1", Some(7)),
            ("a", "3", Some(40)),
            ("a", "4", Some(20)),
            ("a", "5", Some(30)),
            ("b", "2", Some(7)),
            ("b", "3", Some(1)),
        ]);
        let result = split(&ratings, Protocol::Temporal { test_fraction: 0.4 }).unwrap();
        assert_eq!(row_ids(&result.test), vec![0, 2, 3, 6]);
        assert_eq!(row_ids(&result.train), vec![1, 4, 5, 7]);
        // ceil(n · f) with a product just above an integer in binary: 30 · 0.1.
        let ratings = numbered(30 * 7);
        let result = split(&ratings, Protocol::Temporal { test_fraction: 0.1 }).unwrap();
        assert_eq!(result.test.len(), 3 * 7);
    }

    #[test]
    fn temporal_needs_timestamps_and_a_fraction() {
        let ratings = rows(&[("a", "1", Some(1)), ("a", "2", None)]);
        assert_eq!(
            split(&ratings, Protocol::Temporal { test_fraction: 0.2 }).unwrap_err().to_string(),
            "temporal split: field `timestamp`: rating 2 (user \"a\", item \"2\") has none, and the protocol orders by time"
        );
        for test_fraction in [0.0, 1.0, -0.5, f64::NAN] {
            let err = split(&ratings, Protocol::Temporal { test_fraction }).unwrap_err();
            assert!(matches!(err, EvalError::Split { field: "test_fraction", .. }), "{err}");
        }
    }

    #[test]
    fn random_holdout_is_deterministic_per_seed() {
        let ratings = numbered(10_000);
        let first = split(&ratings, Protocol::RandomHoldout { seed: 7, test_fraction: 0.2 }).unwrap();
        let again = split(&ratings, Protocol::RandomHoldout { seed: 7, test_fraction: 0.2 }).unwrap();
        let other = split(&ratings, Protocol::RandomHoldout { seed: 8, test_fraction: 0.2 }).unwrap();
        assert_eq!(first, again);
        assert_ne!(row_ids(&first.test), row_ids(&other.test));
        // 2,000 expected, standard deviation 40.
        assert!((1_800..2_200).contains(&first.test.len()), "{}", first.test.len());
        assert!((1_800..2_200).contains(&other.test.len()), "{}", other.test.len());
        let err = split(&ratings, Protocol::RandomHoldout { seed: 7, test_fraction: 1.5 }).unwrap_err();
        assert_eq!(err.to_string(), "random-holdout split: field `test_fraction`: must be in (0, 1), got 1.5");
    }

    fn arb_ratings() -> impl Strategy<Value = Vec<Rating>> {
        prop::collection::vec((0u64..6, 0u64..20, 0i64..5), 0..120).prop_map(|triples| {
            triples
                .into_iter()
                .enumerate()
                .map(|(row, (user, item, timestamp))| Rating {
                    user: user.to_string(),
                    item: item.to_string(),
                    value: row as f32,
                    timestamp_ms: Some(timestamp),
                })
                .collect()
        })
    }

    fn arb_protocol() -> impl Strategy<Value = Protocol> {
        prop_oneof![
            (1u8..=5).prop_map(|fold| Protocol::MovieLensFold { fold }),
            Just(Protocol::Hash8020),
            (0.01f64..0.99).prop_map(|test_fraction| Protocol::Temporal { test_fraction }),
            (any::<u64>(), 0.01f64..0.99)
                .prop_map(|(seed, test_fraction)| Protocol::RandomHoldout { seed, test_fraction }),
        ]
    }

    proptest! {
        #[test]
        fn split_partitions_the_input_in_order(ratings in arb_ratings(), protocol in arb_protocol()) {
            let result = split(&ratings, protocol).unwrap();
            let train = row_ids(&result.train);
            let test = row_ids(&result.test);
            prop_assert!(train.windows(2).all(|pair| pair[0] < pair[1]));
            prop_assert!(test.windows(2).all(|pair| pair[0] < pair[1]));
            let mut all: Vec<usize> = train.iter().chain(&test).copied().collect();
            all.sort_unstable();
            prop_assert_eq!(all, (0..ratings.len()).collect::<Vec<_>>());
            for rating in result.train.iter().chain(&result.test) {
                prop_assert_eq!(rating, &ratings[rating.value as usize]);
            }
        }

        #[test]
        fn per_user_protocols_test_a_share_of_each_user(ratings in arb_ratings(), test_fraction in 0.01f64..0.99) {
            // Distinct pairs: a repeated pair is held out whole
            // (`a_pair_held_out_once_is_held_out_whole`), beyond the share.
            let mut seen = std::collections::HashSet::new();
            let ratings: Vec<Rating> =
                ratings.into_iter().filter(|rating| seen.insert((rating.user.clone(), rating.item.clone()))).collect();
            for (protocol, share) in [
                (Protocol::Hash8020, 0.2),
                (Protocol::Temporal { test_fraction }, test_fraction),
            ] {
                let result = split(&ratings, protocol).unwrap();
                for user in 0..6 {
                    let user = user.to_string();
                    let n = ratings.iter().filter(|rating| rating.user == user).count();
                    let n_test = result.test.iter().filter(|rating| rating.user == user).count();
                    prop_assert_eq!(n_test, ceil_share(n, share), "{} user {}", protocol, user);
                }
            }
        }
    }

    proptest! {
        /// Every rating is held out by exactly one fold, each fold's parts
        /// partition the input in its order, a user's held-out counts differ
        /// by at most one between folds, and `validation_split` holds out
        /// ⌈n/10⌉ per user.
        #[test]
        fn folds_hold_out_each_rating_once(
            pairs in proptest::collection::vec((0u8..6, 0u16..40), 1..120),
            folds in 1usize..12,
        ) {
            let mut seen = std::collections::HashSet::new();
            let ratings: Vec<Rating> = pairs
                .into_iter()
                .filter(|pair| seen.insert(*pair))
                .enumerate()
                .map(|(row, (user, item))| Rating {
                    user: format!("u{user}"),
                    item: format!("i{item}"),
                    value: row as f32,
                    timestamp_ms: None,
                })
                .collect();
            let carved = validation_folds(&ratings, folds);
            prop_assert_eq!(carved.len(), folds);
            let mut held = vec![0u32; ratings.len()];
            for fold in &carved {
                prop_assert_eq!(fold.train.len() + fold.test.len(), ratings.len());
                for part in [&fold.train, &fold.test] {
                    prop_assert!(part.windows(2).all(|pair| pair[0].value < pair[1].value), "input order kept");
                }
                for rating in &fold.test {
                    held[rating.value as usize] += 1;
                }
            }
            prop_assert!(held.iter().all(|&count| count == 1));
            let mut per_user: FxHashMap<&str, Vec<usize>> = FxHashMap::default();
            for (at, fold) in carved.iter().enumerate() {
                for rating in &fold.test {
                    per_user.entry(rating.user.as_str()).or_insert_with(|| vec![0; folds])[at] += 1;
                }
            }
            for counts in per_user.values() {
                let (low, high) = (counts.iter().min().copied().unwrap_or(0), counts.iter().max().copied().unwrap_or(0));
                prop_assert!(high - low <= 1, "{:?}", counts);
            }
            let validation = validation_split(&ratings);
            let mut users: FxHashMap<&str, (usize, usize)> = FxHashMap::default();
            for rating in &ratings {
                users.entry(rating.user.as_str()).or_default().0 += 1;
            }
            for rating in &validation.test {
                users.entry(rating.user.as_str()).or_default().1 += 1;
            }
            for (total, out) in users.values() {
                prop_assert_eq!(*out, total.div_ceil(10));
            }
        }
    }
}
