//! Corruption sweep: take a small log spanning several segments, then
//! (1) cut it at every byte offset (zeroing what follows, and separately
//! truncating the file there), and (2) invert every byte in turn. For every
//! variant and every recovery mode, `open` must not panic, must never return
//! a record whose bytes differ from what was appended, must return a prefix
//! of the log, and must report (or refuse with an error) any damage to a
//! record it drops.

use recwal_wal::format::{RECORD_HEADER_BYTES, SEGMENT_HEADER_BYTES};
use recwal_wal::sim::SimStorage;
use recwal_wal::{inspect_storage, RecordInfo, RecoveryMode, SyncPolicy, Wal, WalConfig, WalError};

const SEGMENT_BYTES: u64 = 4096;

fn config() -> WalConfig {
    WalConfig::default()
        .segment_bytes(SEGMENT_BYTES)
        .segments_initial(3)
        .segments_max(3)
        .record_bytes_max(1024)
        .sync_policy(SyncPolicy::Always)
}

fn payload(lsn: u64) -> Vec<u8> {
    let mut bytes = lsn.to_le_bytes().to_vec();
    bytes.resize(8 + (lsn * 37 % 150) as usize, (lsn * 13) as u8);
    bytes
}

/// A log of about two and a half segments; returns its images and records.
fn build() -> (Vec<(u32, Vec<u8>)>, Vec<RecordInfo>) {
    let storage = SimStorage::new(7);
    let wal = Wal::open_with_storage(Box::new(storage.clone()), config()).expect("open");
    for lsn in 1..=80 {
        let _ = wal.append((lsn % 5) as u8, &payload(lsn)).expect("append");
    }
    wal.close().expect("close");
    let mut records = Vec::new();
    let inspection = inspect_storage(&storage, &config(), &mut |info, _| records.push(*info)).expect("inspect");
    assert!(inspection.report.is_clean());
    assert_eq!(records.len(), 80);
    let images = (0..3).map(|index| (index, storage.image(index).expect("image"))).collect();
    (images, records)
}

/// Opens `storage` in `mode` and checks the invariants. `damaged` is the LSN
/// of the first record whose checked bytes were changed, if any.
fn check(storage: &SimStorage, mode: RecoveryMode, records: &[RecordInfo], damaged: Option<u64>, what: &str) {
    let opened = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        Wal::open_with_storage(Box::new(storage.clone()), config().recovery_mode(mode))
    }));
    let wal = match opened {
        Err(_) => panic!("{what}: open panicked in {mode:?}"),
        Ok(Err(WalError::Corruption(_) | WalError::BadSegment { .. } | WalError::Damaged { .. })) => return,
        Ok(Err(err)) => panic!("{what}: unexpected error in {mode:?}: {err}"),
        Ok(Ok(wal)) => wal,
    };
    let report = wal.recovery_report().clone();
    let mut count = 0u64;
    for record in wal.read_from(wal.lsn_first()).expect("reader") {
        let record = record.unwrap_or_else(|err| panic!("{what}: reading back failed: {err}"));
        count += 1;
        assert_eq!(record.lsn(), count, "{what}: not a prefix");
        assert_eq!(record.payload(), payload(record.lsn()), "{what}: lsn {} came back altered", record.lsn());
        assert_eq!(record.kind(), (record.lsn() % 5) as u8, "{what}: kind altered");
    }
    assert_eq!(count, report.lsn_last, "{what}");
    assert!(count <= records.len() as u64);
    if let Some(lsn) = damaged {
        assert!(count < lsn, "{what}: damaged lsn {lsn} came back");
        assert!(!report.is_clean(), "{what}: damage to lsn {lsn} went unreported: {report:?}");
    }
}

fn load(images: &[(u32, Vec<u8>)]) -> SimStorage {
    let storage = SimStorage::new(0);
    for (index, bytes) in images {
        storage.set_image(*index, bytes.clone());
    }
    storage
}

/// The log as one byte stream: (segment index, offset) for each position, in seq order.
fn log_positions(images: &[(u32, Vec<u8>)], records: &[RecordInfo]) -> Vec<(u32, u64)> {
    let mut order: Vec<u32> = Vec::new();
    for record in records {
        if !order.contains(&record.segment_index) {
            order.push(record.segment_index);
        }
    }
    let mut positions = Vec::new();
    for index in order {
        let len = images.iter().find(|(i, _)| *i == index).map_or(0, |(_, bytes)| bytes.len() as u64);
        positions.extend((0..len).map(|offset| (index, offset)));
    }
    positions
}

fn covered_end(record: &RecordInfo) -> u64 {
    record.offset + RECORD_HEADER_BYTES + u64::from(record.len)
}

