//! Quantized matrix products and embedding lookup over a weight matrix `W`
//! kept on the GPU in the u32 streams of [`super::repack`]: one kernel family
//! (`shaders/qmatmul.wgsl`) with three entry points sharing the per-format
//! dequantization, its `FORMAT` override picking the format:
//!
//! - [`QEntry::Matvec`] (decode): `y (rows) (+)= W x`, bound by [`GpuMatrix::bind_matvec`];
//! - [`QEntry::Matmul`] (prefill): `Y (tokens, rows) (+)= X (tokens, cols) · Wᵀ`,
//!   bound by [`GpuMatrix::bind_matmul`];
//! - [`QEntry::Embed`]: `out (tokens, cols) = W[ids[t], :]`, bound by
//!   [`GpuMatrix::bind_embed`].
//!
//! `(+)=` adds to `y` when the binding was made with `accumulate` (the
//! decoder fuses residual adds this way). `tokens` comes from the per-submit
//! [`super::StepUniform`]; bindings are made once and their `encode` only
//! records dispatches.
//!
//! A matrix whose streams exceed the device's storage-binding (or buffer) limit
//! is split by rows into parts, each repacked and bound on its own and
//! dispatched into its slice of `y`; nothing is rejected for size while a
//! single row fits. Matrices are uploaded by [`super::upload::MatrixUpload`],
//! streaming row groups into the parts' buffers as their bytes arrive.

use super::pipelines::KernelKey;
use super::repack::Repacked;
use super::step::{StepParams, StepUniform};
use super::upload::{MatrixUpload, UploadOptions};
use super::{GpuContext, GpuError};
use crate::ggml_type::GgmlType;
use crate::gguf::TensorInfo;

const K: &str = "qmatmul";

/// The workgroup shape of `matvec`: `lanes` invocations along K (`WG` in the
/// shader) computing `rows` rows (`ROWS`, at most 16, `lanes * rows` at most
/// 1024). Chosen per adapter by [`GpuContext::matvec_shape`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MatvecShape {
    pub lanes: u32,
    pub rows: u32,
}

impl MatvecShape {
    /// GPUs: one 32-lane warp (subgroup) per workgroup, 4 rows sharing each
    /// x load: a warp's weight loads cover 512 contiguous bytes of a row.
    pub const GPU: MatvecShape = MatvecShape { lanes: 32, rows: 4 };
    /// CPU adapters (llvmpipe, SwiftShader): a workgroup is one SIMD loop on
    /// one core, where every per-lane load of a storage buffer is a scalar
    /// loop over the lanes; 8 lanes (one 256-bit vector) and 16 rows per x
    /// load measured fastest on llvmpipe (README, "Speed").
    pub const CPU: MatvecShape = MatvecShape { lanes: 8, rows: 16 };
    /// Every preset (the pipelines `KernelKey::all` lists).
    pub const ALL: [MatvecShape; 2] = [MatvecShape::GPU, MatvecShape::CPU];
    /// Largest `rows` (the shader's `MAX_ROWS`).
    pub const MAX_ROWS: u32 = 16;
    /// Largest `lanes * rows` (the shader's `MAX_PARTIALS`).
    pub const MAX_PARTIALS: u32 = 1024;

    /// Whether the shader can run this shape on a device of `limits`.
    pub fn fits(self, limits: &wgpu::Limits) -> bool {
        self.lanes > 0
            && (1..=Self::MAX_ROWS).contains(&self.rows)
            && self.lanes * self.rows <= Self::MAX_PARTIALS
            && self.lanes <= limits.max_compute_invocations_per_workgroup
            && self.lanes <= limits.max_compute_workgroup_size_x
    }
}
/// `matmul`: tokens per workgroup tile (`TM`).
pub const MATMUL_TILE_TOKENS: u32 = 32;
/// `matmul`: rows per workgroup tile (`TN`).
pub const MATMUL_TILE_ROWS: u32 = 64;
/// `embed`: threads per workgroup, each writing 4 values.
const EMBED_WG: u32 = 64;

