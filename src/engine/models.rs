//! The model registry on `Engine`: add, activate, roll back, retire, list
//! (versions side by side: `model_routes.rs`; on replicas:
//! `replica_models.rs`). It asks
//! the ranker (`model/ranker.rs`) for operations; it never touches its fields. Every
//! change is a log record (kinds 4–6) made durable before it takes effect,
//! so the active version after a restart is the one last acknowledged.

use std::path::Path;

use recwal_wal::Durability;
use tracing::{info, warn};

use super::Engine;
use crate::error::EngineError;
use crate::model::catalog::ModelEntry;
use crate::model::{store, ModelInfo, ModelStatus};
use crate::record::{LogRecord, ModelActivatedV1, ModelAddedV1, ModelRetiredV1};

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

    pub(super) fn activate(&self, version: u32, rollback: bool) -> Result<ModelInfo, EngineError> {
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

    pub(super) fn check_retirable(&self, version: u32) -> Result<(), EngineError> {
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

    pub(super) fn entry(&self, version: u32) -> Result<ModelEntry, EngineError> {
        self.shared.read_state().models().get(version).cloned().ok_or(EngineError::UnknownModel(version))
    }

    pub(super) fn info(&self, entry: &ModelEntry) -> ModelInfo {
        ModelInfo::from_entry(entry, self.shared.read_state().models().active())
    }
}

pub(super) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| i64::try_from(since.as_millis()).unwrap_or(i64::MAX))
}
