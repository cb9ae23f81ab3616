//! Entry points shared by the cargo-fuzz targets in `fuzz/` and by
//! `tests/fuzz_corpus.rs`, which runs every seed of every corpus under
//! `cargo test`. Each function panics on a broken invariant and on nothing else.

use std::collections::BTreeMap;

use crate::config::{Durability, RecoveryMode, SyncPolicy, WalConfig};
use crate::error::WalError;
use crate::format::{decode_slot, RecordHeader, Slot, RECORD_HEADER_BYTES};
use crate::sim::{SimStorage, SplitMix64};
use crate::wal::Wal;

/// Segment size used by the fuzzers: small, so inputs cover whole segments.
///
/// ```
/// use recwal_wal::testing::FUZZ_SEGMENT_BYTES;
/// use recwal_wal::WalConfig;
/// // The smallest segment a log accepts: inputs cover whole segments.
/// assert!(WalConfig::default().segment_bytes(FUZZ_SEGMENT_BYTES).validate().is_ok());
/// assert!(WalConfig::default().segment_bytes(FUZZ_SEGMENT_BYTES / 2).validate().is_err());
/// ```
pub const FUZZ_SEGMENT_BYTES: u64 = 4096;

fn fuzz_config(mode: RecoveryMode) -> WalConfig {
    WalConfig::default()
        .segment_bytes(FUZZ_SEGMENT_BYTES)
        .segments_initial(2)
        .segments_max(4)
        .record_bytes_max(1024)
        .sync_policy(SyncPolicy::Never)
        .recovery_mode(mode)
}

/// Record decoding over arbitrary bytes: never panics, and whatever decodes
/// as a record re-encodes to exactly the bytes it came from.
///
/// ```
/// use recwal_wal::format::{decode_slot, RecordHeader, Slot};
/// use recwal_wal::testing::fuzz_record_decode;
/// let header = RecordHeader::new(3, 1, 0, 7, b"payload");
/// let mut input = vec![3, 0]; // seq 3, offset 0
/// input.extend_from_slice(&header.encode());
/// input.extend_from_slice(b"payload");
/// assert_eq!(decode_slot(&input[2..], 0, 3, 1024), Slot::Record(header));
/// fuzz_record_decode(&input); // a real record: its invariants hold
/// fuzz_record_decode(&[0xFF; 64]); // garbage: no panic
/// ```
pub fn fuzz_record_decode(data: &[u8]) {
    let (seq, offset, bytes) = match data {
        [seq, offset, rest @ ..] => (u64::from(*seq), u64::from(*offset % 16) * 8, rest),
        _ => return,
    };
    match decode_slot(bytes, offset, seq, 1024) {
        Slot::Record(header) | Slot::Stale(header) => {
            let start = offset as usize;
            let end = start + RECORD_HEADER_BYTES as usize;
            assert_eq!(header.encode()[..], bytes[start..end], "a decoded header re-encodes to its bytes");
            let payload = &bytes[end..end + header.len as usize];
            assert_eq!(header.compute_crc(payload), header.crc);
            let rebuilt = RecordHeader::new(header.seq, header.lsn, header.lsn_durable_hint(), header.kind, payload);
            if header.durable_gap != u32::MAX && u64::from(header.durable_gap) <= header.lsn {
                assert_eq!(rebuilt, header, "decode and encode agree on every field");
            }
        }
        Slot::Zeroed => assert!(bytes[offset as usize..offset as usize + 32].iter().all(|b| *b == 0)),
        Slot::Invalid(_) | Slot::End => {}
    }
}

