//! `recwal serve`'s one configuration, through the real binary: nested keys
//! from a file, `RECWAL_<SECTION>__<KEY>` variables and flags, validated
//! before use and by `--print-config`; custom event kinds over HTTP; the
//! ONNX Runtime library found from any working directory.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use support::Server;

/// `recwal serve --print-config` with `args` and `env`, in a clean
/// environment as far as recwal is concerned.
fn print_config(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_recwal"));
    command.args(["serve", "--print-config"]).args(args);
    for (name, _) in std::env::vars() {
        if name.starts_with("RECWAL_") {
            command.env_remove(name);
        }
    }
    command.envs(env.iter().copied()).output().unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Spawns `command`. A binary copied a moment ago may still be open for
/// writing in a child another test thread forked meanwhile (until that
/// child execs): exec then fails with ETXTBSY, so that error is retried.
fn spawn(command: &mut Command) -> std::process::Child {
    for _ in 0..50 {
        match command.spawn() {
            Err(err) if err.kind() == std::io::ErrorKind::ExecutableFileBusy => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return other.unwrap(),
        }
    }
    command.spawn().unwrap()
}

/// Starts `command` (a `recwal serve` without `--listen`), waits until ready.
fn start(mut command: Command) -> Server {
    command.args(["--listen", "127.0.0.1:0", "--log-format", "json"]).stdout(Stdio::piped()).stderr(Stdio::null());
    let mut child = spawn(&mut command);
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let addr = line.trim().strip_prefix("listening on ").unwrap_or_else(|| panic!("first line {line:?}")).to_string();
    let server = Server { child, addr, token: None };
    server.wait_ready();
    server
}

/// Regression (issue 14): `--print-config` printed `sync = "sometimes"` and
/// `max_n = 5000` and exited 0. It now validates like a start does, exits
/// non-zero and names the key and the rule.
#[test]
fn print_config_validates_and_names_the_key_and_the_rule() {
    let dir = tempfile::tempdir().unwrap();
    for (args, env, key, rule) in [
        (vec!["--sync", "sometimes"], vec![], "engine.wal.sync", "always"),
        (vec!["--max-n", "5000"], vec![], "server.max_n", "1–1000"),
        (vec![], vec![("RECWAL_SYNC", "sometimes")], "engine.wal.sync", "always"),
        (vec![], vec![("RECWAL_ENGINE__ITEMRANK__ALPHA", "1.5")], "engine.itemrank.alpha", "[0, 1)"),
        (vec!["--set", "engine.wal.segment_bytes=1000"], vec![], "engine.wal.segment_bytes", "multiple of 4096"),
        (vec!["--set", "engine.models.device=gpu"], vec![], "engine.models.device", "cuda:<device id"),
        // A custom kind with a built-in kind's name would never be used.
        (vec!["--set", "engine.weights.custom.view=7"], vec![], "engine.weights.custom", "built-in kind"),
        (vec!["--set", "engine.weights.custom.rating=3"], vec![], "engine.weights.custom", "built-in kind"),
        (vec![], vec![("RECWAL_ENGINE__WEIGHTS__CUSTOM__A\u{7}B", "2")], "engine.weights.custom", "control characters"),
        // A log whose records cannot hold one event refuses every write.
        (vec!["--set", "engine.wal.record_bytes_max=0"], vec![], "engine.wal.record_bytes_max", "at least"),
        (vec!["--set", "engine.wal.record_bytes_max=100"], vec![], "engine.wal.record_bytes_max", "at least 1024"),
    ] {
        let output = print_config(&args, &env);
        assert!(!output.status.success(), "{args:?} {env:?} was accepted:\n{}", stdout(&output));
        let message = stderr(&output);
        assert!(message.contains(key) && message.contains(rule), "{args:?} {env:?}: {message}");
        assert!(stdout(&output).is_empty(), "an invalid configuration was printed");
    }
    let file = dir.path().join("recwal.toml");
    std::fs::write(&file, "[server]\nmax_n = 5000\n").unwrap();
    let output = print_config(&["--config", file.to_str().unwrap()], &[]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("server.max_n"), "{}", stderr(&output));
    assert!(stderr(&output).contains(file.to_str().unwrap()), "the source is not named: {}", stderr(&output));
}

#[test]
fn nested_keys_layer_file_then_environment_then_flags() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("recwal.toml");
    std::fs::write(
        &file,
        "[server]\nmax_n = 20\nconcurrency = 7\n\n[engine.wal]\nsync = \"always\"\nsegment_bytes = 1048576\n\n\
         [engine.checkpoint]\nevery_ms = \"off\"\n\n[engine.weights.custom]\nshare = 3.0\n",
    )
    .unwrap();
    let output = print_config(
        &["--config", file.to_str().unwrap(), "--max-n", "30", "--set", "engine.usercf.neighbours=9"],
        &[
            ("RECWAL_ENGINE__WAL__SYNC", "never"),
            ("RECWAL_SERVER__CONCURRENCY", "8"),
            ("RECWAL_SERVER__MAX_N", "25"),
            ("RECWAL_TOKEN", "a-secret-that-is-long"),
        ],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let shown: toml::Table = toml::from_str(&stdout(&output)).unwrap();
    let at = |path: &str| -> toml::Value {
        path.split('.').try_fold(toml::Value::Table(shown.clone()), |value, key| value.get(key).cloned()).unwrap()
    };
    // A flag wins over the environment, the environment over the file.
    assert_eq!(at("server.max_n").as_integer(), Some(30));
    assert_eq!(at("server.concurrency").as_integer(), Some(8));
    assert_eq!(at("engine.wal.sync").as_str(), Some("never"));
    assert_eq!(at("engine.wal.segment_bytes").as_integer(), Some(1 << 20));
    assert_eq!(at("engine.checkpoint.every_ms").as_str(), Some("off"));
    assert_eq!(at("engine.weights.custom.share").as_float(), Some(3.0));
    assert_eq!(at("engine.usercf.neighbours").as_integer(), Some(9));
    // The token is never shown; defaults fill the rest.
    assert_eq!(at("server.token").as_str(), Some("<set>"));
    assert!(!stdout(&output).contains("a-secret"));
    assert_eq!(at("server.listen").as_str(), Some("127.0.0.1:8089"));
}

#[test]
fn unknown_and_moved_keys_are_refused_with_the_valid_ones() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("recwal.toml");
    for (text, says) in [
        ("[engine.wal]\nsegment_size = 4096\n", "engine.wal.segment_size"),
        ("[engine.wal]\nsegment_size = 4096\n", "segments_initial"),
        ("colour = \"red\"\n", "server, engine"),
        ("max_n = 20\n", "[server] max_n"),
        ("wal_segment_bytes = 4194304\n", "[engine.wal] segment_bytes"),
        ("model_runtime = \"x.so\"\n", "[engine.models] runtime_path"),
    ] {
        std::fs::write(&file, text).unwrap();
        let output = print_config(&["--config", file.to_str().unwrap()], &[]);
        assert!(!output.status.success(), "{text:?} was accepted");
        assert!(stderr(&output).contains(says), "{text:?}: {}", stderr(&output));
    }
    let output = print_config(&[], &[("RECWAL_ENGINE__WAL__SEGMENT_SIZE", "4096")]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("RECWAL_ENGINE__WAL__SEGMENT_SIZE"), "{}", stderr(&output));
    let output = print_config(&["--set", "engine.nope=1"], &[]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("engine.nope") && stderr(&output).contains("itemrank"), "{}", stderr(&output));
    // Variables of the tools (RECWAL_SERVER is their server's URL) are not keys.
    let output = print_config(&[], &[("RECWAL_SERVER", "https://example.invalid")]);
    assert!(output.status.success(), "{}", stderr(&output));
}

