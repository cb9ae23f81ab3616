//! Model files in the data directory: `models/v000001.onnx`, … Written
//! atomically (temp file, fsync, rename, fsync of the directory) before the
//! log records them; read back only after their SHA-256 matches the one the
//! log recorded, so a restart never serves a different model in silence.

use std::fs;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tracing::warn;

use crate::error::EngineError;
use crate::fsutil::{sync_dir, write_atomically};

pub(crate) fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

pub(crate) fn hex(hash: &[u8; 32]) -> String {
    hash.iter().map(|byte| format!("{byte:02x}")).collect()
}

pub(crate) fn path(dir: &Path, version: u32) -> PathBuf {
    dir.join(format!("v{version:06}.onnx"))
}

/// Stores `bytes` as `version`, durably (a crash leaves the whole file or
/// a `.tmp` the next start sweeps).
///
/// A full disk is `DiskFull` (503 with `Retry-After` over HTTP), not an
/// I/O failure: nothing was written, and a retry with space succeeds.
pub(crate) fn write(dir: &Path, version: u32, bytes: &[u8]) -> Result<PathBuf, EngineError> {
    let name = format!("v{version:06}.onnx");
    write_atomically(dir, &name, bytes).map_err(|err| match err {
        EngineError::Io { context, source } if recwal_wal::is_out_of_space(&source) => {
            EngineError::DiskFull { path: dir.join(&name), detail: format!("{context}: {source}") }
        }
        other => other,
    })
}

/// The file of `version`, if its hash is `expected`; otherwise what is wrong.
pub(crate) fn read_verified(dir: &Path, version: u32, expected: &[u8; 32]) -> Result<Vec<u8>, String> {
    let path = path(dir, version);
    let bytes = fs::read(&path).map_err(|err| format!("model v{version}: cannot read {}: {err}", path.display()))?;
    let found = sha256(&bytes);
    if &found != expected {
        return Err(format!(
            "model v{version}: {} has SHA-256 {}, the log recorded {}: the file was altered",
            path.display(),
            hex(&found),
            hex(expected)
        ));
    }
    Ok(bytes)
}

/// Deletes `version`'s file (retired).
pub(crate) fn remove(dir: &Path, version: u32) -> Result<(), EngineError> {
    let path = path(dir, version);
    match fs::remove_file(&path) {
        Ok(()) => sync_dir(dir),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(EngineError::io(format!("removing {}", path.display()), err)),
    }
}

/// Removes files no live version owns: temp files, and files written by an
/// `add_model` that crashed before its record was durable, or retired
/// versions whose deletion a crash interrupted.
pub(crate) fn sweep(dir: &Path, live: &[u32]) -> Result<(), EngineError> {
    let entries = fs::read_dir(dir).map_err(|err| EngineError::io(format!("reading {}", dir.display()), err))?;
    let mut removed = false;
    for entry in entries {
        let entry = entry.map_err(|err| EngineError::io(format!("reading {}", dir.display()), err))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        // Only names this module writes: anything else is not ours.
        let version: Option<u32> = name
            .strip_prefix('v')
            .and_then(|rest| rest.strip_suffix(".onnx").or_else(|| rest.strip_suffix(".onnx.tmp")))
            .and_then(|n| n.parse().ok())
            .filter(|&version| name == format!("v{version:06}.onnx") || name == format!("v{version:06}.onnx.tmp"));
        let Some(version) = version else { continue };
        if name.ends_with(".tmp") || !live.contains(&version) {
            warn!(file = %entry.path().display(), "removing a model file the log does not own");
            match fs::remove_file(entry.path()) {
                Ok(()) => removed = true,
                Err(err) => warn!(file = %entry.path().display(), %err, "cannot remove it; it is ignored"),
            }
        }
    }
    if removed {
        sync_dir(dir)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_verified_and_orphans_swept() -> Result<(), EngineError> {
        let dir = tempfile::tempdir().map_err(|err| EngineError::io("tempdir", err))?;
        let hash = sha256(b"model");
        write(dir.path(), 1, b"model")?;
        write(dir.path(), 2, b"other")?;
        assert_eq!(read_verified(dir.path(), 1, &hash).ok(), Some(b"model".to_vec()));
        let altered = read_verified(dir.path(), 2, &hash).err().unwrap_or_default();
        assert!(altered.contains("the file was altered"), "{altered}");
        fs::write(dir.path().join("v000003.onnx.tmp"), b"x").map_err(|err| EngineError::io("tmp", err))?;
        fs::write(dir.path().join("v1.onnx"), b"not ours").map_err(|err| EngineError::io("other", err))?;
        sweep(dir.path(), &[1])?;
        let mut left: Vec<String> = fs::read_dir(dir.path())
            .map_err(|err| EngineError::io("list", err))?
            .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
            .collect();
        left.sort();
        assert_eq!(left, vec!["v000001.onnx".to_string(), "v1.onnx".to_string()]);
        let missing = read_verified(dir.path(), 2, &hash).err().unwrap_or_default();
        assert!(missing.contains("cannot read"), "{missing}");
        assert_eq!(hex(&hash).len(), 64);
        Ok(())
    }
}
