//! Quantized matrix-vector products for decode: `y = W x` with `W` kept on the
//! GPU in the u32 streams of [`super::repack`], one kernel family
//! (`shaders/matvec.wgsl`) whose `FORMAT` override picks the format.
//!
//! A matrix whose streams exceed the device's storage-binding (or buffer) limit
//! is split by rows into parts, each repacked and bound on its own and
//! dispatched into its slice of `y`; nothing is rejected for size while a
//! single row fits.

use super::repack::{repack, supported};
use super::{GpuContext, GpuError};
use crate::ggml_type::GgmlType;
use crate::gguf::TensorInfo;

const K: &str = "matvec";

/// Threads per workgroup (`WG` in the shader).
pub const MATVEC_WG: u32 = 64;
/// Rows per workgroup (`ROWS` in the shader, at most its `MAX_ROWS`).
pub const MATVEC_ROWS: u32 = 4;

/// The weight formats `matvec.wgsl` reads (its `FORMAT` constant).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MatvecFormat {
    F32,
    F16,
    Q8_0,
    Q4_0,
    Q4K,
    Q6K,
}

impl MatvecFormat {
    pub const ALL: [MatvecFormat; 6] = [
        MatvecFormat::F32,
        MatvecFormat::F16,
        MatvecFormat::Q8_0,
        MatvecFormat::Q4_0,
        MatvecFormat::Q4K,
        MatvecFormat::Q6K,
    ];

    /// The format for tensors of type `ty`, if the kernel reads it.
    pub fn of(ty: GgmlType) -> Option<MatvecFormat> {
        MatvecFormat::ALL.into_iter().find(|f| f.ggml_type() == ty)
    }

    pub fn ggml_type(self) -> GgmlType {
        match self {
            MatvecFormat::F32 => GgmlType::F32,
            MatvecFormat::F16 => GgmlType::F16,
            MatvecFormat::Q8_0 => GgmlType::Q8_0,
            MatvecFormat::Q4_0 => GgmlType::Q4_0,
            MatvecFormat::Q4K => GgmlType::Q4K,
            MatvecFormat::Q6K => GgmlType::Q6K,
        }
    }

    /// The shader's `FORMAT` value.
    pub fn code(self) -> u32 {
        match self {
            MatvecFormat::F32 => 0,
            MatvecFormat::F16 => 1,
            MatvecFormat::Q8_0 => 2,
            MatvecFormat::Q4_0 => 3,
            MatvecFormat::Q4K => 4,
            MatvecFormat::Q6K => 5,
        }
    }

    /// Values of the shader's `override` constants for this format.
    pub fn constants(self) -> Vec<(&'static str, f64)> {
        vec![
            ("FORMAT", f64::from(self.code())),
            ("WG", f64::from(MATVEC_WG)),
            ("ROWS", f64::from(MATVEC_ROWS)),
        ]
    }

    /// Bytes per row of the `quants` and `scales` streams, before the whole
    /// stream is rounded up to words (see [`super::repack`]).
    fn row_bytes(self, cols: u64) -> (u64, u64) {
        let nb = cols / self.ggml_type().block_elems() as u64;
        match self {
            MatvecFormat::F32 => (4 * cols, 0),
            MatvecFormat::F16 => (2 * cols, 0),
            MatvecFormat::Q8_0 => (32 * nb, 2 * nb),
            MatvecFormat::Q4_0 => (16 * nb, 2 * nb),
            MatvecFormat::Q4K => (128 * nb, 16 * nb),
            MatvecFormat::Q6K => (208 * nb, 2 * nb),
        }
    }
}

/// The shader's `Params` uniform.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    cols: u32,
    row_base: u32,
    _pad: u32,
}

/// Rows `row_base..row_base + rows` of a matrix, in their own buffers.
#[derive(Debug)]
struct Part {
    row_base: usize,
    rows: usize,
    quants: wgpu::Buffer,
    scales: wgpu::Buffer,
    params: wgpu::Buffer,
}

/// A `(rows, cols)` weight matrix on the GPU (GGUF dims `[cols, rows]`),
/// repacked for `matvec.wgsl`, with the pipeline of its format.
#[derive(Debug)]
pub struct GpuMatrix {
    name: String,
    format: MatvecFormat,
    rows: usize,
    cols: usize,
    parts: Vec<Part>,
    pipeline: wgpu::ComputePipeline,
}

impl GpuMatrix {
    /// Repacks and uploads a tensor's bytes (`info.n_bytes` of them, as in the
    /// file); 1-D tensors become a single row. Splits it by rows where a stream
    /// exceeds the device's storage-binding or buffer limit.
    pub async fn upload_async(
        ctx: &GpuContext,
        info: &TensorInfo,
        bytes: &[u8],
    ) -> Result<GpuMatrix, GpuError> {
        let limits = ctx.limits();
        let limit = limits
            .max_storage_buffer_binding_size
            .min(limits.max_buffer_size);
        Self::upload_with_part_limit_async(ctx, info, bytes, limit).await
    }

