//! Behaviour of the log on real files: each durability policy round-trips
//! through a reopen, group commit groups, tickets wait (blocking and async),
//! readers run beside appenders, the ring stays within its configured size,
//! a full ring waits or fails without overwriting, bad input is refused, a
//! failed sync poisons the log, and the recovery modes do what they say.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use recwal_wal::format::{RECORD_HEADER_BYTES, SEGMENT_HEADER_BYTES};
use recwal_wal::sim::SimStorage;
use recwal_wal::{inspect, verify, Durability, RecoveryMode, SegmentStatus, SyncPolicy, Wal, WalConfig, WalError};

fn small(policy: SyncPolicy) -> WalConfig {
    WalConfig::default().segment_bytes(64 << 10).segments_initial(2).segments_max(4).sync_policy(policy)
}

fn numbered(i: u64) -> Vec<u8> {
    let mut bytes = i.to_le_bytes().to_vec();
    bytes.resize(8 + (i % 97) as usize, (i % 251) as u8);
    bytes
}

fn read_all(wal: &Wal) -> Vec<(u64, u8, Vec<u8>)> {
    wal.read_from(wal.lsn_first())
        .expect("reader")
        .map(|record| {
            let record = record.expect("record");
            (record.lsn(), record.kind(), record.payload().to_vec())
        })
        .collect()
}

#[test]
fn every_policy_round_trips_through_a_reopen() {
    let policies = [
        SyncPolicy::Always,
        SyncPolicy::Batch { max_delay: Duration::from_millis(1), max_bytes: 4096 },
        SyncPolicy::Never,
    ];
    for policy in policies {
        let dir = tempfile::tempdir().expect("tempdir");
        let wal = Wal::open(dir.path(), small(policy)).expect("open");
        for i in 1..=500u64 {
            let ticket = wal.append((i % 7) as u8, &numbered(i)).expect("append");
            assert_eq!(ticket.lsn(), i, "LSNs are dense from 1 under {policy:?}");
        }
        wal.close().expect("close");
        let wal = Wal::open(dir.path(), small(policy)).expect("reopen");
        assert!(wal.recovery_report().is_clean(), "{policy:?}: {:?}", wal.recovery_report());
        let records = read_all(&wal);
        assert_eq!(records.len(), 500, "{policy:?}");
        for (lsn, kind, payload) in records {
            assert_eq!(kind, (lsn % 7) as u8);
            assert_eq!(payload, numbered(lsn));
        }
    }
}

#[test]
fn always_is_durable_on_return_and_batch_after_its_ticket() {
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = SyncPolicy::Batch { max_delay: Duration::from_millis(50), max_bytes: 1 << 30 };
    let wal = Wal::open(dir.path(), small(policy)).expect("open");
    let batch = wal.append(1, b"batched").expect("append");
    // 50 ms of delay: the flusher has not run yet, so the record is not durable...
    assert!(!batch.is_durable());
    // ...and a reader of a non-Never log does not see it yet either.
    assert_eq!(wal.read_from(1).expect("reader").count(), 0);
    let always = wal.append_with(1, b"urgent", Durability::Always).expect("append");
    assert!(always.is_durable());
    // The Always sync covered everything written before it, the batched record included.
    assert!(batch.is_durable());
    let third = wal.append(1, b"third").expect("append");
    assert_eq!(third.wait().expect("wait"), 3);
    assert_eq!(wal.lsn_durable(), 3);
    assert_eq!(wal.read_from(1).expect("reader").count(), 3);
}

#[test]
fn batch_syncs_as_soon_as_max_bytes_are_waiting() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A delay long enough that only the byte threshold can explain a prompt sync.
    let policy = SyncPolicy::Batch { max_delay: Duration::from_secs(30), max_bytes: 1024 };
    let wal = Wal::open(dir.path(), small(policy)).expect("open");
    // Frames of 100-byte payloads take 136 bytes: the eighth crosses 1024.
    let mut last = None;
    for i in 0..8u64 {
        last = Some(wal.append(0, &[i as u8; 100]).expect("append"));
    }
    let started = std::time::Instant::now();
    last.expect("appended").wait().expect("wait");
    assert!(started.elapsed() < Duration::from_secs(10), "waited for the delay, not the byte threshold");
}

