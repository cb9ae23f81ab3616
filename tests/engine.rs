//! The engine's behaviour through its public API: validation that writes
//! nothing, read-your-writes, exactly-once ingest across restarts,
//! forget/remove surviving replay, snapshot fallback, concurrency.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use recwal::wal::SyncPolicy;
use recwal::{Engine, EngineConfig, EngineError, Event, EventKind, Reason, RecommendRequest, Strategy};

fn config() -> EngineConfig {
    let mut config = EngineConfig::default();
    config.wal = config.wal.segment_bytes(1 << 20).segments_initial(2).sync_policy(SyncPolicy::Always);
    config.checkpoint.disable_automatic();
    config
}

fn open(dir: &Path) -> Engine {
    Engine::open(dir, config()).unwrap()
}

fn field(result: Result<impl std::fmt::Debug, EngineError>) -> String {
    match result {
        Err(EngineError::Invalid { field, .. }) => field,
        other => panic!("expected an Invalid error, got {other:?}"),
    }
}

#[test]
fn engine_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Engine>();
}

#[test]
fn every_rejection_names_its_field_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    engine.ingest(Event::new("u", "i", EventKind::View)).unwrap();
    let lsn = engine.wal_metrics().lsn_written;
    let digest = engine.state_digest();
    let far_future = recwal_now_ms() + 2 * 3600 * 1000;
    let cases: Vec<(Event, &str)> = vec![
        (Event::new("", "i", EventKind::View), "event.user"),
        (Event::new("u".repeat(257), "i", EventKind::View), "event.user"),
        (Event::new("u", "", EventKind::View), "event.item"),
        (Event::new("u", "i", EventKind::View).weighted(f32::NAN), "event.weight"),
        (Event::new("u", "i", EventKind::View).weighted(f32::INFINITY), "event.weight"),
        (Event::new("u", "i", EventKind::View).weighted(-0.5), "event.weight"),
        (Event::new("u", "i", EventKind::Rating(5.5)), "event.kind.rating"),
        (Event::new("u", "i", EventKind::Rating(-1.0)), "event.kind.rating"),
        (Event::new("u", "i", EventKind::Rating(f32::NAN)), "event.kind.rating"),
        (Event::new("u", "i", EventKind::Custom("wishlist".into())), "event.kind"),
        (Event::new("u", "i", EventKind::View).at(far_future), "event.timestamp_ms"),
        (Event::new("u", "i", EventKind::View).at(-1), "event.timestamp_ms"),
        (Event::new("u", "i", EventKind::View).with_id("x".repeat(257)), "event.event_id"),
    ];
    for (event, expected) in cases {
        assert_eq!(field(engine.ingest(event.clone())), expected, "{event:?}");
    }
    // One bad event rejects the whole batch, and the error says which one.
    let batch = vec![Event::new("u", "a", EventKind::View), Event::new("u", "", EventKind::View)];
    assert_eq!(field(engine.ingest_batch(&batch)), "events[1].item");
    let too_many = vec![Event::new("u", "a", EventKind::View); 10_001];
    assert_eq!(field(engine.ingest_batch(&too_many)), "events");
    assert_eq!(field(engine.recommend(&RecommendRequest::new("u", 0, Strategy::UserCf))), "n");
    assert_eq!(field(engine.recommend(&RecommendRequest::new("u", 1001, Strategy::UserCf))), "n");
    assert_eq!(field(engine.recommend(&RecommendRequest::new("", 1, Strategy::UserCf))), "user");
    assert!(matches!(engine.forget_user("nobody"), Err(EngineError::UnknownUser(_))));
    assert!(matches!(engine.remove_item("nothing"), Err(EngineError::UnknownItem(_))));
    assert!(matches!(engine.similar_items("nothing", 3), Err(EngineError::UnknownItem(_))));
    assert_eq!(engine.wal_metrics().lsn_written, lsn, "a rejected call wrote to the log");
    assert_eq!(engine.state_digest(), digest, "a rejected call changed the state");
    drop(engine);
    let engine = open(dir.path());
    assert_eq!(engine.wal_metrics().lsn_written, lsn);
}

