//! A model version loaded and ready to score: its sessions (a small pool,
//! since a session runs one inference at a time), its breaker, and on CUDA
//! its device buffers. Loading checks the contract (`schema::check`) and
//! scores the warm-up batch on every session, so a version that loads is a
//! version that answers.
//!
//! The engine holds the active version in an `ArcSwap`; each request holds
//! its own `Arc` while it scores, so a swap never interrupts a request and
//! the old version is freed when its last request ends (`live_count` shows
//! it).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use ort::session::Session;
use ort::value::{TensorElementType, TensorRef};
use tracing::warn;

use crate::model::breaker::Breaker;
use crate::model::config::{ModelConfig, ModelDevice};
use crate::model::latency::{self, InferenceLatency};
use crate::model::runtime::Runtime;
use crate::model::schema::{self, Signature, INPUT_NAME, OUTPUT_NAME};

/// Versions loaded now (active, being validated, or still serving a request
/// that started before a swap).
static LIVE: AtomicUsize = AtomicUsize::new(0);
static CUDA_FALLBACK_LOGGED: AtomicBool = AtomicBool::new(false);

/// Model versions loaded in this process now.
pub(crate) fn live_count() -> usize {
    LIVE.load(Ordering::SeqCst)
}

/// Why a version did not score a request.
#[derive(Debug)]
pub(crate) enum ScoreError {
    /// Every session stayed busy for the whole wait (overload, not a fault
    /// of the model: the breaker does not count it).
    Busy,
    /// The inference failed or gave unusable scores.
    Failed(String),
}

pub(crate) struct LoadedModel {
    pub version: u32,
    /// The feature schema it declares (1 or 2).
    pub schema: u32,
    /// "cpu" or "cuda".
    pub device: &'static str,
    /// On CUDA: every session runs through its bound buffers.
    pub io_binding: bool,
    pub breaker: Breaker,
    pool: Mutex<Vec<Slot>>,
    returned: Condvar,
    /// This version's inference latency (`recwal_model_inference_seconds`).
    latency: Arc<InferenceLatency>,
}

struct Slot {
    session: Session,
    /// Columns of its input (`schema::width` of the model's schema).
    width: usize,
    #[cfg(feature = "cuda")]
    gpu: Option<gpu::Buffers>,
}

impl LoadedModel {
    /// Loads `bytes` into `sessions` sessions, checks the contract and runs
    /// the warm-up batch on each. The error says what is wrong. A model that
    /// loads on the GPU but fails its warm-up there is loaded on the CPU (with
    /// a warning) before it is refused.
    /// The device, breaker and clock come from `config`.
    pub fn load(
        runtime: &Runtime,
        bytes: &[u8],
        version: u32,
        sessions: usize,
        config: &ModelConfig,
    ) -> Result<LoadedModel, String> {
        match Self::load_on(runtime, bytes, version, sessions, config.device, config) {
            Err(reason) if config.device != ModelDevice::Cpu && runtime.cuda => {
                let on_cpu = Self::load_on(runtime, bytes, version, sessions, ModelDevice::Cpu, config)?;
                warn!(version, %reason, "the model failed on the GPU; it runs on the CPU");
                Ok(on_cpu)
            }
            other => other,
        }
    }

