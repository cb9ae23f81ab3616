//! The tools never write where they should not: a path that is not a recwal
//! data dir is refused (and left as it was), the log directory is never taken
//! for a data dir, `wal verify` reads a data dir and names every damage, and
//! `import` refuses a file it cannot parse as a whole.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use std::time::Duration;
use support::{refused, succeeds};

/// Runs `recwal args` with no data dir in the environment (every test names
/// its own); a command still running after 30 s (e.g. a `serve` that was not
/// refused) is killed and reported as such.
fn recwal(args: &[&str]) -> Output {
    support::run_cli(args, Duration::from_secs(30))
}

fn text(output: &Output) -> (String, String) {
    (String::from_utf8_lossy(&output.stdout).into_owned(), String::from_utf8_lossy(&output.stderr).into_owned())
}

/// Every file and directory under `dir` with its length and modification
/// time: equal listings mean nothing was created, removed or written.
fn listing(dir: &Path) -> BTreeMap<PathBuf, (u64, std::time::SystemTime)> {
    let mut found = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        for entry in std::fs::read_dir(&next).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                pending.push(path.clone());
            }
            found.insert(path, (meta.len(), meta.modified().unwrap()));
        }
    }
    found
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// A data dir written through the engine: `n_records` log records of 10
/// events each, every one durable, and no snapshot.
fn data_dir_with_records(dir: &Path, n_records: usize) -> PathBuf {
    let data = dir.join("data");
    let mut config = recwal::EngineConfig::default();
    config.checkpoint.disable_automatic();
    let engine = recwal::Engine::open(&data, config).unwrap();
    for batch in 0..n_records {
        let events: Vec<recwal::Event> = (0..10)
            .map(|at| recwal::Event::new(format!("u{batch}"), format!("i{at}"), recwal::EventKind::Click))
            .collect();
        engine.ingest_batch_with(&events, recwal::Durability::Always).unwrap();
    }
    engine.close().unwrap();
    data
}

/// (segment file, record offset, payload length) of the record at `lsn`.
fn record_at(wal_dir: &Path, lsn: u64) -> (PathBuf, u64, u32) {
    let config = recwal::EngineConfig::default().wal;
    let mut found = None;
    recwal::wal::inspect(wal_dir, &config, &mut |info, _| {
        if info.lsn == lsn {
            found = Some((wal_dir.join(format!("seg-{:08}.wal", info.segment_index)), info.offset, info.len));
        }
    })
    .unwrap();
    found.unwrap()
}

#[test]
fn checkpoint_and_models_on_a_mistyped_data_dir_are_refused_and_create_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let typo = dir.path().join("typo");
    let stderr = refused(&recwal(&["checkpoint", "--data-dir", p(&typo)]));
    assert!(stderr.contains("not a recwal data dir") && stderr.contains("wal/MANIFEST"), "{stderr}");
    assert!(!typo.exists(), "checkpoint created {}", typo.display());

    let typo2 = dir.path().join("typo2");
    let stderr = refused(&recwal(&["models", "--data-dir", p(&typo2), "list"]));
    assert!(stderr.contains("not a recwal data dir") && stderr.contains(p(&typo2)), "{stderr}");
    assert!(!typo2.exists(), "models created {}", typo2.display());

    // An existing empty directory is no data dir either, and stays empty.
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    for args in [
        vec!["checkpoint", "--data-dir", p(&empty)],
        vec!["models", "--data-dir", p(&empty), "list"],
        vec!["wal", "verify", p(&empty)],
        vec!["wal", "inspect", p(&empty)],
    ] {
        let stderr = refused(&recwal(&args));
        assert!(stderr.contains("not a recwal data dir"), "{args:?}: {stderr}");
        assert_eq!(std::fs::read_dir(&empty).unwrap().count(), 0, "{args:?} wrote into {}", empty.display());
    }
}

