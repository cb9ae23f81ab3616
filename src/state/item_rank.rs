//! ItemRank's column sums: per item j, Σ_{u∈Uⱼ}(|Iᵤ| − 1), the column sums
//! of the co-occurrence graph, maintained per new pair (integers, so the same
//! whatever the order of updates).

use super::derived::DerivedIndex;
use super::interactions::{Interactions, Pair};
use crate::ids::Dense;

#[derive(Default)]
pub(super) struct ItemRankColumns {
    pub(super) item_others: Vec<u64>,
}

impl ItemRankColumns {
    fn rebuilt(interactions: &Interactions, items: usize) -> Vec<u64> {
        let mut item_others = vec![0u64; items];
        for pairs in &interactions.user_items {
            let others = pairs.len().saturating_sub(1) as u64;
            for pair in pairs {
                item_others[pair.item as usize] += others;
            }
        }
        item_others
    }
}

impl DerivedIndex for ItemRankColumns {
    fn on_item_added(&mut self) {
        self.item_others.push(0);
    }

    fn on_pair_added(&mut self, items_before: &[Dense], item: Dense) {
        // Every item the user already has gains one co-occurrence, the new
        // one gains them all.
        for &before in items_before {
            self.item_others[before as usize] += 1;
        }
        self.item_others[item as usize] += items_before.len() as u64;
    }

    fn on_user_forgotten(&mut self, pairs: &[Pair]) {
        let others = pairs.len().saturating_sub(1) as u64;
        for pair in pairs {
            let column = &mut self.item_others[pair.item as usize];
            *column = column.saturating_sub(others);
        }
    }

    fn rebuild(&mut self, interactions: &Interactions, items: usize) {
        self.item_others = ItemRankColumns::rebuilt(interactions, items);
    }

    fn check(&self, interactions: &Interactions, items: usize) -> Result<(), String> {
        if self.item_others != ItemRankColumns::rebuilt(interactions, items) {
            return Err("ItemRank's column sums differ from the rebuilt ones".into());
        }
        Ok(())
    }
}
