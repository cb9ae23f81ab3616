//! What a recwal data dir is, and the check every command makes before it
//! opens one, so that no command creates a data dir by mistake or nests one
//! inside a live log.
//!
//! A data dir holds its log in `wal/`: segment files `seg-<8 digits>.wal`
//! and (from the version that writes it) the identity file `wal/MANIFEST`;
//! either marks the directory as a data dir. Beside the log are
//! `snapshots/` (`snapshot-<lsn>.bin`) and `models/`.

use std::path::{Component, Path, PathBuf};

/// The log directory inside a data dir.
const LOG_DIR: &str = "wal";
/// The snapshots directory inside a data dir.
const SNAPSHOTS_DIR: &str = "snapshots";
/// The models directory inside a data dir.
const MODELS_DIR: &str = "models";
/// Entries an empty volume may hold that say nothing about the directory.
const IGNORED: [&str; 1] = ["lost+found"];

/// Why a path cannot be used as a data dir (or as a log directory).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataDirError {
    /// Neither a data dir nor (where allowed) a place to create one.
    #[error("{} is not a recwal data dir: {found}; looked for {looked_for}", path.display())]
    NotADataDir {
        /// The path as resolved.
        path: PathBuf,
        /// What is there instead, in words.
        found: String,
        /// What would have made it one.
        looked_for: String,
    },
    /// A directory of a data dir (its log, snapshots or models) was given
    /// instead of the data dir.
    #[error("{} is the {what} directory of the data dir {}; pass {}", path.display(), root.display(), root.display())]
    PartOf {
        /// The path as resolved.
        path: PathBuf,
        /// `log`, `snapshots` or `models`.
        what: &'static str,
        /// The data dir it belongs to.
        root: PathBuf,
    },
    /// The path lies deeper inside a data dir (or a log directory).
    #[error(
        "{} lies inside the data dir {}: a data dir is never nested in another; pass {} or a path outside it",
        path.display(),
        root.display(),
        root.display()
    )]
    Nested {
        /// The path as resolved.
        path: PathBuf,
        /// The data dir (or log directory) around it.
        root: PathBuf,
    },
    /// The path lies inside a directory of log segments.
    #[error(
        "{} lies inside the log directory {}: a data dir is never nested in a log; pass a path outside it",
        path.display(),
        log.display()
    )]
    InsideLog {
        /// The path as resolved.
        path: PathBuf,
        /// The log directory around it.
        log: PathBuf,
    },
    /// The path is a directory of log segments that is no data dir's `wal/`
    /// (a copy, say): a data dir holds its log one level down.
    #[error(
        "{} is a log directory (it holds {example}), not a data dir: a data dir holds its log as wal/; \
         pass the directory above it, or use `recwal wal inspect|verify` on it",
        path.display()
    )]
    LogDir {
        /// The path as resolved.
        path: PathBuf,
        /// A segment file or `MANIFEST` found in it.
        example: String,
    },
    /// Snapshots but no log: the log was lost, and a new one would hand out
    /// LSNs the snapshots already cover.
    #[error(
        "{} holds snapshots but no log ({}/wal/ has no MANIFEST and no seg-*.wal): the log is missing and the data dir \
         is damaged; refusing to start a new log beside the snapshots (restore wal/ from a backup, or move the data dir \
         aside)",
        path.display(),
        path.display()
    )]
    LogMissing {
        /// The path as resolved.
        path: PathBuf,
    },
    /// The file system answered with an error.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path that was read.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> DataDirError + '_ {
    move |source| DataDirError::Io { path: path.to_path_buf(), source }
}

/// What the commands that only use an existing data dir looked for.
fn looked_for(path: &Path) -> String {
    format!(
        "{}/wal/MANIFEST or {}/wal/seg-<8 digits>.wal (create a data dir with `recwal serve` or `recwal import`)",
        path.display(),
        path.display()
    )
}

/// An existing data dir, for the commands that must not create one
/// (`checkpoint`, `models` on a data dir): its resolved path.
pub fn existing(path: &Path) -> Result<PathBuf, DataDirError> {
    let path = resolve(path)?;
    refuse_inside(&path)?;
    let meta = match std::fs::metadata(&path) {
        Ok(meta) => meta,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Err(DataDirError::NotADataDir {
                looked_for: looked_for(&path),
                path,
                found: "it does not exist".to_string(),
            });
        }
        Err(err) => return Err(io_error(&path)(err)),
    };
    if classify_dir(&path, meta.is_dir(), || looked_for(&path))? {
        return Ok(path);
    }
    let found = describe(&path)?;
    Err(DataDirError::NotADataDir { looked_for: looked_for(&path), path, found })
}

