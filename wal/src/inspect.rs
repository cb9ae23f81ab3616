//! Read-only inspection and verification of a log directory, for the CLI's
//! `wal inspect` / `wal verify` and for operators. Runs the same scan as
//! `open` but repairs nothing.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::config::{RecoveryMode, WalConfig};
use crate::error::WalError;
use crate::format::{HeaderDefect, SegmentState};
use crate::recovery::{check_floor, open_segments, scan, FileRepair, FoundFiles, RecordInfo, RecoveryReport};
use crate::storage::{DirLock, FileStorage, Storage};

/// What a segment file holds.
///
/// ```
/// use recwal_wal::{inspect, SegmentStatus, SyncPolicy, Wal, WalConfig};
/// let dir = tempfile::tempdir()?;
/// let config = WalConfig::default().segment_bytes(1 << 20).segments_initial(3).sync_policy(SyncPolicy::Always);
/// let wal = Wal::open(dir.path(), config.clone())?;
/// wal.append(1, b"x")?;
/// wal.close()?;
/// let inspection = inspect(dir.path(), &config, &mut |_, _| {})?;
/// let statuses: Vec<SegmentStatus> = inspection.segments.iter().map(|segment| segment.status).collect();
/// assert_eq!(statuses, [SegmentStatus::Live, SegmentStatus::Empty, SegmentStatus::Empty]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SegmentStatus {
    /// Part of the recovered log.
    Live,
    /// Has a live header but holds only records released by a checkpoint
    /// (or cut by recovery); free for reuse.
    Released,
    /// Marked free by an earlier recovery.
    Free,
    /// Never started (zero header).
    Empty,
    /// Its header is unreadable.
    Damaged,
}

/// One segment file as inspected.
///
/// ```
/// use recwal_wal::{inspect, SegmentStatus, SyncPolicy, Wal, WalConfig};
/// let dir = tempfile::tempdir()?;
/// let config = WalConfig::default().segment_bytes(1 << 20).sync_policy(SyncPolicy::Always);
/// let wal = Wal::open(dir.path(), config.clone())?;
/// wal.append(1, b"abc")?;
/// wal.close()?;
/// let first = &inspect(dir.path(), &config, &mut |_, _| {})?.segments[0];
/// assert_eq!((first.index, first.status, first.records), (0, SegmentStatus::Live, 1));
/// assert_eq!(first.header, Some((1, 1, 0))); // (seq, lsn_first, lsn_released)
/// assert_eq!(first.bytes_used, 64 + 40); // segment header, then one 40-byte frame
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentInfo {
    /// File index (`seg-<index>.wal`).
    pub index: u32,
    /// What it holds.
    pub status: SegmentStatus,
    /// Header fields, if the header is readable.
    pub header: Option<(u64, u64, u64)>,
    /// Records of the recovered log in this segment.
    pub records: u64,
    /// Bytes used by those records, header included.
    pub bytes_used: u64,
}

/// The result of `inspect`.
///
/// ```
/// use recwal_wal::{inspect, SyncPolicy, Wal, WalConfig};
/// let dir = tempfile::tempdir()?;
/// let config = WalConfig::default().segment_bytes(1 << 20).segments_initial(2).sync_policy(SyncPolicy::Always);
/// let wal = Wal::open(dir.path(), config.clone())?;
/// wal.append(1, b"a")?;
/// wal.append(1, b"b")?;
/// wal.close()?;
/// let inspection = inspect(dir.path(), &config, &mut |_, _| {})?;
/// assert_eq!(inspection.segments.len(), 2);
/// assert_eq!((inspection.report.records_recovered, inspection.report.lsn_last), (2, 2));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct Inspection {
    /// Every segment file, by index.
    pub segments: Vec<SegmentInfo>,
    /// What `open` would find (in `PointInTime` mode, so every problem is
    /// reported rather than stopping the scan).
    pub report: RecoveryReport,
}

/// Scans the log in `dir` without changing it; `visit` sees every record of
/// the recovered log with its payload. Takes the directory's lock, so it
/// fails with `Locked` while a process has the log open.
///
/// ```
/// use recwal_wal::{inspect, SegmentStatus, SyncPolicy, Wal, WalConfig};
/// let dir = tempfile::tempdir()?;
/// let config = WalConfig::default().segment_bytes(1 << 20).sync_policy(SyncPolicy::Always);
/// let wal = Wal::open(dir.path(), config.clone())?;
/// wal.append(4, b"one")?;
/// wal.append(4, b"two")?;
/// wal.close()?;
/// let mut seen = Vec::new();
/// let inspection = inspect(dir.path(), &config, &mut |info, payload| seen.push((info.lsn, payload.to_vec())))?;
/// assert_eq!(seen, vec![(1, b"one".to_vec()), (2, b"two".to_vec())]);
/// assert!(inspection.segments.iter().any(|segment| segment.records == 2));
/// assert!(inspection.report.is_clean());
/// # let _ = SegmentStatus::Live;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn inspect(
    dir: &Path,
    config: &WalConfig,
    visit: &mut dyn FnMut(&RecordInfo, &[u8]),
) -> Result<Inspection, WalError> {
    if !dir.is_dir() {
        return Err(WalError::io("inspect", dir, std::io::Error::from(std::io::ErrorKind::NotFound)));
    }
    let _lock = DirLock::acquire(dir)?;
    let storage = FileStorage::open(dir)?;
    inspect_storage(&storage, config, visit)
}

