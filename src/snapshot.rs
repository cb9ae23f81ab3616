//! Snapshot files: the whole state at one LSN, postcard-encoded behind a
//! CRC-checked header, written atomically (temp file, fsync, rename, fsync
//! of the directory). Layout (little-endian):
//!
//! ```text
//! 0   8  magic "RECWALSN"
//! 8   4  format version (7; 6 lacked the model routes, 5 also the item
//!        model's reference, 4 also
//!        the stream sequence, 3 also the catalogue and `Pair::last_s`, 2
//!        also the model catalog, 1 `Pair::slot`)
//! 12  4  reserved, zero
//! 16  8  LSN of the last record the state includes
//! 24  8  body length in bytes
//! 32  4  CRC-32 of the body
//! 36  4  CRC-32 of bytes 0..36
//! 40  …  body: postcard `SnapshotBody`, then postcard `Catalog` (the
//!        model catalog; absent in version 2, read as empty), then postcard
//!        `MetadataBody` (items' and users' metadata; absent in versions 2
//!        and 3, read as empty), then the stream sequence of the last
//!        replicated record (postcard u64; absent before version 5, read as
//!        0), then postcard `Option<ItemModelRef>` (the active item model;
//!        absent before version 6, read as none), then postcard `Routes`
//!        (the model canary and shadow; absent before version 7, read as
//!        none)
//! ```

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::EngineError;
// The engine syncs the snapshots directory through this path after it
// deletes old snapshots; the one definition is in `fsutil`.
pub(crate) use crate::fsutil::sync_dir;
use crate::fsutil::write_atomically;
use crate::state::catalog::Catalog;
use crate::state::{ItemModelRef, MetadataBody, SnapshotBody};

const MAGIC: &[u8; 8] = b"RECWALSN";
const VERSION: u32 = 7;
/// Older versions, still read: 6 lacks the model routes, 5 also the item
/// model's reference, 4 also the stream sequence, 3 also the catalogue
/// (items' and users' metadata), 2 also the model catalog.
const VERSION_WITHOUT_ROUTES: u32 = 6;
const VERSION_WITHOUT_ITEM_MODEL: u32 = 5;
const VERSION_WITHOUT_STREAM_SEQ: u32 = 4;
const VERSION_WITHOUT_METADATA: u32 = 3;
const VERSION_WITHOUT_MODELS: u32 = 2;
const HEADER_BYTES: usize = 40;
/// How a version mismatch starts, so `open` can tell it from damage.
pub(crate) const VERSION_MISMATCH: &str = "format version";
const PREFIX: &str = "snapshot-";
const SUFFIX: &str = ".bin";

/// The file name of the snapshot at `lsn`; zero-padded so names sort by LSN.
pub(crate) fn file_name(lsn: u64) -> String {
    format!("{PREFIX}{lsn:020}{SUFFIX}")
}

/// Snapshots in `dir`, newest first, as `(lsn, path)`. Temp files left by a
/// crash during a write are removed.
pub(crate) fn list(dir: &Path) -> Result<Vec<(u64, PathBuf)>, EngineError> {
    let mut found = Vec::new();
    let entries = fs::read_dir(dir).map_err(|err| EngineError::io(format!("reading {}", dir.display()), err))?;
    for entry in entries {
        let entry = entry.map_err(|err| EngineError::io(format!("reading {}", dir.display()), err))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.ends_with(".tmp") {
            let _ = fs::remove_file(entry.path());
            continue;
        }
        let lsn: Option<u64> =
            name.strip_prefix(PREFIX).and_then(|rest| rest.strip_suffix(SUFFIX)).and_then(|n| n.parse().ok());
        if let Some(lsn) = lsn {
            found.push((lsn, entry.path()));
        }
    }
    found.sort_by_key(|entry| std::cmp::Reverse(entry.0));
    Ok(found)
}

/// A snapshot file in `dir` (readable or set aside as `.bad`), if there is
/// one; `None` also where `dir` does not exist. Changes nothing.
pub(crate) fn any_file(dir: &Path) -> Result<Option<PathBuf>, EngineError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(EngineError::io(format!("reading {}", dir.display()), err)),
    };
    for entry in entries {
        let entry = entry.map_err(|err| EngineError::io(format!("reading {}", dir.display()), err))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(PREFIX) && !name.ends_with(".tmp") {
            return Ok(Some(entry.path()));
        }
    }
    Ok(None)
}