    /// [`GpuMatrix::upload_async`] with parts of at most `part_bytes` bytes per
    /// stream (capped by the device's limits): tests use it to split small
    /// matrices.
    pub async fn upload_with_part_limit_async(
        ctx: &GpuContext,
        info: &TensorInfo,
        bytes: &[u8],
        part_bytes: u64,
    ) -> Result<GpuMatrix, GpuError> {
        let limits = ctx.limits();
        let part_bytes = part_bytes
            .min(limits.max_storage_buffer_binding_size)
            .min(limits.max_buffer_size);
        let format = MatvecFormat::of(info.ty)
            .filter(|f| supported(f.ggml_type()))
            .ok_or_else(|| {
                GpuError::shape(K, format!("{}: no GPU kernel for {:?}", info.name, info.ty))
            })?;
        let (rows, cols) = matrix_shape(info)?;
        if bytes.len() as u64 != info.n_bytes {
            return Err(GpuError::shape(
                K,
                format!(
                    "{}: {} bytes given, the tensor info says {}",
                    info.name,
                    bytes.len(),
                    info.n_bytes
                ),
            ));
        }
        let (q_row, s_row) = format.row_bytes(cols as u64);
        // Rounding a stream up to words adds at most 2 bytes.
        let fit = |per_row: u64| {
            part_bytes
                .saturating_sub(4)
                .checked_div(per_row)
                .unwrap_or(u64::MAX)
        };
        let part_rows = fit(q_row).min(fit(s_row)).min(rows as u64) as usize;
        if part_rows == 0 {
            return Err(GpuError::shape(
                K,
                format!(
                    "{}: one row takes {q_row} + {s_row} bytes, over the {part_bytes}-byte binding limit",
                    info.name
                ),
            ));
        }
        let row_bytes = bytes.len() / rows;
        let mut parts = Vec::with_capacity(rows.div_ceil(part_rows));
        for row_base in (0..rows).step_by(part_rows) {
            let n = part_rows.min(rows - row_base);
            let chunk = &bytes[row_base * row_bytes..(row_base + n) * row_bytes];
            let packed = repack(info.ty, n, cols, chunk)
                .map_err(|e| GpuError::shape(K, format!("{}: {e}", info.name)))?;
            let label = format!("{} rows {row_base}..{}", info.name, row_base + n);
            let quants = ctx
                .storage_u32(&format!("{label} quants"), &packed.quants)
                .await?;
            // F32 and F16 bind a one-word placeholder.
            let scales = ctx
                .storage_u32(&format!("{label} scales"), &packed.scales)
                .await?;
            let params = ctx.uniform(
                &format!("{label} params"),
                &Params {
                    rows: n as u32,
                    cols: cols as u32,
                    row_base: row_base as u32,
                    _pad: 0,
                },
            );
            parts.push(Part {
                row_base,
                rows: n,
                quants,
                scales,
                params,
            });
        }
        let pipeline = pipeline(ctx, format).await?;
        Ok(GpuMatrix {
            name: info.name.clone(),
            format,
            rows,
            cols,
            parts,
            pipeline,
        })
    }

