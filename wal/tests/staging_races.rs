//! Races around staged write-outs, made deterministic with a storage whose
//! gate holds one `pwrite` and then fails it: a write-out queued behind a
//! failed one must not let the later one claim the failed records as
//! written (or durable); and `append_sync_later` must not leave a later
//! `Batch` append without its flusher wake-up.

use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use recwal_wal::sim::SimStorage;
use recwal_wal::{Durability, SegmentFile, Storage, SyncPolicy, Wal, WalConfig, WritePath};

/// Arms a one-shot gate on the next `Syscall` write: it reports that it
/// entered, waits to be released, then fails with EIO.
#[derive(Clone, Default)]
struct Gate {
    armed: Arc<AtomicBool>,
    entered: Arc<Mutex<Option<Sender<()>>>>,
    release: Arc<Mutex<Option<Receiver<()>>>>,
}

struct GatedStorage {
    inner: SimStorage,
    gate: Gate,
}

struct GatedFile {
    inner: Box<dyn SegmentFile>,
    gate: Gate,
}

impl Storage for GatedStorage {
    fn list_segments(&self) -> io::Result<Vec<u32>> {
        self.inner.list_segments()
    }
    fn create_segment(&self, index: u32, bytes: u64) -> io::Result<Box<dyn SegmentFile>> {
        Ok(Box::new(GatedFile { inner: self.inner.create_segment(index, bytes)?, gate: self.gate.clone() }))
    }
    fn open_segment(&self, index: u32) -> io::Result<Box<dyn SegmentFile>> {
        Ok(Box::new(GatedFile { inner: self.inner.open_segment(index)?, gate: self.gate.clone() }))
    }
    fn describe(&self, index: Option<u32>) -> PathBuf {
        self.inner.describe(index)
    }
    fn read_manifest(&self) -> io::Result<Option<Vec<u8>>> {
        self.inner.read_manifest()
    }
    fn write_manifest(&self, bytes: &[u8]) -> io::Result<()> {
        self.inner.write_manifest(bytes)
    }
    fn describe_manifest(&self) -> PathBuf {
        self.inner.describe_manifest()
    }
}

impl SegmentFile for GatedFile {
    fn len(&self) -> u64 {
        self.inner.len()
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.inner.read_at(offset, buf)
    }
    fn view(&self, offset: u64, len: usize) -> Option<&[u8]> {
        self.inner.view(offset, len)
    }
    fn write_at(&self, offset: u64, bytes: &[u8], path: WritePath) -> io::Result<()> {
        if matches!(path, WritePath::Syscall) && offset > 0 && self.gate.armed.swap(false, Ordering::AcqRel) {
            if let Some(tx) = self.gate.entered.lock().expect("gate lock").take() {
                let _ = tx.send(());
            }
            let rx = self.gate.release.lock().expect("gate lock").take();
            if let Some(rx) = rx {
                let _ = rx.recv();
            }
            return Err(io::Error::from_raw_os_error(libc_eio()));
        }
        self.inner.write_at(offset, bytes, path)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.inner.sync_data()
    }
    fn extend_to(&mut self, bytes: u64) -> io::Result<()> {
        self.inner.extend_to(bytes)
    }
}

fn libc_eio() -> i32 {
    5
}

fn open(policy: SyncPolicy) -> (Arc<Wal>, Gate, SimStorage) {
    let disk = SimStorage::new(7);
    let gate = Gate::default();
    let storage = GatedStorage { inner: disk.clone(), gate: gate.clone() };
    let config = WalConfig::default().segment_bytes(64 << 10).segments_initial(2).segments_max(4).sync_policy(policy);
    (Arc::new(Wal::open_with_storage(Box::new(storage), config).expect("open")), gate, disk)
}

/// Starts an `Always` append whose eager write-out blocks in the gate, and
/// returns once it is blocked there (holding the write order).
fn block_an_eager_write(wal: &Arc<Wal>, gate: &Gate) -> (std::thread::JoinHandle<bool>, Sender<()>) {
    let (entered_tx, entered_rx) = channel();
    let (release_tx, release_rx) = channel();
    *gate.entered.lock().expect("gate lock") = Some(entered_tx);
    *gate.release.lock().expect("gate lock") = Some(release_rx);
    gate.armed.store(true, Ordering::Release);
    let appender = {
        let wal = Arc::clone(wal);
        std::thread::spawn(move || wal.append_with(1, b"first", Durability::Always).is_ok())
    };
    entered_rx.recv_timeout(Duration::from_secs(10)).expect("the eager write-out reached the file");
    (appender, release_tx)
}

#[test]
fn a_never_append_behind_a_failed_write_out_does_not_claim_it_written() {
    let (wal, gate, _disk) = open(SyncPolicy::Never);
    let (appender, release) = block_an_eager_write(&wal, &gate);
    // A `Never` append: past its poison check, it waits for the write order.
    let never = {
        let wal = Arc::clone(&wal);
        std::thread::spawn(move || wal.append_with(1, b"second", Durability::Never).is_ok())
    };
    std::thread::sleep(Duration::from_millis(100));
    release.send(()).expect("release the gate");
    assert!(!appender.join().expect("thread"), "the first append's write failed");
    let second_ok = never.join().expect("thread");
    // Record 1 never reached its file: nothing may claim it written.
    assert_eq!(
        wal.lsn_written(),
        0,
        "lsn_written claims record 1, which is not in the file (second append ok: {second_ok})"
    );
}

#[test]
fn a_sync_behind_a_failed_write_out_does_not_make_it_durable() {
    let (wal, gate, _disk) = open(SyncPolicy::Never);
    let (appender, release) = block_an_eager_write(&wal, &gate);
    // A sync leader: past its poison check, it waits for the write order.
    let syncer = {
        let wal = Arc::clone(&wal);
        std::thread::spawn(move || wal.sync().is_ok())
    };
    std::thread::sleep(Duration::from_millis(100));
    release.send(()).expect("release the gate");
    assert!(!appender.join().expect("thread"), "the first append's write failed");
    let _ = syncer.join().expect("thread");
    assert_eq!(wal.lsn_durable(), 0, "lsn_durable claims record 1, which was never written");
}

/// `append_sync_later` counts its frame in the batch (so the next `Batch`
/// append sends no `BatchStarted`) but never wakes the flusher itself: a
/// `Batch` record behind it is not synced within `max_delay`, and its
/// ticket's `wait` (which never leads a sync) blocks.
#[test]
fn a_batch_append_after_append_sync_later_is_synced_within_max_delay() {
    let disk = SimStorage::new(3);
    let policy = SyncPolicy::Batch { max_delay: Duration::from_millis(1), max_bytes: 1 << 20 };
    let config = WalConfig::default().segment_bytes(64 << 10).segments_initial(2).segments_max(4).sync_policy(policy);
    let wal = Wal::open_with_storage(Box::new(disk), config).expect("open");
    let _later = wal.append_sync_later(1, b"nobody waits for me yet").expect("append_sync_later");
    let batch = wal.append(1, b"batch").expect("batch append");
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while !batch.is_durable() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(batch.is_durable(), "a Batch record was not synced within 2 s (max_delay 1 ms)");
}
