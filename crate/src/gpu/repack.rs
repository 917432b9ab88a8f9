//! Repacking GGUF matrices into u32-aligned streams for the WGSL kernels.
//!
//! WGSL storage buffers are read a `u32` word at a time, and Q4_0 (18 bytes),
//! Q8_0 (34) and Q6_K (210) blocks straddle words. Every matrix is therefore
//! uploaded as at most two word streams, `quants` and `scales`, bound by
//! `shaders/qmatmul.wgsl` at bindings 3 and 4. A matrix has `rows` rows (the
//! output dimension) of `cols` elements (GGUF dims `[cols, rows]`); for block
//! formats `nb = cols / block_elems` blocks per row and block `b` of row `r`
//! has the global index `g = r * nb + b`. Words are little-endian throughout,
//! so byte `i` of a stream is bits `8 * (i % 4)..` of word `i / 4`.
//!
//! | format | `quants` | `scales` |
//! |---|---|---|
//! | F32  | `(rows, cols)` f32 bits, as in the file | empty |
//! | F16  | `(rows * cols / 2)` u32, the file's halves two per word (element `e` in half `e % 2` of word `e / 2`; a last odd half is padded with 0) | empty |
//! | Q8_0 | `(rows, nb, 8)` u32: the 32 i8 quants of block `g`, 4 per word | `(rows * nb / 2)` u32: f16 `d` of block `g` in half `g % 2` of word `g / 2` |
//! | Q4_0 | `(rows, nb, 4)` u32: the 16 nibble bytes `qs` of block `g` | as Q8_0 |
//! | Q4_K | `(rows, nb, 32)` u32: the 128 nibble bytes `qs` | `(rows, nb, 5)` u32: `d | dmin << 16` (the block's first 4 bytes), then the 8 six-bit scales one per byte (sub-block `j` in byte `j % 4` of word `1 + j / 4`), then the 8 mins likewise (words 3, 4): ggml's `get_scale_min_k4` done once at load, exactly |
//! | Q6_K | `(rows, nb, 52)` u32: the block's first 208 bytes, `ql[128]` (words 0..32), `qh[64]` (32..48), i8 `scales[16]` (48..52) | as Q8_0 (`d`, which the file keeps last) |
//!
//! Every row of `quants` of a block format is a whole number of 16-byte
//! `vec4<u32>`s, and so are F32 rows of a multiple of 4 values and F16 rows of
//! a multiple of 8 (every real model's): the decode kernel reads those with
//! 16-byte loads from 16-byte aligned row starts, and other F32/F16 widths a
//! word at a time.
//!
//! [`Repacked::dequantize_row`] expands a row from these streams on the CPU,
//! reading words exactly as the kernel does; the tests check it bit for bit
//! against [`crate::quant::dequantize`] of the original bytes.

use crate::ggml_type::GgmlType;
use crate::quant::{f16_bits_to_f32, BlockQ4K, BlockQ4_0, BlockQ6K, BlockQ8_0, QK, QK_K};

/// Why a tensor cannot be repacked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RepackError {
    #[error("no GPU layout for {0:?} tensors")]
    Unsupported(GgmlType),
    #[error("{ty:?} rows of {cols} elements are not whole blocks of {block_elems}")]
    NotWholeBlocks {
        ty: GgmlType,
        cols: usize,
        block_elems: usize,
    },
    #[error("{ty:?} ({rows}, {cols}) takes {expected} bytes, got {actual}")]
    Length {
        ty: GgmlType,
        rows: usize,
        cols: usize,
        expected: usize,
        actual: usize,
    },
}

/// A `(rows, cols)` matrix in the kernel's word streams (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Repacked {
    pub ty: GgmlType,
    pub rows: usize,
    pub cols: usize,
    /// Binding 3 of `qmatmul.wgsl`: values or quants.
    pub quants: Vec<u32>,
    /// Binding 4 of `qmatmul.wgsl`: per-block scales; empty for F32 and F16.
    pub scales: Vec<u32>,
}

/// Whether [`repack`] knows a layout for `ty`.
pub fn supported(ty: GgmlType) -> bool {
    matches!(
        ty,
        GgmlType::F32
            | GgmlType::F16
            | GgmlType::Q8_0
            | GgmlType::Q4_0
            | GgmlType::Q4K
            | GgmlType::Q6K
    )
}

