//! The serving side: which loaded version answers, why none does, and the
//! ranking of one request's candidates.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use arc_swap::{ArcSwap, ArcSwapOption};
use tracing::warn;

use crate::config::ModelConfig;
use crate::error::EngineError;
use crate::model::breaker::{Admission, Outcome};
use crate::model::catalog::{Catalog, ModelEntry, Routes};
use crate::model::latency::{Answer, Role};
use crate::model::loaded::{self, LoadedModel, ScoreError};
use crate::model::{build_thread, runtime, store, ModelStatus, RouteStatus};
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
    /// The canary and the shadow, loaded (`Routed`); shared with the
    /// shadow thread, which scores only for the shadow still routed.
    routes: Arc<ArcSwap<Routed>>,
    /// Versions a cluster node loaded to check a change it then published
    /// (`preload`): applying the change takes them instead of loading
    /// again. At most `PRELOADED_MAX`, newest last.
    preloaded: Mutex<Vec<Arc<LoadedModel>>>,
    /// The shadow thread's queue (`shadow_score`), started on first use.
    shadow_jobs: std::sync::OnceLock<Option<std::sync::mpsc::SyncSender<ShadowJob>>>,
    /// On a replica: the stream sequence of the activation that swapped
    /// the serving version in (0: not swapped by a stream message since
    /// this process started).
    swapped_at_stream_seq: std::sync::atomic::AtomicU64,
}

/// What a request does about ranking, decided before it reads the state.
pub(crate) enum Plan {
    /// No model: the strategy's order, with this ranking note.
    Plain(Ranking),
    /// Rank with this model, in this role (admitted by its breaker as
    /// `Admission`).
    Rank(Arc<LoadedModel>, Admission, Role),
}

/// The versions served beside the active one, as loaded.
#[derive(Default)]
pub(crate) struct Routed {
    /// The canary and its share (per mille of users).
    pub canary: Option<(Arc<LoadedModel>, u16)>,
    /// The shadow.
    pub shadow: Option<Arc<LoadedModel>>,
    /// Why a version the log routes is not loaded (its file, the runtime).
    pub fault: Option<String>,
}

impl Routed {
    /// The loaded model of `version`, if it is routed now.
    fn get(&self, version: u32) -> Option<Arc<LoadedModel>> {
        let canary = self.canary.as_ref().map(|(model, _)| model);
        canary.into_iter().chain(&self.shadow).find(|model| model.version == version).cloned()
    }
}

/// A feature matrix: row-major, `width` columns a row (the widest schema a
/// request's models need; each model reads its own columns).
#[derive(Clone, Copy)]
pub(crate) struct Rows<'a> {
    pub values: &'a [f32],
    pub width: usize,
}

