//! `Wal`: the append path, the ring of segments, checkpoints and opening.
//!
//! Concurrency, in one paragraph: appends serialise on `Shared::inner` just
//! long enough to take an LSN, find room and copy the frame into memory
//! (`Always`/`Batch`: the staging buffer; `Never`: the page cache through the
//! map); nothing slow happens under that lock except starting a segment
//! (one header sync per segment lap). Write-outs of staged frames and syncs
//! happen outside it, in `GroupCommit`, one leader at a time, for every
//! appender waiting.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_channel::Sender;
use tracing::{info, info_span, warn};

use crate::config::{Durability, RecoveryMode, SyncPolicy, WalConfig};
use crate::error::WalError;
use crate::format::{
    frame_bytes, RecordHeader, SegmentHeader, SegmentState, RECORD_HEADER_BYTES, SEGMENT_HEADER_BYTES,
};
use crate::group_commit::{run_flusher, FlushMsg, GroupCommit};
use crate::manifest::Manifest;
use crate::metrics::{Metrics, WalMetrics};
use crate::recovery::{
    check_floor, open_segments, read_header, scan, FileRepair, FoundFiles, OpenedSegment, RecoveryReport,
};
use crate::staging::Staging;
use crate::storage::{DirLock, FileStorage, SegmentFile, Storage, WritePath};
use crate::ticket::AppendTicket;

/// A log sequence number: dense, strictly increasing, starting at 1.
///
/// ```
/// use recwal_wal::{Lsn, SyncPolicy, Wal, WalConfig};
/// let dir = tempfile::tempdir()?;
/// let wal = Wal::open(dir.path(), WalConfig::default().segment_bytes(1 << 20).sync_policy(SyncPolicy::Never))?;
/// let first: Lsn = wal.append(1, b"a")?.lsn();
/// let second: Lsn = wal.append(1, b"b")?.lsn();
/// assert_eq!((first, second), (1, 2)); // dense, from 1
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub type Lsn = u64;

/// One segment file and whether it has writes no sync has covered yet.
pub(crate) struct Segment {
    pub(crate) index: u32,
    pub(crate) file: Box<dyn SegmentFile>,
    pub(crate) dirty: AtomicBool,
    /// The directory lock, held for as long as anything (a `Record`, a
    /// `Reader`) can still read this segment's map: another `Wal` on the same
    /// directory could otherwise recycle the bytes under it.
    _dir_lock: Option<Arc<DirLock>>,
}

#[cfg(test)]
impl Segment {
    pub(crate) fn for_test(index: u32, file: Box<dyn SegmentFile>) -> Self {
        Segment { index, file, dirty: AtomicBool::new(false), _dir_lock: None }
    }
}

/// A segment in the log, with the identity of its current lap.
#[derive(Clone)]
pub(crate) struct LiveSegment {
    pub(crate) segment: Arc<Segment>,
    pub(crate) seq: u64,
    pub(crate) first_lsn: Lsn,
}

/// A released segment and the last LSN its lap held (0 if it held none).
pub(crate) struct FreeSegment {
    segment: Arc<Segment>,
    lsn_last: Lsn,
}

pub(crate) struct Inner {
    /// Segments holding retained records, oldest first; the last is active.
    pub(crate) live: VecDeque<LiveSegment>,
    /// Where the next frame goes in the active segment.
    write_offset: u64,
    /// Segments ready for a new lap. One is reused only when nothing else
    /// (a reader, a sync in flight) holds it, and only once its records are
    /// durable (see `ensure_room`).
    free: Vec<FreeSegment>,
    /// Segments written since the last sync began.
    pub(crate) dirty: Vec<Arc<Segment>>,
    pub(crate) next_lsn: Lsn,
    next_seq: u64,
    released_lsn: Lsn,
    segments_total: u32,
    next_index: u32,
    /// Bytes appended with `Durability::Batch` since the last sync began.
    pub(crate) batch_bytes: u64,
    /// `Always` and `Batch` frames not yet written to their files.
    pub(crate) staged: Staging,
}

impl Inner {
    fn mark_dirty(&mut self, segment: &Arc<Segment>) {
        if !segment.dirty.swap(true, Ordering::AcqRel) {
            self.dirty.push(Arc::clone(segment));
        }
    }
}

pub(crate) struct Shared {
    pub(crate) storage: Box<dyn Storage>,
    pub(crate) config: WalConfig,
    pub(crate) inner: Mutex<Inner>,
    /// Signalled when a segment may have become reusable: after a checkpoint,
    /// and after every sync (which drops the leader's hold and moves the
    /// durable watermark).
    pub(crate) space_freed: std::sync::Condvar,
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
    flusher_tx: Sender<FlushMsg>,
    dir_lock: Option<Arc<DirLock>>,
    /// Serialises writes of the manifest (they share its temporary file).
    /// Taken after the append lock where both are held, never before it.
    manifest_writes: Mutex<()>,
}

pub(crate) fn lock_inner(shared: &Shared) -> MutexGuard<'_, Inner> {
    // The lock is only poisoned if a thread panicked while holding it, which
    // means an invariant broke; continuing would risk writing a bad log.
    shared.inner.lock().expect("wal append lock poisoned: an invariant check failed while appending")
}