/// `inspect` over any `Storage`.
///
/// ```
/// use recwal_wal::sim::SimStorage;
/// use recwal_wal::{inspect_storage, SyncPolicy, Wal, WalConfig};
/// let disk = SimStorage::new(1);
/// let config = WalConfig::default().segment_bytes(4096).sync_policy(SyncPolicy::Always);
/// Wal::open_with_storage(Box::new(disk.clone()), config.clone())?.append(1, b"x")?;
/// let inspection = inspect_storage(&disk, &config, &mut |_, _| {})?;
/// assert_eq!(inspection.report.lsn_last, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn inspect_storage(
    storage: &dyn Storage,
    config: &WalConfig,
    visit: &mut dyn FnMut(&RecordInfo, &[u8]),
) -> Result<Inspection, WalError> {
    let FoundFiles { manifest, opened, missing, short } =
        open_segments(storage, config.segment_bytes, FileRepair::Report)?;
    let mut per_segment: HashMap<u32, u64> = HashMap::new();
    let describe = |index: u32| storage.describe(Some(index));
    let plan = scan(
        &opened,
        config.segment_bytes,
        config.record_bytes_readable(),
        RecoveryMode::PointInTime,
        &describe,
        &mut |info, payload| {
            *per_segment.entry(info.segment_index).or_default() += 1;
            visit(info, payload);
        },
    )?;
    let mut report = plan.report.clone();
    report.segments_extended = short;
    report.segments_missing = missing;
    check_floor(manifest, storage, &opened, &plan, RecoveryMode::PointInTime, &mut report)?;
    let segments = opened
        .iter()
        .enumerate()
        .map(|(slot, segment)| {
            let link = plan.chain.iter().find(|link| link.slot == slot);
            let status = match (&segment.header, link) {
                (_, Some(_)) => SegmentStatus::Live,
                (Ok(header), None) if header.state == SegmentState::Free => SegmentStatus::Free,
                (Ok(_), None) => SegmentStatus::Released,
                (Err(HeaderDefect::Zeroed), None) => SegmentStatus::Empty,
                (Err(_), None) => SegmentStatus::Damaged,
            };
            SegmentInfo {
                index: segment.index,
                status,
                header: segment.header.as_ref().ok().map(|header| (header.seq, header.lsn_first, header.lsn_released)),
                records: per_segment.get(&segment.index).copied().unwrap_or(0),
                bytes_used: link.map_or(0, |link| link.end_offset),
            }
        })
        .collect();
    Ok(Inspection { segments, report })
}

/// Checks every CRC and the LSN chain of the log in `dir` without changing
/// it. `Ok` with a clean report means `open` would recover the whole log
/// with nothing to cut.
///
/// ```
/// use recwal_wal::{verify, SyncPolicy, Wal, WalConfig};
/// let dir = tempfile::tempdir()?;
/// let config = WalConfig::default().segment_bytes(1 << 20).sync_policy(SyncPolicy::Always);
/// let wal = Wal::open(dir.path(), config.clone())?;
/// wal.append(1, b"record")?;
/// wal.close()?;
/// let report = verify(dir.path(), &config)?;
/// assert!(report.is_clean());
/// assert_eq!(report.lsn_last, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn verify(dir: &Path, config: &WalConfig) -> Result<RecoveryReport, WalError> {
    inspect(dir, config, &mut |_, _| {}).map(|inspection| inspection.report)
}

/// The segment size the log in `dir` was created with: from its manifest,
/// or (a log written before manifests existed) from the first segment with
/// a readable header. `None` where neither says (no log, or no started
/// segment). Tools that open a log they did not create use it instead of a
/// default. Changes nothing.
///
/// ```
/// use recwal_wal::{log_segment_bytes, Wal, WalConfig};
/// let dir = tempfile::tempdir()?;
/// assert_eq!(log_segment_bytes(dir.path())?, None);
/// Wal::open(dir.path(), WalConfig::default().segment_bytes(1 << 20))?;
/// assert_eq!(log_segment_bytes(dir.path())?, Some(1 << 20));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn log_segment_bytes(dir: &Path) -> Result<Option<u64>, WalError> {
    let storage = FileStorage::at(dir);
    if let Some(manifest) = crate::recovery::load_manifest(&storage)? {
        return Ok(Some(manifest.segment_bytes));
    }
    if !dir.is_dir() {
        return Ok(None);
    }
    let mut indices = storage.list_segments().map_err(|err| WalError::io("list segments", dir, err))?;
    indices.sort_unstable();
    for index in indices {
        let path = storage.describe(Some(index));
        let mut header = [0u8; crate::format::SEGMENT_HEADER_BYTES as usize];
        let Ok(file) = File::open(&path) else { continue };
        if file.read_exact_at(&mut header, 0).is_err() {
            continue;
        }
        if let Ok(header) = crate::format::SegmentHeader::decode(&header) {
            return Ok(Some(header.segment_bytes));
        }
    }
    Ok(None)
}
