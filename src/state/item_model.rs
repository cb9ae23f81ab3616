//! The learned item model the `ease` or `ials` strategy scores with: EASE's
//! dense item × item weight matrix or iALS's item factors, learned from the
//! interactions (`algo::ease` / `algo::ials` train them; the engine stores
//! the model as a file and logs its reference, record 11).
//!
//! The weights are not derived from the log by `apply`: they are a pure
//! function of the artefact file the log names (its SHA-256 is checked on
//! load), attached to the state by the engine once loaded or trained
//! (`State::attach_item_model`). They are left out of the digest and of
//! snapshots; the reference (`ItemModelRef`) is in both.

use serde::{Deserialize, Serialize};

pub use crate::config::ItemModelInput;
use crate::ids::Dense;

/// Trained EASE weights B (item × item, zero diagonal), row-major: row `i`
/// holds what an interaction with item `i` adds to every item's score.
/// Item `i` of the model is dense item `i` of the state it was trained on
/// (dense ids are never reused), so items interned after training have no
/// row and no column.
#[derive(Clone, Debug, PartialEq)]
pub struct ItemWeights {
    /// Items covered: dense ids `0..n_items`.
    pub n_items: u32,
    /// The items' external ids, in dense order (checked against the state
    /// when a stored model is attached).
    pub names: Vec<String>,
    /// L2 regularisation it was trained with.
    pub lambda: f32,
    /// What X held.
    pub input: ItemModelInput,
    /// `n_items²` weights, row-major.
    pub weights: Vec<f32>,
}

impl ItemWeights {
    /// Row `item` (what an interaction with it adds to each item's score),
    /// or `None` for an item the model does not cover.
    #[inline]
    pub fn row(&self, item: Dense) -> Option<&[f32]> {
        let n = self.n_items as usize;
        let at = item as usize;
        if at >= n {
            return None;
        }
        self.weights.get(at * n..(at + 1) * n)
    }
}

/// A trained iALS model: item factors Y (`n_items × factors`, row-major:
/// yᵢ is row `i`) and YᵀY, kept so the user side is folded in at request
/// time without recomputing it. Item `i` is dense item `i` of the state it
/// was trained on.
#[derive(Clone, Debug, PartialEq)]
pub struct IalsFactors {
    /// Items covered: dense ids `0..n_items`.
    pub n_items: u32,
    /// The items' external ids, in dense order.
    pub names: Vec<String>,
    /// Factors per item (f).
    pub factors: u32,
    /// λ it was trained with (fold-in uses it too).
    pub lambda: f32,
    /// α it was trained with (fold-in uses it too).
    pub alpha: f32,
    /// How a pair enters x.
    pub input: ItemModelInput,
    /// `n_items × factors`, row-major.
    pub item_factors: Vec<f32>,
    /// YᵀY (`factors × factors`, symmetric, without λ).
    pub gram: Vec<f64>,
}

/// The item model attached to the state: one family or the other.
#[derive(Clone, Debug, PartialEq)]
pub enum ItemModel {
    /// EASE weights (`Strategy::Ease`).
    Ease(ItemWeights),
    /// iALS factors (`Strategy::Ials`).
    Ials(IalsFactors),
}

impl ItemModel {
    /// Items covered: dense ids `0..n_items`.
    pub fn n_items(&self) -> u32 {
        match self {
            ItemModel::Ease(model) => model.n_items,
            ItemModel::Ials(model) => model.n_items,
        }
    }

    /// The covered items' external ids, in dense order.
    pub fn names(&self) -> &[String] {
        match self {
            ItemModel::Ease(model) => &model.names,
            ItemModel::Ials(model) => &model.names,
        }
    }

    /// λ it was trained with.
    pub fn lambda(&self) -> f32 {
        match self {
            ItemModel::Ease(model) => model.lambda,
            ItemModel::Ials(model) => model.lambda,
        }
    }

    /// What X held.
    pub fn input(&self) -> ItemModelInput {
        match self {
            ItemModel::Ease(model) => model.input,
            ItemModel::Ials(model) => model.input,
        }
    }

    /// `ease` or `ials`.
    pub fn family(&self) -> crate::config::ItemModelFamily {
        match self {
            ItemModel::Ease(_) => crate::config::ItemModelFamily::Ease,
            ItemModel::Ials(_) => crate::config::ItemModelFamily::Ials,
        }
    }
}

/// The reference to the active item model, as logged (record 11): which
/// artefact, trained how, on which state. Part of the state (digest and
/// snapshots), so a replay knows which file to load.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ItemModelRef {
    /// Increases by one per trained model.
    pub version: u32,
    /// SHA-256 of the artefact file.
    pub sha256: [u8; 32],
    /// Its size in bytes.
    pub bytes: u64,
    /// Items it covers.
    pub n_items: u32,
    /// λ, as the bits of the f32 (exact, hashable).
    pub lambda_bits: u32,
    /// What X held.
    pub input: ItemModelInput,
    /// `lsn_applied` of the state it was trained on.
    pub lsn_trained: u64,
    /// Engine clock when it was activated (ms since the Unix epoch).
    pub at_ms: i64,
    /// LSN of the record that activated it.
    pub lsn: u64,
}
