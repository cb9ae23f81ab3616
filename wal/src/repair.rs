//! Applies the repairs a recovery scan planned (`recovery::Scan`): cut the
//! torn tail, retire segments beyond it (and, in `PointInTime`, those with
//! unreadable headers), and sync every segment of the recovered log, so the
//! log is durable as recovered before anything new claims to follow it.
//! The scan decides; this only writes what it decided.

use crate::error::WalError;
use crate::format::{SegmentHeader, SegmentState};
use crate::recovery::{OpenedSegment, Scan};
use crate::storage::WritePath;

/// Writes the repairs `plan` asks for into `opened` (the slots the scan
/// saw) and syncs every segment they touch or that holds the recovered log.
/// Returns the seq the next lap takes (retired damaged segments use some).
pub(crate) fn apply_repairs(
    plan: &Scan,
    opened: &[OpenedSegment],
    segment_bytes: u64,
    describe: &dyn Fn(u32) -> std::path::PathBuf,
) -> Result<u64, WalError> {
    assert!(plan.lsn_next >= 1, "LSNs start at 1");
    let mut touched: Vec<usize> = plan.chain.iter().map(|link| link.slot).collect();
    if let Some((slot, from, to)) = plan.zero_range {
        assert!(from <= to, "a torn tail is cut forwards");
        let zeros = vec![0u8; (to - from) as usize];
        let segment = &opened[slot];
        segment
            .file
            .write_at(from, &zeros, WritePath::Syscall)
            .map_err(|err| WalError::io("cut torn tail", describe(segment.index), err))?;
        touched.push(slot);
    }
    for &slot in &plan.invalidate {
        let segment = &opened[slot];
        if let Ok(header) = segment.header {
            let retired = SegmentHeader { state: SegmentState::Free, ..header };
            segment
                .file
                .write_at(0, &retired.encode(), WritePath::Syscall)
                .map_err(|err| WalError::io("retire segment", describe(segment.index), err))?;
            touched.push(slot);
        }
    }
    let next_seq = retire_damaged(plan, opened, segment_bytes, describe, &mut touched)?;
    touched.sort_unstable();
    touched.dedup();
    for slot in touched {
        let segment = &opened[slot];
        segment.file.sync_data().map_err(|err| WalError::io("sync segment", describe(segment.index), err))?;
    }
    Ok(next_seq)
}

/// Gives each segment with an unreadable header (`PointInTime` only) a free
/// header under a fresh seq. Returns the seq after the last one used.
fn retire_damaged(
    plan: &Scan,
    opened: &[OpenedSegment],
    segment_bytes: u64,
    describe: &dyn Fn(u32) -> std::path::PathBuf,
    touched: &mut Vec<usize>,
) -> Result<u64, WalError> {
    let mut next_seq = plan.next_seq;
    for &slot in &plan.retire_damaged {
        let segment = &opened[slot];
        let retired = SegmentHeader {
            state: SegmentState::Free,
            seq: next_seq,
            lsn_first: 0,
            lsn_released: plan.lsn_released.min(plan.lsn_next - 1),
            segment_bytes,
        };
        next_seq += 1;
        segment
            .file
            .write_at(0, &retired.encode(), WritePath::Syscall)
            .map_err(|err| WalError::io("retire damaged segment", describe(segment.index), err))?;
        touched.push(slot);
    }
    Ok(next_seq)
}
