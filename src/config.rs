//! Engine configuration: event weights, validation limits, dedup window,
//! algorithm parameters and automatic checkpoints.

use std::collections::BTreeMap;
use std::time::Duration;

use recwal_wal::{SyncPolicy, WalConfig};
use serde::{Deserialize, Serialize};

use crate::error::EngineError;
use crate::limits::{
    CUSTOM_KIND_BYTES_MAX, ITEMRANK_ITERATIONS_MAX, MODEL_SESSIONS_MAX, N_MAX, RECORD_BYTES_MIN, WEIGHT_MAX,
};
// `EngineConfig::models`; re-exported so `recwal::ModelConfig` keeps its path.
pub use crate::model::config::ModelConfig;

/// Everything `Engine::open` needs besides the directory.
///
/// It is also the `[engine]` part of `recwal serve`'s configuration file:
/// each field is a key (durations in milliseconds, under a name ending
/// `_ms`), missing keys keep the defaults below and unknown keys are refused.
/// A field added here is a key at once; docs/SERVER.md must list it (a test
/// in `server/src/config.rs` compares the two).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineConfig {
    /// The log's configuration (segment size, ring size, sync policy). Default:
    /// 4 MiB segments, one created at first, at most 1024 of them (4 GiB).
    #[serde(with = "crate::config_wal")]
    pub wal: WalConfig,
    /// Weight of each implicit event kind.
    pub weights: KindWeights,
    /// Inclusive range of accepted rating values.
    pub rating_min: f32,
    /// See `rating_min`.
    pub rating_max: f32,
    /// How far in the future an event's timestamp may be, relative to the
    /// engine's clock.
    #[serde(rename = "max_future_ms", with = "crate::units::ms")]
    pub max_future: Duration,
    /// Most events one `ingest_batch` call may carry.
    pub batch_events_max: usize,
    /// Client event ids remembered for deduplication.
    pub dedup: DedupConfig,
    /// User-based collaborative filtering.
    pub usercf: UserCfConfig,
    /// ItemRank.
    pub itemrank: ItemRankConfig,
    /// Popularity.
    pub popularity: PopularityConfig,
    /// Weights of the blend strategy.
    pub blend: BlendConfig,
    /// When the engine checkpoints on its own.
    pub checkpoint: CheckpointConfig,
    /// Ranking models.
    pub models: ModelConfig,
    /// Expiry of feedback (interactions) by age.
    pub feedback: FeedbackConfig,
    /// The learned item model of the `ease` strategy.
    pub item_model: ItemModelConfig,
}

/// How a user's interaction with an item enters X (and the user side at
/// request time): 1 for any interaction, or its value (the latest rating
/// plus the implicit weights).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemModelInput {
    /// 1 for any interaction.
    Binary,
    /// The pair's value (`Pair::value`).
    Value,
}

impl ItemModelInput {
    /// The name in configuration files and reports.
    pub fn name(self) -> &'static str {
        match self {
            ItemModelInput::Binary => "binary",
            ItemModelInput::Value => "value",
        }
    }
}

/// Which learned item model the engine trains.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemModelFamily {
    /// EASE (`Strategy::Ease`): closed form, O(items²) memory; up to
    /// `items_max` items.
    Ease,
    /// Implicit ALS with conjugate-gradient steps (`Strategy::Ials`):
    /// O((users + items) · factors) memory, any catalogue size.
    Ials,
    /// EASE while the catalogue has at most `items_max` items, iALS above.
    Auto,
}

impl ItemModelFamily {
    /// The name in configuration files and reports.
    pub fn name(self) -> &'static str {
        match self {
            ItemModelFamily::Ease => "ease",
            ItemModelFamily::Ials => "ials",
            ItemModelFamily::Auto => "auto",
        }
    }
}

/// The iALS item model's parameters (`item_model.ials`). λ and α were
/// picked on a validation split carved from ML-100k's training part by
/// `examples/evaluate_ease` (docs/EVALUATION.md, "iALS"); they scale with
/// the values in X.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IalsConfig {
    /// Factors per user and item, 1–1024.
    pub factors: usize,
    /// L2 regularisation λ (> 0).
    pub lambda: f32,
    /// Confidence slope α: c = 1 + α·x (≥ 0).
    pub alpha: f32,
    /// Alternations (a user step and an item step), 1–1000.
    pub iterations: usize,
    /// Conjugate-gradient steps per row and step, 1–100.
    pub cg_steps: usize,
    /// Training threads (0: one per core); the result does not depend on it.
    pub threads: usize,
}

