//! The only seam between the log and the operating system.
//!
//! `Storage` names, creates and opens segment files; `SegmentFile` reads,
//! writes and syncs one of them. `FileStorage` is the real implementation
//! (a directory of mmap'd files); `SimStorage` in `sim.rs` is the simulated
//! disk the power-loss tests use. All `unsafe` code of the crate lives here,
//! around the memory map.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use memmap2::MmapRaw;

use crate::error::WalError;
use crate::format::{parse_segment_file_name, segment_file_name};

/// How an append's bytes should reach the file. A hint: simulated storage
/// ignores it.
///
/// ```
/// use recwal_wal::{FileStorage, Storage, WritePath};
/// let dir = tempfile::tempdir()?;
/// let file = FileStorage::open(dir.path())?.create_segment(0, 4096)?;
/// file.write_at(100, b"mapped", WritePath::Map)?;
/// file.write_at(200, b"pwrite", WritePath::Syscall)?;
/// assert_eq!((file.view(100, 6), file.view(200, 6)), (Some(&b"mapped"[..]), Some(&b"pwrite"[..])));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WritePath {
    /// A `pwrite` system call. Used for appends that are synced at once:
    /// measured faster than writing through the map and syncing it.
    Syscall,
    /// A copy into the shared memory map. Used for appends whose sync is
    /// deferred: no system call, and the bytes are in the page cache, so
    /// they survive a crash of the process.
    Map,
}

/// A directory of segment files.
///
/// ```
/// use recwal_wal::{FileStorage, Storage};
/// let dir = tempfile::tempdir()?;
/// let storage: Box<dyn Storage> = Box::new(FileStorage::open(dir.path())?);
/// storage.create_segment(3, 4096)?;
/// assert_eq!(storage.list_segments()?, vec![3]);
/// assert_eq!(storage.open_segment(3)?.len(), 4096);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait Storage: Send + Sync {
    /// Indices of the segment files present, in any order.
    ///
    /// ```
    /// use recwal_wal::{FileStorage, Storage};
    /// let dir = tempfile::tempdir()?;
    /// let storage = FileStorage::open(dir.path())?;
    /// storage.create_segment(2, 4096)?;
    /// storage.create_segment(0, 4096)?;
    /// std::fs::write(dir.path().join("notes.txt"), "not a segment")?;
    /// let mut indices = storage.list_segments()?;
    /// indices.sort_unstable();
    /// assert_eq!(indices, vec![0, 2]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn list_segments(&self) -> io::Result<Vec<u32>>;
    /// Creates segment `index` with `bytes` zero bytes, durably: when this
    /// returns, the file, its size and its directory entry survive power loss.
    ///
    /// ```
    /// use recwal_wal::{FileStorage, Storage};
    /// let dir = tempfile::tempdir()?;
    /// let file = FileStorage::open(dir.path())?.create_segment(0, 8192)?;
    /// assert_eq!(file.len(), 8192);
    /// let mut buf = [1u8; 16];
    /// file.read_at(8000, &mut buf)?;
    /// assert_eq!(buf, [0u8; 16]); // zero-filled
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn create_segment(&self, index: u32, bytes: u64) -> io::Result<Box<dyn SegmentFile>>;
    /// Opens an existing segment file.
    ///
    /// ```
    /// use recwal_wal::{FileStorage, Storage, WritePath};
    /// let dir = tempfile::tempdir()?;
    /// let storage = FileStorage::open(dir.path())?;
    /// storage.create_segment(0, 4096)?.write_at(0, b"kept", WritePath::Syscall)?;
    /// assert_eq!(storage.open_segment(0)?.view(0, 4), Some(&b"kept"[..]));
    /// assert!(storage.open_segment(1).is_err()); // no such file
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn open_segment(&self, index: u32) -> io::Result<Box<dyn SegmentFile>>;
    /// A path for error messages.
    ///
    /// ```
    /// use recwal_wal::{FileStorage, Storage};
    /// let dir = tempfile::tempdir()?;
    /// let storage = FileStorage::open(dir.path())?;
    /// assert_eq!(storage.describe(Some(7)), dir.path().join("seg-00000007.wal"));
    /// assert_eq!(storage.describe(None), dir.path());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn describe(&self, index: Option<u32>) -> PathBuf;
    /// The contents of the log's identity file (`MANIFEST`, FORMAT.md), or
    /// `None` if there is none (a new directory, or a log written before it existed).
    ///
    /// ```
    /// use recwal_wal::{FileStorage, Storage};
    /// let dir = tempfile::tempdir()?;
    /// let storage = FileStorage::open(dir.path())?;
    /// assert_eq!(storage.read_manifest()?, None);
    /// storage.write_manifest(b"identity")?;
    /// assert_eq!(storage.read_manifest()?.as_deref(), Some(&b"identity"[..]));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn read_manifest(&self) -> io::Result<Option<Vec<u8>>>;
    /// Replaces the identity file, durably and atomically: after power loss
    /// it holds either the old or the new contents, whole.
    ///
    /// ```
    /// use recwal_wal::{FileStorage, Storage};
    /// let dir = tempfile::tempdir()?;
    /// let storage = FileStorage::open(dir.path())?;
    /// storage.write_manifest(b"one")?;
    /// storage.write_manifest(b"two")?;
    /// assert_eq!(storage.read_manifest()?.as_deref(), Some(&b"two"[..]));
    /// assert_eq!(storage.describe_manifest(), dir.path().join("MANIFEST"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn write_manifest(&self, bytes: &[u8]) -> io::Result<()>;
    /// The identity file's path, for error messages.
    ///
    /// ```
    /// use recwal_wal::{FileStorage, Storage};
    /// let dir = tempfile::tempdir()?;
    /// assert_eq!(FileStorage::open(dir.path())?.describe_manifest(), dir.path().join("MANIFEST"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn describe_manifest(&self) -> PathBuf;
    /// Bytes still free for new segments, where the backend can tell
    /// (`None`: it cannot). Lets a caller notice that space came back after
    /// a refused segment creation without trying one.
    ///
    /// ```
    /// use recwal_wal::{FileStorage, Storage};
    /// let dir = tempfile::tempdir()?;
    /// assert!(FileStorage::open(dir.path())?.available_bytes()?.is_some_and(|free| free > 0));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn available_bytes(&self) -> io::Result<Option<u64>> {
        Ok(None)
    }
}

