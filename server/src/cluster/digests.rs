//! Digest agreement (docs/CLUSTER.md): replicas at the same stream sequence
//! must hold the same state. Every `cluster.digest_every` messages, right
//! after applying that message, a node reads its replica digest and puts
//! `<node> <digest>` under the key `<stream incarnation>.<sequence>` of the JetStream key-value
//! bucket `<stream>_digests` (each key keeps every node's value as its
//! history). Once a second it compares its recent digests with what the
//! other nodes wrote under the same keys: a node whose digest another one
//! outnumbers at a sequence has diverged. A tie (two nodes that disagree, or
//! the first two writers of three) waits up to `cluster.digest_tie_wait_ms`
//! for another node to break it (at that sequence, or by agreeing with this
//! node at a later one), and counts as a divergence of both sides if none
//! does. A
//! diverged node stops applying, reports itself not ready with both digests,
//! and leaves the marker file `DIVERGED` in its data dir, so that its next
//! start re-seeds it from the snapshot bucket (`seed.rs`) even though it is
//! not behind.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use async_nats::jetstream::kv;
use futures_util::StreamExt;
use tracing::warn;

use super::Replica;

/// The marker file a diverged node leaves in its data dir.
pub(super) const DIVERGED: &str = "DIVERGED";
/// Values a key keeps: one per node, up to this many nodes.
const NODES_MAX: i64 = 16;
/// How long the bucket keeps a digest.
const KEEP: Duration = Duration::from_secs(3600);
/// Recent digests of this node that are compared again each round (other
/// nodes reach a sequence later).
const RECENT: usize = 8;

/// The key of the digests at `seq` of the stream incarnation `stream_id`.
fn digest_key(stream_id: &str, seq: u64) -> String {
    format!("{stream_id}.{seq}")
}

/// What the digests written at one sequence say about this node's.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Verdict {
    /// No other node wrote one yet.
    Alone,
    /// This node's digest is the most common one (strictly).
    Agrees,
    /// Another digest is as common, none more: a node yet to write may
    /// break the tie.
    Tied { others: String },
    /// Another digest is more common: this node diverged.
    Differs { others: String },
}

/// A tie at one of this node's digest points, judged again each round.
#[derive(Debug)]
pub(super) struct Tie {
    seq: u64,
    digest: String,
    since: Instant,
}

/// The verdict on `mine` among `(node, digest)` values of other nodes.
pub(super) fn verdict(mine: &str, others: &[(String, String)]) -> Verdict {
    if others.is_empty() {
        return Verdict::Alone;
    }
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    counts.insert(mine, 1);
    for (_, digest) in others {
        *counts.entry(digest.as_str()).or_default() += 1;
    }
    let own = counts[mine];
    let most_other = counts.iter().filter(|(digest, _)| **digest != mine).map(|(_, &count)| count).max();
    let others = || others.iter().map(|(node, digest)| format!("{digest} on {node}")).collect::<Vec<_>>().join(", ");
    match most_other {
        Some(count) if count > own => Verdict::Differs { others: others() },
        Some(count) if count == own => Verdict::Tied { others: others() },
        _ => Verdict::Agrees,
    }
}

/// Why this node stops: its digest at `seq` is not the one the others
/// hold; `tied_for`: how long a tie lasted, when it was one.
fn diverged_reason(seq: u64, digest: &str, others: &str, tied_for: Option<Duration>) -> String {
    let how = match tied_for {
        Some(wait) => format!(
            " (as many nodes hold another digest, and no other node broke the tie within {} ms)",
            wait.as_millis()
        ),
        None => String::new(),
    };
    format!(
        "the state digest at stream sequence {seq} is {digest} on this node but {others}{how}: this node's state \
         differs; restart it to re-seed it from the snapshot bucket"
    )
}

impl Replica {
    async fn digests_bucket(&self) -> Result<kv::Store, String> {
        let name = self.config.digest_bucket();
        if let Ok(store) = self.js.get_key_value(&name).await {
            return Ok(store);
        }
        self.js
            .create_key_value(kv::Config {
                bucket: name.clone(),
                description: "recwal: each node's state digest at stream sequences".into(),
                history: NODES_MAX,
                max_age: KEEP,
                num_replicas: self.config.replicas,
                ..Default::default()
            })
            .await
            .map_err(|err| format!("digest bucket {name}: {err}"))
    }

