//! The model registry on `Engine`: add, activate, roll back, list. It asks
//! the ranker (`model/ranker.rs`) for operations; it never touches its fields. Every
//! change is a log record (kinds 4–6) made durable before it takes effect,
//! so the active version after a restart is the one last acknowledged.

use std::path::Path;

use recwal_wal::Durability;
use tracing::{info, warn};

use std::sync::Arc;

use super::replica::ModelFileRef;
use super::Engine;
use crate::error::EngineError;
use crate::model::catalog::ModelEntry;
use crate::model::catalog::Routes;
use crate::model::loaded::LoadedModel;
use crate::model::{store, ModelInfo, ModelStatus};
use crate::record::{
    CanaryRouteV1, LogRecord, ModelActivatedV1, ModelAddedV1, ModelRetiredV1, ModelRoutesV1, ShadowRouteV1,
};

/// A change of the versions served beside the active one
/// (`Engine::set_canary` and its siblings, `Engine::replica_model_routes`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteChange {
    /// A canary for `per_mille` of users (1–999).
    Canary {
        /// The version.
        version: u32,
        /// Its share.
        per_mille: u16,
    },
    /// No canary.
    ClearCanary,
    /// A shadow.
    Shadow(u32),
    /// No shadow.
    ClearShadow,
}

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

/// Largest model file accepted.
pub const MODEL_BYTES_MAX: usize = 1 << 30;

impl Engine {
    /// Adds a model from a file: see `add_model`.
    pub fn add_model_file(&self, path: &Path) -> Result<ModelInfo, EngineError> {
        let bytes = std::fs::read(path).map_err(|err| EngineError::io(format!("reading {}", path.display()), err))?;
        self.add_model(&bytes)
    }

    /// Validates an ONNX model (it loads, meets feature schema v1, and
    /// scores the warm-up batch with finite outputs), stores a copy in the
    /// data directory and logs it as the next version. Nothing is stored or
    /// logged if it is refused. Adding a file already present (same SHA-256)
    /// returns that version.
    pub fn add_model(&self, bytes: &[u8]) -> Result<ModelInfo, EngineError> {
        if bytes.is_empty() || bytes.len() > MODEL_BYTES_MAX {
            return Err(EngineError::invalid(
                "model",
                format!("must be 1–{MODEL_BYTES_MAX} bytes, got {}", bytes.len()),
            ));
        }
        let ranker = &self.shared.ranker;
        let _admin = ranker.lock_admin()?;
        let sha256 = store::sha256(bytes);
        let (existing, version) = {
            let state = self.shared.read_state();
            (state.models().find_hash(&sha256).cloned(), state.models().next_version())
        };
        if let Some(entry) = existing {
            return Ok(self.info(&entry));
        }
        let version = version.ok_or_else(|| EngineError::invalid("model", "no version numbers left"))?;
        ranker.check(bytes, version)?;
        ranker.store(version, bytes)?;
        // If the record fails to log, the file stays: it may still have
        // reached the log (a failed sync after the write), and if not, the
        // next add of this version number overwrites it and the next start
        // sweeps it.
        let record = ModelAddedV1 { version, sha256, bytes: bytes.len() as u64, added_ms: now_ms() };
        self.shared.log_and_apply(&LogRecord::ModelAdded(record), Vec::new(), Durability::Always)?;
        info!(version, sha256 = %store::hex(&sha256), bytes = bytes.len(), "model added");
        self.retire_old();
        self.entry(version).map(|entry| self.info(&entry))
    }

    /// Makes `version` the active model: loads and warms it up first (a
    /// refusal leaves the active version as it was), logs the activation,
    /// waits until the record is durable, then swaps it in atomically.
    /// Requests already scoring finish on the previous version.
    pub fn activate_model(&self, version: u32) -> Result<ModelInfo, EngineError> {
        let _admin = self.shared.ranker.lock_admin()?;
        self.activate(version, false)
    }

    /// Re-activates the version that was active before the current one.
    pub fn rollback_model(&self) -> Result<ModelInfo, EngineError> {
        let _admin = self.shared.ranker.lock_admin()?;
        let previous = self.shared.read_state().models().previous();
        let previous = previous.ok_or_else(|| EngineError::invalid("model", "no previous version to roll back to"))?;
        self.activate(previous, true)
    }

