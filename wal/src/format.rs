//! On-disk layout: segment headers and record frames.
//!
//! Pure encode/decode with no I/O, so the fuzzers and the recovery scan share
//! exactly one definition of what a valid byte sequence is. The layout is
//! documented byte by byte in `wal/FORMAT.md`; keep the two in step.

/// A log sequence number: dense, strictly increasing, starting at 1.
///
/// ```
/// use recwal_wal::{Lsn, SyncPolicy, Wal, WalConfig};
/// let dir = tempfile::tempdir()?;
/// let wal = Wal::open(dir.path(), WalConfig::default().segment_bytes(1 << 20).sync_policy(SyncPolicy::Never))?;
/// let first: Lsn = wal.append(1, b"a")?.lsn();
/// let second: Lsn = wal.append(1, b"b")?.lsn();
/// assert_eq!((first, second), (1, 2)); // dense, from 1
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub type Lsn = u64;

/// File name of segment `index`.
pub(crate) fn segment_file_name(index: u32) -> String {
    format!("seg-{index:08}.wal")
}

/// Parses a segment file name back to its index.
pub(crate) fn parse_segment_file_name(name: &str) -> Option<u32> {
    let digits = name.strip_prefix("seg-")?.strip_suffix(".wal")?;
    if digits.len() != 8 || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Magic bytes at the start of every segment file.
///
/// ```
/// use recwal_wal::format::{SegmentHeader, SegmentState, SEGMENT_MAGIC};
/// let header =
///     SegmentHeader { state: SegmentState::Live, seq: 1, lsn_first: 1, lsn_released: 0, segment_bytes: 4096 };
/// assert_eq!(header.encode()[..8], SEGMENT_MAGIC);
/// assert_eq!(&SEGMENT_MAGIC, b"RECWALSG");
/// ```
pub const SEGMENT_MAGIC: [u8; 8] = *b"RECWALSG";
/// Version of the on-disk format written by this crate.
///
/// ```
/// use recwal_wal::format::{SegmentHeader, SegmentState, FORMAT_VERSION};
/// let header =
///     SegmentHeader { state: SegmentState::Live, seq: 1, lsn_first: 1, lsn_released: 0, segment_bytes: 4096 };
/// let bytes = header.encode();
/// assert_eq!(u32::from_le_bytes(bytes[8..12].try_into()?), FORMAT_VERSION);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub const FORMAT_VERSION: u32 = 1;
/// Bytes reserved at the start of a segment for its header.
///
/// ```
/// use recwal_wal::format::{SegmentHeader, SegmentState, RECORD_ALIGN, SEGMENT_HEADER_BYTES};
/// let header =
///     SegmentHeader { state: SegmentState::Live, seq: 1, lsn_first: 1, lsn_released: 0, segment_bytes: 4096 };
/// assert_eq!(header.encode().len() as u64, SEGMENT_HEADER_BYTES);
/// assert_eq!(SEGMENT_HEADER_BYTES % RECORD_ALIGN, 0); // the first record is aligned
/// ```
pub const SEGMENT_HEADER_BYTES: u64 = 64;
/// Bytes of a record header; the payload follows it.
///
/// ```
/// use recwal_wal::format::{frame_bytes, RecordHeader, RECORD_HEADER_BYTES};
/// let header = RecordHeader::new(1, 1, 0, 7, b"");
/// assert_eq!(header.encode().len() as u64, RECORD_HEADER_BYTES);
/// assert_eq!(frame_bytes(0), RECORD_HEADER_BYTES); // an empty record is all header
/// ```
pub const RECORD_HEADER_BYTES: u64 = 32;
/// Every record frame starts on a multiple of this many bytes.
///
/// ```
/// use recwal_wal::format::{frame_bytes, RECORD_ALIGN};
/// for payload_len in 0..20 {
///     assert_eq!(frame_bytes(payload_len) % RECORD_ALIGN, 0);
/// }
/// assert!(RECORD_ALIGN.is_power_of_two());
/// ```
pub const RECORD_ALIGN: u64 = 8;

/// Written after the last frame of every write (in the same write) where a
/// record header still fits before the segment's end: one header's worth of
/// zeros. The next write starts on it and overwrites it. So after a crash the
/// log's last record is always followed by zeros (or by the segment's end),
/// even on a reused segment whose earlier lap left a frame there that runs
/// to the segment's end; without it, those old bytes looked like a torn
/// write (FORMAT.md, "Recovery", step 4).
pub(crate) const END_MARK: [u8; RECORD_HEADER_BYTES as usize] = [0; RECORD_HEADER_BYTES as usize];

/// Whether the end mark is written after a frame ending at `end` of a
/// segment `segment_len` bytes long: when a record header still fits there.
/// (Where it does not, no record can follow in this segment and recovery
/// reads the rest as the segment's end.)
pub(crate) fn end_mark_fits(end: u64, segment_len: u64) -> bool {
    end + RECORD_HEADER_BYTES <= segment_len
}

const _: () = assert!(SEGMENT_HEADER_BYTES.is_multiple_of(RECORD_ALIGN));
const _: () = assert!(RECORD_HEADER_BYTES.is_multiple_of(RECORD_ALIGN));
const _: () = assert!(RECORD_ALIGN.is_power_of_two());

/// What a segment header says about the segment's contents.
///
/// ```
/// use recwal_wal::format::{HeaderDefect, SegmentHeader, SegmentState};
/// // A free header keeps its seq reserved; it need not name a first LSN.
/// let free = SegmentHeader { state: SegmentState::Free, seq: 5, lsn_first: 0, lsn_released: 0, segment_bytes: 4096 };
/// assert_eq!(SegmentHeader::decode(&free.encode()), Ok(free));
/// let live = SegmentHeader { state: SegmentState::Live, ..free };
/// assert_eq!(SegmentHeader::decode(&live.encode()), Err(HeaderDefect::Fields)); // live needs lsn_first >= 1
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SegmentState {
    /// The segment holds records of the log from `lsn_first` on.
    Live,
    /// The segment was invalidated by recovery; its sequence number stays
    /// reserved so that it is never reused for different records.
    Free,
}

impl SegmentState {
    fn to_u32(self) -> u32 {
        match self {
            SegmentState::Live => 1,
            SegmentState::Free => 2,
        }
    }

    fn from_u32(value: u32) -> Option<Self> {
        match value {
            1 => Some(SegmentState::Live),
            2 => Some(SegmentState::Free),
            _ => None,
        }
    }
}

/// The 64-byte header at offset 0 of every segment file.
///
/// ```
/// use recwal_wal::format::{SegmentHeader, SegmentState, SEGMENT_HEADER_BYTES};
/// let header =
///     SegmentHeader { state: SegmentState::Live, seq: 3, lsn_first: 100, lsn_released: 99, segment_bytes: 1 << 20 };
/// let bytes: [u8; SEGMENT_HEADER_BYTES as usize] = header.encode();
/// assert_eq!(SegmentHeader::decode(&bytes), Ok(header));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    /// Live or free.
    pub state: SegmentState,
    /// Sequence number: unique per lap of any segment, increasing over time.
    pub seq: u64,
    /// LSN of the first record this lap of the segment holds.
    pub lsn_first: u64,
    /// Every LSN up to and including this one had been released by a
    /// checkpoint when the segment was started.
    pub lsn_released: u64,
    /// Size of the segment file in bytes.
    pub segment_bytes: u64,
}

