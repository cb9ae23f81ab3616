//! Recovery: scan every segment, check every CRC and the LSN chain, find the
//! end of the log, and decide whether damage at that end may be cut.
//!
//! The scan is pure: it reads segment images and returns a plan (`Scan`).
//! Applying the plan (zeroing a torn tail, invalidating segments beyond it)
//! is `repair.rs`'s job, so `inspect`/`verify` can run the same scan read-only.
//! The crash cases this handles are listed in FORMAT.md, "Recovery".

use std::borrow::Cow;

use crate::config::RecoveryMode;
use crate::error::{Corruption, Position, WalError, RECOVERY_OPTIONS};
use crate::format::{
    decode_slot, HeaderDefect, RecordHeader, SegmentHeader, SegmentState, Slot, FORMAT_VERSION, RECORD_ALIGN,
    RECORD_HEADER_BYTES, SEGMENT_HEADER_BYTES,
};
use crate::manifest::{self, Manifest};
use crate::storage::{SegmentFile, Storage};

/// What recovery found and did.
///
/// ```
/// use recwal_wal::{SyncPolicy, Wal, WalConfig};
/// let dir = tempfile::tempdir()?;
/// let config = WalConfig::default().segment_bytes(1 << 20).sync_policy(SyncPolicy::Always);
/// let wal = Wal::open(dir.path(), config.clone())?;
/// for _ in 0..3 {
///     wal.append(1, b"r")?;
/// }
/// wal.close()?;
/// let wal = Wal::open(dir.path(), config)?;
/// let report = wal.recovery_report();
/// // The segment in use and the one prepared ahead of it.
/// assert_eq!((report.segments_scanned, report.records_recovered, report.lsn_first, report.lsn_last), (2, 3, 1, 3));
/// assert!(report.tail_damage.is_none() && report.segments_invalidated.is_empty());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Segment files examined.
    pub segments_scanned: u32,
    /// Records in the recovered log (all CRCs checked).
    pub records_recovered: u64,
    /// Oldest retained LSN (equal to `lsn_last + 1` when the log is empty).
    pub lsn_first: u64,
    /// Newest recovered LSN (0 when nothing was ever written).
    pub lsn_last: u64,
    /// Every LSN up to this one had been released by a checkpoint.
    pub lsn_released: u64,
    /// Bytes of damaged or never-durable data cut from the end of the log.
    pub bytes_cut: u64,
    /// Valid records found beyond the cut and dropped with it.
    pub records_dropped: u64,
    /// Where the log ended in damage that was cut (a torn write), if it did.
    pub tail_damage: Option<Corruption>,
    /// Damage to records that had been durable, cut in `PointInTime` mode.
    pub corruption: Option<Corruption>,
    /// Segments whose headers were unreadable and were treated as free
    /// (only in `PointInTime` mode; the other modes refuse to open).
    pub segments_damaged: Vec<u32>,
    /// Segments beyond the cut that were marked free.
    pub segments_invalidated: Vec<u32>,
    /// Segment files that were shorter than configured: damage, refused
    /// by `open` except in `PointInTime` mode, which extends them with zeros.
    pub segments_extended: Vec<u32>,
    /// Segment files that were missing: damage, refused by `open` except in
    /// `PointInTime` mode, which recreates them empty.
    pub segments_missing: Vec<u32>,
    /// Records the log had durably reached (per its manifest) that were
    /// not found: damage, refused except in `PointInTime` mode.
    pub records_missing: u64,
}

impl RecoveryReport {
    /// True if recovery found nothing to cut or report.
    ///
    /// ```
    /// use recwal_wal::{SyncPolicy, Wal, WalConfig};
    /// let dir = tempfile::tempdir()?;
    /// let config = WalConfig::default().segment_bytes(1 << 20).sync_policy(SyncPolicy::Always);
    /// Wal::open(dir.path(), config.clone())?.append(1, b"a")?;
    /// assert!(Wal::open(dir.path(), config)?.recovery_report().is_clean());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_clean(&self) -> bool {
        self.bytes_cut == 0
            && self.records_dropped == 0
            && self.tail_damage.is_none()
            && self.corruption.is_none()
            && self.segments_damaged.is_empty()
            && self.segments_extended.is_empty()
            && self.segments_missing.is_empty()
            && self.records_missing == 0
    }
}

/// A caller's check of what recovery found, run before any repair
/// (`Wal::open_checked`): `Ok` to open, or the reason to refuse.
pub type OpenCheck<'a> = &'a mut dyn FnMut(&RecoveryReport) -> Result<(), String>;

/// One record seen by the scan.
///
/// ```
/// use recwal_wal::{inspect, RecordInfo, SyncPolicy, Wal, WalConfig};
/// let dir = tempfile::tempdir()?;
/// let config = WalConfig::default().segment_bytes(1 << 20).sync_policy(SyncPolicy::Always);
/// let wal = Wal::open(dir.path(), config.clone())?;
/// wal.append(9, b"hello")?;
/// wal.close()?;
/// let mut seen: Vec<RecordInfo> = Vec::new();
/// inspect(dir.path(), &config, &mut |info, _| seen.push(*info))?;
/// assert_eq!(seen, [RecordInfo { segment_index: 0, offset: 64, lsn: 1, kind: 9, len: 5 }]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordInfo {
    /// Segment file index.
    pub segment_index: u32,
    /// Offset of the record header in the segment.
    pub offset: u64,
    /// Its LSN.
    pub lsn: u64,
    /// Caller-chosen kind.
    pub kind: u8,
    /// Payload length.
    pub len: u32,
}

