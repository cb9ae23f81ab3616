//! The layering of `wal/src/` is the list in ARCHITECTURE.md's "Code map:
//! the log" section, top (the facade) to bottom (leaves): each module may
//! use only modules listed below it. This test reads that list and every
//! `crate::` path in the sources, and fails on an upward (or sideways)
//! import, or on a module the list does not place.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

const SECTION: &str = "## Code map: the log (`wal/src/`)";

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The modules of the code map, top first: every bullet `- \`name.rs\`` of
/// the section, in order.
fn layers_from_architecture() -> Vec<String> {
    let path = workspace_root().join("ARCHITECTURE.md");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("read {}: {err}", path.display()));
    let start = text.find(SECTION).unwrap_or_else(|| panic!("ARCHITECTURE.md has no section {SECTION:?}"));
    let section = &text[start + SECTION.len()..];
    let section = &section[..section.find("\n## ").unwrap_or(section.len())];
    section
        .lines()
        .filter_map(|line| line.strip_prefix("- `"))
        .filter_map(|rest| rest.split('`').next())
        .filter_map(|name| name.strip_suffix(".rs"))
        .map(str::to_string)
        .collect()
}

/// The module named by each `crate::name` in `source`, outside comments,
/// with its line number. A name that is not a module (`crate::Wal`, a
/// re-export) is the facade's: `lib`.
fn crate_paths(source: &str, modules: &[String]) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (line_idx, line) in source.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        assert!(
            !code.contains("crate::{"),
            "line {}: write one `use crate::module::…` per module, so the layering test can read it: {line}",
            line_idx + 1
        );
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let preceded_by_ident =
                rest[..at].chars().next_back().is_some_and(|before| before.is_alphanumeric() || before == '_');
            let after = &rest[at + "crate::".len()..];
            let name: String = after.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            if !preceded_by_ident && !name.is_empty() {
                let module = if modules.contains(&name) { name } else { "lib".to_string() };
                found.push((line_idx + 1, module));
            }
            rest = after;
        }
    }
    found
}

#[test]
fn every_module_imports_only_modules_below_it_in_architecture_md() {
    let layers = layers_from_architecture();
    assert!(layers.len() > 10, "the wal code map in ARCHITECTURE.md lists the modules: found {layers:?}");
    let rank: HashMap<&str, usize> = layers.iter().enumerate().map(|(idx, name)| (name.as_str(), idx)).collect();
    assert_eq!(rank.len(), layers.len(), "a module is listed twice: {layers:?}");

    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files: Vec<String> = std::fs::read_dir(&src)
        .unwrap_or_else(|err| panic!("read {}: {err}", src.display()))
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| entry.file_name().to_str().and_then(|name| name.strip_suffix(".rs")).map(str::to_string))
        .collect();
    files.sort();
    for file in &files {
        assert!(rank.contains_key(file.as_str()), "wal/src/{file}.rs is missing from ARCHITECTURE.md's wal code map");
    }
    for listed in &layers {
        assert!(files.contains(listed), "ARCHITECTURE.md lists {listed}.rs, which wal/src/ does not have");
    }

    let mut upward = Vec::new();
    for file in &files {
        let path = src.join(format!("{file}.rs"));
        let source = std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("read {}: {err}", path.display()));
        for (line, target) in crate_paths(&source, &layers) {
            if target != *file && rank[target.as_str()] <= rank[file.as_str()] {
                upward.push(format!("wal/src/{file}.rs:{line} uses crate::{target}, which is not below it"));
            }
        }
    }
    assert!(upward.is_empty(), "imports against the layering in ARCHITECTURE.md:\n{}", upward.join("\n"));
}

#[test]
fn the_reader_of_crate_paths_sees_uses_and_inline_paths_but_not_comments() {
    let modules = vec!["ring".to_string(), "format".to_string()];
    let source = "use crate::ring::Ring;\n// crate::format is a comment\nlet x = crate::format::frame_bytes(1); // crate::ring\nlet w = crate::Wal::open;\nlet y = mycrate::ring::X;\n";
    assert_eq!(
        crate_paths(source, &modules),
        vec![(1, "ring".to_string()), (3, "format".to_string()), (4, "lib".to_string())]
    );
}