fn recwal_now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

#[test]
fn an_acknowledged_event_is_in_the_next_answer() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    engine.ingest(Event::new("ann", "tea", EventKind::Purchase)).unwrap();
    engine.ingest(Event::new("bob", "tea", EventKind::Purchase)).unwrap();
    for strategy in [Strategy::UserCf, Strategy::ItemRank, Strategy::ItemRankExact, Strategy::Blend] {
        // A fresh pair of users per strategy, linked by a shared item.
        let (me, them, name) = (format!("ann-{strategy:?}"), format!("bob-{strategy:?}"), strategy.name());
        engine.ingest(Event::new(&me, format!("pot-{name}"), EventKind::Purchase)).unwrap();
        engine.ingest(Event::new(&them, format!("pot-{name}"), EventKind::Purchase)).unwrap();
        let before = engine.recommend(&RecommendRequest::new(&me, 3, strategy)).unwrap();
        assert!(before.items.iter().all(|scored| scored.item != format!("cup-{name}")));
        let receipt = engine.ingest(Event::new(&them, format!("cup-{name}"), EventKind::Cart)).unwrap();
        let after = engine.recommend(&RecommendRequest::new(&me, 3, strategy)).unwrap();
        assert!(after.lsn >= receipt.lsn);
        assert_eq!(after.items[0].item, format!("cup-{name}"), "{strategy:?}: {after:?}");
        assert_eq!(after.items[0].strategy, strategy);
        assert!(!after.items[0].reasons.is_empty(), "{strategy:?} gave no reason");
    }
    // UserCF says which neighbour; seen items never come back.
    let answer = engine.recommend(&RecommendRequest::new("ann-UserCf", 10, Strategy::UserCf)).unwrap();
    assert!(matches!(&answer.items[0].reasons[0], Reason::Neighbour { user, .. } if user == "bob-UserCf"));
    assert!(answer.items.iter().all(|scored| scored.item != "pot-user_cf"));
    // Filters.
    let request = RecommendRequest::new("ann-UserCf", 10, Strategy::UserCf).exclude(["cup-user_cf"]);
    let answer = engine.recommend(&request).unwrap();
    assert!(answer.items.iter().all(|scored| scored.item != "cup-user_cf"));
    let request = RecommendRequest::new("ann-Blend", 10, Strategy::Blend).allow(["cup-item_rank", "cup-blend"]);
    let answer = engine.recommend(&request).unwrap();
    let items: Vec<&str> = answer.items.iter().map(|s| s.item.as_str()).collect();
    assert_eq!(items, vec!["cup-blend", "cup-item_rank"]);
    // An unknown user gets popular items, marked as cold start.
    engine.ingest(Event::new("carol", "pot-blend", EventKind::View)).unwrap();
    let answer = engine.recommend(&RecommendRequest::new("newcomer", 2, Strategy::UserCf)).unwrap();
    assert!(answer.cold_start);
    assert_eq!(answer.items[0].item, "pot-blend");
    assert_eq!(answer.items[0].strategy, Strategy::Popularity);
    let similar = engine.similar_items("pot-user_cf", 5).unwrap();
    assert_eq!(similar.iter().map(|s| s.item.as_str()).collect::<Vec<_>>(), vec!["cup-user_cf"]);
}

