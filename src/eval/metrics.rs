//! Top-N metrics and the degree of agreement, from a model's scores alone.

use std::cmp::Ordering;
use std::fmt;

use rustc_hash::{FxHashMap, FxHashSet};

use super::Split;

/// A [`Split`] indexed for evaluation: the item universe, the test users, and
/// what each test user rated in train and in test.
#[derive(Debug, Clone)]
pub struct EvalSet {
    /// Every item of train ∪ test, in tie-break order.
    items: Vec<String>,
    item_index: FxHashMap<String, usize>,
    /// Users with at least one test rating, in the same order rule as items.
    users: Vec<String>,
    /// Per user (indexed like `users`): sorted, distinct item indices rated in train.
    train: Vec<Vec<usize>>,
    /// Per user: sorted, distinct item indices rated in test, each with its
    /// highest test rating.
    test: Vec<Vec<(usize, f32)>>,
}

impl EvalSet {
    /// Indexes `split`.
    pub fn new(split: &Split) -> EvalSet {
        let all_ratings = split.train.iter().chain(&split.test);
        let mut items: Vec<String> = all_ratings
            .map(|rating| rating.item.as_str())
            .collect::<FxHashSet<_>>()
            .into_iter()
            .map(String::from)
            .collect();
        sort_ids(&mut items);
        let item_index: FxHashMap<String, usize> =
            items.iter().enumerate().map(|(idx, item)| (item.clone(), idx)).collect();

        let mut users: Vec<String> = split
            .test
            .iter()
            .map(|rating| rating.user.as_str())
            .collect::<FxHashSet<_>>()
            .into_iter()
            .map(String::from)
            .collect();
        sort_ids(&mut users);
        let user_index: FxHashMap<&str, usize> =
            users.iter().enumerate().map(|(idx, user)| (user.as_str(), idx)).collect();

        let mut train = vec![Vec::new(); users.len()];
        for rating in &split.train {
            if let (Some(&user_idx), Some(&item_idx)) =
                (user_index.get(rating.user.as_str()), item_index.get(rating.item.as_str()))
            {
                train[user_idx].push(item_idx);
            }
        }
        for user_items in &mut train {
            user_items.sort_unstable();
            user_items.dedup();
        }

        let mut test = vec![Vec::new(); users.len()];
        for rating in &split.test {
            if let (Some(&user_idx), Some(&item_idx)) =
                (user_index.get(rating.user.as_str()), item_index.get(rating.item.as_str()))
            {
                test[user_idx].push((item_idx, rating.value));
            }
        }
        for user_items in &mut test {
            // Highest rating first within an item, then keep the first of each item.
            user_items.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(b.1.total_cmp(&a.1)));
            user_items.dedup_by_key(|(item_idx, _)| *item_idx);
        }

        EvalSet { items, item_index, users, train, test }
    }

    /// The item universe, every item of train ∪ test, in tie-break order:
    /// ascending by number when every id is a non-negative integer, else
    /// lexicographic. Score slices are indexed like this.
    pub fn items(&self) -> &[String] {
        &self.items
    }

    /// Where `item` is in [`EvalSet::items`].
    pub fn item_index(&self, item: &str) -> Option<usize> {
        self.item_index.get(item).copied()
    }

    /// Users with at least one test rating, ordered like the items.
    pub fn users(&self) -> &[String] {
        &self.users
    }

    /// The items (indices into [`EvalSet::items`], ascending, distinct) that
    /// `users()[user_idx]` rated in train. Panics if `user_idx` is out of range.
    pub fn train_items(&self, user_idx: usize) -> &[usize] {
        &self.train[user_idx]
    }

    /// The items `users()[user_idx]` rated in test, ascending and distinct,
    /// each with its highest test rating. Panics if `user_idx` is out of range.
    pub fn test_items(&self, user_idx: usize) -> &[(usize, f32)] {
        &self.test[user_idx]
    }
}

/// Orders ids numerically when all are non-negative integers, else
/// lexicographically.
fn sort_ids(ids: &mut [String]) {
    if ids.iter().all(|id| id.parse::<u64>().is_ok()) {
        ids.sort_by_cached_key(|id| (id.parse::<u64>().unwrap_or(u64::MAX), id.clone()));
    } else {
        ids.sort_unstable();
    }
}

