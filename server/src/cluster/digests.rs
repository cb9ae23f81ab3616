//! Digest agreement (docs/CLUSTER.md): replicas at the same stream sequence
//! must hold the same state. Every `cluster.digest_every` messages, right
//! after applying that message, a node reads its replica digest and puts
//! `<node> <digest>` under the key `<stream incarnation>.<sequence>` of the JetStream key-value
//! bucket `<stream>_digests` (each key keeps every node's value as its
//! history). Once a second it compares its recent digests with what the
//! other nodes wrote under the same keys: a node whose digest is not the
//! most common one at a sequence (ties included) has diverged. It stops
//! applying, reports itself not ready with both digests, and leaves the
//! marker file `DIVERGED` in its data dir, so that its next start re-seeds
//! it from the snapshot bucket (`seed.rs`) even though it is not behind.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

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
    /// Another digest is as common or more: this node diverged.
    Differs { others: String },
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
    if counts.iter().all(|(digest, &count)| *digest == mine || count < own) {
        return Verdict::Agrees;
    }
    let others = others.iter().map(|(node, digest)| format!("{digest} on {node}")).collect::<Vec<_>>().join(", ");
    Verdict::Differs { others }
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
        let recent: Vec<(u64, String, bool)> =
            self.digests.lock().map(|recent| recent.iter().cloned().collect()).ok()?;
        for (seq, digest, written) in recent {
            if !written {
                let value = format!("{} {digest}", self.node);
                if store.put(digest_key(&stream_id, seq), value.into()).await.is_err() {
                    continue;
                }
                if let Ok(mut recent) = self.digests.lock() {
                    for entry in recent.iter_mut().filter(|entry| entry.0 == seq) {
                        entry.2 = true;
                    }
                }
            }
            let Ok(Ok(others)) =
                tokio::time::timeout(Duration::from_secs(2), self.others_at(&store, &stream_id, seq)).await
            else {
                continue;
            };
            match verdict(&digest, &others) {
                Verdict::Alone => {}
                Verdict::Agrees => {
                    // Settled: a node that reaches it later and differs
                    // sees two agreeing digests and stops itself.
                    self.digests_agreed.fetch_max(seq, Ordering::Relaxed);
                    if let Ok(mut recent) = self.digests.lock() {
                        recent.retain(|entry| entry.0 != seq);
                    }
                    // A snapshot taken at this sequence holds a state
                    // another node has too: it may be published.
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
                Verdict::Differs { others } => {
                    let reason = format!(
                        "the state digest at stream sequence {seq} is {digest} on this node but {others}: this node's \
                         state differs; restart it to re-seed it from the snapshot bucket"
                    );
                    if let Err(err) = std::fs::write(data_dir.join(DIVERGED), &reason) {
                        warn!(%err, "cannot write the DIVERGED marker");
                    }
                    return Some(reason);
                }
            }
        }
        None
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

    /// The other nodes' digests written at `seq`.
    async fn others_at(&self, store: &kv::Store, stream_id: &str, seq: u64) -> Result<Vec<(String, String)>, String> {
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
    fn a_node_differs_unless_its_digest_is_the_strictly_most_common() {
        assert_eq!(verdict("a", &[]), Verdict::Alone);
        assert_eq!(verdict("a", &of(&[("n2", "a")])), Verdict::Agrees);
        assert_eq!(verdict("a", &of(&[("n2", "a"), ("n3", "b")])), Verdict::Agrees, "n3 is the odd one");
        assert!(matches!(verdict("b", &of(&[("n1", "a"), ("n2", "a")])), Verdict::Differs { .. }));
        // Two nodes that disagree: neither can tell, both report it.
        assert!(matches!(verdict("a", &of(&[("n2", "b")])), Verdict::Differs { .. }));
        match verdict("c", &of(&[("n1", "a"), ("n2", "b")])) {
            Verdict::Differs { others } => assert_eq!(others, "a on n1, b on n2"),
            other => panic!("{other:?}"),
        }
    }
}
