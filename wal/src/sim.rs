//! A simulated disk for deterministic power-loss tests.
//!
//! Each file keeps a *volatile* image (what reads see: the page cache) and a
//! *durable* image (what survives power loss). Writes change the volatile
//! image and mark 512-byte sectors dirty; `sync_data` copies dirty sectors to
//! the durable image. `crash` models power loss: every dirty sector
//! independently either reached the disk or did not, so unsynced writes are
//! dropped or torn at sector granularity, in any order. Faults are injected
//! on request: a failing sync, a full disk, a bit flip in synced data.
//! Everything random comes from one seed, so a failing schedule replays.
//!
//! Assumption (also in FORMAT.md): a 512-byte sector is written atomically.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::storage::{SegmentFile, Storage, WritePath};

/// Sector size of the simulated disk.
///
/// ```
/// use recwal_wal::format::SEGMENT_HEADER_BYTES;
/// use recwal_wal::sim::SECTOR_BYTES;
/// // A segment header fits one sector, so the simulated disk never tears it,
/// // and the smallest valid segment (4 KiB) is a whole number of sectors.
/// assert!(SEGMENT_HEADER_BYTES <= SECTOR_BYTES);
/// assert_eq!(4096 % SECTOR_BYTES, 0);
/// ```
pub const SECTOR_BYTES: u64 = 512;

/// A small, fast, seedable PRNG (SplitMix64); good enough for fault schedules.
///
/// ```
/// use recwal_wal::sim::SplitMix64;
/// let (mut a, mut b) = (SplitMix64::new(42), SplitMix64::new(42));
/// assert_eq!(a.next_u64(), b.next_u64()); // one seed, one sequence
/// assert_ne!(a.next_u64(), SplitMix64::new(43).next_u64());
/// ```
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator from `seed`.
    ///
    /// ```
    /// use recwal_wal::sim::SplitMix64;
    /// let mut rng = SplitMix64::new(7);
    /// let first = rng.next_u64();
    /// assert_eq!(SplitMix64::new(7).next_u64(), first);
    /// ```
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }
    /// The next 64 random bits.
    ///
    /// ```
    /// use recwal_wal::sim::SplitMix64;
    /// let mut rng = SplitMix64::new(1);
    /// let draws: Vec<u64> = (0..4).map(|_| rng.next_u64()).collect();
    /// assert!(draws.windows(2).all(|pair| pair[0] != pair[1]));
    /// ```
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// A number in `0..bound` (`bound` > 0).
    ///
    /// ```
    /// use recwal_wal::sim::SplitMix64;
    /// let mut rng = SplitMix64::new(1);
    /// assert!((0..100).all(|_| rng.below(6) < 6));
    /// assert_eq!(rng.below(0), 0); // a zero bound is treated as 1
    /// ```
    pub fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound.max(1)
    }
    /// True with probability `percent`/100.
    ///
    /// ```
    /// use recwal_wal::sim::SplitMix64;
    /// let mut rng = SplitMix64::new(1);
    /// assert!((0..100).all(|_| !rng.chance(0) && rng.chance(100)));
    /// ```
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

#[derive(Default)]
struct SimFile {
    volatile: Vec<u8>,
    durable: Vec<u8>,
    dirty_sectors: BTreeSet<u64>,
}

struct SimState {
    files: BTreeMap<u32, SimFile>,
    rng: SplitMix64,
    sync_failures_pending: u32,
    write_failures_pending: u32,
    /// The error those writes fail with (EIO, or ENOSPC).
    write_failure_errno: i32,
    sync_delay: std::time::Duration,
    space_bytes_max: Option<u64>,
    syncs: u64,
    /// The identity file: written durably and atomically, so a crash never changes it.
    manifest: Option<Vec<u8>>,
}

impl SimState {
    fn bytes_used(&self) -> u64 {
        self.files.values().map(|file| file.volatile.len() as u64).sum()
    }
}