/// Packs little-endian bytes (a multiple of 4) into words.
fn words(bytes: &[u8]) -> impl Iterator<Item = u32> + '_ {
    bytes
        .chunks_exact(4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// Packs f16 values (their two little-endian bytes each) two per word, the
/// first in the low half; an odd last value gets a zero high half.
fn pack_halves(halves: impl Iterator<Item = [u8; 2]>, out: &mut Vec<u32>) {
    let mut pending: Option<u16> = None;
    for h in halves {
        let h = u16::from_le_bytes(h);
        match pending.take() {
            None => pending = Some(h),
            Some(lo) => out.push(lo as u32 | (h as u32) << 16),
        }
    }
    if let Some(lo) = pending {
        out.push(lo as u32);
    }
}

/// Repacks the bytes of a `(rows, cols)` matrix of type `ty`, rows stored one
/// after the other as in a GGUF file.
pub fn repack(
    ty: GgmlType,
    rows: usize,
    cols: usize,
    bytes: &[u8],
) -> Result<Repacked, RepackError> {
    let mut quants = Vec::new();
    let mut scales = Vec::new();
    repack_into(ty, rows, cols, bytes, &mut quants, &mut scales)?;
    Ok(Repacked {
        ty,
        rows,
        cols,
        quants,
        scales,
    })
}

/// [`repack`] into the caller's vectors, appending to what they hold (the
/// streaming upload reuses them for each row group). Repacking rows
/// `r0..r1` this way gives words `r0 * row_words..` of the whole matrix's
/// streams exactly when both streams of rows `0..r0` are whole words.
pub fn repack_into(
    ty: GgmlType,
    rows: usize,
    cols: usize,
    bytes: &[u8],
    quants: &mut Vec<u32>,
    scales: &mut Vec<u32>,
) -> Result<(), RepackError> {
    if !supported(ty) {
        return Err(RepackError::Unsupported(ty));
    }
    let block_elems = ty.block_elems();
    if !cols.is_multiple_of(block_elems) {
        return Err(RepackError::NotWholeBlocks {
            ty,
            cols,
            block_elems,
        });
    }
    let n_blocks = rows
        .checked_mul(cols / block_elems)
        .expect("matrix size overflows usize");
    let expected = n_blocks
        .checked_mul(ty.block_bytes())
        .expect("matrix size overflows usize");
    if bytes.len() != expected {
        return Err(RepackError::Length {
            ty,
            rows,
            cols,
            expected,
            actual: bytes.len(),
        });
    }
    match ty {
        GgmlType::F32 => quants.extend(words(bytes)),
        GgmlType::F16 => pack_halves(bytes.chunks_exact(2).map(|b| [b[0], b[1]]), quants),
        GgmlType::Q8_0 => {
            let blocks: &[BlockQ8_0] = bytemuck::cast_slice(bytes);
            quants.reserve(blocks.len() * 8);
            for b in blocks {
                quants.extend(words(bytemuck::cast_slice(&b.qs)));
            }
            pack_halves(blocks.iter().map(|b| b.d), scales);
        }
        GgmlType::Q4_0 => {
            let blocks: &[BlockQ4_0] = bytemuck::cast_slice(bytes);
            quants.reserve(blocks.len() * 4);
            for b in blocks {
                quants.extend(words(&b.qs));
            }
            pack_halves(blocks.iter().map(|b| b.d), scales);
        }
        GgmlType::Q4K => {
            let blocks: &[BlockQ4K] = bytemuck::cast_slice(bytes);
            quants.reserve(blocks.len() * 32);
            scales.reserve(blocks.len() * 5);
            for b in blocks {
                let head = bytemuck::bytes_of(b);
                let packed: [u32; 4] = std::array::from_fn(|i| {
                    u32::from_le_bytes([
                        head[4 * i],
                        head[4 * i + 1],
                        head[4 * i + 2],
                        head[4 * i + 3],
                    ])
                });
                let (mut sc, mut mn) = ([0u8; 8], [0u8; 8]);
                for j in 0..8 {
                    let (s, m) = scale_min_k4(&packed, j);
                    (sc[j], mn[j]) = (s as u8, m as u8);
                }
                scales.push(packed[0]);
                scales.extend(words(&sc));
                scales.extend(words(&mn));
                quants.extend(words(&b.qs));
            }
        }
        GgmlType::Q6K => {
            let blocks: &[BlockQ6K] = bytemuck::cast_slice(bytes);
            quants.reserve(blocks.len() * 52);
            for b in blocks {
                quants.extend(words(&bytemuck::bytes_of(b)[..208]));
            }
            pack_halves(blocks.iter().map(|b| b.d), scales);
        }
        _ => unreachable!("checked by supported()"),
    }
    Ok(())
}

/// Byte `i` of a word stream.
#[inline]
fn byte_at(words: &[u32], i: usize) -> u32 {
    (words[i / 4] >> (8 * (i % 4))) & 0xff
}

/// Half `i` of a word stream, widened to f32 (as WGSL's `unpack2x16float`).
#[inline]
fn half_at(words: &[u32], i: usize) -> f32 {
    f16_bits_to_f32((words[i / 2] >> (16 * (i % 2))) as u16)
}

impl Repacked {
    /// Blocks per row (elements per row for F32 and F16).
    pub fn blocks_per_row(&self) -> usize {
        self.cols / self.ty.block_elems()
    }

    /// Dequantizes row `r` into `out[..cols]` from the repacked streams,
    /// reading them word by word as `shaders/qmatmul.wgsl` does.
    ///
    /// # Panics
    /// If `r >= rows` or `out` is shorter than `cols`.
    pub fn dequantize_row(&self, r: usize, out: &mut [f32]) {
        assert!(r < self.rows, "row {r} of {}", self.rows);
        let out = &mut out[..self.cols];
        let nb = self.blocks_per_row();
        let (q, s) = (&self.quants, &self.scales);
        match self.ty {
            GgmlType::F32 => {
                for (c, y) in out.iter_mut().enumerate() {
                    *y = f32::from_bits(q[r * self.cols + c]);
                }
            }
            GgmlType::F16 => {
                for (c, y) in out.iter_mut().enumerate() {
                    *y = half_at(q, r * self.cols + c);
                }
            }
            GgmlType::Q8_0 => {
                for (b, y) in out.chunks_exact_mut(QK).enumerate() {
                    let g = r * nb + b;
                    let d = half_at(s, g);
                    for (j, y) in y.iter_mut().enumerate() {
                        let v = byte_at(q, g * 32 + j) as u8 as i8;
                        *y = v as f32 * d;
                    }
                }
            }
            GgmlType::Q4_0 => {
                for (b, y) in out.chunks_exact_mut(QK).enumerate() {
                    let g = r * nb + b;
                    let d = half_at(s, g);
                    for j in 0..16 {
                        let v = byte_at(q, g * 16 + j);
                        y[j] = d * ((v & 0xf) as i32 - 8) as f32;
                        y[j + 16] = d * ((v >> 4) as i32 - 8) as f32;
                    }
                }
            }
            GgmlType::Q4K => {
                for (b, y) in out.chunks_exact_mut(QK_K).enumerate() {
                    let g = r * nb + b;
                    let head = &s[g * 5..g * 5 + 5];
                    let d = half_at(head, 0);
                    let dmin = half_at(head, 1);
                    // Sub-block `j` (32 elements) reads bytes `32 * (j / 2)..`
                    // of `qs`, low nibbles for even `j`, high for odd.
                    for (j, y) in y.chunks_exact_mut(32).enumerate() {
                        let (sc, m) = (byte_at(head, 4 + j), byte_at(head, 12 + j));
                        let (dj, mj) = (d * sc as f32, dmin * m as f32);
                        let shift = 4 * (j % 2);
                        for (l, y) in y.iter_mut().enumerate() {
                            let v = (byte_at(q, g * 128 + 32 * (j / 2) + l) >> shift) & 0xf;
                            *y = dj * v as f32 - mj;
                        }
                    }
                }
            }
            GgmlType::Q6K => {
                for (b, y) in out.chunks_exact_mut(QK_K).enumerate() {
                    let g = r * nb + b;
                    let d = half_at(s, g);
                    let base = g * 208;
                    // Unit `u` (32 elements): half `h = u / 4`, quarter `k = u % 4`.
                    for (u, y) in y.chunks_exact_mut(32).enumerate() {
                        let (h, k) = (u / 4, u % 4);
                        let ql = base + 64 * h + 32 * (k % 2);
                        let qh = base + 128 + 32 * h;
                        for (l, y) in y.iter_mut().enumerate() {
                            let lo = (byte_at(q, ql + l) >> (4 * (k / 2))) & 0xf;
                            let hi = (byte_at(q, qh + l) >> (2 * k)) & 3;
                            let v = (lo | hi << 4) as i32 - 32;
                            let sc = byte_at(q, base + 192 + 8 * h + 2 * k + l / 16) as u8 as i8;
                            *y = (d * sc as f32) * v as f32;
                        }
                    }
                }
            }
            _ => unreachable!("only supported types are repacked"),
        }
    }
}

/// Scale and min of sub-block `j` (0..8) from a Q4_K block head (4 words:
/// `d|dmin`, then 12 bytes of packed scales), as ggml's `get_scale_min_k4`.
fn scale_min_k4(head: &[u32], j: usize) -> (u32, u32) {
    let sb = |i: usize| byte_at(head, 4 + i);
    if j < 4 {
        (sb(j) & 63, sb(j + 4) & 63)
    } else {
        (
            (sb(j + 4) & 0xf) | ((sb(j - 4) >> 6) << 4),
            (sb(j + 4) >> 4) | ((sb(j) >> 6) << 4),
        )
    }
}
