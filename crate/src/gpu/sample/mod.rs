//! Token sampling on the GPU (`shaders/sample.wgsl`): the logits stay on the
//! GPU and a decode step reads back 4 bytes, the chosen token id.
//!
//! # Same token as the CPU
//!
//! For the same logits, settings, recent tokens and step, [`GpuSampler`]
//! picks exactly the token [`Sampler::sample`](crate::sampler::Sampler::sample)
//! picks. Both implement the exact sampler described in [`crate::sampler`]:
//!
//! - decisions are made on integers: monotonic u32 keys of the canonical
//!   logit bits (subnormals and `-0` read as `+0`, so flushing subnormals
//!   changes nothing) order the tokens, ties by id;
//! - the softmax weight of a token is an integer, `2^31 exp(-q/65536)` from a
//!   table ([`crate::sampler::exp_table`], computed on the host with
//!   `libm::exp` and uploaded here once), where `q` comes from two f32
//!   operations that WGSL guarantees to be correctly rounded (a difference of
//!   exact halves and a product with the host's `2/T`), so the GPU computes
//!   the same `q` as the CPU bit for bit; WGSL's `exp` is never used, and no
//!   operation can be changed by an FMA contraction or produce inf/NaN;
//! - every sum is a 64-bit integer (pairs of u32 atomics with an explicit
//!   carry on the GPU, u64 on the CPU): exact, so the order of the additions
//!   is irrelevant;
//! - top-k, top-p and the draw keep or pick a prefix of the order (key
//!   descending, id ascending) defined by an integer threshold; the CPU sorts
//!   and scans, the GPU finds the element ending the prefix with a radix select
//!   over the 64-bit `(key, !id)`: per byte, most significant first, a
//!   histogram of the counts (top-k) or weights (top-p, draw) of the elements
//!   that match the bytes chosen so far; the bin where the running sum from the
//!   top reaches the threshold gives the next byte. Same integers, same
//!   element. It stops early once the chosen bin holds a single element.
//!
//! # One workgroup
//!
//! The kernel is one dispatch of one 256-invocation workgroup: keys and the
//! penalty (distinct recent ids, deduplicated on the host), the largest key
//! (greedy ends here), the top-k select over the whole vocabulary (up to 8
//! passes), the weights and a compaction of the candidates with a positive
//! weight (tokens below `exp(-22)` of the top one drop out), the top-p select
//! and the draw over the candidates only. Scratch: `4 * vocab` u32.
//!
//! # Use
//!
//! [`GpuSampler::new`] binds the logits buffer once; [`GpuSampler::configure`]
//! writes the settings, [`GpuSampler::prepare`] the step and recent tokens
//! (both with `queue.write_buffer`, before the submit);
//! [`GpuSampler::encode`] records the dispatch into the forward pass's
//! encoder; [`GpuSampler::read_token`] (or a copy of
//! [`GpuSampler::token_buffer`]) gives the token.
//!
//! # Rows
//!
//! [`GpuSampler::new_rows`] samples up to `rows` ([`SAMPLE_ROWS`] at most)
//! rows of a `(rows, vocab)` logits buffer in one dispatch of one workgroup
//! per row, each row with its own step, recent ids and scratch, its id at
//! `token[row]` (speculative verification: [`rows`]). The single sampler is
//! the case `rows = 1`: the same kernel, dispatched once.
//!
//! # Log-probabilities
//!
//! [`GpuLogprobs`] (entry point `logprobs` of the same shader) binds the
//! sampler's logits and token buffers; dispatched after the sampler in the
//! same submit, it writes the chosen token, its log-probability and the top
//! entries to one small buffer that is read back instead of the token. Only
//! requests for log-probabilities create and dispatch it
//! ([`crate::logprobs`] has the definition and the CPU reference).

mod host;
mod logprobs;
mod rows;

pub use host::{logprobs_host, sample_host};
pub use logprobs::GpuLogprobs;

use super::keys::SAMPLE_ROWS;
use super::{GpuContext, GpuError, KernelKey};
use crate::sampler::{
    exp_table, penalized_ids, SampleTrace, SamplerConfig, SamplerError, SamplingConstants,
    EXP_TABLE_LEN,
};

const K: &str = "sample";