impl Default for IalsConfig {
    fn default() -> Self {
        IalsConfig { factors: 64, lambda: 45.0, alpha: 1.5, iterations: 15, cg_steps: 3, threads: 0 }
    }
}

/// The learned item model (`Strategy::Ease` or `Strategy::Ials`): trained
/// from the state in the background, stored as an artefact and logged
/// (record 11); the user side is applied at request time. The defaults were
/// picked on a validation split carved from ML-100k's training part
/// (docs/EVALUATION.md).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ItemModelConfig {
    /// Which model is trained: `ease`, `ials` or `auto` (EASE up to
    /// `items_max` items, iALS above).
    pub family: ItemModelFamily,
    /// EASE's L2 regularisation λ added to the Gram matrix's diagonal. > 0.
    pub lambda: f32,
    /// What X holds: `binary` (1 per interaction) or `value` (the pair's
    /// value: the latest rating plus the implicit weights).
    pub input: ItemModelInput,
    /// Largest catalogue EASE trains on (memory is about 24·items² bytes at
    /// the peak of training); above it `auto` trains iALS, `ease` refuses
    /// with a logged reason and answers with popular items.
    pub items_max: usize,
    /// The iALS model's parameters.
    pub ials: IalsConfig,
    /// Retrain after this many events applied since the last training
    /// (None, "off" in a file: not by count).
    #[serde(with = "crate::units::count_or_off")]
    pub retrain_every_events: Option<u64>,
    /// Retrain when the model is this old and events arrived since (None,
    /// "off" in a file: not by time).
    #[serde(rename = "retrain_every_ms", with = "crate::units::ms_or_off")]
    pub retrain_every: Option<Duration>,
}

impl Default for ItemModelConfig {
    fn default() -> Self {
        ItemModelConfig {
            family: ItemModelFamily::Auto,
            lambda: 6000.0,
            input: ItemModelInput::Value,
            items_max: 10_000,
            ials: IalsConfig::default(),
            retrain_every_events: Some(100_000),
            retrain_every: Some(Duration::from_secs(3600)),
        }
    }
}

/// Expiry of feedback: an interaction (a user's events on one item) whose
/// newest event is older than `ttl` leaves the state, as if its events had
/// never happened. The engine writes the cutoff as a log record
/// (`ExpireFeedbackV1`) every `expire_every` (and once soon after open), so a
/// replay expires exactly what the live engine expired.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FeedbackConfig {
    /// Time-to-live of an interaction, by its newest event's time (`None`:
    /// interactions never expire). At least one second.
    #[serde(rename = "ttl_ms", with = "crate::units::ms_or_off")]
    pub ttl: Option<Duration>,
    /// How often the engine writes a new cutoff. At least one second.
    #[serde(rename = "expire_every_ms", with = "crate::units::ms")]
    pub expire_every: Duration,
}

impl Default for FeedbackConfig {
    fn default() -> Self {
        FeedbackConfig { ttl: None, expire_every: Duration::from_secs(3600) }
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            // A new data dir costs one 4 MiB segment and the one prepared
            // ahead; the ring grows as records wait for a checkpoint, to at
            // most 1024 segments: 4 GiB of disk (README.md, `recwal serve --help`).
            wal: WalConfig::default()
                .segment_bytes(4 << 20)
                .segments_initial(1)
                .segments_max(1024)
                .sync_policy(SyncPolicy::batch_default()),
            weights: KindWeights::default(),
            rating_min: 0.0,
            rating_max: 5.0,
            max_future: Duration::from_secs(3600),
            batch_events_max: 10_000,
            dedup: DedupConfig::default(),
            usercf: UserCfConfig::default(),
            itemrank: ItemRankConfig::default(),
            popularity: PopularityConfig::default(),
            blend: BlendConfig::default(),
            checkpoint: CheckpointConfig::default(),
            models: ModelConfig::default(),
            feedback: FeedbackConfig::default(),
            item_model: ItemModelConfig::default(),
        }
    }
}

