//! `Shared`: the state of an open log that `Wal`, its readers, its tickets
//! and the flusher thread share, and the protocols that need all of it:
//! room-making under the append lock (the ring decides, this waits), the
//! group-commit leader's write-out and sync (`SyncGroup`), the write-out's
//! watermark (`WriteSink`) and poisoning on a failed write or sync.
//!
//! Lock order: the append lock (`inner`), then the write-order lock, then
//! the manifest lock; never the other way round.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use tracing::warn;

use crate::config::{SyncPolicy, WalConfig};
use crate::error::{is_out_of_space, WalError};
use crate::format::Lsn;
use crate::group_commit::{run_flusher, FlushMsg, GroupCommit, SyncGroup, SyncedGroup};
use crate::manifest::Manifest;
use crate::metrics::Metrics;
use crate::ring::{LapStartError, Ring, RoomStep};
use crate::segment::Segment;
use crate::staging::{Staging, WriteSink};
use crate::storage::{DirLock, Storage};

/// What the append lock guards.
pub(crate) struct Inner {
    /// Live and free segments, and where the next frame goes.
    pub(crate) ring: Ring,
    /// Segments written since the last sync began.
    pub(crate) dirty: Vec<Arc<Segment>>,
    pub(crate) lsn_next: Lsn,
    /// Bytes appended with `Durability::Batch` since the last sync began.
    pub(crate) batch_bytes: u64,
    /// `Always` and `Batch` frames not yet written to their files.
    pub(crate) staged: Staging,
    /// Set at open: the first append asks the preparer for the next segment
    /// (if the ring wants one), not `open` itself, so that a caller who
    /// refuses the log it opened (the engine, on snapshots that do not
    /// match it) leaves the directory as it found it.
    pub(crate) prepare_at_first_append: bool,
}

/// What the preparer thread is told.
pub(crate) enum PrepareMsg {
    /// Check whether the ring wants a segment prepared, and prepare it.
    Prepare,
    Shutdown,
}

/// Puts `segment` on the dirty list (`Inner::dirty`) the first time it is
/// written since the last sync began. Takes the list, not `Inner`, so the
/// append path can hold the active segment borrowed from the ring meanwhile.
pub(crate) fn mark_dirty(dirty: &mut Vec<Arc<Segment>>, segment: &Arc<Segment>) {
    if !segment.dirty.swap(true, Ordering::AcqRel) {
        dirty.push(Arc::clone(segment));
    }
}

pub(crate) struct Shared {
    pub(crate) storage: Box<dyn Storage>,
    pub(crate) config: WalConfig,
    pub(crate) inner: Mutex<Inner>,
    /// Signalled when a segment may have become reusable: after a checkpoint,
    /// and after every sync (which drops the leader's hold and moves the
    /// durable watermark).
    pub(crate) space_freed: Condvar,
    /// Every record up to here is in its file (the page cache).
    pub(crate) lsn_written: AtomicU64,
    /// The last LSN handed out: staged or written.
    pub(crate) lsn_appended: AtomicU64,
    /// Held by whoever writes staged frames to the files, from taking them
    /// (under `inner`) until they are written: write-outs stay in LSN order.
    /// It keeps the emptied buffers for reuse.
    pub(crate) write_order: Mutex<Vec<Vec<u8>>>,
    /// Staged bytes beyond which an appender writes them itself.
    pub(crate) staging_limit: u64,
    /// `Always` appends between taking a number and reaching their sync: a
    /// new sync leader gives them a moment to join its group.
    pub(crate) always_appending: AtomicU64,
    /// `Always` appends (and `append_sync_later`s) staged since the last
    /// sync took its group.
    pub(crate) always_staged: AtomicU64,
    pub(crate) commit: Arc<GroupCommit>,
    pub(crate) metrics: Metrics,
    pub(crate) flusher_tx: Sender<FlushMsg>,
    /// Wakes the preparer thread (see `Shared::prepare_segment`).
    pub(crate) preparer_tx: Sender<PrepareMsg>,
    pub(crate) dir_lock: Option<Arc<DirLock>>,
    /// Serialises writes of the manifest (they share its temporary file),
    /// and holds what the file records as far as this process knows:
    /// `(segments_created, lsn_floor)`. Both only grow, so a write never
    /// records less than the last (callers read them before they queue
    /// here), and one that would record the same is skipped. Taken after
    /// the append lock where both are held, never before it.
    pub(crate) manifest_writes: Mutex<(u32, u64)>,
}

