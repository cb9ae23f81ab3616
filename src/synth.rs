//! Seeded synthetic workloads for benchmarks and tests: a stream of events
//! whose users and items follow Zipf distributions, with a mix of kinds and
//! increasing timestamps. The same `SynthConfig` (seed included) always
//! yields the same events, on every machine.
//!
//! Why Zipf with exponent 1.0 for both sides by default: the popularity of
//! items in catalogues, web caches and rating data sets is commonly fitted by
//! a power law with an exponent between about 0.6 and 1.2 (Breslau et al.,
//! "Web caching and Zipf-like distributions", 1999; MovieLens item counts
//! fall off at roughly that rate over the head of the catalogue), and the
//! activity of users is skewed the same way: a few heavy users, a long tail
//! of users with one or two events. Exponent 1.0 is the classic Zipf law in
//! the middle of that range. It is deliberately on the heavy side for users
//! (real user activity is often flatter), so the heaviest users and items,
//! which are the expensive cases for every strategy, are well represented.
//!
//! Rank `k` (1-based) of each distribution is the id `u{k-1}` / `i{k-1}`:
//! `u0` is the most active user and `i0` the most popular item.
//!
//! ```
//! use recwal::synth::{self, SynthConfig};
//! let config = SynthConfig { events: 1000, ..SynthConfig::movielens_like() };
//! let events: Vec<_> = synth::events(&config).collect();
//! assert_eq!(events.len(), 1000);
//! assert_eq!(events, synth::events(&config).collect::<Vec<_>>());
//! ```

use crate::event::{Event, EventKind};

/// Timestamp of the first event, in ms since the Unix epoch
/// (2023-11-14T22:13:20Z). Fixed so that workloads are repeatable, and in
/// the past so that the engine's "not too far in the future" rule holds.
pub const EPOCH_MS: i64 = 1_700_000_000_000;

/// What to generate.
#[derive(Clone, Debug, PartialEq)]
pub struct SynthConfig {
    /// Distinct user ids drawn from (`u0`..`u{users-1}`); users whose rank is
    /// never drawn do not appear. 0 yields no events.
    pub users: u32,
    /// Distinct item ids drawn from (`i0`..`i{items-1}`). 0 yields no events.
    pub items: u32,
    /// Events generated.
    pub events: u64,
    /// Zipf exponent of item popularity: P(rank k) ∝ k^-exponent. 0 is
    /// uniform; a negative or non-finite value is treated as 0.
    pub item_exponent: f64,
    /// Zipf exponent of user activity, as `item_exponent`.
    pub user_exponent: f64,
    /// Seed of the generator: the same seed gives the same events.
    pub seed: u64,
}

impl SynthConfig {
    /// The size of MovieLens 100k: 943 users, 1,682 items, 100,000 events.
    pub fn movielens_like() -> SynthConfig {
        SynthConfig {
            users: 943,
            items: 1682,
            events: 100_000,
            item_exponent: 1.0,
            user_exponent: 1.0,
            seed: 0x5EED_0001,
        }
    }

    /// A large state: 1,000,000 users, 100,000 items, 10,000,000 events.
    pub fn large() -> SynthConfig {
        SynthConfig {
            users: 1_000_000,
            items: 100_000,
            events: 10_000_000,
            item_exponent: 1.0,
            user_exponent: 1.0,
            seed: 0x5EED_0002,
        }
    }
}

impl Default for SynthConfig {
    /// `movielens_like`.
    fn default() -> SynthConfig {
        SynthConfig::movielens_like()
    }
}

/// The events `config` describes, in timestamp order. Deterministic for a
/// given config.
///
/// Kinds: 55% views, 25% clicks, 5% carts, 5% purchases and 10% ratings;
/// ratings are whole stars 1–5 drawn with MovieLens 100k's shares (6%, 11%,
/// 27%, 34%, 22%). Timestamps start at [`EPOCH_MS`] and grow by 1–5 ms per
/// event. No event carries a client event id.
pub fn events(config: &SynthConfig) -> impl Iterator<Item = Event> {
    let remaining = if config.users == 0 || config.items == 0 { 0 } else { config.events };
    Events {
        remaining,
        users: Zipf::new(u64::from(config.users), config.user_exponent),
        items: Zipf::new(u64::from(config.items), config.item_exponent),
        rng: SplitMix64::new(config.seed),
        timestamp_ms: EPOCH_MS,
    }
}