/// Weights of implicit events. A rating's weight is its value.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KindWeights {
    /// `view`.
    pub view: f32,
    /// `click`.
    pub click: f32,
    /// `cart`.
    pub cart: f32,
    /// `purchase`.
    pub purchase: f32,
    /// Custom kinds by name; an event of a kind not listed is rejected.
    pub custom: BTreeMap<String, f32>,
}

impl Default for KindWeights {
    fn default() -> Self {
        KindWeights { view: 1.0, click: 2.0, cart: 4.0, purchase: 8.0, custom: BTreeMap::new() }
    }
}

/// The window inside which a repeated client event id is a duplicate. An id
/// leaves the window once more than `max_ids` newer ids arrived or once it is
/// older than `max_age` (by ingest time), whichever comes first.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DedupConfig {
    /// Most ids remembered.
    pub max_ids: usize,
    /// Longest an id is remembered.
    #[serde(rename = "max_age_ms", with = "crate::units::ms")]
    pub max_age: Duration,
}

impl Default for DedupConfig {
    fn default() -> Self {
        DedupConfig { max_ids: 1_000_000, max_age: Duration::from_secs(24 * 3600) }
    }
}

/// User-based collaborative filtering.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UserCfConfig {
    /// Neighbours per user.
    pub neighbours: usize,
    /// Pruning: at most this many users of each of the target user's items
    /// are scanned for neighbours: those who first interacted with it most
    /// recently. `usize::MAX` is exact.
    pub scan_users_per_item: usize,
}

impl Default for UserCfConfig {
    fn default() -> Self {
        UserCfConfig { neighbours: 50, scan_users_per_item: 1000 }
    }
}

/// ItemRank (Gori & Pucci 2007).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ItemRankConfig {
    /// Damping α: IR ← α·C·IR + (1−α)·d.
    pub alpha: f32,
    /// Iterations of the exact mode.
    pub iterations: u32,
    /// Fast mode: at least this many hops of the series are computed
    /// exactly (more while the error bound asks); the rest is replaced by
    /// the walk's stationary distribution.
    pub fast_hops: u32,
    /// Fast mode's pruning: at most this many users of each of the user's
    /// items are walked through (those who first interacted with it last), each standing
    /// for the item's whole user list. Exact while every item has fewer
    /// users.
    pub scan_users_per_item: usize,
    /// Fast mode's pruning: of each user reached, at most this many items
    /// are followed (each standing for the user's whole list).
    pub scan_items_per_user: usize,
    /// Fast mode's pruning: the walk starts from at most this many of the
    /// user's strongest items.
    pub seed_items_max: usize,
    /// Fast mode's error bound: hops are added (up to `iterations`) until
    /// the bound on the L1 distance between the fast scores and the walk's
    /// limit is at most this (scores sum to 1). 0 runs every iteration.
    pub fast_tolerance: f64,
    /// Fast mode on states of at most this many (user, item) pairs walks
    /// exactly, hop by hop, until its error bound is within
    /// `fast_tolerance`; above it (where one pass over the pairs is too slow
    /// for a request) it takes the pruned path (seeds, sampled lists,
    /// `fast_hops` hops), whose bound is computed but not enforced.
    pub fast_dense_pairs_max: u64,
}

impl Default for ItemRankConfig {
    fn default() -> Self {
        ItemRankConfig {
            alpha: 0.85,
            iterations: 20,
            fast_hops: 1,
            scan_users_per_item: 200,
            scan_items_per_user: 300,
            seed_items_max: 50,
            fast_tolerance: 0.1,
            fast_dense_pairs_max: 1_000_000,
        }
    }
}

/// Popularity: event counts, or counts decayed by event time.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PopularityConfig {
    /// When set, an event's weight in popularity halves every `half_life`
    /// of event time. Fixed when the data directory is created: a snapshot
    /// written under another setting is refused at open.
    #[serde(rename = "half_life_ms", with = "crate::units::ms_or_off")]
    pub half_life: Option<Duration>,
}

/// Weights of the blend: each strategy's scores are scaled to a maximum of
/// 1 for the user, then summed with these weights.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BlendConfig {
    /// UserCF's weight.
    pub usercf: f32,
    /// Fast ItemRank's weight.
    pub itemrank: f32,
    /// Popularity's weight.
    pub popularity: f32,
}