#[test]
fn concurrent_appenders_share_syncs_and_get_dense_lsns() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wal = Arc::new(Wal::open(dir.path(), small(SyncPolicy::Always).segments_max(16)).expect("open"));
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let wal = Arc::clone(&wal);
            std::thread::spawn(move || {
                (0..100u64)
                    .map(|i| wal.append(t as u8, &numbered(t * 1000 + i)).expect("append").lsn())
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut lsns: Vec<u64> = threads.into_iter().flat_map(|thread| thread.join().expect("thread")).collect();
    lsns.sort_unstable();
    assert_eq!(lsns, (1..=800).collect::<Vec<_>>());
    let metrics = wal.metrics();
    assert_eq!(metrics.lsn_durable, 800);
    assert!(metrics.syncs <= 800, "one sync per record at most: {metrics:?}");
    assert_eq!(metrics.group_records.count, metrics.syncs);
    assert_eq!(metrics.group_records.sum, 800, "every record made durable by exactly one group commit");
}

#[test]
fn async_wait_resolves_when_the_group_commit_covers_the_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = SyncPolicy::Batch { max_delay: Duration::from_millis(2), max_bytes: 1 << 20 };
    let wal = Wal::open(dir.path(), small(policy)).expect("open");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().expect("runtime");
    runtime.block_on(async {
        let tickets: Vec<_> = (0..10u64).map(|i| wal.append(0, &numbered(i)).expect("append")).collect();
        for ticket in &tickets {
            let lsn = tokio::time::timeout(Duration::from_secs(10), ticket.wait_async()).await.expect("in time");
            assert_eq!(lsn.expect("durable"), ticket.lsn());
        }
        // Under Never, waiting asks the flusher for a sync.
        let never = wal.append_with(0, b"never", Durability::Never).expect("append");
        let lsn = tokio::time::timeout(Duration::from_secs(10), never.wait_async()).await.expect("in time");
        assert_eq!(lsn.expect("durable"), 11);
    });
}

#[test]
fn a_reader_keeps_up_with_appends_in_progress() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = small(SyncPolicy::Never).segment_bytes(8192).segments_max(64);
    let wal = Arc::new(Wal::open(dir.path(), config).expect("open"));
    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let wal = Arc::clone(&wal);
        let done = Arc::clone(&done);
        std::thread::spawn(move || {
            for i in 1..=3000u64 {
                let _ = wal.append(0, &numbered(i)).expect("append");
            }
            done.store(true, Ordering::Release);
        })
    };
    let mut reader = wal.read_from(1).expect("reader");
    let mut next = 1u64;
    while next <= 3000 {
        match reader.next() {
            Some(record) => {
                let record = record.expect("record");
                assert_eq!(record.lsn(), next);
                assert_eq!(record.payload(), numbered(next));
                next += 1;
            }
            None => {
                // Caught up with the writer: a later `next` sees what was appended since.
                assert!(!done.load(Ordering::Acquire) || next > wal.lsn_written());
                std::thread::yield_now();
            }
        }
    }
    writer.join().expect("writer");
}

#[test]
fn the_ring_stays_within_its_size_over_twenty_laps() {
    let dir = tempfile::tempdir().expect("tempdir");
    let segment_bytes = 16 << 10;
    let config = WalConfig::default().segment_bytes(segment_bytes).segments_initial(4).segments_max(6);
    let capacity = segment_bytes * 6;
    let wal = Wal::open(dir.path(), config.clone().sync_policy(SyncPolicy::Never)).expect("open");
    let payload = vec![7u8; 200];
    let frame = 8 * (RECORD_HEADER_BYTES + 200).div_ceil(8);
    let records = 20 * capacity / frame;
    for i in 1..=records {
        let _ = wal.append(0, &payload).expect("append");
        if i % 50 == 0 {
            // A consumer that keeps up: everything but the last few records is released.
            wal.checkpoint(i - 10).expect("checkpoint");
        }
    }
    let metrics = wal.metrics();
    assert!(metrics.segments_recycled >= 20, "the ring turned: {metrics:?}");
    assert!(metrics.segments_live + metrics.segments_free <= 6);
    drop(wal);
    let bytes_on_disk: u64 = std::fs::read_dir(dir.path())
        .expect("read dir")
        .map(|entry| entry.expect("entry").metadata().expect("metadata").len())
        .sum();
    assert!(bytes_on_disk <= capacity, "{bytes_on_disk} bytes on disk for a ring of {capacity}");
    let wal = Wal::open(dir.path(), config).expect("reopen");
    assert_eq!(wal.recovery_report().lsn_last, records);
    assert!(wal.lsn_first() <= records - 10 + 1);
}