/// One segment file.
///
/// ```
/// use recwal_wal::{FileStorage, SegmentFile, Storage, WritePath};
/// let dir = tempfile::tempdir()?;
/// let file: Box<dyn SegmentFile> = FileStorage::open(dir.path())?.create_segment(0, 4096)?;
/// file.write_at(64, b"record", WritePath::Syscall)?;
/// file.sync_data()?;
/// let mut buf = [0u8; 6];
/// file.read_at(64, &mut buf)?;
/// assert_eq!(&buf, b"record");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait SegmentFile: Send + Sync {
    /// Current length in bytes.
    ///
    /// ```
    /// use recwal_wal::{FileStorage, Storage};
    /// let dir = tempfile::tempdir()?;
    /// assert_eq!(FileStorage::open(dir.path())?.create_segment(0, 8192)?.len(), 8192);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn len(&self) -> u64;
    /// True for a zero-length file (which cannot be mapped).
    ///
    /// ```
    /// use recwal_wal::{FileStorage, Storage};
    /// let dir = tempfile::tempdir()?;
    /// let storage = FileStorage::open(dir.path())?;
    /// assert!(storage.create_segment(0, 0)?.is_empty());
    /// assert!(!storage.create_segment(1, 4096)?.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Reads `buf.len()` bytes at `offset`.
    ///
    /// ```
    /// use recwal_wal::{FileStorage, Storage, WritePath};
    /// let dir = tempfile::tempdir()?;
    /// let file = FileStorage::open(dir.path())?.create_segment(0, 4096)?;
    /// file.write_at(10, b"abc", WritePath::Syscall)?;
    /// let mut buf = [0u8; 3];
    /// file.read_at(10, &mut buf)?;
    /// assert_eq!(&buf, b"abc");
    /// assert!(file.read_at(4095, &mut buf).is_err()); // past the end
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()>;
    /// A zero-copy view of `len` bytes at `offset`, where the backend has one.
    ///
    /// Callers only ask for ranges that no writer is changing: bytes below the
    /// log's written watermark of a segment that cannot be recycled while the
    /// caller holds it.
    ///
    /// ```
    /// use recwal_wal::{FileStorage, Storage, WritePath};
    /// let dir = tempfile::tempdir()?;
    /// let file = FileStorage::open(dir.path())?.create_segment(0, 4096)?;
    /// file.write_at(0, b"mapped", WritePath::Map)?;
    /// assert_eq!(file.view(0, 6), Some(&b"mapped"[..])); // no copy
    /// assert_eq!(file.view(4094, 4), None); // outside the file
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn view(&self, offset: u64, len: usize) -> Option<&[u8]>;
    /// Writes `bytes` at `offset`.
    ///
    /// ```
    /// use recwal_wal::{FileStorage, Storage, WritePath};
    /// let dir = tempfile::tempdir()?;
    /// let file = FileStorage::open(dir.path())?.create_segment(0, 4096)?;
    /// file.write_at(0, b"one", WritePath::Map)?;
    /// file.write_at(3, b"two", WritePath::Syscall)?;
    /// assert_eq!(file.view(0, 6), Some(&b"onetwo"[..]));
    /// assert!(file.write_at(4095, b"xx", WritePath::Syscall).is_err()); // files never grow by writing
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn write_at(&self, offset: u64, bytes: &[u8], path: WritePath) -> io::Result<()>;
    /// Makes every write so far durable (`fdatasync`).
    ///
    /// ```
    /// use recwal_wal::sim::SimStorage;
    /// use recwal_wal::{Storage, WritePath};
    /// let disk = SimStorage::new(1);
    /// let file = disk.create_segment(0, 4096)?;
    /// file.write_at(0, b"durable", WritePath::Syscall)?;
    /// file.sync_data()?;
    /// disk.crash(); // power loss keeps whatever was synced
    /// assert_eq!(&disk.image(0).ok_or("no file")?[..7], b"durable");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn sync_data(&self) -> io::Result<()>;
    /// Grows the file to `bytes` with zeros and syncs it.
    ///
    /// ```
    /// use recwal_wal::{FileStorage, Storage, WritePath};
    /// let dir = tempfile::tempdir()?;
    /// let mut file = FileStorage::open(dir.path())?.create_segment(0, 4096)?;
    /// file.extend_to(8192)?;
    /// assert_eq!(file.len(), 8192);
    /// file.write_at(8000, b"new room", WritePath::Map)?;
    /// assert_eq!(file.view(8000, 8), Some(&b"new room"[..]));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn extend_to(&mut self, bytes: u64) -> io::Result<()>;
}