impl Default for BlendConfig {
    fn default() -> Self {
        BlendConfig { usercf: 1.0, itemrank: 0.1, popularity: 0.05 }
    }
}

/// Automatic checkpoints: one starts when any threshold is crossed since the
/// last one. `None` disables that trigger.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CheckpointConfig {
    /// Records appended.
    #[serde(with = "crate::units::count_or_off")]
    pub every_records: Option<u64>,
    /// Log bytes appended.
    #[serde(with = "crate::units::count_or_off")]
    pub every_bytes: Option<u64>,
    /// With `every_bytes`: the log bytes also reach this many times the
    /// newest snapshot's size (at most half the log's ring), so a large
    /// state is not written again for every `every_bytes` of log: snapshot
    /// bytes written per log byte stay under 1 / this. 0: `every_bytes`
    /// alone.
    pub log_per_snapshot_byte: f64,
    /// Time elapsed (only while records arrived).
    #[serde(rename = "every_ms", with = "crate::units::ms_or_off")]
    pub every: Option<Duration>,
    /// Snapshots kept; the log keeps what the oldest of them needs, so a
    /// damaged newest snapshot can fall back to an older one.
    pub snapshots_kept: usize,
}

impl CheckpointConfig {
    /// Turns every automatic trigger off (records, bytes, time): a
    /// checkpoint is written only when asked for (`Engine::checkpoint`), as
    /// tools and tests that decide when do. `snapshots_kept` is unchanged.
    pub fn disable_automatic(&mut self) {
        self.every_records = None;
        self.every_bytes = None;
        self.every = None;
    }
}

impl Default for CheckpointConfig {
    fn default() -> Self {
        CheckpointConfig {
            every_records: Some(1_000_000),
            every_bytes: Some(64 << 20),
            log_per_snapshot_byte: 1.0,
            every: Some(Duration::from_secs(300)),
            snapshots_kept: 2,
        }
    }
}

impl EngineConfig {
    /// Checks every rule; the error names the setting. The rules run in a
    /// fixed order (the first broken one is reported), grouped by part.
    pub fn validate(&self) -> Result<(), EngineError> {
        self.validate_log_and_events()?;
        self.validate_neighbours_and_walks()?;
        self.validate_models()?;
        self.validate_scoring()?;
        self.validate_checkpoints()?;
        self.validate_feedback()?;
        self.validate_item_model()
    }

    /// The item model.
    fn validate_item_model(&self) -> Result<(), EngineError> {
        let item_model = &self.item_model;
        if !(item_model.lambda.is_finite() && item_model.lambda > 0.0) {
            return Err(bad("item_model.lambda", format!("must be finite and > 0, got {}", item_model.lambda)));
        }
        if item_model.items_max == 0 || item_model.items_max > crate::limits::ITEM_MODEL_ITEMS_MAX {
            return Err(bad(
                "item_model.items_max",
                format!("must be 1–{}, got {}", crate::limits::ITEM_MODEL_ITEMS_MAX, item_model.items_max),
            ));
        }
        let ials = &item_model.ials;
        if ials.factors == 0 || ials.factors > crate::limits::IALS_FACTORS_MAX {
            return Err(bad(
                "item_model.ials.factors",
                format!("must be 1–{}, got {}", crate::limits::IALS_FACTORS_MAX, ials.factors),
            ));
        }
        if !(ials.lambda.is_finite() && ials.lambda > 0.0) {
            return Err(bad("item_model.ials.lambda", format!("must be finite and > 0, got {}", ials.lambda)));
        }
        if !(ials.alpha.is_finite() && ials.alpha >= 0.0) {
            return Err(bad("item_model.ials.alpha", format!("must be finite and ≥ 0, got {}", ials.alpha)));
        }
        if ials.iterations == 0 || ials.iterations > 1000 {
            return Err(bad("item_model.ials.iterations", format!("must be 1–1000, got {}", ials.iterations)));
        }
        if ials.cg_steps == 0 || ials.cg_steps > 100 {
            return Err(bad("item_model.ials.cg_steps", format!("must be 1–100, got {}", ials.cg_steps)));
        }
        if ials.threads > 1024 {
            return Err(bad(
                "item_model.ials.threads",
                format!("must be 0 (one per core) to 1024, got {}", ials.threads),
            ));
        }
        if item_model.retrain_every_events == Some(0) {
            return Err(bad("item_model.retrain_every_events", "must be ≥ 1 (None, \"off\" in a file, disables it)"));
        }
        if item_model.retrain_every.is_some_and(|every| every < Duration::from_secs(1)) {
            return Err(bad("item_model.retrain_every", "must be at least 1 s (None, \"off\" in a file, disables it)"));
        }
        Ok(())
    }

