//! The in-memory state, derived from the log and nothing else: interned ids,
//! each user's interactions, the item→users index (which is also the item
//! co-occurrence graph in factored form: C̃ = AᵀA − diag), popularity, removed
//! items and the dedup window. `apply` is the only way it changes, so
//! replaying the same records in the same order rebuilds the same state.

use std::cmp::Reverse;
use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::config::DedupConfig;
use crate::dedup::{DedupWindow, FirstSeen};
use crate::ids::{Dense, Interner};
use crate::record::{LogRecord, LoggedKind};

// The model catalogue is part of the state (rebuilt from records 4–6, saved
// in snapshots); the model code above reads it through `crate::model`.
pub(crate) mod catalog;
use catalog::Catalog;

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
}

impl Pair {
    /// The interaction strength used by every strategy: the latest rating
    /// (if any) plus the implicit weights.
    pub fn value(&self) -> f32 {
        let rating = if self.rating.is_nan() { 0.0 } else { self.rating };
        rating + self.implicit
    }
}

#[derive(Default)]
pub(crate) struct State {
    pub users: Interner,
    pub items: Interner,
    /// Per user, sorted by item.
    pub user_items: Vec<Vec<Pair>>,
    /// Per user, Σ value². Maintained incrementally in f64 and saved in
    /// snapshots (not recomputed) so a restart reproduces it bit for bit.
    pub user_norm_sq: Vec<f64>,
    /// Per item: the users who interacted with it, in order of their first
    /// interaction (a forgotten user's place is taken by the last one), with
    /// their current value (so UserCF reads it without a lookup).
    pub item_users: Vec<Vec<ItemUser>>,
    /// Per item j, Σ_{u∈Uⱼ}(|Iᵤ| − 1): the column sums of ItemRank's
    /// co-occurrence graph, maintained per new pair (integers, so the same
    /// whatever the order of updates).
    pub item_others: Vec<u64>,
    /// While replaying a log: `item_others` and `popular` are not
    /// maintained per event but rebuilt once by `finish_replay`, and events
    /// are not applied to the per-user lists one by one (a binary search into
    /// a long list each, mostly cache misses) but appended to `deferred` and
    /// applied user by user (`apply_deferred`) before anything reads the
    /// lists (a forget, the end of the replay) or when it is full.
    pub replaying: bool,
    pub deferred: Deferred,
    /// Per item, events seen.
    pub item_events: Vec<u64>,
    /// Per item, the popularity key: the event count, or with a half-life
    /// log₂ Σ 2^(t/half-life) over its events. Ordering by this key is the
    /// decayed order at any time (every item decays at the same rate). Saved
    /// in snapshots, like the norms, for bit-exact restarts.
    pub item_popularity: Vec<f64>,
    /// Items ordered by popularity key, most popular first.
    pub popular: BTreeSet<(Reverse<OrderedKey>, Dense)>,
    /// Popularity half-life in ms (`None`: plain counts). Fixed per data
    /// directory.
    pub half_life_ms: Option<f64>,
    /// Latest event timestamp applied: decayed scores are reported as of it,
    /// so answers do not depend on the wall clock.
    pub latest_ms: i64,
    pub item_removed: Vec<bool>,
    pub dedup: DedupWindow,
    /// LSN of the last record applied.
    pub applied_lsn: u64,
    /// Events applied since the log began (including forgotten users').
    pub events_applied: u64,
    /// Ranking model versions and activations.
    pub models: Catalog,
}

/// An entry of an item's user list.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct ItemUser {
    pub user: Dense,
    pub value: f32,
}

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
fn log2_add(a: f64, b: f64) -> f64 {
    let (high, low) = if a >= b { (a, b) } else { (b, a) };
    if low == f64::NEG_INFINITY {
        return high;
    }
    high + (1.0 + (low - high).exp2()).log2()
}

/// Events held in `Deferred` before they are applied.
// (Small under unit tests, so that their short logs apply in several rounds.)
const DEFERRED_MAX: usize = if cfg!(test) { 7 } else { 1 << 21 };

/// Events of a replay not yet applied to the per-user lists, in log order.
/// Their effects on the item arrays (popularity keys, event counts) and on
/// the interners are applied at once, since those are cheap and ordered
/// globally; what remains is per pair and per user, so it can be applied
/// per user later in the same order and give the very same result.
#[derive(Default)]
pub(crate) struct Deferred {
    events: Vec<DeferredEvent>,
    /// Per event, `timestamp_ms / half_life` (only with a half-life).
    masses: Vec<f64>,
}