    /// Notes this node's digest right after applying `stream_seq`.
    pub(super) fn note_digest(&self, stream_seq: u64, digest: u64) {
        if let Ok(mut recent) = self.digests.lock() {
            recent.push_back((stream_seq, format!("{digest:016x}"), false));
            while recent.len() > RECENT {
                recent.pop_front();
            }
        }
    }

    /// Once a second: writes the digests noted since, and compares the
    /// recent ones with the other nodes'. Returns the reason once this
    /// node diverged.
    pub(super) async fn check_digests(&self, data_dir: &Path) -> Option<String> {
        let store = match self.digests_bucket().await {
            Ok(store) => store,
            Err(reason) => {
                warn!(%reason, "cannot reach the digest bucket; comparing later");
                return None;
            }
        };
        // Keys name the stream's incarnation: digests a deleted stream's
        // nodes left at the same sequences are not this stream's.
        let stream_id = self.stream_id()?;
        let reason = match self.judge_tie(&store, &stream_id).await {
            Some(reason) => Some(reason),
            None => self.judge_recent(&store, &stream_id).await,
        };
        if let Some(reason) = &reason {
            if let Err(err) = std::fs::write(data_dir.join(DIVERGED), reason) {
                warn!(%err, "cannot write the DIVERGED marker");
            }
        }
        reason
    }

    /// Writes the digests noted since the last round and compares each
    /// recent one with the other nodes'. Returns the reason once this node
    /// diverged.
    async fn judge_recent(&self, store: &kv::Store, stream_id: &str) -> Option<String> {
        let recent: Vec<(u64, String, bool)> =
            self.digests.lock().map(|recent| recent.iter().cloned().collect()).ok()?;
        for (seq, digest, written) in recent {
            if !written {
                let value = format!("{} {digest}", self.node);
                if store.put(digest_key(stream_id, seq), value.into()).await.is_err() {
                    continue;
                }
                if let Ok(mut recent) = self.digests.lock() {
                    for entry in recent.iter_mut().filter(|entry| entry.0 == seq) {
                        entry.2 = true;
                    }
                }
            }
            let Some(others) = self.others_at(store, stream_id, seq).await else { continue };
            match verdict(&digest, &others) {
                Verdict::Alone => {}
                Verdict::Agrees => self.agreed_at(seq).await,
                Verdict::Tied { .. } => {
                    // Judged again each round until broken or outlasted
                    // (`judge_tie`); one tie at a time, the others stay
                    // recent and are compared again.
                    if let Ok(mut tie) = self.tie.lock() {
                        if tie.is_none() {
                            *tie = Some(Tie { seq, digest, since: Instant::now() });
                            if let Ok(mut recent) = self.digests.lock() {
                                recent.retain(|entry| entry.0 != seq);
                            }
                        }
                    }
                }
                Verdict::Differs { others } => return Some(diverged_reason(seq, &digest, &others, None)),
            }
        }
        None
    }

    /// The tie this node waits on, judged again: settled when a node broke
    /// it, this node's divergence when the others outnumber it or nobody
    /// broke it within `cluster.digest_tie_wait_ms`.
    async fn judge_tie(&self, store: &kv::Store, stream_id: &str) -> Option<String> {
        let (seq, digest, since) = {
            let tie = self.tie.lock().ok()?;
            let tie = tie.as_ref()?;
            (tie.seq, tie.digest.clone(), tie.since)
        };
        let others = self.others_at(store, stream_id, seq).await?;
        let settled = |replica: &Self| {
            if let Ok(mut tie) = replica.tie.lock() {
                *tie = None;
            }
        };
        match verdict(&digest, &others) {
            Verdict::Agrees => {
                settled(self);
                self.agreed_at(seq).await;
                None
            }
            // The bucket no longer holds the others' values (kept an hour).
            Verdict::Alone => {
                settled(self);
                None
            }
            Verdict::Tied { others } if since.elapsed() >= self.config.digest_tie_wait() => {
                Some(diverged_reason(seq, &digest, &others, Some(self.config.digest_tie_wait())))
            }
            Verdict::Tied { .. } => None,
            Verdict::Differs { others } => Some(diverged_reason(seq, &digest, &others, None)),
        }
    }