/// A real directory of `seg-<index>.wal` files.
///
/// ```
/// use recwal_wal::{DirLock, FileStorage, Wal, WalConfig};
/// let dir = tempfile::tempdir()?;
/// let _lock = DirLock::acquire(dir.path())?; // what `Wal::open` does for you
/// let storage = FileStorage::open(dir.path())?;
/// let config = WalConfig::default().segment_bytes(1 << 20).segments_initial(2);
/// let wal = Wal::open_with_storage(Box::new(storage), config)?;
/// assert_eq!(wal.append(1, b"a")?.wait()?, 1);
/// assert!(dir.path().join("seg-00000001.wal").exists());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct FileStorage {
    dir: PathBuf,
}

/// An exclusive `flock` on the directory's `LOCK` file, held by an open `Wal`.
///
/// The kernel releases it when the process dies, so a SIGKILLed owner never
/// blocks a restart; a second opener, in this process or another, gets `Locked`.
///
/// ```
/// use recwal_wal::{DirLock, Wal, WalConfig, WalError};
/// let dir = tempfile::tempdir()?;
/// let wal = Wal::open(dir.path(), WalConfig::default().segment_bytes(1 << 20))?;
/// assert!(matches!(DirLock::acquire(dir.path()), Err(WalError::Locked { .. })));
/// wal.close()?; // releases the lock
/// DirLock::acquire(dir.path())?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct DirLock {
    _file: File,
}

