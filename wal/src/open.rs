//! Opening a log: find (or create) its segment files, scan them, apply the
//! repairs the scan planned (`repair.rs`), then build the ring and the shared
//! state from the recovered log and start the flusher.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use tracing::{info, info_span, warn};

use crate::config::{RecoveryMode, WalConfig};
use crate::error::WalError;
use crate::format::{HeaderDefect, SEGMENT_HEADER_BYTES};
use crate::group_commit::{FlushMsg, GroupCommit};
use crate::manifest::Manifest;
use crate::metrics::Metrics;
use crate::recovery::{
    check_floor, existing_segment_bytes, open_segments, scan, FileRepair, FoundFiles, OpenCheck, OpenedSegment,
    RecoveryReport, Scan,
};
use crate::repair::apply_repairs;
use crate::ring::{FreeSegment, LiveSegment, Ring, RingStart};
use crate::segment::Segment;
use crate::shared::{Inner, Shared};
use crate::staging::Staging;
use crate::storage::{DirLock, Storage};

/// An open log: its shared state, its flusher thread and what recovery found.
pub(crate) struct OpenLog {
    pub(crate) shared: Arc<Shared>,
    pub(crate) flusher: JoinHandle<()>,
    pub(crate) preparer: JoinHandle<()>,
    pub(crate) report: RecoveryReport,
}

/// Recovers the log on `storage` (creating it if it was never initialised)
/// and opens it for appending.
pub(crate) fn open_log(
    storage: Box<dyn Storage>,
    config: WalConfig,
    dir_lock: Option<Arc<DirLock>>,
    check: OpenCheck<'_>,
) -> Result<OpenLog, WalError> {
    config.validate()?;
    let config = adopt_log_geometry(storage.as_ref(), config)?;
    let span = info_span!("wal.open", segment_bytes = config.segment_bytes);
    let _entered = span.enter();
    let started = Instant::now();
    let metrics = Metrics::new();

    let found = find_or_create(storage.as_ref(), &config, &metrics)?;
    let config = adopt_segment_count(storage.as_ref(), config, &found);
    let describe = |index: u32| storage.describe(Some(index));
    let (plan, report) = plan_recovery(storage.as_ref(), &config, &found)?;
    // The caller decides before anything is repaired: a start it refuses
    // leaves the log as it found it (a torn tail not yet cut, no manifest
    // written), for a salvage or a restore to work on.
    check(&report).map_err(|reason| WalError::Refused { reason })?;
    let next_seq = apply_repairs(&plan, &found.opened, config.segment_bytes, &describe)?;

    let next_index = found.opened.iter().map(|segment| segment.index + 1).max().unwrap_or(0);
    // Record the segment files this log has. The floor is not raised to
    // what was recovered: after a failed sync the page cache may still
    // show records that never reached the disk (FORMAT.md, assumption 4),
    // and a floor must only ever name LSNs this process saw synced.
    let lsn_floor = found.manifest.map_or(0, |manifest| manifest.lsn_floor).min(plan.lsn_next - 1);
    let manifest = Manifest { segment_bytes: config.segment_bytes, segments_created: next_index, lsn_floor };
    // What the file holds from here on, as far as this process knows
    // (nothing, if the write failed: the next write then goes ahead).
    let on_disk = if write_manifest_or_warn(storage.as_ref(), found.manifest, manifest) {
        (next_index, lsn_floor)
    } else {
        (0, 0)
    };
    let ring = ring_from_plan(&plan, found.opened, &config, next_seq, next_index, dir_lock.clone());

    let (flusher_tx, flusher_rx) = crossbeam_channel::unbounded();
    let (preparer_tx, preparer_rx) = crossbeam_channel::unbounded();
    let lsn_last = plan.lsn_next - 1;
    let shared = Arc::new(Shared {
        storage,
        inner: Mutex::new(Inner {
            ring,
            dirty: Vec::new(),
            lsn_next: plan.lsn_next,
            batch_bytes: 0,
            staged: Staging::new(staging_capacity(&config)),
            prepare_at_first_append: true,
        }),
        space_freed: Condvar::new(),
        lsn_written: AtomicU64::new(lsn_last),
        lsn_appended: AtomicU64::new(lsn_last),
        write_order: Mutex::new(Vec::new()),
        staging_limit: staging_limit(&config),
        always_appending: AtomicU64::new(0),
        always_staged: AtomicU64::new(0),
        commit: Arc::new(GroupCommit::new(lsn_last)),
        metrics,
        flusher_tx,
        preparer_tx,
        dir_lock,
        manifest_writes: Mutex::new(on_disk),
        config,
    });
    let flusher = shared.spawn_flusher(flusher_rx)?;
    let preparer = match shared.spawn_preparer(preparer_rx) {
        Ok(preparer) => preparer,
        Err(err) => {
            let _ = shared.flusher_tx.send(FlushMsg::Shutdown);
            let _ = flusher.join();
            return Err(err);
        }
    };
    log_recovered(&report, started);
    Ok(OpenLog { shared, flusher, preparer, report })
}

