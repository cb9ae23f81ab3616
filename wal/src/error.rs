//! Errors returned at the crate boundary.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Where in the log a problem was found.
///
/// ```
/// use recwal_wal::Position;
/// let at = Position { segment_index: 3, segment_seq: 7, offset: 4096 };
/// assert_eq!(at.to_string(), "segment 3 (file seg-00000003.wal, seq 7) offset 4096");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Position {
    /// Index of the segment file (`seg-<index>.wal`).
    pub segment_index: u32,
    /// Sequence number of the segment's current lap (0 if its header is unreadable).
    pub segment_seq: u64,
    /// Byte offset inside the segment file.
    pub offset: u64,
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "segment {} (file {}, seq {}) offset {}",
            self.segment_index,
            crate::format::segment_file_name(self.segment_index),
            self.segment_seq,
            self.offset
        )
    }
}

/// A corruption that recovery refused to repair in the configured mode.
///
/// ```
/// use recwal_wal::sim::SimStorage;
/// use recwal_wal::{SyncPolicy, Wal, WalConfig, WalError};
/// let disk = SimStorage::new(7);
/// let config = WalConfig::default().segment_bytes(4096).sync_policy(SyncPolicy::Always);
/// let wal = Wal::open_with_storage(Box::new(disk.clone()), config.clone())?;
/// wal.append(1, b"first")?;
/// wal.append(1, b"second")?; // written after record 1 was durable: proof that it was
/// drop(wal);
/// disk.flip_bit(0, 100, 0); // rot inside record 1's payload (its frame starts at offset 64)
/// let refused = Wal::open_with_storage(Box::new(disk), config);
/// let Err(WalError::Corruption(found)) = refused else { panic!("not refused") };
/// assert_eq!((found.lsn_expected, found.position.segment_index, found.position.offset), (1, 0, 64));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Corruption {
    /// Where the first bad bytes are.
    pub position: Position,
    /// The LSN the log expected at that position.
    pub lsn_expected: u64,
    /// What is wrong, in words.
    pub reason: String,
}