#[derive(Clone, Copy, Default)]
struct DeferredEvent {
    user: Dense,
    item: Dense,
    weight: f32,
    rating: bool,
}

/// A deferred event, grouped by user: `seq` is its place in the log.
#[derive(Clone, Copy, Default)]
struct UserEvent {
    seq: u32,
    item: Dense,
    weight: f32,
    rating: bool,
}

impl State {
    /// An empty state whose popularity decays with `half_life` (or counts).
    pub fn new(half_life: Option<std::time::Duration>) -> State {
        State { half_life_ms: half_life.map(|half_life| half_life.as_secs_f64() * 1000.0), ..State::default() }
    }

    /// Applies the record at `lsn`. Records must come in LSN order; a record
    /// at or below `applied_lsn` is already in the state and is ignored.
    pub fn apply(&mut self, lsn: u64, record: &LogRecord<'_>, dedup: &DedupConfig) {
        if lsn <= self.applied_lsn {
            return;
        }
        match record {
            LogRecord::Events(batch) => {
                // The popularity order is updated once per distinct item of
                // the record, at its end (popular items repeat within a
                // batch); the keys themselves change per event.
                let mut touched: rustc_hash::FxHashMap<Dense, f64> = rustc_hash::FxHashMap::default();
                for event in &batch.events {
                    let user = self.intern_user(event.user);
                    let item = self.intern_item(event.item);
                    if !self.replaying {
                        touched.entry(item).or_insert(self.item_popularity[item as usize]);
                    }
                    self.add_interaction(user, item, event.kind, event.weight, event.timestamp_ms);
                    if let Some(id) = event.event_id {
                        self.dedup.record(id, FirstSeen { lsn, ingested_ms: batch.ingested_ms }, dedup);
                    }
                }
                for (item, before) in touched {
                    let after = self.item_popularity[item as usize];
                    self.popular.remove(&(Reverse(OrderedKey::new(before)), item));
                    self.popular.insert((Reverse(OrderedKey::new(after)), item));
                }
                self.events_applied += batch.events.len() as u64;
            }
            LogRecord::ForgetUser(forget) => {
                if let Some(user) = self.users.get(forget.user) {
                    self.forget(user);
                }
            }
            LogRecord::RemoveItem(remove) => {
                if let Some(item) = self.items.get(remove.item) {
                    self.item_removed[item as usize] = true;
                }
            }
            LogRecord::ModelAdded(added) => self.models.add(lsn, added),
            LogRecord::ModelActivated(activated) => self.models.activate(lsn, activated),
            LogRecord::ModelRetired(retired) => self.models.retire(lsn, retired.version),
        }
        self.applied_lsn = lsn;
    }

    fn intern_user(&mut self, name: &str) -> Dense {
        let user = self.users.intern(name);
        if user as usize == self.user_items.len() {
            self.user_items.push(Vec::new());
            self.user_norm_sq.push(0.0);
        }
        user
    }

    fn intern_item(&mut self, name: &str) -> Dense {
        let item = self.items.intern(name);
        if item as usize == self.item_users.len() {
            self.item_users.push(Vec::new());
            self.item_others.push(0);
            self.item_events.push(0);
            let key = if self.half_life_ms.is_some() { f64::NEG_INFINITY } else { 0.0 };
            self.item_popularity.push(key);
            self.item_removed.push(false);
            if !self.replaying {
                self.popular.insert((Reverse(OrderedKey::new(key)), item));
            }
        }
        item
    }

