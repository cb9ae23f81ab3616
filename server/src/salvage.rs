//! `recwal wal salvage`: the one path that accepts loss. It reads a damaged
//! data dir without changing it, keeps what is provably intact (a snapshot
//! whose CRCs check, and the CRC-valid log records after it in dense LSN
//! order up to the first gap), writes them as a new, clean data dir, opens
//! that once, and reports exactly what it did not keep.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::backup::{self, BackupError};

/// A range of LSNs, both ends included.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct LsnRange {
    /// First LSN.
    pub first: u64,
    /// Last LSN.
    pub last: u64,
}

/// A file salvage did not use, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FileDropped {
    /// The file.
    pub path: PathBuf,
    /// Why it was not used.
    pub reason: String,
}

/// What salvage kept and what it dropped.
#[derive(Clone, Debug, Serialize)]
pub struct SalvageReport {
    /// The damaged data dir (read, never changed).
    pub source: PathBuf,
    /// The new data dir.
    pub out: PathBuf,
    /// LSN of the snapshot kept (0: none).
    pub lsn_snapshot: u64,
    /// The snapshot file kept.
    pub snapshot: Option<PathBuf>,
    /// Log records kept, after the snapshot.
    pub records_kept: u64,
    /// The salvaged state's last LSN.
    pub lsn_last: u64,
    /// Its state digest, as `Engine::state_digest` gives it.
    pub state_digest: u64,
    /// CRC-valid records found in the log but not kept (they follow a gap),
    /// as LSN ranges.
    pub records_dropped: Vec<LsnRange>,
    /// Their count.
    pub records_dropped_count: u64,
    /// Their payload bytes.
    pub bytes_dropped: u64,
    /// LSNs no readable record holds between the kept end and the highest
    /// LSN the log or its manifest shows, as ranges: lost outright.
    pub lsns_missing: Vec<LsnRange>,
    /// The highest LSN the damaged log is known to have reached (the
    /// highest record found, or its manifest's durable floor).
    pub lsn_known: u64,
    /// Snapshot files not used (unreadable, or no log records bridge them).
    pub files_dropped: Vec<FileDropped>,
    /// The damage the log's scan found (as `wal verify` reports it).
    pub damage: Vec<String>,
    /// True if anything was lost: a loss, not a clean copy.
    pub lossy: bool,
}

/// Ranges of consecutive LSNs.
fn ranges(lsns: impl Iterator<Item = u64>) -> Vec<LsnRange> {
    let mut found: Vec<LsnRange> = Vec::new();
    for lsn in lsns {
        match found.last_mut() {
            Some(range) if range.last + 1 == lsn => range.last = lsn,
            _ => found.push(LsnRange { first: lsn, last: lsn }),
        }
    }
    found
}

/// Every CRC-valid record of every segment file in `log`, each file read
/// on its own (the chain that recovery checks may be broken): from the
/// first slot, the records of the segment's lap (its header's, or where the
/// header is damaged, its first record's), until the first slot that is
/// none. The one definition of a valid record is `format::decode_slot`.
fn scan_segments(
    log: &Path,
    config: &recwal::wal::WalConfig,
    found: &mut BTreeMap<u64, (u8, Vec<u8>)>,
) -> Result<(), BackupError> {
    use recwal::wal::format::{decode_slot, SegmentHeader, SegmentState, Slot, SEGMENT_HEADER_BYTES};
    let entries = std::fs::read_dir(log).map_err(|source| BackupError::Io { path: log.to_path_buf(), source })?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| {
            path.file_name().is_some_and(|name| {
                let name = name.to_string_lossy();
                name.starts_with("seg-") && name.ends_with(".wal")
            })
        })
        .collect();
    paths.sort();
    for path in paths {
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(err) => {
                tracing::warn!(path = %path.display(), %err, "salvage: segment unreadable");
                continue;
            }
        };
        let header = bytes.get(..SEGMENT_HEADER_BYTES as usize).map(SegmentHeader::decode);
        let mut lap = match header {
            Some(Ok(header)) if header.state == SegmentState::Live => Some(header.seq),
            // A free segment holds no records of the log.
            Some(Ok(_)) => continue,
            // Damaged header: the lap is the first record's.
            _ => None,
        };
        let mut offset = SEGMENT_HEADER_BYTES;
        loop {
            let header = match decode_slot(&bytes, offset, lap.unwrap_or(u64::MAX), config.record_bytes_max) {
                Slot::Record(header) => header,
                Slot::Stale(header) if lap.is_none() => {
                    lap = Some(header.seq);
                    header
                }
                _ => break,
            };
            let start = (offset + 32) as usize;
            let payload = bytes[start..start + header.len as usize].to_vec();
            found.entry(header.lsn).or_insert((header.kind, payload));
            offset += header.frame_bytes();
        }
    }
    Ok(())
}