/// Why a segment header was rejected.
///
/// ```
/// use recwal_wal::format::{HeaderDefect, SegmentHeader, SegmentState};
/// let header =
///     SegmentHeader { state: SegmentState::Live, seq: 1, lsn_first: 1, lsn_released: 0, segment_bytes: 4096 };
/// assert_eq!(SegmentHeader::decode(&[0u8; 64]), Err(HeaderDefect::Zeroed));
/// let mut bytes = header.encode();
/// bytes[20] ^= 1; // a flipped bit in `seq`
/// assert_eq!(SegmentHeader::decode(&bytes), Err(HeaderDefect::Checksum));
/// bytes[0] = b'X';
/// assert_eq!(SegmentHeader::decode(&bytes), Err(HeaderDefect::Magic));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderDefect {
    /// All 64 bytes are zero: the segment was never started.
    Zeroed,
    /// The magic bytes are wrong.
    Magic,
    /// The CRC does not match.
    Checksum,
    /// The format version is not one this crate reads.
    Version(u32),
    /// The state field has an unknown value.
    State(u32),
    /// The CRC matches but the fields break the format's rules (a zero
    /// `seq` or `lsn_first`, a released LSN at or past the first LSN, or LSNs
    /// too large to be real): written by something other than this crate.
    Fields,
}

