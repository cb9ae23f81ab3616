//! The model registry on replicas (docs/CLUSTER.md, "Ranking models through
//! the stream"): the messages a cluster node publishes for a registry
//! change (checked here as the single-node methods check them), their
//! apply on every node (`apply_replicated_model`, called by
//! `Engine::apply_replicated_with`), and the model files a node lacks.

use recwal_wal::Durability;
use tracing::{info, warn};

use super::models::{now_ms, MODEL_BYTES_MAX};
use super::replica::ModelFileRef;
use super::Engine;
use crate::error::EngineError;
use crate::model::catalog::{ModelEntry, Routes};
use crate::model::{store, ModelInfo};
use crate::record::{LogRecord, ModelActivatedV1, ModelAddedV1, ModelRetiredV1};

/// What `Engine::replica_model_add` found.
#[derive(Debug)]
pub enum ReplicaModelAdd {
    /// A live version holds this file already: nothing to publish.
    Known(ModelInfo),
    /// Put `file` where every replica can fetch it, then publish `message`.
    Publish {
        /// The stream message.
        message: Vec<u8>,
        /// The file it names.
        file: ModelFileRef,
    },
}

impl Engine {
    /// A cluster node's `retire_model`: checked as it is, returned as the
    /// stream message retiring the version on every replica.
    pub fn replica_model_retirement(&self, version: u32) -> Result<Vec<u8>, EngineError> {
        self.check_retirable(version)?;
        self.message_of(&LogRecord::ModelRetired(ModelRetiredV1 { version }), "model")
    }

    /// A cluster node's `add_model`: validates `bytes` exactly as
    /// `add_model` does (size, loads, feature schema, warm-up) and returns
    /// the stream message that adds the file on every replica, numbered
    /// when it is applied (the next version there; a file live already is
    /// not added twice). Stores and logs nothing: the caller puts the file
    /// where every replica can fetch it by its hash, then publishes.
    pub fn replica_model_add(&self, bytes: &[u8]) -> Result<ReplicaModelAdd, EngineError> {
        if bytes.is_empty() || bytes.len() > MODEL_BYTES_MAX {
            return Err(EngineError::invalid(
                "model",
                format!("must be 1–{MODEL_BYTES_MAX} bytes, got {}", bytes.len()),
            ));
        }
        let sha256 = store::sha256(bytes);
        let (existing, version) = {
            let state = self.shared.read_state();
            (state.models().find_hash(&sha256).cloned(), state.models().next_version())
        };
        if let Some(entry) = existing {
            return Ok(ReplicaModelAdd::Known(self.info(&entry)));
        }
        let version = version.ok_or_else(|| EngineError::invalid("model", "no version numbers left"))?;
        self.shared.ranker.check(bytes, version)?;
        let record = ModelAddedV1 { version, sha256, bytes: bytes.len() as u64, added_ms: now_ms() };
        let message = self.message_of(&LogRecord::ModelAdded(record), "model")?;
        Ok(ReplicaModelAdd::Publish { message, file: ModelFileRef { sha256, bytes: bytes.len() as u64 } })
    }

    /// A cluster node's `activate_model` (`Some(version)`) or
    /// `rollback_model` (`None`): the version must be live, and it must
    /// load and warm up on this node (refused as on a single node
    /// otherwise); returns the stream message that activates it on every
    /// replica. Activates nothing.
    pub fn replica_model_activation(&self, version: Option<u32>) -> Result<Vec<u8>, EngineError> {
        let (version, rollback) = match version {
            Some(version) => (version, false),
            None => {
                let previous = self.shared.read_state().models().previous();
                let previous =
                    previous.ok_or_else(|| EngineError::invalid("model", "no previous version to roll back to"))?;
                (previous, true)
            }
        };
        let entry = self.entry(version)?;
        if entry.lsn_retired.is_some() {
            return Err(EngineError::UnknownModel(version));
        }
        // Kept for this node's own apply of the message.
        let ranker = &self.shared.ranker;
        ranker.preload(ranker.load_shared(&entry)?);
        let record = ModelActivatedV1 { version, sha256: entry.sha256, at_ms: now_ms(), rollback };
        self.message_of(&LogRecord::ModelActivated(record), "model")
    }

