//! A full disk is an operating condition, not a poison: a log segment or a
//! snapshot that could not be written holds no acknowledged data, so the
//! engine refuses the write with `DiskFull`, reports the condition, and goes
//! on by itself once space is back. The log's side runs on the simulated
//! disk's out-of-space fault; the snapshot side on a real, small `tmpfs`
//! (root only: without it those tests say so and return).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::path::Path;
use std::time::{Duration, Instant};

use recwal::wal::sim::SimStorage;
use recwal::wal::testing::Tmpfs;
use recwal::wal::SyncPolicy;
use recwal::{Engine, EngineConfig, EngineError, Event, EventKind};

fn config() -> EngineConfig {
    let mut config = EngineConfig::default();
    config.wal = config.wal.segment_bytes(16 << 10).segments_initial(2).sync_policy(SyncPolicy::Always);
    config.checkpoint.disable_automatic();
    config
}

fn event(i: usize) -> Event {
    Event::new(format!("user-{}", i % 37), format!("item-{i}"), EventKind::Purchase)
}

fn temp_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.ends_with(".tmp"))
        .collect()
}

/// Ingests until the log cannot grow; returns (events acknowledged, refusal).
fn ingest_until_refused(engine: &Engine) -> (usize, EngineError) {
    for i in 0..100_000 {
        if let Err(err) = engine.ingest(event(i)) {
            return (i, err);
        }
    }
    panic!("the disk never filled");
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < Duration::from_secs(20), "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_segment_that_cannot_be_created_does_not_stop_writes() {
    let dir = tempfile::tempdir().unwrap();
    let disk = SimStorage::new(11);
    let engine = Engine::open_with_wal_storage(dir.path(), Box::new(disk.clone()), config()).unwrap();
    disk.set_space_limit(Some(disk.bytes_used()));
    let (acked, refused) = ingest_until_refused(&engine);
    assert!(refused.to_string().contains("disk is full"), "{refused}");
    // Refused again the same way, not "stopped accepting writes".
    let again = engine.ingest(event(acked)).expect_err("still no space");
    assert!(again.to_string().contains("disk is full"), "{again}");
    assert_eq!(engine.stats().events_applied, acked as u64, "a refused event is not applied");

    disk.set_space_limit(None);
    for i in acked..acked + 200 {
        engine.ingest(event(i)).unwrap();
    }
    let digest = engine.state_digest();
    drop(engine);
    disk.crash();
    let engine = Engine::open_with_wal_storage(dir.path(), Box::new(disk), config()).unwrap();
    assert_eq!(engine.stats().events_applied, acked as u64 + 200);
    assert_eq!(engine.state_digest(), digest, "every acknowledged event, and nothing else, after a power loss");
}

#[test]
fn disk_full_is_reported_and_clears_by_itself_when_space_returns() {
    let dir = tempfile::tempdir().unwrap();
    let disk = SimStorage::new(12);
    let engine = Engine::open_with_wal_storage(dir.path(), Box::new(disk.clone()), config()).unwrap();
    assert!(engine.disk_full().is_none());
    disk.set_space_limit(Some(disk.bytes_used()));
    let (_, refused) = ingest_until_refused(&engine);
    let EngineError::DiskFull { path, .. } = &refused else { panic!("not DiskFull: {refused:?}") };
    assert!(path.to_string_lossy().contains("seg-"), "names the segment: {}", path.display());
    let condition = engine.disk_full().expect("reported");
    assert_eq!(condition.what, "log");
    assert!(engine.stats().disk_full.is_some());
    assert!(engine.metrics_text().contains("recwal_disk_full 1"));
    // No write arrives (a load balancer stops sending them to a node that is
    // not ready): the condition must still clear once space is back.
    disk.set_space_limit(None);
    wait_until("the condition clears", || engine.disk_full().is_none());
    assert!(engine.metrics_text().contains("recwal_disk_full 0"));
    engine.ingest(event(0)).unwrap();
}

/// Mounts a small tmpfs on `dir/snapshots` and fills it.
fn full_snapshot_volume(dir: &Path) -> Option<Tmpfs> {
    let volume = match Tmpfs::mount(64 << 10) {
        Ok(volume) => volume,
        Err(why) => {
            println!("SKIPPED: {why}");
            return None;
        }
    };
    println!("ran on a real tmpfs");
    volume.fill("filler").unwrap();
    std::os::unix::fs::symlink(volume.path(), dir.join("snapshots")).unwrap();
    Some(volume)
}

#[test]
fn a_failed_snapshot_write_leaves_no_temp_file() {
    let dir = tempfile::tempdir().unwrap();
    let Some(volume) = full_snapshot_volume(dir.path()) else { return };
    let engine = Engine::open(dir.path(), config()).unwrap();
    for i in 0..500 {
        engine.ingest(event(i)).unwrap();
    }
    let refused = engine.checkpoint().expect_err("no room for the snapshot");
    assert!(refused.to_string().contains("disk is full"), "{refused}");
    assert_eq!(temp_files(volume.path()), Vec::<String>::new());
    // Writes to the log go on: the snapshot failure is not a poison.
    engine.ingest(event(500)).unwrap();
    std::fs::remove_file(volume.path().join("filler")).unwrap();
    let written = engine.checkpoint().unwrap();
    assert!(written.path.is_some());
    assert_eq!(temp_files(volume.path()), Vec::<String>::new());
}

#[test]
fn automatic_checkpoint_retries_back_off_and_resume_when_space_returns() {
    let dir = tempfile::tempdir().unwrap();
    let Some(volume) = full_snapshot_volume(dir.path()) else { return };
    let mut config = config();
    config.checkpoint.every_records = Some(1);
    let engine = Engine::open(dir.path(), config).unwrap();
    for i in 0..100 {
        engine.ingest(event(i)).unwrap();
    }
    wait_until("a checkpoint fails", || engine.stats().checkpoint_failures >= 1);
    let condition = engine.disk_full().expect("a snapshot that cannot be written is a full disk");
    assert_eq!(condition.what, "snapshot");
    std::thread::sleep(Duration::from_secs(3));
    // Retried after 1 s and 2 s (then 4 s, ...): not every poll.
    let failures = engine.stats().checkpoint_failures;
    assert!(failures <= 4, "{failures} automatic checkpoint attempts in about 3 s");
    assert_eq!(temp_files(volume.path()), Vec::<String>::new());

    std::fs::remove_file(volume.path().join("filler")).unwrap();
    // Space is back: the condition clears and the automatic checkpoint runs
    // at once rather than at the end of its backoff.
    wait_until("the snapshot is written", || engine.stats().lsn_snapshot == 100);
    assert!(engine.disk_full().is_none());
    assert_eq!(temp_files(volume.path()), Vec::<String>::new());
}