/// Every error the WAL returns.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
///
/// ```
/// use recwal_wal::{SyncPolicy, Wal, WalConfig, WalError};
/// let dir = tempfile::tempdir()?;
/// let wal = Wal::open(dir.path(), WalConfig::default().segment_bytes(4096).sync_policy(SyncPolicy::Never))?;
/// match wal.append(1, &[0u8; 8192]) {
///     Err(WalError::RecordTooLarge { len, max }) => assert!(len > max as usize),
///     other => panic!("{other:?}"),
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub enum WalError {
    /// A configuration value broke its rule; nothing was opened.
    #[error("invalid configuration: {field} {rule}")]
    InvalidConfig {
        /// The offending field of `WalConfig`.
        field: &'static str,
        /// The rule it broke.
        rule: String,
    },
    /// An operating-system call failed.
    #[error("{op} failed on {path}: {source}")]
    Io {
        /// What the WAL was doing.
        op: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Another process holds the log directory.
    #[error("log directory {path} is locked by another process")]
    Locked {
        /// The directory.
        path: PathBuf,
    },
    /// Recovery found corruption that the recovery mode does not allow it to cut.
    #[error("corrupt log at {}: {} (expected lsn {}); {RECOVERY_OPTIONS}", .0.position, .0.reason, .0.lsn_expected)]
    Corruption(Box<Corruption>),
    /// A file of the log is missing, cut short or unreadable where the log
    /// proves it existed whole: damage, refused rather than read as "never
    /// written" (see FORMAT.md, "Files"). Nothing was changed on disk.
    #[error("damaged log: {}: {reason}; {options}", .path.display())]
    Damaged {
        /// The file (or directory) that is damaged.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
        /// What the operator can do.
        options: String,
    },
    /// A segment file does not match the configuration or the format.
    #[error("segment {segment_index}: {reason}")]
    BadSegment {
        /// The segment file index.
        segment_index: u32,
        /// What is wrong.
        reason: String,
    },
    /// A record is larger than `record_bytes_max`; nothing was written.
    #[error("record of {len} bytes exceeds record_bytes_max ({max})")]
    RecordTooLarge {
        /// Payload length given.
        len: usize,
        /// The configured maximum.
        max: u32,
    },
    /// Every segment holds unreleased data and the ring may not grow; nothing was written.
    #[error("log is full: every segment holds unreleased records (waited {waited:?}); checkpoint to release space")]
    Full {
        /// How long the append waited for space before giving up.
        waited: Duration,
    },
    /// A sync failed earlier; the log accepts no more appends and claims no more durability.
    #[error("log is poisoned by an earlier failed sync: {cause}; reopen it to recover")]
    Poisoned {
        /// The error of the failed sync.
        cause: Arc<str>,
    },
    /// The requested LSN is older than the oldest retained record, or newer than the last one.
    #[error("lsn {lsn} is not in the log (retained {first}..={last})")]
    LsnNotRetained {
        /// The LSN asked for.
        lsn: u64,
        /// The oldest retained LSN.
        first: u64,
        /// The newest written LSN.
        last: u64,
    },
    /// A new segment could not be started: creating its file (or writing the
    /// header of a released segment's new lap) failed before any record went
    /// into it, so no acknowledged data is involved and the log is *not*
    /// poisoned. The append was refused; the next one tries again. On a full
    /// disk (`is_out_of_space`), free space and retry.
    #[error("cannot start segment {path} ({op}): {source}; nothing was written, retry once the cause is fixed")]
    SegmentStart {
        /// What failed: "create segment" or "write new lap header".
        op: &'static str,
        /// The segment file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The caller's check (`Wal::open_checked`) refused what recovery found;
    /// nothing was repaired or written.
    #[error("opening the log was refused: {reason}; nothing was repaired or written")]
    Refused {
        /// The caller's reason.
        reason: String,
    },
    /// The log was closed.
    #[error("log is closed")]
    Closed,
}

/// What an operator can do when recovery refuses damage (named in every
/// refusal so that nobody has to look it up while the service is down).
pub(crate) const RECOVERY_OPTIONS: &str = "the log was left as it is; to recover, restore the log directory from a \
     backup, or open it in recovery mode point-in-time (RecoveryMode::PointInTime; `recwal serve --wal-recovery \
     point-in-time`) to keep the longest valid prefix (the records after the damage are dropped and reported)";

impl WalError {
    /// True for a refusal caused by a full file system or quota (ENOSPC,
    /// EDQUOT) that left the log usable: a `SegmentStart` that could not
    /// find room. Free space and retry.
    ///
    /// ```
    /// use recwal_wal::sim::SimStorage;
    /// use recwal_wal::{SyncPolicy, Wal, WalConfig};
    /// let disk = SimStorage::new(1);
    /// let config = WalConfig::default().segment_bytes(4096).segments_initial(2).sync_policy(SyncPolicy::Always);
    /// let wal = Wal::open_with_storage(Box::new(disk.clone()), config)?;
    /// disk.set_space_limit(Some(disk.bytes_used())); // the ring cannot grow
    /// let refused = loop {
    ///     if let Err(err) = wal.append(1, &[0u8; 1000]) { break err; }
    /// };
    /// assert!(refused.is_out_of_space());
    /// disk.set_space_limit(None);
    /// wal.append(1, b"goes on")?; // not poisoned
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_out_of_space(&self) -> bool {
        matches!(self, WalError::SegmentStart { source, .. } if is_out_of_space(source))
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        WalError::Io { op, path: path.into(), source }
    }
}

/// True if `err` says the file system (or the user's quota) has no room:
/// `ENOSPC` or `EDQUOT`. Such a failure to *create* something holds no
/// acknowledged data, so callers may retry once space is freed.
///
/// ```
/// use recwal_wal::is_out_of_space;
/// assert!(is_out_of_space(&std::io::Error::from_raw_os_error(libc::ENOSPC)));
/// assert!(!is_out_of_space(&std::io::Error::from_raw_os_error(libc::EIO)));
/// ```
pub fn is_out_of_space(err: &io::Error) -> bool {
    matches!(err.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT))
        || matches!(err.kind(), io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded)
}
