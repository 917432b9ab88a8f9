//! Per-token log-probabilities on the GPU (`shaders/sample.wgsl`, entry point
//! `logprobs`; the definition and the CPU reference are in
//! [`crate::logprobs`]).
//!
//! [`GpuLogprobs`] binds the sampler's logits and token buffers once. Its
//! dispatch follows the sampler's in the same submit and writes the chosen
//! id, its logprob and the top entries into one small buffer, read back
//! instead of the sampler's token (one read-back of `16 + 8 * top` bytes).
//! A decoder creates it on the first request that asks for log-probabilities:
//! without one, nothing of it exists, so nothing of it is dispatched or read.

use super::{in_own_pass, one_workgroup, token_result, GpuSampler, K};
use crate::gpu::{GpuContext, GpuError, KernelKey};
use crate::logprobs::{check_top, TokenLogprobs, TopLogprob, MAX_TOP_LOGPROBS};

/// u32 words of the output: header (id, logprob, count, 0) and the pairs.
const OUT_WORDS: usize = 4 + 2 * MAX_TOP_LOGPROBS;

/// The shader's `LpParams` uniform.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
struct LpParams {
    vocab: u32,
    top: u32,
    _pad: [u32; 2],
}

/// The log-probabilities kernel, bound to one [`GpuSampler`]'s buffers.
#[derive(Debug)]
pub struct GpuLogprobs {
    vocab: u32,
    top: usize,
    params: wgpu::Buffer,
    out: wgpu::Buffer,
    pipeline: wgpu::ComputePipeline,
    bind_group: wgpu::BindGroup,
}

impl GpuLogprobs {
    /// Binds to `sampler`'s logits and token buffers; `top` starts at 0.
    pub async fn new(ctx: &GpuContext, sampler: &GpuSampler) -> Result<GpuLogprobs, GpuError> {
        let vocab = sampler.vocab as u32;
        let pipeline = ctx.pipeline(KernelKey::Logprobs).await?;
        let first = LpParams {
            vocab,
            top: 0,
            _pad: [0; 2],
        };
        let params = ctx.uniform("logprobs params", &first);
        let out = ctx
            .storage_zeroed("logprobs out", OUT_WORDS as u64 * 4)
            .await?;
        let logit_bytes = u64::from(vocab) * 4;
        fn entry(
            binding: u32,
            buffer: &wgpu::Buffer,
            size: Option<u64>,
        ) -> wgpu::BindGroupEntry<'_> {
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
            entry(2, &sampler.logits, Some(logit_bytes)),
            entry(6, &sampler.token, None),
            entry(7, &params, None),
            entry(8, &out, None),
        ];
        let bind_group = ctx
            .scoped(|| {
                ctx.device().create_bind_group(&wgpu::BindGroupDescriptor {
                    label: Some("logprobs bindings"),
                    layout: &pipeline.get_bind_group_layout(0),
                    entries: &entries,
                })
            })
            .await?;
        Ok(GpuLogprobs {
            vocab,
            top: 0,
            params,
            out,
            pipeline,
            bind_group,
        })
    }

    /// Sets how many top entries the next dispatches report (0..=20).
    pub fn set_top(&mut self, ctx: &GpuContext, top: usize) -> Result<(), GpuError> {
        check_top(top)?;
        if top != self.top {
            let params = LpParams {
                vocab: self.vocab,
                top: top as u32,
                _pad: [0; 2],
            };
            ctx.queue()
                .write_buffer(&self.params, 0, bytemuck::bytes_of(&params));
            self.top = top;
        }
        Ok(())
    }

    /// Records the dispatch (one workgroup) into `pass`, after the sampler's.
    pub fn encode(&self, pass: &mut wgpu::ComputePass<'_>) -> usize {
        one_workgroup(pass, &self.pipeline, &self.bind_group)
    }

    /// Records the dispatch in a compute pass of its own.
    pub fn encode_pass(&self, encoder: &mut wgpu::CommandEncoder) {
        in_own_pass(encoder, "logprobs", |pass| self.encode(pass));
    }

    /// Reads the token and its log-probabilities back (one read-back);
    /// [`crate::sampler::SamplerError::NoFiniteLogits`] when the sampler
    /// found no usable logits.
    pub async fn read(&self, ctx: &GpuContext) -> Result<TokenLogprobs, GpuError> {
        let words = ctx.read_back_u32(&self.out, 4 + 2 * self.top).await?;
        parse(&words)
    }
}

/// The output words as [`TokenLogprobs`].
fn parse(words: &[u32]) -> Result<TokenLogprobs, GpuError> {
    let id = token_result(words[0])?;
    let n = words[2] as usize;
    if n > MAX_TOP_LOGPROBS || words.len() < 4 + 2 * n {
        return Err(GpuError::Internal(format!(
            "{K}: logprobs reported {n} top entries for {} words",
            words.len()
        )));
    }
    Ok(TokenLogprobs {
        id,
        logprob: f32::from_bits(words[1]),
        top: words[4..4 + 2 * n]
            .chunks_exact(2)
            .map(|p| TopLogprob {
                id: p[0],
                logprob: f32::from_bits(p[1]),
            })
            .collect(),
    })
}
