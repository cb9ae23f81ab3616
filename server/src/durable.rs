//! Files and directories made durable on disk: the write-then-fsync steps
//! that the backup, the cluster's seed install and its stream file share.
//! Each caller names the path in its own error type.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

/// Syncs directory `dir`, so that the entries created, renamed or removed
/// in it survive a power loss.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Creates (or truncates) `path`, writes `bytes` and syncs the file. The
/// caller syncs the directory once its entries are all in place.
pub(crate) fn write_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = File::create(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Replaces `path` with `bytes` all at once: written and synced as
/// `path.tmp`, renamed over `path`, the directory synced. A crash leaves
/// the old content or the new one, never a mix.
pub(crate) fn replace_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let temporary = path.with_extension("tmp");
    write_synced(&temporary, bytes)?;
    std::fs::rename(&temporary, path)?;
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => sync_dir(dir),
        _ => sync_dir(Path::new(".")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replace_synced_leaves_the_new_content_and_no_temporary_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("STREAM");
        replace_synced(&path, b"1\n").expect("first");
        replace_synced(&path, b"2\n").expect("second");
        assert_eq!(std::fs::read(&path).expect("read"), b"2\n");
        let names: Vec<_> =
            std::fs::read_dir(dir.path()).expect("list").map(|entry| entry.expect("entry").file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("STREAM")]);
        assert!(sync_dir(&dir.path().join("missing")).is_err());
    }
}