    /// Every version the log knows, oldest first.
    pub fn models(&self) -> Vec<ModelInfo> {
        let state = self.shared.read_state();
        let active = state.models().active();
        state.models().entries.iter().map(|entry| ModelInfo::from_entry(entry, active)).collect()
    }

    /// Everything `stats` and `model_status` report, in the Prometheus text
    /// exposition format (for a `/metrics` endpoint).
    pub fn metrics_text(&self) -> String {
        let mut text = crate::metrics::render(&self.stats(), &self.model_status());
        text.push_str(&crate::metrics::render_item_model(&self.item_model_status()));
        text
    }

    /// The ranking side now: runtime, active and serving versions, fault,
    /// breaker.
    pub fn model_status(&self) -> ModelStatus {
        let (active, routes) = {
            let state = self.shared.read_state();
            (state.models().active(), state.models().routes)
        };
        self.shared.ranker.status(active, &routes)
    }

    fn activate(&self, version: u32, rollback: bool) -> Result<ModelInfo, EngineError> {
        let entry = self.entry(version)?;
        if entry.lsn_retired.is_some() {
            return Err(EngineError::UnknownModel(version));
        }
        let ranker = &self.shared.ranker;
        let already = self.shared.read_state().models().active() == Some(version) && ranker.is_serving(version);
        if already && !rollback {
            return Ok(self.info(&entry));
        }
        // A canary being promoted is loaded and warm already.
        let model = ranker.load_shared(&entry)?;
        let record = ModelActivatedV1 { version, sha256: entry.sha256, at_ms: now_ms(), rollback };
        let lsn = self.shared.log_and_apply(&LogRecord::ModelActivated(record), Vec::new(), Durability::Always)?;
        ranker.serve(model);
        ranker.sync_routes(&self.shared.read_state().models().routes);
        info!(version, lsn, rollback, "model activated");
        self.retire_old();
        self.entry(version).map(|entry| self.info(&entry))
    }

    /// Retires versions beyond the retention setting: logged first, then
    /// the file is deleted (a crash in between leaves a file the next start
    /// sweeps). Runs after an add or activation took effect, so a failure
    /// here is a warning (the next add or activation retries), not the
    /// call's error.
    fn retire_old(&self) {
        let ranker = &self.shared.ranker;
        let retire = self.shared.read_state().models().to_retire(ranker.retention());
        for version in retire {
            let record = LogRecord::ModelRetired(ModelRetiredV1 { version });
            let retired =
                self.shared.log_and_apply(&record, Vec::new(), Durability::Always).and_then(|_| ranker.remove(version));
            match retired {
                Ok(()) => info!(version, "model retired"),
                Err(err) => {
                    warn!(version, %err, "retiring an old model version failed; the next add or activation retries");
                    return;
                }
            }
        }
    }

    /// Routes `per_mille` of users (1–999, chosen by `user_bucket`) to
    /// `version`, a live version other than the active one: loaded and
    /// warmed up first (a refusal changes nothing), logged (record kind 13,
    /// durable), then served. Replaces any canary; a shadow of the same
    /// version stops being one.
    pub fn set_canary(&self, version: u32, per_mille: u16) -> Result<ModelStatus, EngineError> {
        self.change_routes(RouteChange::Canary { version, per_mille })
    }

    /// Ends the canary: every user gets the active version again.
    pub fn clear_canary(&self) -> Result<ModelStatus, EngineError> {
        self.change_routes(RouteChange::ClearCanary)
    }

    /// Scores every ranked answer with `version` too (a live version other
    /// than the active one), without serving its scores: its latency and
    /// outcomes go to its metrics. Loaded first, logged, then used.
    /// Replaces any shadow; a canary of the same version stops being one.
    pub fn set_shadow(&self, version: u32) -> Result<ModelStatus, EngineError> {
        self.change_routes(RouteChange::Shadow(version))
    }

    /// Ends the shadow scoring.
    pub fn clear_shadow(&self) -> Result<ModelStatus, EngineError> {
        self.change_routes(RouteChange::ClearShadow)
    }

    fn change_routes(&self, change: RouteChange) -> Result<ModelStatus, EngineError> {
        let _admin = self.shared.ranker.lock_admin()?;
        let routes = self.routes_after(change)?;
        self.route(routes.canary, routes.shadow)
    }

