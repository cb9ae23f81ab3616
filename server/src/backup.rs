//! `recwal backup`, `recwal restore` and the data-dir writer they share
//! with `recwal wal salvage`.
//!
//! A backup is a directory:
//!
//! ```text
//! BACKUP.json          what the backup holds, with the SHA-256 and length of every file (written last)
//! snapshot-<lsn>.bin   the engine's snapshot at lsn_snapshot (absent where lsn_snapshot is 0)
//! records.bin          the log records lsn_snapshot+1 ..= lsn_last, CRC-checked, in LSN order
//! models/v*.onnx       the model files
//! ```
//!
//! It is taken from a consistent cut (`Engine::backup_cut`): ingest goes on
//! while it is written, and a restore gives the state at `lsn_last`. It is
//! written into a temporary sibling directory, every file is synced and
//! read back against the SHA-256 computed while writing, then the directory
//! is renamed into place and its parent synced: a backup directory exists
//! whole and verified, or not at all.

use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use recwal::{BackupCut, BackupRecord, Engine, EngineConfig, EngineError};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The manifest of a backup.
pub(crate) const MANIFEST: &str = "BACKUP.json";
/// The records file of a backup.
const RECORDS: &str = "records.bin";
/// What `BACKUP.json` says it is.
const FORMAT: &str = "recwal-backup";
const FORMAT_VERSION: u32 = 1;
/// First bytes of `records.bin`.
const RECORDS_MAGIC: &[u8; 8] = b"RECWALBR";
/// Bytes of a record's frame before its payload: lsn, kind, len, crc.
const FRAME_HEAD_BYTES: usize = 8 + 1 + 4 + 4;
/// Largest payload a records file may hold (the log's own limit is lower).
const PAYLOAD_BYTES_MAX: u32 = 256 << 20;

/// Why a backup, a restore or a salvage failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackupError {
    /// The file system answered with an error.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path concerned.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The engine (or its log) failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The log failed.
    #[error(transparent)]
    Wal(#[from] recwal::wal::WalError),
    /// The destination is not where a backup or a data dir may be written.
    #[error("{}: {reason}", path.display())]
    Destination {
        /// The path given.
        path: PathBuf,
        /// Why not.
        reason: String,
    },
    /// The backup is damaged or not a backup: nothing was restored from it.
    #[error("{}: {reason}", path.display())]
    Damaged {
        /// The file found damaged.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> BackupError + '_ {
    move |source| BackupError::Io { path: path.to_path_buf(), source }
}

/// One file of a backup, as `BACKUP.json` lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FileEntry {
    /// Path relative to the backup directory.
    pub path: String,
    /// Length in bytes.
    pub bytes: u64,
    /// SHA-256, lowercase hex.
    pub sha256: String,
}

/// `BACKUP.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Manifest {
    /// Always `recwal-backup`.
    pub format: String,
    /// Version of this layout (1).
    pub version: u32,
    /// LSN of the snapshot (0: none).
    pub lsn_snapshot: u64,
    /// Last LSN the backup holds: a restore gives the state at this LSN.
    pub lsn_last: u64,
    /// Records in `records.bin`.
    pub records: u64,
    /// When the cut was taken, milliseconds since the Unix epoch.
    pub created_ms: u64,
    /// Every file but `BACKUP.json`.
    pub files: Vec<FileEntry>,
}

/// The body of `POST /admin/backup`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BackupRequest {
    /// The backup directory to create, absolute, on the server's machine.
    #[schema(value_type = String)]
    pub out: PathBuf,
}

