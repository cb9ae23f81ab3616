//! EASE (Steck 2019, "Embarrassingly Shallow Autoencoders for Sparse
//! Data"): a global item model learned in closed form, and a live user side.
//!
//! Training (off the serving and ingest paths, from a copy of the
//! interactions): G = XᵀX + λI over the items `0..n`, P = G⁻¹ (Cholesky,
//! faer), B = I − P·diagMat(1/diag(P)), i.e. Bᵢⱼ = −Pᵢⱼ / Pⱼⱼ and Bⱼⱼ = 0.
//! X is binary (1 per interaction) or holds the pairs' values
//! (`ItemModelInput`). Memory is about 24·n² bytes at the peak (the factor,
//! the inverse and faer's scratch, all f64), time O(Σᵤ nᵤ² + n³).
//!
//! Scoring (at request time, from the user's current pairs): sᵤ = xᵤ·B,
//! the sum of the rows of the user's items, weighted like X. An event
//! acknowledged a moment ago is in the pairs, so it changes the next answer
//! without retraining. Items the model does not cover (interned after it
//! was trained) get no score; `recommend` fills the answer with popular
//! items as for any strategy.

use std::sync::atomic::{AtomicU64, Ordering};

use faer::dyn_stack::{MemBuffer, MemStack};
use faer::linalg::cholesky::llt;
use faer::{MatMut, MatRef, Par};

use super::Profile;
use crate::ids::Dense;
use crate::state::{ItemModelInput, ItemWeights, State};

/// Bytes per item² at training's peak (see the module's docs): the Gram
/// matrix factored in place, the inverse and the inverse's scratch (f64
/// each); B (f32) is built after the factor is freed.
pub const TRAIN_BYTES_PER_ITEM_SQ: u64 = 24;

/// Why a model was not trained.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum TrainError {
    /// The catalogue is above the configured cap (EASE is O(items²)).
    #[error("{items} items is above item_model.items_max = {items_max} (EASE needs about {bytes} bytes to train)")]
    TooManyItems {
        /// Items in the state.
        items: usize,
        /// The cap.
        items_max: usize,
        /// Memory training would need.
        bytes: u64,
    },
    /// Nothing to learn from.
    #[error("the state has no interactions")]
    Empty,
    /// A matrix could not be allocated.
    #[error("could not allocate {bytes} bytes for training")]
    OutOfMemory {
        /// What was asked for.
        bytes: u64,
    },
    /// G + λI was not positive definite (λ too small for the data).
    #[error("the Gram matrix plus λ = {lambda} is not positive definite (pivot {index}); raise item_model.lambda")]
    NotPositiveDefinite {
        /// λ.
        lambda: f32,
        /// The failing pivot.
        index: usize,
    },
}

/// What training reads: a copy of the interactions taken under the state's
/// read lock (O(pairs)), so the lock is not held while the model trains.
#[derive(Clone, Debug)]
pub struct TrainingSet {
    /// Items `0..n_items` (the state's dense ids); their external ids.
    pub names: Vec<String>,
    /// Per user, `(item, x)` sorted by item.
    pub rows: Vec<Vec<(Dense, f32)>>,
    /// `lsn_applied` of the state copied.
    pub lsn: u64,
}

impl TrainingSet {
    /// Copies `state`'s interactions, with X as `input` says. Items removed
    /// from the state keep their pairs (their rows inform other items'
    /// scores; they are never recommended).
    pub(crate) fn of(state: &State, input: ItemModelInput) -> TrainingSet {
        let names = state.items().names().iter().map(|name| name.to_string()).collect();
        let rows = state
            .all_user_items()
            .iter()
            .map(|pairs| pairs.iter().map(|pair| (pair.item, x_of(input, pair.value()))).collect())
            .collect();
        TrainingSet { names, rows, lsn: state.lsn_applied() }
    }
}

/// X's entry for a pair of value `value`.
#[inline]
fn x_of(input: ItemModelInput, value: f32) -> f32 {
    match input {
        ItemModelInput::Binary => 1.0,
        ItemModelInput::Value => value,
    }
}

/// Memory training on `items` items needs at its peak.
pub fn train_bytes(items: usize) -> u64 {
    TRAIN_BYTES_PER_ITEM_SQ.saturating_mul((items as u64).saturating_mul(items as u64))
}

