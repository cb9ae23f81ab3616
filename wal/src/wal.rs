//! `Wal`: the public API of an open log: the append path, checkpoints,
//! syncs, watermarks, readers and closing. Opening is `open.rs`'s, the ring
//! `ring.rs`'s, the state the handles share `shared.rs`'s.
//!
//! Concurrency, in one paragraph: appends serialise on the append lock (`Shared::inner`) just
//! long enough to take an LSN, find room and copy the frame into memory
//! (`Always`/`Batch`: the staging buffer; `Never`: the page cache through the
//! map); nothing slow happens under that lock except starting a segment
//! (one header sync per segment lap). Write-outs of staged frames and syncs
//! happen outside it, in `GroupCommit`, one leader at a time, for every
//! appender waiting.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;

use tracing::{info, info_span, warn};

use crate::config::{Durability, WalConfig};
use crate::error::WalError;
use crate::format::{end_mark_fits, frame_bytes, Lsn, RecordHeader, END_MARK, RECORD_HEADER_BYTES};
use crate::group_commit::FlushMsg;
use crate::metrics::WalMetrics;
use crate::open::{open_log, OpenLog};
use crate::recovery::{OpenCheck, RecoveryReport};
use crate::ring::LiveSegment;
use crate::shared::{lock_inner, mark_dirty, Inner, PrepareMsg, Shared};
use crate::staging::{Staging, WriteOut};
use crate::storage::{DirLock, FileStorage, Storage, WritePath};
use crate::ticket::AppendTicket;

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
    preparer: Option<JoinHandle<()>>,
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
        Wal::open_checked(dir, config, &mut |_| Ok(()))
    }

    /// As `open`, but `check` sees what recovery found (the recovered LSN
    /// range, anything it would cut) before any repair is made, and may
    /// refuse: then `open` returns `WalError::Refused` with its reason and
    /// the log is left as it was found. For a caller whose own state must
    /// fit the log (a snapshot that needs every record after it), so that a
    /// start it refuses does not first cut a torn tail or rewrite the
    /// manifest. (A log never initialised is created before the check; in
    /// `PointInTime` mode, missing or short segment files are restored
    /// before it too.)
    ///
    /// ```
    /// use recwal_wal::{SyncPolicy, Wal, WalConfig, WalError};
    /// let dir = tempfile::tempdir()?;
    /// let config = WalConfig::default().segment_bytes(1 << 20).sync_policy(SyncPolicy::Always);
    /// Wal::open(dir.path(), config.clone())?.append(1, b"a")?;
    /// let refused = Wal::open_checked(dir.path(), config.clone(), &mut |found| {
    ///     if found.lsn_last < 2 { Err(format!("the log ends at {}, the state needs 2", found.lsn_last)) } else { Ok(()) }
    /// });
    /// assert!(matches!(refused, Err(WalError::Refused { .. })));
    /// assert_eq!(Wal::open(dir.path(), config)?.recovery_report().lsn_last, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open_checked(dir: &Path, config: WalConfig, check: OpenCheck<'_>) -> Result<Wal, WalError> {
        config.validate()?;
        let storage = FileStorage::open(dir)?;
        let lock = Arc::new(DirLock::acquire(dir)?);
        storage.remove_stale_temp_files();
        Wal::open_inner(Box::new(storage), config, Some(lock), check)
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
    /// assert!(wal.recovery_report().lsn_last >= 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open_with_storage(storage: Box<dyn Storage>, config: WalConfig) -> Result<Wal, WalError> {
        Wal::open_with_storage_checked(storage, config, &mut |_| Ok(()))
    }

    /// `open_with_storage` with a `check`, as `open_checked`.
    pub fn open_with_storage_checked(
        storage: Box<dyn Storage>,
        config: WalConfig,
        check: OpenCheck<'_>,
    ) -> Result<Wal, WalError> {
        Wal::open_inner(storage, config, None, check)
    }

    fn open_inner(
        storage: Box<dyn Storage>,
        config: WalConfig,
        dir_lock: Option<Arc<DirLock>>,
        check: OpenCheck<'_>,
    ) -> Result<Wal, WalError> {
        let OpenLog { shared, flusher, preparer, report } = open_log(storage, config, dir_lock, check)?;
        Ok(Wal { shared, flusher: Some(flusher), preparer: Some(preparer), report })
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
    /// assert_eq!((report.records_recovered, report.lsn_last), (0, 0));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// ```
    /// use recwal_wal::{SyncPolicy, Wal, WalConfig};
    /// let dir = tempfile::tempdir()?;
    /// let config = WalConfig::default().segment_bytes(1 << 20).sync_policy(SyncPolicy::Always);
    /// Wal::open(dir.path(), config.clone())?.append(1, b"a")?;
    /// let report = Wal::open(dir.path(), config)?.recovery_report().clone();
    /// assert_eq!((report.records_recovered, report.lsn_last, report.bytes_cut), (1, 1, 0));
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
        let placed = place(shared, NewRecord { kind, payload, frame }, durability, sync_now)?;
        if let Some(write_out) = placed.eager_write {
            write_out.finish(shared)?;
        }
        let counters = &shared.metrics.counters;
        counters.records_appended.fetch_add(1, Ordering::Relaxed);
        counters.bytes_appended.fetch_add(frame, Ordering::Relaxed);

        drop(joining);
        let lsn = placed.lsn;
        match durability {
            Durability::Always => {
                if sync_now {
                    shared.commit.make_durable(shared, lsn)?;
                }
            }
            Durability::Batch => {
                if let Some(msg) = placed.batch_msg {
                    // A send fails only if the flusher is gone, which happens
                    // only in `close`/`drop`; the ticket's wait then reports it.
                    let _ = shared.flusher_tx.send(msg);
                }
            }
            Durability::Never => {}
        }
        Ok(AppendTicket::new(&self.shared, lsn, durability))
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
        let lsn_next = inner.lsn_next;
        let Some(released) = inner.ring.release(lsn, lsn_next) else {
            return Ok(0);
        };
        drop(inner);
        if released > 0 {
            shared.space_freed.notify_all();
            info!(lsn_released = lsn.min(lsn_next - 1), segments_released = released, "wal checkpoint");
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
        self.shared.commit.make_durable(&*self.shared, lsn)?;
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
        inner.ring.lsn_first(inner.lsn_next)
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
            (
                inner.ring.segments_live() as u64,
                inner.ring.segments_free() as u64,
                inner.ring.lsn_released(),
                inner.staged.bytes(),
            )
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
            segments_prepared: counters.segments_prepared.load(Ordering::Relaxed),
            segment_prepare_waits: counters.segment_prepare_waits.load(Ordering::Relaxed),
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
        let segments_created = lock_inner(shared).ring.segments_created();
        let lsn_floor = shared.commit.lsn_durable();
        shared.write_manifest(segments_created, lsn_floor)?;
        Ok(lsn_floor)
    }

    /// Syncs every segment file holding records of the log, the ones
    /// recovered at open included. A log records in its manifest only
    /// records that its own process saw synced (after a failed sync, the
    /// page cache may show records that never reached the disk); once this
    /// returns, the recovered records are synced by this process too, and
    /// `record_floor` names the whole log. The engine does both as it
    /// starts, so a node restarted and left idle does not keep an older
    /// floor until its next write.
    ///
    /// ```
    /// use recwal_wal::{SyncPolicy, Wal, WalConfig};
    /// let dir = tempfile::tempdir()?;
    /// let config = WalConfig::default().segment_bytes(1 << 20).sync_policy(SyncPolicy::Never);
    /// let wal = Wal::open(dir.path(), config.clone())?;
    /// wal.append(1, b"a")?;
    /// drop(wal); // no close: nothing synced, no floor recorded
    /// let wal = Wal::open(dir.path(), config)?;
    /// wal.sync_recovered()?;
    /// assert_eq!(wal.record_floor()?, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn sync_recovered(&self) -> Result<(), WalError> {
        let shared = &*self.shared;
        shared.commit.check_poisoned()?;
        let live: Vec<_> = lock_inner(shared).ring.live_segments().map(Arc::clone).collect();
        for segment in live {
            segment.file.sync_data().map_err(|err| {
                WalError::io("sync recovered segment", shared.storage.describe(Some(segment.index)), err)
            })?;
        }
        Ok(())
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
        // First, so that the manifest written below counts a prepared segment.
        self.stop_preparer();
        let res = self.sync().map(|_| ());
        if res.is_ok() {
            if let Err(err) = self.record_floor() {
                warn!(%err, "could not record the closed log's end in its manifest");
            }
        }
        self.stop_flusher();
        res
    }

    fn stop_preparer(&mut self) {
        let _ = self.shared.preparer_tx.send(PrepareMsg::Shutdown);
        if let Some(handle) = self.preparer.take() {
            let _ = handle.join();
        }
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
        self.stop_preparer();
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

/// A record on its way into the log.
struct NewRecord<'p> {
    kind: u8,
    payload: &'p [u8],
    /// Bytes its frame takes, padding included.
    frame: u64,
}