/// The weight formats `qmatmul.wgsl` reads (its `FORMAT` constant).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum QFormat {
    F32,
    F16,
    Q8_0,
    Q4_0,
    Q4K,
    Q6K,
}

/// The former name of [`QFormat`].
pub type MatvecFormat = QFormat;

impl QFormat {
    pub const ALL: [QFormat; 6] = [
        QFormat::F32,
        QFormat::F16,
        QFormat::Q8_0,
        QFormat::Q4_0,
        QFormat::Q4K,
        QFormat::Q6K,
    ];

    /// The format for tensors of type `ty`, if the kernels read it.
    pub fn of(ty: GgmlType) -> Option<QFormat> {
        QFormat::ALL.into_iter().find(|f| f.ggml_type() == ty)
    }

    pub fn ggml_type(self) -> GgmlType {
        match self {
            QFormat::F32 => GgmlType::F32,
            QFormat::F16 => GgmlType::F16,
            QFormat::Q8_0 => GgmlType::Q8_0,
            QFormat::Q4_0 => GgmlType::Q4_0,
            QFormat::Q4K => GgmlType::Q4K,
            QFormat::Q6K => GgmlType::Q6K,
        }
    }

    /// The shader's `FORMAT` value.
    pub fn code(self) -> u32 {
        match self {
            QFormat::F32 => 0,
            QFormat::F16 => 1,
            QFormat::Q8_0 => 2,
            QFormat::Q4_0 => 3,
            QFormat::Q4K => 4,
            QFormat::Q6K => 5,
        }
    }

    /// Bytes per row of the `quants` and `scales` streams, before the whole
    /// stream is rounded up to words (see [`super::repack`]).
    pub(super) fn row_bytes(self, cols: u64) -> (u64, u64) {
        let nb = cols / self.ggml_type().block_elems() as u64;
        match self {
            QFormat::F32 => (4 * cols.next_multiple_of(4), 0),
            QFormat::F16 => (2 * cols.next_multiple_of(8), 0),
            QFormat::Q8_0 => (32 * nb, 2 * nb),
            QFormat::Q4_0 => (16 * nb, 2 * nb),
            QFormat::Q4K => (128 * nb, 20 * nb),
            QFormat::Q6K => (208 * nb, 2 * nb),
        }
    }
}

/// The entry points of `qmatmul.wgsl`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum QEntry {
    /// `y = W x` (decode).
    Matvec,
    /// `Y = X Wᵀ` over `Step.tokens` tokens (prefill).
    Matmul,
    /// `out[t] = W[ids[t]]` (embedding lookup; never accumulates).
    Embed,
}

impl QEntry {
    pub const ALL: [QEntry; 3] = [QEntry::Matvec, QEntry::Matmul, QEntry::Embed];

    /// The WGSL entry point's name.
    pub fn name(self) -> &'static str {
        match self {
            QEntry::Matvec => "matvec",
            QEntry::Matmul => "matmul",
            QEntry::Embed => "embed",
        }
    }

    /// Whether the entry has an `ACCUMULATE` variant.
    pub fn accumulates(self) -> bool {
        !matches!(self, QEntry::Embed)
    }
}

/// Values of the shader's `override` constants for one pipeline (every
/// override gets a value, used by the entry or not).
pub(crate) fn qmatmul_constants(
    format: QFormat,
    accumulate: bool,
    shape: MatvecShape,
) -> Vec<(&'static str, f64)> {
    vec![
        ("FORMAT", f64::from(format.code())),
        ("ACCUMULATE", if accumulate { 1.0 } else { 0.0 }),
        ("WG", f64::from(shape.lanes)),
        ("ROWS", f64::from(shape.rows)),
    ]
}

