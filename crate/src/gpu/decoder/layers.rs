//! The decoder's per-layer products and norms, bound to its activation
//! buffers: [`bind_layers`] makes them for [`super::GpuDecoder::new`]
//! (decode and batch kernels) and again, with the verification kernels, the
//! first time the decoder verifies a draft
//! ([`super::GpuDecoder::prepare_verify`]): a decoder that never drafts
//! never compiles the verification pipelines.

use super::{Activations, Head, Recorder};
use crate::gpu::kernels::{QkvLayout, RmsNorm};
use crate::gpu::profile::KernelClass;
use crate::gpu::qmatmul::{GpuMatrix, MatmulBinding, MatvecBinding, Norm, Output, VerifyBinding};
use crate::gpu::step::StepUniform;
use crate::gpu::weights::{GpuWeights, Stack};
use crate::gpu::{Epilogue, GpuContext, GpuError, QFormat};

/// A product bound up to three times: matrix-vector for one token, the
/// device's batch kernel for a batch, and (where `verify` tokens were asked
/// for) the verification kernels for a speculative batch, each column
/// summed as the one-token kernel sums it.
pub(super) struct Proj {
    one: MatvecBinding,
    many: MatmulBinding,
    verify: Option<VerifyBinding>,
    /// Weight format and bytes (for the profile).
    format: QFormat,
    bytes: u64,
}

impl Proj {
    /// Binds `m` for batches of up to `max_tokens` and, where `verify` > 1,
    /// verification batches of up to `verify` tokens.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn new(
        ctx: &GpuContext,
        step: &StepUniform,
        m: &GpuMatrix,
        x: &wgpu::Buffer,
        out: Output<'_>,
        norm: Option<Norm<'_>>,
        max_tokens: usize,
        verify: usize,
    ) -> Result<Proj, GpuError> {
        Ok(Proj {
            one: m.bind_matvec_to(ctx, x, out, norm).await?,
            many: m
                .bind_matmul_to(ctx, step, x, out, norm, max_tokens, ctx.batch_kernel())
                .await?,
            verify: if verify > 1 {
                Some(m.bind_verify_to(ctx, step, x, out, norm, verify).await?)
            } else {
                None
            },
            format: m.format(),
            bytes: m.gpu_bytes(),
        })
    }

    pub(super) fn encode(
        &self,
        rec: &mut Recorder<'_, '_>,
        tokens: usize,
        head: Head,
    ) -> Result<(), GpuError> {
        rec.mark(KernelClass::Matmul(self.format), self.bytes);
        let n = match head {
            _ if tokens == 1 => self.one.encode(rec.pass),
            // Never the batch kernel: its sums are not a decode step's.
            Head::Verify => self
                .verify
                .as_ref()
                .ok_or_else(|| {
                    GpuError::shape("verify", "verification kernels not bound".to_string())
                })?
                .encode(rec.pass, tokens)?,
            _ => self.many.encode(rec.pass, tokens)?,
        };
        rec.dispatches += n;
        Ok(())
    }
}

/// One layer's bound kernels.
pub(super) struct LayerKernels {
    pub attn_norm: RmsNorm, // x -> xw, ss
    pub qkv: Vec<Proj>,     // s * W{q|k|v} xw -> qkv (one stacked product, or three)
    pub wo: Proj,           // x += Wo att
    pub ffn_norm: RmsNorm,  // x -> xw, ss
    pub gate_up: Vec<Proj>, // h = silu(s W1 xw) * (s W3 xw) (stacked); apart: h, h3 = s W1 xw, s W3 xw
    pub w2: Proj,           // x += W2 h
}

/// Every layer's kernels bound to `a` for batches of up to `t` tokens and,
/// where `verify` > 1, verification batches of up to `verify`.
pub(super) async fn bind_layers(
    g: &GpuContext,
    step: &StepUniform,
    w: &GpuWeights,
    a: &Activations,
    layout: QkvLayout,
    t: usize,
    verify: usize,
) -> Result<Vec<LayerKernels>, GpuError> {
    let c = &w.config;
    let norm = Some(Norm {
        ss: &a.ss,
        groups: RmsNorm::groups(c.dim),
        eps: c.rms_eps,
    });
    let mut layers = Vec::with_capacity(c.n_layers);
    for lw in &w.layers {
        let attn_norm =
            RmsNorm::new(g, step, &a.x, &lw.attn_norm, &a.xw, &a.ss, t, c.dim, false).await?;
        let ffn_norm =
            RmsNorm::new(g, step, &a.x, &lw.ffn_norm, &a.xw, &a.ss, t, c.dim, false).await?;
        // Q, K, V rows into each token's q | k | v row.
        let mut qkv = Vec::new();
        let mut offset = 0;
        for m in lw.qkv.matrices() {
            let out = Output {
                y: &a.qkv,
                stride: layout.stride,
                offset,
                epilogue: Epilogue::Store,
            };
            qkv.push(Proj::new(g, step, m, &a.xw, out, norm, t, verify).await?);
            offset += m.rows();
        }
        let gate_up = match &lw.gate_up {
            Stack::One(m) => {
                let out = Output::dense(&a.h, m, Epilogue::SwiGlu);
                vec![Proj::new(g, step, m, &a.xw, out, norm, t, verify).await?]
            }
            Stack::Apart(ms) => {
                let h3 = a.h3.as_ref().expect("allocated for apart gate and up");
                let mut v = Vec::new();
                for (m, y) in ms.iter().zip([&a.h, h3]) {
                    let out = Output::dense(y, m, Epilogue::Store);
                    v.push(Proj::new(g, step, m, &a.xw, out, norm, t, verify).await?);
                }
                v
            }
        };
        let add = |m: &GpuMatrix| Output::dense(&a.x, m, Epilogue::Accumulate);
        layers.push(LayerKernels {
            attn_norm,
            qkv,
            wo: Proj::new(g, step, &lw.wo, &a.att, add(&lw.wo), None, t, verify).await?,
            ffn_norm,
            gate_up,
            w2: Proj::new(g, step, &lw.w2, &a.h, add(&lw.w2), None, t, verify).await?,
        });
    }
    Ok(layers)
}
