//! Replicas on NATS JetStream (`serve --cluster`, docs/CLUSTER.md): one
//! stream, one subject, one total order; the full state on every node.
//!
//! - Ingest on any node (`http.rs`): the engine validates the events
//!   (`Engine::replica_events`, nothing applied), the node publishes the
//!   record as one message with a `Nats-Msg-Id` (the client's event id, a
//!   digest of a batch's ids, or a fresh id so that its own retries are
//!   stored once) and answers with the stream sequence once JetStream
//!   acknowledges it (with `wait=applied`, once this node applied it too).
//! - Apply on every node (`follow`): an ordered consumer from the node's
//!   applied sequence + 1; each message goes to `Engine::apply_replicated`,
//!   which logs it in the node's own WAL (record kind 12, with its stream
//!   sequence) and applies it. A message that is not the successor of the
//!   last one (the stream lost messages this node needs: retention, a purge)
//!   stops the node's apply and makes it unready; it never skips. At its
//!   next start such a node re-seeds from the snapshot bucket (`seed`).
//! - Snapshots (`seed`): every node publishes its state to an object-store
//!   bucket now and then; a new node, or one behind the stream's retention,
//!   starts from it.
//! - Reads (`http.rs`) may name a `min_seq`: they wait (bounded) until this
//!   node applied it, or answer 503 with the node's position.
//!
//! The engine knows nothing of NATS; this module knows nothing of the
//! engine's records beyond the bytes it publishes and hands back.

pub mod config;
mod digests;
mod http;
pub mod models;
pub mod openapi;
mod seed;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer, stream};
use futures_util::{FutureExt, StreamExt};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use recwal::{Engine, EngineError};
use sha2::{Digest, Sha256};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

pub use config::ClusterConfig;
pub use http::{layer, write};
pub use seed::finish_interrupted_install;

use crate::answers::{ClusterPhase, ClusterStatus, ReplicaState};
use crate::observe::HTTP_BUCKETS_S;
use crate::server::App;

/// Most stream messages applied in one blocking task.
const APPLY_BATCH_MAX: usize = 256;

/// Where the follower stands.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Phase {
    /// Not following yet, or following again after an error (the reason).
    Connecting(String),
    /// Applying the stream as it comes.
    Following,
    /// Stopped applying for good (a gap, a message it cannot apply): needs
    /// a restart (which re-seeds from the snapshot bucket) or an operator.
    Halted(String),
}

/// A replica: the NATS connection, the follower's position and health.
pub struct Replica {
    config: ClusterConfig,
    client: async_nats::Client,
    js: jetstream::Context,
    /// Stream sequence this node has applied (watched by waiting reads).
    applied: watch::Sender<u64>,
    /// Newest stream sequence known to exist (publish acks, stream info,
    /// the consumer's pending count).
    stream_last: AtomicU64,
    phase: Mutex<Phase>,
    stop: watch::Sender<bool>,
    follower: Mutex<Option<JoinHandle<()>>>,
    published: AtomicU64,
    published_duplicates: AtomicU64,
    publish_failures: AtomicU64,
    messages_applied: AtomicU64,
    /// Snapshots this node published to the bucket, and the stream
    /// sequence of the last one.
    snapshots_published: AtomicU64,
    snapshot_published_seq: AtomicU64,
    /// Stream sequence of the bucket's snapshot this node started from at
    /// its last start (0: it did not).
    seeded_from_seq: AtomicU64,
    /// This process's name in the digest bucket.
    node: String,
    /// The incarnation of the stream this node's state comes from (its
    /// creation time, `STREAM_FILE`), once the follower checked it.
    stream_id: Mutex<Option<String>>,
    /// Recent `(stream sequence, digest, written to the bucket)` of this
    /// node, not yet compared with another node's (`digests.rs`).
    digests: Mutex<std::collections::VecDeque<(u64, String, bool)>>,
    /// Highest stream sequence at which another node had the same digest.
    digests_agreed: AtomicU64,
    /// A digest point where another digest is as common as this node's,
    /// waiting for a node to break the tie (`digests.rs`).
    tie: Mutex<Option<digests::Tie>>,
    /// Set once this node's digest differs from the others' (the reason).
    diverged: Mutex<Option<String>>,
    /// `/readyz`'s position, with when it was computed and how long that
    /// took (`position`).
    position: Mutex<Option<(Instant, Duration, recwal::ReplicaPosition)>>,
    /// The follower takes a snapshot at its next digest point.
    snapshot_due: std::sync::atomic::AtomicBool,
    /// That snapshot, published once its digest is agreed.
    pending_snapshot: Mutex<Option<recwal::ReplicaSnapshot>>,
    /// Per message, from JetStream storing it (its timestamp, the NATS
    /// server's clock) to this node applying it (this node's clock): the
    /// replication delay as this node sees it, including any time it was
    /// down or behind; skew between machines shifts it (a negative delay
    /// counts as 0). Rendered from `metrics`.
    apply_delay: Histogram,
    metrics: Registry,
}