/// A segment file as opened, with its decoded header.
pub(crate) struct OpenedSegment {
    pub(crate) index: u32,
    pub(crate) file: Box<dyn SegmentFile>,
    pub(crate) header: Result<SegmentHeader, HeaderDefect>,
}

/// Reads and decodes the header of a segment file; a file too short to hold
/// one reads as never started.
pub(crate) fn read_header(file: &dyn SegmentFile) -> std::io::Result<Result<SegmentHeader, HeaderDefect>> {
    if file.len() < SEGMENT_HEADER_BYTES {
        return Ok(Err(HeaderDefect::Zeroed));
    }
    let mut buf = [0u8; SEGMENT_HEADER_BYTES as usize];
    file.read_at(0, &mut buf)?;
    Ok(SegmentHeader::decode(&buf))
}

/// What `open_segments` may do about missing or short segment files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FileRepair {
    /// Change nothing; report them (`inspect`, `verify`).
    Report,
    /// Refuse to open: they are damage (`open` in the default modes).
    Refuse,
    /// Recreate missing files and extend short ones with zeros, and report
    /// them (`open` in `PointInTime` mode); the scan then finds the records
    /// lost with them.
    Restore,
}

/// The segment files of a log directory as found, before the scan.
pub(crate) struct FoundFiles {
    pub(crate) manifest: Option<Manifest>,
    pub(crate) opened: Vec<OpenedSegment>,
    /// Files that should exist and did not.
    pub(crate) missing: Vec<u32>,
    /// Files shorter than `segment_bytes`.
    pub(crate) short: Vec<u32>,
}

/// Reads the manifest, then opens every segment file of `storage` in index
/// order and reads its header. Segment files are created whole and are
/// never deleted or truncated (FORMAT.md, "Files"), so a file that is
/// missing (below the count the manifest records, or below the highest
/// index present) or shorter than `segment_bytes` is damage; `repair` says
/// what to do about it. A file larger than `segment_bytes` is an error.
pub(crate) fn open_segments(
    storage: &dyn Storage,
    segment_bytes: u64,
    repair: FileRepair,
) -> Result<FoundFiles, WalError> {
    let manifest = read_manifest(storage, segment_bytes)?;
    let mut indices =
        storage.list_segments().map_err(|err| WalError::io("list segments", storage.describe(None), err))?;
    indices.sort_unstable();
    let present_end = indices.last().map_or(0, |last| last + 1);
    let created = manifest.map_or(0, |manifest| manifest.segments_created).max(present_end);
    let missing: Vec<u32> = (0..created).filter(|index| indices.binary_search(index).is_err()).collect();
    if let (Some(&first), FileRepair::Refuse) = (missing.first(), repair) {
        let known_from = match manifest {
            Some(manifest) if manifest.segments_created > first => "MANIFEST records",
            _ => "the higher-numbered files present show",
        };
        return Err(WalError::Damaged {
            path: storage.describe(Some(first)),
            reason: format!(
                "the segment file is missing ({} of {created} missing): {known_from} that the log created segment files \
                 0..{created}, and a segment file is never deleted",
                missing.len()
            ),
            options: RECOVERY_OPTIONS.to_string(),
        });
    }

    let mut opened = Vec::with_capacity(created as usize);
    let mut short = Vec::new();
    for index in 0..created {
        let is_missing = missing.binary_search(&index).is_ok();
        if is_missing && repair != FileRepair::Restore {
            continue;
        }
        let (segment, is_short) = open_segment_file(storage, index, is_missing, segment_bytes, repair)?;
        if is_short {
            short.push(index);
        }
        opened.push(segment);
    }
    Ok(FoundFiles { manifest, opened, missing, short })
}

/// Reads and decodes the manifest of `storage`: `None` if there is none, an
/// error naming the file if it cannot be read or is damaged.
pub(crate) fn load_manifest(storage: &dyn Storage) -> Result<Option<Manifest>, WalError> {
    let path = storage.describe_manifest();
    match storage.read_manifest().map_err(|err| WalError::io("read manifest", &path, err))? {
        Some(bytes) => Manifest::decode(&bytes).map(Some).map_err(|reason| manifest::damaged(path, reason)),
        None => Ok(None),
    }
}

/// The segment size of the log in `storage`: the manifest's, or for a log
/// written before the manifest existed, the first valid segment header's;
/// `None` for a log never initialised.
pub(crate) fn existing_segment_bytes(storage: &dyn Storage) -> Result<Option<u64>, WalError> {
    if let Some(manifest) = load_manifest(storage)? {
        return Ok(Some(manifest.segment_bytes));
    }
    let mut indices =
        storage.list_segments().map_err(|err| WalError::io("list segments", storage.describe(None), err))?;
    indices.sort_unstable();
    for index in indices {
        // Unreadable files are left to `open_segments`, which names them.
        let Ok(file) = storage.open_segment(index) else { continue };
        if let Ok(Ok(header)) = read_header(file.as_ref()) {
            return Ok(Some(header.segment_bytes));
        }
    }
    Ok(None)
}

