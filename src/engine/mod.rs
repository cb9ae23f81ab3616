//! `Engine`: the facade over five protocols, one file each:
//! - `ingest.rs`: validate → sequence (dedup check, LSN assignment) → wait
//!   for durability → apply → acknowledge; the only file that appends.
//! - `apply.rs`: apply turns, in LSN order.
//! - `checkpoint.rs`: checkpoints, log release, the background thread.
//! - `recover.rs`: start-up (snapshot choice with quarantine, replay).
//! - `read.rs`: the read path (recommendations and the model's ranking).
//!
//! `models.rs` adds the model registry to `Engine`.
//!
//! Locks, always taken in this order:
//! - `applying` (a mutex; waiters park) gives appliers turns, so records
//!   are applied in LSN order; it is not held during a turn itself, and a
//!   turn stops at the lowest LSN a caller waits for, so callers return in
//!   LSN order as their records are applied; a turn wakes only the callers
//!   it covered and the next turn's taker.
//! - `sequencer` (a mutex) orders appends: dedup check, LSN assignment and
//!   the queue of records not yet applied. Never held across a sync, nor
//!   while the state is updated.
//! - `state` (a read-write lock) is written only to apply records, which
//!   takes microseconds; readers never wait for a sync.
//! - `checkpoints.mark` serialises checkpoints.

mod apply;
mod catalogue;
mod checkpoint;
mod ingest;
mod item_model;
mod model_routes;
mod models;
mod read;
mod recover;
mod replica;
mod replica_models;

pub use checkpoint::{BackupCut, BackupRecord};
pub use item_model::{ItemModelInfo, ItemModelSpec, ItemModelStatus};
pub use model_routes::RouteChange;
pub use models::MODEL_BYTES_MAX;
pub use replica::{model_file_of, ModelFileRef, ReplicaApplied, ReplicaPosition, ReplicaSnapshot, ReplicaWrite};
pub use replica_models::ReplicaModelAdd;

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock, RwLock, RwLockReadGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use recwal_wal::{Durability, RecoveryReport, Wal, WalError, WalMetrics};
use serde::{Deserialize, Serialize};
use tracing::warn;

use crate::config::EngineConfig;
use crate::disk::{self, DiskFull, DiskWatch};
use crate::error::EngineError;
use crate::event::{self, Event};
use crate::model::ranker::Ranker;
use crate::offload::Offload;
use crate::recommend::{self, ItemQuery, RecommendRequest, Recommendations, Scored, SessionRequest, Strategy};
use crate::record::{ForgetUserV1, LogRecord, RemoveItemV1};
use crate::snapshot;
use crate::state::State;
use apply::ApplyGate;
use checkpoint::Checkpoints;
use ingest::Sequencer;

/// Acknowledgement of one ingested event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// LSN of the record holding the event (for a duplicate: the record
    /// that first carried its event id).
    pub lsn: u64,
    /// The event id was already accepted inside the dedup window; nothing
    /// was written or changed.
    pub duplicate: bool,
}

/// One of a user's recorded interactions.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Interaction {
    /// External item id.
    pub item: String,
    /// The strength every strategy uses: latest rating + implicit weights.
    pub value: f32,
    /// Latest rating, if the user rated the item.
    pub rating: Option<f32>,
    /// Events recorded for this pair.
    pub events: u32,
}

/// How far the start-up replay is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplayProgress {
    /// Records replayed so far.
    pub records_done: u64,
    /// Records to replay in all.
    pub records_total: u64,
}

/// What `open` found and did.
#[derive(Clone, Debug)]
pub struct OpenReport {
    /// The log's recovery report.
    pub wal: RecoveryReport,
    /// LSN of the snapshot the state started from (0: none).
    pub lsn_snapshot: u64,
    /// Snapshots that could not be read, with the reason, newest first; each
    /// was renamed to `<name>.bad` (kept as evidence, never loaded again).
    pub snapshots_skipped: Vec<(PathBuf, String)>,
    /// Records replayed from the log.
    pub records_replayed: u64,
    /// Time to load the snapshot.
    pub snapshot_load: Duration,
    /// Time to replay the log.
    pub replay: Duration,
}