#[test]
fn the_log_directory_as_data_dir_is_refused_by_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let data = data_dir_with_records(dir.path(), 3);
    // A snapshot, so snapshots/ holds one too.
    succeeds(&recwal(&["checkpoint", "--data-dir", p(&data)]));
    let before = listing(&data);
    let file = dir.path().join("ratings.csv");
    std::fs::write(&file, "u,i,4\n").unwrap();
    let data_name = p(&data);
    for inner in ["wal", "snapshots"] {
        let inner_dir = data.join(inner);
        let inner = p(&inner_dir);
        for args in [
            vec!["serve", "--listen", "127.0.0.1:0", "--data-dir", inner],
            vec!["import", p(&file), "--data-dir", inner],
            vec!["checkpoint", "--data-dir", inner],
            vec!["models", "--data-dir", inner, "list"],
        ] {
            let stderr = refused(&recwal(&args));
            assert!(
                stderr.contains(&format!("directory of the data dir {data_name}; pass {data_name}")),
                "{args:?}: {stderr}"
            );
        }
    }
    // A path below the log is refused too (it would nest a data dir in it).
    let nested = data.join("wal").join("new");
    let stderr = refused(&recwal(&["import", p(&file), "--data-dir", p(&nested)]));
    assert!(stderr.contains(&format!("inside the data dir {data_name}")), "{stderr}");
    assert_eq!(listing(&data), before, "a refused command changed the data dir");
    // A directory of segment files that is no data dir's wal/ (a copy).
    let copy = dir.path().join("copy");
    std::fs::create_dir(&copy).unwrap();
    std::fs::copy(data.join("wal/seg-00000000.wal"), copy.join("seg-00000000.wal")).unwrap();
    let stderr = refused(&recwal(&["checkpoint", "--data-dir", p(&copy)]));
    assert!(stderr.contains("is a log directory"), "{stderr}");
    assert_eq!(std::fs::read_dir(&copy).unwrap().count(), 1);
}

#[test]
fn serve_and_import_refuse_a_non_empty_directory_that_is_not_a_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("photos");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("holiday.jpg"), b"jpeg").unwrap();
    let file = dir.path().join("ratings.csv");
    std::fs::write(&file, "user,item,rating\nu,i,4\n").unwrap();
    for args in [
        vec!["serve", "--listen", "127.0.0.1:0", "--data-dir", p(&other)],
        vec!["import", p(&file), "--data-dir", p(&other)],
    ] {
        let stderr = refused(&recwal(&args));
        assert!(stderr.contains("not a recwal data dir") && stderr.contains("holiday.jpg"), "{args:?}: {stderr}");
    }
    assert_eq!(std::fs::read_dir(&other).unwrap().count(), 1);
    // An empty directory, and one that does not exist, become data dirs.
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    succeeds(&recwal(&["import", p(&file), "--data-dir", p(&empty)]));
    let verify = succeeds(&recwal(&["wal", "verify", p(&empty)]));
    assert!(verify.contains("1 records checked: no corruption"), "{verify}");
    let fresh = dir.path().join("fresh");
    succeeds(&recwal(&["import", p(&file), "--data-dir", p(&fresh)]));
    assert!(fresh.join("wal/seg-00000000.wal").is_file());
}

#[test]
fn wal_verify_and_inspect_accept_a_data_dir_or_its_log_directory() {
    let dir = tempfile::tempdir().unwrap();
    let data = data_dir_with_records(dir.path(), 7);
    for target in [data.clone(), data.join("wal")] {
        let verify = succeeds(&recwal(&["wal", "verify", p(&target)]));
        assert!(verify.contains("7 records checked: no corruption"), "{verify}");
        assert!(verify.contains("LSNs 1..7"), "{verify}");
        let inspect = succeeds(&recwal(&["wal", "inspect", p(&target)]));
        // A table: segment 0 is live from LSN 1, released up to 0, 7 records.
        let row = inspect.lines().find(|line| line.trim_start().starts_with("0 ")).unwrap_or_default();
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cells[..6], ["0", "live", "1", "1", "0", "7"], "{inspect}");
        let json: serde_json::Value =
            serde_json::from_str(&succeeds(&recwal(&["wal", "verify", "--json", p(&target)]))).unwrap();
        assert_eq!(json["clean"], true, "{json}");
        assert_eq!(json["records_checked"], 7, "{json}");
        assert_eq!(json["last_lsn"], 7, "{json}");
        assert_eq!(json["damage"].as_array().unwrap().len(), 0, "{json}");
    }
}

