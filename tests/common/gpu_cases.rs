//! GPU checks written once for every platform (see `tests/gpu_portable.rs`):
//! each is an `async fn(&GpuContext) -> Result<(), String>` that never blocks,
//! never reads the clock or the environment directly, and reports through
//! `log!` / `ensure!`. Ported from `tests/gpu_kernels.rs` (RMSNorm, RoPE,
//! SwiGLU/add, typed errors) and `tests/gpu_sample.rs` (GPU sampler vs CPU
//! sampler), with the same shapes, inputs and tolerances.

use std::sync::Arc;

use codellama_webgpu::cpu::{self, CpuDecoder, CpuWeights};
use codellama_webgpu::gguf::{self, Event, GgufReader, ReaderOptions, TensorInfo};
use codellama_webgpu::gpu::attention::{AttentionConfig, AttentionIo, KvAttention};
use codellama_webgpu::gpu::decoder::{DecoderOptions, GpuDecoder};
use codellama_webgpu::gpu::kernels::{Elementwise, QkvLayout, RmsNorm, RopeTable};
use codellama_webgpu::gpu::weights::{GpuWeights, WeightLoader};
use codellama_webgpu::gpu::{
    ElementwiseOp, GpuContext, GpuError, GpuSampler, KvFormat, StepParams, StepUniform,
};
use codellama_webgpu::sampler::{Sampler, SamplerConfig};

use super::logit_stats::{argmax, cosine, top2_gap};
use super::platform::{adapter_details, now_ms};
use super::rng::Rng;

type CaseResult = Result<(), String>;

/// `e` as the case's error, prefixed with what was being done.
fn at<T>(what: &str, r: Result<T, GpuError>) -> Result<T, String> {
    r.map_err(|e| format!("{what}: {e}"))
}

/// Deterministic values in `[-scale, scale)` (those of `tests/gpu_kernels.rs`).
fn values(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
        })
        .collect()
}

/// Max of `|got - want| / (1 + |want|)` and its index.
fn max_error(got: &[f32], want: &[f32]) -> Result<(f32, usize), String> {
    ensure!(
        got.len() == want.len(),
        "{} values, want {}",
        got.len(),
        want.len()
    );
    let mut worst = (0.0f32, 0usize);
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        ensure!(g.is_finite(), "value {i} is {g}, want {w}");
        let e = (g - w).abs() / (1.0 + w.abs());
        if e > worst.0 {
            worst = (e, i);
        }
    }
    Ok(worst)
}

