//! One way to name an LSN across the three crates: `lsn` alone or
//! `lsn_<qualifier>` (`lsn_durable`, `lsn_first`, `lsn_applied`), the
//! qualifier last so related names sort together (../shared/STYLE.md,
//! TigerBeetle's "big-endian naming").
//!
//! LSNs stay a bare `u64` (`recwal_wal::Lsn` is an alias, not a newtype):
//! the reasons and the count behind that choice are in ARCHITECTURE.md,
//! "Cross-cutting concerns". This test keeps the naming half of the choice
//! true: an identifier `<qualifier>_lsn` anywhere in Rust code fails it.
//! Text inside string literals is not code (public JSON keys such as
//! `"applied_lsn"` are a wire contract and keep their names).

use std::fs;
use std::path::{Path, PathBuf};

/// Directories of Rust code, relative to the workspace root.
const CODE: &[&str] =
    &["src", "tests", "bench/benches", "examples", "wal/src", "wal/tests", "server/src", "server/tests"];

#[test]
fn lsn_names_put_the_qualifier_last() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in CODE {
        rust_files(&root.join(dir), &mut files);
    }
    assert!(files.len() > 50, "found only {} Rust files", files.len());
    let mut problems = Vec::new();
    for path in &files {
        let text = fs::read_to_string(path).expect("source is readable");
        for (line_index, line) in text.lines().enumerate() {
            for name in misnamed(&code_of(line)) {
                problems.push(format!(
                    "{}:{}: `{name}`",
                    path.strip_prefix(root).unwrap_or(path).display(),
                    line_index + 1
                ));
            }
        }
    }
    assert!(problems.is_empty(), "name LSNs `lsn_<qualifier>`, not `<qualifier>_lsn`:\n{}", problems.join("\n"));
}

#[test]
fn the_checker_finds_a_misnamed_lsn() {
    assert_eq!(misnamed(&code_of("let first_lsn = ring.lsn_first(lsn_next);")), ["first_lsn"]);
    assert_eq!(misnamed(&code_of("json!({ \"applied_lsn\": stats.lsn_applied })")), Vec::<String>::new());
    assert_eq!(misnamed(&code_of("fn a_record_at_or_below_the_applied_lsn_is_ignored() {}")), Vec::<String>::new());
    assert_eq!(misnamed(&code_of("recwal_snapshot_lsn // durable_lsn in a comment")), Vec::<String>::new());
    assert_eq!(misnamed(&code_of("self.durable_lsn_hint")), ["durable_lsn_hint"]);
}

/// Identifiers in `code` that end in `_lsn` or hold `_lsn_` after a
/// one-word qualifier (`durable_lsn_hint`); long test names that merely
/// mention "the applied lsn" in a sentence are not LSN variables.
fn misnamed(code: &str) -> Vec<String> {
    code.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| {
            let words: Vec<&str> = word.split('_').collect();
            match words.iter().position(|part| *part == "lsn") {
                Some(at) => at > 0 && words.len() <= 4 && !word.starts_with("recwal_"),
                None => false,
            }
        })
        .map(str::to_string)
        .collect()
}

/// The line without string literals and without a trailing `//` comment.
fn code_of(line: &str) -> String {
    let mut code = String::new();
    let mut in_string = false;
    let mut escaped = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if in_string {
            match (escaped, c) {
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => escaped = false,
            }
            continue;
        }
        match c {
            '"' => in_string = true,
            '/' if chars.peek() == Some(&'/') => break,
            _ => code.push(c),
        }
    }
    code
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}
