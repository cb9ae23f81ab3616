//! Simulated power loss: thousands of seeded schedules of appends, syncs,
//! checkpoints, crashes, failed syncs and writes, full disks and bit flips, run against
//! the simulated disk, with the log's guarantees checked after every reopen:
//!
//! - every LSN acknowledged as durable is recovered, with its payload;
//! - the recovered log is a contiguous run of LSNs, and every record in it is
//!   one that was appended (none invented, none from an earlier lap);
//! - nothing unreleased is missing from the front of the log;
//! - a bit flipped in a durable record is detected (open fails, or the
//!   report names the damage), and the damaged record never comes back.
//!
//! A failing schedule prints its seed; `WAL_SEED=<seed> cargo test -p
//! recwal-wal --test sim_power_loss` replays just that one.
//! `WAL_SIM_SCHEDULES=<n>` sets how many schedules run (default 2000).

use std::collections::BTreeMap;

use recwal_wal::sim::{SimStorage, SplitMix64};
use recwal_wal::{inspect_storage, Durability, RecoveryMode, SyncPolicy, Wal, WalConfig, WalError};

/// How often each interesting event happened over all schedules; the test
/// asserts each one did, so a schedule generator gone quiet cannot pass.
#[derive(Default, Debug)]
struct Coverage {
    crashes: u64,
    tails_cut: u64,
    flips_detected: u64,
    poisoned: u64,
    full: u64,
    recycled: u64,
    enospc: u64,
}

struct Model {
    /// Every record appended and not known to be cut, by LSN: (kind, payload).
    records: BTreeMap<u64, (u8, Vec<u8>)>,
    /// Highest LSN acknowledged as durable.
    acked: u64,
    /// Highest LSN released by a checkpoint.
    released: u64,
    poisoned: bool,
}

fn payload(rng: &mut SplitMix64, lsn: u64, incarnation: u64) -> Vec<u8> {
    let bound = if rng.chance(10) { 900 } else { 120 };
    let len = 16 + rng.below(bound) as usize;
    let mut bytes = Vec::with_capacity(len);
    bytes.extend_from_slice(&lsn.to_le_bytes());
    bytes.extend_from_slice(&incarnation.to_le_bytes());
    while bytes.len() < len {
        bytes.push(rng.next_u64() as u8);
    }
    bytes
}

fn config_for(rng: &mut SplitMix64) -> WalConfig {
    let policy = if rng.chance(50) { SyncPolicy::Always } else { SyncPolicy::Never };
    let initial = 2 + rng.below(2) as u32;
    WalConfig::default()
        .segment_bytes(4096)
        .segments_initial(initial)
        .segments_max(initial + rng.below(3) as u32)
        .record_bytes_max(1024)
        .sync_policy(policy)
}

/// Opens after a crash and checks every invariant. Returns the open log.
fn reopen_and_check(
    storage: &SimStorage,
    config: &WalConfig,
    model: &mut Model,
    flipped: Option<u64>,
    coverage: &mut Coverage,
) -> Result<Wal, String> {
    coverage.crashes += 1;
    let wal = match Wal::open_with_storage(Box::new(storage.clone()), config.clone()) {
        Ok(wal) => {
            if let Some(lsn) = flipped {
                let report = wal.recovery_report();
                let still_there = lsn <= report.lsn_last;
                if still_there || (report.tail_damage.is_none() && report.corruption.is_none()) {
                    // The record is gone only if the damage was noticed and reported.
                    return Err(format!("flipped bit in durable lsn {lsn} went unreported: {report:?}"));
                }
            }
            wal
        }
        Err(WalError::Corruption(_)) if flipped.is_some() => {
            // Detected. Open anyway, keeping the valid prefix, as an operator would.
            Wal::open_with_storage(Box::new(storage.clone()), config.clone().recovery_mode(RecoveryMode::PointInTime))
                .map_err(|err| format!("point-in-time open after detected corruption failed: {err}"))?
        }
        Err(err) => return Err(format!("open failed: {err}")),
    };
    let report = wal.recovery_report().clone();
    if std::env::var("WAL_DEBUG").is_ok() {
        eprintln!("reopened: {report:?}");
    }
    if flipped.is_some() {
        coverage.flips_detected += 1;
    }
    if report.bytes_cut > 0 {
        coverage.tails_cut += 1;
    }
    if flipped.is_none() {
        if report.lsn_last < model.acked {
            return Err(format!(
                "acknowledged lsn {} lost: recovered up to {} ({report:?})",
                model.acked, report.lsn_last
            ));
        }
        if report.corruption.is_some() {
            return Err(format!("corruption reported without any injected: {report:?}"));
        }
    }
    let first = wal.lsn_first();
    if first > model.released + 1 && report.lsn_last > model.released {
        return Err(format!(
            "unreleased records missing from the front: first retained {first}, released {}",
            model.released
        ));
    }
    let mut expected = first;
    let reader = wal.read_from(first).map_err(|err| format!("read_from({first}): {err}"))?;
    for record in reader {
        let record = record.map_err(|err| format!("reading lsn {expected}: {err}"))?;
        if record.lsn() != expected {
            return Err(format!("reader skipped from {expected} to {}", record.lsn()));
        }
        match model.records.get(&record.lsn()) {
            Some((kind, bytes)) if *kind == record.kind() && bytes[..] == *record.payload() => {}
            Some(_) => return Err(format!("lsn {} came back with different contents", record.lsn())),
            None if record.lsn() <= model.released => {}
            None => return Err(format!("lsn {} was never appended (invented or from an earlier lap)", record.lsn())),
        }
        expected += 1;
    }
    if expected != report.lsn_last + 1 {
        return Err(format!("reader stopped at {} but recovery says last lsn {}", expected - 1, report.lsn_last));
    }
    // What was cut was never durable (or was damaged on purpose): forget it.
    let last = report.lsn_last;
    model.records.retain(|lsn, _| *lsn <= last);
    model.acked = model.acked.min(last);
    model.released = model.released.min(last);
    model.poisoned = false;
    Ok(wal)
}

