//! The benchmark behind `codellama bench` and the browser engine's `bench()`:
//! the adapter's streaming bandwidth (a WGSL copy kernel and a read kernel)
//! and f32 multiply-add peak (a WGSL kernel of independent FMA chains), then
//! prefill and decode speed of a synthetic 7B-shaped model (or a smaller one
//! for quick runs on software adapters), how close decode
//! comes to the bandwidth ceiling (a decode step reads every weight once) and
//! prefill to the arithmetic one (a batch reuses every weight it reads);
//! with [`BenchOptions::verify_draft`], the cost of verifying that many
//! drafted tokens against one decode step ([`verify`]).
//!
//! Portable: timings come from [`crate::clock::now`] and every wait is an
//! `await` on the GPU (no blocking), so the same code runs natively and in
//! the browser.

pub mod verify;

use std::sync::Arc;

use super::decoder::{DecoderOptions, GpuDecoder};
use super::kernels::Bound;
use super::keys::{MatvecShape, BANDWIDTH_WG};
use super::profile::{add_by_class, Interval, Profiler};
use super::qmatmul::BatchKernel;
use super::weights::GpuWeights;
use super::{GpuContext, GpuError, KernelKey};
use crate::clock;
use crate::error::Error;
use crate::model::{Config, SyntheticModel, SyntheticQuant};
use crate::sampler::SamplerConfig;
pub use verify::VerifyCost;

/// Decode steps profiled by timestamps after the timed ones.
const PROFILED_STEPS: usize = 4;

/// The synthetic model's shape.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BenchShape {
    /// Code Llama 7B's (dim 4096, 32 heads, FFN 11008, vocab 32016).
    #[default]
    Codellama7b,
    /// dim 512, 4 heads of 128, FFN 1536, vocab 32016: the 7B's head size
    /// and vocabulary at an eighth of its width (1/60 of its weights per
    /// layer), for quick runs on slow software adapters (the browser tests
    /// on SwiftShader).
    Small,
}

impl BenchShape {
    pub fn parse(s: &str) -> Option<BenchShape> {
        match s.to_ascii_lowercase().as_str() {
            "7b" => Some(BenchShape::Codellama7b),
            "small" => Some(BenchShape::Small),
            _ => None,
        }
    }

    /// `"7b"` or `"small"` (what [`BenchShape::parse`] reads).
    pub fn name(self) -> &'static str {
        match self {
            BenchShape::Codellama7b => "7b",
            BenchShape::Small => "small",
        }
    }

    /// A synthetic model of this shape with `layers` blocks.
    pub fn model(self, layers: usize, quant: SyntheticQuant) -> SyntheticModel {
        let seven_b = SyntheticModel::codellama_7b(layers, quant);
        match self {
            BenchShape::Codellama7b => seven_b,
            BenchShape::Small => SyntheticModel::new(
                Config {
                    dim: 512,
                    n_heads: 4,
                    n_kv_heads: 4,
                    ffn_dim: 1536,
                    ..seven_b.config
                },
                quant,
                seven_b.seed,
            ),
        }
    }
}

/// What to measure.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    pub shape: BenchShape,
    pub layers: usize,
    pub quant: SyntheticQuant,
    pub prompt_tokens: usize,
    pub decode_tokens: usize,
    pub prefill_chunk: usize,
    /// Drafted tokens whose verification is timed against a decode step
    /// (0: not measured).
    pub verify_draft: usize,
    /// Rounds of that measurement.
    pub verify_rounds: usize,
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions {
            shape: BenchShape::Codellama7b,
            layers: 32,
            quant: SyntheticQuant::Q4_0,
            prompt_tokens: 512,
            decode_tokens: 128,
            prefill_chunk: 128,
            verify_draft: 0,
            verify_rounds: 10,
        }
    }
}