/// Recovery over arbitrary segment images: the first byte says how many
/// segments (1..=3) the rest is cut into. In every mode `open` must not
/// panic; when it succeeds, the reader returns exactly the records recovery
/// counted, in LSN order, and a second open finds nothing more to repair.
///
/// ```
/// use recwal_wal::sim::SimStorage;
/// use recwal_wal::testing::{fuzz_recovery, FUZZ_SEGMENT_BYTES};
/// use recwal_wal::{SyncPolicy, Wal, WalConfig};
/// let disk = SimStorage::new(1);
/// let config = WalConfig::default().segment_bytes(FUZZ_SEGMENT_BYTES).sync_policy(SyncPolicy::Always);
/// Wal::open_with_storage(Box::new(disk.clone()), config)?.append(1, b"seed")?;
/// let mut input = vec![0]; // one segment
/// input.extend(disk.image(0).ok_or("no segment")?);
/// assert_eq!(input.len() as u64, 1 + FUZZ_SEGMENT_BYTES);
/// fuzz_recovery(&input);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn fuzz_recovery(data: &[u8]) {
    let Some((count, rest)) = data.split_first() else { return };
    let count = 1 + usize::from(*count % 3);
    let chunk = rest.len().div_ceil(count).max(1);
    let images: Vec<Vec<u8>> = rest.chunks(chunk).map(|bytes| bytes.to_vec()).collect();
    for mode in [RecoveryMode::TolerateCorruptedTail, RecoveryMode::AbsoluteConsistency, RecoveryMode::PointInTime] {
        let storage = SimStorage::new(0);
        for (index, image) in images.iter().enumerate() {
            let mut image = image.clone();
            image.truncate(FUZZ_SEGMENT_BYTES as usize);
            storage.set_image(index as u32, image);
        }
        let Ok(wal) = Wal::open_with_storage(Box::new(storage.clone()), fuzz_config(mode)) else { continue };
        let report = wal.recovery_report().clone();
        let mut expected = wal.lsn_first();
        for record in wal.read_from(expected).expect("reading from the first retained lsn") {
            let record = record.expect("a recovered record reads back");
            assert_eq!(record.lsn(), expected);
            expected += 1;
        }
        assert_eq!(expected, report.lsn_last + 1, "the reader and recovery agree on the end");
        drop(wal);
        let again = Wal::open_with_storage(Box::new(storage), fuzz_config(mode)).expect("a repaired log reopens");
        assert_eq!(again.recovery_report().lsn_last, report.lsn_last, "repairs are stable");
        assert!(again.recovery_report().corruption.is_none());
    }
}

/// Random operation sequences against a simple model. Each input byte is
/// one operation: appends of assorted sizes and durabilities, syncs,
/// checkpoints and power losses. After every power loss the recovered log
/// must hold every acknowledged record and nothing that was never appended.
///
/// ```
/// use recwal_wal::testing::fuzz_ops;
/// // Appends (op % 8 in 0..=3: Always, Never, Always, append_sync_later), a sync (4),
/// // a checkpoint (5), power losses (6, 7).
/// fuzz_ops(&[0, 2, 4, 1, 5, 6, 0, 7, 3]);
/// fuzz_ops(&[]);
/// ```
pub fn fuzz_ops(data: &[u8]) {
    let storage = SimStorage::new(data.len() as u64);
    let config = fuzz_config(RecoveryMode::TolerateCorruptedTail).segments_max(3);
    let Ok(mut wal) = Wal::open_with_storage(Box::new(storage.clone()), config.clone()) else {
        panic!("a fresh log opens");
    };
    let mut model: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    let mut acked = 0u64;
    let mut released = 0u64;
    let mut rng = SplitMix64::new(0xF022);
    for &op in data.iter().take(512) {
        match op % 8 {
            0..=3 => {
                let len = usize::from(op / 8) * 16 + usize::from(op % 3);
                // 0, 2: Always; 1: Never; 3: append_sync_later (staged, unsynced).
                let durability = if op % 2 == 0 { Durability::Always } else { Durability::Never };
                let lsn = wal.lsn_appended() + 1;
                let mut payload = lsn.to_le_bytes().to_vec();
                payload.extend((0..len).map(|_| rng.next_u64() as u8));
                let appended = if op % 4 == 3 {
                    wal.append_sync_later(op, &payload)
                } else {
                    wal.append_with(op, &payload, durability)
                };
                match appended {
                    Ok(ticket) => {
                        assert_eq!(ticket.lsn(), lsn);
                        model.insert(lsn, payload);
                        if durability == Durability::Always && op % 4 != 3 {
                            acked = lsn;
                        }
                    }
                    Err(WalError::Full { .. }) => {}
                    Err(err) => panic!("append: {err}"),
                }
            }
            4 => acked = wal.sync().expect("sync"),
            5 => {
                if acked > released {
                    released += 1 + u64::from(op / 8) % (acked - released);
                    wal.checkpoint(released).expect("checkpoint");
                }
            }
            _ => {
                drop(wal);
                storage.crash();
                wal = Wal::open_with_storage(Box::new(storage.clone()), config.clone())
                    .expect("recovery after power loss");
                let last = wal.recovery_report().lsn_last;
                assert!(last >= acked, "acknowledged lsn {acked} lost, recovered up to {last}");
                for record in wal.read_from(wal.lsn_first()).expect("reader") {
                    let record = record.expect("record");
                    if record.lsn() > released {
                        assert_eq!(
                            model.get(&record.lsn()).map(Vec::as_slice),
                            Some(record.payload()),
                            "lsn {}",
                            record.lsn()
                        );
                    }
                }
                model.retain(|lsn, _| *lsn <= last);
                acked = acked.min(last);
                released = released.min(last);
            }
        }
    }
}