    /// Blocking [`GpuMatrix::upload_async`] (native only).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn upload(
        ctx: &GpuContext,
        info: &TensorInfo,
        bytes: &[u8],
    ) -> Result<GpuMatrix, GpuError> {
        ctx.block_on(Self::upload_async(ctx, info, bytes))
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn format(&self) -> MatvecFormat {
        self.format
    }

    /// Output size (the GGUF `dims[1]`).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Input size (the GGUF `dims[0]`).
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Bytes of GPU memory the matrix takes (its streams, all parts).
    pub fn gpu_bytes(&self) -> u64 {
        self.parts
            .iter()
            .map(|p| p.quants.size() + p.scales.size())
            .sum()
    }

    /// How many row parts the matrix was split into (1 unless it exceeds the
    /// binding limit).
    pub fn parts(&self) -> usize {
        self.parts.len()
    }

    /// Records `y = W x` into `encoder`: one dispatch per part.
    ///
    /// - `x`: `(cols)` f32, at offset 0 of a buffer that may be larger
    /// - `y`: `(rows)` f32, at offset 0 of a buffer that may be larger, not `x`
    pub fn encode(
        &self,
        ctx: &GpuContext,
        encoder: &mut wgpu::CommandEncoder,
        x: &wgpu::Buffer,
        y: &wgpu::Buffer,
    ) -> Result<(), GpuError> {
        let x_bytes = 4 * self.cols as u64;
        let y_bytes = 4 * self.rows as u64;
        if x.size() < x_bytes {
            return Err(GpuError::shape(
                K,
                format!(
                    "{}: x holds {} bytes, (cols = {}) f32 needs {x_bytes}",
                    self.name,
                    x.size(),
                    self.cols
                ),
            ));
        }
        if y.size() < y_bytes {
            return Err(GpuError::shape(
                K,
                format!(
                    "{}: y holds {} bytes, (rows = {}) f32 needs {y_bytes}",
                    self.name,
                    y.size(),
                    self.rows
                ),
            ));
        }
        if x == y {
            return Err(GpuError::shape(
                K,
                format!("{}: x and y are one buffer", self.name),
            ));
        }
        ctx.check_binding_size("matvec x", x_bytes)?;
        ctx.check_binding_size("matvec y", y_bytes)?;
        let layout = self.pipeline.get_bind_group_layout(0);
        let max_dim = ctx.limits().max_compute_workgroups_per_dimension.max(1);
        for part in &self.parts {
            let bind_group = ctx.device().create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("matvec"),
                layout: &layout,
                entries: &[
                    wgpu::BindGroupEntry {
                        binding: 0,
                        resource: part.params.as_entire_binding(),
                    },
                    wgpu::BindGroupEntry {
                        binding: 1,
                        resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                            buffer: x,
                            offset: 0,
                            size: wgpu::BufferSize::new(x_bytes),
                        }),
                    },
                    wgpu::BindGroupEntry {
                        binding: 2,
                        resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                            buffer: y,
                            offset: 0,
                            size: wgpu::BufferSize::new(y_bytes),
                        }),
                    },
                    wgpu::BindGroupEntry {
                        binding: 3,
                        resource: part.quants.as_entire_binding(),
                    },
                    wgpu::BindGroupEntry {
                        binding: 4,
                        resource: part.scales.as_entire_binding(),
                    },
                ],
            });
            let groups = part.rows.div_ceil(MATVEC_ROWS as usize) as u64;
            let gx = groups.min(u64::from(max_dim));
            let gy = groups.div_ceil(gx);
            if gy > u64::from(max_dim) {
                return Err(GpuError::shape(
                    K,
                    format!("{}: {groups} workgroups exceed {max_dim}²", self.name),
                ));
            }
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("matvec"),
                timestamp_writes: None,
            });
            pass.set_pipeline(&self.pipeline);
            pass.set_bind_group(0, &bind_group, &[]);
            pass.dispatch_workgroups(gx as u32, gy as u32, 1);
            debug_assert!(part.row_base + part.rows <= self.rows);
        }
        Ok(())
    }

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
        let xb = ctx.storage_f32("matvec x", x).await?;
        let yb = ctx.storage_zeroed("matvec y", 4 * self.rows as u64).await?;
        let mut encoder = ctx.encoder("matvec");
        ctx.scoped(|| self.encode(ctx, &mut encoder, &xb, &yb))
            .await??;
        ctx.submit(encoder).await?;
        ctx.read_back_f32(&yb, self.rows).await
    }

    /// Blocking [`GpuMatrix::matvec_host_async`] (native only).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn matvec_host(&self, ctx: &GpuContext, x: &[f32]) -> Result<Vec<f32>, GpuError> {
        ctx.block_on(self.matvec_host_async(ctx, x))
    }
}

/// `(rows, cols)` of a tensor: `cols = dims[0]`, rows the product of the rest.
fn matrix_shape(info: &TensorInfo) -> Result<(usize, usize), GpuError> {
    let cols = info.dims.first().copied().unwrap_or(0);
    let n = info.n_elements();
    if cols == 0 || n == 0 {
        return Err(GpuError::shape(
            K,
            format!("{}: empty tensor, dims {:?}", info.name, info.dims),
        ));
    }
    let rows = n / cols;
    if rows > u64::from(u32::MAX) || cols > u64::from(u32::MAX) {
        return Err(GpuError::shape(
            K,
            format!("{}: dims {:?} exceed u32 indices", info.name, info.dims),
        ));
    }
    Ok((rows as usize, cols as usize))
}

/// The compute pipeline of `format`, created inside error scopes.
async fn pipeline(
    ctx: &GpuContext,
    format: MatvecFormat,
) -> Result<wgpu::ComputePipeline, GpuError> {
    let module = ctx
        .scoped(|| {
            ctx.device()
                .create_shader_module(wgpu::ShaderModuleDescriptor {
                    label: Some("matvec.wgsl"),
                    source: wgpu::ShaderSource::Wgsl(super::ShaderFamily::Matvec.source().into()),
                })
        })
        .await?;
    let constants = format.constants();
    let label = format!("matvec {format:?}");
    ctx.scoped(|| {
        ctx.device()
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(&label),
                layout: None,
                module: &module,
                entry_point: Some("main"),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants: &constants,
                    zero_initialize_workgroup_memory: false,
                },
                cache: None,
            })
    })
    .await
}
