//! A new, empty log that continues the LSNs of another one: its first
//! record will get `lsn_first`, as if records `1..lsn_first` had been
//! written and released by a checkpoint. Backup, restore and salvage use
//! it to rebuild a log beside a snapshot at `lsn_first - 1` by appending
//! the records after the snapshot through the ordinary `Wal::append`; the
//! bytes on disk are exactly what a log looks like after its ring lapped
//! (FORMAT.md), so `open` needs no special case.

use std::path::Path;

use crate::config::WalConfig;
use crate::error::WalError;
use crate::format::{Lsn, SegmentHeader, SegmentState, LSN_LIMIT};
use crate::manifest::Manifest;
use crate::storage::{find_log_file, DirLock, FileStorage, Storage, WritePath};

/// Creates, in `dir` (created if missing; it must hold no log), a log whose
/// next record gets `lsn_first` (at least 1): `config.segments_initial`
/// zero-filled segments, the first one live from `lsn_first` with every
/// earlier LSN released, and a manifest whose floor is `lsn_first - 1`.
/// Open it with `Wal::open` and the same `segment_bytes`.
///
/// ```
/// use recwal_wal::{create_log_at, Wal, WalConfig};
/// let dir = tempfile::tempdir()?;
/// let config = WalConfig::default().segment_bytes(1 << 20);
/// create_log_at(dir.path(), &config, 42)?;
/// let wal = Wal::open(dir.path(), config.clone())?;
/// assert_eq!(wal.lsn_written(), 41);
/// assert_eq!(wal.append(1, b"next")?.wait()?, 42);
/// wal.close()?;
/// // Never over a log.
/// assert!(create_log_at(dir.path(), &config, 1).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn create_log_at(dir: &Path, config: &WalConfig, lsn_first: Lsn) -> Result<(), WalError> {
    config.validate()?;
    if lsn_first == 0 || lsn_first >= LSN_LIMIT {
        return Err(WalError::InvalidConfig {
            field: "lsn_first",
            rule: format!("must be in [1, {LSN_LIMIT}), got {lsn_first}"),
        });
    }
    std::fs::create_dir_all(dir).map_err(|err| WalError::io("create directory", dir, err))?;
    let _lock = DirLock::acquire(dir)?;
    if let Some(found) = find_log_file(dir)? {
        return Err(WalError::BadSegment {
            segment_index: 0,
            reason: format!(
                "{} already holds a log ({}); a new log is only created in its place",
                dir.display(),
                found.display()
            ),
        });
    }
    let storage = FileStorage::open(dir)?;
    for index in 0..config.segments_initial {
        let path = storage.describe(Some(index));
        let file = storage
            .create_segment(index, config.segment_bytes)
            .map_err(|err| WalError::io("create segment", &path, err))?;
        if index == 0 {
            let header = SegmentHeader {
                state: SegmentState::Live,
                seq: 1,
                lsn_first,
                lsn_released: lsn_first - 1,
                segment_bytes: config.segment_bytes,
            };
            file.write_at(0, &header.encode(), WritePath::Syscall)
                .map_err(|err| WalError::io("write segment header", &path, err))?;
            file.sync_data().map_err(|err| WalError::io("sync segment", &path, err))?;
        }
    }
    let manifest = Manifest {
        segment_bytes: config.segment_bytes,
        segments_created: config.segments_initial,
        lsn_floor: lsn_first - 1,
    };
    storage
        .write_manifest(&manifest.encode())
        .map_err(|err| WalError::io("write manifest", storage.describe_manifest(), err))?;
    Ok(())
}