/// Where an append stands when it lets go of the append lock.
struct Placed<'a> {
    lsn: Lsn,
    /// What to tell the flusher (`Batch` only).
    batch_msg: Option<FlushMsg>,
    /// Staged frames this appender writes out itself, outside the lock.
    eager_write: Option<WriteOut<'a>>,
}

/// The append's critical section: under the append lock, makes room, takes
/// the next LSN and stages the frame (or, under `Never`, writes it through
/// the map). Nothing slow happens here except starting a segment.
fn place<'a>(
    shared: &'a Shared,
    record: NewRecord<'_>,
    durability: Durability,
    sync_now: bool,
) -> Result<Placed<'a>, WalError> {
    let mut inner = shared.ensure_room(lock_inner(shared), record.frame)?;
    // Checked again under the lock: a sync may have failed while we waited.
    shared.commit.check_poisoned()?;
    if inner.prepare_at_first_append {
        // A log reopened with every segment live prepares its next one now.
        inner.prepare_at_first_append = false;
        shared.request_prepare(&inner);
    }
    let lsn = inner.lsn_next;
    assert!(
        shared.lsn_appended.load(Ordering::Relaxed) + 1 == lsn,
        "LSNs are handed out densely, under the append lock"
    );
    // Disjoint borrows of the append state: the active segment is borrowed
    // from the ring while the staging buffer and the dirty list change (no
    // `Arc` clone per append: this is the hottest path of the log).
    let Inner { ring, dirty, staged, .. } = &mut *inner;
    let Some((active, offset)) = ring.active() else {
        unreachable!("ensure_room leaves an active segment");
    };
    let header = RecordHeader::new(active.seq, lsn, shared.commit.lsn_durable(), record.kind, record.payload);
    let spot = Spot { lsn, active, offset, header: &header };
    let eager_write = match durability {
        Durability::Always | Durability::Batch => stage(shared, staged, &spot, &record, durability, sync_now),
        Durability::Never => {
            write_through_map(shared, staged, &spot, &record)?;
            None
        }
    };
    mark_dirty(dirty, &active.segment);
    inner.ring.advance(record.frame, shared.config.segment_bytes);
    inner.lsn_next = lsn + 1;
    shared.lsn_appended.store(lsn, Ordering::Release);
    let batch_msg = if durability == Durability::Batch { count_batch(shared, &mut inner, record.frame) } else { None };
    Ok(Placed { lsn, batch_msg, eager_write })
}