/// The shader's `Params` uniform, one per part.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub(super) struct Params {
    pub rows: u32,
    pub cols: u32,
    pub row_base: u32,
    pub total_rows: u32,
}

/// Rows `row_base..row_base + rows` of a matrix, in their own buffers.
#[derive(Debug)]
pub(super) struct Part {
    pub rows: usize,
    /// Binding 3: the part's `quants` stream, rounded up to words (at least one).
    pub quants: wgpu::Buffer,
    /// Binding 4: the part's `scales` stream (a one-word placeholder for F32, F16).
    pub scales: wgpu::Buffer,
    /// Binding 0: [`Params`].
    pub params: wgpu::Buffer,
}

/// A `(rows, cols)` weight matrix on the GPU (GGUF dims `[cols, rows]`),
/// repacked for `qmatmul.wgsl`.
#[derive(Debug)]
pub struct GpuMatrix {
    name: String,
    format: QFormat,
    rows: usize,
    cols: usize,
    parts: Vec<Part>,
}

/// `y = W x` bound to its buffers: one bind group and dispatch per part.
#[derive(Debug)]
pub struct MatvecBinding {
    pipeline: wgpu::ComputePipeline,
    groups: Vec<(wgpu::BindGroup, (u32, u32))>,
}

/// `Y = X Wᵀ` bound to its buffers for up to `max_tokens` tokens.
#[derive(Debug)]
pub struct MatmulBinding {
    name: String,
    pipeline: wgpu::ComputePipeline,
    max_tokens: usize,
    /// Per part: its bind group and its row tiles.
    groups: Vec<(wgpu::BindGroup, u32)>,
}

/// `out[t] = W[ids[t]]` bound to its buffers for up to `max_tokens` tokens.
#[derive(Debug)]
pub struct EmbedBinding {
    name: String,
    pipeline: wgpu::ComputePipeline,
    max_tokens: usize,
    /// Workgroups along the embedding dimension.
    gx: u32,
    groups: Vec<wgpu::BindGroup>,
}

impl MatvecBinding {
    /// Records `y (+)= W x`: one dispatch per part.
    pub fn encode(&self, pass: &mut wgpu::ComputePass<'_>) {
        pass.set_pipeline(&self.pipeline);
        for (group, (gx, gy)) in &self.groups {
            pass.set_bind_group(0, group, &[]);
            pass.dispatch_workgroups(*gx, *gy, 1);
        }
    }
}

impl MatmulBinding {
    /// Records `Y (+)= X Wᵀ` for the first `tokens` rows of `X` and `Y`;
    /// `tokens` must be the value the `Step` uniform will hold at the submit
    /// (the dispatch is sized from it, the shader bounds-checks with it).
    pub fn encode(&self, pass: &mut wgpu::ComputePass<'_>, tokens: usize) -> Result<(), GpuError> {
        check_tokens(&self.name, tokens, self.max_tokens)?;
        let gy = tokens.div_ceil(MATMUL_TILE_TOKENS as usize) as u32;
        pass.set_pipeline(&self.pipeline);
        for (group, gx) in &self.groups {
            pass.set_bind_group(0, group, &[]);
            pass.dispatch_workgroups(*gx, gy, 1);
        }
        Ok(())
    }

    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }
}

impl EmbedBinding {
    /// Records the lookup of the first `tokens` ids (`tokens` as the `Step`
    /// uniform will hold at the submit).
    pub fn encode(&self, pass: &mut wgpu::ComputePass<'_>, tokens: usize) -> Result<(), GpuError> {
        check_tokens(&self.name, tokens, self.max_tokens)?;
        pass.set_pipeline(&self.pipeline);
        for group in &self.groups {
            pass.set_bind_group(0, group, &[]);
            pass.dispatch_workgroups(self.gx, tokens as u32, 1);
        }
        Ok(())
    }

    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }
}

