//! The log's identity file, `MANIFEST`: proof that a log was initialised in
//! this directory, how many segment files it created, and an LSN that the
//! log is known to have reached.
//!
//! Why it exists: a segment holds the only copy of its records, and a
//! damaged first segment used to look exactly like a directory where no log
//! was ever written (a missing file, a file cut to zero bytes, a zeroed
//! header): the log opened empty and handed out LSN 1 again. With the
//! manifest, "never written" and "damaged" are different facts on disk.
//! It is small (64 bytes), written whole (temporary file, `fsync`, rename,
//! directory `fsync`), and only when the set of files changes or at a
//! moment when the log is known durable (creation, open, growth, close),
//! never on the append path.
//!
//! The same idea as RocksDB's `CURRENT`/`MANIFEST` and etcd's WAL metadata
//! record, reduced to what recovery here needs to check.

use crate::error::WalError;

/// Size of the manifest file.
pub(crate) const MANIFEST_BYTES: usize = 64;
const MAGIC: &[u8; 8] = b"RECWALMF";
const VERSION: u32 = 1;

/// The decoded manifest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Manifest {
    /// The configured size of every segment file.
    pub(crate) segment_bytes: u64,
    /// Segment files `0..segments_created` were created and are never deleted.
    pub(crate) segments_created: u32,
    /// Every LSN up to this one was durable in this log at some moment
    /// (when it was opened, or closed). LSNs only grow, so a recovered log
    /// must reach at least this LSN; one that does not has lost records.
    pub(crate) lsn_floor: u64,
}

// Layout (little endian):
//   0  8  magic "RECWALMF"
//   8  4  version (1)
//  12  4  segments_created
//  16  8  segment_bytes
//  24  8  lsn_floor
//  32 28  reserved, zero
//  60  4  CRC-32 of bytes 0..60
const _: () = assert!(MANIFEST_BYTES == 64);

impl Manifest {
    pub(crate) fn encode(&self) -> [u8; MANIFEST_BYTES] {
        let mut buf = [0u8; MANIFEST_BYTES];
        buf[0..8].copy_from_slice(MAGIC);
        buf[8..12].copy_from_slice(&VERSION.to_le_bytes());
        buf[12..16].copy_from_slice(&self.segments_created.to_le_bytes());
        buf[16..24].copy_from_slice(&self.segment_bytes.to_le_bytes());
        buf[24..32].copy_from_slice(&self.lsn_floor.to_le_bytes());
        let crc = crc32fast::hash(&buf[0..60]);
        buf[60..64].copy_from_slice(&crc.to_le_bytes());
        buf
    }

    /// Decodes a manifest; anything but a whole, valid one is an error that
    /// says what is wrong (the caller names the file).
    pub(crate) fn decode(bytes: &[u8]) -> Result<Manifest, String> {
        if bytes.len() != MANIFEST_BYTES {
            return Err(format!("it is {} bytes long, not {MANIFEST_BYTES}", bytes.len()));
        }
        if &bytes[0..8] != MAGIC {
            return Err("it does not start with the manifest magic \"RECWALMF\"".to_string());
        }
        let crc_stored = u32::from_le_bytes([bytes[60], bytes[61], bytes[62], bytes[63]]);
        if crc32fast::hash(&bytes[0..60]) != crc_stored {
            return Err("its checksum does not match its contents".to_string());
        }
        let u32_at = |at: usize| u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
        let u64_at = |at: usize| {
            let mut word = [0u8; 8];
            word.copy_from_slice(&bytes[at..at + 8]);
            u64::from_le_bytes(word)
        };
        let version = u32_at(8);
        if version != VERSION {
            return Err(format!("format version {version} is not supported (this build reads {VERSION})"));
        }
        Ok(Manifest { segments_created: u32_at(12), segment_bytes: u64_at(16), lsn_floor: u64_at(24) })
    }
}

/// The error for a manifest that exists but cannot be read.
pub(crate) fn damaged(path: std::path::PathBuf, reason: String) -> WalError {
    WalError::Damaged {
        path,
        reason: format!("the log's identity file is damaged: {reason}"),
        options: "restore the log directory from a backup; a manifest cannot be rebuilt from damaged segments \
                  without risking the reuse of LSNs"
            .to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manifest_reads_back_what_was_written() {
        let manifest = Manifest { segment_bytes: 1 << 20, segments_created: 7, lsn_floor: 123_456 };
        assert_eq!(Manifest::decode(&manifest.encode()), Ok(manifest));
    }

    #[test]
    fn every_flipped_bit_and_every_truncation_is_refused() {
        let bytes = Manifest { segment_bytes: 4096, segments_created: 2, lsn_floor: 9 }.encode();
        for bit in 0..MANIFEST_BYTES * 8 {
            let mut damaged = bytes;
            damaged[bit / 8] ^= 1 << (bit % 8);
            assert!(Manifest::decode(&damaged).is_err(), "bit {bit} flipped was accepted");
        }
        for len in 0..MANIFEST_BYTES {
            assert!(Manifest::decode(&bytes[..len]).is_err(), "{len} bytes accepted");
        }
    }
}