    /// Feedback expiry.
    fn validate_feedback(&self) -> Result<(), EngineError> {
        if self.feedback.ttl.is_some_and(|ttl| ttl < Duration::from_secs(1)) {
            return Err(bad("feedback.ttl", "must be at least 1 s when set"));
        }
        if self.feedback.expire_every < Duration::from_secs(1) {
            return Err(bad("feedback.expire_every", "must be at least 1 s"));
        }
        Ok(())
    }

    /// The log, event weights and ratings, batches, the dedup window.
    fn validate_log_and_events(&self) -> Result<(), EngineError> {
        self.wal.validate()?;
        if (self.wal.record_bytes_max as usize) < RECORD_BYTES_MIN {
            return Err(bad(
                "wal.record_bytes_max",
                format!(
                    "must be at least {RECORD_BYTES_MIN} (one event with every id at its limit), got {}",
                    self.wal.record_bytes_max
                ),
            ));
        }
        let weights = [
            ("weights.view", self.weights.view),
            ("weights.click", self.weights.click),
            ("weights.cart", self.weights.cart),
            ("weights.purchase", self.weights.purchase),
        ];
        let max = WEIGHT_MAX;
        for (field, weight) in weights {
            if !(weight.is_finite() && (0.0..=max).contains(&weight)) {
                return Err(bad(field, format!("must be in [0, {max}], got {weight}")));
            }
        }
        for (name, weight) in &self.weights.custom {
            if !(weight.is_finite() && (0.0..=max).contains(weight)) {
                return Err(bad("weights.custom", format!("kind {name:?}: must be in [0, {max}], got {weight}")));
            }
            if name.is_empty() || name.len() > CUSTOM_KIND_BYTES_MAX {
                return Err(bad(
                    "weights.custom",
                    format!("kind name {name:?} must be 1–{CUSTOM_KIND_BYTES_MAX} bytes"),
                ));
            }
            // An event names its kind: a built-in name would never reach
            // this weight, and a name no client can type reliably is a trap.
            if ["view", "click", "cart", "purchase", "rating"].contains(&name.as_str()) {
                let weight = if name == "rating" { "its value".to_string() } else { format!("weights.{name}") };
                return Err(bad(
                    "weights.custom",
                    format!("kind name {name:?} is a built-in kind (its weight is {weight}): choose another name"),
                ));
            }
            if name.chars().any(char::is_control) || name.trim() != name {
                return Err(bad(
                    "weights.custom",
                    format!("kind name {name:?} must not hold control characters or start or end with a space"),
                ));
            }
        }
        if !(self.rating_min.is_finite() && self.rating_max.is_finite() && self.rating_min <= self.rating_max) {
            return Err(bad("rating_min/rating_max", "must be finite with rating_min ≤ rating_max"));
        }
        if self.rating_min < 0.0 || self.rating_max > WEIGHT_MAX {
            return Err(bad(
                "rating_min/rating_max",
                format!("must lie in [0, {}] (ratings are interaction strengths)", WEIGHT_MAX),
            ));
        }
        if self.wal.full_wait != std::time::Duration::ZERO {
            return Err(bad(
                "wal.full_wait",
                "must be zero: when the log's ring is full the engine makes room itself by checkpointing, \
                 and a writer waiting inside the log would hold up every other writer",
            ));
        }
        if self.batch_events_max == 0 {
            return Err(bad("batch_events_max", "must be ≥ 1"));
        }
        if self.dedup.max_ids == 0 {
            return Err(bad("dedup.max_ids", "must be ≥ 1"));
        }
        Ok(())
    }

