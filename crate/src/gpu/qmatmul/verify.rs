//! A product bound for speculative verification batches: one
//! [`MatmulBinding`] per shape of [`GpuContext::verify_kernels`] (the decode
//! shape's lanes and reduction with 2 and with 4 tokens per workgroup), a
//! batch running on the narrowest whose workgroup holds all its tokens.
//! Every shape sums each (row, token) in the decode matvec's order
//! ([`crate::gpu::keys::MatvecShape::verify_shapes`]), so which one a batch
//! takes changes its time, never its bits.

use super::bind::{BatchKernel, MatmulBinding, Norm, Output};
use super::GpuMatrix;
use crate::gpu::step::StepUniform;
use crate::gpu::{GpuContext, GpuError};

/// `Y (+)= X Wᵀ` for a verification batch of up to `max_tokens` tokens,
/// bound on every verification shape of the device.
#[derive(Debug)]
pub struct VerifyBinding {
    /// Fewest tokens per workgroup first.
    by_width: Vec<(usize, MatmulBinding)>,
}

impl VerifyBinding {
    /// Records `Y (+)= X Wᵀ` for the first `tokens` rows (`tokens` as the
    /// `Step` uniform will hold at the submit) on the narrowest shape that
    /// holds them in one workgroup, else the widest; returns the number of
    /// dispatches.
    pub fn encode(
        &self,
        pass: &mut wgpu::ComputePass<'_>,
        tokens: usize,
    ) -> Result<usize, GpuError> {
        self.pick(tokens).encode(pass, tokens)
    }

    /// The binding a batch of `tokens` runs on.
    pub fn pick(&self, tokens: usize) -> &MatmulBinding {
        let (_, widest) = self.by_width.last().expect("at least one shape");
        self.by_width
            .iter()
            .find(|(width, _)| tokens <= *width)
            .map_or(widest, |(_, b)| b)
    }
}

impl GpuMatrix {
    /// Binds this matrix for verification batches of up to `max_tokens`
    /// tokens on every shape of [`GpuContext::verify_kernels`]; the other
    /// arguments as [`GpuMatrix::bind_matmul_to`]'s.
    pub async fn bind_verify_to(
        &self,
        ctx: &GpuContext,
        step: &StepUniform,
        x: &wgpu::Buffer,
        out: Output<'_>,
        norm: Option<Norm<'_>>,
        max_tokens: usize,
    ) -> Result<VerifyBinding, GpuError> {
        let mut by_width = Vec::new();
        for kernel in ctx.verify_kernels() {
            let BatchKernel::Lanes(shape) = kernel else {
                unreachable!("verification shapes are matvec shapes")
            };
            let b = self
                .bind_matmul_to(ctx, step, x, out, norm, max_tokens, kernel)
                .await?;
            by_width.push((shape.tokens as usize, b));
        }
        Ok(VerifyBinding { by_width })
    }
}
