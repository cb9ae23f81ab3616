//! The indexes derived from the per-user lists alone: maintained per event on
//! the live path, not during a replay, and rebuilt in one pass at a replay's
//! end and on a snapshot load. Adding one: its module (an `impl
//! DerivedIndex`), a field of `Derived`, and its place in `all`/`all_mut`;
//! `State` calls them through these two lists and needs no change.

use super::interactions::{Interactions, Pair};
use super::item_rank::ItemRankColumns;
use crate::ids::Dense;

/// An index that is a pure function of the per-user lists.
pub(super) trait DerivedIndex {
    /// A new item (dense id: the previous item count).
    fn on_item_added(&mut self);
    /// `item` joins a user's list, which held the items `items_before`.
    fn on_pair_added(&mut self, items_before: &[Dense], item: Dense);
    /// A user whose list was `pairs` is forgotten.
    fn on_user_forgotten(&mut self, pairs: &[Pair]);
    /// Builds the index from the lists, in O(pairs).
    fn rebuild(&mut self, interactions: &Interactions, items: usize);
    /// Whether the index equals the rebuilt one (an error names the difference).
    fn check(&self, interactions: &Interactions, items: usize) -> Result<(), String>;
}

/// Every derived index.
#[derive(Default)]
pub(super) struct Derived {
    pub(super) item_rank: ItemRankColumns,
}

impl Derived {
    pub(super) fn all(&self) -> [&dyn DerivedIndex; 1] {
        [&self.item_rank]
    }

    pub(super) fn all_mut(&mut self) -> [&mut dyn DerivedIndex; 1] {
        [&mut self.item_rank]
    }
}