/// Reads the manifest, if any, and checks it names this segment size.
fn read_manifest(storage: &dyn Storage, segment_bytes: u64) -> Result<Option<Manifest>, WalError> {
    let manifest = load_manifest(storage)?;
    if let Some(manifest) = manifest {
        if manifest.segment_bytes != segment_bytes {
            return Err(WalError::InvalidConfig {
                field: "segment_bytes",
                rule: format!(
                    "is {segment_bytes}, but the log in {} was created with {} bytes per segment, which cannot change",
                    storage.describe(None).display(),
                    manifest.segment_bytes
                ),
            });
        }
    }
    Ok(manifest)
}

/// Opens segment file `index` (recreating it if it is missing, which only
/// `Restore` asks for) and reads its header; a short file is refused, or
/// extended under `Restore`. Returns the segment and whether it was short.
fn open_segment_file(
    storage: &dyn Storage,
    index: u32,
    is_missing: bool,
    segment_bytes: u64,
    repair: FileRepair,
) -> Result<(OpenedSegment, bool), WalError> {
    let path = storage.describe(Some(index));
    let mut file = if is_missing {
        storage.create_segment(index, segment_bytes).map_err(|err| WalError::io("recreate segment", &path, err))?
    } else {
        storage.open_segment(index).map_err(|err| WalError::io("open segment", &path, err))?
    };
    if file.len() > segment_bytes {
        return Err(WalError::BadSegment {
            segment_index: index,
            reason: format!("file is {} bytes, larger than segment_bytes {segment_bytes}", file.len()),
        });
    }
    let is_short = file.len() < segment_bytes;
    if is_short {
        if repair == FileRepair::Refuse {
            return Err(WalError::Damaged {
                path,
                reason: format!(
                    "the segment file is {} bytes, shorter than segment_bytes {segment_bytes}: segment files are \
                     created whole (written, synced, then renamed into place) and never truncated, so it was cut \
                     after it was written",
                    file.len()
                ),
                options: RECOVERY_OPTIONS.to_string(),
            });
        }
        if repair == FileRepair::Restore {
            file.extend_to(segment_bytes).map_err(|err| WalError::io("extend segment", &path, err))?;
        }
    }
    let header = read_header(file.as_ref()).map_err(|err| WalError::io("read segment header", &path, err))?;
    Ok((OpenedSegment { index, file, header }, is_short))
}

/// Refuses (or, in `PointInTime`, reports) a recovered log that ends before
/// the LSN its manifest says it had reached: records the log once held
/// durably are gone, so a segment was replaced by an older copy or damaged
/// in a way no other check saw.
pub(crate) fn check_floor(
    manifest: Option<Manifest>,
    storage: &dyn Storage,
    segments: &[OpenedSegment],
    scan: &Scan,
    mode: RecoveryMode,
    report: &mut RecoveryReport,
) -> Result<(), WalError> {
    let Some(manifest) = manifest else { return Ok(()) };
    if report.lsn_last >= manifest.lsn_floor {
        return Ok(());
    }
    let reason = format!(
        "the log ends at lsn {}, but it had reached lsn {} (the durable end recorded in {}): records {}..={} are \
         missing",
        report.lsn_last,
        manifest.lsn_floor,
        storage.describe_manifest().display(),
        report.lsn_last + 1,
        manifest.lsn_floor
    );
    // Where the log ends: the records that should follow are missing from there.
    let position = match scan.chain.last() {
        Some(link) => position(&segments[link.slot], link.end_offset),
        None => Position { segment_index: 0, segment_seq: 0, offset: SEGMENT_HEADER_BYTES },
    };
    let detail = Corruption { position, lsn_expected: report.lsn_last + 1, reason };
    if mode != RecoveryMode::PointInTime {
        return Err(WalError::Corruption(Box::new(detail)));
    }
    report.records_missing = manifest.lsn_floor - report.lsn_last;
    report.corruption.get_or_insert(detail);
    Ok(())
}

/// A segment of the recovered log, in order.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ChainLink {
    /// Position in the `segments` slice given to `scan`.
    pub(crate) slot: usize,
    pub(crate) seq: u64,
    pub(crate) lsn_first: u64,
    /// Offset just past the last record of this lap.
    pub(crate) end_offset: u64,
}

/// The outcome of a scan: the log as found, and the repairs it needs.
pub(crate) struct Scan {
    pub(crate) chain: Vec<ChainLink>,
    pub(crate) lsn_next: u64,
    pub(crate) next_seq: u64,
    pub(crate) lsn_released: u64,
    /// Zero this byte range of this slot before appending again.
    pub(crate) zero_range: Option<(usize, u64, u64)>,
    /// Mark these slots free (they hold only records beyond the cut).
    pub(crate) invalidate: Vec<usize>,
    /// The log ended in damage: append the next record to a new segment.
    pub(crate) seal_tail: bool,
    /// Segments with unreadable headers (`PointInTime` only): retire them
    /// with a free header under a fresh seq.
    pub(crate) retire_damaged: Vec<usize>,
    pub(crate) report: RecoveryReport,
}

/// A valid record found beyond the end of the log.
struct Evidence {
    lsn: u64,
    lsn_durable_hint: u64,
    slot: usize,
    end_offset: u64,
}

