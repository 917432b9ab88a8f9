//! Streaming a weight matrix into its GPU buffers as its bytes arrive.
//!
//! [`MatrixUpload::begin`] allocates every part's buffers up front (the row
//! split of [`GpuMatrix`]: parts no larger than the device's binding limit);
//! [`MatrixUpload::push`] takes the tensor's bytes in pieces of any size, in
//! order, and repacks and writes (`queue.write_buffer`) each *row group* as
//! soon as all its bytes are there; [`MatrixUpload::finish`] checks that every
//! byte came and returns the [`GpuMatrix`].
//!
//! A row group is the fewest rows whose `quants` and `scales` streams (see
//! [`super::repack`]) are whole `u32` words, so that every write starts and
//! ends on a word:
//!
//! | format | bytes per row (`quants`, `scales`) | rows per group |
//! |---|---|---|
//! | F32  | `4 cols`, 0 | 1 |
//! | F16  | `2 cols`, 0 | 1, 2 for odd `cols` |
//! | Q8_0, Q4_0 | `32 nb` / `16 nb`, `2 nb` | 1, 2 for odd blocks per row `nb` |
//! | Q4_K | `128 nb`, `20 nb` | 1 |
//! | Q6_K | `208 nb`, `2 nb` | 1, 2 for odd `nb` |
//!
//! Groups count from the start of each part (each part's streams start at
//! word 0); a part's last group may be shorter, its streams padded to a word as
//! [`super::repack::repack`] pads them. The words written are therefore exactly
//! those a one-shot repack of the part gives, whatever the piece sizes.
//!
//! Host memory: the bytes of one incomplete row group are kept between pushes;
//! within a push, rows are repacked a batch of about [`BATCH_BYTES`] at a time.
//! Natively the queue's staged writes are flushed (an empty submit) every
//! [`FLUSH_BYTES`], so they never pile up to a tensor's size either.
//!
//! Formats without a kernel (Q4_1, Q5_0, Q5_1, Q5_K, BF16) are accepted with
//! [`UploadOptions::widen`]: each batch of rows is dequantized and rounded to
//! F16 (`half::f16::from_f32`), then uploaded as an F16 matrix.

use half::f16;

use super::qmatmul::{matrix_shape, GpuMatrix, Part, QFormat};
use super::repack::repack_into;
use super::{GpuContext, GpuError};
use crate::ggml_type::GgmlType;
use crate::gguf::TensorInfo;
use crate::quant;

const K: &str = "upload";

/// Source bytes (or, when widening, f32 scratch bytes) repacked per batch, at
/// least one row group.
pub const BATCH_BYTES: usize = 1 << 20;
/// Bytes written to the queue between two flushes of its staged writes.
pub const FLUSH_BYTES: u64 = 16 << 20;

/// How [`MatrixUpload::begin_with`] lays a matrix out.
#[derive(Clone, Debug, Default)]
pub struct UploadOptions {
    /// The most bytes one stream of one part may take (capped by the device's
    /// storage-binding and buffer limits); `None`: the device's limits.
    pub part_bytes: Option<u64>,
    /// Accept formats without a kernel, widening them to F16; without it they
    /// are an error.
    pub widen: bool,
}

/// A matrix being uploaded. See the module docs.
#[derive(Debug)]
pub struct MatrixUpload {
    name: String,
    /// The type of the bytes pushed (the file's).
    src_ty: GgmlType,
    /// The format on the GPU (F16 when widened).
    format: QFormat,
    rows: usize,
    cols: usize,
    /// Source bytes per row.
    src_row: usize,
    /// Bytes per row of the `quants` and `scales` streams.
    q_row: u64,
    s_row: u64,
    /// Rows per group (see the module docs).
    group_rows: usize,
    /// Rows per batch: a multiple of `group_rows`.
    batch_rows: usize,
    /// Rows per part (the last may have fewer).
    part_rows: usize,
    parts: Vec<Part>,
    /// Source bytes pushed so far.
    received: u64,
    /// The next row to write.
    row: usize,
    /// Source bytes of the group starting at `row`, while incomplete.
    carry: Vec<u8>,
    /// Scratch: repacked words, and the widened rows.
    quants: Vec<u32>,
    scales: Vec<u32>,
    values: Vec<f32>,
    halves: Vec<u8>,
    /// Bytes written since the last flush.
    unflushed: u64,
}

impl MatrixUpload {
    /// Starts uploading the `(rows, cols)` matrix `info` describes (GGUF dims
    /// `[cols, rows, ..]`; 1-D tensors are one row) in a format with a kernel.
    pub async fn begin(ctx: &GpuContext, info: &TensorInfo) -> Result<MatrixUpload, GpuError> {
        Self::begin_with(ctx, info, UploadOptions::default()).await
    }

