//! The replay path's machinery, apart from the live path: while a log is
//! replayed, events are not applied to the per-user lists one by one (a
//! binary search into a long list each, mostly cache misses) but held here
//! and applied user by user (`Deferred::apply_to`) before anything reads the
//! lists (a forget, the end of the replay) or when it is full. Their effects
//! on the item arrays (popularity keys, event counts) and on the interners
//! are applied at once by `State`, since those are cheap and ordered
//! globally; what remains is per pair and per user, so it can be applied per
//! user later in the same order and give the very same result.

use super::interactions::{Interactions, ItemUser, Pair};
use crate::ids::Dense;

/// Events held in `Deferred` before they are applied.
// (Small under unit tests, so that their short logs apply in several rounds.)
const DEFERRED_MAX: usize = if cfg!(test) { 7 } else { 1 << 21 };

/// Events of a replay not yet applied to the per-user lists, in log order.
#[derive(Default)]
pub(super) struct Deferred {
    events: Vec<DeferredEvent>,
    /// Per event, `timestamp_ms / half_life` (only with a half-life).
    masses: Vec<f64>,
}

#[derive(Clone, Copy, Default)]
struct DeferredEvent {
    user: Dense,
    item: Dense,
    weight: f32,
    at_s: u32,
    rating: bool,
}

/// A deferred event, grouped by user: `seq` is its place in the log.
#[derive(Clone, Copy, Default)]
struct UserEvent {
    seq: u32,
    item: Dense,
    weight: f32,
    at_s: u32,
    rating: bool,
}

/// Buffers reused from one user's run to the next.
#[derive(Default)]
struct Scratch {
    /// (item, place in the run), sorted.
    keys: Vec<(Dense, u32)>,
    /// Per event of the run, its pair: below the old length an existing
    /// one, above it `fresh[target - old_len]`.
    targets: Vec<u32>,
    /// The run's new pairs, in item order, and the seq of their first event.
    fresh: Vec<Pair>,
    fresh_seq: Vec<u32>,
}

impl Deferred {
    /// Holds one event; `mass` is its `t / half-life` with a half-life.
    /// Returns whether it is full (time to `apply_to`).
    pub(super) fn push(
        &mut self,
        user: Dense,
        item: Dense,
        rating: bool,
        weight: f32,
        mass: Option<f64>,
        at_s: u32,
    ) -> bool {
        if let Some(mass) = mass {
            self.masses.push(mass);
        }
        self.events.push(DeferredEvent { user, item, weight, at_s, rating });
        debug_assert!(self.masses.is_empty() || self.masses.len() == self.events.len());
        self.events.len() >= DEFERRED_MAX
    }

    /// Applies the held events to the per-user lists, the norms and the
    /// item lists, exactly as the live path would have one by one: per pair
    /// and per user in log order, and new pairs take their slots in the
    /// item lists in the order of their first event.
    pub(super) fn apply_to(&mut self, interactions: &mut Interactions) {
        let events = std::mem::take(&mut self.events);
        let masses = std::mem::take(&mut self.masses);
        if events.is_empty() {
            return;
        }
        let users = interactions.user_items.len();
        let (starts, grouped) = group_by_user(&events, users);
        let count = events.len();
        drop(events);
        // Per new pair, by the seq of its first event: (user, position).
        let mut first_at = vec![(Dense::MAX, 0u32); count];
        let mut scratch = Scratch::default();
        for user in 0..users {
            let run = &grouped[starts[user] as usize..starts[user + 1] as usize];
            if !run.is_empty() {
                apply_run(interactions, user, run, &masses, &mut scratch, &mut first_at);
            }
        }
        // Slots: the new pairs join the item lists in order of first event.
        for &(user, pos) in &first_at {
            if user == Dense::MAX {
                continue;
            }
            let pair = &mut interactions.user_items[user as usize][pos as usize];
            let users = &mut interactions.item_users[pair.item as usize];
            pair.slot = users.len() as u32;
            users.push(ItemUser { user, value: pair.value() });
        }
    }
}