fn segment_bytes(segment: &OpenedSegment) -> Result<Cow<'_, [u8]>, std::io::Error> {
    let len = segment.file.len() as usize;
    if len == 0 {
        return Ok(Cow::Borrowed(&[]));
    }
    if let Some(view) = segment.file.view(0, len) {
        return Ok(Cow::Borrowed(view));
    }
    let mut buf = vec![0u8; len];
    segment.file.read_at(0, &mut buf)?;
    Ok(Cow::Owned(buf))
}

fn position(segment: &OpenedSegment, offset: u64) -> Position {
    Position {
        segment_index: segment.index,
        segment_seq: segment.header.as_ref().map(|header| header.seq).unwrap_or(0),
        offset,
    }
}

fn corruption(segment: &OpenedSegment, offset: u64, lsn_expected: u64, reason: String) -> Corruption {
    Corruption { position: position(segment, offset), lsn_expected, reason }
}

/// Scans `segments` and plans the repair. `visit` sees every record of the
/// recovered log in LSN order, with its payload.
pub(crate) fn scan(
    segments: &[OpenedSegment],
    segment_bytes_configured: u64,
    record_bytes_max: u32,
    mode: RecoveryMode,
    storage_name: &dyn Fn(u32) -> std::path::PathBuf,
    visit: &mut dyn FnMut(&RecordInfo, &[u8]),
) -> Result<Scan, WalError> {
    let input = ScanInput { segments, record_bytes_max, mode, storage_name };
    let mut report = RecoveryReport { segments_scanned: segments.len() as u32, ..RecoveryReport::default() };

    // Headers first: which segments are live, in which order, and what seq comes next.
    let Headers { mut live, mut damaged, seq_max } = read_headers(&input, segment_bytes_configured, &mut report)?;
    let header_of = |slot: usize| segments[slot].header.as_ref().ok().copied();
    live.sort_by_key(|slot| (header_of(*slot).map(|header| header.seq), segments[*slot].index));
    refuse_repeated_laps(&input, &mut live, &mut damaged, &mut report)?;
    // Released LSNs only grow, and every header records the value when its lap
    // began; free headers count too (they keep the fields of the lap they retired).
    let lsn_released = segments
        .iter()
        .filter_map(|segment| segment.header.as_ref().ok())
        .map(|header| header.lsn_released)
        .max()
        .unwrap_or(0);
    report.lsn_released = lsn_released;

    // The log starts in the newest segment that begins at or before the first unreleased LSN;
    // older live segments hold only released records from earlier laps.
    let start =
        live.iter().rposition(|slot| header_of(*slot).is_some_and(|header| header.lsn_first <= lsn_released + 1));
    let start = match (start, live.first()) {
        (Some(start), _) => start,
        (None, None) => 0,
        (None, Some(&oldest)) => {
            let hole = Hole { oldest, lsn_released, seq_max };
            return scan_missing_prefix(&input, live, damaged, hole, report);
        }
    };
    let start = keep_contiguous_predecessors(&input, &live, start);
    let live = live.split_off(start);

    let walked = walk_chain(&input, &live, lsn_released, visit, &mut report)?;
    let lsn_expected = walked.lsn_next;
    let end = walked.end.unwrap_or(EndPlan { zero_range: None, invalidate: Vec::new(), seal_tail: false });
    report.lsn_last = lsn_expected - 1;
    if report.records_recovered == 0 {
        report.lsn_first = lsn_expected;
    }
    for slot in &end.invalidate {
        report.segments_invalidated.push(segments[*slot].index);
    }
    Ok(Scan {
        chain: walked.chain,
        lsn_next: lsn_expected,
        next_seq: seq_max + 1,
        lsn_released,
        zero_range: end.zero_range,
        invalidate: end.invalidate,
        seal_tail: end.seal_tail,
        retire_damaged: damaged,
        report,
    })
}

/// What every step of a scan reads.
struct ScanInput<'a> {
    segments: &'a [OpenedSegment],
    record_bytes_max: u32,
    mode: RecoveryMode,
    storage_name: &'a dyn Fn(u32) -> std::path::PathBuf,
}

impl ScanInput<'_> {
    fn bytes_of<'s>(&self, segment: &'s OpenedSegment) -> Result<Cow<'s, [u8]>, WalError> {
        segment_bytes(segment).map_err(|err| WalError::io("read segment", (self.storage_name)(segment.index), err))
    }
}

/// The segments' headers, sorted out.
struct Headers {
    /// Slots with a live header (unsorted).
    live: Vec<usize>,
    /// Slots with a damaged header (`PointInTime` only; refused otherwise).
    damaged: Vec<usize>,
    /// The highest seq any header or (for damaged segments) any record names.
    seq_max: u64,
}