/// A user's canary bucket, 0–999: FNV-1a (64-bit) of the user id's UTF-8
/// bytes, modulo 1000. The same on every node and after every restart,
/// and a larger share only adds users (docs/MODELS.md).
pub fn user_bucket(user: &str) -> u16 {
    let hash = user
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3));
    (hash % 1000) as u16
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
            routes: Arc::new(ArcSwap::from_pointee(Routed::default())),
            shadow_jobs: std::sync::OnceLock::new(),
            preloaded: Mutex::new(Vec::new()),
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

    /// Whether `entry`'s file is here with its length (a cheap check: the
    /// hash is verified when the file is loaded).
    pub fn has_file(&self, entry: &ModelEntry) -> bool {
        std::fs::metadata(store::path(&self.dir, entry.version)).is_ok_and(|meta| meta.len() == entry.bytes)
    }

    /// `entry`'s version loaded: the canary's or shadow's copy if it is one
    /// (warm already), or the one `preload` kept, otherwise loaded now
    /// (`load`).
    pub fn load_shared(&self, entry: &ModelEntry) -> Result<Arc<LoadedModel>, EngineError> {
        if let Some(model) = self.routed(entry.version) {
            return Ok(model);
        }
        let kept = self.preloaded.lock().ok().and_then(|mut preloaded| {
            let at = preloaded.iter().position(|model| model.version == entry.version)?;
            Some(preloaded.remove(at))
        });
        match kept {
            Some(model) => Ok(model),
            None => self.load(entry).map(Arc::new),
        }
    }

    /// Keeps `model`, loaded to check a change this node publishes, for
    /// when the change comes back from the stream (`load_shared`), so the
    /// node that took the change does not load the version twice.
    pub fn preload(&self, model: Arc<LoadedModel>) {
        if let Ok(mut preloaded) = self.preloaded.lock() {
            preloaded.retain(|kept| kept.version != model.version);
            preloaded.push(model);
            if preloaded.len() > PRELOADED_MAX {
                preloaded.remove(0);
            }
        }
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
        if let Some(entry) = catalog.active().and_then(|version| catalog.get(version)) {
            match self.load(entry) {
                Ok(model) => self.serve(Arc::new(model)),
                Err(err) => {
                    warn!(version = entry.version, %err, "the active model cannot serve: answers are un-ranked");
                    self.set_fault(Some(err.to_string()));
                }
            }
        }
        self.restore_routes(catalog);
        Ok(())
    }

    /// Start-up: loads the canary and the shadow the log names.
    fn restore_routes(&self, catalog: &Catalog) {
        self.routes.store(Arc::new(self.load_routes(catalog, catalog.routes)));
    }

    /// The versions `routes` names (entries of `catalog`), loaded — or
    /// kept, if routed already; one that does not load is left out (its
    /// users get the active version) and reported in `Routed::fault`.
    pub fn load_routes(&self, catalog: &Catalog, routes: Routes) -> Routed {
        let mut faults = Vec::new();
        let mut load = |version: u32| match catalog.get(version).map(|entry| self.load_shared(entry)) {
            Some(Ok(model)) => Some(model),
            Some(Err(err)) => {
                warn!(version, %err, "a routed model version cannot load: it gets no requests");
                faults.push(format!("v{version}: {err}"));
                None
            }
            None => None,
        };
        let canary = routes.canary.and_then(|(version, per_mille)| load(version).map(|model| (model, per_mille)));
        let shadow = routes.shadow.and_then(&mut load);
        Routed { canary, shadow, fault: (!faults.is_empty()).then(|| faults.join("; ")) }
    }

    /// The loaded model of `version` if it is the canary or shadow now.
    pub fn routed(&self, version: u32) -> Option<Arc<LoadedModel>> {
        self.routes.load().get(version)
    }

    /// Serves `routed`'s canary (with its share) and shadow from now on.
    pub fn set_routes(&self, routed: Routed) {
        let old = self.routes.swap(Arc::new(routed));
        self.retire_loaded(old);
    }

    /// Drops the loaded routes the catalog no longer names (after an
    /// activation promoted the canary, a retirement).
    pub fn sync_routes(&self, routes: &Routes) {
        let current = self.routes.load_full();
        let canary =
            current.canary.clone().filter(|(model, per_mille)| routes.canary == Some((model.version, *per_mille)));
        let shadow = current.shadow.clone().filter(|model| routes.shadow == Some(model.version));
        let unchanged = canary.is_some() == current.canary.is_some() && shadow.is_some() == current.shadow.is_some();
        if !unchanged {
            let fault = current.fault.clone();
            let old = self.routes.swap(Arc::new(Routed { canary, shadow, fault }));
            self.retire_loaded(old);
        }
    }

    /// The shadow version, if one is loaded.
    pub fn shadow(&self) -> Option<Arc<LoadedModel>> {
        self.routes.load().shadow.clone()
    }

    /// Hands a request's candidates to the shadow thread, which scores them
    /// with the shadow version and throws the scores away (its latency and
    /// outcome go to its metrics): a shadow never adds to a request's
    /// latency. With `SHADOW_QUEUE` requests waiting already the request is
    /// not scored and counts as `skipped`, as do the requests still waiting
    /// when the shadow ends or is replaced.
    /// `features`: `rows` rows of `width` columns, at least the shadow's.
    pub fn shadow_score(&self, model: Arc<LoadedModel>, features: &[f32], width: usize, rows: usize) {
        if rows == 0 {
            return;
        }
        let Some(queue) = self.shadow_queue() else {
            model.count_answer(Role::Shadow, Answer::Skipped);
            return;
        };
        let own = model.width().min(width);
        let features: Vec<f32> = features.chunks_exact(width).take(rows).flat_map(|row| &row[..own]).copied().collect();
        if let Err(refused) = queue.try_send(ShadowJob { model, features, rows }) {
            let (std::sync::mpsc::TrySendError::Full(job) | std::sync::mpsc::TrySendError::Disconnected(job)) = refused;
            job.model.count_answer(Role::Shadow, Answer::Skipped);
        }
    }

    /// The shadow thread's queue, started on first use; `None` if the
    /// thread cannot be started (the shadow is then skipped, and counted).
    fn shadow_queue(&self) -> Option<&std::sync::mpsc::SyncSender<ShadowJob>> {
        self.shadow_jobs
            .get_or_init(|| {
                let (sender, receiver) = std::sync::mpsc::sync_channel::<ShadowJob>(SHADOW_QUEUE);
                let routes = Arc::clone(&self.routes);
                let started = std::thread::Builder::new().name("recwal-shadow".into()).spawn(move || {
                    // Ends when the ranker (the queue's sender) is dropped.
                    for job in receiver {
                        // A shadow ended or replaced since: nothing to learn.
                        let current =
                            routes.load().shadow.as_ref().is_some_and(|shadow| Arc::ptr_eq(shadow, &job.model));
                        if current {
                            score_shadow(&job.model, &job.features, job.rows);
                        } else {
                            job.model.count_answer(Role::Shadow, Answer::Skipped);
                        }
                    }
                });
                match started {
                    Ok(_) => Some(sender),
                    Err(err) => {
                        warn!(%err, "cannot start the shadow scoring thread: shadow requests are skipped");
                        None
                    }
                }
            })
            .as_ref()
    }

    /// Routes swapped out are freed by `reap`, like swapped-out versions.
    fn retire_loaded(&self, old: Arc<Routed>) {
        let canary = old.canary.as_ref().map(|(model, _)| Arc::clone(model));
        for model in canary.into_iter().chain(old.shadow.clone()) {
            self.retire(model);
        }
    }

    pub fn serve(&self, model: Arc<LoadedModel>) {
        self.swap(Some(model), None, 0);
    }

    /// A replica's activation from the stream message `stream_seq`: serve
    /// `model`.
    pub fn serve_from_stream(&self, model: Arc<LoadedModel>, stream_seq: u64) {
        self.swap(Some(model), None, stream_seq);
    }

    /// A replica's activation from the stream message `stream_seq` whose
    /// version cannot serve on this node: answers are un-ranked, with
    /// `fault`, as after a start-up where the active version does not load
    /// (the log says it is active either way, as on every other replica).
    pub fn fail_from_stream(&self, fault: String, stream_seq: u64) {
        self.swap(None, Some(fault), stream_seq);
    }

    fn swap(&self, model: Option<Arc<LoadedModel>>, fault: Option<String>, stream_seq: u64) {
        let old = self.serving.swap(model);
        self.set_fault(fault);
        self.swapped_at_stream_seq.store(stream_seq, std::sync::atomic::Ordering::Relaxed);
        if let Some(old) = old {
            self.retire(old);
        }
    }

    /// Hands a version that left the serving slot or a route to `reap`,
    /// unless it is still the serving version or routed (a promoted
    /// canary, a route set again) or handed over already: `reap` frees a
    /// version once `retiring` holds its last reference.
    fn retire(&self, model: Arc<LoadedModel>) {
        let serving = self.serving.load().as_ref().is_some_and(|serving| Arc::ptr_eq(serving, &model));
        let routed = self.routes.load().get(model.version).is_some_and(|routed| Arc::ptr_eq(&routed, &model));
        if serving || routed {
            return;
        }
        if let Ok(mut retiring) = self.retiring.lock() {
            if !retiring.iter().any(|held| Arc::ptr_eq(held, &model)) {
                retiring.push(model);
            }
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

    /// How `user`'s request is ranked: by the canary if the user is in its
    /// share, otherwise by the active version.
    pub fn plan(&self, user: &str) -> Plan {
        let canary = self.routes.load().canary.clone();
        let (model, role) = match canary {
            Some((model, per_mille)) if user_bucket(user) < per_mille => (model, Role::Canary),
            _ => match self.serving.load_full() {
                Some(model) => (model, Role::Stable),
                None => return Plan::Plain(Ranking::Unranked { reason: self.fault() }),
            },
        };
        match model.breaker.admit() {
            Admission::Skip => {
                model.count_answer(role, Answer::Skipped);
                Plan::Plain(Ranking::Degraded {
                    version: model.version,
                    reason: "the model's circuit breaker is open".into(),
                })
            }
            admission => Plan::Rank(model, admission, role),
        }
    }

    /// Reorders `answer` (the strategy's candidates, best first) by the
    /// model's scores for `features`, keeps `n`. On failure the answer keeps
    /// the strategy's order and says `degraded`.
    pub fn rank(
        &self,
        model: &LoadedModel,
        admission: Admission,
        role: Role,
        answer: &mut Recommendations,
        features: Rows<'_>,
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
        match model.score(features.values, features.width, answer.items.len(), budget) {
            Ok((scores, took)) => {
                let slow = took > budget;
                model.breaker.record(admission, if slow { Outcome::Failed } else { Outcome::Ok });
                model.count_answer(role, Answer::Ranked);
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
                model.count_answer(role, Answer::Busy);
                answer.ranking = Ranking::Degraded {
                    version: model.version,
                    reason: format!("every session of the model stayed busy for {budget:?}"),
                };
            }
            Err(ScoreError::Failed(reason)) => {
                model.breaker.record(admission, Outcome::Failed);
                model.count_answer(role, Answer::Failed);
                warn!(version = model.version, %reason, "model inference failed: answering un-ranked");
                answer.ranking =
                    Ranking::Degraded { version: model.version, reason: format!("inference failed: {reason}") };
            }
        }
        answer.items.truncate(n);
    }

    pub fn status(&self, active: Option<u32>, routes: &Routes) -> ModelStatus {
        let routed = self.routes.load();
        let route = |version: u32, per_mille: Option<u16>| RouteStatus {
            version,
            percent: per_mille.map(|per_mille| f64::from(per_mille) / 10.0),
            loaded: routed.get(version).is_some(),
        };
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
            canary: routes.canary.map(|(version, per_mille)| route(version, Some(per_mille))),
            shadow: routes.shadow.map(|version| route(version, None)),
            route_fault: routed.fault.clone(),
            swapped_at_stream_seq: match self.swapped_at_stream_seq.load(std::sync::atomic::Ordering::Relaxed) {
                0 => None,
                seq => Some(seq),
            },
        }
    }
}

