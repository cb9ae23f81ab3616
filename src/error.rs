//! The engine's error type.

use std::path::PathBuf;

use recwal_wal::WalError;

/// Everything the engine's public API can fail with.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Input broke a rule; nothing was written.
    #[error("invalid {field}: {rule}")]
    Invalid {
        /// The offending field, e.g. `events[3].user`.
        field: String,
        /// The rule it broke.
        rule: String,
    },
    /// The configuration broke a rule.
    #[error("invalid configuration {field}: {rule}")]
    InvalidConfig {
        /// The offending setting.
        field: &'static str,
        /// The rule it broke.
        rule: String,
    },
    /// The user is not known to the engine.
    #[error("unknown user {0:?}")]
    UnknownUser(String),
    /// The item is not known to the engine.
    #[error("unknown item {0:?}")]
    UnknownItem(String),
    /// The item was removed (`remove_item`), for good: its catalogue entry
    /// cannot be set again.
    #[error("item {0:?} was removed (remove_item), for good: it cannot come back")]
    ItemRemoved(String),
    /// No such model version (or it was retired).
    #[error("unknown model version {0}")]
    UnknownModel(u32),
    /// A model was refused (it breaks the contract, fails its warm-up, or
    /// its file is missing or altered); the active version did not change.
    #[error("model refused: {0}")]
    BadModel(String),
    /// The ONNX Runtime library could not be loaded.
    #[error("ONNX Runtime unavailable: {0}")]
    ModelRuntime(String),
    /// The write-ahead log failed.
    #[error(transparent)]
    Wal(#[from] WalError),
    /// A record in the log could not be decoded or applied.
    #[error("log record at LSN {lsn}: {reason}")]
    BadRecord {
        /// The record's LSN.
        lsn: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// A snapshot could not be written or read.
    #[error("snapshot {path}: {reason}")]
    Snapshot {
        /// The snapshot file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// No usable starting point: the log no longer holds the records that
    /// come after the newest readable snapshot.
    #[error("cannot rebuild state: {0}")]
    Unrecoverable(String),
    /// A replica was handed a stream message that is not the successor of
    /// the last one it applied (docs/CLUSTER.md): nothing was applied; it
    /// must re-seed rather than skip.
    #[error("replication stream gap: applied through sequence {applied}, offered {offered}")]
    StreamGap {
        /// Stream sequence of the last message applied.
        applied: u64,
        /// The sequence offered.
        offered: u64,
    },
    /// File-system error outside the log.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The disk is full (ENOSPC, or a quota): a new log segment or a
    /// snapshot could not be written. Nothing was written and nothing
    /// acknowledged is at risk; the engine is not stopped: retry once space
    /// is freed (`Engine::disk_full` says what and since when).
    #[error("the disk is full: {detail}")]
    DiskFull {
        /// The file that could not be written.
        path: PathBuf,
        /// What failed, in words.
        detail: String,
    },
    /// An earlier failure (a failed sync or apply) stopped the engine from
    /// accepting writes; reopen it to recover from the log.
    #[error("engine stopped accepting writes after an earlier failure: {0}")]
    Poisoned(String),
    /// The item model (EASE) was not trained, stored or loaded; the reason
    /// names the cause (catalogue above `item_model.items_max`, no data,
    /// memory, a damaged artefact).
    #[error("item model: {0}")]
    ItemModel(String),
}

impl EngineError {
    pub(crate) fn invalid(field: impl Into<String>, rule: impl Into<String>) -> Self {
        EngineError::Invalid { field: field.into(), rule: rule.into() }
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        EngineError::Io { context: context.into(), source }
    }
}
