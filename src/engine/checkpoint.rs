//! Checkpoints (snapshot, then release of the log behind the oldest kept
//! snapshot) and the background thread, whose jobs run every `POLL`:
//! apply orphaned records, free swapped-out model versions, probe a full
//! disk, checkpoint when due, and record the log's durable end.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use recwal_wal::WalMetrics;
use tracing::{info, warn};

use super::{CheckpointInfo, Shared};
use crate::disk::{self, Backoff};
use crate::error::EngineError;
use crate::snapshot;

/// Where the last checkpoint left the log, to tell when the next is due.
struct CheckpointMark {
    lsn: u64,
    records: u64,
    bytes: u64,
    at: Instant,
    /// Size of the snapshot at `lsn` (0: none, or unknown).
    snapshot_bytes: u64,
}

impl CheckpointMark {
    fn new(lsn: u64, metrics: &WalMetrics, snapshot_bytes: u64) -> CheckpointMark {
        CheckpointMark {
            lsn,
            records: metrics.records_appended,
            bytes: metrics.bytes_appended,
            at: Instant::now(),
            snapshot_bytes,
        }
    }
}

/// Log bytes after which a checkpoint is due: `every_bytes`, raised to
/// `log_per_snapshot_byte` times the newest snapshot's size but never past
/// half the ring (a full ring makes a writer checkpoint while it waits).
fn bytes_due(config: &crate::config::EngineConfig, every_bytes: u64, snapshot_bytes: u64) -> u64 {
    let ring = config.wal.segment_bytes.saturating_mul(u64::from(config.wal.segments_max));
    let scaled = (config.checkpoint.log_per_snapshot_byte * snapshot_bytes as f64).min((ring / 2) as f64) as u64;
    every_bytes.max(scaled)
}

/// The checkpoint protocol's state: one checkpoint at a time (`mark`), the
/// newest snapshot's LSN for readers that must not wait for one, and the
/// automatic checkpoint's backoff after failures.
pub(super) struct Checkpoints {
    snapshots_dir: PathBuf,
    /// Serialises checkpoints.
    mark: Mutex<CheckpointMark>,
    /// LSN of the newest snapshot, readable without waiting for a checkpoint.
    lsn_snapshot: AtomicU64,
    /// When the automatic checkpoint may try again after failures.
    backoff: Mutex<Backoff>,
    /// The durable LSN last recorded as the log's floor (at first, the
    /// durable LSN at open), and when.
    floor: Mutex<FloorMark>,
}

/// See `Shared::record_floor_when_due`.
struct FloorMark {
    lsn: u64,
    at: Instant,
    /// The last try failed (warned once per run of failures).
    failing: bool,
}

/// How often the log's durable end is recorded in its manifest while
/// records arrive. Bytes at the log's end zeroed at rest after a crash
/// cannot be told from bytes never written; past the recorded end they are
/// refused as damage instead, so at most this much of the newest writes is
/// exposed. Each record costs a small file write and two syncs.
const FLOOR_EVERY: Duration = Duration::from_secs(1);

impl Checkpoints {
    /// After start-up from the snapshot at `lsn_snapshot` (0: none).
    pub(super) fn new(snapshots_dir: PathBuf, lsn_snapshot: u64, metrics: &WalMetrics) -> Checkpoints {
        let snapshot_bytes = match lsn_snapshot {
            0 => 0,
            lsn => std::fs::metadata(snapshots_dir.join(snapshot::file_name(lsn))).map_or(0, |meta| meta.len()),
        };
        Checkpoints {
            snapshots_dir,
            mark: Mutex::new(CheckpointMark::new(lsn_snapshot, metrics, snapshot_bytes)),
            lsn_snapshot: AtomicU64::new(lsn_snapshot),
            backoff: Mutex::new(Backoff::new()),
            // Only what this process synced moves the floor: the recovered
            // records were synced and recorded as the engine opened
            // (`Wal::sync_recovered`); from here, what it appends.
            floor: Mutex::new(FloorMark { lsn: metrics.lsn_durable, at: Instant::now(), failing: false }),
        }
    }

    /// LSN of the newest snapshot written or loaded (0: none); never waits
    /// for a checkpoint in progress.
    pub(super) fn lsn_snapshot(&self) -> u64 {
        self.lsn_snapshot.load(Ordering::Acquire)
    }

    /// Automatic checkpoints that failed.
    pub(super) fn failures(&self) -> u64 {
        self.lock_backoff().failed_total.load(Ordering::Relaxed)
    }

