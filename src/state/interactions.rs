//! The interactions: per user a sorted list of `Pair`s (the source of truth
//! of the whole state), each user's Σ value², and per item the users who
//! interacted with it (the item→users index, which is also the item
//! co-occurrence graph in factored form: C̃ = AᵀA − diag).
//!
//! Only `State` (and the replay in `replay.rs`) changes it, through the
//! methods below; readers get shared borrows through `State`'s getters.

use serde::{Deserialize, Serialize};

use super::popularity::log2_add;
use crate::ids::Dense;

/// One user's interaction with one item.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Pair {
    /// The item.
    pub item: Dense,
    /// Latest rating, NaN when the user never rated the item.
    pub rating: f32,
    /// Sum of the implicit events' weights.
    pub implicit: f32,
    /// Events seen for this pair (for popularity, and for `forget_user`).
    pub events: u32,
    /// This user's position in the item's user list, so the list can be
    /// updated in O(1) and kept in arrival order (saved in snapshots, so a
    /// restart rebuilds the very same order).
    pub slot: u32,
    /// With time-decayed popularity: log₂ Σ 2^(t/half-life) over the pair's
    /// events (t in ms since the epoch), so `forget_user` can subtract it;
    /// −∞ otherwise.
    pub mass: f64,
    /// The newest event time of the pair, in whole seconds since the Unix
    /// epoch (for feedback expiry; fits the padding after `slot`).
    pub last_s: u32,
}

/// An event time (ms since the epoch) in the whole seconds `Pair::last_s`
/// keeps (clamped to what a `u32` holds: 1970 to 2106).
#[inline]
pub(crate) fn event_seconds(timestamp_ms: i64) -> u32 {
    (timestamp_ms.div_euclid(1000)).clamp(0, i64::from(u32::MAX)) as u32
}

impl Pair {
    /// A pair before its first event; its slot is set when it joins the
    /// item's user list.
    pub(crate) fn empty(item: Dense) -> Pair {
        Pair { item, rating: f32::NAN, implicit: 0.0, events: 0, slot: 0, mass: f64::NEG_INFINITY, last_s: 0 }
    }

    /// The interaction strength used by every strategy: the latest rating
    /// (if any) plus the implicit weights.
    pub fn value(&self) -> f32 {
        let rating = if self.rating.is_nan() { 0.0 } else { self.rating };
        rating + self.implicit
    }

    /// Adds one event to the pair; returns the change of the user's Σ value².
    /// `mass` is the event's `t / half-life` (with a half-life only).
    #[inline]
    pub(crate) fn add_event(&mut self, rating: bool, weight: f32, mass: Option<f64>) -> f64 {
        let before = f64::from(self.value());
        if rating {
            self.rating = weight;
        } else {
            self.implicit += weight;
        }
        self.events = self.events.saturating_add(1);
        if let Some(mass) = mass {
            self.mass = log2_add(self.mass, mass);
        }
        let after = f64::from(self.value());
        after * after - before * before
    }
}

/// An entry of an item's user list.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct ItemUser {
    pub user: Dense,
    pub value: f32,
}

#[derive(Default)]
pub(super) struct Interactions {
    /// Per user, sorted by item.
    pub(super) user_items: Vec<Vec<Pair>>,
    /// Per user, the items of `user_items`, in the same order. Ingest's
    /// searches and ItemRank's walk of a user's list on each new pair read
    /// only the items: 4 bytes a pair instead of 32 (a batch's users' lists
    /// are rarely in cache). Rebuilt from `user_items` after a snapshot
    /// load, kept in step by every change to a list.
    pub(super) user_item_ids: Vec<Vec<Dense>>,
    /// Per user, Σ value². Maintained incrementally in f64 and saved in
    /// snapshots (not recomputed) so a restart reproduces it bit for bit.
    pub(super) user_norm_sq: Vec<f64>,
    /// Per item: the users who interacted with it, in order of their first
    /// interaction (a forgotten user's place is taken by the last one), with
    /// their current value (so UserCF reads it without a lookup).
    pub(super) item_users: Vec<Vec<ItemUser>>,
}

