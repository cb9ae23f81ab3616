//! `Reader`: iterates records from any retained LSN while appends go on.

use std::sync::Arc;

use crate::error::{Corruption, Position, WalError};
use crate::format::Lsn;
use crate::format::{decode_slot, RecordHeader, Slot, RECORD_HEADER_BYTES, SEGMENT_HEADER_BYTES};
use crate::ring::LiveSegment;
use crate::segment::Segment;
use crate::shared::{lock_inner, Shared};

/// A record read back from the log.
///
/// ```
/// use recwal_wal::{SyncPolicy, Wal, WalConfig};
/// let dir = tempfile::tempdir()?;
/// let wal = Wal::open(dir.path(), WalConfig::default().segment_bytes(1 << 20).sync_policy(SyncPolicy::Always))?;
/// wal.append(7, b"hello")?;
/// let record = wal.read_from(1)?.next().ok_or("empty")??;
/// assert_eq!((record.lsn(), record.kind(), record.payload()), (1, 7, &b"hello"[..]));
/// assert_eq!(format!("{record:?}"), "Record { lsn: 1, kind: 7, len: 5 }");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Record {
    lsn: Lsn,
    kind: u8,
    payload: Payload,
}

enum Payload {
    /// Borrowed from the segment's memory map; holding the `Arc` keeps the
    /// segment from being recycled under the view.
    Mapped {
        segment: Arc<Segment>,
        start: u64,
        len: usize,
    },
    Owned(Vec<u8>),
}

impl Record {
    /// The record's LSN.
    ///
    /// ```
    /// use recwal_wal::{SyncPolicy, Wal, WalConfig};
    /// let dir = tempfile::tempdir()?;
    /// let wal = Wal::open(dir.path(), WalConfig::default().segment_bytes(1 << 20).sync_policy(SyncPolicy::Always))?;
    /// wal.append(7, b"hello")?;
    /// let record = wal.read_from(1)?.next().ok_or("empty")??;
    /// assert_eq!(record.lsn(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn lsn(&self) -> Lsn {
        self.lsn
    }

    /// The kind given to `append`.
    ///
    /// ```
    /// use recwal_wal::{SyncPolicy, Wal, WalConfig};
    /// let dir = tempfile::tempdir()?;
    /// let wal = Wal::open(dir.path(), WalConfig::default().segment_bytes(1 << 20).sync_policy(SyncPolicy::Always))?;
    /// wal.append(7, b"hello")?;
    /// let record = wal.read_from(1)?.next().ok_or("empty")??;
    /// assert_eq!(record.kind(), 7);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn kind(&self) -> u8 {
        self.kind
    }

    /// The payload; zero-copy from the map for file-backed logs.
    ///
    /// ```
    /// use recwal_wal::{SyncPolicy, Wal, WalConfig};
    /// let dir = tempfile::tempdir()?;
    /// let wal = Wal::open(dir.path(), WalConfig::default().segment_bytes(1 << 20).sync_policy(SyncPolicy::Always))?;
    /// wal.append(7, b"hello")?;
    /// let record = wal.read_from(1)?.next().ok_or("empty")??;
    /// assert_eq!(record.payload(), b"hello");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn payload(&self) -> &[u8] {
        match &self.payload {
            Payload::Mapped { segment, start, len } => segment.file.view(*start, *len).unwrap_or(&[]),
            Payload::Owned(bytes) => bytes,
        }
    }
}

impl std::fmt::Debug for Record {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Record")
            .field("lsn", &self.lsn)
            .field("kind", &self.kind)
            .field("len", &self.payload().len())
            .finish()
    }
}

/// Iterates records in LSN order, from a starting LSN up to the last record
/// that is durable (or written, for a log opened with `SyncPolicy::Never`)
/// at the time of each `next` call. `None` means "caught up": calling `next`
/// again later yields records appended since. Every CRC is checked again on
/// the way out; a record that fails yields an error and ends the iteration.
///
/// ```
/// use recwal_wal::{SyncPolicy, Wal, WalConfig};
/// let dir = tempfile::tempdir()?;
/// let wal = Wal::open(dir.path(), WalConfig::default().segment_bytes(1 << 20).sync_policy(SyncPolicy::Always))?;
/// wal.append(1, b"a")?;
/// let mut reader = wal.read_from(1)?;
/// assert_eq!(reader.next().transpose()?.map(|record| record.lsn()), Some(1));
/// assert!(reader.next().is_none()); // caught up
/// wal.append(2, b"b")?;
/// let record = reader.next().transpose()?.expect("appended since");
/// assert_eq!((record.lsn(), record.kind(), record.payload()), (2, 2, &b"b"[..]));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Reader {
    shared: Arc<Shared>,
    current: Option<LiveSegment>,
    offset: u64,
    lsn_next: Lsn,
    failed: bool,
}