#[test]
fn duplicates_are_acknowledged_change_nothing_and_survive_restart_and_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    let first = engine.ingest(Event::new("u", "a", EventKind::View).with_id("e1")).unwrap();
    assert!(!first.duplicate);
    let lsn = engine.wal_metrics().lsn_written;
    let digest = engine.state_digest();
    let again = engine.ingest(Event::new("u", "b", EventKind::Purchase).with_id("e1")).unwrap();
    assert_eq!((again.lsn, again.duplicate), (first.lsn, true));
    assert_eq!((engine.wal_metrics().lsn_written, engine.state_digest()), (lsn, digest));
    // Inside one batch: the second copy is a duplicate of the first.
    let receipts = engine
        .ingest_batch(&[
            Event::new("u", "c", EventKind::View).with_id("e2"),
            Event::new("u", "d", EventKind::View).with_id("e2"),
            Event::new("u", "e", EventKind::View).with_id("e1"),
        ])
        .unwrap();
    assert!(!receipts[0].duplicate && receipts[1].duplicate && receipts[2].duplicate);
    assert_eq!(receipts[1].lsn, receipts[0].lsn);
    assert_eq!(receipts[2].lsn, first.lsn);
    let items: Vec<String> = engine.interactions("u").unwrap().into_iter().map(|i| i.item).collect();
    assert_eq!(items, vec!["a", "c"]);
    drop(engine);
    // After a restart (replay) the window is still there…
    let engine = open(dir.path());
    assert!(engine.ingest(Event::new("u", "z", EventKind::View).with_id("e2")).unwrap().duplicate);
    engine.checkpoint().unwrap();
    drop(engine);
    // …and after a restart from a snapshot.
    let engine = open(dir.path());
    assert!(engine.open_report().lsn_snapshot > 0);
    assert!(engine.ingest(Event::new("u", "z", EventKind::View).with_id("e1")).unwrap().duplicate);
    assert_eq!(engine.interactions("u").unwrap().len(), 2);
}

#[test]
fn a_short_dedup_window_forgets_by_count() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config();
    config.dedup.max_ids = 2;
    config.dedup.max_age = Duration::from_secs(3600);
    let engine = Engine::open(dir.path(), config).unwrap();
    for id in ["a", "b", "c"] {
        engine.ingest(Event::new("u", id, EventKind::View).with_id(id)).unwrap();
    }
    assert!(!engine.ingest(Event::new("u", "a2", EventKind::View).with_id("a")).unwrap().duplicate);
    assert!(engine.ingest(Event::new("u", "c2", EventKind::View).with_id("c")).unwrap().duplicate);
}

#[test]
fn forget_and_remove_survive_replay_and_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    for (user, item) in [("ann", "x"), ("ann", "y"), ("bob", "x"), ("bob", "z"), ("cid", "x"), ("cid", "w")] {
        engine.ingest(Event::new(user, item, EventKind::Click)).unwrap();
    }
    engine.forget_user("bob").unwrap();
    engine.remove_item("w").unwrap();
    let check = |engine: &Engine| {
        assert!(engine.interactions("bob").unwrap().is_empty());
        let answer = engine.recommend(&RecommendRequest::new("ann", 10, Strategy::UserCf)).unwrap();
        let items: Vec<&str> = answer.items.iter().map(|s| s.item.as_str()).collect();
        assert!(!items.contains(&"w"), "removed item recommended: {items:?}");
        assert!(
            !items.contains(&"z") || answer.items.iter().any(|s| s.item == "z" && s.strategy == Strategy::Popularity)
        );
        let popular: Vec<String> = engine.popular(10).unwrap().into_iter().map(|s| s.item).collect();
        assert_eq!(popular, vec!["x", "y"], "bob's events still count, or w is still listed");
        // A removed item is no subject either.
        assert!(matches!(engine.similar_items("w", 10), Err(EngineError::UnknownItem(_))));
        assert!(engine.similar_items("x", 10).unwrap().iter().all(|scored| scored.item != "w"));
    };
    check(&engine);
    let digest = engine.state_digest();
    drop(engine);
    let engine = open(dir.path());
    check(&engine);
    assert_eq!(engine.state_digest(), digest);
    engine.checkpoint().unwrap();
    drop(engine);
    let engine = open(dir.path());
    assert_eq!(engine.open_report().records_replayed, 0);
    check(&engine);
    assert_eq!(engine.state_digest(), digest);
}

#[test]
fn a_damaged_newest_snapshot_falls_back_to_the_previous_one() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    engine.ingest(Event::new("u", "a", EventKind::View)).unwrap();
    let older = engine.checkpoint().unwrap();
    engine.ingest(Event::new("u", "b", EventKind::View)).unwrap();
    let newer = engine.checkpoint().unwrap();
    engine.ingest(Event::new("u", "c", EventKind::View)).unwrap();
    let digest = engine.state_digest();
    drop(engine);
    let newest = newer.path.unwrap();
    let mut bytes = std::fs::read(&newest).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    std::fs::write(&newest, bytes).unwrap();
    let engine = open(dir.path());
    let report = engine.open_report();
    assert_eq!(report.lsn_snapshot, older.lsn);
    assert_eq!(report.snapshots_skipped.len(), 1);
    assert!(report.snapshots_skipped[0].1.contains("CRC"), "{:?}", report.snapshots_skipped);
    assert_eq!(engine.state_digest(), digest);
}

