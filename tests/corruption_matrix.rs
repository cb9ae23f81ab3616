//! The corruption matrix: for a data directory with no snapshot, with
//! snapshots, and after the log's ring has lapped, each ended either by a
//! clean close or by a crash, damage each kind of file in each way an
//! operator's disk (or hand) can, and check that `Engine::open` ends in
//! exactly one of three outcomes:
//!
//! - **refused**, with a message that names the damaged file, and with
//!   nothing under `wal/` changed;
//! - **identical**: the state digest equals the undamaged one;
//! - **reported loss**: opened with less than before, and the loss is in the
//!   open report (the cases docs/DURABILITY.md names: a damaged newest record
//!   of a log that was not closed cleanly reads as a torn write).
//!
//! "Recovered with loss in silence" fails the test, and `wal verify` (run
//! first, read-only) must agree with `open` on every case. The table in
//! docs/DURABILITY.md, "Damage at rest", lists the same cases and outcomes.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use recwal::record::KIND_ITEM_UPSERT_V1;
use recwal::wal::{inspect, verify, RecordInfo, SyncPolicy};
use recwal::{Engine, EngineConfig, Event, EventKind, Item};

fn config() -> EngineConfig {
    let mut config = EngineConfig::default();
    config.wal = config.wal.segment_bytes(16 << 10).segments_initial(2).segments_max(6).sync_policy(SyncPolicy::Always);
    config.checkpoint.disable_automatic();
    config.checkpoint.snapshots_kept = 2;
    config
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum History {
    NoSnapshot,
    WithSnapshots,
    Lapped,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ending {
    Closed,
    Crashed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    /// The segment holding the oldest record of the log.
    OldestSegment,
    /// The segment holding the newest record.
    ActiveSegment,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Damage {
    DeleteSegment(Target),
    TruncateSegmentToZero(Target),
    TruncateSegmentMidRecord(Target),
    ZeroSegmentHeader(Target),
    /// A bit flip in the middle of the records the log still needs (after
    /// the last released one).
    FlipDurableRecord,
    /// A byte inside a catalogue record (an item upsert) that later records
    /// follow: the same as any other record.
    FlipItemRecord,
    FlipNewestRecord,
    FlipUnusedTail,
    DeleteNewestSnapshot,
    TruncateNewestSnapshot,
    FlipNewestSnapshot,
    /// Every snapshot file deleted: the log alone must hold the state.
    DeleteAllSnapshots,
}

#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Refused,
    Identical,
    ReportedLoss,
}

struct Template {
    dir: tempfile::TempDir,
    digest: u64,
    records: Vec<RecordInfo>,
    /// Records up to here were released by a checkpoint: the log may keep
    /// them until their segment is reused, but no longer needs them.
    lsn_released: u64,
}

fn event(n: u64) -> Event {
    Event::new(format!("u{}", n % 37), format!("i{}", (n * 7) % 101), EventKind::View).with_id(format!("e{n}"))
}

fn build(history: History, ending: Ending) -> Template {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), config()).unwrap();
    let mut n = 0u64;
    // Every 25th record is a catalogue record (an item upsert).
    let mut ingest = |engine: &Engine, count: u64| {
        for _ in 0..count {
            n += 1;
            if n.is_multiple_of(25) {
                engine.upsert_item(&Item::new(format!("i{}", n % 101)).category("c").label("n", n as f64)).unwrap();
            } else {
                engine.ingest(event(n)).unwrap();
            }
        }
    };
    match history {
        History::NoSnapshot => ingest(&engine, 400),
        History::WithSnapshots => {
            ingest(&engine, 300);
            engine.checkpoint().unwrap();
            ingest(&engine, 150);
            engine.checkpoint().unwrap();
            ingest(&engine, 60);
        }
        History::Lapped => {
            for _ in 0..12 {
                ingest(&engine, 150);
                engine.checkpoint().unwrap();
            }
            ingest(&engine, 60);
            assert!(engine.wal_metrics().segments_recycled > 0, "the ring must have lapped");
        }
    }
    let digest = engine.state_digest();
    match ending {
        Ending::Closed => engine.close().unwrap(),
        // Always-synced: dropping without close leaves what a SIGKILL leaves.
        Ending::Crashed => drop(engine),
    }
    let mut records = Vec::new();
    let wal_config = config().wal;
    let inspection = inspect(&dir.path().join("wal"), &wal_config, &mut |info, _| records.push(*info)).unwrap();
    let lsn_released = inspection.report.lsn_released;
    Template { dir, digest, records, lsn_released }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

fn segment_path(dir: &Path, index: u32) -> PathBuf {
    dir.join("wal").join(format!("seg-{index:08}.wal"))
}

fn newest_snapshot(dir: &Path) -> Option<PathBuf> {
    let mut snapshots: Vec<PathBuf> = std::fs::read_dir(dir.join("snapshots"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "bin"))
        .collect();
    snapshots.sort();
    snapshots.pop()
}

fn flip(path: &Path, offset: u64) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[offset as usize] ^= 0x5A;
    std::fs::write(path, bytes).unwrap();
}