impl Shared {
    /// Replaces the manifest (see `manifest.rs`).
    fn write_manifest(&self, segments_created: u32, lsn_floor: u64) -> Result<(), WalError> {
        let _serial = self.manifest_writes.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let manifest = Manifest { segment_bytes: self.config.segment_bytes, segments_created, lsn_floor };
        self.storage
            .write_manifest(&manifest.encode())
            .map_err(|err| WalError::io("write manifest", self.storage.describe_manifest(), err))
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
}

/// The write-ahead log. `Send + Sync`: share it with an `Arc`.
///
/// ```
/// use recwal_wal::{Wal, WalConfig, SyncPolicy};
/// let dir = tempfile::tempdir()?;
/// let config = WalConfig::default().segment_bytes(1 << 20).sync_policy(SyncPolicy::Always);
/// let wal = Wal::open(dir.path(), config)?;
/// let ticket = wal.append(1, b"hello")?;
/// assert_eq!(ticket.lsn(), 1);
/// let records: Vec<_> = wal.read_from(1)?.collect::<Result<_, _>>()?;
/// assert_eq!(records[0].payload(), b"hello");
/// wal.close()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Wal {
    shared: Arc<Shared>,
    flusher: Option<JoinHandle<()>>,
    report: RecoveryReport,
}