/// Encodes `state` as it stands into the file format.
pub(crate) fn encode_state(state: &crate::state::State) -> Result<Vec<u8>, EngineError> {
    encode(
        state.lsn_applied(),
        &state.snapshot_view(),
        state.models(),
        &state.metadata_body(),
        state.stream_seq(),
        state.item_model_ref(),
    )
}

/// Encodes a copy of the state (`State::snapshot_copy`) into the file
/// format: the same bytes as `encode_state` on the state it was copied from.
pub(crate) fn encode_copy(copy: &crate::state::SnapshotCopy) -> Result<Vec<u8>, EngineError> {
    encode(
        copy.lsn_applied(),
        &copy.view(),
        &copy.models,
        &copy.metadata,
        copy.stream_seq,
        copy.item_model_ref.as_ref(),
    )
}

/// Encodes the state at `lsn` (a `SnapshotBody` or its borrowed view) into
/// the file format.
pub(crate) fn encode(
    lsn: u64,
    body: &impl serde::Serialize,
    models: &Catalog,
    metadata: &MetadataBody,
    stream_seq: u64,
    item_model: Option<&ItemModelRef>,
) -> Result<Vec<u8>, EngineError> {
    let failed = |err: postcard::Error| EngineError::Snapshot {
        path: PathBuf::new(),
        reason: format!("cannot encode the state: {err}"),
    };
    let mut payload = postcard::to_stdvec(body).map_err(failed)?;
    payload.extend_from_slice(&postcard::to_stdvec(models).map_err(failed)?);
    payload.extend_from_slice(&postcard::to_stdvec(metadata).map_err(failed)?);
    payload.extend_from_slice(&postcard::to_stdvec(&stream_seq).map_err(failed)?);
    payload.extend_from_slice(&postcard::to_stdvec(&item_model).map_err(failed)?);
    payload.extend_from_slice(&postcard::to_stdvec(&models.routes).map_err(failed)?);
    let mut bytes = Vec::with_capacity(HEADER_BYTES + payload.len());
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&VERSION.to_le_bytes());
    bytes.extend_from_slice(&0u32.to_le_bytes());
    bytes.extend_from_slice(&lsn.to_le_bytes());
    bytes.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    let header_crc = crc32fast::hash(&bytes);
    bytes.extend_from_slice(&header_crc.to_le_bytes());
    bytes.extend_from_slice(&payload);
    Ok(bytes)
}

/// Decodes a snapshot file's bytes; every check names what failed.
pub(crate) fn decode(bytes: &[u8]) -> Result<SnapshotBody, String> {
    if bytes.len() < HEADER_BYTES {
        return Err(format!("{} bytes is shorter than the {HEADER_BYTES}-byte header", bytes.len()));
    }
    let u32_at = |at: usize| u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    let u64_at = |at: usize| {
        let mut word = [0u8; 8];
        word.copy_from_slice(&bytes[at..at + 8]);
        u64::from_le_bytes(word)
    };
    if &bytes[..8] != MAGIC {
        return Err("bad magic".into());
    }
    if crc32fast::hash(&bytes[..36]) != u32_at(36) {
        return Err("header CRC mismatch".into());
    }
    let version = u32_at(8);
    if !(VERSION_WITHOUT_MODELS..=VERSION).contains(&version) {
        return Err(format!("{VERSION_MISMATCH} {version}, this build reads {VERSION_WITHOUT_MODELS} to {VERSION}"));
    }
    let lsn = u64_at(16);
    let len = u64_at(24);
    let payload = &bytes[HEADER_BYTES..];
    if payload.len() as u64 != len {
        return Err(format!("body is {} bytes, header says {len}", payload.len()));
    }
    if crc32fast::hash(payload) != u32_at(32) {
        return Err("body CRC mismatch".into());
    }
    let (mut body, rest): (SnapshotBody, &[u8]) = if version >= VERSION_WITHOUT_STREAM_SEQ {
        postcard::take_from_bytes(payload).map_err(|err| format!("cannot decode the body: {err}"))?
    } else {
        let (old, rest): (SnapshotBodyV3, &[u8]) =
            postcard::take_from_bytes(payload).map_err(|err| format!("cannot decode the body: {err}"))?;
        (old.upgrade(), rest)
    };
    // The sections after the body, each present from the version that added it.
    let mut rest = rest;
    if version >= VERSION_WITHOUT_METADATA {
        (body.models, rest) = section(rest, "the model catalog")?;
    }
    if version >= VERSION_WITHOUT_STREAM_SEQ {
        (body.metadata, rest) = section(rest, "the catalogue")?;
    }
    if version >= VERSION_WITHOUT_ITEM_MODEL {
        (body.stream_seq, rest) = section(rest, "the stream sequence")?;
    }
    if version >= VERSION_WITHOUT_ROUTES {
        (body.item_model_ref, rest) = section(rest, "the item model's reference")?;
    }
    if version >= VERSION {
        (body.models.routes, rest) = section(rest, "the model routes")?;
    }
    if !rest.is_empty() {
        return Err(format!("{} bytes after the body", rest.len()));
    }
    if body.lsn_applied != lsn {
        return Err(format!("body LSN {} differs from header LSN {lsn}", body.lsn_applied));
    }
    Ok(body)
}

