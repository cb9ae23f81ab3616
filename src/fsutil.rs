//! File-system utilities shared by everything the engine writes besides the
//! log (snapshots, model files): the atomic write and the directory sync that
//! make a rename or an unlink durable. One definition, so the crash analysis
//! in docs/DURABILITY.md holds for every such file alike.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::EngineError;

/// Writes `dir/name` so that a crash leaves either no file or the whole
/// file: `name.tmp` written and fsynced, renamed, the directory fsynced.
pub(crate) fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> Result<PathBuf, EngineError> {
    let path = dir.join(name);
    let tmp = dir.join(format!("{name}.tmp"));
    let fail = |what: &str, err: std::io::Error| EngineError::io(format!("{what} {}", tmp.display()), err);
    let written = File::create(&tmp).map_err(|err| fail("creating", err)).and_then(|mut file| {
        file.write_all(bytes).map_err(|err| fail("writing", err))?;
        file.sync_all().map_err(|err| fail("syncing", err))?;
        drop(file);
        fs::rename(&tmp, &path).map_err(|err| fail("renaming", err))
    });
    if let Err(err) = written {
        // A failed write (typically ENOSPC) must not keep the space it took.
        if let Err(remove) = fs::remove_file(&tmp) {
            if remove.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(path = %tmp.display(), %remove, "cannot remove the temp file of a failed write");
            }
        }
        return Err(err);
    }
    sync_dir(dir)?;
    Ok(path)
}

/// Makes a rename or unlink in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), EngineError> {
    File::open(dir)
        .and_then(|handle| handle.sync_all())
        .map_err(|err| EngineError::io(format!("syncing directory {}", dir.display()), err))
}
