//! The item model of the `ease` and `ials` strategies on `Engine` (one
//! model at a time, of the configured family): trained from a copy
//! of the state's interactions (the state's read lock is held only while
//! copying), stored as an artefact `models/im<version>.bin` beside the
//! ranking models' files, so backups carry it (atomically, through
//! `fsutil`), logged (record 11, durable before it serves) and attached to
//! the state, where the read path finds it. At open the active model's
//! artefact is loaded and its SHA-256 checked against the log; a missing or
//! damaged one is reported (`ItemModelStatus::fault`, a warning), the
//! strategy answers with popular items and a retraining is scheduled. The
//! trainer thread retrains on the configured schedule.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use recwal_wal::Durability;
use tracing::{info, warn};

use super::{Engine, Shared};
use crate::algo::ease::{self, Progress, TrainingSet};
use crate::algo::ials::{self, IalsParams};
use crate::config::{ItemModelConfig, ItemModelFamily};
use crate::error::EngineError;
use crate::event::now_ms;
use crate::fsutil::{sync_dir, write_atomically};
use crate::model::store::{hex, sha256};
use crate::record::{ItemModelActivatedV1, LogRecord};
use crate::state::{ItemModel, ItemModelInput, ItemModelRef, State};

/// How often the trainer thread checks whether a training is due.
const TRAINER_POLL: Duration = Duration::from_millis(50);

/// What to train: a family and its parameters.
#[derive(Clone, Debug, PartialEq)]
pub enum ItemModelSpec {
    /// EASE with λ and X as `input`.
    Ease {
        /// λ.
        lambda: f32,
        /// What X holds.
        input: ItemModelInput,
    },
    /// iALS.
    Ials(IalsParams),
}

impl ItemModelSpec {
    /// The spec `config` asks for on a catalogue of `items` items (`auto`:
    /// EASE up to `items_max`, iALS above).
    pub fn of(config: &ItemModelConfig, items: usize) -> ItemModelSpec {
        let family = match config.family {
            ItemModelFamily::Auto if items > config.items_max => ItemModelFamily::Ials,
            ItemModelFamily::Auto => ItemModelFamily::Ease,
            family => family,
        };
        match family {
            ItemModelFamily::Ials => ItemModelSpec::Ials(Self::ials_params(config)),
            _ => ItemModelSpec::Ease { lambda: config.lambda, input: config.input },
        }
    }

    /// iALS's parameters in `config` (`threads` 0: one per core).
    pub fn ials_params(config: &ItemModelConfig) -> IalsParams {
        let ials = &config.ials;
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        IalsParams {
            factors: ials.factors,
            lambda: ials.lambda,
            alpha: ials.alpha,
            iterations: ials.iterations,
            cg_steps: ials.cg_steps,
            seed: IALS_SEED,
            input: config.input,
            threads: if ials.threads == 0 { cores } else { ials.threads },
        }
    }

    fn lambda(&self) -> f32 {
        match self {
            ItemModelSpec::Ease { lambda, .. } => *lambda,
            ItemModelSpec::Ials(params) => params.lambda,
        }
    }

    fn input(&self) -> ItemModelInput {
        match self {
            ItemModelSpec::Ease { input, .. } => *input,
            ItemModelSpec::Ials(params) => params.input,
        }
    }

    fn family(&self) -> ItemModelFamily {
        match self {
            ItemModelSpec::Ease { .. } => ItemModelFamily::Ease,
            ItemModelSpec::Ials(_) => ItemModelFamily::Ials,
        }
    }
}

/// The seed of iALS's initial factors (fixed: a training is a function of
/// the state and the parameters).
const IALS_SEED: u64 = 42;

/// What a training produced.
#[derive(Clone, Debug, PartialEq)]
pub struct ItemModelInfo {
    /// Its version (record 11).
    pub version: u32,
    /// `ease` or `ials`.
    pub family: ItemModelFamily,
    /// Items covered.
    pub n_items: u32,
    /// λ.
    pub lambda: f32,
    /// What X held.
    pub input: ItemModelInput,
    /// `lsn_applied` of the state it was trained on.
    pub lsn_trained: u64,
    /// LSN of its record.
    pub lsn: u64,
    /// The artefact's size.
    pub bytes: u64,
    /// Wall time of the training (copy, Gram, factor, inverse), ms.
    pub train_ms: u64,
}

