//! The benchmark behind `codellama bench`: the adapter's streaming bandwidth
//! (a WGSL copy kernel and a read kernel), then prefill and decode speed of a
//! synthetic 7B-shaped model, and how close decode comes to the bandwidth
//! ceiling (a decode step reads every weight once).

use std::sync::Arc;
use std::time::Instant;

use super::decoder::{DecoderOptions, GpuDecoder};
use super::kernels::Bound;
use super::profile::{KernelClass, Profiler};
use super::weights::GpuWeights;
use super::{GpuContext, GpuError, KernelKey};
use crate::error::Error;
use crate::model::{SyntheticModel, SyntheticQuant};
use crate::sampler::SamplerConfig;

/// Decode steps profiled by timestamps after the timed ones.
const PROFILED_STEPS: usize = 4;

/// What to measure.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    pub layers: usize,
    pub quant: SyntheticQuant,
    pub prompt_tokens: usize,
    pub decode_tokens: usize,
    pub prefill_chunk: usize,
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions {
            layers: 32,
            quant: SyntheticQuant::Q4_0,
            prompt_tokens: 512,
            decode_tokens: 128,
            prefill_chunk: 128,
        }
    }
}

/// The figures, as `codellama bench --json` prints them.
#[derive(Clone, Debug, serde::Serialize)]
pub struct BenchReport {
    pub adapter: String,
    pub layers: usize,
    pub quant: String,
    /// Copy kernel: bytes read + written per second, GB/s (1e9).
    pub copy_gbps: f64,
    /// Read kernel: bytes read per second, GB/s.
    pub read_gbps: f64,
    pub load_seconds: f64,
    pub weights_bytes: u64,
    pub kv_bytes_per_token: u64,
    pub prompt_tokens: usize,
    pub prefill_tok_s: f64,
    pub decode_tokens: usize,
    pub decode_tok_s: f64,
    /// Weight bytes one decode step reads.
    pub decode_bytes_per_token: u64,
    /// decode_bytes_per_token * decode_tok_s, GB/s.
    pub decode_gbps: f64,
    /// decode_gbps / copy_gbps.
    pub decode_efficiency: f64,
    /// decode_gbps / read_gbps.
    pub decode_read_efficiency: f64,
    /// Dispatches and compute passes of one decode step.
    pub dispatches_per_step: usize,
    pub compute_passes_per_step: usize,
    /// Host time to record one decode step (the encoder), ms.
    pub encode_ms_per_step: f64,
    /// GPU time per kernel class of one decode step, from timestamp queries
    /// (empty where the adapter has none inside passes), largest first.
    pub kernels: Vec<KernelTime>,
    /// GPU time of the whole decode step by timestamps (sum of `kernels`), ms.
    pub gpu_ms_per_step: Option<f64>,
}