/// Groups the events by user (a stable counting sort: log order within a
/// user); returns each user's start in the grouped list, and the list.
fn group_by_user(events: &[DeferredEvent], users: usize) -> (Vec<u32>, Vec<UserEvent>) {
    let mut starts = vec![0u32; users + 1];
    for event in events {
        starts[event.user as usize + 1] += 1;
    }
    for user in 0..users {
        starts[user + 1] += starts[user];
    }
    let mut next = starts.clone();
    let mut grouped = vec![UserEvent::default(); events.len()];
    for (seq, event) in events.iter().enumerate() {
        let at = &mut next[event.user as usize];
        grouped[*at as usize] = UserEvent {
            seq: seq as u32,
            item: event.item,
            weight: event.weight,
            at_s: event.at_s,
            rating: event.rating,
        };
        *at += 1;
    }
    debug_assert_eq!(starts[users] as usize, events.len());
    (starts, grouped)
}

/// Applies one user's run of events, in log order.
fn apply_run(
    interactions: &mut Interactions,
    user: usize,
    run: &[UserEvent],
    masses: &[f64],
    scratch: &mut Scratch,
    first_at: &mut [(Dense, u32)],
) {
    let pairs = &mut interactions.user_items[user];
    let norm = &mut interactions.user_norm_sq[user];
    let old_len = pairs.len();
    resolve_targets(pairs, run, scratch);
    // The events, in log order.
    for (event, &target) in run.iter().zip(&scratch.targets) {
        let target = target as usize;
        let pair = if target < old_len { &mut pairs[target] } else { &mut scratch.fresh[target - old_len] };
        let mass = if masses.is_empty() { None } else { Some(masses[event.seq as usize]) };
        *norm += pair.add_event(event.rating, event.weight, mass);
        pair.last_s = pair.last_s.max(event.at_s);
    }
    // The item lists carry the latest values of the existing pairs.
    for &target in &scratch.targets {
        let target = target as usize;
        if target < old_len {
            let pair = &pairs[target];
            if let Some(entry) = interactions.item_users[pair.item as usize].get_mut(pair.slot as usize) {
                entry.value = pair.value();
            }
        }
    }
    merge_fresh(pairs, old_len, scratch, user as Dense, first_at);
    if pairs.len() != old_len {
        interactions.refresh_item_ids(user);
    }
}

/// Where each event of the run goes: an existing pair, or a new one (made
/// in item order in `scratch.fresh`).
fn resolve_targets(pairs: &[Pair], run: &[UserEvent], scratch: &mut Scratch) {
    let Scratch { keys, targets, fresh, fresh_seq } = scratch;
    keys.clear();
    keys.extend(run.iter().enumerate().map(|(at, event)| (event.item, at as u32)));
    keys.sort_unstable();
    targets.clear();
    targets.resize(run.len(), 0);
    fresh.clear();
    fresh_seq.clear();
    let mut at = 0;
    while at < keys.len() {
        let item = keys[at].0;
        let target = match pairs.binary_search_by_key(&item, |pair| pair.item) {
            Ok(pos) => pos as u32,
            Err(_) => {
                fresh.push(Pair::empty(item));
                fresh_seq.push(run[keys[at].1 as usize].seq);
                (pairs.len() + fresh.len() - 1) as u32
            }
        };
        while at < keys.len() && keys[at].0 == item {
            targets[keys[at].1 as usize] = target;
            at += 1;
        }
    }
}

/// The new pairs (in item order) merge into the sorted list, from the back;
/// `first_at` learns where each landed.
fn merge_fresh(pairs: &mut Vec<Pair>, old_len: usize, scratch: &Scratch, user: Dense, first_at: &mut [(Dense, u32)]) {
    let fresh = &scratch.fresh;
    if fresh.is_empty() {
        return;
    }
    pairs.resize(old_len + fresh.len(), fresh[0]);
    let mut old = old_len;
    let mut out = pairs.len();
    for (at, &pair) in fresh.iter().enumerate().rev() {
        while old > 0 && pairs[old - 1].item > pair.item {
            out -= 1;
            old -= 1;
            pairs[out] = pairs[old];
        }
        out -= 1;
        pairs[out] = pair;
        first_at[scratch.fresh_seq[at] as usize] = (user, out as u32);
    }
    debug_assert_eq!(out, old, "every old pair is in place once the new ones are in");
}
