//! Shape-checked, bind-once wrappers of the small kernels: RMSNorm, RoPE and
//! the in-place elementwise ops. `new` checks shapes against the buffers,
//! creates the static uniform and the bind group once; `encode` only records a
//! dispatch into a compute pass. Buffers hold f32 (or u32) values laid out as
//! each wrapper states; a buffer may be larger than its shape, never smaller.

use super::context::GpuContext;
use super::error::GpuError;
use super::keys::{ElementwiseOp, KernelKey};
use super::step::StepUniform;

/// Workgroup sizes, equal to the `WG` constants of the shaders.
const ROPE_WG: u32 = 64;
const ELEMENTWISE_WG: u32 = 256;

/// A pipeline and its bind group: one dispatch's worth of state, made once.
#[derive(Debug)]
pub struct Bound {
    pipeline: wgpu::ComputePipeline,
    group: wgpu::BindGroup,
}

impl Bound {
    /// Binds `entries` (binding `i` = entry `i`: a whole buffer, or its first
    /// `Some(bytes)`) to group 0 of `key`'s pipeline.
    pub async fn new(
        ctx: &GpuContext,
        key: KernelKey,
        entries: &[(&wgpu::Buffer, Option<u64>)],
    ) -> Result<Bound, GpuError> {
        let pipeline = ctx.pipeline(key).await?;
        let entries: Vec<wgpu::BindGroupEntry<'_>> = entries
            .iter()
            .enumerate()
            .map(|(i, &(buffer, size))| wgpu::BindGroupEntry {
                binding: i as u32,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer,
                    offset: 0,
                    size: size.and_then(wgpu::BufferSize::new),
                }),
            })
            .collect();
        let group = ctx
            .scoped(|| {
                ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
                    label: Some(&format!("{key:?}")),
                    layout: &pipeline.get_bind_group_layout(0),
                    entries: &entries,
                })
            })
            .await?;
        Ok(Bound { pipeline, group })
    }

    /// Records one dispatch of `(gx, gy, 1)` workgroups.
    pub fn dispatch(&self, pass: &mut wgpu::ComputePass<'_>, (gx, gy): (u32, u32)) {
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &self.group, &[]);
        pass.dispatch_workgroups(gx, gy, 1);
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct NormParams {
    dim: u32,
    eps: f32,
    _pad: [u32; 2],
}

/// RMSNorm of each row: `out[r, :] = x[r, :] / sqrt(mean(x[r, :]²) + eps) * w`.
#[derive(Debug)]
pub struct RmsNorm {
    bound: Bound,
    _params: wgpu::Buffer,
    max_rows: usize,
}

impl RmsNorm {
    /// - `x`: `(max_rows, dim)` f32
    /// - `w`: `(dim)` f32
    /// - `out`: `(max_rows, dim)` f32, a different buffer from `x`
    pub async fn new(
        ctx: &GpuContext,
        x: &wgpu::Buffer,
        w: &wgpu::Buffer,
        out: &wgpu::Buffer,
        max_rows: usize,
        dim: usize,
        eps: f32,
    ) -> Result<RmsNorm, GpuError> {
        const K: &str = "rmsnorm";
        positive(K, &[("rows", max_rows), ("dim", dim)])?;
        let n = elements(K, max_rows, dim)?;
        let x_bytes = fits(ctx, K, "x", x, n)?;
        let w_bytes = fits(ctx, K, "w", w, dim)?;
        let out_bytes = fits(ctx, K, "out", out, n)?;
        workgroups_1d(ctx, K, max_rows)?;
        let params = ctx.uniform(
            "rmsnorm params",
            &NormParams {
                dim: dim as u32,
                eps,
                _pad: [0; 2],
            },
        );
        let bound = Bound::new(
            ctx,
            KernelKey::RmsNorm,
            &[
                (&params, None),
                (x, Some(x_bytes)),
                (w, Some(w_bytes)),
                (out, Some(out_bytes)),
            ],
        )
        .await?;
        Ok(RmsNorm {
            bound,
            _params: params,
            max_rows,
        })
    }

    /// Records the norm of the first `rows` rows.
    pub fn encode(&self, pass: &mut wgpu::ComputePass<'_>, rows: usize) -> Result<(), GpuError> {
        check_rows("rmsnorm", rows, self.max_rows)?;
        self.bound.dispatch(pass, (rows as u32, 1));
        Ok(())
    }
}

/// `(cos, sin)` of every `(position, pair)` for RoPE, computed on the host in
/// f64 exactly as [`crate::cpu::rope`] does, then rounded to f32.
#[derive(Debug)]
pub struct RopeTable {
    buffer: wgpu::Buffer,
    head_dim: usize,
    max_len: usize,
}