fn check_tokens(name: &str, tokens: usize, max_tokens: usize) -> Result<(), GpuError> {
    if tokens == 0 || tokens > max_tokens {
        return Err(GpuError::shape(
            K,
            format!("{name}: {tokens} tokens, the binding takes 1..={max_tokens}"),
        ));
    }
    Ok(())
}

/// A buffer binding of its first `bytes` bytes.
fn first(buffer: &wgpu::Buffer, bytes: u64) -> wgpu::BindingResource<'_> {
    wgpu::BindingResource::Buffer(wgpu::BufferBinding {
        buffer,
        offset: 0,
        size: wgpu::BufferSize::new(bytes),
    })
}

impl GpuMatrix {
    /// A matrix from buffers filled by [`MatrixUpload`].
    pub(super) fn from_parts(
        name: String,
        format: QFormat,
        rows: usize,
        cols: usize,
        parts: Vec<Part>,
    ) -> GpuMatrix {
        GpuMatrix {
            name,
            format,
            rows,
            cols,
            parts,
        }
    }

    /// Repacks and uploads a tensor's bytes (`info.n_bytes` of them, as in the
    /// file); 1-D tensors become a single row. Splits it by rows where a stream
    /// exceeds the device's storage-binding or buffer limit.
    pub async fn upload_async(
        ctx: &GpuContext,
        info: &TensorInfo,
        bytes: &[u8],
    ) -> Result<GpuMatrix, GpuError> {
        Self::upload_with(ctx, info, bytes, UploadOptions::default()).await
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
        let opts = UploadOptions {
            part_bytes: Some(part_bytes),
            ..Default::default()
        };
        Self::upload_with(ctx, info, bytes, opts).await
    }

    /// The one-shot upload: a [`MatrixUpload`] given all the bytes at once
    /// (it still repacks and writes them a batch of rows at a time).
    async fn upload_with(
        ctx: &GpuContext,
        info: &TensorInfo,
        bytes: &[u8],
        opts: UploadOptions,
    ) -> Result<GpuMatrix, GpuError> {
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
        let mut upload = MatrixUpload::begin_with(ctx, info, opts).await?;
        upload.push(ctx, bytes)?;
        upload.finish(ctx)
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

    pub fn format(&self) -> QFormat {
        self.format
    }

    /// Output size (the GGUF `dims[1]`; the vocabulary of an embedding table).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Input size (the GGUF `dims[0]`; the embedding dimension).
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// How many row parts the matrix was split into (1 unless it exceeds the
    /// binding limit).
    pub fn parts(&self) -> usize {
        self.parts.len()
    }

    /// Bytes of GPU memory the matrix takes (its streams, all parts).
    pub fn gpu_bytes(&self) -> u64 {
        self.parts
            .iter()
            .map(|p| p.quants.size() + p.scales.size())
            .sum()
    }

    /// Reads the word streams back, one [`Repacked`] per part (rows of part
    /// `i` follow those of part `i - 1`), each stream exactly as long as
    /// [`super::repack::repack`] makes it (tests, tools).
    pub async fn read_back_streams_async(
        &self,
        ctx: &GpuContext,
    ) -> Result<Vec<Repacked>, GpuError> {
        let (q_row, s_row) = self.format.row_bytes(self.cols as u64);
        let mut out = Vec::with_capacity(self.parts.len());
        for part in &self.parts {
            let words = |row_bytes: u64| (part.rows as u64 * row_bytes).div_ceil(4) as usize;
            out.push(Repacked {
                ty: self.format.ggml_type(),
                rows: part.rows,
                cols: self.cols,
                quants: ctx.read_back_u32(&part.quants, words(q_row)).await?,
                scales: ctx.read_back_u32(&part.scales, words(s_row)).await?,
            });
        }
        Ok(out)
    }

    /// Blocking [`GpuMatrix::read_back_streams_async`] (native only).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn read_back_streams(&self, ctx: &GpuContext) -> Result<Vec<Repacked>, GpuError> {
        ctx.block_on(self.read_back_streams_async(ctx))
    }