/// Simulated storage; clones share the same disk.
///
/// ```
/// use recwal_wal::sim::SimStorage;
/// use recwal_wal::Storage;
/// let disk = SimStorage::new(1);
/// let clone = disk.clone();
/// clone.create_segment(0, 4096)?;
/// assert_eq!(disk.list_segments()?, vec![0]); // clones share one disk
/// assert_eq!(disk.bytes_used(), 4096);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct SimStorage {
    state: Arc<Mutex<SimState>>,
}

fn lock(state: &Mutex<SimState>) -> MutexGuard<'_, SimState> {
    // A panic while holding the lock is a test failure already being
    // reported; the simulated disk itself stays consistent.
    state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl SimStorage {
    /// An empty disk whose faults are drawn from `seed`.
    ///
    /// ```
    /// use recwal_wal::sim::SimStorage;
    /// use recwal_wal::Storage;
    /// let disk = SimStorage::new(9);
    /// assert!(disk.list_segments()?.is_empty());
    /// assert_eq!((disk.bytes_used(), disk.syncs()), (0, 0));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(seed: u64) -> Self {
        SimStorage {
            state: Arc::new(Mutex::new(SimState {
                files: BTreeMap::new(),
                rng: SplitMix64::new(seed),
                sync_failures_pending: 0,
                write_failures_pending: 0,
                write_failure_errno: libc::EIO,
                sync_delay: std::time::Duration::ZERO,
                space_bytes_max: None,
                syncs: 0,
                manifest: None,
            })),
        }
    }

    /// Power loss: each dirty sector independently keeps its durable
    /// contents or takes the volatile ones; then the volatile image becomes
    /// what is on disk.
    ///
    /// ```
    /// use recwal_wal::sim::SimStorage;
    /// use recwal_wal::{Storage, WritePath};
    /// let disk = SimStorage::new(3);
    /// let file = disk.create_segment(0, 4096)?;
    /// file.write_at(0, b"synced", WritePath::Syscall)?;
    /// file.sync_data()?;
    /// file.write_at(512, b"maybe", WritePath::Syscall)?; // never synced
    /// disk.crash();
    /// let image = disk.image(0).ok_or("no file")?;
    /// assert_eq!(&image[..6], b"synced");
    /// assert!(image[512..517] == *b"maybe" || image[512..517] == [0; 5]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn crash(&self) {
        let mut state = lock(&self.state);
        let SimState { files, rng, .. } = &mut *state;
        for file in files.values_mut() {
            for sector in std::mem::take(&mut file.dirty_sectors) {
                if rng.chance(50) {
                    let start = (sector * SECTOR_BYTES) as usize;
                    let end = (start + SECTOR_BYTES as usize).min(file.volatile.len());
                    file.durable[start..end].copy_from_slice(&file.volatile[start..end]);
                }
            }
            file.volatile.clone_from(&file.durable);
        }
        state.sync_failures_pending = 0;
        state.write_failures_pending = 0;
    }

    /// The next `count` syncs fail with EIO; the data they should have written
    /// is lost to the disk (reads still see it until the next `crash`).
    ///
    /// ```
    /// use recwal_wal::sim::SimStorage;
    /// use recwal_wal::{SyncPolicy, Wal, WalConfig, WalError};
    /// let disk = SimStorage::new(1);
    /// let config = WalConfig::default().segment_bytes(4096).sync_policy(SyncPolicy::Always);
    /// let wal = Wal::open_with_storage(Box::new(disk.clone()), config)?;
    /// disk.fail_next_syncs(1);
    /// assert!(matches!(wal.append(1, b"a"), Err(WalError::Poisoned { .. })));
    /// assert!(matches!(wal.append(1, b"b"), Err(WalError::Poisoned { .. }))); // for good
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn fail_next_syncs(&self, count: u32) {
        lock(&self.state).sync_failures_pending = count;
    }

    /// The next `count` writes fail with EIO and change nothing.
    ///
    /// ```
    /// use recwal_wal::sim::SimStorage;
    /// use recwal_wal::{SyncPolicy, Wal, WalConfig, WalError};
    /// let disk = SimStorage::new(1);
    /// let config = WalConfig::default().segment_bytes(4096).sync_policy(SyncPolicy::Always);
    /// let wal = Wal::open_with_storage(Box::new(disk.clone()), config)?;
    /// disk.fail_next_writes(1);
    /// assert!(matches!(wal.append(1, b"a"), Err(WalError::Poisoned { .. })));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn fail_next_writes(&self, count: u32) {
        let mut state = lock(&self.state);
        state.write_failures_pending = count;
        state.write_failure_errno = libc::EIO;
    }

    /// The next `count` writes fail with ENOSPC and change nothing, as a
    /// copy-on-write file system may refuse even an overwrite when full.
    ///
    /// ```
    /// use recwal_wal::sim::SimStorage;
    /// use recwal_wal::{Storage, WritePath};
    /// let disk = SimStorage::new(1);
    /// let file = disk.create_segment(0, 4096)?;
    /// disk.fail_next_writes_no_space(1);
    /// let refused = file.write_at(0, b"x", WritePath::Syscall).err().ok_or("written")?;
    /// assert!(recwal_wal::is_out_of_space(&refused));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn fail_next_writes_no_space(&self, count: u32) {
        let mut state = lock(&self.state);
        state.write_failures_pending = count;
        state.write_failure_errno = libc::ENOSPC;
    }

    /// Every sync from now on takes `delay` (a slow disk) before it does its work.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use recwal_wal::sim::SimStorage;
    /// use recwal_wal::{SyncPolicy, Wal, WalConfig};
    /// let disk = SimStorage::new(1);
    /// let wal = Wal::open_with_storage(Box::new(disk.clone()), WalConfig::default().segment_bytes(4096))?;
    /// disk.delay_syncs(Duration::from_millis(20));
    /// let _ = wal.append(1, b"a")?;
    /// let started = Instant::now();
    /// wal.sync()?;
    /// assert!(started.elapsed() >= Duration::from_millis(20));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn delay_syncs(&self, delay: std::time::Duration) {
        lock(&self.state).sync_delay = delay;
    }

    /// Creating files beyond `bytes` in total fails with ENOSPC.
    ///
    /// ```
    /// use recwal_wal::sim::SimStorage;
    /// use recwal_wal::Storage;
    /// let disk = SimStorage::new(1);
    /// disk.set_space_limit(Some(8192));
    /// disk.create_segment(0, 4096)?;
    /// disk.create_segment(1, 4096)?;
    /// assert!(disk.create_segment(2, 4096).is_err()); // ENOSPC
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set_space_limit(&self, bytes: Option<u64>) {
        lock(&self.state).space_bytes_max = bytes;
    }

    /// Flips one bit in both images of file `index`: synced data rotting.
    ///
    /// ```
    /// use recwal_wal::sim::SimStorage;
    /// use recwal_wal::Storage;
    /// let disk = SimStorage::new(1);
    /// disk.create_segment(0, 4096)?;
    /// disk.flip_bit(0, 10, 3);
    /// disk.crash(); // the flip is in the durable image too
    /// assert_eq!(disk.image(0).ok_or("no file")?[10], 1 << 3);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn flip_bit(&self, index: u32, offset: u64, bit: u8) {
        let mut state = lock(&self.state);
        if let Some(file) = state.files.get_mut(&index) {
            let at = offset as usize;
            if at < file.durable.len() {
                file.durable[at] ^= 1 << (bit % 8);
                file.volatile[at] ^= 1 << (bit % 8);
            }
        }
    }

    /// Copy of the volatile image of file `index`.
    ///
    /// ```
    /// use recwal_wal::sim::SimStorage;
    /// use recwal_wal::{Storage, WritePath};
    /// let disk = SimStorage::new(1);
    /// assert!(disk.image(0).is_none());
    /// disk.create_segment(0, 4096)?.write_at(8, b"abc", WritePath::Map)?;
    /// assert_eq!(&disk.image(0).ok_or("no file")?[8..11], b"abc"); // unsynced writes are visible
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn image(&self, index: u32) -> Option<Vec<u8>> {
        lock(&self.state).files.get(&index).map(|file| file.volatile.clone())
    }

    /// Replaces file `index` (both images) with `bytes`, creating it if needed.
    ///
    /// ```
    /// use recwal_wal::sim::SimStorage;
    /// use recwal_wal::Storage;
    /// let disk = SimStorage::new(1);
    /// disk.set_image(5, vec![1, 2, 3]);
    /// assert_eq!(disk.list_segments()?, vec![5]);
    /// assert_eq!(disk.open_segment(5)?.len(), 3);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set_image(&self, index: u32, bytes: Vec<u8>) {
        let mut state = lock(&self.state);
        let file = state.files.entry(index).or_default();
        file.durable.clone_from(&bytes);
        file.volatile = bytes;
        file.dirty_sectors.clear();
    }

    /// Removes file `index`.
    ///
    /// ```
    /// use recwal_wal::sim::SimStorage;
    /// use recwal_wal::Storage;
    /// let disk = SimStorage::new(1);
    /// disk.set_image(0, vec![0; 4096]);
    /// disk.remove(0);
    /// assert!(disk.list_segments()?.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn remove(&self, index: u32) {
        lock(&self.state).files.remove(&index);
    }

    /// Number of successful syncs so far.
    ///
    /// ```
    /// use recwal_wal::sim::SimStorage;
    /// use recwal_wal::Storage;
    /// let disk = SimStorage::new(1);
    /// let file = disk.create_segment(0, 4096)?;
    /// file.sync_data()?;
    /// file.sync_data()?;
    /// assert_eq!(disk.syncs(), 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn syncs(&self) -> u64 {
        lock(&self.state).syncs
    }

    /// Total bytes of all files.
    ///
    /// ```
    /// use recwal_wal::sim::SimStorage;
    /// use recwal_wal::Storage;
    /// let disk = SimStorage::new(1);
    /// disk.create_segment(0, 4096)?;
    /// disk.set_image(1, vec![0; 100]);
    /// assert_eq!(disk.bytes_used(), 4196);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn bytes_used(&self) -> u64 {
        lock(&self.state).bytes_used()
    }
}

