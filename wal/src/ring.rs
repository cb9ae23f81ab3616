//! The ring: which segments hold the retained log (live, oldest first, the
//! last one active), which are free for a new lap, where the next frame goes,
//! and the bookkeeping of laps (`seq`), growth and release.
//!
//! The ring decides; it does not wait. `room_step` says what an append needs
//! before its frame fits (a recycled segment, a sync, a new file, a wait for
//! a checkpoint), and the owner of the append lock (`shared.rs`) does the
//! waiting, since only it may drop that lock. Starting a lap writes and
//! syncs the segment's header here, so that rule lives in one place.

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::format::{Lsn, SegmentHeader, SegmentState, SEGMENT_HEADER_BYTES};
use crate::recovery::read_header;
use crate::segment::Segment;
use crate::storage::WritePath;

/// A segment in the log, with the identity of its current lap.
#[derive(Clone)]
pub(crate) struct LiveSegment {
    pub(crate) segment: Arc<Segment>,
    pub(crate) seq: u64,
    pub(crate) lsn_first: Lsn,
}

/// A released segment and the last LSN its lap held (0 if it held none).
pub(crate) struct FreeSegment {
    pub(crate) segment: Arc<Segment>,
    pub(crate) lsn_last: Lsn,
}

/// What an append needs before its frame fits (see `Ring::room_step`).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RoomStep {
    /// The active segment has room.
    Fits,
    /// The free segment at this position can start a new lap now.
    Recycle(usize),
    /// A free segment nobody holds still has records the disk may not have:
    /// make everything up to this LSN durable first (outside the append lock).
    SyncBeforeRecycle(Lsn),
    /// Free segments exist but something (a reader, a sync in flight) holds
    /// them: one sync, to let go of them, before calling the ring full.
    SyncToRelease,
    /// The segment file the ring grows by next is being prepared (see
    /// `Ring::begin_prepare`): wait for it rather than create another.
    AwaitPrepared,
    /// The ring may grow by a new segment file.
    Grow,
    /// Nothing to do but wait for a checkpoint.
    Full,
}

/// Starting a lap failed at this step; nothing of the new lap was written
/// unless the step is `Sync`.
pub(crate) enum LapStartError {
    Read(io::Error),
    Write(io::Error),
    Sync(io::Error),
}

pub(crate) struct Ring {
    /// Segments holding retained records, oldest first; the last is active.
    live: VecDeque<LiveSegment>,
    /// Where the next frame goes in the active segment.
    write_offset: u64,
    /// Segments ready for a new lap. One is reused only when nothing else
    /// (a reader, a sync in flight) holds it, and only once its records are
    /// durable (see `room_step`).
    free: Vec<FreeSegment>,
    next_seq: u64,
    lsn_released: Lsn,
    segments_total: u32,
    next_index: u32,
    /// Segment file `next_index` is being created by the preparer thread;
    /// it joins the free list (and the count) once it exists whole.
    preparing: bool,
}

/// The ring as recovery left it (see `open.rs`).
pub(crate) struct RingStart {
    pub(crate) live: VecDeque<LiveSegment>,
    pub(crate) free: Vec<FreeSegment>,
    pub(crate) write_offset: u64,
    pub(crate) next_seq: u64,
    pub(crate) lsn_released: Lsn,
    pub(crate) segments_total: u32,
    pub(crate) next_index: u32,
}

impl Ring {
    pub(crate) fn new(start: RingStart) -> Self {
        let RingStart { live, free, write_offset, next_seq, lsn_released, segments_total, next_index } = start;
        assert!(live.len() + free.len() == segments_total as usize, "every segment file is live or free");
        assert!(segments_total <= next_index, "segment indexes are below next_index");
        Ring { live, write_offset, free, next_seq, lsn_released, segments_total, next_index, preparing: false }
    }

    /// The segment that takes the next frame, and where in it.
    pub(crate) fn active(&self) -> Option<(&LiveSegment, u64)> {
        self.live.back().map(|active| (active, self.write_offset))
    }

    /// A frame of `frame` bytes was placed at the write offset.
    pub(crate) fn advance(&mut self, frame: u64, segment_bytes: u64) {
        self.write_offset += frame;
        assert!(self.write_offset <= segment_bytes, "a frame never crosses the end of its segment");
    }

    /// Oldest LSN still retained (`lsn_next` when the log is empty).
    pub(crate) fn lsn_first(&self, lsn_next: Lsn) -> Lsn {
        self.live.front().map_or(lsn_next, |segment| segment.lsn_first)
    }