/// Why a follow round ended.
enum Halt {
    /// Retry after a pause (connection, stream leader, consumer errors).
    Retry(String),
    /// Stop applying (gap, undecodable message, the engine refuses writes).
    Stop(String),
}

/// Why the stream could not be had.
pub(super) enum StreamError {
    /// It does not exist.
    Missing(String),
    /// Anything else (connection, leader election).
    Other(String),
}

/// What a publish got back.
pub struct Published {
    /// The message's stream sequence (the original's for a duplicate).
    pub stream_seq: u64,
    /// JetStream had this message id already (within its duplicate window).
    pub duplicate: bool,
}

impl Replica {
    /// Connects (in the background: a NATS server that is down is retried
    /// and reported by `/readyz`, the HTTP server starts regardless).
    pub async fn connect(config: &ClusterConfig) -> Result<Arc<Replica>, String> {
        let urls = config.urls();
        let client = async_nats::ConnectOptions::new()
            .name("recwal")
            .retry_on_initial_connect()
            .max_reconnects(None)
            .connection_timeout(Duration::from_secs(2))
            .connect(urls.clone())
            .await
            .map_err(|err| format!("cannot connect to {}: {err}", urls.join(",")))?;
        let node = client.new_inbox().trim_start_matches("_INBOX.").to_string();
        let mut js = jetstream::new(client.clone());
        js.set_timeout(Duration::from_secs(2));
        let (stop, _) = watch::channel(false);
        let (applied, _) = watch::channel(0);
        let apply_delay = Histogram::new(HTTP_BUCKETS_S);
        let mut metrics = Registry::default();
        metrics.register(
            "recwal_cluster_apply_delay_seconds",
            "Time from JetStream storing a stream message to this node applying it",
            apply_delay.clone(),
        );
        Ok(Arc::new(Replica {
            config: config.clone(),
            client,
            js,
            applied,
            stream_last: AtomicU64::new(0),
            phase: Mutex::new(Phase::Connecting("starting".into())),
            stop,
            follower: Mutex::new(None),
            published: AtomicU64::new(0),
            published_duplicates: AtomicU64::new(0),
            publish_failures: AtomicU64::new(0),
            messages_applied: AtomicU64::new(0),
            snapshots_published: AtomicU64::new(0),
            snapshot_published_seq: AtomicU64::new(0),
            seeded_from_seq: AtomicU64::new(0),
            node,
            stream_id: Mutex::new(None),
            digests: Mutex::new(std::collections::VecDeque::new()),
            digests_agreed: AtomicU64::new(0),
            tie: Mutex::new(None),
            diverged: Mutex::new(None),
            position: Mutex::new(None),
            snapshot_due: std::sync::atomic::AtomicBool::new(false),
            pending_snapshot: Mutex::new(None),
            apply_delay,
            metrics,
        }))
    }

    /// Starts following the stream once `app`'s engine is open.
    pub fn start(self: &Arc<Self>, app: Arc<App>) {
        let replica = Arc::clone(self);
        let handle = tokio::spawn(async move { replica.follow(app).await });
        if let Ok(mut slot) = self.follower.lock() {
            *slot = Some(handle);
        }
    }

    /// Stops the follower and waits for it (it holds the engine).
    pub async fn shutdown(&self) {
        self.stop.send_replace(true);
        let handle = self.follower.lock().ok().and_then(|mut slot| slot.take());
        if let Some(handle) = handle {
            if tokio::time::timeout(Duration::from_secs(30), handle).await.is_err() {
                warn!("the cluster follower did not stop within 30 s");
            }
        }
    }

