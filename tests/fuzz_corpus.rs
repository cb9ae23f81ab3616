//! Every seed of the engine's fuzz corpora (`fuzz/corpus/engine_*`) runs here
//! under `cargo test`, through the entry points the fuzz targets call.

use std::path::PathBuf;

fn run(target: &str, check: fn(&[u8])) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(target);
    let mut seeds: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|err| panic!("corpus {}: {err}", dir.display()))
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .collect();
    seeds.sort();
    assert!(!seeds.is_empty(), "corpus {} is empty", dir.display());
    for path in seeds {
        let bytes = std::fs::read(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
        let res = std::panic::catch_unwind(|| check(&bytes));
        assert!(res.is_ok(), "seed {} of {target} fails", path.display());
    }
}

#[test]
fn engine_record_corpus() {
    run("engine_record", recwal::fuzzing::fuzz_engine_record);
}

#[test]
fn engine_snapshot_corpus() {
    run("engine_snapshot", recwal::fuzzing::fuzz_snapshot);
}