    /// Another node holds this node's digest at `seq`: settled. A node that
    /// reaches it later and differs sees two agreeing digests and stops
    /// itself; a snapshot taken at `seq` holds a state another node has
    /// too, so it may be published.
    async fn agreed_at(&self, seq: u64) {
        self.digests_agreed.fetch_max(seq, Ordering::Relaxed);
        // A tie at an earlier point is settled too: another node holds this
        // node's state now, so it was not this node that diverged then (the
        // third node may never write the tied point: its entry was pushed
        // out of its recent digests while it caught up).
        if let Ok(mut tie) = self.tie.lock() {
            if tie.as_ref().is_some_and(|tie| tie.seq < seq) {
                *tie = None;
            }
        }
        if let Ok(mut recent) = self.digests.lock() {
            recent.retain(|entry| entry.0 != seq);
        }
        let agreed = self
            .pending_snapshot
            .lock()
            .ok()
            .and_then(|mut pending| pending.take_if(|snapshot| snapshot.stream_seq <= seq));
        if let Some(snapshot) = agreed.filter(|snapshot| snapshot.stream_seq == seq) {
            if let Err(reason) = self.publish_snapshot(snapshot).await {
                warn!(%reason, "publishing the agreed snapshot failed; the next one is taken later");
            }
        }
    }

    /// Compares digests once a second until this node diverged (then the
    /// follower halts at its next tick) or the replica stops.
    pub(super) async fn watch_digests(self: std::sync::Arc<Self>, data_dir: std::path::PathBuf) {
        let mut stop = self.stop.subscribe();
        loop {
            tokio::select! {
                _ = stop.changed() => return,
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            if let Some(reason) = self.check_digests(&data_dir).await {
                if let Ok(mut diverged) = self.diverged.lock() {
                    *diverged = Some(reason);
                }
                return;
            }
        }
    }

    /// The other nodes' digests written at `seq`; `None` when the bucket
    /// did not answer within 2 s (compared again next round).
    async fn others_at(&self, store: &kv::Store, stream_id: &str, seq: u64) -> Option<Vec<(String, String)>> {
        tokio::time::timeout(Duration::from_secs(2), self.history_at(store, stream_id, seq)).await.ok()?.ok()
    }

    /// The history of the key at `seq`, without this node's values.
    async fn history_at(&self, store: &kv::Store, stream_id: &str, seq: u64) -> Result<Vec<(String, String)>, String> {
        let mut history = store.history(digest_key(stream_id, seq)).await.map_err(|err| err.to_string())?;
        let mut others = Vec::new();
        while let Some(entry) = history.next().await {
            let entry = entry.map_err(|err| err.to_string())?;
            if entry.operation != kv::Operation::Put {
                continue;
            }
            let value = String::from_utf8_lossy(&entry.value);
            if let Some((node, digest)) = value.split_once(' ') {
                if node != self.node {
                    others.push((node.to_string(), digest.to_string()));
                }
            }
        }
        Ok(others)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(values: &[(&str, &str)]) -> Vec<(String, String)> {
        values.iter().map(|(node, digest)| (node.to_string(), digest.to_string())).collect()
    }

    #[test]
    fn a_node_differs_when_outnumbered_and_waits_on_a_tie() {
        assert_eq!(verdict("a", &[]), Verdict::Alone);
        assert_eq!(verdict("a", &of(&[("n2", "a")])), Verdict::Agrees);
        assert_eq!(verdict("a", &of(&[("n2", "a"), ("n3", "b")])), Verdict::Agrees, "n3 is the odd one");
        assert!(matches!(verdict("b", &of(&[("n1", "a"), ("n2", "a")])), Verdict::Differs { .. }));
        assert!(matches!(
            verdict("b", &of(&[("n1", "a"), ("n2", "a"), ("n3", "a"), ("n4", "b")])),
            Verdict::Differs { .. }
        ));
        // Two nodes that disagree: neither can tell yet; a third may break
        // the tie (the first two writers of three).
        assert!(matches!(verdict("a", &of(&[("n2", "b")])), Verdict::Tied { .. }));
        assert!(matches!(verdict("a", &of(&[("n2", "b"), ("n3", "a"), ("n4", "b")])), Verdict::Tied { .. }));
        match verdict("c", &of(&[("n1", "a"), ("n2", "b")])) {
            Verdict::Tied { others } => assert_eq!(others, "a on n1, b on n2"),
            other => panic!("{other:?}"),
        }
    }
}
