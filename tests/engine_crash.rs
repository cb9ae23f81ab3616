//! Acknowledged ⇒ survives `kill -9`, for the engine: this test binary
//! re-runs itself as a child that submits a deterministic stream of event
//! batches (one log record each, every event with a client id) mixed with
//! catalogue changes (item upserts with categories, labels, publication
//! times and hidden flags; user labels: one record each) and item-model
//! trainings (an artefact file, then record 11) and prints each
//! acknowledgement; automatic checkpoints run every 40 records, so some
//! kills land during a snapshot write. The parent SIGKILLs it after a random
//! delay, reopens the engine and checks:
//!
//! - every acknowledged batch is in the recovered state, at the LSN its
//!   receipt named, and nothing beyond the batches submitted is there;
//! - the state (digest, and every user's answers under every strategy) equals that of one
//!   uninterrupted engine fed the same batches;
//! - resubmitting an acknowledged batch is recognised as a duplicate.
//!
//! The next child continues where the recovered state ends. Default: 20
//! kills each under `Always` and `Batch`; `RECWAL_ENGINE_CRASH_ITERS=<n>`
//! for the long mode, `RECWAL_CRASH_SEED=<seed>` to fix the timing.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use recwal::wal::sim::SplitMix64;
use recwal::wal::SyncPolicy;
use recwal::{Engine, EngineConfig, Event, EventKind, Item, ItemQuery, LabelValue, RecommendRequest, Strategy, User};

const CHILD_DIR: &str = "RECWAL_ENGINE_CRASH_DIR";
const CHILD_POLICY: &str = "RECWAL_ENGINE_CRASH_POLICY";
const CHILD_START: &str = "RECWAL_ENGINE_CRASH_START";
const USERS: u64 = 40;
const ITEMS: u64 = 60;

fn config(policy: &str) -> EngineConfig {
    let mut config = EngineConfig::default();
    let sync_policy = match policy {
        "always" => SyncPolicy::Always,
        "batch" => SyncPolicy::Batch { max_delay: Duration::from_millis(1), max_bytes: 16 << 10 },
        _ => SyncPolicy::Never,
    };
    config.wal = config.wal.segment_bytes(4 << 10).segments_initial(2).segments_max(6).sync_policy(sync_policy);
    config.checkpoint.every_records = Some(40);
    config.checkpoint.every_bytes = None;
    config.checkpoint.every = None;
    config
}

/// Batch `index` of the stream: 1–3 events with ids `b<index>-<k>`.
fn batch(index: u64) -> Vec<Event> {
    let mut rng = SplitMix64::new(index.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xBA7C);
    let len = 1 + rng.below(3);
    (0..len)
        .map(|k| {
            let kind = match rng.below(5) {
                0 => EventKind::View,
                1 => EventKind::Click,
                2 => EventKind::Cart,
                3 => EventKind::Purchase,
                _ => EventKind::Rating(1.0 + rng.below(5) as f32),
            };
            Event::new(format!("u{}", rng.below(USERS)), format!("i{}", rng.below(ITEMS)), kind)
                .at(1_000_000 + index as i64 * 1000)
                .with_id(format!("b{index}-{k}"))
        })
        .collect()
}

/// Step `index` of the stream: mostly event batches, every 5th an item
/// upsert (every 3rd of those hiding the item), every 11th a user's labels,
/// every 17th a feedback expiry.
enum Step {
    Events(Vec<Event>),
    Item(Item),
    User(User),
    /// Expire feedback older than this (ms of event time).
    Expire(i64),
    /// Train, store, log (record 11) and activate an item model: EASE, or
    /// (true) iALS.
    TrainItemModel(bool),
}

fn step(index: u64) -> Step {
    if index % 23 == 22 {
        return Step::TrainItemModel((index / 23) % 2 == 1);
    }
    if index % 17 == 16 {
        // Batch i's events are at second 1000 + i: forget those 40 steps old.
        return Step::Expire(1_000_000 + (index as i64 - 40) * 1000);
    }
    if index % 11 == 10 {
        let labels = [("seen".to_string(), LabelValue::Number(index as f64))].into();
        return Step::User(User { id: format!("u{}", index % USERS), labels });
    }
    if index % 5 == 3 {
        let item = Item::new(format!("i{}", index % ITEMS))
            .category(format!("c{}", index % 4))
            .label("price", (index % 50) as f64)
            .published(index as i64)
            .hidden(index.is_multiple_of(3));
        return Step::Item(item);
    }
    Step::Events(batch(index))
}

/// Submits step `index`; returns its LSN.
fn submit(engine: &Engine, index: u64) -> u64 {
    match step(index) {
        Step::Events(events) => engine.ingest_batch(&events).unwrap()[0].lsn,
        Step::Item(item) => engine.upsert_item(&item).unwrap(),
        Step::User(user) => engine.upsert_user(&user).unwrap(),
        Step::Expire(before_ms) => engine.expire_feedback_before(before_ms).unwrap(),
        Step::TrainItemModel(false) => engine.train_item_model().unwrap().lsn,
        Step::TrainItemModel(true) => {
            let mut params = recwal::ItemModelSpec::ials_params(&engine.config().item_model);
            (params.factors, params.iterations) = (8, 4);
            engine.train_item_model_spec(recwal::ItemModelSpec::Ials(params)).unwrap().lsn
        }
    }
}

