//! The catalogue's part of the state: per item its categories, labels,
//! hidden flag, publication time and expiry; per user their labels; and the
//! `latest` indexes (items by publication time, overall and per category).
//! Category names and label keys are interned to dense ids, so an item's
//! metadata is a few small arrays and a filter compares integers.
//!
//! Changed only by `State::apply` (records 7–9, forget), saved in snapshots
//! (`MetadataBody`); the `latest` indexes are derived and rebuilt on load.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::ids::{Dense, Interner};
use crate::record::{ItemUpsertV1, LoggedLabel};

/// A label's value in the state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) enum Label {
    Text(Box<str>),
    Number(f64),
}

/// Interned label key → value, sorted by key id.
pub(crate) type Labels = Box<[(u32, Label)]>;

/// One item's metadata.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct ItemMeta {
    /// Interned categories, sorted, distinct.
    pub categories: Box<[u32]>,
    pub labels: Labels,
    pub hidden: bool,
    pub timestamp_ms: Option<i64>,
    pub expires_ms: Option<i64>,
}

impl ItemMeta {
    /// The value of label `key`, if the item has it.
    #[inline]
    pub fn label(&self, key: u32) -> Option<&Label> {
        self.labels.binary_search_by_key(&key, |(id, _)| *id).ok().map(|at| &self.labels[at].1)
    }
}

/// Items newest first; ties in dense order.
type ByTime = BTreeSet<(Reverse<i64>, Dense)>;

/// `Metadata::flags` bits: the item is hidden.
pub(crate) const FLAG_HIDDEN: u8 = 1;

#[derive(Default)]
pub(super) struct Metadata {
    categories: Interner,
    label_keys: Interner,
    /// By dense item id; `None` for items known only from events.
    items: Vec<Option<Box<ItemMeta>>>,
    /// By dense item id, `FLAG_*`, and the window `[from, until)` (ms) in
    /// which a read may return it: what a read must know of every candidate,
    /// in dense arrays, so a check is three reads and no pointer chase.
    flags: Vec<u8>,
    visible_from: Vec<i64>,
    visible_until: Vec<i64>,
    /// Per category id, its items (sorted dense ids).
    category_items: Vec<Vec<Dense>>,
    /// Items with metadata.
    items_with_meta: usize,
    users: BTreeMap<Dense, Labels>,
    /// Items with a publication time, newest first.
    latest: ByTime,
    /// The same, per category id.
    latest_by_category: Vec<ByTime>,
}

/// What a snapshot stores of the catalogue (format version 4).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MetadataBody {
    pub(crate) categories: Vec<String>,
    pub(crate) label_keys: Vec<String>,
    pub(crate) items: Vec<(Dense, ItemMeta)>,
    pub(crate) users: Vec<(Dense, Labels)>,
}

/// Getters.
impl Metadata {
    #[inline]
    pub(super) fn item(&self, item: Dense) -> Option<&ItemMeta> {
        self.items.get(item as usize).and_then(|meta| meta.as_deref())
    }

    /// Whether a read at `now_ms` may return `item` as far as its catalogue
    /// entry says: not hidden, published, not expired.
    #[inline]
    pub(super) fn visible_at(&self, item: Dense, now_ms: i64) -> bool {
        let at = item as usize;
        self.flags[at] & FLAG_HIDDEN == 0 && self.visible_from[at] <= now_ms && now_ms < self.visible_until[at]
    }

    /// The items of `category`, sorted.
    pub(super) fn category_items(&self, category: u32) -> &[Dense] {
        self.category_items.get(category as usize).map_or(&[], Vec::as_slice)
    }

