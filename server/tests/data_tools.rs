//! The data tools: `backup`/`restore` (from a data dir and from a running
//! server), `wal salvage` on each kind of damage of the corruption matrix,
//! `export` → `import` round trips, idempotent `import` (into a data dir
//! and through a server), the flags every command takes the same way, the
//! human and JSON `wal inspect`, and `--server https://` with `--ca-cert`.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use support::{refused, succeeds};

use recwal::wal::{inspect, RecordInfo, SyncPolicy};
use recwal::{Engine, EngineConfig, Event, EventKind};

fn recwal(args: &[&str]) -> Output {
    support::run_cli(args, std::time::Duration::from_secs(300))
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Small segments, so that a few hundred records span several, and every
/// append synced, so that a dropped engine is a crash that lost nothing.
fn config() -> EngineConfig {
    let mut config = EngineConfig::default();
    config.wal = config.wal.segment_bytes(16 << 10).segments_initial(2).segments_max(6).sync_policy(SyncPolicy::Always);
    config.checkpoint.disable_automatic();
    config.checkpoint.snapshots_kept = 2;
    config
}

/// The n-th event (n from 1): one per record, so it is the record at LSN n.
fn event(n: u64) -> Event {
    let kind = if n.is_multiple_of(4) { EventKind::Rating((n % 5 + 1) as f32) } else { EventKind::View };
    Event::new(format!("u{}", n % 37), format!("i{}", (n * 7) % 101), kind)
        .with_id(format!("e{n}"))
        .at(1_700_000_000_000 + n as i64)
}

/// The state digest after each LSN 0..=n of the history of `event`.
fn digests(dir: &Path, n: u64) -> Vec<u64> {
    let engine = Engine::open(dir, config()).unwrap();
    let mut found = vec![engine.state_digest()];
    for at in 1..=n {
        engine.ingest(event(at)).unwrap();
        found.push(engine.state_digest());
    }
    engine.close().unwrap();
    found
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum History {
    NoSnapshot,
    WithSnapshots,
}

#[derive(Clone, Copy, Debug)]
enum Target {
    OldestSegment,
    ActiveSegment,
}

/// The damage kinds of tests/corruption_matrix.rs.
#[derive(Clone, Copy, Debug)]
enum Damage {
    DeleteSegment(Target),
    TruncateSegmentToZero(Target),
    TruncateSegmentMidRecord(Target),
    ZeroSegmentHeader(Target),
    FlipDurableRecord,
    FlipNewestRecord,
    FlipUnusedTail,
    DeleteNewestSnapshot,
    TruncateNewestSnapshot,
    FlipNewestSnapshot,
}

const DAMAGES: [Damage; 14] = [
    Damage::DeleteSegment(Target::OldestSegment),
    Damage::DeleteSegment(Target::ActiveSegment),
    Damage::TruncateSegmentToZero(Target::OldestSegment),
    Damage::TruncateSegmentToZero(Target::ActiveSegment),
    Damage::TruncateSegmentMidRecord(Target::OldestSegment),
    Damage::TruncateSegmentMidRecord(Target::ActiveSegment),
    Damage::ZeroSegmentHeader(Target::OldestSegment),
    Damage::ZeroSegmentHeader(Target::ActiveSegment),
    Damage::FlipDurableRecord,
    Damage::FlipNewestRecord,
    Damage::FlipUnusedTail,
    Damage::DeleteNewestSnapshot,
    Damage::TruncateNewestSnapshot,
    Damage::FlipNewestSnapshot,
];

fn build(dir: &Path, history: History) -> (Vec<RecordInfo>, u64) {
    let engine = Engine::open(dir, config()).unwrap();
    let n = match history {
        History::NoSnapshot => {
            for at in 1..=400 {
                engine.ingest(event(at)).unwrap();
            }
            400
        }
        History::WithSnapshots => {
            for at in 1..=300 {
                engine.ingest(event(at)).unwrap();
            }
            engine.checkpoint().unwrap();
            for at in 301..=450 {
                engine.ingest(event(at)).unwrap();
            }
            engine.checkpoint().unwrap();
            for at in 451..=510 {
                engine.ingest(event(at)).unwrap();
            }
            510
        }
    };
    engine.close().unwrap();
    let mut records = Vec::new();
    inspect(&dir.join("wal"), &config().wal, &mut |info, _| records.push(*info)).unwrap();
    (records, n)
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

fn files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut found = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        for entry in std::fs::read_dir(&next).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                found.insert(path.clone(), std::fs::read(&path).unwrap());
            }
        }
    }
    found
}