/// The figures, as `codellama bench --json` prints them.
#[derive(Clone, Debug, serde::Serialize)]
pub struct BenchReport {
    pub adapter: String,
    /// The synthetic model's shape: `"7b"` or `"small"`.
    pub shape: String,
    pub layers: usize,
    pub quant: String,
    /// Copy kernel: bytes read + written per second, GB/s (1e9).
    pub copy_gbps: f64,
    /// Read kernel: bytes read per second, GB/s.
    pub read_gbps: f64,
    /// FMA kernel: f32 multiply-adds per second x 2, GFLOP/s (1e9).
    pub fma_gflops: f64,
    /// Whether the device has subgroup operations (`Features::SUBGROUP`).
    pub subgroups: bool,
    /// Whether the device has `shader-f16`.
    pub shader_f16: bool,
    /// The decode matvec's workgroup shape: lanes x rows, and whether its
    /// lanes are summed by `subgroupAdd` (`"8x16 subgroup"`) or through
    /// workgroup memory (`"32x4 workgroup"`).
    pub matvec_kernel: String,
    /// How a prefill batch is multiplied: `"tiled f32"`, `"tiled f16"`
    /// (f16 workgroup tiles) or `"lanes 8x16x4 subgroup"` (matvec, tokens
    /// per workgroup).
    pub prefill_kernel: String,
    pub load_seconds: f64,
    /// The warm-up before anything is timed: one prefill batch, one sample
    /// and one decode step, each pipeline's first dispatch among them, so
    /// that no first-use cost falls inside the timed phases.
    pub warmup_seconds: f64,
    pub weights_bytes: u64,
    pub kv_bytes_per_token: u64,
    pub prompt_tokens: usize,
    /// Tokens per prefill batch (as the decoder clamped it).
    pub prefill_chunk: usize,
    pub prefill_tok_s: f64,
    /// FLOPs of the measured prefill ([`prefill_flops`]).
    pub prefill_flops: u64,
    /// prefill_flops / prefill time, GFLOP/s.
    pub prefill_gflops: f64,
    /// prefill_gflops / fma_gflops.
    pub prefill_flops_efficiency: f64,
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
    /// Verification of `verify_draft` drafted tokens vs one decode step.
    pub verify: Option<VerifyCost>,
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

/// `Params` of `shaders/bandwidth.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct BandwidthParams {
    /// vec4<u32> elements (copy, read).
    n: u32,
    /// FMA rounds per invocation (fma_peak).
    iters: u32,
    /// fma_peak's multiplier and addend.
    mul: f32,
    add: f32,
}

/// One submission of `reps` dispatches of `bound`, timed to its completion
/// (a 4-byte read-back of `dst`), in seconds.
async fn time_dispatches(
    ctx: &GpuContext,
    bound: &Bound,
    grid: (u32, u32),
    reps: u32,
    dst: &wgpu::Buffer,
) -> Result<f64, GpuError> {
    let mut enc = ctx.encoder("bench");
    {
        let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
        for _ in 0..reps {
            bound.dispatch(&mut pass, grid);
        }
    }
    let start = clock::now();
    ctx.submit(enc).await?;
    ctx.read_back_bytes(dst, 0, 4).await?;
    Ok(clock::now() - start)
}

/// Seconds one timed submission of the bandwidth kernels aims at.
const BANDWIDTH_SECONDS: f64 = 0.25;

