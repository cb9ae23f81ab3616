//! A full disk is an operating condition: a segment that could not be
//! created holds no acknowledged data, so the log stays usable and leaves
//! no temp file behind. Where the test can mount a small `tmpfs` (root) it
//! runs on that real file system; otherwise it says so and the simulated
//! disk's out-of-space fault covers the log's side.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::path::Path;

use recwal_wal::sim::SimStorage;
use recwal_wal::testing::Tmpfs;
use recwal_wal::{FileStorage, Storage, SyncPolicy, Wal, WalConfig, WalError};

fn temp_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.ends_with(".tmp"))
        .collect()
}

/// `attempt` until it succeeds, retrying for at most 5 s while its error is
/// `transient`; any other error, or one that lasts, fails the test. Used
/// where space was just freed: a tmpfs counts freed space back through
/// per-CPU counters, so on a busy machine a tiny volume can still answer
/// ENOSPC for a moment after a file was removed (seen in about 1 run in 20
/// under load); the log's promise there is a retryable refusal.
fn retry_while<T, E: std::fmt::Debug>(mut attempt: impl FnMut() -> Result<T, E>, transient: impl Fn(&E) -> bool) -> T {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match attempt() {
            Ok(done) => return done,
            Err(err) if transient(&err) && std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(err) => panic!("{err:?}"),
        }
    }
}

/// `open` until it is not refused as `Locked`, for at most 5 s.
fn until_unlocked(mut open: impl FnMut() -> Result<Wal, WalError>) -> Wal {
    retry_while(&mut open, |err| matches!(err, WalError::Locked { .. }))
}

fn volume(bytes: u64) -> Option<Tmpfs> {
    match Tmpfs::mount(bytes) {
        Ok(volume) => {
            println!("ran on a real tmpfs of {bytes} bytes");
            Some(volume)
        }
        Err(why) => {
            println!("SKIPPED the real-file-system part: {why}");
            None
        }
    }
}

#[test]
fn a_segment_that_cannot_be_created_leaves_no_temp_file() {
    let Some(volume) = volume(256 << 10) else { return };
    let storage = FileStorage::open(volume.path()).unwrap();
    let err = storage.create_segment(0, 1 << 20).err().expect("a 1 MiB segment on a 256 KiB volume");
    assert!(recwal_wal::is_out_of_space(&err), "{err}");
    assert_eq!(temp_files(volume.path()), Vec::<String>::new());
    // And the space is really back: a segment that fits is created.
    retry_while(|| storage.create_segment(0, 128 << 10), recwal_wal::is_out_of_space);
}

#[test]
fn a_start_that_fails_for_lack_of_space_leaves_no_temp_file() {
    let Some(volume) = volume(1 << 20) else { return };
    let config = WalConfig::default().segment_bytes(512 << 10).segments_initial(4);
    let dir = volume.path().join("wal");
    assert!(Wal::open(&dir, config).is_err(), "4 x 512 KiB on a 1 MiB volume");
    assert_eq!(temp_files(&dir), Vec::<String>::new());
}

/// The append that needs a new segment when none can be created is refused
/// with a typed, retryable error; the log is not poisoned, and once space is
/// back the same log goes on, every acknowledged record in place.
fn appends_resume_once_space_is_back(wal: &Wal, make_room: &dyn Fn(), fill: &dyn Fn()) {
    let payload = [7u8; 1000];
    fill();
    let mut acked = 0;
    let refused = loop {
        match wal.append(1, &payload) {
            Ok(ticket) => {
                ticket.wait().unwrap();
                acked += 1;
                assert!(acked < 10_000, "the disk never filled");
            }
            Err(err) => break err,
        }
    };
    assert!(matches!(refused, WalError::SegmentStart { .. }), "{refused:?}");
    assert!(refused.is_out_of_space(), "{refused}");
    // Not poisoned: it says so, and a sync still works.
    assert_eq!(wal.sync().unwrap(), acked);
    make_room();
    let lsn = retry_while(|| wal.append(1, &payload), |err| err.is_out_of_space()).wait().unwrap();
    assert_eq!(lsn, acked + 1, "no LSN lost or reused");
    let records = wal.read_from(1).unwrap().count() as u64;
    assert_eq!(records, lsn);
}