impl DirLock {
    /// Takes the lock of `dir` (which must exist), or fails with `Locked`.
    ///
    /// ```
    /// use recwal_wal::{DirLock, WalError};
    /// let dir = tempfile::tempdir()?;
    /// let lock = DirLock::acquire(dir.path())?;
    /// assert!(matches!(DirLock::acquire(dir.path()), Err(WalError::Locked { .. })));
    /// drop(lock);
    /// DirLock::acquire(dir.path())?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn acquire(dir: &Path) -> Result<Self, WalError> {
        let lock_path = dir.join("LOCK");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&lock_path)
            .map_err(|err| WalError::io("open lock file", &lock_path, err))?;
        // SAFETY: flock on a file descriptor we own; no memory is involved.
        let rc = unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&file), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::WouldBlock {
                return Err(WalError::Locked { path: dir.to_path_buf() });
            }
            return Err(WalError::io("lock directory", &lock_path, err));
        }
        Ok(DirLock { _file: file })
    }
}

impl FileStorage {
    /// Opens (creating if needed) the directory. Take its `DirLock` first.
    ///
    /// ```
    /// use recwal_wal::{FileStorage, Storage};
    /// let dir = tempfile::tempdir()?;
    /// let storage = FileStorage::open(&dir.path().join("new-log"))?; // creates the directory
    /// assert!(storage.list_segments()?.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open(dir: &Path) -> Result<Self, WalError> {
        std::fs::create_dir_all(dir).map_err(|err| WalError::io("create directory", dir, err))?;
        Ok(FileStorage { dir: dir.to_path_buf() })
    }

    /// Removes `seg-<n>.wal.tmp` files that a crash during `create_segment`
    /// left behind (they never became segments, and hold up to a segment's
    /// worth of space). Call it only while holding the directory's `DirLock`.
    pub(crate) fn remove_stale_temp_files(&self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else { return };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let stale = name
                .to_str()
                .and_then(|name| name.strip_suffix(".tmp"))
                .is_some_and(|name| parse_segment_file_name(name).is_some());
            if stale {
                match std::fs::remove_file(entry.path()) {
                    Ok(()) => {
                        tracing::info!(path = %entry.path().display(), "removed a segment temp file left by a crash")
                    }
                    Err(err) => {
                        tracing::warn!(path = %entry.path().display(), %err, "cannot remove a stale segment temp file")
                    }
                }
            }
        }
    }

    /// The storage of an existing directory, for read-only probes: unlike
    /// `open`, creates nothing.
    pub(crate) fn at(dir: &Path) -> Self {
        FileStorage { dir: dir.to_path_buf() }
    }

    fn segment_path(&self, index: u32) -> PathBuf {
        self.dir.join(segment_file_name(index))
    }

    fn sync_dir(&self) -> io::Result<()> {
        File::open(&self.dir)?.sync_all()
    }
}