/// Salvages `source` into `out` (new or an empty directory).
pub fn salvage(source: &Path, out: &Path, engine_config: &recwal::EngineConfig) -> Result<SalvageReport, BackupError> {
    let wal_config = &engine_config.wal;
    let existed = out.exists();
    let out = std::path::absolute(out).map_err(|err| BackupError::Io { path: out.to_path_buf(), source: err })?;
    if std::fs::read_dir(&out).is_ok_and(|mut entries| entries.next().is_some()) {
        return Err(BackupError::Destination {
            path: out,
            reason: "is not empty; salvage writes only into a new or empty directory".to_string(),
        });
    }
    let log = source.join("wal");
    // Every CRC-valid record the scan can reach, by LSN; and its damage.
    let mut found: BTreeMap<u64, (u8, Vec<u8>)> = BTreeMap::new();
    let mut damage = Vec::new();
    let mut lsn_floor = 0u64;
    if log.is_dir() {
        // The scan that `open` runs, for the damage it finds (and to refuse a
        // log a server holds); then every segment file on its own, under the
        // log's lock.
        let scanned = recwal::wal::inspect(&log, wal_config, &mut |_, _| {});
        if !matches!(scanned, Err(recwal::wal::WalError::Locked { .. })) {
            let _lock = recwal::wal::DirLock::acquire(&log)?;
            scan_segments(&log, wal_config, &mut found)?;
        }
        match scanned {
            Ok(inspection) => {
                let report = &inspection.report;
                lsn_floor = report.lsn_last.max(report.lsn_released);
                if let Some(corruption) = &report.corruption {
                    damage.push(format!("corruption at {}: {}", corruption.position, corruption.reason));
                }
                if let Some(tail) = &report.tail_damage {
                    damage.push(format!("torn tail at {}: {}", tail.position, tail.reason));
                }
                for index in &report.segments_damaged {
                    damage.push(format!("segment {index}: damaged header"));
                }
                for index in &report.segments_missing {
                    damage.push(format!("segment {index}: file missing"));
                }
                for index in &report.segments_extended {
                    damage.push(format!("segment {index}: file shorter than segment_bytes"));
                }
                if report.records_missing > 0 {
                    damage.push(format!("{} durable records missing (the manifest's floor)", report.records_missing));
                    lsn_floor = lsn_floor.max(report.lsn_last + report.records_missing);
                }
            }
            Err(recwal::wal::WalError::Locked { path }) => {
                return Err(BackupError::Destination {
                    path,
                    reason: "is locked: a server has this log open; stop it (salvage reads a log no one writes)"
                        .to_string(),
                })
            }
            Err(err) => damage.push(format!("the scan stopped: {err}")),
        }
    } else {
        damage.push(format!("{}: the log directory is missing", log.display()));
    }
    // Snapshots, newest first: readable ones are candidates.
    let mut files_dropped = Vec::new();
    let mut candidates: Vec<(u64, Option<PathBuf>)> = Vec::new();
    let snapshots_dir = source.join("snapshots");
    if let Ok(entries) = std::fs::read_dir(&snapshots_dir) {
        let mut paths: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|path| {
                path.file_name().is_some_and(|name| {
                    let name = name.to_string_lossy();
                    name.starts_with("snapshot-") && name.ends_with(".bin")
                })
            })
            .collect();
        paths.sort();
        for path in paths.into_iter().rev() {
            match recwal::check_snapshot(&path) {
                Ok(lsn) => candidates.push((lsn, Some(path))),
                Err(err) => files_dropped.push(FileDropped { path, reason: err.to_string() }),
            }
        }
    }
    // What `open` refuses (no MANIFEST, no segment file, yet snapshots): the
    // log is gone, and records after the newest snapshot may have existed.
    let snapshots_found = candidates.len() + files_dropped.len();
    if log.is_dir() && snapshots_found > 0 && matches!(recwal::wal::find_log_file(&log), Ok(None)) {
        damage.push(format!(
            "{}: no MANIFEST and no segment file, though {} holds snapshots: the log is gone",
            log.display(),
            snapshots_dir.display()
        ));
    }
    candidates.push((0, None));
    // The base that keeps the most: its snapshot, then dense records after it.
    let kept_end = |base: u64| {
        let mut end = base;
        while found.contains_key(&(end + 1)) {
            end += 1;
        }
        end
    };
    let (lsn_snapshot, snapshot) = candidates
        .iter()
        .filter(|(lsn, _)| *lsn > 0 || found.is_empty() || found.contains_key(&1))
        .max_by_key(|(lsn, _)| (kept_end(*lsn), *lsn))
        .cloned()
        .unwrap_or((0, None));
    for (lsn, path) in &candidates {
        if let Some(path) = path {
            if *lsn != lsn_snapshot {
                let reason = if *lsn < lsn_snapshot {
                    format!("covers LSN {lsn}; a newer snapshot (LSN {lsn_snapshot}) was kept")
                } else {
                    format!("covers LSN {lsn}, beyond what the log and the kept snapshot reach")
                };
                files_dropped.push(FileDropped { path: path.clone(), reason });
            }
        }
    }
    let lsn_last = kept_end(lsn_snapshot);
    let records: Vec<recwal::BackupRecord> = found
        .range((Bound::Excluded(lsn_snapshot), Bound::Included(lsn_last)))
        .map(|(lsn, (kind, payload))| (*lsn, *kind, payload.clone()))
        .collect();
    let dropped: Vec<(u64, usize)> = found
        .range((Bound::Excluded(lsn_last), Bound::Unbounded))
        .map(|(lsn, (_, payload))| (*lsn, payload.len()))
        .collect();
    let lsn_known = found.keys().next_back().copied().unwrap_or(0).max(lsn_floor).max(lsn_snapshot);
    let missing = (lsn_last + 1..=lsn_known).filter(|lsn| !found.contains_key(lsn));
    let lsns_missing = ranges(missing);
    let written = backup::write_data_dir(
        &out,
        snapshot.as_ref().map(|path| (path.as_path(), lsn_snapshot)),
        lsn_snapshot,
        &records,
        Some(&source.join("models")),
        wal_config,
    );
    if let Err(err) = written {
        backup::remove_created(&out, existed);
        return Err(err);
    }
    let state_digest = match backup::check_opens(&out, lsn_last, engine_config) {
        Ok(digest) => digest,
        Err(err) => {
            backup::remove_created(&out, existed);
            return Err(err);
        }
    };
    let records_dropped = ranges(dropped.iter().map(|(lsn, _)| *lsn));
    // Lost: LSNs shown to have existed and not kept; or damage to the log,
    // after which records may have existed that nothing shows any more.
    let lossy = !dropped.is_empty() || !lsns_missing.is_empty() || !damage.is_empty();
    let report = SalvageReport {
        source: source.to_path_buf(),
        out,
        lsn_snapshot,
        snapshot,
        records_kept: records.len() as u64,
        lsn_last,
        state_digest,
        records_dropped,
        records_dropped_count: dropped.len() as u64,
        bytes_dropped: dropped.iter().map(|(_, len)| *len as u64).sum(),
        lsns_missing,
        lsn_known,
        files_dropped,
        damage,
        lossy,
    };
    tracing::info!(source = %report.source.display(), out = %report.out.display(), lsn_last, lossy = report.lossy, "salvaged");
    Ok(report)
}

