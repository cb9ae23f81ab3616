//! `Segment`: one segment file of the ring, shared (by `Arc`) between the
//! ring, staged chunks, the dirty list of the next sync and readers' records.
//! Knows nothing of records or laps: those are `ring.rs`'s.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::storage::{DirLock, SegmentFile};

/// One segment file and whether it has writes no sync has covered yet.
pub(crate) struct Segment {
    pub(crate) index: u32,
    pub(crate) file: Box<dyn SegmentFile>,
    /// Set when the segment is queued in the dirty list of the next sync.
    pub(crate) dirty: AtomicBool,
    /// The directory lock, held for as long as anything (a `Record`, a
    /// `Reader`) can still read this segment's map: another `Wal` on the same
    /// directory could otherwise recycle the bytes under it.
    _dir_lock: Option<Arc<DirLock>>,
}

impl Segment {
    pub(crate) fn new(index: u32, file: Box<dyn SegmentFile>, dir_lock: Option<Arc<DirLock>>) -> Self {
        Segment { index, file, dirty: AtomicBool::new(false), _dir_lock: dir_lock }
    }

    #[cfg(test)]
    pub(crate) fn for_test(index: u32, file: Box<dyn SegmentFile>) -> Self {
        Segment::new(index, file, None)
    }
}
