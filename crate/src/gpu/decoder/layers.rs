//! The decoder's per-layer products and norms, bound to its activation
//! buffers: [`bind_layers`] makes them for [`super::GpuDecoder::new`]
//! (decode and batch kernels); [`bind_verify`] adds the verification
//! kernels to each product the first time the decoder verifies a draft
//! ([`super::GpuDecoder::prepare_verify`]): a decoder that never drafts
//! never compiles the verification pipelines. [`LayerIo`] says once where
//! each product reads and writes, for both.

use super::{Activations, Head, Recorder};
use crate::gpu::kernels::{QkvLayout, RmsNorm};
use crate::gpu::profile::KernelClass;
use crate::gpu::qmatmul::{GpuMatrix, MatmulBinding, MatvecBinding, Norm, Output, VerifyBinding};
use crate::gpu::step::StepUniform;
use crate::gpu::weights::{GpuLayer, GpuWeights, Stack};
use crate::gpu::{Epilogue, GpuContext, GpuError, QFormat};

/// Where one product reads and writes: its input, its output (with the
/// epilogue) and the RMS norm folded into it, if any.
#[derive(Clone, Copy)]
pub(super) struct ProductIo<'a> {
    pub x: &'a wgpu::Buffer,
    pub out: Output<'a>,
    pub norm: Option<Norm<'a>>,
}

/// A product bound up to three times: matrix-vector for one token, the
/// device's batch kernel for a batch, and (once [`Proj::bind_verify`] ran)
/// the verification kernels for a speculative batch, each column summed as
/// the one-token kernel sums it.
pub(super) struct Proj {
    one: MatvecBinding,
    many: MatmulBinding,
    verify: Option<VerifyBinding>,
    /// Weight format and bytes (for the profile).
    format: QFormat,
    bytes: u64,
}

impl Proj {
    /// Binds `m` for one token and for batches of up to `max_tokens`.
    pub(super) async fn new(
        ctx: &GpuContext,
        step: &StepUniform,
        m: &GpuMatrix,
        io: ProductIo<'_>,
        max_tokens: usize,
    ) -> Result<Proj, GpuError> {
        let ProductIo { x, out, norm } = io;
        Ok(Proj {
            one: m.bind_matvec_to(ctx, x, out, norm).await?,
            many: m
                .bind_matmul_to(ctx, step, x, out, norm, max_tokens, ctx.batch_kernel())
                .await?,
            verify: None,
            format: m.format(),
            bytes: m.gpu_bytes(),
        })
    }

    /// Binds `m` (the matrix of [`Proj::new`], with the same `io`) for
    /// verification batches of up to `max_tokens` tokens too.
    pub(super) async fn bind_verify(
        &mut self,
        ctx: &GpuContext,
        step: &StepUniform,
        m: &GpuMatrix,
        io: ProductIo<'_>,
        max_tokens: usize,
    ) -> Result<(), GpuError> {
        let ProductIo { x, out, norm } = io;
        self.verify = Some(
            m.bind_verify_to(ctx, step, x, out, norm, max_tokens)
                .await?,
        );
        Ok(())
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

impl LayerKernels {
    /// The products in [`LayerIo::all`]'s order.
    fn projs_mut(&mut self) -> impl Iterator<Item = &mut Proj> {
        let LayerKernels {
            qkv,
            wo,
            gate_up,
            w2,
            ..
        } = self;
        qkv.iter_mut()
            .chain(std::iter::once(wo))
            .chain(gate_up.iter_mut())
            .chain(std::iter::once(w2))
    }
}

/// One layer's products, each with its matrix and where it reads and
/// writes in the decoder's activations.
struct LayerIo<'a> {
    qkv: Vec<(&'a GpuMatrix, ProductIo<'a>)>,
    wo: (&'a GpuMatrix, ProductIo<'a>),
    gate_up: Vec<(&'a GpuMatrix, ProductIo<'a>)>,
    w2: (&'a GpuMatrix, ProductIo<'a>),
}

impl<'a> LayerIo<'a> {
    fn new(w: &'a GpuWeights, lw: &'a GpuLayer, a: &'a Activations, layout: QkvLayout) -> Self {
        let c = &w.config;
        let norm = Some(Norm {
            ss: &a.ss,
            groups: RmsNorm::groups(c.dim),
            eps: c.rms_eps,
        });
        let normed = |out| ProductIo {
            x: &a.xw,
            out,
            norm,
        };
        // Q, K, V rows into each token's q | k | v row.
        let mut offset = 0;
        let qkv = lw
            .qkv
            .matrices()
            .into_iter()
            .map(|m| {
                let out = Output {
                    y: &a.qkv,
                    stride: layout.stride,
                    offset,
                    epilogue: Epilogue::Store,
                };
                offset += m.rows();
                (m, normed(out))
            })
            .collect();
        let gate_up = match &lw.gate_up {
            Stack::One(m) => vec![(m, normed(Output::dense(&a.h, m, Epilogue::SwiGlu)))],
            Stack::Apart(ms) => {
                let h3 = a.h3.as_ref().expect("allocated for apart gate and up");
                ms.iter()
                    .zip([&a.h, h3])
                    .map(|(m, y)| (m, normed(Output::dense(y, m, Epilogue::Store))))
                    .collect()
            }
        };
        let add = |m: &'a GpuMatrix, x: &'a wgpu::Buffer| {
            let out = Output::dense(&a.x, m, Epilogue::Accumulate);
            (m, ProductIo { x, out, norm: None })
        };
        LayerIo {
            qkv,
            wo: add(&lw.wo, &a.att),
            gate_up,
            w2: add(&lw.w2, &a.h),
        }
    }

