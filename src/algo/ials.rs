//! Implicit ALS (Hu, Koren and Volinsky 2008, "Collaborative Filtering for
//! Implicit Feedback Datasets") with conjugate-gradient updates (Takács,
//! Pilászy and Tikk 2011, as the `implicit` library does): a learned item
//! model (one factor vector per item) and a live user side.
//!
//! Each observed pair (x > 0) has preference 1 and confidence
//! c = 1 + α·x, every other pair preference 0 and confidence 1; x is 1 or
//! the pair's value (`ItemModelInput`). Training minimises
//! Σᵤᵢ cᵤᵢ(pᵤᵢ − xᵤ·yᵢ)² + λ(Σ‖xᵤ‖² + Σ‖yᵢ‖²) by alternating: every user
//! row solves (YᵀY + λI + Σᵢ∈ᵤ (cᵢ − 1)·yᵢyᵢᵀ)·xᵤ = Σᵢ∈ᵤ cᵢ·yᵢ by
//! `cg_steps` CG iterations warm-started from the current xᵤ (the per-user
//! matrix is never formed: A·v = YᵀY·v + λv + Σ (cᵢ − 1)(yᵢ·v)·yᵢ), then
//! every item row the same with XᵀX and the item → users transpose. Pairs
//! with x ≤ 0 (or not finite) count as unobserved, so a confidence is never
//! below 1 and A stays positive definite. Rows with no observed pair get
//! the exact solution, a zero vector.
//!
//! Determinism: the same set and parameters give the same factors bit for
//! bit, whatever `threads` is. Each row's update reads only the other
//! side's factors and the Gram matrix, and the Gram matrices are summed
//! from fixed row blocks in a fixed order.
//!
//! Cost per iteration: O(Σ nᵤ·f·steps + (users + items)·f²·(steps + 1))
//! for the two sides, plus the two Gram matrices, O((users + items)·f²).
//! Memory: see [`train_bytes`].
//!
//! Scoring (at request time, from the user's current pairs): xᵤ is solved
//! exactly (Cholesky of the f × f matrix above, O(nᵤ·f² + f³)) from the
//! model's item factors and its stored YᵀY, then every covered item gets
//! yᵢ·xᵤ. An event acknowledged a moment ago is in the pairs, so it changes
//! the next answer without retraining. Items interned after training
//! (dense id ≥ `n_items`) are skipped on the user side and get no score.

use std::sync::atomic::Ordering;

use faer::dyn_stack::{MemBuffer, MemStack};
use faer::linalg::cholesky::llt;
use faer::{Accum, MatMut, MatRef, Par};

use super::Profile;
use crate::ids::Dense;
use crate::limits::{IALS_FACTORS_MAX, IALS_ITEMS_MAX};
use crate::state::{ItemModelInput, Pair};

/// What training reads and reports (shared with EASE), re-exported for the
/// benchmarks.
#[doc(hidden)]
pub use super::ease::{Progress, TrainError, TrainingSet};

/// The most users training takes (the transpose stores user ids as `u32`).
pub const IALS_USERS_MAX: usize = u32::MAX as usize;

/// The Gram matrices are summed from at most this many row blocks (each
/// block's partial f × f sum is kept until all are added in block order).
const GRAM_BLOCKS_MAX: usize = 16;

/// Rows per Gram block at least (smaller sets are one block).
const GRAM_BLOCK_ROWS_MIN: usize = 4096;

/// Rows converted to f64 at a time for a Gram product.
const GRAM_CHUNK_ROWS: usize = 256;

/// CG stops when ‖r‖² falls below this.
const CG_RESIDUAL_SQ_MIN: f64 = 1e-20;

/// Training parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct IalsParams {
    /// Factors per user and item, 1..=`limits::IALS_FACTORS_MAX` (1024).
    pub factors: usize,
    /// L2 regularisation λ (> 0, finite).
    pub lambda: f32,
    /// Confidence slope α: c = 1 + α·x (≥ 0, finite).
    pub alpha: f32,
    /// Alternations (a user step then an item step), ≥ 1.
    pub iterations: usize,
    /// CG iterations per row and step, ≥ 1.
    pub cg_steps: usize,
    /// Seed of the initial factors.
    pub seed: u64,
    /// How a pair enters x; the training set must have been built with
    /// the same input (`TrainingSet::of`), and fold-in uses it.
    pub input: ItemModelInput,
    /// Threads for the two steps and the Gram matrices (0 is taken as 1);
    /// the result does not depend on it.
    pub threads: usize,
}

impl Default for IalsParams {
    /// `engine.item_model.ials`'s defaults (`IalsConfig`: 64 factors, λ 45,
    /// α 1.5, 15 iterations of 3 CG steps, picked on a validation split
    /// carved from ML-100k's training part by `examples/evaluate_ease`),
    /// x = the pair's value, seed 42, one thread per core. λ and α scale
    /// with x, so values of another range want them tuned again.
    fn default() -> IalsParams {
        let config = crate::config::IalsConfig::default();
        IalsParams {
            factors: config.factors,
            lambda: config.lambda,
            alpha: config.alpha,
            iterations: config.iterations,
            cg_steps: config.cg_steps,
            seed: 42,
            input: ItemModelInput::Value,
            threads: std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
        }
    }
}

/// A trained model (defined beside EASE's `ItemWeights` in
/// `state::item_model`, since the state holds it); re-exported here.
pub use crate::state::IalsFactors;

/// yᵢ, or `None` for an item `model` does not cover.
#[inline]
fn item_row(model: &IalsFactors, item: Dense) -> Option<&[f32]> {
    let f = model.factors as usize;
    let at = item as usize;
    if at >= model.n_items as usize {
        return None;
    }
    model.item_factors.get(at * f..(at + 1) * f)
}

/// Why an iALS model was not trained.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum IalsError {
    /// No data, or no memory (shared with EASE).
    #[error(transparent)]
    Train(#[from] TrainError),
    /// A parameter is outside its valid range.
    #[error("{name} = {value} is outside {valid}")]
    Parameter {
        /// The parameter.
        name: &'static str,
        /// Its value.
        value: String,
        /// The valid range.
        valid: &'static str,
    },
    /// The catalogue is above `limits::IALS_ITEMS_MAX` (10M).
    #[error("{items} items is above the iALS limit {items_max}")]
    TooManyItems {
        /// Items in the set.
        items: usize,
        /// The cap.
        items_max: usize,
    },
    /// More users than the transpose can name.
    #[error("{users} users is above the iALS limit {users_max}")]
    TooManyUsers {
        /// Users in the set.
        users: usize,
        /// The cap.
        users_max: usize,
    },
}

/// x for a pair of value `value`.
#[inline]
fn x_of(input: ItemModelInput, value: f32) -> f32 {
    match input {
        ItemModelInput::Binary => 1.0,
        ItemModelInput::Value => value,
    }
}

/// c − 1 = α·x for an observed pair, `None` for one that counts as
/// unobserved (x ≤ 0 or not finite).
#[inline]
fn confidence_gain(alpha: f64, x: f32) -> Option<f64> {
    (x.is_finite() && x > 0.0).then(|| alpha * f64::from(x))
}