/// Counts describing the engine now.
#[derive(Clone, Debug)]
pub struct EngineStats {
    /// Users ever seen.
    pub users: usize,
    /// Items ever seen.
    pub items: usize,
    /// Items with a catalogue entry (metadata).
    pub catalogue_items: usize,
    /// Stored (user, item) pairs.
    pub pairs: u64,
    /// Events applied (including those of users forgotten since).
    pub events_applied: u64,
    /// LSN of the last record applied.
    pub lsn_applied: u64,
    /// Client event ids in the dedup window.
    pub dedup_ids: usize,
    /// LSN of the newest snapshot written or loaded (0: none).
    pub lsn_snapshot: u64,
    /// The log's counters.
    pub wal: WalMetrics,
    /// The disk-full condition in force (`None`: writes find room).
    pub disk_full: Option<DiskFull>,
    /// Automatic checkpoints that failed (each is retried with backoff).
    pub checkpoint_failures: u64,
    /// Why the engine accepts no more writes (a failed log write or sync,
    /// a panicked writer); `None` while it does.
    pub poisoned: Option<String>,
}

/// What a checkpoint did.
#[derive(Clone, Debug)]
pub struct CheckpointInfo {
    /// LSN the snapshot covers.
    pub lsn: u64,
    /// The snapshot file (`None`: the newest snapshot already covered it).
    pub path: Option<PathBuf>,
    /// Snapshot size in bytes.
    pub bytes: u64,
    /// Log segments released for reuse.
    pub segments_released: u32,
}

/// What the engine's threads share, grouped by the protocol that owns it.
struct Shared {
    config: EngineConfig,
    wal: Wal,
    /// The durability of a call that names none: the log policy's.
    default_durability: Durability,
    /// Ingest's (`ingest.rs`): dedup check, LSN order, records not yet
    /// applied; drained by the applier.
    sequencer: Mutex<Sequencer>,
    /// Apply's (`apply.rs`): whose turn it is, and how far the state is
    /// applied.
    applying: Mutex<ApplyGate>,
    /// Written only by an apply turn (and by recovery before this exists).
    state: RwLock<State>,
    /// Checkpoint's (`checkpoint.rs`).
    checkpoints: Checkpoints,
    /// Why the engine stopped accepting writes, once it did.
    poisoned: OnceLock<String>,
    /// Writes refused for lack of space, until space is back.
    disk: DiskWatch,
    /// The model registry's (`models.rs`) and the read path's.
    ranker: Ranker,
    offload: Offload,
    /// Wall-clock ms of the last feedback expiry written (0: none yet).
    feedback_expired_ms: std::sync::atomic::AtomicI64,
    /// Replicated records are applied one caller at a time (`replica.rs`).
    replica: Mutex<()>,
    /// The `ease` strategy's item model (`item_model.rs`).
    item_models: item_model::ItemModels,
}

/// The recommendation engine. `Send + Sync`: share it behind an `Arc`.
///
/// ```
/// use recwal::{Engine, EngineConfig, Event, EventKind, RecommendRequest, Strategy};
/// let dir = tempfile::tempdir()?;
/// let engine = Engine::open(dir.path(), EngineConfig::default())?;
/// engine.ingest(Event::new("alice", "book", EventKind::Purchase))?;
/// engine.ingest(Event::new("bob", "book", EventKind::Purchase))?;
/// let receipt = engine.ingest(Event::new("bob", "lamp", EventKind::Click))?;
/// // Read-your-writes: the acknowledged event is already in the answer.
/// let answer = engine.recommend(&RecommendRequest::new("alice", 5, Strategy::UserCf))?;
/// assert_eq!(answer.items[0].item, "lamp");
/// assert!(answer.lsn >= receipt.lsn);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Engine {
    shared: Arc<Shared>,
    report: OpenReport,
    stop: Option<mpsc::Sender<()>>,
    checkpointer: Option<JoinHandle<()>>,
}