#[test]
fn a_log_recycled_past_every_readable_snapshot_is_an_error_not_an_empty_state() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config();
    config.checkpoint.snapshots_kept = 1;
    config.wal = config.wal.segment_bytes(64 << 10).segments_initial(2).segments_max(4);
    let engine = Engine::open(dir.path(), config.clone()).unwrap();
    let mut snapshot = None;
    for round in 0..200 {
        let events: Vec<Event> =
            (0..200).map(|i| Event::new(format!("u{i}"), format!("item-{round}-{i}"), EventKind::View)).collect();
        engine.ingest_batch(&events).unwrap();
        snapshot = engine.checkpoint().unwrap().path;
    }
    assert!(engine.wal_metrics().segments_recycled > 0, "the ring should have recycled");
    drop(engine);
    let snapshot = snapshot.unwrap();
    std::fs::write(&snapshot, b"garbage").unwrap();
    // And a torn write at the log's end (the next LSN's header, its payload
    // never written), which a start that goes ahead cuts.
    let wal_dir = dir.path().join("wal");
    let mut last = None;
    recwal::wal::inspect(&wal_dir, &config.wal, &mut |info, _| last = Some(*info)).unwrap();
    let last = last.unwrap();
    let segment = wal_dir.join(format!("seg-{:08}.wal", last.segment_index));
    let mut bytes = std::fs::read(&segment).unwrap();
    let (at, end) = (last.offset as usize, (last.offset + 32 + u64::from(last.len)).next_multiple_of(8) as usize);
    assert!(end + 32 <= bytes.len(), "room for a torn header after the last record");
    let mut torn = bytes[at..at + 32].to_vec();
    torn[8..16].copy_from_slice(&(last.lsn + 1).to_le_bytes());
    bytes[end..end + 32].copy_from_slice(&torn);
    std::fs::write(&segment, &bytes).unwrap();
    let files_before = files_under(dir.path());

    match Engine::open(dir.path(), config) {
        Err(EngineError::Unrecoverable(reason)) => {
            assert!(reason.contains("gone") && reason.contains("1 snapshot(s) unreadable"), "{reason}")
        }
        Err(other) => panic!("wrong error: {other}"),
        Ok(_) => panic!("opened with an incomplete state"),
    }
    // The refused start changed nothing: the unreadable snapshot is where
    // it was (set aside only by a start that succeeds), and the log's torn
    // tail is not cut nor its manifest rewritten (the engine's check runs
    // before the log repairs anything), so a salvage sees what the crash left.
    assert_eq!(std::fs::read(&snapshot).unwrap(), b"garbage");
    assert!(files_under(dir.path()) == files_before, "the refused start changed files in the data directory");
}

/// Every file under `dir` with its bytes, by path.
fn files_under(dir: &Path) -> std::collections::BTreeMap<std::path::PathBuf, Vec<u8>> {
    let mut files = std::collections::BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        for entry in std::fs::read_dir(&next).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else if path.file_name().is_some_and(|name| name != "LOCK") {
                files.insert(path.clone(), std::fs::read(&path).unwrap());
            }
        }
    }
    files
}

