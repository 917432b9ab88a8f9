//! The GPU decoder: the llama forward pass as one command encoder per batch.
//!
//! Everything is created once in [`GpuDecoder::new`]: activation buffers sized
//! for a prefill chunk, every kernel's bind groups and static uniforms, the
//! KV cache's first chunk. A batch of tokens (a prefill chunk, or one decode
//! token) then costs one `write_buffer` of the token ids, one of the `Step`
//! uniform, one encoder with one compute pass, and one submit; a decode step
//! that samples on the GPU reads back 4 bytes (the token id), not the
//! vocabulary's logits.
//!
//! Per layer a decode step is 8 dispatches: RMSNorm partials, Q | K | V,
//! `kv_write_rope` (RoPE on q and k, k and v into the cache), `attend`, Wo,
//! RMSNorm partials, gate | up, W2. Each
//! RMSNorm runs as parallel partial sums that the next product finishes;
//! Q | K | V is one stacked product (three where the formats differ), gate |
//! up one with SwiGLU in its epilogue; the residual adds are the epilogues of
//! Wo and W2; `attend` runs once per KV chunk, and a `combine` of its splits
//! joins it past 64 positions. The step ends with the final norm, the output
//! projection and the sampler: one compute pass in all.
//!
//! Speculative verification ([`GpuDecoder::verify`], in [`verify`]) runs a
//! batch of drafted tokens through the same layers — the products on the
//! verification kernels (the decode matvec's lanes, 2 or 4 tokens per
//! workgroup), attention on its split path — so that every row's logits are
//! a decode step's bit for bit; then a head of its own: the final norm and
//! output projection of every row into a `(rows, vocab)` buffer, and the
//! sampler once per row, in the same pass. Those verification bindings are
//! the one thing not made in [`GpuDecoder::new`]: the first verification
//! makes them ([`GpuDecoder::prepare_verify`]), so that loading a model does
//! not compile pipelines only drafting uses.

mod layers;
mod verify;

use std::sync::Arc;

use super::attention::{AttentionConfig, AttentionIo, KvAttention, KvFormat};
use super::kernels::{Elementwise, QkvLayout, RmsNorm, RopeTable};
use super::profile::{Interval, KernelClass, Profiler};
use super::qmatmul::{EmbedBinding, MatmulBinding, Norm, Output};
use super::sample::{GpuLogprobs, GpuSampler};
use super::step::{StepParams, StepUniform};
use super::weights::{GpuWeights, Stack};
use super::{ElementwiseOp, Epilogue, GpuContext, GpuError};
use crate::cpu::DecodeError;
use crate::error::Error;
use crate::logprobs::TokenLogprobs;
use crate::model::Config;
use crate::sampler::SamplerConfig;
use layers::{bind_layers, LayerKernels, ProductIo, Proj};
use verify::VerifyHead;
pub use verify::MAX_VERIFY;

/// How a decoder is set up.
#[derive(Clone, Debug)]
pub struct DecoderOptions {
    /// Positions the KV cache may hold (at most the model's context).
    pub max_len: usize,
    /// Tokens per prefill batch: activation buffers are sized for it.
    pub prefill_chunk: usize,
    pub kv_format: KvFormat,
    /// Keep the logits of every position of a batch (tests, `logits`), not
    /// only the last one's.
    pub all_logits: bool,
}

impl Default for DecoderOptions {
    fn default() -> Self {
        DecoderOptions {
            max_len: 4096,
            prefill_chunk: 128,
            kv_format: KvFormat::F16,
            all_logits: false,
        }
    }
}

/// Activations, allocated once for `T = prefill_chunk` tokens.
struct Activations {
    ids: wgpu::Buffer,                // (T) u32 token ids
    x: wgpu::Buffer,                  // (T, dim) residual stream
    xw: wgpu::Buffer,                 // (T, dim) x * norm weight
    ss: wgpu::Buffer,                 // (T, G) partial sums of x² (G = RmsNorm::groups(dim))
    qkv: wgpu::Buffer,                // (T, dim + 2 kv_dim) rows q | k | v
    att: wgpu::Buffer,                // (T, dim) attention output
    h: wgpu::Buffer,                  // (T, ffn) silu(gate) * up
    h3: Option<wgpu::Buffer>,         // (T, ffn) up, where gate and up are apart
    xw_last: wgpu::Buffer,            // (dim) the batch's last row of x, times output_norm
    ss_last: wgpu::Buffer,            // (G) its partial sums of x²
    logits: wgpu::Buffer,             // (vocab) logits after the batch's last token
    logits_all: Option<wgpu::Buffer>, // (T, vocab)
}