impl Engine {
    /// Opens (or creates) the engine in `dir`: recovers the log, loads the
    /// newest readable snapshot and replays the log from it.
    pub fn open(dir: &Path, config: EngineConfig) -> Result<Engine, EngineError> {
        Engine::open_with_progress(dir, config, &|_| {})
    }

    /// `open`, calling `progress` during the replay of the log (about every
    /// 100 ms, and once at the end), for progress bars and readiness probes.
    pub fn open_with_progress(
        dir: &Path,
        config: EngineConfig,
        progress: &(dyn Fn(ReplayProgress) + Sync),
    ) -> Result<Engine, EngineError> {
        config.validate()?;
        let wal_dir = dir.join("wal");
        // A snapshot is written only after its records are durable in the
        // log: a data directory with a snapshot but no log lost its log, and
        // must not start empty (nor hand out the snapshot's LSNs again).
        if recwal_wal::find_log_file(&wal_dir)?.is_none() {
            if let Some(snapshot) = snapshot::any_file(&dir.join("snapshots"))? {
                return Err(EngineError::Unrecoverable(format!(
                    "{} holds {} but its log {} is gone (no MANIFEST and no segment file): refusing to start \
                     empty; restore the data directory from a backup",
                    dir.display(),
                    snapshot.display(),
                    wal_dir.display()
                )));
            }
        }
        let snapshots_dir = recover::snapshots_dir(dir)?;
        let mut chosen = None;
        let opened = Wal::open_checked(&wal_dir, config.wal.clone(), &mut |found| {
            recover::check_start(found, &snapshots_dir, &config, &mut chosen)
        });
        let (wal, chosen) = recover::started(opened, chosen)?;
        Engine::open_on(dir, wal, chosen, config, progress)
    }

    /// `open` with the log on a caller-supplied storage (snapshots still go
    /// to `dir/snapshots`). The tests use it to run the engine on a
    /// simulated disk that loses power.
    pub fn open_with_wal_storage(
        dir: &Path,
        storage: Box<dyn recwal_wal::Storage>,
        config: EngineConfig,
    ) -> Result<Engine, EngineError> {
        config.validate()?;
        let snapshots_dir = recover::snapshots_dir(dir)?;
        let mut chosen = None;
        let opened = Wal::open_with_storage_checked(storage, config.wal.clone(), &mut |found| {
            recover::check_start(found, &snapshots_dir, &config, &mut chosen)
        });
        let (wal, chosen) = recover::started(opened, chosen)?;
        Engine::open_on(dir, wal, chosen, config, &|_| {})
    }

    fn open_on(
        dir: &Path,
        wal: Wal,
        chosen: recover::Chosen,
        config: EngineConfig,
        progress: &(dyn Fn(ReplayProgress) + Sync),
    ) -> Result<Engine, EngineError> {
        // An existing log keeps the geometry it was created with (segment
        // size, the record limit that fits it): that is the configuration
        // in force, for the checkpoint's ring arithmetic and for whoever
        // reads `config()`.
        let config = EngineConfig { wal: wal.config().clone(), ..config };
        let snapshots_dir = dir.join("snapshots");
        let default_durability = config.wal.sync_policy.default_durability();
        let (mut state, report) = recover::recover(&wal, &snapshots_dir, &config, chosen, progress)?;
        // The recovered records, synced by this process, go into the
        // manifest's floor now: otherwise a node restarted and left idle
        // keeps the previous run's floor, and records it had acknowledged
        // in its last second, zeroed at rest before another crash, would
        // look never written.
        // A failed sync leaves the floor where it was (a start is not
        // refused for it: the next write's sync reports a failing disk).
        match wal.sync_recovered() {
            Ok(()) => {
                if let Err(err) = wal.record_floor() {
                    warn!(%err, "could not record the log's durable end in its manifest");
                }
            }
            Err(err) => warn!(%err, "could not sync the recovered log; its manifest keeps the previous durable end"),
        }
        let item_models = item_model::ItemModels::open(dir.join("models"), &mut state)?;
        let ranker = Ranker::new(dir.join("models"), config.models.clone())?;
        ranker.restore(state.models())?;
        let checkpoints = Checkpoints::new(snapshots_dir, report.lsn_snapshot, &wal.metrics());
        let config_sessions = config.models.sessions;
        let shared = Arc::new(Shared {
            config,
            wal,
            default_durability,
            sequencer: Mutex::new(Sequencer::default()),
            applying: Mutex::new(ApplyGate::new(state.lsn_applied())),
            state: RwLock::new(state),
            checkpoints,
            poisoned: OnceLock::new(),
            disk: DiskWatch::new(),
            ranker,
            offload: Offload::new(config_sessions),
            feedback_expired_ms: std::sync::atomic::AtomicI64::new(0),
            replica: Mutex::new(()),
            item_models,
        });
        item_model::start_trainer(&shared)?;
        let (stop, checkpointer) = checkpoint::start_checkpointer(&shared)?;
        Ok(Engine { shared, report, stop: Some(stop), checkpointer: Some(checkpointer) })
    }