/// The item model now, for `/metrics` and operators.
#[derive(Clone, Debug, PartialEq)]
pub struct ItemModelStatus {
    /// The active model's reference (record 11), if one was ever trained.
    pub active: Option<ItemModelRef>,
    /// The family of the model serving (`ease` or `ials`), if one is.
    pub family: Option<ItemModelFamily>,
    /// Whether its weights are loaded and scoring (false: `ease` answers
    /// with popular items; `fault` says why).
    pub serving: bool,
    /// Why the active model does not serve, or why the last training failed.
    pub fault: Option<String>,
    /// A training is running.
    pub training: bool,
    /// Its progress: steps done of steps in all.
    pub progress: (u64, u64),
    /// Trainings that activated a model since open.
    pub trainings: u64,
    /// Trainings that failed or were refused since open.
    pub failures: u64,
    /// Duration of the last successful training, ms.
    pub last_train_ms: u64,
    /// Age of the active model (now − its activation time), ms.
    pub age_ms: Option<u64>,
}

/// The engine's item-model side (a field of `Shared`).
pub(super) struct ItemModels {
    dir: PathBuf,
    /// One training (or load) at a time.
    admin: Mutex<()>,
    progress: Progress,
    training: AtomicBool,
    fault: Mutex<Option<String>>,
    /// Set when the active model could not be loaded: train soon.
    retrain_due: AtomicBool,
    /// The schedule trains only once the model is wanted: one is in the
    /// log, one was trained on request, or `ease` was asked for. An engine
    /// that never serves `ease` spends no memory (24·items² bytes at the
    /// peak) or CPU on it.
    wanted: AtomicBool,
    trainings: AtomicU64,
    failures: AtomicU64,
    last_train_ms: AtomicU64,
    /// `events_applied` when the last training began (or at open).
    events_at_train: AtomicU64,
    /// Engine clock when the last training began (or at open).
    trained_at_ms: AtomicI64,
    stop: AtomicBool,
    trainer: Mutex<Option<JoinHandle<()>>>,
}

/// The artefact of `version` in `dir`.
fn artefact_name(version: u32) -> String {
    format!("im{version:06}.bin")
}

impl ItemModels {
    /// Opens `dir` (created if missing), loads the model `state` names and
    /// attaches it; a missing or damaged artefact is a fault, not an error.
    pub(super) fn open(dir: PathBuf, state: &mut State) -> Result<ItemModels, EngineError> {
        std::fs::create_dir_all(&dir).map_err(|err| EngineError::io(format!("creating {}", dir.display()), err))?;
        let models = ItemModels {
            dir,
            admin: Mutex::new(()),
            progress: Progress::default(),
            training: AtomicBool::new(false),
            fault: Mutex::new(None),
            retrain_due: AtomicBool::new(false),
            wanted: AtomicBool::new(false),
            trainings: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            last_train_ms: AtomicU64::new(0),
            events_at_train: AtomicU64::new(state.events_applied()),
            trained_at_ms: AtomicI64::new(now_ms()),
            stop: AtomicBool::new(false),
            trainer: Mutex::new(None),
        };
        let active = state.item_model_ref().cloned();
        models.sweep(active.as_ref().map(|active| active.version))?;
        if let Some(active) = active {
            models.wanted.store(true, Ordering::Relaxed);
            let loaded = load(&models.dir, &active).and_then(|weights| {
                if state.attach_item_model(Some(Arc::new(weights))) {
                    Ok(())
                } else {
                    Err(format!("item model v{}: its items are not the state's", active.version))
                }
            });
            match loaded {
                Ok(()) => info!(version = active.version, items = active.n_items, "item model loaded"),
                Err(reason) => {
                    warn!(%reason, "the item model cannot serve: ease answers with popular items until it is retrained");
                    models.set_fault(Some(reason));
                    models.retrain_due.store(true, Ordering::Relaxed);
                }
            }
        }
        Ok(models)
    }

    fn set_fault(&self, fault: Option<String>) {
        *self.fault.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = fault;
    }