#[test]
fn wal_verify_names_the_damaged_file_exits_non_zero_and_agrees_with_open() {
    let dir = tempfile::tempdir().unwrap();
    let data = data_dir_with_records(dir.path(), 20);
    // Rot inside record 10's payload; records 11..20 were written after it
    // was durable, so this is damage to a durable record, not a torn write.
    let (segment, offset, len) = record_at(&data.join("wal"), 10);
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes[(offset + 32 + u64::from(len) / 2) as usize] ^= 0x5a;
    std::fs::write(&segment, bytes).unwrap();
    let before = listing(&data);

    let output = recwal(&["wal", "verify", p(&data)]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let (stdout, _) = text(&output);
    assert!(stdout.contains("CORRUPTION FOUND"), "{stdout}");
    assert!(stdout.contains(&format!("{} at offset {offset}", segment.display())), "{stdout}");
    assert!(stdout.contains("LSN 10"), "{stdout}");
    assert!(stdout.contains("serve refuses to open"), "{stdout}");
    assert!(stdout.contains("9 records checked"), "{stdout}");

    let output = recwal(&["wal", "verify", "--json", p(&data.join("wal"))]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["clean"], false, "{json}");
    assert_eq!(json["serve"], "refuse", "{json}");
    let damage = &json["damage"][0];
    assert_eq!(damage["file"], p(&segment), "{json}");
    assert_eq!(damage["offset"], offset, "{json}");
    assert_eq!(damage["lsn"], 10, "{json}");
    assert_eq!(damage["serve"], "refuse", "{json}");

    // What verify says is what opening does: refused, naming the damage.
    let stderr = refused(&recwal(&["checkpoint", "--data-dir", p(&data)]));
    assert!(stderr.contains("corrupt") || stderr.contains("durable"), "{stderr}");
    assert_eq!(listing(&data), before, "verify or a refused open changed the damaged data dir");
}

/// A damaged manifest is damage verify finds (exit 1, `serve` refuses), not
/// a log it could not check (exit 2): the start refuses it the same way.
#[test]
fn wal_verify_reports_a_damaged_manifest_as_damage_serve_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let data = data_dir_with_records(dir.path(), 3);
    let manifest = data.join("wal").join("MANIFEST");
    let mut bytes = std::fs::read(&manifest).unwrap();
    bytes[20] ^= 0x01;
    std::fs::write(&manifest, bytes).unwrap();
    let before = listing(&data);
    let output = recwal(&["wal", "verify", "--json", p(&data)]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!((json["clean"].as_bool(), json["serve"].as_str()), (Some(false), Some("refuse")), "{json}");
    assert_eq!(json["damage"][0]["kind"], "damaged_file", "{json}");
    assert!(json["damage"][0]["reason"].as_str().unwrap().contains("MANIFEST"), "{json}");
    let stderr = refused(&recwal(&["checkpoint", "--data-dir", p(&data)]));
    assert!(stderr.contains("MANIFEST"), "{stderr}");
    assert_eq!(listing(&data), before, "verify or a refused open changed the data dir");
}

#[test]
fn import_refuses_a_semicolon_csv_unless_told_the_delimiter() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let one_row = dir.path().join("one.csv");
    std::fs::write(&one_row, "u1;i1;4\n").unwrap();
    let stderr = refused(&recwal(&["import", p(&one_row), "--data-dir", p(&data)]));
    assert!(stderr.contains("line 1") && stderr.contains("--delimiter ';'"), "{stderr}");
    let with_header = dir.path().join("ratings.csv");
    std::fs::write(&with_header, "user;item;rating;timestamp\nu1;i1;4;881250949\nu2;i1;3.5;881250950\n").unwrap();
    let stderr = refused(&recwal(&["import", p(&with_header), "--data-dir", p(&data)]));
    assert!(stderr.contains("line 1") && stderr.contains("--delimiter ';'"), "{stderr}");
    assert!(!data.exists(), "a refused import created the data dir");

    let imported = succeeds(&recwal(&["import", p(&with_header), "--delimiter", ";", "--data-dir", p(&data)]));
    assert!(imported.contains("imported 2 events"), "{imported}");
    // A file without a header row names its columns.
    let imported = succeeds(&recwal(&[
        "import",
        p(&one_row),
        "--delimiter",
        ";",
        "--columns",
        "user,item,rating",
        "--data-dir",
        p(&data),
    ]));
    assert!(imported.contains("imported 1 events"), "{imported}");
    let eval = refused(&recwal(&["eval", p(&with_header)]));
    assert!(eval.contains("--delimiter ';'"), "{eval}");
}