    /// What `open` found.
    pub fn open_report(&self) -> &OpenReport {
        &self.report
    }

    /// The configuration in force.
    pub fn config(&self) -> &EngineConfig {
        &self.shared.config
    }

    /// Ingests one event with the log's default durability; returns once it
    /// is durable and applied.
    pub fn ingest(&self, event: Event) -> Result<Receipt, EngineError> {
        self.ingest_with(event, self.shared.default_durability)
    }

    /// `ingest` with an explicit durability.
    pub fn ingest_with(&self, event: Event, durability: Durability) -> Result<Receipt, EngineError> {
        let receipts = self.shared.ingest(std::slice::from_ref(&event), durability, "event")?;
        receipts.into_iter().next().ok_or_else(|| EngineError::Poisoned("ingest returned no receipt".into()))
    }

    /// Ingests events as one log record: all of them or none. Returns one
    /// receipt per event, in order.
    pub fn ingest_batch(&self, events: &[Event]) -> Result<Vec<Receipt>, EngineError> {
        self.ingest_batch_with(events, self.shared.default_durability)
    }

    /// `ingest_batch` with an explicit durability.
    pub fn ingest_batch_with(&self, events: &[Event], durability: Durability) -> Result<Vec<Receipt>, EngineError> {
        self.shared.ingest(events, durability, "events")
    }

    /// `ingest_batch_with` for async code: the wait for durability does not
    /// block a thread (usable from tokio or any executor). Validation, the
    /// append and the apply are short and run on the calling task; a full
    /// ring's checkpoint (rare) blocks it.
    pub async fn ingest_batch_async(
        &self,
        events: &[Event],
        durability: Durability,
    ) -> Result<Vec<Receipt>, EngineError> {
        self.shared.ingest_async(events, durability, "events").await
    }

    /// Removes `user`'s contribution from all derived state; logged, so it
    /// survives replay. Returns the record's LSN. The raw events stay in
    /// the log's segments until a later checkpoint recycles them.
    pub fn forget_user(&self, user: &str) -> Result<u64, EngineError> {
        let record = self.record_of(ReplicaWrite::ForgetUser(user))?;
        self.shared.log_and_apply(&record, Vec::new(), self.shared.default_durability)
    }

