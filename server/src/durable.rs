//! Files and directories made durable on disk: the write-then-fsync steps
//! that the backup, the cluster's seed install and its stream file share.
//! Each caller names the path in its own error type.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

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

/// Replaces `path` with `bytes` all at once, as `replace_with`.
pub(crate) fn replace_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    replace_with(path, |out| out.write_all(bytes), |_, err| err)
}

/// Replaces `path` all at once with what `write` writes: written (buffered)
/// and synced as `PATH.partial`, renamed over `path`, the directory synced.
/// A crash leaves the old content or the new one, never a mix; a failed
/// `write` leaves the old one and removes the partial file. `io` puts an
/// I/O failure, on the path it names, into the caller's error type.
pub(crate) fn replace_with<T, E>(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> Result<T, E>,
    io: impl Fn(&Path, io::Error) -> E,
) -> Result<T, E> {
    let mut partial = path.to_path_buf().into_os_string();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let file = File::create(&partial).map_err(|err| io(&partial, err))?;
    let mut writer = BufWriter::new(file);
    let finished = write(&mut writer).and_then(|done| {
        let file = writer.into_inner().map_err(|err| io(&partial, err.into_error()))?;
        file.sync_all().map_err(|err| io(&partial, err))?;
        std::fs::rename(&partial, path).map_err(|err| io(path, err))?;
        let dir = path.parent().filter(|dir| !dir.as_os_str().is_empty()).unwrap_or(Path::new("."));
        sync_dir(dir).map_err(|err| io(dir, err))?;
        Ok(done)
    });
    if finished.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    finished
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