#[test]
fn a_full_ring_refuses_without_overwriting_then_waits_for_a_checkpoint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = WalConfig::default()
        .segment_bytes(4096)
        .segments_initial(2)
        .segments_max(2)
        .sync_policy(SyncPolicy::Never)
        .record_bytes_max(1000);
    let wal = Wal::open(dir.path(), config.clone()).expect("open");
    let mut appended = 0u64;
    loop {
        match wal.append(0, &[1u8; 1000]) {
            Ok(_) => appended += 1,
            Err(WalError::Full { .. }) => break,
            Err(err) => panic!("unexpected error {err}"),
        }
    }
    assert!(appended >= 6, "two 4 KiB segments hold at least 6 records of 1 KiB");
    // Nothing was overwritten: every record is still there.
    assert_eq!(read_all(&wal).len() as u64, appended);
    assert_eq!(wal.metrics().full_errors, 1);
    drop(wal);

    // With full_wait, an append blocks until another thread checkpoints.
    let wal = Arc::new(Wal::open(dir.path(), config.full_wait(Duration::from_secs(30))).expect("reopen"));
    let waiter = {
        let wal = Arc::clone(&wal);
        std::thread::spawn(move || wal.append(0, &[2u8; 1000]).map(|ticket| ticket.lsn()))
    };
    while wal.metrics().full_waits == 0 {
        std::thread::sleep(Duration::from_millis(1));
    }
    wal.checkpoint(appended).expect("checkpoint");
    assert_eq!(waiter.join().expect("thread").expect("append after checkpoint"), appended + 1);
}

#[test]
fn oversize_records_are_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wal = Wal::open(dir.path(), small(SyncPolicy::Always).record_bytes_max(100)).expect("open");
    match wal.append(0, &[0u8; 101]) {
        Err(WalError::RecordTooLarge { len: 101, max: 100 }) => {}
        other => panic!("expected RecordTooLarge, got {other:?}"),
    }
    assert_eq!(wal.lsn_written(), 0);
    assert_eq!(wal.append(0, &[0u8; 100]).expect("append").lsn(), 1);
}

#[test]
fn invalid_configuration_is_refused_before_anything_is_created() {
    let dir = tempfile::tempdir().expect("tempdir");
    let target = dir.path().join("log");
    match Wal::open(&target, WalConfig::default().segment_bytes(1000)) {
        Err(WalError::InvalidConfig { field: "segment_bytes", .. }) => {}
        other => panic!("expected InvalidConfig, got {:?}", other.err()),
    }
    assert!(!target.exists());
}

#[test]
fn a_failed_sync_poisons_the_log_for_every_waiter_and_every_later_append() {
    let storage = SimStorage::new(1);
    let wal = Wal::open_with_storage(Box::new(storage.clone()), small(SyncPolicy::Always)).expect("open");
    let _ = wal.append(0, b"durable").expect("append");
    let batch = wal.append_with(0, b"pending", Durability::Batch).expect("append");
    storage.fail_next_syncs(1);
    assert!(matches!(wal.append(0, b"fails"), Err(WalError::Poisoned { .. })));
    assert!(matches!(batch.wait(), Err(WalError::Poisoned { .. })), "a waiter gets the error");
    assert!(matches!(wal.append(0, b"later"), Err(WalError::Poisoned { .. })));
    assert!(matches!(wal.sync(), Err(WalError::Poisoned { .. })));
    assert_eq!(wal.lsn_durable(), 1, "no later append claims durability");
    assert_eq!(wal.metrics().sync_failures, 1);
    drop(wal);
    storage.crash();
    let wal = Wal::open_with_storage(Box::new(storage), small(SyncPolicy::Always)).expect("reopen");
    assert!(wal.recovery_report().lsn_last >= 1);
}

#[test]
fn a_second_open_of_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wal = Wal::open(dir.path(), small(SyncPolicy::Always)).expect("open");
    assert!(matches!(Wal::open(dir.path(), small(SyncPolicy::Always)), Err(WalError::Locked { .. })));
    drop(wal);
    assert!(Wal::open(dir.path(), small(SyncPolicy::Always)).is_ok());
}

/// Writes `n` Always-synced records, closes the log cleanly and returns the
/// path of segment 0.
fn log_with_records(dir: &std::path::Path, config: &WalConfig, n: u64) -> std::path::PathBuf {
    let wal = Wal::open(dir, config.clone()).expect("open");
    for i in 1..=n {
        let _ = wal.append(0, &numbered(i)).expect("append");
    }
    wal.close().expect("close");
    dir.join("seg-00000000.wal")
}

/// Like `log_with_records`, but the process "crashes" instead of closing:
/// the log is dropped, so nothing records how far it had got.
fn crashed_log_with_records(dir: &std::path::Path, config: &WalConfig, n: u64) -> std::path::PathBuf {
    let wal = Wal::open(dir, config.clone()).expect("open");
    for i in 1..=n {
        let _ = wal.append(0, &numbered(i)).expect("append");
    }
    drop(wal);
    dir.join("seg-00000000.wal")
}

fn flip(path: &std::path::Path, offset: u64) {
    let mut bytes = std::fs::read(path).expect("read");
    bytes[offset as usize] ^= 0x10;
    std::fs::write(path, bytes).expect("write");
}