    fn add_interaction(&mut self, user: Dense, item: Dense, kind: LoggedKind, weight: f32, timestamp_ms: i64) {
        if self.replaying {
            self.defer_interaction(user, item, kind, weight, timestamp_ms);
            return;
        }
        let pairs = &mut self.user_items[user as usize];
        let pos = match pairs.binary_search_by_key(&item, |pair| pair.item) {
            Ok(pos) => pos,
            Err(pos) => {
                // The graph's column sums: every item the user already has
                // gains one co-occurrence, the new one gains them all.
                for pair in pairs.iter() {
                    self.item_others[pair.item as usize] += 1;
                }
                self.item_others[item as usize] += pairs.len() as u64;
                let users = &mut self.item_users[item as usize];
                let slot = users.len() as u32;
                users.push(ItemUser { user, value: 0.0 });
                let pair = Pair { item, rating: f32::NAN, implicit: 0.0, events: 0, slot, mass: f64::NEG_INFINITY };
                pairs.insert(pos, pair);
                pos
            }
        };
        let pair = &mut pairs[pos];
        let before = f64::from(pair.value());
        match kind {
            LoggedKind::Rating => pair.rating = weight,
            _ => pair.implicit += weight,
        }
        pair.events = pair.events.saturating_add(1);
        let value = pair.value();
        let after = f64::from(value);
        self.user_norm_sq[user as usize] += after * after - before * before;
        if let Some(entry) = self.item_users[item as usize].get_mut(pair.slot as usize) {
            entry.value = value;
        }
        self.latest_ms = self.latest_ms.max(timestamp_ms);
        let key = self.item_popularity[item as usize];
        let new_key = match self.half_life_ms {
            Some(half_life) => {
                let mass = timestamp_ms as f64 / half_life;
                pair.mass = log2_add(pair.mass, mass);
                log2_add(key, mass)
            }
            None => key + 1.0,
        };
        self.item_events[item as usize] += 1;
        // The order (`popular`) is updated by `apply` at the record's end.
        self.item_popularity[item as usize] = new_key;
    }

    fn set_popularity(&mut self, item: Dense, key: f64) {
        let old = &mut self.item_popularity[item as usize];
        if !self.replaying {
            self.popular.remove(&(Reverse(OrderedKey::new(*old)), item));
            self.popular.insert((Reverse(OrderedKey::new(key)), item));
        }
        *old = key;
    }

    /// `add_interaction` during a replay: what is global (clock, item
    /// popularity keys and counts, in log order) now, the rest deferred.
    fn defer_interaction(&mut self, user: Dense, item: Dense, kind: LoggedKind, weight: f32, timestamp_ms: i64) {
        self.latest_ms = self.latest_ms.max(timestamp_ms);
        let key = self.item_popularity[item as usize];
        let new_key = match self.half_life_ms {
            Some(half_life) => {
                let mass = timestamp_ms as f64 / half_life;
                self.deferred.masses.push(mass);
                log2_add(key, mass)
            }
            None => key + 1.0,
        };
        self.item_events[item as usize] += 1;
        self.item_popularity[item as usize] = new_key;
        let rating = kind == LoggedKind::Rating;
        self.deferred.events.push(DeferredEvent { user, item, weight, rating });
        if self.deferred.events.len() >= DEFERRED_MAX {
            self.apply_deferred();
        }
    }

