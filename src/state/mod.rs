//! The in-memory state, derived from the log and nothing else: interned ids,
//! the interactions (`interactions.rs`), popularity (`popularity.rs`), the
//! indexes derived from the interactions alone (`derived.rs`: ItemRank's
//! column sums, `item_rank.rs`), removed items, the dedup window and the
//! model catalogue (`catalog.rs`). The replay's deferred application lives
//! apart, in `replay.rs`.
//!
//! `apply` is the only way it changes: the fields are private to this module
//! and its children, readers get shared borrows through the getters below.
//! So replaying the same records in the same order rebuilds the same state.

use serde::{Deserialize, Serialize};

use crate::config::DedupConfig;
use crate::dedup::{DedupEntries, DedupWindow, FirstSeen};
use crate::ids::{Dense, Interner};
use crate::record::{EventsV1, LogRecord, LoggedKind};

// The model catalogue is part of the state (rebuilt from records 4–6, saved
// in snapshots); the model code above reads it through `crate::model`.
pub(crate) mod catalog;
mod derived;
mod interactions;
mod item_model;
mod item_rank;
mod metadata;
mod popularity;
mod replay;

use catalog::Catalog;
use derived::Derived;
pub(crate) use interactions::event_seconds;
use interactions::Interactions;
pub(crate) use interactions::ItemUser;
pub use interactions::Pair;
pub use item_model::{IalsFactors, ItemModel, ItemModelInput, ItemModelRef, ItemWeights};
use metadata::Metadata;
pub use metadata::MetadataBody;
pub(crate) use metadata::{ItemMeta, Label, Labels};
pub(crate) use popularity::OrderedKey;
use popularity::Popularity;
use replay::Deferred;

/// Debug builds check every index against a rebuilt one after each record
/// applied while the state holds at most this many pairs (the check is
/// O(pairs + items log items): bigger states would make the tests quadratic).
const CHECK_PAIRS_MAX: u64 = 1 << 12;

#[derive(Default)]
pub(crate) struct State {
    users: Interner,
    items: Interner,
    interactions: Interactions,
    popularity: Popularity,
    derived: Derived,
    item_removed: Vec<bool>,
    dedup: DedupWindow,
    /// LSN of the last record applied.
    lsn_applied: u64,
    /// Stream sequence of the last replicated record applied (0: none;
    /// docs/CLUSTER.md).
    stream_seq: u64,
    /// Events applied since the log began (including forgotten users').
    events_applied: u64,
    /// Ranking model versions and activations.
    models: Catalog,
    /// The catalogue: item and user metadata, the `latest` indexes.
    metadata: Metadata,
    /// The active item model's reference (record 11), if any.
    item_model_ref: Option<ItemModelRef>,
    /// The item model's weights, once the engine loaded or trained them
    /// (not from the log: see `item_model.rs`); not in the digest nor in
    /// snapshots.
    item_model: Option<std::sync::Arc<ItemModel>>,
    /// `Some` while replaying a log (`begin_replay` to `finish_replay`): the
    /// derived indexes and the popularity order are not maintained per
    /// event but rebuilt once at the end, and the per-user lists are updated
    /// in deferred batches.
    replay: Option<Deferred>,
}

/// Getters: shared borrows, no copies (the read path and the strategies);
/// `#[inline]` as they replace field reads in the strategies' inner loops.
impl State {
    /// The item model `ease` or `ials` scores with, if one is attached.
    #[inline]
    pub fn item_model(&self) -> Option<&ItemModel> {
        self.item_model.as_deref()
    }

    /// The active item model's reference (record 11), if any.
    pub fn item_model_ref(&self) -> Option<&ItemModelRef> {
        self.item_model_ref.as_ref()
    }

    #[inline]
    pub fn users(&self) -> &Interner {
        &self.users
    }

    #[inline]
    pub fn items(&self) -> &Interner {
        &self.items
    }

    /// `user`'s pairs, sorted by item.
    #[inline]
    pub fn user_items(&self, user: Dense) -> &[Pair] {
        &self.interactions.user_items[user as usize]
    }

    /// Every user's pairs, by dense user id.
    #[inline]
    pub fn all_user_items(&self) -> &[Vec<Pair>] {
        &self.interactions.user_items
    }

    /// `user`'s Σ value².
    #[inline]
    pub fn user_norm_sq(&self, user: Dense) -> f64 {
        self.interactions.user_norm_sq[user as usize]
    }

