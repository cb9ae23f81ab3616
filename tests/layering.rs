//! The engine crate's layering, as ARCHITECTURE.md states it, checked.
//!
//! ARCHITECTURE.md's "Code map: the engine" lists the modules of `src/`
//! from the top layer down, one top-level bullet per layer ("- `state.rs`,
//! `state/`: …"). A module may import modules of its own layer or of the
//! layers below it, never one listed above. This test reads every
//! `src/**/*.rs` file, finds each `crate::…` path (in `use` lines and in
//! code; grouped imports expanded) and each file-level `use super::…`,
//! and fails on any that points up, on a file no bullet covers, and on a
//! bullet naming a module that does not exist.
//!
//! Rules of the reading:
//! - a bullet naming a directory (`model/`) covers every module in it; a
//!   file inside it named by a bullet of its own (`model/config.rs`) is on
//!   that bullet's layer instead (the longest listed path wins);
//! - the facade (`lib.rs`) may import anything; so may the engine facade,
//!   listed as `engine/`, which covers `engine.rs`, `engine/*.rs` and
//!   `engine_models.rs` alike (one layer however the facade is split);
//! - `crate::wal` is the log crate, below every module here;
//! - a `#[cfg(test)] mod … { … }` block is skipped: tests may reach the
//!   public facade (`crate::Engine`) from anywhere.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// Module paths, `::`-separated, relative to the crate root ("" is `lib.rs`).
type ModulePath = String;

/// Modules that belong to the engine facade's layer whatever their name.
const ENGINE_FACADE: &str = "engine";
const ENGINE_FACADE_ALIASES: &[&str] = &["engine_models"];

#[test]
fn no_module_imports_a_layer_listed_above_it() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let architecture = fs::read_to_string(root.join("ARCHITECTURE.md")).expect("ARCHITECTURE.md is readable");
    let layers = layers_listed(&architecture);
    assert!(layers.len() >= 10, "found only {} layers in ARCHITECTURE.md's engine code map", layers.len());

    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    assert!(!files.is_empty());
    let sources: Vec<(ModulePath, String, String)> = files
        .iter()
        .map(|path| {
            let relative = path.strip_prefix(root.join("src")).expect("under src/");
            let text = fs::read_to_string(path).expect("source is readable");
            (module_of(relative), format!("src/{}", relative.display()), text)
        })
        .collect();

    let problems = check(&layers, &sources);
    assert!(problems.is_empty(), "the engine's layering (ARCHITECTURE.md) is broken:\n{}", problems.join("\n"));
}