    /// Removes artefacts the log does not name as active: temp files, files
    /// of a training whose record never became durable, replaced versions.
    fn sweep(&self, live: Option<u32>) -> Result<(), EngineError> {
        let entries = std::fs::read_dir(&self.dir)
            .map_err(|err| EngineError::io(format!("reading {}", self.dir.display()), err))?;
        let mut removed = false;
        for entry in entries {
            let entry = entry.map_err(|err| EngineError::io(format!("reading {}", self.dir.display()), err))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let version: Option<u32> = name
                .strip_prefix("im")
                .and_then(|rest| rest.strip_suffix(".bin").or_else(|| rest.strip_suffix(".bin.tmp")))
                .and_then(|digits| digits.parse().ok())
                .filter(|&version| name == artefact_name(version) || name == format!("{}.tmp", artefact_name(version)));
            let Some(version) = version else { continue };
            if name.ends_with(".tmp") || live != Some(version) {
                match std::fs::remove_file(entry.path()) {
                    Ok(()) => removed = true,
                    Err(err) => warn!(file = %entry.path().display(), %err, "cannot remove an old item-model file"),
                }
            }
        }
        if removed {
            sync_dir(&self.dir)?;
        }
        Ok(())
    }
}

/// The artefact `active` names, if its SHA-256 and contents check out.
fn load(dir: &Path, active: &ItemModelRef) -> Result<ItemModel, String> {
    let path = dir.join(artefact_name(active.version));
    let bytes = std::fs::read(&path)
        .map_err(|err| format!("item model v{}: cannot read {}: {err}", active.version, path.display()))?;
    let found = sha256(&bytes);
    if found != active.sha256 {
        return Err(format!(
            "item model v{}: {} has SHA-256 {}, the log recorded {}: the file was altered",
            active.version,
            path.display(),
            hex(&found),
            hex(&active.sha256)
        ));
    }
    let weights =
        decode_artefact(&bytes).map_err(|err| format!("item model v{}: {}: {err}", active.version, path.display()))?;
    if weights.n_items() != active.n_items
        || weights.lambda().to_bits() != active.lambda_bits
        || weights.input() != active.input
    {
        return Err(format!("item model v{}: {} differs from its record", active.version, path.display()));
    }
    Ok(weights)
}

/// An artefact of either family, by its magic.
fn decode_artefact(bytes: &[u8]) -> Result<ItemModel, String> {
    if bytes.starts_with(ials::ARTEFACT_MAGIC) {
        ials::decode_artefact(bytes).map(ItemModel::Ials)
    } else {
        ease::decode_artefact(bytes).map(ItemModel::Ease)
    }
}

impl Engine {
    /// Trains an item model from the state as it is now, of the configured
    /// family (`auto`: EASE up to `items_max` items, iALS above) with the
    /// configured parameters, stores it, logs it (record 11, durable before
    /// it serves) and activates it: the `ease` or `ials` strategy scores with
    /// it from then on. Blocks while training (docs/EVALUATION.md gives
    /// times per catalogue size); reads and ingest go on meanwhile.
    pub fn train_item_model(&self) -> Result<ItemModelInfo, EngineError> {
        self.shared.train_item_model(self.shared.configured_spec())
    }

    /// An EASE model with another λ and input (the evaluation's
    /// hyper-parameter search).
    pub fn train_item_model_with(&self, lambda: f32, input: ItemModelInput) -> Result<ItemModelInfo, EngineError> {
        self.shared.train_item_model(ItemModelSpec::Ease { lambda, input })
    }

    /// A model of any family and parameters.
    pub fn train_item_model_spec(&self, spec: ItemModelSpec) -> Result<ItemModelInfo, EngineError> {
        self.shared.train_item_model(spec)
    }

    /// The item model now: which is active, whether it serves, training.
    pub fn item_model_status(&self) -> ItemModelStatus {
        self.shared.item_model_status()
    }
}

impl Shared {
    pub(super) fn item_model_status(&self) -> ItemModelStatus {
        let models = &self.item_models;
        let state = self.read_state();
        let active = state.item_model_ref().cloned();
        let family = state.item_model().map(ItemModel::family);
        let serving = family.is_some();
        drop(state);
        let age_ms = active.as_ref().map(|active| now_ms().saturating_sub(active.at_ms).max(0) as u64);
        ItemModelStatus {
            active,
            family,
            serving,
            fault: models.fault.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone(),
            training: models.training.load(Ordering::Relaxed),
            progress: (models.progress.done.load(Ordering::Relaxed), models.progress.total.load(Ordering::Relaxed)),
            trainings: models.trainings.load(Ordering::Relaxed),
            failures: models.failures.load(Ordering::Relaxed),
            last_train_ms: models.last_train_ms.load(Ordering::Relaxed),
            age_ms,
        }
    }