/// LSNs never reach this (at a billion records a second, it takes 146 years);
/// anything above is not a real LSN, and keeping LSN arithmetic below it
/// rules out overflow.
///
/// ```
/// use recwal_wal::format::{HeaderDefect, SegmentHeader, SegmentState, LSN_LIMIT};
/// assert!(LSN_LIMIT.checked_add(LSN_LIMIT).is_some()); // sums of two LSNs cannot overflow
/// let header =
///     SegmentHeader { state: SegmentState::Live, seq: 1, lsn_first: LSN_LIMIT, lsn_released: 0, segment_bytes: 4096 };
/// assert_eq!(SegmentHeader::decode(&header.encode()), Err(HeaderDefect::Fields)); // not a real LSN
/// ```
pub const LSN_LIMIT: u64 = 1 << 62;

impl SegmentHeader {
    /// Encodes the header, CRC included.
    ///
    /// ```
    /// use recwal_wal::format::{SegmentHeader, SegmentState};
    /// let header =
    ///     SegmentHeader { state: SegmentState::Live, seq: 2, lsn_first: 10, lsn_released: 9, segment_bytes: 4096 };
    /// let bytes = header.encode();
    /// assert_eq!(bytes[16..24], 2u64.to_le_bytes()); // seq, little endian
    /// assert_eq!(SegmentHeader::decode(&bytes), Ok(header));
    /// ```
    pub fn encode(&self) -> [u8; SEGMENT_HEADER_BYTES as usize] {
        let mut buf = [0u8; SEGMENT_HEADER_BYTES as usize];
        buf[0..8].copy_from_slice(&SEGMENT_MAGIC);
        buf[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        buf[12..16].copy_from_slice(&self.state.to_u32().to_le_bytes());
        buf[16..24].copy_from_slice(&self.seq.to_le_bytes());
        buf[24..32].copy_from_slice(&self.lsn_first.to_le_bytes());
        buf[32..40].copy_from_slice(&self.lsn_released.to_le_bytes());
        buf[40..48].copy_from_slice(&self.segment_bytes.to_le_bytes());
        let crc = crc32fast::hash(&buf[0..60]);
        buf[60..64].copy_from_slice(&crc.to_le_bytes());
        buf
    }

    /// Decodes and checks a header. `bytes` must hold at least 64 bytes.
    ///
    /// ```
    /// use recwal_wal::format::{HeaderDefect, SegmentHeader, SegmentState};
    /// let header =
    ///     SegmentHeader { state: SegmentState::Live, seq: 2, lsn_first: 10, lsn_released: 9, segment_bytes: 4096 };
    /// let bytes = header.encode();
    /// assert_eq!(SegmentHeader::decode(&bytes), Ok(header));
    /// assert_eq!(SegmentHeader::decode(&bytes[..32]), Err(HeaderDefect::Zeroed)); // too short to be a header
    /// ```
    pub fn decode(bytes: &[u8]) -> Result<Self, HeaderDefect> {
        let Some(buf) = bytes.get(0..SEGMENT_HEADER_BYTES as usize) else {
            return Err(HeaderDefect::Zeroed);
        };
        if buf.iter().all(|byte| *byte == 0) {
            return Err(HeaderDefect::Zeroed);
        }
        if buf[0..8] != SEGMENT_MAGIC {
            return Err(HeaderDefect::Magic);
        }
        if crc32fast::hash(&buf[0..60]) != read_u32(buf, 60) {
            return Err(HeaderDefect::Checksum);
        }
        let version = read_u32(buf, 8);
        if version != FORMAT_VERSION {
            return Err(HeaderDefect::Version(version));
        }
        let state_raw = read_u32(buf, 12);
        let state = SegmentState::from_u32(state_raw).ok_or(HeaderDefect::State(state_raw))?;
        let header = SegmentHeader {
            state,
            seq: read_u64(buf, 16),
            lsn_first: read_u64(buf, 24),
            lsn_released: read_u64(buf, 32),
            segment_bytes: read_u64(buf, 40),
        };
        let limits = header.seq < LSN_LIMIT && header.lsn_first < LSN_LIMIT && header.lsn_released < LSN_LIMIT;
        let live_rules = header.seq >= 1 && header.lsn_first >= 1 && header.lsn_released < header.lsn_first;
        if !limits || (state == SegmentState::Live && !live_rules) {
            return Err(HeaderDefect::Fields);
        }
        Ok(header)
    }
}

/// The fixed part of a record frame.
///
/// Layout (little endian): `crc u32 | len u32 | lsn u64 | seq u64 |
/// durable_gap u32 | kind u8 | 3 zero bytes`, then `len` payload bytes, then
/// zero padding to the next multiple of 8. The CRC covers header bytes 4..32
/// (so the segment's sequence number) and the payload: a record left from an
/// earlier lap of a recycled segment carries an older `seq` and is never
/// taken for a record of the current lap.
///
/// ```
/// use recwal_wal::format::{decode_slot, RecordHeader, Slot};
/// let header = RecordHeader::new(1, 5, 4, 9, b"abc");
/// let mut frame = header.encode().to_vec();
/// frame.extend_from_slice(b"abc");
/// frame.resize(header.frame_bytes() as usize, 0);
/// assert_eq!(frame.len(), 40); // 32-byte header, 3-byte payload, 5 bytes of padding
/// assert_eq!(decode_slot(&frame, 0, 1, 1024), Slot::Record(header));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordHeader {
    /// CRC-32 (IEEE, crc32fast) of header bytes 4..32 and the payload.
    pub crc: u32,
    /// Payload length in bytes.
    pub len: u32,
    /// Log sequence number of the record.
    pub lsn: u64,
    /// Sequence number of the segment lap the record was written in.
    pub seq: u64,
    /// `lsn - lsn_durable` when the record was written, saturated at
    /// `u32::MAX`: tells recovery which earlier records were already durable.
    pub durable_gap: u32,
    /// Caller-chosen record kind.
    pub kind: u8,
}