/// Bytes an unprivileged writer may still allocate on the file system that
/// holds `path` (`statvfs`: `f_bavail * f_frsize`).
///
/// ```
/// let dir = tempfile::tempdir()?;
/// assert!(recwal_wal::available_bytes(dir.path())? > 0);
/// assert!(recwal_wal::available_bytes(&dir.path().join("missing")).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn available_bytes(path: &Path) -> io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))?;
    // SAFETY: an all-zero statvfs is a valid value of this plain C struct.
    let mut stats: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c_path` is a NUL-terminated string that outlives the call,
    // and `stats` is a valid, writable statvfs.
    let rc = unsafe { libc::statvfs(c_path.as_ptr(), &mut stats) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    #[allow(clippy::unnecessary_cast)] // the field types differ between targets
    Ok((stats.f_bavail as u64).saturating_mul(stats.f_frsize as u64))
}

impl Storage for FileStorage {
    fn list_segments(&self) -> io::Result<Vec<u32>> {
        let mut indices = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            if let Some(index) = entry.file_name().to_str().and_then(parse_segment_file_name) {
                indices.push(index);
            }
        }
        Ok(indices)
    }

    fn create_segment(&self, index: u32, bytes: u64) -> io::Result<Box<dyn SegmentFile>> {
        let final_path = self.segment_path(index);
        let temp_path = self.dir.join(format!("{}.tmp", segment_file_name(index)));
        let created = (|| {
            let file = OpenOptions::new().create(true).truncate(true).read(true).write(true).open(&temp_path)?;
            // Write real zeros rather than fallocate: a sync into blocks that are
            // already written costs less than one that must also convert unwritten
            // extents (see FORMAT.md, "Why zero-filled").
            write_zeros(&file, 0, bytes)?;
            file.sync_all()?;
            Ok(file)
        })();
        let file = match created {
            Ok(file) => file,
            Err(err) => {
                // A failed creation (typically ENOSPC while zero-filling) must
                // not keep the space it took: the next try starts afresh.
                if let Err(remove) = std::fs::remove_file(&temp_path) {
                    if remove.kind() != io::ErrorKind::NotFound {
                        tracing::warn!(path = %temp_path.display(), %remove, "cannot remove a failed segment's temp file");
                    }
                }
                return Err(err);
            }
        };
        // IMPORTANT: the rename makes the segment appear whole or not at all;
        // the directory sync makes the rename survive power loss.
        if let Err(err) = std::fs::rename(&temp_path, &final_path) {
            let _ = std::fs::remove_file(&temp_path);
            return Err(err);
        }
        self.sync_dir()?;
        Ok(Box::new(MappedFile::new(file, final_path)?))
    }

    fn open_segment(&self, index: u32) -> io::Result<Box<dyn SegmentFile>> {
        let path = self.segment_path(index);
        let file = OpenOptions::new().read(true).write(true).open(&path)?;
        Ok(Box::new(MappedFile::new(file, path)?))
    }

    fn describe(&self, index: Option<u32>) -> PathBuf {
        match index {
            Some(index) => self.segment_path(index),
            None => self.dir.clone(),
        }
    }

    fn read_manifest(&self) -> io::Result<Option<Vec<u8>>> {
        match std::fs::read(self.describe_manifest()) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(err),
        }
    }

    fn write_manifest(&self, bytes: &[u8]) -> io::Result<()> {
        let final_path = self.describe_manifest();
        let temp_path = self.dir.join(format!("{MANIFEST_FILE_NAME}.tmp"));
        let written = (|| {
            let file = OpenOptions::new().create(true).truncate(true).write(true).open(&temp_path)?;
            file.write_all_at(bytes, 0)?;
            file.sync_all()?;
            // The rename replaces the old manifest whole; the directory sync
            // makes the replacement survive power loss.
            std::fs::rename(&temp_path, &final_path)?;
            self.sync_dir()
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&temp_path);
        }
        written
    }

    fn describe_manifest(&self) -> PathBuf {
        self.dir.join(MANIFEST_FILE_NAME)
    }

    fn available_bytes(&self) -> io::Result<Option<u64>> {
        available_bytes(&self.dir).map(Some)
    }
}

/// The file that shows `dir` holds a log: its identity file (`MANIFEST`),
/// or else its lowest-numbered segment file; `None` if it has neither (a
/// directory that does not exist holds none). Changes nothing. The engine
/// and the tools use it to tell a log from a directory that is not one.
///
/// ```
/// use recwal_wal::{find_log_file, Wal, WalConfig};
/// let dir = tempfile::tempdir()?;
/// let log = dir.path().join("wal");
/// assert_eq!(find_log_file(&log)?, None);
/// Wal::open(&log, WalConfig::default().segment_bytes(1 << 20))?;
/// assert_eq!(find_log_file(&log)?, Some(log.join("MANIFEST")));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn find_log_file(dir: &Path) -> Result<Option<PathBuf>, WalError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(WalError::io("list log directory", dir, err)),
    };
    let mut lowest_segment: Option<u32> = None;
    for entry in entries {
        let entry = entry.map_err(|err| WalError::io("list log directory", dir, err))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name == MANIFEST_FILE_NAME {
            return Ok(Some(dir.join(MANIFEST_FILE_NAME)));
        }
        if let Some(index) = parse_segment_file_name(&name) {
            lowest_segment = Some(lowest_segment.map_or(index, |lowest| lowest.min(index)));
        }
    }
    Ok(lowest_segment.map(|index| dir.join(segment_file_name(index))))
}

/// The identity file's name in the log directory.
pub(crate) const MANIFEST_FILE_NAME: &str = "MANIFEST";

fn write_zeros(file: &File, from: u64, to: u64) -> io::Result<()> {
    let chunk = vec![0u8; 1 << 20];
    let mut offset = from;
    while offset < to {
        let n = (to - offset).min(chunk.len() as u64) as usize;
        file.write_all_at(&chunk[..n], offset)?;
        offset += n as u64;
    }
    Ok(())
}

/// A segment file with a shared read-write memory map over its whole length.
struct MappedFile {
    file: File,
    // None for an empty file, which cannot be mapped.
    map: Option<MmapRaw>,
    len: u64,
    _path: PathBuf,
}