    /// The users of `item`, in order of their first interaction, with their values.
    #[inline]
    pub fn item_users(&self, item: Dense) -> &[ItemUser] {
        &self.interactions.item_users[item as usize]
    }

    /// ItemRank's column sums, by dense item id.
    #[inline]
    pub fn item_others(&self) -> &[u64] {
        &self.derived.item_rank.item_others
    }

    /// Events seen for `item` (less its forgotten users').
    #[inline]
    pub fn item_events(&self, item: Dense) -> u64 {
        self.popularity.item_events[item as usize]
    }

    /// Items by popularity key, most popular first, with their keys.
    #[inline]
    pub fn popular(&self) -> impl Iterator<Item = (OrderedKey, Dense)> + '_ {
        self.popularity.popular.iter().map(|&(std::cmp::Reverse(key), item)| (key, item))
    }

    /// The items of `category` by popularity key, most popular first, with
    /// their keys (the same order as `popular`, restricted).
    #[inline]
    pub fn popular_in(&self, category: u32) -> impl Iterator<Item = (OrderedKey, Dense)> + '_ {
        self.popularity
            .by_category
            .get(category as usize)
            .into_iter()
            .flatten()
            .map(|&(std::cmp::Reverse(key), item)| (key, item))
    }

    /// The popularity score reported for `item`: its event count, or its
    /// decayed mass as of the latest event applied.
    #[inline]
    pub fn popularity_score(&self, item: Dense) -> f64 {
        self.popularity.score(item)
    }

    /// The popularity half-life in ms (`None`: plain counts).
    #[inline]
    pub fn half_life_ms(&self) -> Option<f64> {
        self.popularity.half_life_ms
    }

    #[inline]
    pub fn dedup(&self) -> &DedupWindow {
        &self.dedup
    }

    /// LSN of the last record applied.
    #[inline]
    pub fn lsn_applied(&self) -> u64 {
        self.lsn_applied
    }

    /// Stream sequence of the last replicated record applied (0: none).
    pub fn stream_seq(&self) -> u64 {
        self.stream_seq
    }

    /// Events applied since the log began (including forgotten users').
    #[inline]
    pub fn events_applied(&self) -> u64 {
        self.events_applied
    }

    #[inline]
    pub fn models(&self) -> &Catalog {
        &self.models
    }

    /// `item`'s catalogue entry, if it has one.
    #[inline]
    pub fn item_meta(&self, item: Dense) -> Option<&ItemMeta> {
        self.metadata.item(item)
    }

    /// Whether `item` was removed (`remove_item`): it is never returned
    /// again, nor listed in the catalogue.
    #[inline]
    pub fn item_is_removed(&self, item: Dense) -> bool {
        self.item_removed[item as usize]
    }

    /// Whether a read at `now_ms` may return `item` at all: not removed,
    /// not hidden, published, not expired.
    #[inline]
    pub fn item_visible(&self, item: Dense, now_ms: i64) -> bool {
        if self.item_removed[item as usize] {
            return false;
        }
        // Dense arrays only: this runs for every candidate of every read.
        self.metadata.visible_at(item, now_ms)
    }

    /// The items of category `category`, sorted by dense id.
    pub fn category_items(&self, category: u32) -> &[Dense] {
        self.metadata.category_items(category)
    }

    /// Category names ↔ ids.
    #[inline]
    pub fn categories(&self) -> &Interner {
        self.metadata.categories()
    }

    /// Label keys ↔ ids.
    #[inline]
    pub fn label_keys(&self) -> &Interner {
        self.metadata.label_keys()
    }

    /// `user`'s labels, if set.
    pub fn user_labels(&self, user: Dense) -> Option<&Labels> {
        self.metadata.user_labels(user)
    }

    /// Items with a catalogue entry.
    pub fn catalogue_items(&self) -> usize {
        self.metadata.items_with_meta()
    }

    /// Items with a publication time, newest first (all, or one category's).
    pub fn latest(&self, category: Option<u32>) -> impl Iterator<Item = (i64, Dense)> + '_ {
        self.metadata.latest(category)
    }

    /// Items with a catalogue entry from dense id `from` on, in dense order.
    pub fn catalogue_from(&self, from: Dense) -> impl Iterator<Item = (Dense, &ItemMeta)> + '_ {
        self.metadata.items_from(from)
    }

    #[inline]
    pub fn pair(&self, user: Dense, item: Dense) -> Option<&Pair> {
        self.interactions.search(user, item).ok().map(|at| &self.interactions.user_items[user as usize][at])
    }

    /// Stored (user, item) pairs.
    #[inline]
    pub fn pairs(&self) -> u64 {
        self.interactions.pair_count()
    }
}

