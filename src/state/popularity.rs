//! Popularity: per item its event count and its popularity key, the items in
//! popularity order, and the clock decayed scores are reported at.

use std::cmp::Reverse;
use std::collections::BTreeSet;

use crate::ids::Dense;

/// An `f64` with a total order, for the popularity index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct OrderedKey(u64);

impl OrderedKey {
    pub fn new(value: f64) -> OrderedKey {
        let bits = value.to_bits();
        // Flip negatives entirely and positives' sign bit: the unsigned order
        // of the result is the numeric order (−∞ lowest).
        OrderedKey(if bits >> 63 == 1 { !bits } else { bits | (1 << 63) })
    }
}

/// log₂(2ᵃ + 2ᵇ) without overflow.
pub(super) fn log2_add(a: f64, b: f64) -> f64 {
    let (high, low) = if a >= b { (a, b) } else { (b, a) };
    if low == f64::NEG_INFINITY {
        return high;
    }
    high + (1.0 + (low - high).exp2()).log2()
}

#[derive(Default)]
pub(super) struct Popularity {
    /// Per item, events seen.
    pub(super) item_events: Vec<u64>,
    /// Per item, the popularity key: the event count, or with a half-life
    /// log₂ Σ 2^(t/half-life) over its events. Ordering by this key is the
    /// decayed order at any time (every item decays at the same rate). Saved
    /// in snapshots, like the norms, for bit-exact restarts.
    pub(super) item_popularity: Vec<f64>,
    /// Items ordered by popularity key, most popular first. Not maintained
    /// during a replay (`rebuild_order` at its end).
    pub(super) popular: BTreeSet<(Reverse<OrderedKey>, Dense)>,
    /// Per category id, its items in the same order: a read filtered by
    /// category walks these instead of skipping the other items of
    /// `popular`. Maintained and rebuilt with `popular`.
    pub(super) by_category: Vec<BTreeSet<(Reverse<OrderedKey>, Dense)>>,
    /// Popularity half-life in ms (`None`: plain counts). Fixed per data
    /// directory.
    pub(super) half_life_ms: Option<f64>,
    /// Latest event timestamp applied: decayed scores are reported as of it,
    /// so answers do not depend on the wall clock.
    pub(super) latest_ms: i64,
}

impl Popularity {
    pub(super) fn new(half_life_ms: Option<f64>) -> Popularity {
        Popularity { half_life_ms, ..Popularity::default() }
    }

    /// A new item, with no events; `ordered`: it joins the order now.
    pub(super) fn push_item(&mut self, item: Dense, ordered: bool) {
        debug_assert_eq!(item as usize, self.item_popularity.len());
        let key = if self.half_life_ms.is_some() { f64::NEG_INFINITY } else { 0.0 };
        self.item_popularity.push(key);
        self.item_events.push(0);
        if ordered {
            self.popular.insert((Reverse(OrderedKey::new(key)), item));
        }
    }

    #[inline]
    pub(super) fn key(&self, item: Dense) -> f64 {
        self.item_popularity[item as usize]
    }

    /// One event of `item` at `timestamp_ms`: the key and the count follow,
    /// not the order (the caller moves the item once per record,
    /// `reorder`). Returns the event's mass (`t / half-life`) with a
    /// half-life.
    #[inline]
    pub(super) fn add_event(&mut self, item: Dense, timestamp_ms: i64) -> Option<f64> {
        self.latest_ms = self.latest_ms.max(timestamp_ms);
        let key = &mut self.item_popularity[item as usize];
        let mass = self.half_life_ms.map(|half_life| timestamp_ms as f64 / half_life);
        *key = match mass {
            Some(mass) => log2_add(*key, mass),
            None => *key + 1.0,
        };
        self.item_events[item as usize] += 1;
        mass
    }

    /// Moves `item`, of `categories`, in the orders from its key `before`
    /// to its current key.
    pub(super) fn reorder(&mut self, item: Dense, before: f64, categories: &[u32]) {
        let (old, new) = ((Reverse(OrderedKey::new(before)), item), (Reverse(OrderedKey::new(self.key(item))), item));
        let removed = self.popular.remove(&old);
        debug_assert!(removed, "item {item} was not in the order under its previous key");
        self.popular.insert(new);
        for &category in categories {
            if let Some(order) = self.by_category.get_mut(category as usize) {
                order.remove(&old);
                order.insert(new);
            }
        }
    }