impl Wal {
    /// Opens (creating if needed) the log in directory `dir`, recovering it.
    ///
    /// ```
    /// use recwal_wal::{Wal, WalConfig};
    /// let dir = tempfile::tempdir()?;
    /// let wal = Wal::open(dir.path(), WalConfig::default().segment_bytes(1 << 20))?;
    /// assert!(wal.recovery_report().is_clean());
    /// assert!(matches!(Wal::open(dir.path(), WalConfig::default().segment_bytes(1 << 20)), Err(recwal_wal::WalError::Locked { .. })));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open(dir: &Path, config: WalConfig) -> Result<Wal, WalError> {
        config.validate()?;
        let storage = FileStorage::open(dir)?;
        let lock = Arc::new(DirLock::acquire(dir)?);
        storage.remove_stale_temp_files();
        Wal::open_inner(Box::new(storage), config, Some(lock))
    }

    /// Opens the log on any `Storage`: the simulated disk in tests, or a
    /// storage of your own (it must keep the promises in `Storage`'s docs).
    ///
    /// ```
    /// use recwal_wal::sim::SimStorage;
    /// use recwal_wal::{SyncPolicy, Wal, WalConfig};
    /// let disk = SimStorage::new(42);
    /// let config = WalConfig::default().segment_bytes(4096).sync_policy(SyncPolicy::Always);
    /// let wal = Wal::open_with_storage(Box::new(disk.clone()), config.clone())?;
    /// wal.append(1, b"survives")?;
    /// wal.append_with(1, b"may not", recwal_wal::Durability::Never)?;
    /// drop(wal);
    /// disk.crash(); // power loss: unsynced sectors are kept or dropped at random
    /// let wal = Wal::open_with_storage(Box::new(disk), config)?;
    /// assert!(wal.recovery_report().last_lsn >= 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open_with_storage(storage: Box<dyn Storage>, config: WalConfig) -> Result<Wal, WalError> {
        Wal::open_inner(storage, config, None)
    }

    fn open_inner(
        storage: Box<dyn Storage>,
        config: WalConfig,
        dir_lock: Option<Arc<DirLock>>,
    ) -> Result<Wal, WalError> {
        config.validate()?;
        let span = info_span!("wal.open", segment_bytes = config.segment_bytes);
        let _entered = span.enter();
        let started = Instant::now();
        let metrics = Metrics::new();

        let repair = match config.recovery_mode {
            RecoveryMode::PointInTime => FileRepair::Restore,
            _ => FileRepair::Refuse,
        };
        let FoundFiles { manifest, mut opened, missing, short } =
            open_segments(storage.as_ref(), config.segment_bytes, repair)?;
        if opened.is_empty() {
            // Never initialised: no manifest and no segment file (a manifest
            // with no segment left is refused by `open_segments`).
            debug_assert!(manifest.is_none());
            for index in 0..config.segments_initial {
                let path = storage.describe(Some(index));
                let file = storage
                    .create_segment(index, config.segment_bytes)
                    .map_err(|err| WalError::io("create segment", &path, err))?;
                metrics.counters.segments_created.fetch_add(1, Ordering::Relaxed);
                opened.push(OpenedSegment { index, file, header: Err(crate::format::HeaderDefect::Zeroed) });
            }
            // From here on, a missing or zeroed first segment is damage, not a new log.
            let created = Manifest {
                segment_bytes: config.segment_bytes,
                segments_created: config.segments_initial,
                lsn_floor: 0,
            };
            storage
                .write_manifest(&created.encode())
                .map_err(|err| WalError::io("write manifest", storage.describe_manifest(), err))?;
        }

        let describe = |index: u32| storage.describe(Some(index));
        let plan = scan(
            &opened,
            config.segment_bytes,
            config.record_bytes_readable(),
            config.recovery_mode,
            &describe,
            &mut |_, _| {},
        )?;
        let mut report = plan.report.clone();
        report.segments_extended = short;
        report.segments_missing = missing;
        check_floor(manifest, storage.as_ref(), &opened, &plan, config.recovery_mode, &mut report)?;

        // Apply the plan: cut the torn tail, retire segments beyond it, and make
        // the recovered log durable before anything new claims to follow it.
        let mut touched: Vec<usize> = plan.chain.iter().map(|link| link.slot).collect();
        if let Some((slot, from, to)) = plan.zero_range {
            let zeros = vec![0u8; (to - from) as usize];
            let segment = &opened[slot];
            segment
                .file
                .write_at(from, &zeros, WritePath::Syscall)
                .map_err(|err| WalError::io("cut torn tail", describe(segment.index), err))?;
            touched.push(slot);
        }
        for &slot in &plan.invalidate {
            let segment = &opened[slot];
            if let Ok(header) = segment.header {
                let retired = SegmentHeader { state: SegmentState::Free, ..header };
                segment
                    .file
                    .write_at(0, &retired.encode(), WritePath::Syscall)
                    .map_err(|err| WalError::io("retire segment", describe(segment.index), err))?;
                touched.push(slot);
            }
        }
        let mut next_seq = plan.next_seq;
        for &slot in &plan.retire_damaged {
            let segment = &opened[slot];
            let retired = SegmentHeader {
                state: SegmentState::Free,
                seq: next_seq,
                first_lsn: 0,
                released_lsn: plan.released_lsn.min(plan.next_lsn - 1),
                segment_bytes: config.segment_bytes,
            };
            next_seq += 1;
            segment
                .file
                .write_at(0, &retired.encode(), WritePath::Syscall)
                .map_err(|err| WalError::io("retire damaged segment", describe(segment.index), err))?;
            touched.push(slot);
        }
        touched.sort_unstable();
        touched.dedup();
        for slot in touched {
            let segment = &opened[slot];
            segment.file.sync_data().map_err(|err| WalError::io("sync segment", describe(segment.index), err))?;
        }

        let segments_total = opened.len() as u32;
        let next_index = opened.iter().map(|segment| segment.index + 1).max().unwrap_or(0);
        // Record the segment files this log has. The floor is not raised to
        // what was recovered: after a failed sync the page cache may still
        // show records that never reached the disk (FORMAT.md, assumption 4),
        // and a floor must only ever name LSNs this process saw synced.
        let lsn_floor = manifest.map_or(0, |manifest| manifest.lsn_floor).min(plan.next_lsn - 1);
        write_manifest_or_warn(storage.as_ref(), config.segment_bytes, next_index, lsn_floor);
        let mut segments: Vec<Option<Arc<Segment>>> = opened
            .into_iter()
            .map(|opened| {
                Some(Arc::new(Segment {
                    index: opened.index,
                    file: opened.file,
                    dirty: AtomicBool::new(false),
                    _dir_lock: dir_lock.clone(),
                }))
            })
            .collect();
        let mut live = VecDeque::new();
        for link in &plan.chain {
            if let Some(segment) = segments[link.slot].take() {
                live.push_back(LiveSegment { segment, seq: link.seq, first_lsn: link.first_lsn });
            }
        }
        let free: Vec<FreeSegment> =
            segments.into_iter().flatten().map(|segment| FreeSegment { segment, lsn_last: 0 }).collect();
        debug_assert_eq!(live.len(), plan.chain.len());
        // After a cut, new records go to a fresh segment: whatever damage was
        // not zeroed stays behind the end of a sealed segment, where recovery
        // never reads it as the continuation of the log.
        let write_offset = match plan.chain.last() {
            Some(_) if plan.seal_tail => config.segment_bytes,
            Some(link) => link.end_offset,
            None => SEGMENT_HEADER_BYTES,
        };
        let lsn_last = plan.next_lsn - 1;

        let (flusher_tx, flusher_rx) = crossbeam_channel::unbounded();
        let shared = Arc::new(Shared {
            storage,
            inner: Mutex::new(Inner {
                live,
                write_offset,
                free,
                dirty: Vec::new(),
                next_lsn: plan.next_lsn,
                next_seq,
                // Never beyond the recovered log: a header written later must not
                // claim records released that this log does not have.
                released_lsn: plan.released_lsn.min(plan.next_lsn - 1),
                segments_total,
                next_index,
                batch_bytes: 0,
                staged: Staging::new(staging_capacity(&config)),
            }),
            space_freed: std::sync::Condvar::new(),
            lsn_written: AtomicU64::new(lsn_last),
            lsn_appended: AtomicU64::new(lsn_last),
            write_order: Mutex::new(Vec::new()),
            staging_limit: staging_limit(&config),
            always_appending: AtomicU64::new(0),
            always_staged: AtomicU64::new(0),
            commit: Arc::new(GroupCommit::new(lsn_last)),
            metrics,
            flusher_tx,
            dir_lock,
            manifest_writes: Mutex::new(()),
            config,
        });
        let (max_delay, _) = shared.config.batch_params();
        let flusher_shared = Arc::clone(&shared);
        let flusher = std::thread::Builder::new()
            .name("recwal-flusher".to_string())
            .spawn(move || run_flusher(&flusher_shared, &flusher_rx, max_delay))
            .map_err(|err| WalError::io("start flusher thread", shared.storage.describe(None), err))?;

        if report.is_clean() {
            info!(
                segments = report.segments_scanned,
                records = report.records_recovered,
                last_lsn = report.last_lsn,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "wal recovered"
            );
        } else {
            warn!(
                segments = report.segments_scanned,
                records = report.records_recovered,
                last_lsn = report.last_lsn,
                bytes_cut = report.bytes_cut,
                records_dropped = report.records_dropped,
                tail_damage = ?report.tail_damage,
                corruption = ?report.corruption,
                "wal recovered with repairs"
            );
        }
        Ok(Wal { shared, flusher: Some(flusher), report })
    }

    /// What recovery found when this log was opened: records recovered, the
    /// LSN range, and anything cut or reported.
    ///
    /// ```
    /// use recwal_wal::{Wal, WalConfig};
    /// let dir = tempfile::tempdir()?;
    /// let wal = Wal::open(dir.path(), WalConfig::default().segment_bytes(1 << 20))?;
    /// let report = wal.recovery_report();
    /// assert!(report.is_clean());
    /// assert_eq!((report.records_recovered, report.last_lsn), (0, 0));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// ```
    /// use recwal_wal::{SyncPolicy, Wal, WalConfig};
    /// let dir = tempfile::tempdir()?;
    /// let config = WalConfig::default().segment_bytes(1 << 20).sync_policy(SyncPolicy::Always);
    /// Wal::open(dir.path(), config.clone())?.append(1, b"a")?;
    /// let report = Wal::open(dir.path(), config)?.recovery_report().clone();
    /// assert_eq!((report.records_recovered, report.last_lsn, report.bytes_cut), (1, 1, 0));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.report
    }

    /// The configuration the log was opened with.
    ///
    /// ```
    /// use recwal_wal::{SyncPolicy, Wal, WalConfig};
    /// let dir = tempfile::tempdir()?;
    /// let wal = Wal::open(dir.path(), WalConfig::default().segment_bytes(1 << 20).sync_policy(SyncPolicy::Never))?;
    /// assert_eq!((wal.config().segment_bytes, wal.config().sync_policy), (1 << 20, SyncPolicy::Never));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn config(&self) -> &WalConfig {
        &self.shared.config
    }

    /// Appends a record with the log's default durability. Returns once the
    /// record is written (and, under `Always`, synced).
    ///
    /// ```
    /// use recwal_wal::{SyncPolicy, Wal, WalConfig};
    /// let dir = tempfile::tempdir()?;
    /// let wal = Wal::open(dir.path(), WalConfig::default().segment_bytes(1 << 20).sync_policy(SyncPolicy::Always))?;
    /// let ticket = wal.append(3, b"payload")?;
    /// assert_eq!(ticket.lsn(), 1);
    /// assert!(ticket.is_durable()); // Always: synced before `append` returned
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn append(&self, kind: u8, payload: &[u8]) -> Result<AppendTicket, WalError> {
        self.append_with(kind, payload, self.shared.config.default_durability())
    }

    /// Appends a record with the given durability.
    ///
    /// ```
    /// use recwal_wal::{Durability, SyncPolicy, Wal, WalConfig};
    /// let dir = tempfile::tempdir()?;
    /// let wal = Wal::open(dir.path(), WalConfig::default().segment_bytes(1 << 20).sync_policy(SyncPolicy::Never))?;
    /// let lazy = wal.append_with(1, b"later", Durability::Never)?;
    /// assert!(!lazy.is_durable());
    /// let urgent = wal.append_with(1, b"now", Durability::Always)?;
    /// assert!(urgent.is_durable() && lazy.is_durable()); // one sync covers the prefix
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn append_with(&self, kind: u8, payload: &[u8], durability: Durability) -> Result<AppendTicket, WalError> {
        self.append_inner(kind, payload, durability, true)
    }

    /// Writes the record as an `Always` append does (by system call, which
    /// syncs faster than pages written through the map) but returns before
    /// the sync: the ticket's `wait` or `wait_async` makes it durable,
    /// sharing one sync with every concurrent waiter. For callers that
    /// append under a lock of their own and must not sync while holding it.
    ///
    /// ```
    /// use recwal_wal::{SyncPolicy, Wal, WalConfig};
    /// let dir = tempfile::tempdir()?;
    /// let wal = Wal::open(dir.path(), WalConfig::default().segment_bytes(1 << 20).sync_policy(SyncPolicy::Never))?;
    /// let ticket = wal.append_sync_later(1, b"event")?;
    /// assert!(!ticket.is_durable());
    /// assert_eq!(ticket.wait()?, 1);
    /// assert!(ticket.is_durable());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn append_sync_later(&self, kind: u8, payload: &[u8]) -> Result<AppendTicket, WalError> {
        self.append_inner(kind, payload, Durability::Always, false)
    }

    fn append_inner(
        &self,
        kind: u8,
        payload: &[u8],
        durability: Durability,
        sync_now: bool,
    ) -> Result<AppendTicket, WalError> {
        let shared = &*self.shared;
        if payload.len() > shared.config.record_bytes_max as usize {
            return Err(WalError::RecordTooLarge { len: payload.len(), max: shared.config.record_bytes_max });
        }
        shared.commit.check_poisoned()?;
        let frame = frame_bytes(payload.len() as u64);
        let joining = JoiningGroup::new(shared, durability == Durability::Always);
        let (lsn, batch_msg, eager_write) = {
            let mut inner = self.ensure_room(lock_inner(shared), frame)?;
            // Checked again under the lock: a sync may have failed while we waited.
            shared.commit.check_poisoned()?;
            let lsn = inner.next_lsn;
            let Some(active) = inner.live.back().cloned() else {
                unreachable!("ensure_room leaves an active segment");
            };
            let header = RecordHeader::new(active.seq, lsn, shared.commit.lsn_durable(), kind, payload);
            let offset = inner.write_offset;
            let mut eager_write = None;
            match durability {
                Durability::Always | Durability::Batch => {
                    inner.staged.push(&active.segment, offset, frame, (&header.encode(), payload), lsn);
                    if durability == Durability::Always {
                        shared.always_staged.fetch_add(1, Ordering::Relaxed);
                    }
                    if durability == Durability::Always && sync_now {
                        // Written now, outside the lock, while the sync in progress
                        // (if any) runs: the next leader then only syncs.
                        eager_write = inner.staged.try_begin_write(&shared.write_order);
                    } else if inner.staged.bytes() >= shared.staging_limit {
                        // The syncs fell behind (a slow disk): write what is staged
                        // now, without a sync, so memory stays bounded and the
                        // kernel's write-back throttling reaches the appenders.
                        eager_write = Some(inner.staged.begin_write(&shared.write_order));
                        shared.metrics.counters.staging_overflows.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Durability::Never => {
                    // Straight into the page cache, behind everything before it:
                    // staged frames are written first, and a write-out in flight
                    // (it holds the write order) is waited for.
                    if inner.staged.must_write_before(shared.lsn_written.load(Ordering::Acquire)) {
                        inner.staged.begin_write(&shared.write_order).finish(shared)?;
                    }
                    active
                        .segment
                        .file
                        .write_at(offset, &header.encode(), WritePath::Map)
                        .and_then(|()| {
                            active.segment.file.write_at(offset + RECORD_HEADER_BYTES, payload, WritePath::Map)
                        })
                        .map_err(|err| {
                            WalError::io("append", shared.storage.describe(Some(active.segment.index)), err)
                        })?;
                    shared.lsn_written.store(lsn, Ordering::Release);
                }
            }
            inner.mark_dirty(&active.segment);
            inner.write_offset = offset + frame;
            inner.next_lsn = lsn + 1;
            shared.lsn_appended.store(lsn, Ordering::Release);
            let mut batch_msg = None;
            // `Batch` frames are the flusher's: within `max_delay`, or sooner
            // once `max_bytes` are waiting. (`append_sync_later` frames wait for
            // their ticket, or the next sync of any kind; counting them here
            // would keep later `Batch` appends from starting the clock.)
            if durability == Durability::Batch {
                let (_, max_bytes) = shared.config.batch_params();
                let before = inner.batch_bytes;
                inner.batch_bytes += frame;
                if before == 0 {
                    batch_msg = Some(FlushMsg::BatchStarted);
                }
                if before < max_bytes && inner.batch_bytes >= max_bytes {
                    batch_msg = Some(FlushMsg::BatchFull);
                }
            }
            (lsn, batch_msg, eager_write)
        };
        if let Some(write_out) = eager_write {
            write_out.finish(shared)?;
        }
        let counters = &shared.metrics.counters;
        counters.records_appended.fetch_add(1, Ordering::Relaxed);
        counters.bytes_appended.fetch_add(frame, Ordering::Relaxed);

        drop(joining);
        match durability {
            Durability::Always => {
                if sync_now {
                    shared.commit.make_durable(shared, lsn)?;
                }
                Ok(AppendTicket::new(&self.shared, lsn, durability))
            }
            Durability::Batch => {
                if let Some(msg) = batch_msg {
                    // A send fails only if the flusher is gone, which happens
                    // only in `close`/`drop`; the ticket's wait then reports it.
                    let _ = shared.flusher_tx.send(msg);
                }
                Ok(AppendTicket::new(&self.shared, lsn, durability))
            }
            Durability::Never => Ok(AppendTicket::new(&self.shared, lsn, durability)),
        }
    }

    /// Makes sure the active segment has `frame` bytes free, starting a new
    /// segment (recycled, or created while the ring may grow) when it has not,
    /// and waiting up to `full_wait` for a checkpoint when neither is possible.
    fn ensure_room<'a>(
        &'a self,
        mut inner: MutexGuard<'a, Inner>,
        frame: u64,
    ) -> Result<MutexGuard<'a, Inner>, WalError> {
        let shared = &*self.shared;
        let config = &shared.config;
        // `None`: wait as long as it takes (a `full_wait` too long to add to now).
        let deadline = Instant::now().checked_add(config.full_wait);
        let mut counted_wait = false;
        let mut waited_for_sync = false;
        loop {
            if !inner.live.is_empty() && inner.write_offset + frame <= config.segment_bytes {
                return Ok(inner);
            }
            if let Some(free_idx) = inner.free.iter().position(|free| is_unshared(&free.segment)) {
                let lsn_last = inner.free[free_idx].lsn_last;
                if lsn_last > shared.commit.lsn_durable() {
                    // Released but not yet durable: a new lap must not overwrite
                    // records the disk has never seen before the release is
                    // recorded durably (in the new lap's header). Sync first,
                    // outside the append lock, then look again.
                    drop(inner);
                    shared.commit.make_durable(shared, lsn_last)?;
                    inner = lock_inner(shared);
                    continue;
                }
                let segment = inner.free.remove(free_idx).segment;
                let recycled = start_segment(shared, &mut inner, segment)?;
                if recycled {
                    shared.metrics.counters.segments_recycled.fetch_add(1, Ordering::Relaxed);
                }
                continue;
            }
            if !inner.free.is_empty() && !waited_for_sync {
                // Released segments exist but something holds them. A sync in
                // flight holds what it syncs for a moment; wait it out (and make
                // everything durable) before calling the ring full.
                waited_for_sync = true;
                let lsn = inner.next_lsn - 1;
                drop(inner);
                shared.commit.make_durable(shared, lsn)?;
                inner = lock_inner(shared);
                continue;
            }
            if inner.segments_total < config.segments_max {
                let index = inner.next_index;
                let path = shared.storage.describe(Some(index));
                // Nothing was written and nothing is lost: a refusal, not a poison.
                let file = shared
                    .storage
                    .create_segment(index, config.segment_bytes)
                    .map_err(|source| WalError::SegmentStart { op: "create segment", path, source })?;
                inner.next_index += 1;
                inner.segments_total += 1;
                shared.metrics.counters.segments_created.fetch_add(1, Ordering::Relaxed);
                let lsn_durable = shared.commit.lsn_durable();
                if let Err(err) = shared.write_manifest(inner.next_index, lsn_durable) {
                    warn!(%err, "could not record the new segment in the log's manifest");
                }
                let segment = Arc::new(Segment {
                    index,
                    file,
                    dirty: AtomicBool::new(false),
                    _dir_lock: shared.dir_lock.clone(),
                });
                start_segment(shared, &mut inner, segment)?;
                continue;
            }
            let now = Instant::now();
            let remaining = match deadline {
                Some(deadline) if now >= deadline => {
                    shared.metrics.counters.full_errors.fetch_add(1, Ordering::Relaxed);
                    return Err(WalError::Full { waited: config.full_wait });
                }
                Some(deadline) => deadline - now,
                None => std::time::Duration::from_secs(3600),
            };
            if !counted_wait {
                shared.metrics.counters.full_waits.fetch_add(1, Ordering::Relaxed);
                counted_wait = true;
            }
            let (guard, _) = shared
                .space_freed
                .wait_timeout(inner, remaining)
                .expect("wal append lock poisoned: an invariant check failed while appending");
            inner = guard;
        }
    }

    /// Releases every record up to and including `lsn`: segments holding only
    /// such records return to the ring for reuse (a segment whose records are
    /// not yet durable is synced before its first reuse). Returns how many segments
    /// were released. Releasing is not itself durable: until the next
    /// segment starts, a restart may retain (never lose) released records.
    ///
    /// ```
    /// use recwal_wal::{SyncPolicy, Wal, WalConfig};
    /// let dir = tempfile::tempdir()?;
    /// let config = WalConfig::default().segment_bytes(4096).sync_policy(SyncPolicy::Never);
    /// let wal = Wal::open(dir.path(), config)?;
    /// for _ in 0..100 {
    ///     wal.append(0, &[0u8; 100])?;
    /// }
    /// // Everything up to 90 is in a snapshot elsewhere: let the ring reuse it.
    /// let released = wal.checkpoint(90)?;
    /// assert!(released >= 1);
    /// assert!(wal.lsn_first() <= 91);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn checkpoint(&self, lsn: Lsn) -> Result<u32, WalError> {
        let shared = &*self.shared;
        let span = info_span!("wal.checkpoint", lsn);
        let _entered = span.enter();
        let mut inner = lock_inner(shared);
        let lsn = lsn.min(inner.next_lsn - 1);
        if lsn <= inner.released_lsn {
            return Ok(0);
        }
        inner.released_lsn = lsn;
        let mut released = 0;
        while inner.live.len() > 1 && inner.live[1].first_lsn - 1 <= lsn {
            let lsn_last = inner.live[1].first_lsn - 1;
            if let Some(done) = inner.live.pop_front() {
                inner.free.push(FreeSegment { segment: done.segment, lsn_last });
                released += 1;
            }
        }
        drop(inner);
        if released > 0 {
            shared.space_freed.notify_all();
            info!(released_lsn = lsn, segments_released = released, "wal checkpoint");
        }
        Ok(released)
    }

    /// Syncs everything written so far and returns the durable LSN.
    ///
    /// ```
    /// use recwal_wal::{SyncPolicy, Wal, WalConfig};
    /// let dir = tempfile::tempdir()?;
    /// let wal = Wal::open(dir.path(), WalConfig::default().segment_bytes(1 << 20).sync_policy(SyncPolicy::Never))?;
    /// wal.append(1, b"a")?;
    /// wal.append(1, b"b")?;
    /// assert_eq!(wal.lsn_durable(), 0);
    /// assert_eq!(wal.sync()?, 2);
    /// assert_eq!(wal.lsn_durable(), 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn sync(&self) -> Result<Lsn, WalError> {
        let lsn = self.shared.lsn_appended.load(Ordering::Acquire);
        self.shared.commit.make_durable(&self.shared, lsn)?;
        Ok(lsn)
    }

    /// Highest LSN whose record, and every one before it, is in its file
    /// (the page cache): visible to readers under `Never`, and kept by a
    /// process crash. `Always` and `Batch` records get there when they are
    /// synced (or just before a later `Never` append), so this may trail
    /// `lsn_appended`.
    ///
    /// ```
    /// use recwal_wal::{SyncPolicy, Wal, WalConfig};
    /// let dir = tempfile::tempdir()?;
    /// let wal = Wal::open(dir.path(), WalConfig::default().segment_bytes(1 << 20).sync_policy(SyncPolicy::Never))?;
    /// assert_eq!(wal.lsn_written(), 0);
    /// wal.append(1, b"a")?;
    /// assert_eq!((wal.lsn_written(), wal.lsn_durable()), (1, 0));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn lsn_written(&self) -> Lsn {
        self.shared.lsn_written.load(Ordering::Acquire)
    }

    /// The last LSN handed out by an append, written or still staged in memory.
    ///
    /// ```
    /// use recwal_wal::{Durability, SyncPolicy, Wal, WalConfig};
    /// let dir = tempfile::tempdir()?;
    /// let wal = Wal::open(dir.path(), WalConfig::default().segment_bytes(1 << 20).sync_policy(SyncPolicy::Never))?;
    /// let staged = wal.append_sync_later(1, b"staged until its sync")?;
    /// assert_eq!((wal.lsn_appended(), wal.lsn_written()), (1, 0));
    /// staged.wait()?;
    /// assert_eq!((wal.lsn_appended(), wal.lsn_written(), wal.lsn_durable()), (1, 1, 1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn lsn_appended(&self) -> Lsn {
        self.shared.lsn_appended.load(Ordering::Acquire)
    }

    /// Highest LSN known durable.
    ///
    /// ```
    /// use recwal_wal::{SyncPolicy, Wal, WalConfig};
    /// let dir = tempfile::tempdir()?;
    /// let wal = Wal::open(dir.path(), WalConfig::default().segment_bytes(1 << 20).sync_policy(SyncPolicy::Always))?;
    /// wal.append(1, b"a")?;
    /// assert_eq!(wal.lsn_durable(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn lsn_durable(&self) -> Lsn {
        self.shared.commit.lsn_durable()
    }

    /// Oldest LSN still retained (equal to `lsn_written() + 1` when empty).
    ///
    /// ```
    /// use recwal_wal::{SyncPolicy, Wal, WalConfig};
    /// let dir = tempfile::tempdir()?;
    /// let wal = Wal::open(dir.path(), WalConfig::default().segment_bytes(1 << 20).sync_policy(SyncPolicy::Never))?;
    /// assert_eq!(wal.lsn_first(), 1); // empty: the next LSN
    /// wal.append(1, b"a")?;
    /// assert_eq!(wal.lsn_first(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn lsn_first(&self) -> Lsn {
        let inner = lock_inner(&self.shared);
        inner.live.front().map_or(inner.next_lsn, |segment| segment.first_lsn)
    }

    /// Counters and histograms, read at this moment.
    ///
    /// ```
    /// use recwal_wal::{SyncPolicy, Wal, WalConfig};
    /// let dir = tempfile::tempdir()?;
    /// let wal = Wal::open(dir.path(), WalConfig::default().segment_bytes(1 << 20).sync_policy(SyncPolicy::Always))?;
    /// wal.append(1, b"x")?;
    /// let metrics = wal.metrics();
    /// assert_eq!((metrics.records_appended, metrics.lsn_durable), (1, 1));
    /// assert_eq!(metrics.syncs, metrics.sync_latency_us.count);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn metrics(&self) -> WalMetrics {
        let shared = &*self.shared;
        let (segments_live, segments_free, lsn_released, staged_bytes) = {
            let inner = lock_inner(shared);
            (inner.live.len() as u64, inner.free.len() as u64, inner.released_lsn, inner.staged.bytes())
        };
        let counters = &shared.metrics.counters;
        WalMetrics {
            records_appended: counters.records_appended.load(Ordering::Relaxed),
            bytes_appended: counters.bytes_appended.load(Ordering::Relaxed),
            syncs: counters.syncs.load(Ordering::Relaxed),
            sync_failures: counters.sync_failures.load(Ordering::Relaxed),
            full_waits: counters.full_waits.load(Ordering::Relaxed),
            full_errors: counters.full_errors.load(Ordering::Relaxed),
            segments_created: counters.segments_created.load(Ordering::Relaxed),
            segments_recycled: counters.segments_recycled.load(Ordering::Relaxed),
            segments_live,
            segments_free,
            staged_bytes,
            staging_overflows: counters.staging_overflows.load(Ordering::Relaxed),
            sync_latency_us: shared.metrics.sync_latency_us.snapshot(),
            group_records: shared.metrics.group_records.snapshot(),
            lsn_written: shared.lsn_written.load(Ordering::Acquire),
            lsn_appended: shared.lsn_appended.load(Ordering::Acquire),
            lsn_durable: shared.commit.lsn_durable(),
            lsn_released,
        }
    }

    /// Bytes still free for new segments on the log's storage (`None`: the
    /// storage cannot tell). After a `SegmentStart` refused for lack of
    /// space, this says when a retry can succeed.
    ///
    /// ```
    /// use recwal_wal::{Wal, WalConfig};
    /// let dir = tempfile::tempdir()?;
    /// let wal = Wal::open(dir.path(), WalConfig::default().segment_bytes(1 << 20))?;
    /// assert!(wal.available_bytes()?.is_some_and(|free| free > 0));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn available_bytes(&self) -> Result<Option<u64>, WalError> {
        let shared = &*self.shared;
        shared.storage.available_bytes().map_err(|err| WalError::io("statvfs", shared.storage.describe(None), err))
    }

    /// An iterator over records from `lsn` on; see `Reader`.
    ///
    /// ```
    /// use recwal_wal::{SyncPolicy, Wal, WalConfig};
    /// let dir = tempfile::tempdir()?;
    /// let wal = Wal::open(dir.path(), WalConfig::default().segment_bytes(1 << 20).sync_policy(SyncPolicy::Always))?;
    /// for word in ["a", "b", "c"] {
    ///     wal.append(1, word.as_bytes())?;
    /// }
    /// let tail: Vec<Vec<u8>> = wal.read_from(2)?.map(|record| record.map(|r| r.payload().to_vec())).collect::<Result<_, _>>()?;
    /// assert_eq!(tail, vec![b"b".to_vec(), b"c".to_vec()]);
    /// assert!(wal.read_from(9).is_err()); // beyond the end
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn read_from(&self, lsn: Lsn) -> Result<crate::reader::Reader, WalError> {
        crate::reader::Reader::new(Arc::clone(&self.shared), lsn)
    }

    /// Records in the log's manifest that every LSN up to `lsn_durable` is
    /// durable, and returns that LSN. A later `open` refuses a log that ends
    /// before it (records once durable are missing: a segment was damaged or
    /// replaced by an older copy), where it could otherwise only guess that
    /// the damaged end was a torn write. `close` does this; call it at other
    /// quiet moments too (the engine does after each checkpoint). It costs a
    /// small file write and two `fsync`s; it never blocks appends.
    ///
    /// ```
    /// use recwal_wal::{SyncPolicy, Wal, WalConfig};
    /// let dir = tempfile::tempdir()?;
    /// let wal = Wal::open(dir.path(), WalConfig::default().segment_bytes(1 << 20).sync_policy(SyncPolicy::Always))?;
    /// wal.append(1, b"a")?;
    /// assert_eq!(wal.record_floor()?, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn record_floor(&self) -> Result<u64, WalError> {
        let shared = &*self.shared;
        // A poisoned log's durable mark is stale but true; refuse anyway, so
        // nothing is recorded about a log in an unknown state.
        shared.commit.check_poisoned()?;
        let segments_created = lock_inner(shared).next_index;
        let lsn_floor = shared.commit.lsn_durable();
        shared.write_manifest(segments_created, lsn_floor)?;
        Ok(lsn_floor)
    }

    /// Syncs everything written, stops the flusher and closes the log.
    ///
    /// ```
    /// use recwal_wal::{SyncPolicy, Wal, WalConfig};
    /// let dir = tempfile::tempdir()?;
    /// let config = WalConfig::default().segment_bytes(1 << 20).sync_policy(SyncPolicy::Never);
    /// let wal = Wal::open(dir.path(), config.clone())?;
    /// wal.append(1, b"kept")?;
    /// wal.close()?; // synced, and the directory is free again
    /// assert_eq!(Wal::open(dir.path(), config)?.lsn_durable(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn close(mut self) -> Result<(), WalError> {
        let res = self.sync().map(|_| ());
        if res.is_ok() {
            if let Err(err) = self.record_floor() {
                warn!(%err, "could not record the closed log's end in its manifest");
            }
        }
        self.stop_flusher();
        res
    }

    fn stop_flusher(&mut self) {
        let _ = self.shared.flusher_tx.send(FlushMsg::Shutdown);
        if let Some(handle) = self.flusher.take() {
            let _ = handle.join();
        }
        self.shared.commit.close();
    }
}

