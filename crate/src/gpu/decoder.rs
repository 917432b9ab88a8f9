//! The GPU decoder: the llama forward pass as one command encoder per batch.
//!
//! Everything is created once in [`GpuDecoder::new`]: activation buffers sized
//! for a prefill chunk, every kernel's bind groups and static uniforms, the
//! KV cache's first chunk. A batch of tokens (a prefill chunk, or one decode
//! token) then costs one `write_buffer` of the token ids, one of the `Step`
//! uniform, one encoder and one submit; a decode step that samples on the GPU
//! reads back 4 bytes (the token id), not the vocabulary's logits.

use std::sync::Arc;

use super::attention::{AttentionConfig, AttentionIo, KvAttention, KvFormat};
use super::kernels::{Elementwise, RmsNorm, Rope, RopeShape, RopeTable};
use super::qmatmul::{EmbedBinding, GpuMatrix, MatmulBinding, MatvecBinding};
use super::sample::GpuSampler;
use super::step::{StepParams, StepUniform};
use super::weights::GpuWeights;
use super::{ElementwiseOp, GpuContext, GpuError};
use crate::cpu::DecodeError;
use crate::error::Error;
use crate::model::Config;
use crate::sampler::SamplerConfig;

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
    xb: wgpu::Buffer,                 // (T, dim) normed input
    q: wgpu::Buffer,                  // (T, n_heads, head_dim)
    k: wgpu::Buffer,                  // (T, n_kv_heads, head_dim)
    v: wgpu::Buffer,                  // (T, n_kv_heads, head_dim)
    att: wgpu::Buffer,                // (T, dim) attention output
    h1: wgpu::Buffer,                 // (T, ffn) gate, then silu(gate) * up
    h3: wgpu::Buffer,                 // (T, ffn) up
    x_last: wgpu::Buffer,             // (dim) the batch's last row of x
    xn_last: wgpu::Buffer,            // (dim) its final norm
    logits: wgpu::Buffer,             // (vocab) logits after the batch's last token
    logits_all: Option<wgpu::Buffer>, // (T, vocab)
}

/// A projection bound twice: matrix-vector for one token, tiled
/// matrix-matrix for a batch.
struct Proj {
    one: MatvecBinding,
    many: MatmulBinding,
}

impl Proj {
    async fn new(
        ctx: &GpuContext,
        step: &StepUniform,
        m: &GpuMatrix,
        x: &wgpu::Buffer,
        y: &wgpu::Buffer,
        max_tokens: usize,
        accumulate: bool,
    ) -> Result<Proj, GpuError> {
        Ok(Proj {
            one: m.bind_matvec(ctx, x, y, accumulate).await?,
            many: m
                .bind_matmul(ctx, step, x, y, max_tokens, accumulate)
                .await?,
        })
    }

    fn encode(&self, pass: &mut wgpu::ComputePass<'_>, tokens: usize) -> Result<usize, GpuError> {
        if tokens == 1 {
            Ok(self.one.encode(pass))
        } else {
            self.many.encode(pass, tokens)
        }
    }
}

/// One layer's bound kernels.
struct LayerKernels {
    attn_norm: RmsNorm, // x -> xb
    wq: Proj,           // xb -> q
    wk: Proj,           // xb -> k
    wv: Proj,           // xb -> v
    wo: Proj,           // x += Wo att
    ffn_norm: RmsNorm,  // x -> xb
    w1: Proj,           // xb -> h1
    w3: Proj,           // xb -> h3
    w2: Proj,           // x += W2 h1
}