/// Regression (issue 14): a custom kind over HTTP got a 400 pointing at
/// `weights.custom`, a setting `serve` had no key for.
#[test]
fn a_custom_kind_configured_in_the_file_is_ingested_over_http_with_its_weight() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("recwal.toml");
    std::fs::write(&file, "[engine.weights.custom]\nshare = 3.5\n").unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_recwal"));
    command.args(["serve", "--config", file.to_str().unwrap(), "--data-dir"]).arg(dir.path().join("data"));
    let server = start(command);
    let (status, body) = server.json(
        "POST",
        "/v1/events",
        r#"{"events":[{"user":"ann","item":"song","kind":"share"},{"user":"ann","item":"song","kind":"share"}]}"#,
    );
    assert_eq!(status, 200, "{body}");
    let (status, body) = server.json("GET", "/v1/users/ann/interactions", "");
    assert_eq!(status, 200, "{body}");
    let interactions = body["interactions"].as_array().unwrap();
    assert_eq!(interactions.len(), 1, "{body}");
    assert_eq!(interactions[0]["value"].as_f64(), Some(7.0), "two shares of weight 3.5: {body}");
    // A kind that is not configured is still refused, naming the key.
    let response = server.call("POST", "/v1/event", br#"{"user":"ann","item":"song","kind":"like"}"#);
    response.assert_problem(400, "unconfigured kind");
    assert!(response.text().contains("engine.weights.custom"), "{}", response.text());
    // The OpenAPI document offers it.
    let (_, document) = server.json("GET", "/openapi.json", "");
    assert!(document.to_string().contains("\"share\""));
}

fn copy_binary(into: &Path) -> PathBuf {
    std::fs::create_dir_all(into).unwrap();
    let target = into.join("recwal");
    std::fs::copy(env!("CARGO_BIN_EXE_recwal"), &target).unwrap();
    target
}

fn serve_from(binary: &Path, cwd: &Path, data: &Path) -> Command {
    let mut command = Command::new(binary);
    command.current_dir(cwd).env_remove("ORT_DYLIB_PATH").args(["serve", "--data-dir"]).arg(data);
    for (name, _) in std::env::vars() {
        if name.starts_with("RECWAL_") {
            command.env_remove(name);
        }
    }
    command
}

