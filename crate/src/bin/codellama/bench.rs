//! `bench`, `synth` and `load`: speed and memory of the GPU engine.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use clap::Args;

use codellama_webgpu::gpu::bench::{self, BenchOptions, BenchShape};
use codellama_webgpu::gpu::weights::GpuWeights;
use codellama_webgpu::gpu::{GpuContext, GpuOptions};
use codellama_webgpu::model::{SyntheticModel, SyntheticQuant};

use codellama_webgpu::alloc;

type Res = Result<(), Box<dyn std::error::Error>>;

fn quant(s: &str) -> Result<SyntheticQuant, String> {
    SyntheticQuant::parse(s).ok_or_else(|| format!("unknown quantization {s:?} (q4_0 or q4_k_m)"))
}

fn shape(s: &str) -> Result<BenchShape, String> {
    BenchShape::parse(s).ok_or_else(|| format!("unknown model shape {s:?} (7b or small)"))
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Model shape: 7b (Code Llama 7B's) or small (dim 512, 4 heads, FFN 1536, vocab 32016: for
    /// quick runs on software adapters).
    #[arg(long, default_value = "7b", value_parser = shape)]
    shape: BenchShape,
    /// Transformer blocks of the model (32 is the real 7B).
    #[arg(long, default_value_t = 32)]
    layers: usize,
    /// Quantization mix: q4_0 or q4_k_m.
    #[arg(long, default_value = "q4_0", value_parser = quant)]
    quant: SyntheticQuant,
    /// Prompt tokens for the prefill measurement.
    #[arg(long, default_value_t = 512)]
    prompt_tokens: usize,
    /// Tokens for the decode measurement.
    #[arg(long, default_value_t = 128)]
    decode_tokens: usize,
    /// Tokens per prefill batch.
    #[arg(long, default_value_t = 128)]
    prefill_chunk: usize,
    /// Also time the verification of this many drafted tokens (speculative decoding: a batch
    /// of N + 1 positions, each sampled) against one decode step, and print the ratio; 0: not.
    #[arg(long, default_value_t = 0)]
    verify_draft: usize,
    /// Rounds of the verification measurement (medians are reported).
    #[arg(long, default_value_t = 10)]
    verify_rounds: usize,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Prefill with f16 workgroup tiles where the device has shader-f16 (GPU kernel preset).
    #[arg(long)]
    f16_prefill: bool,
    /// Sum matvec lanes through workgroup memory even where subgroups could.
    #[arg(long)]
    no_subgroups: bool,
}

pub fn bench(a: &BenchArgs) -> Res {
    let ctx = Arc::new(GpuContext::new(&GpuOptions {
        f16_prefill: a.f16_prefill,
        no_subgroups: a.no_subgroups,
        ..GpuOptions::default()
    })?);
    eprintln!("adapter: {}", ctx.adapter_summary());
    let opts = BenchOptions {
        shape: a.shape,
        layers: a.layers.max(1),
        quant: a.quant,
        prompt_tokens: a.prompt_tokens.max(1),
        decode_tokens: a.decode_tokens.max(1),
        prefill_chunk: a.prefill_chunk.max(1),
        verify_draft: a.verify_draft,
        verify_rounds: a.verify_rounds.max(1),
    };
    let json = a.json;
    let report = ctx.block_on(bench::run(Arc::clone(&ctx), &opts, &mut |line| {
        if !json {
            println!("{line}");
        } else {
            eprintln!("{line}");
        }
    }))?;
    if json {
        println!("{}", serde_json::to_string(&report)?);
    }
    Ok(())
}

#[derive(Args, Debug)]
pub struct SynthArgs {
    /// Where to write the GGUF file.
    out: PathBuf,
    #[arg(long, default_value_t = 32)]
    layers: usize,
    #[arg(long, default_value = "q4_0", value_parser = quant)]
    quant: SyntheticQuant,
}

/// Writes a 7B-shaped model with random weights, one tensor at a time.
pub fn synth(a: &SynthArgs) -> Res {
    let model = SyntheticModel::codellama_7b(a.layers.max(1), a.quant);
    let start = Instant::now();
    let bytes = model
        .write(&a.out)
        .map_err(|e| format!("cannot write {}: {e}", a.out.display()))?;
    eprintln!(
        "wrote {} ({:.2} GB, {} layers, {}) in {:.1} s",
        a.out.display(),
        bytes as f64 / 1e9,
        a.layers,
        a.quant.name(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

#[derive(Args, Debug)]
pub struct LoadArgs {
    /// The GGUF model file.
    model: PathBuf,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// Streams a model into GPU buffers and reports time and peak memory.
pub fn load(a: &LoadArgs) -> Res {
    let ctx = GpuContext::new(&GpuOptions::default())?;
    let heap_before = alloc::current();
    alloc::reset_peak();
    let rss_before = vm_kib("VmRSS");
    let start = Instant::now();
    let mut largest = 0u64;
    let mut last = 0u64;
    let weights = GpuWeights::load(&ctx, &a.model, |p| {
        largest = largest.max(p.bytes_done - last);
        last = p.bytes_done;
    })?;
    let secs = start.elapsed().as_secs_f64();
    let peak_heap = alloc::peak().saturating_sub(heap_before);
    let report = serde_json::json!({
        "adapter": ctx.adapter_summary(),
        "model": a.model.display().to_string(),
        "file_bytes": std::fs::metadata(&a.model)?.len(),
        "gpu_bytes": weights.gpu_bytes,
        "seconds": secs,
        "largest_tensor_bytes": largest,
        "peak_heap_bytes": peak_heap,
        "rss_before_kib": rss_before,
        "peak_rss_kib": vm_kib("VmHWM"),
    });
    if a.json {
        println!("{report}");
    } else {
        println!(
            "loaded {} ({:.2} GB on the GPU) in {secs:.1} s ({:.2} GB/s)\n\
             peak host heap while loading: {:.1} MB (largest tensor {:.1} MB)\n\
             process peak RSS: {:.1} MB (includes device memory on CPU adapters such as lavapipe)",
            a.model.display(),
            weights.gpu_bytes as f64 / 1e9,
            weights.gpu_bytes as f64 / 1e9 / secs,
            peak_heap as f64 / 1e6,
            largest as f64 / 1e6,
            vm_kib("VmHWM").unwrap_or(0) as f64 / 1024.0,
        );
    }
    Ok(())
}

/// A `Vm*` line of /proc/self/status, in KiB (Linux).
fn vm_kib(key: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines()
        .find(|l| l.starts_with(key))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}