#[test]
fn import_refuses_a_file_it_cannot_parse_as_a_whole_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = data_dir_with_records(dir.path(), 2);
    let before = listing(&data);
    let cases = [
        ("empty.csv", "", "no ratings"),
        ("blank.csv", "\n\n", "no ratings"),
        ("header-only.csv", "user,item,rating\n", "no ratings"),
        ("no-header.csv", "u1,i1,4\nu2,i2,5,881250949\n", "needs --columns"),
        ("ragged.csv", "user,item,rating\nu1,i1,4\nu2,i2,5,881250949\n", "line 3"),
        ("ragged-header.csv", "user,item,rating\nu2,i2,5,881250949\n", "line 2"),
        ("bad-first-row.csv", "1,2,abc\n1,3,4\n", "line 1"),
        ("header.data", "user\titem\trating\ttimestamp\n1\t2\t3\t4\n", "line 1"),
        ("short.inter", "user_id:token\titem_id:token\trating:float\nu\ti\t4\nu\ti\n", "line 3"),
        ("long.inter", "user_id:token\titem_id:token\nu\ti\t4\n", "line 2"),
        ("repeated.csv", "user,user,item,rating\nu1,u2,i1,4\n", "column \"user\" appears twice"),
    ];
    for (name, content, expected) in cases {
        let file = dir.path().join(name);
        std::fs::write(&file, content).unwrap();
        let stderr = refused(&recwal(&["import", p(&file), "--data-dir", p(&data)]));
        assert!(stderr.contains(expected), "{name}: {stderr}");
    }
    assert_eq!(listing(&data), before, "a refused import changed the data dir");
}

/// What the engine would refuse at ingest is refused while the file is
/// read, naming the line that breaks the rule, not the first line of its
/// batch; a refused import into a new path creates nothing there.
#[test]
fn import_refuses_a_line_the_engine_would_refuse_before_writing_any() {
    let dir = tempfile::tempdir().unwrap();
    let data = data_dir_with_records(dir.path(), 2);
    let before = listing(&data);
    let good: String = (0..50).map(|at| format!("u{at},i{at},3\n")).collect();
    let event = |user: &str, rest: &str| format!("{{\"user\":\"{user}\",\"item\":\"i1\",{rest}}}\n");
    let view = event("u1", "\"kind\":\"view\"");
    let cases = [
        ("long-id.csv", format!("user,item,rating\n{good}{},i1,3\n", "u".repeat(300)), "line 52: invalid event.user"),
        ("control.jsonl", format!("{view}{}", event("a\\u0007b", "\"kind\":\"view\"")), "line 2: invalid event.user"),
        ("kind.jsonl", format!("{view}{}", event("u2", "\"kind\":\"like\"")), "line 2: invalid event.kind"),
        (
            "future.jsonl",
            format!("{view}{}", event("u2", "\"kind\":\"view\",\"timestamp_ms\":9000000000000000")),
            "line 2: invalid event.timestamp_ms",
        ),
        (
            "forget.jsonl",
            format!("{view}{{\"op\":\"forget_user\",\"user\":\"nobody\"}}\n"),
            "line 2: forget_user of unknown user",
        ),
        (
            "remove.jsonl",
            format!("{view}{{\"op\":\"remove_item\",\"item\":\"no-item\"}}\n"),
            "line 2: remove_item of unknown item",
        ),
    ];
    for (name, content, expected) in &cases {
        let file = dir.path().join(name);
        std::fs::write(&file, content).unwrap();
        let stderr = refused(&recwal(&["import", p(&file), "--data-dir", p(&data)]));
        assert!(stderr.contains(expected), "{name}: {stderr}");
        // The same file into a path that does not exist yet: refused alike,
        // and nothing is created.
        let fresh = dir.path().join(format!("fresh-{name}"));
        let stderr = refused(&recwal(&["import", p(&file), "--data-dir", p(&fresh)]));
        assert!(stderr.contains(expected), "{name} into a new path: {stderr}");
        assert!(!fresh.exists(), "{name}: a refused import created {}", fresh.display());
    }
    assert_eq!(listing(&data), before, "a refused import changed the data dir");
    // Forgetting a user the data dir knows, or one an earlier line names, is fine.
    let fine = dir.path().join("fine.jsonl");
    let forget = |user: &str| format!("{{\"op\":\"forget_user\",\"user\":\"{user}\"}}\n");
    std::fs::write(&fine, format!("{}{view}{}", forget("u0"), forget("u1"))).unwrap();
    let (stdout, stderr) = text(&recwal(&["import", p(&fine), "--data-dir", p(&data)]));
    assert!(stdout.contains("imported 1 events"), "{stdout}{stderr}");
}