    /// The live segment whose lap holds `lsn`, if it is retained.
    pub(crate) fn holding(&self, lsn: Lsn) -> Option<LiveSegment> {
        self.live.iter().rev().find(|segment| segment.lsn_first <= lsn).cloned()
    }

    pub(crate) fn segments_live(&self) -> usize {
        self.live.len()
    }

    pub(crate) fn segments_free(&self) -> usize {
        self.free.len()
    }

    pub(crate) fn lsn_released(&self) -> Lsn {
        self.lsn_released
    }

    /// The segments holding retained records, oldest first.
    pub(crate) fn live_segments(&self) -> impl Iterator<Item = &Arc<Segment>> {
        self.live.iter().map(|live| &live.segment)
    }

    /// Segment files this log has created (`0..segments_created`).
    pub(crate) fn segments_created(&self) -> u32 {
        self.next_index
    }

    /// Decides what the next append of `frame` bytes needs. `sync_tried`:
    /// the append already synced once to release held segments.
    pub(crate) fn room_step(
        &self,
        frame: u64,
        segment_bytes: u64,
        segments_max: u32,
        lsn_durable: Lsn,
        sync_tried: bool,
    ) -> RoomStep {
        if !self.live.is_empty() && self.write_offset + frame <= segment_bytes {
            return RoomStep::Fits;
        }
        if let Some(free_idx) = self.free.iter().position(|free| is_unshared(&free.segment)) {
            let lsn_last = self.free[free_idx].lsn_last;
            // Released but not yet durable: a new lap must not overwrite
            // records the disk has never seen before the release is recorded
            // durably (in the new lap's header).
            if lsn_last > lsn_durable {
                return RoomStep::SyncBeforeRecycle(lsn_last);
            }
            return RoomStep::Recycle(free_idx);
        }
        if !self.free.is_empty() && !sync_tried {
            return RoomStep::SyncToRelease;
        }
        if self.segments_total < segments_max {
            if self.preparing {
                return RoomStep::AwaitPrepared;
            }
            return RoomStep::Grow;
        }
        RoomStep::Full
    }

    /// True if the next lap has no free segment to start on, the ring may
    /// still grow, and no segment is being prepared: time to prepare one.
    pub(crate) fn wants_prepared(&self, segments_max: u32) -> bool {
        !self.preparing && self.free.is_empty() && self.segments_total < segments_max
    }

    /// Reserves the index of the next segment file for the preparer thread.
    /// Until `end_prepare`, appends that need a new segment wait for it
    /// (`RoomStep::AwaitPrepared`) instead of creating the same file.
    pub(crate) fn begin_prepare(&mut self) -> u32 {
        assert!(!self.preparing, "one segment is prepared at a time");
        self.preparing = true;
        self.next_index
    }

    /// The preparation that `begin_prepare` started is over: the segment it
    /// created (if it could) is counted in the ring and free for the next lap.
    pub(crate) fn end_prepare(&mut self, prepared: Option<Arc<Segment>>) {
        assert!(self.preparing, "a preparation ends only once it has begun");
        self.preparing = false;
        if let Some(segment) = prepared {
            assert!(segment.index == self.next_index, "the prepared segment has the reserved index");
            self.grow();
            self.free.push(FreeSegment { segment, lsn_last: 0 });
        }
    }

    /// Takes the free segment at `free_idx` (from `RoomStep::Recycle`).
    pub(crate) fn take_free(&mut self, free_idx: usize) -> Arc<Segment> {
        self.free.remove(free_idx).segment
    }

    /// The index for a new segment file; counts it in the ring.
    pub(crate) fn grow(&mut self) -> u32 {
        assert!(!self.preparing, "the ring grows by no other file while one is prepared");
        let index = self.next_index;
        self.next_index += 1;
        self.segments_total += 1;
        index
    }