/// Streaming bandwidth in GB/s: `(copy, read)`, over buffers of up to 256 MiB
/// (capped by the binding limit), best of three submissions of as many
/// dispatches as take about [`BANDWIDTH_SECONDS`].
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
            iters: 0,
            mul: 0.0,
            add: 0.0,
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
    let groups = n.div_ceil(BANDWIDTH_WG as usize);
    let copy_grid = (groups.min(max_x) as u32, groups.div_ceil(max_x) as u32);
    // Enough invocations to fill any GPU, few enough that each loops a while.
    let read_grid = ((groups / 16).clamp(1, max_x) as u32, 1);
    let mut best = [0.0f64; 2];
    for (slot, bound, grid, moved) in [
        (0, &copy, copy_grid, 2 * bytes),
        (1, &read, read_grid, bytes),
    ] {
        // A warm-up submission of one dispatch (pipeline creation, page
        // faults) sizes the timed ones: enough dispatches that each takes
        // about BANDWIDTH_SECONDS (submission overhead negligible on fast
        // GPUs, seconds rather than minutes on slow software adapters).
        let once = time_dispatches(ctx, bound, grid, 1, &dst).await?;
        let reps = (BANDWIDTH_SECONDS / once.max(1e-6))
            .ceil()
            .clamp(1.0, 256.0) as u32;
        for _ in 0..3 {
            let secs = time_dispatches(ctx, bound, grid, reps, &dst).await?;
            best[slot] = best[slot].max(f64::from(reps) * moved as f64 / secs / 1e9);
        }
    }
    // 512 MiB freed before the model is uploaded.
    src.destroy();
    dst.destroy();
    Ok((best[0], best[1]))
}

/// Workgroups of the FMA kernel (256 invocations each): 512 Ki invocations,
/// more than any GPU keeps resident.
const FMA_GROUPS: u32 = 2048;
/// Flops per invocation per round: 32 vec4 FMAs.
const FMA_FLOPS_PER_ROUND: u64 = 32 * 4 * 2;
/// The FMA kernel is timed once a submission takes at least this long.
const FMA_MIN_SECONDS: f64 = 0.1;

/// The f32 multiply-add peak in GFLOP/s (2 flops per FMA): `fma_peak` over
/// [`FMA_GROUPS`] workgroups, its rounds per invocation grown until one
/// submission takes [`FMA_MIN_SECONDS`], then the best of three.
pub async fn measure_fma(ctx: &GpuContext) -> Result<f64, GpuError> {
    let invocations = u64::from(FMA_GROUPS) * u64::from(BANDWIDTH_WG);
    let src = ctx.storage_zeroed("fma src", 16).await?;
    let dst = ctx.storage_zeroed("fma dst", invocations * 16).await?;
    let params_of = |iters: u32| BandwidthParams {
        n: 0,
        iters,
        mul: 0.999,
        add: 0.001,
    };
    let mut iters: u32 = 16;
    let params = ctx.uniform("fma params", &params_of(iters));
    let bound = Bound::new(
        ctx,
        KernelKey::FmaPeak,
        &[(&params, None), (&src, None), (&dst, None)],
    )
    .await?;
    // WebGPU guarantees 65535 workgroups per dimension.
    let grid = (FMA_GROUPS, 1);
    let run = |iters: u32| {
        ctx.queue()
            .write_buffer(&params, 0, bytemuck::bytes_of(&params_of(iters)));
        time_dispatches(ctx, &bound, grid, 1, &dst)
    };
    // Calibration (its first run also warms up).
    let cap = 1u32 << 22;
    loop {
        let secs = run(iters).await?;
        if secs >= FMA_MIN_SECONDS || iters >= cap {
            break;
        }
        let grow = (1.5 * FMA_MIN_SECONDS / secs.max(1e-6)).clamp(2.0, 64.0);
        iters = ((f64::from(iters) * grow) as u32).min(cap);
    }
    let mut best = 0.0f64;
    for _ in 0..3 {
        let secs = run(iters).await?;
        let flops = invocations * u64::from(iters) * FMA_FLOPS_PER_ROUND;
        best = best.max(flops as f64 / secs / 1e9);
    }
    // Freed now rather than when the benchmark's buffers are (the browser
    // engine destroys them all at the end).
    dst.destroy();
    Ok(best)
}