#[test]
fn recovery_modes_treat_a_torn_tail_and_a_damaged_durable_record_differently() {
    let config = small(SyncPolicy::Always);
    let last_record_offset = |dir: &std::path::Path| {
        let mut offset = 0;
        inspect(dir, &config, &mut |info, _| offset = info.offset).expect("inspect");
        offset
    };

    // After a clean close every record was durable: a damaged last record
    // is damage, not a torn write, and is refused (the manifest recorded
    // how far the log reached).
    let dir = tempfile::tempdir().expect("tempdir");
    let segment = log_with_records(dir.path(), &config, 10);
    let offset = last_record_offset(dir.path());
    flip(&segment, offset + RECORD_HEADER_BYTES + 3);
    match Wal::open(dir.path(), config.clone()) {
        Err(WalError::Corruption(detail)) => {
            assert!(detail.reason.contains("records 10..=10 are missing"), "{}", detail.reason);
            assert_eq!(detail.lsn_expected, 10);
        }
        other => panic!("a damaged last record after a clean close must be refused, got {:?}", other.err()),
    }
    assert!(!verify(dir.path(), &config).expect("verify").is_clean());

    // A torn last record (its bytes half-written by a crash) was never
    // acknowledged: the default mode cuts it and reports it; absolute
    // consistency refuses.
    let dir = tempfile::tempdir().expect("tempdir");
    let segment = crashed_log_with_records(dir.path(), &config, 10);
    let offset = last_record_offset(dir.path());
    flip(&segment, offset + RECORD_HEADER_BYTES + 3);
    match Wal::open(dir.path(), config.clone().recovery_mode(RecoveryMode::AbsoluteConsistency)) {
        Err(WalError::Corruption(detail)) => assert_eq!(detail.lsn_expected, 10),
        other => panic!("absolute consistency must refuse, got {:?}", other.err()),
    }
    let report = verify(dir.path(), &config).expect("verify");
    assert_eq!(report.lsn_last, 9);
    assert!(report.tail_damage.is_some());
    let wal = Wal::open(dir.path(), config.clone()).expect("default mode opens");
    let report = wal.recovery_report().clone();
    assert_eq!(report.lsn_last, 9);
    assert!(report.tail_damage.is_some() && report.bytes_cut > 0, "{report:?}");
    assert_eq!(wal.append(0, b"after the cut").expect("append").lsn(), 10);
    wal.close().expect("close");
    assert!(verify(dir.path(), &config).expect("verify").is_clean(), "the cut was repaired");

    // A damaged record followed by records written after it was durable is
    // mid-log corruption: refused by default, cut and reported point-in-time.
    let dir = tempfile::tempdir().expect("tempdir");
    let segment = log_with_records(dir.path(), &config, 10);
    flip(&segment, SEGMENT_HEADER_BYTES + RECORD_HEADER_BYTES + 1);
    match Wal::open(dir.path(), config.clone()) {
        Err(WalError::Corruption(detail)) => {
            assert_eq!(detail.lsn_expected, 1);
            assert_eq!(detail.position.offset, SEGMENT_HEADER_BYTES);
        }
        other => panic!("mid-log corruption must be refused, got {:?}", other.err()),
    }
    let wal = Wal::open(dir.path(), config.clone().recovery_mode(RecoveryMode::PointInTime)).expect("point in time");
    let report = wal.recovery_report();
    assert_eq!(report.lsn_last, 0);
    assert_eq!(report.records_dropped, 9, "{report:?}");
    assert!(report.corruption.is_some());
}

#[test]
fn inspect_lists_segments_and_every_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = small(SyncPolicy::Always).segment_bytes(4096);
    log_with_records(dir.path(), &config, 100);
    let mut lsns = Vec::new();
    let inspection = inspect(dir.path(), &config, &mut |info, payload| {
        assert_eq!(payload, numbered(info.lsn));
        lsns.push(info.lsn);
    })
    .expect("inspect");
    assert_eq!(lsns, (1..=100).collect::<Vec<_>>());
    let live: u64 = inspection.segments.iter().filter(|s| s.status == SegmentStatus::Live).map(|s| s.records).sum();
    assert_eq!(live, 100);
    assert!(inspection.report.is_clean());
}

#[test]
fn lowering_record_bytes_max_keeps_larger_records_already_on_disk() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wal = Wal::open(dir.path(), small(SyncPolicy::Always).record_bytes_max(4000)).expect("open");
    let _ = wal.append(0, &[9u8; 3000]).expect("append");
    wal.close().expect("close");
    let wal = Wal::open(dir.path(), small(SyncPolicy::Always).record_bytes_max(100)).expect("reopen");
    assert!(wal.recovery_report().is_clean(), "{:?}", wal.recovery_report());
    assert_eq!(read_all(&wal)[0].2.len(), 3000);
    assert!(matches!(wal.append(0, &[9u8; 3000]), Err(WalError::RecordTooLarge { .. })));
}