/// One kernel class's share of a decode step.
#[derive(Clone, Debug, serde::Serialize)]
pub struct KernelTime {
    pub class: String,
    /// GPU milliseconds per decode step (mean over the profiled steps).
    pub ms: f64,
    /// Weight or KV-cache bytes the class reads per step.
    pub bytes: u64,
    /// bytes / time, GB/s (0 where bytes are not the measure).
    pub gbps: f64,
    /// gbps / the copy kernel's GB/s.
    pub efficiency: f64,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct BandwidthParams {
    n: u32,
    _pad: [u32; 3],
}

/// Streaming bandwidth in GB/s: `(copy, read)`, over buffers of up to 256 MiB
/// (capped by the binding limit), best of a few runs.
pub async fn measure_bandwidth(ctx: &GpuContext) -> Result<(f64, f64), GpuError> {
    let limit = ctx
        .limits()
        .max_storage_buffer_binding_size
        .min(ctx.limits().max_buffer_size);
    let bytes = (256u64 << 20).min(limit) / 16 * 16;
    let n = (bytes / 16) as usize;
    let src = ctx.storage_zeroed("bandwidth src", bytes).await?;
    let dst = ctx.storage_zeroed("bandwidth dst", bytes).await?;
    let params = ctx.uniform(
        "bandwidth params",
        &BandwidthParams {
            n: n as u32,
            _pad: [0; 3],
        },
    );
    let copy = Bound::new(
        ctx,
        KernelKey::Bandwidth { copy: true },
        &[(&params, None), (&src, None), (&dst, None)],
    )
    .await?;
    let read = Bound::new(
        ctx,
        KernelKey::Bandwidth { copy: false },
        &[(&params, None), (&src, None), (&dst, None)],
    )
    .await?;
    let max_x = ctx.limits().max_compute_workgroups_per_dimension as usize;
    let groups = n.div_ceil(256);
    let copy_grid = (groups.min(max_x) as u32, groups.div_ceil(max_x) as u32);
    // Enough invocations to fill any GPU, few enough that each loops a while.
    let read_grid = ((groups / 16).clamp(1, max_x) as u32, 1);
    let reps = 8;
    let time = |bound: &Bound, grid: (u32, u32)| {
        let mut enc = ctx.encoder("bandwidth");
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
            for _ in 0..reps {
                bound.dispatch(&mut pass, grid);
            }
        }
        enc
    };
    let mut best = (0.0f64, 0.0f64);
    for round in 0..4 {
        for (which, bound, grid, moved) in [
            (0, &copy, copy_grid, 2 * bytes),
            (1, &read, read_grid, bytes),
        ] {
            let enc = time(bound, grid);
            let start = Instant::now();
            ctx.submit(enc).await?;
            ctx.read_back_bytes(&dst, 0, 4).await?;
            let secs = start.elapsed().as_secs_f64();
            let gbps = (reps as u64 * moved) as f64 / secs / 1e9;
            // The first round warms up (pipeline creation, page faults).
            if round > 0 {
                if which == 0 {
                    best.0 = best.0.max(gbps);
                } else {
                    best.1 = best.1.max(gbps);
                }
            }
        }
    }
    Ok(best)
}