impl Drop for Wal {
    /// Writes what is staged and stops the flusher, without a final sync:
    /// everything appended is in the page cache and survives the process,
    /// but not a power loss. Use `close` for a clean shutdown.
    fn drop(&mut self) {
        let shared = &*self.shared;
        if shared.commit.check_poisoned().is_ok() {
            let mut inner = lock_inner(shared);
            let write_out = inner.staged.begin_write(&shared.write_order);
            // A failure poisons the log and is logged; nobody is left to tell.
            let _ = write_out.finish(shared);
        }
        self.stop_flusher();
    }
}

/// Records in the manifest that segment files `0..segments_created` exist and
/// that every LSN up to `lsn_floor` is durable. Called where both are known
/// (open, growth of the ring, close), never on the append path. A failure
/// only weakens what the next open can check, so it is logged, not returned.
fn write_manifest_or_warn(storage: &dyn Storage, segment_bytes: u64, segments_created: u32, lsn_floor: u64) {
    let manifest = Manifest { segment_bytes, segments_created, lsn_floor };
    if let Err(err) = storage.write_manifest(&manifest.encode()) {
        warn!(path = %storage.describe_manifest().display(), %err, "could not update the log's manifest");
    }
}

/// Staged bytes at which an appender writes them out itself: twice a batch
/// (the flusher should have synced one by then), within [4 MiB, 256 MiB].
fn staging_limit(config: &WalConfig) -> u64 {
    let (_, max_bytes) = config.batch_params();
    max_bytes.saturating_mul(2).clamp(4 << 20, 256 << 20)
}