/// Records a forward pass into one compute pass: counts dispatches and,
/// when profiling, marks each kernel class.
struct Recorder<'a, 'p> {
    pass: &'a mut wgpu::ComputePass<'p>,
    profiler: Option<&'a mut Profiler>,
    dispatches: usize,
}

impl Recorder<'_, '_> {
    fn mark(&mut self, class: KernelClass, bytes: u64) {
        if let Some(p) = self.profiler.as_deref_mut() {
            p.mark(self.pass, class, bytes);
        }
    }

    /// Marks `class` and counts `n` dispatches recorded by `f`.
    fn run(
        &mut self,
        class: KernelClass,
        bytes: u64,
        f: impl FnOnce(&mut wgpu::ComputePass<'_>) -> Result<usize, GpuError>,
    ) -> Result<(), GpuError> {
        self.mark(class, bytes);
        self.dispatches += f(self.pass)?;
        Ok(())
    }
}

/// What recording one batch took.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct EncodeStats {
    pub dispatches: usize,
    pub compute_passes: usize,
    /// Host seconds spent recording (the encoder, not the writes before it).
    pub encode_seconds: f64,
}

/// Runs a model on the GPU; holds the KV cache of one sequence.
pub struct GpuDecoder {
    ctx: Arc<GpuContext>,
    weights: GpuWeights,
    opts: DecoderOptions,
    step: StepUniform,
    act: Activations,
    /// Where the fused Q|K|V product writes each token's q, k and v.
    layout: QkvLayout,
    embed: EmbedBinding,
    /// RoPE's table, bound to the attention's `kv_write_rope`.
    _rope_table: RopeTable,
    swiglu: Option<Elementwise>,
    layers: Vec<LayerKernels>,
    final_norm_last: RmsNorm,
    output_last: Proj,
    final_norm_all: Option<(RmsNorm, MatmulBinding)>,
    attention: KvAttention,
    sampler: GpuSampler,
    sampler_config: Option<SamplerConfig>,
    /// Every row's logits and their sampler, for [`GpuDecoder::verify`]:
    /// made (with the layers' verification kernels) by
    /// [`GpuDecoder::prepare_verify`], none before.
    verify: Option<VerifyHead>,
    /// Made by the first request for log-probabilities (none before).
    logprobs: Option<GpuLogprobs>,
    last_stats: EncodeStats,
    /// Read-back slots of launched decode steps (see [`GpuDecoder::launch`]).
    slots: [wgpu::Buffer; MAX_IN_FLIGHT],
    /// Launched steps not yet finished: (slot, submission), oldest first.
    in_flight: std::collections::VecDeque<(usize, wgpu::SubmissionIndex)>,
    next_slot: usize,
}

/// Decode steps that may be launched before the oldest one's token is read.
pub const MAX_IN_FLIGHT: usize = 2;

/// What a forward pass ends with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Head {
    /// The last row's logits (and every row's with `all_logits`).
    Logits,
    /// [`Head::Logits`], then the sampler on the last row's.
    Sample,
    /// Every row's logits in the verification buffer, each row sampled.
    Verify,
}

impl Head {
    fn sample(sample: bool) -> Head {
        if sample {
            Head::Sample
        } else {
            Head::Logits
        }
    }
}

/// Where a batch's token ids come from.
#[derive(Clone, Copy, Debug)]
enum Ids<'a> {
    /// Written from the host.
    Host(&'a [u32]),
    /// One token: the id the previous step sampled, already copied on the
    /// GPU into the ids buffer.
    Device,
}