/// Not a test on its own: the child's body. Without the environment the
/// parent sets, it returns at once.
#[test]
fn engine_crash_child_entry_point() {
    let (Ok(dir), Ok(policy), Ok(start)) =
        (std::env::var(CHILD_DIR), std::env::var(CHILD_POLICY), std::env::var(CHILD_START))
    else {
        return;
    };
    let start: u64 = start.parse().unwrap();
    let engine = Engine::open(Path::new(&dir), config(&policy)).unwrap();
    let mut out = std::io::stdout();
    writeln!(out, "open {}", engine.lsn_applied()).unwrap();
    out.flush().unwrap();
    for index in start.. {
        let lsn = submit(&engine, index);
        writeln!(out, "ack {index} {lsn}").unwrap();
        out.flush().unwrap();
    }
}

fn observe(engine: &Engine) -> (u64, Vec<String>) {
    let mut answers = Vec::new();
    for user in 0..USERS {
        for strategy in Strategy::ALL {
            let answer = engine.recommend(&RecommendRequest::new(format!("u{user}"), 5, strategy)).unwrap();
            answers.push(format!("{:?}", answer.items));
            let filtered = RecommendRequest::new(format!("u{user}"), 3, strategy).in_categories(["c1", "c2"]);
            answers.push(format!("{:?}", engine.recommend(&filtered).unwrap().items));
        }
        answers.push(format!("{:?}", engine.user(&format!("u{user}")).unwrap()));
    }
    answers.push(format!("{:?}", engine.latest(&ItemQuery::top(10).in_categories(["c3"])).unwrap()));
    answers.push(format!("{:?}", engine.items(None, 100).unwrap()));
    (engine.state_digest(), answers)
}

fn run_policy(policy: &str, kills: u64, rng: &mut SplitMix64) {
    let dir = tempfile::tempdir().unwrap();
    let reference_dir = tempfile::tempdir().unwrap();
    let reference = Engine::open(reference_dir.path(), config("never")).unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut next = 0u64; // first batch the next child submits
    let mut acked: BTreeMap<u64, u64> = BTreeMap::new(); // batch -> LSN
    let mut snapshots_seen = 0;
    for kill in 1..=kills {
        let mut child = Command::new(&exe)
            .args(["engine_crash_child_entry_point", "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_DIR, dir.path())
            .env(CHILD_POLICY, policy)
            .env(CHILD_START, next.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::<String>::new()));
        let reader = {
            let lines = Arc::clone(&lines);
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    lines.lock().unwrap().push(line);
                }
            })
        };
        let delay_ms = if rng.chance(15) { rng.below(5) } else { 20 + rng.below(250) };
        std::thread::sleep(Duration::from_millis(delay_ms));
        child.kill().unwrap();
        let _ = child.wait();
        reader.join().unwrap();
        for line in lines.lock().unwrap().iter() {
            let words: Vec<u64> = line.split_whitespace().skip(1).filter_map(|w| w.parse().ok()).collect();
            if line.starts_with("ack ") && words.len() == 2 {
                acked.insert(words[0], words[1]);
            }
        }

        let context = format!("{policy}, kill #{kill} after {delay_ms} ms");
        let engine = Engine::open(dir.path(), config(policy)).unwrap_or_else(|err| panic!("{context}: {err}"));
        if engine.open_report().lsn_snapshot > 0 {
            snapshots_seen += 1;
        }
        let recovered = engine.lsn_applied();
        // Batch i is LSN i + 1; the recovered log holds batches 0..recovered.
        for (&index, &lsn) in &acked {
            assert_eq!(lsn, index + 1, "{context}: batch {index} acknowledged at LSN {lsn}");
            assert!(index < recovered, "{context}: acknowledged batch {index} lost (recovered {recovered})");
        }
        assert!(recovered >= next, "{context}: recovered {recovered} < {next} batches recovered before");
        // Feed the reference the same batches, then compare everything.
        let submitted_max = acked.keys().next_back().map_or(next, |&i| i + 1).max(next) + 1;
        assert!(recovered <= submitted_max, "{context}: state holds batches never submitted");
        for index in reference.lsn_applied()..recovered {
            submit(&reference, index);
        }
        assert_eq!(observe(&engine), observe(&reference), "{context}: state differs from an uninterrupted run");
        // The newest acknowledged event batch, resubmitted, is a duplicate.
        if let Some((&index, &lsn)) = acked.iter().rev().find(|(&index, _)| matches!(step(index), Step::Events(_))) {
            let receipts = engine.ingest_batch(&batch(index)).unwrap();
            assert!(receipts.iter().all(|r| r.duplicate && r.lsn == lsn), "{context}: resubmission {receipts:?}");
            assert_eq!(engine.lsn_applied(), recovered, "{context}: a duplicate was written");
        }
        next = recovered;
        drop(engine);
    }
    assert!(acked.len() > 100, "{policy}: the children acknowledged too little to prove anything");
    assert!(snapshots_seen > 0, "{policy}: no restart started from a snapshot");
}

fn kills() -> u64 {
    std::env::var("RECWAL_ENGINE_CRASH_ITERS").ok().and_then(|n| n.parse().ok()).unwrap_or(20)
}

fn seed() -> u64 {
    std::env::var("RECWAL_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(7, |d| d.as_nanos() as u64)
    })
}

#[test]
fn acknowledged_events_survive_sigkill_under_always() {
    let seed = seed();
    eprintln!("RECWAL_CRASH_SEED={seed}");
    run_policy("always", kills(), &mut SplitMix64::new(seed));
}

#[test]
fn acknowledged_events_survive_sigkill_under_batch() {
    let seed = seed() ^ 1;
    eprintln!("RECWAL_CRASH_SEED={seed}");
    run_policy("batch", kills(), &mut SplitMix64::new(seed));
}