/// Regression (found in review): releasing records that were not yet durable
/// put a released LSN beyond the durable end into a segment header; after a
/// power loss cut the log back, the next recovery started the log after
/// records that had been acknowledged since, and lost them silently.
#[test]
fn releasing_unsynced_records_then_losing_power_keeps_later_acknowledged_records() {
    let storage = SimStorage::new(3);
    let config = WalConfig::default()
        .segment_bytes(4096)
        .segments_initial(2)
        .segments_max(6)
        .record_bytes_max(1000)
        .sync_policy(SyncPolicy::Always);
    let wal = Wal::open_with_storage(Box::new(storage.clone()), config.clone()).expect("open");
    for i in 1..=5u64 {
        let _ = wal.append(0, &numbered(i)).expect("append");
    }
    for i in 6..=80u64 {
        let _ = wal.append_with(0, &numbered(i), Durability::Never).expect("append");
    }
    wal.checkpoint(80).expect("checkpoint");
    for i in 81..=120u64 {
        let _ = wal.append_with(0, &numbered(i), Durability::Never).expect("append");
    }
    // Segments started after the checkpoint may record as released only what
    // is durable (reusing a released segment syncs first, so some is).
    let durable = wal.lsn_durable();
    let inspection = recwal_wal::inspect_storage(&storage, &config, &mut |_, _| {}).expect("inspect");
    for segment in &inspection.segments {
        if let Some((_, _, released)) = segment.header {
            assert!(released <= durable, "segment {} says lsn {released} released; durable {durable}", segment.index);
        }
    }
    drop(wal);
    storage.crash();
    let wal = Wal::open_with_storage(Box::new(storage.clone()), config.clone()).expect("reopen");
    let cut_to = wal.recovery_report().lsn_last;
    let _ = wal.checkpoint(cut_to.saturating_sub(2));
    let mut acknowledged = Vec::new();
    // Enough to fill one segment and roll to another after the cut.
    for _ in 0..25 {
        let lsn = wal.append(0, &[5u8; 300]).expect("append").lsn();
        acknowledged.push(lsn);
    }
    assert!(wal.metrics().segments_live >= 3, "the acknowledged records span segments");
    wal.close().expect("close");
    let wal = Wal::open_with_storage(Box::new(storage), config).expect("reopen again");
    let first = wal.lsn_first();
    assert!(first <= acknowledged[0], "log starts at {first}, after acknowledged lsn {}", acknowledged[0]);
    let lsns: Vec<u64> = read_all(&wal).into_iter().map(|(lsn, _, _)| lsn).collect();
    for lsn in acknowledged {
        assert!(lsns.contains(&lsn), "acknowledged lsn {lsn} lost");
    }
}

/// Regression (found in review): a `Record` kept after its `Wal` was dropped
/// let a second `Wal` open the directory and recycle the bytes under it.
#[test]
fn records_and_readers_keep_the_directory_locked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wal = Wal::open(dir.path(), small(SyncPolicy::Always)).expect("open");
    let _ = wal.append(0, b"held").expect("append");
    let record = wal.read_from(1).expect("reader").next().expect("one record").expect("record");
    drop(wal);
    assert!(matches!(Wal::open(dir.path(), small(SyncPolicy::Always)), Err(WalError::Locked { .. })));
    assert_eq!(record.payload(), b"held");
    drop(record);
    assert!(Wal::open(dir.path(), small(SyncPolicy::Always)).is_ok());
}

#[test]
fn an_unbounded_full_wait_waits_instead_of_overflowing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = WalConfig::default()
        .segment_bytes(4096)
        .segments_initial(2)
        .segments_max(2)
        .record_bytes_max(1000)
        .sync_policy(SyncPolicy::Always)
        .full_wait(Duration::MAX);
    let wal = Arc::new(Wal::open(dir.path(), config).expect("open"));
    // Two segments of 4 KiB hold three records of 1000 bytes each.
    for _ in 0..6 {
        let _ = wal.append(0, &[1u8; 1000]).expect("append");
    }
    let writer = {
        let wal = Arc::clone(&wal);
        // The checkpoint below frees the first segment: room for three more.
        std::thread::spawn(move || (0..3).map(|_| wal.append(0, &[2u8; 1000]).map(|t| t.lsn())).collect::<Vec<_>>())
    };
    while wal.metrics().full_waits == 0 {
        std::thread::sleep(Duration::from_millis(1));
    }
    wal.checkpoint(wal.lsn_durable()).expect("checkpoint");
    for res in writer.join().expect("writer") {
        res.expect("append after the checkpoint freed space");
    }
}