/// Applies `damage`; returns the file damaged, or `None` where the case
/// does not apply to this history (no snapshot to damage).
fn apply(damage: Damage, dir: &Path, records: &[RecordInfo], lsn_released: u64) -> Option<PathBuf> {
    let oldest = records.first().unwrap();
    let newest = records.last().unwrap();
    let target_segment = |target: Target| match target {
        Target::OldestSegment => oldest.segment_index,
        Target::ActiveSegment => newest.segment_index,
    };
    let record_end = |record: &RecordInfo| record.offset + 32 + u64::from(record.len);
    match damage {
        Damage::DeleteSegment(target) => {
            let path = segment_path(dir, target_segment(target));
            std::fs::remove_file(&path).unwrap();
            Some(path)
        }
        Damage::TruncateSegmentToZero(target) => {
            let path = segment_path(dir, target_segment(target));
            std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(0).unwrap();
            Some(path)
        }
        Damage::TruncateSegmentMidRecord(target) => {
            let index = target_segment(target);
            let in_segment: Vec<&RecordInfo> = records.iter().filter(|r| r.segment_index == index).collect();
            let middle = in_segment[in_segment.len() / 2];
            let path = segment_path(dir, index);
            std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(middle.offset + 13).unwrap();
            Some(path)
        }
        Damage::ZeroSegmentHeader(target) => {
            let path = segment_path(dir, target_segment(target));
            let mut bytes = std::fs::read(&path).unwrap();
            bytes[..64].fill(0);
            std::fs::write(&path, bytes).unwrap();
            Some(path)
        }
        Damage::FlipDurableRecord => {
            // A record the log still needs: released ones (kept until their
            // segment is reused) are no longer part of it.
            let needed: Vec<&RecordInfo> = records.iter().filter(|record| record.lsn > lsn_released).collect();
            let middle = needed[needed.len() / 2];
            let path = segment_path(dir, middle.segment_index);
            flip(&path, middle.offset + 32 + u64::from(middle.len) / 2);
            Some(path)
        }
        Damage::FlipItemRecord => {
            // One the log still needs (above the released LSN), not the newest.
            let items: Vec<&RecordInfo> = records[..records.len() - 1]
                .iter()
                .filter(|record| record.kind == KIND_ITEM_UPSERT_V1 && record.lsn > lsn_released)
                .collect();
            let item = items[items.len() / 2];
            let path = segment_path(dir, item.segment_index);
            flip(&path, item.offset + 32 + u64::from(item.len) / 2);
            Some(path)
        }
        Damage::FlipNewestRecord => {
            let path = segment_path(dir, newest.segment_index);
            flip(&path, newest.offset + 32 + u64::from(newest.len) / 2);
            Some(path)
        }
        Damage::FlipUnusedTail => {
            let path = segment_path(dir, newest.segment_index);
            let offset = record_end(newest).next_multiple_of(8) + 200;
            if offset >= std::fs::metadata(&path).unwrap().len() {
                return None;
            }
            flip(&path, offset);
            Some(path)
        }
        Damage::DeleteNewestSnapshot => {
            let path = newest_snapshot(dir)?;
            std::fs::remove_file(&path).unwrap();
            Some(path)
        }
        Damage::TruncateNewestSnapshot => {
            let path = newest_snapshot(dir)?;
            let len = std::fs::metadata(&path).unwrap().len();
            std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(len / 2).unwrap();
            Some(path)
        }
        Damage::FlipNewestSnapshot => {
            let path = newest_snapshot(dir)?;
            let len = std::fs::metadata(&path).unwrap().len();
            flip(&path, len / 2);
            Some(path)
        }
        Damage::DeleteAllSnapshots => {
            newest_snapshot(dir)?;
            let snapshots = dir.join("snapshots");
            for entry in std::fs::read_dir(&snapshots).unwrap() {
                std::fs::remove_file(entry.unwrap().path()).unwrap();
            }
            Some(snapshots)
        }
    }
}