impl SalvageReport {
    /// The report in words, one fact per line.
    pub fn human(&self) -> String {
        let mut lines = Vec::new();
        lines.push(format!("salvaged {} into {}", self.source.display(), self.out.display()));
        match &self.snapshot {
            Some(path) => lines.push(format!("kept: snapshot {} (LSN {})", path.display(), self.lsn_snapshot)),
            None => lines.push("kept: no snapshot".to_string()),
        }
        if self.records_kept > 0 {
            lines.push(format!(
                "kept: {} log records, LSNs {}..{}",
                self.records_kept,
                self.lsn_snapshot + 1,
                self.lsn_last
            ));
        } else {
            lines.push("kept: no log records".to_string());
        }
        lines.push(format!(
            "the new data dir holds the state at LSN {} (digest {:016x})",
            self.lsn_last, self.state_digest
        ));
        for damage in &self.damage {
            lines.push(format!("damage: {damage}"));
        }
        for range in &self.lsns_missing {
            lines.push(format!("LOST: LSNs {}..{}: no readable record holds them", range.first, range.last));
        }
        for range in &self.records_dropped {
            lines.push(format!("DROPPED: LSNs {}..{}: readable, but after a gap", range.first, range.last));
        }
        if self.records_dropped_count > 0 {
            lines.push(format!(
                "DROPPED: {} records, {} payload bytes in all",
                self.records_dropped_count, self.bytes_dropped
            ));
        }
        for file in &self.files_dropped {
            lines.push(format!("not used: {}: {}", file.path.display(), file.reason));
        }
        lines.push(match (self.lossy, self.lsn_known > self.lsn_last) {
            (true, true) => format!(
                "LOSS: the damaged log reached LSN {}; the salvaged state ends at LSN {}",
                self.lsn_known, self.lsn_last
            ),
            (true, false) => format!(
                "LOSS POSSIBLE: the log is damaged; the salvaged state ends at LSN {}, the last LSN anything \
                 readable shows, and records after it may have existed",
                self.lsn_last
            ),
            (false, _) => format!("no loss: every LSN up to {} was recovered", self.lsn_last),
        });
        lines.join("\n")
    }
}