/// What a backup wrote.
#[derive(Debug)]
pub struct Written {
    /// The backup directory.
    pub dir: PathBuf,
    /// Its manifest.
    pub manifest: Manifest,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// A file being written while its SHA-256 is computed.
struct HashedFile {
    path: PathBuf,
    out: BufWriter<File>,
    hash: Sha256,
    bytes: u64,
}

impl HashedFile {
    fn create(path: &Path) -> Result<HashedFile, BackupError> {
        let file = OpenOptions::new().write(true).create_new(true).open(path).map_err(io_error(path))?;
        Ok(HashedFile { path: path.to_path_buf(), out: BufWriter::new(file), hash: Sha256::new(), bytes: 0 })
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), BackupError> {
        self.hash.update(bytes);
        self.bytes += bytes.len() as u64;
        self.out.write_all(bytes).map_err(io_error(&self.path))
    }

    /// Syncs the file, reads it back and checks it against what was written.
    fn finish(self, root: &Path) -> Result<FileEntry, BackupError> {
        let HashedFile { path, out, hash, bytes } = self;
        let file = out.into_inner().map_err(|err| BackupError::Io { path: path.clone(), source: err.into_error() })?;
        file.sync_all().map_err(io_error(&path))?;
        drop(file);
        let sha256 = hex(&hash.finalize());
        let (read_bytes, read_sha256) = sha256_of(&path)?;
        if read_bytes != bytes || read_sha256 != sha256 {
            return Err(BackupError::Damaged {
                path,
                reason: format!(
                    "read back {read_bytes} bytes with SHA-256 {read_sha256}, wrote {bytes} bytes with SHA-256 {sha256}"
                ),
            });
        }
        let relative = path.strip_prefix(root).unwrap_or(&path).to_string_lossy().into_owned();
        Ok(FileEntry { path: relative, bytes, sha256 })
    }
}

/// Length and SHA-256 of a file.
fn sha256_of(path: &Path) -> Result<(u64, String), BackupError> {
    let mut file = BufReader::new(File::open(path).map_err(io_error(path))?);
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(io_error(path))?;
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
        total += n as u64;
    }
    Ok((total, hex(&hash.finalize())))
}

/// Copies `from` into a new file `to`, verified.
fn copy_verified(from: &Path, to: &Path, root: &Path) -> Result<FileEntry, BackupError> {
    let mut source = BufReader::new(File::open(from).map_err(io_error(from))?);
    let mut target = HashedFile::create(to)?;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = source.read(&mut buf).map_err(io_error(from))?;
        if n == 0 {
            break;
        }
        target.write(&buf[..n])?;
    }
    target.finish(root)
}

fn sync_dir(dir: &Path) -> Result<(), BackupError> {
    crate::durable::sync_dir(dir).map_err(io_error(dir))
}

/// One record frame: lsn, kind, len, CRC-32 of those 13 bytes and the payload.
fn frame_head(lsn: u64, kind: u8, payload: &[u8]) -> [u8; FRAME_HEAD_BYTES] {
    let mut head = [0u8; FRAME_HEAD_BYTES];
    head[0..8].copy_from_slice(&lsn.to_le_bytes());
    head[8] = kind;
    head[9..13].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    let mut crc = crc32fast::Hasher::new();
    crc.update(&head[0..13]);
    crc.update(payload);
    head[13..17].copy_from_slice(&crc.finalize().to_le_bytes());
    head
}

/// Longest file name most file systems take (ext4, xfs, tmpfs).
const NAME_BYTES_MAX: usize = 255;