/// The value the kernel writes when the logits are unusable.
pub const NO_TOKEN: u32 = u32::MAX;

/// Recent-token slots allocated at least (grown by `configure` if the window
/// is larger).
const MIN_RECENT: usize = 64;

/// The shader's `Params` uniform (the settings).
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    vocab: u32,
    greedy: u32,
    top_k: u32,
    top_p_q: u32,
    floor_w: u32,
    seed_lo: u32,
    seed_hi: u32,
    penalize: u32,
    pen_pos: f32,
    pen_neg: f32,
    inv2t: f32,
    hcut: f32,
    rows: u32,
    _pad: [u32; 3],
}

/// The shader's `RowStep`: one row's part of the `StepData` uniform.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct RowStep {
    step: u32,
    n_recent: u32,
    /// Where the row's ids start in the recent buffer.
    recent_at: u32,
    _pad: u32,
}

/// The shader's `StepData` uniform (per submit): a [`RowStep`] per row.
type StepData = [RowStep; SAMPLE_ROWS as usize];

const _: () = assert!(std::mem::size_of::<Params>() == 64);
const _: () = assert!(std::mem::size_of::<StepData>() == 16 * SAMPLE_ROWS as usize);

/// u32 slots of the token buffer per row's trace (5 used).
const TRACE: usize = 6;

impl Params {
    fn new(vocab: u32, rows: u32, cfg: &SamplerConfig, c: &SamplingConstants) -> Params {
        Params {
            vocab,
            greedy: u32::from(c.greedy),
            top_k: if c.top_k < vocab { c.top_k } else { 0 },
            top_p_q: c.top_p_q,
            floor_w: c.floor_w,
            seed_lo: cfg.seed as u32,
            seed_hi: (cfg.seed >> 32) as u32,
            penalize: u32::from(c.penalize),
            pen_pos: c.pen_pos,
            pen_neg: c.pen_neg,
            inv2t: c.inv2t,
            hcut: c.hcut,
            rows,
            _pad: [0; 3],
        }
    }
}

/// Samples one token from a `(vocab)` f32 logits buffer (or one per row of
/// a `(rows, vocab)` one: [`GpuSampler::new_rows`]), bound once.
#[derive(Debug)]
pub struct GpuSampler {
    vocab: usize,
    /// Rows the buffers hold (1 for [`GpuSampler::new`]).
    rows: usize,
    config: SamplerConfig,
    constants: SamplingConstants,
    logits: wgpu::Buffer,
    params: wgpu::Buffer,
    step: wgpu::Buffer,
    recent: wgpu::Buffer,
    /// Recent-id slots per row.
    recent_capacity: usize,
    table: wgpu::Buffer,
    scratch: wgpu::Buffer,
    token: wgpu::Buffer,
    pipeline: wgpu::ComputePipeline,
    bind_group: wgpu::BindGroup,
}

impl GpuSampler {
    /// A sampler over the first `vocab` f32 values of `logits` (a storage
    /// buffer of at least `4 * vocab` bytes), configured with
    /// [`SamplerConfig::default`].
    pub async fn new(
        ctx: &GpuContext,
        logits: &wgpu::Buffer,
        vocab: usize,
    ) -> Result<GpuSampler, GpuError> {
        GpuSampler::new_rows(ctx, logits, vocab, 1).await
    }

