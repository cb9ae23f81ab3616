//! "Only ingest appends" (ARCHITECTURE.md): every state change goes
//! through the sequencer in `src/engine/ingest.rs`, so that file is the only
//! one of the engine crate that may call the log's append methods. A call
//! anywhere else would bypass the dedup check, the LSN-ordered apply queue
//! and the durability wait. Read from the source, not the binary: the rule
//! is about where the code lives.

use std::path::{Path, PathBuf};

/// The log's append methods, as they appear at a call site.
const APPEND_CALLS: [&str; 4] = [".append(", ".append_with(", ".append_sync_later(", "append_batch"];

/// The one file allowed to call them.
const INGEST: &str = "src/engine/ingest.rs";

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|err| panic!("reading {}: {err}", dir.display()));
    for entry in entries {
        let path = entry.unwrap_or_else(|err| panic!("listing {}: {err}", dir.display())).path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

/// The code of a line, without a trailing `//` comment (doc examples and
/// prose may name the methods).
fn code_of(line: &str) -> &str {
    let line = line.trim_start();
    if line.starts_with("//") {
        return "";
    }
    line.split_once("//").map_or(line, |(code, _)| code)
}

#[test]
fn only_ingest_appends_to_the_log() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    assert!(files.len() > 10, "found only {} files under src/", files.len());
    let ingest = root.join(INGEST);
    assert!(files.contains(&ingest), "{INGEST} is gone: update this test and ARCHITECTURE.md");
    let mut offenders = Vec::new();
    let mut ingest_calls = 0;
    for path in &files {
        let text = std::fs::read_to_string(path).unwrap_or_else(|err| panic!("reading {}: {err}", path.display()));
        for (at, line) in text.lines().enumerate() {
            let code = code_of(line);
            if !APPEND_CALLS.iter().any(|call| code.contains(call)) {
                continue;
            }
            if *path == ingest {
                ingest_calls += 1;
            } else {
                offenders.push(format!("{}:{}: {}", path.display(), at + 1, line.trim()));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "only {INGEST} may append to the log (route the record through `Shared::log_and_apply`):\n{}",
        offenders.join("\n")
    );
    // Paired: the check above is vacuous if the patterns stopped matching.
    assert!(ingest_calls > 0, "{INGEST} no longer calls any of {APPEND_CALLS:?}: update this test");
}