/// A destination that must not exist yet (or be an empty directory), whose
/// parent directory exists, and that is not inside a data dir or a log
/// (a backup written there would be taken for part of it): returns it
/// absolute. Every refusal is the caller's to fix, so a `Destination`.
fn fresh_destination(path: &Path, what: &str) -> Result<PathBuf, BackupError> {
    let refuse = |reason: String| BackupError::Destination { path: path.to_path_buf(), reason };
    if path.as_os_str().as_encoded_bytes().contains(&0) {
        return Err(refuse("must not contain a NUL byte".to_string()));
    }
    if let Some(long) = path.components().find(|part| part.as_os_str().len() > NAME_BYTES_MAX) {
        return Err(refuse(format!(
            "the name {:?} is over {NAME_BYTES_MAX} bytes",
            long.as_os_str().to_string_lossy()
        )));
    }
    let absolute = std::path::absolute(path).map_err(|err| refuse(err.to_string()))?;
    match absolute.parent() {
        Some(parent) if !parent.is_dir() => {
            return Err(refuse(format!("its parent {} is not an existing directory", parent.display())));
        }
        None => return Err(refuse("is the root directory".to_string())),
        Some(_) => {}
    }
    crate::datadir::refuse_nested(&absolute).map_err(|err| refuse(err.to_string()))?;
    match fs::read_dir(&absolute) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(BackupError::Destination {
                    path: absolute,
                    reason: format!("is not empty; {what} is only written into a new or empty directory"),
                });
            }
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) if err.kind() == std::io::ErrorKind::NotADirectory => {
            return Err(BackupError::Destination { path: absolute, reason: "is a file".to_string() });
        }
        Err(err) => return Err(io_error(&absolute)(err)),
    }
    Ok(absolute)
}

/// Writes a backup of `engine` into `out` (which must not exist, or be an
/// empty directory): a consistent cut taken while ingest goes on.
pub fn backup(engine: &Engine, out: &Path) -> Result<Written, BackupError> {
    let out = fresh_destination(out, "a backup")?;
    let parent = out.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("/"));
    let name = out.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
    let staging = parent.join(format!(".{name}.partial-{}", std::process::id()));
    if staging.exists() {
        fs::remove_dir_all(&staging).map_err(io_error(&staging))?;
    }
    fs::create_dir(&staging).map_err(|err| match err.kind() {
        // Where the caller asked to write, this server may not.
        std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem => {
            BackupError::Destination { path: out.clone(), reason: format!("cannot be created: {err}") }
        }
        _ => io_error(&staging)(err),
    })?;
    let written = engine.backup_cut(|cut| write_cut(cut, &staging)).map_err(BackupError::from).and_then(|r| r);
    let manifest = match written {
        Ok(manifest) => manifest,
        Err(err) => {
            let _ = fs::remove_dir_all(&staging);
            return Err(err);
        }
    };
    // An empty directory given as the destination is replaced.
    if out.exists() {
        fs::remove_dir(&out).map_err(io_error(&out))?;
    }
    fs::rename(&staging, &out).map_err(io_error(&out))?;
    sync_dir(&parent)?;
    tracing::info!(dir = %out.display(), lsn_snapshot = manifest.lsn_snapshot, lsn_last = manifest.lsn_last, records = manifest.records, "backup written");
    Ok(Written { dir: out, manifest })
}