    fn set_phase(&self, phase: Phase) {
        if let Ok(mut slot) = self.phase.lock() {
            if *slot != phase {
                match &phase {
                    Phase::Following => {
                        info!(stream = %self.config.stream, applied = *self.applied.borrow(), "following the stream")
                    }
                    Phase::Connecting(reason) => warn!(%reason, "not following the stream; retrying"),
                    Phase::Halted(reason) => warn!(%reason, "stopped applying the stream"),
                }
                *slot = phase;
            }
        }
    }

    fn phase(&self) -> Phase {
        self.phase.lock().map(|phase| phase.clone()).unwrap_or_else(|_| Phase::Halted("lock poisoned".into()))
    }

    /// Stream sequence this node has applied.
    pub fn applied(&self) -> u64 {
        *self.applied.borrow()
    }

    fn note_stream_last(&self, seq: u64) {
        self.stream_last.fetch_max(seq, Ordering::Relaxed);
    }

    /// Waits until this node applied `seq`, at most `wait`; whether it has.
    pub async fn wait_applied(&self, seq: u64, wait: Duration) -> bool {
        let mut applied = self.applied.subscribe();
        tokio::time::timeout(wait, applied.wait_for(|&applied| applied >= seq)).await.is_ok_and(|seen| seen.is_ok())
    }

    /// Why this node is not ready, if it is not.
    pub fn unready_reason(&self) -> Option<String> {
        match self.phase() {
            Phase::Following => None,
            Phase::Connecting(reason) => Some(format!("cluster: not following the stream yet ({reason})")),
            Phase::Halted(reason) => {
                Some(format!("cluster: stopped applying the stream ({reason}); see docs/CLUSTER.md"))
            }
        }
    }

    /// The stream sequence applied and the replica digest there, for
    /// `/readyz`. The digest reads (and encodes) the whole state under its
    /// read lock, so a tight poll of `/readyz` must not run it each time:
    /// the last one is reused while the stream sequence has not moved, and
    /// while it is younger than ten times what it took to compute (a node
    /// catching up shows a position a little behind, never one that is
    /// not a pair read together).
    pub fn position(&self, engine: &Engine) -> recwal::ReplicaPosition {
        let mut cached = self.position.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((at, took, position)) = *cached {
            if position.stream_seq == engine.stream_seq() || at.elapsed() < took * 10 {
                return position;
            }
        }
        let started = Instant::now();
        let position = engine.replica_position();
        *cached = Some((Instant::now(), started.elapsed(), position));
        position
    }

    /// The `cluster` object of `/readyz`; `position`: the engine's stream
    /// sequence and replica digest, read together (replicas at the same
    /// sequence must show the same digest).
    pub fn status(&self, position: recwal::ReplicaPosition) -> ClusterStatus {
        let applied = self.applied();
        let stream_last = self.stream_last.load(Ordering::Relaxed).max(applied);
        let (phase, reason) = match self.phase() {
            Phase::Following => (ClusterPhase::Following, None),
            Phase::Connecting(reason) => (ClusterPhase::Connecting, Some(reason)),
            Phase::Halted(reason) => (ClusterPhase::Halted, Some(reason)),
        };
        ClusterStatus {
            stream: self.config.stream.clone(),
            phase,
            reason,
            connected: matches!(self.client.connection_state(), async_nats::connection::State::Connected),
            stream_seq_last: stream_last,
            stream_seq_applied: applied,
            apply_lag: stream_last - applied,
            state: ReplicaState { stream_seq: position.stream_seq, digest: format!("{:016x}", position.digest) },
        }
    }

