//! Sampling from host logits (tests and one-off use).

use super::{GpuLogprobs, GpuSampler, SamplerConfig};
use crate::gpu::{GpuContext, GpuError};
use crate::logprobs::TokenLogprobs;

/// Samples from host `logits` on the GPU (uploads them, samples once, reads
/// the token back): for tests and one-off use.
pub async fn sample_host(
    ctx: &GpuContext,
    logits: &[f32],
    config: &SamplerConfig,
    recent: &[u32],
    step: u32,
) -> Result<u32, GpuError> {
    let buffer = ctx.storage_f32("sample logits", logits).await?;
    let mut sampler = GpuSampler::new(ctx, &buffer, logits.len()).await?;
    sampler.configure(ctx, config).await?;
    sampler.prepare(ctx, step, recent)?;
    let mut encoder = ctx.encoder("sample");
    sampler.encode_pass(&mut encoder);
    ctx.submit(encoder).await?;
    sampler.read_token(ctx).await
}

/// [`sample_host`], then the log-probabilities of the chosen token and the
/// `top` most likely ones (one submit, one read-back): for tests.
pub async fn logprobs_host(
    ctx: &GpuContext,
    logits: &[f32],
    config: &SamplerConfig,
    recent: &[u32],
    step: u32,
    top: usize,
) -> Result<TokenLogprobs, GpuError> {
    let buffer = ctx.storage_f32("sample logits", logits).await?;
    let mut sampler = GpuSampler::new(ctx, &buffer, logits.len()).await?;
    sampler.configure(ctx, config).await?;
    sampler.prepare(ctx, step, recent)?;
    let mut lp = GpuLogprobs::new(ctx, &sampler).await?;
    lp.set_top(ctx, top)?;
    let mut encoder = ctx.encoder("sample");
    sampler.encode_pass(&mut encoder);
    lp.encode_pass(&mut encoder);
    ctx.submit(encoder).await?;
    lp.read(ctx).await
}