/// Runs `record` in one compute pass and submits it, after writing `step`.
async fn run_pass(
    ctx: &GpuContext,
    step: &StepUniform,
    params: StepParams,
    record: impl FnOnce(&mut wgpu::ComputePass<'_>) -> Result<usize, GpuError>,
) -> Result<(), GpuError> {
    step.write(ctx, &params);
    let mut enc = ctx.encoder("test");
    {
        let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
        record(&mut pass)?;
    }
    ctx.submit(enc).await?;
    Ok(())
}

/// The adapter is the platform's (WebGPU in the browser) and a buffer makes
/// the round trip.
pub async fn adapter_is_usable(ctx: &GpuContext) -> CaseResult {
    let backend = ctx.adapter_info().backend;
    if cfg!(target_arch = "wasm32") {
        ensure!(
            backend == wgpu::Backend::BrowserWebGpu,
            "backend {backend:?} in the browser, want BrowserWebGpu"
        );
    }
    log!("adapter {}", adapter_details(ctx).await);
    let limits = ctx.limits();
    log!(
        "limits: max_buffer_size {} max_storage_buffer_binding_size {} \
         max_compute_workgroup_storage_size {} max_compute_invocations_per_workgroup {} \
         max_storage_buffers_per_shader_stage {} max_compute_workgroups_per_dimension {}",
        limits.max_buffer_size,
        limits.max_storage_buffer_binding_size,
        limits.max_compute_workgroup_storage_size,
        limits.max_compute_invocations_per_workgroup,
        limits.max_storage_buffers_per_shader_stage,
        limits.max_compute_workgroups_per_dimension
    );
    let data: Vec<u32> = (0..1000u32)
        .map(|i| i.wrapping_mul(2_654_435_761))
        .collect();
    let b = at("upload", ctx.storage_u32("round trip", &data).await)?;
    let back = at("read back", ctx.read_back_u32(&b, data.len()).await)?;
    ensure!(back == data, "read back differs from what was uploaded");
    Ok(())
}

/// RMSNorm as the decoder runs it: `norm.wgsl` writes `x * w` and partial
/// sums of `x²` per group of columns (many workgroups per row), the consumer
/// finishes with `1 / sqrt(sum / dim + eps)`; here the test finishes on the
/// host exactly as `qmatmul.wgsl`'s `norm_scale` does (sums in group order)
/// and compares with the CPU reference, which normalizes first: the same
/// operations in another order, so f32 rounding apart.
pub async fn rmsnorm_matches_cpu(ctx: &GpuContext) -> CaseResult {
    let step = StepUniform::new(ctx);
    for (rows, bound_rows, dim, seed, last) in [
        (1, 1, 257, 1, false),
        (3, 3, 1000, 2, false),
        (2, 7, 4096, 3, false),
        (5, 5, 1, 4, false),
        (1, 4, 11008, 5, false),
        (3, 6, 4096, 6, true),
    ] {
        let x = values(bound_rows * dim, seed, 3.0);
        let w = values(dim, seed + 100, 1.5);
        let eps = 1e-5;
        let out_rows = if last { 1 } else { rows };
        let first = if last { rows - 1 } else { 0 };
        let mut want = vec![0.0; out_rows * dim];
        for (o, xr) in want
            .chunks_exact_mut(dim)
            .zip(x.chunks_exact(dim).skip(first))
        {
            cpu::rmsnorm(o, xr, &w, eps);
        }
        let groups = RmsNorm::groups(dim);
        let got = async {
            let xb = ctx.storage_f32("x", &x).await?;
            let wb = ctx.storage_f32("w", &w).await?;
            let xwb = ctx
                .storage_zeroed("xw", (bound_rows * dim * 4) as u64)
                .await?;
            let ssb = ctx
                .storage_zeroed("ss", (bound_rows * groups * 4) as u64)
                .await?;
            let norm =
                RmsNorm::new(ctx, &step, &xb, &wb, &xwb, &ssb, bound_rows, dim, last).await?;
            ensure_eq_groups(norm.sums_per_row(), groups)?;
            run_pass(ctx, &step, StepParams::batch(0, rows, 0), |p| {
                norm.encode(p, rows)
            })
            .await?;
            Ok::<_, GpuError>((
                ctx.read_back_f32(&xwb, out_rows * dim).await?,
                ctx.read_back_f32(&ssb, out_rows * groups).await?,
            ))
        }
        .await;
        let (xw, ss) = at("rmsnorm on the GPU", got)?;
        // x * w exactly, per element.
        for (i, v) in xw.iter().enumerate() {
            let (r, c) = (i / dim, i % dim);
            let e = x[(first + r) * dim + c] * w[c];
            ensure!(
                v.to_bits() == e.to_bits(),
                "rmsnorm x * w row {r} col {c}: gpu {v}, x * w = {e}"
            );
        }
        let got: Vec<f32> = xw
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let r = i / dim;
                let sum: f32 = ss[r * groups..(r + 1) * groups].iter().sum();
                v * (1.0 / (sum / dim as f32 + eps).sqrt())
            })
            .collect();
        let (err, at) = max_error(&got, &want)?;
        log!(
            "rmsnorm ({rows}, {dim}{}): max rel error {err:.3e} at row {} col {} (gpu {} cpu {})",
            if last { ", last row" } else { "" },
            at / dim,
            at % dim,
            got[at],
            want[at]
        );
        ensure!(err < 1e-5, "rmsnorm ({rows}, {dim}) error {err} at {at}");
    }
    Ok(())
}

fn ensure_eq_groups(got: usize, want: usize) -> Result<(), GpuError> {
    if got == want {
        Ok(())
    } else {
        Err(GpuError::Internal(format!(
            "{got} partial sums per row, want {want}"
        )))
    }
}

