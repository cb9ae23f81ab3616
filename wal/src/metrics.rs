//! Counters and histograms, updated with relaxed atomics on the hot path and
//! read as a plain struct (`Wal::metrics`).

use std::sync::atomic::{AtomicU64, Ordering};

const BUCKETS: usize = 64;

/// A lock-free histogram with power-of-two buckets: bucket `i` counts values
/// in `[2^(i-1), 2^i)` (bucket 0 counts zeros). Coarse, but it costs one
/// atomic add per value and never allocates, which matters on the append path.
pub(crate) struct Histogram {
    buckets: [AtomicU64; BUCKETS],
    count: AtomicU64,
    sum: AtomicU64,
}

impl Histogram {
    pub(crate) fn new() -> Self {
        Histogram {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            count: AtomicU64::new(0),
            sum: AtomicU64::new(0),
        }
    }

    pub(crate) fn record(&self, value: u64) {
        let bucket = (u64::BITS - value.leading_zeros()) as usize;
        self.buckets[bucket.min(BUCKETS - 1)].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(value, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> HistogramSnapshot {
        let buckets: Vec<(u64, u64)> = self
            .buckets
            .iter()
            .enumerate()
            .map(|(i, count)| {
                (if i == 0 { 0 } else { (1u64 << (i - 1)).saturating_mul(2) - 1 }, count.load(Ordering::Relaxed))
            })
            .filter(|(_, count)| *count > 0)
            .collect();
        HistogramSnapshot { count: self.count.load(Ordering::Relaxed), sum: self.sum.load(Ordering::Relaxed), buckets }
    }
}

/// A histogram as read at one moment.
///
/// ```
/// use recwal_wal::HistogramSnapshot;
/// // Values 1, 2, 3 and 5: buckets up to 1, up to 3 and up to 7.
/// let snapshot = HistogramSnapshot { count: 4, sum: 11, buckets: vec![(1, 1), (3, 2), (7, 1)] };
/// assert_eq!(snapshot.quantile_upper_bound(0.5), 3);
/// assert_eq!(snapshot.quantile_upper_bound(1.0), 7);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HistogramSnapshot {
    /// Number of values recorded.
    pub count: u64,
    /// Sum of the values.
    pub sum: u64,
    /// Non-empty buckets as (inclusive upper bound, count), ascending.
    pub buckets: Vec<(u64, u64)>,
}

impl HistogramSnapshot {
    /// Upper bound of the bucket holding quantile `q` (0.0..=1.0); 0 if empty.
    ///
    /// ```
    /// use recwal_wal::{SyncPolicy, Wal, WalConfig};
    /// let dir = tempfile::tempdir()?;
    /// let wal = Wal::open(dir.path(), WalConfig::default().segment_bytes(1 << 20).sync_policy(SyncPolicy::Always))?;
    /// wal.append(1, b"a")?;
    /// let syncs = wal.metrics().sync_latency_us;
    /// assert!(syncs.count >= 1);
    /// assert!(syncs.quantile_upper_bound(0.5) <= syncs.quantile_upper_bound(0.99));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn quantile_upper_bound(&self, q: f64) -> u64 {
        let rank = ((self.count as f64) * q.clamp(0.0, 1.0)).ceil() as u64;
        let mut seen = 0;
        for (upper, count) in &self.buckets {
            seen += count;
            if seen >= rank.max(1) {
                return *upper;
            }
        }
        0
    }
}

#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) records_appended: AtomicU64,
    pub(crate) bytes_appended: AtomicU64,
    pub(crate) syncs: AtomicU64,
    pub(crate) sync_failures: AtomicU64,
    pub(crate) full_waits: AtomicU64,
    pub(crate) full_errors: AtomicU64,
    pub(crate) segments_created: AtomicU64,
    pub(crate) segments_recycled: AtomicU64,
    pub(crate) segments_prepared: AtomicU64,
    pub(crate) segment_prepare_waits: AtomicU64,
    pub(crate) staging_overflows: AtomicU64,
}

pub(crate) struct Metrics {
    pub(crate) counters: Counters,
    /// Microseconds per sync call (all segments of one group commit).
    pub(crate) sync_latency_us: Histogram,
    /// Records made durable by one group commit.
    pub(crate) group_records: Histogram,
}

impl Metrics {
    pub(crate) fn new() -> Self {
        Metrics { counters: Counters::default(), sync_latency_us: Histogram::new(), group_records: Histogram::new() }
    }
}

/// Everything the log counts, read at one moment.
///
/// ```
/// use recwal_wal::{SyncPolicy, Wal, WalConfig};
/// let dir = tempfile::tempdir()?;
/// let wal = Wal::open(dir.path(), WalConfig::default().segment_bytes(1 << 20).sync_policy(SyncPolicy::Never))?;
/// wal.append(1, b"a")?;
/// wal.append(1, b"b")?;
/// let metrics = wal.metrics();
/// assert_eq!((metrics.records_appended, metrics.bytes_appended), (2, 2 * 40)); // whole frames
/// assert_eq!((metrics.lsn_written, metrics.lsn_durable, metrics.syncs), (2, 0, 0));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WalMetrics {
    /// Records appended since open.
    pub records_appended: u64,
    /// Frame bytes appended since open (headers and padding included).
    pub bytes_appended: u64,
    /// Successful group commits.
    pub syncs: u64,
    /// Failed syncs or writes of staged records (the first one poisons the log).
    pub sync_failures: u64,
    /// Appends that had to wait for a checkpoint to free a segment.
    pub full_waits: u64,
    /// Appends that gave up with `Full`.
    pub full_errors: u64,
    /// Segment files created since open.
    pub segments_created: u64,
    /// Segments recycled for a new lap since open.
    pub segments_recycled: u64,
    /// Segment files created ahead by the background preparer since open
    /// (counted in `segments_created` too).
    pub segments_prepared: u64,
    /// Appends that needed a new segment while it was still being prepared
    /// and waited for it (the log filled a segment faster than the preparer
    /// zero-filled one); 0 when preparation keeps ahead.
    pub segment_prepare_waits: u64,
    /// Segments holding retained records now.
    pub segments_live: u64,
    /// Segments ready for reuse now.
    pub segments_free: u64,
    /// Bytes of `Always`/`Batch` frames staged in memory, not yet written.
    pub staged_bytes: u64,
    /// Appends that found the staging limit reached (the syncs fell behind)
    /// and wrote the staged frames themselves, without a sync.
    pub staging_overflows: u64,
    /// Latency of each group commit, in microseconds.
    pub sync_latency_us: HistogramSnapshot,
    /// Records made durable by each group commit.
    pub group_records: HistogramSnapshot,
    /// Highest LSN in its file with every record before it (see `Wal::lsn_written`).
    pub lsn_written: u64,
    /// Last LSN handed out, written or still staged in memory.
    pub lsn_appended: u64,
    /// Highest LSN known durable.
    pub lsn_durable: u64,
    /// Highest LSN released by a checkpoint.
    pub lsn_released: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_come_from_the_right_bucket() {
        let histogram = Histogram::new();
        for value in 1..=100u64 {
            histogram.record(value);
        }
        let snapshot = histogram.snapshot();
        assert_eq!(snapshot.count, 100);
        assert_eq!(snapshot.sum, 5050);
        assert_eq!(snapshot.quantile_upper_bound(0.5), 63);
        assert_eq!(snapshot.quantile_upper_bound(1.0), 127);
        assert_eq!(HistogramSnapshot::default().quantile_upper_bound(0.5), 0);
    }
}
