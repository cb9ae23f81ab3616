//! recwal-wal: an mmap'd, CRC-checked, segmented ring-buffer write-ahead log.
//!
//! Records are opaque byte strings with a caller-chosen `u8` kind; each gets a
//! dense, strictly increasing LSN. Records live in a ring of preallocated,
//! zero-filled segment files that are recycled once a checkpoint releases
//! them. Durability is chosen per log and per append: `Always` (synced before
//! `append` returns, concurrent appenders sharing one sync), `Batch` (group
//! commit by a flusher thread within `max_delay` or `max_bytes`), or `Never`.
//! `open` recovers the log: every CRC and the LSN chain are checked, a torn
//! tail of never-durable records is cut, and damage to durable records is an
//! error rather than a silent truncation. See `FORMAT.md` for the bytes on
//! disk and the crash cases, and `docs/DURABILITY.md` for the guarantees.
//!
//! ```
//! use recwal_wal::{Durability, SyncPolicy, Wal, WalConfig};
//! use std::time::Duration;
//!
//! let dir = tempfile::tempdir()?;
//! let config = WalConfig::default()
//!     .segment_bytes(1 << 20)
//!     .sync_policy(SyncPolicy::Batch { max_delay: Duration::from_millis(1), max_bytes: 64 << 10 });
//! let wal = Wal::open(dir.path(), config)?;
//! let ticket = wal.append(7, b"event")?;      // returns at once with the LSN
//! let lsn = ticket.wait()?;                     // blocks until the group commit covers it
//! wal.append_with(7, b"urgent", Durability::Always)?; // synced before it returns
//! wal.checkpoint(lsn)?;                         // records up to `lsn` may be recycled
//! drop(wal);
//!
//! let wal = Wal::open(dir.path(), WalConfig::default().segment_bytes(1 << 20))?;
//! assert!(wal.recovery_report().is_clean());
//! assert_eq!(wal.lsn_written(), 2);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]
#![warn(clippy::unwrap_used)]

mod config;
mod error;
pub mod format;
mod group_commit;
mod inspect;
mod manifest;
mod metrics;
mod open;
mod reader;
mod recovery;
mod repair;
mod ring;
mod seed;
mod segment;
mod shared;
#[cfg(any(test, feature = "sim"))]
pub mod sim;
mod staging;
mod storage;
#[cfg(any(test, feature = "sim"))]
pub mod testing;
mod ticket;
mod wal;

pub use config::{Durability, RecoveryMode, SyncPolicy, WalConfig};
pub use error::{is_out_of_space, Corruption, Position, WalError};
pub use format::Lsn;
pub use inspect::{inspect, inspect_storage, log_segment_bytes, verify, Inspection, SegmentInfo, SegmentStatus};
pub use metrics::{HistogramSnapshot, WalMetrics};
pub use reader::{Reader, Record};
pub use recovery::{OpenCheck, RecordInfo, RecoveryReport};
pub use seed::create_log_at;
pub use storage::{available_bytes, find_log_file, DirLock, FileStorage, SegmentFile, Storage, WritePath};
pub use ticket::{AppendTicket, DurableFuture};
pub use wal::Wal;