pub async fn rope_matches_cpu(ctx: &GpuContext) -> CaseResult {
    let step = StepUniform::new(ctx);
    // (first position, tokens, n_heads, n_kv_heads, head_dim, theta, table length)
    let cases = [
        (0, 3, 4, 4, 128, 1_000_000.0f32, 16),
        (5, 17, 3, 1, 64, 1_000_000.0, 600),
        (250, 9, 32, 8, 128, 10_000.0, 2048),
        (16_370, 14, 5, 5, 128, 1_000_000.0, 16_384),
        (131_060, 11, 2, 1, 128, 1_000_000.0, 131_072),
        (0, 1, 1, 1, 2, 10_000.0, 1),
    ];
    for (case, &(pos, tokens, n_heads, n_kv, head_dim, theta, max_len)) in cases.iter().enumerate()
    {
        let (qrow, krow) = (n_heads * head_dim, n_kv * head_dim);
        let q = values(tokens * qrow, 10 + case as u64, 1.0);
        let k = values(tokens * krow, 20 + case as u64, 1.0);
        let (mut want_q, mut want_k) = (q.clone(), k.clone());
        for t in 0..tokens {
            cpu::rope(&mut want_q[t * qrow..][..qrow], head_dim, pos + t, theta);
            cpu::rope(&mut want_k[t * krow..][..krow], head_dim, pos + t, theta);
        }
        // q | k | v rows as the decoder's, with 3 values between q and k
        // that RoPE must leave alone; v is zero.
        let layout = QkvLayout {
            stride: qrow + 3 + 2 * krow,
            q: 0,
            k: qrow + 3,
            v: qrow + 3 + krow,
        };
        let mut rows = vec![7.5f32; tokens * layout.stride];
        for t in 0..tokens {
            let r = &mut rows[t * layout.stride..(t + 1) * layout.stride];
            r[..qrow].copy_from_slice(&q[t * qrow..(t + 1) * qrow]);
            r[layout.k..layout.v].copy_from_slice(&k[t * krow..(t + 1) * krow]);
            r[layout.v..].fill(0.0);
        }
        // RoPE runs in the attention's kv_write_rope: one layer, a cache
        // reserved (and held) up to the batch's first position.
        let got = async {
            let table = RopeTable::new(ctx, head_dim, theta, max_len).await?;
            let qkv = ctx.storage_f32("qkv", &rows).await?;
            let out = ctx
                .storage_zeroed("att", (tokens * qrow * 4) as u64)
                .await?;
            let cfg = AttentionConfig {
                n_layers: 1,
                n_heads,
                n_kv_heads: n_kv,
                head_dim,
                max_len,
                max_tokens: tokens,
                format: KvFormat::F16,
            };
            let io = AttentionIo {
                qkv: &qkv,
                layout,
                out: &out,
                step: &step,
                rope: Some(&table),
            };
            let mut att = KvAttention::new_async(ctx, cfg, io).await?;
            att.reserve_async(ctx, pos + tokens).await?;
            att.set_len(pos)?;
            att.kv_write_host_async(ctx, 0, pos, &rows).await
        }
        .await;
        let all = at("rope on the GPU", got)?;
        let (mut got_q, mut got_k) = (Vec::new(), Vec::new());
        for r in all.chunks_exact(layout.stride) {
            got_q.extend_from_slice(&r[..qrow]);
            ensure!(
                r[qrow..qrow + 3] == [7.5; 3] && r[layout.v..].iter().all(|&v| v == 0.0),
                "rope case {case} wrote between q and k, or into v"
            );
            got_k.extend_from_slice(&r[layout.k..layout.v]);
        }
        for (what, got, want, row) in [("q", &got_q, &want_q, qrow), ("k", &got_k, &want_k, krow)] {
            let (err, at) = max_error(got, want)?;
            let (t, h, d) = (at / row, at % row / head_dim, at % head_dim);
            log!(
                "rope {what} case {case}: positions {pos}..{} heads {n_heads}/{n_kv} head_dim {head_dim} \
                 theta {theta}: max rel error {err:.3e} at token {t} head {h} dim {d} (gpu {} cpu {})",
                pos + tokens,
                got[at],
                want[at]
            );
            // The angles come from the same f64 table as the CPU's: only the
            // final rotation's rounding (and FMA contraction) may differ.
            ensure!(err < 1e-6, "rope {what} case {case}: error {err} at {at}");
        }
    }
    Ok(())
}

pub async fn elementwise_matches_cpu(ctx: &GpuContext) -> CaseResult {
    let step = StepUniform::new(ctx);
    let max_x = ctx.limits().max_compute_workgroups_per_dimension as usize;
    // (tokens, bound tokens, width); the last needs a second row of workgroups.
    for (tokens, bound, width, seed) in [
        (1, 1, 1, 1),
        (1, 3, 257, 2),
        (4, 4, 1000, 3),
        (3, 5, 4096 + 5, 4),
        (1, 1, 11008, 5),
        (1, 1, max_x * 256 + 77, 6),
    ] {
        let n = tokens * width;
        let a = values(bound * width, seed, 12.0);
        let b = values(bound * width, seed + 50, 2.0);
        for op in [ElementwiseOp::Add, ElementwiseOp::SwiGlu] {
            let mut want: Vec<f32> = match op {
                ElementwiseOp::Add => a.iter().zip(&b).map(|(x, y)| x + y).collect(),
                ElementwiseOp::SwiGlu => a.iter().zip(&b).map(|(x, y)| cpu::silu(*x) * y).collect(),
            };
            // Rows past `tokens` are left alone.
            want[n..].copy_from_slice(&a[n..]);
            let got = async {
                let ab = ctx.storage_f32("a", &a).await?;
                let bb = ctx.storage_f32("b", &b).await?;
                let k = Elementwise::new(ctx, op, &step, &ab, &bb, bound, width).await?;
                run_pass(ctx, &step, StepParams::batch(0, tokens, 0), |p| {
                    k.encode(p, tokens)
                })
                .await?;
                ctx.read_back_f32(&ab, a.len()).await
            }
            .await;
            let got = at("elementwise on the GPU", got)?;
            let (err, at) = max_error(&got, &want)?;
            log!(
                "{op:?} ({tokens} of {bound}, {width}): max rel error {err:.3e} at {at} \
                 (a {} b {} gpu {} cpu {})",
                a[at],
                b[at],
                got[at],
                want[at]
            );
            let tol = match op {
                ElementwiseOp::Add => 0.0,
                ElementwiseOp::SwiGlu => 2e-6,
            };
            ensure!(err <= tol, "{op:?} n {n}: error {err} at {at}");
        }
    }
    Ok(())
}

