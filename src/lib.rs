//! recwal: a stateful recommendation engine that writes every state change to
//! its own write-ahead log before it acknowledges it.
//!
//! This release contains the log itself, re-exported as [`wal`]; the engine,
//! ranking models and the HTTP server are built on it in later releases.
//! See README.md and ARCHITECTURE.md.
#![forbid(unsafe_code)]

pub use recwal_wal as wal;
