//! Synthetic rating data of a controlled shape, for measuring strategies on
//! data unlike MovieLens: catalogue size, density (ratings per user),
//! popularity skew (Zipf exponent of items), the spread of users' activity
//! (items per user) and communities (users who mostly rate the items of
//! their own group, which is what makes a graph walk's middle hops matter).
//! The same [`Shape`] (seed included) always yields the same ratings, on
//! every machine.
//!
//! Ids are non-negative integers written as strings (`"0"`, `"1"`, …), so
//! every protocol of [`crate::eval::split`] applies, the hash 80/20 one
//! included.
//!
//! ```
//! use recwal::eval::{shape_ratings, Shape};
//! let shape = Shape { users: 50, items: 80, ..Shape::default() };
//! let ratings = shape_ratings(&shape);
//! assert_eq!(ratings, shape_ratings(&shape));
//! assert!(ratings.iter().all(|r| (1.0..=5.0).contains(&r.value)));
//! ```

use rustc_hash::FxHashSet;

use crate::eval::Rating;
use crate::synth::{SplitMix64, Zipf};

/// What [`shape_ratings`] generates.
#[derive(Clone, Debug, PartialEq)]
pub struct Shape {
    /// Users `0`..`users-1`; each rates at least one item.
    pub users: u32,
    /// Items `0`..`items-1` (an item nobody draws does not appear).
    pub items: u32,
    /// Mean distinct items rated per user (density = this ÷ `items`).
    pub per_user_mean: f64,
    /// Spread of items per user: a user's count is `per_user_mean` times a
    /// log-normal factor of this σ (mean 1); 0 gives every user the mean.
    pub per_user_sigma: f64,
    /// Fewest items a user rates.
    pub per_user_min: u32,
    /// Zipf exponent of item popularity (0: uniform; 1: the classic law).
    pub item_exponent: f64,
    /// Communities: user u and item i belong to group `u mod groups` and
    /// `i mod groups`; 1 means none.
    pub groups: u32,
    /// Share of a user's ratings drawn from their own group's items (the
    /// rest from the whole catalogue); irrelevant with one group.
    pub locality: f64,
    /// How much higher a user rates an item of their own group, in stars
    /// (before the noise and rounding to 1–5).
    pub group_bonus: f64,
    /// Seed of the generator.
    pub seed: u64,
}

impl Default for Shape {
    /// MovieLens 100k's size and density (943 users, 1,682 items, ~106
    /// ratings per user), popularity exponent 1, no communities.
    fn default() -> Shape {
        Shape {
            users: 943,
            items: 1682,
            per_user_mean: 106.0,
            per_user_sigma: 1.0,
            per_user_min: 20,
            item_exponent: 1.0,
            groups: 1,
            locality: 0.0,
            group_bonus: 0.0,
            seed: 0x5EED_5A9E,
        }
    }
}

