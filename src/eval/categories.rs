//! Quality of category-filtered recommendations: for each category, every
//! test user with at least one relevant held-out item *in that category*
//! asks `Engine::recommend` for `k` items with a one-category filter, and the
//! answer is measured against those items only. The unfiltered answer is
//! measured twice beside it: against all the user's relevant items (the
//! usual figure) and against the category's (what a caller who filtered
//! afterwards would get). Users with no relevant test item in a category are
//! skipped for it.
//!
//! Unlike `evaluate_engine` (which ranks the strategy's scores over every
//! item), this goes through `recommend` itself, so it measures what a caller
//! gets: the filter applied while candidates are gathered, seen items left
//! out, and the popularity fill when the strategy scores fewer than `k`
//! eligible items.

use rustc_hash::FxHashMap;

use super::EvalSet;
use crate::catalogue::Item;
use crate::engine::Engine;
use crate::error::EngineError;
use crate::recommend::{RecommendRequest, Strategy};

/// Top-k figures of one ranked list, or their mean over users.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TopK {
    /// Relevant items among the first k, divided by k.
    pub precision: f64,
    /// Relevant items among the first k, divided by the relevant items.
    pub recall: f64,
    /// NDCG at k with 0/1 gains; the ideal ranking has min(k, relevant) hits.
    pub ndcg: f64,
    /// 1 when at least one relevant item is among the first k.
    pub hit_rate: f64,
}

impl TopK {
    /// The figures of `ranked` (best first; only the first `k` count)
    /// against `relevant` (distinct). All zero when `k` is 0 or nothing is
    /// relevant.
    pub fn of<T: PartialEq>(ranked: &[T], relevant: &[T], k: usize) -> TopK {
        if k == 0 || relevant.is_empty() {
            return TopK::default();
        }
        let mut hits = 0usize;
        let mut dcg = 0.0;
        for (rank, item) in ranked.iter().take(k).enumerate() {
            if relevant.contains(item) {
                hits += 1;
                dcg += discount(rank + 1);
            }
        }
        let ideal: f64 = (1..=k.min(relevant.len())).map(discount).sum();
        TopK {
            precision: hits as f64 / k as f64,
            recall: hits as f64 / relevant.len() as f64,
            ndcg: dcg / ideal,
            hit_rate: if hits > 0 { 1.0 } else { 0.0 },
        }
    }

    fn add(&mut self, other: TopK) {
        self.precision += other.precision;
        self.recall += other.recall;
        self.ndcg += other.ndcg;
        self.hit_rate += other.hit_rate;
    }

    fn divided(self, count: usize) -> TopK {
        if count == 0 {
            return TopK::default();
        }
        let n = count as f64;
        TopK {
            precision: self.precision / n,
            recall: self.recall / n,
            ndcg: self.ndcg / n,
            hit_rate: self.hit_rate / n,
        }
    }
}

/// 1 / log2(rank + 1), rank 1-based.
fn discount(rank: usize) -> f64 {
    1.0 / ((rank + 1) as f64).log2()
}

/// One category's figures for one strategy (means over its users).
#[derive(Debug, Clone, PartialEq)]
pub struct CategoryReport {
    /// The category.
    pub category: String,
    /// Items of the catalogue in it.
    pub items: usize,
    /// Users measured: those with a relevant test item in the category.
    pub users: usize,
    /// Answers to the filtered request, against the category's relevant items.
    pub filtered: TopK,
    /// Answers to the unfiltered request, against the same items.
    pub unfiltered: TopK,
    /// Filtered answers with fewer than k items.
    pub short_answers: usize,
    /// Filtered answers holding an item outside the category (0 unless the
    /// filter is broken).
    pub foreign_items: usize,
}