    /// Starts a new lap of `segment` as the active segment, its first record
    /// `lsn_next`. Returns whether the segment had held an earlier lap. On
    /// failure the segment goes back to the free list, except when its old
    /// header could not be read.
    pub(crate) fn start_lap(
        &mut self,
        segment: Arc<Segment>,
        lsn_next: Lsn,
        lsn_durable: Lsn,
        segment_bytes: u64,
    ) -> Result<bool, LapStartError> {
        assert!(self.live.back().is_none_or(|active| active.lsn_first <= lsn_next), "laps start in LSN order");
        let header = SegmentHeader {
            state: SegmentState::Live,
            seq: self.next_seq,
            lsn_first: lsn_next,
            // Only what is durable may be recorded as released: recovery trusts
            // this value, and a power loss never cuts the log below the durable LSN.
            lsn_released: self.lsn_released.min(lsn_durable),
            segment_bytes,
        };
        assert!(header.lsn_released <= lsn_durable, "a header never releases what is not durable");
        let had_lap = read_header(segment.file.as_ref()).map_err(LapStartError::Read)?.is_ok();
        // IMPORTANT: the new header is synced before any record of the new lap is
        // written. Otherwise power loss could keep some new records (which
        // overwrite the old lap's) but not the header, and recovery would read the
        // old lap with holes in it: released records, but records all the same.
        if let Err(err) = segment.file.write_at(0, &header.encode(), WritePath::Syscall) {
            self.free.push(FreeSegment { segment, lsn_last: 0 });
            return Err(LapStartError::Write(err));
        }
        if let Err(err) = segment.file.sync_data() {
            self.free.push(FreeSegment { segment, lsn_last: 0 });
            return Err(LapStartError::Sync(err));
        }
        self.next_seq += 1;
        self.live.push_back(LiveSegment { segment, seq: header.seq, lsn_first: header.lsn_first });
        self.write_offset = SEGMENT_HEADER_BYTES;
        Ok(had_lap)
    }

    /// Releases every record up to `lsn` (at most `lsn_next - 1`): live
    /// segments holding only such records become free. Returns how many, or
    /// `None` if `lsn` releases nothing new.
    pub(crate) fn release(&mut self, lsn: Lsn, lsn_next: Lsn) -> Option<u32> {
        let lsn = lsn.min(lsn_next - 1);
        if lsn <= self.lsn_released {
            return None;
        }
        self.lsn_released = lsn;
        let mut released = 0;
        while self.live.len() > 1 && self.live[1].lsn_first - 1 <= lsn {
            let lsn_last = self.live[1].lsn_first - 1;
            if let Some(done) = self.live.pop_front() {
                self.free.push(FreeSegment { segment: done.segment, lsn_last });
                released += 1;
            }
        }
        debug_assert!(
            self.live
                .iter()
                .zip(self.live.iter().skip(1))
                .all(|(older, newer)| older.seq < newer.seq && older.lsn_first <= newer.lsn_first),
            "live segments stay in lap and LSN order"
        );
        Some(released)
    }
}