/// A real, small file system for out-of-space tests: a `tmpfs` of a given
/// size mounted on a fresh directory under the system's temporary directory,
/// unmounted (and the directory removed) on drop. Mounting needs root (or
/// `CAP_SYS_ADMIN`); `mount` says why it could not, so a test can fall back
/// to `SimStorage::set_space_limit` and say which ran.
///
/// ```no_run
/// use recwal_wal::testing::Tmpfs;
/// let volume = Tmpfs::mount(1 << 20)?; // 1 MiB
/// assert!(std::fs::write(volume.path().join("big"), vec![0u8; 2 << 20]).is_err()); // ENOSPC
/// # Ok::<(), String>(())
/// ```
pub struct Tmpfs {
    dir: std::path::PathBuf,
}

impl Tmpfs {
    /// Mounts a `tmpfs` of `bytes` (rounded up to pages by the kernel).
    pub fn mount(bytes: u64) -> Result<Tmpfs, String> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "recwal-tmpfs-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).map_err(|err| format!("creating {}: {err}", dir.display()))?;
        let output = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(&dir)
            .output()
            .map_err(|err| format!("running mount: {err}"))?;
        if !output.status.success() {
            let _ = std::fs::remove_dir(&dir);
            return Err(format!("mount -t tmpfs failed: {}", String::from_utf8_lossy(&output.stderr).trim()));
        }
        Ok(Tmpfs { dir })
    }

    /// The mount point.
    pub fn path(&self) -> &std::path::Path {
        &self.dir
    }

    /// Fills the volume with `name` until a write fails with ENOSPC; returns
    /// the bytes written. Deleting the file frees them again.
    pub fn fill(&self, name: &str) -> std::io::Result<u64> {
        use std::io::Write;
        let mut file = std::fs::File::create(self.dir.join(name))?;
        let chunk = vec![0xA5u8; 4096];
        let mut written = 0u64;
        loop {
            match file.write(&chunk) {
                Ok(0) => return Ok(written),
                Ok(n) => written += n as u64,
                Err(err) if crate::error::is_out_of_space(&err) => return Ok(written),
                Err(err) => return Err(err),
            }
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: a process that still holds a file there (a killed server's
        // zombie) does not keep the volume mounted.
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.dir).status();
        let _ = std::fs::remove_dir(&self.dir);
    }
}