impl Storage for SimStorage {
    fn list_segments(&self) -> io::Result<Vec<u32>> {
        Ok(lock(&self.state).files.keys().copied().collect())
    }

    fn create_segment(&self, index: u32, bytes: u64) -> io::Result<Box<dyn SegmentFile>> {
        let mut state = lock(&self.state);
        if let Some(max) = state.space_bytes_max {
            if state.bytes_used() + bytes > max {
                return Err(io::Error::from_raw_os_error(libc::ENOSPC));
            }
        }
        // Creation is durable on return, as FileStorage's is (fsync + rename + dir fsync).
        let zeros = vec![0u8; bytes as usize];
        state.files.insert(index, SimFile { volatile: zeros.clone(), durable: zeros, dirty_sectors: BTreeSet::new() });
        Ok(Box::new(SimSegment { state: Arc::clone(&self.state), index, len: bytes }))
    }

    fn open_segment(&self, index: u32) -> io::Result<Box<dyn SegmentFile>> {
        let state = lock(&self.state);
        let file = state.files.get(&index).ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        Ok(Box::new(SimSegment { state: Arc::clone(&self.state), index, len: file.volatile.len() as u64 }))
    }

    fn describe(&self, index: Option<u32>) -> PathBuf {
        match index {
            Some(index) => PathBuf::from(format!("sim:{}", crate::format::segment_file_name(index))),
            None => PathBuf::from("sim:"),
        }
    }