/// Capacity of a staging buffer: room for a batch of `max_bytes` (or 1 MiB
/// under the other policies) and the record that fills it, within [64 KiB, 4 MiB];
/// larger batches grow the buffer.
fn staging_capacity(config: &WalConfig) -> usize {
    let (_, max_bytes) = config.batch_params();
    let wanted = max_bytes.saturating_add(u64::from(config.record_bytes_max));
    wanted.clamp(64 << 10, 4 << 20) as usize
}

/// Counts an `Always` append in `always_appending` for as long as it lives.
struct JoiningGroup<'a> {
    shared: Option<&'a Shared>,
}

impl<'a> JoiningGroup<'a> {
    fn new(shared: &'a Shared, always: bool) -> Self {
        if always {
            shared.always_appending.fetch_add(1, Ordering::AcqRel);
        }
        JoiningGroup { shared: always.then_some(shared) }
    }
}

impl Drop for JoiningGroup<'_> {
    fn drop(&mut self) {
        if let Some(shared) = self.shared {
            shared.always_appending.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// True if only the ring (and the dirty list, which just means "sync me")
/// holds `segment`: no reader and no sync in flight can see it being reused.
/// Both counts change only under the append lock, which the caller holds.
fn is_unshared(segment: &Arc<Segment>) -> bool {
    let in_dirty_list = usize::from(segment.dirty.load(Ordering::Acquire));
    Arc::strong_count(segment) == 1 + in_dirty_list
}

/// Starts a new lap of `segment` as the active segment. Returns whether the
/// segment had held an earlier lap.
fn start_segment(shared: &Shared, inner: &mut Inner, segment: Arc<Segment>) -> Result<bool, WalError> {
    let header = SegmentHeader {
        state: SegmentState::Live,
        seq: inner.next_seq,
        first_lsn: inner.next_lsn,
        // Only what is durable may be recorded as released: recovery trusts
        // this value, and a power loss never cuts the log below the durable LSN.
        released_lsn: inner.released_lsn.min(shared.commit.lsn_durable()),
        segment_bytes: shared.config.segment_bytes,
    };
    let index = segment.index;
    let path = || shared.storage.describe(Some(index));
    let had_lap =
        read_header(segment.file.as_ref()).map_err(|err| WalError::io("read segment header", path(), err))?.is_ok();
    // IMPORTANT: the new header is synced before any record of the new lap is
    // written. Otherwise power loss could keep some new records (which
    // overwrite the old lap's) but not the header, and recovery would read the
    // old lap with holes in it: released records, but records all the same.
    if let Err(err) = segment.file.write_at(0, &header.encode(), WritePath::Syscall) {
        inner.free.push(FreeSegment { segment, lsn_last: 0 });
        // A copy-on-write file system can refuse even an overwrite for lack
        // of space; then nothing was written and the old lap is intact.
        if crate::storage::is_out_of_space(&err) {
            return Err(WalError::SegmentStart { op: "write new lap header", path: path(), source: err });
        }
        return Err(shared.commit.fail_io(shared, index, "start (header write)", err));
    }
    if let Err(err) = segment.file.sync_data() {
        inner.free.push(FreeSegment { segment, lsn_last: 0 });
        return Err(shared.commit.fail_io(shared, index, "start (header sync)", err));
    }
    inner.next_seq += 1;
    inner.live.push_back(LiveSegment { segment, seq: header.seq, first_lsn: header.first_lsn });
    inner.write_offset = SEGMENT_HEADER_BYTES;
    Ok(had_lap)
}