/// Regression (issue 14): the library path was relative to the working
/// directory, so a server started elsewhere ran un-ranked with a warning.
#[test]
fn the_runtime_library_is_found_next_to_the_binary_from_any_working_directory() {
    let dir = tempfile::tempdir().unwrap();
    let binary = copy_binary(&dir.path().join("opt/recwal/bin"));
    std::os::unix::fs::symlink(support::runtime_path(), dir.path().join("opt/recwal/bin/libonnxruntime.so")).unwrap();
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let server = start(serve_from(&binary, &elsewhere, &dir.path().join("data")));
    let expected = dir.path().join("opt/recwal/bin/libonnxruntime.so");
    let (_, ready) = server.json("GET", "/readyz", "");
    assert_eq!(ready["model"]["runtime"]["path"].as_str(), expected.to_str(), "{ready}");
    // Ranking loads it: add and activate a model.
    let added = server.call("POST", "/admin/models", &support::fixture("linear_v1"));
    assert_eq!(added.status, 201, "{}", added.text());
    let (status, body) = server.json("POST", "/admin/models/1/activate", "");
    assert_eq!(status, 200, "{body}");
    let (_, ready) = server.json("GET", "/readyz", "");
    assert_eq!(ready["model"]["runtime"]["loaded"].as_bool(), Some(true), "{ready}");
    assert_eq!(ready["model"]["serving"].as_u64(), Some(1), "{ready}");
}

#[test]
fn a_missing_runtime_library_is_reported_with_the_paths_tried() {
    let dir = tempfile::tempdir().unwrap();
    let binary = copy_binary(&dir.path().join("a/b"));
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let server = start(serve_from(&binary, &elsewhere, &dir.path().join("data")));
    let (status, ready) = server.json("GET", "/readyz", "");
    // Un-ranked answers are still answers: ready, with the reason listed.
    assert_eq!(status, 200, "{ready}");
    let runtime = &ready["model"]["runtime"];
    assert_eq!(runtime["loaded"].as_bool(), Some(false), "{ready}");
    let tried: Vec<&str> = runtime["tried"].as_array().unwrap().iter().filter_map(|path| path.as_str()).collect();
    for candidate in [
        dir.path().join("a/b/libonnxruntime.so"),
        dir.path().join("a/lib/libonnxruntime.so"),
        elsewhere.join(".onnxruntime/lib/libonnxruntime.so"),
    ] {
        assert!(tried.contains(&candidate.to_str().unwrap()), "{candidate:?} not in {tried:?}");
    }
    assert!(runtime["reason"].as_str().is_some_and(|reason| reason.contains("no ONNX Runtime library")), "{ready}");
    drop(server);

    // A relative path in the configuration is taken from the working
    // directory at start, and reported as such when it is missing.
    let mut command = serve_from(&binary, &elsewhere, &dir.path().join("data"));
    command.args(["--set", "engine.models.runtime_path=lib/missing.so"]);
    let server = start(command);
    let (_, ready) = server.json("GET", "/readyz", "");
    let expected = elsewhere.join("lib/missing.so");
    assert_eq!(ready["model"]["runtime"]["tried"][0].as_str(), expected.to_str(), "{ready}");
}

/// Keys set by each layer take effect in the running server: a server
/// limit, the log's segment size, a checkpoint trigger.
#[test]
fn keys_from_each_layer_take_effect() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("recwal.toml");
    std::fs::write(&file, "[server]\nmax_n = 5\n").unwrap();
    let data = dir.path().join("data");
    let mut command = Command::new(env!("CARGO_BIN_EXE_recwal"));
    command
        .args(["serve", "--config", file.to_str().unwrap(), "--set", "engine.wal.segment_bytes=1048576"])
        .arg("--data-dir")
        .arg(&data)
        .env("RECWAL_ENGINE__CHECKPOINT__EVERY_RECORDS", "2")
        .env_remove("RECWAL_TOKEN");
    let server = start(command);
    // server.max_n, from the file.
    server.call("GET", "/v1/popular?n=6", b"").assert_problem(400, "n over max_n");
    assert_eq!(server.call("GET", "/v1/popular?n=5", b"").status, 200);
    // engine.wal.segment_bytes, from --set: every segment file is 1 MiB.
    let segments: Vec<u64> = std::fs::read_dir(data.join("wal"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "wal"))
        .map(|path| std::fs::metadata(path).unwrap().len())
        .collect();
    assert!(!segments.is_empty() && segments.iter().all(|bytes| *bytes == 1 << 20), "{segments:?}");
    // engine.checkpoint.every_records, from the environment: a snapshot
    // follows two records without being asked for.
    for user in ["a", "b", "c"] {
        let body = format!(r#"{{"user":"{user}","item":"i","kind":"click"}}"#);
        assert_eq!(server.call("POST", "/v1/event?durability=always", body.as_bytes()).status, 200);
    }
    let started = std::time::Instant::now();
    let snapshots = || std::fs::read_dir(data.join("snapshots")).map(|dir| dir.count()).unwrap_or(0);
    while snapshots() == 0 {
        assert!(started.elapsed() < std::time::Duration::from_secs(30), "no automatic snapshot after 2 records");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