/// Memory training needs at its peak, in bytes, for a set of `users`
/// users, `items` items and `pairs` pairs at `factors` factors: the two
/// factor matrices (f32), the item → users transpose (8 bytes a pair and
/// per item), and the Gram matrices (f64: the partial sums of at most 16
/// row blocks, the one in use and the model's). Not counted: the training
/// set itself (the caller's copy, about 8 bytes a pair + 24 a user + the
/// names), the names copied into the model, and per-thread scratch of
/// 8·f·(256 + 4) bytes.
pub fn train_bytes(users: usize, items: usize, pairs: usize, factors: usize) -> u64 {
    let (users, items, pairs, factors) = (users as u64, items as u64, pairs as u64, factors as u64);
    let factor_bytes = 4u64.saturating_mul(factors).saturating_mul(users.saturating_add(items));
    let transpose_bytes = 8u64.saturating_mul(pairs).saturating_add(8u64.saturating_mul(items.saturating_add(1)));
    let gram_bytes = 8u64.saturating_mul(factors).saturating_mul(factors).saturating_mul(GRAM_BLOCKS_MAX as u64 + 2);
    factor_bytes.saturating_add(transpose_bytes).saturating_add(gram_bytes)
}

/// An empty vector with room for `len` values, or `OutOfMemory`.
fn reserved<T>(len: usize) -> Result<Vec<T>, TrainError> {
    let mut buffer: Vec<T> = Vec::new();
    buffer
        .try_reserve_exact(len)
        .map_err(|_| TrainError::OutOfMemory { bytes: (len as u64).saturating_mul(size_of::<T>() as u64) })?;
    Ok(buffer)
}

/// Rows of pairs `(other side's row, x)`: users' items or items' users.
trait Rows: Sync {
    fn count(&self) -> usize;
    fn row(&self, at: usize) -> &[(u32, f32)];
}

impl Rows for [Vec<(Dense, f32)>] {
    fn count(&self) -> usize {
        self.len()
    }

    fn row(&self, at: usize) -> &[(u32, f32)] {
        &self[at]
    }
}

/// The item → users transpose of the observed pairs (compact: `offsets`
/// has `items + 1` entries, users ascending within an item).
struct Transposed {
    offsets: Vec<usize>,
    entries: Vec<(u32, f32)>,
}

impl Rows for Transposed {
    fn count(&self) -> usize {
        self.offsets.len() - 1
    }

    fn row(&self, at: usize) -> &[(u32, f32)] {
        &self.entries[self.offsets[at]..self.offsets[at + 1]]
    }
}

/// Counting sort of `set`'s observed pairs (item < `n_items`, x > 0) by item.
fn transpose(set: &TrainingSet, n_items: usize) -> Result<Transposed, TrainError> {
    let observed = |item: Dense, x: f32| (item as usize) < n_items && x.is_finite() && x > 0.0;
    let mut offsets = reserved::<usize>(n_items + 1)?;
    offsets.resize(n_items + 1, 0);
    let mut pairs = 0usize;
    for row in &set.rows {
        for &(item, x) in row {
            if observed(item, x) {
                offsets[item as usize + 1] += 1;
                pairs += 1;
            }
        }
    }
    for at in 0..n_items {
        offsets[at + 1] += offsets[at];
    }
    let mut entries = reserved::<(u32, f32)>(pairs)?;
    entries.resize(pairs, (0, 0.0));
    let mut next = offsets.clone();
    for (user, row) in set.rows.iter().enumerate() {
        for &(item, x) in row {
            if observed(item, x) {
                let slot = &mut next[item as usize];
                entries[*slot] = (user as u32, x);
                *slot += 1;
            }
        }
    }
    Ok(Transposed { offsets, entries })
}

/// The i-th value of the initial factors of `side` (0 users, 1 items):
/// SplitMix64 of (seed, side, i), uniform in [0, 0.01) as `implicit` does.
fn initial_value(seed: u64, side: u64, at: u64) -> f32 {
    let mut z = seed ^ side.wrapping_mul(0xD1B5_4A32_D192_ED03) ^ at.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    ((z >> 40) as f32) * (1.0 / (1u64 << 24) as f32) * 0.01
}

/// `rows × f` initial factors; rows with no observed pair are zero.
fn initial_factors<R: Rows + ?Sized>(rows: &R, f: usize, seed: u64, side: u64) -> Result<Vec<f32>, TrainError> {
    let n = rows.count();
    let mut factors = reserved::<f32>(n * f)?;
    for at in 0..n {
        let any = rows.row(at).iter().any(|&(_, x)| x.is_finite() && x > 0.0);
        for k in 0..f {
            factors.push(if any { initial_value(seed, side, (at * f + k) as u64) } else { 0.0 });
        }
    }
    Ok(factors)
}

/// Σ a·b over f64 slices, four accumulators.
#[inline]
fn dot_f64(a: &[f64], b: &[f64]) -> f64 {
    let (a_chunks, a_tail) = a.as_chunks::<4>();
    let (b_chunks, b_tail) = b.as_chunks::<4>();
    let mut acc = [0.0f64; 4];
    for (x, y) in a_chunks.iter().zip(b_chunks) {
        for k in 0..4 {
            acc[k] += x[k] * y[k];
        }
    }
    let mut tail = 0.0;
    for (x, y) in a_tail.iter().zip(b_tail) {
        tail += x * y;
    }
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

/// Σ a·b with `a` in f32, four f64 accumulators.
#[inline]
fn dot_mixed(a: &[f32], b: &[f64]) -> f64 {
    let (a_chunks, a_tail) = a.as_chunks::<4>();
    let (b_chunks, b_tail) = b.as_chunks::<4>();
    let mut acc = [0.0f64; 4];
    for (x, y) in a_chunks.iter().zip(b_chunks) {
        for k in 0..4 {
            acc[k] += f64::from(x[k]) * y[k];
        }
    }
    let mut tail = 0.0;
    for (x, y) in a_tail.iter().zip(b_tail) {
        tail += f64::from(*x) * y;
    }
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

/// Σ a·b over f32 slices, eight accumulators (scoring's inner loop).
#[inline]
fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    let (a_chunks, a_tail) = a.as_chunks::<8>();
    let (b_chunks, b_tail) = b.as_chunks::<8>();
    let mut acc = [0.0f32; 8];
    for (x, y) in a_chunks.iter().zip(b_chunks) {
        for k in 0..8 {
            acc[k] += x[k] * y[k];
        }
    }
    let mut tail = 0.0;
    for (x, y) in a_tail.iter().zip(b_tail) {
        tail += x * y;
    }
    ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])) + tail
}

/// out += coefficient · y.
#[inline]
fn axpy(out: &mut [f64], coefficient: f64, y: &[f32]) {
    for (total, &value) in out.iter_mut().zip(y) {
        *total += coefficient * f64::from(value);
    }
}

