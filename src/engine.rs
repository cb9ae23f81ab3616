//! `Engine`: the ingest pipeline (validate → log → wait for durability →
//! apply in LSN order → acknowledge), reads, checkpoints and start-up.
//!
//! Locks, always taken in this order:
//! - `applying` (a mutex and a condvar) gives appliers turns, so records
//!   are applied in LSN order; it is not held during a turn itself, and a
//!   turn stops at the lowest LSN a caller waits for, so callers return in
//!   LSN order as their records are applied.
//! - `sequencer` (a mutex) orders appends: dedup check, LSN assignment and
//!   the queue of records not yet applied. Never held across a sync, nor
//!   while the state is updated.
//! - `state` (a read-write lock) is written only to apply records, which
//!   takes microseconds; readers never wait for a sync.
//! - `checkpointing` serialises checkpoints.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, RwLock, RwLockReadGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use recwal_wal::{AppendTicket, Durability, RecoveryReport, SyncPolicy, Wal, WalError, WalMetrics};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::config::EngineConfig;
use crate::disk::{self, Backoff, DiskFull, DiskWatch};
use crate::error::EngineError;
use crate::event::{self, Event};
use crate::model::ranker::{Plan, Ranker};
use crate::offload::Offload;
use crate::recommend::{self, RecommendRequest, Recommendations, Scored, Strategy};
use crate::record::{EventsV1, ForgetUserV1, LogRecord, LoggedEvent, RemoveItemV1};
use crate::snapshot;
use crate::state::State;

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
    pub snapshot_lsn: u64,
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
    /// Stored (user, item) pairs.
    pub pairs: u64,
    /// Events applied (including those of users forgotten since).
    pub events_applied: u64,
    /// LSN of the last record applied.
    pub applied_lsn: u64,
    /// Client event ids in the dedup window.
    pub dedup_ids: usize,
    /// LSN of the newest snapshot written or loaded (0: none).
    pub snapshot_lsn: u64,
    /// The log's counters.
    pub wal: WalMetrics,
    /// The disk-full condition in force (`None`: writes find room).
    pub disk_full: Option<DiskFull>,
    /// Automatic checkpoints that failed (each is retried with backoff).
    pub checkpoint_failures: u64,
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

/// An ingest call after its append (or its duplicate check), before its
/// acknowledgement: what it must wait for and apply.
struct Waiting {
    /// Apply through this LSN: the call's own record, or the latest pending
    /// record one of its duplicates refers to.
    lsn: u64,
    /// Wait on this for durability (`None`: nothing pending to wait for).
    ticket: Option<AppendTicket>,
    /// The call's own record, if it appended one.
    appended: Option<u64>,
    /// Receipts known so far (duplicates); the rest get `appended`.
    receipts: Vec<Option<Receipt>>,
    /// Events whose id repeats an earlier event of the same call.
    repeats: Vec<usize>,
}

/// A record appended but not yet applied.
struct Pending {
    lsn: u64,
    kind: u8,
    payload: Vec<u8>,
    event_ids: Vec<String>,
    durability: Durability,
    ticket: AppendTicket,
}

#[derive(Default)]
struct Sequencer {
    /// In LSN order.
    pending: VecDeque<Pending>,
    /// Event ids of pending records, so a retry racing its original is
    /// still caught (and waits for the original to be durable and applied).
    in_flight: FxHashMap<String, u64>,
}

impl Sequencer {
    fn ticket_of(&self, lsn: u64) -> Option<AppendTicket> {
        let at = self.pending.binary_search_by_key(&lsn, |pending| pending.lsn).ok()?;
        Some(self.pending[at].ticket.clone())
    }
}

struct CheckpointMark {
    lsn: u64,
    records: u64,
    bytes: u64,
    at: Instant,
}

pub(crate) struct Shared {
    config: EngineConfig,
    snapshots_dir: PathBuf,
    wal: Wal,
    default_durability: Durability,
    sequencer: Mutex<Sequencer>,
    /// Whose turn it is to apply, and how far the state is applied.
    applying: Mutex<ApplyGate>,
    /// Signalled whenever an applier finishes a turn.
    applied: Condvar,
    state: RwLock<State>,
    checkpointing: Mutex<CheckpointMark>,
    /// LSN of the newest snapshot, readable without waiting for a checkpoint.
    snapshot_lsn: AtomicU64,
    poisoned: OnceLock<String>,
    /// Writes refused for lack of space, until space is back.
    disk: DiskWatch,
    /// When the automatic checkpoint may try again after failures.
    checkpoint_backoff: Mutex<Backoff>,
    pub(crate) ranker: Ranker,
    offload: Offload,
}

/// Appliers take turns: one at a time applies records, in LSN order.
struct ApplyGate {
    /// An applier is at work (outside this lock).
    busy: bool,
    /// A turn panicked: the state may be half updated, nothing more is
    /// applied.
    panicked: bool,
    /// LSN of the last record applied.
    applied_lsn: u64,
    /// The LSNs callers wait to see applied: a turn stops at the lowest, so
    /// that caller returns as soon as its record is in (a closed-loop writer
    /// then appends its next record while the others are applied).
    waiting: Vec<u64>,
}