/// `apply` and what it calls: the only code that changes the state.
impl State {
    /// An empty state whose popularity decays with `half_life` (or counts).
    pub fn new(half_life: Option<std::time::Duration>) -> State {
        let half_life_ms = half_life.map(|half_life| half_life.as_secs_f64() * 1000.0);
        State { popularity: Popularity::new(half_life_ms), ..State::default() }
    }

    /// Attaches trained or loaded item-model weights (or detaches them with
    /// `None`). They are a cache of the artefact the log names, not state
    /// derived by `apply`: the digest and snapshots leave them out. Refused
    /// (false) when the weights' items are not the state's items
    /// `0..n_items`, so a model never scores items it was not trained on.
    pub fn attach_item_model(&mut self, weights: Option<std::sync::Arc<ItemModel>>) -> bool {
        if let Some(weights) = &weights {
            let n = weights.n_items() as usize;
            let names = self.items.names();
            if n > names.len()
                || weights.names().len() != n
                || weights.names().iter().zip(names).any(|(have, want)| have.as_str() != &**want)
            {
                return false;
            }
        }
        self.item_model = weights;
        true
    }

    /// Applies the record at `lsn`. Records must come in LSN order; a record
    /// at or below `lsn_applied` is already in the state and is ignored.
    pub fn apply(&mut self, lsn: u64, record: &LogRecord<'_>, dedup: &DedupConfig) {
        if lsn <= self.lsn_applied {
            return;
        }
        match record {
            // The engine logs a replicated record only as the successor of
            // the last one (`Engine::apply_replicated`) and replay refuses a
            // log where one is not (`recover::replay`); one at or below the
            // state's stream sequence is a message already applied.
            LogRecord::Replicated { stream_seq, .. } if *stream_seq <= self.stream_seq => {}
            LogRecord::Replicated { stream_seq, record } => {
                self.stream_seq = *stream_seq;
                match record.as_ref() {
                    // The stream may carry an event id twice (a retry after
                    // its duplicate window): every replica drops the same
                    // repeats, as the window stands at this record.
                    LogRecord::Events(batch) => {
                        let fresh = self.fresh_events(batch, dedup);
                        self.apply_change(lsn, &LogRecord::Events(fresh), dedup);
                    }
                    // A model message that no longer fits the catalog
                    // (published from an older view) changes nothing.
                    other if !self.models.admits_replicated(other) => {}
                    other => self.apply_change(lsn, other, dedup),
                }
            }
            other => self.apply_change(lsn, other, dedup),
        }
        // Paired with the early return above: LSNs only grow.
        assert!(lsn > self.lsn_applied, "record {lsn} applied after {}", self.lsn_applied);
        self.lsn_applied = lsn;
        // O(1): every per-user and per-item array grew with its interner.
        assert!(self.interactions.user_items.len() == self.users.len(), "per-user lists out of step");
        assert!(
            self.interactions.item_users.len() == self.items.len() && self.item_removed.len() == self.items.len(),
            "per-item arrays out of step"
        );
        if cfg!(debug_assertions)
            && self.replay.is_none()
            && self.pairs() <= CHECK_PAIRS_MAX
            && self.items.len() as u64 <= CHECK_PAIRS_MAX
        {
            if let Err(reason) = self.check() {
                panic!("after record {lsn}: {reason}");
            }
        }
    }