fn write_cut(mut cut: BackupCut<'_>, dir: &Path) -> Result<Manifest, BackupError> {
    let created_ms =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |since| since.as_millis() as u64);
    let mut files = Vec::new();
    if let Some(snapshot) = &cut.snapshot {
        let name = snapshot.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
        let entry = copy_verified(snapshot, &dir.join(&name), dir)?;
        let lsn = recwal::check_snapshot(&dir.join(&name))?;
        if lsn != cut.lsn_snapshot {
            return Err(BackupError::Damaged {
                path: dir.join(&name),
                reason: format!("covers LSN {lsn}, the cut's snapshot LSN {}", cut.lsn_snapshot),
            });
        }
        files.push(entry);
    }
    let mut records = HashedFile::create(&dir.join(RECORDS))?;
    records.write(RECORDS_MAGIC)?;
    records.write(&FORMAT_VERSION.to_le_bytes())?;
    let mut n_records = 0u64;
    let mut lsn_expected = cut.lsn_snapshot + 1;
    while let Some(record) = cut.next_record() {
        let (lsn, kind, payload) = record?;
        if lsn != lsn_expected {
            return Err(BackupError::Damaged {
                path: dir.join(RECORDS),
                reason: format!("the log gave LSN {lsn} where LSN {lsn_expected} was due"),
            });
        }
        records.write(&frame_head(lsn, kind, &payload))?;
        records.write(&payload)?;
        n_records += 1;
        lsn_expected += 1;
    }
    files.push(records.finish(dir)?);
    // Models last: a model's file is in place before its record is logged.
    let models = dir.join("models");
    fs::create_dir(&models).map_err(io_error(&models))?;
    if cut.models_dir.is_dir() {
        let mut names: Vec<String> = fs::read_dir(&cut.models_dir)
            .map_err(io_error(&cut.models_dir))?
            .filter_map(Result::ok)
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .filter(|name| is_model_file(name))
            .collect();
        names.sort();
        for name in names {
            match copy_verified(&cut.models_dir.join(&name), &models.join(&name), dir) {
                Ok(entry) => files.push(entry),
                // Removed since it was listed: a retired version.
                Err(BackupError::Io { source, path })
                    if source.kind() == std::io::ErrorKind::NotFound && path.starts_with(&cut.models_dir) => {}
                Err(err) => return Err(err),
            }
        }
    }
    sync_dir(&models)?;
    let manifest = Manifest {
        format: FORMAT.to_string(),
        version: FORMAT_VERSION,
        lsn_snapshot: cut.lsn_snapshot,
        lsn_last: cut.lsn_last,
        records: n_records,
        created_ms,
        files,
    };
    if cut.lsn_snapshot + n_records != cut.lsn_last {
        return Err(BackupError::Damaged {
            path: dir.join(RECORDS),
            reason: format!(
                "holds {n_records} records after LSN {}, the cut ends at LSN {}",
                cut.lsn_snapshot, cut.lsn_last
            ),
        });
    }
    let text = serde_json::to_vec_pretty(&manifest).map_err(|err| io_error(dir)(err.into()))?;
    let mut file = HashedFile::create(&dir.join(MANIFEST))?;
    file.write(&text)?;
    file.finish(dir)?;
    sync_dir(dir)?;
    Ok(manifest)
}

/// Reads and checks a backup: the manifest, every file's length and
/// SHA-256, the snapshot, and every record's CRC and the LSN chain.
pub fn verify(dir: &Path) -> Result<(Manifest, Vec<BackupRecord>), BackupError> {
    let manifest_path = dir.join(MANIFEST);
    let text = fs::read(&manifest_path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            BackupError::Damaged {
                path: manifest_path.clone(),
                reason: "missing: not a recwal backup (or an unfinished one)".to_string(),
            }
        } else {
            BackupError::Io { path: manifest_path.clone(), source }
        }
    })?;
    let manifest: Manifest = serde_json::from_slice(&text)
        .map_err(|err| BackupError::Damaged { path: manifest_path.clone(), reason: err.to_string() })?;
    if manifest.format != FORMAT || manifest.version != FORMAT_VERSION {
        return Err(BackupError::Damaged {
            path: manifest_path,
            reason: format!(
                "format {:?} version {}, this build reads {FORMAT:?} version {FORMAT_VERSION}",
                manifest.format, manifest.version
            ),
        });
    }
    for entry in &manifest.files {
        let relative = Path::new(&entry.path);
        if relative.is_absolute() || relative.components().any(|part| !matches!(part, std::path::Component::Normal(_)))
        {
            return Err(BackupError::Damaged {
                path: manifest_path,
                reason: format!("lists a path outside the backup: {:?}", entry.path),
            });
        }
        let path = dir.join(relative);
        let (bytes, sha256) = sha256_of(&path)?;
        if bytes != entry.bytes || sha256 != entry.sha256 {
            return Err(BackupError::Damaged {
                path,
                reason: format!(
                    "{bytes} bytes with SHA-256 {sha256}; the manifest says {} bytes with SHA-256 {}",
                    entry.bytes, entry.sha256
                ),
            });
        }
    }
    if manifest.lsn_snapshot > 0 {
        let path = dir.join(snapshot_name(manifest.lsn_snapshot));
        let lsn = recwal::check_snapshot(&path)?;
        if lsn != manifest.lsn_snapshot {
            return Err(BackupError::Damaged {
                path,
                reason: format!("covers LSN {lsn}, the manifest says {}", manifest.lsn_snapshot),
            });
        }
    }
    let records = read_records(&dir.join(RECORDS), manifest.lsn_snapshot + 1)?;
    let lsn_last = manifest.lsn_snapshot + records.len() as u64;
    if records.len() as u64 != manifest.records || lsn_last != manifest.lsn_last {
        return Err(BackupError::Damaged {
            path: dir.join(RECORDS),
            reason: format!(
                "holds records up to LSN {lsn_last}; the manifest says {} records up to LSN {}",
                manifest.records, manifest.lsn_last
            ),
        });
    }
    Ok((manifest, records))
}

