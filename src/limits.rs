//! Limits and constants that several layers share: the sizes of ids, the
//! range of weights, the most items one answer may hold. A leaf: it imports
//! nothing, so the configuration, the write side and the read side can all
//! check against the same numbers without importing one another.
//!
//! A limit used by one module only stays in that module.

/// Longest external id (user, item) accepted, in bytes.
pub const ID_BYTES_MAX: usize = 256;

/// Longest client event id accepted, in bytes.
pub const EVENT_ID_BYTES_MAX: usize = 256;

/// Largest weight (and rating) accepted. With at most 2³² events per pair,
/// sums stay far from `f32` overflow, so scores can never become ∞ or NaN.
pub const WEIGHT_MAX: f32 = 1e6;

/// Most items one request may ask for.
pub const N_MAX: usize = 1000;

/// Events in one session recommendation request.
pub const SESSION_EVENTS_MAX: usize = 1000;

/// Categories per item.
pub const ITEM_CATEGORIES_MAX: usize = 32;

/// Bytes of a category name.
pub const CATEGORY_BYTES_MAX: usize = 64;

/// Labels per item or user.
pub const LABELS_MAX: usize = 32;

/// Bytes of a label's key.
pub const LABEL_KEY_BYTES_MAX: usize = 64;

/// Bytes of a label's text value.
pub const LABEL_TEXT_BYTES_MAX: usize = 256;

/// Categories one filter may name (any of them matches).
pub const FILTER_CATEGORIES_MAX: usize = 32;

/// Label conditions one filter may hold (all of them must hold).
pub const FILTER_LABELS_MAX: usize = 16;

/// Longest name of a custom event kind (`KindWeights::custom`), in bytes.
pub(crate) const CUSTOM_KIND_BYTES_MAX: usize = 64;

/// Smallest `wal.record_bytes_max` the engine accepts: a record of one
/// event whose user, item and event ids are at their limits (3 × 256 bytes
/// and the fields around them) fits with room to spare.
pub(crate) const RECORD_BYTES_MIN: usize = 1024;

/// Most sessions one loaded model version may hold (`ModelConfig::sessions`).
pub(crate) const MODEL_SESSIONS_MAX: usize = 64;

/// Most iterations of exact ItemRank (`ItemRankConfig::iterations`).
pub(crate) const ITEMRANK_ITERATIONS_MAX: u32 = 1000;

// The id limits bound the interner's keys and the log's record sizes; the
// event id limit is the one the dedup window stores.
const _: () = assert!(ID_BYTES_MAX > 0 && ID_BYTES_MAX <= u16::MAX as usize);
const _: () = assert!(EVENT_ID_BYTES_MAX > 0 && EVENT_ID_BYTES_MAX <= u16::MAX as usize);
const _: () = assert!(N_MAX > 0);

/// The largest `item_model.items_max` accepted: EASE trains in about 24·n²
/// bytes (n = 46,340 is 48 GiB), so a cap above it is a typo.
pub const ITEM_MODEL_ITEMS_MAX: usize = 46_340;

/// Most factors an iALS item model may have (`item_model.ials.factors`,
/// and what an artefact may declare).
pub const IALS_FACTORS_MAX: usize = 1024;

/// Most items an iALS artefact may declare (its factors are 4·f bytes an
/// item: 10M items at 64 factors is 2.5 GB).
pub const IALS_ITEMS_MAX: usize = 10_000_000;