impl MappedFile {
    fn new(file: File, path: PathBuf) -> io::Result<Self> {
        let len = file.metadata()?.len();
        let map = if len == 0 { None } else { Some(MmapRaw::map_raw(&file)?) };
        Ok(MappedFile { file, map, len, _path: path })
    }

    /// The map and the start of a range inside it.
    fn check_range(&self, offset: u64, len: usize) -> io::Result<(&MmapRaw, usize)> {
        let end = offset.checked_add(len as u64).filter(|end| *end <= self.len);
        match (end, &self.map) {
            (Some(_), Some(map)) => Ok((map, offset as usize)),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("range {offset}+{len} is outside the segment ({} bytes)", self.len),
            )),
        }
    }
}

impl SegmentFile for MappedFile {
    fn len(&self) -> u64 {
        self.len
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let (map, start) = self.check_range(offset, buf.len())?;
        // SAFETY: the range is inside the map (checked above), and the file
        // is never truncated while mapped (the log only grows files before
        // mapping them), so the pages exist. Concurrent writers only touch
        // bytes above the written watermark, which callers do not read.
        unsafe { std::ptr::copy_nonoverlapping(map.as_ptr().add(start), buf.as_mut_ptr(), buf.len()) };
        Ok(())
    }

    fn view(&self, offset: u64, len: usize) -> Option<&[u8]> {
        let (map, start) = self.check_range(offset, len).ok()?;
        // SAFETY: as in `read_at`; in addition the returned slice borrows
        // `self`, so the map outlives it, and the caller guarantees (see the
        // trait docs) that no writer changes these bytes while it is held.
        Some(unsafe { std::slice::from_raw_parts(map.as_ptr().add(start), len) })
    }

    fn write_at(&self, offset: u64, bytes: &[u8], path: WritePath) -> io::Result<()> {
        let (map, start) = self.check_range(offset, bytes.len())?;
        match path {
            WritePath::Syscall => self.file.write_all_at(bytes, offset),
            WritePath::Map => {
                // SAFETY: the range is inside the map; the log's append lock
                // makes this the only writer of these bytes, and no reader
                // reads them until the written watermark passes them.
                unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), map.as_mut_ptr().add(start), bytes.len()) };
                Ok(())
            }
        }
    }

    fn sync_data(&self) -> io::Result<()> {
        // fdatasync also writes back pages dirtied through a shared map.
        self.file.sync_data()
    }

    fn extend_to(&mut self, bytes: u64) -> io::Result<()> {
        if bytes <= self.len {
            return Ok(());
        }
        write_zeros(&self.file, self.len, bytes)?;
        self.file.sync_all()?;
        self.map = Some(MmapRaw::map_raw(&self.file)?);
        self.len = bytes;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_round_trip_and_reject_strangers() {
        assert_eq!(parse_segment_file_name(&segment_file_name(42)), Some(42));
        assert_eq!(parse_segment_file_name("seg-00000042.wal.tmp"), None);
        assert_eq!(parse_segment_file_name("seg-42.wal"), None);
        assert_eq!(parse_segment_file_name("LOCK"), None);
    }

    #[test]
    fn a_second_opener_is_refused_while_the_first_holds_the_lock() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = DirLock::acquire(dir.path()).expect("first lock");
        assert!(matches!(DirLock::acquire(dir.path()), Err(WalError::Locked { .. })));
        drop(first);
        assert!(DirLock::acquire(dir.path()).is_ok());
    }

    #[test]
    fn map_writes_and_syscall_writes_are_both_visible_to_reads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = FileStorage::open(dir.path()).expect("open");
        let file = storage.create_segment(0, 8192).expect("create");
        file.write_at(100, b"mapped", WritePath::Map).expect("map write");
        file.write_at(200, b"syscall", WritePath::Syscall).expect("pwrite");
        let mut buf = [0u8; 7];
        file.read_at(200, &mut buf).expect("read");
        assert_eq!(&buf, b"syscall");
        assert_eq!(file.view(100, 6), Some(&b"mapped"[..]));
        assert!(file.view(8190, 4).is_none());
        file.sync_data().expect("sync");
        drop(file);
        let reopened = storage.open_segment(0).expect("reopen");
        assert_eq!(reopened.view(100, 6), Some(&b"mapped"[..]));
    }
}