/// What `existing` and `existing_or_new` both check of a path that exists:
/// `Ok(true)` for a data dir, `Ok(false)` for a directory that is neither a
/// data dir nor damage; an error for a file, a log directory, or a data dir
/// whose log is gone while its snapshots remain.
fn classify_dir(path: &Path, is_dir: bool, looked_for: impl Fn() -> String) -> Result<bool, DataDirError> {
    if !is_dir {
        return Err(DataDirError::NotADataDir {
            looked_for: looked_for(),
            path: path.to_path_buf(),
            found: "it is not a directory".to_string(),
        });
    }
    refuse_log_dir(path)?;
    if is_data_dir(path)? {
        return Ok(true);
    }
    if has_snapshots(path)? {
        return Err(DataDirError::LogMissing { path: path.to_path_buf() });
    }
    Ok(false)
}

/// A data dir, or a place where `serve` and `import` may create one: a path
/// that does not exist, an empty directory, or one whose creation was cut
/// short (only empty `wal/`, `snapshots/`, `models/`). Anything else is
/// refused, saying what was found.
pub fn existing_or_new(path: &Path) -> Result<PathBuf, DataDirError> {
    let path = resolve(path)?;
    refuse_inside(&path)?;
    let meta = match std::fs::metadata(&path) {
        Ok(meta) => meta,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(path),
        Err(err) => return Err(io_error(&path)(err)),
    };
    let looked_for = || {
        format!(
            "an empty directory, a path that does not exist, or a data dir ({}/wal/MANIFEST or {}/wal/seg-<8 digits>.wal)",
            path.display(),
            path.display()
        )
    };
    if classify_dir(&path, meta.is_dir(), looked_for)? {
        return Ok(path);
    }
    let foreign: Vec<String> = entries(&path)?
        .into_iter()
        .filter(|name| !([LOG_DIR, SNAPSHOTS_DIR, MODELS_DIR].contains(&name.as_str()) && path.join(name).is_dir()))
        .collect();
    if foreign.is_empty() {
        return Ok(path);
    }
    Err(DataDirError::NotADataDir { looked_for: looked_for(), found: describe(&path)?, path })
}

/// The log directory of `path`: the data dir's `wal/`, or `path` itself if
/// it holds log segments (a log copied out of its data dir, say). For
/// `wal inspect|verify`.
pub fn log_dir(path: &Path) -> Result<PathBuf, DataDirError> {
    let path = resolve(path)?;
    let looked_for = format!(
        "a data dir ({}/wal/MANIFEST or {}/wal/seg-<8 digits>.wal) or a log directory ({}/MANIFEST or {}/seg-<8 \
         digits>.wal)",
        path.display(),
        path.display(),
        path.display(),
        path.display()
    );
    match std::fs::metadata(&path) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => {
            return Err(DataDirError::NotADataDir { path, found: "it is not a directory".to_string(), looked_for });
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Err(DataDirError::NotADataDir { path, found: "it does not exist".to_string(), looked_for });
        }
        Err(err) => return Err(io_error(&path)(err)),
    }
    if log_marker(&path)?.is_some() {
        return Ok(path);
    }
    if is_data_dir(&path)? {
        return Ok(path.join(LOG_DIR));
    }
    if has_snapshots(&path)? {
        return Err(DataDirError::LogMissing { path });
    }
    let found = describe(&path)?;
    Err(DataDirError::NotADataDir { path, found, looked_for })
}

/// `path` made absolute, with symbolic links resolved in the part of it that
/// exists and `.`/`..` folded in the part that does not.
fn resolve(path: &Path) -> Result<PathBuf, DataDirError> {
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().map_err(io_error(path))?.join(path)
    };
    let mut missing = Vec::new();
    let mut existing = absolute.as_path();
    loop {
        match std::fs::canonicalize(existing) {
            Ok(mut resolved) => {
                for component in missing.iter().rev() {
                    match component {
                        Component::ParentDir => {
                            resolved.pop();
                        }
                        Component::Normal(name) => resolved.push(name),
                        _ => {}
                    }
                }
                return Ok(resolved);
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                let Some(parent) = existing.parent() else {
                    return Err(io_error(&absolute)(err));
                };
                if let Some(last) = existing.components().next_back() {
                    missing.push(last);
                }
                existing = parent;
            }
            Err(err) => return Err(io_error(existing)(err)),
        }
    }
}

/// Refuses a path inside a data dir or a log (for what is written beside
/// data dirs: backups, restores).
pub fn refuse_nested(path: &Path) -> Result<(), DataDirError> {
    refuse_inside(&resolve(path)?)
}