impl RecordHeader {
    /// Builds the header for a payload, computing its CRC.
    ///
    /// ```
    /// use recwal_wal::format::RecordHeader;
    /// let header = RecordHeader::new(1, 5, 4, 9, b"abc");
    /// assert_eq!((header.seq, header.lsn, header.kind, header.len, header.durable_gap), (1, 5, 9, 3, 1));
    /// assert_eq!(header.crc, header.compute_crc(b"abc"));
    /// ```
    pub fn new(seq: u64, lsn: u64, lsn_durable: u64, kind: u8, payload: &[u8]) -> Self {
        debug_assert!(lsn_durable < lsn, "a record cannot be durable before it is written");
        let len = u32::try_from(payload.len()).expect("record length was checked against record_bytes_max");
        let durable_gap = u32::try_from(lsn - lsn_durable).unwrap_or(u32::MAX);
        let mut header = RecordHeader { crc: 0, len, lsn, seq, durable_gap, kind };
        header.crc = header.compute_crc(payload);
        header
    }

    /// The highest LSN the writer knew to be durable when it wrote this record.
    ///
    /// ```
    /// use recwal_wal::format::RecordHeader;
    /// assert_eq!(RecordHeader::new(1, 10, 7, 0, b"").lsn_durable_hint(), 7);
    /// // A gap too large for the header saturates and says nothing.
    /// assert_eq!(RecordHeader::new(1, 1 << 40, 0, 0, b"").lsn_durable_hint(), 0);
    /// ```
    pub fn lsn_durable_hint(&self) -> u64 {
        if self.durable_gap == u32::MAX {
            return 0;
        }
        self.lsn.saturating_sub(u64::from(self.durable_gap))
    }