/// Training progress, readable from another thread (for `/metrics`):
/// `done` of `total` steps (users accumulated into the Gram matrix, then
/// the factorisation, the inverse and B, one step each).
#[derive(Debug, Default)]
pub struct Progress {
    /// Steps done.
    pub done: AtomicU64,
    /// Steps in all (0 until known).
    pub total: AtomicU64,
}

/// A zeroed f64 buffer of `len`, or `OutOfMemory`.
fn zeroed(len: usize) -> Result<Vec<f64>, TrainError> {
    let mut buffer: Vec<f64> = Vec::new();
    buffer.try_reserve_exact(len).map_err(|_| TrainError::OutOfMemory { bytes: len as u64 * 8 })?;
    buffer.resize(len, 0.0);
    Ok(buffer)
}

/// Trains B on `set` with `lambda` and X as `input`; refuses above
/// `items_max` items. `progress` is advanced as it goes.
pub fn train(
    set: &TrainingSet,
    lambda: f32,
    input: ItemModelInput,
    items_max: usize,
    progress: &Progress,
) -> Result<ItemWeights, TrainError> {
    let n = set.names.len();
    if n > items_max {
        return Err(TrainError::TooManyItems { items: n, items_max, bytes: train_bytes(n) });
    }
    if n == 0 || set.rows.iter().all(Vec::is_empty) {
        return Err(TrainError::Empty);
    }
    progress.done.store(0, Ordering::Relaxed);
    progress.total.store(set.rows.len() as u64 + 3, Ordering::Relaxed);
    // G = XᵀX, lower triangle, column-major: column a holds G[b][a] for
    // b ≥ a. Each user adds the outer product of their row with itself:
    // O(nᵤ²) per user, so the sparse X is never made dense.
    let mut gram = zeroed(n * n)?;
    for row in &set.rows {
        for (at, &(a, xa)) in row.iter().enumerate() {
            let column = &mut gram[a as usize * n..(a as usize + 1) * n];
            let xa = f64::from(xa);
            for &(b, xb) in &row[at..] {
                column[b as usize] += xa * f64::from(xb);
            }
        }
        progress.done.fetch_add(1, Ordering::Relaxed);
    }
    let lambda_f64 = f64::from(lambda);
    for item in 0..n {
        gram[item * n + item] += lambda_f64;
    }
    // P = (G + λI)⁻¹ through its Cholesky factor, in place.
    let par = Par::Seq;
    {
        let factor = MatMut::from_column_major_slice_mut(&mut gram, n, n);
        let req = llt::factor::cholesky_in_place_scratch::<f64>(n, par, Default::default());
        let mut buffer =
            MemBuffer::try_new(req).map_err(|_| TrainError::OutOfMemory { bytes: req.size_bytes() as u64 })?;
        llt::factor::cholesky_in_place(factor, Default::default(), par, MemStack::new(&mut buffer), Default::default())
            .map_err(|err| match err {
                llt::factor::LltError::NonPositivePivot { index } => TrainError::NotPositiveDefinite { lambda, index },
            })?;
    }
    progress.done.fetch_add(1, Ordering::Relaxed);
    let mut inverse = zeroed(n * n)?;
    {
        let factor = MatRef::from_column_major_slice(&gram, n, n);
        let out = MatMut::from_column_major_slice_mut(&mut inverse, n, n);
        let req = llt::inverse::inverse_scratch::<f64>(n, par);
        let mut buffer =
            MemBuffer::try_new(req).map_err(|_| TrainError::OutOfMemory { bytes: req.size_bytes() as u64 })?;
        llt::inverse::inverse(out, factor, par, MemStack::new(&mut buffer));
    }
    drop(gram);
    progress.done.fetch_add(1, Ordering::Relaxed);
    // faer's inverse fills one triangle (the lower); P is symmetric, so
    // P[i][j] for i < j is read from P[j][i].
    let p = |i: usize, j: usize| if i >= j { inverse[j * n + i] } else { inverse[i * n + j] };
    let mut weights: Vec<f32> = Vec::new();
    weights.try_reserve_exact(n * n).map_err(|_| TrainError::OutOfMemory { bytes: (n * n * 4) as u64 })?;
    let diagonal: Vec<f64> = (0..n).map(|item| p(item, item)).collect();
    for i in 0..n {
        for (j, &pjj) in diagonal.iter().enumerate() {
            weights.push(if i == j { 0.0 } else { (-p(i, j) / pjj) as f32 });
        }
    }
    progress.done.fetch_add(1, Ordering::Relaxed);
    Ok(ItemWeights { n_items: n as u32, names: set.names.clone(), lambda, input, weights })
}