    /// `item`'s categories changed from `old` to `new` (both sorted): it
    /// leaves and joins the per-category orders.
    pub(super) fn recategorise(&mut self, item: Dense, old: &[u32], new: &[u32]) {
        let entry = (Reverse(OrderedKey::new(self.key(item))), item);
        for category in old.iter().filter(|category| new.binary_search(category).is_err()) {
            if let Some(order) = self.by_category.get_mut(*category as usize) {
                order.remove(&entry);
            }
        }
        for &category in new.iter().filter(|category| old.binary_search(category).is_err()) {
            if self.by_category.len() <= category as usize {
                self.by_category.resize_with(category as usize + 1, BTreeSet::new);
            }
            self.by_category[category as usize].insert(entry);
        }
    }

    /// A user of `item` with `events` of its events was forgotten: the count
    /// drops and the key becomes `mass()` (with a half-life: recomputed from
    /// the remaining users, as decayed masses can differ by many orders of
    /// magnitude and a subtraction would lose the small ones that remain).
    pub(super) fn forget_events(
        &mut self,
        item: Dense,
        events: u32,
        ordered: bool,
        categories: &[u32],
        mass: impl FnOnce() -> f64,
    ) {
        let count = &mut self.item_events[item as usize];
        *count = count.saturating_sub(u64::from(events));
        let key = match self.half_life_ms {
            Some(_) => mass(),
            None => *count as f64,
        };
        let before = std::mem::replace(&mut self.item_popularity[item as usize], key);
        if ordered {
            self.reorder(item, before, categories);
        }
    }

    /// The orders, from the keys and each category's items, in
    /// O(items log items).
    pub(super) fn rebuild_order<'a>(&mut self, categories: impl Iterator<Item = &'a [Dense]>) {
        self.popular = self.expected_order();
        self.by_category = self.expected_by_category(categories);
    }

    fn entry(&self, item: Dense) -> (Reverse<OrderedKey>, Dense) {
        (Reverse(OrderedKey::new(self.item_popularity[item as usize])), item)
    }

    fn expected_order(&self) -> BTreeSet<(Reverse<OrderedKey>, Dense)> {
        (0..self.item_popularity.len() as Dense).map(|item| self.entry(item)).collect()
    }

    fn expected_by_category<'a>(
        &self,
        categories: impl Iterator<Item = &'a [Dense]>,
    ) -> Vec<BTreeSet<(Reverse<OrderedKey>, Dense)>> {
        categories.map(|items| items.iter().map(|&item| self.entry(item)).collect()).collect()
    }

    /// The popularity score reported for `item`: its event count, or its
    /// decayed mass as of the latest event applied.
    pub(super) fn score(&self, item: Dense) -> f64 {
        let key = self.item_popularity[item as usize];
        match self.half_life_ms {
            Some(half_life) => (key - self.latest_ms as f64 / half_life).exp2(),
            None => key,
        }
    }

    /// Checks the order against the keys and the counts against `pair_events`
    /// (per item, Σ events of its pairs). O(items log items).
    pub(super) fn check<'a>(
        &self,
        pair_events: &[u64],
        categories: impl Iterator<Item = &'a [Dense]>,
    ) -> Result<(), String> {
        if self.item_events.as_slice() != pair_events {
            return Err("per-item event counts differ from the pairs' events".into());
        }
        if self.popular != self.expected_order() {
            return Err("the popularity order differs from the keys".into());
        }
        // Categories that lost every item may keep an empty order.
        let expected = self.expected_by_category(categories);
        let longest = expected.len().max(self.by_category.len());
        let empty = BTreeSet::new();
        for category in 0..longest {
            let have = self.by_category.get(category).unwrap_or(&empty);
            if have != expected.get(category).unwrap_or(&empty) {
                return Err(format!("the popularity order of category {category} differs from the keys"));
            }
        }
        Ok(())
    }
}
