//! Speculative verification on the GPU: [`GpuDecoder::verify`].
//!
//! # Layout
//!
//! `tokens` (the token sampled last, then up to `MAX_VERIFY - 1` drafted
//! ones) go through the forward pass as one batch — every product runs on
//! a verification kernel, which reads each weight once for all the columns
//! of a workgroup, and attention covers the cache plus the batch's own
//! causal positions — then through a head of its own ([`VerifyHead`]): the
//! final norm of every row, the output projection of every row into a
//! `(rows, vocab)` logits buffer (a verification kernel again), and the
//! sampler
//! ([`GpuSampler::new_rows`]) with one workgroup per row: row `i` draws with
//! index `step + i`, its repetition window seeing `recent` followed by
//! `tokens[1..=i]`. One write of the ids, one of the `Step` uniform, one of
//! the rows' settings, one compute pass, one submit, and a read-back of the
//! `n` token ids (`4 n` bytes). A draft longer than the head's rows runs as
//! several such batches, stopping at the first that rejects a token.
//!
//! The verification bindings and the head are made by the decoder's first
//! verification ([`GpuDecoder::prepare_verify`]), not by
//! [`GpuDecoder::new`]: their pipelines (two shapes per product variant)
//! took 2.5 s to compile on lavapipe for the demo model, a cost a session
//! that never drafts should not pay at load.
//!
//! # Exactness
//!
//! Every row's logits are bit-identical to those of a decode step feeding
//! that row's token after the rows before it, so a row's sample is exactly
//! the one plain decoding draws at that step (the sampler is the same
//! integer function of the logits, draw index and recent tokens), greedy or
//! seeded, and the keys and values left in the cache are the decode steps'.
//! Per kernel:
//!
//! - Products run on [`GpuContext::verify_kernels`]: the decode matvec's
//!   shape ([`crate::gpu::keys::MatvecShape::verify_shapes`]) with the same
//!   lanes, reduction (workgroup memory or subgroup) and Q6_K runs, 2 tokens
//!   per workgroup for a batch of two positions, 4 for longer ones. A (row, token) sum is each lane's units in unit order
//!   through the same `unit_dot` (= `deq_dot(unit_deq(..))`), then the lanes
//!   in lane order, then the same norm scale and epilogue: the order depends
//!   on the lanes alone, not on how many rows or tokens share a workgroup.
//!   (The prefill kernels — the GPU preset's tiles, the CPU preset's 4-token
//!   groups beside a different attention path — sum in other orders: up to
//!   2.3e-4 apart on the fixtures, enough to move a seeded draw.)
//! - Attention takes the split path for every row
//!   ([`crate::gpu::attention::KvAttention::encode_split`]): the splits, block
//!   sums and `combine` of a decode step, positions past the row weighted
//!   exactly 0.
//! - RMSNorm, RoPE and the cache writes are per row and position already;
//!   the embedding is a copy.
//!
//! `tests/gpu_speculative.rs` checks the bit equality on every fixture model
//! and the demo model with both kernel presets
//! (`verify_logits_equal_decode_steps_bit_for_bit`), and that verification
//! gives the ids of sequential steps, greedy and sampled. Compilers are free
//! to contract `a * b + c` into a fused multiply-add, but they do so per
//! expression of the one shader both paths share; the test is what holds
//! them to it on each adapter it runs on.

use super::layers::bind_verify;
use super::{GpuDecoder, Head, Ids, Recorder};
use crate::error::Error;
use crate::gpu::kernels::RmsNorm;
use crate::gpu::keys::SAMPLE_ROWS;
use crate::gpu::profile::{Interval, KernelClass, Profiler};
use crate::gpu::qmatmul::{Norm, Output, VerifyBinding};
use crate::gpu::sample::token_result;
use crate::gpu::step::StepUniform;
use crate::gpu::weights::GpuWeights;
use crate::gpu::{Epilogue, GpuContext, GpuError, GpuSampler};
use crate::sampler::SamplerConfig;

/// The most tokens one verification batch holds (the sampler's rows); a
/// decoder holds fewer when its prefill chunk is smaller.
pub const MAX_VERIFY: usize = SAMPLE_ROWS as usize;

/// The verification head: every row's logits and their sampler, bound once.
pub(super) struct VerifyHead {
    logits: wgpu::Buffer,  // every row's logits                    (rows, vocab)
    norm: RmsNorm,         // x -> xw, ss                         (rows, dim)
    output: VerifyBinding, // logits = Wout rmsnorm(xw)         (rows, vocab)
    output_format: crate::gpu::QFormat,
    output_bytes: u64,
    sampler: GpuSampler,
    config: Option<SamplerConfig>,
}