/// Refuses a path inside a data dir or inside a log directory, naming it.
fn refuse_inside(path: &Path) -> Result<(), DataDirError> {
    for ancestor in path.ancestors().skip(1) {
        if is_data_dir(ancestor)? {
            let what = match (path.parent() == Some(ancestor), path.file_name().and_then(|name| name.to_str())) {
                (true, Some(LOG_DIR)) => Some("log"),
                (true, Some(SNAPSHOTS_DIR)) => Some(SNAPSHOTS_DIR),
                (true, Some(MODELS_DIR)) => Some(MODELS_DIR),
                _ => None,
            };
            return Err(match what {
                Some(what) => DataDirError::PartOf { path: path.to_path_buf(), what, root: ancestor.to_path_buf() },
                None => DataDirError::Nested { path: path.to_path_buf(), root: ancestor.to_path_buf() },
            });
        }
        if log_marker(ancestor)?.is_some() {
            return Err(match ancestor.parent() {
                Some(root) if ancestor.file_name() == Some(LOG_DIR.as_ref()) && is_data_dir(root)? => {
                    DataDirError::Nested { path: path.to_path_buf(), root: root.to_path_buf() }
                }
                _ => DataDirError::InsideLog { path: path.to_path_buf(), log: ancestor.to_path_buf() },
            });
        }
    }
    Ok(())
}

/// Refuses a directory that holds log segments itself.
fn refuse_log_dir(path: &Path) -> Result<(), DataDirError> {
    match log_marker(path)? {
        Some(example) => Err(DataDirError::LogDir { path: path.to_path_buf(), example }),
        None => Ok(()),
    }
}

/// True if `dir/wal` holds a log.
fn is_data_dir(dir: &Path) -> Result<bool, DataDirError> {
    Ok(log_marker(&dir.join(LOG_DIR))?.is_some())
}

/// `MANIFEST` or the first segment file directly in `dir`, if any (none if
/// `dir` is no readable directory): the log's own test
/// (`recwal::wal::find_log_file`).
fn log_marker(dir: &Path) -> Result<Option<String>, DataDirError> {
    if !dir.is_dir() {
        return Ok(None);
    }
    match recwal::wal::find_log_file(dir) {
        Ok(found) => Ok(found.and_then(|file| file.file_name().map(|name| name.to_string_lossy().into_owned()))),
        // A directory we may not read holds no log of ours.
        Err(recwal::wal::WalError::Io { source, .. }) if source.kind() == std::io::ErrorKind::PermissionDenied => {
            Ok(None)
        }
        Err(recwal::wal::WalError::Io { source, .. }) => Err(io_error(dir)(source)),
        Err(err) => Err(io_error(dir)(std::io::Error::other(err.to_string()))),
    }
}

/// True if `dir/snapshots` holds a snapshot file.
fn has_snapshots(dir: &Path) -> Result<bool, DataDirError> {
    let snapshots = dir.join(SNAPSHOTS_DIR);
    if !snapshots.is_dir() {
        return Ok(false);
    }
    Ok(entries(&snapshots)?.iter().any(|name| name.starts_with("snapshot-") && name.ends_with(".bin")))
}

