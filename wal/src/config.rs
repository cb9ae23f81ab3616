//! `WalConfig`: every limit with its default and valid range.

use std::time::Duration;

use crate::error::WalError;
use crate::format::{RECORD_HEADER_BYTES, SEGMENT_HEADER_BYTES};

const BATCH_DELAY_DEFAULT: Duration = Duration::from_millis(2);
const BATCH_BYTES_DEFAULT: u64 = 1 << 20;

/// The largest payload a segment of `segment_bytes` can hold.
fn payload_room(segment_bytes: u64) -> u32 {
    let room = segment_bytes.saturating_sub(SEGMENT_HEADER_BYTES + RECORD_HEADER_BYTES);
    u32::try_from(room).unwrap_or(u32::MAX)
}

/// When an appended record is made durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
///
/// ```
/// use recwal_wal::{SyncPolicy, Wal, WalConfig};
/// use std::time::Duration;
/// let dir = tempfile::tempdir()?;
/// let policy = SyncPolicy::Batch { max_delay: Duration::from_millis(2), max_bytes: 1 << 20 };
/// let wal = Wal::open(dir.path(), WalConfig::default().segment_bytes(1 << 20).sync_policy(policy))?;
/// let ticket = wal.append(1, b"grouped")?; // returns at once
/// ticket.wait()?; // within max_delay plus one sync
/// assert_eq!(SyncPolicy::batch_default(), SyncPolicy::Batch { max_delay: Duration::from_millis(2), max_bytes: 1 << 20 });
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub enum SyncPolicy {
    /// The append returns after the record is synced to stable storage.
    /// Concurrent appenders share one sync (leader/follower group commit).
    Always,
    /// Group commit: a flusher thread writes and syncs every appended record
    /// at most `max_delay` after the first unsynced append, or as soon as
    /// `max_bytes` are waiting. The append returns at once with a ticket;
    /// until the flusher writes it, the record is staged in this process's
    /// memory, so a crash of the process (not only a power loss) may lose
    /// records not yet acknowledged.
    Batch {
        /// Longest a record waits for its sync.
        max_delay: Duration,
        /// Sync as soon as this many bytes are unsynced.
        max_bytes: u64,
    },
    /// Never sync on the log's own initiative: records reach the OS page
    /// cache at once and the disk when the OS writes them back or when
    /// `Wal::sync` or a ticket wait asks.
    Never,
}

impl SyncPolicy {
    /// `Batch` with 2 ms and 1 MiB.
    ///
    /// ```
    /// use recwal_wal::{SyncPolicy, WalConfig};
    /// use std::time::Duration;
    /// let policy = SyncPolicy::batch_default();
    /// assert_eq!(policy, SyncPolicy::Batch { max_delay: Duration::from_millis(2), max_bytes: 1 << 20 });
    /// assert_eq!(WalConfig::default().sync_policy, policy); // the default of every log
    /// ```
    pub const fn batch_default() -> Self {
        SyncPolicy::Batch { max_delay: BATCH_DELAY_DEFAULT, max_bytes: BATCH_BYTES_DEFAULT }
    }

    /// The per-append durability that matches this policy: what an append
    /// that names none gets. The one place the mapping is written.
    ///
    /// ```
    /// use recwal_wal::{Durability, SyncPolicy};
    /// assert_eq!(SyncPolicy::Always.default_durability(), Durability::Always);
    /// assert_eq!(SyncPolicy::batch_default().default_durability(), Durability::Batch);
    /// assert_eq!(SyncPolicy::Never.default_durability(), Durability::Never);
    /// ```
    pub const fn default_durability(self) -> Durability {
        match self {
            SyncPolicy::Always => Durability::Always,
            SyncPolicy::Batch { .. } => Durability::Batch,
            SyncPolicy::Never => Durability::Never,
        }
    }
}

/// Per-append override of the log's policy. `Batch` uses the log's batch
/// parameters (its own if it was opened with `Batch`, else the defaults).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
///
/// ```
/// use recwal_wal::{Durability, SyncPolicy, Wal, WalConfig};
/// let dir = tempfile::tempdir()?;
/// let wal = Wal::open(dir.path(), WalConfig::default().segment_bytes(1 << 20).sync_policy(SyncPolicy::Always))?;
/// let cheap = wal.append_with(1, b"log line", Durability::Never)?;
/// assert!(!cheap.is_durable()); // this append alone skips the sync
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub enum Durability {
    /// Synced before `append` returns.
    Always,
    /// Synced by the group-commit flusher.
    Batch,
    /// Not synced unless someone asks.
    Never,
}