/// One strategy's figures, unfiltered and per category.
#[derive(Debug, Clone, PartialEq)]
pub struct CategoryEvaluation {
    /// The strategy.
    pub strategy: Strategy,
    /// Unfiltered answers against all relevant test items (users with at
    /// least one).
    pub overall: TopK,
    /// Users in `overall`.
    pub overall_users: usize,
    /// Per category, in the order asked for.
    pub categories: Vec<CategoryReport>,
    /// Filtered figures pooled over every (user, category) pair measured.
    pub pooled_filtered: TopK,
    /// Unfiltered figures against the category's items, pooled the same way.
    pub pooled_unfiltered: TopK,
    /// The (user, category) pairs pooled.
    pub pairs: usize,
}

/// Categories of `items` with their number of items, most items first (ties
/// by name).
pub fn categories_by_size(items: &[Item]) -> Vec<(String, usize)> {
    let mut counts: FxHashMap<&str, usize> = FxHashMap::default();
    for item in items {
        for category in &item.categories {
            *counts.entry(category.as_str()).or_default() += 1;
        }
    }
    let mut sorted: Vec<(String, usize)> = counts.into_iter().map(|(name, n)| (name.to_string(), n)).collect();
    sorted.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    sorted
}

/// Measures `strategy` on `engine` (trained on `set`'s training ratings,
/// with `items` in its catalogue) for each of `categories`, at `k`; a test
/// item is relevant when rated at least `relevant_min`.
pub fn evaluate_engine_by_category(
    engine: &Engine,
    set: &EvalSet,
    items: &[Item],
    categories: &[String],
    strategy: Strategy,
    k: usize,
    relevant_min: f32,
) -> Result<CategoryEvaluation, EngineError> {
    super::prepare_strategy(engine, strategy)?;
    let item_categories: FxHashMap<&str, &[String]> =
        items.iter().map(|item| (item.id.as_str(), item.categories.as_slice())).collect();
    let in_category =
        |item: &str, category: &str| item_categories.get(item).is_some_and(|found| found.iter().any(|c| c == category));
    let sizes: FxHashMap<String, usize> = categories_by_size(items).into_iter().collect();
    let mut sums: Vec<(TopK, TopK, usize, usize, usize)> = vec![Default::default(); categories.len()];
    let mut overall = TopK::default();
    let mut overall_users = 0usize;
    for (user_idx, user) in set.users().iter().enumerate() {
        let relevant: Vec<&str> = set
            .test_items(user_idx)
            .iter()
            .filter(|&&(_, rating)| rating >= relevant_min)
            .map(|&(item_idx, _)| set.items()[item_idx].as_str())
            .collect();
        if relevant.is_empty() {
            continue;
        }
        let unfiltered: Vec<String> = engine
            .recommend(&RecommendRequest::new(user.as_str(), k, strategy))?
            .items
            .into_iter()
            .map(|scored| scored.item)
            .collect();
        let unfiltered: Vec<&str> = unfiltered.iter().map(String::as_str).collect();
        overall.add(TopK::of(&unfiltered, &relevant, k));
        overall_users += 1;
        for (category, sum) in categories.iter().zip(sums.iter_mut()) {
            let wanted: Vec<&str> = relevant.iter().copied().filter(|item| in_category(item, category)).collect();
            if wanted.is_empty() {
                continue;
            }
            let request = RecommendRequest::new(user.as_str(), k, strategy).in_categories([category.as_str()]);
            let answer: Vec<String> = engine.recommend(&request)?.items.into_iter().map(|scored| scored.item).collect();
            let answer: Vec<&str> = answer.iter().map(String::as_str).collect();
            sum.0.add(TopK::of(&answer, &wanted, k));
            sum.1.add(TopK::of(&unfiltered, &wanted, k));
            sum.2 += 1;
            sum.3 += usize::from(answer.len() < k);
            sum.4 += usize::from(answer.iter().any(|item| !in_category(item, category)));
        }
    }
    let mut pooled_filtered = TopK::default();
    let mut pooled_unfiltered = TopK::default();
    let mut pairs = 0usize;
    let reports = categories
        .iter()
        .zip(sums)
        .map(|(category, (filtered, unfiltered, users, short_answers, foreign_items))| {
            pooled_filtered.add(filtered);
            pooled_unfiltered.add(unfiltered);
            pairs += users;
            CategoryReport {
                category: category.clone(),
                items: sizes.get(category).copied().unwrap_or(0),
                users,
                filtered: filtered.divided(users),
                unfiltered: unfiltered.divided(users),
                short_answers,
                foreign_items,
            }
        })
        .collect();
    Ok(CategoryEvaluation {
        strategy,
        overall: overall.divided(overall_users),
        overall_users,
        categories: reports,
        pooled_filtered: pooled_filtered.divided(pairs),
        pooled_unfiltered: pooled_unfiltered.divided(pairs),
        pairs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::EngineConfig;
    use crate::eval::{train_engine, Rating, Split};

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn top_k_by_hand() {
        // Ranked [a, x, b, y], relevant {a, b, c}, k = 4:
        // hits at ranks 1 and 3: P = 2/4, R = 2/3,
        // DCG = 1 + 1/log2(4) = 1.5, IDCG = 1 + 1/log2(3) + 1/log2(4) = 2.130930,
        // NDCG = 0.703918.
        let figures = TopK::of(&["a", "x", "b", "y"], &["a", "b", "c"], 4);
        assert!(close(figures.precision, 0.5), "{figures:?}");
        assert!(close(figures.recall, 2.0 / 3.0), "{figures:?}");
        assert!((figures.ndcg - 0.703_918).abs() < 1e-6, "{figures:?}");
        assert!(close(figures.hit_rate, 1.0));
        // Only the first k count; a short list divides by k all the same.
        let figures = TopK::of(&["x", "a"], &["a"], 1);
        assert_eq!(figures, TopK::default());
        let figures = TopK::of(&["a"], &["a"], 10);
        assert!(close(figures.precision, 0.1) && close(figures.ndcg, 1.0) && close(figures.recall, 1.0));
        // Nothing relevant, or k = 0: zeros, not NaN.
        assert_eq!(TopK::of(&["a"], &[], 10), TopK::default());
        assert_eq!(TopK::of(&["a"], &["a"], 0), TopK::default());
    }

    #[test]
    fn mean_divides_by_users() {
        let mut sum = TopK::default();
        sum.add(TopK { precision: 0.2, recall: 1.0, ndcg: 0.5, hit_rate: 1.0 });
        sum.add(TopK { precision: 0.0, recall: 0.0, ndcg: 0.0, hit_rate: 0.0 });
        assert_eq!(sum.divided(2), TopK { precision: 0.1, recall: 0.5, ndcg: 0.25, hit_rate: 0.5 });
        assert_eq!(sum.divided(0), TopK::default());
    }

    fn rating(user: &str, item: &str, value: f32) -> Rating {
        Rating { user: user.to_string(), item: item.to_string(), value, timestamp_ms: None }
    }

    #[test]
    fn filtered_answers_are_measured_against_the_category() -> Result<(), Box<dyn std::error::Error>> {
        // Popularity in train: b1 4 events, b2 3, b3 2, a1 1; a2 only in the
        // catalogue. User t saw b1 and holds out a2 and b2 (both relevant)
        // and a1 (rated 2: not relevant).
        let mut train = Vec::new();
        for user in ["u1", "u2", "u3", "t"] {
            train.push(rating(user, "b1", 5.0));
        }
        for user in ["u1", "u2", "u3"] {
            train.push(rating(user, "b2", 4.0));
        }
        train.extend([rating("u1", "b3", 3.0), rating("u2", "b3", 3.0), rating("u1", "a1", 3.0)]);
        let test = vec![rating("t", "a2", 5.0), rating("t", "b2", 4.0), rating("t", "a1", 2.0)];
        let set = EvalSet::new(&Split { train: train.clone(), test });
        let dir = tempfile::tempdir()?;
        let engine = train_engine(dir.path(), EngineConfig::default(), &train)?;
        let items = [
            Item::new("a1").category("A"),
            Item::new("a2").category("A"),
            Item::new("b1").category("B"),
            Item::new("b2").category("B"),
            Item::new("b3").category("B"),
        ];
        for item in &items {
            engine.upsert_item(item)?;
        }
        let categories = vec!["A".to_string(), "B".to_string(), "C".to_string()];
        let report = evaluate_engine_by_category(&engine, &set, &items, &categories, Strategy::Popularity, 2, 4.0)?;

        // Unfiltered: [b2, b3] against {a2, b2}: one hit at rank 1.
        let ideal_two = 1.0 + 1.0 / 3f64.log2();
        assert_eq!(report.overall_users, 1);
        assert!(close(report.overall.precision, 0.5) && close(report.overall.ndcg, 1.0 / ideal_two), "{report:?}");
        // A: filtered [a1, a2] against {a2}: hit at rank 2; unfiltered none.
        let a = &report.categories[0];
        assert_eq!((a.items, a.users, a.short_answers, a.foreign_items), (2, 1, 0, 0));
        assert!(close(a.filtered.precision, 0.5) && close(a.filtered.ndcg, 1.0 / 3f64.log2()), "{a:?}");
        assert_eq!(a.unfiltered, TopK::default());
        // B: filtered [b2, b3] against {b2}: hit at rank 1, as unfiltered.
        let b = &report.categories[1];
        assert_eq!((b.items, b.users), (3, 1));
        assert!(close(b.filtered.ndcg, 1.0) && close(b.unfiltered.ndcg, 1.0), "{b:?}");
        // C: no item, no user.
        assert_eq!((report.categories[2].items, report.categories[2].users), (0, 0));
        assert_eq!(report.pairs, 2);
        assert!(close(report.pooled_filtered.precision, 0.5), "{report:?}");
        assert!(close(report.pooled_unfiltered.precision, 0.25), "{report:?}");
        Ok(())
    }

    /// EASE above `item_model.items_max` cannot be trained: every
    /// evaluation of it is that error, not the figures of all-zero scores.
    #[test]
    fn a_strategy_whose_item_model_cannot_be_trained_is_an_error_not_figures() -> Result<(), Box<dyn std::error::Error>>
    {
        let mut train = Vec::new();
        for user in 0..6u32 {
            for item in 0..8u32 {
                if (user + item) % 3 != 0 {
                    train.push(rating(&format!("u{user}"), &format!("i{item}"), 4.0));
                }
            }
        }
        let test = vec![rating("u0", "i0", 5.0), rating("u1", "i2", 5.0)];
        let set = EvalSet::new(&Split { train: train.clone(), test });
        let dir = tempfile::tempdir()?;
        let mut config = EngineConfig::default();
        config.item_model.items_max = 3;
        let engine = train_engine(dir.path(), config, &train)?;
        let items: Vec<Item> = (0..8).map(|item| Item::new(format!("i{item}")).category("A")).collect();
        let categories = vec!["A".to_string()];
        let refused = |err: &EngineError| err.to_string().contains("items_max");
        let by_category = evaluate_engine_by_category(&engine, &set, &items, &categories, Strategy::Ease, 2, 4.0);
        assert!(by_category.as_ref().is_err_and(refused), "{by_category:?}");
        let whole = crate::eval::evaluate_engine(&engine, &set, Strategy::Ease, 2, 4.0);
        assert!(whole.as_ref().is_err_and(refused), "{:?}", whole.map(|report| report.report));
        let ranked = crate::eval::evaluate_engine_ranked(&engine, &set, Strategy::Ease, 2, 4.0);
        assert!(ranked.as_ref().is_err_and(refused), "{:?}", ranked.map(|report| report.1));
        // A strategy without an item model is measured as before.
        assert!(crate::eval::evaluate_engine(&engine, &set, Strategy::Popularity, 2, 4.0).is_ok());
        Ok(())
    }
}
