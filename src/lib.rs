//! recwal: a stateful recommendation engine that writes every state change to
//! its own write-ahead log before it acknowledges it, so it needs no external
//! database and loses nothing it has acknowledged.
//!
//! [`Engine::open`] recovers the state (newest snapshot + log replay);
//! [`Engine::ingest`] validates an event, logs it, waits until it is durable
//! under the configured policy, applies it and only then acknowledges it, so
//! the next [`Engine::recommend`] reflects it. The log itself is the
//! standalone [`wal`] crate. See README.md, ARCHITECTURE.md and
//! docs/DURABILITY.md.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub use recwal_wal as wal;

mod algo;
/// The iALS trainer and scorer, for the `ials` benchmark (not a stable API).
#[doc(hidden)]
pub use algo::ials;
mod catalogue;
mod config;
mod config_wal;
mod dedup;
mod disk;
mod engine;
mod error;
pub mod eval;
mod event;
mod fsutil;
#[doc(hidden)]
pub mod fuzzing;
mod ids;
mod limits;
mod metrics;
pub mod model;
mod offload;
mod recommend;
pub mod record;
mod snapshot;
mod state;
pub mod synth;
mod units;

pub use catalogue::{Item, ItemFilter, ItemPage, LabelCondition, LabelValue, User};
pub use config::{
    BlendConfig, CheckpointConfig, DedupConfig, EngineConfig, FeedbackConfig, IalsConfig, ItemModelConfig,
    ItemModelFamily, ItemModelInput, ItemRankConfig, KindWeights, ModelConfig, UserCfConfig,
};
pub use dedup::FirstSeen;
pub use disk::DiskFull;
pub use engine::{model_file_of, ModelFileRef, ReplicaApplied, ReplicaPosition, ReplicaSnapshot, ReplicaWrite};
pub use engine::{
    BackupCut, BackupRecord, CheckpointInfo, Engine, EngineStats, Interaction, ItemModelInfo, ItemModelSpec,
    ItemModelStatus, OpenReport, Receipt, ReplayProgress,
};
pub use engine::{ReplicaModelAdd, RouteChange, MODEL_BYTES_MAX};
pub use error::EngineError;
pub use event::{validate_id, Event, EventKind};
pub use limits::{
    CATEGORY_BYTES_MAX, EVENT_ID_BYTES_MAX, FILTER_CATEGORIES_MAX, FILTER_LABELS_MAX, ID_BYTES_MAX,
    ITEM_CATEGORIES_MAX, ITEM_MODEL_ITEMS_MAX, LABELS_MAX, LABEL_KEY_BYTES_MAX, LABEL_TEXT_BYTES_MAX, N_MAX,
    SESSION_EVENTS_MAX, WEIGHT_MAX,
};
pub use recommend::{
    ItemQuery, Ranking, Reason, RecommendRequest, Recommendations, Scored, SessionEvent, SessionRequest, Strategy,
};
pub use record::LoggedKind;
pub use snapshot::check_snapshot;
pub use state::{MetadataBody, Pair, SnapshotBody};
pub use wal::Durability;