#[test]
fn append_sync_later_is_durable_only_once_its_ticket_is_waited_on() {
    let storage = SimStorage::new(11);
    let wal = Wal::open_with_storage(Box::new(storage.clone()), small(SyncPolicy::Never)).expect("open");
    let tickets: Vec<_> = (0..8).map(|i| wal.append_sync_later(0, &numbered(i)).expect("append")).collect();
    assert!(tickets.iter().all(|ticket| !ticket.is_durable()), "nothing is synced before a wait");
    let syncs = storage.syncs();
    assert_eq!(tickets[7].wait().expect("wait"), 8);
    assert!(tickets.iter().all(|ticket| ticket.is_durable()), "one wait made the whole prefix durable");
    assert!(storage.syncs() > syncs);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().expect("runtime");
    let later = wal.append_sync_later(0, &numbered(8)).expect("append");
    assert_eq!(runtime.block_on(later.wait_async()).expect("async wait"), 9, "an async wait asks for the sync");
    drop(wal);
    storage.crash();
    let wal = Wal::open_with_storage(Box::new(storage), small(SyncPolicy::Never)).expect("reopen");
    let expected: Vec<(u64, u8, Vec<u8>)> = (0..9).map(|i| (i + 1, 0, numbered(i))).collect();
    assert_eq!(read_all(&wal), expected);
}

/// `Batch` with a delay and a size the tests never reach: the flusher stays idle.
fn batch_without_flusher() -> WalConfig {
    small(SyncPolicy::Batch { max_delay: Duration::from_secs(60), max_bytes: 1 << 30 })
}

#[test]
fn staged_batch_records_reach_the_file_in_order_before_a_later_never_append() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = batch_without_flusher();
    let wal = Wal::open(dir.path(), config.clone()).expect("open");
    for i in 1..=5u64 {
        let ticket = wal.append(1, &numbered(i)).expect("append");
        assert!(!ticket.is_durable());
    }
    // Staged in memory: handed LSNs, not yet in the file.
    assert_eq!((wal.lsn_appended(), wal.lsn_written(), wal.lsn_durable()), (5, 0, 0));
    // A `Never` append goes behind them, so they are written first.
    let _ = wal.append_with(2, &numbered(6), Durability::Never).expect("never append");
    assert_eq!((wal.lsn_appended(), wal.lsn_written(), wal.lsn_durable()), (6, 6, 0));
    assert_eq!(wal.sync().expect("sync"), 6);
    let records = read_all(&wal);
    let expected: Vec<(u64, u8, Vec<u8>)> = (1..=6u64).map(|i| (i, if i == 6 { 2 } else { 1 }, numbered(i))).collect();
    assert_eq!(records, expected);
}

#[test]
fn dropping_the_log_writes_staged_records_without_a_sync() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = batch_without_flusher();
    let wal = Wal::open(dir.path(), config.clone()).expect("open");
    for i in 1..=2000u64 {
        let _ = wal.append(1, &numbered(i)).expect("append");
    }
    // Segments were started along the way (their headers are synced, the
    // records before each written first), but no record has been synced and
    // those of the last segment are still staged.
    assert!(wal.metrics().segments_live > 1);
    assert!(wal.lsn_written() < 2000, "the last segment's records are staged");
    assert_eq!(wal.lsn_durable(), 0);
    drop(wal); // no close: written to the page cache, not synced
    let wal = Wal::open(dir.path(), config).expect("reopen");
    assert_eq!(wal.recovery_report().lsn_last, 2000);
    let payloads: Vec<Vec<u8>> = read_all(&wal).into_iter().map(|(_, _, payload)| payload).collect();
    assert_eq!(payloads, (1..=2000u64).map(numbered).collect::<Vec<_>>());
}

#[test]
fn batch_records_are_written_and_synced_by_the_flusher_within_max_delay() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = small(SyncPolicy::Batch { max_delay: Duration::from_millis(5), max_bytes: 1 << 30 });
    let wal = Wal::open(dir.path(), config).expect("open");
    let ticket = wal.append(1, b"flushed without anyone waiting").expect("append");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !ticket.is_durable() {
        assert!(std::time::Instant::now() < deadline, "the flusher never synced the record");
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!((wal.lsn_written(), wal.metrics().syncs), (1, 1));
}