fn run_schedule(seed: u64, coverage: &mut Coverage) -> Result<(), String> {
    let mut rng = SplitMix64::new(seed);
    let storage = SimStorage::new(seed.wrapping_mul(0x9E37_79B9));
    let config = config_for(&mut rng);
    let mut model = Model { records: BTreeMap::new(), acked: 0, released: 0, poisoned: false };
    let mut wal = Wal::open_with_storage(Box::new(storage.clone()), config.clone()).map_err(|err| err.to_string())?;
    let mut incarnation = 0u64;
    let ops = 40 + rng.below(200);
    let debug = std::env::var("WAL_DEBUG").is_ok();
    for _ in 0..ops {
        let roll = rng.below(100);
        if debug {
            eprintln!(
                "op {roll}: written {} durable {} acked {} released {}",
                wal.lsn_written(),
                wal.lsn_durable(),
                model.acked,
                model.released
            );
        }
        if roll < 60 {
            // `None`: `append_sync_later` (staged, synced when its ticket is waited for).
            let durability = match rng.below(4) {
                0 => Some(Durability::Always),
                1 => Some(Durability::Never),
                2 => None,
                _ => {
                    Some(if config.sync_policy == SyncPolicy::Always { Durability::Always } else { Durability::Never })
                }
            };
            let kind = rng.below(256) as u8;
            let lsn_next = wal.lsn_appended() + 1;
            let bytes = payload(&mut rng, lsn_next, incarnation);
            let appended = match durability {
                Some(durability) => wal.append_with(kind, &bytes, durability),
                None => wal.append_sync_later(kind, &bytes),
            };
            match appended {
                Ok(ticket) => {
                    if model.poisoned {
                        return Err("append succeeded on a poisoned log".to_string());
                    }
                    if ticket.lsn() != lsn_next {
                        return Err(format!("lsn {} handed out where {lsn_next} was next", ticket.lsn()));
                    }
                    model.records.insert(ticket.lsn(), (kind, bytes));
                    if durability == Some(Durability::Always) {
                        model.acked = model.acked.max(ticket.lsn());
                    }
                    if durability.is_none() && rng.chance(50) {
                        match ticket.wait() {
                            Ok(lsn) => model.acked = model.acked.max(lsn),
                            Err(WalError::Poisoned { .. }) => {
                                coverage.poisoned += 1;
                                model.poisoned = true;
                            }
                            Err(err) => return Err(format!("wait failed unexpectedly: {err}")),
                        }
                    }
                }
                Err(WalError::Poisoned { .. }) => {
                    // The append may have been written before its sync failed; the
                    // model keeps it as "maybe" by recording it without acking it.
                    if !model.poisoned {
                        model.records.insert(lsn_next, (kind, bytes));
                        model.poisoned = true;
                        coverage.poisoned += 1;
                    }
                }
                Err(WalError::Full { .. }) => coverage.full += 1,
                Err(err) if err.is_out_of_space() => coverage.enospc += 1,
                Err(WalError::Io { .. }) => {}
                Err(err) => return Err(format!("append failed unexpectedly: {err}")),
            }
        } else if roll < 70 {
            match wal.sync() {
                Ok(lsn) => model.acked = model.acked.max(lsn),
                Err(WalError::Poisoned { .. }) => {
                    coverage.poisoned += 1;
                    model.poisoned = true;
                }
                Err(err) => return Err(format!("sync failed unexpectedly: {err}")),
            }
        } else if roll < 80 {
            // Usually release only acknowledged records, as an engine would after
            // a snapshot; sometimes release records that are not durable yet.
            let limit = if rng.chance(50) { model.acked } else { wal.lsn_appended() };
            if limit > model.released {
                let lsn = model.released + 1 + rng.below(limit - model.released);
                wal.checkpoint(lsn).map_err(|err| format!("checkpoint: {err}"))?;
                model.released = lsn;
            }
        } else if roll < 88 {
            coverage.recycled += wal.metrics().segments_recycled;
            drop(wal);
            storage.crash();
            if rng.chance(20) {
                // Crash again during recovery: its repairs must be idempotent.
                storage.fail_next_syncs(1);
                if let Ok(interrupted) = Wal::open_with_storage(Box::new(storage.clone()), config.clone()) {
                    drop(interrupted);
                }
                storage.crash();
            }
            incarnation += 1;
            wal = reopen_and_check(&storage, &config, &mut model, None, coverage)?;
        } else if roll < 90 {
            storage.fail_next_syncs(1);
        } else if roll < 91 {
            storage.fail_next_writes(1);
        } else if roll < 94 {
            // Rot a bit inside a durable, unreleased record, then power-cycle.
            let mut candidates = Vec::new();
            drop(wal);
            storage.crash();
            let inspection = inspect_storage(&storage, &config, &mut |info, _| {
                if info.lsn <= model.acked && info.lsn > model.released {
                    candidates.push(*info);
                }
            })
            .map_err(|err| format!("inspect: {err}"))?;
            if std::env::var("WAL_DEBUG").is_ok() {
                eprintln!("before flip: {:?} {:?}", inspection.segments, inspection.report);
            }
            incarnation += 1;
            if candidates.is_empty() {
                wal = reopen_and_check(&storage, &config, &mut model, None, coverage)?;
                continue;
            }
            let victim = candidates[rng.below(candidates.len() as u64) as usize];
            let span = 24 + u64::from(victim.len);
            let offset = victim.offset + rng.below(span);
            let bit = rng.below(8) as u8;
            if std::env::var("WAL_DEBUG").is_ok() {
                eprintln!("flip {victim:?} at offset {offset} bit {bit}");
            }
            storage.flip_bit(victim.segment_index, offset, bit);
            wal = reopen_and_check(&storage, &config, &mut model, Some(victim.lsn), coverage)?;
        } else if roll < 96 {
            storage.set_space_limit(Some(storage.bytes_used()));
        } else {
            storage.set_space_limit(None);
            let first = wal.lsn_first();
            let reader = wal.read_from(first).map_err(|err| format!("read_from: {err}"))?;
            let visible = reader.filter_map(Result::ok).count() as u64;
            let lsn_visible = match config.sync_policy {
                SyncPolicy::Never => wal.lsn_written(),
                _ => wal.lsn_durable(),
            };
            // A checkpoint may have released records beyond the visible ones.
            let expected = (lsn_visible + 1).saturating_sub(first);
            if visible != expected {
                return Err(format!("live reader saw {visible} records, expected {expected}"));
            }
        }
    }
    drop(wal);
    storage.crash();
    reopen_and_check(&storage, &config, &mut model, None, coverage)?;
    Ok(())
}