/// True if only the ring (and the dirty list, which just means "sync me")
/// holds `segment`: no reader and no sync in flight can see it being reused.
/// Both counts change only under the append lock, which the caller holds.
fn is_unshared(segment: &Arc<Segment>) -> bool {
    let in_dirty_list = usize::from(segment.dirty.load(Ordering::Acquire));
    Arc::strong_count(segment) == 1 + in_dirty_list
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::SimStorage;
    use crate::storage::Storage;

    const SEGMENT_BYTES: u64 = 1 << 12;

    fn segment(disk: &SimStorage, index: u32) -> Arc<Segment> {
        Arc::new(Segment::for_test(index, disk.create_segment(index, SEGMENT_BYTES).expect("segment")))
    }

    fn empty_ring() -> Ring {
        Ring::new(RingStart {
            live: VecDeque::new(),
            free: Vec::new(),
            write_offset: SEGMENT_HEADER_BYTES,
            next_seq: 1,
            lsn_released: 0,
            segments_total: 0,
            next_index: 0,
        })
    }

    #[test]
    fn room_step_grows_then_fits_then_recycles_only_durable_unshared_segments() {
        let disk = SimStorage::new(7);
        let mut ring = empty_ring();
        assert_eq!(ring.room_step(64, SEGMENT_BYTES, 2, 0, false), RoomStep::Grow);
        assert_eq!(ring.room_step(64, SEGMENT_BYTES, 0, 0, false), RoomStep::Full);

        let index = ring.grow();
        assert!(ring.start_lap(segment(&disk, index), 1, 0, SEGMENT_BYTES).is_ok());
        assert_eq!(ring.room_step(64, SEGMENT_BYTES, 2, 0, false), RoomStep::Fits);
        ring.advance(SEGMENT_BYTES - SEGMENT_HEADER_BYTES, SEGMENT_BYTES); // records 1..=10, say: the segment is full
        let index = ring.grow();
        assert!(ring.start_lap(segment(&disk, index), 11, 0, SEGMENT_BYTES).is_ok());
        ring.advance(SEGMENT_BYTES - SEGMENT_HEADER_BYTES, SEGMENT_BYTES);
        assert_eq!(ring.room_step(64, SEGMENT_BYTES, 2, 0, false), RoomStep::Full);

        // A checkpoint frees the first segment; its records are not durable yet.
        assert_eq!(ring.release(12, 21), Some(1));
        assert_eq!(ring.release(12, 21), None, "nothing new to release");
        assert_eq!(ring.room_step(64, SEGMENT_BYTES, 2, 5, false), RoomStep::SyncBeforeRecycle(10));
        assert_eq!(ring.room_step(64, SEGMENT_BYTES, 2, 10, false), RoomStep::Recycle(0));

        // Held by a reader: one sync to let go of it, then the ring is full.
        let held = Arc::clone(&ring.free[0].segment);
        assert_eq!(ring.room_step(64, SEGMENT_BYTES, 2, 10, false), RoomStep::SyncToRelease);
        assert_eq!(ring.room_step(64, SEGMENT_BYTES, 2, 10, true), RoomStep::Full);
        drop(held);

        let recycled = ring.take_free(0);
        assert_eq!(ring.start_lap(recycled, 21, 20, SEGMENT_BYTES).ok(), Some(true), "the segment had a lap");
        assert_eq!((ring.segments_live(), ring.segments_free(), ring.lsn_first(21)), (2, 0, 11));
        assert_eq!(ring.holding(25).map(|live| live.lsn_first), Some(21));
    }

    #[test]
    fn a_lap_header_is_durable_before_the_lap_starts_and_never_releases_beyond_durable() {
        let disk = SimStorage::new(11);
        let mut ring = empty_ring();
        let index = ring.grow();
        assert!(ring.start_lap(segment(&disk, index), 1, 0, SEGMENT_BYTES).is_ok());
        ring.advance(SEGMENT_BYTES - SEGMENT_HEADER_BYTES, SEGMENT_BYTES);
        let index = ring.grow();
        assert!(ring.start_lap(segment(&disk, index), 9, 0, SEGMENT_BYTES).is_ok());
        assert_eq!(ring.release(8, 9), Some(1));
        ring.advance(SEGMENT_BYTES - SEGMENT_HEADER_BYTES, SEGMENT_BYTES);
        let recycled = ring.take_free(0);
        // Released up to 8, durable only up to 6: the header may claim 6.
        assert_eq!(ring.start_lap(recycled, 17, 6, SEGMENT_BYTES).ok(), Some(true));

        disk.crash(); // keeps only what was synced
        let file = disk.open_segment(0).expect("segment 0");
        let header = read_header(file.as_ref()).expect("read").expect("the new lap's header was synced");
        assert_eq!((header.state, header.seq, header.lsn_first, header.lsn_released), (SegmentState::Live, 3, 17, 6));
    }

    #[test]
    fn a_segment_being_prepared_is_awaited_not_created_twice_and_joins_the_free_list() {
        let disk = SimStorage::new(17);
        let mut ring = empty_ring();
        let index = ring.grow();
        assert!(ring.start_lap(segment(&disk, index), 1, 0, SEGMENT_BYTES).is_ok());
        assert!(ring.wants_prepared(3), "no free segment and room to grow");
        assert!(!ring.wants_prepared(1), "never beyond segments_max");
        let prepared = ring.begin_prepare();
        assert_eq!((prepared, ring.segments_created()), (1, 1), "reserved, not yet counted");
        assert!(!ring.wants_prepared(3), "one preparation at a time");
        ring.advance(SEGMENT_BYTES - SEGMENT_HEADER_BYTES, SEGMENT_BYTES);
        assert_eq!(ring.room_step(64, SEGMENT_BYTES, 3, 0, false), RoomStep::AwaitPrepared);

        ring.end_prepare(Some(segment(&disk, prepared)));
        assert_eq!((ring.segments_created(), ring.segments_free()), (2, 1));
        assert_eq!(ring.room_step(64, SEGMENT_BYTES, 3, 0, false), RoomStep::Recycle(0));

        // A failed preparation counts nothing: the append may create the file itself.
        let recycled = ring.take_free(0);
        assert!(ring.start_lap(recycled, 9, 0, SEGMENT_BYTES).is_ok());
        ring.advance(SEGMENT_BYTES - SEGMENT_HEADER_BYTES, SEGMENT_BYTES);
        let reserved = ring.begin_prepare();
        ring.end_prepare(None);
        assert_eq!((reserved, ring.segments_created()), (2, 2));
        assert_eq!(ring.room_step(64, SEGMENT_BYTES, 3, 0, false), RoomStep::Grow);
    }

    #[test]
    fn a_lap_whose_header_write_fails_returns_its_segment_to_the_free_list() {
        let disk = SimStorage::new(13);
        let mut ring = empty_ring();
        let index = ring.grow();
        disk.fail_next_writes(1);
        assert!(matches!(ring.start_lap(segment(&disk, index), 1, 0, SEGMENT_BYTES), Err(LapStartError::Write(_))));
        assert_eq!((ring.segments_live(), ring.segments_free()), (0, 1));
        assert!(ring.active().is_none(), "no lap started");
    }
}