impl VerifyHead {
    /// Binds the head to the decoder's activations (`t`: its prefill chunk)
    /// for batches of up to `rows` (≤ `t`) tokens.
    pub(super) async fn new(
        g: &GpuContext,
        step: &StepUniform,
        w: &GpuWeights,
        act: &super::Activations,
        t: usize,
        rows: usize,
    ) -> Result<VerifyHead, GpuError> {
        let c = &w.config;
        let logits = g
            .storage_zeroed("verify logits", (rows * c.vocab_size) as u64 * 4)
            .await?;
        let norm = RmsNorm::new(
            g,
            step,
            &act.x,
            &w.output_norm,
            &act.xw,
            &act.ss,
            t,
            c.dim,
            false,
        )
        .await?;
        let out = w.output();
        let output = out
            .bind_verify_to(
                g,
                step,
                &act.xw,
                Output::dense(&logits, out, Epilogue::Store),
                Some(Norm {
                    ss: &act.ss,
                    groups: RmsNorm::groups(c.dim),
                    eps: c.rms_eps,
                }),
                rows,
            )
            .await?;
        let sampler = GpuSampler::new_rows(g, &logits, c.vocab_size, rows).await?;
        Ok(VerifyHead {
            logits,
            norm,
            output,
            output_format: out.format(),
            output_bytes: out.gpu_bytes(),
            sampler,
            config: None,
        })
    }

    /// Records the head for the batch's `n` rows.
    pub(super) fn record(&self, rec: &mut Recorder<'_, '_>, n: usize) -> Result<(), GpuError> {
        rec.run(KernelClass::Norm, 0, |p| self.norm.encode(p, n))?;
        rec.run(
            KernelClass::Matmul(self.output_format),
            self.output_bytes,
            |p| self.output.encode(p, n),
        )?;
        rec.run(KernelClass::Sample, 0, |p| {
            Ok(self.sampler.encode_rows(p, n))
        })
    }
}

impl GpuDecoder {
    /// The most tokens one verification batch holds.
    pub fn verify_rows(&self) -> usize {
        MAX_VERIFY.min(self.opts.prefill_chunk)
    }

    /// Binds what verification needs, once: every product's verification
    /// kernels (their pipelines compiled now: the first draft of a session
    /// pays for them, a decoder that never drafts does not) and the head.
    /// Every verification batch calls it; a caller that times verifications
    /// calls it first. Nothing to do when a batch holds one
    /// token (verification is then the decode step).
    pub async fn prepare_verify(&mut self) -> Result<(), Error> {
        let rows = self.verify_rows();
        if self.verify.is_some() || rows < 2 {
            return Ok(());
        }
        let (g, w, t) = (&*self.ctx, &self.weights, self.opts.prefill_chunk);
        let (step, act) = (&self.step, &self.act);
        bind_verify(&mut self.layers, g, step, w, act, self.layout, rows).await?;
        self.verify = Some(VerifyHead::new(g, step, w, act, t, rows).await?);
        Ok(())
    }

    /// Speculative verification ([`crate::generate::Backend::verify`]):
    /// feeds `tokens` (the token sampled last, then the drafted ones) at the
    /// next positions and returns `out`, where `out[i]` follows
    /// `tokens[..=i]`, drawn with index `step + i` from `cfg`, its
    /// repetition window seeing `recent` followed by `tokens[1..=i]`. Stops
    /// after the first `i` with `out[i] != tokens[i + 1]`. The cache then
    /// holds every position fed (at least those of `tokens[..out.len()]`);
    /// the caller truncates what it rejects. Afterwards
    /// [`GpuDecoder::logits`] does not hold the last row's logits (feed or
    /// step before sampling again).
    pub async fn verify(
        &mut self,
        tokens: &[u32],
        cfg: &SamplerConfig,
        recent: &[u32],
        step: u32,
    ) -> Result<Vec<u32>, Error> {
        self.check_fits(tokens.len())?;
        let mut out = Vec::with_capacity(tokens.len());
        let per_pass = self.verify_rows();
        let mut start = 0;
        while start < tokens.len() {
            let end = (start + per_pass).min(tokens.len());
            // Row j of this batch follows tokens[..=start + j]: its window
            // sees `recent` and tokens[1..=start], then the batch's draft.
            let seen;
            let recent_here = if start == 0 {
                recent
            } else {
                seen = [recent, &tokens[1..=start]].concat();
                &seen
            };
            let batch = &tokens[start..end];
            let step_here = step.wrapping_add(start as u32);
            let ids = if batch.len() == 1 {
                // One position: the decode step itself.
                let t = self.step_and_sample(batch[0], cfg, recent_here, step_here);
                vec![t.await?]
            } else {
                self.verify_batch(batch, cfg, recent_here, step_here, None)
                    .await?
            };
            for (j, id) in ids.into_iter().enumerate() {
                let id = token_result(id)?;
                out.push(id);
                if tokens.get(start + j + 1) != Some(&id) {
                    return Ok(out);
                }
            }
            start = end;
        }
        Ok(out)
    }