    fn lock_backoff(&self) -> MutexGuard<'_, Backoff> {
        // Plain data: a panic elsewhere leaves it consistent.
        self.backoff.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Shared {
    /// Writes a snapshot of the state (unless the newest already covers it)
    /// and releases the log behind the oldest kept snapshot.
    pub(super) fn checkpoint(&self) -> Result<CheckpointInfo, EngineError> {
        let mut mark = self.checkpoints.mark.lock().map_err(|_| self.poison("a checkpoint panicked"))?;
        self.checkpoint_locked(&mut mark)
    }

    /// `checkpoint`, with the checkpoint lock already held.
    fn checkpoint_locked(&self, mark: &mut CheckpointMark) -> Result<CheckpointInfo, EngineError> {
        let checkpoints = &self.checkpoints;
        let metrics = self.wal.metrics();
        // The dedup window's buffers (the biggest part of the copy) are
        // allocated and faulted in before the lock is taken again.
        let room = self.read_state().dedup().room();
        let dedup = crate::dedup::DedupEntries::with_room(room);
        let copy_started = std::time::Instant::now();
        let copy = {
            // A panic while applying may have left a batch half applied:
            // never snapshot that.
            let state = self.state.read().map_err(|_| self.poison("a writer panicked while applying"))?;
            if state.lsn_applied() == mark.lsn {
                return Ok(CheckpointInfo { lsn: mark.lsn, path: None, bytes: 0, segments_released: 0 });
            }
            // Copied under the lock, encoded after it: writers wait only
            // for the copy.
            state.snapshot_copy(dedup)
        };
        let copy_ms = copy_started.elapsed().as_millis() as u64;
        let (lsn, bytes) = (copy.lsn_applied(), snapshot::encode_copy(&copy)?);
        drop(copy);
        assert!(lsn > mark.lsn, "the state went back behind the last checkpoint");
        // Everything the snapshot holds must be durable in the log first:
        // otherwise a crash could lose records the snapshot already shows
        // and their LSNs would be handed out again.
        self.wal.sync().map_err(|err| self.wal_failed(err))?;
        assert!(self.wal.lsn_durable() >= lsn);
        let path = self.write_snapshot(lsn, &bytes)?;
        let oldest = self.remove_old_snapshots(lsn)?;
        let segments_released = self.wal.checkpoint(oldest).map_err(|err| self.wal_failed(err))?;
        // Everything up to `lsn` is durable (synced above): record it, so that
        // a log later found to end before it is refused as damaged.
        if let Err(err) = self.wal.record_floor() {
            warn!(%err, "could not record the log's durable end in its manifest");
        }
        checkpoints.lsn_snapshot.store(lsn, Ordering::Release);
        *mark = CheckpointMark::new(lsn, &metrics, bytes.len() as u64);
        // `copy_ms`: how long writers waited for the checkpoint.
        info!(lsn, bytes = bytes.len(), segments_released, copy_ms, "checkpoint written");
        Ok(CheckpointInfo { lsn, path: Some(path), bytes: bytes.len() as u64, segments_released })
    }

    /// Writes the snapshot file; a full disk is reported as a disk-full
    /// condition (cleared by the probe once the snapshot fits).
    fn write_snapshot(&self, lsn: u64, bytes: &[u8]) -> Result<PathBuf, EngineError> {
        let snapshots_dir = &self.checkpoints.snapshots_dir;
        let path = match snapshot::write(snapshots_dir, lsn, bytes) {
            Ok(path) => path,
            Err(EngineError::Io { context, source }) if recwal_wal::is_out_of_space(&source) => {
                let path = snapshots_dir.join(snapshot::file_name(lsn));
                let detail = format!("{context}: {source}");
                self.disk.set(disk::Cause::Snapshot, path.clone(), detail.clone(), bytes.len() as u64, 0);
                return Err(EngineError::DiskFull { path, detail });
            }
            Err(err) => return Err(err),
        };
        self.disk.clear(disk::Cause::Snapshot, "a snapshot was written");
        self.checkpoints.lock_backoff().succeeded();
        Ok(path)
    }

    /// Keeps the newest `snapshots_kept` snapshots; returns the LSN the log
    /// must still hold from: the oldest kept one's, so a damaged newest
    /// snapshot can still fall back to it.
    fn remove_old_snapshots(&self, lsn: u64) -> Result<u64, EngineError> {
        let snapshots_dir = &self.checkpoints.snapshots_dir;
        let kept = snapshot::list(snapshots_dir)?;
        let keep = self.config.checkpoint.snapshots_kept;
        for (_, old) in kept.iter().skip(keep) {
            if let Err(err) = std::fs::remove_file(old) {
                warn!(path = %old.display(), %err, "cannot remove an old snapshot");
            }
        }
        snapshot::sync_dir(snapshots_dir)?;
        Ok(kept.iter().take(keep).map(|(lsn, _)| *lsn).min().unwrap_or(lsn))
    }

    /// Clears a disk-full condition whose space is back, without a write
    /// (a node that is not ready gets none): the log's once a segment fits
    /// (or one was started), a snapshot's once it fits. One of the
    /// checkpoint thread's jobs.
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
            if recwal_wal::available_bytes(&self.checkpoints.snapshots_dir).is_ok_and(|free| free >= needed) {
                self.disk.clear(disk::Cause::Snapshot, "the snapshot fits again");
                // Try the automatic checkpoint now, not at the end of its backoff.
                self.checkpoints.lock_backoff().retry_now();
            }
        }
    }

    fn checkpoint_due(&self) -> bool {
        // Not due while a checkpoint or a backup cut holds the lock: the
        // background thread's other jobs must not wait for a backup.
        let Ok(mark) = self.checkpoints.mark.try_lock() else { return false };
        let config = &self.config.checkpoint;
        let metrics = self.wal.metrics();
        let records = metrics.records_appended.saturating_sub(mark.records);
        let bytes = metrics.bytes_appended.saturating_sub(mark.bytes);
        records > 0
            && (config.every_records.is_some_and(|every| records >= every)
                || config.every_bytes.is_some_and(|every| bytes >= bytes_due(&self.config, every, mark.snapshot_bytes))
                || config.every.is_some_and(|every| mark.at.elapsed() >= every))
    }

    /// The automatic checkpoint: when due, not poisoned and not backing off
    /// after failures (logged once per run of failures, retried with
    /// backoff). One of the checkpoint thread's jobs.
    fn checkpoint_when_due(&self) {
        if self.poisoned.get().is_none()
            && self.checkpoints.lock_backoff().ready(Instant::now())
            && self.checkpoint_due()
        {
            if let Err(err) = self.checkpoint() {
                self.checkpoints.lock_backoff().failed(&err);
            }
        }
    }

    /// Records the log's durable end in its manifest (`Wal::record_floor`)
    /// when it moved and `FLOOR_EVERY` has passed since the last time. One
    /// of the checkpoint thread's jobs.
    fn record_floor_when_due(&self) {
        if self.poisoned.get().is_some() {
            return;
        }
        let mut floor = self.checkpoints.floor.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if self.wal.lsn_durable() <= floor.lsn || floor.at.elapsed() < FLOOR_EVERY {
            return;
        }
        floor.at = Instant::now();
        match self.wal.record_floor() {
            Ok(lsn) => {
                floor.lsn = lsn;
                floor.failing = false;
            }
            Err(err) if !floor.failing => {
                floor.failing = true;
                warn!(%err, "could not record the log's durable end in its manifest; retried every second");
            }
            Err(_) => {}
        }
    }

    /// Frees swapped-out model versions no request holds any more, here
    /// so that no request pays for tearing one down. One of the checkpoint
    /// thread's jobs.
    fn free_swapped_out_models(&self) {
        self.ranker.reap();
    }

    /// Writes the feedback cutoff (now − ttl) when one is configured and
    /// `expire_every` has passed since the last (or none was written since
    /// open). One of the checkpoint thread's jobs.
    fn expire_feedback_when_due(&self) {
        use std::sync::atomic::Ordering;
        let Some(ttl) = self.config.feedback.ttl else { return };
        if self.poisoned.get().is_some() || self.disk.current().is_some() {
            return;
        }
        let now = crate::event::now_ms();
        let last = self.feedback_expired_ms.load(Ordering::Relaxed);
        let every = self.config.feedback.expire_every.as_millis() as i64;
        if last != 0 && now - last < every {
            return;
        }
        self.feedback_expired_ms.store(now, Ordering::Relaxed);
        let before_ms = now.saturating_sub(ttl.as_millis() as i64);
        if let Err(err) = self.expire_feedback_before(before_ms) {
            tracing::warn!(error = %err, before_ms, "feedback expiry not written; retried next period");
        }
    }

    /// One round of the background thread's jobs, in this order.
    fn background_round(&self) {
        self.apply_orphans();
        self.free_swapped_out_models();
        self.probe_disk();
        self.expire_feedback_when_due();
        self.checkpoint_when_due();
        self.record_floor_when_due();
    }
}