#[test]
fn acknowledged_records_survive_every_simulated_power_loss() {
    if let Ok(seed) = std::env::var("WAL_SEED") {
        let seed: u64 = seed.parse().expect("WAL_SEED must be a u64");
        if let Err(failure) = run_schedule(seed, &mut Coverage::default()) {
            panic!("seed {seed}: {failure}");
        }
        return;
    }
    let schedules: u64 = std::env::var("WAL_SIM_SCHEDULES").ok().and_then(|n| n.parse().ok()).unwrap_or(2000);
    let base = 0x5EED_0000_u64;
    let mut failures = Vec::new();
    let mut coverage = Coverage::default();
    for i in 0..schedules {
        let seed = base + i;
        if let Err(failure) = run_schedule(seed, &mut coverage) {
            failures.push(format!("seed {seed}: {failure}"));
            if failures.len() >= 5 {
                break;
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failing schedules (replay one with WAL_SEED=<seed>):\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!("{schedules} schedules: {coverage:?}");
    let Coverage { crashes, tails_cut, flips_detected, poisoned, full, recycled, enospc } = coverage;
    for (what, count) in [
        ("crashes", crashes),
        ("tails cut", tails_cut),
        ("bit flips detected", flips_detected),
        ("poisoned logs", poisoned),
        ("full rings", full),
        ("recycled segments", recycled),
        ("ENOSPC", enospc),
    ] {
        assert!(count > 0 || schedules < 200, "no schedule exercised {what}: {coverage:?}");
    }
}
