//! What a new data directory costs on disk with the default configuration:
//! a few MiB (one segment of the log, the one prepared ahead, the snapshot
//! and small files), not the whole initial ring; and the default ring's
//! disk bound, which README.md and `recwal serve --help` state.

use std::path::Path;
use std::time::{Duration, Instant};

use recwal::{Engine, EngineConfig, Event, EventKind};

fn bytes_under(path: &Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(path).expect("list") {
        let entry = entry.expect("entry");
        let metadata = entry.metadata().expect("metadata");
        total += if metadata.is_dir() { bytes_under(&entry.path()) } else { metadata.len() };
    }
    total
}

#[test]
fn the_default_ring_is_4_mib_segments_up_to_4_gib() {
    let wal = EngineConfig::default().wal;
    assert_eq!((wal.segment_bytes, wal.segments_initial, wal.segments_max), (4 << 20, 1, 1024));
    assert_eq!(wal.segments_max as u64 * wal.segment_bytes, 4 << 30);
}

#[test]
fn a_new_data_dir_with_three_events_costs_a_few_mib() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = Engine::open(dir.path(), EngineConfig::default()).expect("open");
    for (user, item, kind) in
        [("alice", "book", EventKind::Purchase), ("bob", "book", EventKind::Click), ("bob", "lamp", EventKind::Click)]
    {
        engine.ingest(Event::new(user, item, kind)).expect("ingest");
    }
    // The segment prepared ahead appears in the background; wait for it (a
    // bound, not a timing) so the figure is the steady one.
    let deadline = Instant::now() + Duration::from_secs(30);
    while engine.wal_metrics().segments_free == 0 {
        assert!(Instant::now() < deadline, "no segment prepared ahead");
        std::thread::sleep(Duration::from_millis(5));
    }
    engine.close().expect("close");
    let bytes = bytes_under(dir.path());
    assert!(bytes <= 9 << 20, "a new data dir takes {bytes} bytes");
}