/// The outcome docs/DURABILITY.md promises for each case.
fn promised(damage: Damage, history: History, ending: Ending) -> &'static [Outcome] {
    match damage {
        Damage::DeleteSegment(_)
        | Damage::TruncateSegmentToZero(_)
        | Damage::TruncateSegmentMidRecord(_)
        | Damage::ZeroSegmentHeader(_)
        | Damage::FlipDurableRecord
        | Damage::FlipItemRecord => &[Outcome::Refused],
        // After a clean close the manifest records the log's end: damage to
        // the newest record is damage. After a crash it is indistinguishable
        // from a torn write unless a checkpoint or the ring's growth recorded
        // the log as durable past it.
        Damage::FlipNewestRecord => match ending {
            Ending::Closed => &[Outcome::Refused],
            Ending::Crashed => &[Outcome::ReportedLoss, Outcome::Refused],
        },
        Damage::FlipUnusedTail => &[Outcome::Identical],
        // The log is kept from the oldest kept snapshot on.
        Damage::DeleteNewestSnapshot | Damage::TruncateNewestSnapshot | Damage::FlipNewestSnapshot => {
            &[Outcome::Identical]
        }
        // The log still holds every record until its ring laps.
        Damage::DeleteAllSnapshots => match history {
            History::Lapped => &[Outcome::Refused],
            _ => &[Outcome::Identical],
        },
    }
}

fn wal_files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    std::fs::read_dir(dir.join("wal"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| !path.ends_with("LOCK"))
        .map(|path| {
            let bytes = std::fs::read(&path).unwrap();
            (path, bytes)
        })
        .collect()
}

fn run_case(template: &Template, history: History, ending: Ending, damage: Damage) -> Option<Outcome> {
    let case = tempfile::tempdir().unwrap();
    let dir = case.path().join("data");
    copy_dir(template.dir.path(), &dir);
    let damaged = apply(damage, &dir, &template.records, template.lsn_released)?;
    let what = format!("{history:?} / {ending:?} / {damage:?}");
    let file_name = damaged.file_name().unwrap().to_string_lossy().to_string();

    let verified = verify(&dir.join("wal"), &config().wal);
    let verify_clean = matches!(&verified, Ok(report) if report.is_clean());
    let before = wal_files(&dir);

    let outcome = match Engine::open(&dir, config()) {
        Err(err) => {
            let message = err.to_string();
            assert!(message.contains(&file_name), "{what}: the refusal must name {file_name}: {message}");
            assert_eq!(wal_files(&dir), before, "{what}: a refusal must change nothing under wal/");
            // `verify` reads the log; a log that is whole but no longer
            // reaches back to any snapshot is refused by `open` alone.
            let log_damaged = damage != Damage::DeleteAllSnapshots;
            assert!(
                !log_damaged || !verify_clean,
                "{what}: open refused ({message}) but wal verify found nothing: {verified:?}"
            );
            Outcome::Refused
        }
        Ok(engine) => {
            let report = engine.open_report().clone();
            let digest = engine.state_digest();
            drop(engine);
            assert_eq!(
                verify_clean,
                report.wal.is_clean(),
                "{what}: wal verify ({verified:?}) and open ({:?}) disagree",
                report.wal
            );
            if digest == template.digest {
                Outcome::Identical
            } else {
                let wal_loss = !report.wal.is_clean();
                let snapshot_loss = !report.snapshots_skipped.is_empty();
                assert!(wal_loss || snapshot_loss, "{what}: state changed in silence: {report:?}");
                assert!(report.wal.tail_damage.is_some(), "{what}: a loss must be a reported torn tail: {report:?}");
                assert_eq!(report.wal.lsn_last + 1, template.records.last().unwrap().lsn, "{what}: one record cut");
                Outcome::ReportedLoss
            }
        }
    };
    if matches!(damage, Damage::TruncateNewestSnapshot | Damage::FlipNewestSnapshot) && outcome == Outcome::Identical {
        let mut quarantined = damaged.clone().into_os_string();
        quarantined.push(".bad");
        assert!(Path::new(&quarantined).exists(), "{what}: the damaged snapshot must be set aside and reported");
    }
    assert!(
        promised(damage, history, ending).contains(&outcome),
        "{what}: {outcome:?}, promised {:?}",
        promised(damage, history, ending)
    );
    Some(outcome)
}