pub(crate) fn lock_inner(shared: &Shared) -> MutexGuard<'_, Inner> {
    // The lock is only poisoned if a thread panicked while holding it, which
    // means an invariant broke; continuing would risk writing a bad log.
    shared.inner.lock().expect("wal append lock poisoned: an invariant check failed while appending")
}

impl Shared {
    /// Replaces the manifest (see `manifest.rs`).
    pub(crate) fn write_manifest(&self, segments_created: u32, lsn_floor: u64) -> Result<(), WalError> {
        let mut last = self.manifest_writes.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (segments_created, lsn_floor) = (segments_created.max(last.0), lsn_floor.max(last.1));
        if (segments_created, lsn_floor) == *last {
            // The file says this already: no write, no fsync.
            return Ok(());
        }
        let manifest = Manifest { segment_bytes: self.config.segment_bytes, segments_created, lsn_floor };
        self.storage
            .write_manifest(&manifest.encode())
            .map_err(|err| WalError::io("write manifest", self.storage.describe_manifest(), err))?;
        *last = (segments_created, lsn_floor);
        Ok(())
    }

    /// The highest LSN a reader may see: durable, or written under `Never`.
    pub(crate) fn lsn_visible(&self) -> Lsn {
        match self.config.sync_policy {
            SyncPolicy::Never => self.lsn_written.load(Ordering::Acquire),
            _ => self.commit.lsn_durable(),
        }
    }

    pub(crate) fn request_sync(&self) {
        let _ = self.flusher_tx.send(FlushMsg::SyncNow);
    }

    fn describe(&self, index: u32) -> PathBuf {
        self.storage.describe(Some(index))
    }

    /// A sync, a write-out or a header write of segment `index` failed:
    /// poison the log, wherever it happened (see `GroupCommit::poison`).
    pub(crate) fn fail_io(&self, index: u32, what: &str, err: std::io::Error) -> WalError {
        let cause: Arc<str> = format!("{what} of {} failed: {err}", self.describe(index).display()).into();
        self.metrics.counters.sync_failures.fetch_add(1, Ordering::Relaxed);
        tracing::error!(cause = %cause, "wal {what} failed; the log is poisoned");
        self.commit.poison(cause)
    }

    /// Starts the flusher thread, which syncs `Batch` appends (and those
    /// whose ticket asked) for the log.
    pub(crate) fn spawn_flusher(self: &Arc<Self>, rx: Receiver<FlushMsg>) -> Result<JoinHandle<()>, WalError> {
        let (max_delay, _) = self.config.batch_params();
        let shared = Arc::clone(self);
        std::thread::Builder::new()
            .name("recwal-flusher".to_string())
            .spawn(move || {
                run_flusher(&rx, max_delay, || {
                    let target = shared.lsn_appended.load(Ordering::Acquire);
                    // An error poisons the log; every waiter sees it through `GroupCommit`.
                    let _ = shared.commit.make_durable(&*shared, target);
                })
            })
            .map_err(|err| WalError::io("start flusher thread", self.storage.describe(None), err))
    }

    /// Starts the preparer thread, which creates the ring's next segment file
    /// ahead of the append that will need it (see `prepare_segment`).
    pub(crate) fn spawn_preparer(self: &Arc<Self>, rx: Receiver<PrepareMsg>) -> Result<JoinHandle<()>, WalError> {
        let shared = Arc::clone(self);
        std::thread::Builder::new()
            .name("recwal-preparer".to_string())
            .spawn(move || {
                for msg in rx {
                    match msg {
                        PrepareMsg::Prepare => shared.prepare_segment(),
                        PrepareMsg::Shutdown => break,
                    }
                }
            })
            .map_err(|err| WalError::io("start segment preparer thread", self.storage.describe(None), err))
    }