    /// The cluster's Prometheus series.
    pub fn metrics_text(&self) -> String {
        let applied = self.applied();
        let stream_last = self.stream_last.load(Ordering::Relaxed).max(applied);
        let following = u8::from(self.phase() == Phase::Following);
        let connected = u8::from(matches!(self.client.connection_state(), async_nats::connection::State::Connected));
        let series: [(&str, &str, &str, u64); 12] = [
            ("recwal_cluster_stream_seq_last", "gauge", "Newest stream sequence this node knows of.", stream_last),
            ("recwal_cluster_stream_seq_applied", "gauge", "Stream sequence this node has applied.", applied),
            ("recwal_cluster_apply_lag", "gauge", "Stream messages this node has yet to apply.", stream_last - applied),
            (
                "recwal_cluster_following",
                "gauge",
                "1 while this node applies the stream as it comes.",
                u64::from(following),
            ),
            ("recwal_cluster_connected", "gauge", "1 while connected to a NATS server.", u64::from(connected)),
            (
                "recwal_cluster_published_total",
                "counter",
                "Messages this node published.",
                self.published.load(Ordering::Relaxed),
            ),
            (
                "recwal_cluster_publish_failures_total",
                "counter",
                "Ingests answered 503: the stream did not acknowledge in time.",
                self.publish_failures.load(Ordering::Relaxed),
            ),
            (
                "recwal_cluster_messages_applied_total",
                "counter",
                "Stream messages this node applied since it started.",
                self.messages_applied.load(Ordering::Relaxed),
            ),
            (
                "recwal_cluster_snapshots_published_total",
                "counter",
                "Snapshots this node published to the snapshot bucket since it started.",
                self.snapshots_published.load(Ordering::Relaxed),
            ),
            (
                "recwal_cluster_snapshot_published_seq",
                "gauge",
                "Stream sequence of the last snapshot this node published (0: none since it started).",
                self.snapshot_published_seq.load(Ordering::Relaxed),
            ),
            (
                "recwal_cluster_seeded_from_seq",
                "gauge",
                "Stream sequence of the bucket's snapshot this node started from (0: it followed from its own state).",
                self.seeded_from_seq.load(Ordering::Relaxed),
            ),
            (
                "recwal_cluster_digest_agreed_seq",
                "gauge",
                "Highest stream sequence at which another node reported this node's state digest (0: none yet).",
                self.digests_agreed.load(Ordering::Relaxed),
            ),
        ];
        let mut text = String::new();
        for (name, kind, help, value) in series {
            text.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"));
        }
        text.push_str(&format!(
            "# HELP recwal_cluster_published_duplicates_total Publishes JetStream had stored already (same message id).\n\
             # TYPE recwal_cluster_published_duplicates_total counter\nrecwal_cluster_published_duplicates_total {}\n",
            self.published_duplicates.load(Ordering::Relaxed)
        ));
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode_registry(&mut text, &self.metrics);
        text
    }

    /// The `Nats-Msg-Id` of a message holding events with these client ids:
    /// the id of a single event, a digest of a batch's ids (in order), or a
    /// fresh one when any event has none (so that this node's own retries
    /// of the publish are still stored once).
    pub fn message_id(&self, event_ids: &[Option<&str>]) -> String {
        match event_ids {
            [Some(id)] => format!("e:{id}"),
            ids if !ids.is_empty() && ids.iter().all(Option::is_some) => {
                let mut hasher = Sha256::new();
                for id in ids.iter().flatten() {
                    hasher.update((id.len() as u64).to_le_bytes());
                    hasher.update(id.as_bytes());
                }
                let digest: String = hasher.finalize().iter().map(|byte| format!("{byte:02x}")).collect();
                format!("b:{digest}")
            }
            _ => format!("n:{}", self.client.new_inbox().trim_start_matches("_INBOX.")),
        }
    }