    /// The events of a replicated batch whose id is neither in the dedup
    /// window (as of the batch's `ingested_ms`) nor repeated earlier in the
    /// batch; events without an id are all kept.
    fn fresh_events<'a>(&self, batch: &EventsV1<'a>, dedup: &DedupConfig) -> EventsV1<'a> {
        let mut seen: Vec<&str> = Vec::new();
        let mut events = Vec::with_capacity(batch.events.len());
        for event in &batch.events {
            if let Some(id) = event.event_id {
                if self.dedup.lookup(id, batch.ingested_ms, dedup).is_some() || seen.contains(&id) {
                    continue;
                }
                seen.push(id);
            }
            events.push(event.clone());
        }
        EventsV1 { ingested_ms: batch.ingested_ms, events }
    }

    /// The change a record makes (`apply` keeps the LSN and the checks).
    fn apply_change(&mut self, lsn: u64, record: &LogRecord<'_>, dedup: &DedupConfig) {
        match record {
            LogRecord::Events(batch) => {
                // The popularity order is updated once per distinct item of
                // the record, at its end (popular items repeat within a
                // batch); the keys themselves change per event.
                let mut touched: rustc_hash::FxHashMap<Dense, f64> = rustc_hash::FxHashMap::default();
                let hints = self.position_hints(batch);
                for (at, event) in batch.events.iter().enumerate() {
                    // Names the hints already looked up are interned (and
                    // stay so within a record): no second lookup.
                    let (user, item, hint) = match hints.get(at).copied().flatten() {
                        Some(PositionHint { user, item, at }) => (user, item, Some(at)),
                        None => (self.intern_user(event.user), self.intern_item(event.item), None),
                    };
                    if self.replay.is_none() {
                        touched.entry(item).or_insert(self.popularity.key(item));
                    }
                    self.add_interaction(user, item, event.kind, event.weight, event.timestamp_ms, hint);
                    if let Some(id) = event.event_id {
                        self.dedup.record(id, FirstSeen { lsn, ingested_ms: batch.ingested_ms }, dedup);
                    }
                }
                for (item, before) in touched {
                    self.popularity.reorder(item, before, self.metadata.item_categories(item));
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
            LogRecord::ModelRoutes(routes) => self.models.set_routes(routes),
            LogRecord::ItemUpsert(upsert) => {
                let item = self.intern_item(upsert.item);
                let old: Option<Box<[u32]>> = self.replay.is_none().then(|| self.metadata.item_categories(item).into());
                self.metadata.upsert_item(item, upsert);
                if let Some(old) = old {
                    self.popularity.recategorise(item, &old, self.metadata.item_categories(item));
                }
            }
            LogRecord::ItemHidden(hidden) => {
                let item = self.intern_item(hidden.item);
                self.metadata.set_hidden(item, hidden.hidden);
            }
            LogRecord::UserUpsert(upsert) => {
                let user = self.intern_user(upsert.user);
                self.metadata.upsert_user(user, &upsert.labels);
            }
            LogRecord::ExpireFeedback(expire) => self.expire_feedback(expire.before_ms),
            LogRecord::ItemModelActivated(activated) => {
                self.item_model_ref = Some(ItemModelRef {
                    version: activated.version,
                    sha256: activated.sha256,
                    bytes: activated.bytes,
                    n_items: activated.n_items,
                    lambda_bits: activated.lambda_bits,
                    input: activated.input,
                    lsn_trained: activated.lsn_trained,
                    at_ms: activated.at_ms,
                    lsn,
                });
            }
            // `LogRecord::decode` never nests one in another.
            LogRecord::Replicated { .. } => debug_assert!(false, "a replicated record inside another at {lsn}"),
        }
    }

    fn intern_user(&mut self, name: &str) -> Dense {
        let user = self.users.intern(name);
        if user as usize == self.interactions.user_items.len() {
            self.interactions.push_user();
        }
        debug_assert!((user as usize) < self.interactions.user_items.len());
        user
    }

    fn intern_item(&mut self, name: &str) -> Dense {
        let item = self.items.intern(name);
        if item as usize == self.item_removed.len() {
            self.interactions.push_item();
            self.popularity.push_item(item, self.replay.is_none());
            for index in self.derived.all_mut() {
                index.on_item_added();
            }
            self.item_removed.push(false);
            self.metadata.push_item();
        }
        debug_assert!((item as usize) < self.item_removed.len());
        item
    }

    /// Where each event's pair is, or would go, in its user's list, searched
    /// for the whole batch at once before it is applied (see
    /// `Interactions::search_many`; an event earlier in the batch may move a
    /// position, so each is only a hint, checked before use), with the
    /// dense ids looked up for it. `None` for a user or item not interned
    /// yet, and during a replay (which defers the lists).
    fn position_hints(&self, batch: &EventsV1<'_>) -> Vec<Option<PositionHint>> {
        if self.replay.is_some() || batch.events.len() < 2 {
            return Vec::new();
        }
        let pairs: Vec<Option<(Dense, Dense)>> =
            batch.events.iter().map(|event| Some((self.users.get(event.user)?, self.items.get(event.item)?))).collect();
        let found = self.interactions.search_many(&pairs);
        pairs
            .into_iter()
            .zip(found)
            .map(|(pair, at)| Some(PositionHint { user: pair?.0, item: pair?.1, at: at? }))
            .collect()
    }

    fn add_interaction(
        &mut self,
        user: Dense,
        item: Dense,
        kind: LoggedKind,
        weight: f32,
        timestamp_ms: i64,
        hint: Option<usize>,
    ) {
        let rating = kind == LoggedKind::Rating;
        // The popularity key and count change now, also during a replay (they
        // are global and in log order); the order changes at the record's end.
        let mass = self.popularity.add_event(item, timestamp_ms);
        let at_s = interactions::event_seconds(timestamp_ms);
        if let Some(deferred) = &mut self.replay {
            if deferred.push(user, item, rating, weight, mass, at_s) {
                deferred.apply_to(&mut self.interactions);
            }
            return;
        }
        let pos = match self.interactions.search_hinted(user, item, hint) {
            Ok(pos) => pos,
            Err(pos) => {
                for index in self.derived.all_mut() {
                    index.on_pair_added(&self.interactions.user_item_ids[user as usize], item);
                }
                self.interactions.insert_pair(user, item, pos);
                pos
            }
        };
        self.interactions.add_event(user, pos, rating, weight, mass, at_s);
    }

    fn forget(&mut self, user: Dense) {
        // During a replay the derived indexes and the popularity order are
        // rebuilt at the end: only what later records read is kept exact
        // here (lists, slots, event counts, popularity keys).
        if let Some(deferred) = &mut self.replay {
            deferred.apply_to(&mut self.interactions);
        }
        self.metadata.forget_user(user);
        let ordered = self.replay.is_none();
        let pairs = self.interactions.remove_user(user);
        if ordered {
            for index in self.derived.all_mut() {
                index.on_user_forgotten(&pairs);
            }
        }
        for pair in &pairs {
            let interactions = &self.interactions;
            let categories = self.metadata.item_categories(pair.item);
            self.popularity
                .forget_events(pair.item, pair.events, ordered, categories, || interactions.item_mass(pair.item));
        }
    }

    /// Removes every pair whose newest event is in a whole second before
    /// `before_ms`'s, with its events' share of popularity; the derived
    /// indexes are rebuilt (O(pairs): expiry runs on a schedule, not per event).
    fn expire_feedback(&mut self, before_ms: i64) {
        if let Some(deferred) = &mut self.replay {
            deferred.apply_to(&mut self.interactions);
        }
        let before_s = interactions::event_seconds(before_ms);
        let ordered = self.replay.is_none();
        let mut expired_any = false;
        for user in 0..self.users.len() as Dense {
            let gone = self.interactions.remove_pairs(user, |pair| pair.last_s < before_s);
            for pair in &gone {
                let interactions = &self.interactions;
                let categories = self.metadata.item_categories(pair.item);
                self.popularity
                    .forget_events(pair.item, pair.events, ordered, categories, || interactions.item_mass(pair.item));
            }
            expired_any |= !gone.is_empty();
        }
        if expired_any && ordered {
            let items = self.items.len();
            for index in self.derived.all_mut() {
                index.rebuild(&self.interactions, items);
            }
        }
    }

    /// Starts a replay: per-event index maintenance is deferred.
    pub fn begin_replay(&mut self) {
        assert!(self.replay.is_none(), "a replay is already under way");
        self.replay = Some(Deferred::default());
    }

    /// Ends a replay: applies the deferred events, then rebuilds the derived
    /// indexes and the popularity order from the per-user lists, in
    /// O(pairs). The result is exactly what per-event maintenance would have
    /// built.
    pub fn finish_replay(&mut self) {
        if let Some(mut deferred) = self.replay.take() {
            deferred.apply_to(&mut self.interactions);
        }
        self.rebuild_derived();
        debug_assert_eq!(self.check(), Ok(()));
    }

    fn rebuild_derived(&mut self) {
        let items = self.items.len();
        for index in self.derived.all_mut() {
            index.rebuild(&self.interactions, items);
        }
        self.popularity.rebuild_order(self.metadata.category_lists());
    }

    /// Checks every index against the per-user lists (O(pairs + items log
    /// items)): the maintained indexes equal the rebuilt ones.
    fn check(&self) -> Result<(), String> {
        let items = self.items.len();
        if self.interactions.item_users.len() != items || self.item_removed.len() != items {
            return Err(format!("{items} items but {} item lists", self.interactions.item_users.len()));
        }
        self.interactions.check()?;
        let mut pair_events = vec![0u64; items];
        for pair in self.interactions.user_items.iter().flatten() {
            pair_events[pair.item as usize] += u64::from(pair.events);
        }
        self.popularity.check(&pair_events, self.metadata.category_lists())?;
        for index in self.derived.all() {
            index.check(&self.interactions, items)?;
        }
        self.metadata.check(items)
    }
}

/// Snapshots and digests.
impl State {
    /// The catalogue's part of a snapshot (a copy: written after the body).
    pub fn metadata_body(&self) -> MetadataBody {
        self.metadata.body()
    }

    /// What a snapshot of the state as it stands holds, copied (see
    /// `SnapshotCopy`); the dedup window into `dedup`'s buffers.
    pub fn snapshot_copy(&self, dedup: DedupEntries) -> SnapshotCopy {
        SnapshotCopy {
            lsn_applied: self.lsn_applied,
            events_applied: self.events_applied,
            users: self.users.names().to_vec(),
            items: self.items.names().to_vec(),
            user_items: self.interactions.user_items.clone(),
            user_norm_sq: self.interactions.user_norm_sq.clone(),
            half_life_ms: self.popularity.half_life_ms,
            latest_ms: self.popularity.latest_ms,
            item_popularity: self.popularity.item_popularity.clone(),
            removed_items: self.removed_items(),
            dedup: self.dedup.entries_copy(dedup),
            models: self.models.clone(),
            metadata: self.metadata_body(),
            stream_seq: self.stream_seq,
            item_model_ref: self.item_model_ref.clone(),
        }
    }

    fn removed_items(&self) -> Vec<Dense> {
        (0..self.item_removed.len() as Dense).filter(|&item| self.item_removed[item as usize]).collect()
    }

    /// A borrowed view that serialises exactly like `SnapshotBody`.
    pub fn snapshot_view(&self) -> SnapshotView<'_> {
        SnapshotView {
            lsn_applied: self.lsn_applied,
            events_applied: self.events_applied,
            users: self.users.names(),
            items: self.items.names(),
            user_items: &self.interactions.user_items,
            user_norm_sq: &self.interactions.user_norm_sq,
            half_life_ms: self.popularity.half_life_ms,
            latest_ms: self.popularity.latest_ms,
            item_popularity: &self.popularity.item_popularity,
            removed_items: self.removed_items(),
            dedup: self.dedup.entries().collect(),
        }
    }

    /// A digest of everything the state holds except the clock readings in
    /// the dedup window and the item model's activation time: two runs that applied the same records agree on it.
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
        self.stream_seq.hash(&mut hasher);
        // Its activation time is a clock reading, as the dedup window's are.
        self.item_model_ref.as_ref().map(|active| ItemModelRef { at_ms: 0, ..active.clone() }).hash(&mut hasher);
        match postcard::to_stdvec(&self.metadata.body()) {
            Ok(bytes) => bytes.hash(&mut hasher),
            Err(err) => err.to_string().hash(&mut hasher),
        }
        hasher.finish()
    }

    /// `digest` without what is local to a node (LSNs, in the state and in
    /// the dedup window, which differ between replicas of the same stream),
    /// with the stream sequence: replicas at the same stream position agree
    /// on it (docs/CLUSTER.md).
    pub fn replica_digest(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut view = self.snapshot_view();
        view.lsn_applied = 0;
        for entry in &mut view.dedup {
            entry.1 = FirstSeen { lsn: 0, ingested_ms: entry.1.ingested_ms };
        }
        let mut hasher = std::hash::DefaultHasher::new();
        self.stream_seq.hash(&mut hasher);
        match postcard::to_stdvec(&view) {
            Ok(bytes) => bytes.hash(&mut hasher),
            Err(err) => err.to_string().hash(&mut hasher),
        }
        self.models.without_lsns().hash(&mut hasher);
        match postcard::to_stdvec(&self.metadata.body()) {
            Ok(bytes) => bytes.hash(&mut hasher),
            Err(err) => err.to_string().hash(&mut hasher),
        }
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
            interactions: Interactions {
                user_items: body.user_items,
                // Rebuilt with the item lists (`place_item_users`).
                user_item_ids: Vec::new(),
                user_norm_sq: body.user_norm_sq,
                item_users: Vec::new(),
            },
            popularity: Popularity {
                item_events: vec![0; items],
                item_popularity: body.item_popularity,
                half_life_ms: body.half_life_ms,
                latest_ms: body.latest_ms,
                ..Popularity::default()
            },
            derived: Derived::default(),
            item_removed: vec![false; items],
            dedup: DedupWindow::from_entries(body.dedup),
            lsn_applied: body.lsn_applied,
            stream_seq: body.stream_seq,
            events_applied: body.events_applied,
            models: body.models,
            metadata: Metadata::default(),
            item_model_ref: body.item_model_ref,
            item_model: None,
            replay: None,
        };
        state.metadata = Metadata::from_body(body.metadata, users, items)?;
        if state.users.len() != users || state.items.len() != items {
            return Err("duplicate ids".into());
        }
        for (user, pairs) in state.interactions.user_items.iter().enumerate() {
            for (at, pair) in pairs.iter().enumerate() {
                if pair.item as usize >= items || (at > 0 && pairs[at - 1].item >= pair.item) {
                    return Err(format!("user {user}: interactions out of order or out of range"));
                }
                state.popularity.item_events[pair.item as usize] += u64::from(pair.events);
            }
        }
        for &item in &body.removed_items {
            match state.item_removed.get_mut(item as usize) {
                Some(removed) => *removed = true,
                None => return Err(format!("removed item {item} out of range")),
            }
        }
        state.interactions.place_item_users(items)?;
        state.rebuild_derived();
        debug_assert!(state.pairs() > CHECK_PAIRS_MAX || state.check().is_ok());
        Ok(state)
    }
}