fn flip(path: &Path, offset: u64) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[offset as usize] ^= 0x5A;
    std::fs::write(path, bytes).unwrap();
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

/// Applies `damage`: the file damaged and the first LSN it can have cost
/// (`None`: only a snapshot was damaged; the case does not apply where
/// there is none).
fn apply(damage: Damage, dir: &Path, records: &[RecordInfo]) -> Option<(PathBuf, Option<u64>)> {
    let oldest = records.first().unwrap();
    let newest = records.last().unwrap();
    let segment_of = |target: Target| match target {
        Target::OldestSegment => oldest.segment_index,
        Target::ActiveSegment => newest.segment_index,
    };
    let path_of = |index: u32| dir.join("wal").join(format!("seg-{index:08}.wal"));
    let first_in = |index: u32| records.iter().find(|record| record.segment_index == index).map(|record| record.lsn);
    Some(match damage {
        Damage::DeleteSegment(target) => {
            let path = path_of(segment_of(target));
            std::fs::remove_file(&path).unwrap();
            (path, first_in(segment_of(target)))
        }
        Damage::TruncateSegmentToZero(target) => {
            let path = path_of(segment_of(target));
            std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(0).unwrap();
            (path, first_in(segment_of(target)))
        }
        Damage::TruncateSegmentMidRecord(target) => {
            let index = segment_of(target);
            let in_segment: Vec<&RecordInfo> = records.iter().filter(|r| r.segment_index == index).collect();
            let middle = in_segment[in_segment.len() / 2];
            let path = path_of(index);
            std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(middle.offset + 13).unwrap();
            (path, Some(middle.lsn))
        }
        Damage::ZeroSegmentHeader(target) => {
            let path = path_of(segment_of(target));
            let mut bytes = std::fs::read(&path).unwrap();
            bytes[..64].fill(0);
            std::fs::write(&path, bytes).unwrap();
            (path, first_in(segment_of(target)))
        }
        Damage::FlipDurableRecord => {
            let middle = &records[records.len() / 2];
            let path = path_of(middle.segment_index);
            flip(&path, middle.offset + 32 + u64::from(middle.len) / 2);
            (path, Some(middle.lsn))
        }
        Damage::FlipNewestRecord => {
            let path = path_of(newest.segment_index);
            flip(&path, newest.offset + 32 + u64::from(newest.len) / 2);
            (path, Some(newest.lsn))
        }
        Damage::FlipUnusedTail => {
            let path = path_of(newest.segment_index);
            let offset = (newest.offset + 32 + u64::from(newest.len)).next_multiple_of(8) + 200;
            if offset >= std::fs::metadata(&path).unwrap().len() {
                return None;
            }
            flip(&path, offset);
            (path, None)
        }
        Damage::DeleteNewestSnapshot => {
            let path = newest_snapshot(dir)?;
            std::fs::remove_file(&path).unwrap();
            (path, None)
        }
        Damage::TruncateNewestSnapshot => {
            let path = newest_snapshot(dir)?;
            let len = std::fs::metadata(&path).unwrap().len();
            std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(len / 2).unwrap();
            (path, None)
        }
        Damage::FlipNewestSnapshot => {
            let path = newest_snapshot(dir)?;
            let len = std::fs::metadata(&path).unwrap().len();
            flip(&path, len / 2);
            (path, None)
        }
    })
}