/// Shape errors, wgpu validation errors caught by the error scopes (async in
/// the browser), and a usable context afterwards.
pub async fn errors_are_typed(ctx: &GpuContext) -> CaseResult {
    let step = StepUniform::new(ctx);
    let r: Result<RmsNorm, GpuError> = async {
        let xb = ctx.storage_f32("x", &[1.0; 10]).await?;
        let wb = ctx.storage_f32("w", &[1.0; 5]).await?;
        let ob = ctx.storage_f32("out", &[1.0; 15]).await?;
        // x holds 10 values, the shape asks for 3 x 5.
        RmsNorm::new(ctx, &step, &xb, &wb, &ob, &ob, 3, 5, false).await
    }
    .await;
    ensure!(
        matches!(
            r,
            Err(GpuError::Shape {
                kernel: "rmsnorm",
                ..
            })
        ),
        "short x: {r:?}"
    );

    // The same buffer as read-only input and read-write output of one
    // dispatch is a usage conflict: wgpu's validation error comes back typed.
    let r = async {
        let xb = ctx.storage_f32("x", &[1.0; 8]).await?;
        let wb = ctx.storage_f32("w", &[1.0; 8]).await?;
        let ssb = ctx.storage_f32("ss", &[0.0; 4]).await?;
        let norm = RmsNorm::new(ctx, &step, &xb, &wb, &xb, &ssb, 1, 8, false).await?;
        run_pass(ctx, &step, StepParams::batch(0, 1, 0), |p| {
            norm.encode(p, 1)
        })
        .await
    }
    .await;
    log!("aliased bindings: {r:?}");
    ensure!(
        matches!(r, Err(GpuError::Validation(_))),
        "aliased bindings: {r:?}"
    );

    let too_big = ctx.limits().max_buffer_size + 4;
    let r = ctx.storage_zeroed("huge", too_big).await;
    ensure!(
        matches!(r, Err(GpuError::BufferTooLarge { .. })),
        "oversized buffer: {r:?}"
    );

    // The context is still usable after a caught error.
    let v = async {
        let b = ctx.storage_u32("ok", &[7, 8, 9]).await?;
        ctx.read_back_u32(&b, 3).await
    }
    .await;
    ensure!(
        matches!(&v, Ok(v) if v == &[7, 8, 9]),
        "read back after an error: {v:?}"
    );
    Ok(())
}

/// Random logits: normal at several scales, exact ties, -inf entries,
/// subnormals and signed zeros, huge values.
fn logits(rng: &mut Rng, vocab: usize) -> (Vec<f32>, &'static str) {
    let scale = [0.1f32, 1.0, 3.0, 8.0, 20.0][rng.below(5)];
    let mut l: Vec<f32> = (0..vocab).map(|_| rng.normal() * scale).collect();
    let name = match rng.below(8) {
        0..=2 => "normal",
        3 => {
            let levels = 1 + rng.below(4);
            for x in l.iter_mut() {
                *x = (rng.below(levels) as f32) * scale;
            }
            "ties"
        }
        4 => {
            for x in l.iter_mut() {
                if rng.below(3) == 0 {
                    *x = f32::NEG_INFINITY;
                }
            }
            let keep = rng.below(vocab);
            l[keep] = rng.normal() * scale;
            "neg-inf"
        }
        5 => {
            let top = rng.below(vocab);
            l[top] += 15.0 * scale;
            "peaked"
        }
        6 => {
            for x in l.iter_mut() {
                *x = match rng.below(4) {
                    0 => f32::from_bits(rng.below(0x0080_0000) as u32 + 1),
                    1 => -0.0,
                    2 => 0.0,
                    _ => f32::MIN_POSITIVE * rng.normal(),
                };
            }
            "tiny"
        }
        _ => {
            for x in l.iter_mut() {
                if rng.below(4) == 0 {
                    *x = rng.normal() * 1e30;
                }
            }
            "huge"
        }
    };
    (l, name)
}

/// Every combination of the settings (576), as in `tests/gpu_sample.rs`.
fn configs(vocab: usize) -> Vec<SamplerConfig> {
    let mut out = Vec::new();
    for temperature in [0.0f32, 0.2, 0.7, 1.5] {
        for top_k in [0usize, 1, 40, vocab + 5] {
            for top_p in [1.0f32, 0.95, 0.5, 1e-6] {
                for min_p in [0.0f32, 0.05, 0.9] {
                    for (repetition_penalty, repetition_window) in
                        [(1.0f32, 64), (1.3, 0), (1.3, 64)]
                    {
                        out.push(SamplerConfig {
                            temperature,
                            top_k,
                            top_p,
                            min_p,
                            repetition_penalty,
                            repetition_window,
                            seed: 0,
                        });
                    }
                }
            }
        }
    }
    out
}

/// Recent tokens: repeats from a small pool, sometimes ids past the vocab.
fn recent(rng: &mut Rng, vocab: usize) -> Vec<u32> {
    let n = rng.below(100);
    let pool: Vec<u32> = (0..1 + rng.below(20))
        .map(|_| {
            if rng.below(10) == 0 {
                (vocab + rng.below(10)) as u32
            } else {
                rng.below(vocab) as u32
            }
        })
        .collect();
    (0..n).map(|_| pool[rng.below(pool.len())]).collect()
}

