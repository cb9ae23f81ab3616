//! The segment size of an existing log is a property of the log, not of the
//! caller's configuration: a log opened with a different `segment_bytes`
//! (smaller or larger than the one it was created with, as a server and a
//! library example sharing a data directory do) opens with the log's size,
//! reads every record, takes appends and reopens the same way.

use recwal_wal::{log_segment_bytes, SyncPolicy, Wal, WalConfig};

const CREATED_BYTES: u64 = 64 << 10;

fn config(segment_bytes: u64) -> WalConfig {
    WalConfig::default()
        .segment_bytes(segment_bytes)
        .segments_initial(2)
        .segments_max(16)
        .sync_policy(SyncPolicy::Always)
}

fn payload(i: u64) -> Vec<u8> {
    let mut bytes = i.to_le_bytes().to_vec();
    bytes.resize(8 + (i % 300) as usize, (i % 251) as u8);
    bytes
}

fn lsns_and_payloads(wal: &Wal) -> Vec<(u64, Vec<u8>)> {
    wal.read_from(wal.lsn_first())
        .expect("reader")
        .map(|record| {
            let record = record.expect("record");
            (record.lsn(), record.payload().to_vec())
        })
        .collect()
}

fn expected(lsn_last: u64) -> Vec<(u64, Vec<u8>)> {
    (1..=lsn_last).map(|lsn| (lsn, payload(lsn))).collect()
}

/// A log of `CREATED_BYTES` segments whose records span several segments.
fn created_log(dir: &std::path::Path) -> u64 {
    let wal = Wal::open(dir, config(CREATED_BYTES)).expect("create");
    let mut lsn_last = 0;
    for i in 1..=1500u64 {
        lsn_last = wal.append(1, &payload(i)).expect("append").lsn();
    }
    assert!(wal.metrics().segments_live >= 2, "the records span more than one segment");
    wal.close().expect("close");
    lsn_last
}

fn opens_with_the_logs_segment_size(configured_bytes: u64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut lsn_last = created_log(dir.path());

    let wal = Wal::open(dir.path(), config(configured_bytes)).expect("open with another segment size");
    assert_eq!(wal.config().segment_bytes, CREATED_BYTES, "the log's segment size wins");
    assert!(wal.recovery_report().is_clean(), "{:?}", wal.recovery_report());
    assert_eq!(lsns_and_payloads(&wal), expected(lsn_last), "every record reads back");
    for i in lsn_last + 1..=lsn_last + 400 {
        lsn_last = wal.append(1, &payload(i)).expect("append after a mismatched open").lsn();
    }
    wal.close().expect("close");

    // The restart also uses the mismatched configuration.
    let wal = Wal::open(dir.path(), config(configured_bytes)).expect("restart");
    assert!(wal.recovery_report().is_clean(), "{:?}", wal.recovery_report());
    assert_eq!(lsns_and_payloads(&wal), expected(lsn_last), "every record survives the restart");
    wal.close().expect("close");
    assert_eq!(log_segment_bytes(dir.path()).expect("probe"), Some(CREATED_BYTES), "the manifest is unchanged");
    for entry in std::fs::read_dir(dir.path()).expect("list") {
        let entry = entry.expect("entry");
        if entry.file_name().to_string_lossy().ends_with(".wal") {
            assert_eq!(entry.metadata().expect("metadata").len(), CREATED_BYTES, "{:?}", entry.path());
        }
    }
}

#[test]
fn a_log_opened_with_a_smaller_segment_size_uses_its_own() {
    opens_with_the_logs_segment_size(16 << 10);
}

#[test]
fn a_log_opened_with_a_larger_segment_size_uses_its_own() {
    opens_with_the_logs_segment_size(4 << 20);
}

#[test]
fn a_record_too_large_for_the_logs_segments_is_refused_not_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lsn_last = created_log(dir.path());
    // Configured for 4 MiB segments: a 100 KiB record would fit those but not
    // the log's 64 KiB ones.
    let wal = Wal::open(dir.path(), config(4 << 20)).expect("open");
    assert!(u64::from(wal.config().record_bytes_max) < CREATED_BYTES);
    assert!(wal.append(1, &vec![7u8; 100 << 10]).is_err(), "a record larger than a segment is refused");
    assert_eq!(wal.metrics().lsn_appended, lsn_last, "nothing was written");
    wal.close().expect("close");
}

#[test]
fn a_log_with_more_segments_than_segments_max_opens_with_all_of_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut lsn_last = created_log(dir.path());
    let files = || {
        std::fs::read_dir(dir.path())
            .expect("list")
            .filter(|entry| entry.as_ref().is_ok_and(|entry| entry.file_name().to_string_lossy().ends_with(".wal")))
            .count()
    };
    let files_created = files();
    assert!(files_created > 2, "{files_created} segment files");
    let fewer = config(CREATED_BYTES).segments_max(2);
    let wal = Wal::open(dir.path(), fewer.clone()).expect("open with a smaller segments_max");
    assert_eq!(lsns_and_payloads(&wal), expected(lsn_last));
    for i in lsn_last + 1..=lsn_last + 50 {
        lsn_last = wal.append(1, &payload(i)).expect("append").lsn();
    }
    wal.close().expect("close");
    let wal = Wal::open(dir.path(), fewer).expect("restart");
    assert_eq!(lsns_and_payloads(&wal), expected(lsn_last));
    wal.close().expect("close");
    assert_eq!(files(), files_created, "no file was added or removed");
}