#[test]
fn salvage_keeps_every_record_before_the_damage_and_reports_the_loss_for_each_kind_of_damage() {
    for history in [History::NoSnapshot, History::WithSnapshots] {
        let template = tempfile::tempdir().unwrap();
        let (records, n) = build(template.path(), history);
        let reference = tempfile::tempdir().unwrap();
        let digest_at = digests(reference.path(), n);
        for damage in DAMAGES {
            let what = format!("{history:?} / {damage:?}");
            let case = tempfile::tempdir().unwrap();
            let dir = case.path().join("data");
            copy_dir(template.path(), &dir);
            let Some((damaged, lsn_damaged)) = apply(damage, &dir, &records) else { continue };
            let before = files(&dir);
            let out = case.path().join("salvaged");
            let output = recwal(&["wal", "salvage", "--data-dir", p(&dir), "--out", p(&out), "--json"]);
            let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
            let report: serde_json::Value = serde_json::from_str(&stdout)
                .unwrap_or_else(|err| panic!("{what}: {err}: {stdout} {}", String::from_utf8_lossy(&output.stderr)));
            assert!(report["error"].is_null(), "{what}: {report}");
            assert_eq!(files(&dir), before, "{what}: salvage changed the damaged data dir");
            let lossy = report["lossy"].as_bool().unwrap();
            assert_eq!(output.status.code(), Some(if lossy { 1 } else { 0 }), "{what}: {report}");
            // The salvaged data dir opens cleanly, at the state of its last LSN.
            let lsn_last = report["lsn_last"].as_u64().unwrap();
            let engine = Engine::open(&out, config()).unwrap();
            assert!(engine.open_report().wal.is_clean(), "{what}: {:?}", engine.open_report());
            assert!(engine.open_report().snapshots_skipped.is_empty(), "{what}");
            assert_eq!(engine.lsn_applied(), lsn_last, "{what}");
            assert_eq!(engine.state_digest(), digest_at[lsn_last as usize], "{what}: not the state at LSN {lsn_last}");
            assert_eq!(report["state_digest"].as_u64(), Some(engine.state_digest()), "{what}");
            engine.close().unwrap();
            // Every record before the damage is kept.
            let lsn_kept_min = lsn_damaged.map_or(n, |lsn| lsn - 1);
            assert!(
                lsn_last >= lsn_kept_min,
                "{what}: kept up to LSN {lsn_last}, the damage starts at {lsn_damaged:?}: {report}"
            );
            // The loss, if any, is named: what was lost and the damaged file.
            if lsn_last < n {
                assert!(lossy, "{what}: {report}");
                let missing = report["lsns_missing"].as_array().unwrap();
                let dropped = report["records_dropped"].as_array().unwrap();
                let first_lost = missing.iter().chain(dropped).filter_map(|range| range["first"].as_u64()).min();
                assert_eq!(
                    first_lost,
                    Some(lsn_last + 1),
                    "{what}: the loss must start right after the kept end: {report}"
                );
                let last_lost = missing.iter().chain(dropped).filter_map(|range| range["last"].as_u64()).max();
                assert_eq!(last_lost, Some(n), "{what}: the loss must reach the log's end: {report}");
            }
            let name = damaged.file_name().unwrap().to_string_lossy().into_owned();
            let index = name
                .strip_prefix("seg-")
                .and_then(|rest| rest.strip_suffix(".wal"))
                .map(|digits| digits.trim_start_matches('0'));
            let named = stdout.contains(&name)
                || index.is_some_and(|index| {
                    stdout.contains(&format!("segment {}", if index.is_empty() { "0" } else { index }))
                });
            if lossy && !matches!(damage, Damage::DeleteNewestSnapshot | Damage::FlipUnusedTail) {
                assert!(named, "{what}: the report must name {name}: {report}");
            }
            if matches!(damage, Damage::TruncateNewestSnapshot | Damage::FlipNewestSnapshot) {
                assert!(stdout.contains(&name), "{what}: the unreadable snapshot must be named: {report}");
            }
            // The human report says LOSS, or that nothing was lost.
            let out_human = case.path().join("salvaged-again");
            let human = recwal(&["wal", "salvage", p(&dir), "--out", p(&out_human)]);
            let text = String::from_utf8_lossy(&human.stdout).into_owned();
            assert!(if lossy { text.contains("LOSS") } else { text.contains("no loss") }, "{what}: {text}");
        }
    }
}

#[test]
fn salvage_refuses_a_non_empty_destination_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    build(&data, History::NoSnapshot);
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("keep"), b"x").unwrap();
    let output = recwal(&["wal", "salvage", p(&data), "--out", p(&out)]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("not empty")
            || String::from_utf8_lossy(&output.stderr).contains("not a recwal data dir")
    );
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 1);
}

/// A data dir written through the engine with the default configuration:
/// events with and without ids, ratings, a forgotten user, a removed item.
fn varied_data_dir(dir: &Path) -> u64 {
    let engine = Engine::open(dir, EngineConfig::default()).unwrap();
    for at in 0..60u64 {
        let mut event = Event::new(format!("user {}", at % 7), format!("item,{}", at % 11), EventKind::Click)
            .at(1_700_000_000_000 + at as i64);
        if at % 3 == 0 {
            event.kind = EventKind::Rating((at % 5 + 1) as f32);
        }
        if at % 2 == 0 {
            event = event.with_id(format!("id-{at}"));
        }
        if at % 5 == 0 {
            engine
                .ingest_batch(&[event.clone(), Event::new("batch", format!("b{at}"), EventKind::Purchase).at(5)])
                .unwrap();
        } else {
            engine.ingest(event).unwrap();
        }
    }
    engine.forget_user("user 3").unwrap();
    engine.remove_item("item,4").unwrap();
    engine.ingest(Event::new("late", "item,1", EventKind::Cart).at(7)).unwrap();
    // Ids with spaces at their ends, or only a space: taken as they are.
    engine.ingest(Event::new(" pad ", " i2", EventKind::View).at(8)).unwrap();
    engine.ingest(Event::new(" ", "item,1 ", EventKind::Click).at(9)).unwrap();
    let digest = engine.state_digest();
    engine.close().unwrap();
    digest
}

