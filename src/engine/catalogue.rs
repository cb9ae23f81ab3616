//! The catalogue on `Engine`: items and users with metadata, hiding, the
//! newest items. Every change is one log record (kinds 7–9) through
//! `ingest.rs`'s `log_and_apply`, durable before it is applied; reads take
//! the state's read lock only.

use std::collections::BTreeMap;

use super::{Engine, ReplicaWrite};
use crate::catalogue::{Item, ItemPage, LabelValue, User};
use crate::error::EngineError;
use crate::event;
use crate::ids::Dense;
use crate::limits::N_MAX;
use crate::recommend::{self, ItemQuery};
use crate::record::{ExpireFeedbackV1, LogRecord};
use crate::state::{ItemMeta, Label, Labels, State};
use crate::wal::Durability;

impl Engine {
    /// Sets `item`'s metadata (categories, labels, hidden, publication time,
    /// expiry), replacing what it had; a new id joins the catalogue. Returns
    /// the record's LSN once it is durable and applied. Nothing is written
    /// when a field breaks its rule (the error names it).
    pub fn upsert_item(&self, item: &Item) -> Result<u64, EngineError> {
        self.upsert_item_with(item, self.shared.default_durability)
    }

    /// `upsert_item` with an explicit durability: a bulk load writes its
    /// items with `Never` and makes them durable together at the end
    /// (`checkpoint` syncs the log first) instead of waiting for a sync per
    /// item.
    pub fn upsert_item_with(&self, item: &Item, durability: Durability) -> Result<u64, EngineError> {
        let record = self.record_of(ReplicaWrite::UpsertItem(item))?;
        self.shared.log_and_apply(&record, Vec::new(), durability)
    }

    /// Hides `item` from every read from the next request on (`hidden`), or
    /// shows it again. The item must be known (from events or the catalogue).
    pub fn set_item_hidden(&self, item: &str, hidden: bool) -> Result<u64, EngineError> {
        let record = self.record_of(ReplicaWrite::SetItemHidden { item, hidden })?;
        self.shared.log_and_apply(&record, Vec::new(), self.shared.default_durability)
    }

    /// `item`'s catalogue entry (`None` for an item known only from events,
    /// or not at all).
    pub fn item(&self, item: &str) -> Result<Option<Item>, EngineError> {
        event::validate_id("item", item)?;
        let state = self.shared.read_state();
        let dense = state.items().get(item).filter(|&dense| !state.item_is_removed(dense));
        Ok(dense.and_then(|dense| state.item_meta(dense).map(|meta| item_of(&state, dense, meta))))
    }

    /// A page of at most `limit` (1–`N_MAX`) catalogue items in the order
    /// they entered the catalogue, starting after item `after` (the `next`
    /// of the previous page). Pages are stable: items that join later come
    /// after every page already handed out.
    pub fn items(&self, after: Option<&str>, limit: usize) -> Result<ItemPage, EngineError> {
        recommend::validate_n(limit)
            .map_err(|_| EngineError::invalid("limit", format!("must be 1–{N_MAX}, got {limit}")))?;
        let state = self.shared.read_state();
        let from: Dense = match after {
            None => 0,
            Some(after) => {
                event::validate_id("after", after)?;
                let dense = state
                    .items()
                    .get(after)
                    .ok_or_else(|| EngineError::invalid("after", format!("no item {after:?} in the catalogue")))?;
                dense + 1
            }
        };
        // Removed items leave the catalogue (their ids still order the pages).
        let mut found: Vec<(Dense, &ItemMeta)> =
            state.catalogue_from(from).filter(|(dense, _)| !state.item_is_removed(*dense)).take(limit + 1).collect();
        let more = found.len() > limit;
        found.truncate(limit);
        let items: Vec<Item> = found.into_iter().map(|(dense, meta)| item_of(&state, dense, meta)).collect();
        let next = if more { items.last().map(|item| item.id.clone()) } else { None };
        Ok(ItemPage { items, next })
    }

    /// A page of the newest items by publication time (items without one
    /// are not listed) that `query` admits; hidden, expired and not yet
    /// published items are left out.
    pub fn latest(&self, query: &ItemQuery) -> Result<Vec<Item>, EngineError> {
        query.validate()?;
        let state = self.shared.read_state();
        Ok(recommend::latest_page(&state, query, event::now_ms())
            .into_iter()
            .filter_map(|(dense, _)| state.item_meta(dense).map(|meta| item_of(&state, dense, meta)))
            .collect())
    }

    /// Sets `user`'s labels, replacing what they had; a new id becomes a
    /// known user (with no interactions). `forget_user` removes them.
    pub fn upsert_user(&self, user: &User) -> Result<u64, EngineError> {
        let record = self.record_of(ReplicaWrite::UpsertUser(user))?;
        self.shared.log_and_apply(&record, Vec::new(), self.shared.default_durability)
    }

    /// `user`'s metadata (`None` when no labels were ever set, or after a
    /// forget).
    pub fn user(&self, user: &str) -> Result<Option<User>, EngineError> {
        event::validate_id("user", user)?;
        let state = self.shared.read_state();
        let labels = state.users().get(user).and_then(|dense| state.user_labels(dense));
        Ok(labels.map(|labels| User { id: user.to_string(), labels: labels_of(&state, labels) }))
    }
}

impl Engine {
    /// Expires now every interaction whose newest event is older than
    /// `before_ms` (whole seconds compared): one log record, durable before
    /// it is applied. The engine calls this on its own when
    /// `feedback.ttl` is set; an operator may call it with any cutoff.
    pub fn expire_feedback_before(&self, before_ms: i64) -> Result<u64, EngineError> {
        self.shared.expire_feedback_before(before_ms)
    }
}

impl super::Shared {
    pub(super) fn expire_feedback_before(&self, before_ms: i64) -> Result<u64, EngineError> {
        if before_ms < 0 {
            return Err(EngineError::invalid("before_ms", "must be ≥ 0 (ms since the Unix epoch)"));
        }
        let record = LogRecord::ExpireFeedback(ExpireFeedbackV1 { before_ms });
        self.log_and_apply(&record, Vec::new(), self.default_durability)
    }
}

/// The caller's view of an item's catalogue entry.
fn item_of(state: &State, dense: Dense, meta: &ItemMeta) -> Item {
    Item {
        id: state.items().name(dense).to_string(),
        categories: meta.categories.iter().map(|&category| state.categories().name(category).to_string()).collect(),
        labels: labels_of(state, &meta.labels),
        hidden: meta.hidden,
        timestamp_ms: meta.timestamp_ms,
        expires_ms: meta.expires_ms,
    }
}

fn labels_of(state: &State, labels: &Labels) -> BTreeMap<String, LabelValue> {
    labels
        .iter()
        .map(|(key, value)| {
            let value = match value {
                Label::Text(text) => LabelValue::Text(text.to_string()),
                Label::Number(number) => LabelValue::Number(*number),
            };
            (state.label_keys().name(*key).to_string(), value)
        })
        .collect()
}