fn snapshot_name(lsn: u64) -> String {
    format!("snapshot-{lsn:020}.bin")
}

/// Every record of a records file, checked: magic, version, each frame's
/// CRC, LSNs dense from `lsn_first`.
fn read_records(path: &Path, lsn_first: u64) -> Result<Vec<BackupRecord>, BackupError> {
    let bytes = fs::read(path).map_err(io_error(path))?;
    let damaged = |reason: String| BackupError::Damaged { path: path.to_path_buf(), reason };
    if bytes.len() < 12 || &bytes[..8] != RECORDS_MAGIC {
        return Err(damaged("not a records file (bad magic)".to_string()));
    }
    let mut version = [0u8; 4];
    version.copy_from_slice(&bytes[8..12]);
    if u32::from_le_bytes(version) != FORMAT_VERSION {
        return Err(damaged(format!("version {}, this build reads {FORMAT_VERSION}", u32::from_le_bytes(version))));
    }
    let mut at = 12usize;
    let mut lsn_expected = lsn_first;
    let mut records = Vec::new();
    while at < bytes.len() {
        let Some(head) = bytes.get(at..at + FRAME_HEAD_BYTES) else {
            return Err(damaged(format!("a frame header is cut short at offset {at}")));
        };
        let mut word = [0u8; 8];
        word.copy_from_slice(&head[0..8]);
        let lsn = u64::from_le_bytes(word);
        let kind = head[8];
        let mut len = [0u8; 4];
        len.copy_from_slice(&head[9..13]);
        let len = u32::from_le_bytes(len);
        if len > PAYLOAD_BYTES_MAX {
            return Err(damaged(format!("the record at offset {at} claims {len} bytes")));
        }
        let start = at + FRAME_HEAD_BYTES;
        let Some(payload) = bytes.get(start..start + len as usize) else {
            return Err(damaged(format!("the record at offset {at} is cut short")));
        };
        if frame_head(lsn, kind, payload) != head {
            return Err(damaged(format!("CRC mismatch in the record at offset {at}")));
        }
        if lsn != lsn_expected {
            return Err(damaged(format!("LSN {lsn} at offset {at} where LSN {lsn_expected} was due")));
        }
        records.push((lsn, kind, payload.to_vec()));
        lsn_expected += 1;
        at = start + len as usize;
    }
    Ok(records)
}