    fn load_on(
        runtime: &Runtime,
        bytes: &[u8],
        version: u32,
        sessions: usize,
        device: ModelDevice,
        config: &ModelConfig,
    ) -> Result<LoadedModel, String> {
        let mut pool = Vec::with_capacity(sessions.max(1));
        let mut placed = "cpu";
        let mut declared = 0;
        for _ in 0..sessions.max(1) {
            let (session, on) = new_session(runtime, bytes, device)?;
            placed = on;
            if pool.is_empty() {
                declared = schema::check(&signature(&session)?)?;
            }
            pool.push(Slot::new(session, on, device, schema::width(declared))?);
        }
        LIVE.fetch_add(1, Ordering::SeqCst);
        let mut model = LoadedModel {
            version,
            schema: declared,
            device: placed,
            io_binding: false,
            breaker: Breaker::new(config.breaker.clone(), config.clock.clone()),
            pool: Mutex::new(Vec::new()),
            returned: Condvar::new(),
            latency: latency::for_version(version),
        };
        let warmup = schema::warmup_batch(schema::width(declared));
        let mut bound = placed == "cuda";
        for mut slot in pool {
            let scores =
                slot.run(&warmup, schema::WARMUP_ROWS).map_err(|err| format!("warm-up batch failed: {err}"))?;
            schema::check_scores(&scores, schema::WARMUP_ROWS).map_err(|err| format!("warm-up batch: {err}"))?;
            bound &= slot.bound();
            model.give_back(slot);
        }
        model.io_binding = bound;
        Ok(model)
    }

    /// Counts a request this version was asked to rank (as `role`).
    pub fn count_answer(&self, role: latency::Role, answer: latency::Answer) {
        self.latency.count_answer(role, answer);
    }

    /// Columns of its input.
    pub fn width(&self) -> usize {
        schema::width(self.schema)
    }

    /// Scores `rows` candidates (`features` row-major, `width` columns, at
    /// least the model's: a wider matrix, built for a newer schema, is read
    /// for its first columns) with the first session free within `wait`.
    /// Returns the scores and the inference time alone (not the wait for a
    /// session).
    pub fn score(
        &self,
        features: &[f32],
        width: usize,
        rows: usize,
        wait: Duration,
    ) -> Result<(Vec<f32>, Duration), ScoreError> {
        let own = self.width();
        if width < own || features.len() != rows * width {
            return Err(ScoreError::Failed(format!(
                "{} feature values for {rows} rows of {width} columns; the model needs {own} columns",
                features.len()
            )));
        }
        let narrowed: Vec<f32>;
        let features = if width == own {
            features
        } else {
            narrowed = features.chunks_exact(width).flat_map(|row| &row[..own]).copied().collect();
            &narrowed
        };
        let mut slot = self.take(wait)?;
        let started = Instant::now();
        let scored = slot.run(features, rows);
        let took = started.elapsed();
        self.give_back(slot);
        // Failed runs too: a version that fails slowly shows it.
        self.latency.observe(took);
        let scores = scored.map_err(ScoreError::Failed)?;
        schema::check_scores(&scores, rows).map_err(ScoreError::Failed)?;
        Ok((scores, took))
    }

    fn take(&self, wait: Duration) -> Result<Slot, ScoreError> {
        let deadline = Instant::now() + wait;
        let poisoned = || ScoreError::Failed("session pool poisoned".into());
        let mut pool = self.pool.lock().map_err(|_| poisoned())?;
        loop {
            if let Some(slot) = pool.pop() {
                return Ok(slot);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(ScoreError::Busy);
            }
            pool = self.returned.wait_timeout(pool, left).map_err(|_| poisoned())?.0;
        }
    }

    fn give_back(&self, slot: Slot) {
        if let Ok(mut pool) = self.pool.lock() {
            pool.push(slot);
            self.returned.notify_one();
        }
    }
}

impl Drop for LoadedModel {
    fn drop(&mut self) {
        LIVE.fetch_sub(1, Ordering::SeqCst);
    }
}

fn new_session(runtime: &Runtime, bytes: &[u8], device: ModelDevice) -> Result<(Session, &'static str), String> {
    let builder = || {
        Session::builder(&runtime.env)
            .and_then(|builder| builder.with_intra_threads(1).map_err(ort::Error::from))
            .map_err(|err| format!("cannot configure an ONNX Runtime session: {err}"))
    };
    if let ModelDevice::Cuda { device_id } = device {
        match cuda_session(runtime, builder()?, bytes, device_id) {
            Ok(session) => return Ok((session, "cuda")),
            Err(reason) => {
                if !CUDA_FALLBACK_LOGGED.swap(true, Ordering::SeqCst) {
                    warn!(%reason, "CUDA is not available; models run on the CPU");
                }
            }
        }
    }
    let session =
        builder()?.commit_from_memory(bytes).map_err(|err| format!("ONNX Runtime cannot load the model: {err}"))?;
    Ok((session, "cpu"))
}

