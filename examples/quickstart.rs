//! Opens (or recovers) an engine in the directory given as the first
//! argument (default `./recwal-data`), ingests a few events durably, each with
//! a client event id, and prints recommendations.
//!
//! `cargo run --example quickstart -- ./recwal-data`, then kill it or not,
//! and run it again: the events are recovered, and the resubmitted events are
//! recognised as duplicates instead of being counted twice.
#![allow(clippy::print_stdout)]

use recwal::wal::SyncPolicy;
use recwal::{Engine, EngineConfig, Event, EventKind, RecommendRequest, Strategy};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "./recwal-data".to_string());
    let mut config = EngineConfig::default();
    config.wal = config.wal.segment_bytes(4 << 20).segments_initial(2).sync_policy(SyncPolicy::Always);
    let engine = Engine::open(std::path::Path::new(&dir), config)?;
    let report = engine.open_report();
    println!(
        "opened {dir}: snapshot at LSN {}, {} records replayed, {} events in the state",
        report.lsn_snapshot,
        report.records_replayed,
        engine.stats().events_applied
    );
    let events = [
        ("ann", "espresso", EventKind::Purchase),
        ("ann", "grinder", EventKind::Click),
        ("bob", "espresso", EventKind::Purchase),
        ("bob", "milk-jug", EventKind::Cart),
        ("bob", "grinder", EventKind::Rating(5.0)),
        ("cid", "milk-jug", EventKind::View),
    ];
    for (n, (user, item, kind)) in events.into_iter().enumerate() {
        let receipt = engine.ingest(Event::new(user, item, kind).with_id(format!("quickstart-{n}")))?;
        let note = if receipt.duplicate { "duplicate, already recorded" } else { "durable and applied" };
        println!("{user:>4} {item:<9} → LSN {} ({note})", receipt.lsn);
    }
    for strategy in [Strategy::UserCf, Strategy::ItemRank, Strategy::Blend] {
        let answer = engine.recommend(&RecommendRequest::new("ann", 3, strategy))?;
        let items: Vec<String> = answer
            .items
            .iter()
            .map(|scored| format!("{} ({:.3}, {:?})", scored.item, scored.score, scored.reasons))
            .collect();
        println!("{} for ann: {}", strategy.name(), items.join("; "));
    }
    engine.close()?;
    Ok(())
}