impl Reader {
    pub(crate) fn new(shared: Arc<Shared>, lsn: Lsn) -> Result<Reader, WalError> {
        let reader =
            Reader { shared, current: None, offset: SEGMENT_HEADER_BYTES, lsn_next: lsn.max(1), failed: false };
        // Any LSN handed out may be a starting point, visible or not yet (a
        // staged record, or one a checkpoint released before it was written).
        let (first, last) = {
            let inner = lock_inner(&reader.shared);
            (inner.ring.lsn_first(inner.lsn_next), inner.lsn_next - 1)
        };
        if reader.lsn_next < first || reader.lsn_next > last + 1 {
            return Err(WalError::LsnNotRetained { lsn, first, last });
        }
        Ok(reader)
    }

    /// The LSN the next record will have.
    ///
    /// ```
    /// use recwal_wal::{SyncPolicy, Wal, WalConfig};
    /// let dir = tempfile::tempdir()?;
    /// let wal = Wal::open(dir.path(), WalConfig::default().segment_bytes(1 << 20).sync_policy(SyncPolicy::Always))?;
    /// wal.append(7, b"hello")?;
    /// let mut reader = wal.read_from(1)?;
    /// assert_eq!(reader.lsn_next(), 1);
    /// reader.next();
    /// assert_eq!(reader.lsn_next(), 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn lsn_next(&self) -> Lsn {
        self.lsn_next
    }

    /// Positions on the segment holding `lsn_next`, skipping earlier records in it.
    fn locate(&mut self) -> Result<(), WalError> {
        let (segment, first, last) = {
            let inner = lock_inner(&self.shared);
            let found = inner.ring.holding(self.lsn_next);
            let first = inner.ring.lsn_first(inner.lsn_next);
            (found, first, inner.lsn_next - 1)
        };
        let Some(segment) = segment else {
            return Err(WalError::LsnNotRetained { lsn: self.lsn_next, first, last });
        };
        let mut lsn = segment.lsn_first;
        let mut offset = SEGMENT_HEADER_BYTES;
        while lsn < self.lsn_next {
            match self.decode(&segment, offset) {
                Some(header) if header.lsn == lsn => {
                    offset += header.frame_bytes();
                    lsn += 1;
                }
                _ => return Err(self.corrupt(&segment, offset, lsn)),
            }
        }
        self.current = Some(segment);
        self.offset = offset;
        Ok(())
    }

    fn decode(&self, segment: &LiveSegment, offset: u64) -> Option<RecordHeader> {
        let file = &segment.segment.file;
        let record_max = self.shared.config.record_bytes_readable();
        let header_end = offset.checked_add(RECORD_HEADER_BYTES)?;
        if header_end > file.len() {
            return None;
        }
        let mut header_buf = [0u8; RECORD_HEADER_BYTES as usize];
        file.read_at(offset, &mut header_buf).ok()?;
        let header = RecordHeader::parse(&header_buf)?;
        if header.len > record_max {
            return None;
        }
        let frame_len = (RECORD_HEADER_BYTES + u64::from(header.len)) as usize;
        if offset + frame_len as u64 > file.len() {
            return None;
        }
        let slot = match file.view(offset, frame_len) {
            Some(view) => decode_slot(view, 0, segment.seq, record_max),
            None => {
                let mut buf = vec![0u8; frame_len];
                file.read_at(offset, &mut buf).ok()?;
                decode_slot(&buf, 0, segment.seq, record_max)
            }
        };
        match slot {
            Slot::Record(record) => Some(record),
            _ => None,
        }
    }

    fn corrupt(&self, segment: &LiveSegment, offset: u64, lsn: Lsn) -> WalError {
        WalError::Corruption(Box::new(Corruption {
            position: Position { segment_index: segment.segment.index, segment_seq: segment.seq, offset },
            lsn_expected: lsn,
            reason: "record failed its checks while being read back".to_string(),
        }))
    }

    fn read_current(&mut self) -> Option<Record> {
        let segment = self.current.as_ref()?;
        let header = self.decode(segment, self.offset)?;
        if header.lsn != self.lsn_next {
            return None;
        }
        let start = self.offset + RECORD_HEADER_BYTES;
        let len = header.len as usize;
        let payload = if segment.segment.file.view(start, len).is_some() {
            Payload::Mapped { segment: Arc::clone(&segment.segment), start, len }
        } else {
            let mut buf = vec![0u8; len];
            segment.segment.file.read_at(start, &mut buf).ok()?;
            Payload::Owned(buf)
        };
        Some(Record { lsn: header.lsn, kind: header.kind, payload })
    }
}

impl Iterator for Reader {
    type Item = Result<Record, WalError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.lsn_next > self.shared.lsn_visible() {
            return None;
        }
        if self.current.is_none() {
            if let Err(err) = self.locate() {
                self.failed = true;
                return Some(Err(err));
            }
        }
        let record = match self.read_current() {
            Some(record) => record,
            None => {
                // Not here: the writer rolled to the next segment before this record.
                if let Err(err) = self.locate() {
                    self.failed = true;
                    return Some(Err(err));
                }
                match self.read_current() {
                    Some(record) => record,
                    None => {
                        self.failed = true;
                        let segment = self.current.as_ref()?;
                        return Some(Err(self.corrupt(segment, self.offset, self.lsn_next)));
                    }
                }
            }
        };
        let frame = crate::format::frame_bytes(record.payload().len() as u64);
        self.offset += frame;
        self.lsn_next += 1;
        Some(Ok(record))
    }
}
