//! Start-up recovery: choose the newest readable snapshot (setting aside
//! damaged ones), check it fits the log and the configuration, then replay
//! the log after it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use recwal_wal::{RecoveryReport, Wal, WalError};
use tracing::{info, warn};

use super::{OpenReport, ReplayProgress};
use crate::config::EngineConfig;
use crate::error::EngineError;
use crate::record::LogRecord;
use crate::snapshot;
use crate::state::State;

/// Snapshots that could not be read, with the reason, newest first.
type Skipped = Vec<(PathBuf, String)>;

/// The snapshot a start begins from, chosen and checked against what the
/// log's recovery found before the log repaired anything (`choose`, run
/// as `Wal::open_checked`'s check): a start refused here leaves the data
/// directory as it was.
pub(super) struct Chosen {
    state: Option<State>,
    skipped: Skipped,
    snapshot_load: Duration,
}

/// The snapshot directory of data directory `dir`, created if missing.
pub(super) fn snapshots_dir(dir: &Path) -> Result<PathBuf, EngineError> {
    let snapshots_dir = dir.join("snapshots");
    std::fs::create_dir_all(&snapshots_dir)
        .map_err(|err| EngineError::io(format!("creating {}", snapshots_dir.display()), err))?;
    Ok(snapshots_dir)
}

/// The engine's check for `Wal::open_checked`: chooses the snapshot (into
/// `chosen`, with the engine's own error if the start is refused) and
/// answers the log.
pub(super) fn check_start(
    found: &RecoveryReport,
    snapshots_dir: &Path,
    config: &EngineConfig,
    chosen: &mut Option<Result<Chosen, EngineError>>,
) -> Result<(), String> {
    let outcome = choose(found, snapshots_dir, config);
    let answer = outcome.as_ref().map(|_| ()).map_err(ToString::to_string);
    *chosen = Some(outcome);
    answer
}

/// The opened log and the chosen snapshot, or why the start failed: the
/// engine's own error when its check refused, else the log's.
pub(super) fn started(
    opened: Result<Wal, WalError>,
    chosen: Option<Result<Chosen, EngineError>>,
) -> Result<(Wal, Chosen), EngineError> {
    match (opened, chosen) {
        (Ok(wal), Some(Ok(chosen))) => Ok((wal, chosen)),
        (Err(WalError::Refused { .. }), Some(Err(refused))) => Err(refused),
        (Err(err), _) => Err(err.into()),
        // `open_checked` runs the check before it returns a log.
        (Ok(_), _) => Err(EngineError::Unrecoverable("the log opened without the engine's start check".to_string())),
    }
}

/// Chooses the newest readable snapshot and checks that it fits the log
/// recovery found (`found`: nothing repaired yet) and the configuration.
pub(super) fn choose(
    found: &RecoveryReport,
    snapshots_dir: &Path,
    config: &EngineConfig,
) -> Result<Chosen, EngineError> {
    let started = Instant::now();
    let (state, skipped) = choose_snapshot(found.lsn_last, snapshots_dir)?;
    let snapshot_load = started.elapsed();
    let lsn_state = state.as_ref().map_or(0, |state| state.lsn_applied());
    check_no_gap(found.lsn_first, snapshots_dir, lsn_state, skipped.len())?;
    if let Some(loaded) = &state {
        check_half_life(loaded, config)?;
    }
    Ok(Chosen { state, skipped, snapshot_load })
}

/// Replays the log after the chosen snapshot.
pub(super) fn recover(
    wal: &Wal,
    snapshots_dir: &Path,
    config: &EngineConfig,
    chosen: Chosen,
    progress: &(dyn Fn(ReplayProgress) + Sync),
) -> Result<(State, OpenReport), EngineError> {
    let Chosen { state, skipped, snapshot_load } = chosen;
    let lsn_state = state.as_ref().map_or(0, |state| state.lsn_applied());
    if state.is_none() && !skipped.is_empty() {
        warn!(unreadable = skipped.len(), "no snapshot readable; rebuilding everything from the log");
    }
    let mut state = state.unwrap_or_else(|| State::new(config.popularity.half_life));
    let replay_started = Instant::now();
    let replayed = replay(wal, &mut state, config, progress)?;
    let replay = replay_started.elapsed();
    info!(records = replayed, ms = replay.as_millis() as u64, lsn_snapshot = lsn_state, "replay finished");
    // Set aside only once the start succeeds: a refused start changes
    // nothing on disk (and says how many snapshots it could not read).
    for (path, _) in &skipped {
        quarantine(snapshots_dir, path)?;
    }
    release_covered(wal, snapshots_dir, lsn_state)?;
    let report = OpenReport {
        wal: wal.recovery_report().clone(),
        lsn_snapshot: lsn_state,
        snapshots_skipped: skipped,
        records_replayed: replayed,
        snapshot_load,
        replay,
    };
    Ok((state, report))
}

/// The newest snapshot that reads back, newest first; each unreadable one
/// is listed (and set aside, renamed `.bad`, once the start succeeds). A
/// snapshot beyond the log's end, or one written by another build, stops
/// the start.
fn choose_snapshot(last: u64, snapshots_dir: &Path) -> Result<(Option<State>, Skipped), EngineError> {
    let mut skipped = Vec::new();
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
            Ok(loaded) => return Ok((Some(loaded), skipped)),
            Err(EngineError::Snapshot { reason, .. }) if reason.starts_with(snapshot::VERSION_MISMATCH) => {
                // Written by another build: not damage, and nothing to fall
                // back from. Leave it in place and refuse to start.
                return Err(EngineError::Snapshot {
                    path,
                    reason: format!("{reason}; open this data directory with the recwal that wrote it"),
                });
            }
            Err(err) => {
                warn!(path = %path.display(), %err, "snapshot unreadable; trying the previous one");
                skipped.push((path, err.to_string()));
            }
        }
    }
    Ok((None, skipped))
}