#[test]
fn every_damage_case_is_refused_recovered_identically_or_reported() {
    let damages = [
        Damage::DeleteSegment(Target::OldestSegment),
        Damage::DeleteSegment(Target::ActiveSegment),
        Damage::TruncateSegmentToZero(Target::OldestSegment),
        Damage::TruncateSegmentToZero(Target::ActiveSegment),
        Damage::TruncateSegmentMidRecord(Target::OldestSegment),
        Damage::TruncateSegmentMidRecord(Target::ActiveSegment),
        Damage::ZeroSegmentHeader(Target::OldestSegment),
        Damage::ZeroSegmentHeader(Target::ActiveSegment),
        Damage::FlipDurableRecord,
        Damage::FlipItemRecord,
        Damage::FlipNewestRecord,
        Damage::FlipUnusedTail,
        Damage::DeleteNewestSnapshot,
        Damage::TruncateNewestSnapshot,
        Damage::FlipNewestSnapshot,
        Damage::DeleteAllSnapshots,
    ];
    let mut table = Vec::new();
    for history in [History::NoSnapshot, History::WithSnapshots, History::Lapped] {
        for ending in [Ending::Closed, Ending::Crashed] {
            let template = build(history, ending);
            for damage in damages {
                if let Some(outcome) = run_case(&template, history, ending, damage) {
                    table.push(format!("{history:?} / {ending:?} / {damage:?}: {outcome:?}"));
                }
            }
        }
    }
    // Every history had every segment case, and the snapshot ones had theirs.
    assert!(table.len() >= 3 * 2 * 10 + 2 * 2 * 4, "{table:#?}");
    eprintln!("{}", table.join("\n"));
}

/// Finding 1 of the hardening issue, through the engine: before any
/// snapshot, a log whose only segment with records is deleted, emptied or
/// has its header zeroed must not open empty (it did, and then handed out
/// LSN 1 again).
#[test]
fn a_damaged_first_segment_before_any_snapshot_is_refused_not_started_empty() {
    let template = build(History::NoSnapshot, Ending::Crashed);
    for damage in [
        Damage::DeleteSegment(Target::OldestSegment),
        Damage::TruncateSegmentToZero(Target::OldestSegment),
        Damage::ZeroSegmentHeader(Target::OldestSegment),
    ] {
        assert_eq!(run_case(&template, History::NoSnapshot, Ending::Crashed, damage), Some(Outcome::Refused));
    }
}

/// A data directory whose whole log directory was removed is refused too,
/// where a snapshot shows it had data.
#[test]
fn a_data_dir_whose_log_directory_is_gone_is_refused() {
    let template = build(History::WithSnapshots, Ending::Closed);
    std::fs::remove_dir_all(template.dir.path().join("wal")).unwrap();
    let err = Engine::open(template.dir.path(), config()).err().expect("must be refused");
    assert!(err.to_string().contains("is gone") && err.to_string().contains("snapshot-"), "{err}");
    assert!(!template.dir.path().join("wal").exists(), "nothing may be created");
}

/// Finding 5: once the ring has lapped, a clean restart reports nothing.
#[test]
fn a_lapped_ring_reopens_clean_after_a_clean_close_and_after_a_crash() {
    for ending in [Ending::Closed, Ending::Crashed] {
        let template = build(History::Lapped, ending);
        let verified = verify(&template.dir.path().join("wal"), &config().wal).unwrap();
        assert!(verified.is_clean(), "{ending:?}: {verified:?}");
        let engine = Engine::open(template.dir.path(), config()).unwrap();
        assert!(engine.open_report().wal.is_clean(), "{ending:?}: {:?}", engine.open_report().wal);
        assert_eq!(engine.state_digest(), template.digest);
    }
}

/// Finding 2: a segment cut short in the middle of its records is damage
/// (segment files are created whole and never truncated), not a torn tail
/// to cut with a warning: that dropped acknowledged records.
#[test]
fn a_segment_truncated_in_the_middle_of_its_records_is_refused_not_cut_as_a_torn_tail() {
    for history in [History::NoSnapshot, History::Lapped] {
        let template = build(history, Ending::Crashed);
        let case = Damage::TruncateSegmentMidRecord(Target::ActiveSegment);
        assert_eq!(run_case(&template, history, Ending::Crashed, case), Some(Outcome::Refused));
    }
}