/// One log record of a backup cut: `(lsn, kind, payload)`.
pub type BackupRecord = (u64, u8, Vec<u8>);

/// A consistent cut of the engine, for a backup: the snapshot at
/// `lsn_snapshot` and the log records after it up to `lsn_last`. While the
/// cut exists no checkpoint runs, so neither the snapshot nor those records
/// can be removed or recycled; ingest goes on (a log that fills up waits for
/// the cut to end, as it waits for a checkpoint).
pub struct BackupCut<'a> {
    /// LSN the snapshot covers (0: no record was ever applied, no snapshot).
    pub lsn_snapshot: u64,
    /// The snapshot file (`None` only where `lsn_snapshot` is 0).
    pub snapshot: Option<PathBuf>,
    /// The last record of the cut: the log's durable end when it was taken.
    pub lsn_last: u64,
    /// The directory of the model files (`models/` of the data dir). Every
    /// model a record up to `lsn_last` names is in it before its record.
    pub models_dir: PathBuf,
    reader: Option<recwal_wal::Reader>,
    _mark: MutexGuard<'a, CheckpointMark>,
}

impl BackupCut<'_> {
    /// The next record of the cut, `(lsn, kind, payload)`, in LSN order
    /// from `lsn_snapshot + 1` to `lsn_last`; `None` after `lsn_last`. Every
    /// CRC is checked on the way out.
    pub fn next_record(&mut self) -> Option<Result<BackupRecord, EngineError>> {
        let reader = self.reader.as_mut()?;
        if reader.lsn_next() > self.lsn_last {
            return None;
        }
        match reader.next() {
            Some(Ok(record)) => Some(Ok((record.lsn(), record.kind(), record.payload().to_vec()))),
            Some(Err(err)) => Some(Err(err.into())),
            None => Some(Err(EngineError::Unrecoverable(format!(
                "the log ended at LSN {} before the backup cut's end at LSN {}",
                reader.lsn_next() - 1,
                self.lsn_last
            )))),
        }
    }
}