/// Ends a turn that panicked: the engine stops accepting writes, and the
/// callers waiting for the turn are woken (to find it poisoned).
struct TurnGuard<'a>(&'a Shared);

impl Drop for TurnGuard<'_> {
    fn drop(&mut self) {
        let _ = self.0.poison("a writer panicked while applying");
        let mut gate = self.0.applying.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        gate.busy = false;
        gate.panicked = true;
        drop(gate);
        self.0.applied.notify_all();
    }
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
    pub(crate) shared: Arc<Shared>,
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
        if !recwal_wal::holds_log(&wal_dir)? {
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
        let wal = Wal::open(&wal_dir, config.wal.clone())?;
        Engine::open_on(dir, wal, config, progress)
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
        let wal = Wal::open_with_storage(storage, config.wal.clone())?;
        Engine::open_on(dir, wal, config, &|_| {})
    }

    fn open_on(
        dir: &Path,
        wal: Wal,
        config: EngineConfig,
        progress: &(dyn Fn(ReplayProgress) + Sync),
    ) -> Result<Engine, EngineError> {
        let snapshots_dir = dir.join("snapshots");
        std::fs::create_dir_all(&snapshots_dir)
            .map_err(|err| EngineError::io(format!("creating {}", snapshots_dir.display()), err))?;
        let default_durability = match config.wal.sync_policy {
            SyncPolicy::Always => Durability::Always,
            SyncPolicy::Batch { .. } => Durability::Batch,
            SyncPolicy::Never => Durability::Never,
        };
        let (state, report) = recover(&wal, &snapshots_dir, &config, progress)?;
        let ranker = Ranker::new(dir.join("models"), config.models.clone())?;
        ranker.restore(&state.models)?;
        let metrics = wal.metrics();
        let mark = CheckpointMark {
            lsn: report.snapshot_lsn,
            records: metrics.records_appended,
            bytes: metrics.bytes_appended,
            at: Instant::now(),
        };
        let config_sessions = config.models.sessions;
        let shared = Arc::new(Shared {
            config,
            snapshots_dir,
            wal,
            default_durability,
            sequencer: Mutex::new(Sequencer::default()),
            applying: Mutex::new(ApplyGate {
                busy: false,
                panicked: false,
                applied_lsn: state.applied_lsn,
                waiting: Vec::new(),
            }),
            applied: Condvar::new(),
            state: RwLock::new(state),
            snapshot_lsn: AtomicU64::new(mark.lsn),
            checkpointing: Mutex::new(mark),
            poisoned: OnceLock::new(),
            disk: DiskWatch::new(),
            checkpoint_backoff: Mutex::new(Backoff::new()),
            ranker,
            offload: Offload::new(config_sessions),
        });
        let (stop, checkpointer) = start_checkpointer(&shared)?;
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
        event::validate_id("user", user)?;
        if self.shared.read_state().users.get(user).is_none() {
            return Err(EngineError::UnknownUser(user.to_string()));
        }
        let record = LogRecord::ForgetUser(ForgetUserV1 { user });
        self.shared.log_and_apply(&record, Vec::new(), self.shared.default_durability)
    }

    /// Stops recommending `item` (its past interactions still link other
    /// items). Logged, so it survives replay. Returns the record's LSN.
    pub fn remove_item(&self, item: &str) -> Result<u64, EngineError> {
        event::validate_id("item", item)?;
        if self.shared.read_state().items.get(item).is_none() {
            return Err(EngineError::UnknownItem(item.to_string()));
        }
        let record = LogRecord::RemoveItem(RemoveItemV1 { item });
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

    /// `recommend` for async code: the work (state reads and model
    /// inference, which block) runs on the engine's worker threads
    /// (`models.sessions` of them, started on first use), never on the
    /// caller's executor.
    pub async fn recommend_async(&self, request: RecommendRequest) -> Result<Recommendations, EngineError> {
        let shared = Arc::clone(&self.shared);
        self.shared.offload.run(move || shared.recommend(&request)).await
    }

    /// The candidates a model would rank for `request` and their features
    /// (feature schema v1, row-major), as of now: what the model sees, for
    /// checking a model or exporting training data.
    pub fn candidate_features(&self, request: &RecommendRequest) -> Result<Vec<(String, Vec<f32>)>, EngineError> {
        recommend::validate(request)?;
        let (candidates, features) = self.shared.candidates(request, false)?;
        let answer = candidates.answer;
        let width = crate::model::schema::FEATURES;
        Ok(answer.items.into_iter().zip(features.chunks(width)).map(|(item, row)| (item.item, row.to_vec())).collect())
    }

    /// Items most often interacted with together with `item`.
    pub fn similar_items(&self, item: &str, n: usize) -> Result<Vec<Scored>, EngineError> {
        event::validate_id("item", item)?;
        recommend::validate_n(n)?;
        let state = self.shared.read_state();
        let dense = state.items.get(item).ok_or_else(|| EngineError::UnknownItem(item.to_string()))?;
        Ok(recommend::similar_items(&state, dense, n))
    }

    /// The `n` most popular items (removed items left out).
    pub fn popular(&self, n: usize) -> Result<Vec<Scored>, EngineError> {
        recommend::validate_n(n)?;
        let state = self.shared.read_state();
        Ok(recommend::popular(&state, n, |item| !state.item_removed[item as usize]))
    }

    /// The user's recorded interactions, by item id.
    pub fn interactions(&self, user: &str) -> Result<Vec<Interaction>, EngineError> {
        event::validate_id("user", user)?;
        let state = self.shared.read_state();
        let dense = state.users.get(user).ok_or_else(|| EngineError::UnknownUser(user.to_string()))?;
        let mut out: Vec<Interaction> = state
            .user_items(dense)
            .iter()
            .map(|pair| Interaction {
                item: state.items.name(pair.item).to_string(),
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
        let scores = match state.users.get(user) {
            Some(dense) => recommend::score_all(&state, &self.shared.config, dense, strategy),
            None => {
                // An unknown user: only popularity (alone or in the blend) has a score.
                let mut scores = vec![0.0; state.items.len()];
                if matches!(strategy, Strategy::Popularity | Strategy::Blend) {
                    crate::algo::popularity::scores(&state, &mut scores);
                }
                scores
            }
        };
        for (item, score) in scores.into_iter().enumerate() {
            visit(state.items.name(item as u32), score);
        }
    }

    /// Writes a snapshot of the state and lets the log recycle what the
    /// oldest kept snapshot no longer needs.
    pub fn checkpoint(&self) -> Result<CheckpointInfo, EngineError> {
        self.shared.checkpoint()
    }

    /// LSN of the last record applied to the state.
    pub fn applied_lsn(&self) -> u64 {
        self.shared.read_state().applied_lsn
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
        let snapshot_lsn = self.shared.snapshot_lsn.load(Ordering::Acquire);
        let state = self.shared.read_state();
        EngineStats {
            users: state.users.len(),
            items: state.items.len(),
            pairs: state.pairs(),
            events_applied: state.events_applied,
            applied_lsn: state.applied_lsn,
            dedup_ids: state.dedup.len(),
            snapshot_lsn,
            wal: self.shared.wal.metrics(),
            disk_full: self.shared.disk.current(),
            checkpoint_failures: self.shared.lock_backoff().failed_total.load(Ordering::Relaxed),
        }
    }

    /// The disk-full condition in force, if a log segment or a snapshot
    /// could not be written for lack of space; it clears by itself once
    /// space is back (a server reports itself not ready meanwhile).
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
    fn recommend(&self, request: &RecommendRequest) -> Result<Recommendations, EngineError> {
        recommend::validate(request)?;
        let (model, admission) = match self.ranker.plan() {
            Plan::Plain(ranking) => {
                let mut answer = recommend::recommend(&self.read_state(), &self.config, request)?;
                answer.ranking = ranking;
                return Ok(answer);
            }
            Plan::Rank(model, admission) => (model, admission),
        };
        let (candidates, features) = match self.candidates(request, true) {
            Ok(found) => found,
            Err(err) => {
                model.breaker.abandon(admission);
                return Err(err);
            }
        };
        let mut answer = candidates.answer;
        self.ranker.rank(&model, admission, &mut answer, &features, request.n);
        // Reasons only for the items kept (the model ran outside the lock).
        recommend::fill_reasons(&self.read_state(), candidates.user, &candidates.neighbours, &mut answer.items);
        Ok(answer)
    }

    /// The strategy's best `max(n, models.candidates)` items and their
    /// features, from one read of the state.
    pub(crate) fn candidates(
        &self,
        request: &RecommendRequest,
        defer_reasons: bool,
    ) -> Result<(recommend::Candidates, Vec<f32>), EngineError> {
        let config = &self.config;
        let wide = RecommendRequest { n: request.n.max(config.models.candidates), ..request.clone() };
        let state = self.read_state();
        let candidates = recommend::recommend_with(&state, config, &wide, defer_reasons)?;
        let features = crate::model::features::build(
            &state,
            config,
            candidates.user,
            request.strategy,
            &candidates.scores,
            &candidates.items,
        );
        Ok((candidates, features))
    }
    pub(crate) fn read_state(&self) -> RwLockReadGuard<'_, State> {
        // A panic while applying would leave the lock poisoned; readers
        // still get the state (applies are all-or-nothing per event) while
        // writers refuse (see `lock_sequencer`).
        self.state.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn lock_sequencer(&self) -> Result<MutexGuard<'_, Sequencer>, EngineError> {
        if let Some(reason) = self.poisoned.get() {
            return Err(EngineError::Poisoned(reason.clone()));
        }
        self.sequencer.lock().map_err(|_| self.poison("a writer panicked"))
    }

    fn poison(&self, reason: impl Into<String>) -> EngineError {
        let reason = reason.into();
        let _ = self.poisoned.set(reason.clone());
        warn!(%reason, "engine stops accepting writes");
        EngineError::Poisoned(reason)
    }

    fn ingest(&self, events: &[Event], durability: Durability, field: &str) -> Result<Vec<Receipt>, EngineError> {
        let waiting = self.ingest_start(events, durability, field)?;
        if let (Some(ticket), true) = (&waiting.ticket, durability != Durability::Never) {
            ticket.wait().map_err(|err| self.wal_failed(err))?;
        }
        self.sync_untracked(&waiting, durability)?;
        self.ingest_finish(waiting)
    }

    async fn ingest_async(
        &self,
        events: &[Event],
        durability: Durability,
        field: &str,
    ) -> Result<Vec<Receipt>, EngineError> {
        let waiting = self.ingest_start(events, durability, field)?;
        if let (Some(ticket), true) = (&waiting.ticket, durability != Durability::Never) {
            ticket.wait_async().await.map_err(|err| self.wal_failed(err))?;
        }
        self.sync_untracked(&waiting, durability)?;
        // A `Never` call applying behind records that must first be durable
        // waits for them here, not inside `apply_through`, so the thread is
        // not blocked.
        if let Some(ticket) = self.undurable_through(waiting.lsn) {
            ticket.wait_async().await.map_err(|err| self.wal_failed(err))?;
        }
        self.ingest_finish(waiting)
    }

    /// A duplicate of a record already taken off the queue (being applied)
    /// has no ticket to wait on; if that record is not durable yet (it was
    /// written `Never`), sync for it. Rare.
    fn sync_untracked(&self, waiting: &Waiting, durability: Durability) -> Result<(), EngineError> {
        if waiting.ticket.is_none() && durability != Durability::Never && self.wal.lsn_durable() < waiting.lsn {
            self.wal.sync().map_err(|err| self.wal_failed(err))?;
        }
        Ok(())
    }

    /// Applies what the call waited for and builds the receipts. (If an
    /// async caller is cancelled before this, the checkpointer thread applies
    /// the record once it is durable.)
    fn ingest_finish(&self, waiting: Waiting) -> Result<Vec<Receipt>, EngineError> {
        let Waiting { lsn, appended, mut receipts, repeats, .. } = waiting;
        self.apply_through(lsn)?;
        for (at, receipt) in receipts.iter_mut().enumerate() {
            if let (None, Some(appended)) = (&receipt, appended) {
                *receipt = Some(Receipt { lsn: appended, duplicate: repeats.contains(&at) });
            }
        }
        Ok(receipts.into_iter().flatten().collect())
    }

    /// Validates and sequences the call (append without sync, or duplicate
    /// detection), making room once if the ring is full.
    fn ingest_start(&self, events: &[Event], durability: Durability, field: &str) -> Result<Waiting, EngineError> {
        if events.len() > self.config.batch_events_max {
            return Err(EngineError::invalid(
                field,
                format!("at most {} events per call, got {}", self.config.batch_events_max, events.len()),
            ));
        }
        let now = event::now_ms();
        let valid: Vec<LoggedEvent> = events
            .iter()
            .enumerate()
            .map(|(at, event)| {
                let name = || if field == "event" { field.to_string() } else { format!("{field}[{at}]") };
                event::validate(event, &self.config, now, &name)
            })
            .collect::<Result<_, _>>()?;
        match self.sequence_events(&valid, now, durability, field) {
            Err(EngineError::Wal(WalError::Full { .. })) => {
                self.make_room()?;
                self.sequence_events(&valid, now, durability, field)
            }
            other => other,
        }
    }

    /// Under the sequencer lock: finds the events whose id was already
    /// accepted, and appends the rest as one record.
    fn sequence_events(
        &self,
        valid: &[LoggedEvent<'_>],
        now: i64,
        durability: Durability,
        field: &str,
    ) -> Result<Waiting, EngineError> {
        let mut receipts: Vec<Option<Receipt>> = vec![None; valid.len()];
        let mut repeats = Vec::new();
        let mut sequencer = self.lock_sequencer()?;
        let mut fresh: Vec<LoggedEvent<'_>> = Vec::with_capacity(valid.len());
        let mut fresh_ids: Vec<String> = Vec::new();
        // The latest pending (unapplied) record a duplicate refers to: the
        // call must not return before that record is durable and applied.
        let mut pending_original = 0u64;
        {
            // The dedup window is read only when an event carries an id, so
            // plain appends never wait for an apply in progress.
            let state = valid.iter().any(|event| event.event_id.is_some()).then(|| self.read_state());
            for (at, event) in valid.iter().enumerate() {
                if let (Some(id), Some(state)) = (event.event_id, &state) {
                    if let Some(seen) = state.dedup.lookup(id, now, &self.config.dedup) {
                        receipts[at] = Some(Receipt { lsn: seen.lsn, duplicate: true });
                        // Applied, but maybe written `Never` and not yet
                        // durable: the caller's durability covers it too.
                        pending_original = pending_original.max(seen.lsn);
                        continue;
                    }
                    if let Some(&lsn) = sequencer.in_flight.get(id) {
                        receipts[at] = Some(Receipt { lsn, duplicate: true });
                        pending_original = pending_original.max(lsn);
                        continue;
                    }
                    if fresh_ids.iter().any(|fresh| fresh == id) {
                        repeats.push(at);
                        continue;
                    }
                    fresh_ids.push(id.to_string());
                }
                fresh.push(event.clone());
            }
        }
        if fresh.is_empty() {
            let ticket = sequencer.ticket_of(pending_original);
            return Ok(Waiting { lsn: pending_original, ticket, appended: None, receipts, repeats });
        }
        let record = LogRecord::Events(EventsV1 { ingested_ms: now, events: fresh });
        let (lsn, ticket) = self.append(&mut sequencer, &record, fresh_ids, durability, field)?;
        Ok(Waiting { lsn, ticket: Some(ticket), appended: Some(lsn), receipts, repeats })
    }

    /// The log's ring is full: checkpoint now, and if the oldest kept
    /// snapshot still pins the ring, release up to the newest one (the
    /// older snapshot then no longer has the log it would need).
    fn make_room(&self) -> Result<(), EngineError> {
        warn!("log ring full: checkpointing to make room");
        let info = self.checkpoint()?;
        let released = self.wal.checkpoint(info.lsn).map_err(|err| self.wal_failed(err))?;
        if released > 0 {
            warn!(lsn = info.lsn, "released the log behind the newest snapshot; older snapshots can no longer be used");
        }
        Ok(())
    }

    pub(crate) fn log_and_apply(
        &self,
        record: &LogRecord<'_>,
        event_ids: Vec<String>,
        durability: Durability,
    ) -> Result<u64, EngineError> {
        let append = || {
            let mut sequencer = self.lock_sequencer()?;
            self.append(&mut sequencer, record, event_ids.clone(), durability, "record")
        };
        let (lsn, ticket) = match append() {
            Err(EngineError::Wal(WalError::Full { .. })) => {
                self.make_room()?;
                append()?
            }
            other => other?,
        };
        if durability != Durability::Never {
            ticket.wait().map_err(|err| self.wal_failed(err))?;
        }
        self.apply_through(lsn)?;
        Ok(lsn)
    }

    /// Appends under the sequencer lock. The write never syncs here: an
    /// `Always` record is written by `append_sync_later` and synced by the
    /// caller's ticket wait, outside the lock, where concurrent waiters
    /// share a sync.
    fn append(
        &self,
        sequencer: &mut Sequencer,
        record: &LogRecord<'_>,
        event_ids: Vec<String>,
        durability: Durability,
        field: &str,
    ) -> Result<(u64, AppendTicket), EngineError> {
        let (kind, payload) = record.encode()?;
        let limit = self.wal.config().record_bytes_max as usize;
        if payload.len() > limit {
            return Err(EngineError::invalid(
                field,
                format!("encodes to {} bytes; the log's record limit is {limit}: send fewer events", payload.len()),
            ));
        }
        let appended = match durability {
            Durability::Always => self.wal.append_sync_later(kind, &payload),
            other => self.wal.append_with(kind, &payload, other),
        };
        let ticket = appended.map_err(|err| self.wal_failed(err))?;
        let lsn = ticket.lsn();
        for id in &event_ids {
            sequencer.in_flight.insert(id.clone(), lsn);
        }
        let pending = Pending { lsn, kind, payload, event_ids, durability, ticket: ticket.clone() };
        sequencer.pending.push_back(pending);
        Ok((lsn, ticket))
    }

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

    /// The sequencer, even after the engine stopped accepting writes (a
    /// record already durable must still be applied).
    fn sequencer_for_apply(&self) -> Result<MutexGuard<'_, Sequencer>, EngineError> {
        self.sequencer.lock().map_err(|_| self.poison("a writer panicked"))
    }

    /// The ticket of the latest pending record at or below `lsn` that asked
    /// for durability and is not durable yet: it must be durable before
    /// anything after it is applied (a `Never` call behind a `Batch` one).
    fn undurable_through(&self, lsn: u64) -> Option<AppendTicket> {
        let sequencer = self.sequencer_for_apply().ok()?;
        let durable = self.wal.lsn_durable();
        sequencer
            .pending
            .iter()
            .take_while(|pending| pending.lsn <= lsn)
            .filter(|pending| pending.durability != Durability::Never && pending.lsn > durable)
            .last()
            .map(|pending| pending.ticket.clone())
    }

    /// Applies every pending record up to `lsn`, in LSN order. Records that
    /// asked for durability are applied only once durable: if one is not yet
    /// (a `Never` call behind it), this waits for it first.
    fn apply_through(&self, lsn: u64) -> Result<(), EngineError> {
        if let Some(ticket) = self.undurable_through(lsn) {
            ticket.wait().map_err(|err| self.wal_failed(err))?;
        }
        // Appliers take turns (so records are applied in LSN order), but
        // the sequencer is held only to take the due records off the queue:
        // appends go on while the state is updated. A turn applies up to the
        // lowest LSN waited for, then hands over, so callers return in LSN
        // order as their records are applied rather than all at the end.
        let lock_gate = || self.applying.lock().map_err(|_| self.poison("a writer panicked while applying"));
        let mut gate = lock_gate()?;
        loop {
            if gate.applied_lsn >= lsn {
                return Ok(());
            }
            if gate.panicked {
                return Err(self.poison("a writer panicked while applying"));
            }
            if gate.busy {
                gate.waiting.push(lsn);
                gate = self.applied.wait(gate).map_err(|_| self.poison("a writer panicked while applying"))?;
                if let Some(at) = gate.waiting.iter().position(|&waiting| waiting == lsn) {
                    gate.waiting.swap_remove(at);
                }
                continue;
            }
            // (A waiter already covered has yet to wake and leave the list.)
            let applied_lsn = gate.applied_lsn;
            let through = gate.waiting.iter().copied().filter(|&waiting| waiting > applied_lsn).fold(lsn, u64::min);
            gate.busy = true;
            drop(gate);
            let turn = TurnGuard(self);
            let applied = self.apply_turn(through);
            std::mem::forget(turn);
            gate = lock_gate()?;
            gate.busy = false;
            if let Ok(applied_lsn) = applied {
                gate.applied_lsn = gate.applied_lsn.max(applied_lsn);
            }
            // Waiters register in `waiting` under this lock before they
            // wait, so with none registered there is no one to wake (and
            // a lone writer skips the wake-up system call).
            if !gate.waiting.is_empty() {
                self.applied.notify_all();
            }
            let applied_lsn = applied?;
            if applied_lsn < through {
                // Only if a record became non-durable again: the log failed.
                return Err(EngineError::Poisoned(format!(
                    "record {through} could not be applied: the log did not make it durable"
                )));
            }
        }
    }

    /// One applier's turn: applies the due records up to `lsn` (those that
    /// asked for durability only once durable); returns the state's LSN.
    fn apply_turn(&self, lsn: u64) -> Result<u64, EngineError> {
        let due: Vec<Pending> = {
            let mut sequencer = self.sequencer_for_apply()?;
            let durable = self.wal.lsn_durable();
            let count = sequencer
                .pending
                .iter()
                .take_while(|p| p.lsn <= lsn && (p.durability == Durability::Never || p.lsn <= durable))
                .count();
            sequencer.pending.drain(..count).collect()
        };
        // Decoded before the state is locked (readers wait only for the
        // updates); records before one that fails to decode are applied.
        let mut records = Vec::with_capacity(due.len());
        let mut undecodable = None;
        for pending in &due {
            match LogRecord::decode(pending.lsn, pending.kind, &pending.payload) {
                Ok(record) => records.push((pending.lsn, record)),
                Err(err) => {
                    undecodable = Some(err);
                    break;
                }
            }
        }
        let applied_lsn = {
            let mut state = self.state.write().map_err(|_| self.poison("a writer panicked while applying"))?;
            for (lsn, record) in &records {
                state.apply(*lsn, record, &self.config.dedup);
            }
            state.applied_lsn
        };
        if let Some(err) = undecodable {
            return Err(self.poison(format!("cannot apply our own record: {err}")));
        }
        // Only now, with the ids in the state's dedup window, do they leave
        // the in-flight set: a concurrent duplicate check always finds them
        // in one or the other.
        if due.iter().any(|pending| !pending.event_ids.is_empty()) {
            let mut sequencer = self.sequencer_for_apply()?;
            for pending in &due {
                for id in &pending.event_ids {
                    if sequencer.in_flight.get(id) == Some(&pending.lsn) {
                        sequencer.in_flight.remove(id);
                    }
                }
            }
        }
        Ok(applied_lsn)
    }

    /// Applies pending records the log has made durable but whose callers
    /// are gone (a cancelled async ingest). Run by the checkpointer thread.
    fn apply_durable(&self) {
        let durable = self.wal.lsn_durable();
        let behind = self
            .sequencer_for_apply()
            .map(|sequencer| sequencer.pending.front().is_some_and(|front| front.lsn <= durable))
            .unwrap_or(false);
        if behind {
            if let Err(err) = self.apply_through(durable) {
                warn!(%err, "applying durable records in the background failed");
            }
        }
    }

    fn checkpoint(&self) -> Result<CheckpointInfo, EngineError> {
        let mut mark = self.checkpointing.lock().map_err(|_| self.poison("a checkpoint panicked"))?;
        let metrics = self.wal.metrics();
        let (lsn, bytes) = {
            // A panic while applying may have left a batch half applied:
            // never snapshot that.
            let state = self.state.read().map_err(|_| self.poison("a writer panicked while applying"))?;
            if state.applied_lsn == mark.lsn {
                return Ok(CheckpointInfo { lsn: mark.lsn, path: None, bytes: 0, segments_released: 0 });
            }
            (state.applied_lsn, snapshot::encode(state.applied_lsn, &state.snapshot_view(), &state.models)?)
        };
        // Everything the snapshot holds must be durable in the log first:
        // otherwise a crash could lose records the snapshot already shows
        // and their LSNs would be handed out again.
        self.wal.sync().map_err(|err| self.wal_failed(err))?;
        let path = match snapshot::write(&self.snapshots_dir, lsn, &bytes) {
            Ok(path) => path,
            Err(EngineError::Io { context, source }) if recwal_wal::is_out_of_space(&source) => {
                let path = self.snapshots_dir.join(snapshot::file_name(lsn));
                let detail = format!("{context}: {source}");
                self.disk.set(disk::Cause::Snapshot, path.clone(), detail.clone(), bytes.len() as u64, 0);
                return Err(EngineError::DiskFull { path, detail });
            }
            Err(err) => return Err(err),
        };
        self.disk.clear(disk::Cause::Snapshot, "a snapshot was written");
        self.lock_backoff().succeeded();
        let kept = snapshot::list(&self.snapshots_dir)?;
        let keep = self.config.checkpoint.snapshots_kept;
        for (_, old) in kept.iter().skip(keep) {
            if let Err(err) = std::fs::remove_file(old) {
                warn!(path = %old.display(), %err, "cannot remove an old snapshot");
            }
        }
        snapshot::sync_dir(&self.snapshots_dir)?;
        // The log keeps what the oldest kept snapshot needs, so a damaged
        // newest snapshot can still fall back to it.
        let oldest = kept.iter().take(keep).map(|(lsn, _)| *lsn).min().unwrap_or(lsn);
        let segments_released = self.wal.checkpoint(oldest).map_err(|err| self.wal_failed(err))?;
        // Everything up to `lsn` is durable (synced above): record it, so that
        // a log later found to end before it is refused as damaged.
        if let Err(err) = self.wal.record_floor() {
            warn!(%err, "could not record the log's durable end in its manifest");
        }
        self.snapshot_lsn.store(lsn, Ordering::Release);
        *mark = CheckpointMark {
            lsn,
            records: metrics.records_appended,
            bytes: metrics.bytes_appended,
            at: Instant::now(),
        };
        info!(lsn, bytes = bytes.len(), segments_released, "checkpoint written");
        Ok(CheckpointInfo { lsn, path: Some(path), bytes: bytes.len() as u64, segments_released })
    }

    fn lock_backoff(&self) -> MutexGuard<'_, Backoff> {
        // Plain data: a panic elsewhere leaves it consistent.
        self.checkpoint_backoff.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Clears a disk-full condition whose space is back, without a write
    /// (a node that is not ready gets none): the log's once a segment fits
    /// (or one was started), a snapshot's once it fits. Run by the
    /// checkpoint thread.
    fn probe_disk(&self) {
        if let Some((needed, started_at_refusal, _)) = self.disk.waiting(disk::Cause::Log) {
            let metrics = self.wal.metrics();
            if metrics.segments_created + metrics.segments_recycled > started_at_refusal {
                self.disk.clear(disk::Cause::Log, "the log started a segment");
            } else if let Ok(Some(free)) = self.wal.available_bytes() {
                if free >= needed {
                    self.disk.clear(disk::Cause::Log, "a segment fits again");
                }
            }
        }
        if let Some((needed, _, _)) = self.disk.waiting(disk::Cause::Snapshot) {
            if recwal_wal::available_bytes(&self.snapshots_dir).is_ok_and(|free| free >= needed) {
                self.disk.clear(disk::Cause::Snapshot, "the snapshot fits again");
                // Try the automatic checkpoint now, not at the end of its backoff.
                self.lock_backoff().retry_now();
            }
        }
    }

    fn checkpoint_due(&self) -> bool {
        let Ok(mark) = self.checkpointing.lock() else { return false };
        let config = &self.config.checkpoint;
        let metrics = self.wal.metrics();
        let records = metrics.records_appended.saturating_sub(mark.records);
        let bytes = metrics.bytes_appended.saturating_sub(mark.bytes);
        records > 0
            && (config.every_records.is_some_and(|every| records >= every)
                || config.every_bytes.is_some_and(|every| bytes >= every)
                || config.every.is_some_and(|every| mark.at.elapsed() >= every))
    }
}

fn start_checkpointer(shared: &Arc<Shared>) -> Result<(mpsc::Sender<()>, JoinHandle<()>), EngineError> {
    const POLL: Duration = Duration::from_millis(20);
    let (stop, stopped) = mpsc::channel::<()>();
    let shared = Arc::clone(shared);
    let handle = std::thread::Builder::new()
        .name("recwal-checkpoint".into())
        .spawn(move || loop {
            match stopped.recv_timeout(POLL) {
                Err(RecvTimeoutError::Timeout) => {}
                Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
            }
            shared.apply_durable();
            shared.ranker.reap();
            shared.probe_disk();
            if shared.poisoned.get().is_none() && shared.lock_backoff().ready(Instant::now()) && shared.checkpoint_due()
            {
                if let Err(err) = shared.checkpoint() {
                    // Logged once per run of failures, retried with backoff.
                    shared.lock_backoff().failed(&err);
                }
            }
        })
        .map_err(|err| EngineError::io("starting the checkpoint thread", err))?;
    Ok((stop, handle))
}

/// Newest readable snapshot + replay of the log after it.
fn recover(
    wal: &Wal,
    snapshots_dir: &Path,
    config: &EngineConfig,
    progress: &(dyn Fn(ReplayProgress) + Sync),
) -> Result<(State, OpenReport), EngineError> {
    let first = wal.lsn_first();
    let last = wal.lsn_written();
    let started = Instant::now();
    let mut skipped = Vec::new();
    let mut state = None;
    for (lsn, path) in snapshot::list(snapshots_dir)? {
        if lsn > last {
            return Err(EngineError::Unrecoverable(format!(
                "snapshot {} covers LSN {lsn} but the log ends at LSN {last}: the log lost acknowledged records \
                 or belongs to another data directory",
                path.display()
            )));
        }
        let loaded = snapshot::read(&path).and_then(|body| {
            State::from_snapshot(body).map_err(|reason| EngineError::Snapshot { path: path.clone(), reason })
        });
        match loaded {
            Ok(loaded) => {
                state = Some(loaded);
                break;
            }
            Err(EngineError::Snapshot { reason, .. }) if reason.starts_with(snapshot::VERSION_MISMATCH) => {
                // Written by another build: not damage, and nothing to fall
                // back from. Leave it in place and refuse to start.
                return Err(EngineError::Snapshot {
                    path,
                    reason: format!("{reason}; open this data directory with the recwal that wrote it"),
                });
            }
            Err(err) => {
                // Set aside (not deleted: it is evidence), so it never counts
                // as a kept snapshot and the log stays pinned for the good one.
                let mut quarantined = path.clone().into_os_string();
                quarantined.push(".bad");
                let quarantined = PathBuf::from(quarantined);
                warn!(path = %path.display(), %err, moved_to = %quarantined.display(), "snapshot unreadable; trying the previous one");
                std::fs::rename(&path, &quarantined)
                    .map_err(|io| EngineError::io(format!("setting aside {}", path.display()), io))?;
                snapshot::sync_dir(snapshots_dir)?;
                skipped.push((path, err.to_string()));
            }
        }
    }
    let snapshot_load = started.elapsed();
    let state_lsn = state.as_ref().map_or(0, |state| state.applied_lsn);
    if state_lsn + 1 < first {
        return Err(EngineError::Unrecoverable(format!(
            "the log starts at LSN {first} and the newest readable snapshot in {} covers LSN {state_lsn}: records \
             {}..{} are gone ({} snapshot(s) unreadable; a newer snapshot was deleted or damaged); restore the data \
             directory from a backup",
            snapshots_dir.display(),
            state_lsn + 1,
            first - 1,
            skipped.len()
        )));
    }
    if state.is_none() && !skipped.is_empty() {
        warn!(unreadable = skipped.len(), "no snapshot readable; rebuilding everything from the log");
    }
    let half_life_ms = config.popularity.half_life.map(|half_life| half_life.as_secs_f64() * 1000.0);
    if let Some(loaded) = &state {
        if loaded.half_life_ms != half_life_ms {
            return Err(EngineError::InvalidConfig {
                field: "popularity.half_life",
                rule: format!(
                    "the data directory's snapshot was built with a half-life of {:?} ms, the configuration asks for \
                     {:?} ms; the setting cannot change once a snapshot exists",
                    loaded.half_life_ms, half_life_ms
                ),
            });
        }
    }
    let mut state = state.unwrap_or_else(|| State::new(config.popularity.half_life));
    let replay_started = Instant::now();
    let total = last.saturating_sub(state_lsn);
    let mut replayed = 0u64;
    let reader = wal.read_from(state_lsn + 1)?;
    state.begin_replay();
    let mut last_log = Instant::now();
    let mut last_progress = Instant::now();
    info!(from = state_lsn + 1, to = last, records = total, "replaying the log");
    progress(ReplayProgress { records_done: 0, records_total: total });
    for record in reader {
        let record = record?;
        let decoded = LogRecord::decode(record.lsn(), record.kind(), record.payload())?;
        state.apply(record.lsn(), &decoded, &config.dedup);
        replayed += 1;
        if replayed.is_multiple_of(1024) && last_progress.elapsed() >= Duration::from_millis(100) {
            last_progress = Instant::now();
            progress(ReplayProgress { records_done: replayed, records_total: total });
        }
        if last_log.elapsed() >= Duration::from_secs(1) {
            last_log = Instant::now();
            let rate = replayed as f64 / replay_started.elapsed().as_secs_f64();
            info!(
                percent = format!("{:.1}", 100.0 * replayed as f64 / total.max(1) as f64),
                records_per_sec = rate as u64,
                "replay progress"
            );
        }
    }
    state.finish_replay();
    progress(ReplayProgress { records_done: replayed, records_total: total.max(replayed) });
    let replay = replay_started.elapsed();
    info!(records = replayed, ms = replay.as_millis() as u64, snapshot_lsn = state_lsn, "replay finished");
    let report = OpenReport {
        wal: wal.recovery_report().clone(),
        snapshot_lsn: state_lsn,
        snapshots_skipped: skipped,
        records_replayed: replayed,
        snapshot_load,
        replay,
    };
    Ok((state, report))
}