/// Every `every`-th setting combination for `vocab` on random logits, seeds,
/// steps and recent tokens: the GPU's token, candidate count and integer
/// weight totals must equal the CPU sampler's. Returns (cases, distinct
/// tokens).
async fn compare(
    ctx: &GpuContext,
    vocab: usize,
    every: usize,
    seed: u64,
) -> Result<(usize, usize), String> {
    let mut rng = Rng::new(seed);
    let buffer = at(
        "logits buffer",
        ctx.storage_zeroed("logits", vocab as u64 * 4).await,
    )?;
    let mut gpu = at(
        "GpuSampler::new",
        GpuSampler::new(ctx, &buffer, vocab).await,
    )?;
    let mut cases = 0;
    let mut tokens = std::collections::BTreeSet::new();
    let start = now_ms();
    for (ci, mut cfg) in configs(vocab).into_iter().enumerate().step_by(every) {
        let (l, kind) = logits(&mut rng, vocab);
        let rec = recent(&mut rng, vocab);
        cfg.seed = rng.next() >> rng.below(64);
        let step = if rng.below(2) == 0 {
            rng.below(1000) as u32
        } else {
            rng.next() as u32
        };
        let want = Sampler::new(cfg.clone())
            .and_then(|mut s| s.sample_traced(&l, &rec, step))
            .map_err(|e| format!("CPU sampler, config {ci}: {e}"))?;
        ctx.queue()
            .write_buffer(&buffer, 0, bytemuck::cast_slice(&l));
        let got = async {
            gpu.configure(ctx, &cfg).await?;
            gpu.prepare(ctx, step, &rec)?;
            let mut enc = ctx.encoder("sample");
            gpu.encode_pass(&mut enc);
            ctx.submit(enc).await?;
            gpu.read_trace(ctx).await
        }
        .await;
        let got = at(&format!("vocab {vocab} config {ci}"), got)?;
        ensure!(
            got == want,
            "vocab {vocab} config {ci} {cfg:?} kind {kind} step {step} recent {rec:?}: \
             GPU {got:?} CPU {want:?}"
        );
        tokens.insert(got.token);
        cases += 1;
    }
    log!(
        "sampler vocab {vocab}: {cases} cases, GPU == CPU (token, candidates, totals) in all; \
         {} distinct tokens; {:.0} ms",
        tokens.len(),
        now_ms() - start
    );
    Ok((cases, tokens.len()))
}

/// The GPU sampler picks the CPU sampler's token (and decides on the same
/// integers) over a few hundred random cases covering every setting.
pub async fn sampler_matches_cpu(ctx: &GpuContext) -> CaseResult {
    let mut total = 0;
    // (vocab, every n-th of the 576 setting combinations, seed)
    for (vocab, every, seed) in [(7usize, 3usize, 2u64), (1000, 3, 5), (32016, 12, 6)] {
        let (cases, distinct) = compare(ctx, vocab, every, seed).await?;
        ensure!(
            distinct > 1 && distinct <= vocab,
            "vocab {vocab}: {distinct} distinct tokens"
        );
        total += cases;
    }
    log!("sampler: {total} cases in all");
    Ok(())
}

