//! `[cluster]`: replicas on a NATS JetStream stream (docs/CLUSTER.md).
//! Without `url` the server is a single node and nothing here is used.

use serde::{Deserialize, Serialize};

use crate::config::ConfigError;

/// `[cluster]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// NATS server URLs, comma-separated (`nats://host:4222,nats://…`);
    /// none: a single node (`serve --cluster`).
    pub url: Option<String>,
    /// The JetStream stream every node publishes to and follows.
    pub stream: String,
    /// The stream's one subject for records.
    pub subject: String,
    /// Copies the stream keeps (JetStream's `num_replicas`, 1–5), when this
    /// node is the one that creates it.
    pub replicas: usize,
    /// JetStream's duplicate window (a retry of the same event id within it
    /// is stored once), when this node creates the stream.
    pub duplicate_window_ms: u64,
    /// How long an ingest retries its publish (a stream leader is being
    /// elected) before answering 503.
    pub publish_timeout_ms: u64,
    /// How long a read with `min_seq`, or an ingest with `wait=applied`,
    /// waits for this node to apply that stream sequence.
    pub apply_wait_ms: u64,
    /// Messages the stream keeps at most (JetStream's `max_msgs`; older ones
    /// are removed), when this node creates it; 0: no limit. A node that
    /// falls behind what the stream keeps re-seeds from the snapshot bucket.
    pub max_messages: u64,
    /// How often this node publishes a snapshot of its state to the
    /// snapshot bucket (when it applied something since the last one), for
    /// nodes that join or fall behind the stream's retention; 0: never.
    pub snapshot_interval_ms: u64,
    /// Every this many stream messages, each node writes its state digest
    /// at that sequence to the digest bucket and compares it with the
    /// other nodes'; one that differs stops and reports itself unready;
    /// 0: never.
    pub digest_every: u64,
    /// How long a tie (another digest as common as this node's at a digest
    /// point, none more: two nodes that disagree, or the first two writers
    /// of three) waits for another node to break it before this node counts
    /// itself diverged. Each node writes within about a second of applying
    /// the point; a third node that lags more than this (restarting,
    /// catching up) leaves the tie unbroken.
    pub digest_tie_wait_ms: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            url: None,
            stream: "RECWAL".into(),
            subject: "recwal.records".into(),
            replicas: 3,
            duplicate_window_ms: 120_000,
            publish_timeout_ms: 10_000,
            apply_wait_ms: 2_000,
            max_messages: 0,
            snapshot_interval_ms: 300_000,
            digest_every: 10_000,
            digest_tie_wait_ms: 10_000,
        }
    }
}

fn bad(key: &str, rule: impl Into<String>) -> ConfigError {
    ConfigError { key: key.into(), rule: rule.into(), origin: None }
}

impl ClusterConfig {
    /// The rules; `feedback_ttl_set`: the engine would write feedback
    /// expiries on each node's own clock, which replicas cannot agree on.
    pub fn validate(&self, feedback_ttl_set: bool) -> Result<(), ConfigError> {
        let name_ok =
            |name: &str| !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !name_ok(&self.stream) {
            return Err(bad("cluster.stream", format!("{:?}: letters, digits, - and _ only", self.stream)));
        }
        let token_ok =
            |token: &str| !token.is_empty() && token.chars().all(|c| c.is_ascii_graphic() && c != '*' && c != '>');
        if !self.subject.split('.').all(token_ok) {
            return Err(bad("cluster.subject", format!("{:?}: dot-separated tokens, no wildcards", self.subject)));
        }
        if !(1..=5).contains(&self.replicas) {
            return Err(bad("cluster.replicas", format!("must be 1–5, got {}", self.replicas)));
        }
        for (key, value) in [
            ("cluster.duplicate_window_ms", self.duplicate_window_ms),
            ("cluster.publish_timeout_ms", self.publish_timeout_ms),
            ("cluster.apply_wait_ms", self.apply_wait_ms),
            ("cluster.digest_tie_wait_ms", self.digest_tie_wait_ms),
        ] {
            if value == 0 {
                return Err(bad(key, "must be positive"));
            }
        }
        let Some(url) = &self.url else { return Ok(()) };
        for part in url.split(',') {
            let part = part.trim();
            let scheme_ok = ["nats://", "tls://"].iter().any(|scheme| part.starts_with(scheme));
            if !scheme_ok || part.len() <= "nats://".len() {
                return Err(bad(
                    "cluster.url",
                    format!("{part:?}: a nats://host:port (or tls://) URL, comma-separated"),
                ));
            }
        }
        if feedback_ttl_set {
            return Err(bad(
                "cluster.url",
                "engine.feedback.ttl_ms is not replicated yet (each node would expire on its own clock): unset one",
            ));
        }
        Ok(())
    }

    /// `digest_tie_wait_ms` as a duration.
    pub fn digest_tie_wait(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.digest_tie_wait_ms)
    }

    /// The object-store bucket of the stream's snapshots.
    pub fn snapshot_bucket(&self) -> String {
        format!("{}_snapshots", self.stream)
    }

    /// The object-store bucket of the ranking model files.
    pub fn model_bucket(&self) -> String {
        format!("{}_models", self.stream)
    }

    /// The key-value bucket of the nodes' state digests.
    pub fn digest_bucket(&self) -> String {
        format!("{}_digests", self.stream)
    }

    /// The URLs, trimmed.
    pub fn urls(&self) -> Vec<String> {
        self.url.iter().flat_map(|url| url.split(',')).map(|part| part.trim().to_string()).collect()
    }
}