    /// The stream messages retiring what this node's retention would retire
    /// now (`models.retention`): published by the node that added or
    /// activated a version, once it applied that, so that every replica
    /// retires the same versions at the same stream position.
    pub fn replica_model_retirements(&self) -> Result<Vec<Vec<u8>>, EngineError> {
        let retire = self.shared.read_state().models().to_retire(self.shared.ranker.retention());
        retire
            .into_iter()
            .map(|version| self.message_of(&LogRecord::ModelRetired(ModelRetiredV1 { version }), "model"))
            .collect()
    }

    /// Live versions whose file this node lacks (a node that joined from a
    /// snapshot, or applied an addition without the file), or holds with
    /// another length, oldest first; and the active version if it does not
    /// serve (its file may be altered: loading verifies the hash). Reads
    /// file metadata only, so it is cheap to ask again and again.
    pub fn model_files_missing(&self) -> Vec<(u32, ModelFileRef)> {
        let (live, active): (Vec<ModelEntry>, Option<u32>) = {
            let state = self.shared.read_state();
            let models = state.models();
            (models.entries.iter().filter(|entry| entry.lsn_retired.is_none()).cloned().collect(), models.active())
        };
        let ranker = &self.shared.ranker;
        live.into_iter()
            .filter(|entry| {
                !ranker.has_file(entry) || (active == Some(entry.version) && !ranker.is_serving(entry.version))
            })
            .map(|entry| (entry.version, ModelFileRef { sha256: entry.sha256, bytes: entry.bytes }))
            .collect()
    }

    /// Stores live version `version`'s file (fetched by a cluster node),
    /// checked against the hash the log holds for it; if it is the active
    /// version and nothing serves, loads it and serves it, and if it is the
    /// canary or shadow and not loaded, loads it into its route. Logs
    /// nothing: the log already holds the version (and its activation).
    pub fn restore_model_file(&self, version: u32, bytes: &[u8]) -> Result<(), EngineError> {
        let ranker = &self.shared.ranker;
        let _admin = ranker.lock_admin()?;
        let entry = self.entry(version)?;
        if entry.lsn_retired.is_some() {
            return Err(EngineError::UnknownModel(version));
        }
        if store::sha256(bytes) != entry.sha256 || bytes.len() as u64 != entry.bytes {
            return Err(EngineError::BadModel(format!(
                "v{version}: the file offered ({} bytes) is not the one the log names (SHA-256 {})",
                bytes.len(),
                store::hex(&entry.sha256)
            )));
        }
        ranker.store(version, bytes)?;
        let catalog = self.shared.read_state().models().clone();
        if catalog.active() == Some(version) && !ranker.is_serving(version) {
            ranker.serve(std::sync::Arc::new(ranker.load(&entry)?));
            info!(version, "model file restored: the active version serves");
        } else if catalog.routes.names(version) && ranker.routed(version).is_none() {
            // The routes loaded again: those loaded already are kept.
            ranker.set_routes(ranker.load_routes(&catalog, catalog.routes));
            info!(version, "model file restored: the routed version gets its requests");
        }
        Ok(())
    }