/// The metrics of one model on one [`EvalSet`].
///
/// Top-N metrics are fractions in [0, 1], averaged over `users_topn` users;
/// DOA figures are percentages in [0, 100], averaged over `users_doa` users.
/// A metric with no user to average over is 0.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Report {
    /// Relevant items among the top k, divided by k.
    pub precision: f64,
    /// Relevant items among the top k, divided by the user's relevant items.
    pub recall: f64,
    /// Normalised discounted cumulative gain at k, with 0/1 gains.
    pub ndcg: f64,
    /// Share of users with at least one relevant item in their top k.
    pub hit_rate: f64,
    /// Degree of agreement, percent: pairs (test item, unrated item) where the
    /// test item scores at least as high; ties count as agreement.
    pub doa: f64,
    /// As `doa`, but a tie counts as half an agreement.
    pub doa_ties_half: f64,
    /// Users with at least one relevant test item (the top-N denominators).
    pub users_topn: usize,
    /// Users with at least one (test item, unrated item) pair.
    pub users_doa: usize,
}

impl Report {
    /// A header for [`Report::table_row`].
    pub const TABLE_HEADER: &'static str =
        "| model | P@k | R@k | NDCG@k | HR@k | DOA % | DOA % (ties ½) | users top-N | users DOA |";

    /// The mean of `reports`, field by field (user counts rounded to the
    /// nearest whole user), e.g. over the five MovieLens folds; all zeros for
    /// an empty slice.
    pub fn mean(reports: &[Report]) -> Report {
        if reports.is_empty() {
            return Report::default();
        }
        let n = reports.len() as f64;
        let mean = |field: fn(&Report) -> f64| reports.iter().map(field).sum::<f64>() / n;
        let mean_count = |field: fn(&Report) -> usize| {
            let total: usize = reports.iter().map(field).sum();
            (total + reports.len() / 2) / reports.len()
        };
        Report {
            precision: mean(|report| report.precision),
            recall: mean(|report| report.recall),
            ndcg: mean(|report| report.ndcg),
            hit_rate: mean(|report| report.hit_rate),
            doa: mean(|report| report.doa),
            doa_ties_half: mean(|report| report.doa_ties_half),
            users_topn: mean_count(|report| report.users_topn),
            users_doa: mean_count(|report| report.users_doa),
        }
    }

    /// One Markdown table row under [`Report::TABLE_HEADER`].
    pub fn table_row(&self, model: &str) -> String {
        format!(
            "| {model} | {:.4} | {:.4} | {:.4} | {:.4} | {:.2} | {:.2} | {} | {} |",
            self.precision,
            self.recall,
            self.ndcg,
            self.hit_rate,
            self.doa,
            self.doa_ties_half,
            self.users_topn,
            self.users_doa
        )
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "precision {:.4} recall {:.4} ndcg {:.4} hit-rate {:.4} ({} users); doa {:.2}% (ties half {:.2}%, {} users)",
            self.precision,
            self.recall,
            self.ndcg,
            self.hit_rate,
            self.users_topn,
            self.doa,
            self.doa_ties_half,
            self.users_doa
        )
    }
}

/// A score as ranked: NaN ranks below everything, like −∞.
fn ranked(score: f64) -> f64 {
    if score.is_nan() {
        f64::NEG_INFINITY
    } else {
        score
    }
}