    fn read_manifest(&self) -> io::Result<Option<Vec<u8>>> {
        Ok(lock(&self.state).manifest.clone())
    }

    fn write_manifest(&self, bytes: &[u8]) -> io::Result<()> {
        // Durable and atomic on return, as FileStorage's rename + directory sync is.
        lock(&self.state).manifest = Some(bytes.to_vec());
        Ok(())
    }

    fn describe_manifest(&self) -> PathBuf {
        PathBuf::from("sim:MANIFEST")
    }

    fn available_bytes(&self) -> io::Result<Option<u64>> {
        let state = lock(&self.state);
        Ok(Some(state.space_bytes_max.map_or(u64::MAX, |max| max.saturating_sub(state.bytes_used()))))
    }
}

struct SimSegment {
    state: Arc<Mutex<SimState>>,
    index: u32,
    len: u64,
}

impl SimSegment {
    fn range(&self, offset: u64, len: usize) -> io::Result<std::ops::Range<usize>> {
        match offset.checked_add(len as u64) {
            Some(end) if end <= self.len => Ok(offset as usize..end as usize),
            _ => Err(io::Error::new(io::ErrorKind::InvalidInput, "range outside the segment")),
        }
    }
}

impl SegmentFile for SimSegment {
    fn len(&self) -> u64 {
        self.len
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let range = self.range(offset, buf.len())?;
        let state = lock(&self.state);
        let file = state.files.get(&self.index).ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        let source = file.volatile.get(range).ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
        buf.copy_from_slice(source);
        Ok(())
    }