/// The checker itself finds what it must: an upward import, in a grouped
/// `use` too, a file no layer covers, a stale bullet; and lets the rest pass.
#[test]
fn the_checker_finds_upward_imports() {
    let layers = layers_listed(
        "## Code map: the engine (`src/`)\n\n\
         - `lib.rs`: facade.\n\
         - `engine/ingest.rs`: top (any facade file names the facade's layer).\n\
         - `recommend.rs`: reads.\n\
         \x20 **Invariant:** a continuation line, not a bullet.\n\
         - `state.rs`, `state/`: state.\n\
         - `config.rs`: config.\n\
         - `model/config.rs` and `gone.rs`: leaf config, and a stale entry.\n\
         - `limits.rs`: leaf.\n\
         \n## Code map: the log\n\n- `wal.rs`: not ours.\n",
    );
    assert_eq!(layers.len(), 7, "{layers:?}");
    assert_eq!(layers[5], ["model::config", "gone"]);
    let file = |module: &str, text: &str| (module.to_string(), format!("src/{module}.rs"), text.to_string());
    let clean = [
        file("", "use crate::engine::Engine;"),
        file("engine::ingest", "use crate::{recommend, state::State};\nfn f() { crate::limits::N_MAX; }"),
        file("engine_models", "use crate::engine::ingest::Sequencer;"),
        file("recommend", "use crate::state::catalog::Catalog;\nuse crate::wal::Durability;"),
        file("state", "use crate::config::{self, DedupConfig};"),
        file("state::catalog", "use super::Pair;"),
        file("model::config", "use std::time::Duration;"),
        file("config", "use crate::limits::N_MAX;\nuse crate::model::config::ModelConfig;"),
        file("limits", "#[cfg(test)]\nmod tests {\n    use crate::Engine;\n    fn f() { let _ = \"{\"; }\n}\n"),
    ];
    let clean_problems = check(&layers, &clean);
    assert_eq!(clean_problems, ["ARCHITECTURE.md lists `gone`, which is not a module of src/: remove it"]);

    let broken = [
        file("config", "// crate::recommend in a comment is fine\nuse crate::{limits, recommend::N_MAX};"),
        file("limits", "const X: usize = crate::config::Y;"),
        file("state", "use crate::EngineConfig;"),
        file("model::config", "use super::ranker::Ranker;"),
        file("nowhere", ""),
    ];
    let sources: Vec<_> = clean.iter().chain(&broken).cloned().collect();
    let problems = check(&layers, &sources);
    assert_eq!(problems.len(), 6, "{problems:#?}");
    assert!(problems[0].contains("src/config.rs:2") && problems[0].contains("crate::recommend::N_MAX"));
    assert!(problems[1].contains("src/limits.rs:1") && problems[1].contains("crate::config::Y"));
    assert!(problems[2].contains("crate::EngineConfig"));
    assert!(problems[3].contains("crate::model::ranker::Ranker"), "{problems:#?}");
    assert!(problems[4].contains("nowhere") && problems[4].contains("no layer"));
    assert!(problems[5].contains("lists `gone`"), "{problems:#?}");
}

/// The layers, top first: each top-level bullet of the engine's code map,
/// as the module paths named in backticks at its start.
fn layers_listed(architecture: &str) -> Vec<Vec<ModulePath>> {
    let start = architecture.find("## Code map: the engine").expect("ARCHITECTURE.md has the engine's code map");
    let section = &architecture[start..];
    let end = section[3..].find("\n## ").map_or(section.len(), |at| at + 3);
    let mut layers = Vec::new();
    for line in section[..end].lines() {
        let Some(mut rest) = line.strip_prefix("- `") else { continue };
        let mut modules = Vec::new();
        while let Some(close) = rest.find('`') {
            modules.push(module_of(Path::new(&rest[..close])));
            rest = &rest[close + 1..];
            match [", `", " and `"].iter().find_map(|separator| rest.strip_prefix(separator)) {
                Some(next) => rest = next,
                None => break,
            }
        }
        layers.push(modules);
    }
    layers
}

/// Every problem: upward imports, uncovered files, stale bullets.
fn check(layers: &[Vec<ModulePath>], sources: &[(ModulePath, String, String)]) -> Vec<String> {
    let modules: BTreeSet<&str> = sources.iter().map(|(module, _, _)| module.as_str()).collect();
    let mut problems = Vec::new();
    for (module, file, text) in sources {
        let Some(own) = layer_of(layers, module) else {
            problems.push(format!("{file}: module `{module}` is on no layer: add it to ARCHITECTURE.md's engine list"));
            continue;
        };
        for (line, path) in imports(module, text) {
            let segments: Vec<&str> = path.split("::").collect();
            if segments.first() == Some(&"wal") {
                continue;
            }
            // The longest prefix of the path that is a module of the crate.
            let target = (0..=segments.len())
                .rev()
                .map(|n| segments[..n].join("::"))
                .find(|prefix| modules.contains(prefix.as_str()) || prefix.is_empty())
                .unwrap_or_default();
            let Some(theirs) = layer_of(layers, &target) else { continue };
            if theirs < own {
                problems.push(format!(
                    "{file}:{line}: `{module}` (layer {own}) imports `crate::{path}` from `{target}` (layer {theirs}, listed above it)",
                    module = if module.is_empty() { "lib" } else { module },
                    path = path.trim_start_matches("crate::"),
                ));
            }
        }
    }
    for listed in layers.iter().flatten() {
        let exists = modules.iter().any(|module| *module == listed || module.starts_with(&format!("{listed}::")));
        if !exists {
            problems.push(format!("ARCHITECTURE.md lists `{listed}`, which is not a module of src/: remove it"));
        }
    }
    problems
}