/// The names in `dir`, sorted, without those an empty volume holds.
fn entries(dir: &Path) -> Result<Vec<String>, DataDirError> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_error(dir))? {
        let name = entry.map_err(io_error(dir))?.file_name().to_string_lossy().into_owned();
        if !IGNORED.contains(&name.as_str()) {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// What a directory that is no data dir holds, in words.
fn describe(dir: &Path) -> Result<String, DataDirError> {
    const SHOWN: usize = 5;
    let names = entries(dir)?;
    if names.is_empty() {
        return Ok("it is an empty directory".to_string());
    }
    if names.iter().all(|name| [LOG_DIR, SNAPSHOTS_DIR, MODELS_DIR].contains(&name.as_str())) {
        return Ok("its wal/ holds no log".to_string());
    }
    let shown: Vec<&str> = names.iter().take(SHOWN).map(String::as_str).collect();
    let more = match names.len().saturating_sub(SHOWN) {
        0 => String::new(),
        n => format!(" and {n} more"),
    };
    Ok(format!("it holds {}{more}", shown.join(", ")))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A data dir as the engine leaves it: a log segment in wal/.
    fn data_dir(root: &Path) -> PathBuf {
        let data = root.join("data");
        std::fs::create_dir_all(data.join("wal")).unwrap();
        std::fs::create_dir_all(data.join("snapshots")).unwrap();
        std::fs::write(data.join("wal/seg-00000000.wal"), b"").unwrap();
        data
    }

    #[test]
    fn a_data_dir_is_known_by_its_segments_or_its_manifest() {
        let dir = tempfile::tempdir().unwrap();
        let data = data_dir(dir.path());
        assert_eq!(existing(&data).unwrap(), data);
        std::fs::remove_file(data.join("wal/seg-00000000.wal")).unwrap();
        std::fs::write(data.join("wal/MANIFEST"), b"").unwrap();
        assert_eq!(existing(&data).unwrap(), data);
        assert_eq!(log_dir(&data).unwrap(), data.join("wal"));
        assert_eq!(log_dir(&data.join("wal")).unwrap(), data.join("wal"));
        // Relative paths and `..` resolve to the same directory.
        let relative = data.join("snapshots/../.");
        assert_eq!(existing(&relative).unwrap(), data);
    }

    #[test]
    fn a_segment_name_has_eight_digits() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["seg-12.wal", "seg-00000012.wal.tmp", "seg-0000001x.wal", "LOCK", "seg-000000123.wal"] {
            std::fs::write(dir.path().join(name), b"").unwrap();
            assert_eq!(log_marker(dir.path()).unwrap(), None, "{name}");
        }
        std::fs::write(dir.path().join("seg-00000012.wal"), b"").unwrap();
        assert_eq!(log_marker(dir.path()).unwrap().as_deref(), Some("seg-00000012.wal"));
    }

    #[test]
    fn missing_empty_and_foreign_directories_are_no_data_dirs() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("typo");
        let message = existing(&missing).unwrap_err().to_string();
        assert!(message.contains("typo is not a recwal data dir: it does not exist; looked for"), "{message}");
        assert_eq!(existing_or_new(&missing).unwrap(), missing);
        assert!(!missing.exists());

        let empty = dir.path().join("empty");
        std::fs::create_dir_all(empty.join("lost+found")).unwrap();
        assert!(existing(&empty).unwrap_err().to_string().contains("it is an empty directory"));
        assert_eq!(existing_or_new(&empty).unwrap(), empty);
        // A creation cut short: empty wal/ and snapshots/.
        std::fs::create_dir_all(empty.join("wal")).unwrap();
        std::fs::write(empty.join("wal/seg-00000000.wal.tmp"), b"").unwrap();
        std::fs::create_dir_all(empty.join("snapshots")).unwrap();
        assert!(existing(&empty).unwrap_err().to_string().contains("its wal/ holds no log"));
        assert_eq!(existing_or_new(&empty).unwrap(), empty);

        let foreign = dir.path().join("foreign");
        std::fs::create_dir_all(&foreign).unwrap();
        for name in ["a", "b", "c", "d", "e", "f", "g"] {
            std::fs::write(foreign.join(name), b"").unwrap();
        }
        let message = existing_or_new(&foreign).unwrap_err().to_string();
        assert!(message.contains("it holds a, b, c, d, e and 2 more"), "{message}");
        let file = foreign.join("a");
        assert!(existing_or_new(&file).unwrap_err().to_string().contains("it is not a directory"));
        assert!(log_dir(&foreign).unwrap_err().to_string().contains("or a log directory"));
    }

    #[test]
    fn paths_inside_a_data_dir_or_a_log_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let data = data_dir(dir.path());
        for (inner, what) in [("wal", "log"), ("snapshots", "snapshots"), ("models", "models")] {
            let message = existing_or_new(&data.join(inner)).unwrap_err().to_string();
            let expected = format!(
                "{} is the {what} directory of the data dir {}; pass {}",
                data.join(inner).display(),
                data.display(),
                data.display()
            );
            assert_eq!(message, expected);
        }
        assert!(
            matches!(existing_or_new(&data.join("wal/x/y")), Err(DataDirError::Nested { root, .. }) if root == data)
        );
        let copy = dir.path().join("copy");
        std::fs::create_dir_all(&copy).unwrap();
        std::fs::write(copy.join("seg-00000003.wal"), b"").unwrap();
        assert!(matches!(existing(&copy), Err(DataDirError::LogDir { .. })));
        assert!(matches!(existing_or_new(&copy.join("new")), Err(DataDirError::InsideLog { log, .. }) if log == copy));
        assert_eq!(log_dir(&copy).unwrap(), copy);
    }

    #[test]
    fn snapshots_without_a_log_are_a_damaged_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        let data = data_dir(dir.path());
        std::fs::write(data.join("snapshots/snapshot-00000000000000000007.bin"), b"").unwrap();
        std::fs::remove_dir_all(data.join("wal")).unwrap();
        for refused in [existing(&data), existing_or_new(&data), log_dir(&data)] {
            assert!(matches!(refused, Err(DataDirError::LogMissing { .. })), "{refused:?}");
        }
    }
}