/// Runs a model on the GPU; holds the KV cache of one sequence.
pub struct GpuDecoder {
    ctx: Arc<GpuContext>,
    weights: GpuWeights,
    opts: DecoderOptions,
    step: StepUniform,
    act: Activations,
    embed: EmbedBinding,
    rope: Rope,
    _rope_table: RopeTable,
    swiglu: Elementwise,
    layers: Vec<LayerKernels>,
    final_norm_last: RmsNorm,
    output_last: MatvecBinding,
    final_norm_all: Option<(RmsNorm, MatmulBinding)>,
    attention: KvAttention,
    sampler: GpuSampler,
    sampler_config: Option<SamplerConfig>,
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
        let f32s = |n: usize| (n * 4) as u64;
        let buf = |label: &'static str, bytes: u64| g.storage_zeroed(label, bytes);
        let act = Activations {
            ids: buf("ids", (t * 4) as u64).await?,
            x: buf("x", f32s(t * c.dim)).await?,
            xb: buf("xb", f32s(t * c.dim)).await?,
            q: buf("q", f32s(t * c.dim)).await?,
            k: buf("k", f32s(t * c.kv_dim())).await?,
            v: buf("v", f32s(t * c.kv_dim())).await?,
            att: buf("att", f32s(t * c.dim)).await?,
            h1: buf("h1", f32s(t * c.ffn_dim)).await?,
            h3: buf("h3", f32s(t * c.ffn_dim)).await?,
            x_last: buf("x_last", f32s(c.dim)).await?,
            xn_last: buf("xn_last", f32s(c.dim)).await?,
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
        let rope = Rope::new(
            g,
            &step,
            &rope_table,
            &act.q,
            &act.k,
            RopeShape {
                max_tokens: t,
                n_heads: c.n_heads,
                n_kv_heads: c.n_kv_heads,
                head_dim: c.head_dim(),
            },
        )
        .await?;
        let swiglu = Elementwise::new(
            g,
            ElementwiseOp::SwiGlu,
            &step,
            &act.h1,
            &act.h3,
            t,
            c.ffn_dim,
        )
        .await?;
        let mut layers = Vec::with_capacity(c.n_layers);
        for lw in &w.layers {
            let a = &act;
            layers.push(LayerKernels {
                attn_norm: RmsNorm::new(g, &a.x, &lw.attn_norm, &a.xb, t, c.dim, c.rms_eps).await?,
                wq: Proj::new(g, &step, &lw.wq, &a.xb, &a.q, t, false).await?,
                wk: Proj::new(g, &step, &lw.wk, &a.xb, &a.k, t, false).await?,
                wv: Proj::new(g, &step, &lw.wv, &a.xb, &a.v, t, false).await?,
                wo: Proj::new(g, &step, &lw.wo, &a.att, &a.x, t, true).await?,
                ffn_norm: RmsNorm::new(g, &a.x, &lw.ffn_norm, &a.xb, t, c.dim, c.rms_eps).await?,
                w1: Proj::new(g, &step, &lw.w1, &a.xb, &a.h1, t, false).await?,
                w3: Proj::new(g, &step, &lw.w3, &a.xb, &a.h3, t, false).await?,
                w2: Proj::new(g, &step, &lw.w2, &a.h1, &a.x, t, true).await?,
            });
        }
        let final_norm_last = RmsNorm::new(
            g,
            &act.x_last,
            &w.output_norm,
            &act.xn_last,
            1,
            c.dim,
            c.rms_eps,
        )
        .await?;
        let output_last = w
            .output()
            .bind_matvec(g, &act.xn_last, &act.logits, false)
            .await?;
        let final_norm_all = match &act.logits_all {
            Some(all) => Some((
                RmsNorm::new(g, &act.x, &w.output_norm, &act.xb, t, c.dim, c.rms_eps).await?,
                w.output()
                    .bind_matmul(g, &step, &act.xb, all, t, false)
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
                q: &act.q,
                k: &act.k,
                v: &act.v,
                out: &act.att,
                step: &step,
            },
        )
        .await?;
        attention.reserve_async(g, t.min(opts.max_len)).await?;
        let sampler = GpuSampler::new(g, &act.logits, c.vocab_size).await?;
        Ok(GpuDecoder {
            ctx: Arc::clone(&ctx),
            weights,
            opts,
            step,
            act,
            embed,
            rope,
            _rope_table: rope_table,
            swiglu,
            layers,
            final_norm_last,
            output_last,
            final_norm_all,
            attention,
            sampler,
            sampler_config: None,
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
            let encoder = self.encode_batch(chunk).await?;
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
            let encoder = self.encode_batch(chunk).await?;
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
        self.sampler.encode(&mut encoder);
        self.ctx.submit(encoder).await?;
        Ok(self.sampler.read_token(&self.ctx).await?)
    }

    /// One decode step: feeds `token`, samples the next one on the GPU, and
    /// reads back its id: one encoder, one submit, 4 bytes read.
    pub async fn step_and_sample(
        &mut self,
        token: u32,
        cfg: &SamplerConfig,
        recent: &[u32],
        step: u32,
    ) -> Result<u32, Error> {
        self.configure_sampler(cfg).await?;
        let mut encoder = self.encode_batch(&[token]).await?;
        self.sampler.prepare(&self.ctx, step, recent)?;
        self.sampler.encode(&mut encoder);
        self.ctx.submit(encoder).await?;
        self.attention.advance(1)?;
        Ok(self.sampler.read_token(&self.ctx).await?)
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
    /// pass. Does not advance the cache length (the caller does, after the
    /// submit).
    async fn encode_batch(&mut self, tokens: &[u32]) -> Result<wgpu::CommandEncoder, Error> {
        let (vocab, dim) = (self.weights.config.vocab_size, self.weights.config.dim);
        let n = tokens.len();
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
        if let Some(&bad) = tokens.iter().find(|&&t| t as usize >= vocab) {
            return Err(DecodeError::TokenOutOfRange { token: bad, vocab }.into());
        }
        self.attention.reserve_async(&self.ctx, pos + n).await?;
        let step = StepParams::batch(pos, n, 0);
        self.step.write(&self.ctx, &step);
        self.ctx
            .queue()
            .write_buffer(&self.act.ids, 0, bytemuck::cast_slice(tokens));

        let mut encoder = self.ctx.encoder("forward");
        {
            let mut pass = begin(&mut encoder, "embed");
            // x = token_embd[ids]                                 (n, dim)
            self.embed.encode(&mut pass, n)?;
        }
        for (l, k) in self.layers.iter().enumerate() {
            {
                let mut pass = begin(&mut encoder, "attention in");
                // xb = rmsnorm(x) * attn_norm                        (n, dim)
                k.attn_norm.encode(&mut pass, n)?;
                // q = Wq xb (n, n_heads, hd); k, v = Wk xb, Wv xb (n, n_kv_heads, hd)
                k.wq.encode(&mut pass, n)?;
                k.wk.encode(&mut pass, n)?;
                k.wv.encode(&mut pass, n)?;
                // q, k rotated for positions pos..pos+n
                self.rope.encode(&mut pass, n)?;
            }
            // k, v -> cache; att = softmax(q K^T / sqrt(hd)) V     (n, dim)
            self.attention.encode(&mut encoder, l, &step)?;
            {
                let mut pass = begin(&mut encoder, "attention out + ffn");
                // x += Wo att                                       (n, dim)
                k.wo.encode(&mut pass, n)?;
                // xb = rmsnorm(x) * ffn_norm                        (n, dim)
                k.ffn_norm.encode(&mut pass, n)?;
                // h1 = W1 xb, h3 = W3 xb                            (n, ffn)
                k.w1.encode(&mut pass, n)?;
                k.w3.encode(&mut pass, n)?;
                // h1 = silu(h1) * h3                                (n, ffn)
                self.swiglu.encode(&mut pass, n)?;
                // x += W2 h1                                        (n, dim)
                k.w2.encode(&mut pass, n)?;
            }
        }
        // logits = Wout · rmsnorm(x[n-1]) * output_norm            (vocab)
        let row = (dim * 4) as u64;
        encoder.copy_buffer_to_buffer(&self.act.x, (n as u64 - 1) * row, &self.act.x_last, 0, row);
        {
            let mut pass = begin(&mut encoder, "logits");
            self.final_norm_last.encode(&mut pass, 1)?;
            self.output_last.encode(&mut pass);
            if let Some((norm, out)) = &self.final_norm_all {
                // every row's logits                            (n, vocab)
                norm.encode(&mut pass, n)?;
                out.encode(&mut pass, n)?;
            }
        }
        Ok(encoder)
    }
}

fn begin<'e>(encoder: &'e mut wgpu::CommandEncoder, label: &str) -> wgpu::ComputePass<'e> {
    encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
        label: Some(label),
        timestamp_writes: None,
    })
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
}