fn digest_of(dir: &Path) -> (u64, u64) {
    let engine = Engine::open(dir, EngineConfig::default()).unwrap();
    let found = (engine.lsn_applied(), engine.state_digest());
    engine.close().unwrap();
    found
}

#[test]
fn export_then_import_into_a_fresh_data_dir_gives_the_same_state() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("source");
    let digest = varied_data_dir(&source);
    for format in ["jsonl", "csv"] {
        let file = dir.path().join(format!("export.{format}"));
        succeeds(&recwal(&["export", "--data-dir", p(&source), "--format", format, "--out", p(&file)]));
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(text.contains("forget_user") && text.contains("remove_item"), "{format}: {text}");
        let target = dir.path().join(format!("from-{format}"));
        let imported = succeeds(&recwal(&["import", p(&file), "--data-dir", p(&target), "--no-derived-ids"]));
        assert!(imported.contains("imported 75 events (75 new, 0 duplicates)"), "{format}: {imported}");
        assert_eq!(digest_of(&target), digest_of(&source), "{format}: a different state");
        assert_eq!(digest_of(&target).1, digest);
    }
    // To stdout, the same lines.
    let stdout = succeeds(&recwal(&["export", "--data-dir", p(&source)]));
    assert_eq!(stdout, std::fs::read_to_string(dir.path().join("export.jsonl")).unwrap());
}

#[test]
fn export_refuses_a_log_whose_start_a_checkpoint_released() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let engine = Engine::open(&data, config()).unwrap();
    for round in 0..8 {
        for at in 1..=150 {
            engine.ingest(event(round * 150 + at)).unwrap();
        }
        engine.checkpoint().unwrap();
    }
    engine.ingest(event(10_000)).unwrap();
    let released = engine.wal_metrics().segments_recycled > 0;
    engine.close().unwrap();
    assert!(released, "the ring must have lapped");
    let stderr = refused(&recwal(&["export", "--data-dir", p(&data)]));
    assert!(stderr.contains("released by a checkpoint") && stderr.contains("recwal backup"), "{stderr}");
}

#[test]
fn import_twice_changes_nothing_the_second_time() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ratings.csv");
    // A header row, a quoted field holding the delimiter, no event ids.
    std::fs::write(
        &file,
        "user,item,rating,timestamp\nu1,\"a, b\",4,881250949\nu2,i1,3.5,881250950\nu1,\"a, b\",4,881250949\n",
    )
    .unwrap();
    let data = dir.path().join("data");
    let first = succeeds(&recwal(&["import", p(&file), "--data-dir", p(&data)]));
    assert!(first.contains("imported 3 events (3 new, 0 duplicates)"), "{first}");
    let after_first = digest_of(&data);
    let second = succeeds(&recwal(&["import", p(&file), "--data-dir", p(&data)]));
    assert!(second.contains("imported 3 events (0 new, 3 duplicates)"), "{second}");
    assert_eq!(digest_of(&data), after_first, "the second import changed the state");
    // The quoted field is one item.
    let engine = Engine::open(&data, EngineConfig::default()).unwrap();
    let items: Vec<String> = engine.interactions("u1").unwrap().into_iter().map(|i| i.item).collect();
    assert_eq!(items, vec!["a, b".to_string()]);
    engine.close().unwrap();

    // A file without a header row needs --columns; --delimiter for ';'.
    let plain = dir.path().join("plain.txt");
    std::fs::write(&plain, "u3;i9;5;881250951\n").unwrap();
    let stderr = refused(&recwal(&["import", p(&plain), "--data-dir", p(&data)]));
    assert!(stderr.contains("line 1") && stderr.contains("--delimiter ';'"), "{stderr}");
    let stderr = refused(&recwal(&["import", p(&plain), "--data-dir", p(&data), "--delimiter", ";"]));
    assert!(stderr.contains("line 1") && stderr.contains("--columns"), "{stderr}");
    let columns =
        ["import", p(&plain), "--data-dir", p(&data), "--delimiter", ";", "--columns", "user,item,rating,timestamp"];
    assert!(succeeds(&recwal(&columns)).contains("(1 new, 0 duplicates)"));
    assert!(succeeds(&recwal(&columns)).contains("(0 new, 1 duplicates)"));
    // A first column to ignore: `-` leads the value.
    let leading = dir.path().join("leading.txt");
    std::fs::write(&leading, "s1;u4;i9;4\n").unwrap();
    let skip_first =
        ["import", p(&leading), "--data-dir", p(&data), "--delimiter", ";", "--columns", "-,user,item,rating"];
    assert!(succeeds(&recwal(&skip_first)).contains("(1 new, 0 duplicates)"));
    // Errors name the file and the line.
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "user,item,rating\nu1,i1,4\nu2,i2,lots\n").unwrap();
    let stderr = refused(&recwal(&["import", p(&bad), "--data-dir", p(&data)]));
    assert!(stderr.contains(&format!("{}, line 3", bad.display())) && stderr.contains("rating"), "{stderr}");
}