/// Where a record goes: its LSN, its segment and offset, and its header.
struct Spot<'s> {
    lsn: Lsn,
    active: &'s LiveSegment,
    offset: u64,
    header: &'s RecordHeader,
}

/// Stages an `Always` or `Batch` frame; returns the write-out this appender
/// does itself, if any.
fn stage<'a>(
    shared: &'a Shared,
    staged: &mut Staging,
    spot: &Spot<'_>,
    record: &NewRecord<'_>,
    durability: Durability,
    sync_now: bool,
) -> Option<WriteOut<'a>> {
    let frame_parts = (&spot.header.encode()[..], record.payload);
    staged.push(&spot.active.segment, spot.offset, record.frame, frame_parts, spot.lsn);
    if durability == Durability::Always {
        shared.always_staged.fetch_add(1, Ordering::Relaxed);
    }
    if durability == Durability::Always && sync_now {
        // Written now, outside the lock, while the sync in progress
        // (if any) runs: the next leader then only syncs.
        staged.try_begin_write(&shared.write_order)
    } else if staged.bytes() >= shared.staging_limit {
        // The syncs fell behind (a slow disk): write what is staged
        // now, without a sync, so memory stays bounded and the
        // kernel's write-back throttling reaches the appenders.
        shared.metrics.counters.staging_overflows.fetch_add(1, Ordering::Relaxed);
        Some(staged.begin_write(&shared.write_order))
    } else {
        None
    }
}

/// Writes a `Never` frame straight into the page cache, behind everything
/// before it: staged frames are written first, and a write-out in flight
/// (it holds the write order) is waited for.
fn write_through_map(
    shared: &Shared,
    staged: &mut Staging,
    spot: &Spot<'_>,
    record: &NewRecord<'_>,
) -> Result<(), WalError> {
    let (lsn, offset) = (spot.lsn, spot.offset);
    if staged.must_write_before(shared.lsn_written.load(Ordering::Acquire)) {
        staged.begin_write(&shared.write_order).finish(shared)?;
    }
    let file = &spot.active.segment.file;
    let end = offset + record.frame;
    file.write_at(offset, &spot.header.encode(), WritePath::Map)
        .and_then(|()| file.write_at(offset + RECORD_HEADER_BYTES, record.payload, WritePath::Map))
        // The end mark (wal/FORMAT.md); the next record overwrites it.
        .and_then(
            |()| if end_mark_fits(end, file.len()) { file.write_at(end, &END_MARK, WritePath::Map) } else { Ok(()) },
        )
        .map_err(|err| WalError::io("append", shared.storage.describe(Some(spot.active.segment.index)), err))?;
    debug_assert_eq!(shared.lsn_written.load(Ordering::Acquire) + 1, lsn, "nothing staged or in flight precedes it");
    shared.lsn_written.store(lsn, Ordering::Release);
    Ok(())
}

/// Counts a `Batch` frame; says what to tell the flusher. `Batch` frames are
/// the flusher's: within `max_delay`, or sooner once `max_bytes` are
/// waiting. (`append_sync_later` frames wait for their ticket, or the next
/// sync of any kind; counting them here would keep later `Batch` appends
/// from starting the clock.)
fn count_batch(shared: &Shared, inner: &mut Inner, frame: u64) -> Option<FlushMsg> {
    let (_, max_bytes) = shared.config.batch_params();
    let before = inner.batch_bytes;
    inner.batch_bytes += frame;
    let mut batch_msg = None;
    if before == 0 {
        batch_msg = Some(FlushMsg::BatchStarted);
    }
    if before < max_bytes && inner.batch_bytes >= max_bytes {
        batch_msg = Some(FlushMsg::BatchFull);
    }
    batch_msg
}