#[test]
fn many_writers_and_readers_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config();
    config.wal = config.wal.sync_policy(SyncPolicy::Batch { max_delay: Duration::from_millis(1), max_bytes: 1 << 16 });
    let engine = Arc::new(Engine::open(dir.path(), config).unwrap());
    let writers: Vec<_> = (0..4)
        .map(|writer| {
            let engine = Arc::clone(&engine);
            std::thread::spawn(move || {
                let mut last = 0;
                for i in 0..200 {
                    let event = Event::new(format!("w{writer}"), format!("i{}", i % 50), EventKind::View)
                        .with_id(format!("{writer}-{i}"));
                    let receipt = engine.ingest(event).unwrap();
                    // Our own event is visible as soon as it is acknowledged.
                    assert!(engine.lsn_applied() >= receipt.lsn);
                    assert!(receipt.lsn > last);
                    last = receipt.lsn;
                }
            })
        })
        .collect();
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let engine = Arc::clone(&engine);
            std::thread::spawn(move || {
                for i in 0..200 {
                    let strategy = Strategy::ALL[i % Strategy::ALL.len()];
                    engine.recommend(&RecommendRequest::new(format!("w{}", i % 4), 5, strategy)).unwrap();
                }
            })
        })
        .collect();
    for handle in writers.into_iter().chain(readers) {
        handle.join().unwrap();
    }
    let stats = engine.stats();
    assert_eq!((stats.events_applied, stats.lsn_applied, stats.dedup_ids), (800, 800, 800));
    assert!(stats.wal.syncs < 800, "no group commit: {} syncs for 800 appends", stats.wal.syncs);
}

#[test]
fn decayed_popularity_favours_recent_events_and_forgets_users_exactly() {
    let day = 24 * 3600 * 1000;
    let t0 = recwal_now_ms() - 10 * day;
    let dir = tempfile::tempdir().unwrap();
    let mut decayed = config();
    decayed.popularity.half_life = Some(Duration::from_secs(24 * 3600));
    let engine = Engine::open(dir.path(), decayed.clone()).unwrap();
    for user in ["a", "b", "c"] {
        engine.ingest(Event::new(user, "old", EventKind::View).at(t0)).unwrap();
    }
    for user in ["d", "e"] {
        engine.ingest(Event::new(user, "new", EventKind::View).at(t0 + 3 * day)).unwrap();
    }
    engine.ingest(Event::new("a", "new-ish", EventKind::View).at(t0 + 2 * day)).unwrap();
    let ranked = |engine: &Engine| -> Vec<(String, f64)> {
        engine.popular(10).unwrap().into_iter().map(|s| (s.item, s.score)).collect()
    };
    // Scores are as of the latest event: new = 2, new-ish = 2^-1, old = 3 × 2^-3.
    let got = ranked(&engine);
    let names: Vec<&str> = got.iter().map(|(item, _)| item.as_str()).collect();
    assert_eq!(names, vec!["new", "new-ish", "old"]);
    assert!(
        (got[0].1 - 2.0).abs() < 1e-9 && (got[1].1 - 0.5).abs() < 1e-9 && (got[2].1 - 0.375).abs() < 1e-9,
        "{got:?}"
    );
    engine.forget_user("d").unwrap();
    let got = ranked(&engine);
    assert!((got[0].1 - 1.0).abs() < 1e-9, "forgetting d must remove exactly its event: {got:?}");
    engine.forget_user("e").unwrap();
    assert_eq!(ranked(&engine).iter().map(|(item, _)| item.as_str()).collect::<Vec<_>>(), vec!["new-ish", "old"]);
    let digest = engine.state_digest();
    engine.checkpoint().unwrap();
    drop(engine);
    let engine = Engine::open(dir.path(), decayed).unwrap();
    assert_eq!(engine.state_digest(), digest);
    drop(engine);
    // The half-life cannot change under an existing snapshot.
    match Engine::open(dir.path(), config()) {
        Err(EngineError::InvalidConfig { field, .. }) => assert_eq!(field, "popularity.half_life"),
        Err(other) => panic!("wrong error: {other}"),
        Ok(_) => panic!("opened with a different half-life"),
    }
}