    /// A sampler of `rows` (1..=[`SAMPLE_ROWS`]) rows of `vocab` f32 values
    /// each, row `r` at `logits[r * vocab..]` (a storage buffer of at least
    /// `4 * rows * vocab` bytes): see [`GpuSampler::prepare_rows`].
    pub async fn new_rows(
        ctx: &GpuContext,
        logits: &wgpu::Buffer,
        vocab: usize,
        rows: usize,
    ) -> Result<GpuSampler, GpuError> {
        if rows == 0 || rows > SAMPLE_ROWS as usize {
            return Err(GpuError::shape(
                K,
                format!("{rows} rows (1..={SAMPLE_ROWS})"),
            ));
        }
        if vocab == 0 || vocab >= NO_TOKEN as usize {
            return Err(GpuError::shape(
                K,
                format!("vocab {vocab} is not in 1..2^32-1"),
            ));
        }
        let logit_bytes = (rows * vocab) as u64 * 4;
        if logits.size() < logit_bytes {
            return Err(GpuError::shape(
                K,
                format!(
                    "logits: {} bytes, {rows} rows of vocab {vocab} need {logit_bytes}",
                    logits.size()
                ),
            ));
        }
        if !logits.usage().contains(wgpu::BufferUsages::STORAGE) {
            return Err(GpuError::shape(K, "logits: not a storage buffer"));
        }
        let scratch_bytes = logit_bytes * 4; // per row: keys and 3 candidate arrays
        ctx.check_binding_size("sample scratch", scratch_bytes)?;
        ctx.check_binding_size("sample logits", logit_bytes)?;
        let config = SamplerConfig::default();
        let constants = config.constants();
        let pipeline = ctx.pipeline(KernelKey::Sample).await?;
        let params = ctx.uniform(
            "sample params",
            &Params::new(vocab as u32, rows as u32, &config, &constants),
        );
        let step = ctx.uniform("sample step", &StepData::default());
        let recent_capacity = MIN_RECENT.max(config.repetition_window);
        let recent = ctx
            .storage_zeroed("sample recent", (rows * recent_capacity) as u64 * 4)
            .await?;
        let table = ctx.storage_u32("sample exp table", exp_table()).await?;
        let scratch = ctx.storage_zeroed("sample scratch", scratch_bytes).await?;
        let token_bytes = ((rows * (1 + TRACE)) as u64 * 4).max(32);
        let token = ctx.storage_zeroed("sample token", token_bytes).await?;
        let bind_group = bind(
            ctx,
            &pipeline,
            logits,
            logit_bytes,
            &params,
            &step,
            &recent,
            &table,
            &scratch,
            &token,
        )
        .await?;
        Ok(GpuSampler {
            vocab,
            rows,
            config,
            constants,
            logits: logits.clone(),
            params,
            step,
            recent,
            recent_capacity,
            table,
            scratch,
            token,
            pipeline,
            bind_group,
        })
    }

    pub fn vocab(&self) -> usize {
        self.vocab
    }

    pub fn config(&self) -> &SamplerConfig {
        &self.config
    }

    /// Validates and writes the settings (effective at the next submit).
    /// Grows the recent-token buffer (and rebinds) when the window needs it.
    pub async fn configure(
        &mut self,
        ctx: &GpuContext,
        config: &SamplerConfig,
    ) -> Result<(), GpuError> {
        config.validate()?;
        let constants = config.constants();
        // Ids past the vocabulary are dropped, so at most `vocab` slots.
        let needed = config.repetition_window.min(self.vocab);
        if constants.penalize && needed > self.recent_capacity {
            let capacity = needed;
            let recent = ctx
                .storage_zeroed("sample recent", (self.rows * capacity) as u64 * 4)
                .await?;
            let logit_bytes = (self.rows * self.vocab) as u64 * 4;
            self.bind_group = bind(
                ctx,
                &self.pipeline,
                &self.logits,
                logit_bytes,
                &self.params,
                &self.step,
                &recent,
                &self.table,
                &self.scratch,
                &self.token,
            )
            .await?;
            self.recent = recent;
            self.recent_capacity = capacity;
        }
        let params = Params::new(self.vocab as u32, self.rows as u32, config, &constants);
        ctx.queue()
            .write_buffer(&self.params, 0, bytemuck::bytes_of(&params));
        self.config = config.clone();
        self.constants = constants;
        Ok(())
    }

    /// Writes the step (the RNG draw index) and the distinct ids among the
    /// last `repetition_window` of `recent` (the prompt and the tokens so
    /// far), effective at the next submit.
    pub fn prepare(&self, ctx: &GpuContext, step: u32, recent: &[u32]) -> Result<(), GpuError> {
        self.prepare_rows(ctx, step, recent, &[])
    }

    /// The distinct ids among the last `repetition_window` of `recent` that
    /// the penalty applies to (none without a penalty).
    fn penalized(&self, recent: &[u32]) -> Result<Vec<u32>, GpuError> {
        if !self.constants.penalize {
            return Ok(Vec::new());
        }
        let mut ids = penalized_ids(recent, self.config.repetition_window);
        ids.retain(|&id| (id as usize) < self.vocab);
        if ids.len() > self.recent_capacity {
            return Err(GpuError::Internal(format!(
                "sample: {} recent ids for {} slots",
                ids.len(),
                self.recent_capacity
            )));
        }
        Ok(ids)
    }