/// The index (0 = top) of the layer `module` is on: the longest listed path
/// that is it or contains it.
fn layer_of(layers: &[Vec<ModulePath>], module: &str) -> Option<usize> {
    let module = facade_collapsed(module);
    let mut best: Option<(usize, usize)> = None;
    for (index, layer) in layers.iter().enumerate() {
        for listed in layer {
            let listed = facade_collapsed(listed);
            let covers = listed == module || (!listed.is_empty() && module.starts_with(&format!("{listed}::")));
            if covers && best.is_none_or(|(length, _)| listed.len() > length) {
                best = Some((listed.len(), index));
            }
        }
    }
    best.map(|(_, index)| index)
}

/// The engine facade's modules (`engine`, `engine::*`, the aliases) as
/// `engine`: one layer however the facade is split into files or listed.
fn facade_collapsed(module: &str) -> &str {
    let first = module.split("::").next().unwrap_or_default();
    if first == ENGINE_FACADE || ENGINE_FACADE_ALIASES.contains(&first) {
        ENGINE_FACADE
    } else {
        module
    }
}

/// `src/a/b.rs` → `a::b`, `src/a/mod.rs` and `a/` → `a`, `lib.rs` → "".
fn module_of(relative: &Path) -> ModulePath {
    let text = relative.to_string_lossy().replace('\\', "/");
    let text = text.trim_end_matches('/').trim_end_matches(".rs");
    let text = text.strip_suffix("/mod").unwrap_or(text);
    if text == "lib" {
        return String::new();
    }
    text.replace('/', "::")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> =
        fs::read_dir(dir).expect("src/ is readable").map(|entry| entry.expect("entry").path()).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

/// `(line, path)` of every crate-absolute path in `text` (grouped imports
/// expanded), and of each file-level `use super::…` resolved against
/// `module`; comments and `#[cfg(test)] mod` blocks skipped.
fn imports(module: &str, text: &str) -> Vec<(usize, String)> {
    let code = without_test_modules(text);
    let mut found = Vec::new();
    for (index, line) in code.lines().enumerate() {
        let line_no = index + 1;
        let line = line.split("//").next().unwrap_or_default();
        if let Some(rest) = line.strip_prefix("use super::").or_else(|| line.strip_prefix("pub(crate) use super::")) {
            let parent = module.rsplit_once("::").map_or("", |(parent, _)| parent);
            for path in expand(rest) {
                let path = if parent.is_empty() { path } else { format!("{parent}::{path}") };
                found.push((line_no, path));
            }
        }
        let mut rest = line;
        while let Some(at) = rest.find("crate::") {
            let before = rest[..at].chars().next_back();
            let after = &rest[at + "crate::".len()..];
            rest = after;
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
                continue;
            }
            let group =
                if after.starts_with('{') { &code_from(&code, index, line.len() - after.len())[..] } else { after };
            found.extend(expand(group).into_iter().map(|path| (line_no, path)));
        }
    }
    found
}

/// The code from `column` of line `index` on (a grouped `use` may span lines).
fn code_from(code: &str, index: usize, column: usize) -> String {
    let mut lines = code.lines().skip(index);
    let first = lines.next().unwrap_or_default();
    let mut text = first[column.min(first.len())..].to_string();
    for line in lines.take(50) {
        text.push(' ');
        text.push_str(line.split("//").next().unwrap_or_default());
    }
    text
}