/// A file that forgets a user (removes an item) and has events of theirs
/// after that line: a second run forgets again, and must ingest those
/// events again rather than find them in the dedup window and lose them.
#[test]
fn a_second_run_of_a_file_that_forgets_keeps_what_came_after_the_forget() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("history.jsonl");
    let event = |user: &str, item: &str, at: u64| {
        format!(r#"{{"user":"{user}","item":"{item}","kind":"view","timestamp_ms":{}}}"#, 1_700_000_000_000 + at)
    };
    let lines = [
        event("u1", "i1", 0),
        event("u2", "i3", 1),
        r#"{"op":"forget_user","user":"u1"}"#.to_string(),
        event("u1", "i2", 2),
        r#"{"op":"remove_item","item":"i3"}"#.to_string(),
        event("u2", "i3", 3),
        event("u2", "i4", 4),
    ];
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let data = dir.path().join("data");
    let items_of = |user: &str| {
        let engine = Engine::open(&data, EngineConfig::default()).unwrap();
        let mut items: Vec<String> = engine.interactions(user).unwrap().into_iter().map(|i| i.item).collect();
        items.sort();
        engine.close().unwrap();
        items
    };
    for run in ["first", "second", "third"] {
        succeeds(&recwal(&["import", p(&file), "--data-dir", p(&data)]));
        assert_eq!(items_of("u1"), ["i2"], "{run} run");
        assert_eq!(items_of("u2"), ["i3", "i4"], "{run} run");
    }
}

#[test]
fn import_through_a_running_server_is_idempotent_too() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = support::Server::start(&data, Some("secret-token-0123456789"), &[]);
    let url = format!("http://{}", server.addr);
    let file = dir.path().join("events.jsonl");
    std::fs::write(
        &file,
        "{\"user\":\"u1\",\"item\":\"i/1?x\",\"kind\":\"click\",\"timestamp_ms\":5}\n{\"user\":\"u2\",\"item\":\"i2\",\"kind\":\"rating\",\"value\":4}\n{\"op\":\"remove_item\",\"item\":\"i/1?x\"}\n",
    )
    .unwrap();
    let args = ["import", p(&file), "--server", &url, "--token", "secret-token-0123456789", "--batch", "1"];
    let first = succeeds(&recwal(&args));
    assert!(first.contains("imported 2 events (2 new, 0 duplicates)"), "{first}");
    let lsn = server.lsn();
    let second = succeeds(&recwal(&args));
    assert!(second.contains("imported 2 events (0 new, 2 duplicates)"), "{second}");
    // Only the remove_item was written again (it is no event: no id).
    assert_eq!(server.lsn(), lsn + 1);
    let stderr = refused(&recwal(&["import", p(&file), "--server", &url, "--token", "wrong"]));
    assert!(stderr.contains("401"), "{stderr}");
    // A line any server refuses (an id over the limit) is refused before
    // the first batch is sent.
    let bad = dir.path().join("bad.csv");
    let good: String = (0..50).map(|at| format!("u{at},i{at},3\n")).collect();
    std::fs::write(&bad, format!("user,item,rating\n{good}{},i1,3\n", "u".repeat(300))).unwrap();
    let lsn = server.lsn();
    let stderr =
        refused(&recwal(&["import", p(&bad), "--server", &url, "--token", "secret-token-0123456789", "--batch", "10"]));
    assert!(stderr.contains("line 52: invalid event.user"), "{stderr}");
    assert_eq!(server.lsn(), lsn, "a refused import sent batches");
}

