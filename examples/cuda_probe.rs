//! Diagnoses ONNX Runtime's CUDA execution provider on this machine: loads
//! a model (default: the `linear_v1` fixture) under several session settings
//! and input kinds and prints which run. Needs `--features cuda` and the GPU
//! runtime (`ORT_DYLIB_PATH`, see docs/MODELS.md).
//!
//! ```text
//! ORT_DYLIB_PATH=.onnxruntime-gpu/lib/libonnxruntime.so \
//!     cargo run --release --features cuda --example cuda_probe [model.onnx]
//! ```
#![allow(clippy::print_stdout)]

#[cfg(feature = "cuda")]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    use ort::session::builder::GraphOptimizationLevel;
    use ort::session::Session;
    use ort::value::{Tensor, TensorRef};

    let path = std::env::var("ORT_DYLIB_PATH")?;
    let env = ort::init_from(&path)?.build()?;
    let model = std::env::args().nth(1).unwrap_or_else(|| "tests/fixtures/models/linear_v1.onnx".into());
    let bytes = std::fs::read(&model)?;
    let rows = 8usize;
    let features: Vec<f32> = (0..rows * 6).map(|at| (at % 11) as f32 / 10.0).collect();
    let levels = [
        ("all", GraphOptimizationLevel::All),
        ("level1", GraphOptimizationLevel::Level1),
        ("disable", GraphOptimizationLevel::Disable),
    ];
    for (name, level) in levels {
        for memory_pattern in [true, false] {
            let session = Session::builder(&env)
                .and_then(|b| b.with_optimization_level(level).map_err(ort::Error::from))
                .and_then(|b| b.with_memory_pattern(memory_pattern).map_err(ort::Error::from))
                .and_then(|b| {
                    b.with_execution_providers([ort::ep::CUDA::default().build().error_on_failure()])
                        .map_err(ort::Error::from)
                })
                .and_then(|mut b| b.commit_from_memory(&bytes));
            let mut session = match session {
                Ok(session) => session,
                Err(err) => {
                    println!("{name:8} pattern {memory_pattern:5}: session: {err}");
                    continue;
                }
            };
            let borrowed = TensorRef::from_array_view(([rows, 6], features.as_slice())).and_then(|input| {
                session.run(ort::inputs!["features" => input]).and_then(|out| Ok(format!("{:?}", score_of(&out)?)))
            });
            println!(
                "{name:8} pattern {memory_pattern:5}: borrowed input: {}",
                borrowed.unwrap_or_else(|err| err.to_string())
            );
            let owned = Tensor::from_array(([rows, 6], features.clone())).and_then(|input| {
                session.run(ort::inputs!["features" => input]).and_then(|out| Ok(format!("{:?}", score_of(&out)?)))
            });
            println!(
                "{name:8} pattern {memory_pattern:5}: owned input:    {}",
                owned.unwrap_or_else(|err| err.to_string())
            );
        }
    }
    io_binding_variants(&env, &bytes, &features, rows);
    Ok(())
}