    /// [`MatrixUpload::begin`] with options: allocates every part's buffers.
    pub async fn begin_with(
        ctx: &GpuContext,
        info: &TensorInfo,
        opts: UploadOptions,
    ) -> Result<MatrixUpload, GpuError> {
        let format = match QFormat::of(info.ty) {
            Some(f) => f,
            None if opts.widen => QFormat::F16,
            None => {
                return Err(GpuError::shape(
                    K,
                    format!("{}: no GPU kernel for {:?}", info.name, info.ty),
                ))
            }
        };
        let (rows, cols) = matrix_shape(info)?;
        let block = info.ty.block_elems();
        if !cols.is_multiple_of(block) {
            return Err(GpuError::shape(
                K,
                format!(
                    "{}: rows of {cols} {:?} elements are not whole blocks of {block}",
                    info.name, info.ty
                ),
            ));
        }
        let src_row = cols / block * info.ty.block_bytes();
        if (rows as u64).checked_mul(src_row as u64) != Some(info.n_bytes) {
            return Err(GpuError::shape(
                K,
                format!(
                    "{}: dims {:?} of {:?} take {} bytes, the tensor info says {}",
                    info.name,
                    info.dims,
                    info.ty,
                    rows as u128 * src_row as u128,
                    info.n_bytes
                ),
            ));
        }

        let limits = ctx.limits();
        let part_bytes = opts
            .part_bytes
            .unwrap_or(u64::MAX)
            .min(limits.max_storage_buffer_binding_size)
            .min(limits.max_buffer_size);
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
        let group_rows = (1..=4)
            .find(|g| (g * q_row).is_multiple_of(4) && (g * s_row).is_multiple_of(4))
            .expect("4 rows are always whole words") as usize;
        let scratch_row = match format.ggml_type() == info.ty {
            true => src_row,
            false => src_row.max(4 * cols),
        };
        let batch_rows = (BATCH_BYTES / scratch_row / group_rows).max(1) * group_rows;

        let mut parts = Vec::with_capacity(rows.div_ceil(part_rows));
        for row_base in (0..rows).step_by(part_rows) {
            let n = part_rows.min(rows - row_base);
            let label = format!("{} rows {row_base}..{}", info.name, row_base + n);
            let quants = ctx
                .storage_zeroed(&format!("{label} quants"), n as u64 * q_row)
                .await?;
            // F32 and F16 bind a one-word placeholder.
            let scales = ctx
                .storage_zeroed(&format!("{label} scales"), n as u64 * s_row)
                .await?;
            parts.push(Part {
                row_base,
                rows: n,
                quants,
                scales,
            });
        }
        Ok(MatrixUpload {
            name: info.name.clone(),
            src_ty: info.ty,
            format,
            rows,
            cols,
            src_row,
            q_row,
            s_row,
            group_rows,
            batch_rows,
            part_rows,
            parts,
            received: 0,
            row: 0,
            carry: Vec::new(),
            quants: Vec::new(),
            scales: Vec::new(),
            values: Vec::new(),
            halves: Vec::new(),
            unflushed: 0,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The format on the GPU.
    pub fn format(&self) -> QFormat {
        self.format
    }

    /// Whether the tensor is widened to F16 (its format has no kernel).
    pub fn is_widened(&self) -> bool {
        self.format.ggml_type() != self.src_ty
    }

    /// The tensor's size in bytes (as in the file).
    pub fn total_bytes(&self) -> u64 {
        self.rows as u64 * self.src_row as u64
    }

    /// Bytes pushed so far.
    pub fn bytes_received(&self) -> u64 {
        self.received
    }

    /// Whether every byte has been pushed.
    pub fn is_complete(&self) -> bool {
        self.received == self.total_bytes()
    }

    /// Rows of row groups already written to the GPU.
    pub fn rows_written(&self) -> usize {
        self.row
    }

    /// Bytes held on the host: the incomplete row group and the scratch space.
    pub fn host_bytes(&self) -> usize {
        self.carry.capacity()
            + 4 * (self.quants.capacity() + self.scales.capacity() + self.values.capacity())
            + self.halves.capacity()
    }

    /// Takes the next `bytes` of the tensor: writes every row group they
    /// complete and keeps the rest (less than one group). More bytes than the
    /// tensor has are an [`GpuError::UploadLength`] (and nothing is taken).
    pub fn push(&mut self, ctx: &GpuContext, bytes: &[u8]) -> Result<(), GpuError> {
        let total = self.total_bytes();
        let got = self.received + bytes.len() as u64;
        if got > total {
            return Err(GpuError::UploadLength {
                tensor: self.name.clone(),
                expected: total,
                got,
            });
        }
        self.received = got;
        let mut input = bytes;
        if !self.carry.is_empty() {
            let group = self.next_group_rows() * self.src_row;
            let take = (group - self.carry.len()).min(input.len());
            self.carry.extend_from_slice(&input[..take]);
            input = &input[take..];
            if self.carry.len() < group {
                return Ok(());
            }
            let carry = std::mem::take(&mut self.carry);
            let written = self.write_rows(ctx, group / self.src_row, &carry);
            self.carry = carry;
            self.carry.clear();
            written?;
        }
        while self.row < self.rows {
            let left = self.part_end() - self.row;
            let mut n = left.min(input.len() / self.src_row).min(self.batch_rows);
            if n < left {
                n -= n % self.group_rows;
            }
            if n == 0 {
                break;
            }
            let (rows, rest) = input.split_at(n * self.src_row);
            self.write_rows(ctx, n, rows)?;
            input = rest;
        }
        if !input.is_empty() {
            let group = self.next_group_rows() * self.src_row;
            debug_assert!(input.len() < group, "whole groups are written");
            self.carry.reserve_exact(group);
            self.carry.extend_from_slice(input);
        }
        ctx.check()
    }

    /// Rows per group: a member of a fused matrix must start on a multiple.
    pub fn group_rows(&self) -> usize {
        self.group_rows
    }

    /// The number of parts the matrix is split into.
    pub fn parts(&self) -> usize {
        self.parts.len()
    }

    /// Moves the write position to row `row` (the first row of the next
    /// member of a matrix fused from several tensors, which may arrive in
    /// any order). Only between whole row groups: no pending bytes, `row` a
    /// multiple of [`MatrixUpload::group_rows`] below `rows`.
    pub fn seek_row(&mut self, row: usize) -> Result<(), GpuError> {
        if !self.carry.is_empty() || !row.is_multiple_of(self.group_rows) || row >= self.rows {
            return Err(GpuError::shape(
                K,
                format!(
                    "{}: cannot start a member at row {row} ({} rows, groups of {}, {} bytes pending)",
                    self.name,
                    self.rows,
                    self.group_rows,
                    self.carry.len()
                ),
            ));
        }
        self.row = row;
        Ok(())
    }

    /// The matrix, once every byte has been pushed; an
    /// [`GpuError::UploadLength`] if some are missing.
    pub fn finish(mut self, ctx: &GpuContext) -> Result<GpuMatrix, GpuError> {
        if !self.is_complete() {
            return Err(GpuError::UploadLength {
                expected: self.total_bytes(),
                got: self.received,
                tensor: self.name,
            });
        }
        debug_assert!(self.carry.is_empty());
        self.flush(ctx);
        ctx.check()?;
        Ok(GpuMatrix::from_parts(
            self.name,
            self.format,
            self.rows,
            self.cols,
            self.parts,
        ))
    }

    /// The end of the part holding row `self.row`.
    fn part_end(&self) -> usize {
        ((self.row / self.part_rows + 1) * self.part_rows).min(self.rows)
    }

    /// Rows in the group starting at `self.row` (fewer at a part's end).
    fn next_group_rows(&self) -> usize {
        self.group_rows.min(self.part_end() - self.row)
    }

    /// Repacks rows `row..row + n` (all in one part, `row` a group start)
    /// from their source bytes and writes them at their offsets.
    fn write_rows(&mut self, ctx: &GpuContext, n: usize, src: &[u8]) -> Result<(), GpuError> {
        debug_assert_eq!(src.len(), n * self.src_row);
        let part = self.row / self.part_rows;
        let local = (self.row - part * self.part_rows) as u64;
        debug_assert!(self.row + n <= self.part_end());
        self.quants.clear();
        self.scales.clear();
        let repacked = if self.is_widened() {
            let elems = n * self.cols;
            self.values.resize(elems, 0.0);
            quant::dequantize(self.src_ty, src, &mut self.values[..elems])
                .map_err(|e| GpuError::shape(K, format!("{}: {e}", self.name)))?;
            self.halves.clear();
            self.halves.extend(
                self.values
                    .iter()
                    .flat_map(|&v| f16::from_f32(v).to_le_bytes()),
            );
            repack_into(
                GgmlType::F16,
                n,
                self.cols,
                &self.halves,
                &mut self.quants,
                &mut self.scales,
            )
        } else {
            repack_into(
                self.src_ty,
                n,
                self.cols,
                src,
                &mut self.quants,
                &mut self.scales,
            )
        };
        repacked.map_err(|e| GpuError::shape(K, format!("{}: {e}", self.name)))?;
        let part = &self.parts[part];
        let queue = ctx.queue();
        let quants: &[u8] = bytemuck::cast_slice(&self.quants);
        let scales: &[u8] = bytemuck::cast_slice(&self.scales);
        queue.write_buffer(&part.quants, local * self.q_row, quants);
        if !scales.is_empty() {
            queue.write_buffer(&part.scales, local * self.s_row, scales);
        }
        self.row += n;
        self.unflushed += (quants.len() + scales.len()) as u64;
        if self.unflushed >= FLUSH_BYTES {
            self.flush(ctx);
        }
        Ok(())
    }

    /// Submits the queue's staged writes (an empty submit carries them), so
    /// that their staging memory is reclaimed as the GPU copies them.
    fn flush(&mut self, ctx: &GpuContext) {
        if self.unflushed > 0 {
            ctx.queue()
                .submit(std::iter::empty::<wgpu::CommandBuffer>());
            self.unflushed = 0;
        }
    }
}
