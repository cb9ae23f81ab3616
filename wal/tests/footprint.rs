//! What a log costs on disk: a new log creates the segment files it needs
//! (one by default), and a background thread prepares the next one ahead, so
//! an append that moves to a new segment finds it ready and never waits for a
//! file to be zero-filled. The manifest counts a prepared file as soon as it
//! exists, so a prepared segment that goes missing is damage like any other.

use std::path::Path;
use std::time::{Duration, Instant};

use recwal_wal::{SyncPolicy, Wal, WalConfig, WalError};

const SEGMENT_BYTES: u64 = 64 << 10;

fn segment_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("list")
        .map(|entry| entry.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".wal"))
        .collect();
    names.sort();
    names
}

fn disk_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir).expect("list").map(|entry| entry.expect("entry").metadata().expect("metadata").len()).sum()
}

/// Waits (a generous bound, not a timing) until the log has a free segment
/// ready for the next lap.
fn wait_for_prepared(wal: &Wal) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while wal.metrics().segments_free == 0 {
        assert!(Instant::now() < deadline, "no segment was prepared ahead: {:?}", wal.metrics());
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn config() -> WalConfig {
    WalConfig::default()
        .segment_bytes(SEGMENT_BYTES)
        .segments_initial(1)
        .segments_max(8)
        .sync_policy(SyncPolicy::Always)
}

#[test]
fn the_default_log_starts_with_one_small_segment_and_a_bound_of_one_gib() {
    let defaults = WalConfig::default();
    assert_eq!(defaults.segment_bytes, 4 << 20);
    assert_eq!(defaults.segments_initial, 1);
    assert_eq!(defaults.segments_max as u64 * defaults.segment_bytes, 1 << 30, "the disk bound stays 1 GiB");

    let dir = tempfile::tempdir().expect("tempdir");
    let wal = Wal::open(dir.path(), WalConfig::default()).expect("open");
    assert_eq!(segment_files(dir.path()), ["seg-00000000.wal"], "a new log creates one segment");
    for i in 0..3u8 {
        wal.append_with(1, &[i; 100], recwal_wal::Durability::Always).expect("append").wait().expect("durable");
    }
    wait_for_prepared(&wal);
    wal.close().expect("close");
    assert_eq!(segment_files(dir.path()).len(), 2, "the active segment and the one prepared ahead");
    assert!(disk_bytes(dir.path()) <= 2 * (4 << 20) + (64 << 10), "{} bytes", disk_bytes(dir.path()));
}

#[test]
fn a_segment_prepared_ahead_takes_the_next_lap_without_an_append_waiting_for_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wal = Wal::open(dir.path(), config()).expect("open");
    let payload = vec![9u8; 1000];
    let mut lsn_last = wal.append(1, &payload).expect("append").lsn();
    for _ in 0..3 {
        // The active segment's successor is ready before the active one fills.
        wait_for_prepared(&wal);
        let laps_before = wal.metrics().segments_live;
        while wal.metrics().segments_live == laps_before {
            lsn_last = wal.append(1, &payload).expect("append").lsn();
        }
    }
    let metrics = wal.metrics();
    assert_eq!(metrics.segments_live, 4);
    // The three laps' segments were prepared ahead; the preparer may already
    // have prepared the next one too (it runs on its own thread).
    assert!(metrics.segments_prepared >= 3, "every new segment was prepared ahead: {metrics:?}");
    assert_eq!(metrics.segments_created, metrics.segments_prepared + 1, "only segment 0 by open: {metrics:?}");
    assert_eq!(metrics.segment_prepare_waits, 0, "no append waited for a segment to be prepared: {metrics:?}");
    wal.close().expect("close");

    let wal = Wal::open(dir.path(), config()).expect("reopen");
    assert!(wal.recovery_report().is_clean(), "{:?}", wal.recovery_report());
    let lsns: Vec<u64> = wal.read_from(1).expect("reader").map(|record| record.expect("record").lsn()).collect();
    assert_eq!(lsns, (1..=lsn_last).collect::<Vec<u64>>());
    wal.close().expect("close");
}

#[test]
fn an_append_that_outruns_the_preparation_waits_for_it_and_is_counted() {
    // Records of half a segment, one per segment: each append needs a new
    // segment, probably while it is still being prepared; if the preparation
    // won the race, nothing waited. Either way every record is kept.
    let dir = tempfile::tempdir().expect("tempdir");
    let wal = Wal::open(dir.path(), config()).expect("open");
    let payload = vec![3u8; (SEGMENT_BYTES / 2) as usize];
    for _ in 0..6 {
        wal.append(1, &payload).expect("append").wait().expect("durable");
    }
    let metrics = wal.metrics();
    // Segment 0 at open, then one per record: prepared ahead, or (when the
    // preparer had not even begun before the append needed it) created by
    // the append itself. Which, depends on scheduling; the count does not.
    assert_eq!(metrics.segments_created, 6, "{metrics:?}");
    assert!(metrics.segments_prepared <= 5, "{metrics:?}");
    assert!(metrics.segment_prepare_waits <= metrics.segments_prepared);
    assert_eq!(metrics.segments_live, 6);
    wal.close().expect("close");
    let wal = Wal::open(dir.path(), config()).expect("reopen");
    assert_eq!(wal.read_from(1).expect("reader").count(), 6);
    wal.close().expect("close");
    assert!(segment_files(dir.path()).len() <= 8);
}

#[test]
fn a_prepared_segment_is_in_the_manifest_and_its_loss_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wal = Wal::open(dir.path(), config()).expect("open");
    wal.append(1, b"first").expect("append").wait().expect("durable");
    wait_for_prepared(&wal);
    // Not closed: the manifest must already count the prepared file.
    drop(wal);
    let files = segment_files(dir.path());
    assert_eq!(files, ["seg-00000000.wal", "seg-00000001.wal"]);
    std::fs::remove_file(dir.path().join(&files[1])).expect("remove the prepared segment");
    match Wal::open(dir.path(), config()) {
        Err(WalError::Damaged { path, .. }) => assert!(path.ends_with("seg-00000001.wal"), "{path:?}"),
        other => panic!("a missing prepared segment must be refused, got {:?}", other.map(|_| ())),
    }
}

#[test]
fn the_ring_never_prepares_beyond_segments_max() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config().segments_max(2).full_wait(Duration::ZERO);
    let wal = Wal::open(dir.path(), config.clone()).expect("open");
    let payload = vec![1u8; 1000];
    let mut appended = 0;
    while wal.append(1, &payload).is_ok() {
        appended += 1;
    }
    assert!(appended > 60, "two segments' worth: {appended}");
    // Give a wrongly started preparation every chance to show up.
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(segment_files(dir.path()).len(), 2);
    wal.close().expect("close");
}