/// What `open` does with damage it finds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
///
/// ```
/// use recwal_wal::{RecoveryMode, SyncPolicy, Wal, WalConfig};
/// let dir = tempfile::tempdir()?;
/// let config = WalConfig::default().segment_bytes(1 << 20).sync_policy(SyncPolicy::Always);
/// Wal::open(dir.path(), config.clone())?.append(1, b"a")?;
/// // A clean log opens the same way in every mode.
/// for mode in [RecoveryMode::TolerateCorruptedTail, RecoveryMode::AbsoluteConsistency, RecoveryMode::PointInTime] {
///     assert!(Wal::open(dir.path(), config.clone().recovery_mode(mode))?.recovery_report().is_clean());
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub enum RecoveryMode {
    /// Cut a torn or corrupt tail made of records that were never durable;
    /// refuse to open (error) if a record that was durable is damaged.
    #[default]
    TolerateCorruptedTail,
    /// Any damage beyond a clean end of the log is an error.
    AbsoluteConsistency,
    /// Keep the longest valid prefix, cut everything after the first bad
    /// record, and report what was dropped, durable or not.
    PointInTime,
}

/// Configuration of a log. Build with `WalConfig::default()` and the setters;
/// `Wal::open` validates it and names the field and rule of any mistake.
///
/// ```
/// use recwal_wal::{RecoveryMode, SyncPolicy, WalConfig, WalError};
/// use std::time::Duration;
/// let config = WalConfig::default()
///     .segment_bytes(16 << 20)
///     .segments_initial(4)
///     .segments_max(8) // at most 128 MiB on disk
///     .sync_policy(SyncPolicy::Batch { max_delay: Duration::from_millis(2), max_bytes: 256 << 10 })
///     .full_wait(Duration::from_millis(100))
///     .recovery_mode(RecoveryMode::TolerateCorruptedTail);
/// assert!(config.validate().is_ok());
/// match WalConfig::default().segments_initial(0).validate() {
///     Err(WalError::InvalidConfig { field, rule }) => assert_eq!((field, rule.as_str()), ("segments_initial", "must be at least 1, got 0")),
///     other => panic!("{other:?}"),
/// }
/// ```
#[derive(Clone, Debug)]
pub struct WalConfig {
    /// Size of each segment file. Default 4 MiB; at least 4 KiB, a multiple
    /// of 4 KiB. An existing log keeps the size it was created with (a
    /// different value here is logged and ignored).
    pub segment_bytes: u64,
    /// Segments created (zero-filled) when the log is first opened. Default 1;
    /// at least 1. Later segments are created as the ring needs them, each
    /// prepared ahead by a background thread (one free segment at a time,
    /// from the first append on: `open` itself creates none in a log that
    /// has its files), so a new log costs `segments_initial + 1` segments on
    /// disk once written to.
    pub segments_initial: u32,
    /// The ring may grow to this many segments when all hold unreleased data.
    /// Default 256 (1 GiB of 4 MiB segments); at least 2 and at least
    /// `segments_initial`. Disk use is at most `segments_max * segment_bytes`
    /// plus the manifest and a lock file.
    pub segments_max: u32,
    /// Largest payload accepted. Default 1 MiB; must fit one segment.
    pub record_bytes_max: u32,
    /// Default durability of `append`.
    pub sync_policy: SyncPolicy,
    /// How long `append` waits for a checkpoint to free a segment before
    /// returning `Full`. Default 0 (fail at once).
    pub full_wait: Duration,
    /// How `open` treats damage.
    pub recovery_mode: RecoveryMode,
}

impl Default for WalConfig {
    fn default() -> Self {
        WalConfig {
            segment_bytes: 4 << 20,
            segments_initial: 1,
            segments_max: 256,
            record_bytes_max: 1 << 20,
            sync_policy: SyncPolicy::batch_default(),
            full_wait: Duration::ZERO,
            recovery_mode: RecoveryMode::default(),
        }
    }
}