/// The postcard value at the start of `bytes`, and what follows it.
fn section<'a, T: serde::de::DeserializeOwned>(bytes: &'a [u8], what: &str) -> Result<(T, &'a [u8]), String> {
    postcard::take_from_bytes(bytes).map_err(|err| format!("cannot decode {what}: {err}"))
}

/// A pair as versions 2 and 3 stored it: no newest event time.
#[derive(serde::Deserialize, serde::Serialize)]
struct PairV3 {
    item: crate::ids::Dense,
    rating: f32,
    implicit: f32,
    events: u32,
    slot: u32,
    mass: f64,
}

/// `SnapshotBody` of versions 2 and 3 (the field order of `SnapshotBody`).
#[derive(serde::Deserialize, serde::Serialize)]
struct SnapshotBodyV3 {
    lsn_applied: u64,
    events_applied: u64,
    users: Vec<String>,
    items: Vec<String>,
    user_items: Vec<Vec<PairV3>>,
    user_norm_sq: Vec<f64>,
    half_life_ms: Option<f64>,
    latest_ms: i64,
    item_popularity: Vec<f64>,
    removed_items: Vec<crate::ids::Dense>,
    dedup: Vec<(String, crate::dedup::FirstSeen)>,
}

impl SnapshotBodyV3 {
    /// The body in today's form. The pairs' newest event times were not
    /// kept: each gets the newest event time the state had seen, so feedback
    /// expiry never removes a pair earlier than it would have.
    fn upgrade(self) -> SnapshotBody {
        let last_s = crate::state::event_seconds(self.latest_ms);
        let pair = |old: PairV3| crate::state::Pair {
            item: old.item,
            rating: old.rating,
            implicit: old.implicit,
            events: old.events,
            slot: old.slot,
            mass: old.mass,
            last_s,
        };
        SnapshotBody {
            lsn_applied: self.lsn_applied,
            events_applied: self.events_applied,
            users: self.users,
            items: self.items,
            user_items: self.user_items.into_iter().map(|pairs| pairs.into_iter().map(pair).collect()).collect(),
            user_norm_sq: self.user_norm_sq,
            half_life_ms: self.half_life_ms,
            latest_ms: self.latest_ms,
            item_popularity: self.item_popularity,
            removed_items: self.removed_items,
            dedup: self.dedup,
            models: Catalog::default(),
            metadata: MetadataBody::default(),
            stream_seq: 0,
            item_model_ref: None,
        }
    }
}

/// Writes `bytes` as the snapshot at `lsn`, atomically and durably.
pub(crate) fn write(dir: &Path, lsn: u64, bytes: &[u8]) -> Result<PathBuf, EngineError> {
    write_atomically(dir, &file_name(lsn), bytes)
}

/// Reads and checks the snapshot at `path`.
pub(crate) fn read(path: &Path) -> Result<SnapshotBody, EngineError> {
    let bytes =
        fs::read(path).map_err(|err| EngineError::Snapshot { path: path.to_path_buf(), reason: err.to_string() })?;
    decode(&bytes).map_err(|reason| EngineError::Snapshot { path: path.to_path_buf(), reason })
}