    fn view(&self, _offset: u64, _len: usize) -> Option<&[u8]> {
        None
    }

    fn write_at(&self, offset: u64, bytes: &[u8], _path: WritePath) -> io::Result<()> {
        let range = self.range(offset, bytes.len())?;
        let mut state = lock(&self.state);
        if state.write_failures_pending > 0 {
            state.write_failures_pending -= 1;
            return Err(io::Error::from_raw_os_error(state.write_failure_errno));
        }
        let file = state.files.get_mut(&self.index).ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        if range.end > file.volatile.len() {
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
        }
        if bytes.is_empty() {
            return Ok(());
        }
        file.volatile[range.clone()].copy_from_slice(bytes);
        let first = range.start as u64 / SECTOR_BYTES;
        let last = (range.end as u64 - 1) / SECTOR_BYTES;
        file.dirty_sectors.extend(first..=last);
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        let delay = lock(&self.state).sync_delay;
        if !delay.is_zero() {
            std::thread::sleep(delay);
        }
        let mut state = lock(&self.state);
        if state.sync_failures_pending > 0 {
            state.sync_failures_pending -= 1;
            // As Linux does after a failed writeback: the dirty pages are marked
            // clean and their data is lost to the disk (reads still see it until
            // a power loss), so a later successful sync will not write it.
            if let Some(file) = state.files.get_mut(&self.index) {
                file.dirty_sectors.clear();
            }
            return Err(io::Error::from_raw_os_error(libc::EIO));
        }
        state.syncs += 1;
        let file = state.files.get_mut(&self.index).ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        for sector in std::mem::take(&mut file.dirty_sectors) {
            let start = (sector * SECTOR_BYTES) as usize;
            let end = (start + SECTOR_BYTES as usize).min(file.volatile.len());
            file.durable[start..end].copy_from_slice(&file.volatile[start..end]);
        }
        Ok(())
    }

    fn extend_to(&mut self, bytes: u64) -> io::Result<()> {
        let mut state = lock(&self.state);
        let file = state.files.get_mut(&self.index).ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        if (file.volatile.len() as u64) < bytes {
            file.volatile.resize(bytes as usize, 0);
            file.durable.resize(bytes as usize, 0);
        }
        self.len = self.len.max(bytes);
        Ok(())
    }
}