#[test]
fn backup_then_restore_from_a_data_dir_and_from_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    varied_data_dir(&data);
    // An item model (an artefact in models/, record 11) travels too.
    let digest = {
        let engine = Engine::open(&data, EngineConfig::default()).unwrap();
        engine.train_item_model().unwrap();
        let digest = engine.state_digest();
        engine.close().unwrap();
        digest
    };
    let out = dir.path().join("backup");
    let written: serde_json::Value =
        serde_json::from_str(&succeeds(&recwal(&["backup", "--data-dir", p(&data), "--out", p(&out), "--json"])))
            .unwrap();
    assert!(out.join("BACKUP.json").is_file());
    let restored = dir.path().join("restored");
    let text = succeeds(&recwal(&["restore", "--from", p(&out), "--data-dir", p(&restored)]));
    assert!(text.contains(&format!("state at LSN {}", written["lsn_last"])), "{text}");
    assert_eq!(digest_of(&restored).1, digest);
    {
        let engine = Engine::open(&restored, EngineConfig::default()).unwrap();
        let status = engine.item_model_status();
        assert!(status.serving && status.fault.is_none(), "the item model was not restored: {status:?}");
        engine.close().unwrap();
    }
    // Never over a data dir.
    let stderr = refused(&recwal(&["restore", "--from", p(&out), "--data-dir", p(&data)]));
    assert!(stderr.contains("not empty"), "{stderr}");

    // From a running server: it writes the backup; ingest goes on.
    let server = support::Server::start(&restored, None, &[]);
    let url = format!("http://{}", server.addr);
    let (status, _) =
        server.json("POST", "/v1/events", r#"{"events":[{"user":"new","item":"x","kind":"click","timestamp_ms":9}]}"#);
    assert_eq!(status, 200);
    let remote_out = dir.path().join("remote-backup");
    let stdout = succeeds(&recwal(&["backup", "--server", &url, "--out", p(&remote_out)]));
    assert!(stdout.contains("verified"), "{stdout}");
    let (status, body) = server.json("POST", "/admin/backup", r#"{"out":"relative"}"#);
    assert_eq!(status, 400, "{body}");
    // Destinations the caller must fix are 400s naming the rule, and
    // nothing is written: inside the live data dir (its root, log,
    // snapshots, models), a NUL, a missing parent, a name too long.
    let live = restored.display().to_string();
    let long = "n".repeat(300);
    let cases = [
        (format!("{live}/bk"), "nested"),
        (format!("{live}/wal/bk"), "data dir"),
        (format!("{live}/snapshots/bk"), "data dir"),
        (format!("{live}/models/bk"), "data dir"),
        (format!("{}/bk\u{0}x", dir.path().display()), "NUL"),
        (format!("{}/no-such-dir/bk", dir.path().display()), "parent"),
        (format!("{}/{long}", dir.path().display()), "over 255 bytes"),
    ];
    for (out, rule) in &cases {
        let (status, body) = server.json("POST", "/admin/backup", &serde_json::json!({ "out": out }).to_string());
        assert_eq!(status, 400, "{out}: {body}");
        assert!(body.to_string().contains(rule), "{out}: {body}");
        let out = Path::new(out);
        if let Some(parent) = out.parent().filter(|parent| parent.is_dir()) {
            let names: Vec<String> = std::fs::read_dir(parent)
                .unwrap()
                .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            assert!(
                !names.iter().any(|name| name == "bk" || name.contains(".partial")),
                "{}: {names:?}",
                out.display()
            );
        }
    }
    drop(server);
    // Nor is a restore written inside a data dir's log.
    let stderr =
        refused(&recwal(&["restore", "--from", p(&remote_out), "--data-dir", p(&data.join("wal").join("nested"))]));
    assert!(stderr.contains("data dir"), "{stderr}");
    assert!(!data.join("wal").join("nested").exists());
    let again = dir.path().join("restored-again");
    succeeds(&recwal(&["restore", "--from", p(&remote_out), "--data-dir", p(&again)]));
    let engine = Engine::open(&again, EngineConfig::default()).unwrap();
    assert_eq!(engine.interactions("new").unwrap().len(), 1, "the event ingested before the backup is in it");
    engine.close().unwrap();
}

#[test]
fn every_command_takes_data_dir_and_json_the_same_way() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    varied_data_dir(&data);
    // After the subcommand, as --server is.
    let listed = succeeds(&recwal(&["models", "list", "--data-dir", p(&data), "--json"]));
    assert_eq!(listed.trim(), "[]");
    succeeds(&recwal(&["models", "--data-dir", p(&data), "list"]));
    let checkpoint: serde_json::Value =
        serde_json::from_str(&succeeds(&recwal(&["checkpoint", "--data-dir", p(&data), "--json"]))).unwrap();
    assert!(checkpoint["lsn"].as_u64().unwrap() > 0, "{checkpoint}");
    for args in [vec!["wal", "verify", "--data-dir", p(&data)], vec!["wal", "verify", p(&data)]] {
        assert!(succeeds(&recwal(&args)).contains("no corruption"), "{args:?}");
    }
}