    /// The spec the configuration asks for on the catalogue as it is now.
    fn configured_spec(&self) -> ItemModelSpec {
        let items = self.read_state().items().len();
        ItemModelSpec::of(&self.config.item_model, items)
    }

    pub(super) fn train_item_model(&self, spec: ItemModelSpec) -> Result<ItemModelInfo, EngineError> {
        let lambda = spec.lambda();
        if !(lambda.is_finite() && lambda > 0.0) {
            return Err(EngineError::invalid("lambda", format!("must be finite and > 0, got {lambda}")));
        }
        let models = &self.item_models;
        let _admin = models.admin.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        models.training.store(true, Ordering::Relaxed);
        let result = self.train_locked(&spec);
        models.training.store(false, Ordering::Relaxed);
        match &result {
            Ok(info) => {
                models.trainings.fetch_add(1, Ordering::Relaxed);
                models.wanted.store(true, Ordering::Relaxed);
                models.last_train_ms.store(info.train_ms, Ordering::Relaxed);
                models.retrain_due.store(false, Ordering::Relaxed);
                models.set_fault(None);
            }
            Err(err) => {
                models.failures.fetch_add(1, Ordering::Relaxed);
                // Retried on the schedule (`events_at_train` moved), not at once.
                models.retrain_due.store(false, Ordering::Relaxed);
                warn!(%err, "item model not trained");
                if self.read_state().item_model().is_none() {
                    models.set_fault(Some(err.to_string()));
                }
            }
        }
        result
    }

    fn train_locked(&self, spec: &ItemModelSpec) -> Result<ItemModelInfo, EngineError> {
        let (lambda, input) = (spec.lambda(), spec.input());
        let models = &self.item_models;
        let started = Instant::now();
        let (set, events, previous) = {
            let state = self.read_state();
            let previous = state.item_model_ref().map(|active| active.version);
            (TrainingSet::of(&state, input), state.events_applied(), previous)
        };
        models.events_at_train.store(events, Ordering::Relaxed);
        models.trained_at_ms.store(now_ms(), Ordering::Relaxed);
        let (weights, bytes) = match spec {
            ItemModelSpec::Ease { .. } => {
                let items_max = self.config.item_model.items_max;
                let weights = ease::train(&set, lambda, input, items_max, &models.progress)
                    .map_err(|err| EngineError::ItemModel(err.to_string()))?;
                let bytes = ease::encode_artefact(&weights).map_err(EngineError::ItemModel)?;
                (ItemModel::Ease(weights), bytes)
            }
            ItemModelSpec::Ials(params) => {
                let factors = ials::train(&set, params, &models.progress)
                    .map_err(|err| EngineError::ItemModel(err.to_string()))?;
                let bytes = ials::encode_artefact(&factors).map_err(EngineError::ItemModel)?;
                (ItemModel::Ials(factors), bytes)
            }
        };
        let version = previous.map_or(Some(1), |previous| previous.checked_add(1));
        let version = version.ok_or_else(|| EngineError::ItemModel("no version numbers left".into()))?;
        let sha256 = sha256(&bytes);
        // The file first, durably; then its record. A crash between the two
        // leaves a file the next open sweeps.
        write_atomically(&models.dir, &artefact_name(version), &bytes)?;
        let record = ItemModelActivatedV1 {
            version,
            sha256,
            bytes: bytes.len() as u64,
            n_items: weights.n_items(),
            lambda_bits: lambda.to_bits(),
            input,
            lsn_trained: set.lsn,
            at_ms: now_ms(),
        };
        let lsn = self.log_and_apply(&LogRecord::ItemModelActivated(record), Vec::new(), Durability::Always)?;
        let n_items = weights.n_items();
        let attached = {
            let mut state = self.state.write().unwrap_or_else(|poisoned| poisoned.into_inner());
            state.attach_item_model(Some(Arc::new(weights)))
        };
        // The interner only grows, so the trained items are the state's.
        assert!(attached, "item model v{version}: trained items differ from the state's");
        if let Err(err) = models.sweep(Some(version)) {
            warn!(%err, "cannot remove the replaced item-model files; the next open does");
        }
        let train_ms = started.elapsed().as_millis() as u64;
        info!(
            version,
            family = spec.family().name(),
            items = n_items,
            lambda,
            input = input.name(),
            lsn_trained = set.lsn,
            train_ms,
            "item model trained"
        );
        Ok(ItemModelInfo {
            version,
            family: spec.family(),
            n_items,
            lambda,
            input,
            lsn_trained: set.lsn,
            lsn,
            bytes: bytes.len() as u64,
            train_ms,
        })
    }

