//! Every seed of every fuzz corpus in `fuzz/corpus/` runs here under
//! `cargo test`, through the same entry points the fuzz targets call, so a
//! crash the fuzzer once found (and whose input was committed) stays fixed.

use std::path::PathBuf;

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus").join(target);
    let mut seeds: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|err| panic!("corpus {}: {err}", dir.display()))
        .map(|entry| {
            let path = entry.expect("corpus entry").path();
            let bytes = std::fs::read(&path).expect("read seed");
            (path, bytes)
        })
        .collect();
    seeds.sort();
    assert!(!seeds.is_empty(), "corpus {} is empty", dir.display());
    seeds
}

fn run(target: &str, check: fn(&[u8])) {
    for (path, bytes) in corpus(target) {
        let res = std::panic::catch_unwind(|| check(&bytes));
        assert!(res.is_ok(), "seed {} of {target} fails", path.display());
    }
}

#[test]
fn record_decode_corpus() {
    run("record_decode", recwal_wal::testing::fuzz_record_decode);
}

#[test]
fn recovery_corpus() {
    run("recovery", recwal_wal::testing::fuzz_recovery);
}

#[test]
fn wal_ops_corpus() {
    run("wal_ops", recwal_wal::testing::fuzz_ops);
}