    /// Applies the deferred events to the per-user lists, the norms and the
    /// item lists, exactly as `add_interaction` would have one by one: per
    /// pair and per user in log order, and new pairs take their slots in the
    /// item lists in the order of their first event.
    fn apply_deferred(&mut self) {
        let events = std::mem::take(&mut self.deferred.events);
        let masses = std::mem::take(&mut self.deferred.masses);
        if events.is_empty() {
            return;
        }
        // Group by user (a stable counting sort: log order within a user).
        let users = self.user_items.len();
        let mut starts = vec![0u32; users + 1];
        for event in &events {
            starts[event.user as usize + 1] += 1;
        }
        for user in 0..users {
            starts[user + 1] += starts[user];
        }
        let mut next = starts.clone();
        let mut grouped = vec![UserEvent::default(); events.len()];
        for (seq, event) in events.iter().enumerate() {
            let at = &mut next[event.user as usize];
            grouped[*at as usize] =
                UserEvent { seq: seq as u32, item: event.item, weight: event.weight, rating: event.rating };
            *at += 1;
        }
        drop(next);
        let count = events.len();
        drop(events);
        // Per new pair, by the seq of its first event: (user, position).
        let mut first_at = vec![(Dense::MAX, 0u32); count];
        let mut keys: Vec<(Dense, u32)> = Vec::new();
        let mut targets: Vec<u32> = Vec::new();
        let mut fresh: Vec<Pair> = Vec::new();
        let mut fresh_seq: Vec<u32> = Vec::new();
        for user in 0..users {
            let run = &grouped[starts[user] as usize..starts[user + 1] as usize];
            if run.is_empty() {
                continue;
            }
            let pairs = &mut self.user_items[user];
            let norm = &mut self.user_norm_sq[user];
            let old_len = pairs.len();
            // Where each event goes: an existing pair, or a new one.
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
                        fresh.push(Pair {
                            item,
                            rating: f32::NAN,
                            implicit: 0.0,
                            events: 0,
                            slot: 0,
                            mass: f64::NEG_INFINITY,
                        });
                        fresh_seq.push(run[keys[at].1 as usize].seq);
                        (old_len + fresh.len() - 1) as u32
                    }
                };
                while at < keys.len() && keys[at].0 == item {
                    targets[keys[at].1 as usize] = target;
                    at += 1;
                }
            }
            // The events, in log order.
            for (event, &target) in run.iter().zip(&targets) {
                let target = target as usize;
                let pair = if target < old_len { &mut pairs[target] } else { &mut fresh[target - old_len] };
                let before = f64::from(pair.value());
                if event.rating {
                    pair.rating = event.weight;
                } else {
                    pair.implicit += event.weight;
                }
                pair.events = pair.events.saturating_add(1);
                let after = f64::from(pair.value());
                *norm += after * after - before * before;
                if !masses.is_empty() {
                    pair.mass = log2_add(pair.mass, masses[event.seq as usize]);
                }
            }
            // The item lists carry the latest values of the existing pairs.
            for &target in &targets {
                let target = target as usize;
                if target < old_len {
                    let pair = &pairs[target];
                    if let Some(entry) = self.item_users[pair.item as usize].get_mut(pair.slot as usize) {
                        entry.value = pair.value();
                    }
                }
            }
            // The new pairs (made in item order) merge in, from the back.
            if !fresh.is_empty() {
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
                    first_at[fresh_seq[at] as usize] = (user as Dense, out as u32);
                }
            }
        }
        // Slots: the new pairs join the item lists in order of first event.
        for &(user, pos) in &first_at {
            if user == Dense::MAX {
                continue;
            }
            let pair = &mut self.user_items[user as usize][pos as usize];
            let users = &mut self.item_users[pair.item as usize];
            pair.slot = users.len() as u32;
            users.push(ItemUser { user, value: pair.value() });
        }
    }

    /// Starts a replay: per-event index maintenance is deferred.
    pub fn begin_replay(&mut self) {
        self.replaying = true;
    }

    /// Ends a replay: applies the deferred events, then rebuilds the column
    /// sums and the popularity order from the per-user lists, in O(pairs).
    /// The result is exactly what per-event maintenance would have built.
    pub fn finish_replay(&mut self) {
        self.apply_deferred();
        self.deferred = Deferred::default();
        self.rebuild_derived();
        self.replaying = false;
    }

    fn rebuild_derived(&mut self) {
        let items = self.items.len();
        let mut item_others = vec![0u64; items];
        for pairs in &self.user_items {
            let others = pairs.len().saturating_sub(1) as u64;
            for pair in pairs {
                item_others[pair.item as usize] += others;
            }
        }
        self.item_others = item_others;
        self.popular = (0..items as Dense)
            .map(|item| (Reverse(OrderedKey::new(self.item_popularity[item as usize])), item))
            .collect();
    }

    /// Puts every user back at its slot in the item lists (snapshot load).
    fn place_item_users(&mut self) -> Result<(), String> {
        let items = self.items.len();
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

    /// The popularity score reported for `item`: its event count, or its
    /// decayed mass as of the latest event applied.
    pub fn popularity_score(&self, item: Dense) -> f64 {
        let key = self.item_popularity[item as usize];
        match self.half_life_ms {
            Some(half_life) => (key - self.latest_ms as f64 / half_life).exp2(),
            None => key,
        }
    }

    /// Where `item` is in `user`'s list (during a replay, once the deferred
    /// events are applied).
    fn position_of(&self, user: Dense, item: Dense) -> Option<usize> {
        self.user_items[user as usize].binary_search_by_key(&item, |pair| pair.item).ok()
    }

    fn forget(&mut self, user: Dense) {
        // During a replay the column sums and the popularity order are
        // rebuilt at the end: only what later records read is kept exact
        // here (lists, slots, event counts, popularity keys).
        if self.replaying {
            self.apply_deferred();
        }
        let pairs = std::mem::take(&mut self.user_items[user as usize]);
        let others = pairs.len().saturating_sub(1) as u64;
        for pair in &pairs {
            let users = &mut self.item_users[pair.item as usize];
            let slot = pair.slot as usize;
            if slot < users.len() {
                users.swap_remove(slot);
                // The last user took the freed slot: tell its pair.
                if let Some(&moved) = users.get(slot) {
                    if let Some(at) = self.position_of(moved.user, pair.item) {
                        self.user_items[moved.user as usize][at].slot = slot as u32;
                    }
                }
            }
            let column = &mut self.item_others[pair.item as usize];
            *column = column.saturating_sub(others);
            self.item_events[pair.item as usize] =
                self.item_events[pair.item as usize].saturating_sub(u64::from(pair.events));
            // Recomputed from the remaining users rather than subtracted:
            // decayed masses can differ by many orders of magnitude, and a
            // subtraction would lose the small ones that remain.
            let key = match self.half_life_ms {
                Some(_) => self.item_users[pair.item as usize]
                    .iter()
                    .filter_map(|entry| self.pair(entry.user, pair.item).map(|p| p.mass))
                    .fold(f64::NEG_INFINITY, log2_add),
                None => self.item_events[pair.item as usize] as f64,
            };
            self.set_popularity(pair.item, key);
        }
        self.user_norm_sq[user as usize] = 0.0;
    }

    pub fn user_items(&self, user: Dense) -> &[Pair] {
        &self.user_items[user as usize]
    }

    pub fn pair(&self, user: Dense, item: Dense) -> Option<&Pair> {
        self.position_of(user, item).map(|at| &self.user_items[user as usize][at])
    }

    /// Stored (user, item) pairs.
    pub fn pairs(&self) -> u64 {
        self.user_items.iter().map(|pairs| pairs.len() as u64).sum()
    }

    /// A borrowed view that serialises exactly like `SnapshotBody`.
    pub fn snapshot_view(&self) -> SnapshotView<'_> {
        SnapshotView {
            applied_lsn: self.applied_lsn,
            events_applied: self.events_applied,
            users: self.users.names(),
            items: self.items.names(),
            user_items: &self.user_items,
            user_norm_sq: &self.user_norm_sq,
            half_life_ms: self.half_life_ms,
            latest_ms: self.latest_ms,
            item_popularity: &self.item_popularity,
            removed_items: (0..self.item_removed.len() as Dense)
                .filter(|&item| self.item_removed[item as usize])
                .collect(),
            dedup: self.dedup.entries().collect(),
        }
    }

    /// A digest of everything the state holds except the clock readings in
    /// the dedup window: two runs that applied the same records agree on it.
    pub fn digest(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut view = self.snapshot_view();
        for entry in &mut view.dedup {
            entry.1.ingested_ms = 0;
        }
        let mut hasher = std::hash::DefaultHasher::new();
        match postcard::to_stdvec(&view) {
            Ok(bytes) => bytes.hash(&mut hasher),
            Err(err) => err.to_string().hash(&mut hasher),
        }
        self.models.hash(&mut hasher);
        hasher.finish()
    }

    /// Rebuilds the state from a snapshot; the indexes that are pure
    /// functions of the saved fields are derived again. Fails if the body is
    /// inconsistent (a CRC-valid snapshot written by a buggy build).
    pub fn from_snapshot(body: SnapshotBody) -> Result<State, String> {
        let users = body.users.len();
        let items = body.items.len();
        if body.user_items.len() != users || body.user_norm_sq.len() != users {
            return Err(format!("{} users but {} interaction lists", users, body.user_items.len()));
        }
        body.models.validate()?;
        if body.item_popularity.len() != items {
            return Err(format!("{items} items but {} popularity keys", body.item_popularity.len()));
        }
        let mut state = State {
            users: Interner::from_names(body.users),
            items: Interner::from_names(body.items),
            user_items: body.user_items,
            user_norm_sq: body.user_norm_sq,
            item_users: Vec::new(),
            item_others: Vec::new(),
            replaying: false,
            deferred: Deferred::default(),
            item_events: vec![0; items],
            item_popularity: body.item_popularity,
            popular: BTreeSet::new(),
            half_life_ms: body.half_life_ms,
            latest_ms: body.latest_ms,
            item_removed: vec![false; items],
            dedup: DedupWindow::from_entries(body.dedup),
            applied_lsn: body.applied_lsn,
            events_applied: body.events_applied,
            models: body.models,
        };
        if state.users.len() != users || state.items.len() != items {
            return Err("duplicate ids".into());
        }
        for (user, pairs) in state.user_items.iter().enumerate() {
            for (at, pair) in pairs.iter().enumerate() {
                if pair.item as usize >= items || (at > 0 && pairs[at - 1].item >= pair.item) {
                    return Err(format!("user {user}: interactions out of order or out of range"));
                }
                state.item_events[pair.item as usize] += u64::from(pair.events);
            }
        }
        for &item in &body.removed_items {
            match state.item_removed.get_mut(item as usize) {
                Some(removed) => *removed = true,
                None => return Err(format!("removed item {item} out of range")),
            }
        }
        state.place_item_users()?;
        state.rebuild_derived();
        Ok(state)
    }
}