    /// The routing `change` leads to from the state's.
    fn routes_after(&self, change: RouteChange) -> Result<Routes, EngineError> {
        let routes = self.shared.read_state().models().routes;
        let (canary, shadow) = match change {
            RouteChange::Canary { version, per_mille } => {
                if !(1..1000).contains(&per_mille) {
                    return Err(EngineError::invalid(
                        "percent",
                        format!("must be 0.1–99.9 %, got {per_mille} per mille"),
                    ));
                }
                (Some((version, per_mille)), routes.shadow.filter(|&shadow| shadow != version))
            }
            RouteChange::ClearCanary => (None, routes.shadow),
            RouteChange::Shadow(version) => (routes.canary.filter(|&(canary, _)| canary != version), Some(version)),
            RouteChange::ClearShadow => (routes.canary, None),
        };
        Ok(Routes { canary, shadow })
    }

    /// Activates the canary for every user (`activate_model` of its
    /// version, which is loaded already): the canary route ends with it.
    pub fn promote_canary(&self) -> Result<ModelInfo, EngineError> {
        let _admin = self.shared.ranker.lock_admin()?;
        let canary = self.shared.read_state().models().routes.canary;
        let (version, _) = canary.ok_or_else(|| EngineError::invalid("canary", "there is no canary to promote"))?;
        self.activate(version, false)
    }

    /// Retires (unloads) `version` now: its file is deleted and it can no
    /// longer be activated. Not the active version, the canary or the
    /// shadow; a version a rollback could reach leaves the rollback stack.
    pub fn retire_model(&self, version: u32) -> Result<ModelInfo, EngineError> {
        let ranker = &self.shared.ranker;
        let _admin = ranker.lock_admin()?;
        self.check_retirable(version)?;
        let record = LogRecord::ModelRetired(ModelRetiredV1 { version });
        self.shared.log_and_apply(&record, Vec::new(), Durability::Always)?;
        if let Err(err) = ranker.remove(version) {
            // The next start sweeps the files of retired versions.
            warn!(version, %err, "deleting a retired model's file failed");
        }
        info!(version, "model retired on request");
        self.entry(version).map(|entry| self.info(&entry))
    }

    /// Sets the routing (the caller holds the registry's lock): checks
    /// each version, loads the new ones, logs the record durably, serves.
    fn route(&self, canary: Option<(u32, u16)>, shadow: Option<u32>) -> Result<ModelStatus, EngineError> {
        let (record, canary_model, shadow_model) = self.plan_routes(canary, shadow)?;
        let lsn = self.shared.log_and_apply(&LogRecord::ModelRoutes(record), Vec::new(), Durability::Always)?;
        self.shared.ranker.set_routes(canary_model, shadow_model, None);
        info!(lsn, ?canary, ?shadow, "model routes set");
        Ok(self.model_status())
    }

    /// The record of a routing, checked (each version live and not the
    /// active one), with the versions loaded (or kept, if routed already):
    /// a version that does not load is refused before anything is logged.
    #[allow(clippy::type_complexity)]
    fn plan_routes(
        &self,
        canary: Option<(u32, u16)>,
        shadow: Option<u32>,
    ) -> Result<(ModelRoutesV1, Option<(Arc<LoadedModel>, u16)>, Option<Arc<LoadedModel>>), EngineError> {
        let ranker = &self.shared.ranker;
        let check = |version: u32, role: &str| -> Result<ModelEntry, EngineError> {
            let entry = self.entry(version)?;
            if entry.lsn_retired.is_some() {
                return Err(EngineError::UnknownModel(version));
            }
            if self.shared.read_state().models().active() == Some(version) {
                return Err(EngineError::invalid(
                    "version",
                    format!("v{version} is the active version: the {role} must be another one"),
                ));
            }
            Ok(entry)
        };
        let canary_entry = canary.map(|(version, per_mille)| check(version, "canary").map(|entry| (entry, per_mille)));
        let canary_entry = canary_entry.transpose()?;
        let shadow_entry = shadow.map(|version| check(version, "shadow")).transpose()?;
        let record = ModelRoutesV1 {
            canary: canary_entry.as_ref().map(|(entry, per_mille)| CanaryRouteV1 {
                version: entry.version,
                sha256: entry.sha256,
                per_mille: *per_mille,
            }),
            shadow: shadow_entry.as_ref().map(|entry| ShadowRouteV1 { version: entry.version, sha256: entry.sha256 }),
            at_ms: now_ms(),
        };
        let canary_model =
            canary_entry.map(|(entry, per_mille)| ranker.load_shared(&entry).map(|model| (model, per_mille)));
        let canary_model = canary_model.transpose()?;
        let shadow_model = shadow_entry.map(|entry| ranker.load_shared(&entry)).transpose()?;
        Ok((record, canary_model, shadow_model))
    }