    /// Q, K, V (or their stack), Wo, gate and up (or their stack), W2.
    fn all(&self) -> impl Iterator<Item = &(&'a GpuMatrix, ProductIo<'a>)> {
        self.qkv
            .iter()
            .chain(std::iter::once(&self.wo))
            .chain(&self.gate_up)
            .chain(std::iter::once(&self.w2))
    }
}

/// Every layer's kernels bound to `a` for one token and for batches of up
/// to `t` tokens.
pub(super) async fn bind_layers(
    g: &GpuContext,
    step: &StepUniform,
    w: &GpuWeights,
    a: &Activations,
    layout: QkvLayout,
    t: usize,
) -> Result<Vec<LayerKernels>, GpuError> {
    let c = &w.config;
    let mut layers = Vec::with_capacity(c.n_layers);
    for lw in &w.layers {
        let io = LayerIo::new(w, lw, a, layout);
        let mut qkv = Vec::with_capacity(io.qkv.len());
        for &(m, p) in &io.qkv {
            qkv.push(Proj::new(g, step, m, p, t).await?);
        }
        let mut gate_up = Vec::with_capacity(io.gate_up.len());
        for &(m, p) in &io.gate_up {
            gate_up.push(Proj::new(g, step, m, p, t).await?);
        }
        let norm = |weight| RmsNorm::new(g, step, &a.x, weight, &a.xw, &a.ss, t, c.dim, false);
        layers.push(LayerKernels {
            attn_norm: norm(&lw.attn_norm).await?,
            qkv,
            wo: Proj::new(g, step, io.wo.0, io.wo.1, t).await?,
            ffn_norm: norm(&lw.ffn_norm).await?,
            gate_up,
            w2: Proj::new(g, step, io.w2.0, io.w2.1, t).await?,
        });
    }
    Ok(layers)
}

/// Binds every product of `layers` (made by [`bind_layers`] with the same
/// arguments) for verification batches of up to `rows` tokens as well.
pub(super) async fn bind_verify(
    layers: &mut [LayerKernels],
    g: &GpuContext,
    step: &StepUniform,
    w: &GpuWeights,
    a: &Activations,
    layout: QkvLayout,
    rows: usize,
) -> Result<(), GpuError> {
    for (kernels, lw) in layers.iter_mut().zip(&w.layers) {
        let io = LayerIo::new(w, lw, a, layout);
        for (proj, &(m, p)) in kernels.projs_mut().zip(io.all()) {
            proj.bind_verify(g, step, m, p, rows).await?;
        }
    }
    Ok(())
}