/// FNV-1a over the tokens' little-endian bytes.
fn fnv1a(tokens: &[u32]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for b in tokens.iter().flat_map(|t| t.to_le_bytes()) {
        h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Token sequence of [`same_seed_same_tokens`] (computed natively by the CPU
/// sampler): the browser's GPU and CPU samplers must both reproduce it.
const SEED_1234_TOKENS_FNV: u64 = 0x44e8_8c57_3b8d_2600;

/// A generation-like loop (penalising the tokens so far, step = index) over
/// fixed logits: the GPU's tokens equal the CPU sampler's at every step and
/// the whole sequence equals the one the native CPU sampler produces.
pub async fn same_seed_same_tokens(ctx: &GpuContext) -> CaseResult {
    let vocab = 32016;
    let mut rng = Rng::new(77);
    let l: Vec<f32> = (0..vocab).map(|_| rng.normal() * 3.0).collect();
    let cfg = SamplerConfig {
        temperature: 0.8,
        top_k: 40,
        top_p: 0.95,
        min_p: 0.02,
        repetition_penalty: 1.1,
        repetition_window: 64,
        seed: 1234,
    };
    let buffer = at("logits", ctx.storage_f32("logits", &l).await)?;
    let mut gpu = at(
        "GpuSampler::new",
        GpuSampler::new(ctx, &buffer, vocab).await,
    )?;
    at("configure", gpu.configure(ctx, &cfg).await)?;
    let mut cpu = Sampler::new(cfg).map_err(|e| e.to_string())?;
    let mut tokens: Vec<u32> = Vec::new();
    for step in 0..200u32 {
        let want = cpu
            .sample(&l, &tokens, step)
            .map_err(|e| format!("CPU sampler step {step}: {e}"))?;
        let got = async {
            gpu.prepare(ctx, step, &tokens)?;
            let mut enc = ctx.encoder("sample");
            gpu.encode_pass(&mut enc);
            ctx.submit(enc).await?;
            gpu.read_token(ctx).await
        }
        .await;
        let got = at(&format!("step {step}"), got)?;
        ensure!(got == want, "step {step}: GPU {got} CPU {want}");
        tokens.push(got);
    }
    let h = fnv1a(&tokens);
    log!(
        "seed 1234: 200 tokens, GPU == CPU at every step; first {:?}; fnv1a {h:#018x}",
        &tokens[..12]
    );
    ensure!(
        h == SEED_1234_TOKENS_FNV,
        "token sequence fnv1a {h:#018x}, the native CPU sampler's is {SEED_1234_TOKENS_FNV:#018x}"
    );
    Ok(())
}

/// A committed llama.cpp-quantized fixture (Q4_0 matrices, F32 norms, a
/// 512-piece vocabulary): dim 256, 2 layers, 4 heads / 2 KV heads, ffn 256.
const FIXTURE: &[u8] = include_bytes!("../fixtures/models/tiny-cov-v512-q4_0.gguf");

/// Streams `file` through the reader in odd-sized chunks, in piece mode, and
/// uploads each piece (the browser engine's path: feed, then upload).
async fn upload_in_chunks(ctx: &GpuContext, file: &[u8]) -> Result<GpuWeights, String> {
    let mut reader = GgufReader::new(ReaderOptions {
        pieces: true,
        ..Default::default()
    });
    let mut loader: Option<WeightLoader> = None;
    let sizes = [4093usize, 777, 65_537, 3, 100_003];
    let (mut at, mut chunks, mut tensors) = (0usize, 0usize, 0usize);
    while at < file.len() {
        let end = (at + sizes[chunks % sizes.len()]).min(file.len());
        let mut done: Vec<(TensorInfo, u64, Vec<u8>, bool)> = Vec::new();
        reader
            .feed(
                &file[at..end],
                |ev| -> Result<(), codellama_webgpu::Error> {
                    match ev {
                        Event::Header(h) => loader = Some(WeightLoader::new(h)?),
                        Event::TensorPiece(p) => {
                            done.push((p.info.clone(), p.offset, p.bytes.to_vec(), p.is_last()))
                        }
                        Event::Tensor(t) => done.push((t.info.clone(), 0, t.bytes.to_vec(), true)),
                    }
                    Ok(())
                },
            )
            .map_err(|e| format!("feeding bytes {at}..{end}: {e}"))?;
        for (info, offset, bytes, last) in done {
            let l = loader.as_mut().ok_or("a tensor before the header")?;
            l.add_piece(ctx, &info, offset, &bytes)
                .await
                .map_err(|e| format!("uploading {}: {e}", info.name))?;
            tensors += usize::from(last);
        }
        at = end;
        chunks += 1;
    }
    reader.finish().map_err(|e| format!("end of file: {e}"))?;
    log!(
        "uploaded {tensors} tensors from {} bytes in {chunks} chunks",
        file.len()
    );
    loader
        .ok_or("no header")?
        .finish()
        .map_err(|e| e.to_string())
}

/// Worst cosine, max |diff| and where, argmax checks: over rows of logits.
#[derive(Default)]
struct LogitCheck {
    worst_cos: (f64, usize),
    max_diff: (f32, usize, usize),
    argmax_checked: usize,
}

impl LogitCheck {
    fn new() -> LogitCheck {
        LogitCheck {
            worst_cos: (1.0, 0),
            ..Default::default()
        }
    }

    /// Row `pos`: cosine >= 0.9999, equal argmax where the reference's top-2
    /// gap exceeds 1e-2.
    fn row(&mut self, what: &str, pos: usize, gpu: &[f32], cpu: &[f32]) -> CaseResult {
        ensure!(
            gpu.len() == cpu.len(),
            "{what} {pos}: {} logits, want {}",
            gpu.len(),
            cpu.len()
        );
        ensure!(
            gpu.iter().all(|v| v.is_finite()),
            "{what} {pos}: non-finite GPU logits"
        );
        let cos = cosine(gpu, cpu);
        if cos < self.worst_cos.0 {
            self.worst_cos = (cos, pos);
        }
        for (i, (g, c)) in gpu.iter().zip(cpu).enumerate() {
            let d = (g - c).abs();
            if d > self.max_diff.0 {
                self.max_diff = (d, pos, i);
            }
        }
        ensure!(cos >= 0.9999, "{what} {pos}: cosine {cos} below 0.9999");
        let gap = top2_gap(cpu);
        if gap > 1e-2 {
            self.argmax_checked += 1;
            ensure!(
                argmax(gpu) == argmax(cpu),
                "{what} {pos}: GPU argmax {} CPU argmax {} (CPU top-2 gap {gap})",
                argmax(gpu),
                argmax(cpu)
            );
        }
        Ok(())
    }

    fn log(&self, what: &str) {
        let (d, pos, i) = self.max_diff;
        log!(
            "{what}: worst cosine {:.7} at position {}, max |diff| {d:.3e} at position {pos} \
             logit {i}, argmax identical at {} positions with gap > 1e-2",
            self.worst_cos.0,
            self.worst_cos.1,
            self.argmax_checked
        );
    }
}

/// End to end on a committed fixture: the file streamed in odd-sized chunks
/// through the reader and the weight loader, then the GPU decoder against
/// the CPU reference: every position of a 40-token prompt (prefill in
/// batches of 16, the last one short), then greedy decode steps one token at
/// a time.
pub async fn decoder_matches_cpu(ctx: &Arc<GpuContext>) -> CaseResult {
    let weights = upload_in_chunks(ctx, FIXTURE).await?;
    let file = gguf::read_bytes(FIXTURE).map_err(|e| e.to_string())?;
    let w = CpuWeights::from_file(&file).map_err(|e| e.to_string())?;
    let c = w.config.clone();
    let vocab = c.vocab_size as u64;
    let tokens: Vec<u32> = std::iter::once(1)
        .chain((1..40u64).map(|i| (3 + (i * 7919 + i * i) % (vocab - 3)) as u32))
        .collect();
    let mut gpu = GpuDecoder::new(
        Arc::clone(ctx),
        weights,
        DecoderOptions {
            max_len: 64,
            prefill_chunk: 16,
            kv_format: KvFormat::F16,
            all_logits: true,
        },
    )
    .await
    .map_err(|e| format!("GpuDecoder::new: {e}"))?;
    let got = gpu
        .feed_all_logits(&tokens)
        .await
        .map_err(|e| format!("GPU prefill: {e}"))?;
    let mut cpu = CpuDecoder::new(&w, 64);
    let want = cpu
        .logits_for(&tokens)
        .map_err(|e| format!("CPU reference: {e}"))?;
    let mut check = LogitCheck::new();
    for (pos, (g, c)) in got.iter().zip(&want).enumerate() {
        check.row("prefill position", pos, g, c)?;
    }
    check.log(&format!(
        "decoder prefill ({} tokens, {:?} weights, vocab {})",
        tokens.len(),
        w.token_embd.ty,
        c.vocab_size
    ));

    // Decode: feed the reference's greedy token to both, one at a time.
    let mut check = LogitCheck::new();
    let mut next = argmax(want.last().ok_or("no logits")?) as u32;
    let mut generated = Vec::new();
    for step in 0..6 {
        gpu.feed(&[next])
            .await
            .map_err(|e| format!("GPU decode step {step}: {e}"))?;
        let g = gpu
            .logits()
            .await
            .map_err(|e| format!("GPU logits step {step}: {e}"))?;
        let c = cpu
            .step(next)
            .map_err(|e| format!("CPU step {step}: {e}"))?
            .to_vec();
        check.row("decode step", step, &g, &c)?;
        generated.push(next);
        next = argmax(&c) as u32;
    }
    check.log(&format!("decoder greedy steps {generated:?}"));
    Ok(())
}

/// Per-token log-probabilities (`sample.wgsl` entry point `logprobs`)
/// against the f64 reference (`logprobs::log_softmax`, `top_ids`) on odd
/// vocabulary sizes with adversarial logits (exact ties, -inf entries,
/// subnormals and signed zeros, magnitudes of 1e4 and 1e30), greedy and
/// sampled, top 0, 3 and 20: the sampler's id, the reference's top ids in
/// order, values within 1e-4 + 1e-6 |ref| (the native
/// `tests/gpu_logprobs.rs` has the same bound), -inf where the reference has
/// it.
pub async fn logprobs_match_reference(ctx: &GpuContext) -> CaseResult {
    use codellama_webgpu::gpu::sample::logprobs_host;
    use codellama_webgpu::logprobs::{log_softmax, top_ids};
    let mut rng = Rng::new(16);
    let (mut worst_abs, mut worst_rel, mut n) = (0f64, 0f64, 0usize);
    let sampled = SamplerConfig {
        temperature: 0.7,
        top_p: 0.95,
        seed: 5,
        ..Default::default()
    };
    for vocab in [1usize, 7, 513, 32016] {
        for kind in 0..6 {
            let mut l: Vec<f32> = (0..vocab).map(|_| rng.normal() * 3.0).collect();
            for x in l.iter_mut() {
                match kind {
                    1 => *x = rng.below(3) as f32 * 2.5,
                    2 if rng.below(3) != 0 => *x = f32::NEG_INFINITY,
                    3 => {
                        *x = match rng.below(3) {
                            0 => f32::from_bits(rng.below(0x0080_0000) as u32 + 1),
                            1 => -0.0,
                            _ => 0.0,
                        }
                    }
                    4 => *x *= 3e3,
                    5 if rng.below(4) == 0 => *x *= 1e30,
                    _ => {}
                }
            }
            if kind == 2 {
                l[rng.below(vocab)] = 1.5;
            }
            let lp = log_softmax(&l).map_err(|e| format!("reference: {e}"))?;
            for (ci, cfg) in [SamplerConfig::greedy(), sampled.clone()]
                .iter()
                .enumerate()
            {
                for top in [0usize, 3, 20] {
                    let what = format!("vocab {vocab} kind {kind} cfg {ci} top {top}");
                    let got = at(&what, logprobs_host(ctx, &l, cfg, &[], 3, top).await)?;
                    let want = Sampler::new(cfg.clone())
                        .and_then(|mut s| s.sample(&l, &[], 3))
                        .map_err(|e| format!("{what}: CPU sampler: {e}"))?;
                    ensure!(got.id == want, "{what}: id {} want {want}", got.id);
                    let ids: Vec<u32> = got.top.iter().map(|t| t.id).collect();
                    ensure!(ids == top_ids(&l, top), "{what}: top ids {ids:?}");
                    let values = std::iter::once((got.id, got.logprob))
                        .chain(got.top.iter().map(|t| (t.id, t.logprob)));
                    for (id, v) in values {
                        let r = lp[id as usize];
                        n += 1;
                        if r == f64::NEG_INFINITY {
                            ensure!(v == f32::NEG_INFINITY, "{what}: id {id}: {v}, want -inf");
                            continue;
                        }
                        let err = (f64::from(v) - r).abs();
                        ensure!(
                            v <= 0.0 && err <= 1e-4 + 1e-6 * r.abs(),
                            "{what}: id {id}: {v}, want {r} (error {err:e})"
                        );
                        if r.abs() <= 100.0 {
                            worst_abs = worst_abs.max(err);
                        } else {
                            worst_rel = worst_rel.max(err / r.abs());
                        }
                    }
                }
            }
        }
    }
    log!(
        "logprobs: {n} values; max abs error {worst_abs:e} (|ref| <= 100), \
         max rel error {worst_rel:e} (beyond)"
    );
    Ok(())
}

/// Speculative verification's logits equal decode steps' bit for bit
/// (`crate::gpu::decoder::verify`'s exactness): after the same 54-token
/// prefix, verification batches of 2 positions (the narrow shape) and of 16
/// (across the attention's split boundary at 64) against the same positions
/// fed one token per step, on a fixture model and the demo model. In the
/// browser this is the check
/// that the adapter's shader compiler keeps the shared per-column sums
/// (natively, `tests/gpu_speculative.rs` runs it on every fixture model).
pub async fn verify_logits_equal_decode_steps(ctx: &Arc<GpuContext>) -> CaseResult {
    const DEMO: &[u8] = include_bytes!("../../models/codellama-demo.gguf");
    for (name, bytes) in [("tiny-cov-v512-q4_0", FIXTURE), ("codellama-demo", DEMO)] {
        let weights = upload_in_chunks(ctx, bytes).await?;
        let vocab = weights.config.vocab_size as u64;
        let mut dec = GpuDecoder::new(
            Arc::clone(ctx),
            weights,
            DecoderOptions {
                max_len: 96,
                prefill_chunk: 16,
                kv_format: KvFormat::F16,
                all_logits: false,
            },
        )
        .await
        .map_err(|e| format!("GpuDecoder::new: {e}"))?;
        let head_len = 54;
        let rows_max = dec.verify_rows();
        let seq: Vec<u32> = std::iter::once(1)
            .chain(
                (1..(head_len + rows_max) as u64)
                    .map(|i| (3 + (i * 7919 + i * i) % (vocab - 3)) as u32),
            )
            .collect();
        dec.feed(&seq[..head_len])
            .await
            .map_err(|e| format!("{name}: feed: {e}"))?;
        // Two positions (the narrow verification shape), then a full batch.
        for n in [2, rows_max] {
            let batch = &seq[head_len..head_len + n];
            dec.truncate(head_len);
            let rows = dec
                .verify_logits(batch)
                .await
                .map_err(|e| format!("{name}: verify: {e}"))?;
            dec.truncate(head_len);
            let (mut differing, mut max_diff, mut first) = (0usize, 0f32, None);
            for (i, (&t, row)) in batch.iter().zip(&rows).enumerate() {
                dec.feed(&[t])
                    .await
                    .map_err(|e| format!("{name}: step: {e}"))?;
                let one = dec
                    .logits()
                    .await
                    .map_err(|e| format!("{name}: logits: {e}"))?;
                for (a, b) in row.iter().zip(&one) {
                    if a.to_bits() != b.to_bits() {
                        differing += 1;
                        max_diff = max_diff.max((a - b).abs());
                        first.get_or_insert(i);
                    }
                }
            }
            log!(
                "{name}: verification of {n} positions vs decode steps: {differing} of {} \
                 logits differ (max |diff| {max_diff:.2e}, first row {first:?})",
                n * vocab as usize
            );
            ensure!(
                differing == 0,
                "{name}: {differing} of {n} positions' verification logits differ from decode \
                 steps' (max |diff| {max_diff:.2e}, first at row {first:?})"
            );
        }
    }
    Ok(())
}
