//! Quantized weight matrices on the GPU and their products: a matrix `W`
//! kept in the word streams of [`super::repack`], multiplied by one kernel
//! family (`shaders/qmatmul.wgsl`) whose entry points share the per-format
//! dequantization, its `FORMAT` override picking the format:
//!
//! - `matvec` (lanes along K): `Y (tokens, rows) (+)= X (tokens, cols) · Wᵀ`
//!   for one token (decode, [`GpuMatrix::bind_matvec`]) or a few per
//!   workgroup (batches on CPU adapters, [`GpuMatrix::bind_matmul`]);
//! - `matmul` (register-blocked tiles): the same for batches on GPUs;
//! - `embed`: `out (tokens, cols) = W[ids[t], :]` ([`GpuMatrix::bind_embed`]).
//!
//! Which kernel and workgroup shape a device gets is its
//! [`super::KernelPreset`] ([`GpuContext::preset`]). `(+)=` adds to `Y` when
//! the binding was made with `accumulate` (the decoder fuses residual adds
//! this way). `tokens` comes from the per-submit [`super::StepUniform`];
//! bindings are made once and their `encode` only records dispatches
//! (`bind.rs`); `host.rs` runs single products from host slices for tests
//! and tools.
//!
//! A matrix whose streams exceed the device's storage-binding (or buffer) limit
//! is split by rows into parts, each repacked and bound on its own and
//! dispatched into its slice of `y`; nothing is rejected for size while a
//! single row fits. Matrices are uploaded by [`super::upload::MatrixUpload`],
//! streaming row groups into the parts' buffers as their bytes arrive.

mod bind;
mod host;
mod verify;

pub use super::keys::{KernelPreset, MatvecShape, QEntry, QFormat};
pub use bind::{BatchKernel, EmbedBinding, MatmulBinding, MatvecBinding, Norm, Output};
pub use verify::VerifyBinding;

use super::repack::Repacked;
use super::upload::{MatrixUpload, UploadOptions};
use super::{GpuContext, GpuError};
use crate::gguf::TensorInfo;

const K: &str = "qmatmul";

/// The shader's `Params` uniform, one per bound part.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub(super) struct Params {
    pub rows: u32,
    pub cols: u32,
    pub row_base: u32,
    pub total_rows: u32,
    pub y_stride: u32,
    pub y_offset: u32,
    pub norm_groups: u32,
    pub eps: f32,
}

/// Rows `row_base..row_base + rows` of a matrix, in their own buffers.
#[derive(Debug)]
pub(super) struct Part {
    pub row_base: usize,
    pub rows: usize,
    /// Binding 3 (and 7): the part's `quants` stream.
    pub quants: wgpu::Buffer,
    /// Binding 4: the part's `scales` stream (a one-word placeholder for F32, F16).
    pub scales: wgpu::Buffer,
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