#[cfg(feature = "cuda")]
fn cuda_session(
    runtime: &Runtime,
    builder: ort::session::builder::SessionBuilder,
    bytes: &[u8],
    device_id: i32,
) -> Result<Session, String> {
    if !runtime.cuda {
        return Err(format!("the ONNX Runtime at {} has no CUDA execution provider", runtime.path.display()));
    }
    let provider = ort::ep::CUDA::default().with_device_id(device_id).build().error_on_failure();
    let mut builder = builder.with_execution_providers([provider]).map_err(|err| err.to_string())?;
    builder.commit_from_memory(bytes).map_err(|err| err.to_string())
}

#[cfg(not(feature = "cuda"))]
fn cuda_session(
    _runtime: &Runtime,
    _builder: ort::session::builder::SessionBuilder,
    _bytes: &[u8],
    _device_id: i32,
) -> Result<Session, String> {
    Err("this build has no `cuda` feature".into())
}

fn signature(session: &Session) -> Result<Signature, String> {
    let metadata = session.metadata().map_err(|err| format!("cannot read the model's metadata: {err}"))?;
    let describe = |outlets: &[ort::value::Outlet]| {
        outlets
            .iter()
            .map(|outlet| {
                let dtype = outlet.dtype();
                let float = dtype.tensor_type() == Some(TensorElementType::Float32);
                let shape = dtype.tensor_shape().map(|shape| shape.to_vec()).unwrap_or_default();
                (outlet.name().to_string(), float, shape)
            })
            .collect()
    };
    Ok(Signature {
        schema: metadata.custom(schema::SCHEMA_METADATA_KEY),
        inputs: describe(session.inputs()),
        outputs: describe(session.outputs()),
    })
}

impl Slot {
    #[cfg(feature = "cuda")]
    fn new(session: Session, placed: &'static str, device: ModelDevice, width: usize) -> Result<Slot, String> {
        let gpu = match device {
            ModelDevice::Cuda { device_id } if placed == "cuda" => Some(gpu::Buffers::new(&session, device_id, width)?),
            _ => None,
        };
        Ok(Slot { session, width, gpu })
    }

    #[cfg(not(feature = "cuda"))]
    fn new(session: Session, _placed: &'static str, _device: ModelDevice, width: usize) -> Result<Slot, String> {
        Ok(Slot { session, width })
    }

    fn bound(&self) -> bool {
        #[cfg(feature = "cuda")]
        return self.gpu.is_some();
        #[cfg(not(feature = "cuda"))]
        return false;
    }

    fn run(&mut self, features: &[f32], rows: usize) -> Result<Vec<f32>, String> {
        let width = self.width;
        if features.len() != rows * width {
            return Err(format!("{} feature values for {rows} rows of {width}", features.len()));
        }
        #[cfg(feature = "cuda")]
        if let Some(gpu) = &mut self.gpu {
            if rows <= gpu.rows {
                return gpu.run(&mut self.session, features, rows);
            }
        }
        let input = TensorRef::from_array_view(([rows, width], features)).map_err(|err| err.to_string())?;
        let outputs = self.session.run(ort::inputs![INPUT_NAME => input]).map_err(|err| err.to_string())?;
        let output = outputs.get(OUTPUT_NAME).ok_or_else(|| format!("the model gave no `{OUTPUT_NAME}` output"))?;
        let (_, scores) = output.try_extract_tensor::<f32>().map_err(|err| err.to_string())?;
        Ok(scores.to_vec())
    }
}