/// The Gram matrix of `factors` (`rows × f`, row-major) into `out`
/// (`f × f`, symmetric: the lower triangle mirrored), summed from fixed row
/// blocks in block order so the result does not depend on `threads`.
/// `partials` holds the blocks' sums (`GRAM_BLOCKS_MAX · f²`).
fn gram_of(factors: &[f32], f: usize, threads: usize, partials: &mut [f64], out: &mut [f64]) {
    let rows = factors.len() / f;
    let block_rows = rows.div_ceil(GRAM_BLOCKS_MAX).max(GRAM_BLOCK_ROWS_MIN);
    let blocks: Vec<&[f32]> = factors.chunks(block_rows * f).collect();
    debug_assert!(blocks.len() <= GRAM_BLOCKS_MAX);
    let partials = &mut partials[..blocks.len() * f * f];
    let threads = threads.clamp(1, blocks.len().max(1));
    let per_thread = blocks.len().div_ceil(threads).max(1);
    let sum_blocks = |blocks: &[&[f32]], partials: &mut [f64]| {
        let mut buffer = vec![0.0f64; GRAM_CHUNK_ROWS * f];
        for (block, partial) in blocks.iter().zip(partials.chunks_exact_mut(f * f)) {
            partial.fill(0.0);
            for chunk in block.chunks(GRAM_CHUNK_ROWS * f) {
                let n = chunk.len() / f;
                let columns = &mut buffer[..n * f];
                for (row_at, row) in chunk.chunks_exact(f).enumerate() {
                    for (k, &value) in row.iter().enumerate() {
                        columns[k * n + row_at] = f64::from(value);
                    }
                }
                let lhs = MatRef::from_column_major_slice(columns, n, f);
                let dst = MatMut::from_column_major_slice_mut(partial, f, f);
                faer::linalg::matmul::matmul(dst, Accum::Add, lhs.transpose(), lhs, 1.0, Par::Seq);
            }
        }
    };
    if threads == 1 {
        sum_blocks(&blocks, partials);
    } else {
        std::thread::scope(|scope| {
            for (blocks, partials) in blocks.chunks(per_thread).zip(partials.chunks_mut(per_thread * f * f)) {
                scope.spawn(move || sum_blocks(blocks, partials));
            }
        });
    }
    out.fill(0.0);
    for partial in partials.chunks_exact(f * f) {
        for (total, &value) in out.iter_mut().zip(partial) {
            *total += value;
        }
    }
    for a in 0..f {
        for b in a + 1..f {
            out[b * f + a] = out[a * f + b];
        }
    }
}

/// Per-thread CG vectors, allocated once per step.
struct Scratch {
    x: Vec<f64>,
    r: Vec<f64>,
    p: Vec<f64>,
    ap: Vec<f64>,
}

impl Scratch {
    fn new(f: usize) -> Scratch {
        Scratch { x: vec![0.0; f], r: vec![0.0; f], p: vec![0.0; f], ap: vec![0.0; f] }
    }
}

/// What one side's step reads.
struct Step<'a> {
    /// The other side's factors.
    other: &'a [f32],
    /// The other side's Gram matrix plus λI (f × f, symmetric).
    gram: &'a [f64],
    f: usize,
    alpha: f64,
    cg_steps: usize,
}

impl Step<'_> {
    /// The other side's row `at` if it exists.
    #[inline]
    fn other_row(&self, at: u32) -> Option<&[f32]> {
        let at = at as usize;
        self.other.get(at * self.f..(at + 1) * self.f)
    }

    /// out = A·v for a row with `pairs`.
    fn times(&self, pairs: &[(u32, f32)], v: &[f64], out: &mut [f64]) {
        for (total, row) in out.iter_mut().zip(self.gram.chunks_exact(self.f)) {
            *total = dot_f64(row, v);
        }
        for &(at, x) in pairs {
            let (Some(gain), Some(y)) = (confidence_gain(self.alpha, x), self.other_row(at)) else { continue };
            axpy(out, gain * dot_mixed(y, v), y);
        }
    }

    /// Updates `out` (a row's factors) by `cg_steps` CG iterations on its
    /// normal equations, warm-started from `out`.
    fn solve_row(&self, pairs: &[(u32, f32)], out: &mut [f32], scratch: &mut Scratch) {
        let observed =
            pairs.iter().any(|&(at, x)| confidence_gain(self.alpha, x).is_some() && self.other_row(at).is_some());
        if !observed {
            out.fill(0.0);
            return;
        }
        let Scratch { x, r, p, ap } = scratch;
        for (value, &stored) in x.iter_mut().zip(out.iter()) {
            *value = f64::from(stored);
        }
        // r = b − A·x with b = Σ cᵢ·yᵢ.
        for (residual, row) in r.iter_mut().zip(self.gram.chunks_exact(self.f)) {
            *residual = -dot_f64(row, x);
        }
        for &(at, value) in pairs {
            let (Some(gain), Some(y)) = (confidence_gain(self.alpha, value), self.other_row(at)) else { continue };
            axpy(r, (1.0 + gain) - gain * dot_mixed(y, x), y);
        }
        p.copy_from_slice(r);
        let mut rs_old = dot_f64(r, r);
        if rs_old >= CG_RESIDUAL_SQ_MIN {
            for _ in 0..self.cg_steps {
                self.times(pairs, p, ap);
                let p_ap = dot_f64(p, ap);
                if !p_ap.is_finite() || p_ap <= 0.0 {
                    break;
                }
                let step = rs_old / p_ap;
                for ((value, residual), (&direction, &image)) in x.iter_mut().zip(r.iter_mut()).zip(p.iter().zip(&*ap))
                {
                    *value += step * direction;
                    *residual -= step * image;
                }
                let rs_new = dot_f64(r, r);
                if rs_new < CG_RESIDUAL_SQ_MIN {
                    break;
                }
                let beta = rs_new / rs_old;
                for (direction, &residual) in p.iter_mut().zip(&*r) {
                    *direction = residual + beta * *direction;
                }
                rs_old = rs_new;
            }
        }
        for (stored, &value) in out.iter_mut().zip(x.iter()) {
            *stored = value as f32;
        }
    }

    /// Solves every row of `rows` into `target` (`rows × f`), on up to
    /// `threads` threads over contiguous chunks of about equal cost.
    fn run<R: Rows + ?Sized>(&self, rows: &R, target: &mut [f32], threads: usize) {
        let f = self.f;
        let bounds = chunk_bounds(rows, f, threads);
        let solve = |first: usize, chunk: &mut [f32]| {
            let mut scratch = Scratch::new(f);
            for (offset, out) in chunk.chunks_exact_mut(f).enumerate() {
                self.solve_row(rows.row(first + offset), out, &mut scratch);
            }
        };
        if bounds.len() <= 2 {
            solve(0, target);
            return;
        }
        std::thread::scope(|scope| {
            let mut rest = target;
            for window in bounds.windows(2) {
                let (chunk, tail) = std::mem::take(&mut rest).split_at_mut((window[1] - window[0]) * f);
                rest = tail;
                let first = window[0];
                let solve = &solve;
                scope.spawn(move || solve(first, chunk));
            }
        });
    }
}