/// What a snapshot stores, borrowed from the live state for writing; the
/// field order must stay that of `SnapshotBody`.
#[derive(Serialize)]
pub(crate) struct SnapshotView<'a> {
    applied_lsn: u64,
    events_applied: u64,
    users: &'a [std::sync::Arc<str>],
    items: &'a [std::sync::Arc<str>],
    user_items: &'a [Vec<Pair>],
    user_norm_sq: &'a [f64],
    half_life_ms: Option<f64>,
    latest_ms: i64,
    item_popularity: &'a [f64],
    removed_items: Vec<Dense>,
    dedup: Vec<(&'a str, FirstSeen)>,
}

/// What a snapshot stores: every field that cannot be derived from the others.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SnapshotBody {
    pub(crate) applied_lsn: u64,
    pub(crate) events_applied: u64,
    pub(crate) users: Vec<String>,
    pub(crate) items: Vec<String>,
    pub(crate) user_items: Vec<Vec<Pair>>,
    pub(crate) user_norm_sq: Vec<f64>,
    pub(crate) half_life_ms: Option<f64>,
    pub(crate) latest_ms: i64,
    pub(crate) item_popularity: Vec<f64>,
    pub(crate) removed_items: Vec<Dense>,
    pub(crate) dedup: Vec<(String, FirstSeen)>,
    /// Read from after the body proper (format version 3), see `snapshot`.
    #[serde(skip)]
    pub(crate) models: Catalog,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{EventsV1, ForgetUserV1, LoggedEvent};
    use proptest::prelude::*;

    fn events_record(events: &[(u8, u8, u8)], names: &[String]) -> Vec<(String, String, LoggedKind, f32)> {
        events
            .iter()
            .map(|&(user, item, kind)| {
                let kind = if kind % 2 == 0 { LoggedKind::Rating } else { LoggedKind::Click };
                (names[user as usize % 8].clone(), format!("i{}", item % 12), kind, f32::from(item % 5) + 1.0)
            })
            .collect()
    }

    proptest! {
        /// The indexes maintained per event equal those rebuilt from the
        /// per-user lists (what a snapshot load or a replay does).
        #[test]
        fn live_indexes_equal_rebuilt_ones(
            batches in prop::collection::vec(prop::collection::vec((0u8..8, 0u8..12, 0u8..4), 1..6), 1..30),
            forgets in prop::collection::vec(0u8..8, 0..4),
            half_life_ms in prop::option::of(1u64..10),
        ) {
            let names: Vec<String> = (0..8).map(|u| format!("u{u}")).collect();
            let dedup = DedupConfig::default();
            let half_life = half_life_ms.map(std::time::Duration::from_millis);
            let mut live = State::new(half_life);
            let mut replayed = State::new(half_life);
            replayed.begin_replay();
            let mut lsn = 0;
            for (at, batch) in batches.iter().enumerate() {
                let owned = events_record(batch, &names);
                let events = owned
                    .iter()
                    .map(|(user, item, kind, weight)| LoggedEvent {
                        user,
                        item,
                        kind: *kind,
                        weight: *weight,
                        timestamp_ms: at as i64,
                        event_id: None,
                    })
                    .collect();
                let record = LogRecord::Events(EventsV1 { ingested_ms: 0, events });
                lsn += 1;
                live.apply(lsn, &record, &dedup);
                replayed.apply(lsn, &record, &dedup);
                if let Some(&user) = forgets.get(at) {
                    let record = LogRecord::ForgetUser(ForgetUserV1 { user: &names[user as usize] });
                    lsn += 1;
                    live.apply(lsn, &record, &dedup);
                    replayed.apply(lsn, &record, &dedup);
                }
            }
            replayed.finish_replay();
            prop_assert_eq!(&live.item_users, &replayed.item_users);
            prop_assert_eq!(&live.item_others, &replayed.item_others);
            prop_assert_eq!(&live.popular, &replayed.popular);
            prop_assert_eq!(live.digest(), replayed.digest());
        }
    }
}
