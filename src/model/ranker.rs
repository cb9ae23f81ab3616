//! The serving side: which loaded version answers, why none does, and the
//! ranking of one request's candidates.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use arc_swap::ArcSwapOption;
use tracing::warn;

use crate::config::ModelConfig;
use crate::error::EngineError;
use crate::model::breaker::{Admission, Outcome};
use crate::model::catalog::{Catalog, ModelEntry};
use crate::model::loaded::{self, LoadedModel, ScoreError};
use crate::model::{build_thread, runtime, store, ModelStatus};
use crate::recommend::{Ranking, Recommendations};

/// Owns the model files, the loaded versions and which one serves. The
/// registry (`engine/models.rs`) asks it for operations; its fields stay
/// private.
pub(crate) struct Ranker {
    dir: PathBuf,
    config: ModelConfig,
    /// The version answers are ranked with.
    serving: ArcSwapOption<LoadedModel>,
    /// Why the active version (per the log) is not serving.
    fault: Mutex<Option<String>>,
    /// Serialises add / activate / rollback / retire.
    admin: Mutex<()>,
    /// Versions swapped out, held until their last request ends and freed
    /// by `reap` (on the checkpoint thread), so no request ever pays for
    /// tearing down a version's sessions.
    retiring: Mutex<Vec<Arc<LoadedModel>>>,
    /// On a replica: the stream sequence of the activation that swapped
    /// the serving version in (0: not swapped by a stream message since
    /// this process started).
    swapped_at_stream_seq: std::sync::atomic::AtomicU64,
}

/// What a request does about ranking, decided before it reads the state.
pub(crate) enum Plan {
    /// No model: the strategy's order, with this ranking note.
    Plain(Ranking),
    /// Rank with this model (admitted by its breaker as `Admission`).
    Rank(Arc<LoadedModel>, Admission),
}