impl super::Engine {
    /// Takes a consistent cut for a backup: writes a snapshot (unless the
    /// newest one covers the state), then hands `write` the snapshot and the
    /// durable records after it, holding the checkpoint lock until `write`
    /// returns. Restoring the snapshot and replaying the records gives the
    /// state at `lsn_last`.
    pub fn backup_cut<R>(&self, write: impl FnOnce(BackupCut<'_>) -> R) -> Result<R, EngineError> {
        let shared = &self.shared;
        let mut mark = shared.checkpoints.mark.lock().map_err(|_| shared.poison("a checkpoint panicked"))?;
        shared.checkpoint_locked(&mut mark)?;
        let lsn_snapshot = mark.lsn;
        let snapshots_dir = &shared.checkpoints.snapshots_dir;
        let snapshot =
            snapshot::list(snapshots_dir)?.into_iter().find(|(lsn, _)| *lsn == lsn_snapshot).map(|(_, path)| path);
        if lsn_snapshot > 0 && snapshot.is_none() {
            return Err(EngineError::Snapshot {
                path: snapshots_dir.join(snapshot::file_name(lsn_snapshot)),
                reason: "the newest snapshot is missing".to_string(),
            });
        }
        let lsn_last = shared.wal.sync().map_err(|err| shared.wal_failed(err))?.max(lsn_snapshot);
        let reader = if lsn_last > lsn_snapshot { Some(shared.wal.read_from(lsn_snapshot + 1)?) } else { None };
        let models_dir = snapshots_dir.parent().map_or_else(|| PathBuf::from("models"), |dir| dir.join("models"));
        Ok(write(BackupCut { lsn_snapshot, snapshot, lsn_last, models_dir, reader, _mark: mark }))
    }
}

/// Starts the background thread; it runs until the sender is dropped.
pub(super) fn start_checkpointer(shared: &Arc<Shared>) -> Result<(mpsc::Sender<()>, JoinHandle<()>), EngineError> {
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
            shared.background_round();
        })
        .map_err(|err| EngineError::io("starting the checkpoint thread", err))?;
    Ok((stop, handle))
}

#[cfg(test)]
mod tests {
    use super::bytes_due;
    use crate::config::EngineConfig;

    #[test]
    fn the_byte_trigger_scales_with_the_snapshot_up_to_half_the_ring() {
        let mut config = EngineConfig::default();
        config.wal = config.wal.segment_bytes(1 << 20).segments_initial(2).segments_max(4);
        let mib = 1u64 << 20;
        // Ratio 1 (the default): the snapshot's size, over `every_bytes`.
        assert_eq!(bytes_due(&config, mib / 4, mib / 2), mib / 2);
        assert_eq!(bytes_due(&config, mib, mib / 2), mib);
        // Never past half the 4 MiB ring, however large the snapshot.
        assert_eq!(bytes_due(&config, mib / 4, 10 * mib), 2 * mib);
        // `every_bytes` above half the ring is kept as configured.
        assert_eq!(bytes_due(&config, 3 * mib, 10 * mib), 3 * mib);
        config.checkpoint.log_per_snapshot_byte = 2.0;
        assert_eq!(bytes_due(&config, mib / 4, mib / 2), mib);
        config.checkpoint.log_per_snapshot_byte = 0.0;
        assert_eq!(bytes_due(&config, mib / 4, 10 * mib), mib / 4);
    }
}
