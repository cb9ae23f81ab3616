//! What the order of ingestion does to UserCF's neighbour pruning, on the
//! hash 80/20 split of a ratings file (docs/EVALUATION.md):
//!
//! ```text
//! scripts/fetch-eval-data.sh
//! cargo run --release --example pruning_order -- data/ml-1m/ml-1m.inter
//! ```
//!
//! Three engines, each trained on the same training ratings: fed in file
//! order (what `train_engine` did before it ordered by event time), fed by
//! `train_engine` (event-time order), and unpruned
//! (`scan_users_per_item = usize::MAX`, where order does not matter).
#![allow(clippy::print_stdout)]

use std::error::Error;
use std::path::PathBuf;

use recwal::eval::{evaluate_engine, load_ratings, split, train_engine, EvalSet, Protocol, Rating};
use recwal::{Engine, EngineConfig, Event, Strategy};

fn config(scan: usize) -> EngineConfig {
    let mut config = EngineConfig::default();
    config.wal = config.wal.sync_policy(recwal::wal::SyncPolicy::Never);
    config.checkpoint.disable_automatic();
    config.usercf.scan_users_per_item = scan;
    config
}

fn main() -> Result<(), Box<dyn Error>> {
    let path: PathBuf = std::env::args_os().nth(1).map(PathBuf::from).ok_or("usage: pruning_order <ratings file>")?;
    let ratings = load_ratings(&path)?;
    let split = split(&ratings, Protocol::Hash8020)?;
    let set = EvalSet::new(&split);
    let default_scan = EngineConfig::default().usercf.scan_users_per_item;
    println!("{} ratings from {}; UserCF scan_users_per_item = {default_scan}\n", ratings.len(), path.display());
    println!("| UserCF trained | P@10 | NDCG@10 | HR@10 | DOA |");
    println!("|---|---|---|---|---|");
    let row = |name: &str, engine: &Engine| {
        // UserCF trains nothing: it always has figures.
        let Ok(report) = evaluate_engine(engine, &set, Strategy::UserCf, 10, 4.0).map(|report| report.report) else {
            return;
        };
        println!(
            "| {name} | {:.4} | {:.4} | {:.4} | {:.2} |",
            report.precision, report.ndcg, report.hit_rate, report.doa
        );
    };
    {
        let dir = tempfile::tempdir()?;
        let engine = Engine::open(dir.path(), config(default_scan))?;
        for chunk in split.train.chunks(1000) {
            let events: Vec<Event> = chunk.iter().map(Rating::to_event).collect();
            engine.ingest_batch_with(&events, recwal::Durability::Never)?;
        }
        row("file order (before)", &engine);
    }
    {
        let dir = tempfile::tempdir()?;
        let engine = train_engine(dir.path(), config(default_scan), &split.train)?;
        row("event-time order (train_engine)", &engine);
    }
    {
        let dir = tempfile::tempdir()?;
        let engine = train_engine(dir.path(), config(usize::MAX), &split.train)?;
        row("unpruned", &engine);
    }
    Ok(())
}
