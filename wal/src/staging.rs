//! Staging: `Always` and `Batch` frames are copied into memory under the
//! append lock and reach their segment files later, in one `pwrite` per
//! segment, done by whoever syncs them (the group-commit leader or the
//! flusher) or, for `Always`, by the appender itself when no other write-out
//! is running: then its `pwrite` overlaps the sync in progress, as it would
//! if it had written directly, instead of lengthening the next one.
//!
//! Why not copy them straight into the shared map, as `Never` does: every
//! sync writes the map's dirty pages back, and the kernel then write-protects
//! them (with a TLB flush on every CPU running the appender), so the next
//! append to each page takes a page fault of a few microseconds. With a sync
//! every millisecond that is one append in 64 (64 B records): a p99 of 2 µs
//! instead of 0.07 µs. Reused heap buffers never fault, and `pwrite` +
//! `fdatasync` syncs faster than writing back mapped pages (wal/FORMAT.md).
//!
//! The price: a staged record is only in this process's memory until its
//! write-out, so a process crash loses staged records that nobody waited
//! for (docs/DURABILITY.md). Waiting on a ticket writes them out first.
//!
//! Ordering: chunks are taken in LSN order under the append lock, and the
//! taker holds the write-order lock (the log's `write_order`) from before it
//! releases the append lock until its bytes are in the files, so write-outs
//! reach the files in LSN order and `lsn_written` always describes a prefix.

use std::io;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError};

use crate::error::WalError;
use crate::format::{end_mark_fits, Lsn, END_MARK};
use crate::segment::Segment;
use crate::storage::WritePath;

/// Buffers larger than this are not kept for reuse after a write-out.
const SPARE_BYTES_MAX: usize = 8 << 20;
/// How many emptied buffers are kept for reuse.
const SPARES_MAX: usize = 4;

/// What a write-out needs from the log it writes for (`shared.rs`).
pub(crate) trait WriteSink {
    /// Fails if an earlier write-out or sync poisoned the log.
    fn check_poisoned(&self) -> Result<(), WalError>;
    /// Writing to segment `segment_index` failed: poison the log.
    fn fail_write(&self, segment_index: u32, err: io::Error) -> WalError;
    /// Every record `lsn_first..=lsn_last` is now in its file.
    fn mark_written(&self, lsn_first: Lsn, lsn_last: Lsn);
}

/// Frames for one segment, contiguous from `offset`.
struct Chunk {
    segment: Arc<Segment>,
    offset: u64,
    bytes: Vec<u8>,
}

/// Frames appended but not yet written to their files, oldest first.
pub(crate) struct Staging {
    chunks: Vec<Chunk>,
    /// Emptied buffers, kept with their capacity (and their pages faulted in).
    spare: Vec<Vec<u8>>,
    /// Capacity of a new buffer, its pages touched once so appends never fault.
    initial_capacity: usize,
    /// The first LSN in `chunks` (meaningful while `chunks` is not empty).
    lsn_first: Lsn,
    lsn_last: Lsn,
    /// The last LSN handed to a write-out: until `lsn_written` reaches it, a
    /// write-out may still be in flight.
    lsn_taken: Lsn,
    /// Bytes in `chunks`.
    bytes: u64,
}

impl Staging {
    pub(crate) fn new(initial_capacity: usize) -> Self {
        Staging {
            chunks: Vec::new(),
            spare: Vec::new(),
            initial_capacity,
            lsn_first: 0,
            lsn_last: 0,
            lsn_taken: 0,
            bytes: 0,
        }
    }

    /// Whether a write that bypasses staging (a `Never` append through the
    /// map) must first write out: frames are staged, or a write-out taken
    /// earlier has not put its records in the files yet. Usually false, so
    /// `Never` appends skip the write-order lock.
    pub(crate) fn must_write_before(&self, lsn_written: Lsn) -> bool {
        !self.chunks.is_empty() || lsn_written < self.lsn_taken
    }

    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Stages the frame of `lsn` at `offset` of `segment`: `header`, then
    /// `payload`, then zeros up to `frame` bytes (the alignment padding, so
    /// consecutive frames form one contiguous write).
    pub(crate) fn push(
        &mut self,
        segment: &Arc<Segment>,
        offset: u64,
        frame: u64,
        (header, payload): (&[u8], &[u8]),
        lsn: Lsn,
    ) {
        // LSNs are handed out in order under the append lock, which the caller holds.
        assert!(lsn > self.lsn_last, "frames are staged in LSN order");
        if self.chunks.is_empty() {
            self.lsn_first = lsn;
        }
        let continues = self.chunks.last().is_some_and(|chunk| {
            Arc::ptr_eq(&chunk.segment, segment) && chunk.offset + chunk.bytes.len() as u64 == offset
        });
        if !continues {
            let bytes = self.spare.pop().unwrap_or_else(|| prefaulted(self.initial_capacity));
            self.chunks.push(Chunk { segment: Arc::clone(segment), offset, bytes });
        }
        if let Some(chunk) = self.chunks.last_mut() {
            let end = chunk.bytes.len() + frame as usize;
            chunk.bytes.extend_from_slice(header);
            chunk.bytes.extend_from_slice(payload);
            chunk.bytes.resize(end, 0);
        }
        self.lsn_last = lsn;
        self.bytes += frame;
    }