    /// A cluster node's `set_canary` and its siblings: checked as they are
    /// (the versions loaded on this node too) and returned as the stream
    /// message that sets the routing on every replica. Changes nothing.
    pub fn replica_model_routes(&self, change: RouteChange) -> Result<Vec<u8>, EngineError> {
        let routes = self.routes_after(change)?;
        let (record, _, _) = self.plan_routes(routes.canary, routes.shadow)?;
        self.message_of(&LogRecord::ModelRoutes(record), "model")
    }

    /// A cluster node's `promote_canary`: the stream message activating the
    /// canary's version (checked as `replica_model_activation` checks).
    pub fn replica_model_promotion(&self) -> Result<Vec<u8>, EngineError> {
        let canary = self.shared.read_state().models().routes.canary;
        let (version, _) = canary.ok_or_else(|| EngineError::invalid("canary", "there is no canary to promote"))?;
        self.replica_model_activation(Some(version))
    }

    /// A cluster node's `retire_model`: checked as it is, returned as the
    /// stream message retiring the version on every replica.
    pub fn replica_model_retirement(&self, version: u32) -> Result<Vec<u8>, EngineError> {
        self.check_retirable(version)?;
        self.message_of(&LogRecord::ModelRetired(ModelRetiredV1 { version }), "model")
    }

    fn check_retirable(&self, version: u32) -> Result<(), EngineError> {
        let entry = self.entry(version)?;
        if entry.lsn_retired.is_some() {
            return Err(EngineError::UnknownModel(version));
        }
        let state = self.shared.read_state();
        let models = state.models();
        if models.active() == Some(version) {
            return Err(EngineError::invalid("version", format!("v{version} is the active version")));
        }
        if models.routes.names(version) {
            return Err(EngineError::invalid(
                "version",
                format!("v{version} is the canary or the shadow: end that first"),
            ));
        }
        Ok(())
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
        drop(self.shared.ranker.load(&entry)?);
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

    /// Live versions whose file this node lacks or holds altered (a node
    /// that joined from a snapshot, or applied an addition without the
    /// file), oldest first.
    pub fn model_files_missing(&self) -> Vec<(u32, ModelFileRef)> {
        let live: Vec<ModelEntry> = {
            let state = self.shared.read_state();
            state.models().entries.iter().filter(|entry| entry.lsn_retired.is_none()).cloned().collect()
        };
        live.into_iter()
            .filter(|entry| !self.shared.ranker.has_file(entry))
            .map(|entry| (entry.version, ModelFileRef { sha256: entry.sha256, bytes: entry.bytes }))
            .collect()
    }

    /// Stores live version `version`'s file (fetched by a cluster node),
    /// checked against the hash the log holds for it; if it is the active
    /// version and nothing serves, loads it and serves it. Logs nothing:
    /// the log already holds the version (and its activation).
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
        let active = self.shared.read_state().models().active();
        if active == Some(version) && !ranker.is_serving(version) {
            ranker.serve(std::sync::Arc::new(ranker.load(&entry)?));
            info!(version, "model file restored: the active version serves");
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
                let mut faults = Vec::new();
                let mut load = |version: u32| {
                    let entry = self.entry(version).ok()?;
                    match ranker.load_shared(&entry) {
                        Ok(model) => Some(model),
                        Err(err) => {
                            warn!(version, stream_seq, %err, "a routed model version cannot load on this node");
                            faults.push(format!("v{version}: {err}"));
                            None
                        }
                    }
                };
                let canary =
                    routes.canary.and_then(|canary| load(canary.version).map(|model| (model, canary.per_mille)));
                let shadow = routes.shadow.and_then(|shadow| load(shadow.version));
                let lsn = log(record)?;
                ranker.set_routes(canary, shadow, (!faults.is_empty()).then(|| faults.join("; ")));
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

    fn entry(&self, version: u32) -> Result<ModelEntry, EngineError> {
        self.shared.read_state().models().get(version).cloned().ok_or(EngineError::UnknownModel(version))
    }

    fn info(&self, entry: &ModelEntry) -> ModelInfo {
        ModelInfo::from_entry(entry, self.shared.read_state().models().active())
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| i64::try_from(since.as_millis()).unwrap_or(i64::MAX))
}