    /// Per category id, its items (sorted).
    pub(super) fn category_lists(&self) -> impl Iterator<Item = &[Dense]> + '_ {
        self.category_items.iter().map(Vec::as_slice)
    }

    /// The categories of `item` (sorted; empty without metadata).
    pub(super) fn item_categories(&self, item: Dense) -> &[u32] {
        self.item(item).map_or(&[], |meta| &meta.categories)
    }

    pub(super) fn categories(&self) -> &Interner {
        &self.categories
    }

    pub(super) fn label_keys(&self) -> &Interner {
        &self.label_keys
    }

    pub(super) fn user_labels(&self, user: Dense) -> Option<&Labels> {
        self.users.get(&user)
    }

    pub(super) fn items_with_meta(&self) -> usize {
        self.items_with_meta
    }

    /// Items with a publication time, newest first: all of them, or those of
    /// `category`.
    pub(super) fn latest(&self, category: Option<u32>) -> impl Iterator<Item = (i64, Dense)> + '_ {
        let set = match category {
            None => Some(&self.latest),
            Some(category) => self.latest_by_category.get(category as usize),
        };
        set.into_iter().flatten().map(|&(Reverse(at), item)| (at, item))
    }

    /// Items with metadata from dense id `from` on, in dense order.
    pub(super) fn items_from(&self, from: Dense) -> impl Iterator<Item = (Dense, &ItemMeta)> + '_ {
        self.items
            .iter()
            .enumerate()
            .skip(from as usize)
            .filter_map(|(item, meta)| meta.as_deref().map(|meta| (item as Dense, meta)))
    }
}

/// Changes (called by `State::apply` only).
impl Metadata {
    /// A new item joined the state (no metadata yet).
    pub(super) fn push_item(&mut self) {
        self.items.push(None);
        self.flags.push(0);
        self.visible_from.push(i64::MIN);
        self.visible_until.push(i64::MAX);
    }

    pub(super) fn upsert_item(&mut self, item: Dense, record: &ItemUpsertV1<'_>) {
        let mut categories: Vec<u32> = record.categories.iter().map(|name| self.intern_category(name)).collect();
        categories.sort_unstable();
        categories.dedup();
        let labels = self.intern_labels(&record.labels);
        let meta = ItemMeta {
            categories: categories.into(),
            labels,
            hidden: record.hidden,
            timestamp_ms: record.timestamp_ms,
            expires_ms: record.expires_ms,
        };
        self.replace(item, meta);
    }

    pub(super) fn set_hidden(&mut self, item: Dense, hidden: bool) {
        let mut meta = self.item(item).cloned().unwrap_or_default();
        meta.hidden = hidden;
        self.replace(item, meta);
    }