impl Ranker {
    pub fn new(dir: PathBuf, config: ModelConfig) -> Result<Ranker, EngineError> {
        std::fs::create_dir_all(&dir).map_err(|err| EngineError::io(format!("creating {}", dir.display()), err))?;
        Ok(Ranker {
            dir,
            config,
            serving: ArcSwapOption::empty(),
            fault: Mutex::new(None),
            admin: Mutex::new(()),
            retiring: Mutex::new(Vec::new()),
            swapped_at_stream_seq: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// Serialises the registry's operations (add / activate / rollback /
    /// retire): held for the whole operation.
    pub fn lock_admin(&self) -> Result<MutexGuard<'_, ()>, EngineError> {
        self.admin.lock().map_err(|_| EngineError::Poisoned("a model operation panicked".into()))
    }

    /// Checks that `bytes` load as version `version` and score the warm-up
    /// batch (with one session; the version's own pool loads on activation).
    pub fn check(&self, bytes: &[u8], version: u32) -> Result<(), EngineError> {
        let runtime = runtime::get(self.config.runtime_path.as_deref()).map_err(EngineError::ModelRuntime)?;
        self.load_bytes(runtime, bytes, version, 1).map(drop)
    }

    /// Stores version `version`'s file in the models directory.
    pub fn store(&self, version: u32, bytes: &[u8]) -> Result<(), EngineError> {
        store::write(&self.dir, version, bytes).map(drop)
    }

    /// Deletes a retired version's file.
    pub fn remove(&self, version: u32) -> Result<(), EngineError> {
        store::remove(&self.dir, version)
    }

    /// Versions kept before the oldest are retired.
    pub fn retention(&self) -> usize {
        self.config.retention
    }

    /// Whether `version` is the one answering now.
    pub fn is_serving(&self, version: u32) -> bool {
        self.serving.load().as_ref().is_some_and(|model| model.version == version)
    }

    /// Whether `entry`'s file is here, intact.
    pub fn has_file(&self, entry: &ModelEntry) -> bool {
        store::read_verified(&self.dir, entry.version, &entry.sha256).is_ok()
    }

    /// Loads, checks and warms up `entry`'s file (hash verified first).
    pub fn load(&self, entry: &ModelEntry) -> Result<LoadedModel, EngineError> {
        let runtime = runtime::get(self.config.runtime_path.as_deref()).map_err(EngineError::ModelRuntime)?;
        let bytes = store::read_verified(&self.dir, entry.version, &entry.sha256).map_err(EngineError::BadModel)?;
        self.load_bytes(runtime, &bytes, entry.version, self.config.sessions)
    }

    fn load_bytes(
        &self,
        runtime: &runtime::Runtime,
        bytes: &[u8],
        version: u32,
        sessions: usize,
    ) -> Result<LoadedModel, EngineError> {
        build_thread::run(|| LoadedModel::load(runtime, bytes, version, sessions, &self.config))
            .and_then(|loaded| loaded)
            .map_err(|reason| EngineError::BadModel(format!("v{version}: {reason}")))
    }

    /// Start-up: serve the version the log says is active, if its file is
    /// intact and it loads; otherwise answer un-ranked and keep the fault.
    pub fn restore(&self, catalog: &Catalog) -> Result<(), EngineError> {
        let live: Vec<u32> =
            catalog.entries.iter().filter(|entry| entry.lsn_retired.is_none()).map(|entry| entry.version).collect();
        store::sweep(&self.dir, &live)?;
        let Some(entry) = catalog.active().and_then(|version| catalog.get(version)) else { return Ok(()) };
        match self.load(entry) {
            Ok(model) => self.serve(model),
            Err(err) => {
                warn!(version = entry.version, %err, "the active model cannot serve: answers are un-ranked");
                self.set_fault(Some(err.to_string()));
            }
        }
        Ok(())
    }

    pub fn serve(&self, model: LoadedModel) {
        self.swap(Some(model), None, 0);
    }

    /// A replica's activation from the stream message `stream_seq`: serve
    /// `model`.
    pub fn serve_from_stream(&self, model: LoadedModel, stream_seq: u64) {
        self.swap(Some(model), None, stream_seq);
    }

    /// A replica's activation from the stream message `stream_seq` whose
    /// version cannot serve on this node: answers are un-ranked, with
    /// `fault`, as after a start-up where the active version does not load
    /// (the log says it is active either way, as on every other replica).
    pub fn fail_from_stream(&self, fault: String, stream_seq: u64) {
        self.swap(None, Some(fault), stream_seq);
    }

    fn swap(&self, model: Option<LoadedModel>, fault: Option<String>, stream_seq: u64) {
        let old = self.serving.swap(model.map(Arc::new));
        self.set_fault(fault);
        self.swapped_at_stream_seq.store(stream_seq, std::sync::atomic::Ordering::Relaxed);
        if let (Some(old), Ok(mut retiring)) = (old, self.retiring.lock()) {
            retiring.push(old);
        }
    }

    /// Frees swapped-out versions no request holds any more.
    pub fn reap(&self) {
        let freed: Vec<Arc<LoadedModel>> = match self.retiring.lock() {
            Ok(mut retiring) => {
                let (free, busy) = retiring.drain(..).partition(|model| Arc::strong_count(model) == 1);
                *retiring = busy;
                free
            }
            Err(_) => return,
        };
        // Dropped here, outside the lock.
        drop(freed);
    }

    fn set_fault(&self, fault: Option<String>) {
        if let Ok(mut slot) = self.fault.lock() {
            *slot = fault;
        }
    }

    fn fault(&self) -> Option<String> {
        self.fault.lock().ok().and_then(|fault| fault.clone())
    }

    pub fn plan(&self) -> Plan {
        let Some(model) = self.serving.load_full() else {
            return Plan::Plain(Ranking::Unranked { reason: self.fault() });
        };
        match model.breaker.admit() {
            Admission::Skip => Plan::Plain(Ranking::Degraded {
                version: model.version,
                reason: "the model's circuit breaker is open".into(),
            }),
            admission => Plan::Rank(model, admission),
        }
    }

    /// Reorders `answer` (the strategy's candidates, best first) by the
    /// model's scores for `features`, keeps `n`. On failure the answer keeps
    /// the strategy's order and says `degraded`.
    pub fn rank(
        &self,
        model: &LoadedModel,
        admission: Admission,
        answer: &mut Recommendations,
        features: &[f32],
        n: usize,
    ) {
        if answer.items.is_empty() {
            // Nothing to rank: the model did not run, so this is no probe.
            model.breaker.abandon(admission);
            answer.ranking = Ranking::Unranked { reason: Some("no candidates to rank".into()) };
            return;
        }
        // A request waits for a free session at most the latency budget.
        let budget = model.breaker.latency_budget();
        match model.score(features, answer.items.len(), budget) {
            Ok((scores, took)) => {
                let slow = took > budget;
                model.breaker.record(admission, if slow { Outcome::Failed } else { Outcome::Ok });
                for (item, score) in answer.items.iter_mut().zip(scores) {
                    item.model_score = Some(score);
                }
                // Stable: equal model scores keep the strategy's order.
                answer.items.sort_by(|a, b| {
                    let (a, b) = (a.model_score.unwrap_or(f32::MIN), b.model_score.unwrap_or(f32::MIN));
                    b.total_cmp(&a)
                });
                answer.ranking = Ranking::Model { version: model.version };
            }
            Err(ScoreError::Busy) => {
                model.breaker.abandon(admission);
                answer.ranking = Ranking::Degraded {
                    version: model.version,
                    reason: format!("every session of the model stayed busy for {budget:?}"),
                };
            }
            Err(ScoreError::Failed(reason)) => {
                model.breaker.record(admission, Outcome::Failed);
                warn!(version = model.version, %reason, "model inference failed: answering un-ranked");
                answer.ranking =
                    Ranking::Degraded { version: model.version, reason: format!("inference failed: {reason}") };
            }
        }
        answer.items.truncate(n);
    }

    pub fn status(&self, active: Option<u32>) -> ModelStatus {
        let runtime = match runtime::peek() {
            Some(Ok(runtime)) => Ok(runtime.path.display().to_string()),
            Some(Err(reason)) => Err(reason),
            None => Err("not loaded yet: it loads when a model is first added or activated".into()),
        };
        let serving = self.serving.load_full();
        ModelStatus {
            runtime,
            active,
            serving: serving.as_ref().map(|model| model.version),
            device: serving.as_ref().map(|model| model.device.to_string()),
            io_binding: serving.as_ref().is_some_and(|model| model.io_binding),
            fault: self.fault(),
            breaker: serving.as_ref().map(|model| model.breaker.state()),
            breaker_counts: serving.as_ref().map(|model| model.breaker.counts()),
            loaded_versions: loaded::live_count(),
            swapped_at_stream_seq: match self.swapped_at_stream_seq.load(std::sync::atomic::Ordering::Relaxed) {
                0 => None,
                seq => Some(seq),
            },
        }
    }
}