    /// Marks the item model wanted when `strategy` is `ease` or `ials` (the
    /// schedule then trains it: within `TRAINER_POLL` when there is none
    /// yet).
    pub(super) fn note_strategy(&self, strategy: crate::recommend::Strategy) {
        // A plain load first: every such request passes here, and only the
        // first needs the write.
        let wanted = &self.item_models.wanted;
        if strategy.item_model_family().is_some()
            && !wanted.load(Ordering::Relaxed)
            && !wanted.swap(true, Ordering::Relaxed)
        {
            info!(strategy = strategy.name(), "the item model was asked for: it is trained on schedule from now on");
        }
    }

    /// Whether the schedule calls for a training now (never with both
    /// schedule keys off, never before the model is wanted): the active model could not be loaded, or `retrain_every_events` events were applied
    /// since the last training, or it is `retrain_every` old and events
    /// arrived since.
    fn item_model_due(&self) -> bool {
        let models = &self.item_models;
        let config = &self.config.item_model;
        if !models.wanted.load(Ordering::Relaxed) {
            return false;
        }
        let events = self.read_state().events_applied();
        let since = events.saturating_sub(models.events_at_train.load(Ordering::Relaxed));
        let scheduled = config.retrain_every_events.is_some() || config.retrain_every.is_some();
        if scheduled && models.retrain_due.load(Ordering::Relaxed) && events > 0 {
            return true;
        }
        if config.retrain_every_events.is_some_and(|every| since >= every) {
            return true;
        }
        let age_ms = now_ms().saturating_sub(models.trained_at_ms.load(Ordering::Relaxed));
        config.retrain_every.is_some_and(|every| since > 0 && age_ms >= every.as_millis() as i64)
    }

    /// Stops the trainer thread (waiting for a training in progress).
    pub(super) fn stop_item_model_trainer(&self) {
        self.item_models.stop.store(true, Ordering::Relaxed);
        let handle = self.item_models.trainer.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take();
        if let Some(handle) = handle {
            handle.thread().unpark();
            let _ = handle.join();
        }
    }
}

/// Starts the thread that retrains the item model on schedule. It holds
/// the engine weakly between checks.
pub(super) fn start_trainer(shared: &Arc<Shared>) -> Result<(), EngineError> {
    let weak: Weak<Shared> = Arc::downgrade(shared);
    let handle = std::thread::Builder::new()
        .name("recwal-item-model".into())
        .spawn(move || {
            // Scheduled trainings (and the threads an iALS training starts,
            // which inherit it) run at the model builds' lower priority, so
            // the cores they share with serving go to the requests first.
            let tid = rustix::thread::gettid();
            if let Err(err) = rustix::process::setpriority_process(Some(tid), crate::model::build_thread::BUILD_NICE) {
                tracing::debug!(%err, "cannot lower the item-model trainer's priority");
            }
            trainer_loop(&weak);
        })
        .map_err(|err| EngineError::io("starting the item-model thread", err))?;
    *shared.item_models.trainer.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(handle);
    Ok(())
}

/// The trainer thread's loop: checks every `TRAINER_POLL` whether a
/// training is due, until the engine is gone or stopping.
fn trainer_loop(weak: &Weak<Shared>) {
    loop {
        std::thread::park_timeout(TRAINER_POLL);
        let Some(shared) = weak.upgrade() else { return };
        if shared.item_models.stop.load(Ordering::Relaxed) {
            return;
        }
        if shared.poisoned.get().is_none() && shared.item_model_due() {
            // Failures are logged and counted by `train_item_model`;
            // `events_at_train` moved, so it is retried next period.
            let _ = shared.train_item_model(shared.configured_spec());
        }
    }
}