    /// The pipeline key of `entry` for this matrix's format (`shape` only
    /// matters to matvec; the other entries always get the GPU preset, so
    /// that each has one pipeline per format).
    pub fn kernel_key(&self, entry: QEntry, accumulate: bool, shape: MatvecShape) -> KernelKey {
        KernelKey::QMatmul {
            entry,
            format: self.format,
            accumulate: accumulate && entry.accumulates(),
            shape: match entry {
                QEntry::Matvec => shape,
                _ => MatvecShape::GPU,
            },
        }
    }

    /// `Err(Shape)` unless `buffer` holds `n` f32/u32 values and they fit one
    /// storage binding; returns their bytes.
    fn fits(
        &self,
        ctx: &GpuContext,
        what: &str,
        buffer: &wgpu::Buffer,
        n: usize,
        shape: &str,
    ) -> Result<u64, GpuError> {
        let bytes = (n as u64)
            .checked_mul(4)
            .filter(|&b| b <= u64::from(u32::MAX) * 4);
        let bytes = bytes.ok_or_else(|| {
            GpuError::shape(
                K,
                format!("{}: {what} {shape} exceeds u32 indexing", self.name),
            )
        })?;
        if buffer.size() < bytes {
            return Err(GpuError::shape(
                K,
                format!(
                    "{}: {what} holds {} bytes, {shape} f32 needs {bytes}",
                    self.name,
                    buffer.size()
                ),
            ));
        }
        ctx.check_binding_size(&format!("{K} {what}"), bytes)?;
        Ok(bytes)
    }