    /// Takes everything staged for writing, with the write-order lock. Called
    /// under the append lock; the write itself may happen after releasing it.
    pub(crate) fn begin_write<'a>(&mut self, write_order: &'a Mutex<Vec<Vec<u8>>>) -> WriteOut<'a> {
        self.take(write_order.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// As `begin_write`, unless a write-out is in flight: then `None`, and
    /// what is staged stays for the next one.
    pub(crate) fn try_begin_write<'a>(&mut self, write_order: &'a Mutex<Vec<Vec<u8>>>) -> Option<WriteOut<'a>> {
        let emptied = match write_order.try_lock() {
            Ok(guard) => guard,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => return None,
        };
        Some(self.take(emptied))
    }

    fn take<'a>(&mut self, mut emptied: MutexGuard<'a, Vec<Vec<u8>>>) -> WriteOut<'a> {
        // Buffers emptied by earlier write-outs come back for reuse.
        while let Some(buffer) = emptied.pop() {
            if self.spare.len() < SPARES_MAX {
                self.spare.push(buffer);
            }
        }
        self.bytes = 0;
        if !self.chunks.is_empty() {
            self.lsn_taken = self.lsn_last;
        }
        WriteOut {
            emptied,
            chunks: std::mem::take(&mut self.chunks),
            lsn_first: self.lsn_first,
            lsn_last: self.lsn_last,
        }
    }
}

/// Staged frames on their way to the files. While it lives nobody else
/// writes to the log's files, and `lsn_written` may not pass its records.
pub(crate) struct WriteOut<'a> {
    emptied: MutexGuard<'a, Vec<Vec<u8>>>,
    chunks: Vec<Chunk>,
    lsn_first: Lsn,
    lsn_last: Lsn,
}

impl WriteOut<'_> {
    /// Writes the chunks in order and moves `lsn_written` past them. A failed
    /// write poisons the log: records already acknowledged as appended would
    /// otherwise be missing from the middle of it.
    pub(crate) fn finish(mut self, sink: &impl WriteSink) -> Result<(), WalError> {
        // A write-out taken before an earlier one failed (it waited for the
        // write order) must not write past the hole, nor let `lsn_written` or
        // a sync claim the failed records: the failure poisoned the log while
        // holding the write order, so this check sees it.
        sink.check_poisoned()?;
        for chunk in &mut self.chunks {
            // The end mark rides in the same write (wal/FORMAT.md): the next
            // write-out starts where it lies and overwrites it.
            let end = chunk.offset + chunk.bytes.len() as u64;
            if end_mark_fits(end, chunk.segment.file.len()) {
                chunk.bytes.extend_from_slice(&END_MARK);
            }
            if let Err(err) = chunk.segment.file.write_at(chunk.offset, &chunk.bytes, WritePath::Syscall) {
                return Err(sink.fail_write(chunk.segment.index, err));
            }
        }
        if !self.chunks.is_empty() {
            sink.mark_written(self.lsn_first, self.lsn_last);
        }
        for chunk in self.chunks.drain(..) {
            let mut bytes = chunk.bytes;
            if bytes.capacity() <= SPARE_BYTES_MAX && self.emptied.len() < SPARES_MAX {
                bytes.clear();
                self.emptied.push(bytes);
            }
        }
        Ok(())
    }
}

/// A buffer of `capacity` bytes whose pages are already mapped.
fn prefaulted(capacity: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; capacity];
    // `vec!` of zeros may come from untouched zero pages: write them all.
    for page in bytes.chunks_mut(4096) {
        page[0] = 1;
    }
    bytes.clear();
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::frame_bytes;
    use crate::sim::SimStorage;
    use crate::storage::Storage;

    fn segment(disk: &SimStorage, index: u32) -> Arc<Segment> {
        Arc::new(Segment::for_test(index, disk.create_segment(index, 1 << 16).expect("segment")))
    }

    #[test]
    fn consecutive_frames_form_one_write_per_segment_with_zeroed_padding() {
        let disk = SimStorage::new(3);
        let (first, second) = (segment(&disk, 0), segment(&disk, 1));
        let mut staging = Staging::new(1 << 12);
        let header = [0xAAu8; 24];
        let mut offset = 64;
        for (lsn, payload) in [(1, &b"abc"[..]), (2, &b"defgh"[..])] {
            let frame = frame_bytes(payload.len() as u64);
            staging.push(&first, offset, frame, (&header, payload), lsn);
            offset += frame;
        }
        staging.push(&second, 64, frame_bytes(1), (&header, b"z"), 3);
        assert_eq!(staging.chunks.len(), 2, "one chunk per segment");
        assert_eq!(staging.chunks[0].bytes.len() as u64, offset - 64);
        assert_eq!(&staging.chunks[0].bytes[24..32], b"abc\0\0\0\0\0", "padding is zeros");

        assert!(staging.must_write_before(0), "frames are staged");

        let write_order = Mutex::new(Vec::new());
        let write_out = staging.begin_write(&write_order);
        assert_eq!((write_out.chunks.len(), write_out.lsn_last), (2, 3));
        assert!(staging.chunks.is_empty());
        // Taken but not yet written: a bypassing write still has to wait.
        assert!(staging.must_write_before(2));
        assert!(!staging.must_write_before(3), "everything taken is written");
    }
}