/// Sorts the segments by header: live, damaged (refused unless
/// `PointInTime`), or free; finds the highest seq in use.
fn read_headers(
    input: &ScanInput<'_>,
    segment_bytes_configured: u64,
    report: &mut RecoveryReport,
) -> Result<Headers, WalError> {
    let mut headers = Headers { live: Vec::new(), damaged: Vec::new(), seq_max: 0 };
    for (slot, segment) in input.segments.iter().enumerate() {
        match &segment.header {
            Ok(header) => {
                if header.segment_bytes != segment_bytes_configured {
                    return Err(WalError::BadSegment {
                        segment_index: segment.index,
                        reason: format!(
                            "header says {} bytes per segment but the log is configured for {}",
                            header.segment_bytes, segment_bytes_configured
                        ),
                    });
                }
                headers.seq_max = headers.seq_max.max(header.seq);
                if header.state == SegmentState::Live {
                    headers.live.push(slot);
                }
            }
            Err(HeaderDefect::Zeroed) => {
                // A segment never started is all zeros: it was created
                // zero-filled and its header is synced before any record.
                // Data behind a zero header means the header was destroyed.
                let bytes = input.bytes_of(segment)?;
                if let Some(at) = first_nonzero(&bytes, SEGMENT_HEADER_BYTES) {
                    let reason = format!(
                        "segment header is zeroed but the segment holds data (first non-zero byte at offset {at}): \
                         the header was destroyed"
                    );
                    note_damaged_header(input, slot, reason, report, &mut headers)?;
                    headers.seq_max = headers.seq_max.max(max_record_seq(&bytes, input.record_bytes_max));
                }
            }
            Err(HeaderDefect::Version(version)) => {
                return Err(WalError::BadSegment {
                    segment_index: segment.index,
                    reason: format!("format version {version} is not supported (this build reads {FORMAT_VERSION})"),
                });
            }
            Err(defect) => {
                note_damaged_header(
                    input,
                    slot,
                    format!("segment header is damaged ({defect:?})"),
                    report,
                    &mut headers,
                )?;
                // Its lap's seq is unknown, and its records carry theirs: keep
                // every one of those numbers from being handed out again, or a
                // new lap could take an old record for one of its own.
                if let Ok(bytes) = segment_bytes(segment) {
                    headers.seq_max = headers.seq_max.max(max_record_seq(&bytes, input.record_bytes_max));
                }
            }
        }
    }
    Ok(headers)
}

/// A lap's seq is unique forever (FORMAT.md): two live segments with the
/// same one mean a segment file was copied over another, and the records
/// the overwritten file held are gone. An error, unless `PointInTime`
/// (then it is reported and the copy with the higher file index is
/// retired). `live` is sorted by seq.
fn refuse_repeated_laps(
    input: &ScanInput<'_>,
    live: &mut Vec<usize>,
    damaged: &mut Vec<usize>,
    report: &mut RecoveryReport,
) -> Result<(), WalError> {
    let seq_of = |slot: usize| input.segments[slot].header.as_ref().ok().map(|header| header.seq);
    while let Some(at) = live.windows(2).position(|pair| seq_of(pair[0]) == seq_of(pair[1])) {
        let (first, second) = (&input.segments[live[at]], &input.segments[live[at + 1]]);
        let reason = format!(
            "segments {} and {} both carry lap seq {}, which the writer never repeats: one file was copied over \
             the other, and the records that file held are gone",
            first.index,
            second.index,
            seq_of(live[at]).unwrap_or(0)
        );
        let detail = corruption(second, 0, 0, reason);
        if input.mode != RecoveryMode::PointInTime {
            return Err(WalError::Corruption(Box::new(detail)));
        }
        report.segments_damaged.push(second.index);
        report.corruption.get_or_insert(detail);
        damaged.push(live.remove(at + 1));
    }
    Ok(())
}

/// A segment's header is damaged: an error, unless `PointInTime` (then it
/// is reported and retired).
fn note_damaged_header(
    input: &ScanInput<'_>,
    slot: usize,
    reason: String,
    report: &mut RecoveryReport,
    headers: &mut Headers,
) -> Result<(), WalError> {
    let segment = &input.segments[slot];
    let detail = corruption(segment, 0, 0, reason);
    if input.mode != RecoveryMode::PointInTime {
        return Err(WalError::Corruption(Box::new(detail)));
    }
    report.segments_damaged.push(segment.index);
    report.corruption.get_or_insert(detail);
    headers.damaged.push(slot);
    Ok(())
}

/// No live segment holds the first unreleased LSN.
struct Hole {
    /// The oldest live segment's slot.
    oldest: usize,
    lsn_released: u64,
    seq_max: u64,
}

/// Records after the released ones are missing: an error, unless
/// `PointInTime`. Then the valid prefix is empty: everything after the hole
/// is dropped, and the log goes on from the first missing LSN.
fn scan_missing_prefix(
    input: &ScanInput<'_>,
    live: Vec<usize>,
    damaged: Vec<usize>,
    hole: Hole,
    mut report: RecoveryReport,
) -> Result<Scan, WalError> {
    let Hole { oldest, lsn_released, seq_max } = hole;
    let segments = input.segments;
    let first = segments[oldest].header.as_ref().map_or(0, |header| header.lsn_first);
    let detail = corruption(
        &segments[oldest],
        0,
        lsn_released + 1,
        format!("records {}..{} are missing: no segment holds them", lsn_released + 1, first),
    );
    if input.mode != RecoveryMode::PointInTime {
        return Err(WalError::Corruption(Box::new(detail)));
    }
    let evidence =
        find_evidence(segments, oldest, SEGMENT_HEADER_BYTES, &live[1..], lsn_released + 1, input.record_bytes_max);
    report.records_dropped += evidence.len() as u64;
    report.corruption.get_or_insert(detail);
    report.lsn_first = lsn_released + 1;
    report.lsn_last = lsn_released;
    report.segments_invalidated = live.iter().map(|slot| segments[*slot].index).collect();
    Ok(Scan {
        chain: Vec::new(),
        lsn_next: lsn_released + 1,
        next_seq: seq_max + 1,
        lsn_released,
        zero_range: None,
        invalidate: live,
        seal_tail: false,
        retire_damaged: damaged,
        report,
    })
}