/// Runs the whole benchmark; `log` gets a line per phase.
pub async fn run(
    ctx: Arc<GpuContext>,
    opts: &BenchOptions,
    log: &mut dyn FnMut(&str),
) -> Result<BenchReport, Error> {
    let (copy_gbps, read_gbps) = measure_bandwidth(&ctx).await?;
    log(&format!(
        "bandwidth: copy {copy_gbps:.1} GB/s, read {read_gbps:.1} GB/s"
    ));
    let model = SyntheticModel::codellama_7b(opts.layers, opts.quant);
    let start = Instant::now();
    let weights = GpuWeights::from_synthetic(&ctx, &model).await?;
    let load_seconds = start.elapsed().as_secs_f64();
    let weights_bytes = weights.gpu_bytes;
    let decode_bytes_per_token = weights.decode_bytes_per_token();
    log(&format!(
        "model: 7B-shaped, {} layers, {}, {:.2} GB on the GPU, uploaded in {load_seconds:.1} s",
        opts.layers,
        opts.quant.name(),
        weights_bytes as f64 / 1e9
    ));
    // Room for the profiled steps after the timed ones.
    let max_len = opts.prompt_tokens + opts.decode_tokens + PROFILED_STEPS + 1;
    let mut dec = GpuDecoder::new(
        Arc::clone(&ctx),
        weights,
        DecoderOptions {
            max_len,
            prefill_chunk: opts.prefill_chunk,
            ..Default::default()
        },
    )
    .await?;
    let vocab = dec.config().vocab_size as u64;
    // A reproducible prompt of ordinary token ids.
    let prompt: Vec<u32> = (0..opts.prompt_tokens as u64)
        .map(|i| (3 + (i * 7919) % (vocab - 3)) as u32)
        .collect();
    let greedy = SamplerConfig::greedy();

    // Warm-up: pipelines, first chunk allocations.
    dec.feed(&prompt[..prompt.len().min(opts.prefill_chunk)])
        .await?;
    dec.sample(&greedy, &prompt, 0).await?;
    dec.truncate(0);

    let start = Instant::now();
    dec.feed(&prompt).await?;
    let mut token = dec.sample(&greedy, &prompt, 0).await?;
    let prefill_secs = start.elapsed().as_secs_f64();
    let prefill_tok_s = opts.prompt_tokens as f64 / prefill_secs;
    log(&format!(
        "prefill: {} tokens in {prefill_secs:.2} s: {prefill_tok_s:.1} tok/s",
        opts.prompt_tokens
    ));

    let mut recent = prompt.clone();
    let start = Instant::now();
    for i in 0..opts.decode_tokens {
        recent.push(token);
        token = dec
            .step_and_sample(token, &greedy, &recent, i as u32 + 1)
            .await?;
    }
    let decode_secs = start.elapsed().as_secs_f64();
    let decode_tok_s = opts.decode_tokens as f64 / decode_secs;
    let stats = dec.last_encode_stats();

    // Per-kernel GPU time of a few more decode steps (not timed above).
    let mut kernels: Vec<KernelTime> = Vec::new();
    let mut gpu_ms_per_step = None;
    if let Some(mut profiler) = Profiler::new(&ctx, 4096) {
        let steps = PROFILED_STEPS;
        let mut total: Vec<(KernelClass, f64, u64)> = Vec::new();
        for i in 0..steps {
            if dec.len() + 1 > dec.max_len() {
                break;
            }
            recent.push(token);
            let (t, intervals) = dec
                .step_profiled(
                    token,
                    &greedy,
                    &recent,
                    (opts.decode_tokens + i) as u32 + 1,
                    &mut profiler,
                )
                .await?;
            token = t;
            for iv in intervals {
                match total.iter_mut().find(|e| e.0 == iv.class) {
                    Some(e) => {
                        e.1 += iv.seconds;
                        e.2 += iv.bytes;
                    }
                    None => total.push((iv.class, iv.seconds, iv.bytes)),
                }
            }
        }
        total.sort_by(|a, b| b.1.total_cmp(&a.1));
        let n = steps as f64;
        kernels = total
            .iter()
            .map(|&(class, secs, bytes)| {
                let (ms, bytes) = (secs / n * 1e3, bytes / steps as u64);
                let gbps = if secs > 0.0 {
                    bytes as f64 / (secs / n) / 1e9
                } else {
                    0.0
                };
                KernelTime {
                    class: class.name(),
                    ms,
                    bytes,
                    gbps,
                    efficiency: gbps / copy_gbps,
                }
            })
            .collect();
        gpu_ms_per_step = Some(kernels.iter().map(|k| k.ms).sum());
        for k in &kernels {
            log(&format!(
                "  {:<16} {:8.3} ms/step  {:>9.1} MB  {:7.2} GB/s  {:5.1}% of copy",
                k.class,
                k.ms,
                k.bytes as f64 / 1e6,
                k.gbps,
                100.0 * k.efficiency
            ));
        }
    }
    let decode_gbps = decode_bytes_per_token as f64 * decode_tok_s / 1e9;
    log(&format!(
        "decode: {} tokens in {decode_secs:.2} s: {decode_tok_s:.2} tok/s, {:.1} MB/token, \
         {decode_gbps:.2} GB/s = {:.0}% of copy, {:.0}% of read bandwidth",
        opts.decode_tokens,
        decode_bytes_per_token as f64 / 1e6,
        100.0 * decode_gbps / copy_gbps,
        100.0 * decode_gbps / read_gbps
    ));
    Ok(BenchReport {
        adapter: ctx.adapter_summary(),
        layers: opts.layers,
        quant: opts.quant.name().to_string(),
        copy_gbps,
        read_gbps,
        load_seconds,
        weights_bytes,
        kv_bytes_per_token: dec.kv_bytes_per_token(),
        prompt_tokens: opts.prompt_tokens,
        prefill_tok_s,
        decode_tokens: opts.decode_tokens,
        decode_tok_s,
        decode_bytes_per_token,
        decode_gbps,
        decode_efficiency: decode_gbps / copy_gbps,
        decode_read_efficiency: decode_gbps / read_gbps,
        dispatches_per_step: stats.dispatches,
        compute_passes_per_step: stats.compute_passes,
        encode_ms_per_step: stats.encode_seconds * 1e3,
        kernels,
        gpu_ms_per_step,
    })
}
