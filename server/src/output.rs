//! Where a command writes its `--out PATH`: a regular file (or a new one) is
//! replaced whole (`durable::replace_with`: written beside it as
//! `PATH.partial`, synced, renamed over it), so nobody ever reads half of it
//! and a failed run leaves the old file; anything else is written straight through: a device such as
//! `/dev/null`, a FIFO, a terminal. A symbolic link is followed to what it
//! names, and stays a link. (Renaming over every path replaced `/dev/null`
//! itself with a regular file when run as root, and a FIFO's reader got
//! nothing.)

use std::fs::OpenOptions;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// Writes `path` through `write`, as the module says; `write`'s errors and
/// the file's are strings naming the path.
pub(crate) fn write_output<T>(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> Result<T, String>,
) -> Result<T, String> {
    let target = resolved(path);
    match std::fs::metadata(&target) {
        Ok(metadata) if !metadata.is_file() => {
            let file =
                OpenOptions::new().write(true).open(&target).map_err(|err| format!("{}: {err}", target.display()))?;
            let mut writer = BufWriter::new(file);
            let done = write(&mut writer)?;
            writer.flush().map_err(|err| format!("{}: {err}", target.display()))?;
            Ok(done)
        }
        _ => crate::durable::replace_with(&target, write, |path, err| format!("{}: {err}", path.display())),
    }
}

/// `path`, or what the symbolic link at `path` names (a dangling link: the
/// path it names, which the write creates).
fn resolved(path: &Path) -> PathBuf {
    if let Ok(target) = std::fs::canonicalize(path) {
        return target;
    }
    match std::fs::read_link(path) {
        Ok(named) if named.is_absolute() => named,
        Ok(named) => path.parent().map_or(named.clone(), |dir| dir.join(named)),
        Err(_) => path.to_path_buf(),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::FileTypeExt;

    use super::*;

    fn write_text(path: &Path, text: &str) -> Result<(), String> {
        write_output(path, |out| out.write_all(text.as_bytes()).map_err(|err| err.to_string()))
    }

    #[test]
    fn regular_files_are_replaced_whole_links_followed_and_special_files_written_through() {
        let dir = tempfile::tempdir().expect("tempdir");
        // A new file, then the same file replaced.
        let file = dir.path().join("out.jsonl");
        write_text(&file, "one\n").expect("new");
        write_text(&file, "two\n").expect("replace");
        assert_eq!(std::fs::read_to_string(&file).expect("read"), "two\n");
        assert!(!dir.path().join("out.jsonl.partial").exists());

        // A link to it: the file changes, the link stays a link.
        let link = dir.path().join("link.jsonl");
        std::os::unix::fs::symlink(&file, &link).expect("symlink");
        write_text(&link, "three\n").expect("through the link");
        assert!(std::fs::symlink_metadata(&link).expect("link").file_type().is_symlink());
        assert_eq!(std::fs::read_to_string(&file).expect("read"), "three\n");

        // A dangling link: the file it names is created.
        let dangling = dir.path().join("dangling");
        std::os::unix::fs::symlink(dir.path().join("made.jsonl"), &dangling).expect("symlink");
        write_text(&dangling, "four\n").expect("dangling");
        assert!(std::fs::symlink_metadata(&dangling).expect("link").file_type().is_symlink());
        assert_eq!(std::fs::read_to_string(dir.path().join("made.jsonl")).expect("read"), "four\n");

        // A character device (a copy of /dev/null, where mknod is allowed:
        // as root) stays a device. Never the real /dev/null: were this
        // wrong, the test would replace it.
        let null = dir.path().join("null");
        let made = std::process::Command::new("mknod").arg(&null).args(["c", "1", "3"]).status();
        if made.is_ok_and(|status| status.success()) {
            write_text(&null, "gone\n").expect("a device");
            let metadata = std::fs::symlink_metadata(&null).expect("device");
            assert!(metadata.file_type().is_char_device(), "the device is still a device");
        }

        // A FIFO: its reader gets the bytes, and it stays a FIFO.
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
        assert!(made.success());
        // The reader end is opened first, without blocking, so a writer
        // that renamed over the FIFO instead makes this fail, not hang.
        let reader = rustix::fs::open(&fifo, rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::NONBLOCK, 0.into())
            .expect("open the fifo's reader end");
        let mut reader = std::fs::File::from(reader);
        write_text(&fifo, "five\n").expect("fifo");
        assert!(std::fs::symlink_metadata(&fifo).expect("fifo").file_type().is_fifo(), "still a FIFO");
        let mut got = String::new();
        std::io::Read::read_to_string(&mut reader, &mut got).expect("read the fifo");
        assert_eq!(got, "five\n");

        // A failed write leaves the old file and no temporary one.
        let failed: Result<(), String> = write_output(&file, |out| {
            out.write_all(b"half").map_err(|err| err.to_string())?;
            Err("refused".to_string())
        });
        assert!(failed.is_err());
        assert_eq!(std::fs::read_to_string(&file).expect("read"), "three\n");
        assert!(!dir.path().join("out.jsonl.partial").exists());
    }
}