    /// Publishes `message` under `message_id`, retrying (same id, so it is
    /// stored once) until JetStream acknowledges or `publish_timeout_ms`
    /// passes.
    pub async fn publish(&self, message: Vec<u8>, message_id: &str) -> Result<Published, String> {
        let deadline = Instant::now() + Duration::from_millis(self.config.publish_timeout_ms);
        let payload = bytes_of(message);
        let mut pause = Duration::from_millis(25);
        loop {
            let publish = jetstream::message::PublishMessage::build()
                .payload(payload.clone())
                .message_id(message_id)
                .expected_stream(&self.config.stream);
            let left = deadline.saturating_duration_since(Instant::now());
            let attempt = async {
                let ack =
                    self.js.send_publish(self.config.subject.clone(), publish).await.map_err(|err| err.to_string())?;
                ack.await.map_err(|err| err.to_string())
            };
            let failure = match tokio::time::timeout(left, attempt).await {
                Ok(Ok(ack)) => {
                    self.published.fetch_add(1, Ordering::Relaxed);
                    if ack.duplicate {
                        self.published_duplicates.fetch_add(1, Ordering::Relaxed);
                    }
                    self.note_stream_last(ack.sequence);
                    return Ok(Published { stream_seq: ack.sequence, duplicate: ack.duplicate });
                }
                Ok(Err(err)) => err,
                Err(_) => "no acknowledgement in time".to_string(),
            };
            if Instant::now() + pause >= deadline {
                self.publish_failures.fetch_add(1, Ordering::Relaxed);
                return Err(format!(
                    "the stream did not acknowledge within {} ms (cluster.publish_timeout_ms): {failure}",
                    self.config.publish_timeout_ms
                ));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(500));
        }
    }

    /// The follower: waits for the engine, then applies the stream, again
    /// and again after errors, until stopped or halted.
    async fn follow(self: Arc<Self>, app: Arc<App>) {
        let mut stop = self.stop.subscribe();
        let engine = loop {
            if let Some(engine) = app.engine.get() {
                break Arc::clone(engine);
            }
            tokio::select! {
                _ = stop.changed() => return,
                () = tokio::time::sleep(Duration::from_millis(50)) => {}
            }
        };
        let data_dir = app.config.server.data_dir.clone();
        let stream_file = data_dir.join(STREAM_FILE);
        drop(app);
        self.applied.send_replace(engine.stream_seq());
        if self.config.digest_every > 0 {
            tokio::spawn(Arc::clone(&self).watch_digests(data_dir));
        }
        if self.config.snapshot_interval_ms > 0 {
            tokio::spawn(Arc::clone(&self).publish_snapshots(Arc::clone(&engine)));
        }
        tokio::spawn(Arc::clone(&self).restore_model_files(Arc::clone(&engine)));
        let mut pause = Duration::from_millis(100);
        loop {
            if *stop.borrow() {
                return;
            }
            match self.follow_once(&engine, &stream_file, &mut stop).await {
                Ok(()) => return,
                Err(Halt::Stop(reason)) => {
                    self.set_phase(Phase::Halted(reason));
                    let _ = stop.changed().await;
                    return;
                }
                Err(Halt::Retry(reason)) => {
                    self.set_phase(Phase::Connecting(reason));
                    tokio::select! {
                        _ = stop.changed() => return,
                        () = tokio::time::sleep(pause) => {}
                    }
                    pause = (pause * 2).min(Duration::from_secs(2));
                }
            }
        }
    }

    /// The object-store bucket `name`, created (with the stream's replica
    /// count) by the first node that needs it.
    async fn object_bucket(
        &self,
        name: String,
        description: &str,
    ) -> Result<async_nats::jetstream::object_store::ObjectStore, String> {
        if let Ok(store) = self.js.get_object_store(&name).await {
            return Ok(store);
        }
        self.js
            .create_object_store(async_nats::jetstream::object_store::Config {
                bucket: name.clone(),
                description: Some(description.to_string()),
                num_replicas: self.config.replicas,
                ..Default::default()
            })
            .await
            .map_err(|err| format!("bucket {name}: {err}"))
    }

    async fn stream(&self) -> Result<stream::Stream, String> {
        let config = stream::Config {
            name: self.config.stream.clone(),
            subjects: vec![self.config.subject.clone()],
            num_replicas: self.config.replicas,
            duplicate_window: Duration::from_millis(self.config.duplicate_window_ms),
            storage: stream::StorageType::File,
            max_messages: if self.config.max_messages == 0 {
                -1
            } else {
                i64::try_from(self.config.max_messages).unwrap_or(i64::MAX)
            },
            ..Default::default()
        };
        self.js.get_or_create_stream(config).await.map_err(|err| format!("stream {}: {err}", self.config.stream))
    }