/// Reads and checks the snapshot file at `path` (header, both CRCs, the
/// body decodes, its LSN matches the header's) and returns the LSN it
/// covers. For the tools that copy snapshots (backup, restore, salvage).
pub fn check_snapshot(path: &Path) -> Result<u64, EngineError> {
    read(path).map(|body| body.lsn_applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body() -> SnapshotBody {
        SnapshotBody {
            lsn_applied: 7,
            events_applied: 3,
            users: vec!["u".into()],
            items: vec!["i".into()],
            user_items: vec![vec![crate::state::Pair {
                item: 0,
                rating: 4.0,
                implicit: 1.0,
                events: 2,
                slot: 0,
                mass: f64::NEG_INFINITY,
                last_s: 0,
            }]],
            user_norm_sq: vec![25.0],
            half_life_ms: None,
            latest_ms: 7,
            item_popularity: vec![2.0],
            removed_items: vec![],
            dedup: vec![],
            models: Catalog::default(),
            metadata: MetadataBody::default(),
            stream_seq: 0,
            item_model_ref: None,
        }
    }

    /// `body()` as versions 2 and 3 encoded it.
    fn old_body() -> Vec<u8> {
        let old = SnapshotBodyV3 {
            lsn_applied: 7,
            events_applied: 3,
            users: vec!["u".into()],
            items: vec!["i".into()],
            user_items: vec![vec![PairV3 {
                item: 0,
                rating: 4.0,
                implicit: 1.0,
                events: 2,
                slot: 0,
                mass: f64::NEG_INFINITY,
            }]],
            user_norm_sq: vec![25.0],
            half_life_ms: None,
            latest_ms: 7,
            item_popularity: vec![2.0],
            removed_items: vec![],
            dedup: vec![],
        };
        postcard::to_stdvec(&old).unwrap_or_default()
    }

    fn metadata() -> MetadataBody {
        MetadataBody {
            categories: vec!["drama".into()],
            label_keys: vec!["price".into()],
            items: vec![(
                0,
                crate::state::ItemMeta {
                    categories: vec![0].into(),
                    labels: vec![(0, crate::state::Label::Number(9.5))].into(),
                    hidden: true,
                    timestamp_ms: Some(5),
                    expires_ms: None,
                },
            )],
            users: vec![(0, vec![(0, crate::state::Label::Text("x".into()))].into())],
        }
    }

    /// A snapshot file of `version` with `payload` as its body: the header
    /// of `bytes` with the version, length and both CRCs rewritten.
    fn as_version(bytes: &[u8], version: u32, payload: &[u8]) -> Vec<u8> {
        let mut old = bytes[..HEADER_BYTES].to_vec();
        old[8..12].copy_from_slice(&version.to_le_bytes());
        old[24..32].copy_from_slice(&(payload.len() as u64).to_le_bytes());
        old[32..36].copy_from_slice(&crc32fast::hash(payload).to_le_bytes());
        let header_crc = crc32fast::hash(&old[..36]);
        old[36..40].copy_from_slice(&header_crc.to_le_bytes());
        old.extend_from_slice(payload);
        old
    }

    #[test]
    fn version_3_snapshots_read_with_an_empty_catalogue() -> Result<(), EngineError> {
        let mut models = Catalog::default();
        models.add(3, &crate::record::ModelAddedV1 { version: 1, sha256: [9; 32], bytes: 5, added_ms: 1 });
        let bytes = encode(7, &body(), &models, &metadata(), 0, None)?;
        // Version 3: the same header, the old body and the model catalog, no catalogue.
        let mut payload = old_body();
        payload.extend(postcard::to_stdvec(&models).map_err(|err| EngineError::invalid("models", err.to_string()))?);
        let old = as_version(&bytes, VERSION_WITHOUT_METADATA, &payload);
        let read = decode(&old).map_err(|err| EngineError::invalid("snapshot", err))?;
        assert_eq!((read.models, read.metadata), (models, MetadataBody::default()));
        let read = decode(&bytes).map_err(|err| EngineError::invalid("snapshot", err))?;
        assert_eq!(read.metadata, metadata());
        Ok(())
    }

    #[test]
    fn version_4_snapshots_read_with_stream_sequence_zero() -> Result<(), EngineError> {
        let bytes = encode(7, &body(), &Catalog::default(), &metadata(), 12, None)?;
        assert_eq!(decode(&bytes).map(|b| b.stream_seq), Ok(12));
        // Version 4: the same payload without the trailing stream sequence
        // (1 byte), item model reference (1) and routes (2).
        let payload = &bytes[HEADER_BYTES..bytes.len() - 4];
        let old = as_version(&bytes, VERSION_WITHOUT_STREAM_SEQ, payload);
        let read = decode(&old).map_err(|err| EngineError::invalid("snapshot", err))?;
        assert_eq!((read.stream_seq, read.metadata), (0, metadata()));
        Ok(())
    }

    #[test]
    fn the_item_model_reference_round_trips_and_version_5_reads_without_one() -> Result<(), EngineError> {
        let reference = ItemModelRef {
            version: 2,
            sha256: [4; 32],
            bytes: 99,
            n_items: 1,
            lambda_bits: 500f32.to_bits(),
            input: crate::config::ItemModelInput::Binary,
            lsn_trained: 6,
            at_ms: 1,
            lsn: 7,
        };
        let bytes = encode(7, &body(), &Catalog::default(), &metadata(), 3, Some(&reference))?;
        let read = decode(&bytes).map_err(|err| EngineError::invalid("snapshot", err))?;
        assert_eq!((read.item_model_ref, read.stream_seq, read.metadata), (Some(reference), 3, metadata()));
        // Version 5: everything but the last two sections (`None` is one
        // byte, empty routes two).
        let bytes = encode(7, &body(), &Catalog::default(), &metadata(), 3, None)?;
        let payload = &bytes[HEADER_BYTES..bytes.len() - 3];
        let old = as_version(&bytes, VERSION_WITHOUT_ITEM_MODEL, payload);
        let read = decode(&old).map_err(|err| EngineError::invalid("snapshot", err))?;
        assert_eq!((read.item_model_ref, read.stream_seq, read.metadata), (None, 3, metadata()));
        Ok(())
    }

    #[test]
    fn the_model_routes_round_trip_and_version_6_reads_without_any() -> Result<(), EngineError> {
        let mut models = Catalog::default();
        for version in 1..=3 {
            models.add(
                u64::from(version),
                &crate::record::ModelAddedV1 { version, sha256: [9; 32], bytes: 5, added_ms: 1 },
            );
        }
        models.routes = crate::state::catalog::Routes { canary: Some((2, 100)), shadow: Some(3) };
        let bytes = encode(7, &body(), &models, &metadata(), 3, None)?;
        let read = decode(&bytes).map_err(|err| EngineError::invalid("snapshot", err))?;
        assert_eq!(read.models, models);
        // Version 6: without the routes section (canary: tag, version,
        // share as varints, 3 bytes; shadow: 2).
        let payload = &bytes[HEADER_BYTES..bytes.len() - 5];
        let old = as_version(&bytes, VERSION_WITHOUT_ROUTES, payload);
        let read = decode(&old).map_err(|err| EngineError::invalid("snapshot", err))?;
        assert_eq!(read.models.routes, crate::state::catalog::Routes::default());
        assert_eq!(read.models.entries, models.entries);
        Ok(())
    }

    #[test]
    fn version_2_snapshots_read_with_an_empty_catalog() -> Result<(), EngineError> {
        let bytes = encode(7, &body(), &Catalog::default(), &MetadataBody::default(), 0, None)?;
        // Version 2: the same header and the old body, no catalog after it.
        let payload = old_body();
        let mut old = as_version(&bytes, VERSION_WITHOUT_MODELS, &payload);
        assert_eq!(decode(&old), Ok(body()));
        old[8] = (VERSION + 1) as u8;
        let header_crc = crc32fast::hash(&old[..36]);
        old[36..40].copy_from_slice(&header_crc.to_le_bytes());
        assert!(decode(&old).is_err_and(|err| err.starts_with(VERSION_MISMATCH)));
        Ok(())
    }

    #[test]
    fn every_flipped_bit_is_detected() -> Result<(), EngineError> {
        let mut models = Catalog::default();
        models.add(3, &crate::record::ModelAddedV1 { version: 1, sha256: [9; 32], bytes: 5, added_ms: 1 });
        let bytes = encode(7, &body(), &models, &metadata(), 9, None)?;
        assert_eq!(decode(&bytes).map(|b| b.models), Ok(models));
        assert_eq!(decode(&bytes).map(|b| b.stream_seq), Ok(9));
        assert_eq!(decode(&bytes).map(|b| b.metadata), Ok(metadata()));
        assert_eq!(decode(&bytes).map(|b| b.lsn_applied), Ok(7));
        for at in 0..bytes.len() {
            for bit in 0..8 {
                let mut bad = bytes.clone();
                bad[at] ^= 1 << bit;
                assert!(decode(&bad).is_err(), "flip at byte {at} bit {bit} went unnoticed");
            }
        }
        for len in 0..bytes.len() {
            assert!(decode(&bytes[..len]).is_err(), "truncation to {len} went unnoticed");
        }
        Ok(())
    }
}