#[test]
fn cutting_the_log_at_every_byte_leaves_a_clean_prefix() {
    let (images, records) = build();
    let positions = log_positions(&images, &records);
    for (cut_idx, &(segment, offset)) in positions.iter().enumerate() {
        // Records wholly before the cut survive; the first one cut is gone.
        let survivors = records
            .iter()
            .take_while(|record| {
                let record_idx = positions.iter().position(|p| *p == (record.segment_index, covered_end(record) - 1));
                record_idx.is_some_and(|idx| idx < cut_idx)
            })
            .count() as u64;
        let in_header = offset < SEGMENT_HEADER_BYTES && offset > 0;
        for truncate in [false, true] {
            let mut variant = images.clone();
            for (index, bytes) in variant.iter_mut() {
                if *index == segment {
                    if truncate {
                        bytes.truncate(offset as usize);
                    } else {
                        bytes[offset as usize..].iter_mut().for_each(|byte| *byte = 0);
                    }
                } else if positions.iter().position(|p| p.0 == *index).is_some_and(|idx| idx > cut_idx) {
                    // Segments later in the log were never written either.
                    bytes.iter_mut().for_each(|byte| *byte = 0);
                }
            }
            let storage = load(&variant);
            let what = format!("cut at segment {segment} offset {offset} (truncate {truncate})");
            let opened = Wal::open_with_storage(Box::new(storage.clone()), config());
            match opened {
                Ok(wal) => {
                    assert!(!truncate, "{what}: a short segment file was accepted");
                    assert_eq!(wal.recovery_report().lsn_last, survivors, "{what}: {:?}", wal.recovery_report());
                    drop(wal);
                }
                // A segment file is never truncated (it is created whole and
                // reused): a short one is damage, refused naming the file.
                Err(WalError::Damaged { path, .. }) if truncate => {
                    assert!(path.to_string_lossy().ends_with(&format!("seg-{segment:08}.wal")), "{what}: {path:?}");
                }
                // A header cut in the middle is damage (a real disk writes its
                // first sector whole), and is reported as such.
                Err(WalError::Corruption(_)) if in_header => {}
                Err(err) => panic!("{what}: {err}"),
            }
            check(&load(&variant), RecoveryMode::PointInTime, &records, None, &what);
            check(&load(&variant), RecoveryMode::AbsoluteConsistency, &records, None, &what);
        }
    }
}

#[test]
fn inverting_any_byte_never_returns_a_corrupt_record() {
    let (images, records) = build();
    for (index, bytes) in &images {
        for offset in 0..bytes.len() as u64 {
            let damaged = records
                .iter()
                .find(|record| {
                    record.segment_index == *index && offset >= record.offset && offset < covered_end(record)
                })
                .map(|record| record.lsn);
            let mut variant = images.clone();
            variant.iter_mut().filter(|(i, _)| i == index).for_each(|(_, bytes)| bytes[offset as usize] ^= 0xFF);
            let what = format!("byte {offset} of segment {index} inverted");
            for mode in
                [RecoveryMode::TolerateCorruptedTail, RecoveryMode::PointInTime, RecoveryMode::AbsoluteConsistency]
            {
                check(&load(&variant), mode, &records, damaged, &what);
            }
        }
    }
}

/// The same cuts on real files, truncated on disk: a short segment file is
/// damage (segment files are created whole and never truncated), refused by
/// default with the file named; point in time extends it and recovers the
/// prefix, reporting the short file and the records the log had reached.
#[test]
fn truncated_segment_files_are_refused_by_default_and_reported_point_in_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config();
    let wal = Wal::open(dir.path(), config.clone()).expect("open");
    for lsn in 1..=20 {
        let _ = wal.append((lsn % 5) as u8, &payload(lsn)).expect("append");
    }
    wal.close().expect("close");
    let segment = dir.path().join("seg-00000000.wal");
    let original = std::fs::read(&segment).expect("read");
    let manifest = std::fs::read(dir.path().join("MANIFEST")).expect("manifest");
    let mut records = Vec::new();
    recwal_wal::inspect(dir.path(), &config, &mut |info, _| records.push(*info)).expect("inspect");
    for cut in (SEGMENT_HEADER_BYTES..original.len() as u64).step_by(7).chain([0, 1, 63]) {
        std::fs::write(&segment, &original[..cut as usize]).expect("truncate");
        std::fs::write(dir.path().join("MANIFEST"), &manifest).expect("manifest");
        let survivors = records.iter().filter(|record| covered_end(record) <= cut).count() as u64;
        let verified = recwal_wal::verify(dir.path(), &config).expect("verify");
        assert_eq!(verified.segments_extended, vec![0], "cut at {cut}: verify must report the short file");
        assert!(!verified.is_clean());
        match Wal::open(dir.path(), config.clone()) {
            Err(WalError::Damaged { path, reason, .. }) => {
                assert_eq!(path, segment, "cut at {cut}");
                assert!(reason.contains("shorter than segment_bytes"), "cut at {cut}: {reason}");
            }
            other => panic!("cut at {cut}: a short segment must be refused, got {:?}", other.err()),
        }
        assert_eq!(std::fs::metadata(&segment).expect("metadata").len(), cut, "a refusal changes nothing");
        let wal =
            Wal::open(dir.path(), config.clone().recovery_mode(RecoveryMode::PointInTime)).expect("point in time");
        let report = wal.recovery_report().clone();
        if cut == 0 || cut >= SEGMENT_HEADER_BYTES {
            assert_eq!(report.lsn_last, survivors, "cut at {cut}: {report:?}");
        }
        assert_eq!(report.segments_extended, vec![0], "cut at {cut}");
        assert!(!report.is_clean());
        if survivors < 20 && cut >= SEGMENT_HEADER_BYTES {
            assert_eq!(report.records_missing, 20 - survivors, "cut at {cut}: {report:?}");
        }
        drop(wal);
        assert_eq!(std::fs::metadata(&segment).expect("metadata").len(), SEGMENT_BYTES);
    }
}

