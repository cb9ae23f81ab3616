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
mod config;
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

pub use config::{
    BlendConfig, CheckpointConfig, DedupConfig, EngineConfig, ItemRankConfig, KindWeights, ModelConfig, UserCfConfig,
};
pub use dedup::FirstSeen;
pub use disk::DiskFull;
pub use engine::MODEL_BYTES_MAX;
pub use engine::{
    BackupCut, BackupRecord, CheckpointInfo, Engine, EngineStats, Interaction, OpenReport, Receipt, ReplayProgress,
};
pub use error::EngineError;
pub use event::{Event, EventKind};
pub use limits::{EVENT_ID_BYTES_MAX, ID_BYTES_MAX, N_MAX, WEIGHT_MAX};
pub use recommend::{Ranking, Reason, RecommendRequest, Recommendations, Scored, Strategy};
pub use record::LoggedKind;
pub use snapshot::check_snapshot;
pub use state::{Pair, SnapshotBody};
pub use wal::Durability;
