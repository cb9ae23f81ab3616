//! Joining and re-seeding from the snapshot bucket (docs/CLUSTER.md).
//!
//! Every node publishes, every `cluster.snapshot_interval_ms`, a snapshot of
//! its state to the JetStream object-store bucket `<stream>_snapshots`, as
//! the object `latest` with its stream sequence, LSN, length and SHA-256 in
//! the object's metadata (only if it is newer than the one there: a node
//! that lags never replaces a newer snapshot).
//!
//! When a node opens its engine it compares its stream sequence with what
//! the stream still holds. A node that cannot follow from where it stands
//! (the messages after its position are gone: retention, a purge), or a new
//! node that has applied nothing while a snapshot exists, installs the
//! bucket's snapshot: it is downloaded (JetStream checks the object's digest,
//! this module the SHA-256 and length in the metadata, the engine the
//! snapshot's CRCs when it opens it), the node's old `wal/`, `snapshots/` and
//! `models/` are moved into `replaced-<unix ms>/` inside the data dir (the
//! previous such directory is removed), a new log is started after the
//! snapshot's LSN, and the engine opens on it and follows the stream from
//! the snapshot's sequence + 1. A node that needs a snapshot and finds none
//! recent enough keeps its state; its follower halts with the reason.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::object_store::{self, ObjectMetadata, ObjectStore};
use recwal::{Engine, EngineConfig, ReplicaSnapshot};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;
use tracing::{info, warn};

use super::Replica;

/// The bucket's one object: the newest snapshot published.
const OBJECT: &str = "latest";

/// What the metadata of a published snapshot says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct SnapshotMeta {
    pub stream_seq: u64,
    pub lsn: u64,
    pub bytes: u64,
    pub sha256: String,
    /// The incarnation of the stream the state comes from (its creation
    /// time, as in `STREAM`); absent in snapshots of builds before it.
    pub stream_id: Option<String>,
}

impl SnapshotMeta {
    fn to_map(&self) -> std::collections::HashMap<String, String> {
        [
            ("stream_seq", self.stream_seq.to_string()),
            ("lsn", self.lsn.to_string()),
            ("bytes", self.bytes.to_string()),
            ("sha256", self.sha256.clone()),
        ]
        .into_iter()
        .chain(self.stream_id.clone().map(|id| ("stream_id", id)))
        .map(|(key, value)| (key.to_string(), value))
        .collect()
    }

    fn from_map(map: &std::collections::HashMap<String, String>) -> Result<SnapshotMeta, String> {
        let number = |key: &str| -> Result<u64, String> {
            map.get(key)
                .ok_or_else(|| format!("its metadata lacks {key}"))?
                .parse()
                .map_err(|_| format!("its metadata's {key} is not a number"))
        };
        let sha256 = map.get("sha256").ok_or("its metadata lacks sha256")?.clone();
        if sha256.len() != 64 || !sha256.bytes().all(|byte| byte.is_ascii_hexdigit()) {
            return Err("its metadata's sha256 is not 64 hex digits".into());
        }
        Ok(SnapshotMeta {
            stream_seq: number("stream_seq")?,
            lsn: number("lsn")?,
            bytes: number("bytes")?,
            sha256,
            stream_id: map.get("stream_id").cloned(),
        })
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|byte| format!("{byte:02x}")).collect()
}

/// What a node opening its engine should do.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum SeedPlan {
    /// Follow the stream from where the node stands.
    Keep,
    /// Install the bucket's snapshot (why, for the log).
    Install(&'static str),
}

/// The decision, from the node's position (`applied`; `fresh`: it never
/// applied a record; `diverged`: its digest differed from the others',
/// `digests.rs`), the stream's first sequence and the bucket's newest
/// snapshot. Pure, so the cases are unit-tested.
pub(super) fn plan(applied: u64, fresh: bool, diverged: bool, stream_first: u64, snapshot: Option<u64>) -> SeedPlan {
    let behind = stream_first > applied + 1;
    let Some(snapshot_seq) = snapshot else { return SeedPlan::Keep };
    // A node whose state differs from the others' takes any snapshot the
    // stream goes on from, behind its own position or not.
    if diverged && snapshot_seq + 1 >= stream_first {
        return SeedPlan::Install("this node's state digest differed from the other nodes' (DIVERGED)");
    }
    // Useless unless it is ahead of the node and the stream goes on from it.
    if snapshot_seq <= applied || snapshot_seq + 1 < stream_first {
        return SeedPlan::Keep;
    }
    if behind {
        SeedPlan::Install("the stream no longer holds the messages after this node's position")
    } else if fresh {
        SeedPlan::Install("a new node: starting from the newest snapshot instead of the whole stream")
    } else {
        SeedPlan::Keep
    }
}