#[test]
fn async_ingest_waits_without_blocking_the_thread() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Arc::new(open(dir.path()));
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let syncs_before = engine.stats().wal.syncs;
    let receipts = runtime.block_on(async {
        let tasks: Vec<_> = (0..64)
            .map(|i| {
                let engine = Arc::clone(&engine);
                tokio::spawn(async move {
                    let event = Event::new(format!("u{}", i % 8), format!("i{i}"), EventKind::Click);
                    engine.ingest_batch_async(&[event], recwal::Durability::Always).await
                })
            })
            .collect();
        let mut receipts = Vec::new();
        for task in tasks {
            receipts.push(task.await.unwrap().unwrap()[0]);
        }
        receipts
    });
    assert_eq!(receipts.len(), 64);
    assert!(receipts.iter().all(|r| !r.duplicate && r.lsn <= engine.lsn_applied()));
    let syncs = engine.stats().wal.syncs - syncs_before;
    // One thread ran all 64 calls: had each wait blocked it, each would have
    // needed its own sync.
    assert!(syncs < 64, "{syncs} syncs for 64 concurrent async ingests on one thread");
}

#[test]
fn open_reports_replay_progress() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = EngineConfig::default();
    config.wal = config.wal.segment_bytes(1 << 20).segments_initial(2);
    config.checkpoint.disable_automatic();
    {
        let engine = Engine::open(dir.path(), config.clone()).unwrap();
        for at in 0..3000 {
            let event = Event::new(format!("u{}", at % 50), format!("i{at}"), EventKind::Click);
            engine.ingest_with(event, recwal::Durability::Never).unwrap();
        }
    }
    let seen = std::sync::Mutex::new(Vec::new());
    let engine =
        Engine::open_with_progress(dir.path(), config, &|progress| seen.lock().unwrap().push(progress)).unwrap();
    let seen = seen.into_inner().unwrap();
    assert_eq!(seen.first().map(|p| p.records_done), Some(0));
    let last = *seen.last().unwrap();
    assert_eq!((last.records_done, last.records_total), (3000, 3000));
    assert!(seen.windows(2).all(|pair| pair[0].records_done <= pair[1].records_done));
    assert_eq!(engine.open_report().records_replayed, 3000);
}

/// Size of the newest snapshot file (`snapshots/snapshot-<lsn>.bin`).
fn newest_snapshot_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir.join("snapshots"))
        .unwrap()
        .map(|entry| entry.unwrap())
        .filter(|entry| entry.file_name().to_string_lossy().ends_with(".bin"))
        .max_by_key(|entry| entry.file_name())
        .map(|entry| entry.metadata().unwrap().len())
        .unwrap()
}

/// `checkpoint.log_per_snapshot_byte`: a byte-triggered checkpoint waits
/// until the log since the last one is that many times the snapshot's size
/// (so a large state is not rewritten for every `every_bytes` of log), and
/// then comes; at 0 `every_bytes` alone decides.
#[test]
fn a_byte_triggered_checkpoint_waits_for_a_log_as_large_as_the_snapshot() {
    const EVERY_BYTES: u64 = 8 << 10;
    for ratio in [1.0, 0.0] {
        let dir = tempfile::tempdir().unwrap();
        let mut config = config();
        config.checkpoint.every_bytes = Some(EVERY_BYTES);
        config.checkpoint.log_per_snapshot_byte = ratio;
        let engine = Engine::open(dir.path(), config).unwrap();
        // A state whose snapshot is many times `every_bytes`.
        for batch in 0..20 {
            let events: Vec<Event> = (0..1_000)
                .map(|at| Event::new(format!("u{}", at % 997), format!("i{batch}-{at}"), EventKind::View))
                .collect();
            engine.ingest_batch(&events).unwrap();
        }
        engine.checkpoint().unwrap();
        let snapshot_bytes = newest_snapshot_bytes(dir.path());
        assert!(snapshot_bytes >= 16 * EVERY_BYTES, "the snapshot is only {snapshot_bytes} bytes");
        let (lsn_snapshot, log_at_snapshot) = (engine.stats().lsn_snapshot, engine.wal_metrics().bytes_appended);
        let since = |engine: &Engine| engine.wal_metrics().bytes_appended - log_at_snapshot;
        let mut next = 0;
        let mut ingest_until = |engine: &Engine, bytes: u64| {
            while since(engine) < bytes {
                let events: Vec<Event> =
                    (0..10).map(|at| Event::new(format!("v{next}"), format!("j{at}"), EventKind::View)).collect();
                next += 1;
                engine.ingest_batch(&events).unwrap();
            }
        };
        // Four times `every_bytes`, a quarter of the snapshot: due only
        // without the ratio. The checkpoint thread looks every 20 ms.
        ingest_until(&engine, 4 * EVERY_BYTES);
        let waited = std::time::Instant::now();
        while engine.stats().lsn_snapshot == lsn_snapshot && waited.elapsed() < Duration::from_millis(500) {
            std::thread::sleep(Duration::from_millis(10));
        }
        let moved = engine.stats().lsn_snapshot != lsn_snapshot;
        assert_eq!(moved, ratio == 0.0, "ratio {ratio}: a checkpoint after {} log bytes", since(&engine));
        if ratio == 0.0 {
            continue;
        }
        // A log as large as the snapshot: due.
        ingest_until(&engine, snapshot_bytes + EVERY_BYTES);
        let waited = std::time::Instant::now();
        while engine.stats().lsn_snapshot == lsn_snapshot && waited.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_ne!(engine.stats().lsn_snapshot, lsn_snapshot, "no checkpoint after {} log bytes", since(&engine));
    }
}

