//! Shape-checked wrappers that record one dispatch of a kernel into a command
//! encoder. Buffers hold f32 (or u32) values laid out as each wrapper states;
//! a buffer may be larger than its shape, never smaller.

use super::context::GpuContext;
use super::error::GpuError;
use super::pipelines::{ElementwiseOp, KernelKey};

/// Workgroup sizes, equal to the `WG` constants of the shaders.
const ROPE_WG: u32 = 64;
const ELEMENTWISE_WG: u32 = 256;

/// The shape of an RMSNorm: `rows` rows of `dim` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NormShape {
    pub rows: usize,
    pub dim: usize,
}

/// The shape of a RoPE input: `(tokens, heads, head_dim)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RopeShape {
    pub tokens: usize,
    pub heads: usize,
    pub head_dim: usize,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct NormParams {
    rows: u32,
    dim: u32,
    eps: f32,
    _pad: u32,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct RopeParams {
    tokens: u32,
    heads: u32,
    head_dim: u32,
    theta: f32,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct ElementwiseParams {
    n: u32,
    _pad: [u32; 3],
}

/// RMSNorm of each row: `out[r, :] = x[r, :] / sqrt(mean(x[r, :]²) + eps) * w`.
///
/// - `x`: `(rows, dim)` f32
/// - `w`: `(dim)` f32
/// - `out`: `(rows, dim)` f32, a different buffer from `x`
pub async fn rmsnorm(
    ctx: &GpuContext,
    encoder: &mut wgpu::CommandEncoder,
    x: &wgpu::Buffer,
    w: &wgpu::Buffer,
    out: &wgpu::Buffer,
    shape: NormShape,
    eps: f32,
) -> Result<(), GpuError> {
    const K: &str = "rmsnorm";
    let NormShape { rows, dim } = shape;
    positive(K, &[("rows", rows), ("dim", dim)])?;
    let n = elements(K, rows, dim)?;
    let x_bytes = fits(ctx, K, "x", x, n)?;
    let w_bytes = fits(ctx, K, "w", w, dim)?;
    let out_bytes = fits(ctx, K, "out", out, n)?;
    let groups = workgroups_1d(ctx, K, rows)?;
    let params = ctx.uniform(
        "rmsnorm params",
        &NormParams {
            rows: rows as u32,
            dim: dim as u32,
            eps,
            _pad: 0,
        },
    );
    dispatch(
        ctx,
        encoder,
        KernelKey::RmsNorm,
        &[
            (&params, None),
            (x, Some(x_bytes)),
            (w, Some(w_bytes)),
            (out, Some(out_bytes)),
        ],
        (groups, 1),
    )
    .await
}

/// RoPE in place on adjacent pairs: token `t` of `x` is rotated for position
/// `positions[t]`, pair `(2i, 2i+1)` of each head by
/// `positions[t] * theta^(-2i/head_dim)` (as [`crate::cpu::rope`]).
///
/// - `x`: `(tokens, heads, head_dim)` f32, `head_dim` even
/// - `positions`: `(tokens)` u32
pub async fn rope(
    ctx: &GpuContext,
    encoder: &mut wgpu::CommandEncoder,
    x: &wgpu::Buffer,
    positions: &wgpu::Buffer,
    shape: RopeShape,
    theta: f32,
) -> Result<(), GpuError> {
    const K: &str = "rope";
    let RopeShape {
        tokens,
        heads,
        head_dim,
    } = shape;
    positive(K, &[("tokens", tokens), ("heads", heads), ("head_dim", head_dim)])?;
    if head_dim % 2 != 0 {
        return Err(GpuError::shape(K, format!("head_dim {head_dim} is odd")));
    }
    if !(theta.is_finite() && theta > 0.0) {
        return Err(GpuError::shape(K, format!("theta {theta} is not a positive number")));
    }
    let row = elements(K, heads, head_dim)?;
    let n = elements(K, tokens, row)?;
    let x_bytes = fits(ctx, K, "x", x, n)?;
    let pos_bytes = fits(ctx, K, "positions", positions, tokens)?;
    let gx = workgroups_1d(ctx, K, (row / 2).div_ceil(ROPE_WG as usize))?;
    let gy = workgroups_1d(ctx, K, tokens)?;
    let params = ctx.uniform(
        "rope params",
        &RopeParams {
            tokens: tokens as u32,
            heads: heads as u32,
            head_dim: head_dim as u32,
            theta,
        },
    );
    dispatch(
        ctx,
        encoder,
        KernelKey::Rope,
        &[(&params, None), (x, Some(x_bytes)), (positions, Some(pos_bytes))],
        (gx, gy),
    )
    .await
}

/// Elementwise `out = a + b` ([`ElementwiseOp::Add`]) or
/// `out = silu(a) * b` ([`ElementwiseOp::SwiGlu`]).
///
/// - `a`, `b`, `out`: `(n)` f32; `out` is a different buffer from `a` and `b`
pub async fn elementwise(
    ctx: &GpuContext,
    encoder: &mut wgpu::CommandEncoder,
    op: ElementwiseOp,
    a: &wgpu::Buffer,
    b: &wgpu::Buffer,
    out: &wgpu::Buffer,
    n: usize,
) -> Result<(), GpuError> {
    const K: &str = "elementwise";
    positive(K, &[("n", n)])?;
    let n32 = u32::try_from(n).map_err(|_| GpuError::shape(K, format!("n {n} exceeds u32")))?;
    let a_bytes = fits(ctx, K, "a", a, n)?;
    let b_bytes = fits(ctx, K, "b", b, n)?;
    let out_bytes = fits(ctx, K, "out", out, n)?;
    let groups = n.div_ceil(ELEMENTWISE_WG as usize);
    let max = ctx.limits().max_compute_workgroups_per_dimension as usize;
    let gx = groups.min(max);
    let gy = workgroups_1d(ctx, K, groups.div_ceil(gx))?;
    let params = ctx.uniform(
        "elementwise params",
        &ElementwiseParams { n: n32, _pad: [0; 3] },
    );
    dispatch(
        ctx,
        encoder,
        KernelKey::Elementwise(op),
        &[
            (&params, None),
            (a, Some(a_bytes)),
            (b, Some(b_bytes)),
            (out, Some(out_bytes)),
        ],
        (gx as u32, gy),
    )
    .await
}

/// Binds `buffers` to bindings 0.. of group 0 (each whole, or its first
/// `Some(bytes)`) and records one dispatch of `key`.
async fn dispatch(
    ctx: &GpuContext,
    encoder: &mut wgpu::CommandEncoder,
    key: KernelKey,
    buffers: &[(&wgpu::Buffer, Option<u64>)],
    (gx, gy): (u32, u32),
) -> Result<(), GpuError> {
    let pipeline = ctx.pipeline(key).await?;
    let entries: Vec<wgpu::BindGroupEntry<'_>> = buffers
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
    let bind_group = ctx
        .scoped(|| {
            ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("kernel bindings"),
                layout: &pipeline.get_bind_group_layout(0),
                entries: &entries,
            })
        })
        .await?;
    let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
        label: Some("kernel"),
        timestamp_writes: None,
    });
    pass.set_pipeline(&pipeline);
    pass.set_bind_group(0, &bind_group, &[]);
    pass.dispatch_workgroups(gx, gy, 1);
    Ok(())
}

fn positive(kernel: &'static str, dims: &[(&str, usize)]) -> Result<(), GpuError> {
    match dims.iter().find(|(_, v)| *v == 0) {
        Some((name, _)) => Err(GpuError::shape(kernel, format!("{name} is 0"))),
        None => Ok(()),
    }
}

/// `a * b` elements, when that fits a u32 index.
fn elements(kernel: &'static str, a: usize, b: usize) -> Result<usize, GpuError> {
    a.checked_mul(b)
        .filter(|&n| n <= u32::MAX as usize)
        .ok_or_else(|| GpuError::shape(kernel, format!("{a} x {b} elements exceed u32 indexing")))
}

/// The bytes `n` 4-byte values take, checked against `buffer`'s size and the
/// storage-binding limit.
fn fits(
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

fn workgroups_1d(ctx: &GpuContext, kernel: &'static str, n: usize) -> Result<u32, GpuError> {
    let max = ctx.limits().max_compute_workgroups_per_dimension;
    match u32::try_from(n) {
        Ok(g) if g <= max => Ok(g),
        _ => Err(GpuError::shape(
            kernel,
            format!("{n} workgroups exceed the device's {max} per dimension"),
        )),
    }
}