impl RopeTable {
    /// The values of the table: `(max_len, head_dim / 2)` pairs `(cos, sin)`.
    pub fn values(head_dim: usize, theta: f32, max_len: usize) -> Vec<f32> {
        let half = head_dim / 2;
        let freqs: Vec<f64> = (0..half)
            .map(|i| libm::pow(theta as f64, -((2 * i) as f64) / head_dim as f64))
            .collect();
        let mut out = Vec::with_capacity(max_len * half * 2);
        for pos in 0..max_len {
            for &f in &freqs {
                let angle = pos as f64 * f;
                out.push(libm::cos(angle) as f32);
                out.push(libm::sin(angle) as f32);
            }
        }
        out
    }

    /// Uploads the table for positions `0..max_len`.
    pub async fn new(
        ctx: &GpuContext,
        head_dim: usize,
        theta: f32,
        max_len: usize,
    ) -> Result<RopeTable, GpuError> {
        const K: &str = "rope";
        positive(K, &[("head_dim", head_dim), ("max_len", max_len)])?;
        if !head_dim.is_multiple_of(2) {
            return Err(GpuError::shape(K, format!("head_dim {head_dim} is odd")));
        }
        if !(theta.is_finite() && theta > 0.0) {
            return Err(GpuError::shape(
                K,
                format!("theta {theta} is not a positive number"),
            ));
        }
        elements(K, max_len, head_dim)?;
        let values = Self::values(head_dim, theta, max_len);
        ctx.check_binding_size("rope table", values.len() as u64 * 4)?;
        let buffer = ctx.storage_f32("rope table", &values).await?;
        Ok(RopeTable {
            buffer,
            head_dim,
            max_len,
        })
    }

    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Bytes the table takes on the GPU.
    pub fn bytes(&self) -> u64 {
        self.buffer.size()
    }
}

/// The shape of RoPE's inputs: `q (max_tokens, n_heads, head_dim)` and
/// `k (max_tokens, n_kv_heads, head_dim)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RopeShape {
    pub max_tokens: usize,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct RopeParams {
    n_heads: u32,
    n_kv_heads: u32,
    head_dim: u32,
    max_len: u32,
}

/// RoPE in place on the queries and keys of a batch; token `t` is at position
/// `step.pos + t` (the `Step` uniform).
#[derive(Debug)]
pub struct Rope {
    bound: Bound,
    _params: wgpu::Buffer,
    shape: RopeShape,
}

impl Rope {
    /// - `q`: `(max_tokens, n_heads, head_dim)` f32
    /// - `k`: `(max_tokens, n_kv_heads, head_dim)` f32, another buffer
    /// - `table`: a [`RopeTable`] of the same `head_dim`
    pub async fn new(
        ctx: &GpuContext,
        step: &StepUniform,
        table: &RopeTable,
        q: &wgpu::Buffer,
        k: &wgpu::Buffer,
        shape: RopeShape,
    ) -> Result<Rope, GpuError> {
        const K: &str = "rope";
        let RopeShape {
            max_tokens,
            n_heads,
            n_kv_heads,
            head_dim,
        } = shape;
        positive(
            K,
            &[
                ("tokens", max_tokens),
                ("n_heads", n_heads),
                ("n_kv_heads", n_kv_heads),
                ("head_dim", head_dim),
            ],
        )?;
        if table.head_dim != head_dim {
            return Err(GpuError::shape(
                K,
                format!(
                    "the table is for head_dim {}, the shape says {head_dim}",
                    table.head_dim
                ),
            ));
        }
        let q_bytes = fits(ctx, K, "q", q, elements(K, max_tokens, n_heads * head_dim)?)?;
        let k_bytes = fits(
            ctx,
            K,
            "k",
            k,
            elements(K, max_tokens, n_kv_heads * head_dim)?,
        )?;
        workgroups_1d(ctx, K, max_tokens)?;
        let params = ctx.uniform(
            "rope params",
            &RopeParams {
                n_heads: n_heads as u32,
                n_kv_heads: n_kv_heads as u32,
                head_dim: head_dim as u32,
                max_len: table.max_len as u32,
            },
        );
        let bound = Bound::new(
            ctx,
            KernelKey::Rope,
            &[
                (step.buffer(), None),
                (&params, None),
                (q, Some(q_bytes)),
                (k, Some(k_bytes)),
                (&table.buffer, None),
            ],
        )
        .await?;
        Ok(Rope {
            bound,
            _params: params,
            shape,
        })
    }