#[test]
fn a_segment_that_cannot_be_created_does_not_poison_the_log_simulated() {
    let disk = SimStorage::new(3);
    let config = WalConfig::default().segment_bytes(16 << 10).segments_initial(2).sync_policy(SyncPolicy::Always);
    let wal = Wal::open_with_storage(Box::new(disk.clone()), config).unwrap();
    appends_resume_once_space_is_back(&wal, &|| disk.set_space_limit(None), &|| {
        disk.set_space_limit(Some(disk.bytes_used()))
    });
}

#[test]
fn a_segment_that_cannot_be_created_does_not_poison_the_log_on_a_real_disk() {
    let Some(volume) = volume(2 << 20) else { return };
    let config = WalConfig::default().segment_bytes(128 << 10).segments_initial(2).sync_policy(SyncPolicy::Always);
    let wal = Wal::open(&volume.path().join("wal"), config).unwrap();
    let filler = volume.path().join("filler");
    appends_resume_once_space_is_back(&wal, &|| std::fs::remove_file(&filler).unwrap(), &|| {
        volume.fill("filler").unwrap();
    });
    // The preparer thread may be zero-filling the next segment right now (a
    // `.tmp` that becomes a segment): what must not be is one left behind.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !temp_files(&volume.path().join("wal")).is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(temp_files(&volume.path().join("wal")), Vec::<String>::new());
}

/// A crash (SIGKILL, power loss) while a segment was being zero-filled
/// leaves `seg-<n>.wal.tmp`; the next open removes it (under the directory
/// lock, so never another live process's file) instead of keeping its space.
#[test]
fn a_temp_file_left_by_a_crash_during_segment_creation_is_removed_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let config = WalConfig::default().segment_bytes(64 << 10).segments_initial(2);
    Wal::open(dir.path(), config.clone()).unwrap().close().unwrap();
    std::fs::write(dir.path().join("seg-00000009.wal.tmp"), vec![0u8; 64 << 10]).unwrap();
    std::fs::write(dir.path().join("notes.tmp"), b"not ours").unwrap();
    // The directory lock is a `flock`: a child that another test of this
    // binary forks (`mount`, `umount`) holds a copy of the closed log's lock
    // until it execs, so the reopen may see `Locked` for a moment.
    let wal = until_unlocked(|| Wal::open(dir.path(), config.clone()));
    assert_eq!(temp_files(dir.path()), vec!["notes.tmp".to_string()]);
    drop(wal);
}

/// A copy-on-write file system can refuse, when full, even the overwrite of
/// a recycled segment's header: nothing was written (the old lap is intact),
/// so the append is refused as out of space and the log is not poisoned.
#[test]
fn a_new_lap_whose_header_cannot_be_written_for_lack_of_space_does_not_poison_the_log() {
    let disk = SimStorage::new(5);
    let config =
        WalConfig::default().segment_bytes(4096).segments_initial(2).segments_max(2).sync_policy(SyncPolicy::Always);
    let wal = Wal::open_with_storage(Box::new(disk.clone()), config).unwrap();
    let payload = [1u8; 500];
    let full = loop {
        if let Err(err) = wal.append(1, &payload) {
            break err;
        }
    };
    assert!(matches!(full, WalError::Full { .. }), "{full:?}");
    let last = wal.lsn_appended();
    assert!(wal.checkpoint(last).unwrap() >= 1);
    disk.fail_next_writes_no_space(1);
    let refused = wal.append(1, &payload).expect_err("the new lap's header write fails");
    assert!(refused.is_out_of_space(), "{refused:?}");
    assert_eq!(wal.append(1, &payload).unwrap().wait().unwrap(), last + 1);
}