/// A standard normal variate (Box–Muller).
fn normal(rng: &mut SplitMix64) -> f64 {
    let u1 = rng.unit().max(f64::MIN_POSITIVE);
    let u2 = rng.unit();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// The ratings `shape` describes, user by user, each user's in the order
/// drawn. Ratings are whole stars 1–5: 3 plus the item's quality (a fixed
/// normal draw per item, σ 0.7), plus `group_bonus` for an item of the user's
/// group, plus noise (σ 0.8), rounded and clamped. Which items a user rates
/// is drawn by popularity (Zipf over a fixed random order of the items),
/// `locality` of them restricted to the user's group.
pub fn shape_ratings(shape: &Shape) -> Vec<Rating> {
    let mut ratings = Vec::new();
    if shape.users == 0 || shape.items == 0 {
        return ratings;
    }
    let mut rng = SplitMix64::new(shape.seed);
    let items = shape.items as usize;
    let groups = shape.groups.clamp(1, shape.items) as usize;
    // Popularity rank → item: a seeded permutation, so popularity does not
    // follow the group (item i is in group i mod groups).
    let mut by_rank: Vec<u32> = (0..shape.items).collect();
    for at in (1..items).rev() {
        let other = rng.below(at as u64 + 1) as usize;
        by_rank.swap(at, other);
    }
    let mut group_by_rank: Vec<Vec<u32>> = vec![Vec::new(); groups];
    for &item in &by_rank {
        group_by_rank[item as usize % groups].push(item);
    }
    let everyone = Zipf::new(items as u64, shape.item_exponent);
    let in_group: Vec<Zipf> =
        group_by_rank.iter().map(|members| Zipf::new(members.len() as u64, shape.item_exponent)).collect();
    let quality: Vec<f64> = (0..items).map(|_| 0.7 * normal(&mut rng)).collect();
    let sigma = shape.per_user_sigma.max(0.0);
    let mut seen = FxHashSet::default();
    for user in 0..shape.users {
        let group = user as usize % groups;
        let factor = (sigma * normal(&mut rng) - sigma * sigma / 2.0).exp();
        let wanted = (shape.per_user_mean * factor).round().max(f64::from(shape.per_user_min)).max(1.0);
        let wanted = (wanted as usize).min(items / 2).max(1);
        seen.clear();
        // Draws that repeat an item are redrawn, a bounded number of times
        // (a heavy user of a small skewed catalogue may not reach `wanted`).
        let mut tries = 0usize;
        while seen.len() < wanted && tries < wanted * 50 {
            tries += 1;
            let local = groups > 1 && rng.unit() < shape.locality;
            let item = if local {
                let members = &group_by_rank[group];
                members[(in_group[group].sample(&mut rng) - 1) as usize]
            } else {
                by_rank[(everyone.sample(&mut rng) - 1) as usize]
            };
            if !seen.insert(item) {
                continue;
            }
            let bonus = if item as usize % groups == group && groups > 1 { shape.group_bonus } else { 0.0 };
            let value = (3.0 + quality[item as usize] + bonus + 0.8 * normal(&mut rng)).round().clamp(1.0, 5.0);
            ratings.push(Rating {
                user: user.to_string(),
                item: item.to_string(),
                value: value as f32,
                timestamp_ms: None,
            });
        }
    }
    ratings
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_shape_gives_the_same_ratings_and_the_seed_changes_them() {
        let shape = Shape { users: 200, items: 300, per_user_mean: 20.0, ..Shape::default() };
        let first = shape_ratings(&shape);
        assert_eq!(first, shape_ratings(&shape));
        assert_ne!(first, shape_ratings(&Shape { seed: 7, ..shape }));
    }

    #[test]
    fn density_skew_and_locality_are_what_was_asked() {
        let shape = Shape {
            users: 400,
            items: 1000,
            per_user_mean: 30.0,
            per_user_sigma: 0.0,
            per_user_min: 1,
            item_exponent: 1.0,
            groups: 4,
            locality: 0.9,
            group_bonus: 1.0,
            seed: 3,
        };
        let ratings = shape_ratings(&shape);
        // Every user rates exactly the mean (σ 0), no pair twice.
        assert_eq!(ratings.len(), 400 * 30);
        let pairs: FxHashSet<(&str, &str)> = ratings.iter().map(|r| (r.user.as_str(), r.item.as_str())).collect();
        assert_eq!(pairs.len(), ratings.len());
        // About 90% inside the user's group (plus a quarter of the rest by chance).
        let local = ratings
            .iter()
            .filter(|r| r.user.parse::<u32>().ok().map(|u| u % 4) == r.item.parse::<u32>().ok().map(|i| i % 4))
            .count();
        let share = local as f64 / ratings.len() as f64;
        assert!((0.88..0.97).contains(&share), "local share {share}");
        // Skewed: the most rated item has far more ratings than the median one.
        let mut counts = rustc_hash::FxHashMap::<&str, usize>::default();
        for rating in &ratings {
            *counts.entry(rating.item.as_str()).or_default() += 1;
        }
        let mut counts: Vec<usize> = counts.into_values().collect();
        counts.sort_unstable();
        let median = counts[counts.len() / 2];
        assert!(counts[counts.len() - 1] > 20 * median, "max {} median {median}", counts[counts.len() - 1]);
        // In-group items are rated higher on average.
        let mean = |local: bool| {
            let values: Vec<f64> = ratings
                .iter()
                .filter(|r| {
                    (r.user.parse::<u32>().ok().map(|u| u % 4) == r.item.parse::<u32>().ok().map(|i| i % 4)) == local
                })
                .map(|r| f64::from(r.value))
                .collect();
            values.iter().sum::<f64>() / values.len() as f64
        };
        assert!(mean(true) > mean(false) + 0.5);
    }

    #[test]
    fn uniform_popularity_spreads_ratings_evenly() {
        let shape = Shape {
            users: 500,
            items: 100,
            per_user_mean: 10.0,
            per_user_sigma: 0.0,
            per_user_min: 1,
            item_exponent: 0.0,
            ..Shape::default()
        };
        let ratings = shape_ratings(&shape);
        let mut counts = vec![0usize; 100];
        for rating in &ratings {
            if let Ok(item) = rating.item.parse::<usize>() {
                counts[item] += 1;
            }
        }
        // 5,000 ratings over 100 items: 50 each on average.
        assert!(counts.iter().all(|&count| (20..90).contains(&count)), "{counts:?}");
    }
}