#[test]
fn wal_inspect_is_a_table_for_people_and_json_for_scripts() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    build(&data, History::WithSnapshots);
    let human = succeeds(&recwal(&["wal", "inspect", "--data-dir", p(&data)]));
    for debug in ["Some(", "Live,", "Released,", "{ ", "(1, "] {
        assert!(!human.contains(debug), "Rust debug output {debug:?} in:\n{human}");
    }
    assert!(human.contains("segment  status") && human.contains("first LSN") && human.contains(" live "), "{human}");
    assert!(human.contains("no corruption"), "{human}");
    let json: serde_json::Value =
        serde_json::from_str(&succeeds(&recwal(&["wal", "inspect", p(&data), "--json"]))).unwrap();
    let segments = json["segments"].as_array().unwrap();
    assert!(segments.iter().any(|segment| segment["status"] == "live"), "{json}");
    let records: u64 = segments.iter().map(|segment| segment["records"].as_u64().unwrap()).sum();
    assert_eq!(json["records_checked"].as_u64(), Some(records), "{json}");
    assert_eq!(json["clean"], true);
}

/// A TLS front (self-signed for `localhost`) that forwards each request to
/// `backend` over plain HTTP: the proxy docs/SERVER.md recommends.
fn tls_front(backend: String, dir: &Path) -> (String, PathBuf) {
    use std::io::{Read, Write};
    use std::sync::Arc;
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let pem = dir.join("ca.pem");
    std::fs::write(&pem, certified.cert.pem()).unwrap();
    let cert = rustls::pki_types::CertificateDer::from(certified.cert.der().to_vec());
    let key = rustls::pki_types::PrivateKeyDer::try_from(certified.key_pair.serialize_der()).unwrap();
    #[allow(deprecated)] // ring has no post-quantum key exchange; a test front needs none
    let provider = rustls::crypto::ring::default_provider();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
    let config = Arc::new(config);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(64) {
            let Ok(stream) = stream else { continue };
            let (config, backend) = (Arc::clone(&config), backend.clone());
            std::thread::spawn(move || {
                let connection = rustls::ServerConnection::new(config).unwrap();
                let mut tls = rustls::StreamOwned::new(connection, stream);
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                let head_end = loop {
                    let Ok(n) = tls.read(&mut buf) else { return };
                    if n == 0 {
                        return;
                    }
                    request.extend_from_slice(&buf[..n]);
                    if let Some(at) = request.windows(4).position(|w| w == b"\r\n\r\n") {
                        break at + 4;
                    }
                };
                let head = String::from_utf8_lossy(&request[..head_end]).to_ascii_lowercase();
                let length: usize = head
                    .lines()
                    .find_map(|line| line.strip_prefix("content-length:").map(|v| v.trim().parse().unwrap()))
                    .unwrap_or(0);
                while request.len() < head_end + length {
                    let n = tls.read(&mut buf).unwrap();
                    request.extend_from_slice(&buf[..n]);
                }
                // One request per connection: ask the backend to close.
                let head = String::from_utf8_lossy(&request[..head_end]).into_owned();
                let head: String = head
                    .split("\r\n")
                    .filter(|line| !line.to_ascii_lowercase().starts_with("connection:") && !line.is_empty())
                    .map(|line| format!("{line}\r\n"))
                    .collect();
                let mut upstream = std::net::TcpStream::connect(&backend).unwrap();
                upstream.write_all(head.as_bytes()).unwrap();
                upstream.write_all(b"connection: close\r\n\r\n").unwrap();
                upstream.write_all(&request[head_end..]).unwrap();
                let mut answer = Vec::new();
                upstream.read_to_end(&mut answer).unwrap();
                tls.write_all(&answer).unwrap();
                tls.flush().unwrap();
                tls.conn.send_close_notify();
                let _ = tls.flush();
            });
        }
    });
    (format!("https://localhost:{port}"), pem)
}

#[test]
fn server_over_https_with_a_private_ca_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = support::Server::start(&data, Some("secret-token-0123456789"), &[]);
    let (url, pem) = tls_front(server.addr.clone(), dir.path());
    let listed = succeeds(&recwal(&[
        "models",
        "list",
        "--server",
        &url,
        "--token",
        "secret-token-0123456789",
        "--ca-cert",
        p(&pem),
        "--json",
    ]));
    assert_eq!(listed.trim(), "[]");
    let file = dir.path().join("events.jsonl");
    std::fs::write(&file, "{\"user\":\"u\",\"item\":\"i\",\"kind\":\"view\"}\n").unwrap();
    let imported = succeeds(&recwal(&[
        "import",
        p(&file),
        "--server",
        &url,
        "--token",
        "secret-token-0123456789",
        "--ca-cert",
        p(&pem),
    ]));
    assert!(imported.contains("(1 new, 0 duplicates)"), "{imported}");
    // Without the certificate, the self-signed front is not trusted.
    let stderr = refused(&recwal(&["models", "list", "--server", &url, "--token", "secret-token-0123456789"]));
    assert!(stderr.to_ascii_lowercase().contains("certificate") || stderr.contains("UnknownIssuer"), "{stderr}");
}