impl Replica {
    /// The snapshot bucket, created by the first node that needs it (with
    /// the stream's replica count).
    async fn bucket(&self) -> Result<ObjectStore, String> {
        self.object_bucket(self.config.snapshot_bucket(), "recwal: the newest snapshot of the replicas' state").await
    }

    /// The metadata of the bucket's snapshot, if there is one.
    async fn published(&self, store: &ObjectStore) -> Result<Option<SnapshotMeta>, String> {
        match store.info(OBJECT).await {
            Ok(info) if info.deleted => Ok(None),
            Ok(info) => {
                SnapshotMeta::from_map(&info.metadata).map(Some).map_err(|err| format!("the bucket's snapshot: {err}"))
            }
            Err(err) if err.kind() == object_store::InfoErrorKind::NotFound => Ok(None),
            Err(err) => Err(format!("the bucket's snapshot: {err}")),
        }
    }

    /// Publishes `snapshot` unless the bucket holds one of this stream at
    /// least as new (one of a stream deleted since is replaced); the stream
    /// sequence published, if any.
    pub(super) async fn publish_snapshot(&self, snapshot: ReplicaSnapshot) -> Result<Option<u64>, String> {
        let Some(stream_id) = self.stream_id() else { return Ok(None) };
        let store = self.bucket().await?;
        let there = self.published(&store).await?;
        let same_stream = |meta: &SnapshotMeta| meta.stream_id.as_ref().is_none_or(|id| *id == stream_id);
        if there.is_some_and(|meta| same_stream(&meta) && snapshot.stream_seq <= meta.stream_seq) {
            return Ok(None);
        }
        let meta = SnapshotMeta {
            stream_seq: snapshot.stream_seq,
            lsn: snapshot.lsn,
            bytes: snapshot.bytes.len() as u64,
            sha256: sha256_hex(&snapshot.bytes),
            stream_id: Some(stream_id),
        };
        let object = ObjectMetadata {
            name: OBJECT.into(),
            description: Some(format!("state at stream sequence {}", meta.stream_seq)),
            metadata: meta.to_map(),
            ..Default::default()
        };
        store
            .put(object, &mut snapshot.bytes.as_slice())
            .await
            .map_err(|err| format!("uploading the snapshot: {err}"))?;
        self.snapshots_published.fetch_add(1, Ordering::Relaxed);
        self.snapshot_published_seq.store(meta.stream_seq, Ordering::Relaxed);
        info!(stream_seq = meta.stream_seq, bytes = meta.bytes, "snapshot published to the bucket");
        Ok(Some(meta.stream_seq))
    }

    /// Every `cluster.snapshot_interval_ms`, while this node applied
    /// something since the last round: with digests compared
    /// (`cluster.digest_every`), asks the follower to take a snapshot at its
    /// next digest point, published once another node reported the same
    /// digest there (`digests.rs`), so that a node whose state differs
    /// never publishes it; without, publishes the state as it stands.
    pub(super) async fn publish_snapshots(self: Arc<Self>, engine: Arc<Engine>) {
        let every = Duration::from_millis(self.config.snapshot_interval_ms);
        let mut stop = self.stop.subscribe();
        let mut last = 0;
        loop {
            tokio::select! {
                _ = stop.changed() => return,
                () = tokio::time::sleep(every) => {}
            }
            let seq = engine.stream_seq();
            if seq <= last || self.phase() != super::Phase::Following {
                continue;
            }
            if self.config.digest_every > 0 {
                self.snapshot_due.store(true, Ordering::Relaxed);
                last = seq;
                continue;
            }
            let taken = {
                let engine = Arc::clone(&engine);
                tokio::task::spawn_blocking(move || engine.replica_snapshot()).await
            };
            let published = match taken {
                Ok(Ok(snapshot)) => self.publish_snapshot(snapshot).await,
                Ok(Err(err)) => Err(format!("encoding the snapshot: {err}")),
                Err(err) => Err(format!("encoding the snapshot panicked: {err}")),
            };
            match published {
                Ok(_) => last = seq,
                Err(reason) => warn!(%reason, "publishing a snapshot failed; trying again next round"),
            }
        }
    }