/// Restores the backup `from` into `data_dir` (new or an empty directory)
/// and opens it once to check that it does. Returns the manifest and the
/// restored engine's state digest.
pub fn restore(from: &Path, data_dir: &Path, engine_config: &EngineConfig) -> Result<(Manifest, u64), BackupError> {
    let existed = data_dir.exists();
    let data_dir = fresh_destination(data_dir, "a restore")?;
    let (manifest, records) = verify(from)?;
    let snapshot =
        (manifest.lsn_snapshot > 0).then(|| (from.join(snapshot_name(manifest.lsn_snapshot)), manifest.lsn_snapshot));
    let models = from.join("models");
    let wal_config = engine_config.wal.clone();
    let snapshot = snapshot.as_ref().map(|(path, lsn)| (path.as_path(), *lsn));
    let written = write_data_dir(&data_dir, snapshot, manifest.lsn_snapshot, &records, Some(&models), &wal_config);
    if let Err(err) = written {
        remove_created(&data_dir, existed);
        return Err(err);
    }
    let digest = match check_opens(&data_dir, manifest.lsn_last, engine_config) {
        Ok(digest) => digest,
        Err(err) => {
            remove_created(&data_dir, existed);
            return Err(err);
        }
    };
    tracing::info!(data_dir = %data_dir.display(), lsn_last = manifest.lsn_last, "backup restored");
    Ok((manifest, digest))
}

/// Removes what a failed restore or salvage created in `dir`.
/// `existed`: whether `dir` was there before (then it is left, empty).
pub(crate) fn remove_created(dir: &Path, existed: bool) {
    for name in ["wal", "snapshots", "models"] {
        let _ = fs::remove_dir_all(dir.join(name));
    }
    if !existed {
        let _ = fs::remove_dir(dir);
    }
}

/// Opens the data dir written by a restore or a salvage, checks it holds
/// the state at `lsn_last`, closes it; its state digest.
/// `config` is the server's (its snapshot settings must match what the
/// snapshot was written with).
pub(crate) fn check_opens(data_dir: &Path, lsn_last: u64, config: &EngineConfig) -> Result<u64, BackupError> {
    let mut config = config.clone();
    // A check only: no checkpoint may write a snapshot replayed under
    // settings (the dedup window) other than the server's.
    config.checkpoint.disable_automatic();
    let engine = Engine::open(data_dir, config)?;
    let lsn = engine.lsn_applied();
    let digest = engine.state_digest();
    engine.close()?;
    if lsn != lsn_last {
        return Err(BackupError::Damaged {
            path: data_dir.to_path_buf(),
            reason: format!("opened at LSN {lsn}, expected LSN {lsn_last}"),
        });
    }
    Ok(digest)
}

/// A file of `models/` that backups carry: a ranking model (`v….onnx`) or
/// an item-model artefact (`im….bin`, record 11).
fn is_model_file(name: &str) -> bool {
    name.ends_with(".onnx") || (name.starts_with("im") && name.ends_with(".bin"))
}