/// Ways of binding the input and output; prints which run.
#[cfg(feature = "cuda")]
fn io_binding_variants(env: &ort::environment::Environment, bytes: &[u8], features: &[f32], rows: usize) {
    use ort::memory::{AllocationDevice, Allocator, AllocatorType, MemoryInfo, MemoryType};
    use ort::session::Session;
    use ort::value::Tensor;

    let session = || -> ort::Result<Session> {
        Session::builder(env)?
            .with_intra_threads(1)
            .map_err(ort::Error::<()>::from)?
            .with_execution_providers([ort::ep::CUDA::default().build().error_on_failure()])
            .map_err(ort::Error::<()>::from)?
            .commit_from_memory(bytes)
    };
    let alloc = |session: &Session, device: AllocationDevice<'static>, memory: MemoryType| {
        MemoryInfo::new(device, 0, AllocatorType::Device, memory).and_then(|info| Allocator::new(session, info))
    };
    let fill = |tensor: &mut Tensor<f32>| -> ort::Result<()> {
        let (_, data) = tensor.try_extract_tensor_mut::<f32>()?;
        data.copy_from_slice(features);
        Ok(())
    };
    type Variant<'a> = (&'a str, Box<dyn Fn() -> ort::Result<Vec<f32>> + 'a>);
    let variants: Vec<Variant<'_>> = vec![
        (
            "plain, intra 1",
            Box::new(|| {
                let mut s = session()?;
                let input = ort::value::TensorRef::from_array_view(([rows, 6], features))?;
                let out = s.run(ort::inputs!["features" => input])?;
                score_of(&out)
            }),
        ),
        (
            "cpu in, cpu out",
            Box::new(|| {
                let mut s = session()?;
                let mut input = Tensor::<f32>::new(&Allocator::default(), [rows, 6])?;
                fill(&mut input)?;
                let mut output = Tensor::<f32>::new(&Allocator::default(), [rows])?;
                run_bound(&mut s, &input, &mut output)?;
                Ok(output.try_extract_tensor::<f32>()?.1.to_vec())
            }),
        ),
        (
            "pinned in, pinned out",
            Box::new(|| {
                let mut s = session()?;
                let mut input =
                    Tensor::<f32>::new(&alloc(&s, AllocationDevice::CUDA_PINNED, MemoryType::CPUInput)?, [rows, 6])?;
                fill(&mut input)?;
                let mut output =
                    Tensor::<f32>::new(&alloc(&s, AllocationDevice::CUDA_PINNED, MemoryType::CPUOutput)?, [rows])?;
                run_bound(&mut s, &input, &mut output)?;
                Ok(output.try_extract_tensor::<f32>()?.1.to_vec())
            }),
        ),
        (
            "pinned in, output to cpu device",
            Box::new(|| {
                let mut s = session()?;
                let mut input =
                    Tensor::<f32>::new(&alloc(&s, AllocationDevice::CUDA_PINNED, MemoryType::CPUInput)?, [rows, 6])?;
                fill(&mut input)?;
                let mut b = s.create_binding()?;
                b.bind_input("features", &input)?;
                b.bind_output_to_device("score", &MemoryInfo::default())?;
                let out = s.run_binding(&b)?;
                score_of(&out)
            }),
        ),
        (
            "device in (copy_into), device out (.to cpu)",
            Box::new(|| {
                let mut s = session()?;
                let mut host = Tensor::<f32>::new(&Allocator::default(), [rows, 6])?;
                fill(&mut host)?;
                let cuda = alloc(&s, AllocationDevice::CUDA, MemoryType::Default)?;
                let mut device_in = Tensor::<f32>::new(&cuda, [rows, 6])?;
                host.copy_into(&mut device_in)?;
                let mut device_out = Tensor::<f32>::new(&cuda, [rows])?;
                run_bound(&mut s, &device_in, &mut device_out)?;
                let back = device_out.to(AllocationDevice::CPU, 0)?;
                Ok(back.try_extract_tensor::<f32>()?.1.to_vec())
            }),
        ),
        (
            "device in (copy_into), cpu out",
            Box::new(|| {
                let mut s = session()?;
                let mut host = Tensor::<f32>::new(&Allocator::default(), [rows, 6])?;
                fill(&mut host)?;
                let cuda = alloc(&s, AllocationDevice::CUDA, MemoryType::Default)?;
                let mut device_in = Tensor::<f32>::new(&cuda, [rows, 6])?;
                host.copy_into(&mut device_in)?;
                let mut output = Tensor::<f32>::new(&Allocator::default(), [rows])?;
                run_bound(&mut s, &device_in, &mut output)?;
                Ok(output.try_extract_tensor::<f32>()?.1.to_vec())
            }),
        ),
    ];
    for (name, variant) in variants {
        let result = variant().map(|scores| format!("{scores:?}")).unwrap_or_else(|err| format!("ERR {err}"));
        println!("io binding, {name:45}: {}", result.chars().take(240).collect::<String>());
    }
}

/// The `score` output's values.
#[cfg(feature = "cuda")]
fn score_of(outputs: &ort::session::SessionOutputs<'_>) -> ort::Result<Vec<f32>> {
    let score = outputs.get("score").ok_or_else(|| ort::Error::new("no `score` output"))?;
    Ok(score.try_extract_tensor::<f32>()?.1.to_vec())
}

/// Binds `input` and `output` and runs once.
#[cfg(feature = "cuda")]
fn run_bound(
    session: &mut ort::session::Session,
    input: &ort::value::Tensor<f32>,
    output: &mut ort::value::Tensor<f32>,
) -> ort::Result<()> {
    let mut binding = session.create_binding()?;
    binding.bind_input("features", input)?;
    binding.bind_output("score", output)?;
    session.run_binding(&binding)?;
    Ok(())
}

#[cfg(not(feature = "cuda"))]
fn main() {
    println!("build with --features cuda");
}