impl GpuDecoder {
    /// Binds every kernel of the forward pass to `weights` once.
    pub async fn new(
        ctx: Arc<GpuContext>,
        weights: GpuWeights,
        opts: DecoderOptions,
    ) -> Result<GpuDecoder, Error> {
        let c = weights.config.clone();
        let mut opts = opts;
        opts.max_len = opts.max_len.min(c.context_length).max(1);
        opts.prefill_chunk = opts.prefill_chunk.clamp(1, opts.max_len);
        let t = opts.prefill_chunk;
        let g = &*ctx;
        let groups = RmsNorm::groups(c.dim);
        let layout = QkvLayout::packed(c.n_heads, c.n_kv_heads, c.head_dim());
        let apart_ffn = weights
            .layers
            .iter()
            .any(|l| matches!(l.gate_up, Stack::Apart(_)));
        // f32 buffers, padded to whole vec4s (the products read x as vec4).
        let f32s = |n: usize| (n.next_multiple_of(4) * 4) as u64;
        let buf = |label: &'static str, bytes: u64| g.storage_zeroed(label, bytes);
        let act = Activations {
            ids: buf("ids", (t * 4) as u64).await?,
            x: buf("x", f32s(t * c.dim)).await?,
            xw: buf("xw", f32s(t * c.dim)).await?,
            ss: buf("ss", f32s(t * groups)).await?,
            qkv: buf("qkv", f32s(t * layout.stride)).await?,
            att: buf("att", f32s(t * c.dim)).await?,
            h: buf("h", f32s(t * c.ffn_dim)).await?,
            h3: match apart_ffn {
                true => Some(buf("h3", f32s(t * c.ffn_dim)).await?),
                false => None,
            },
            xw_last: buf("xw_last", f32s(c.dim)).await?,
            ss_last: buf("ss_last", f32s(groups)).await?,
            logits: buf("logits", f32s(c.vocab_size)).await?,
            logits_all: match opts.all_logits {
                true => Some(buf("logits_all", f32s(t * c.vocab_size)).await?),
                false => None,
            },
        };
        let step = StepUniform::new(g);
        let w = &weights;
        let embed = w
            .token_embd
            .bind_embed(g, &step, &act.ids, &act.x, t)
            .await?;
        let rope_table = RopeTable::new(g, c.head_dim(), c.rope_theta, opts.max_len).await?;
        let swiglu = match &act.h3 {
            Some(h3) => Some(
                Elementwise::new(g, ElementwiseOp::SwiGlu, &step, &act.h, h3, t, c.ffn_dim).await?,
            ),
            None => None,
        };
        let layers = bind_layers(g, &step, w, &act, layout, t).await?;
        let final_norm_last = RmsNorm::new(
            g,
            &step,
            &act.x,
            &w.output_norm,
            &act.xw_last,
            &act.ss_last,
            t,
            c.dim,
            true,
        )
        .await?;
        let output = w.output();
        let output_last = Proj::new(
            g,
            &step,
            output,
            ProductIo {
                x: &act.xw_last,
                out: Output::dense(&act.logits, output, Epilogue::Store),
                norm: Some(Norm {
                    ss: &act.ss_last,
                    groups,
                    eps: c.rms_eps,
                }),
            },
            1,
        )
        .await?;
        let final_norm_all = match &act.logits_all {
            Some(all) => Some((
                RmsNorm::new(
                    g,
                    &step,
                    &act.x,
                    &w.output_norm,
                    &act.xw,
                    &act.ss,
                    t,
                    c.dim,
                    false,
                )
                .await?,
                output
                    .bind_matmul_to(
                        g,
                        &step,
                        &act.xw,
                        Output::dense(all, output, Epilogue::Store),
                        Some(Norm {
                            ss: &act.ss,
                            groups,
                            eps: c.rms_eps,
                        }),
                        t,
                        g.batch_kernel(),
                    )
                    .await?,
            )),
            None => None,
        };
        let mut attention = KvAttention::new_async(
            g,
            AttentionConfig {
                n_layers: c.n_layers,
                n_heads: c.n_heads,
                n_kv_heads: c.n_kv_heads,
                head_dim: c.head_dim(),
                max_len: opts.max_len,
                max_tokens: t,
                format: opts.kv_format,
            },
            AttentionIo {
                qkv: &act.qkv,
                layout,
                out: &act.att,
                step: &step,
                rope: Some(&rope_table),
            },
        )
        .await?;
        attention.reserve_async(g, t.min(opts.max_len)).await?;
        let sampler = GpuSampler::new(g, &act.logits, c.vocab_size).await?;
        let slot = |i: usize| {
            let b = g.device().create_buffer(&wgpu::BufferDescriptor {
                label: Some(&format!("token read-back {i}")),
                size: 4,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            g.record_buffer(&b);
            b
        };
        let slots = std::array::from_fn(slot);
        Ok(GpuDecoder {
            ctx: Arc::clone(&ctx),
            weights,
            opts,
            step,
            act,
            layout,
            embed,
            _rope_table: rope_table,
            swiglu,
            layers,
            final_norm_last,
            output_last,
            final_norm_all,
            attention,
            sampler,
            sampler_config: None,
            verify: None,
            logprobs: None,
            last_stats: EncodeStats::default(),
            slots,
            in_flight: std::collections::VecDeque::new(),
            next_slot: 0,
        })
    }

    pub fn config(&self) -> &Config {
        &self.weights.config
    }

    pub fn weights(&self) -> &GpuWeights {
        &self.weights
    }

    pub fn context(&self) -> &Arc<GpuContext> {
        &self.ctx
    }

    pub fn options(&self) -> &DecoderOptions {
        &self.opts
    }

    /// Positions held in the KV cache.
    pub fn len(&self) -> usize {
        self.attention.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn max_len(&self) -> usize {
        self.opts.max_len
    }

    /// Keeps the first `n` positions (to reuse a shared prompt prefix): O(1).
    pub fn truncate(&mut self, n: usize) {
        self.attention.truncate(n);
    }

    /// KV cache bytes per position (all layers, keys and values).
    pub fn kv_bytes_per_token(&self) -> u64 {
        self.attention.bytes_per_token()
    }

    /// GPU bytes held: weights, KV cache chunks allocated so far.
    pub fn gpu_bytes(&self) -> u64 {
        self.weights.gpu_bytes + self.attention.allocated_bytes()
    }

    /// Feeds `tokens` at the next positions in batches of at most
    /// `prefill_chunk`; afterwards the logits of the last token are on the
    /// GPU (read them with [`GpuDecoder::logits`], or sample).
    pub async fn feed(&mut self, tokens: &[u32]) -> Result<(), Error> {
        self.check_fits(tokens.len())?;
        for chunk in tokens.chunks(self.opts.prefill_chunk) {
            let encoder = self.encode_batch(chunk, false, None).await?;
            self.ctx.submit(encoder).await?;
            self.attention.advance(chunk.len())?;
        }
        Ok(())
    }

    /// Feeds `tokens` and returns the logits at every position (row `i`
    /// predicts token `i + 1`); needs `all_logits`.    (tokens, vocab)
    pub async fn feed_all_logits(&mut self, tokens: &[u32]) -> Result<Vec<Vec<f32>>, Error> {
        self.check_fits(tokens.len())?;
        let vocab = self.config().vocab_size;
        let mut out = Vec::with_capacity(tokens.len());
        for chunk in tokens.chunks(self.opts.prefill_chunk) {
            let encoder = self.encode_batch(chunk, false, None).await?;
            self.ctx.submit(encoder).await?;
            self.attention.advance(chunk.len())?;
            let all = self.act.logits_all.as_ref().ok_or_else(|| {
                GpuError::shape(
                    "decoder",
                    "feed_all_logits needs DecoderOptions::all_logits",
                )
            })?;
            let flat = self.ctx.read_back_f32(all, chunk.len() * vocab).await?;
            out.extend(flat.chunks_exact(vocab).map(<[f32]>::to_vec));
        }
        Ok(out)
    }

    /// The logits after the last token fed.                          (vocab)
    pub async fn logits(&self) -> Result<Vec<f32>, Error> {
        Ok(self
            .ctx
            .read_back_f32(&self.act.logits, self.config().vocab_size)
            .await?)
    }

    /// Samples the next token from the logits on the GPU and reads back its
    /// id. `recent` holds the tokens so far; `step` is the sampler's draw
    /// index.
    pub async fn sample(
        &mut self,
        cfg: &SamplerConfig,
        recent: &[u32],
        step: u32,
    ) -> Result<u32, Error> {
        self.configure_sampler(cfg).await?;
        self.sampler.prepare(&self.ctx, step, recent)?;
        let mut encoder = self.ctx.encoder("sample");
        self.sampler.encode_pass(&mut encoder);
        self.ctx.submit(encoder).await?;
        Ok(self.sampler.read_token(&self.ctx).await?)
    }

    /// One decode step: feeds `token`, samples the next one on the GPU, and
    /// reads back its id: one encoder, one compute pass, one submit, 4 bytes
    /// read.
    pub async fn step_and_sample(
        &mut self,
        token: u32,
        cfg: &SamplerConfig,
        recent: &[u32],
        step: u32,
    ) -> Result<u32, Error> {
        self.configure_sampler(cfg).await?;
        self.sampler.prepare(&self.ctx, step, recent)?;
        let encoder = self.encode_batch(&[token], true, None).await?;
        self.ctx.submit(encoder).await?;
        self.attention.advance(1)?;
        Ok(self.sampler.read_token(&self.ctx).await?)
    }

    /// Launches a decode step without waiting for it: feeds `token` (`None`:
    /// the token the previous launched step sampled, which stays on the GPU —
    /// no read-back between steps), samples the next token into a read-back
    /// slot, submits, and returns. Up to [`MAX_IN_FLIGHT`] steps may be in
    /// flight; [`GpuDecoder::finish`] returns their tokens in order. The
    /// sampler's `recent` tokens must be known at launch: a caller pipelines
    /// only samplers without a repetition penalty
    /// ([`GpuDecoder::can_pipeline`]). The cache length counts launched steps.
    pub async fn launch(
        &mut self,
        token: Option<u32>,
        cfg: &SamplerConfig,
        recent: &[u32],
        step: u32,
    ) -> Result<(), Error> {
        if self.in_flight.len() >= MAX_IN_FLIGHT {
            return Err(GpuError::Internal(format!(
                "{MAX_IN_FLIGHT} decode steps are in flight already"
            ))
            .into());
        }
        self.configure_sampler(cfg).await?;
        self.sampler.prepare(&self.ctx, step, recent)?;
        let one;
        let ids = match token {
            Some(t) => {
                one = [t];
                Ids::Host(&one)
            }
            None => Ids::Device,
        };
        let mut encoder = self.encode(ids, Head::Sample, None).await?;
        let slot = self.next_slot;
        self.next_slot = (slot + 1) % MAX_IN_FLIGHT;
        // The id feeds the next step on the GPU, and comes back to the host.
        let token_buffer = self.sampler.token_buffer();
        encoder.copy_buffer_to_buffer(token_buffer, 0, &self.act.ids, 0, 4);
        encoder.copy_buffer_to_buffer(token_buffer, 0, &self.slots[slot], 0, 4);
        let submission = self.ctx.submit_unscoped(encoder)?;
        self.attention.advance(1)?;
        self.in_flight.push_back((slot, submission));
        Ok(())
    }

    /// The token of the oldest launched step (waiting for that step only).
    pub async fn finish(&mut self) -> Result<u32, Error> {
        let Some((slot, submission)) = self.in_flight.pop_front() else {
            return Err(GpuError::Internal("no decode step in flight".into()).into());
        };
        let bytes = self.ctx.map_read(&self.slots[slot], submission).await?;
        let t = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        Ok(crate::gpu::sample::token_result(t)?)
    }

    /// [`GpuDecoder::sample`] with the log-probabilities of the chosen token
    /// and the `top` most likely ones ([`crate::logprobs`]), computed in the
    /// same submit and read back instead of the token (one read-back).
    pub async fn sample_logprobs(
        &mut self,
        cfg: &SamplerConfig,
        recent: &[u32],
        step: u32,
        top: usize,
    ) -> Result<TokenLogprobs, Error> {
        self.configure_sampler(cfg).await?;
        self.sampler.prepare(&self.ctx, step, recent)?;
        self.logprobs_kernel(top).await?;
        let lp = self.logprobs.as_ref().expect("made above");
        let mut encoder = self.ctx.encoder("sample");
        self.sampler.encode_pass(&mut encoder);
        lp.encode_pass(&mut encoder);
        self.ctx.submit(encoder).await?;
        Ok(lp.read(&self.ctx).await?)
    }

    /// [`GpuDecoder::step_and_sample`] with log-probabilities, as
    /// [`GpuDecoder::sample_logprobs`]: one submit, one read-back.
    pub async fn step_and_sample_logprobs(
        &mut self,
        token: u32,
        cfg: &SamplerConfig,
        recent: &[u32],
        step: u32,
        top: usize,
    ) -> Result<TokenLogprobs, Error> {
        self.configure_sampler(cfg).await?;
        self.sampler.prepare(&self.ctx, step, recent)?;
        self.logprobs_kernel(top).await?;
        let mut encoder = self.encode_batch(&[token], true, None).await?;
        let lp = self.logprobs.as_ref().expect("made above");
        lp.encode_pass(&mut encoder);
        self.ctx.submit(encoder).await?;
        self.attention.advance(1)?;
        Ok(lp.read(&self.ctx).await?)
    }

    /// Whether the log-probabilities kernel exists (it is made by the first
    /// request for log-probabilities; until then nothing of it can run).
    pub fn logprobs_ready(&self) -> bool {
        self.logprobs.is_some()
    }

    /// The log-probabilities kernel (made on first use), set to `top`.
    async fn logprobs_kernel(&mut self, top: usize) -> Result<(), Error> {
        if self.logprobs.is_none() {
            self.logprobs = Some(GpuLogprobs::new(&self.ctx, &self.sampler).await?);
        }
        let lp = self.logprobs.as_mut().expect("made above");
        Ok(lp.set_top(&self.ctx, top)?)
    }

    /// Launched steps not finished yet.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Whether decode steps with `cfg` can be launched ahead of reading the
    /// previous token: its sampling must not depend on the recent tokens
    /// (no repetition penalty).
    pub fn can_pipeline(cfg: &SamplerConfig) -> bool {
        !cfg.constants().penalize
    }

    /// [`GpuDecoder::step_and_sample`] with the GPU time of every kernel
    /// class from timestamp queries (`profiler` from [`Profiler::new`]).
    pub async fn step_profiled(
        &mut self,
        token: u32,
        cfg: &SamplerConfig,
        recent: &[u32],
        step: u32,
        profiler: &mut Profiler,
    ) -> Result<(u32, Vec<Interval>), Error> {
        self.configure_sampler(cfg).await?;
        self.sampler.prepare(&self.ctx, step, recent)?;
        profiler.reset();
        let mut encoder = self.encode_batch(&[token], true, Some(profiler)).await?;
        profiler.resolve(&mut encoder);
        self.ctx.submit(encoder).await?;
        self.attention.advance(1)?;
        let token = self.sampler.read_token(&self.ctx).await?;
        Ok((token, profiler.read(&self.ctx).await?))
    }

    /// Dispatches and compute passes of the last batch recorded.
    pub fn last_encode_stats(&self) -> EncodeStats {
        self.last_stats
    }

    /// `Err(ContextFull)` unless `n` more positions fit.
    fn check_fits(&self, n: usize) -> Result<(), Error> {
        if self.len() + n > self.opts.max_len {
            return Err(DecodeError::ContextFull {
                len: self.opts.max_len,
            }
            .into());
        }
        Ok(())
    }

    async fn configure_sampler(&mut self, cfg: &SamplerConfig) -> Result<(), Error> {
        if self.sampler_config.as_ref() != Some(cfg) {
            self.sampler.configure(&self.ctx, cfg).await?;
            self.sampler_config = Some(cfg.clone());
        }
        Ok(())
    }

    /// Checks a batch, writes its ids and `Step`, and records its forward
    /// pass (and the sampling, with `sample`) in one compute pass. Does not
    /// advance the cache length (the caller does, after the submit).
    async fn encode_batch(
        &mut self,
        tokens: &[u32],
        sample: bool,
        profiler: Option<&mut Profiler>,
    ) -> Result<wgpu::CommandEncoder, Error> {
        self.encode(Ids::Host(tokens), Head::sample(sample), profiler)
            .await
    }

    /// [`GpuDecoder::encode_batch`] for ids from the host or the GPU.
    async fn encode(
        &mut self,
        ids: Ids<'_>,
        head: Head,
        profiler: Option<&mut Profiler>,
    ) -> Result<wgpu::CommandEncoder, Error> {
        let vocab = self.weights.config.vocab_size;
        let n = match ids {
            Ids::Host(t) => t.len(),
            Ids::Device => 1,
        };
        let pos = self.attention.len();
        if n == 0 || n > self.opts.prefill_chunk {
            return Err(GpuError::shape(
                "decoder",
                format!("a batch of {n} tokens (1..={})", self.opts.prefill_chunk),
            )
            .into());
        }
        if pos + n > self.opts.max_len {
            return Err(DecodeError::ContextFull {
                len: self.opts.max_len,
            }
            .into());
        }
        if let Ids::Host(tokens) = ids {
            if let Some(&bad) = tokens.iter().find(|&&t| t as usize >= vocab) {
                return Err(DecodeError::TokenOutOfRange { token: bad, vocab }.into());
            }
        }
        self.attention.reserve_async(&self.ctx, pos + n).await?;
        let step = StepParams::batch(pos, n, 0);
        self.step.write(&self.ctx, &step);
        if let Ids::Host(tokens) = ids {
            self.ctx
                .queue()
                .write_buffer(&self.act.ids, 0, bytemuck::cast_slice(tokens));
        }

        let started = crate::clock::now();
        let mut encoder = self.ctx.encoder("forward");
        let dispatches = {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("forward"),
                timestamp_writes: None,
            });
            let mut rec = Recorder {
                pass: &mut pass,
                profiler,
                dispatches: 0,
            };
            self.record(&mut rec, &step, n, head)?;
            if let Some(p) = rec.profiler.as_deref_mut() {
                p.end(rec.pass);
            }
            rec.dispatches
        };
        self.last_stats = EncodeStats {
            dispatches,
            compute_passes: 1,
            encode_seconds: crate::clock::now() - started,
        };
        Ok(encoder)
    }

    /// The forward pass of a batch of `n` tokens at `step.pos`, top to
    /// bottom (`cpu::CpuDecoder::step` line for line).
    fn record(
        &self,
        rec: &mut Recorder<'_, '_>,
        step: &StepParams,
        n: usize,
        head: Head,
    ) -> Result<(), GpuError> {
        // x = token_embd[ids]                                       (n, dim)
        let row = self.weights.token_embd.gpu_bytes() / self.weights.config.vocab_size as u64;
        rec.run(KernelClass::Embed, row * n as u64, |p| {
            self.embed.encode(p, n)
        })?;
        for (l, k) in self.layers.iter().enumerate() {
            // xw, ss = x * attn_norm, sums of x² (the products finish
            // xb = rmsnorm(x) * attn_norm)                           (n, dim)
            rec.run(KernelClass::Norm, 0, |p| k.attn_norm.encode(p, n))?;
            // q | k | v = Wq xb | Wk xb | Wv xb         (n, dim + 2 kv_dim)
            for proj in &k.qkv {
                proj.encode(rec, n, head)?;
            }
            // q, k rotated for positions pos..pos+n; k, v -> cache;
            // att = softmax(q K^T / sqrt(hd)) V                      (n, dim)
            let kv = self.attention.bytes_read(step.kv_len as usize);
            rec.run(KernelClass::Attention, kv, |p| match head {
                // every row as its own decode step would attend
                Head::Verify => self.attention.encode_split(p, l, step),
                _ => self.attention.encode(p, l, step),
            })?;
            // x += Wo att                                           (n, dim)
            k.wo.encode(rec, n, head)?;
            // xw, ss for xb = rmsnorm(x) * ffn_norm                 (n, dim)
            rec.run(KernelClass::Norm, 0, |p| k.ffn_norm.encode(p, n))?;
            // h = silu(W1 xb) * (W3 xb)                             (n, ffn)
            for proj in &k.gate_up {
                proj.encode(rec, n, head)?;
            }
            if let Some(swiglu) = self.swiglu.as_ref().filter(|_| k.gate_up.len() > 1) {
                rec.run(KernelClass::Elementwise, 0, |p| swiglu.encode(p, n))?;
            }
            // x += W2 h                                             (n, dim)
            k.w2.encode(rec, n, head)?;
        }
        if head == Head::Verify {
            // every row's logits, every row sampled           (n, vocab), (n)
            return self
                .verify
                .as_ref()
                .ok_or_else(verify::not_prepared)?
                .record(rec, n);
        }
        // logits = Wout · rmsnorm(x[n-1]) * output_norm             (vocab)
        rec.run(KernelClass::Norm, 0, |p| self.final_norm_last.encode(p, n))?;
        self.output_last.encode(rec, 1, head)?;
        if let Some((norm, out)) = &self.final_norm_all {
            // every row's logits                                   (n, vocab)
            rec.run(KernelClass::Norm, 0, |p| norm.encode(p, n))?;
            rec.run(
                KernelClass::Matmul(self.weights.output().format()),
                0,
                |p| out.encode(p, n),
            )?;
        }
        if head == Head::Sample {
            rec.run(KernelClass::Sample, 0, |p| Ok(self.sampler.encode(p)))?;
        }
        Ok(())
    }
}

impl crate::generate::Backend for GpuDecoder {
    fn max_len(&self) -> usize {
        GpuDecoder::max_len(self)
    }