/// Opens the segment files; creates `segments_initial` of them, and the
/// manifest, for a log never initialised. Later segments are created as
/// the ring needs them, ahead of time by the preparer (`shared.rs`).
fn find_or_create(storage: &dyn Storage, config: &WalConfig, metrics: &Metrics) -> Result<FoundFiles, WalError> {
    let repair = match config.recovery_mode {
        RecoveryMode::PointInTime => FileRepair::Restore,
        _ => FileRepair::Refuse,
    };
    let mut found = open_segments(storage, config.segment_bytes, repair)?;
    if !found.opened.is_empty() {
        return Ok(found);
    }
    // Never initialised: no manifest and no segment file (a manifest
    // with no segment left is refused by `open_segments`).
    debug_assert!(found.manifest.is_none());
    for index in 0..config.segments_initial {
        let path = storage.describe(Some(index));
        let file = storage
            .create_segment(index, config.segment_bytes)
            .map_err(|err| WalError::io("create segment", &path, err))?;
        metrics.counters.segments_created.fetch_add(1, Ordering::Relaxed);
        found.opened.push(OpenedSegment { index, file, header: Err(HeaderDefect::Zeroed) });
    }
    // From here on, a missing or zeroed first segment is damage, not a new log.
    let created =
        Manifest { segment_bytes: config.segment_bytes, segments_created: config.segments_initial, lsn_floor: 0 };
    storage
        .write_manifest(&created.encode())
        .map_err(|err| WalError::io("write manifest", storage.describe_manifest(), err))?;
    Ok(found)
}

/// The configuration to open with: `config`, with the segment size of the
/// existing log in `storage` if it has one. A log's segment size is fixed when
/// it is created (every file, the manifest and every header record it), so a
/// different configured size (a server and a library sharing a data
/// directory) is a warning, not an error; `record_bytes_max` is lowered to
/// what fits the log's segments if it was larger.
fn adopt_log_geometry(storage: &dyn Storage, config: WalConfig) -> Result<WalConfig, WalError> {
    let Some(log_bytes) = existing_segment_bytes(storage)? else {
        return Ok(config);
    };
    if log_bytes == config.segment_bytes {
        return Ok(config);
    }
    warn!(
        path = %storage.describe(None).display(),
        segment_bytes_configured = config.segment_bytes,
        segment_bytes_log = log_bytes,
        "the log was created with another segment size; using the log's"
    );
    let adopted = config.segment_bytes(log_bytes);
    adopted.validate()?;
    Ok(adopted)
}

/// Segment files are never deleted (FORMAT.md, "Files"), so a log that
/// already has more of them than `segments_max` keeps them all: the bound
/// in force is the number it has, with a warning naming both, and the
/// configuration in force (`Wal::config`) says so. Silently keeping the
/// lower figure would misstate the log's disk use.
fn adopt_segment_count(storage: &dyn Storage, config: WalConfig, found: &FoundFiles) -> WalConfig {
    let present = found.opened.iter().map(|segment| segment.index + 1).max().unwrap_or(0);
    if present <= config.segments_max {
        return config;
    }
    warn!(
        path = %storage.describe(None).display(),
        segments_max_configured = config.segments_max,
        segment_files = present,
        "the log already has more segment files than segments_max allows; it keeps them (files are never \
         deleted) and grows no further"
    );
    config.segments_max(present)
}

/// Scans the segments and checks the result against the manifest's floor.
fn plan_recovery(
    storage: &dyn Storage,
    config: &WalConfig,
    found: &FoundFiles,
) -> Result<(Scan, RecoveryReport), WalError> {
    let describe = |index: u32| storage.describe(Some(index));
    let plan = scan(
        &found.opened,
        config.segment_bytes,
        config.record_bytes_readable(),
        config.recovery_mode,
        &describe,
        &mut |_, _| {},
    )?;
    let mut report = plan.report.clone();
    report.segments_extended = found.short.clone();
    report.segments_missing = found.missing.clone();
    check_floor(found.manifest, storage, &found.opened, &plan, config.recovery_mode, &mut report)?;
    Ok((plan, report))
}

/// The ring of the recovered log: the plan's chain is live, every other
/// segment free.
fn ring_from_plan(
    plan: &Scan,
    opened: Vec<OpenedSegment>,
    config: &WalConfig,
    next_seq: u64,
    next_index: u32,
    dir_lock: Option<Arc<DirLock>>,
) -> Ring {
    let segments_total = opened.len() as u32;
    let mut segments: Vec<Option<Arc<Segment>>> = opened
        .into_iter()
        .map(|opened| Some(Arc::new(Segment::new(opened.index, opened.file, dir_lock.clone()))))
        .collect();
    let mut live = VecDeque::new();
    for link in &plan.chain {
        if let Some(segment) = segments[link.slot].take() {
            live.push_back(LiveSegment { segment, seq: link.seq, lsn_first: link.lsn_first });
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
    Ring::new(RingStart {
        live,
        free,
        write_offset,
        next_seq,
        // Never beyond the recovered log: a header written later must not
        // claim records released that this log does not have.
        lsn_released: plan.lsn_released.min(plan.lsn_next - 1),
        segments_total,
        next_index,
    })
}

fn log_recovered(report: &RecoveryReport, started: Instant) {
    if report.is_clean() {
        info!(
            segments = report.segments_scanned,
            records = report.records_recovered,
            lsn_last = report.lsn_last,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "wal recovered"
        );
    } else {
        warn!(
            segments = report.segments_scanned,
            records = report.records_recovered,
            lsn_last = report.lsn_last,
            bytes_cut = report.bytes_cut,
            records_dropped = report.records_dropped,
            tail_damage = ?report.tail_damage,
            corruption = ?report.corruption,
            "wal recovered with repairs"
        );
    }
}

/// Records in the manifest that segment files `0..segments_created` exist and
/// that every LSN up to `lsn_floor` is durable, unless it already says so
/// (an open that changes nothing writes nothing: a tool that opens a data
/// dir and refuses its input leaves it as it was). A failure only weakens
/// what the next open can check, so it is logged, not returned; false then.
fn write_manifest_or_warn(storage: &dyn Storage, found: Option<Manifest>, manifest: Manifest) -> bool {
    if found == Some(manifest) {
        return true;
    }
    if let Err(err) = storage.write_manifest(&manifest.encode()) {
        warn!(path = %storage.describe_manifest().display(), %err, "could not update the log's manifest");
        return false;
    }
    true
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
