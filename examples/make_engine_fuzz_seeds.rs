//! Writes the seed corpora of the engine's fuzz targets:
//! `cargo run --example make_engine_fuzz_seeds` (from the repository root).
#![allow(clippy::print_stdout)]

fn main() -> std::io::Result<()> {
    let (records, snapshots) = recwal::fuzzing::seeds();
    for (target, seeds) in [("engine_record", records), ("engine_snapshot", snapshots)] {
        let dir = std::path::Path::new("fuzz/corpus").join(target);
        std::fs::create_dir_all(&dir)?;
        for (at, seed) in seeds.iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{at}")), seed)?;
        }
        println!("{}: {} seeds", dir.display(), seeds.len());
    }
    Ok(())
}