/// An event's interned user and item, and where the pair is or would go in
/// the user's list (`State::position_hints`).
#[derive(Clone, Copy)]
struct PositionHint {
    user: Dense,
    item: Dense,
    at: usize,
}

/// A copy of what a snapshot stores, taken under the state's read lock and
/// encoded after it is released: copying is mostly `memcpy` (the pairs, the
/// dedup window's two buffers), where encoding walks every field — 250-300
/// ms for a 50 MB snapshot on the load test's state, during which every
/// write waited for the lock.
pub(crate) struct SnapshotCopy {
    lsn_applied: u64,
    events_applied: u64,
    users: Vec<std::sync::Arc<str>>,
    items: Vec<std::sync::Arc<str>>,
    user_items: Vec<Vec<Pair>>,
    user_norm_sq: Vec<f64>,
    half_life_ms: Option<f64>,
    latest_ms: i64,
    item_popularity: Vec<f64>,
    removed_items: Vec<Dense>,
    dedup: DedupEntries,
    pub(crate) models: Catalog,
    pub(crate) metadata: MetadataBody,
    pub(crate) stream_seq: u64,
    pub(crate) item_model_ref: Option<ItemModelRef>,
}

impl SnapshotCopy {
    pub fn lsn_applied(&self) -> u64 {
        self.lsn_applied
    }