    /// `apply_replicated` of a model message (the caller holds the replica
    /// turn): whatever it needs on this node happens around the record,
    /// under the registry's lock — an addition's file stored before it,
    /// an activation's version loaded and warmed before it and swapped in
    /// right after (so it serves from this stream position on, as on every
    /// replica), a retired version's file deleted after. Whether it changes
    /// the catalog is decided as `State::apply` decides it.
    pub(super) fn apply_replicated_model(
        &self,
        stream_seq: u64,
        record: LogRecord<'_>,
        file: Option<&[u8]>,
    ) -> Result<u64, EngineError> {
        let ranker = &self.shared.ranker;
        let _admin = ranker.lock_admin()?;
        let log = |record: LogRecord<'_>| {
            let record = LogRecord::Replicated { stream_seq, record: Box::new(record) };
            self.shared.log_and_apply(&record, Vec::new(), Durability::Never)
        };
        match record {
            LogRecord::ModelAdded(mut added) => {
                let (known, next) = {
                    let state = self.shared.read_state();
                    (state.models().find_hash(&added.sha256).map(|entry| entry.version), state.models().next_version())
                };
                match (known, next) {
                    // Numbered here, the same on every replica.
                    (None, Some(next)) => {
                        added.version = next;
                        let matching = file
                            .filter(|bytes| bytes.len() as u64 == added.bytes && store::sha256(bytes) == added.sha256);
                        match matching {
                            Some(bytes) => ranker.store(next, bytes)?,
                            None => warn!(
                                version = next,
                                sha256 = %store::hex(&added.sha256),
                                "model added from the stream without its file: it cannot serve on this node until \
                                 the file is restored"
                            ),
                        }
                    }
                    // Live already (or no numbers left): a no-op.
                    (Some(version), _) => added.version = version,
                    (None, None) => added.version = 0,
                }
                let lsn = log(LogRecord::ModelAdded(added.clone()))?;
                info!(version = added.version, stream_seq, "model added from the stream");
                Ok(lsn)
            }
            LogRecord::ModelActivated(activated) => {
                let record = LogRecord::ModelActivated(activated.clone());
                let entry = {
                    let state = self.shared.read_state();
                    let models = state.models();
                    models.admits_replicated(&record).then(|| models.get(activated.version).cloned()).flatten()
                };
                let Some(entry) = entry else {
                    info!(version = activated.version, stream_seq, "model activation from the stream does not apply");
                    return log(record);
                };
                let loaded = ranker.load_shared(&entry);
                let lsn = log(record)?;
                ranker.sync_routes(&self.shared.read_state().models().routes);
                match loaded {
                    Ok(model) => {
                        ranker.serve_from_stream(model, stream_seq);
                        info!(version = entry.version, stream_seq, lsn, "model activated from the stream");
                    }
                    Err(err) => {
                        warn!(version = entry.version, stream_seq, %err, "the model activated through the stream \
                              cannot serve on this node: answers are un-ranked");
                        ranker.fail_from_stream(format!("v{}: {err}", entry.version), stream_seq);
                    }
                }
                Ok(lsn)
            }
            LogRecord::ModelRoutes(routes) => {
                let record = LogRecord::ModelRoutes(routes.clone());
                let applies = self.shared.read_state().models().admits_replicated(&record);
                if !applies {
                    info!(stream_seq, "model routes from the stream do not apply");
                    return log(record);
                }
                // Loaded before the record; a version that does not load
                // here gets no requests on this node (reported), as after a
                // start where it does not load.
                // (The catalog copied first: no state lock while loading.)
                let catalog = self.shared.read_state().models().clone();
                let routed = ranker.load_routes(&catalog, Routes::of(&routes));
                let lsn = log(record)?;
                ranker.set_routes(routed);
                info!(stream_seq, lsn, "model routes set from the stream");
                Ok(lsn)
            }
            LogRecord::ModelRetired(retired) => {
                let record = LogRecord::ModelRetired(retired.clone());
                let applies = self.shared.read_state().models().admits_replicated(&record);
                let lsn = log(record)?;
                if applies {
                    if let Err(err) = ranker.remove(retired.version) {
                        // The next start sweeps files of retired versions.
                        warn!(version = retired.version, %err, "deleting a retired model's file failed");
                    }
                    info!(version = retired.version, stream_seq, "model retired from the stream");
                }
                Ok(lsn)
            }
            _ => Err(EngineError::BadRecord {
                lsn: 0,
                reason: format!("stream message {stream_seq}: not a model record"),
            }),
        }
    }
}