    /// The validated record of a state change other than events (shared by
    /// the single-node methods and `replica_write`).
    fn record_of<'a>(&self, write: ReplicaWrite<'a>) -> Result<LogRecord<'a>, EngineError> {
        Ok(match write {
            ReplicaWrite::ForgetUser(user) => {
                event::validate_id("user", user)?;
                if self.shared.read_state().users().get(user).is_none() {
                    return Err(EngineError::UnknownUser(user.to_string()));
                }
                LogRecord::ForgetUser(ForgetUserV1 { user })
            }
            ReplicaWrite::RemoveItem(item) => {
                event::validate_id("item", item)?;
                if self.shared.read_state().items().get(item).is_none() {
                    return Err(EngineError::UnknownItem(item.to_string()));
                }
                LogRecord::RemoveItem(RemoveItemV1 { item })
            }
            ReplicaWrite::UpsertItem(item) => {
                let record = crate::catalogue::item_record(item)?;
                let state = self.shared.read_state();
                if state.items().get(&item.id).is_some_and(|dense| state.item_is_removed(dense)) {
                    return Err(EngineError::ItemRemoved(item.id.clone()));
                }
                LogRecord::ItemUpsert(record)
            }
            ReplicaWrite::SetItemHidden { item, hidden } => {
                event::validate_id("item", item)?;
                let state = self.shared.read_state();
                if state.items().get(item).is_none_or(|dense| state.item_is_removed(dense)) {
                    return Err(EngineError::UnknownItem(item.to_string()));
                }
                LogRecord::ItemHidden(crate::record::ItemHiddenV1 { item, hidden })
            }
            ReplicaWrite::UpsertUser(user) => LogRecord::UserUpsert(crate::catalogue::user_record(user)?),
        })
    }

    /// True if `user` was ever seen (a forgotten user is still known: ids
    /// stay interned), so `forget_user` of it is accepted.
    pub fn knows_user(&self, user: &str) -> bool {
        self.shared.read_state().users().get(user).is_some()
    }

    /// True if `item` was ever seen (events or the catalogue; a removed
    /// item is still known), so `remove_item` of it is accepted.
    pub fn knows_item(&self, item: &str) -> bool {
        self.shared.read_state().items().get(item).is_some()
    }

    /// Stops recommending `item` (its past interactions still link other
    /// items). Logged, so it survives replay. Returns the record's LSN.
    pub fn remove_item(&self, item: &str) -> Result<u64, EngineError> {
        let record = self.record_of(ReplicaWrite::RemoveItem(item))?;
        self.shared.log_and_apply(&record, Vec::new(), self.shared.default_durability)
    }

    /// Recommends items for a user. With an active ranking model, the
    /// strategy proposes `models.candidates` items, the model reorders them
    /// (outside the state lock) and the answer names the version; if the
    /// model is unavailable the answer keeps the strategy's order and says
    /// why (`Recommendations::ranking`).
    pub fn recommend(&self, request: &RecommendRequest) -> Result<Recommendations, EngineError> {
        self.shared.recommend(request)
    }

    /// Recommendations for an anonymous or new user from their session's
    /// events, given in the request (validated like ingested events; items
    /// the engine does not know are ignored; nothing is written), with every
    /// strategy, the same filters, pages and reasons as `recommend`. The
    /// answer is in the strategy's order (no ranking model).
    pub fn recommend_session(&self, request: &SessionRequest) -> Result<Recommendations, EngineError> {
        self.shared.recommend_session(request)
    }

    /// `recommend` for async code: the work (state reads and model
    /// inference, which block) runs on the engine's worker threads
    /// (`models.sessions` of them, started on first use), never on the
    /// caller's executor.
    pub async fn recommend_async(&self, request: RecommendRequest) -> Result<Recommendations, EngineError> {
        let shared = Arc::clone(&self.shared);
        self.shared.offload.run(move || shared.recommend(&request)).await
    }

    /// The candidates a model would rank for `request` and their features
    /// (feature schema 1), as of now: what a schema-1 model sees.
    pub fn candidate_features(&self, request: &RecommendRequest) -> Result<Vec<(String, Vec<f32>)>, EngineError> {
        self.candidate_features_of(request, 1)
    }

    /// The candidates a model of feature schema `schema` (1 or 2) would
    /// rank for `request`, in the strategy's order, and their features, as
    /// of now: what the model sees, for checking a model or exporting
    /// training data.
    pub fn candidate_features_of(
        &self,
        request: &RecommendRequest,
        schema: u32,
    ) -> Result<Vec<(String, Vec<f32>)>, EngineError> {
        recommend::validate(request)?;
        if !crate::model::schema::FEATURE_SCHEMAS.contains(&schema) {
            return Err(EngineError::invalid(
                "schema",
                format!("feature schema {schema} is not one this engine computes (1, 2)"),
            ));
        }
        let request = &recommend::paged(request);
        let (candidates, features) = self.shared.candidates(request, event::now_ms(), false, schema)?;
        let answer = candidates.answer;
        let width = crate::model::schema::width(schema);
        Ok(answer.items.into_iter().zip(features.chunks(width)).map(|(item, row)| (item.item, row.to_vec())).collect())
    }

    /// Items most often interacted with together with `item`.
    pub fn similar_items(&self, item: &str, n: usize) -> Result<Vec<Scored>, EngineError> {
        self.similar_matching(item, &ItemQuery::top(n))
    }

    /// A page of the items most often interacted with together with `item`
    /// among those `query` admits (`n` of them whenever `n` eligible items
    /// co-occur with it).
    pub fn similar_matching(&self, item: &str, query: &ItemQuery) -> Result<Vec<Scored>, EngineError> {
        event::validate_id("item", item)?;
        query.validate()?;
        let state = self.shared.read_state();
        // A removed item is gone for good: like an unknown one (404 over
        // HTTP), not a subject whose neighbours are still answered.
        let dense = state
            .items()
            .get(item)
            .filter(|&dense| !state.item_is_removed(dense))
            .ok_or_else(|| EngineError::UnknownItem(item.to_string()))?;
        Ok(recommend::similar_page(&state, dense, query, event::now_ms()))
    }

    /// The `n` most popular items (removed, hidden and expired items left out).
    pub fn popular(&self, n: usize) -> Result<Vec<Scored>, EngineError> {
        self.popular_matching(&ItemQuery::top(n))
    }

    /// A page of the most popular items that `query` admits.
    pub fn popular_matching(&self, query: &ItemQuery) -> Result<Vec<Scored>, EngineError> {
        query.validate()?;
        let state = self.shared.read_state();
        Ok(recommend::popular_page(&state, query, event::now_ms()))
    }

    /// The user's recorded interactions, by item id.
    pub fn interactions(&self, user: &str) -> Result<Vec<Interaction>, EngineError> {
        event::validate_id("user", user)?;
        let state = self.shared.read_state();
        let dense = state.users().get(user).ok_or_else(|| EngineError::UnknownUser(user.to_string()))?;
        let mut out: Vec<Interaction> = state
            .user_items(dense)
            .iter()
            .map(|pair| Interaction {
                item: state.items().name(pair.item).to_string(),
                value: pair.value(),
                rating: (!pair.rating.is_nan()).then_some(pair.rating),
                events: pair.events,
            })
            .collect();
        out.sort_by(|a, b| crate::ids::id_order(&a.item, &b.item));
        Ok(out)
    }

    /// Calls `visit(item, score)` for every item the engine knows, with
    /// `strategy`'s score for `user` (0 where it has none; also for an
    /// unknown user). The offline evaluation scores through this.
    pub fn score_items(&self, user: &str, strategy: Strategy, mut visit: impl FnMut(&str, f64)) {
        let state = self.shared.read_state();
        let scores = match state.users().get(user) {
            Some(dense) => recommend::score_all(&state, &self.shared.config, dense, strategy),
            None => {
                // An unknown user: only popularity (alone or in the blend) has a score.
                let mut scores = vec![0.0; state.items().len()];
                if matches!(strategy, Strategy::Popularity | Strategy::Blend) {
                    crate::algo::popularity::scores(&state, &mut scores);
                }
                scores
            }
        };
        for (item, score) in scores.into_iter().enumerate() {
            visit(state.items().name(item as u32), score);
        }
    }

    /// Writes a snapshot of the state and lets the log recycle what the
    /// oldest kept snapshot no longer needs.
    pub fn checkpoint(&self) -> Result<CheckpointInfo, EngineError> {
        self.shared.checkpoint()
    }

    /// LSN of the last record applied to the state.
    pub fn lsn_applied(&self) -> u64 {
        self.shared.read_state().lsn_applied()
    }

    /// A digest of the state (see `docs/DURABILITY.md`): equal digests mean
    /// the same records were applied. For tests and replicas.
    pub fn state_digest(&self) -> u64 {
        self.shared.read_state().digest()
    }

    /// Counts describing the engine now.
    pub fn stats(&self) -> EngineStats {
        // Not from the checkpoint's mutex: `stats` must not wait for a
        // checkpoint in progress.
        let lsn_snapshot = self.shared.checkpoints.lsn_snapshot();
        let state = self.shared.read_state();
        EngineStats {
            users: state.users().len(),
            items: state.items().len(),
            catalogue_items: state.catalogue_items(),
            pairs: state.pairs(),
            events_applied: state.events_applied(),
            lsn_applied: state.lsn_applied(),
            dedup_ids: state.dedup().len(),
            lsn_snapshot,
            wal: self.shared.wal.metrics(),
            disk_full: self.shared.disk.current(),
            checkpoint_failures: self.shared.checkpoints.failures(),
            poisoned: self.poisoned(),
        }
    }

    /// Why the engine accepts no more writes (a failed log write or sync,
    /// a panicked writer), or `None` while it does.
    pub fn poisoned(&self) -> Option<String> {
        self.shared.poisoned.get().cloned()
    }

    /// The disk-full condition in force, if a log segment or a snapshot
    /// could not be written for lack of space; it clears by itself once
    /// space is back. While the log cannot start a segment writes are
    /// refused (`DiskFull::refuses_writes`; a server reports itself not
    /// ready); a snapshot that does not fit only fails checkpoints.
    pub fn disk_full(&self) -> Option<DiskFull> {
        self.shared.disk.current()
    }

    /// The log's counters and watermarks now. (The log itself is not
    /// exposed: a write behind the engine's back would break its invariants.)
    pub fn wal_metrics(&self) -> WalMetrics {
        self.shared.wal.metrics()
    }

    /// Stops the automatic checkpoints and syncs the log.
    pub fn close(mut self) -> Result<(), EngineError> {
        self.stop_checkpointer();
        self.shared.wal.sync()?;
        // From now on a log that ends earlier is damage, not a torn write.
        // Failing to record it (a full disk) only weakens that check.
        if let Err(err) = self.shared.wal.record_floor() {
            warn!(%err, "could not record the log's durable end in its manifest");
        }
        Ok(())
    }

    fn stop_checkpointer(&mut self) {
        self.shared.stop_item_model_trainer();
        drop(self.stop.take());
        if let Some(handle) = self.checkpointer.take() {
            let _ = handle.join();
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.stop_checkpointer();
    }
}