/// A segment file copied over another repeats a lap's seq, which the writer
/// never does: refused, naming both, except point in time, where it is
/// reported and what comes back is still an unaltered prefix.
#[test]
fn a_segment_copied_over_another_is_refused_or_reported() {
    let (images, records) = build();
    for from in 0..3usize {
        for over in (0..3usize).filter(|over| *over != from) {
            let mut copied = images.clone();
            copied[over].1 = images[from].1.clone();
            let what = format!("segment {from} copied over segment {over}");
            let opened = Wal::open_with_storage(Box::new(load(&copied)), config());
            match opened {
                Err(WalError::Corruption(detail)) => {
                    assert!(detail.reason.contains("both carry lap seq"), "{what}: {}", detail.reason)
                }
                Err(err) => panic!("{what}: refused for another reason: {err}"),
                Ok(wal) => panic!("{what}: opened, {:?}", wal.recovery_report()),
            }
            let wal =
                Wal::open_with_storage(Box::new(load(&copied)), config().recovery_mode(RecoveryMode::PointInTime))
                    .unwrap_or_else(|err| panic!("{what}: point in time refused: {err}"));
            assert!(!wal.recovery_report().is_clean(), "{what}: point in time said clean");
            drop(wal);
            check(&load(&copied), RecoveryMode::PointInTime, &records, None, &what);
        }
    }
}

/// A reused segment whose new lap ends inside an old lap's payload that
/// happens to hold the next LSN where a record header keeps it (a short id
/// such as `e7` does): a clean end, as the clean close left it, not a torn
/// tail (it was reported as one, and `AbsoluteConsistency` refused the log).
#[test]
fn an_old_laps_payload_holding_the_next_lsn_by_chance_is_a_clean_end() {
    let config = |mode: RecoveryMode| {
        WalConfig::default()
            .segment_bytes(4096)
            .segments_initial(2)
            .segments_max(2)
            .record_bytes_max(1024)
            .sync_policy(SyncPolicy::Always)
            .recovery_mode(mode)
    };
    const OLD: usize = 120;
    const NEW: usize = 40;
    // Lap 1: 152-byte frames of 0xAB payloads through segment 0 into 1, all
    // released; lap 2: 72-byte frames, until segment 0 holds five of them.
    let (storage, end, lsn_last) = (1..400)
        .find_map(|after| {
            let storage = SimStorage::new(5);
            let wal =
                Wal::open_with_storage(Box::new(storage.clone()), config(RecoveryMode::default())).expect("sim log");
            let mut released = 0;
            for _ in 0..30 {
                released = wal.append(1, &[0xAB; OLD]).expect("sim log").lsn();
            }
            wal.checkpoint(released).expect("sim log");
            let mut last = released;
            for _ in 0..after {
                last = wal.append(2, &[0x11; NEW]).expect("sim log").lsn();
            }
            wal.close().expect("sim log");
            let mut records = Vec::new();
            inspect_storage(&storage, &config(RecoveryMode::default()), &mut |info, _| records.push(*info))
                .expect("sim log");
            let lap2: Vec<&RecordInfo> =
                records.iter().filter(|record| record.segment_index == 0 && record.lsn > released).collect();
            (lap2.len() == 5).then(|| {
                let newest = lap2[4];
                (storage.clone(), covered_end(newest).next_multiple_of(8), last)
            })
        })
        .expect("a lap 2 with five records in segment 0");
    assert_eq!(end, 64 + 5 * 72);
    let mut image = storage.image(0).expect("sim log");
    // The writer leaves an end mark (a header's worth of zeros) after its
    // last frame; behind it, the old lap's payload (0xAB).
    assert!(image[end as usize..end as usize + 32].iter().all(|byte| *byte == 0));
    assert!(image[end as usize + 32..end as usize + 40].iter().all(|byte| *byte == 0xAB));
    // A log written before the end mark existed (or with the mark damaged):
    // the old payload right after the end.
    image[end as usize..end as usize + 32].fill(0xAB);
    image[end as usize + 8..end as usize + 16].copy_from_slice(&(lsn_last + 1).to_le_bytes());
    storage.set_image(0, image);
    for mode in [RecoveryMode::TolerateCorruptedTail, RecoveryMode::AbsoluteConsistency] {
        let wal = Wal::open_with_storage(Box::new(storage.clone()), config(mode))
            .unwrap_or_else(|err| panic!("{mode:?}: a cleanly closed log was refused: {err}"));
        let report = wal.recovery_report().clone();
        assert!(report.is_clean(), "{mode:?}: {report:?}");
        assert_eq!(report.lsn_last, lsn_last, "{mode:?}");
        wal.close().expect("sim log");
    }
}
