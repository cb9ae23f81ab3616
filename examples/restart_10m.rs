//! A real restart at scale, with the default configuration (automatic
//! checkpoints every 1M records, 64 MiB of log or 5 min): builds the 10M-event
//! synthetic state (`SynthConfig::large()`, 100 events per call, `Never`),
//! closes the engine, then times `Engine::open` = newest snapshot + replay of
//! the log written after it.
//!
//! ```text
//! cargo run --release --example restart_10m -- build   # ≈ 45 s, 460 MiB in /tmp/recwal-restart-10m
//! cargo run --release --example restart_10m            # the restart
//! ```
#![allow(clippy::print_stdout, clippy::unwrap_used)]
use recwal::synth::{events, SynthConfig};
use recwal::{Durability, Engine, EngineConfig, Event};
fn main() {
    let dir = std::env::temp_dir().join("recwal-restart-10m");
    let config = EngineConfig::default();
    if std::env::args().nth(1).as_deref() == Some("build") {
        let _ = std::fs::remove_dir_all(&dir);
        let engine = Engine::open(&dir, config).unwrap();
        let mut batch: Vec<Event> = Vec::new();
        for event in events(&SynthConfig::large()) {
            batch.push(event);
            if batch.len() == 100 {
                engine.ingest_batch_with(&batch, Durability::Never).unwrap();
                batch.clear();
            }
        }
        let stats = engine.stats();
        println!(
            "built: events {} lsn_snapshot {} applied {}",
            stats.events_applied, stats.lsn_snapshot, stats.lsn_applied
        );
        engine.close().unwrap();
    } else {
        let t = std::time::Instant::now();
        let engine = Engine::open(&dir, config).unwrap();
        let r = engine.open_report();
        let total = t.elapsed();
        let events = engine.stats().events_applied;
        println!(
            "open {:?}: snapshot at LSN {} loaded in {:?}, {} records replayed in {:?}; {} events back, {:.2}M events/s overall",
            total, r.lsn_snapshot, r.snapshot_load, r.records_replayed, r.replay, events, events as f64 / total.as_secs_f64() / 1e6
        );
    }
}