    /// Serialises exactly like `State::snapshot_view`.
    pub fn view(&self) -> SnapshotView<'_> {
        SnapshotView {
            lsn_applied: self.lsn_applied,
            events_applied: self.events_applied,
            users: &self.users,
            items: &self.items,
            user_items: &self.user_items,
            user_norm_sq: &self.user_norm_sq,
            half_life_ms: self.half_life_ms,
            latest_ms: self.latest_ms,
            item_popularity: &self.item_popularity,
            removed_items: self.removed_items.clone(),
            dedup: self.dedup.entries().collect(),
        }
    }
}

/// What a snapshot stores, borrowed from the live state for writing; the
/// field order must stay that of `SnapshotBody`.
#[derive(Serialize)]
pub(crate) struct SnapshotView<'a> {
    lsn_applied: u64,
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
    pub(crate) lsn_applied: u64,
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
    /// Read after the model catalog (format version 4), see `snapshot`.
    #[serde(skip)]
    pub(crate) metadata: MetadataBody,
    /// Read after the catalogue (format version 5), see `snapshot`.
    #[serde(skip)]
    pub(crate) stream_seq: u64,
    /// Read after the stream sequence (format version 6), see `snapshot`.
    #[serde(skip)]
    pub(crate) item_model_ref: Option<ItemModelRef>,
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
            prop_assert_eq!(&live.interactions.item_users, &replayed.interactions.item_users);
            prop_assert_eq!(&live.derived.item_rank.item_others, &replayed.derived.item_rank.item_others);
            prop_assert_eq!(&live.popularity.popular, &replayed.popularity.popular);
            prop_assert_eq!(live.check(), Ok(()));
            prop_assert_eq!(replayed.check(), Ok(()));
            prop_assert_eq!(live.digest(), replayed.digest());
        }
    }

    /// A state after three users' events on three items, at LSNs 1..=3.
    fn small_state(half_life: Option<std::time::Duration>) -> State {
        let mut state = State::new(half_life);
        let dedup = DedupConfig::default();
        for (lsn, (user, items)) in [("a", ["x", "y"]), ("b", ["y", "z"]), ("c", ["x", "z"])].into_iter().enumerate() {
            let events = items
                .iter()
                .map(|item| LoggedEvent {
                    user,
                    item,
                    kind: LoggedKind::Click,
                    weight: 1.0,
                    timestamp_ms: lsn as i64,
                    event_id: None,
                })
                .collect();
            state.apply(lsn as u64 + 1, &LogRecord::Events(EventsV1 { ingested_ms: 0, events }), &dedup);
        }
        state
    }

    /// What a checkpoint encodes after releasing the lock equals what it
    /// encoded under it: every field, the dedup window with a dead slot,
    /// a removed item and the catalogue included.
    #[test]
    fn a_snapshot_copy_encodes_to_the_same_bytes_as_the_state() -> Result<(), crate::error::EngineError> {
        let mut state = small_state(Some(std::time::Duration::from_millis(5)));
        let dedup = DedupConfig { max_ids: 3, max_age: std::time::Duration::from_secs(60) };
        let ids = ["e1", "e2", "e1", "e3", "e4"];
        for (at, id) in ids.iter().enumerate() {
            let event = LoggedEvent {
                user: "a",
                item: "z",
                kind: LoggedKind::Click,
                weight: 1.0,
                timestamp_ms: 10 + at as i64,
                event_id: Some(id),
            };
            let record = LogRecord::Events(EventsV1 { ingested_ms: at as i64, events: vec![event] });
            state.apply(4 + at as u64, &record, &dedup);
        }
        state.apply(9, &LogRecord::RemoveItem(crate::record::RemoveItemV1 { item: "y" }), &dedup);
        assert_eq!(state.dedup().entries().count(), 3, "e1's first slot dead, e2 evicted");
        let copied = crate::snapshot::encode_copy(&state.snapshot_copy(DedupEntries::default()))?;
        assert_eq!(copied, crate::snapshot::encode_state(&state)?);
        Ok(())
    }

    #[test]
    fn the_check_finds_an_index_that_differs_from_the_rebuilt_one() {
        for half_life in [None, Some(std::time::Duration::from_millis(5))] {
            let state = small_state(half_life);
            assert_eq!(state.check(), Ok(()));

            let mut stale = small_state(half_life);
            stale.derived.item_rank.item_others[0] += 1;
            assert!(stale.check().is_err(), "a column sum off by one");

            let mut stale = small_state(half_life);
            stale.interactions.item_users[1][0].value += 1.0;
            assert!(stale.check().is_err(), "an item list value");

            let mut stale = small_state(half_life);
            stale.popularity.item_events[2] += 1;
            assert!(stale.check().is_err(), "an event count");

            let mut stale = small_state(half_life);
            stale.popularity.item_popularity[0] += 1.0;
            assert!(stale.check().is_err(), "the order under a changed key");
        }
    }

    #[test]
    fn a_record_at_or_below_the_applied_lsn_is_ignored() {
        let mut state = small_state(None);
        let digest = state.digest();
        assert_eq!(state.lsn_applied(), 3);
        let forget = LogRecord::ForgetUser(ForgetUserV1 { user: "a" });
        for lsn in [1, 3] {
            state.apply(lsn, &forget, &DedupConfig::default());
            assert_eq!((state.lsn_applied(), state.digest()), (3, digest));
        }
        state.apply(4, &forget, &DedupConfig::default());
        assert_eq!(state.lsn_applied(), 4);
        assert_ne!(state.digest(), digest);
        assert_eq!(state.check(), Ok(()));
    }
}