/// Adds `profile`'s EASE scores to `scores` (one per dense item): Σ over
/// its covered items of x · B's row. Items outside the model stay 0.
pub(crate) fn scores(model: &ItemWeights, profile: &Profile<'_>, scores: &mut [f64]) {
    let covered = (model.n_items as usize).min(scores.len());
    let mut sum = vec![0.0f32; covered];
    for pair in profile.pairs {
        let Some(row) = model.row(pair.item) else { continue };
        let x = x_of(model.input, pair.value());
        for (total, &weight) in sum.iter_mut().zip(row) {
            *total += x * weight;
        }
    }
    for (score, total) in scores.iter_mut().zip(sum) {
        *score = f64::from(total);
    }
}

/// The user's items that add most to `item`'s score (x·Bᵢ,item > 0), best
/// first, at most `n`: the explanation of an EASE answer.
pub(crate) fn contributors(
    model: &ItemWeights,
    pairs: &[crate::state::Pair],
    item: Dense,
    n: usize,
) -> Vec<(Dense, f32)> {
    let column = item as usize;
    if column >= model.n_items as usize {
        return Vec::new();
    }
    let mut found: Vec<(Dense, f32)> = pairs
        .iter()
        .filter_map(|pair| {
            let weight = model.row(pair.item)?.get(column).copied()?;
            let contribution = x_of(model.input, pair.value()) * weight;
            (contribution > 0.0).then_some((pair.item, contribution))
        })
        .collect();
    found.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    found.truncate(n);
    found
}

/// The artefact file's magic and format version.
const ARTEFACT_MAGIC: &[u8; 8] = b"RECWALIM";
const ARTEFACT_VERSION: u32 = 1;
const ARTEFACT_HEADER_BYTES: usize = 32;