/// Versions `preload` keeps at most (a published change that never comes
/// back — the publish failed — is dropped by the next ones).
const PRELOADED_MAX: usize = 2;

/// Requests waiting for the shadow thread at most.
const SHADOW_QUEUE: usize = 256;

/// One request's candidates for the shadow thread.
struct ShadowJob {
    model: Arc<LoadedModel>,
    features: Vec<f32>,
    rows: usize,
}

/// Scores `rows` candidates with the shadow version, outside any request.
fn score_shadow(model: &LoadedModel, features: &[f32], rows: usize) {
    let admission = model.breaker.admit();
    if admission == Admission::Skip {
        model.count_answer(Role::Shadow, Answer::Skipped);
        return;
    }
    let budget = model.breaker.latency_budget();
    match model.score(features, model.width(), rows, budget) {
        Ok((_, took)) => {
            model.breaker.record(admission, if took > budget { Outcome::Failed } else { Outcome::Ok });
            model.count_answer(Role::Shadow, Answer::Ranked);
        }
        Err(ScoreError::Busy) => {
            model.breaker.abandon(admission);
            model.count_answer(Role::Shadow, Answer::Busy);
        }
        Err(ScoreError::Failed(reason)) => {
            model.breaker.record(admission, Outcome::Failed);
            warn!(version = model.version, %reason, "shadow model inference failed");
            model.count_answer(Role::Shadow, Answer::Failed);
        }
    }
}