#[test]
fn a_failed_write_of_staged_records_poisons_the_log() {
    let disk = SimStorage::new(7);
    let config = WalConfig::default().segment_bytes(4096).sync_policy(SyncPolicy::Never);
    let wal = Wal::open_with_storage(Box::new(disk.clone()), config.clone()).expect("open");
    let _ = wal.append(1, b"kept").expect("append");
    wal.sync().expect("sync");
    let staged = wal.append_sync_later(1, b"lost with its write").expect("staged");
    disk.fail_next_writes(1);
    assert!(matches!(staged.wait(), Err(WalError::Poisoned { .. })));
    assert!(matches!(wal.append(1, b"after"), Err(WalError::Poisoned { .. })));
    assert_eq!(wal.metrics().sync_failures, 1);
    drop(wal);
    disk.crash();
    let wal = Wal::open_with_storage(Box::new(disk), config).expect("reopen");
    assert_eq!(wal.recovery_report().lsn_last, 1);
}

#[test]
fn staged_memory_stays_bounded_when_syncs_fall_behind() {
    let disk = SimStorage::new(11);
    let batch = SyncPolicy::Batch { max_delay: Duration::from_millis(1), max_bytes: 64 << 10 };
    // Segments larger than what is appended: a segment roll writes out what
    // is staged, so the limit is what bounds it here.
    let config = WalConfig::default().segment_bytes(16 << 20).segments_initial(2).segments_max(4).sync_policy(batch);
    let wal = Wal::open_with_storage(Box::new(disk.clone()), config).expect("open");
    // A disk whose every sync takes 200 ms: the flusher falls far behind.
    disk.delay_syncs(Duration::from_millis(200));
    let record = [5u8; 1000];
    let mut peak = 0;
    for _ in 0..12_000 {
        let _ = wal.append(1, &record).expect("append");
        peak = peak.max(wal.metrics().staged_bytes);
    }
    let metrics = wal.metrics();
    // The limit is 4 MiB here (twice max_bytes, at least 4 MiB); one frame may pass it.
    assert!(peak <= (4 << 20) + 1024, "{peak} bytes staged");
    assert!(metrics.staging_overflows > 0, "{metrics:?}");
    // Written by the appender, not yet synced.
    assert!(metrics.lsn_written > metrics.lsn_durable, "{metrics:?}");
    disk.delay_syncs(Duration::ZERO);
    assert_eq!(wal.sync().expect("sync"), 12_000);
}

/// A reused segment whose earlier lap ended in one frame running to the
/// segment's end: the new lap's last record ends inside that old frame, and
/// nothing whole of the old lap follows. Recovery after a crash there must
/// find a clean end (each write leaves an end mark of zeros behind its last
/// frame), not a torn write: under `AbsoluteConsistency` that false alarm
/// refused a healthy restart.
#[test]
fn a_lap_ending_inside_an_old_frame_that_runs_to_the_segment_end_ends_cleanly() {
    const SEGMENT: u64 = 4096;
    let big = vec![0xABu8; (SEGMENT - SEGMENT_HEADER_BYTES - RECORD_HEADER_BYTES) as usize];
    let small_payload = vec![0xCDu8; 100];
    let small_frame = RECORD_HEADER_BYTES + 104;
    for policy in [SyncPolicy::Always, SyncPolicy::Never] {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = WalConfig::default()
            .segment_bytes(SEGMENT)
            .segments_initial(2)
            .segments_max(2)
            .record_bytes_max(big.len() as u32)
            .sync_policy(policy);
        let wal = Wal::open(dir.path(), config.clone()).expect("open");
        // Lap 1 of segment 0: one frame from offset 64 to the segment's end.
        let _ = wal.append(0, &big).expect("append the big record");
        // Segment 1, filled; then segment 0 again, three small records in.
        let _ = wal.append(0, &small_payload).expect("append");
        wal.sync().expect("sync");
        wal.checkpoint(1).expect("release segment 0");
        let per_segment = (SEGMENT - SEGMENT_HEADER_BYTES) / small_frame;
        let records = 1 + per_segment + 3;
        for _ in 3..=records {
            let _ = wal.append(0, &small_payload).expect("append");
        }
        wal.sync().expect("sync");
        assert_eq!(wal.metrics().segments_recycled, 1, "segment 0 is on its second lap");
        drop(wal); // a crash: nothing more is written

        for mode in [RecoveryMode::AbsoluteConsistency, RecoveryMode::TolerateCorruptedTail] {
            let wal = Wal::open(dir.path(), config.clone().recovery_mode(mode))
                .unwrap_or_else(|err| panic!("{policy:?}, {mode:?}: a healthy log refused: {err}"));
            let report = wal.recovery_report();
            assert!(report.is_clean(), "{policy:?}, {mode:?}: {report:?}");
            assert_eq!(report.lsn_last, records, "{policy:?}, {mode:?}");
            assert_eq!(read_all(&wal).len() as u64, records - 1, "every record after the released one");
            drop(wal);
        }
    }
}