/// Writes a data dir: the snapshot at `lsn_base` (if any; its file copied
/// and checked), a new log holding `records` (which must follow `lsn_base`
/// densely) and the model files. The log is synced before it is closed.
pub(crate) fn write_data_dir(
    data_dir: &Path,
    snapshot: Option<(&Path, u64)>,
    lsn_base: u64,
    records: &[BackupRecord],
    models: Option<&Path>,
    wal_config: &recwal::wal::WalConfig,
) -> Result<u64, BackupError> {
    fs::create_dir_all(data_dir).map_err(io_error(data_dir))?;
    let models_dir = data_dir.join("models");
    fs::create_dir_all(&models_dir).map_err(io_error(&models_dir))?;
    if let Some(models) = models.filter(|models| models.is_dir()) {
        for entry in fs::read_dir(models).map_err(io_error(models))? {
            let entry = entry.map_err(io_error(models))?;
            let name = entry.file_name();
            if !is_model_file(&name.to_string_lossy()) {
                continue;
            }
            copy_verified(&entry.path(), &models_dir.join(&name), data_dir)?;
        }
        sync_dir(&models_dir)?;
    }
    let snapshots_dir = data_dir.join("snapshots");
    fs::create_dir_all(&snapshots_dir).map_err(io_error(&snapshots_dir))?;
    if let Some((path, lsn)) = snapshot {
        let target = snapshots_dir.join(snapshot_name(lsn));
        copy_verified(path, &target, data_dir)?;
        if recwal::check_snapshot(&target)? != lsn {
            return Err(BackupError::Damaged { path: path.to_path_buf(), reason: format!("does not cover LSN {lsn}") });
        }
        sync_dir(&snapshots_dir)?;
    }
    // Room for every record without a checkpoint: the ring may grow to it.
    let frames: u64 =
        records.iter().map(|(_, _, payload)| recwal::wal::format::frame_bytes(payload.len() as u64)).sum();
    let room = wal_config.segment_bytes.saturating_sub(recwal::wal::format::SEGMENT_HEADER_BYTES).max(1);
    let needed = u32::try_from(frames / room + 2).unwrap_or(u32::MAX);
    let config = wal_config.clone().segments_max(wal_config.segments_max.max(needed));
    let log_dir = data_dir.join("wal");
    recwal::wal::create_log_at(&log_dir, &config, lsn_base + 1)?;
    let wal = recwal::wal::Wal::open(&log_dir, config.sync_policy(recwal::wal::SyncPolicy::Never))?;
    let mut lsn_last = lsn_base;
    for (lsn, kind, payload) in records {
        let (lsn, kind) = (*lsn, *kind);
        let ticket = wal.append(kind, payload)?;
        let given = ticket.wait()?;
        if given != lsn {
            return Err(BackupError::Damaged {
                path: log_dir,
                reason: format!("the record LSN {lsn} was written as LSN {given}: the records are not dense"),
            });
        }
        lsn_last = lsn;
    }
    wal.sync()?;
    wal.close()?;
    Ok(lsn_last)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;

    use recwal::{Event, EventKind};

    use super::*;

    fn config() -> EngineConfig {
        let mut config = EngineConfig::default();
        config.checkpoint.disable_automatic();
        config
    }

    /// The n-th event of the test's history: one per log record, so the
    /// record at LSN n + 1 holds it.
    fn event(n: u64) -> Event {
        let kind = if n.is_multiple_of(3) { EventKind::Rating((n % 5 + 1) as f32) } else { EventKind::Click };
        Event::new(format!("u{}", n % 17), format!("i{}", n % 29), kind).at(1_700_000_000_000 + n as i64)
    }

    /// The digest of a fresh engine that ingested events 0..n, one per record.
    fn digest_after(dir: &Path, n: u64) -> u64 {
        let engine = Engine::open(dir, config()).unwrap();
        for at in 0..n {
            engine.ingest(event(at)).unwrap();
        }
        assert_eq!(engine.lsn_applied(), n, "one record per event");
        let digest = engine.state_digest();
        engine.close().unwrap();
        digest
    }

    #[test]
    fn a_backup_taken_while_a_writer_ingests_restores_to_the_state_at_its_last_lsn() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Arc::new(Engine::open(&dir.path().join("source"), config()).unwrap());
        for at in 0..300 {
            engine.ingest(event(at)).unwrap();
        }
        engine.checkpoint().unwrap();
        for at in 300..400 {
            engine.ingest(event(at)).unwrap();
        }
        let stop = Arc::new(AtomicBool::new(false));
        let next = Arc::new(AtomicU64::new(400));
        let writer = {
            let (engine, stop, next) = (Arc::clone(&engine), Arc::clone(&stop), Arc::clone(&next));
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let at = next.load(Ordering::SeqCst);
                    engine.ingest(event(at)).unwrap();
                    next.store(at + 1, Ordering::SeqCst);
                }
            })
        };
        // Let the writer run before and during the backup.
        while next.load(Ordering::SeqCst) < 450 {
            std::thread::yield_now();
        }
        let lsn_start = engine.lsn_applied();
        let out = dir.path().join("backup");
        let written = backup(&engine, &out).unwrap();
        let after_backup = next.load(Ordering::SeqCst);
        stop.store(true, Ordering::SeqCst);
        writer.join().unwrap();
        assert!(written.manifest.lsn_last >= lsn_start, "{:?} vs {lsn_start}", written.manifest);
        assert!(written.manifest.lsn_snapshot >= 400);
        assert!(written.manifest.lsn_last <= after_backup + 1);
        assert!(engine.lsn_applied() > written.manifest.lsn_last, "the writer went on after the cut");

        let (manifest, digest) = restore(&out, &dir.path().join("restored"), &EngineConfig::default()).unwrap();
        assert_eq!(manifest, written.manifest);
        assert_eq!(digest, digest_after(&dir.path().join("reference"), manifest.lsn_last));
        assert_ne!(digest, engine.state_digest(), "the source moved on after the cut");
    }

    #[test]
    fn a_backup_of_a_never_checkpointed_engine_holds_every_record() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(&dir.path().join("source"), config()).unwrap();
        let empty = backup(&engine, &dir.path().join("empty")).unwrap();
        assert_eq!((empty.manifest.lsn_snapshot, empty.manifest.lsn_last, empty.manifest.records), (0, 0, 0));
        for at in 0..50 {
            engine.ingest(event(at)).unwrap();
        }
        let written = backup(&engine, &dir.path().join("b")).unwrap();
        assert_eq!(written.manifest.lsn_last, 50);
        let (_, digest) = restore(&written.dir, &dir.path().join("restored"), &EngineConfig::default()).unwrap();
        assert_eq!(digest, engine.state_digest());
        let (_, digest) = restore(&empty.dir, &dir.path().join("restored-empty"), &EngineConfig::default()).unwrap();
        assert_eq!(digest, digest_after(&dir.path().join("reference"), 0));
    }

    #[test]
    fn restore_refuses_a_damaged_backup_and_a_non_empty_destination() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(&dir.path().join("source"), config()).unwrap();
        for at in 0..20 {
            engine.ingest(event(at)).unwrap();
        }
        engine.checkpoint().unwrap();
        engine.ingest(event(20)).unwrap();
        let written = backup(&engine, &dir.path().join("b")).unwrap();
        // Refused where the destination holds anything, and nothing written.
        let busy = dir.path().join("busy");
        fs::create_dir(&busy).unwrap();
        fs::write(busy.join("keep"), b"x").unwrap();
        let err = restore(&written.dir, &busy, &EngineConfig::default()).unwrap_err().to_string();
        assert!(err.contains("is not empty"), "{err}");
        assert_eq!(fs::read_dir(&busy).unwrap().count(), 1);
        // A backup destination that exists and is not empty: refused too.
        let err = backup(&engine, &busy).unwrap_err().to_string();
        assert!(err.contains("is not empty"), "{err}");
        // One flipped byte in any file is found, naming the file.
        assert_eq!(written.manifest.lsn_snapshot, 21, "the backup checkpoints first");
        for name in [RECORDS.to_string(), snapshot_name(21)] {
            let copy = dir.path().join(format!("copy-{name}"));
            fs::create_dir(&copy).unwrap();
            for entry in fs::read_dir(&written.dir).unwrap() {
                let entry = entry.unwrap();
                if entry.path().is_file() {
                    fs::copy(entry.path(), copy.join(entry.file_name())).unwrap();
                }
            }
            let mut bytes = fs::read(copy.join(&name)).unwrap();
            let last = bytes.len() - 1;
            bytes[last] ^= 0x40;
            fs::write(copy.join(&name), bytes).unwrap();
            let target = dir.path().join(format!("target-{name}"));
            let err = restore(&copy, &target, &EngineConfig::default()).unwrap_err().to_string();
            assert!(err.contains(&name) && err.contains("SHA-256"), "{err}");
            assert!(!target.join("wal").exists(), "nothing restored from a damaged backup");
        }
        let err = restore(dir.path(), &dir.path().join("t"), &EngineConfig::default()).unwrap_err().to_string();
        assert!(err.contains("BACKUP.json") && err.contains("not a recwal backup"), "{err}");
    }
}