/// Measures a model on `set`.
///
/// `score(user, scores)` is called once per user of [`EvalSet::users`], with
/// `scores` zeroed and indexed like [`EvalSet::items`]; it writes the model's
/// score for every item. NaN scores rank below every other score.
///
/// - Top-N at `k`, for each user with at least one test item rated at least
///   `relevant_min`: the candidates are all items the user did not rate in
///   train; the k best by score (ties to the lower index) are compared with
///   the relevant test items. Precision divides the hits by k, recall by the
///   number of relevant items; NDCG uses 0/1 gains and an ideal ranking of
///   min(k, relevant) hits. With `k == 0` the top-N metrics are 0.
/// - DOA (Gori & Pucci 2007), for each test user: over all pairs (j, i) of a
///   test item j and an item i the user rated neither in train nor in test,
///   the share with score(j) ≥ score(i).
pub fn evaluate(set: &EvalSet, k: usize, relevant_min: f32, mut score: impl FnMut(&str, &mut [f64])) -> Report {
    let n_items = set.items.len();
    let mut scores = vec![0.0f64; n_items];
    let mut in_train = vec![false; n_items];
    let mut in_test = vec![false; n_items];
    let mut relevant = vec![false; n_items];
    let mut candidates: Vec<usize> = Vec::with_capacity(n_items);
    let mut unrated_scores: Vec<f64> = Vec::with_capacity(n_items);

    let mut sums = Report::default();
    for (user_idx, user) in set.users.iter().enumerate() {
        let train = &set.train[user_idx];
        let test = &set.test[user_idx];
        scores.fill(0.0);
        score(user, &mut scores);
        for &item_idx in train {
            in_train[item_idx] = true;
        }
        let mut n_relevant = 0usize;
        for &(item_idx, rating) in test {
            in_test[item_idx] = true;
            if rating >= relevant_min {
                relevant[item_idx] = true;
                n_relevant += 1;
            }
        }

        if n_relevant > 0 {
            let by_rank = |a: &usize, b: &usize| {
                ranked(scores[*b]).partial_cmp(&ranked(scores[*a])).unwrap_or(Ordering::Equal).then(a.cmp(b))
            };
            candidates.clear();
            candidates.extend((0..n_items).filter(|&item_idx| !in_train[item_idx]));
            if k < candidates.len() && k > 0 {
                candidates.select_nth_unstable_by(k - 1, by_rank);
            }
            candidates.truncate(k);
            candidates.sort_unstable_by(by_rank);

            let mut n_hits = 0usize;
            let mut dcg = 0.0f64;
            for (rank, &item_idx) in candidates.iter().enumerate() {
                if relevant[item_idx] {
                    n_hits += 1;
                    dcg += discount(rank + 1);
                }
            }
            let idcg: f64 = (1..=k.min(n_relevant)).map(discount).sum();
            sums.users_topn += 1;
            if k > 0 {
                sums.precision += n_hits as f64 / k as f64;
                sums.recall += n_hits as f64 / n_relevant as f64;
                sums.ndcg += dcg / idcg;
                sums.hit_rate += if n_hits > 0 { 1.0 } else { 0.0 };
            }
        }

        unrated_scores.clear();
        unrated_scores.extend(
            (0..n_items)
                .filter(|&item_idx| !in_train[item_idx] && !in_test[item_idx])
                .map(|item_idx| ranked(scores[item_idx])),
        );
        if !unrated_scores.is_empty() {
            unrated_scores.sort_unstable_by(|a, b| a.partial_cmp(b).unwrap_or(Ordering::Equal));
            let mut n_below = 0usize;
            let mut n_tied = 0usize;
            for &(item_idx, _) in test {
                let test_score = ranked(scores[item_idx]);
                let below = unrated_scores.partition_point(|&other| other < test_score);
                let not_above = unrated_scores.partition_point(|&other| other <= test_score);
                n_below += below;
                n_tied += not_above - below;
            }
            let n_pairs = (test.len() * unrated_scores.len()) as f64;
            sums.users_doa += 1;
            sums.doa += (n_below + n_tied) as f64 / n_pairs;
            sums.doa_ties_half += (n_below as f64 + n_tied as f64 / 2.0) / n_pairs;
        }

        for &item_idx in train {
            in_train[item_idx] = false;
        }
        for &(item_idx, _) in test {
            in_test[item_idx] = false;
            relevant[item_idx] = false;
        }
    }

    let per_user = |sum: f64, n_users: usize| if n_users == 0 { 0.0 } else { sum / n_users as f64 };
    Report {
        precision: per_user(sums.precision, sums.users_topn),
        recall: per_user(sums.recall, sums.users_topn),
        ndcg: per_user(sums.ndcg, sums.users_topn),
        hit_rate: per_user(sums.hit_rate, sums.users_topn),
        doa: 100.0 * per_user(sums.doa, sums.users_doa),
        doa_ties_half: 100.0 * per_user(sums.doa_ties_half, sums.users_doa),
        users_topn: sums.users_topn,
        users_doa: sums.users_doa,
    }
}