/// Expands the path that starts `text` (`a::b::C`, `a::{b, c::{d, e}}`,
/// `{a, b}`) into full paths; stops where the path ends.
fn expand(text: &str) -> Vec<String> {
    let (paths, _) = expand_at(text.trim_start());
    paths
}

fn expand_at(text: &str) -> (Vec<String>, usize) {
    if let Some(inner) = text.strip_prefix('{') {
        let mut paths = Vec::new();
        let mut at = 1;
        let mut rest = inner;
        loop {
            let trimmed = rest.trim_start();
            at += rest.len() - trimmed.len();
            rest = trimmed;
            if let Some(after) = rest.strip_prefix('}') {
                return (paths, at + (rest.len() - after.len()));
            }
            if rest.is_empty() {
                return (paths, at);
            }
            let (more, used) = expand_at(rest);
            paths.extend(more);
            at += used;
            rest = &rest[used..];
            let trimmed = rest.trim_start();
            at += rest.len() - trimmed.len();
            rest = trimmed;
            if let Some(after) = rest.strip_prefix(',') {
                at += 1;
                rest = after;
            } else if !rest.starts_with('}') {
                // ` as Name`, or something this reader does not know: skip to the next item.
                let skip = rest.find([',', '}']).unwrap_or(rest.len());
                at += skip;
                rest = &rest[skip..];
                if let Some(after) = rest.strip_prefix(',') {
                    at += 1;
                    rest = after;
                }
            }
        }
    }
    let ident_len = text.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(text.len());
    if ident_len == 0 {
        return (Vec::new(), 0);
    }
    let ident = &text[..ident_len];
    if let Some(after) = text[ident_len..].strip_prefix("::") {
        let (tails, used) = expand_at(after);
        let paths = if tails.is_empty() {
            vec![ident.to_string()]
        } else {
            tails
                .into_iter()
                .map(|tail| if tail == "self" { ident.to_string() } else { format!("{ident}::{tail}") })
                .collect()
        };
        return (paths, ident_len + 2 + used);
    }
    (vec![ident.to_string()], ident_len)
}

/// `text` with every `#[cfg(test)] mod name { … }` block blanked out
/// (newlines kept, so line numbers stay right).
fn without_test_modules(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("#[cfg(test)]") {
        let after_attr = &rest[at + "#[cfg(test)]".len()..];
        let trimmed = after_attr.trim_start();
        let is_module = trimmed.starts_with("mod ") || trimmed.starts_with("pub(crate) mod ");
        let open = trimmed.find('{');
        let semicolon = trimmed.find(';');
        let (true, Some(open)) = (is_module, open) else {
            out.push_str(&rest[..at + "#[cfg(test)]".len()]);
            rest = after_attr;
            continue;
        };
        if semicolon.is_some_and(|semicolon| semicolon < open) {
            out.push_str(&rest[..at + "#[cfg(test)]".len()]);
            rest = after_attr;
            continue;
        }
        out.push_str(&rest[..at]);
        let block_start = at + "#[cfg(test)]".len() + (after_attr.len() - trimmed.len()) + open;
        let end = block_start + block_len(&rest[block_start..]);
        out.extend(rest[at..end].chars().filter(|c| *c == '\n'));
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// Bytes from the `{` that starts `text` to its matching `}` included;
/// braces inside string and char literals do not count.
fn block_len(text: &str) -> usize {
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let mut in_string = false;
    let mut at = 0;
    while at < bytes.len() {
        match (in_string, bytes[at]) {
            (true, b'\\') => at += 1,
            (true, b'"') => in_string = false,
            (false, b'"') => in_string = true,
            (false, b'\'') if bytes.get(at + 2) == Some(&b'\'') => at += 2,
            (false, b'{') => depth += 1,
            (false, b'}') => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return at + 1;
                }
            }
            _ => {}
        }
        at += 1;
    }
    text.len()
}