    /// Wakes the preparer if the ring wants its next segment prepared (no
    /// free segment left, room to grow, none being prepared). Called under
    /// the append lock when a lap starts and at open; costs a comparison
    /// unless a segment is wanted.
    pub(crate) fn request_prepare(&self, inner: &Inner) {
        if inner.ring.wants_prepared(self.config.segments_max) {
            // A send fails only once the preparer is gone (the log is closing).
            let _ = self.preparer_tx.send(PrepareMsg::Prepare);
        }
    }

    /// On the preparer thread: creates (zero-fills and syncs) the ring's next
    /// segment file outside the append lock, records it in the manifest, and
    /// hands it to the ring as a free segment, where the next lap finds it.
    /// A failure (typically a full disk) is logged and leaves nothing behind;
    /// the append that needs the segment then tries to create it itself and
    /// reports what stops it.
    fn prepare_segment(&self) {
        let index = {
            let mut inner = lock_inner(self);
            if !inner.ring.wants_prepared(self.config.segments_max) || self.commit.check_poisoned().is_err() {
                return;
            }
            inner.ring.begin_prepare()
        };
        let prepared = match self.storage.create_segment(index, self.config.segment_bytes) {
            Ok(file) => {
                self.metrics.counters.segments_created.fetch_add(1, Ordering::Relaxed);
                self.metrics.counters.segments_prepared.fetch_add(1, Ordering::Relaxed);
                // The file exists whole (created, synced, renamed, directory
                // synced), so the manifest may count it before any lap uses it.
                if let Err(err) = self.write_manifest(index + 1, self.commit.lsn_durable()) {
                    warn!(%err, "could not record the prepared segment in the log's manifest");
                }
                Some(Arc::new(Segment::new(index, file, self.dir_lock.clone())))
            }
            Err(err) => {
                warn!(
                    path = %self.describe(index).display(),
                    %err,
                    "could not prepare the log's next segment; the append that needs it will try again"
                );
                None
            }
        };
        lock_inner(self).ring.end_prepare(prepared);
        self.space_freed.notify_all();
    }

    /// Waits for the preparer to finish the segment the next lap needs (the
    /// log filled a segment faster than one was zero-filled).
    fn wait_for_prepared<'a>(&'a self, inner: MutexGuard<'a, Inner>, counted: &mut bool) -> MutexGuard<'a, Inner> {
        if !*counted {
            self.metrics.counters.segment_prepare_waits.fetch_add(1, Ordering::Relaxed);
            *counted = true;
        }
        let (guard, _) = self
            .space_freed
            .wait_timeout(inner, Duration::from_millis(100))
            .expect("wal append lock poisoned: an invariant check failed while appending");
        guard
    }

