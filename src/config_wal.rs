//! The log's settings as a configuration file writes them (`[engine.wal]`):
//! the sync policy by name with its batch parameters beside it, the
//! recovery mode by name. `recwal-wal` has no serde; this is the one
//! conversion between the file's shape and `WalConfig`, used as
//! `#[serde(with = "crate::config_wal")]` on `EngineConfig::wal`.
//! `full_wait` is not offered: the engine requires it to be zero.

use std::time::Duration;

use recwal_wal::{RecoveryMode, SyncPolicy, WalConfig};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// `[engine.wal]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct WalSettings {
    /// Size of each segment file, bytes.
    segment_bytes: u64,
    /// Segments created when the log is first opened.
    segments_initial: u32,
    /// Most segments the ring may grow to.
    segments_max: u32,
    /// Largest record; `"auto"`: 1 MiB, or what one segment holds if less.
    #[serde(with = "crate::units::u32_or_auto")]
    record_bytes_max: Option<u32>,
    /// `always`, `batch` or `never`.
    sync: SyncName,
    /// Under `batch`: longest a record waits for its sync, microseconds.
    sync_batch_delay_us: u64,
    /// Under `batch`: sync as soon as this many bytes wait.
    sync_batch_bytes: u64,
    /// What `open` does with damage.
    recovery: RecoveryName,
}

/// The sync policy's names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum SyncName {
    Always,
    Batch,
    Never,
}

/// The recovery modes' names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum RecoveryName {
    TolerateCorruptedTail,
    PointInTime,
    AbsoluteConsistency,
}

impl Default for WalSettings {
    fn default() -> Self {
        WalSettings::from(&crate::config::EngineConfig::default().wal)
    }
}

impl From<&WalConfig> for WalSettings {
    fn from(config: &WalConfig) -> Self {
        // Exhaustive: a new policy or mode does not compile until it has a name.
        let (sync, (delay, bytes)) = match config.sync_policy {
            SyncPolicy::Always => (SyncName::Always, batch_params(SyncPolicy::batch_default())),
            SyncPolicy::Batch { max_delay, max_bytes } => (SyncName::Batch, (max_delay, max_bytes)),
            SyncPolicy::Never => (SyncName::Never, batch_params(SyncPolicy::batch_default())),
        };
        let recovery = match config.recovery_mode {
            RecoveryMode::TolerateCorruptedTail => RecoveryName::TolerateCorruptedTail,
            RecoveryMode::PointInTime => RecoveryName::PointInTime,
            RecoveryMode::AbsoluteConsistency => RecoveryName::AbsoluteConsistency,
        };
        // "auto" when the limit is what `segment_bytes` left of the default.
        let auto = WalConfig::default().segment_bytes(config.segment_bytes).record_bytes_max;
        WalSettings {
            segment_bytes: config.segment_bytes,
            segments_initial: config.segments_initial,
            segments_max: config.segments_max,
            record_bytes_max: (config.record_bytes_max != auto).then_some(config.record_bytes_max),
            sync,
            sync_batch_delay_us: u64::try_from(delay.as_micros()).unwrap_or(u64::MAX),
            sync_batch_bytes: bytes,
            recovery,
        }
    }
}

fn batch_params(policy: SyncPolicy) -> (Duration, u64) {
    match policy {
        SyncPolicy::Batch { max_delay, max_bytes } => (max_delay, max_bytes),
        SyncPolicy::Always | SyncPolicy::Never => (Duration::ZERO, 0),
    }
}

impl WalSettings {
    fn to_config(&self) -> WalConfig {
        let sync_policy = match self.sync {
            SyncName::Always => SyncPolicy::Always,
            SyncName::Batch => SyncPolicy::Batch {
                max_delay: Duration::from_micros(self.sync_batch_delay_us),
                max_bytes: self.sync_batch_bytes,
            },
            SyncName::Never => SyncPolicy::Never,
        };
        let recovery_mode = match self.recovery {
            RecoveryName::TolerateCorruptedTail => RecoveryMode::TolerateCorruptedTail,
            RecoveryName::PointInTime => RecoveryMode::PointInTime,
            RecoveryName::AbsoluteConsistency => RecoveryMode::AbsoluteConsistency,
        };
        let mut config = WalConfig::default()
            .segment_bytes(self.segment_bytes)
            .segments_initial(self.segments_initial)
            .segments_max(self.segments_max)
            .sync_policy(sync_policy)
            .recovery_mode(recovery_mode);
        if let Some(bytes) = self.record_bytes_max {
            config = config.record_bytes_max(bytes);
        }
        config
    }
}

/// Writes `[engine.wal]`.
pub fn serialize<S: Serializer>(config: &WalConfig, serializer: S) -> Result<S::Ok, S::Error> {
    WalSettings::from(config).serialize(serializer)
}

/// Reads `[engine.wal]`; missing keys keep the engine's defaults.
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<WalConfig, D::Error> {
    WalSettings::deserialize(deserializer).map(|settings| settings.to_config())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_round_trip_and_every_policy_and_mode_has_a_name() {
        let default = crate::config::EngineConfig::default().wal;
        let settings = WalSettings::from(&default);
        assert_eq!(settings.record_bytes_max, None);
        let back = settings.to_config();
        assert_eq!(
            (back.segment_bytes, back.segments_initial, back.segments_max, back.record_bytes_max),
            (default.segment_bytes, default.segments_initial, default.segments_max, default.record_bytes_max)
        );
        assert_eq!((back.sync_policy, back.recovery_mode), (default.sync_policy, default.recovery_mode));
        for policy in [
            SyncPolicy::Always,
            SyncPolicy::Never,
            SyncPolicy::Batch { max_delay: Duration::from_micros(500), max_bytes: 7 },
        ] {
            for mode in
                [RecoveryMode::TolerateCorruptedTail, RecoveryMode::PointInTime, RecoveryMode::AbsoluteConsistency]
            {
                let config = WalConfig::default().sync_policy(policy).recovery_mode(mode).segment_bytes(1 << 16);
                let back = WalSettings::from(&config).to_config();
                assert_eq!(
                    (back.sync_policy, back.recovery_mode, back.record_bytes_max),
                    (policy, mode, config.record_bytes_max)
                );
            }
        }
        let explicit = WalConfig::default().record_bytes_max(4096);
        assert_eq!(WalSettings::from(&explicit).record_bytes_max, Some(4096));
    }
}
