//! Single products from host slices (tests and tools): upload the input,
//! bind, run one submit, read the output back. The engine itself binds once
//! and records dispatches (`bind.rs`).

use super::bind::{BatchKernel, Output};
use super::{GpuMatrix, K};
use crate::gpu::keys::Epilogue;
use crate::gpu::step::{StepParams, StepUniform};
use crate::gpu::{GpuContext, GpuError};

impl GpuMatrix {
    /// Uploads `x`, runs `y = W x` and reads `y` back (tests, tools).
    pub async fn matvec_host_async(
        &self,
        ctx: &GpuContext,
        x: &[f32],
    ) -> Result<Vec<f32>, GpuError> {
        if x.len() != self.cols {
            return Err(GpuError::shape(
                K,
                format!(
                    "{}: x has {} values, cols = {}",
                    self.name,
                    x.len(),
                    self.cols
                ),
            ));
        }
        let xb = storage_x(ctx, "matvec x", x).await?;
        let yb = ctx.storage_zeroed("matvec y", 4 * self.rows as u64).await?;
        let binding = self.bind_matvec(ctx, &xb, &yb, false).await?;
        let mut encoder = ctx.encoder("matvec");
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("matvec"),
                timestamp_writes: None,
            });
            binding.encode(&mut pass);
        }
        ctx.submit(encoder).await?;
        ctx.read_back_f32(&yb, self.rows).await
    }

    /// Blocking [`GpuMatrix::matvec_host_async`] (native only).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn matvec_host(&self, ctx: &GpuContext, x: &[f32]) -> Result<Vec<f32>, GpuError> {
        ctx.block_on(self.matvec_host_async(ctx, x))
    }

    /// Uploads `x` (`(tokens, cols)` f32), runs `Y = X Wᵀ` with the device's
    /// batch kernel and reads `Y` (`(tokens, rows)` f32) back (tests, tools).
    pub async fn matmul_host_async(
        &self,
        ctx: &GpuContext,
        x: &[f32],
        tokens: usize,
    ) -> Result<Vec<f32>, GpuError> {
        self.matmul_host_with_async(ctx, x, tokens, ctx.batch_kernel())
            .await
    }

    /// [`GpuMatrix::matmul_host_async`] with the given batch kernel.
    pub async fn matmul_host_with_async(
        &self,
        ctx: &GpuContext,
        x: &[f32],
        tokens: usize,
        kernel: BatchKernel,
    ) -> Result<Vec<f32>, GpuError> {
        if tokens == 0 || x.len() != tokens.saturating_mul(self.cols) {
            return Err(GpuError::shape(
                K,
                format!(
                    "{}: x has {} values, (tokens = {tokens}, cols = {}) expected",
                    self.name,
                    x.len(),
                    self.cols
                ),
            ));
        }
        let step = StepUniform::new(ctx);
        step.write(ctx, &StepParams::batch(0, tokens, 0));
        let xb = storage_x(ctx, "matmul x", x).await?;
        let yb = ctx
            .storage_zeroed("matmul y", 4 * (tokens * self.rows) as u64)
            .await?;
        let out = Output::dense(&yb, self, Epilogue::Store);
        let binding = self
            .bind_matmul_to(ctx, &step, &xb, out, None, tokens, kernel)
            .await?;
        let mut encoder = ctx.encoder("matmul");
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("matmul"),
                timestamp_writes: None,
            });
            binding.encode(&mut pass, tokens)?;
        }
        ctx.submit(encoder).await?;
        ctx.read_back_f32(&yb, tokens * self.rows).await
    }

    /// Blocking [`GpuMatrix::matmul_host_async`] (native only).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn matmul_host(
        &self,
        ctx: &GpuContext,
        x: &[f32],
        tokens: usize,
    ) -> Result<Vec<f32>, GpuError> {
        ctx.block_on(self.matmul_host_async(ctx, x, tokens))
    }

    /// Blocking [`GpuMatrix::matmul_host_with_async`] (native only).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn matmul_host_with(
        &self,
        ctx: &GpuContext,
        x: &[f32],
        tokens: usize,
        kernel: BatchKernel,
    ) -> Result<Vec<f32>, GpuError> {
        ctx.block_on(self.matmul_host_with_async(ctx, x, tokens, kernel))
    }

    /// Looks up `ids` (one token each) and reads the `(ids.len(), cols)` rows
    /// back (tests, tools); ids `>= rows` give zeros.
    pub async fn embed_host_async(
        &self,
        ctx: &GpuContext,
        ids: &[u32],
    ) -> Result<Vec<f32>, GpuError> {
        let tokens = ids.len();
        if tokens == 0 {
            return Err(GpuError::shape(K, format!("{}: no ids", self.name)));
        }
        let step = StepUniform::new(ctx);
        step.write(ctx, &StepParams::batch(0, tokens, 0));
        let idb = ctx.storage_u32("embed ids", ids).await?;
        let out = ctx
            .storage_zeroed("embed out", 4 * (tokens * self.cols) as u64)
            .await?;
        let binding = self.bind_embed(ctx, &step, &idb, &out, tokens).await?;
        let mut encoder = ctx.encoder("embed");
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("embed"),
                timestamp_writes: None,
            });
            binding.encode(&mut pass, tokens)?;
        }
        ctx.submit(encoder).await?;
        ctx.read_back_f32(&out, tokens * self.cols).await
    }

    /// Blocking [`GpuMatrix::embed_host_async`] (native only).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn embed_host(&self, ctx: &GpuContext, ids: &[u32]) -> Result<Vec<f32>, GpuError> {
        ctx.block_on(self.embed_host_async(ctx, ids))
    }
}

/// `x` in a storage buffer padded to whole 16-byte words (the kernels read
/// x as vec4s; the padding is zeros).
async fn storage_x(ctx: &GpuContext, label: &str, x: &[f32]) -> Result<wgpu::Buffer, GpuError> {
    let mut padded = x.to_vec();
    padded.resize(x.len().next_multiple_of(4).max(4), 0.0);
    ctx.storage_f32(label, &padded).await
}