impl Shared {
    fn read_state(&self) -> RwLockReadGuard<'_, State> {
        // A panic while applying would leave the lock poisoned; readers
        // still get the state (applies are all-or-nothing per event) while
        // writers refuse (see `ingest::Shared::lock_sequencer`).
        self.state.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn poison(&self, reason: impl Into<String>) -> EngineError {
        let reason = reason.into();
        let _ = self.poisoned.set(reason.clone());
        warn!(%reason, "engine stops accepting writes");
        EngineError::Poisoned(reason)
    }

    /// A log error as the engine reports it: a full disk refuses the write
    /// without poisoning; a failed write or sync stops all writes.
    fn wal_failed(&self, err: WalError) -> EngineError {
        if err.is_out_of_space() {
            // A segment that could not be started holds nothing: refuse this
            // write, report the condition, and do not poison.
            let WalError::SegmentStart { path, .. } = &err else { return EngineError::Wal(err) };
            let path = path.clone();
            let detail = err.to_string();
            let metrics = self.wal.metrics();
            let started = metrics.segments_created + metrics.segments_recycled;
            self.disk.set(disk::Cause::Log, path.clone(), detail.clone(), self.wal.config().segment_bytes, started);
            return EngineError::DiskFull { path, detail };
        }
        if matches!(err, WalError::Poisoned { .. } | WalError::Io { .. }) {
            let _ = self.poison(format!("log failure: {err}"));
        }
        EngineError::Wal(err)
    }
}
