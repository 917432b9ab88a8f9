//! Shape-checked, bind-once wrappers of the small kernels: RMSNorm and the
//! in-place elementwise ops; RoPE's table (RoPE itself runs in the
//! attention's `kv_write_rope`) and the q | k | v row layout. `new` checks shapes against the buffers,
//! creates the static uniform and the bind group once; `encode` only records a
//! dispatch into a compute pass. Buffers hold f32 (or u32) values laid out as
//! each wrapper states; a buffer may be larger than its shape, never smaller.

use super::context::GpuContext;
use super::error::GpuError;
use super::keys::{ElementwiseOp, KernelKey, ELEMENTWISE_WG, NORM_GROUP};
use super::step::StepUniform;

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
    groups: u32,
    _pad: [u32; 2],
}

/// RMSNorm's parallel half (`shaders/norm.wgsl`): `xw = x * w` and, per
/// group of [`NORM_GROUP`] columns, the partial sums of `x²`; the matrix
/// product that consumes the norm finishes it
/// ([`super::qmatmul::Norm`]): `out = xw / sqrt(sum / dim + eps)`. One
/// workgroup per (group, row).
#[derive(Debug)]
pub struct RmsNorm {
    bound: Bound,
    _params: wgpu::Buffer,
    max_rows: usize,
    groups: usize,
    last: bool,
}

impl RmsNorm {
    /// Partial sums per row of `dim` values.
    pub fn groups(dim: usize) -> usize {
        dim.div_ceil(NORM_GROUP as usize)
    }

    /// - `x`: `(max_rows, dim)` f32
    /// - `w`: `(dim)` f32
    /// - `xw`: `(max_rows, dim)` f32 (`(1, dim)` with `last`), not `x`
    /// - `ss`: `(max_rows, groups(dim))` f32 (`(1, ..)` with `last`)
    ///
    /// With `last`, only the batch's last row (`step.tokens - 1`) is
    /// normalized, into row 0.
    #[allow(clippy::too_many_arguments)]
    pub async fn new(
        ctx: &GpuContext,
        step: &StepUniform,
        x: &wgpu::Buffer,
        w: &wgpu::Buffer,
        xw: &wgpu::Buffer,
        ss: &wgpu::Buffer,
        max_rows: usize,
        dim: usize,
        last: bool,
    ) -> Result<RmsNorm, GpuError> {
        const K: &str = "rmsnorm";
        positive(K, &[("rows", max_rows), ("dim", dim)])?;
        let groups = Self::groups(dim);
        let out_rows = if last { 1 } else { max_rows };
        let x_bytes = fits(ctx, K, "x", x, elements(K, max_rows, dim)?)?;
        let w_bytes = fits(ctx, K, "w", w, dim)?;
        let xw_bytes = fits(ctx, K, "xw", xw, elements(K, out_rows, dim)?)?;
        let ss_bytes = fits(ctx, K, "ss", ss, elements(K, out_rows, groups)?)?;
        workgroups_1d(ctx, K, max_rows)?;
        workgroups_1d(ctx, K, groups)?;
        let params = ctx.uniform(
            "rmsnorm params",
            &NormParams {
                dim: dim as u32,
                groups: groups as u32,
                _pad: [0; 2],
            },
        );
        let bound = Bound::new(
            ctx,
            KernelKey::RmsNorm { last },
            &[
                (step.buffer(), None),
                (&params, None),
                (x, Some(x_bytes)),
                (w, Some(w_bytes)),
                (xw, Some(xw_bytes)),
                (ss, Some(ss_bytes)),
            ],
        )
        .await?;
        Ok(RmsNorm {
            bound,
            _params: params,
            max_rows,
            groups,
            last,
        })
    }

    /// The partial sums per row.
    pub fn sums_per_row(&self) -> usize {
        self.groups
    }

    /// Records the norm of the first `rows` rows (`rows` as the `Step`
    /// uniform will hold; with `last` its last row only).
    pub fn encode(&self, pass: &mut wgpu::ComputePass<'_>, rows: usize) -> Result<usize, GpuError> {
        check_rows("rmsnorm", rows, self.max_rows)?;
        let gy = if self.last { 1 } else { rows as u32 };
        self.bound.dispatch(pass, (self.groups as u32, gy));
        Ok(1)
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

    pub fn head_dim(&self) -> usize {
        self.head_dim
    }

    /// The `(max_len, head_dim / 2)` `vec2<f32>` table.
    pub fn buffer(&self) -> &wgpu::Buffer {
        &self.buffer
    }

    /// Bytes the table takes on the GPU.
    pub fn bytes(&self) -> u64 {
        self.buffer.size()
    }
}

/// Where a token's q, k and v are in one buffer of rows of `stride`
/// elements: q `(n_heads, head_dim)` at element `q`, k and v
/// `(n_kv_heads, head_dim)` at `k` and `v` (the decoder's fused Q|K|V
/// projection writes rows `q | k | v`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QkvLayout {
    pub stride: usize,
    pub q: usize,
    pub k: usize,
    pub v: usize,
}

impl QkvLayout {
    /// Rows `q | k | v`, nothing between.
    pub fn packed(n_heads: usize, n_kv_heads: usize, head_dim: usize) -> QkvLayout {
        let (q, kv) = (n_heads * head_dim, n_kv_heads * head_dim);
        QkvLayout {
            stride: q + 2 * kv,
            q: 0,
            k: q,
            v: q + kv,
        }
    }

    /// `Err(Shape)` unless q, k and v fit a row.
    pub fn check(
        &self,
        kernel: &'static str,
        n_heads: usize,
        n_kv_heads: usize,
        head_dim: usize,
    ) -> Result<(), GpuError> {
        let (q, kv) = (n_heads * head_dim, n_kv_heads * head_dim);
        let fits = |off: usize, n: usize| off.checked_add(n).is_some_and(|e| e <= self.stride);
        if fits(self.q, q) && fits(self.k, kv) && fits(self.v, kv) {
            Ok(())
        } else {
            Err(GpuError::shape(
                kernel,
                format!("{self:?} does not hold q ({q}) and k, v ({kv}) per row"),
            ))
        }
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
    pub fn encode(
        &self,
        pass: &mut wgpu::ComputePass<'_>,
        tokens: usize,
    ) -> Result<usize, GpuError> {
        check_rows("elementwise", tokens, self.max_tokens)?;
        let groups = (tokens * self.width).div_ceil(ELEMENTWISE_WG as usize);
        let gx = groups.min(self.max_x);
        self.bound
            .dispatch(pass, (gx as u32, groups.div_ceil(gx) as u32));
        Ok(1)
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
