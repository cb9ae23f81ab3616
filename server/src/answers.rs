//! The JSON bodies of the server's answers, as types: the handlers
//! serialize these, and /openapi.json describes them from the same types
//! (utoipa's `ToSchema`), so an answer and its documented schema cannot
//! drift apart. The engine's own answers (`Recommendations`, `ModelInfo`,
//! `Item`, ...) derive `ToSchema` in the engine crate (feature `openapi`).

use recwal::model::{BreakerState, ModelInfo, RuntimeReport};
use recwal::{Interaction, Item, Scored};
use serde::Serialize;
use utoipa::ToSchema;

use crate::backup::Manifest;

/// `GET /healthz`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// Always `alive`: the process answers.
    #[schema(value_type = String, pattern = "^alive$", example = "alive")]
    pub status: &'static str,
}

/// `GET /readyz`: ready, or why not.
#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    /// True when the log is replayed and writes are accepted.
    pub ready: bool,
    /// Why it is not ready (empty when it is).
    #[schema(example = json!([]))]
    pub reasons: Vec<String>,
    /// While the log is replayed: records done and to do.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replay: Option<ReplayProgress>,
    /// Records the start-up replay applied (once it is done).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub records_replayed: Option<u64>,
    /// Set while a write was refused for lack of space (null otherwise);
    /// clears by itself once space is back.
    pub disk_full: Option<DiskFull>,
    /// The ranking side (once the log is replayed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<ReadinessModel>,
    /// With `serve --cluster`: this node's replica of the stream.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterStatus>,
}

/// A cluster node's replica (docs/CLUSTER.md).
#[derive(Debug, Serialize, ToSchema)]
pub struct ClusterStatus {
    /// The JetStream stream the nodes share.
    pub stream: String,
    /// `following` (applying the stream as it comes), `connecting`, or
    /// `halted` (a gap or a foreign message: nothing more is applied).
    pub phase: ClusterPhase,
    /// Why the node is connecting or halted.
    pub reason: Option<String>,
    /// Connected to a NATS server now.
    pub connected: bool,
    /// The newest stream sequence this node knows of.
    pub stream_seq_last: u64,
    /// The stream sequence this node has applied.
    pub stream_seq_applied: u64,
    /// Messages still to apply.
    pub apply_lag: u64,
    /// The state's position: equal digests at equal sequences mean equal replicas.
    pub state: ReplicaState,
}

/// A replica's phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ClusterPhase {
    Following,
    Connecting,
    Halted,
}

/// A replica's state position.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReplicaState {
    pub stream_seq: u64,
    /// The replica digest, 16 hex digits.
    #[schema(pattern = "^[0-9a-f]{16}$")]
    pub digest: String,
}

/// The start-up replay's progress.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReplayProgress {
    pub records_done: u64,
    pub records_total: u64,
}

/// A write refused for lack of space.
#[derive(Debug, Serialize, ToSchema)]
pub struct DiskFull {
    /// What could not be written (the log, a snapshot, ...).
    pub what: String,
    pub path: String,
    pub detail: String,
    /// Since when, ms since the Unix epoch.
    pub since_unix_ms: u64,
}

/// The models as `/readyz` reports them.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReadinessModel {
    /// The active version according to the log.
    pub active: Option<u32>,
    /// The version answers are ranked with (null: un-ranked).
    pub serving: Option<u32>,
    /// Why the active version is not serving.
    pub fault: Option<String>,
    /// The serving version's breaker.
    pub breaker: Option<BreakerState>,
    /// The canary (docs/MODELS.md): its version, share and whether it loaded.
    pub canary: Option<recwal::model::RouteStatus>,
    /// The shadow.
    pub shadow: Option<recwal::model::RouteStatus>,
    /// Why a canary or shadow the log names is not loaded.
    pub route_fault: Option<String>,
    /// The ONNX Runtime library: loaded, or why not and where it was looked for.
    pub runtime: RuntimeReport,
}

/// `GET /v1/popular`, `GET /v1/items/{item}/similar`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Items {
    /// Best first.
    pub items: Vec<Scored>,
}

/// `GET /v1/latest`: catalogue entries, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct CatalogueItems {
    pub items: Vec<Item>,
}

/// `GET /v1/users/{user}/interactions`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Interactions {
    pub interactions: Vec<Interaction>,
}

/// A change written to the log: the LSN of its record.
#[derive(Debug, Serialize, ToSchema)]
pub struct Logged {
    #[schema(example = 42)]
    pub lsn: u64,
}

/// `GET /admin/stats`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Stats {
    pub users: usize,
    pub items: usize,
    /// Items with a catalogue entry.
    pub catalogue_items: usize,
    /// Co-interaction pairs.
    pub pairs: u64,
    pub events_applied: u64,
    /// LSN of the last record applied.
    #[serde(rename = "applied_lsn")]
    pub lsn_applied: u64,
    /// Event ids in the dedup window.
    pub dedup_ids: usize,
    /// LSN of the newest snapshot (0: none).
    #[serde(rename = "snapshot_lsn")]
    pub lsn_snapshot: u64,
    pub uptime_s: u64,
}

/// `GET /admin/wal`: the log's watermarks, counters and recovery report.
#[derive(Debug, Serialize, ToSchema)]
pub struct WalStatus {
    pub lsn_written: u64,
    pub lsn_appended: u64,
    /// The durable watermark: every record up to it is on disk.
    pub lsn_durable: u64,
    pub lsn_released: u64,
    pub records_appended: u64,
    pub bytes_appended: u64,
    pub syncs: u64,
    /// Failed syncs or writes (the engine then accepts no writes).
    pub sync_failures: u64,
    pub segments_live: u64,
    pub segments_free: u64,
    /// Bytes per segment file.
    pub segment_bytes: u64,
    /// The most segment files the ring holds.
    pub segments_max: u64,
    /// Disk the log's segment files take now (live and free, preallocated).
    pub disk_bytes: u64,
    /// The most disk the log's segment files can take.
    pub disk_bytes_max: u64,
    /// Upper bound of the median sync latency, µs.
    pub sync_latency_us_p50: u64,
    /// Upper bound of the 99th percentile sync latency, µs.
    pub sync_latency_us_p99: u64,
    pub recovery: Recovery,
}

/// What the start found: `clean` is false when it cut a torn tail or set a
/// snapshot aside (docs/DURABILITY.md, "Damage at rest").
#[derive(Debug, Serialize, ToSchema)]
pub struct Recovery {
    pub clean: bool,
    pub records_recovered: u64,
    pub bytes_cut: u64,
    pub records_dropped: u64,
    pub tail_damage: Option<String>,
    pub corruption: Option<String>,
    pub records_missing: u64,
    pub snapshots_skipped: Vec<String>,
    /// LSN of the snapshot the start loaded (0: none).
    #[serde(rename = "snapshot_lsn")]
    pub lsn_snapshot: u64,
    pub records_replayed: u64,
    pub replay_ms: u64,
}

/// `POST /admin/checkpoint`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Checkpoint {
    /// LSN the snapshot covers.
    pub lsn: u64,
    /// The snapshot file (null: the newest snapshot already covered it).
    pub path: Option<String>,
    pub bytes: u64,
    /// Log segments released for reuse.
    pub segments_released: u32,
}

/// `POST /admin/backup` (201).
#[derive(Debug, Serialize, ToSchema)]
pub struct Backup {
    /// The backup directory.
    pub dir: String,
    /// Its BACKUP.json (docs/SERVER.md, `recwal backup`).
    pub manifest: Manifest,
}

/// `GET /admin/models`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Models {
    pub models: Vec<ModelInfo>,
}