#[test]
fn a_backup_of_a_server_taken_while_a_client_ingests_restores_to_the_state_at_its_last_lsn() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let server = support::Server::start(&dir.path().join("data"), None, &[]);
    let url = format!("http://{}", server.addr);
    // One event per request, so the record at LSN n holds event(n).
    let body = |n: u64| {
        let event = event(n);
        let kind = match event.kind {
            EventKind::Rating(value) => format!(r#""kind":"rating","value":{value}"#),
            _ => r#""kind":"view""#.to_string(),
        };
        format!(
            r#"{{"events":[{{"user":"{}","item":"{}",{kind},"timestamp_ms":{},"event_id":"{}"}}]}}"#,
            event.user,
            event.item,
            event.timestamp_ms.unwrap(),
            event.event_id.unwrap()
        )
    };
    for n in 1..=100 {
        assert_eq!(server.json("POST", "/v1/events", &body(n)).0, 200);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(100));
    let writer = {
        let (addr, stop, sent) = (server.addr.clone(), Arc::clone(&stop), Arc::clone(&sent));
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let n = sent.load(Ordering::SeqCst) + 1;
                let headers = [("content-type", "application/json")];
                let response = support::request(&addr, "POST", "/v1/events", &headers, body(n).as_bytes()).unwrap();
                assert_eq!(response.status, 200, "{}", response.text());
                sent.store(n, Ordering::SeqCst);
            }
        })
    };
    while sent.load(Ordering::SeqCst) < 130 {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let lsn_start = sent.load(Ordering::SeqCst);
    let out = dir.path().join("backup");
    let manifest: serde_json::Value =
        serde_json::from_str(&succeeds(&recwal(&["backup", "--server", &url, "--out", p(&out), "--json"]))).unwrap();
    while sent.load(Ordering::SeqCst) < lsn_start + 20 {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    stop.store(true, Ordering::SeqCst);
    writer.join().unwrap();
    let lsn_last = manifest["lsn_last"].as_u64().unwrap();
    assert!(lsn_last >= lsn_start, "{manifest}");
    assert!(server.lsn() > lsn_last, "the client went on after the cut");
    drop(server);
    let restored = dir.path().join("restored");
    succeeds(&recwal(&["restore", "--from", p(&out), "--data-dir", p(&restored)]));
    // The restored state is the one after exactly the first lsn_last events.
    let engine = Engine::open(&restored, EngineConfig::default()).unwrap();
    assert_eq!(engine.lsn_applied(), lsn_last);
    let restored_digest = engine.state_digest();
    engine.close().unwrap();
    let reference = Engine::open(&dir.path().join("reference"), EngineConfig::default()).unwrap();
    for n in 1..=lsn_last {
        reference.ingest(event(n)).unwrap();
    }
    assert_eq!(reference.state_digest(), restored_digest);
    reference.close().unwrap();
}

/// A data dir whose log directory was emptied (snapshots left): `serve`
/// refuses it, and salvage keeps the newest snapshot but cannot know what
/// followed it, so it says the loss is possible and exits 1.
#[test]
fn salvage_of_a_data_dir_whose_log_is_gone_says_a_loss_is_possible() {
    let case = tempfile::tempdir().unwrap();
    let dir = case.path().join("data");
    let (_, n) = build(&dir, History::WithSnapshots);
    for entry in std::fs::read_dir(dir.join("wal")).unwrap() {
        std::fs::remove_file(entry.unwrap().path()).unwrap();
    }
    let out = case.path().join("salvaged");
    let output = recwal(&["wal", "salvage", "--data-dir", p(&dir), "--out", p(&out), "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(output.status.code(), Some(1), "{report}");
    assert_eq!(report["lossy"], true, "{report}");
    assert!(report["lsn_last"].as_u64().unwrap() < n, "{report}");
    assert!(report["damage"].to_string().contains("the log is gone"), "{report}");
    let human = recwal(&["wal", "salvage", p(&dir), "--out", p(&case.path().join("again"))]);
    let text = String::from_utf8_lossy(&human.stdout).into_owned();
    assert!(text.contains("LOSS POSSIBLE"), "{text}");
}