impl WalConfig {
    /// Sets `segment_bytes`, lowering `record_bytes_max` to what fits one
    /// segment if it was larger.
    ///
    /// ```
    /// use recwal_wal::{RecoveryMode, SyncPolicy, WalConfig};
    /// use std::time::Duration;
    /// let config = WalConfig::default().segment_bytes(64 << 10);
    /// assert_eq!(config.segment_bytes, 64 << 10);
    /// assert!(u64::from(config.record_bytes_max) < 64 << 10); // a record fits a segment
    /// config.validate()?;
    /// # Ok::<(), recwal_wal::WalError>(())
    /// ```
    pub fn segment_bytes(mut self, bytes: u64) -> Self {
        self.segment_bytes = bytes;
        self.record_bytes_max = self.record_bytes_max.min(payload_room(bytes));
        self
    }
    /// Sets `segments_initial`.
    ///
    /// ```
    /// use recwal_wal::{RecoveryMode, SyncPolicy, WalConfig};
    /// use std::time::Duration;
    /// let config = WalConfig::default().segments_initial(2).segments_max(8);
    /// assert_eq!((config.segments_initial, config.segments_max), (2, 8));
    /// config.validate()?;
    /// # Ok::<(), recwal_wal::WalError>(())
    /// ```
    pub fn segments_initial(mut self, count: u32) -> Self {
        self.segments_initial = count;
        self
    }
    /// Sets `segments_max`.
    ///
    /// ```
    /// use recwal_wal::{RecoveryMode, SyncPolicy, WalConfig};
    /// use std::time::Duration;
    /// let config = WalConfig::default().segments_initial(4).segments_max(2);
    /// assert!(config.validate().is_err()); // max below initial
    /// # Ok::<(), recwal_wal::WalError>(())
    /// ```
    pub fn segments_max(mut self, count: u32) -> Self {
        self.segments_max = count;
        self
    }
    /// Sets `record_bytes_max`.
    ///
    /// ```
    /// use recwal_wal::{RecoveryMode, SyncPolicy, WalConfig};
    /// use std::time::Duration;
    /// let config = WalConfig::default().segment_bytes(1 << 20).record_bytes_max(4096);
    /// assert_eq!(config.record_bytes_max, 4096);
    /// config.validate()?;
    /// # Ok::<(), recwal_wal::WalError>(())
    /// ```
    pub fn record_bytes_max(mut self, bytes: u32) -> Self {
        self.record_bytes_max = bytes;
        self
    }
    /// Sets `sync_policy`.
    ///
    /// ```
    /// use recwal_wal::{RecoveryMode, SyncPolicy, WalConfig};
    /// use std::time::Duration;
    /// let config = WalConfig::default().sync_policy(SyncPolicy::Batch { max_delay: Duration::from_millis(1), max_bytes: 1 << 16 });
    /// assert!(matches!(config.sync_policy, SyncPolicy::Batch { .. }));
    /// config.validate()?;
    /// # Ok::<(), recwal_wal::WalError>(())
    /// ```
    pub fn sync_policy(mut self, policy: SyncPolicy) -> Self {
        self.sync_policy = policy;
        self
    }
    /// Sets `full_wait`.
    ///
    /// ```
    /// use recwal_wal::{RecoveryMode, SyncPolicy, WalConfig};
    /// use std::time::Duration;
    /// let config = WalConfig::default().full_wait(Duration::from_millis(100));
    /// assert_eq!(config.full_wait, Duration::from_millis(100));
    /// config.validate()?;
    /// # Ok::<(), recwal_wal::WalError>(())
    /// ```
    pub fn full_wait(mut self, wait: Duration) -> Self {
        self.full_wait = wait;
        self
    }
    /// Sets `recovery_mode`.
    ///
    /// ```
    /// use recwal_wal::{RecoveryMode, SyncPolicy, WalConfig};
    /// use std::time::Duration;
    /// let config = WalConfig::default().recovery_mode(RecoveryMode::AbsoluteConsistency);
    /// assert_eq!(config.recovery_mode, RecoveryMode::AbsoluteConsistency);
    /// config.validate()?;
    /// # Ok::<(), recwal_wal::WalError>(())
    /// ```
    pub fn recovery_mode(mut self, mode: RecoveryMode) -> Self {
        self.recovery_mode = mode;
        self
    }