/// A pipe can be read once and import reads its file twice (check, then
/// write): what comes through a pipe is imported all the same (copied
/// aside first), and refused whole when a line is bad.
#[test]
fn import_reads_a_pipe_as_it_reads_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let through_pipe = |content: String, data: &Path| {
        let mut child = Command::new(support::binary())
            .args(["import", "/dev/stdin", "--data-dir", p(data)])
            .env_remove("RECWAL_DATA_DIR")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let writer = std::thread::spawn(move || std::io::Write::write_all(&mut stdin, content.as_bytes()));
        let output = child.wait_with_output().unwrap();
        writer.join().unwrap().unwrap();
        output
    };
    // Larger than a pipe's buffer, so the copy is read in many pieces.
    let rows: String = (0..20_000).map(|at| format!("u{},i{},{}\n", at % 700, at % 900, 1 + at % 5)).collect();
    let data = dir.path().join("data");
    let output = through_pipe(format!("user,item,rating\n{rows}"), &data);
    let (stdout, stderr) = text(&output);
    assert!(output.status.success() && stdout.contains("imported 20000 events (20000 new"), "{stdout}{stderr}");

    let bad = dir.path().join("bad");
    let output = through_pipe(format!("user,item,rating\n{rows}u1,i1,lots\n"), &bad);
    let (stdout, stderr) = text(&output);
    assert!(!output.status.success() && stderr.contains("/dev/stdin, line 20002: rating"), "{stdout}{stderr}");
    assert!(!bad.exists(), "a refused import created {}", bad.display());
}

/// An import into a data dir opens it with the server's engine
/// configuration (--config, --set, `RECWAL_ENGINE__…`): its rating scale is
/// the one the file is checked against, and its dedup window the one that
/// keeps a second run idempotent.
#[test]
fn import_into_a_data_dir_uses_the_servers_engine_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let tenths = dir.path().join("tenths.csv");
    std::fs::write(&tenths, "user,item,rating\nu1,i1,8\nu2,i1,9.5\n").unwrap();
    let data = dir.path().join("data");
    let stderr = refused(&recwal(&["import", p(&tenths), "--data-dir", p(&data)]));
    assert!(stderr.contains("line 2") && stderr.contains("event.value"), "{stderr}");
    assert!(!data.exists());
    let config = dir.path().join("recwal.toml");
    std::fs::write(&config, "[engine]\nrating_max = 10.0\n").unwrap();
    let out = succeeds(&recwal(&["import", p(&tenths), "--data-dir", p(&data), "--config", p(&config)]));
    assert!(out.contains("imported 2 events (2 new"), "{out}");
    let set = dir.path().join("set");
    let out = succeeds(&recwal(&["import", p(&tenths), "--data-dir", p(&set), "--set", "engine.rating_max=10"]));
    assert!(out.contains("imported 2 events (2 new"), "{out}");
    let stderr = refused(&recwal(&["import", p(&tenths), "--data-dir", p(&set), "--set", "engine.rating_max=-1"]));
    assert!(stderr.contains("engine.rating_min/rating_max"), "{stderr}");

    // 30 rows through a window of 10 ids: a second run finds the last 10
    // only; through a window of 100, all 30.
    let rows: String = (0..30).map(|at| format!("u{at},i{},4\n", at % 7)).collect();
    let file = dir.path().join("rows.csv");
    std::fs::write(&file, format!("user,item,rating\n{rows}")).unwrap();
    for (max_ids, second_run) in [("10", "(20 new, 10 duplicates)"), ("100", "(0 new, 30 duplicates)")] {
        let data = dir.path().join(format!("window-{max_ids}"));
        let window = format!("engine.dedup.max_ids={max_ids}");
        let args = ["import", p(&file), "--data-dir", p(&data), "--set", &window];
        assert!(succeeds(&recwal(&args)).contains("(30 new, 0 duplicates)"));
        let out = succeeds(&recwal(&args));
        assert!(out.contains(second_run), "window {max_ids}: {out}");
    }
}