    /// Records the sampling dispatch (one workgroup: row 0) into `pass`.
    pub fn encode(&self, pass: &mut wgpu::ComputePass<'_>) -> usize {
        one_workgroup(pass, &self.pipeline, &self.bind_group)
    }

    /// Records the sampling dispatch in a compute pass of its own.
    pub fn encode_pass(&self, encoder: &mut wgpu::CommandEncoder) {
        in_own_pass(encoder, "sample", |pass| self.encode(pass));
    }

    /// The u32 result at offset 0: the token id, or [`NO_TOKEN`] when the
    /// logits hold NaN or +inf or are all -inf (`STORAGE | COPY_SRC |
    /// COPY_DST`, 32 bytes: the trace follows the token).
    pub fn token_buffer(&self) -> &wgpu::Buffer {
        &self.token
    }

    /// Reads the token back (4 bytes); [`SamplerError::NoFiniteLogits`] for
    /// [`NO_TOKEN`].
    pub async fn read_token(&self, ctx: &GpuContext) -> Result<u32, GpuError> {
        let t = ctx.read_back_u32(&self.token, 1).await?[0];
        token_result(t)
    }

    /// The token and the integers the kernel decided on (for tests: they
    /// equal [`crate::sampler::Sampler::sample_traced`]'s).
    pub async fn read_trace(&self, ctx: &GpuContext) -> Result<SampleTrace, GpuError> {
        let v = ctx.read_back_u32(&self.token, 6).await?;
        Ok(SampleTrace {
            token: token_result(v[0])?,
            candidates: v[1],
            total: u64::from(v[2]) | (u64::from(v[3]) << 32),
            drawn_total: u64::from(v[4]) | (u64::from(v[5]) << 32),
        })
    }
}

/// The token a read-back value stands for.
pub fn token_result(t: u32) -> Result<u32, GpuError> {
    if t == NO_TOKEN {
        Err(SamplerError::NoFiniteLogits.into())
    } else {
        Ok(t)
    }
}

#[allow(clippy::too_many_arguments)]
async fn bind(
    ctx: &GpuContext,
    pipeline: &wgpu::ComputePipeline,
    logits: &wgpu::Buffer,
    logit_bytes: u64,
    params: &wgpu::Buffer,
    step: &wgpu::Buffer,
    recent: &wgpu::Buffer,
    table: &wgpu::Buffer,
    scratch: &wgpu::Buffer,
    token: &wgpu::Buffer,
) -> Result<wgpu::BindGroup, GpuError> {
    debug_assert_eq!(table.size(), EXP_TABLE_LEN as u64 * 4);
    fn entry(binding: u32, buffer: &wgpu::Buffer, size: Option<u64>) -> wgpu::BindGroupEntry<'_> {
        wgpu::BindGroupEntry {
            binding,
            resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                buffer,
                offset: 0,
                size: size.and_then(wgpu::BufferSize::new),
            }),
        }
    }
    let entries = [
        entry(0, params, None),
        entry(1, step, None),
        entry(2, logits, Some(logit_bytes)),
        entry(3, recent, None),
        entry(4, table, None),
        entry(5, scratch, None),
        entry(6, token, None),
    ];
    ctx.scoped(|| {
        ctx.device().create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("sample bindings"),
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        })
    })
    .await
}

/// Records a one-workgroup dispatch of `pipeline` into `pass`; returns the
/// dispatch count (1).
fn one_workgroup(
    pass: &mut wgpu::ComputePass<'_>,
    pipeline: &wgpu::ComputePipeline,
    bind_group: &wgpu::BindGroup,
) -> usize {
    pass.set_pipeline(pipeline);
    pass.set_bind_group(0, bind_group, &[]);
    pass.dispatch_workgroups(1, 1, 1);
    1
}

/// Runs `record` in a compute pass of its own, labelled `label`.
fn in_own_pass(
    encoder: &mut wgpu::CommandEncoder,
    label: &str,
    record: impl FnOnce(&mut wgpu::ComputePass<'_>) -> usize,
) {
    let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
        label: Some(label),
        timestamp_writes: None,
    });
    record(&mut pass);
}