/// Defence in depth: an older live segment that ends exactly where the start
/// segment begins is kept too. Releasing is only ever a permission to drop
/// records, so retaining a contiguous predecessor can never lose anything,
/// whereas trusting a `lsn_released` that overstates what was released would.
/// Returns the position in `live` where the log starts.
fn keep_contiguous_predecessors(input: &ScanInput<'_>, live: &[usize], start: usize) -> usize {
    let header_of = |slot: usize| input.segments[slot].header.as_ref().ok().copied();
    let mut start = start.min(live.len());
    while start > 0 && start < live.len() {
        let (previous, current) = (live[start - 1], live[start]);
        let (Some(previous_header), Some(current_header)) = (header_of(previous), header_of(current)) else { break };
        let Ok(bytes) = segment_bytes(&input.segments[previous]) else { break };
        let last = lsn_last_contiguous(&bytes, &previous_header, input.record_bytes_max);
        if previous_header.lsn_first >= current_header.lsn_first || last + 1 != current_header.lsn_first {
            break;
        }
        start -= 1;
    }
    start
}

/// The recovered chain of segments and where it ended.
struct Walked {
    chain: Vec<ChainLink>,
    /// The LSN after the last record recovered.
    lsn_next: u64,
    /// How the log ended, unless it ran to the end of its last segment's
    /// records with nothing after it to judge.
    end: Option<EndPlan>,
}

/// Follows the LSN chain through `live` (from the start segment on),
/// visiting every record, until the log ends; judges the end.
fn walk_chain(
    input: &ScanInput<'_>,
    live: &[usize],
    lsn_released: u64,
    visit: &mut dyn FnMut(&RecordInfo, &[u8]),
    report: &mut RecoveryReport,
) -> Result<Walked, WalError> {
    let segments = input.segments;
    let header_of = |slot: usize| segments[slot].header.as_ref().ok().copied();
    let mut chain: Vec<ChainLink> = Vec::new();
    let mut lsn_expected =
        live.first().and_then(|slot| header_of(*slot)).map_or(lsn_released + 1, |header| header.lsn_first);
    report.lsn_first = lsn_expected;
    for (live_idx, &slot) in live.iter().enumerate() {
        let segment = &segments[slot];
        let Some(header) = header_of(slot) else { continue };
        if let Some(previous) = chain.last().copied().filter(|_| header.lsn_first != lsn_expected) {
            // The previous segment ended cleanly but this one does not continue it.
            let reason =
                format!("segment {} starts at lsn {} instead of {}", segment.index, header.lsn_first, lsn_expected);
            let at = (previous.slot, previous.end_offset);
            let end = handle_end(
                segments,
                &live[live_idx..],
                at,
                None,
                lsn_expected,
                input.record_bytes_max,
                input.mode,
                report,
                reason,
            )?;
            return Ok(Walked { chain, lsn_next: lsn_expected, end: Some(end) });
        }
        let bytes = input.bytes_of(segment)?;
        let (offset, stop) =
            read_lap(segment, &bytes, &header, &mut lsn_expected, input.record_bytes_max, visit, report);
        chain.push(ChainLink { slot, seq: header.seq, lsn_first: header.lsn_first, end_offset: offset });
        let next_continues =
            live.get(live_idx + 1).and_then(|next| header_of(*next)).is_some_and(|next| next.lsn_first == lsn_expected);
        if next_continues {
            // Whatever follows the last record here (zeros, stale bytes of an
            // earlier lap) is unused space: the writer rolled to the next segment.
            continue;
        }
        let reason = describe_stop(stop, lsn_expected);
        let later = &live[live_idx + 1..];
        let end = handle_end(
            segments,
            later,
            (slot, offset),
            Some(stop),
            lsn_expected,
            input.record_bytes_max,
            input.mode,
            report,
            reason,
        )?;
        return Ok(Walked { chain, lsn_next: lsn_expected, end: Some(end) });
    }
    Ok(Walked { chain, lsn_next: lsn_expected, end: None })
}

/// Reads the records of one lap in LSN order from its start, visiting each;
/// returns the offset after the last one and the slot that stopped the run.
fn read_lap(
    segment: &OpenedSegment,
    bytes: &[u8],
    header: &SegmentHeader,
    lsn_expected: &mut u64,
    record_bytes_max: u32,
    visit: &mut dyn FnMut(&RecordInfo, &[u8]),
    report: &mut RecoveryReport,
) -> (u64, Slot) {
    let mut offset = SEGMENT_HEADER_BYTES;
    loop {
        match decode_slot(bytes, offset, header.seq, record_bytes_max) {
            Slot::Record(record) if record.lsn == *lsn_expected => {
                let payload_start = (offset + RECORD_HEADER_BYTES) as usize;
                let payload = &bytes[payload_start..payload_start + record.len as usize];
                let info = RecordInfo {
                    segment_index: segment.index,
                    offset,
                    lsn: record.lsn,
                    kind: record.kind,
                    len: record.len,
                };
                visit(&info, payload);
                report.records_recovered += 1;
                *lsn_expected += 1;
                offset += record.frame_bytes();
            }
            other => return (offset, other),
        }
    }
}