/// CUDA: each session's input and output live in device memory, allocated
/// when the version loads and bound once with an `IoBinding`. A request
/// writes its rows into a host buffer, copies them to the device input,
/// runs, and copies the device output back into a host buffer: no
/// allocation and no binding per request, and a swap changes nothing but the
/// `Arc` of ready buffers. Requests with more rows than the buffers hold use
/// a plain run. (Pinned host buffers bound directly fail in ONNX Runtime
/// 1.31, which treats pinned memory as device memory: `examples/cuda_probe`.)
#[cfg(feature = "cuda")]
mod gpu {
    use ort::memory::{AllocationDevice, Allocator, AllocatorType, MemoryInfo, MemoryType};
    use ort::session::{IoBinding, Session};
    use ort::value::Tensor;

    use crate::model::schema::{INPUT_NAME, OUTPUT_NAME};

    /// Rows the buffers hold: the default candidate count, rounded up.
    pub const ROWS: usize = 256;

    pub struct Buffers {
        pub rows: usize,
        binding: IoBinding,
        host_in: Tensor<f32>,
        device_in: Tensor<f32>,
        device_out: Tensor<f32>,
        host_out: Tensor<f32>,
    }

    impl Buffers {
        pub fn new(session: &Session, device_id: i32, width: usize) -> Result<Buffers, String> {
            let fail = |what: &str, err: ort::Error| format!("CUDA buffers ({what}): {err}");
            let device = MemoryInfo::new(AllocationDevice::CUDA, device_id, AllocatorType::Device, MemoryType::Default)
                .and_then(|info| Allocator::new(session, info))
                .map_err(|err| fail("device allocator", err))?;
            let host = Allocator::default();
            // `score` is [N] or [N, 1] (the contract allows both).
            let rank = session
                .outputs()
                .iter()
                .find(|output| output.name() == OUTPUT_NAME)
                .and_then(|output| output.dtype().tensor_shape().map(|shape| shape.len()))
                .unwrap_or(1);
            let out_shape: Vec<usize> = if rank == 2 { vec![ROWS, 1] } else { vec![ROWS] };
            let host_in = Tensor::<f32>::new(&host, [ROWS, width]).map_err(|err| fail("host input", err))?;
            let device_in = Tensor::<f32>::new(&device, [ROWS, width]).map_err(|err| fail("device input", err))?;
            let mut device_out =
                Tensor::<f32>::new(&device, out_shape.clone()).map_err(|err| fail("device output", err))?;
            let host_out = Tensor::<f32>::new(&host, out_shape).map_err(|err| fail("host output", err))?;
            let mut binding = session.create_binding().map_err(|err| fail("binding", err))?;
            binding.bind_input(INPUT_NAME, &device_in).map_err(|err| fail("binding the input", err))?;
            binding.bind_output(OUTPUT_NAME, &mut device_out).map_err(|err| fail("binding the output", err))?;
            Ok(Buffers { rows: ROWS, binding, host_in, device_in, device_out, host_out })
        }

        pub fn run(&mut self, session: &mut Session, features: &[f32], rows: usize) -> Result<Vec<f32>, String> {
            let (_, host) = self.host_in.try_extract_tensor_mut::<f32>().map_err(|err| err.to_string())?;
            host[..features.len()].copy_from_slice(features);
            // Padding rows score zeros; their scores are dropped below.
            host[features.len()..].fill(0.0);
            self.host_in.copy_into(&mut self.device_in).map_err(|err| err.to_string())?;
            session.run_binding(&self.binding).map_err(|err| err.to_string())?;
            self.device_out.copy_into(&mut self.host_out).map_err(|err| err.to_string())?;
            let (_, scores) = self.host_out.try_extract_tensor::<f32>().map_err(|err| err.to_string())?;
            scores.get(..rows).map(<[f32]>::to_vec).ok_or_else(|| format!("{} scores for {rows} rows", scores.len()))
        }
    }
}