struct Events {
    remaining: u64,
    users: Zipf,
    items: Zipf,
    rng: SplitMix64,
    timestamp_ms: i64,
}

impl Iterator for Events {
    type Item = Event;

    fn next(&mut self) -> Option<Event> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let user = self.users.sample(&mut self.rng) - 1;
        let item = self.items.sample(&mut self.rng) - 1;
        let kind = match self.rng.below(100) {
            0..55 => EventKind::View,
            55..80 => EventKind::Click,
            80..85 => EventKind::Cart,
            85..90 => EventKind::Purchase,
            _ => EventKind::Rating(match self.rng.below(100) {
                0..6 => 1.0,
                6..17 => 2.0,
                17..44 => 3.0,
                44..78 => 4.0,
                _ => 5.0,
            }),
        };
        self.timestamp_ms += 1 + self.rng.below(5) as i64;
        Some(Event::new(format!("u{user}"), format!("i{item}"), kind).at(self.timestamp_ms))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let remaining = usize::try_from(self.remaining).unwrap_or(usize::MAX);
        (remaining, usize::try_from(self.remaining).ok())
    }
}

/// The catalogue of a workload's items: categories, labels and publication
/// times, deterministic from the seed.
#[derive(Clone, Debug, PartialEq)]
pub struct CatalogueConfig {
    /// Categories `c0`..`c{categories-1}`; 0 gives items no category.
    pub categories: u32,
    /// Share of items whose first category is the last one (the rare
    /// category); the others are spread evenly over the rest.
    pub rare_share: f64,
    /// Probability that an item also has a second category (never the rare
    /// one, never its first).
    pub second_category: f64,
    /// Text label `brand` drawn from `b0`..`b{brands-1}` (none when 0).
    pub brands: u32,
    /// Publication times drawn uniformly from the `published_span_ms`
    /// before [`EPOCH_MS`].
    pub published_span_ms: i64,
    /// Seed of the generator.
    pub seed: u64,
}

impl Default for CatalogueConfig {
    /// 20 categories, the rare one holding 1% of items, 30% of items in a
    /// second category, 1,000 brands, a numeric `price`, published over the
    /// year before [`EPOCH_MS`].
    fn default() -> CatalogueConfig {
        CatalogueConfig {
            categories: 20,
            rare_share: 0.01,
            second_category: 0.3,
            brands: 1000,
            published_span_ms: 365 * 86_400_000,
            seed: 0xCA7A_1061,
        }
    }
}

impl CatalogueConfig {
    /// The name of category `index`.
    pub fn category(index: u32) -> String {
        format!("c{index}")
    }

    /// The rare category's name (`None` without categories).
    pub fn rare_category(&self) -> Option<String> {
        self.categories.checked_sub(1).map(CatalogueConfig::category)
    }
}

/// The catalogue entries of `config`'s items (`i0`..`i{items-1}`, in that
/// order) as `catalogue` describes them: categories, labels `brand` (text)
/// and `price` (a number with two decimals, 1–1000), a publication time.
/// Nothing is hidden and nothing expires. Which category an item is in does
/// not depend on its popularity.
pub fn items(config: &SynthConfig, catalogue: &CatalogueConfig) -> impl Iterator<Item = crate::catalogue::Item> {
    let catalogue = catalogue.clone();
    let mut rng = SplitMix64::new(catalogue.seed);
    (0..config.items).map(move |index| {
        let mut item = crate::catalogue::Item::new(format!("i{index}"));
        let common = u64::from(catalogue.categories.saturating_sub(1));
        if catalogue.categories > 0 {
            let first = if common == 0 || rng.unit() < catalogue.rare_share {
                catalogue.categories - 1
            } else {
                rng.below(common) as u32
            };
            item.categories.push(CatalogueConfig::category(first));
            if common > 1 && rng.unit() < catalogue.second_category {
                let second = rng.below(common) as u32;
                if second != first {
                    item.categories.push(CatalogueConfig::category(second));
                }
            }
        }
        if catalogue.brands > 0 {
            item = item.label("brand", format!("b{}", rng.below(u64::from(catalogue.brands))).as_str());
        }
        item = item.label("price", (100 + rng.below(99_901)) as f64 / 100.0);
        let before = rng.below(u64::try_from(catalogue.published_span_ms).unwrap_or(0)) as i64;
        item.published(EPOCH_MS - before)
    })
}