    /// One round: an ordered consumer from the applied sequence + 1, each
    /// message applied in turn. `Ok` when stopped.
    async fn follow_once(
        &self,
        engine: &Arc<Engine>,
        stream_file: &Path,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<(), Halt> {
        // Only a node whose state comes from no stream yet may create it:
        // one that followed a stream that is gone must not start another.
        let stream = if engine.stream_seq() == 0 && !stream_file.exists() {
            self.stream().await.map_err(Halt::Retry)?
        } else {
            self.existing_stream()
                .await
                .map_err(|(StreamError::Missing(reason) | StreamError::Other(reason))| Halt::Retry(reason))?
        };
        self.check_config(stream.cached_info())?;
        self.check_identity(stream.cached_info(), engine.stream_seq(), stream_file)?;
        let start = engine.stream_seq() + 1;
        let consumer = stream
            .create_consumer(consumer::pull::OrderedConfig {
                filter_subject: self.config.subject.clone(),
                deliver_policy: consumer::DeliverPolicy::ByStartSequence { start_sequence: start },
                ..Default::default()
            })
            .await
            .map_err(|err| Halt::Retry(format!("ordered consumer from {start}: {err}")))?;
        // The ordered consumer creates itself again (a new name) after a
        // fault, from the last sequence it delivered, on whatever stream
        // has the name by then: messages of a consumer not yet seen are
        // applied only once the stream is checked to be the one this
        // node's state comes from.
        let mut consumer_name = consumer.cached_info().name.clone();
        let mut messages = consumer.messages().await.map_err(|err| Halt::Retry(format!("consumer: {err}")))?;
        self.set_phase(Phase::Following);
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = stop.changed() => return Ok(()),
                _ = tick.tick() => {
                    if let Some(reason) = self.diverged.lock().ok().and_then(|diverged| diverged.clone()) {
                        return Err(Halt::Stop(reason));
                    }
                    self.check_stream(engine, stream_file).await?;
                }
                next = messages.next() => {
                    let first = match next {
                        None => return Err(Halt::Retry("the consumer ended".into())),
                        Some(Err(err)) => return Err(Halt::Retry(format!("consumer: {err}"))),
                        Some(Ok(message)) => message,
                    };
                    // The messages already here go to one blocking task
                    // (one hop per burst, not per message); an error after
                    // them is handled once they are applied.
                    let mut batch = vec![first];
                    let mut after = None;
                    while batch.len() < APPLY_BATCH_MAX {
                        match messages.next().now_or_never() {
                            Some(Some(Ok(message))) => batch.push(message),
                            Some(Some(Err(err))) => {
                                after = Some(format!("consumer: {err}"));
                                break;
                            }
                            Some(None) => {
                                after = Some("the consumer ended".into());
                                break;
                            }
                            None => break,
                        }
                    }
                    let mut work = Vec::with_capacity(batch.len());
                    let mut stored = Vec::with_capacity(batch.len());
                    let mut recheck = None;
                    for message in &batch {
                        let (seq, pending, stored_ns) = match message.info() {
                            Ok(info) => {
                                if info.consumer != consumer_name {
                                    recheck = Some(info.consumer.to_string());
                                }
                                (info.stream_sequence, info.pending, info.published.unix_timestamp_nanos())
                            }
                            Err(err) => return Err(Halt::Retry(format!("message without stream info: {err}"))),
                        };
                        self.note_stream_last(seq + pending);
                        // A model addition's file, fetched before anything of
                        // the batch is applied (an unreachable bucket ends the
                        // round; the consumer starts again from here).
                        let file = match recwal::model_file_of(&message.payload) {
                            Some(file) => self.model_file_for_apply(file).await.map_err(|reason| {
                                Halt::Retry(format!("the model file of stream message {seq}: {reason}"))
                            })?,
                            None => None,
                        };
                        work.push((seq, message.payload.clone(), file));
                        stored.push(stored_ns);
                    }
                    if let Some(name) = recheck {
                        let stream = self.existing_stream().await.map_err(
                            |(StreamError::Missing(reason) | StreamError::Other(reason))| Halt::Retry(reason),
                        )?;
                        self.check_identity(stream.cached_info(), engine.stream_seq(), stream_file)?;
                        consumer_name = name;
                    }
                    let engine = Arc::clone(engine);
                    let digest_every = self.config.digest_every;
                    let mut snapshot_due = self.snapshot_due.load(Ordering::Relaxed);
                    let applied = tokio::task::spawn_blocking(move || {
                        let (mut done, mut last, mut digests, mut snapshot) = (0, None, Vec::new(), None);
                        for (seq, payload, file) in work {
                            if let Err(err) = engine.apply_replicated_with(seq, &payload, file.as_deref()) {
                                return (done, last, digests, snapshot, Some((seq, err)));
                            }
                            (done, last) = (done + 1, Some(seq));
                            // This follower is the only applier of stream
                            // messages: the state is at `seq` here.
                            if digest_every > 0 && seq.is_multiple_of(digest_every) {
                                let position = engine.replica_position();
                                if position.stream_seq == seq {
                                    digests.push((seq, position.digest));
                                    if snapshot_due {
                                        snapshot = engine.replica_snapshot().ok().filter(|taken| taken.stream_seq == seq);
                                        snapshot_due = false;
                                    }
                                }
                            }
                        }
                        (done, last, digests, snapshot, None)
                    })
                    .await;
                    let (count, last, digests, snapshot, failed) = match applied {
                        Ok(outcome) => outcome,
                        Err(err) => return Err(Halt::Stop(format!("applying stream messages panicked: {err}"))),
                    };
                    for (seq, digest) in digests {
                        self.note_digest(seq, digest);
                    }
                    if let Some(snapshot) = snapshot {
                        self.snapshot_due.store(false, Ordering::Relaxed);
                        if let Ok(mut pending) = self.pending_snapshot.lock() {
                            *pending = Some(snapshot);
                        }
                    }
                    // The messages before the failed one (all of them without
                    // a failure) were applied.
                    if let Some(seq) = last {
                        self.messages_applied.fetch_add(count as u64, Ordering::Relaxed);
                        let now_ns = std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .map_or(0, |since| since.as_nanos() as i128);
                        for stored_ns in &stored[..count] {
                            self.apply_delay.observe(((now_ns - stored_ns) as f64 / 1e9).max(0.0));
                        }
                        self.applied.send_if_modified(|applied| {
                            let newer = seq > *applied;
                            *applied = (*applied).max(seq);
                            newer
                        });
                    }
                    match failed {
                        Some((_, err @ (EngineError::StreamGap { .. } | EngineError::BadRecord { .. } | EngineError::Poisoned(_)))) => {
                            return Err(Halt::Stop(err.to_string()));
                        }
                        Some((seq, err)) => return Err(Halt::Retry(format!("applying stream message {seq}: {err}"))),
                        None => {}
                    }
                    if let Some(reason) = after {
                        return Err(Halt::Retry(reason));
                    }
                }
            }
        }
    }

    /// The stream, which must exist: while it does not, `Missing` (the
    /// node is not ready, and says why).
    pub(super) async fn existing_stream(&self) -> Result<stream::Stream, StreamError> {
        self.js.get_stream(&self.config.stream).await.map_err(|err| match err.kind() {
            jetstream::context::GetStreamErrorKind::JetStream(inner)
                if inner.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND =>
            {
                StreamError::Missing(format!(
                    "the stream {} does not exist (deleted?); this node's state comes from it, so it does not create \
                     another",
                    self.config.stream
                ))
            }
            _ => StreamError::Other(format!("stream {}: {err}", self.config.stream)),
        })
    }

    /// A stream made elsewhere (by hand, by another tool) must take this
    /// node's subject, or every publish waits `publish_timeout_ms` for
    /// nothing: not ready until it does. Settings weaker than the cluster's
    /// are said once per round.
    fn check_config(&self, info: &stream::Info) -> Result<(), Halt> {
        let config = &info.config;
        if !config.subjects.contains(&self.config.subject) {
            return Err(Halt::Retry(format!(
                "the stream {} does not take the subject {} (its subjects: {}): publishes cannot reach it; set \
                 cluster.subject, or fix the stream",
                self.config.stream,
                self.config.subject,
                config.subjects.join(", ")
            )));
        }
        if config.num_replicas < self.config.replicas {
            warn!(
                stream = %self.config.stream,
                replicas = config.num_replicas,
                configured = self.config.replicas,
                "the stream keeps fewer copies than cluster.replicas: it survives fewer NATS node losses"
            );
        }
        if config.discard == stream::DiscardPolicy::New && (config.max_messages > 0 || config.max_bytes > 0) {
            warn!(
                stream = %self.config.stream,
                "the stream refuses new messages once full (discard = new): ingest will answer 503 then"
            );
        }
        Ok(())
    }

    /// The stream must be the incarnation this node's state comes from
    /// (its creation time, kept in `stream_file`): a stream deleted and
    /// created again starts its sequences anew, and following it would
    /// skip messages this node has not seen or apply others over a state
    /// they do not extend. A node that never followed one takes this one.
    fn check_identity(&self, info: &stream::Info, applied: u64, stream_file: &Path) -> Result<(), Halt> {
        let current = info.created.unix_timestamp_nanos().to_string();
        // The file is read once a run; after that the checked id is in memory.
        let followed = match self.stream_id() {
            Some(id) => Some(id),
            None => match std::fs::read_to_string(stream_file) {
                Ok(text) => Some(text.trim().to_string()),
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => None,
                Err(err) => return Err(Halt::Retry(format!("reading {}: {err}", stream_file.display()))),
            },
        };
        match followed {
            Some(followed) if followed == current => {}
            Some(followed) => {
                return Err(Halt::Stop(format!(
                    "the stream {} was created again (this node's state comes from the one created at {followed} ns, \
                     this one was created at {current} ns and does not hold its messages); move this data dir aside \
                     and start the node on an empty one",
                    self.config.stream
                )))
            }
            None => {
                // A node that followed a stream before this file existed:
                // this stream, if it reaches the node's position.
                if info.state.last_sequence < applied {
                    return Err(Halt::Stop(format!(
                        "the stream ends at sequence {} but this node applied through {applied}: was the stream \
                         recreated?",
                        info.state.last_sequence
                    )));
                }
                write_stream_file(stream_file, &current).map_err(Halt::Retry)?;
            }
        }
        if let Ok(mut id) = self.stream_id.lock() {
            *id = Some(current);
        }
        Ok(())
    }

    /// The incarnation of the stream this node follows, once checked.
    pub(super) fn stream_id(&self) -> Option<String> {
        self.stream_id.lock().ok().and_then(|id| id.clone())
    }

    /// Once a second: the stream's newest sequence (for the lag), that it
    /// is still the incarnation this node follows, and the gaps the
    /// consumer cannot show: messages this node still needs were removed
    /// (retention). A stream info that ends before this node's position
    /// comes from a server that lags (the node got those messages from
    /// another): not a reason to stop.
    async fn check_stream(&self, engine: &Engine, stream_file: &Path) -> Result<(), Halt> {
        let stream = match self.existing_stream().await {
            Ok(stream) => stream,
            // A missing stream is reported; other errors (a NATS server
            // restarting) pass: the consumer reports what it cannot get.
            Err(StreamError::Missing(reason)) => return Err(Halt::Retry(reason)),
            Err(StreamError::Other(_)) => return Ok(()),
        };
        let info = stream.cached_info();
        self.check_identity(info, engine.stream_seq(), stream_file)?;
        let state = &info.state;
        let applied = engine.stream_seq();
        self.note_stream_last(state.last_sequence);
        // (An empty stream's first sequence is its last + 1: a gap too if
        // this node had not reached the last.)
        if state.first_sequence > applied + 1 {
            return Err(Halt::Stop(format!(
                "the stream starts at sequence {} but this node applied only through {applied}: the messages between \
                 are gone (retention); restart this node to re-seed it from the snapshot bucket",
                state.first_sequence
            )));
        }
        Ok(())
    }
}

/// Writes `STREAM_FILE` (synced, then its directory).
fn write_stream_file(path: &Path, id: &str) -> Result<(), String> {
    crate::durable::replace_synced(path, format!("{id}\n").as_bytes())
        .map_err(|err| format!("writing {}: {err}", path.display()))
}

/// The file in a replica's data dir naming the incarnation of the stream
/// its state comes from (the stream's creation time, ns since the epoch).
pub(crate) const STREAM_FILE: &str = "STREAM";

/// The payload type the client takes (the `bytes` crate's, which axum
/// re-exports).
fn bytes_of(message: Vec<u8>) -> axum::body::Bytes {
    axum::body::Bytes::from(message)
}