/// `threads + 1` (at most) ascending row bounds, 0 to `rows.count()`,
/// splitting the rows into chunks of about equal cost (f + 2·nᵤ per row).
fn chunk_bounds<R: Rows + ?Sized>(rows: &R, f: usize, threads: usize) -> Vec<usize> {
    let n = rows.count();
    let threads = threads.clamp(1, n.max(1));
    let cost = |at: usize| (f + 2 * rows.row(at).len()) as u64;
    let total: u64 = (0..n).map(cost).sum();
    let mut bounds = vec![0];
    let mut done = 0u64;
    for at in 0..n {
        done += cost(at);
        let next = bounds.len() as u64;
        if next < threads as u64 && done.saturating_mul(threads as u64) >= total.saturating_mul(next) && at + 1 < n {
            bounds.push(at + 1);
        }
    }
    bounds.push(n);
    bounds
}

/// Checks `params` against the set's size.
fn check(set: &TrainingSet, params: &IalsParams) -> Result<(), IalsError> {
    let parameter =
        |name: &'static str, value: String, valid: &'static str| IalsError::Parameter { name, value, valid };
    if params.factors == 0 || params.factors > IALS_FACTORS_MAX {
        return Err(parameter("factors", params.factors.to_string(), "1..=1024"));
    }
    if !(params.lambda.is_finite() && params.lambda > 0.0) {
        return Err(parameter("lambda", params.lambda.to_string(), "(0, ∞)"));
    }
    if !(params.alpha.is_finite() && params.alpha >= 0.0) {
        return Err(parameter("alpha", params.alpha.to_string(), "[0, ∞)"));
    }
    if params.iterations == 0 {
        return Err(parameter("iterations", "0".into(), "1.."));
    }
    if params.cg_steps == 0 {
        return Err(parameter("cg_steps", "0".into(), "1.."));
    }
    if set.names.len() > IALS_ITEMS_MAX {
        return Err(IalsError::TooManyItems { items: set.names.len(), items_max: IALS_ITEMS_MAX });
    }
    if set.rows.len() > IALS_USERS_MAX {
        return Err(IalsError::TooManyUsers { users: set.rows.len(), users_max: IALS_USERS_MAX });
    }
    Ok(())
}

/// Trains item factors on `set` (built with `params.input`); `progress` is
/// advanced once for the transpose and once per half-step
/// (`2·iterations + 1` in all).
pub fn train(set: &TrainingSet, params: &IalsParams, progress: &Progress) -> Result<IalsFactors, IalsError> {
    train_with_users(set, params, progress, |_, _| ()).map(|(model, _)| model)
}

/// `train`, also returning the user factors (`users × f`); `after` sees
/// the user and item factors after every iteration (for the tests).
fn train_with_users(
    set: &TrainingSet,
    params: &IalsParams,
    progress: &Progress,
    mut after: impl FnMut(&[f32], &[f32]),
) -> Result<(IalsFactors, Vec<f32>), IalsError> {
    check(set, params)?;
    let n_items = set.names.len();
    let observed = |&(item, x): &(Dense, f32)| (item as usize) < n_items && x.is_finite() && x > 0.0;
    if n_items == 0 || !set.rows.iter().any(|row| row.iter().any(observed)) {
        return Err(TrainError::Empty.into());
    }
    let f = params.factors;
    let threads = params.threads.max(1);
    progress.done.store(0, Ordering::Relaxed);
    progress.total.store(params.iterations as u64 * 2 + 1, Ordering::Relaxed);
    let items = transpose(set, n_items)?;
    progress.done.fetch_add(1, Ordering::Relaxed);
    let mut user_factors = initial_factors(set.rows.as_slice(), f, params.seed, 0)?;
    let mut item_factors = initial_factors(&items, f, params.seed, 1)?;
    let mut partials = reserved::<f64>(GRAM_BLOCKS_MAX * f * f)?;
    partials.resize(GRAM_BLOCKS_MAX * f * f, 0.0);
    let mut gram = reserved::<f64>(f * f)?;
    gram.resize(f * f, 0.0);
    let lambda = f64::from(params.lambda);
    let alpha = f64::from(params.alpha);
    for _ in 0..params.iterations {
        gram_of(&item_factors, f, threads, &mut partials, &mut gram);
        for k in 0..f {
            gram[k * f + k] += lambda;
        }
        let step = Step { other: &item_factors, gram: &gram, f, alpha, cg_steps: params.cg_steps };
        step.run(set.rows.as_slice(), &mut user_factors, threads);
        progress.done.fetch_add(1, Ordering::Relaxed);
        gram_of(&user_factors, f, threads, &mut partials, &mut gram);
        for k in 0..f {
            gram[k * f + k] += lambda;
        }
        let step = Step { other: &user_factors, gram: &gram, f, alpha, cg_steps: params.cg_steps };
        step.run(&items, &mut item_factors, threads);
        progress.done.fetch_add(1, Ordering::Relaxed);
        after(&user_factors, &item_factors);
    }
    drop(items);
    gram_of(&item_factors, f, threads, &mut partials, &mut gram);
    let model = IalsFactors {
        n_items: n_items as u32,
        names: set.names.clone(),
        factors: f as u32,
        lambda: params.lambda,
        alpha: params.alpha,
        input: params.input,
        item_factors,
        gram,
    };
    Ok((model, user_factors))
}

/// The Cholesky factor (lower triangle, column-major) of the user's
/// matrix YᵀY + λI + Σ (cᵢ − 1)·yᵢyᵢᵀ and b = Σ cᵢ·yᵢ over `pairs`
/// (`(item, x)`), or `None` when no pair is covered and observed (xᵤ = 0)
/// or the matrix is not positive definite (a damaged model).
fn user_system(model: &IalsFactors, pairs: impl Iterator<Item = (Dense, f32)>) -> Option<(Vec<f64>, Vec<f64>)> {
    let f = model.factors as usize;
    if model.gram.len() != f * f {
        return None;
    }
    let alpha = f64::from(model.alpha);
    let mut matrix = model.gram.clone();
    for k in 0..f {
        matrix[k * f + k] += f64::from(model.lambda);
    }
    let mut b = vec![0.0f64; f];
    let mut observed = false;
    for (item, x) in pairs {
        let (Some(gain), Some(y)) = (confidence_gain(alpha, x), item_row(model, item)) else { continue };
        observed = true;
        axpy(&mut b, 1.0 + gain, y);
        // The lower triangle: column a, rows a..f.
        for (a, column) in matrix.chunks_exact_mut(f).enumerate() {
            let scale = gain * f64::from(y[a]);
            for (total, &value) in column[a..].iter_mut().zip(&y[a..]) {
                *total += scale * f64::from(value);
            }
        }
    }
    if !observed {
        return None;
    }
    let par = Par::Seq;
    let req = llt::factor::cholesky_in_place_scratch::<f64>(f, par, Default::default());
    let mut buffer = MemBuffer::try_new(req).ok()?;
    let factor = MatMut::from_column_major_slice_mut(&mut matrix, f, f);
    llt::factor::cholesky_in_place(factor, Default::default(), par, MemStack::new(&mut buffer), Default::default())
        .ok()?;
    Some((matrix, b))
}