/// `recwal checkpoint` of a data dir no server holds replays the log with
/// the engine configuration it is given (--config, --set, the variables):
/// with the server's dedup window the snapshot remembers the ids the
/// server did; with a smaller one it forgets some, and a retry the server
/// would have refused is accepted again (what a default configuration did
/// to a server configured with a larger window).
#[test]
fn checkpoint_replays_with_the_servers_engine_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("recwal.toml");
    std::fs::write(&config, "[engine.dedup]\nmax_ids = 20\n").unwrap();
    let config_flag = p(&config).to_string();
    let duplicate = |data: &Path, event_id: &str| {
        let server = support::Server::start(data, None, &["--config", &config_flag]);
        let body = format!(r#"{{"user":"u","item":"i","kind":"view","event_id":"{event_id}"}}"#);
        let (status, answer) = server.json("POST", "/v1/event", &body);
        assert_eq!(status, 200, "{answer}");
        server.kill();
        answer["receipts"][0]["duplicate"].as_bool().unwrap()
    };
    for (name, tool_window) in [("server", None), ("smaller", Some("engine.dedup.max_ids=5"))] {
        let data = dir.path().join(name);
        let server = support::Server::start(&data, None, &["--config", &config_flag]);
        for at in 0..30 {
            let body = format!(r#"{{"user":"u{at}","item":"i","kind":"view","event_id":"e{at}"}}"#);
            assert_eq!(server.json("POST", "/v1/event?durability=always", &body).0, 200);
        }
        // SIGKILL: no snapshot at shutdown, the events are only in the log.
        server.kill();
        let mut args = vec!["checkpoint", "--data-dir", p(&data), "--config", &config_flag];
        if let Some(set) = tool_window {
            args.extend(["--set", set]);
        }
        let out = succeeds(&recwal(&args));
        assert!(out.contains("snapshot at LSN 30 ("), "{out}");
        // Nothing new since: said so, not "0 bytes".
        let again = succeeds(&recwal(&args));
        assert!(
            again.contains("snapshot at LSN 30: the newest one already covers the log, nothing written"),
            "{again}"
        );
        // e14 is one of the 20 newest ids the server remembers.
        assert_eq!(duplicate(&data, "e14"), tool_window.is_none(), "{name}: a retry of e14");
    }
}

/// What the engine's limits would refuse halfway is refused before
/// anything is written (a --batch over engine.batch_events_max, an
/// export's record of more events than a record may hold), and batches of
/// long ids are cut to the log's record limit instead of failing after
/// the batches before them were written.
#[test]
fn import_fits_the_engines_record_limits_or_refuses_before_writing() {
    let dir = tempfile::tempdir().unwrap();
    let rows: String = (0..30).map(|at| format!("u{at},i{},4\n", at % 7)).collect();
    let file = dir.path().join("rows.csv");
    std::fs::write(&file, format!("user,item,rating\n{rows}")).unwrap();
    let data = dir.path().join("batch");
    let stderr = refused(&recwal(&["import", p(&file), "--data-dir", p(&data), "--batch", "20000"]));
    assert!(stderr.contains("--batch 20000") && stderr.contains("engine.batch_events_max"), "{stderr}");
    assert!(!data.exists());

    // 20 one-event records, then one record of 11 events over a limit of 10.
    let mut lines: Vec<String> =
        (0..20).map(|at| format!(r#"{{"lsn":{},"user":"u{at}","item":"i","kind":"view"}}"#, at + 1)).collect();
    lines.extend((0..11).map(|at| format!(r#"{{"lsn":21,"user":"v{at}","item":"i","kind":"view"}}"#)));
    let export = dir.path().join("export.jsonl");
    std::fs::write(&export, lines.join("\n")).unwrap();
    let data = dir.path().join("record");
    let args = ["import", p(&export), "--data-dir", p(&data), "--set", "engine.batch_events_max=10"];
    let stderr = refused(&recwal(&args));
    assert!(stderr.contains("line 21: the events of lsn 21"), "{stderr}");
    assert!(!data.exists());

    // 1,500 rows with 250-byte ids: 1,000 of them (the default --batch)
    // encode to ~550 KB, over the record limit of 256 KiB segments.
    let long: String =
        (0..1500).map(|at| format!("{}{at:05},{}{at:05},4\n", "u".repeat(245), "i".repeat(245))).collect();
    let file = dir.path().join("long.csv");
    std::fs::write(&file, format!("user,item,rating\n{long}")).unwrap();
    let data = dir.path().join("long");
    let args = ["import", p(&file), "--data-dir", p(&data), "--set", "engine.wal.segment_bytes=262144"];
    let out = succeeds(&recwal(&args));
    assert!(out.contains("imported 1500 events (1500 new"), "{out}");
}

/// A data dir whose snapshots were written under a setting other than the
/// default (a popularity half-life) is backed up, restored, salvaged and
/// its catalogue exported when the tools are given the server's
/// configuration; without it, restore refuses and names the setting.
#[test]
fn restore_salvage_and_export_take_the_servers_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rows.csv");
    std::fs::write(&file, "user,item,rating\nu1,i1,4\nu2,i1,5\n").unwrap();
    let data = dir.path().join("data");
    let set = ["--set", "engine.popularity.half_life_ms=86400000"];
    let with = |args: &[&str]| -> Vec<String> { args.iter().chain(set.iter()).map(|arg| arg.to_string()).collect() };
    let run = |args: Vec<String>| recwal(&args.iter().map(String::as_str).collect::<Vec<_>>());
    succeeds(&run(with(&["import", p(&file), "--data-dir", p(&data)])));
    let backup = dir.path().join("backup");
    succeeds(&run(with(&["backup", "--data-dir", p(&data), "--out", p(&backup)])));

    let plain = dir.path().join("plain");
    let stderr = refused(&recwal(&["restore", "--from", p(&backup), "--data-dir", p(&plain)]));
    assert!(stderr.contains("half-life"), "{stderr}");
    assert!(!plain.exists(), "a refused restore left {}", plain.display());
    let restored = dir.path().join("restored");
    let out = succeeds(&run(with(&["restore", "--from", p(&backup), "--data-dir", p(&restored)])));
    assert!(out.contains("restored"), "{out}");
    let salvaged = dir.path().join("salvaged");
    succeeds(&run(with(&["wal", "salvage", p(&data), "--out", p(&salvaged)])));
    let items = dir.path().join("items.jsonl");
    succeeds(&run(with(&["export", "--items", "--data-dir", p(&data), "--out", p(&items)])));
}

#[test]
fn wal_verify_on_a_log_a_server_holds_says_it_could_not_check() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = support::Server::start(&data, None, &[]);
    for json in [false, true] {
        let mut args = vec!["wal", "verify", p(&data)];
        if json {
            args.insert(2, "--json");
        }
        let output = recwal(&args);
        assert_eq!(output.status.code(), Some(2), "{output:?}");
        let (stdout, stderr) = text(&output);
        if json {
            let object: serde_json::Value = serde_json::from_str(&stdout).unwrap();
            assert!(object["error"].as_str().unwrap().contains("locked"), "{object}");
            assert_eq!(object["clean"], false);
        } else {
            assert!(stderr.contains("cannot check") && stderr.contains("locked"), "{stderr}");
        }
    }
    drop(server);
}

#[test]
fn a_closed_stdout_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let data = data_dir_with_records(dir.path(), 3);
    let mut child = Command::new(env!("CARGO_BIN_EXE_recwal"))
        .args(["wal", "inspect", p(&data)])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Close the reading end before the tool (which first scans the log) writes.
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("writing to stdout"), "{stderr}");
}