    /// Encodes the header bytes.
    ///
    /// ```
    /// use recwal_wal::format::RecordHeader;
    /// let header = RecordHeader::new(1, 5, 4, 9, b"abc");
    /// let bytes = header.encode();
    /// assert_eq!(bytes[0..4], header.crc.to_le_bytes());
    /// assert_eq!(RecordHeader::parse(&bytes), Some(header));
    /// ```
    pub fn encode(&self) -> [u8; RECORD_HEADER_BYTES as usize] {
        let mut buf = [0u8; RECORD_HEADER_BYTES as usize];
        buf[0..4].copy_from_slice(&self.crc.to_le_bytes());
        self.encode_body(&mut buf);
        buf
    }

    fn encode_body(&self, buf: &mut [u8; RECORD_HEADER_BYTES as usize]) {
        buf[4..8].copy_from_slice(&self.len.to_le_bytes());
        buf[8..16].copy_from_slice(&self.lsn.to_le_bytes());
        buf[16..24].copy_from_slice(&self.seq.to_le_bytes());
        buf[24..28].copy_from_slice(&self.durable_gap.to_le_bytes());
        buf[28] = self.kind;
        buf[29..32].copy_from_slice(&[0, 0, 0]);
    }

    /// Parses the header bytes without checking the CRC.
    /// Returns `None` if the reserved bytes are not zero.
    ///
    /// ```
    /// use recwal_wal::format::RecordHeader;
    /// let header = RecordHeader::new(1, 5, 4, 9, b"abc");
    /// let mut bytes = header.encode();
    /// assert_eq!(RecordHeader::parse(&bytes), Some(header));
    /// bytes[30] = 1; // a reserved byte
    /// assert_eq!(RecordHeader::parse(&bytes), None);
    /// ```
    pub fn parse(buf: &[u8]) -> Option<Self> {
        let buf = buf.get(0..RECORD_HEADER_BYTES as usize)?;
        if buf[29..32] != [0, 0, 0] {
            return None;
        }
        Some(RecordHeader {
            crc: read_u32(buf, 0),
            len: read_u32(buf, 4),
            lsn: read_u64(buf, 8),
            seq: read_u64(buf, 16),
            durable_gap: read_u32(buf, 24),
            kind: buf[28],
        })
    }

    /// CRC of this header's fields (all but the CRC itself) and `payload`.
    ///
    /// ```
    /// use recwal_wal::format::RecordHeader;
    /// let header = RecordHeader::new(1, 5, 4, 9, b"abc");
    /// assert_eq!(header.compute_crc(b"abc"), header.crc);
    /// assert_ne!(header.compute_crc(b"abd"), header.crc); // the payload is covered
    /// ```
    pub fn compute_crc(&self, payload: &[u8]) -> u32 {
        let mut body = [0u8; RECORD_HEADER_BYTES as usize];
        self.encode_body(&mut body);
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&body[4..]);
        hasher.update(payload);
        hasher.finalize()
    }

    /// Total bytes the frame occupies, padding included.
    ///
    /// ```
    /// use recwal_wal::format::RecordHeader;
    /// assert_eq!(RecordHeader::new(1, 1, 0, 0, b"").frame_bytes(), 32);
    /// assert_eq!(RecordHeader::new(1, 1, 0, 0, b"abc").frame_bytes(), 40);
    /// ```
    pub fn frame_bytes(&self) -> u64 {
        frame_bytes(u64::from(self.len))
    }
}

/// Bytes a record with `payload_len` bytes of payload occupies on disk.
///
/// ```
/// use recwal_wal::format::frame_bytes;
/// assert_eq!(frame_bytes(0), 32);
/// assert_eq!(frame_bytes(1), 40);
/// assert_eq!(frame_bytes(8), 40);
/// assert_eq!(frame_bytes(9), 48);
/// ```
pub fn frame_bytes(payload_len: u64) -> u64 {
    align_up(RECORD_HEADER_BYTES + payload_len)
}

/// Rounds `value` up to the record alignment.
///
/// ```
/// use recwal_wal::format::align_up;
/// assert_eq!((align_up(0), align_up(1), align_up(8), align_up(33)), (0, 8, 8, 40));
/// ```
pub fn align_up(value: u64) -> u64 {
    (value + RECORD_ALIGN - 1) & !(RECORD_ALIGN - 1)
}