/// Solves L·Lᵀ·z = `rhs` in place.
fn solve_with(factor: &[f64], f: usize, rhs: &mut [f64]) {
    let lower = MatRef::from_column_major_slice(factor, f, f);
    let rhs = MatMut::from_column_major_slice_mut(rhs, f, 1);
    let mut buffer = MemBuffer::new(llt::solve::solve_in_place_scratch::<f64>(f, 1, Par::Seq));
    llt::solve::solve_in_place(lower, rhs, Par::Seq, MemStack::new(&mut buffer));
}

/// xᵤ from `(item, x)` pairs, solved exactly; zero without a covered,
/// observed pair.
fn fold_in(model: &IalsFactors, pairs: impl Iterator<Item = (Dense, f32)>) -> Vec<f32> {
    let f = model.factors as usize;
    let Some((factor, mut b)) = user_system(model, pairs) else { return vec![0.0; f] };
    solve_with(&factor, f, &mut b);
    b.iter().map(|&value| value as f32).collect()
}

/// The user's factors xᵤ from their current pairs: the exact solution of
/// the training's user step with the model's item factors (fold-in).
pub(crate) fn user_vector(model: &IalsFactors, pairs: &[Pair]) -> Vec<f32> {
    fold_in(model, pairs.iter().map(|pair| (pair.item, x_of(model.input, pair.value()))))
}

/// scores[i] = yᵢ·xᵤ for every covered item i (< `n_items` and
/// `scores.len()`); the others are left as they are.
fn score_items(model: &IalsFactors, user: &[f32], scores: &mut [f64]) {
    let f = model.factors as usize;
    let covered = (model.n_items as usize).min(scores.len());
    for (score, y) in scores[..covered].iter_mut().zip(model.item_factors.chunks_exact(f)) {
        *score = f64::from(dot_f32(y, user));
    }
}

/// Fills `profile`'s iALS scores: yᵢ·xᵤ for every covered item, with xᵤ
/// folded in from the profile's pairs. Items outside the model are left
/// as they are.
pub(crate) fn scores(model: &IalsFactors, profile: &Profile<'_>, scores: &mut [f64]) {
    let user = user_vector(model, profile.pairs);
    score_items(model, &user, scores);
}

/// Fold-in and scoring from `(item, value)` pairs, for the benchmarks.
#[doc(hidden)]
pub fn score_user(model: &IalsFactors, pairs: &[(Dense, f32)], out: &mut [f64]) {
    let user = fold_in(model, pairs.iter().map(|&(item, value)| (item, x_of(model.input, value))));
    score_items(model, &user, out);
}

/// The artefact of `model`, for the benchmarks.
#[doc(hidden)]
pub fn artefact(model: &IalsFactors) -> Result<Vec<u8>, String> {
    encode_artefact(model)
}

/// The user's items that add most to `item`'s score, best first, at most
/// `n`. The score splits exactly over the user's items: with A the user's
/// matrix, yᵢ·xᵤ = Σⱼ cⱼ·(yᵢᵀA⁻¹yⱼ), so item j contributes
/// cⱼ·(yᵢᵀA⁻¹yⱼ) (Hu, Koren and Volinsky's explanation, §5). Only
/// positive contributions are kept, and `item` itself is left out.
/// (The engine builds an [`Explainer`] once per answer instead.)
#[cfg(test)]
pub(crate) fn contributors(model: &IalsFactors, pairs: &[Pair], item: Dense, n: usize) -> Vec<(Dense, f32)> {
    explainer(model, pairs).map_or_else(Vec::new, |explainer| explainer.contributors(model, pairs, item, n))
}

/// A user's factored system, for the explanations of several items of one
/// answer: the Cholesky factor is computed once (O(nᵤ·f² + f³)), each
/// item's explanation then costs one solve (O(f²)) and a pass over the
/// user's items.
pub(crate) struct Explainer {
    factor: Vec<f64>,
}

/// The explainer of `pairs`' answers, `None` when no pair is covered and
/// observed (nothing to explain with).
pub(crate) fn explainer(model: &IalsFactors, pairs: &[Pair]) -> Option<Explainer> {
    let observed = pairs.iter().map(|pair| (pair.item, x_of(model.input, pair.value())));
    user_system(model, observed).map(|(factor, _)| Explainer { factor })
}

impl Explainer {
    /// `contributors` with this user's factor (built from the same `pairs`).
    pub(crate) fn contributors(&self, model: &IalsFactors, pairs: &[Pair], item: Dense, n: usize) -> Vec<(Dense, f32)> {
        let f = model.factors as usize;
        let Some(target) = item_row(model, item) else { return Vec::new() };
        let mut z: Vec<f64> = target.iter().map(|&value| f64::from(value)).collect();
        solve_with(&self.factor, f, &mut z);
        let alpha = f64::from(model.alpha);
        let mut found: Vec<(Dense, f32)> = pairs
            .iter()
            .filter(|pair| pair.item != item)
            .filter_map(|pair| {
                let gain = confidence_gain(alpha, x_of(model.input, pair.value()))?;
                let y = item_row(model, pair.item)?;
                let contribution = ((1.0 + gain) * dot_mixed(y, &z)) as f32;
                (contribution > 0.0).then_some((pair.item, contribution))
            })
            .collect();
        found.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        found.truncate(n);
        found
    }
}

/// The artefact file's magic and format version.
pub(crate) const ARTEFACT_MAGIC: &[u8; 8] = b"RECWALIF";
const ARTEFACT_VERSION: u32 = 1;
const ARTEFACT_HEADER_BYTES: usize = 40;
const _: () = assert!(ARTEFACT_HEADER_BYTES.is_multiple_of(8));

/// The artefact file of `model`, all integers little-endian:
///
/// | bytes | field |
/// |---|---|
/// | 0..8 | magic `RECWALIF` |
/// | 8..12 | format version (u32, 1) |
/// | 12..16 | n_items (u32) |
/// | 16..20 | factors f (u32) |
/// | 20..24 | λ (f32 bits) |
/// | 24..28 | α (f32 bits) |
/// | 28..32 | input (u32: 0 binary, 1 value) |
/// | 32..40 | names_len, bytes of the names (u64) |
/// | 40.. | the names (postcard `Vec<String>`), names_len bytes |
/// | then | item factors, n_items·f f32, row-major |
/// | then | YᵀY, f·f f64, row-major (symmetric) |
pub(crate) fn encode_artefact(model: &IalsFactors) -> Result<Vec<u8>, String> {
    let names = postcard::to_stdvec(&model.names).map_err(|err| format!("cannot encode the item names: {err}"))?;
    let mut bytes = Vec::new();
    bytes
        .try_reserve_exact(ARTEFACT_HEADER_BYTES + names.len() + model.item_factors.len() * 4 + model.gram.len() * 8)
        .map_err(|_| "cannot allocate the artefact".to_string())?;
    bytes.extend_from_slice(ARTEFACT_MAGIC);
    bytes.extend_from_slice(&ARTEFACT_VERSION.to_le_bytes());
    bytes.extend_from_slice(&model.n_items.to_le_bytes());
    bytes.extend_from_slice(&model.factors.to_le_bytes());
    bytes.extend_from_slice(&model.lambda.to_bits().to_le_bytes());
    bytes.extend_from_slice(&model.alpha.to_bits().to_le_bytes());
    bytes.extend_from_slice(&u32::from(model.input == ItemModelInput::Value).to_le_bytes());
    bytes.extend_from_slice(&(names.len() as u64).to_le_bytes());
    debug_assert_eq!(bytes.len(), ARTEFACT_HEADER_BYTES);
    bytes.extend_from_slice(&names);
    for value in &model.item_factors {
        bytes.extend_from_slice(&value.to_le_bytes());
    }
    for value in &model.gram {
        bytes.extend_from_slice(&value.to_le_bytes());
    }
    Ok(bytes)
}

