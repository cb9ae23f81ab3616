//! `AppendTicket`: the LSN of an append, and the way to wait until it is durable.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};

use crate::config::Durability;
use crate::error::WalError;
use crate::format::Lsn;
use crate::group_commit::GroupCommit;
use crate::shared::Shared;

/// Returned by `Wal::append`: the record's LSN, at once, and a wait for its durability.
///
/// Under `Always` the ticket is already durable. Under `Batch`, waiting
/// blocks until the flusher's next group commit. Under `Never`, waiting
/// asks for a sync (the caller decided this record matters after all).
///
/// ```
/// use recwal_wal::{Durability, Wal, WalConfig};
/// let dir = tempfile::tempdir()?;
/// let wal = Wal::open(dir.path(), WalConfig::default().segment_bytes(1 << 20))?;
/// let ticket = wal.append_with(1, b"not urgent", Durability::Never)?;
/// assert!(!ticket.is_durable());
/// assert_eq!(ticket.wait()?, 1); // asks for the sync and blocks until it is done
/// assert!(ticket.is_durable());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// A ticket does not keep the log open: once the `Wal` is dropped, waiting
/// on a record that is not yet durable fails with `WalError::Closed`.
/// Clones wait for the same record.
#[must_use = "an append is not durable until its ticket says so"]
#[derive(Clone)]
pub struct AppendTicket {
    commit: Arc<GroupCommit>,
    shared: Weak<Shared>,
    lsn: Lsn,
    durability: Durability,
}

impl std::fmt::Debug for AppendTicket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppendTicket").field("lsn", &self.lsn).field("durability", &self.durability).finish()
    }
}

impl AppendTicket {
    pub(crate) fn new(shared: &Arc<Shared>, lsn: Lsn, durability: Durability) -> Self {
        AppendTicket { commit: Arc::clone(&shared.commit), shared: Arc::downgrade(shared), lsn, durability }
    }

    /// The record's LSN.
    ///
    /// ```
    /// use recwal_wal::{SyncPolicy, Wal, WalConfig};
    /// let dir = tempfile::tempdir()?;
    /// let wal = Wal::open(dir.path(), WalConfig::default().segment_bytes(1 << 20).sync_policy(SyncPolicy::Never))?;
    /// assert_eq!((wal.append(1, b"a")?.lsn(), wal.append(1, b"b")?.lsn()), (1, 2));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn lsn(&self) -> Lsn {
        self.lsn
    }

    /// True once the record is durable.
    ///
    /// ```
    /// use recwal_wal::{SyncPolicy, Wal, WalConfig};
    /// let dir = tempfile::tempdir()?;
    /// let wal = Wal::open(dir.path(), WalConfig::default().segment_bytes(1 << 20).sync_policy(SyncPolicy::Never))?;
    /// let ticket = wal.append(1, b"a")?;
    /// assert!(!ticket.is_durable());
    /// wal.sync()?;
    /// assert!(ticket.is_durable());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_durable(&self) -> bool {
        self.commit.lsn_durable() >= self.lsn
    }

    /// Blocks until the record is durable; returns its LSN. Fails if a sync
    /// failed (the log is poisoned) or the log was dropped first.
    ///
    /// ```
    /// use recwal_wal::{SyncPolicy, Wal, WalConfig, WalError};
    /// let dir = tempfile::tempdir()?;
    /// let wal = Wal::open(dir.path(), WalConfig::default().segment_bytes(1 << 20).sync_policy(SyncPolicy::Never))?;
    /// let kept = wal.append(1, b"a")?;
    /// assert_eq!(kept.wait()?, 1); // under `Never`, waiting asks for the sync
    /// let unsynced = wal.append(1, b"b")?;
    /// drop(wal);
    /// assert!(matches!(unsynced.wait(), Err(WalError::Closed)));
    /// assert_eq!(kept.wait()?, 1); // already durable
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn wait(&self) -> Result<Lsn, WalError> {
        match (self.durability, self.shared.upgrade()) {
            (Durability::Always | Durability::Never, Some(shared)) => self.commit.make_durable(&*shared, self.lsn)?,
            (Durability::Batch, _) => self.commit.wait_durable(self.lsn)?,
            (_, None) => {
                self.commit.check_poisoned()?;
                if !self.is_durable() {
                    return Err(WalError::Closed);
                }
            }
        }
        Ok(self.lsn)
    }

    /// Waits without blocking a thread, for async code (tokio or any executor).
    ///
    /// ```
    /// use recwal_wal::{SyncPolicy, Wal, WalConfig};
    /// use std::time::Duration;
    /// let dir = tempfile::tempdir()?;
    /// let policy = SyncPolicy::Batch { max_delay: Duration::from_millis(1), max_bytes: 1 << 20 };
    /// let wal = Wal::open(dir.path(), WalConfig::default().segment_bytes(1 << 20).sync_policy(policy))?;
    /// let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    /// let lsn = runtime.block_on(async { wal.append(1, b"event")?.wait_async().await })?;
    /// assert_eq!(lsn, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn wait_async(&self) -> DurableFuture {
        // `Never` and `append_sync_later` tickets are synced only on request.
        if matches!(self.durability, Durability::Never | Durability::Always) && !self.is_durable() {
            if let Some(shared) = self.shared.upgrade() {
                shared.request_sync();
            }
        }
        DurableFuture { commit: Arc::clone(&self.commit), lsn: self.lsn }
    }
}

/// Resolves to the LSN once it is durable. See `AppendTicket::wait_async`.
///
/// ```
/// use recwal_wal::{DurableFuture, SyncPolicy, Wal, WalConfig};
/// let dir = tempfile::tempdir()?;
/// let wal = Wal::open(dir.path(), WalConfig::default().segment_bytes(1 << 20).sync_policy(SyncPolicy::Never))?;
/// let future: DurableFuture = wal.append(1, b"event")?.wait_async();
/// let runtime = tokio::runtime::Builder::new_current_thread().build()?;
/// assert_eq!(runtime.block_on(future)?, 1);
/// assert_eq!(wal.lsn_durable(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "futures do nothing unless polled"]
pub struct DurableFuture {
    commit: Arc<GroupCommit>,
    lsn: Lsn,
}

impl Future for DurableFuture {
    type Output = Result<Lsn, WalError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.commit.poll_durable(self.lsn, cx.waker()) {
            Some(res) => Poll::Ready(res.map(|()| self.lsn)),
            None => Poll::Pending,
        }
    }
}