    /// Downloads and checks the bucket's snapshot into `into` (a file).
    async fn download(&self, store: &ObjectStore, into: &Path) -> Result<SnapshotMeta, String> {
        let mut object = store.get(OBJECT).await.map_err(|err| format!("downloading the snapshot: {err}"))?;
        let meta =
            SnapshotMeta::from_map(&object.info.metadata).map_err(|err| format!("the bucket's snapshot: {err}"))?;
        let mut bytes = Vec::with_capacity(usize::try_from(meta.bytes).unwrap_or(0).min(1 << 30));
        object.read_to_end(&mut bytes).await.map_err(|err| format!("downloading the snapshot: {err}"))?;
        if bytes.len() as u64 != meta.bytes || sha256_hex(&bytes) != meta.sha256 {
            return Err(format!(
                "the downloaded snapshot ({} bytes) does not match its metadata ({} bytes, SHA-256 {})",
                bytes.len(),
                meta.bytes,
                meta.sha256
            ));
        }
        tokio::fs::write(into, &bytes).await.map_err(|err| format!("writing {}: {err}", into.display()))?;
        Ok(meta)
    }

    /// At open (the engine `opened` on `dir`, not yet serving): installs the
    /// bucket's snapshot if this node cannot follow the stream from where it
    /// stands, or is new and a snapshot exists; returns the engine to serve.
    /// Where NATS cannot be reached within `cluster.publish_timeout_ms`, no
    /// snapshot is recent enough, or the download fails or does not match
    /// its metadata, the node keeps its state (its follower reports what it
    /// finds). A failure of the install itself is an error: the node does
    /// not start, and the next start finds its data dir whole (`install`).
    pub async fn seed_at_open(&self, opened: Engine, dir: &Path, config: EngineConfig) -> Result<Engine, String> {
        let applied = opened.stream_seq();
        let fresh = opened.lsn_applied() == 0;
        let wait = Duration::from_millis(self.config.publish_timeout_ms);
        let started = Instant::now();
        let looked = loop {
            let stream_file = dir.join(super::STREAM_FILE);
            match self.look(applied, fresh, dir.join(super::digests::DIVERGED).exists(), &stream_file).await {
                Ok(found) => break Some(found),
                Err(reason) if started.elapsed() >= wait => {
                    warn!(%reason, "cannot check the stream and the snapshot bucket at start-up; following from this node's position");
                    break None;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        };
        let Some((SeedPlan::Install(why), store)) = looked else { return Ok(opened) };
        info!(applied, why, "installing the snapshot bucket's snapshot");
        let download = dir.join("seed-snapshot.tmp");
        let meta = match self.download(&store, &download).await {
            Ok(meta) => meta,
            Err(reason) => {
                // Nothing changed yet: the node starts from its own state
                // and its follower reports what it finds (a restart tries
                // again).
                let _ = std::fs::remove_file(&download);
                warn!(%reason, "the snapshot could not be downloaded; following from this node's position");
                return Ok(opened);
            }
        };
        let installed = {
            let (dir, download) = (dir.to_path_buf(), download.clone());
            tokio::task::spawn_blocking(move || install(opened, &dir, &download, meta.lsn, config))
                .await
                .map_err(|err| format!("installing the snapshot panicked: {err}"))?
        };
        let _ = std::fs::remove_file(&download);
        let engine = installed?;
        let _ = std::fs::remove_file(dir.join(super::digests::DIVERGED));
        if engine.stream_seq() != meta.stream_seq {
            return Err(format!(
                "the installed snapshot opened at stream sequence {}, its metadata says {}",
                engine.stream_seq(),
                meta.stream_seq
            ));
        }
        self.seeded_from_seq.store(meta.stream_seq, Ordering::Relaxed);
        info!(stream_seq = meta.stream_seq, lsn = meta.lsn, "started from the bucket's snapshot");
        Ok(engine)
    }

    /// The plan for a node at `applied`, with the bucket to install from.
    /// Only a snapshot of the stream incarnation the node follows (`stream_file`;
    /// any, for a node that followed none) is installed; only a node that
    /// followed none creates a missing stream.
    async fn look(
        &self,
        applied: u64,
        fresh: bool,
        diverged: bool,
        stream_file: &Path,
    ) -> Result<(SeedPlan, ObjectStore), String> {
        let followed = std::fs::read_to_string(stream_file).ok().map(|text| text.trim().to_string());
        let stream = if applied == 0 && followed.is_none() {
            self.stream().await?
        } else {
            self.existing_stream()
                .await
                .map_err(|(super::StreamError::Missing(reason) | super::StreamError::Other(reason))| reason)?
        };
        let info = stream.get_info().await.map_err(|err| format!("stream info: {err}"))?;
        let (first, current) = (info.state.first_sequence, info.created.unix_timestamp_nanos().to_string());
        let store = self.bucket().await?;
        if followed.as_ref().is_some_and(|followed| *followed != current) {
            // The follower stops with the reason; nothing here fits.
            return Ok((SeedPlan::Keep, store));
        }
        let snapshot = self
            .published(&store)
            .await?
            .filter(|meta| meta.stream_id.as_ref().is_none_or(|id| *id == current))
            .map(|meta| meta.stream_seq);
        let plan = plan(applied, fresh, diverged, first, snapshot);
        if plan == SeedPlan::Keep && first > applied + 1 {
            warn!(
                applied,
                stream_first = first,
                ?snapshot,
                "behind the stream's retention and no snapshot recent enough"
            );
        }
        Ok((plan, store))
    }
}

/// The parts of a data dir a snapshot install replaces.
const PARTS: [&str; 3] = ["wal", "snapshots", "models"];

/// Where an install writes the new data dir before it switches to it.
const STAGED: &str = "seed.new";

/// Present (synced) from the moment the staged data dir is complete until
/// the switch is done; holds the name of the directory the old parts go to
/// (empty: they are removed). A start that finds it finishes the switch.
const SWITCHING: &str = "SEEDING";

/// Closes `opened`, writes a data dir holding the snapshot file `snapshot`
/// (covering `lsn`) and a new log after it beside the old one, switches to
/// it (the old parts set aside), and opens it. Killed at any point, the next
/// start finds either the old data dir untouched (the staged copy is
/// dropped) or the switch to finish (`finish_interrupted_install`): never a
/// data dir with a part missing.
fn install(opened: Engine, dir: &Path, snapshot: &Path, lsn: u64, config: EngineConfig) -> Result<Engine, String> {
    let fresh = opened.lsn_applied() == 0;
    opened.close().map_err(|err| format!("closing the engine before installing the snapshot: {err}"))?;
    let staged = dir.join(STAGED);
    if staged.exists() {
        std::fs::remove_dir_all(&staged).map_err(|err| format!("removing {}: {err}", staged.display()))?;
    }
    crate::backup::write_data_dir(&staged, Some((snapshot, lsn)), lsn, &[], None, &config.wal)
        .map_err(|err| format!("installing the snapshot: {err}"))?;
    sync_dir(&staged)?;
    let aside = if fresh { String::new() } else { aside_name(dir)? };
    let marker = dir.join(SWITCHING);
    write_synced(&marker, aside.as_bytes())?;
    sync_dir(dir)?;
    switch(dir)?;
    Engine::open(dir, config).map_err(|err| format!("opening the installed snapshot: {err}"))
}

/// Before the engine opens a replica's data dir: finishes a snapshot
/// install that was cut short after its staged copy was complete, or drops
/// a staged copy that was not. True if an install was finished.
pub fn finish_interrupted_install(dir: &Path) -> Result<bool, String> {
    if dir.join(SWITCHING).exists() {
        warn!(data_dir = %dir.display(), "a snapshot install was interrupted; finishing it");
        switch(dir)?;
        return Ok(true);
    }
    let staged = dir.join(STAGED);
    if staged.exists() {
        warn!(data_dir = %dir.display(), "dropping the copy of an interrupted snapshot install; the data dir is as it was");
        std::fs::remove_dir_all(&staged).map_err(|err| format!("removing {}: {err}", staged.display()))?;
    }
    Ok(false)
}

/// Moves each staged part into place, the old one first set aside (or
/// removed) as the marker says. Each step is a rename that is skipped once
/// done, so a switch killed half way is finished by running it again.
fn switch(dir: &Path) -> Result<(), String> {
    let marker = dir.join(SWITCHING);
    let aside = std::fs::read_to_string(&marker)
        .map_err(|err| format!("reading {}: {err}", marker.display()))?
        .trim()
        .to_string();
    let staged = dir.join(STAGED);
    for part in PARTS {
        let new = staged.join(part);
        if !new.exists() {
            continue;
        }
        let old = dir.join(part);
        if old.exists() {
            if aside.is_empty() {
                std::fs::remove_dir_all(&old).map_err(|err| format!("removing {}: {err}", old.display()))?;
            } else {
                let into = dir.join(&aside);
                std::fs::create_dir_all(&into).map_err(|err| format!("creating {}: {err}", into.display()))?;
                std::fs::rename(&old, into.join(part))
                    .map_err(|err| format!("moving {} aside: {err}", old.display()))?;
            }
        }
        std::fs::rename(&new, &old).map_err(|err| format!("moving {} into place: {err}", new.display()))?;
    }
    sync_dir(dir)?;
    if !aside.is_empty() {
        warn!(kept = %dir.join(&aside).display(), "this node's previous log and snapshots were set aside (delete them once not needed)");
    }
    std::fs::remove_dir_all(&staged).map_err(|err| format!("removing {}: {err}", staged.display()))?;
    std::fs::remove_file(&marker).map_err(|err| format!("removing {}: {err}", marker.display()))?;
    sync_dir(dir)
}

/// A new `replaced-<unix ms>` name, the older such directories removed.
fn aside_name(dir: &Path) -> Result<String, String> {
    let entries = std::fs::read_dir(dir).map_err(|err| format!("reading {}: {err}", dir.display()))?;
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with("replaced-") {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    let now_ms =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |since| since.as_millis());
    Ok(format!("replaced-{now_ms}"))
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), String> {
    crate::durable::write_synced(path, bytes).map_err(|err| format!("writing {}: {err}", path.display()))
}

fn sync_dir(dir: &Path) -> Result<(), String> {
    crate::durable::sync_dir(dir).map_err(|err| format!("syncing {}: {err}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(dir: &Path) -> Vec<String> {
        let mut found = Vec::new();
        let mut pending = vec![dir.to_path_buf()];
        while let Some(next) = pending.pop() {
            for entry in std::fs::read_dir(&next).expect("test setup") {
                let path = entry.expect("test setup").path();
                if path.is_dir() {
                    pending.push(path);
                } else {
                    let name = path.strip_prefix(dir).expect("test setup").display().to_string();
                    found.push(format!("{name}={}", std::fs::read_to_string(&path).expect("test setup")));
                }
            }
        }
        found.sort();
        found
    }

    /// A switch killed after any of its steps is finished by the next start;
    /// a staged copy without the marker is dropped, the data dir untouched.
    #[test]
    fn an_interrupted_install_is_finished_or_dropped_never_left_half_done() {
        for done in 0..=PARTS.len() {
            let dir = tempfile::tempdir().expect("test setup");
            for part in PARTS {
                std::fs::create_dir_all(dir.path().join(part)).expect("test setup");
                std::fs::write(dir.path().join(part).join("f"), format!("old {part}")).expect("test setup");
                std::fs::create_dir_all(dir.path().join(STAGED).join(part)).expect("test setup");
                std::fs::write(dir.path().join(STAGED).join(part).join("f"), format!("new {part}"))
                    .expect("test setup");
            }
            std::fs::write(dir.path().join(SWITCHING), "replaced-1").expect("test setup");
            // The first `done` parts were switched before the kill.
            for part in &PARTS[..done] {
                std::fs::create_dir_all(dir.path().join("replaced-1")).expect("test setup");
                std::fs::rename(dir.path().join(part), dir.path().join("replaced-1").join(part)).expect("test setup");
                std::fs::rename(dir.path().join(STAGED).join(part), dir.path().join(part)).expect("test setup");
            }
            assert!(finish_interrupted_install(dir.path()).expect("test setup"));
            let expected: Vec<String> = {
                let mut expected: Vec<String> = PARTS
                    .iter()
                    .flat_map(|part| [format!("{part}/f=new {part}"), format!("replaced-1/{part}/f=old {part}")])
                    .collect();
                expected.sort();
                expected
            };
            assert_eq!(tree(dir.path()), expected, "killed after {done} part(s)");
            assert!(!finish_interrupted_install(dir.path()).expect("test setup"), "nothing left to finish");
        }
        // Staged but no marker: the old data dir stays as it was.
        let dir = tempfile::tempdir().expect("test setup");
        std::fs::create_dir_all(dir.path().join("wal")).expect("test setup");
        std::fs::write(dir.path().join("wal").join("f"), "old").expect("test setup");
        std::fs::create_dir_all(dir.path().join(STAGED).join("wal")).expect("test setup");
        std::fs::write(dir.path().join(STAGED).join("wal").join("f"), "partial").expect("test setup");
        assert!(!finish_interrupted_install(dir.path()).expect("test setup"));
        assert_eq!(tree(dir.path()), vec!["wal/f=old".to_string()]);
    }

    #[test]
    fn a_node_installs_a_snapshot_only_when_it_cannot_follow_or_is_new() {
        // Behind the retention, a snapshot that bridges the gap: install.
        assert!(matches!(plan(10, false, false, 50, Some(60)), SeedPlan::Install(_)));
        assert!(matches!(plan(10, false, false, 50, Some(49)), SeedPlan::Install(_)), "49 + 1 is the stream's first");
        // Behind, but the snapshot is too old to bridge it, or none: keep.
        assert_eq!(plan(10, false, false, 50, Some(48)), SeedPlan::Keep);
        assert_eq!(plan(10, false, false, 50, None), SeedPlan::Keep);
        // Not behind: an old node follows; a new one starts from the snapshot.
        assert_eq!(plan(10, false, false, 5, Some(60)), SeedPlan::Keep);
        assert!(matches!(plan(0, true, false, 1, Some(60)), SeedPlan::Install(_)));
        // A snapshot at or behind the node is of no use.
        assert_eq!(plan(60, false, false, 61, Some(60)), SeedPlan::Keep);
        assert_eq!(plan(0, true, false, 1, None), SeedPlan::Keep);
        // A diverged node takes any snapshot the stream goes on from.
        assert!(matches!(plan(60, false, true, 1, Some(40)), SeedPlan::Install(_)));
        assert_eq!(plan(60, false, true, 50, Some(40)), SeedPlan::Keep, "too old to follow on from");
        assert_eq!(plan(60, false, true, 1, None), SeedPlan::Keep);
        // An empty stream that had messages: first = last + 1.
        assert!(matches!(plan(0, true, false, 101, Some(100)), SeedPlan::Install(_)));
    }

    #[test]
    fn snapshot_metadata_round_trips_and_bad_metadata_is_refused() {
        let meta = SnapshotMeta {
            stream_seq: 7,
            lsn: 9,
            bytes: 3,
            sha256: sha256_hex(b"abc"),
            stream_id: Some("1796665931182000000".into()),
        };
        assert_eq!(SnapshotMeta::from_map(&meta.to_map()), Ok(meta.clone()));
        let mut map = meta.to_map();
        map.insert("sha256".into(), "xyz".into());
        assert!(matches!(SnapshotMeta::from_map(&map), Err(reason) if reason.contains("sha256")));
        map.remove("lsn");
        assert!(SnapshotMeta::from_map(&map).is_err());
    }
}