/// FLOPs of prefilling `prompt` tokens from position 0 in batches of `chunk`
/// tokens through a model shaped like `c`: 2 x the weight elements of every
/// projection of every layer (Q, K, V, O, gate, up, down) per token; the
/// output projection (2 x vocab x dim) for the last token of each batch;
/// attention's QK^T and AV, 2 x 2 x n_heads x head_dim per position
/// attended, a token at position p attending p + 1 positions, in every
/// layer. Norms, RoPE, softmax and SwiGLU are left out (a few flops per
/// value, not per weight).
pub fn prefill_flops(c: &Config, prompt: usize, chunk: usize) -> u64 {
    let (d, kv, f, v) = (
        c.dim as u64,
        c.kv_dim() as u64,
        c.ffn_dim as u64,
        c.vocab_size as u64,
    );
    let (layers, p) = (c.n_layers as u64, prompt as u64);
    let weights_per_layer = 2 * d * d + 2 * d * kv + 3 * d * f;
    let projections = 2 * weights_per_layer * layers * p;
    let output = 2 * v * d * prompt.div_ceil(chunk.max(1)) as u64;
    let attended = p * (p + 1) / 2;
    let attention = 2 * 2 * (c.n_heads * c.head_dim()) as u64 * attended * layers;
    projections + output + attention
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
    let fma_gflops = measure_fma(&ctx).await?;
    let features = ctx.features();
    log(&format!(
        "f32 FMA peak: {fma_gflops:.1} GFLOP/s; subgroups {}, shader-f16 {}",
        yes_no(features.subgroups),
        yes_no(features.f16)
    ));
    log(&format!(
        "kernels: decode matvec {}, prefill {:?}",
        matvec_kernel_name(ctx.matvec_shape()),
        ctx.batch_kernel()
    ));
    let model = opts.shape.model(opts.layers, opts.quant);
    let c = &model.config;
    let shape = format!(
        "{} (dim {}, {} heads, FFN {}, vocab {})",
        match opts.shape {
            BenchShape::Codellama7b => "7B-shaped",
            BenchShape::Small => "small",
        },
        c.dim,
        c.n_heads,
        c.ffn_dim,
        c.vocab_size
    );
    let start = clock::now();
    let weights = GpuWeights::from_synthetic(&ctx, &model).await?;
    let load_seconds = clock::now() - start;
    let weights_bytes = weights.gpu_bytes;
    let decode_bytes_per_token = weights.decode_bytes_per_token();
    log(&format!(
        "model: {shape}, {} layers, {}, {:.2} GB on the GPU, uploaded in {load_seconds:.1} s",
        opts.layers,
        opts.quant.name(),
        weights_bytes as f64 / 1e9
    ));
    // Room for the profiled steps after the timed ones.
    let max_len = opts.prompt_tokens + opts.decode_tokens + PROFILED_STEPS + opts.verify_draft + 2;
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

    // Warm-up: every pipeline's first dispatch (prefill, sample, decode),
    // first chunk allocations.
    let start = clock::now();
    let warm = &prompt[..prompt.len().min(opts.prefill_chunk)];
    dec.feed(warm).await?;
    let first = dec.sample(&greedy, warm, 0).await?;
    dec.launch(Some(first), &greedy, warm, 1).await?;
    dec.finish().await?;
    dec.truncate(0);
    let warmup_seconds = clock::now() - start;
    log(&format!(
        "warm-up (first prefill batch, sample and decode step): {warmup_seconds:.2} s"
    ));

    let start = clock::now();
    dec.feed(&prompt).await?;
    let mut token = dec.sample(&greedy, &prompt, 0).await?;
    let prefill_secs = clock::now() - start;
    let prefill_tok_s = opts.prompt_tokens as f64 / prefill_secs;
    let prefill_chunk = dec.options().prefill_chunk;
    let prefill_flops = prefill_flops(dec.config(), opts.prompt_tokens, prefill_chunk);
    let prefill_gflops = prefill_flops as f64 / prefill_secs / 1e9;
    log(&format!(
        "prefill: {} tokens in {prefill_secs:.2} s: {prefill_tok_s:.1} tok/s, \
         {:.1} GFLOP: {prefill_gflops:.2} GFLOP/s = {:.1}% of the FMA peak",
        opts.prompt_tokens,
        prefill_flops as f64 / 1e9,
        100.0 * prefill_gflops / fma_gflops
    ));

    // Decode as generation runs it: each step launched before the previous
    // token is read (the sampled id stays on the GPU), one step ahead.
    let mut recent = prompt.clone();
    let start = clock::now();
    recent.push(token);
    dec.launch(Some(token), &greedy, &recent, 1).await?;
    for i in 1..=opts.decode_tokens {
        if i < opts.decode_tokens {
            dec.launch(None, &greedy, &recent, i as u32 + 1).await?;
        }
        token = dec.finish().await?;
        recent.push(token);
    }
    let decode_secs = clock::now() - start;
    // The last token sampled was never fed: the profiled steps feed it.
    recent.pop();
    let decode_tok_s = opts.decode_tokens as f64 / decode_secs;
    let stats = dec.last_encode_stats();

    // Per-kernel GPU time of a few more decode steps (not timed above).
    let mut kernels: Vec<KernelTime> = Vec::new();
    let mut gpu_ms_per_step = None;
    if let Some(mut profiler) = Profiler::new(&ctx, 4096) {
        let steps = PROFILED_STEPS;
        let mut total: Vec<Interval> = Vec::new();
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
            add_by_class(&mut total, intervals);
        }
        total.sort_by(|a, b| b.seconds.total_cmp(&a.seconds));
        let n = steps as f64;
        kernels = total
            .iter()
            .map(|iv| {
                let (ms, bytes) = (iv.seconds / n * 1e3, iv.bytes / steps as u64);
                let gbps = if iv.seconds > 0.0 {
                    bytes as f64 / (iv.seconds / n) / 1e9
                } else {
                    0.0
                };
                KernelTime {
                    class: iv.class.name(),
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
    let verify = match opts.verify_draft {
        0 => None,
        k => {
            recent.push(token);
            let v = verify::measure(&mut dec, &recent, token, k, opts.verify_rounds).await?;
            log(&format!(
                "verification of {} drafted tokens: {:.2} ms vs {:.2} ms for one decode step \
                 (medians of {} rounds): {:.2}x",
                v.draft, v.verify_ms, v.decode_ms, v.rounds, v.ratio
            ));
            for k in &v.kernels {
                log(&format!(
                    "  {:<16} {:8.3} ms verifying vs {:8.3} ms decoding (GPU time): {:.2}x",
                    k.class,
                    k.verify_ms,
                    k.decode_ms,
                    k.verify_ms / k.decode_ms.max(1e-9)
                ));
            }
            Some(v)
        }
    };
    Ok(BenchReport {
        adapter: ctx.adapter_summary(),
        shape: opts.shape.name().to_string(),
        layers: opts.layers,
        quant: opts.quant.name().to_string(),
        copy_gbps,
        read_gbps,
        fma_gflops,
        subgroups: features.subgroups,
        shader_f16: features.f16,
        matvec_kernel: matvec_kernel_name(ctx.matvec_shape()),
        prefill_kernel: match ctx.batch_kernel() {
            BatchKernel::Tiled { f16 } => format!("tiled {}", if f16 { "f16" } else { "f32" }),
            BatchKernel::Lanes(s) => format!(
                "lanes {}x{}x{} {}",
                s.lanes,
                s.rows,
                s.tokens,
                reduce_name(s)
            ),
        },
        load_seconds,
        warmup_seconds,
        weights_bytes,
        kv_bytes_per_token: dec.kv_bytes_per_token(),
        prompt_tokens: opts.prompt_tokens,
        prefill_chunk,
        prefill_tok_s,
        prefill_flops,
        prefill_gflops,
        prefill_flops_efficiency: prefill_gflops / fma_gflops,
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
        verify,
    })
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

/// How a matvec shape sums its lanes.
fn reduce_name(s: MatvecShape) -> &'static str {
    if s.subgroup {
        "subgroup"
    } else {
        "workgroup"
    }
}

/// `"lanes x rows reduction"` of the decode matvec.
fn matvec_kernel_name(s: MatvecShape) -> String {
    format!("{}x{} {}", s.lanes, s.rows, reduce_name(s))
}