/// The LSN of the last record in the unbroken run from the start of a
/// segment lap (`lsn_first - 1` if there is none).
fn lsn_last_contiguous(bytes: &[u8], header: &SegmentHeader, record_bytes_max: u32) -> u64 {
    let mut lsn_expected = header.lsn_first;
    let mut offset = SEGMENT_HEADER_BYTES;
    while let Slot::Record(record) = decode_slot(bytes, offset, header.seq, record_bytes_max) {
        if record.lsn != lsn_expected {
            break;
        }
        lsn_expected += 1;
        offset += record.frame_bytes();
    }
    lsn_expected - 1
}

/// Offset of the first non-zero byte at or after `from`.
fn first_nonzero(bytes: &[u8], from: u64) -> Option<u64> {
    let tail = bytes.get(from as usize..)?;
    let mut at = 0usize;
    // This runs over every never-started segment at open: OR-folding a
    // page at a time vectorises, a byte-wise search would not.
    for chunk in tail.chunks(4096) {
        if chunk.iter().fold(0u8, |acc, byte| acc | byte) != 0 {
            return Some(from + (at + chunk.iter().position(|byte| *byte != 0)?) as u64);
        }
        at += chunk.len();
    }
    None
}

/// The highest `seq` of any valid record at any aligned offset of `bytes`.
fn max_record_seq(bytes: &[u8], record_bytes_max: u32) -> u64 {
    let mut seq_max = 0;
    let mut position = SEGMENT_HEADER_BYTES;
    while position + RECORD_HEADER_BYTES <= bytes.len() as u64 {
        if let Slot::Stale(record) = decode_slot(bytes, position, u64::MAX, record_bytes_max) {
            seq_max = seq_max.max(record.seq);
        }
        position += RECORD_ALIGN;
    }
    seq_max
}

fn describe_stop(stop: Slot, lsn_expected: u64) -> String {
    match stop {
        Slot::Record(record) => format!("valid record has lsn {} where {} belongs", record.lsn, lsn_expected),
        Slot::Zeroed => "zero bytes where the record belongs".to_string(),
        Slot::End => "the segment ends where the record belongs".to_string(),
        Slot::Stale(header) => format!("a record of an earlier lap (seq {}) where the record belongs", header.seq),
        Slot::Invalid(Some(header)) => format!("record header (lsn field {}) fails its checks", header.lsn),
        Slot::Invalid(None) => "bytes that do not parse as a record header".to_string(),
    }
}

struct EndPlan {
    zero_range: Option<(usize, u64, u64)>,
    invalidate: Vec<usize>,
    seal_tail: bool,
}

/// Decides what the end of the log at `at` is: a clean end, a torn tail of
/// never-durable records (cut it), or damage to durable records (refuse,
/// unless `PointInTime`). `later` are the live segments after it.
#[allow(clippy::too_many_arguments)]
fn handle_end(
    segments: &[OpenedSegment],
    later: &[usize],
    at: (usize, u64),
    stop: Option<Slot>,
    lsn_expected: u64,
    record_bytes_max: u32,
    mode: RecoveryMode,
    report: &mut RecoveryReport,
    reason: String,
) -> Result<EndPlan, WalError> {
    let (slot, offset) = at;
    let segment = &segments[slot];
    let evidence = find_evidence(segments, slot, offset, later, lsn_expected, record_bytes_max);
    let durable_proof = evidence.iter().find(|found| found.lsn_durable_hint >= lsn_expected);
    let lap_seq = segment.header.as_ref().map_or(0, |header| header.seq);
    let torn_frame_end = match stop {
        Some(Slot::Invalid(Some(header)))
            if header.seq == lap_seq && header.lsn == lsn_expected && header.len <= record_bytes_max =>
        {
            // The header of this very record reached the disk, its body did
            // not (or rotted): a torn write of the current lap.
            Some((offset + header.frame_bytes()).min(segment.file.len()))
        }
        Some(Slot::Invalid(_))
            if !names_this_record(segment, offset, lap_seq, lsn_expected)
                && stale_lap_follows(segment, offset, lap_seq, record_bytes_max) =>
        {
            // The new lap ended inside a frame of an earlier lap, whose
            // records still follow: the old bytes here are unused space, not
            // damage (FORMAT.md, "Recovery", step 4). Reporting them would
            // raise an alarm on every healthy restart once the ring laps.
            None
        }
        Some(Slot::Invalid(_)) | Some(Slot::Record(_)) => Some((offset + RECORD_HEADER_BYTES).min(segment.file.len())),
        // Zeros, a whole record of an earlier lap, or the segment's end: a clean end.
        Some(Slot::Zeroed) | Some(Slot::Stale(_)) | Some(Slot::End) | None => None,
    };
    let clean = evidence.is_empty() && torn_frame_end.is_none() && later.is_empty();
    if clean {
        return Ok(EndPlan { zero_range: None, invalidate: Vec::new(), seal_tail: false });
    }

    let evidence_end_here = evidence.iter().filter(|found| found.slot == slot).map(|found| found.end_offset).max();
    let damage_end = evidence_end_here.into_iter().chain(torn_frame_end).max().unwrap_or(offset);
    let bytes_cut_later: u64 = evidence
        .iter()
        .filter(|found| found.slot != slot)
        .map(|found| found.end_offset - SEGMENT_HEADER_BYTES)
        .max()
        .unwrap_or(0);
    let detail = corruption(segment, offset, lsn_expected, reason);

    if let Some(proof) = durable_proof {
        let detail = Corruption {
            reason: format!(
                "{}; record {} was durable (record {} was written after it became durable), so this is not a torn write",
                detail.reason, lsn_expected, proof.lsn
            ),
            ..detail
        };
        if mode != RecoveryMode::PointInTime {
            return Err(WalError::Corruption(Box::new(detail)));
        }
        report.corruption.get_or_insert(detail);
    } else {
        if mode == RecoveryMode::AbsoluteConsistency {
            return Err(WalError::Corruption(Box::new(detail)));
        }
        report.tail_damage = Some(detail);
    }
    report.records_dropped += evidence.len() as u64;
    report.bytes_cut += (damage_end - offset) + bytes_cut_later;
    let zero_range = (damage_end > offset).then_some((slot, offset, damage_end));
    Ok(EndPlan { zero_range, invalidate: later.to_vec(), seal_tail: true })
}