    /// Feeds `tokens` (2..=[`GpuDecoder::verify_rows`]) as one
    /// verification batch and reads back every row's logits (row `i`
    /// follows `tokens[..=i]`): what [`GpuDecoder::verify`] samples, for
    /// tests that compare them with decode steps'. The cache holds the
    /// tokens afterwards.                                       (n, vocab)
    pub async fn verify_logits(&mut self, tokens: &[u32]) -> Result<Vec<Vec<f32>>, Error> {
        self.check_batch(tokens)?;
        self.verify_batch(tokens, &SamplerConfig::greedy(), &[], 0, None)
            .await?;
        let vocab = self.config().vocab_size;
        let flat = self
            .ctx
            .read_back_f32(&self.head()?.logits, tokens.len() * vocab)
            .await?;
        Ok(flat.chunks_exact(vocab).map(<[f32]>::to_vec).collect())
    }

    /// One verification batch of `tokens` (2..=[`GpuDecoder::verify_rows`])
    /// with the GPU time of every kernel class from timestamp queries
    /// (`profiler` from [`Profiler::new`]; `codellama bench
    /// --verify-draft`): the raw ids of every row and the intervals. The
    /// cache holds the tokens afterwards.
    pub async fn verify_profiled(
        &mut self,
        tokens: &[u32],
        cfg: &SamplerConfig,
        recent: &[u32],
        step: u32,
        profiler: &mut Profiler,
    ) -> Result<(Vec<u32>, Vec<Interval>), Error> {
        self.check_batch(tokens)?;
        profiler.reset();
        let ids = self
            .verify_batch(tokens, cfg, recent, step, Some(&mut *profiler))
            .await?;
        Ok((ids, profiler.read(&self.ctx).await?))
    }

    /// `tokens` fit one verification batch and the cache.
    fn check_batch(&self, tokens: &[u32]) -> Result<(), Error> {
        if !(2..=self.verify_rows()).contains(&tokens.len()) {
            return Err(GpuError::shape(
                "verify",
                format!("{} tokens (2..={})", tokens.len(), self.verify_rows()),
            )
            .into());
        }
        self.check_fits(tokens.len())
    }

    /// One batch of 2..=rows tokens: the raw ids of every row (with
    /// `profiler`, its timestamps written and resolved too).
    async fn verify_batch(
        &mut self,
        tokens: &[u32],
        cfg: &SamplerConfig,
        recent: &[u32],
        step: u32,
        mut profiler: Option<&mut Profiler>,
    ) -> Result<Vec<u32>, Error> {
        self.prepare_verify().await?;
        let head = self.verify.as_mut().ok_or_else(not_prepared)?;
        if head.config.as_ref() != Some(cfg) {
            head.config = None;
            head.sampler.configure(&self.ctx, cfg).await?;
            head.config = Some(cfg.clone());
        }
        head.sampler
            .prepare_rows(&self.ctx, step, recent, &tokens[1..])?;
        let mut encoder = self
            .encode(Ids::Host(tokens), Head::Verify, profiler.as_deref_mut())
            .await?;
        if let Some(p) = profiler {
            p.resolve(&mut encoder);
        }
        self.ctx.submit(encoder).await?;
        self.attention.advance(tokens.len())?;
        Ok(self
            .head()?
            .sampler
            .read_tokens(&self.ctx, tokens.len())
            .await?)
    }

    /// The verification head ([`GpuDecoder::prepare_verify`] made it).
    fn head(&self) -> Result<&VerifyHead, GpuError> {
        self.verify.as_ref().ok_or_else(not_prepared)
    }
}

pub(super) fn not_prepared() -> GpuError {
    GpuError::shape("verify", "verification head not made")
}