    /// Makes sure the active segment has `frame` bytes free, starting a new
    /// segment (recycled, or created while the ring may grow) when it has not,
    /// and waiting up to `full_wait` for a checkpoint when neither is possible.
    /// The ring decides each step; this does the syncs and waits, which drop
    /// the append lock.
    pub(crate) fn ensure_room<'a>(
        &'a self,
        mut inner: MutexGuard<'a, Inner>,
        frame: u64,
    ) -> Result<MutexGuard<'a, Inner>, WalError> {
        let config = &self.config;
        // `None`: wait as long as it takes (a `full_wait` too long to add to now).
        let deadline = Instant::now().checked_add(config.full_wait);
        let mut counted_wait = false;
        let mut counted_prepare_wait = false;
        let mut sync_tried = false;
        loop {
            let lsn_durable = self.commit.lsn_durable();
            let step = inner.ring.room_step(frame, config.segment_bytes, config.segments_max, lsn_durable, sync_tried);
            match step {
                RoomStep::Fits => return Ok(inner),
                RoomStep::Recycle(free_idx) => {
                    self.write_out_before_lap(&mut inner)?;
                    let segment = inner.ring.take_free(free_idx);
                    if self.start_lap(&mut inner, segment)? {
                        self.metrics.counters.segments_recycled.fetch_add(1, Ordering::Relaxed);
                    }
                }
                RoomStep::SyncBeforeRecycle(lsn) => inner = self.sync_unlocked(inner, lsn)?,
                RoomStep::SyncToRelease => {
                    // A sync in flight holds what it syncs for a moment; wait it
                    // out (and make everything durable) before calling the ring full.
                    sync_tried = true;
                    let lsn = inner.lsn_next - 1;
                    inner = self.sync_unlocked(inner, lsn)?;
                }
                RoomStep::AwaitPrepared => inner = self.wait_for_prepared(inner, &mut counted_prepare_wait),
                RoomStep::Grow => {
                    self.write_out_before_lap(&mut inner)?;
                    self.grow_ring(&mut inner)?;
                }
                RoomStep::Full => inner = self.wait_for_space(inner, deadline, &mut counted_wait)?,
            }
        }
    }

    /// Every record before a new lap reaches its file before the lap starts
    /// (staged ones written out, one in flight waited for): the lap's header
    /// is synced right away, and a process killed between the two would
    /// otherwise leave a started segment behind a hole of records that were
    /// never written, which recovery must report as a torn tail (and
    /// `AbsoluteConsistency` refuses). So the written part of the log stays
    /// a prefix across segments too. Once per segment; done before the
    /// segment is taken from the free list (or created), so a failed write
    /// (which poisons the log) leaves the ring as it was.
    fn write_out_before_lap(&self, inner: &mut Inner) -> Result<(), WalError> {
        if inner.staged.must_write_before(self.lsn_written.load(Ordering::Acquire)) {
            inner.staged.begin_write(&self.write_order).finish(self)?;
        }
        Ok(())
    }

    /// Makes `lsn` durable with the append lock released, then takes it again.
    fn sync_unlocked<'a>(&'a self, inner: MutexGuard<'a, Inner>, lsn: Lsn) -> Result<MutexGuard<'a, Inner>, WalError> {
        drop(inner);
        self.commit.make_durable(self, lsn)?;
        Ok(lock_inner(self))
    }

    /// Waits (up to the deadline) for a checkpoint or a sync to free a
    /// segment; `Full` once the deadline has passed.
    fn wait_for_space<'a>(
        &'a self,
        inner: MutexGuard<'a, Inner>,
        deadline: Option<Instant>,
        counted_wait: &mut bool,
    ) -> Result<MutexGuard<'a, Inner>, WalError> {
        let now = Instant::now();
        let remaining = match deadline {
            Some(deadline) if now >= deadline => {
                self.metrics.counters.full_errors.fetch_add(1, Ordering::Relaxed);
                return Err(WalError::Full { waited: self.config.full_wait });
            }
            Some(deadline) => deadline - now,
            None => Duration::from_secs(3600),
        };
        if !*counted_wait {
            self.metrics.counters.full_waits.fetch_add(1, Ordering::Relaxed);
            *counted_wait = true;
        }
        let (guard, _) = self
            .space_freed
            .wait_timeout(inner, remaining)
            .expect("wal append lock poisoned: an invariant check failed while appending");
        Ok(guard)
    }

    /// Creates a new segment file and starts its first lap.
    fn grow_ring(&self, inner: &mut Inner) -> Result<(), WalError> {
        let index = inner.ring.segments_created();
        let path = self.describe(index);
        // Nothing was written and nothing is lost: a refusal, not a poison.
        let file = self
            .storage
            .create_segment(index, self.config.segment_bytes)
            .map_err(|source| WalError::SegmentStart { op: "create segment", path, source })?;
        let grown = inner.ring.grow();
        assert!(grown == index, "the ring grows by the index it announced");
        self.metrics.counters.segments_created.fetch_add(1, Ordering::Relaxed);
        let lsn_durable = self.commit.lsn_durable();
        if let Err(err) = self.write_manifest(inner.ring.segments_created(), lsn_durable) {
            warn!(%err, "could not record the new segment in the log's manifest");
        }
        let segment = Arc::new(Segment::new(index, file, self.dir_lock.clone()));
        self.start_lap(inner, segment)?;
        Ok(())
    }

    /// Starts a new lap of `segment` (see `Ring::start_lap`). Returns whether
    /// the segment had held an earlier lap.
    fn start_lap(&self, inner: &mut Inner, segment: Arc<Segment>) -> Result<bool, WalError> {
        let index = segment.index;
        let lsn_durable = self.commit.lsn_durable();
        match inner.ring.start_lap(segment, inner.lsn_next, lsn_durable, self.config.segment_bytes) {
            Ok(had_lap) => {
                self.request_prepare(inner);
                Ok(had_lap)
            }
            Err(LapStartError::Read(err)) => Err(WalError::io("read segment header", self.describe(index), err)),
            // A copy-on-write file system can refuse even an overwrite for lack
            // of space; then nothing was written and the old lap is intact.
            Err(LapStartError::Write(err)) if is_out_of_space(&err) => {
                Err(WalError::SegmentStart { op: "write new lap header", path: self.describe(index), source: err })
            }
            Err(LapStartError::Write(err)) => Err(self.fail_io(index, "start (header write)", err)),
            Err(LapStartError::Sync(err)) => Err(self.fail_io(index, "start (header sync)", err)),
        }
    }
}