/// The artefact file of `model` (docs/RECORDS.md, "Item-model artefacts"):
/// a 32-byte header (magic, format version, items, λ, input, the length of
/// the names), the names (postcard), then B as little-endian f32, row-major.
pub(crate) fn encode_artefact(model: &ItemWeights) -> Result<Vec<u8>, String> {
    let names = postcard::to_stdvec(&model.names).map_err(|err| format!("cannot encode the item names: {err}"))?;
    let mut bytes = Vec::new();
    bytes
        .try_reserve_exact(ARTEFACT_HEADER_BYTES + names.len() + model.weights.len() * 4)
        .map_err(|_| "cannot allocate the artefact".to_string())?;
    bytes.extend_from_slice(ARTEFACT_MAGIC);
    bytes.extend_from_slice(&ARTEFACT_VERSION.to_le_bytes());
    bytes.extend_from_slice(&model.n_items.to_le_bytes());
    bytes.extend_from_slice(&model.lambda.to_bits().to_le_bytes());
    bytes.extend_from_slice(&u32::from(model.input == ItemModelInput::Value).to_le_bytes());
    bytes.extend_from_slice(&(names.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&names);
    for weight in &model.weights {
        bytes.extend_from_slice(&weight.to_le_bytes());
    }
    Ok(bytes)
}

/// Reads an artefact back (its SHA-256 was checked by the caller); every
/// inconsistency is an error, never a partly filled model.
pub(crate) fn decode_artefact(bytes: &[u8]) -> Result<ItemWeights, String> {
    if bytes.len() < ARTEFACT_HEADER_BYTES {
        return Err(format!("{} bytes is shorter than the {ARTEFACT_HEADER_BYTES}-byte header", bytes.len()));
    }
    if &bytes[..8] != ARTEFACT_MAGIC {
        return Err("bad magic".into());
    }
    let u32_at = |at: usize| u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    let version = u32_at(8);
    if version != ARTEFACT_VERSION {
        return Err(format!("format version {version}, this build reads {ARTEFACT_VERSION}"));
    }
    let n_items = u32_at(12);
    let lambda = f32::from_bits(u32_at(16));
    let input = match u32_at(20) {
        0 => ItemModelInput::Binary,
        1 => ItemModelInput::Value,
        other => return Err(format!("unknown input {other}")),
    };
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[24..32]);
    let names_len = u64::from_le_bytes(word);
    let n = n_items as usize;
    if n > crate::limits::ITEM_MODEL_ITEMS_MAX {
        return Err(format!("{n} items is above the limit {}", crate::limits::ITEM_MODEL_ITEMS_MAX));
    }
    let weights_bytes = (n * n) as u64 * 4;
    let want = ARTEFACT_HEADER_BYTES as u64 + names_len + weights_bytes;
    if bytes.len() as u64 != want {
        return Err(format!("{} bytes, the header implies {want}", bytes.len()));
    }
    let names_end = ARTEFACT_HEADER_BYTES + names_len as usize;
    let names: Vec<String> = postcard::from_bytes(&bytes[ARTEFACT_HEADER_BYTES..names_end])
        .map_err(|err| format!("cannot decode the item names: {err}"))?;
    if names.len() != n {
        return Err(format!("{} names for {n} items", names.len()));
    }
    let weights: Vec<f32> = bytes[names_end..]
        .chunks_exact(4)
        .map(|chunk| f32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]))
        .collect();
    Ok(ItemWeights { n_items, names, lambda, input, weights })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn set(rows: Vec<Vec<(Dense, f32)>>, n: usize) -> TrainingSet {
        TrainingSet { names: (0..n).map(|item| item.to_string()).collect(), rows, lsn: 0 }
    }

    /// B against the closed form computed by hand on a 3-item example
    /// (G + λI inverted by cofactors), with a zero diagonal.
    #[test]
    fn weights_match_the_closed_form() {
        // Users: {0,1}, {0,1,2}, {1,2}; X binary; λ = 1.
        let data = set(vec![vec![(0, 1.0), (1, 1.0)], vec![(0, 1.0), (1, 1.0), (2, 1.0)], vec![(1, 1.0), (2, 1.0)]], 3);
        let model = train(&data, 1.0, ItemModelInput::Binary, 10, &Progress::default()).unwrap();
        // G + λI = [[3,2,1],[2,4,2],[1,2,3]].
        let g = [[3.0f64, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 3.0]];
        let det = g[0][0] * (g[1][1] * g[2][2] - g[1][2] * g[2][1]) - g[0][1] * (g[1][0] * g[2][2] - g[1][2] * g[2][0])
            + g[0][2] * (g[1][0] * g[2][1] - g[1][1] * g[2][0]);
        let cof = |i: usize, j: usize| {
            let rows: Vec<usize> = (0..3).filter(|&r| r != i).collect();
            let cols: Vec<usize> = (0..3).filter(|&c| c != j).collect();
            let minor = g[rows[0]][cols[0]] * g[rows[1]][cols[1]] - g[rows[0]][cols[1]] * g[rows[1]][cols[0]];
            if (i + j).is_multiple_of(2) {
                minor
            } else {
                -minor
            }
        };
        let p = |i: usize, j: usize| cof(j, i) / det;
        for i in 0..3 {
            for j in 0..3 {
                let want = if i == j { 0.0 } else { -p(i, j) / p(j, j) };
                let got = f64::from(model.weights[i * 3 + j]);
                assert!((got - want).abs() < 1e-6, "B[{i}][{j}] = {got}, want {want}");
            }
        }
    }

    #[test]
    fn artefacts_round_trip_and_damage_is_refused() {
        let data = set(vec![vec![(0, 4.0), (1, 2.0)], vec![(1, 5.0), (2, 1.0)]], 3);
        let model = train(&data, 2.0, ItemModelInput::Value, 10, &Progress::default()).unwrap();
        let bytes = encode_artefact(&model).unwrap();
        assert_eq!(decode_artefact(&bytes).unwrap(), model);
        assert!(decode_artefact(&bytes[..bytes.len() - 1]).is_err());
        let mut bad = bytes.clone();
        bad[12] ^= 1;
        assert!(decode_artefact(&bad).is_err());
    }

    #[test]
    fn refuses_above_the_item_cap_and_on_no_data() {
        let data = set(vec![vec![(0, 1.0), (1, 1.0)]], 3);
        let refused = train(&data, 1.0, ItemModelInput::Binary, 2, &Progress::default());
        assert!(matches!(refused, Err(TrainError::TooManyItems { items: 3, items_max: 2, .. })), "{refused:?}");
        let empty = set(vec![vec![]], 3);
        assert_eq!(train(&empty, 1.0, ItemModelInput::Binary, 10, &Progress::default()), Err(TrainError::Empty));
    }
}
