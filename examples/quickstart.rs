//! Opens (or recovers) a log in the directory given as the first argument
//! (default `./recwal-data`), appends the remaining arguments as records with
//! `Always` durability, then prints every record the log holds and its metrics.
//!
//! `cargo run --example quickstart -- ./recwal-data hello world`, then kill it
//! or not, and run it again: the records are still there.
#![allow(clippy::print_stdout)]

use recwal::wal::{SyncPolicy, Wal, WalConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().unwrap_or_else(|| "./recwal-data".to_string());
    let config = WalConfig::default().segment_bytes(4 << 20).sync_policy(SyncPolicy::Always);
    let wal = Wal::open(std::path::Path::new(&dir), config)?;
    let report = wal.recovery_report();
    println!("recovered {} records (last lsn {}) from {dir}", report.records_recovered, report.last_lsn);
    for arg in args {
        let ticket = wal.append(0, arg.as_bytes())?;
        println!("appended lsn {} (durable: {})", ticket.lsn(), ticket.is_durable());
    }
    for record in wal.read_from(wal.lsn_first())? {
        let record = record?;
        println!("{:>6}  {}", record.lsn(), String::from_utf8_lossy(record.payload()));
    }
    let metrics = wal.metrics();
    println!(
        "syncs {}, records appended {}, segments live {}",
        metrics.syncs, metrics.records_appended, metrics.segments_live
    );
    wal.close()?;
    Ok(())
}