impl SyncGroup for Shared {
    fn joiners_pending(&self, expected: u64) -> bool {
        self.always_appending.load(Ordering::Acquire) > 0 || self.always_staged.load(Ordering::Acquire) < expected
    }

    fn write_and_sync(&self) -> Result<SyncedGroup, WalError> {
        let (lsn_last, dirty, write_out, always_appends) = {
            let mut inner = lock_inner(self);
            inner.batch_bytes = 0;
            let dirty = std::mem::take(&mut inner.dirty);
            for segment in &dirty {
                // Cleared before the sync: a write racing with it sets the flag
                // again and queues the segment for the next sync.
                segment.dirty.store(false, Ordering::Release);
            }
            let write_out = inner.staged.begin_write(&self.write_order);
            let always_appends = self.always_staged.swap(0, Ordering::AcqRel);
            (inner.lsn_next - 1, dirty, write_out, always_appends)
        };
        let started = Instant::now();
        // Outside the append lock: appends go on staging the next group.
        write_out.finish(self)?;
        // Earlier write-outs finished before this one could take the write
        // order, and `Never` frames are written at append: the group is in the files.
        assert!(lsn_last <= self.lsn_written.load(Ordering::Acquire), "a sync covers only written records");
        for segment in &dirty {
            if let Err(err) = segment.file.sync_data() {
                return Err(self.fail_io(segment.index, "sync", err));
            }
        }
        Ok(SyncedGroup { lsn_last, always_appends, started })
    }

    fn after_sync(&self, lsn_previous: Lsn, group: &SyncedGroup) {
        // Appends waiting for space may now reuse a segment this sync held or
        // made durable.
        self.space_freed.notify_all();
        let metrics = &self.metrics;
        metrics.counters.syncs.fetch_add(1, Ordering::Relaxed);
        metrics.sync_latency_us.record(group.started.elapsed().as_micros() as u64);
        metrics.group_records.record(group.lsn_last.saturating_sub(lsn_previous));
    }
}

impl WriteSink for Shared {
    fn check_poisoned(&self) -> Result<(), WalError> {
        self.commit.check_poisoned()
    }

    fn fail_write(&self, segment_index: u32, err: std::io::Error) -> WalError {
        self.fail_io(segment_index, "write", err)
    }

    fn mark_written(&self, lsn_first: Lsn, lsn_last: Lsn) {
        assert!(lsn_first <= lsn_last, "a write-out holds at least one record");
        assert!(lsn_last <= self.lsn_appended.load(Ordering::Acquire), "lsn_written never passes lsn_appended");
        let lsn_previous = self.lsn_written.fetch_max(lsn_last, Ordering::AcqRel);
        // The write-order lock, taken before the append lock is released,
        // keeps write-outs in LSN order: each continues the written prefix.
        assert!(lsn_previous < lsn_first, "write-outs happen in LSN order");
        debug_assert_eq!(lsn_previous + 1, lsn_first, "lsn_written names a prefix that is in the files");
    }
}