impl Interactions {
    pub(super) fn push_user(&mut self) {
        self.user_items.push(Vec::new());
        self.user_item_ids.push(Vec::new());
        self.user_norm_sq.push(0.0);
        debug_assert_eq!(self.user_items.len(), self.user_norm_sq.len());
    }

    pub(super) fn push_item(&mut self) {
        self.item_users.push(Vec::new());
    }

    /// Where `item` is, or would be inserted, in `user`'s list.
    #[inline]
    pub(super) fn search(&self, user: Dense, item: Dense) -> Result<usize, usize> {
        self.user_item_ids[user as usize].binary_search(&item)
    }

    /// `search`, given a position found earlier that may have moved since:
    /// used if it is still right (checked in O(1)), searched again if not.
    #[inline]
    pub(super) fn search_hinted(&self, user: Dense, item: Dense, hint: Option<usize>) -> Result<usize, usize> {
        let items = &self.user_item_ids[user as usize];
        if let Some(at) = hint {
            match items.get(at) {
                Some(&found) if found == item => return Ok(at),
                // The sorted list puts `item` exactly between its neighbours.
                next if next.is_none_or(|&next| next > item)
                    && (at == 0 || items.get(at - 1).is_some_and(|&before| before < item)) =>
                {
                    return Err(at)
                }
                _ => {}
            }
        }
        self.search(user, item)
    }

    /// For each `(user, item)`, the first position in the user's list whose
    /// item is not below `item` (where it is, or would be inserted). The
    /// binary searches advance together, one probe of each per round: the
    /// lists of a batch's users are rarely in cache, and independent probes
    /// let their misses overlap instead of queueing one behind the other.
    pub(super) fn search_many(&self, pairs: &[Option<(Dense, Dense)>]) -> Vec<Option<usize>> {
        // Per pair: the list, the item, the window's start and its length.
        let mut searches: Vec<(&[Dense], Dense, usize, usize)> = pairs
            .iter()
            .map(|pair| match pair {
                Some((user, item)) => {
                    let list = self.user_item_ids[*user as usize].as_slice();
                    (list, *item, 0, list.len())
                }
                None => (&[][..], 0, 0, 0),
            })
            .collect();
        loop {
            let mut narrowed = false;
            for (list, item, base, size) in &mut searches {
                if *size > 1 {
                    let half = *size / 2;
                    if list[*base + half] < *item {
                        *base += half;
                    }
                    *size -= half;
                    narrowed = true;
                }
            }
            if !narrowed {
                break;
            }
        }
        pairs
            .iter()
            .zip(searches)
            .map(|(pair, (list, item, base, size))| pair.map(|_| base + usize::from(size == 1 && list[base] < item)))
            .collect()
    }

    /// Inserts a new pair at `pos` (from `search`) and appends the user to
    /// the item's list.
    pub(super) fn insert_pair(&mut self, user: Dense, item: Dense, pos: usize) {
        let users = &mut self.item_users[item as usize];
        let slot = users.len() as u32;
        users.push(ItemUser { user, value: 0.0 });
        let pairs = &mut self.user_items[user as usize];
        pairs.insert(pos, Pair { slot, ..Pair::empty(item) });
        self.user_item_ids[user as usize].insert(pos, item);
        debug_assert!(pos == 0 || pairs[pos - 1].item < item);
        debug_assert!(pairs.get(pos + 1).is_none_or(|next| next.item > item));
    }

