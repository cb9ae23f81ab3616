//! Writes the seed corpora of the fuzz targets into `fuzz/corpus/`.
//! Run from the repository root: `cargo run -p recwal-wal --features sim --example make_fuzz_seeds`.
//! The seeds are committed; `tests/fuzz_corpus.rs` runs them under `cargo test`.

use std::path::Path;

use recwal_wal::format::RecordHeader;
use recwal_wal::sim::{SimStorage, SplitMix64};
use recwal_wal::testing::FUZZ_SEGMENT_BYTES;
use recwal_wal::{SyncPolicy, Wal, WalConfig};

fn write(target: &str, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let dir = Path::new("fuzz/corpus").join(target);
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join(name), bytes)
}

fn frame(seq: u64, lsn: u64, payload: &[u8]) -> Vec<u8> {
    let header = RecordHeader::new(seq, lsn, lsn - 1, 3, payload);
    let mut bytes = header.encode().to_vec();
    bytes.extend_from_slice(payload);
    bytes.resize(header.frame_bytes() as usize, 0);
    bytes
}

/// A log's segment images joined behind a segment-count byte, as `fuzz_recovery` reads them.
fn log_seed(records: u64, checkpoint_every: u64, damage: impl Fn(&mut Vec<Vec<u8>>)) -> Vec<u8> {
    let storage = SimStorage::new(1);
    let config = WalConfig::default()
        .segment_bytes(FUZZ_SEGMENT_BYTES)
        .segments_initial(2)
        .segments_max(3)
        .record_bytes_max(1024)
        .sync_policy(SyncPolicy::Always);
    let wal = Wal::open_with_storage(Box::new(storage.clone()), config).expect("open");
    for lsn in 1..=records {
        let _ = wal.append((lsn % 4) as u8, &vec![lsn as u8; (lsn * 29 % 200) as usize]).expect("append");
        if checkpoint_every > 0 && lsn % checkpoint_every == 0 {
            wal.checkpoint(lsn - 5).expect("checkpoint");
        }
    }
    drop(wal);
    let mut images: Vec<Vec<u8>> = (0..3).filter_map(|index| storage.image(index)).collect();
    damage(&mut images);
    let mut seed = vec![(images.len() - 1) as u8];
    for image in images {
        seed.extend(image);
    }
    seed
}

fn main() -> std::io::Result<()> {
    write("record_decode", "valid", &[[7u8, 0].as_slice(), &frame(7, 9, b"payload")].concat())?;
    write("record_decode", "stale", &[[9u8, 0].as_slice(), &frame(7, 9, b"older lap")].concat())?;
    write("record_decode", "second_slot", &[[7u8, 1].as_slice(), &[0u8; 8], &frame(7, 2, b"")].concat())?;
    write("record_decode", "zeros", &[0u8; 40])?;

    write("recovery", "clean_two_segments", &log_seed(40, 0, |_| {}))?;
    write("recovery", "recycled_ring", &log_seed(90, 10, |_| {}))?;
    write("recovery", "torn_tail", &log_seed(30, 0, |images| images[0][3000..].fill(0)))?;
    write("recovery", "bit_flip", &log_seed(30, 0, |images| images[0][200] ^= 4))?;
    write("recovery", "empty", &[0u8])?;

    let mut rng = SplitMix64::new(42);
    for seed in 0..6 {
        let len = 32 + rng.below(200) as usize;
        let bytes: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
        write("wal_ops", &format!("random_{seed}"), &bytes)?;
    }
    write("wal_ops", "append_then_crash", &[0, 8, 16, 2, 4, 6, 6, 0, 1, 3, 5, 6])?;
    Ok(())
}
