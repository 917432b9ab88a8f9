//! Sampling from host logits (tests and one-off use).

use super::{GpuSampler, SamplerConfig};
use crate::gpu::{GpuContext, GpuError};

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