    /// UserCF's neighbours and ItemRank's walk.
    fn validate_neighbours_and_walks(&self) -> Result<(), EngineError> {
        if self.usercf.neighbours == 0 {
            return Err(bad("usercf.neighbours", "must be ≥ 1"));
        }
        if self.usercf.scan_users_per_item == 0 {
            return Err(bad("usercf.scan_users_per_item", "must be ≥ 1"));
        }
        let alpha = self.itemrank.alpha;
        if !(alpha.is_finite() && (0.0..1.0).contains(&alpha)) {
            return Err(bad("itemrank.alpha", format!("must be in [0, 1), got {alpha}")));
        }
        if self.itemrank.iterations == 0 || self.itemrank.iterations > ITEMRANK_ITERATIONS_MAX {
            return Err(bad("itemrank.iterations", format!("must be 1–{ITEMRANK_ITERATIONS_MAX}")));
        }
        if self.itemrank.scan_users_per_item == 0 {
            return Err(bad("itemrank.scan_users_per_item", "must be ≥ 1"));
        }
        if self.itemrank.scan_items_per_user == 0 {
            return Err(bad("itemrank.scan_items_per_user", "must be ≥ 1"));
        }
        Ok(())
    }

    /// Ranking models.
    fn validate_models(&self) -> Result<(), EngineError> {
        if self.models.sessions == 0 || self.models.sessions > MODEL_SESSIONS_MAX {
            return Err(bad("models.sessions", format!("must be 1–{MODEL_SESSIONS_MAX}")));
        }
        if self.models.candidates == 0 || self.models.candidates > N_MAX {
            return Err(bad("models.candidates", format!("must be 1–{}", N_MAX)));
        }
        if self.models.retention == 0 {
            return Err(bad("models.retention", "must be ≥ 1"));
        }
        if self.models.breaker.failures == 0 {
            return Err(bad("models.breaker.failures", "must be ≥ 1"));
        }
        Ok(())
    }

    /// ItemRank's seeds and hops, the blend, popularity.
    fn validate_scoring(&self) -> Result<(), EngineError> {
        if self.itemrank.seed_items_max == 0 {
            return Err(bad("itemrank.seed_items_max", "must be ≥ 1"));
        }
        if self.itemrank.fast_hops > self.itemrank.iterations {
            return Err(bad("itemrank.fast_hops", "must be ≤ itemrank.iterations"));
        }
        let tolerance = self.itemrank.fast_tolerance;
        if !(tolerance.is_finite() && tolerance >= 0.0) {
            return Err(bad("itemrank.fast_tolerance", format!("must be a finite number ≥ 0, got {tolerance}")));
        }
        let blend = [
            ("blend.usercf", self.blend.usercf),
            ("blend.itemrank", self.blend.itemrank),
            ("blend.popularity", self.blend.popularity),
        ];
        for (field, weight) in blend {
            if !(weight.is_finite() && weight >= 0.0) {
                return Err(bad(field, format!("must be finite and ≥ 0, got {weight}")));
            }
        }
        if self.popularity.half_life.is_some_and(|half_life| half_life.as_millis() == 0) {
            return Err(bad(
                "popularity.half_life",
                "must be at least 1 ms (None, \"off\" in a file, for plain counts)",
            ));
        }
        Ok(())
    }

    /// Automatic checkpoints.
    fn validate_checkpoints(&self) -> Result<(), EngineError> {
        if self.checkpoint.snapshots_kept == 0 {
            return Err(bad("checkpoint.snapshots_kept", "must be ≥ 1"));
        }
        if self.checkpoint.every_records == Some(0) {
            return Err(bad("checkpoint.every_records", "must be ≥ 1 (None, \"off\" in a file, disables it)"));
        }
        if self.checkpoint.every_bytes == Some(0) {
            return Err(bad("checkpoint.every_bytes", "must be ≥ 1 (None, \"off\" in a file, disables it)"));
        }
        let ratio = self.checkpoint.log_per_snapshot_byte;
        if !ratio.is_finite() || !(0.0..=1000.0).contains(&ratio) {
            return Err(bad("checkpoint.log_per_snapshot_byte", format!("must be 0–1000, got {ratio}")));
        }
        if self.checkpoint.every.is_some_and(|every| every.is_zero()) {
            return Err(bad("checkpoint.every", "must be at least 1 ms (None, \"off\" in a file, disables it)"));
        }
        Ok(())
    }
}

fn bad(field: &'static str, rule: impl Into<String>) -> EngineError {
    EngineError::InvalidConfig { field, rule: rule.into() }
}