/// What was found at one record position.
///
/// ```
/// use recwal_wal::format::{decode_slot, RecordHeader, Slot};
/// let header = RecordHeader::new(3, 1, 0, 7, b"payload");
/// let mut frame = header.encode().to_vec();
/// frame.extend_from_slice(b"payload");
/// assert_eq!(decode_slot(&frame, 0, 3, 1024), Slot::Record(header));
/// assert_eq!(decode_slot(&frame, 0, 4, 1024), Slot::Stale(header)); // left from lap 3, read in lap 4
/// assert_eq!(decode_slot(&[0u8; 64], 0, 3, 1024), Slot::Zeroed);
/// assert_eq!(decode_slot(&frame, 16, 3, 1024), Slot::End); // no room for a header
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    /// A valid record of this lap: header, and payload at `offset + 32`.
    Record(RecordHeader),
    /// Zero bytes: nothing was ever written here on this lap.
    Zeroed,
    /// A whole, valid record of an earlier lap of the segment: unused space.
    Stale(RecordHeader),
    /// Bytes that form no valid record (a torn write, or corruption). The
    /// header as parsed, if its reserved bytes were zero.
    Invalid(Option<RecordHeader>),
    /// The segment ends before a header fits.
    End,
}

/// Decodes the slot at `offset` of a segment image `bytes` whose current lap
/// has sequence number `seq`. `record_bytes_max` bounds the payload length.
///
/// This is the single definition of a valid record: the recovery scan, the
/// reader and the fuzzers all go through it.
///
/// ```
/// use recwal_wal::format::{decode_slot, RecordHeader, Slot};
/// let header = RecordHeader::new(3, 1, 0, 7, b"payload");
/// let mut frame = header.encode().to_vec();
/// frame.extend_from_slice(b"payload");
/// assert_eq!(decode_slot(&frame, 0, 3, 1024), Slot::Record(header));
/// frame[33] ^= 1; // torn or rotten payload
/// assert_eq!(decode_slot(&frame, 0, 3, 1024), Slot::Invalid(Some(header)));
/// assert_eq!(decode_slot(&frame, 0, 3, 4), Slot::Invalid(Some(header))); // longer than record_bytes_max
/// ```
pub fn decode_slot(bytes: &[u8], offset: u64, seq: u64, record_bytes_max: u32) -> Slot {
    let Ok(start) = usize::try_from(offset) else {
        return Slot::End;
    };
    let Some(header_bytes) = start.checked_add(RECORD_HEADER_BYTES as usize).and_then(|end| bytes.get(start..end))
    else {
        return Slot::End;
    };
    if header_bytes.iter().all(|byte| *byte == 0) {
        return Slot::Zeroed;
    }
    let Some(header) = RecordHeader::parse(header_bytes) else {
        return Slot::Invalid(None);
    };
    if header.len > record_bytes_max || header.durable_gap == 0 || header.lsn == 0 || header.lsn >= LSN_LIMIT {
        return Slot::Invalid(Some(header));
    }
    let payload_start = start + RECORD_HEADER_BYTES as usize;
    let Some(payload) = payload_start.checked_add(header.len as usize).and_then(|end| bytes.get(payload_start..end))
    else {
        return Slot::Invalid(Some(header));
    };
    // The stored header bytes 4..32 are exactly what `encode_body` produces
    // (every field round-trips and the reserved bytes were checked), so the
    // CRC runs over the frame as it lies: one pass, no copy.
    let covered = &bytes[start + 4..payload_start + payload.len()];
    if crc32fast::hash(covered) != header.crc {
        return Slot::Invalid(Some(header));
    }
    match header.seq.cmp(&seq) {
        std::cmp::Ordering::Equal => Slot::Record(header),
        std::cmp::Ordering::Less => Slot::Stale(header),
        // A lap newer than the segment's own header cannot exist in a log this
        // crate wrote: the header is synced before any record of its lap.
        std::cmp::Ordering::Greater => Slot::Invalid(Some(header)),
    }
}

fn read_u32(buf: &[u8], at: usize) -> u32 {
    let mut raw = [0u8; 4];
    raw.copy_from_slice(&buf[at..at + 4]);
    u32::from_le_bytes(raw)
}