    /// Bind groups for every part: params (0), the part's weight streams
    /// (3, 4) and `shared` (the same for every part).
    async fn bind_parts(
        &self,
        ctx: &GpuContext,
        pipeline: &wgpu::ComputePipeline,
        label: &str,
        shared: &[(u32, wgpu::BindingResource<'_>)],
    ) -> Result<Vec<wgpu::BindGroup>, GpuError> {
        let layout = pipeline.get_bind_group_layout(0);
        let mut groups = Vec::with_capacity(self.parts.len());
        // matvec reads the quants as vec4<u32> (binding 7), the other
        // entries as u32 (binding 3).
        let quants_binding = if label == "matvec" { 7 } else { 3 };
        for part in &self.parts {
            let mut entries = vec![
                wgpu::BindGroupEntry {
                    binding: 0,
                    resource: part.params.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: quants_binding,
                    resource: part.quants.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 4,
                    resource: part.scales.as_entire_binding(),
                },
            ];
            entries.extend(
                shared
                    .iter()
                    .map(|(binding, resource)| wgpu::BindGroupEntry {
                        binding: *binding,
                        resource: resource.clone(),
                    }),
            );
            let group = ctx
                .scoped(|| {
                    ctx.device().create_bind_group(&wgpu::BindGroupDescriptor {
                        label: Some(label),
                        layout: &layout,
                        entries: &entries,
                    })
                })
                .await?;
            groups.push(group);
        }
        Ok(groups)
    }

    /// Binds `y (+)= W x` (`+=` with `accumulate`) to its buffers, once.
    ///
    /// - `x`: `(cols)` f32, at offset 0 of a buffer that may be larger
    /// - `y`: `(rows)` f32, at offset 0 of a buffer that may be larger, not `x`
    pub async fn bind_matvec(
        &self,
        ctx: &GpuContext,
        x: &wgpu::Buffer,
        y: &wgpu::Buffer,
        accumulate: bool,
    ) -> Result<MatvecBinding, GpuError> {
        let x_bytes = self.fits(ctx, "x", x, self.cols, &format!("(cols = {})", self.cols))?;
        let y_bytes = self.fits(ctx, "y", y, self.rows, &format!("(rows = {})", self.rows))?;
        if x == y {
            return Err(GpuError::shape(
                K,
                format!("{}: x and y are one buffer", self.name),
            ));
        }
        let max_dim = u64::from(ctx.limits().max_compute_workgroups_per_dimension.max(1));
        let shape = ctx.matvec_shape();
        let mut dims = Vec::with_capacity(self.parts.len());
        for part in &self.parts {
            let groups = part.rows.div_ceil(shape.rows as usize) as u64;
            let gx = groups.min(max_dim);
            let gy = groups.div_ceil(gx);
            if gy > max_dim {
                return Err(GpuError::shape(
                    K,
                    format!("{}: {groups} workgroups exceed {max_dim}²", self.name),
                ));
            }
            dims.push((gx as u32, gy as u32));
        }
        let pipeline = ctx
            .pipeline(self.kernel_key(QEntry::Matvec, accumulate, shape))
            .await?;
        // x as vec4 (binding 8): its whole vec4s; the kernel reads it only
        // when cols % 4 == 0 (else binding 1), but every binding is bound.
        let x4_bytes = (x_bytes / 16 * 16).max(16);
        if x.size() < x4_bytes {
            return Err(GpuError::shape(
                K,
                format!("{}: x holds {} bytes, under one vec4", self.name, x.size()),
            ));
        }
        let groups = self
            .bind_parts(
                ctx,
                &pipeline,
                "matvec",
                &[
                    (1, first(x, x_bytes)),
                    (2, first(y, y_bytes)),
                    (8, first(x, x4_bytes)),
                ],
            )
            .await?;
        Ok(MatvecBinding {
            pipeline,
            groups: groups.into_iter().zip(dims).collect(),
        })
    }

    /// Binds `Y (+)= X Wᵀ` (`+=` with `accumulate`) for up to `max_tokens`
    /// tokens, once; the token count of each submit is `step`'s.
    ///
    /// - `x`: `(max_tokens, cols)` f32, at offset 0 of a buffer that may be larger
    /// - `y`: `(max_tokens, rows)` f32, at offset 0 of a buffer that may be larger, not `x`
    pub async fn bind_matmul(
        &self,
        ctx: &GpuContext,
        step: &StepUniform,
        x: &wgpu::Buffer,
        y: &wgpu::Buffer,
        max_tokens: usize,
        accumulate: bool,
    ) -> Result<MatmulBinding, GpuError> {
        if max_tokens == 0 {
            return Err(GpuError::shape(
                K,
                format!("{}: max_tokens is 0", self.name),
            ));
        }
        let x_n = max_tokens.saturating_mul(self.cols);
        let y_n = max_tokens.saturating_mul(self.rows);
        let x_bytes = self.fits(
            ctx,
            "x",
            x,
            x_n,
            &format!("(max_tokens = {max_tokens}, cols = {})", self.cols),
        )?;
        let y_bytes = self.fits(
            ctx,
            "y",
            y,
            y_n,
            &format!("(max_tokens = {max_tokens}, rows = {})", self.rows),
        )?;
        if x == y {
            return Err(GpuError::shape(
                K,
                format!("{}: x and y are one buffer", self.name),
            ));
        }
        let max_dim = ctx.limits().max_compute_workgroups_per_dimension as usize;
        let row_tiles = |rows: usize| rows.div_ceil(MATMUL_TILE_ROWS as usize);
        let token_tiles = max_tokens.div_ceil(MATMUL_TILE_TOKENS as usize);
        if row_tiles(self.rows) > max_dim || token_tiles > max_dim {
            return Err(GpuError::shape(
                K,
                format!(
                    "{}: ({}, {token_tiles}) workgroups exceed {max_dim} per dimension",
                    self.name,
                    row_tiles(self.rows)
                ),
            ));
        }
        let pipeline = ctx
            .pipeline(self.kernel_key(QEntry::Matmul, accumulate, MatvecShape::GPU))
            .await?;
        let groups = self
            .bind_parts(
                ctx,
                &pipeline,
                "matmul",
                &[
                    (1, first(x, x_bytes)),
                    (2, first(y, y_bytes)),
                    (5, step.buffer().as_entire_binding()),
                ],
            )
            .await?;
        Ok(MatmulBinding {
            name: self.name.clone(),
            pipeline,
            max_tokens,
            groups: groups
                .into_iter()
                .zip(&self.parts)
                .map(|(g, part)| (g, row_tiles(part.rows) as u32))
                .collect(),
        })
    }

    /// Binds the embedding lookup `out[t, :] = W[ids[t], :]` for up to
    /// `max_tokens` tokens, once (`W` is the `(vocab = rows, dim = cols)`
    /// table); the token count of each submit is `step`'s. An id `>= rows`
    /// gives a row of zeros (it never reads out of bounds).
    ///
    /// - `ids`: `(max_tokens)` u32, at offset 0 of a buffer that may be larger
    /// - `out`: `(max_tokens, cols)` f32, at offset 0 of a buffer that may be larger
    pub async fn bind_embed(
        &self,
        ctx: &GpuContext,
        step: &StepUniform,
        ids: &wgpu::Buffer,
        out: &wgpu::Buffer,
        max_tokens: usize,
    ) -> Result<EmbedBinding, GpuError> {
        if max_tokens == 0 {
            return Err(GpuError::shape(
                K,
                format!("{}: max_tokens is 0", self.name),
            ));
        }
        let ids_bytes = self.fits(
            ctx,
            "ids",
            ids,
            max_tokens,
            &format!("(max_tokens = {max_tokens})"),
        )?;
        let out_n = max_tokens.saturating_mul(self.cols);
        let out_bytes = self.fits(
            ctx,
            "out",
            out,
            out_n,
            &format!("(max_tokens = {max_tokens}, cols = {})", self.cols),
        )?;
        if ids == out {
            return Err(GpuError::shape(
                K,
                format!("{}: ids and out are one buffer", self.name),
            ));
        }
        let max_dim = ctx.limits().max_compute_workgroups_per_dimension as usize;
        let gx = self.cols.div_ceil(4 * EMBED_WG as usize);
        if gx > max_dim || max_tokens > max_dim {
            return Err(GpuError::shape(
                K,
                format!(
                    "{}: ({gx}, {max_tokens}) workgroups exceed {max_dim} per dimension",
                    self.name
                ),
            ));
        }
        let pipeline = ctx
            .pipeline(self.kernel_key(QEntry::Embed, false, MatvecShape::GPU))
            .await?;
        let groups = self
            .bind_parts(
                ctx,
                &pipeline,
                "embed",
                &[
                    (2, first(out, out_bytes)),
                    (5, step.buffer().as_entire_binding()),
                    (6, first(ids, ids_bytes)),
                ],
            )
            .await?;
        Ok(EmbedBinding {
            name: self.name.clone(),
            pipeline,
            max_tokens,
            gx: gx as u32,
            groups,
        })
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

    /// Uploads `x` (`(tokens, cols)` f32), runs `Y = X Wᵀ` and reads `Y`
    /// (`(tokens, rows)` f32) back (tests, tools).
    pub async fn matmul_host_async(
        &self,
        ctx: &GpuContext,
        x: &[f32],
        tokens: usize,
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
        let xb = ctx.storage_f32("matmul x", x).await?;
        let yb = ctx
            .storage_zeroed("matmul y", 4 * (tokens * self.rows) as u64)
            .await?;
        let binding = self
            .bind_matmul(ctx, &step, &xb, &yb, tokens, false)
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

/// `(rows, cols)` of a tensor: `cols = dims[0]`, rows the product of the rest.
pub(super) fn matrix_shape(info: &TensorInfo) -> Result<(usize, usize), GpuError> {
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