/// A restart does not forget what the snapshots cover: segments released
/// before it are reused after it, so a node restarted often (each time
/// after a checkpoint, before the log starts its next segment) keeps its
/// ring at the size its data needs instead of growing a file per restart.
#[test]
fn segments_released_before_a_restart_are_reused_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config();
    config.checkpoint.snapshots_kept = 1;
    config.wal = config.wal.segment_bytes(64 << 10).segments_initial(2).segments_max(64);
    let mut grown = Vec::new();
    for restart in 0..12 {
        let engine = Engine::open(dir.path(), config.clone()).unwrap();
        // About one and a half segments of records, then a checkpoint that
        // covers them all.
        for batch in 0..3 {
            let events: Vec<Event> = (0..600)
                .map(|i| Event::new(format!("u{i}"), format!("item-{restart}-{batch}-{i}"), EventKind::View))
                .collect();
            engine.ingest_batch(&events).unwrap();
        }
        engine.checkpoint().unwrap();
        grown.push(engine.wal_metrics().segments_live + engine.wal_metrics().segments_free);
    }
    let files = std::fs::read_dir(dir.path().join("wal"))
        .unwrap()
        .filter(|entry| entry.as_ref().unwrap().file_name().to_string_lossy().starts_with("seg-"))
        .count();
    assert!(files <= 4, "{files} segment files after 12 restarts (ring sizes per restart: {grown:?})");
}

/// `wal.record_bytes_max` may go down to 1024: one event with every id at
/// its limit still fits, so no configuration the engine accepts refuses every
/// write.
#[test]
fn the_smallest_record_limit_holds_an_event_with_every_id_at_its_limit() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config();
    config.wal = config.wal.record_bytes_max(1024);
    let engine = Engine::open(dir.path(), config.clone()).unwrap();
    let long = |c: char| c.to_string().repeat(recwal::ID_BYTES_MAX);
    let event = Event::new(long('u'), long('i'), EventKind::Rating(4.5)).with_id(long('e')).at(1_700_000_000_000);
    engine.ingest(event).unwrap();
    config.wal = config.wal.record_bytes_max(1023);
    assert!(matches!(Engine::open(dir.path(), config), Err(EngineError::InvalidConfig { .. })));
}

/// A log keeps the segment size it was created with; the engine's
/// configuration in force says so (what /admin/wal and the checkpoint's ring
/// arithmetic read), not the size asked for at the reopen.
#[test]
fn the_configuration_in_force_has_the_logs_own_segment_size() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config();
    config.wal = config.wal.segment_bytes(4096);
    let engine = Engine::open(dir.path(), config.clone()).unwrap();
    engine.ingest(Event::new("u", "i", EventKind::View)).unwrap();
    drop(engine);
    config.wal = config.wal.segment_bytes(64 << 10);
    let engine = Engine::open(dir.path(), config).unwrap();
    assert_eq!(engine.config().wal.segment_bytes, 4096);
    assert!(u64::from(engine.config().wal.record_bytes_max) < 4096);
}