    /// Adds one event to the pair at `pos` of `user`'s list; the norm and the
    /// item list follow.
    #[inline]
    #[allow(clippy::too_many_arguments)]
    pub(super) fn add_event(
        &mut self,
        user: Dense,
        pos: usize,
        rating: bool,
        weight: f32,
        mass: Option<f64>,
        at_s: u32,
    ) {
        let pair = &mut self.user_items[user as usize][pos];
        self.user_norm_sq[user as usize] += pair.add_event(rating, weight, mass);
        pair.last_s = pair.last_s.max(at_s);
        let entry = &mut self.item_users[pair.item as usize][pair.slot as usize];
        // Paired with `insert_pair` and the slot moves of `remove_user`.
        assert!(entry.user == user, "item {} slot {} is not user {user}'s", pair.item, pair.slot);
        entry.value = pair.value();
    }

    /// Takes `user`'s pairs out of every list, moving the last user of each
    /// item list into the freed slot, and returns them.
    pub(super) fn remove_user(&mut self, user: Dense) -> Vec<Pair> {
        let pairs = std::mem::take(&mut self.user_items[user as usize]);
        self.user_item_ids[user as usize] = Vec::new();
        self.unlink(&pairs);
        self.user_norm_sq[user as usize] = 0.0;
        pairs
    }

    /// Takes the pairs of `user` that `expired` selects out of every list
    /// (the rest keep their order), recomputes the user's Σ value² from the
    /// pairs kept, and returns the pairs taken.
    pub(super) fn remove_pairs(&mut self, user: Dense, expired: impl Fn(&Pair) -> bool) -> Vec<Pair> {
        let pairs = &mut self.user_items[user as usize];
        if !pairs.iter().any(&expired) {
            return Vec::new();
        }
        let (gone, kept): (Vec<Pair>, Vec<Pair>) = std::mem::take(pairs).into_iter().partition(|pair| expired(pair));
        self.user_norm_sq[user as usize] = kept.iter().map(|pair| f64::from(pair.value()).powi(2)).sum();
        self.user_items[user as usize] = kept;
        self.refresh_item_ids(user as usize);
        self.unlink(&gone);
        gone
    }

    /// `user`'s items again from the user's list (after a change to it that
    /// did not go through `insert_pair`).
    pub(super) fn refresh_item_ids(&mut self, user: usize) {
        self.user_item_ids[user] = self.user_items[user].iter().map(|pair| pair.item).collect();
    }

    /// Removes `pairs` (no longer in their user's list) from the item lists.
    fn unlink(&mut self, pairs: &[Pair]) {
        for pair in pairs {
            let users = &mut self.item_users[pair.item as usize];
            let slot = pair.slot as usize;
            if slot < users.len() {
                users.swap_remove(slot);
                // The last user took the freed slot: tell its pair.
                if let Some(&moved) = users.get(slot) {
                    if let Ok(at) = self.search(moved.user, pair.item) {
                        self.user_items[moved.user as usize][at].slot = slot as u32;
                    }
                }
            }
            // Memory of removed pairs goes back when a list shrank a lot.
            let users = &mut self.item_users[pair.item as usize];
            if users.capacity() > 4 * users.len().max(4) {
                users.shrink_to_fit();
            }
        }
    }

    /// log₂ Σ 2^mass over the pairs of `item`'s users.
    pub(super) fn item_mass(&self, item: Dense) -> f64 {
        self.item_users[item as usize]
            .iter()
            .filter_map(|entry| {
                self.search(entry.user, item).ok().map(|at| self.user_items[entry.user as usize][at].mass)
            })
            .fold(f64::NEG_INFINITY, log2_add)
    }

    /// Stored (user, item) pairs.
    pub(super) fn pair_count(&self) -> u64 {
        self.user_items.iter().map(|pairs| pairs.len() as u64).sum()
    }

