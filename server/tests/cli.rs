//! The command-line tools on a data directory: import, wal inspect and
//! verify (also on a damaged copy), checkpoint, models, eval.
#![allow(clippy::unwrap_used)]

mod support;

use std::process::{Command, Output};

fn recwal(args: &[&str], dir: &std::path::Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_recwal"))
        .args(args)
        .env("RECWAL_DATA_DIR", dir)
        .env("ORT_DYLIB_PATH", support::runtime_path())
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn import_inspect_checkpoint_models_eval() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // MovieLens u.data: user, item, rating, timestamp (tab-separated).
    let mut ratings = String::new();
    for user in 0..40 {
        for step in 0..12 {
            let item = (user * 7 + step * 3) % 50;
            ratings.push_str(&format!(
                "{user}\t{item}\t{}\t{}\n",
                1 + (user + step) % 5,
                880_000_000 + user * 100 + step
            ));
        }
    }
    let file = dir.path().join("u.data");
    std::fs::write(&file, ratings).unwrap();
    let imported = stdout(&recwal(&["import", file.to_str().unwrap(), "--batch", "100"], &data));
    assert!(imported.contains("imported 480 events"), "{imported}");

    let wal_dir = data.join("wal");
    let inspect = stdout(&recwal(&["wal", "inspect", wal_dir.to_str().unwrap()], &data));
    assert!(inspect.contains("segment") && inspect.contains("no corruption"), "{inspect}");
    let verify = stdout(&recwal(&["wal", "verify", wal_dir.to_str().unwrap()], &data));
    assert!(verify.contains("5 records checked: no corruption"), "{verify}");

    let checkpoint = stdout(&recwal(&["checkpoint"], &data));
    assert!(checkpoint.contains("snapshot at LSN 5"), "{checkpoint}");

    let model = support::runtime_path();
    assert!(model.is_file());
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/models/linear_v1.onnx");
    let added = stdout(&recwal(&["models", "add", fixture.to_str().unwrap()], &data));
    assert!(added.starts_with("v1  sha256 "), "{added}");
    stdout(&recwal(&["models", "activate", "1"], &data));
    let listed = stdout(&recwal(&["models", "list"], &data));
    assert!(listed.contains("v1 ") && listed.contains("ACTIVE"), "{listed}");
    let refused = recwal(&["models", "activate", "7"], &data);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("unknown model version 7"));
    // On the data directory: a canary, logged, so the next command sees it.
    let v2 = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/models/linear_v2.onnx");
    stdout(&recwal(&["models", "add", v2.to_str().unwrap()], &data));
    stdout(&recwal(&["models", "canary", "2", "--percent", "10"], &data));
    let status = stdout(&recwal(&["models", "status"], &data));
    assert!(status.contains("active v1") && status.contains("canary v2 for 10% of users"), "{status}");
    let bad = recwal(&["models", "canary", "2", "--percent", "0"], &data);
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("--percent must be 1–99"));
    stdout(&recwal(&["models", "end-canary"], &data));
    assert!(stdout(&recwal(&["models", "status"], &data)).contains("canary none"));

    let eval = stdout(&recwal(&["eval", file.to_str().unwrap()], &data));
    assert!(eval.contains("| user_cf |") && eval.contains("| popularity |"), "{eval}");

    // A damaged copy: one byte of the first record's payload flipped.
    let copy = dir.path().join("copy");
    std::fs::create_dir_all(&copy).unwrap();
    for entry in std::fs::read_dir(&wal_dir).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), copy.join(entry.file_name())).unwrap();
    }
    let first = std::fs::read_dir(&copy)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "wal"))
        .min()
        .unwrap();
    let mut bytes = std::fs::read(&first).unwrap();
    bytes[200] ^= 0xff;
    std::fs::write(&first, bytes).unwrap();
    let damaged = recwal(&["wal", "verify", copy.to_str().unwrap()], &data);
    assert!(!damaged.status.success(), "{}", String::from_utf8_lossy(&damaged.stdout));
    assert!(String::from_utf8_lossy(&damaged.stdout).contains("CORRUPTION FOUND"));
}

#[test]
fn models_and_checkpoint_against_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let token = "cli-token-0123456789";
    let server = support::Server::start(dir.path(), Some(token), &[]);
    let url = format!("http://{}", server.addr);
    let remote = |args: &[&str]| {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--server", &url, "--token", token]);
        recwal(&all, &dir.path().join("unused"))
    };
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/models/linear_v1.onnx");
    let added = stdout(&remote(&["models", "add", fixture.to_str().unwrap()]));
    assert!(added.starts_with("v1  sha256 "), "{added}");
    stdout(&remote(&["models", "activate", "1"]));
    let listed = stdout(&remote(&["models", "list"]));
    assert!(listed.contains("ACTIVE"), "{listed}");
    // Versions side by side through the admin plane.
    let v2 = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/models/linear_v2.onnx");
    stdout(&remote(&["models", "add", v2.to_str().unwrap()]));
    let canary = stdout(&remote(&["models", "canary", "2", "--percent", "25"]));
    assert!(canary.contains("canary v2 for 25% of users"), "{canary}");
    let status = stdout(&remote(&["models", "status"]));
    assert!(status.contains("active v1") && status.contains("canary v2 for 25%"), "{status}");
    let refused = remote(&["models", "canary", "1", "--percent", "25"]);
    assert!(!refused.status.success() && String::from_utf8_lossy(&refused.stderr).contains("HTTP 409"));
    let promoted = stdout(&remote(&["models", "promote"]));
    assert!(promoted.starts_with("v2 ") && promoted.contains("ACTIVE"), "{promoted}");
    let shadow = stdout(&remote(&["models", "shadow", "1"]));
    assert!(shadow.contains("canary none  shadow v1"), "{shadow}");
    stdout(&remote(&["models", "end-shadow"]));
    let retired = stdout(&remote(&["models", "retire", "1"]));
    assert!(retired.starts_with("v1 ") && retired.contains("retired"), "{retired}");
    let checkpoint = stdout(&remote(&["checkpoint"]));
    assert!(checkpoint.starts_with("snapshot at LSN"), "{checkpoint}");
    // A wrong token is refused with the server's reason.
    let refused = recwal(&["models", "list", "--server", &url, "--token", "wrong-token-0123456789"], dir.path());
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("HTTP 401"));
    assert!(!dir.path().join("unused").exists(), "a remote command opened a data directory");
}