    fn truncate(&mut self, n: usize) {
        GpuDecoder::truncate(self, n)
    }

    async fn feed(&mut self, tokens: &[u32]) -> Result<(), Error> {
        GpuDecoder::feed(self, tokens).await
    }

    async fn sync(&mut self) -> Result<(), Error> {
        Ok(self.ctx.wait_idle().await?)
    }

    async fn sample(
        &mut self,
        cfg: &SamplerConfig,
        recent: &[u32],
        step: u32,
    ) -> Result<u32, Error> {
        GpuDecoder::sample(self, cfg, recent, step).await
    }

    async fn step_and_sample(
        &mut self,
        token: u32,
        cfg: &SamplerConfig,
        recent: &[u32],
        step: u32,
    ) -> Result<u32, Error> {
        GpuDecoder::step_and_sample(self, token, cfg, recent, step).await
    }

    fn can_pipeline(&self, cfg: &SamplerConfig) -> bool {
        GpuDecoder::can_pipeline(cfg)
    }

    async fn launch(
        &mut self,
        token: Option<u32>,
        cfg: &SamplerConfig,
        recent: &[u32],
        step: u32,
    ) -> Result<(), Error> {
        GpuDecoder::launch(self, token, cfg, recent, step).await
    }

    async fn finish(&mut self) -> Result<u32, Error> {
        GpuDecoder::finish(self).await
    }

    async fn verify(
        &mut self,
        tokens: &[u32],
        cfg: &SamplerConfig,
        recent: &[u32],
        step: u32,
    ) -> Result<Vec<u32>, Error> {
        GpuDecoder::verify(self, tokens, cfg, recent, step).await
    }

    async fn prepare_verify(&mut self) -> Result<(), Error> {
        GpuDecoder::prepare_verify(self).await
    }

    fn verify_width(&self) -> usize {
        self.verify_rows()
    }

    async fn sample_logprobs(
        &mut self,
        cfg: &SamplerConfig,
        recent: &[u32],
        step: u32,
        top: usize,
    ) -> Result<TokenLogprobs, Error> {
        GpuDecoder::sample_logprobs(self, cfg, recent, step, top).await
    }

    async fn step_and_sample_logprobs(
        &mut self,
        token: u32,
        cfg: &SamplerConfig,
        recent: &[u32],
        step: u32,
        top: usize,
    ) -> Result<TokenLogprobs, Error> {
        GpuDecoder::step_and_sample_logprobs(self, token, cfg, recent, step, top).await
    }
}