/// True if the bytes at `offset` carry this lap's `seq` and the expected LSN
/// where a record header keeps them, one of the two possibly damaged in a
/// single byte: a frame of the current lap that is damaged (a flipped bit,
/// or a damaged byte, changes at most one of the two), never the leftovers
/// of an earlier lap, whose records carry older seqs and LSNs. One field
/// alone is not enough: an earlier lap's payload can hold the expected LSN
/// by chance (a short id such as `e7` puts 55 there), and took a cleanly
/// closed log for a damaged one.
fn names_this_record(segment: &OpenedSegment, offset: u64, lap_seq: u64, lsn_expected: u64) -> bool {
    let mut raw = [0u8; RECORD_HEADER_BYTES as usize];
    if offset + RECORD_HEADER_BYTES > segment.file.len() || segment.file.read_at(offset, &mut raw).is_err() {
        return false;
    }
    let field = |at: usize| {
        let mut word = [0u8; 8];
        word.copy_from_slice(&raw[at..at + 8]);
        u64::from_le_bytes(word)
    };
    // Bytes in which two words differ.
    let bytes_apart = |a: u64, b: u64| (a ^ b).to_le_bytes().iter().filter(|byte| **byte != 0).count();
    // Offsets of `lsn` and `seq` in the record frame (FORMAT.md).
    let (lsn, seq) = (field(8), field(16));
    (lsn == lsn_expected && bytes_apart(seq, lap_seq) <= 1) || (seq == lap_seq && bytes_apart(lsn, lsn_expected) <= 1)
}

/// True if a whole record of an earlier lap lies at some aligned offset at or
/// after `offset`: then the segment was reused, and bytes at the end of the
/// current lap that form no record of it are what the earlier lap left.
/// A segment on its first lap was zero-filled, so there, anything but zeros
/// after the last record is a torn write.
fn stale_lap_follows(segment: &OpenedSegment, offset: u64, lap_seq: u64, record_bytes_max: u32) -> bool {
    let Ok(bytes) = segment_bytes(segment) else { return false };
    let mut position = offset;
    while position + RECORD_HEADER_BYTES <= bytes.len() as u64 {
        let candidate = RecordHeader::parse(&bytes[position as usize..]).is_some_and(|record| record.seq < lap_seq);
        if candidate {
            if let Slot::Stale(_) = decode_slot(&bytes, position, lap_seq, record_bytes_max) {
                return true;
            }
        }
        position += RECORD_ALIGN;
    }
    false
}

/// Valid records of the current lap beyond the end of the log: after `offset`
/// in `slot` (at every aligned position, since frame boundaries past damage
/// are unknown) and in every later live segment.
fn find_evidence(
    segments: &[OpenedSegment],
    slot: usize,
    offset: u64,
    later: &[usize],
    lsn_expected: u64,
    record_bytes_max: u32,
) -> Vec<Evidence> {
    let mut evidence = Vec::new();
    let mut search = |slot: usize, from: u64, every_position: bool| {
        let segment = &segments[slot];
        let Ok(header) = segment.header else { return };
        let Ok(bytes) = segment_bytes(segment) else { return };
        let mut position = from;
        while position + RECORD_HEADER_BYTES <= bytes.len() as u64 {
            let plausible =
                RecordHeader::parse(&bytes[position as usize..]).is_some_and(|record| record.lsn >= lsn_expected);
            if plausible {
                if let Slot::Record(record) = decode_slot(&bytes, position, header.seq, record_bytes_max) {
                    let end_offset = position + record.frame_bytes();
                    evidence.push(Evidence {
                        lsn: record.lsn,
                        lsn_durable_hint: record.lsn_durable_hint(),
                        slot,
                        end_offset,
                    });
                    position = end_offset;
                    continue;
                }
            }
            if !every_position {
                return;
            }
            position += RECORD_ALIGN;
        }
    };
    search(slot, offset, true);
    for later_slot in later {
        search(*later_slot, SEGMENT_HEADER_BYTES, true);
    }
    evidence
}