/// Sets an unreadable snapshot aside (not deleted: it is evidence), so it
/// never counts as a kept snapshot and the log stays pinned for the good one.
fn quarantine(snapshots_dir: &Path, path: &Path) -> Result<(), EngineError> {
    let mut quarantined = path.to_path_buf().into_os_string();
    quarantined.push(".bad");
    let quarantined = PathBuf::from(quarantined);
    warn!(path = %path.display(), moved_to = %quarantined.display(), "unreadable snapshot set aside");
    std::fs::rename(path, &quarantined)
        .map_err(|io| EngineError::io(format!("setting aside {}", path.display()), io))?;
    snapshot::sync_dir(snapshots_dir)
}

/// The log must hold every record after the chosen snapshot.
fn check_no_gap(first: u64, snapshots_dir: &Path, lsn_state: u64, n_skipped: usize) -> Result<(), EngineError> {
    if lsn_state + 1 < first {
        return Err(EngineError::Unrecoverable(format!(
            "the log starts at LSN {first} and the newest readable snapshot in {} covers LSN {lsn_state}: records \
             {}..{} are gone ({n_skipped} snapshot(s) unreadable; a newer snapshot was deleted or damaged); restore \
             the data directory from a backup",
            snapshots_dir.display(),
            lsn_state + 1,
            first - 1,
        )));
    }
    Ok(())
}

/// Lets the ring reuse the segments the kept snapshots cover, as the last
/// checkpoint before the restart did: a release reaches disk only when the
/// next segment starts, so without this a node restarted between a
/// checkpoint and its next segment would grow the ring by a segment each
/// time instead of reusing one. The rule is the checkpoint's: keep the log
/// from the oldest kept snapshot (and from the loaded one, if older), so any
/// of them can still be fallen back to. Nothing is written here.
fn release_covered(wal: &Wal, snapshots_dir: &Path, lsn_state: u64) -> Result<(), EngineError> {
    if lsn_state == 0 {
        return Ok(());
    }
    let oldest = snapshot::list(snapshots_dir)?.iter().map(|(lsn, _)| *lsn).min().unwrap_or(lsn_state);
    // The log reports what it released ("wal checkpoint").
    wal.checkpoint(oldest.min(lsn_state))?;
    Ok(())
}

/// The popularity half-life is baked into a snapshot's scores: it cannot
/// change once one exists.
fn check_half_life(loaded: &State, config: &EngineConfig) -> Result<(), EngineError> {
    let half_life_ms = config.popularity.half_life.map(|half_life| half_life.as_secs_f64() * 1000.0);
    if loaded.half_life_ms() != half_life_ms {
        return Err(EngineError::InvalidConfig {
            field: "popularity.half_life",
            rule: format!(
                "the data directory's snapshot was built with a half-life of {:?} ms, the configuration asks for \
                 {:?} ms; the setting cannot change once a snapshot exists",
                loaded.half_life_ms(),
                half_life_ms
            ),
        });
    }
    Ok(())
}

/// Applies every record of the log after the state's LSN, in LSN order,
/// reporting progress; returns the number replayed.
fn replay(
    wal: &Wal,
    state: &mut State,
    config: &EngineConfig,
    progress: &(dyn Fn(ReplayProgress) + Sync),
) -> Result<u64, EngineError> {
    let lsn_state = state.lsn_applied();
    let last = wal.lsn_written();
    let total = last.saturating_sub(lsn_state);
    let mut replayed = 0u64;
    let reader = wal.read_from(lsn_state + 1)?;
    state.begin_replay();
    let started = Instant::now();
    let mut last_log = Instant::now();
    let mut last_progress = Instant::now();
    info!(from = lsn_state + 1, to = last, records = total, "replaying the log");
    progress(ReplayProgress { records_done: 0, records_total: total });
    for record in reader {
        let record = record?;
        let decoded = LogRecord::decode(record.lsn(), record.kind(), record.payload())?;
        if let LogRecord::Replicated { stream_seq, .. } = &decoded {
            // Stream messages are logged in stream order only: one that is
            // not newer than the state means the log is not what this engine
            // wrote, never a message to skip in silence.
            if *stream_seq <= state.stream_seq() {
                return Err(EngineError::BadRecord {
                    lsn: record.lsn(),
                    reason: format!(
                        "replicated stream message {stream_seq} after message {}: the log breaks stream order",
                        state.stream_seq()
                    ),
                });
            }
        }
        state.apply(record.lsn(), &decoded, &config.dedup);
        replayed += 1;
        if replayed.is_multiple_of(1024) && last_progress.elapsed() >= Duration::from_millis(100) {
            last_progress = Instant::now();
            progress(ReplayProgress { records_done: replayed, records_total: total });
        }
        if last_log.elapsed() >= Duration::from_secs(1) {
            last_log = Instant::now();
            let rate = replayed as f64 / started.elapsed().as_secs_f64();
            info!(
                percent = format!("{:.1}", 100.0 * replayed as f64 / total.max(1) as f64),
                records_per_sec = rate as u64,
                "replay progress"
            );
        }
    }
    state.finish_replay();
    progress(ReplayProgress { records_done: replayed, records_total: total.max(replayed) });
    Ok(replayed)
}