fn read_u64(buf: &[u8], at: usize) -> u64 {
    let mut raw = [0u8; 8];
    raw.copy_from_slice(&buf[at..at + 8]);
    u64::from_le_bytes(raw)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn frame(seq: u64, lsn: u64, durable: u64, kind: u8, payload: &[u8]) -> Vec<u8> {
        let header = RecordHeader::new(seq, lsn, durable, kind, payload);
        let mut out = header.encode().to_vec();
        out.extend_from_slice(payload);
        out.resize(header.frame_bytes() as usize, 0);
        out
    }

    proptest! {
        #[test]
        fn record_round_trips(seq in any::<u64>(), lsn in 1u64..LSN_LIMIT, kind in any::<u8>(), payload in proptest::collection::vec(any::<u8>(), 0..300)) {
            let durable = lsn - 1;
            let bytes = frame(seq, lsn, durable, kind, &payload);
            prop_assert_eq!(bytes.len() as u64 % RECORD_ALIGN, 0);
            match decode_slot(&bytes, 0, seq, 1024) {
                Slot::Record(header) => {
                    prop_assert_eq!(header.lsn, lsn);
                    prop_assert_eq!(header.kind, kind);
                    prop_assert_eq!(header.len as usize, payload.len());
                    prop_assert_eq!(header.lsn_durable_hint(), durable);
                    prop_assert_eq!(&bytes[32..32 + payload.len()], &payload[..]);
                }
                other => prop_assert!(false, "decoded {:?}", other),
            }
        }

        #[test]
        fn a_record_never_validates_under_another_sequence_number(seq in any::<u64>(), other in any::<u64>(), payload in proptest::collection::vec(any::<u8>(), 0..64)) {
            prop_assume!(seq != other);
            let bytes = frame(seq, 7, 6, 1, &payload);
            prop_assert!(!matches!(decode_slot(&bytes, 0, other, 1024), Slot::Record(_)));
        }

        #[test]
        fn any_single_bit_flip_is_detected(payload in proptest::collection::vec(any::<u8>(), 1..64), bit in 0usize..(96 * 8)) {
            let mut bytes = frame(3, 9, 8, 2, &payload);
            let covered = 32 + payload.len();
            let bit = bit % (covered * 8);
            bytes[bit / 8] ^= 1 << (bit % 8);
            prop_assert!(!matches!(decode_slot(&bytes, 0, 3, 1024), Slot::Record(_)));
            prop_assert!(!matches!(decode_slot(&bytes, 0, 3, 1024), Slot::Stale(_)));
        }

        #[test]
        fn segment_header_round_trips(seq in 1..LSN_LIMIT, first in 1..LSN_LIMIT, released in 0..LSN_LIMIT, size in any::<u64>()) {
            prop_assume!(released < first);
            let header = SegmentHeader { state: SegmentState::Live, seq, lsn_first: first, lsn_released: released, segment_bytes: size };
            prop_assert_eq!(SegmentHeader::decode(&header.encode()), Ok(header));
        }
    }

    #[test]
    fn zero_bytes_are_an_empty_slot_not_a_record() {
        let bytes = [0u8; 64];
        assert_eq!(decode_slot(&bytes, 0, 1, 1024), Slot::Zeroed);
        assert_eq!(decode_slot(&bytes, 40, 1, 1024), Slot::End);
        assert_eq!(SegmentHeader::decode(&bytes), Err(HeaderDefect::Zeroed));
    }

    #[test]
    fn a_record_of_an_earlier_lap_is_stale_not_live() {
        let bytes = frame(4, 10, 9, 1, b"old lap");
        assert!(matches!(decode_slot(&bytes, 0, 5, 1024), Slot::Stale(header) if header.seq == 4));
        assert!(matches!(decode_slot(&bytes, 0, 3, 1024), Slot::Invalid(Some(_))));
    }

    #[test]
    fn oversize_length_is_rejected_before_reading_the_payload() {
        let mut bytes = frame(1, 1, 0, 0, b"abc");
        bytes[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(decode_slot(&bytes, 0, 1, 1024), Slot::Invalid(Some(_))));
    }
}