    /// Checks every rule; the error names the field and the rule.
    ///
    /// ```
    /// use recwal_wal::{RecoveryMode, SyncPolicy, WalConfig};
    /// use std::time::Duration;
    /// match WalConfig::default().segment_bytes(1000).validate() {
    ///     Err(recwal_wal::WalError::InvalidConfig { field, .. }) => assert_eq!(field, "segment_bytes"),
    ///     other => panic!("{other:?}"),
    /// }
    /// WalConfig::default().validate()?;
    /// # Ok::<(), recwal_wal::WalError>(())
    /// ```
    pub fn validate(&self) -> Result<(), WalError> {
        let invalid = |field: &'static str, rule: String| Err(WalError::InvalidConfig { field, rule });
        if self.segment_bytes < 4096 || !self.segment_bytes.is_multiple_of(4096) {
            return invalid(
                "segment_bytes",
                format!("must be a multiple of 4096 and at least 4096, got {}", self.segment_bytes),
            );
        }
        if self.segment_bytes > (1 << 40) {
            return invalid("segment_bytes", format!("must be at most 1 TiB, got {}", self.segment_bytes));
        }
        if self.segments_initial < 1 {
            return invalid("segments_initial", format!("must be at least 1, got {}", self.segments_initial));
        }
        if self.segments_max < 2 {
            return invalid("segments_max", format!("must be at least 2 (a ring), got {}", self.segments_max));
        }
        if self.segments_max < self.segments_initial {
            return invalid(
                "segments_max",
                format!("must be at least segments_initial ({}), got {}", self.segments_initial, self.segments_max),
            );
        }
        if self.segments_max > 1 << 20 {
            return invalid("segments_max", format!("must be at most 1048576, got {}", self.segments_max));
        }
        if self.record_bytes_max == 0 {
            return invalid("record_bytes_max", "must be at least 1, got 0".to_string());
        }
        if self.record_bytes_max > self.record_bytes_readable() {
            return invalid(
                "record_bytes_max",
                format!(
                    "must fit one segment: at most {} for segment_bytes {}, got {}",
                    self.record_bytes_readable(),
                    self.segment_bytes,
                    self.record_bytes_max
                ),
            );
        }
        if let SyncPolicy::Batch { max_delay, max_bytes } = self.sync_policy {
            if max_delay.is_zero() || max_delay > Duration::from_secs(60) {
                return invalid("sync_policy.max_delay", format!("must be between 1 ns and 60 s, got {max_delay:?}"));
            }
            if max_bytes == 0 {
                return invalid("sync_policy.max_bytes", "must be at least 1".to_string());
            }
        }
        Ok(())
    }

    /// The largest payload any segment of this size can hold: what readers and
    /// recovery accept, so lowering `record_bytes_max` never makes records
    /// already on disk look damaged.
    pub(crate) fn record_bytes_readable(&self) -> u32 {
        payload_room(self.segment_bytes)
    }

    pub(crate) fn batch_params(&self) -> (Duration, u64) {
        match self.sync_policy {
            SyncPolicy::Batch { max_delay, max_bytes } => (max_delay, max_bytes),
            SyncPolicy::Always | SyncPolicy::Never => (BATCH_DELAY_DEFAULT, BATCH_BYTES_DEFAULT),
        }
    }

    pub(crate) fn default_durability(&self) -> Durability {
        self.sync_policy.default_durability()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert!(WalConfig::default().validate().is_ok());
    }

    #[test]
    fn each_rule_names_its_field() {
        let cases: Vec<(WalConfig, &str)> = vec![
            (WalConfig::default().segment_bytes(1000), "segment_bytes"),
            (WalConfig::default().segments_initial(0), "segments_initial"),
            (WalConfig::default().segments_initial(1).segments_max(1), "segments_max"),
            (WalConfig::default().segments_initial(8).segments_max(4), "segments_max"),
            (WalConfig::default().segment_bytes(4096).record_bytes_max(4096), "record_bytes_max"),
            (
                WalConfig::default().sync_policy(SyncPolicy::Batch { max_delay: Duration::ZERO, max_bytes: 1 }),
                "sync_policy.max_delay",
            ),
        ];
        for (config, field) in cases {
            match config.validate() {
                Err(WalError::InvalidConfig { field: got, .. }) => assert_eq!(got, field),
                other => panic!("expected InvalidConfig for {field}, got {other:?}"),
            }
        }
    }
}