    /// Records the rotation of the first `tokens` tokens.
    pub fn encode(&self, pass: &mut wgpu::ComputePass<'_>, tokens: usize) -> Result<(), GpuError> {
        check_rows("rope", tokens, self.shape.max_tokens)?;
        let pairs = (self.shape.n_heads + self.shape.n_kv_heads) * self.shape.head_dim / 2;
        let gx = pairs.div_ceil(ROPE_WG as usize) as u32;
        self.bound.dispatch(pass, (gx, tokens as u32));
        Ok(())
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct ElementwiseParams {
    width: u32,
    _pad: [u32; 3],
}

/// In place over the first `step.tokens` rows of `width` values:
/// `a += b` ([`ElementwiseOp::Add`]) or `a = silu(a) * b`
/// ([`ElementwiseOp::SwiGlu`]).
#[derive(Debug)]
pub struct Elementwise {
    bound: Bound,
    _params: wgpu::Buffer,
    width: usize,
    max_tokens: usize,
    max_x: usize,
}

impl Elementwise {
    /// - `a`: `(max_tokens, width)` f32, read and written
    /// - `b`: `(max_tokens, width)` f32, another buffer
    pub async fn new(
        ctx: &GpuContext,
        op: ElementwiseOp,
        step: &StepUniform,
        a: &wgpu::Buffer,
        b: &wgpu::Buffer,
        max_tokens: usize,
        width: usize,
    ) -> Result<Elementwise, GpuError> {
        const K: &str = "elementwise";
        positive(K, &[("tokens", max_tokens), ("width", width)])?;
        let n = elements(K, max_tokens, width)?;
        let a_bytes = fits(ctx, K, "a", a, n)?;
        let b_bytes = fits(ctx, K, "b", b, n)?;
        let max_x = ctx.limits().max_compute_workgroups_per_dimension.max(1) as usize;
        let groups = n.div_ceil(ELEMENTWISE_WG as usize);
        workgroups_1d(ctx, K, groups.div_ceil(max_x))?;
        let params = ctx.uniform(
            "elementwise params",
            &ElementwiseParams {
                width: width as u32,
                _pad: [0; 3],
            },
        );
        let bound = Bound::new(
            ctx,
            KernelKey::Elementwise(op),
            &[
                (step.buffer(), None),
                (&params, None),
                (a, Some(a_bytes)),
                (b, Some(b_bytes)),
            ],
        )
        .await?;
        Ok(Elementwise {
            bound,
            _params: params,
            width,
            max_tokens,
            max_x,
        })
    }

    /// Records the op over the first `tokens` rows (`tokens` must equal the
    /// `Step` uniform's, which bounds the kernel).
    pub fn encode(&self, pass: &mut wgpu::ComputePass<'_>, tokens: usize) -> Result<(), GpuError> {
        check_rows("elementwise", tokens, self.max_tokens)?;
        let groups = (tokens * self.width).div_ceil(ELEMENTWISE_WG as usize);
        let gx = groups.min(self.max_x);
        self.bound
            .dispatch(pass, (gx as u32, groups.div_ceil(gx) as u32));
        Ok(())
    }
}

fn check_rows(kernel: &'static str, rows: usize, max: usize) -> Result<(), GpuError> {
    if rows == 0 || rows > max {
        return Err(GpuError::shape(
            kernel,
            format!("{rows} rows asked for, bound for 1..={max}"),
        ));
    }
    Ok(())
}

pub(crate) fn positive(kernel: &'static str, dims: &[(&str, usize)]) -> Result<(), GpuError> {
    match dims.iter().find(|(_, v)| *v == 0) {
        Some((name, _)) => Err(GpuError::shape(kernel, format!("{name} is 0"))),
        None => Ok(()),
    }
}

/// `a * b` elements, when that fits a u32 index.
pub(crate) fn elements(kernel: &'static str, a: usize, b: usize) -> Result<usize, GpuError> {
    a.checked_mul(b)
        .filter(|&n| n <= u32::MAX as usize)
        .ok_or_else(|| GpuError::shape(kernel, format!("{a} x {b} elements exceed u32 indexing")))
}

/// The bytes `n` 4-byte values take, checked against `buffer`'s size and the
/// storage-binding limit.
pub(crate) fn fits(
    ctx: &GpuContext,
    kernel: &'static str,
    name: &str,
    buffer: &wgpu::Buffer,
    n: usize,
) -> Result<u64, GpuError> {
    let bytes = n as u64 * 4;
    if buffer.size() < bytes {
        return Err(GpuError::shape(
            kernel,
            format!(
                "{name} needs {n} values ({bytes} bytes), its buffer has {} bytes",
                buffer.size()
            ),
        ));
    }
    ctx.check_binding_size(&format!("{kernel} {name}"), bytes)?;
    Ok(bytes)
}

pub(crate) fn workgroups_1d(
    ctx: &GpuContext,
    kernel: &'static str,
    n: usize,
) -> Result<u32, GpuError> {
    let max = ctx.limits().max_compute_workgroups_per_dimension;
    match u32::try_from(n) {
        Ok(g) if g <= max => Ok(g),
        _ => Err(GpuError::shape(
            kernel,
            format!("{n} workgroups exceed the device's {max} per dimension"),
        )),
    }
}