/// Reads an artefact back (its SHA-256 was checked by the caller); every
/// inconsistency is an error, never a partly filled model: the header's
/// fields and ranges, the exact length, the names, finite factors and a
/// finite, symmetric YᵀY.
pub(crate) fn decode_artefact(bytes: &[u8]) -> Result<IalsFactors, String> {
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
    let factors = u32_at(16);
    let lambda = f32::from_bits(u32_at(20));
    let alpha = f32::from_bits(u32_at(24));
    let input = match u32_at(28) {
        0 => ItemModelInput::Binary,
        1 => ItemModelInput::Value,
        other => return Err(format!("unknown input {other}")),
    };
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[32..40]);
    let names_len = u64::from_le_bytes(word);
    let (n, f) = (n_items as usize, factors as usize);
    if n > IALS_ITEMS_MAX {
        return Err(format!("{n} items is above the limit {IALS_ITEMS_MAX}"));
    }
    if f == 0 || f > IALS_FACTORS_MAX {
        return Err(format!("{f} factors is outside 1..={IALS_FACTORS_MAX}"));
    }
    if !(lambda.is_finite() && lambda > 0.0) {
        return Err(format!("λ = {lambda} is not positive and finite"));
    }
    if !(alpha.is_finite() && alpha >= 0.0) {
        return Err(format!("α = {alpha} is not non-negative and finite"));
    }
    // n ≤ 10⁷ and f ≤ 1024: the products fit a u64.
    let factors_bytes = (n as u64) * (f as u64) * 4;
    let gram_bytes = (f as u64) * (f as u64) * 8;
    let want = (ARTEFACT_HEADER_BYTES as u64)
        .checked_add(names_len)
        .and_then(|total| total.checked_add(factors_bytes))
        .and_then(|total| total.checked_add(gram_bytes))
        .ok_or_else(|| format!("names_len {names_len} is too large"))?;
    if bytes.len() as u64 != want {
        return Err(format!("{} bytes, the header implies {want}", bytes.len()));
    }
    let names_end = ARTEFACT_HEADER_BYTES + names_len as usize;
    let (names, rest): (Vec<String>, &[u8]) = postcard::take_from_bytes(&bytes[ARTEFACT_HEADER_BYTES..names_end])
        .map_err(|err| format!("cannot decode the item names: {err}"))?;
    if !rest.is_empty() {
        return Err(format!("{} bytes after the item names", rest.len()));
    }
    if names.len() != n {
        return Err(format!("{} names for {n} items", names.len()));
    }
    let factors_end = names_end + factors_bytes as usize;
    let mut item_factors: Vec<f32> = Vec::new();
    item_factors.try_reserve_exact(n * f).map_err(|_| "cannot allocate the item factors".to_string())?;
    for chunk in bytes[names_end..factors_end].chunks_exact(4) {
        let value = f32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        if !value.is_finite() {
            return Err(format!("item factor {} is not finite", item_factors.len()));
        }
        item_factors.push(value);
    }
    let mut gram: Vec<f64> = Vec::with_capacity(f * f);
    for chunk in bytes[factors_end..].chunks_exact(8) {
        word.copy_from_slice(chunk);
        let value = f64::from_le_bytes(word);
        if !value.is_finite() {
            return Err(format!("YᵀY entry {} is not finite", gram.len()));
        }
        gram.push(value);
    }
    for a in 0..f {
        if gram[a * f + a] < 0.0 {
            return Err(format!("YᵀY[{a}][{a}] is negative"));
        }
        for b in a + 1..f {
            if gram[a * f + b].to_bits() != gram[b * f + a].to_bits() {
                return Err(format!("YᵀY is not symmetric at [{a}][{b}]"));
            }
        }
    }
    Ok(IalsFactors { n_items, names, factors, lambda, alpha, input, item_factors, gram })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn set(rows: Vec<Vec<(Dense, f32)>>, n: usize) -> TrainingSet {
        TrainingSet { names: (0..n).map(|item| item.to_string()).collect(), rows, lsn: 0 }
    }

    fn params(factors: usize, threads: usize) -> IalsParams {
        IalsParams {
            factors,
            lambda: 0.1,
            alpha: 2.0,
            iterations: 10,
            cg_steps: 3,
            seed: 7,
            input: ItemModelInput::Value,
            threads,
        }
    }

    /// Fewer factors and more regularisation than `params`: the planted
    /// structure has rank 2, and 8 factors at λ 0.1 fit the noise of 60
    /// users (unseen items are fitted towards 0 in both blocks).
    fn planted_params(threads: usize) -> IalsParams {
        IalsParams { lambda: 10.0, ..params(4, threads) }
    }

    fn pairs(items: &[(Dense, f32)]) -> Vec<Pair> {
        items
            .iter()
            .map(|&(item, value)| {
                let mut pair = Pair::empty(item);
                pair.add_event(false, value, None);
                pair
            })
            .collect()
    }

    /// A deterministic stream for the data sets below.
    fn next(state: &mut u64) -> u64 {
        *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = *state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Two communities: users 0..30 hold about half of items 0..12, users
    /// 30..60 about half of items 12..24, values 1..=5.
    fn planted() -> TrainingSet {
        let mut state = 11;
        let rows = (0..60u32)
            .map(|user| {
                let block = if user < 30 { 0 } else { 12 };
                let mut row = Vec::new();
                for item in block..block + 12 {
                    let draw = next(&mut state);
                    if draw.is_multiple_of(2) {
                        row.push((item, 1.0 + (draw / 2 % 5) as f32));
                    }
                }
                row
            })
            .collect();
        set(rows, 24)
    }

    /// A random set with skewed item popularity.
    fn random_set(users: usize, items: usize, per_user: usize, seed: u64) -> TrainingSet {
        let mut state = seed;
        let rows = (0..users)
            .map(|_| {
                let mut row: Vec<(Dense, f32)> = (0..per_user)
                    .map(|_| {
                        let a = next(&mut state) % items as u64;
                        let b = next(&mut state) % items as u64;
                        (a.min(b) as Dense, 1.0 + (next(&mut state) % 5) as f32)
                    })
                    .collect();
                row.sort_by_key(|pair| pair.0);
                row.dedup_by_key(|pair| pair.0);
                row
            })
            .collect();
        set(rows, items)
    }

    /// Σᵤᵢ cᵤᵢ(pᵤᵢ − xᵤ·yᵢ)² + λ(Σ‖xᵤ‖² + Σ‖yᵢ‖²), densely.
    fn loss(data: &TrainingSet, params: &IalsParams, users: &[f32], items: &[f32]) -> f64 {
        let f = params.factors;
        let n_items = data.names.len();
        let mut total = 0.0;
        for (user, row) in data.rows.iter().enumerate() {
            let x = &users[user * f..(user + 1) * f];
            for item in 0..n_items {
                let y = &items[item * f..(item + 1) * f];
                let predicted: f64 = x.iter().zip(y).map(|(&a, &b)| f64::from(a) * f64::from(b)).sum();
                let (c, p) = match row.iter().find(|pair| pair.0 as usize == item) {
                    Some(&(_, value)) => (1.0 + f64::from(params.alpha) * f64::from(value), 1.0),
                    None => (1.0, 0.0),
                };
                total += c * (p - predicted) * (p - predicted);
            }
        }
        let norm: f64 = users.iter().chain(items).map(|&value| f64::from(value) * f64::from(value)).sum();
        total + f64::from(params.lambda) * norm
    }

    /// The user's normal equations solved densely (Gaussian elimination
    /// with partial pivoting), from the model's item factors alone.
    fn dense_solve(model: &IalsFactors, items: &[(Dense, f32)]) -> Vec<f64> {
        let f = model.factors as usize;
        let mut a = vec![vec![0.0f64; f + 1]; f];
        for item in 0..model.n_items as usize {
            let y = &model.item_factors[item * f..(item + 1) * f];
            let observed = items.iter().find(|pair| pair.0 as usize == item);
            let c = observed.map_or(1.0, |&(_, value)| 1.0 + f64::from(model.alpha) * f64::from(value));
            for r in 0..f {
                for s in 0..f {
                    a[r][s] += c * f64::from(y[r]) * f64::from(y[s]);
                }
                if observed.is_some() {
                    a[r][f] += c * f64::from(y[r]);
                }
            }
        }
        for (r, row) in a.iter_mut().enumerate() {
            row[r] += f64::from(model.lambda);
        }
        for col in 0..f {
            let pivot = (col..f).max_by(|&r, &s| a[r][col].abs().total_cmp(&a[s][col].abs())).unwrap();
            a.swap(col, pivot);
            let pivot_row = a[col].clone();
            for (r, row) in a.iter_mut().enumerate() {
                if r != col {
                    let ratio = row[col] / pivot_row[col];
                    for (value, &subtrahend) in row.iter_mut().zip(&pivot_row).skip(col) {
                        *value -= ratio * subtrahend;
                    }
                }
            }
        }
        (0..f).map(|r| a[r][f] / a[r][r]).collect()
    }

    #[test]
    fn fold_in_ranks_the_users_own_block_first() {
        let data = planted();
        let model = train(&data, &planted_params(2), &Progress::default()).unwrap();
        for user in [0usize, 5, 31, 47] {
            let held = pairs(&data.rows[user]);
            let profile = Profile { user: None, pairs: &held, norm_sq: 0.0 };
            let mut scores = vec![f64::NAN; 24];
            super::scores(&model, &profile, &mut scores);
            let own = if user < 30 { 0..12 } else { 12..24 };
            let unseen_own = own.clone().filter(|&item| !profile.holds(item as Dense));
            let worst_own = unseen_own.map(|item| scores[item]).fold(f64::INFINITY, f64::min);
            let best_other =
                (0..24).filter(|item| !own.contains(item)).map(|item| scores[item]).fold(f64::MIN, f64::max);
            assert!(worst_own > best_other, "user {user}: {worst_own} ≤ {best_other} ({scores:?})");
        }
    }

    #[test]
    fn fold_in_is_the_exact_user_step() {
        let data = random_set(40, 30, 8, 3);
        let model = train(&data, &params(6, 1), &Progress::default()).unwrap();
        for user in [0usize, 7, 21] {
            let got = user_vector(&model, &pairs(&data.rows[user]));
            let want = dense_solve(&model, &data.rows[user]);
            for (k, (&got, &want)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (f64::from(got) - want).abs() <= 1e-4 * (1.0 + want.abs()),
                    "user {user}, factor {k}: {got} vs {want}"
                );
            }
        }
        // An unknown item (interned after training) is skipped.
        let mut extended = data.rows[0].clone();
        extended.push((500, 3.0));
        assert_eq!(user_vector(&model, &pairs(&extended)), user_vector(&model, &pairs(&data.rows[0])));
        // With as many CG steps as factors, training's user step is the
        // exact solve against the item factors it read.
        let exact = IalsParams { cg_steps: 12, iterations: 3, ..params(6, 1) };
        let mut previous: Option<Vec<f32>> = None;
        let mut checked = 0;
        train_with_users(&data, &exact, &Progress::default(), |users, items| {
            if let Some(read) = previous.replace(items.to_vec()) {
                let read = IalsFactors { item_factors: read, ..model.clone() };
                for user in [2usize, 19] {
                    let want = dense_solve(&read, &data.rows[user]);
                    for (k, &want) in want.iter().enumerate() {
                        let got = f64::from(users[user * 6 + k]);
                        assert!(
                            (got - want).abs() <= 1e-4 * (1.0 + want.abs()),
                            "user {user}, factor {k}: {got} vs {want}"
                        );
                    }
                }
                checked += 1;
            }
        })
        .unwrap();
        assert_eq!(checked, 2);
    }

    #[test]
    fn loss_does_not_increase_over_iterations() {
        let data = random_set(50, 40, 10, 5);
        let base = params(8, 1);
        let mut losses = Vec::new();
        train_with_users(
            &data,
            &IalsParams { iterations: 12, ..base.clone() },
            &Progress::default(),
            |users, items| {
                losses.push(loss(&data, &base, users, items));
            },
        )
        .unwrap();
        assert_eq!(losses.len(), 12);
        for pair in losses.windows(2) {
            assert!(pair[1] <= pair[0] * (1.0 + 1e-6), "{losses:?}");
        }
        assert!(losses[11] < losses[0], "{losses:?}");
    }

    #[test]
    fn factors_do_not_depend_on_threads() {
        let data = random_set(300, 50, 12, 9);
        let one = train(&data, &params(16, 1), &Progress::default()).unwrap();
        for threads in [2, 3, 7] {
            let many = train(&data, &params(16, threads), &Progress::default()).unwrap();
            assert_eq!(one, many, "threads {threads}");
        }
        // More rows than a Gram block.
        let big = random_set(9000, 20, 2, 4);
        let quick = IalsParams { iterations: 2, ..params(4, 1) };
        let one = train(&big, &quick, &Progress::default()).unwrap();
        let two = train(&big, &IalsParams { threads: 2, ..quick }, &Progress::default()).unwrap();
        assert_eq!(one, two);
    }

    #[test]
    fn progress_counts_half_steps() {
        let data = planted();
        let progress = Progress::default();
        train(&data, &IalsParams { iterations: 4, ..params(4, 1) }, &progress).unwrap();
        assert_eq!(progress.done.load(Ordering::Relaxed), 9);
        assert_eq!(progress.total.load(Ordering::Relaxed), 9);
    }

    #[test]
    fn artefacts_round_trip_and_damage_is_refused() {
        let data = random_set(20, 15, 5, 1);
        let model = train(&data, &params(5, 1), &Progress::default()).unwrap();
        let bytes = encode_artefact(&model).unwrap();
        assert_eq!(decode_artefact(&bytes).unwrap(), model);
        assert!(decode_artefact(&bytes[..bytes.len() - 1]).is_err());
        assert!(decode_artefact(&bytes[..ARTEFACT_HEADER_BYTES - 1]).is_err());
        // Magic, version, n_items, factors, input, names_len.
        for (at, mask) in [(0, 1u8), (8, 1), (12, 1), (16, 1), (28, 2), (32, 1)] {
            let mut bad = bytes.clone();
            bad[at] ^= mask;
            assert!(decode_artefact(&bad).is_err(), "byte {at}");
        }
        // λ's sign bit.
        let mut bad = bytes.clone();
        bad[23] ^= 0x80;
        assert!(decode_artefact(&bad).is_err());
        // A non-finite factor.
        let mut bad = bytes.clone();
        let names_len = u64::from_le_bytes(bytes[32..40].try_into().unwrap()) as usize;
        let at = ARTEFACT_HEADER_BYTES + names_len;
        bad[at..at + 4].copy_from_slice(&f32::NAN.to_le_bytes());
        assert!(decode_artefact(&bad).is_err());
    }

    #[test]
    fn an_added_event_changes_the_scores() {
        let data = planted();
        let model = train(&data, &planted_params(1), &Progress::default()).unwrap();
        let mut held = pairs(&data.rows[3]);
        let profile = Profile { user: None, pairs: &held, norm_sq: 0.0 };
        let mut before = vec![0.0; 24];
        super::scores(&model, &profile, &mut before);
        // The user now likes an item of the other block.
        held.push(pairs(&[(20, 5.0)])[0]);
        let profile = Profile { user: None, pairs: &held, norm_sq: 0.0 };
        let mut after = vec![0.0; 24];
        super::scores(&model, &profile, &mut after);
        assert_ne!(before, after);
        assert!(after[21] > before[21], "{} vs {}", after[21], before[21]);
        // And the new item explains the other block's score.
        let explained = contributors(&model, &held, 21, 3);
        assert_eq!(explained.first().map(|pair| pair.0), Some(20), "{explained:?}");
    }

    #[test]
    fn contributions_sum_to_the_score() {
        let data = planted();
        let mut model = train(&data, &planted_params(1), &Progress::default()).unwrap();
        model.alpha = 1.0;
        let held = pairs(&data.rows[40]);
        let mut scores = vec![0.0; 24];
        score_user(&model, &data.rows[40], &mut scores);
        let alpha = f64::from(model.alpha);
        let f = model.factors as usize;
        let observed = held.iter().map(|pair| (pair.item, pair.value()));
        let (factor, _) = user_system(&model, observed).unwrap();
        let mut z: Vec<f64> = item_row(&model, 13).unwrap().iter().map(|&value| f64::from(value)).collect();
        solve_with(&factor, f, &mut z);
        let sum: f64 = held
            .iter()
            .map(|pair| (1.0 + alpha * f64::from(pair.value())) * dot_mixed(item_row(&model, pair.item).unwrap(), &z))
            .sum();
        assert!((sum - scores[13]).abs() < 1e-4, "{sum} vs {}", scores[13]);
    }

    #[test]
    fn bad_parameters_and_empty_sets_are_refused() {
        let data = planted();
        for bad in [
            IalsParams { factors: 0, ..params(4, 1) },
            IalsParams { factors: 1025, ..params(4, 1) },
            IalsParams { lambda: 0.0, ..params(4, 1) },
            IalsParams { lambda: f32::NAN, ..params(4, 1) },
            IalsParams { alpha: -1.0, ..params(4, 1) },
            IalsParams { iterations: 0, ..params(4, 1) },
            IalsParams { cg_steps: 0, ..params(4, 1) },
        ] {
            assert!(matches!(train(&data, &bad, &Progress::default()), Err(IalsError::Parameter { .. })), "{bad:?}");
        }
        let empty = set(vec![vec![], vec![(0, 0.0)]], 3);
        assert_eq!(train(&empty, &params(4, 1), &Progress::default()), Err(IalsError::Train(TrainError::Empty)));
        assert!(train_bytes(1_000_000, 100_000, 10_000_000, 64) > 340 << 20);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// Any damage to an artefact (bytes flipped anywhere, a cut) is a
        /// decode error or a consistent model (its sizes agree, its values
        /// finite): never a panic. (The engine reads only files whose
        /// SHA-256 matches the log; this is the codec's own guard.)
        #[test]
        fn damaged_artefacts_never_panic_nor_decode_to_another_file(
            flips in prop::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 0..4),
            cut in any::<prop::sample::Index>(),
            truncate in any::<bool>(),
        ) {
            let data = random_set(12, 9, 4, 3);
            let model = train(&data, &params(3, 1), &Progress::default()).unwrap();
            let mut bytes = encode_artefact(&model).unwrap();
            for (at, mask) in flips {
                let at = at.index(bytes.len());
                bytes[at] ^= mask;
            }
            if truncate {
                bytes.truncate(cut.index(bytes.len()));
            }
            if let Ok(decoded) = decode_artefact(&bytes) {
                let (n, f) = (decoded.n_items as usize, decoded.factors as usize);
                prop_assert_eq!((decoded.names.len(), decoded.item_factors.len(), decoded.gram.len()), (n, n * f, f * f));
                prop_assert!(decoded.item_factors.iter().all(|value| value.is_finite()));
                prop_assert!(decoded.gram.iter().all(|value| value.is_finite()));
            }
        }

        #[test]
        fn training_gives_finite_factors_and_scores(
            rows in prop::collection::vec(prop::collection::vec((0u32..12, 0.0f32..6.0), 0..8), 1..12),
            factors in 1usize..6,
            alpha in 0.0f32..20.0,
            lambda in 0.001f32..10.0,
            binary in any::<bool>(),
        ) {
            let rows: Vec<Vec<(Dense, f32)>> = rows
                .into_iter()
                .map(|mut row| {
                    row.sort_by_key(|pair| pair.0);
                    row.dedup_by_key(|pair| pair.0);
                    row
                })
                .collect();
            let input = if binary { ItemModelInput::Binary } else { ItemModelInput::Value };
            let data = set(rows.iter().map(|row| row.iter().map(|&(item, value)| (item, x_of(input, value))).collect()).collect(), 10);
            let params = IalsParams { factors, alpha, lambda, iterations: 4, input, ..params(factors, 2) };
            match train(&data, &params, &Progress::default()) {
                Ok(model) => {
                    prop_assert!(model.item_factors.iter().all(|value| value.is_finite()));
                    prop_assert!(model.gram.iter().all(|value| value.is_finite()));
                    prop_assert_eq!(decode_artefact(&encode_artefact(&model).unwrap()).unwrap(), model.clone());
                    for row in &rows {
                        let mut scores = vec![f64::NAN; 12];
                        score_user(&model, row, &mut scores);
                        prop_assert!(scores[..10].iter().all(|value| value.is_finite()));
                        prop_assert!(scores[10..].iter().all(|value| value.is_nan()));
                    }
                }
                Err(err) => prop_assert_eq!(err, IalsError::Train(TrainError::Empty)),
            }
        }
    }
}