/// SplitMix64 (Steele, Lea & Flood 2014): a small, fast, seedable generator.
/// Not for anything that needs unpredictability.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator whose sequence is fixed by `seed`.
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..bound` by multiply-shift (Lemire); 0 when `bound` is 0.
    /// The bias is below `bound / 2^64`.
    pub fn below(&mut self, bound: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(bound)) >> 64) as u64
    }

    /// Uniform in [0, 1), with 53 random bits.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// Zipf distribution over ranks `1..=n`: P(k) = k^-s / H(n, s), sampled by
/// rejection-inversion (Hörmann & Derflinger, "Rejection-inversion to
/// generate variates from monotone discrete distributions", 1996; the form
/// of Apache Commons RNG's `RejectionInversionZipfSampler`). Constant memory
/// and time per draw whatever `n` is; a draw takes fewer than 1.1 tries on
/// average, for every `n` and `s`.
#[derive(Clone, Debug)]
pub struct Zipf {
    n: f64,
    exponent: f64,
    h_integral_x1: f64,
    h_integral_n: f64,
    s: f64,
}

impl Zipf {
    /// Ranks `1..=n` (`n` = 0 is treated as 1) with exponent `exponent`
    /// (negative or non-finite: 0, the uniform distribution).
    pub fn new(n: u64, exponent: f64) -> Zipf {
        let exponent = if exponent.is_finite() && exponent > 0.0 { exponent } else { 0.0 };
        let n = n.max(1) as f64;
        let h_integral_x1 = h_integral(1.5, exponent) - 1.0;
        let h_integral_n = h_integral(n + 0.5, exponent);
        let s = 2.0 - h_integral_inverse(h_integral(2.5, exponent) - h(2.0, exponent), exponent);
        Zipf { n, exponent, h_integral_x1, h_integral_n, s }
    }

    /// A rank in `1..=n`.
    pub fn sample(&self, rng: &mut SplitMix64) -> u64 {
        loop {
            // u is uniform in (H(1.5) − 1, H(n + 0.5)]; x = H⁻¹(u) is a
            // continuous variate whose density dominates the ranks' masses.
            let u = self.h_integral_n + rng.unit() * (self.h_integral_x1 - self.h_integral_n);
            let x = h_integral_inverse(u, self.exponent);
            let k = (x + 0.5).floor().clamp(1.0, self.n);
            // The first test accepts most draws without evaluating h; the
            // second is the exact acceptance condition.
            if k - x <= self.s || u >= h_integral(k + 0.5, self.exponent) - h(k, self.exponent) {
                return k as u64;
            }
        }
    }
}

/// h(x) = x^-s.
fn h(x: f64, exponent: f64) -> f64 {
    (-exponent * x.ln()).exp()
}

/// H(x) = ∫₁ˣ t^-s dt = (x^(1−s) − 1) / (1 − s), and ln x when s = 1.
fn h_integral(x: f64, exponent: f64) -> f64 {
    let log_x = x.ln();
    expm1_over_x((1.0 - exponent) * log_x) * log_x
}

/// H⁻¹(x).
fn h_integral_inverse(x: f64, exponent: f64) -> f64 {
    // Rounding can push t below −1, where ln(1 + t) is undefined.
    let t = (x * (1.0 - exponent)).max(-1.0);
    (ln1p_over_x(t) * x).exp()
}

/// ln(1 + x) / x, continuous at 0.
fn ln1p_over_x(x: f64) -> f64 {
    if x.abs() > 1e-8 {
        x.ln_1p() / x
    } else {
        1.0 - x * (0.5 - x * (1.0 / 3.0 - 0.25 * x))
    }
}

/// (eˣ − 1) / x, continuous at 0.
fn expm1_over_x(x: f64) -> f64 {
    if x.abs() > 1e-8 {
        x.exp_m1() / x
    } else {
        1.0 + x * 0.5 * (1.0 + x * (1.0 / 3.0) * (1.0 + 0.25 * x))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_is_deterministic_with_a_rare_category() {
        let config = SynthConfig { items: 20_000, ..SynthConfig::movielens_like() };
        let catalogue = CatalogueConfig::default();
        let items: Vec<_> = items(&config, &catalogue).collect();
        assert_eq!(items.len(), 20_000);
        assert_eq!(items, self::items(&config, &catalogue).collect::<Vec<_>>());
        assert_eq!(items[7].id, "i7");
        let rare = catalogue.rare_category().unwrap_or_default();
        let in_rare = items.iter().filter(|item| item.categories.contains(&rare)).count();
        // 1% of 20,000, within ±25%.
        assert!((150..=250).contains(&in_rare), "{in_rare} items in {rare}");
        let in_c0 = items.iter().filter(|item| item.categories.iter().any(|c| c == "c0")).count();
        // (0.99 + 0.3) / 19 ≈ 6.8% of items.
        assert!((1_100..=1_600).contains(&in_c0), "{in_c0} items in c0");
        for item in &items {
            assert!(matches!(item.categories.len(), 1 | 2), "{item:?}");
            assert!(item.categories.iter().filter(|c| **c == rare).count() <= 1);
            let published = item.timestamp_ms.unwrap_or(i64::MAX);
            assert!(published <= EPOCH_MS && published > EPOCH_MS - catalogue.published_span_ms, "{item:?}");
            assert!(item.labels.contains_key("brand") && item.labels.contains_key("price"));
            assert!(crate::catalogue::item_record(item).is_ok(), "{item:?} breaks a limit");
        }
        let other = CatalogueConfig { seed: 1, ..catalogue.clone() };
        assert_ne!(items, self::items(&config, &other).collect::<Vec<_>>());
    }

    fn small() -> SynthConfig {
        SynthConfig { events: 20_000, ..SynthConfig::movielens_like() }
    }

    fn number(id: &str, prefix: char) -> u64 {
        let digits = id.strip_prefix(prefix).unwrap_or_else(|| panic!("{id:?} lacks prefix {prefix}"));
        digits.parse().unwrap_or_else(|err| panic!("{id:?}: {err}"))
    }

    /// Generalised harmonic number H(n, s) = Σₖ₌₁ⁿ k^-s.
    fn harmonic(n: u64, exponent: f64) -> f64 {
        (1..=n).map(|k| (k as f64).powf(-exponent)).sum()
    }

    #[test]
    fn same_seed_same_events_other_seed_other_events() {
        let config = small();
        let first: Vec<Event> = events(&config).collect();
        let again: Vec<Event> = events(&config).collect();
        assert_eq!(first, again);
        let other: Vec<Event> = events(&SynthConfig { seed: config.seed + 1, ..config }).collect();
        assert_eq!(other.len(), first.len());
        assert_ne!(other, first);
    }

    #[test]
    fn ids_kinds_ratings_and_timestamps_stay_in_range() {
        let config = small();
        let all: Vec<Event> = events(&config).collect();
        assert_eq!(all.len() as u64, config.events);
        assert_eq!(events(&config).size_hint(), (20_000, Some(20_000)));
        let mut previous = EPOCH_MS;
        let (mut views_clicks, mut purchases, mut ratings) = (0, 0, 0);
        for event in &all {
            assert!(number(&event.user, 'u') < u64::from(config.users), "{event:?}");
            assert!(number(&event.item, 'i') < u64::from(config.items), "{event:?}");
            let timestamp = event.timestamp_ms.unwrap_or(0);
            assert!(timestamp > previous, "timestamps must increase: {event:?} after {previous}");
            assert!(timestamp - previous <= 5);
            previous = timestamp;
            assert!(event.weight.is_none() && event.event_id.is_none());
            match event.kind {
                EventKind::View | EventKind::Click => views_clicks += 1,
                EventKind::Purchase => purchases += 1,
                EventKind::Rating(value) => {
                    assert!([1.0, 2.0, 3.0, 4.0, 5.0].contains(&value), "{event:?}");
                    ratings += 1;
                }
                EventKind::Cart => {}
                EventKind::Custom(_) => panic!("no custom kinds: {event:?}"),
            }
        }
        assert!(views_clicks > all.len() * 3 / 4, "mostly views and clicks: {views_clicks}");
        assert!(purchases > 0 && ratings > 0);
        // Every rating value occurs.
        for star in 1..=5 {
            assert!(all.iter().any(|event| event.kind == EventKind::Rating(star as f32)), "no {star}-star rating");
        }
    }

    #[test]
    fn empty_configs_yield_nothing() {
        let none = SynthConfig { users: 0, ..small() };
        assert_eq!(events(&none).count(), 0);
        let none = SynthConfig { items: 0, ..small() };
        assert_eq!(events(&none).count(), 0);
        let none = SynthConfig { events: 0, ..small() };
        assert_eq!(events(&none).count(), 0);
    }

    #[test]
    fn most_popular_item_gets_its_theoretical_share() {
        // Draws from the generator as configured: item i0 is rank 1, whose
        // share is 1 / H(n, s) (about 12.5% for MovieLens' 1,682 items at
        // s = 1). 100,000 draws give a standard error of about 0.1%.
        let config = SynthConfig { events: 100_000, ..SynthConfig::movielens_like() };
        let draws = config.events as f64;
        let expected = 1.0 / harmonic(u64::from(config.items), config.item_exponent);
        let top = events(&config).filter(|event| event.item == "i0").count() as f64 / draws;
        let sigma = (expected * (1.0 - expected) / draws).sqrt();
        assert!((top - expected).abs() < 5.0 * sigma, "item share {top:.5}, expected {expected:.5}");
        let expected = 1.0 / harmonic(u64::from(config.users), config.user_exponent);
        let top = events(&config).filter(|event| event.user == "u0").count() as f64 / draws;
        let sigma = (expected * (1.0 - expected) / draws).sqrt();
        assert!((top - expected).abs() < 5.0 * sigma, "user share {top:.5}, expected {expected:.5}");
    }

    #[test]
    fn zipf_matches_its_masses_for_several_exponents() {
        for (n, exponent) in [(10u64, 0.0), (50, 0.5), (1000, 1.0), (100_000, 1.2), (1, 1.0)] {
            let zipf = Zipf::new(n, exponent);
            let mut rng = SplitMix64::new(n ^ exponent.to_bits());
            let draws = 200_000u64;
            let mut counts = [0u64; 4];
            for _ in 0..draws {
                let rank = zipf.sample(&mut rng);
                assert!((1..=n).contains(&rank), "rank {rank} outside 1..={n}");
                if rank <= 4 {
                    counts[rank as usize - 1] += 1;
                }
            }
            let total = harmonic(n, exponent);
            for (at, &count) in counts.iter().enumerate().take(n.min(4) as usize) {
                let expected = ((at + 1) as f64).powf(-exponent) / total;
                let share = count as f64 / draws as f64;
                let sigma = (expected * (1.0 - expected) / draws as f64).sqrt().max(1e-9);
                assert!(
                    (share - expected).abs() < 5.0 * sigma,
                    "n {n} s {exponent} rank {}: share {share:.5}, expected {expected:.5}",
                    at + 1
                );
            }
        }
    }

    #[test]
    fn odd_exponents_fall_back_to_uniform() {
        for exponent in [f64::NAN, f64::INFINITY, -1.0] {
            let zipf = Zipf::new(3, exponent);
            let mut rng = SplitMix64::new(7);
            let mut counts = [0u32; 3];
            for _ in 0..30_000 {
                counts[zipf.sample(&mut rng) as usize - 1] += 1;
            }
            assert!(counts.iter().all(|&count| (9_000..11_000).contains(&count)), "{exponent}: {counts:?}");
        }
    }

    #[test]
    fn splitmix_ranges() {
        let mut rng = SplitMix64::new(1);
        assert!((0..10_000).all(|_| rng.below(7) < 7));
        assert_eq!(rng.below(0), 0);
        assert!((0..10_000).map(|_| rng.unit()).all(|x| (0.0..1.0).contains(&x)));
    }
}