/// The DCG discount of a 1-based rank.
fn discount(rank: usize) -> f64 {
    1.0 / ((rank + 1) as f64).log2()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::eval::Rating;
    use proptest::prelude::*;

    fn rating(user: &str, item: &str, value: f32) -> Rating {
        Rating { user: user.to_string(), item: item.to_string(), value, timestamp_ms: None }
    }

    fn close(actual: f64, expected: f64) -> bool {
        (actual - expected).abs() < 1e-9
    }

    /// Items 1..=6. User u: train {1}; test {2: 5★, 3: 2★, 4: 4★}; unrated {5, 6}.
    /// User v: train {}, test {6: 3★}, nothing relevant at 4★.
    fn example() -> EvalSet {
        EvalSet::new(&Split {
            train: vec![rating("u", "1", 3.0), rating("w", "5", 1.0)],
            test: vec![rating("u", "2", 5.0), rating("u", "3", 2.0), rating("u", "4", 4.0), rating("v", "6", 3.0)],
        })
    }

    /// u: items 1..=6 score 9, 1, 5, 3, 3, 0; v: all zero (left as given).
    fn example_scores(user: &str, scores: &mut [f64]) {
        if user == "u" {
            scores.copy_from_slice(&[9.0, 1.0, 5.0, 3.0, 3.0, 0.0]);
        }
    }

    #[test]
    fn indexes_items_and_test_users() {
        let set = example();
        assert_eq!(set.items(), ["1", "2", "3", "4", "5", "6"]);
        assert_eq!(set.users(), ["u", "v"]);
        assert_eq!(set.train_items(0), [0]);
        assert_eq!(set.test_items(0), [(1, 5.0), (2, 2.0), (3, 4.0)]);
        assert!(set.train_items(1).is_empty());
        assert_eq!(set.item_index("5"), Some(4));
        assert_eq!(set.item_index("7"), None);
    }

    #[test]
    fn ids_sort_numerically_only_when_all_are_numbers() {
        let mut ids: Vec<String> = ["10", "9", "2", "010"].map(String::from).to_vec();
        sort_ids(&mut ids);
        assert_eq!(ids, ["2", "9", "010", "10"]);
        let mut ids: Vec<String> = ["10", "9", "a"].map(String::from).to_vec();
        sort_ids(&mut ids);
        assert_eq!(ids, ["10", "9", "a"]);
    }

    #[test]
    fn top_n_by_hand() {
        // u's candidates: 2..=6 scoring 1, 5, 3, 3, 0. Top 2: item 3, then item 4
        // (tied with 5, lower id). Relevant: {2, 4}. One hit, at rank 2.
        let report = evaluate(&example(), 2, 4.0, example_scores);
        assert_eq!(report.users_topn, 1);
        assert!(close(report.precision, 0.5));
        assert!(close(report.recall, 0.5));
        let discount_2 = 1.0 / 3f64.log2();
        assert!(close(report.ndcg, discount_2 / (1.0 + discount_2)), "{}", report.ndcg);
        assert!(close(report.hit_rate, 1.0));

        // k beyond the 5 candidates: ranking 3, 4, 5, 2, 6; hits at ranks 2 and 4.
        let report = evaluate(&example(), 10, 4.0, example_scores);
        assert!(close(report.precision, 0.2));
        assert!(close(report.recall, 1.0));
        let dcg = 1.0 / 3f64.log2() + 1.0 / 5f64.log2();
        assert!(close(report.ndcg, dcg / (1.0 + 1.0 / 3f64.log2())), "{}", report.ndcg);

        // Top 1 is item 3, not relevant.
        let report = evaluate(&example(), 1, 4.0, example_scores);
        assert!(close(report.precision, 0.0));
        assert!(close(report.hit_rate, 0.0));
        assert!(close(report.ndcg, 0.0));

        // Nothing counts as relevant: no top-N users, metrics 0.
        let report = evaluate(&example(), 2, 6.0, example_scores);
        assert_eq!(report.users_topn, 0);
        assert!(close(report.precision, 0.0));
    }

    #[test]
    fn doa_by_hand() {
        // u: test scores 1, 5, 3 against unrated 3, 0. Pairs with test ≥ unrated:
        // (1,0), (5,3), (5,0), (3,3) tie, (3,0): 5 of 6, or 4.5 with ties halved.
        // v: test 0 against five unrated zeros: all ties, 100% or 50%.
        let report = evaluate(&example(), 2, 4.0, example_scores);
        assert_eq!(report.users_doa, 2);
        assert!(close(report.doa, 100.0 * (5.0 / 6.0 + 1.0) / 2.0), "{}", report.doa);
        assert!(close(report.doa_ties_half, 100.0 * (4.5 / 6.0 + 0.5) / 2.0), "{}", report.doa_ties_half);
    }

    #[test]
    fn doa_skips_users_without_pairs() {
        // u rated every item: no unrated item, no pair.
        let set = EvalSet::new(&Split { train: vec![rating("u", "1", 1.0)], test: vec![rating("u", "2", 5.0)] });
        let report = evaluate(&set, 1, 4.0, |_, _| {});
        assert_eq!(report.users_doa, 0);
        assert_eq!(report.doa, 0.0);
        // Its top-N still counts: item 2 is the only candidate.
        assert_eq!(report.users_topn, 1);
        assert!(close(report.precision, 1.0));
    }

    #[test]
    fn score_runs_once_per_test_user_on_zeroed_scores() {
        let set = example();
        let mut calls = Vec::new();
        evaluate(&set, 2, 4.0, |user, scores| {
            assert_eq!(scores.len(), 6);
            assert!(scores.iter().all(|&score| score == 0.0));
            scores.fill(7.0);
            calls.push(user.to_string());
        });
        assert_eq!(calls, ["u", "v"]);
    }

    #[test]
    fn nan_ranks_last() {
        // u: candidates 2..=6; item 3 is NaN, so the top 1 is item 2 (relevant).
        let report = evaluate(&example(), 1, 4.0, |_, scores| {
            scores.copy_from_slice(&[0.0, 2.0, f64::NAN, 1.0, 1.0, 1.0]);
        });
        assert!(close(report.precision, 1.0));
    }

    #[test]
    fn duplicate_test_ratings_keep_the_highest() {
        let set = EvalSet::new(&Split {
            train: vec![],
            test: vec![rating("u", "1", 2.0), rating("u", "1", 5.0), rating("u", "2", 1.0)],
        });
        assert_eq!(set.test_items(0), [(0, 5.0), (1, 1.0)]);
    }

    #[test]
    fn mean_averages_field_by_field() {
        let a = Report {
            precision: 0.1,
            recall: 0.2,
            ndcg: 0.3,
            hit_rate: 0.4,
            doa: 80.0,
            doa_ties_half: 70.0,
            users_topn: 10,
            users_doa: 11,
        };
        let b = Report {
            precision: 0.3,
            recall: 0.4,
            ndcg: 0.5,
            hit_rate: 0.6,
            doa: 90.0,
            doa_ties_half: 80.0,
            users_topn: 11,
            users_doa: 11,
        };
        let mean = Report::mean(&[a, b]);
        assert!(close(mean.precision, 0.2));
        assert!(close(mean.recall, 0.3));
        assert!(close(mean.ndcg, 0.4));
        assert!(close(mean.hit_rate, 0.5));
        assert!(close(mean.doa, 85.0));
        assert!(close(mean.doa_ties_half, 75.0));
        assert_eq!((mean.users_topn, mean.users_doa), (11, 11));
        assert_eq!(Report::mean(&[]), Report::default());
        assert_eq!(a.table_row("pop"), "| pop | 0.1000 | 0.2000 | 0.3000 | 0.4000 | 80.00 | 70.00 | 10 | 11 |");
    }

    /// Small ids, few score levels (ties are common), duplicates allowed.
    fn arb_case() -> impl Strategy<Value = (Split, Vec<f32>, usize)> {
        let arb_ratings = || prop::collection::vec((0u8..5, 0u8..12, 1u8..=5), 0..40);
        (arb_ratings(), arb_ratings(), prop::collection::vec(0u8..4, 5 * 12), 0usize..8).prop_map(
            |(train, test, levels, k)| {
                let to_ratings = |triples: Vec<(u8, u8, u8)>| {
                    triples
                        .into_iter()
                        .map(|(user, item, value)| rating(&user.to_string(), &item.to_string(), f32::from(value)))
                        .collect()
                };
                let split = Split { train: to_ratings(train), test: to_ratings(test) };
                (split, levels.into_iter().map(f32::from).collect(), k)
            },
        )
    }

    /// The metrics by their definitions: a full sort and every pair.
    fn brute_force(set: &EvalSet, k: usize, relevant_min: f32, table: &[f32]) -> Report {
        let mut sums = Report::default();
        for (user_idx, user) in set.users().iter().enumerate() {
            let user_num: usize = user.parse().unwrap();
            let score = |item_idx: usize| table[user_num * 12 + set.items()[item_idx].parse::<usize>().unwrap()];
            let train = set.train_items(user_idx);
            let test = set.test_items(user_idx);
            let relevant: Vec<usize> =
                test.iter().filter(|(_, rating)| *rating >= relevant_min).map(|(item_idx, _)| *item_idx).collect();
            if !relevant.is_empty() {
                let mut ranking: Vec<usize> = (0..set.items().len()).filter(|idx| !train.contains(idx)).collect();
                ranking.sort_by(|a, b| score(*b).total_cmp(&score(*a)).then(a.cmp(b)));
                ranking.truncate(k);
                let hits: Vec<usize> =
                    (0..ranking.len()).filter(|&rank| relevant.contains(&ranking[rank])).map(|rank| rank + 1).collect();
                sums.users_topn += 1;
                if k > 0 {
                    sums.precision += hits.len() as f64 / k as f64;
                    sums.recall += hits.len() as f64 / relevant.len() as f64;
                    let idcg: f64 = (1..=k.min(relevant.len())).map(discount).sum();
                    sums.ndcg += hits.iter().copied().map(discount).sum::<f64>() / idcg;
                    sums.hit_rate += f64::from(u8::from(!hits.is_empty()));
                }
            }
            let unrated: Vec<usize> = (0..set.items().len())
                .filter(|idx| !train.contains(idx) && !test.iter().any(|(item_idx, _)| item_idx == idx))
                .collect();
            if !unrated.is_empty() {
                let (mut agree, mut agree_half) = (0.0, 0.0);
                for &(test_idx, _) in test {
                    for &other_idx in &unrated {
                        if score(test_idx) > score(other_idx) {
                            agree += 1.0;
                            agree_half += 1.0;
                        } else if score(test_idx) == score(other_idx) {
                            agree += 1.0;
                            agree_half += 0.5;
                        }
                    }
                }
                let n_pairs = (test.len() * unrated.len()) as f64;
                sums.users_doa += 1;
                sums.doa += 100.0 * agree / n_pairs;
                sums.doa_ties_half += 100.0 * agree_half / n_pairs;
            }
        }
        let per_user = |sum: f64, n: usize| if n == 0 { 0.0 } else { sum / n as f64 };
        Report {
            precision: per_user(sums.precision, sums.users_topn),
            recall: per_user(sums.recall, sums.users_topn),
            ndcg: per_user(sums.ndcg, sums.users_topn),
            hit_rate: per_user(sums.hit_rate, sums.users_topn),
            doa: per_user(sums.doa, sums.users_doa),
            doa_ties_half: per_user(sums.doa_ties_half, sums.users_doa),
            users_topn: sums.users_topn,
            users_doa: sums.users_doa,
        }
    }

    proptest! {
        #[test]
        fn metrics_match_their_definitions((split, table, k) in arb_case(), relevant_min in 1u8..=5) {
            let set = EvalSet::new(&split);
            let report = evaluate(&set, k, f32::from(relevant_min), |user, scores| {
                let user: usize = user.parse().unwrap();
                for (item_idx, score) in scores.iter_mut().enumerate() {
                    *score = f64::from(table[user * 12 + set.items()[item_idx].parse::<usize>().unwrap()]);
                }
            });
            let expected = brute_force(&set, k, f32::from(relevant_min), &table);
            prop_assert_eq!(report.users_topn, expected.users_topn);
            prop_assert_eq!(report.users_doa, expected.users_doa);
            for (actual, expected) in [
                (report.precision, expected.precision),
                (report.recall, expected.recall),
                (report.ndcg, expected.ndcg),
                (report.hit_rate, expected.hit_rate),
                (report.doa, expected.doa),
                (report.doa_ties_half, expected.doa_ties_half),
            ] {
                prop_assert!((actual - expected).abs() < 1e-9, "{} vs {}: {:?} vs {:?}", actual, expected, report, expected);
            }
            for fraction in [report.precision, report.recall, report.ndcg, report.hit_rate] {
                prop_assert!((0.0..=1.0 + 1e-12).contains(&fraction));
            }
            prop_assert!((0.0..=100.0).contains(&report.doa));
            prop_assert!(report.doa_ties_half <= report.doa + 1e-9);
        }
    }
}