/// Segment files are never deleted: a log reopened with `segments_max`
/// below the files it has keeps them all, says so in the configuration in
/// force (it was the lower figure, misstating the disk bound), and grows no
/// further.
#[test]
fn a_log_with_more_segment_files_than_segments_max_keeps_them_and_grows_no_further() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = WalConfig::default().segment_bytes(4096).segments_initial(2).sync_policy(SyncPolicy::Never);
    let segment_files = || {
        std::fs::read_dir(dir.path())
            .expect("read dir")
            .filter(|entry| entry.as_ref().expect("entry").file_name().to_string_lossy().ends_with(".wal"))
            .count()
    };
    let payload = [5u8; 200];
    let wal = Wal::open(dir.path(), config.clone().segments_max(6)).expect("open");
    while wal.metrics().segments_live < 6 {
        let _ = wal.append(0, &payload).expect("append");
    }
    wal.close().expect("close");
    assert_eq!(segment_files(), 6);

    let wal = Wal::open(dir.path(), config.clone().segments_max(3)).expect("reopen with a lower bound");
    assert_eq!(wal.config().segments_max, 6, "the bound in force is the files the log has");
    for round in 0..40 {
        wal.sync().expect("sync");
        wal.checkpoint(wal.lsn_durable()).expect("checkpoint");
        for _ in 0..50 {
            let _ = wal.append(0, &payload).expect("append");
        }
        assert!(segment_files() <= 6, "round {round}: the ring grew past its files");
    }
    assert!(wal.metrics().segments_recycled > 6, "the ring turned on its six files");
}

/// A process killed just after an append started a new segment, with the
/// records before it still staged (`Batch`, the flusher idle): the new
/// lap's header is synced at once, so those records must already be in
/// their file, or recovery finds a started segment behind a hole and
/// reports a torn tail (`AbsoluteConsistency` refused the restart; seen in
/// a SIGKILL campaign with 4 KiB segments). The log must be a clean prefix.
#[test]
fn a_crash_right_after_a_segment_roll_leaves_a_clean_prefix_not_a_hole() {
    let disk = SimStorage::new(11);
    let config = WalConfig::default()
        .segment_bytes(4096)
        .segments_initial(2)
        .segments_max(4)
        .sync_policy(SyncPolicy::Batch { max_delay: Duration::from_secs(60), max_bytes: 1 << 30 });
    let wal = Wal::open_with_storage(Box::new(disk.clone()), config.clone()).expect("open");
    let mut lsn = 0;
    while wal.metrics().segments_live < 2 {
        lsn = wal.append(1, &numbered(lsn + 1)).expect("append").lsn();
    }
    let written = wal.lsn_written();
    assert!(written > 0 && written < lsn, "the first segment's records are written, the roll's record staged");
    // Killed: nothing more is written (no drop, which would write out).
    std::mem::forget(wal);
    let config = config.recovery_mode(RecoveryMode::AbsoluteConsistency);
    let wal = Wal::open_with_storage(Box::new(disk), config).expect("a clean prefix is not damage");
    let report = wal.recovery_report();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.lsn_last, written);
    let payloads: Vec<Vec<u8>> = read_all(&wal).into_iter().map(|(_, _, payload)| payload).collect();
    assert_eq!(payloads, (1..=written).map(numbered).collect::<Vec<_>>());
}

/// The write-out before a new lap fails (and poisons the log): the segment
/// the lap would have used stays in the ring (it was taken from the free
/// list first, and went missing from the ring's counts).
#[test]
fn a_failed_write_out_at_a_segment_roll_keeps_every_segment_in_the_ring() {
    let disk = SimStorage::new(7);
    let config = WalConfig::default()
        .segment_bytes(4096)
        .segments_initial(2)
        .segments_max(2)
        .sync_policy(SyncPolicy::Batch { max_delay: Duration::from_secs(60), max_bytes: 1 << 30 });
    let wal = Wal::open_with_storage(Box::new(disk.clone()), config).expect("open");
    let segments = |wal: &Wal| {
        let metrics = wal.metrics();
        metrics.segments_live + metrics.segments_free
    };
    let before = segments(&wal);
    // Segment 0 filled with staged records; the next append rolls.
    while wal.metrics().staged_bytes + SEGMENT_HEADER_BYTES + 232 <= 4096 {
        let _ = wal.append(1, &[7u8; 200]).expect("append");
    }
    disk.fail_next_writes(1);
    assert!(matches!(wal.append(1, &[7u8; 200]), Err(WalError::Poisoned { .. })));
    assert_eq!(segments(&wal), before, "a segment left the ring");
}