    /// Puts every user back at its slot in the item lists, and rebuilds the
    /// users' item ids (snapshot load).
    pub(super) fn place_item_users(&mut self, items: usize) -> Result<(), String> {
        self.user_item_ids = self.user_items.iter().map(|pairs| pairs.iter().map(|pair| pair.item).collect()).collect();
        let mut lengths = vec![0usize; items];
        for pairs in &self.user_items {
            for pair in pairs {
                lengths[pair.item as usize] += 1;
            }
        }
        let empty = ItemUser { user: Dense::MAX, value: f32::NAN };
        let mut item_users: Vec<Vec<ItemUser>> = lengths.iter().map(|&len| vec![empty; len]).collect();
        for (user, pairs) in self.user_items.iter().enumerate() {
            for pair in pairs {
                match item_users[pair.item as usize].get_mut(pair.slot as usize) {
                    Some(entry) if entry.user == Dense::MAX => {
                        *entry = ItemUser { user: user as Dense, value: pair.value() };
                    }
                    _ => {
                        return Err(format!(
                            "user {user}, item {}: slot {} taken or out of range",
                            pair.item, pair.slot
                        ))
                    }
                }
            }
        }
        self.item_users = item_users;
        Ok(())
    }

    /// Checks that the lists are sorted and that the two directions agree
    /// (each pair at its slot, with its value; no other entry). O(pairs).
    pub(super) fn check(&self) -> Result<(), String> {
        let mut entries = 0u64;
        if self.user_item_ids.len() != self.user_items.len() {
            return Err(format!("{} item-id lists for {} users", self.user_item_ids.len(), self.user_items.len()));
        }
        for (user, pairs) in self.user_items.iter().enumerate() {
            if !pairs.iter().map(|pair| pair.item).eq(self.user_item_ids[user].iter().copied()) {
                return Err(format!("user {user}: item ids differ from the pairs"));
            }
            for (at, pair) in pairs.iter().enumerate() {
                if at > 0 && pairs[at - 1].item >= pair.item {
                    return Err(format!("user {user}: pairs out of order"));
                }
                let entry = self.item_users.get(pair.item as usize).and_then(|users| users.get(pair.slot as usize));
                match entry {
                    Some(entry) if entry.user as usize == user && entry.value.to_bits() == pair.value().to_bits() => {}
                    _ => {
                        return Err(format!(
                            "user {user}, item {}: item list disagrees at slot {}",
                            pair.item, pair.slot
                        ))
                    }
                }
            }
        }
        for users in &self.item_users {
            entries += users.len() as u64;
        }
        if entries != self.pair_count() {
            return Err(format!("{entries} item-list entries for {} pairs", self.pair_count()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The batched search finds what one search at a time finds, for
        /// lists of any length (empty, one pair, odd and even), items in
        /// them, between them and past both ends; and a hint, right or
        /// stale, never changes `search_hinted`'s answer.
        #[test]
        fn search_many_and_hints_agree_with_search(
            lists in prop::collection::vec(prop::collection::btree_set(0u32..64, 0..40), 1..6),
            probes in prop::collection::vec((0usize..6, 0u32..66, prop::option::of(0usize..45)), 0..40),
        ) {
            let mut interactions = Interactions::default();
            for items in &lists {
                interactions.push_user();
                let user = (interactions.user_items.len() - 1) as Dense;
                for &item in items {
                    interactions.user_items[user as usize].push(Pair::empty(item));
                    interactions.user_item_ids[user as usize].push(item);
                }
            }
            let pairs: Vec<Option<(Dense, Dense)>> = probes
                .iter()
                .map(|&(user, item, _)| (user < lists.len()).then_some((user as Dense, item)))
                .collect();
            let found = interactions.search_many(&pairs);
            prop_assert_eq!(found.len(), pairs.len());
            for ((pair, found), &(_, _, hint)) in pairs.iter().zip(found).zip(&probes) {
                let Some((user, item)) = *pair else {
                    prop_assert_eq!(found, None);
                    continue;
                };
                let expected = interactions.search(user, item);
                let at = found.expect("a position for every known pair");
                prop_assert_eq!(at, match expected { Ok(at) | Err(at) => at });
                prop_assert_eq!(interactions.search_hinted(user, item, Some(at)), expected);
                prop_assert_eq!(interactions.search_hinted(user, item, hint), expected);
            }
        }
    }
}