    pub(super) fn upsert_user(&mut self, user: Dense, labels: &[(&str, LoggedLabel<'_>)]) {
        let labels = self.intern_labels(labels);
        self.users.insert(user, labels);
    }

    pub(super) fn forget_user(&mut self, user: Dense) {
        self.users.remove(&user);
    }

    fn replace(&mut self, item: Dense, meta: ItemMeta) {
        let slot = &mut self.items[item as usize];
        if let Some(old) = slot.take() {
            Self::unindex(&mut self.latest, &mut self.latest_by_category, item, &old);
            for &category in old.categories.iter() {
                let members = &mut self.category_items[category as usize];
                if let Ok(at) = members.binary_search(&item) {
                    members.remove(at);
                }
            }
        } else {
            self.items_with_meta += 1;
        }
        Self::index(&mut self.latest, &mut self.latest_by_category, item, &meta);
        for &category in meta.categories.iter() {
            if self.category_items.len() <= category as usize {
                self.category_items.resize_with(category as usize + 1, Vec::new);
            }
            let members = &mut self.category_items[category as usize];
            if let Err(at) = members.binary_search(&item) {
                members.insert(at, item);
            }
        }
        self.flags[item as usize] = if meta.hidden { FLAG_HIDDEN } else { 0 };
        self.visible_from[item as usize] = meta.timestamp_ms.unwrap_or(i64::MIN);
        self.visible_until[item as usize] = meta.expires_ms.unwrap_or(i64::MAX);
        self.items[item as usize] = Some(Box::new(meta));
    }

    fn index(latest: &mut ByTime, by_category: &mut Vec<ByTime>, item: Dense, meta: &ItemMeta) {
        let Some(at) = meta.timestamp_ms else { return };
        latest.insert((Reverse(at), item));
        for &category in meta.categories.iter() {
            if by_category.len() <= category as usize {
                by_category.resize_with(category as usize + 1, ByTime::new);
            }
            by_category[category as usize].insert((Reverse(at), item));
        }
    }

    fn unindex(latest: &mut ByTime, by_category: &mut [ByTime], item: Dense, meta: &ItemMeta) {
        let Some(at) = meta.timestamp_ms else { return };
        latest.remove(&(Reverse(at), item));
        for &category in meta.categories.iter() {
            if let Some(set) = by_category.get_mut(category as usize) {
                set.remove(&(Reverse(at), item));
            }
        }
    }

    fn intern_category(&mut self, name: &str) -> u32 {
        self.categories.intern(name)
    }

    fn intern_labels(&mut self, labels: &[(&str, LoggedLabel<'_>)]) -> Labels {
        let mut interned: Vec<(u32, Label)> = labels
            .iter()
            .map(|(key, value)| {
                let value = match value {
                    LoggedLabel::Text(text) => Label::Text((*text).into()),
                    LoggedLabel::Number(number) => Label::Number(*number),
                };
                (self.label_keys.intern(key), value)
            })
            .collect();
        interned.sort_by_key(|(key, _)| *key);
        interned.dedup_by_key(|(key, _)| *key);
        interned.into()
    }
}

/// Snapshots and checks.
impl Metadata {
    pub(super) fn body(&self) -> MetadataBody {
        MetadataBody {
            categories: self.categories.names().iter().map(|name| name.to_string()).collect(),
            label_keys: self.label_keys.names().iter().map(|name| name.to_string()).collect(),
            items: self.items_from(0).map(|(item, meta)| (item, meta.clone())).collect(),
            users: self.users.iter().map(|(&user, labels)| (user, labels.clone())).collect(),
        }
    }

    /// Rebuilds the catalogue from a snapshot's part, for a state of
    /// `users` users and `items` items; refuses ids out of range.
    pub(super) fn from_body(body: MetadataBody, users: usize, items: usize) -> Result<Metadata, String> {
        let categories = body.categories.len();
        let keys = body.label_keys.len();
        let mut metadata = Metadata {
            categories: Interner::from_names(body.categories),
            label_keys: Interner::from_names(body.label_keys),
            items: vec![None; items],
            flags: vec![0; items],
            visible_from: vec![i64::MIN; items],
            visible_until: vec![i64::MAX; items],
            ..Metadata::default()
        };
        if metadata.categories.len() != categories || metadata.label_keys.len() != keys {
            return Err("duplicate category names or label keys".into());
        }
        let labels_ok = |labels: &Labels| labels.iter().all(|(key, _)| (*key as usize) < keys);
        for (item, meta) in body.items {
            let in_range = (item as usize) < items && metadata.items[item as usize].is_none();
            if !in_range || !meta.categories.iter().all(|&c| (c as usize) < categories) || !labels_ok(&meta.labels) {
                return Err(format!("catalogue item {item}: out of range or repeated"));
            }
            metadata.replace(item, meta);
        }
        for (user, labels) in body.users {
            if user as usize >= users || !labels_ok(&labels) {
                return Err(format!("catalogue user {user}: out of range"));
            }
            metadata.users.insert(user, labels);
        }
        Ok(metadata)
    }

    /// The `latest` indexes equal the ones rebuilt from the items.
    pub(super) fn check(&self, items: usize) -> Result<(), String> {
        if self.items.len() != items {
            return Err(format!("{items} items but {} catalogue slots", self.items.len()));
        }
        let mut rebuilt = Metadata {
            items: vec![None; items],
            flags: vec![0; items],
            visible_from: vec![i64::MIN; items],
            visible_until: vec![i64::MAX; items],
            ..Metadata::default()
        };
        for (item, meta) in self.items_from(0) {
            rebuilt.replace(item, meta.clone());
        }
        let non_empty_lists = |lists: &[Vec<Dense>]| {
            lists
                .iter()
                .enumerate()
                .filter(|(_, list)| !list.is_empty())
                .map(|(at, list)| (at, list.clone()))
                .collect::<Vec<_>>()
        };
        if rebuilt.flags != self.flags
            || non_empty_lists(&rebuilt.category_items) != non_empty_lists(&self.category_items)
        {
            return Err("the item flags or category lists differ from the rebuilt ones".into());
        }
        let non_empty = |sets: &[ByTime]| {
            sets.iter()
                .enumerate()
                .filter(|(_, set)| !set.is_empty())
                .map(|(at, set)| (at, set.clone()))
                .collect::<Vec<_>>()
        };
        if rebuilt.latest != self.latest
            || non_empty(&rebuilt.latest_by_category) != non_empty(&self.latest_by_category)
            || rebuilt.items_with_meta != self.items_with_meta
        {
            return Err("the latest indexes differ from the rebuilt ones".into());
        }
        Ok(())
    }
}
