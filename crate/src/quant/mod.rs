//! ggml block formats and their CPU dequantization.
//!
//! [`dequantize`] expands any [`GgmlType`] this crate knows into f32, bit for
//! bit as gguf-py's `gguf.quants.dequantize` and ggml's `dequantize_row_*`
//! (NaNs aside: see [`f16_bits_to_f32`]). The block structs in [`blocks`] mirror `ggml-common.h`
//! byte for byte and can be viewed in place over unaligned bytes.

pub mod blocks;
mod dequant;
mod error;
mod float;

pub use blocks::{
    get_scale_min_k4, BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ5K, BlockQ5_0, BlockQ5_1, BlockQ6K,
    BlockQ8_0, QuantBlock, K_SCALE_SIZE, QK, QK_K,
};
pub use error::QuantError;
pub use float::{bf16_bits_to_f32, f16_bits_to_f32};

use crate::GgmlType;

/// The number of bytes `n_elems` elements of `ty` take, or why there is none.
pub fn byte_len(ty: GgmlType, n_elems: usize) -> Result<usize, QuantError> {
    let block_elems = ty.block_elems();
    if !n_elems.is_multiple_of(block_elems) {
        return Err(QuantError::NotWholeBlocks {
            ty,
            n_elems,
            block_elems,
        });
    }
    (n_elems / block_elems)
        .checked_mul(ty.block_bytes())
        .ok_or(QuantError::TooLarge { ty, n_elems })
}

/// Dequantizes `bytes` of type `ty` into `out`, one f32 per element.
///
/// `bytes.len()` must be exactly the size of `out.len()` elements of `ty`
/// (a whole number of blocks); otherwise nothing is written and a
/// [`QuantError`] says why. `bytes` may have any alignment.
pub fn dequantize(ty: GgmlType, bytes: &[u8], out: &mut [f32]) -> Result<(), QuantError> {
    let expected = byte_len(ty, out.len())?;
    if bytes.len() != expected {
        return Err(QuantError::LengthMismatch {
            ty,
            n_elems: out.len(),
            expected,
            actual: bytes.len(),
        });
    }
    match ty {
        GgmlType::F32 => {
            for (b, y) in bytes.chunks_exact(4).zip(out) {
                *y = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            }
        }
        GgmlType::F16 => {
            for (b, y) in bytes.chunks_exact(2).zip(out) {
                *y = f16_bits_to_f32(u16::from_le_bytes([b[0], b[1]]));
            }
        }
        GgmlType::BF16 => {
            for (b, y) in bytes.chunks_exact(2).zip(out) {
                *y = bf16_bits_to_f32(u16::from_le_bytes([b[0], b[1]]));
            }
        }
        GgmlType::Q4_0 => dequantize_blocks::<BlockQ4_0>(cast(bytes), out),
        GgmlType::Q4_1 => dequantize_blocks::<BlockQ4_1>(cast(bytes), out),
        GgmlType::Q5_0 => dequantize_blocks::<BlockQ5_0>(cast(bytes), out),
        GgmlType::Q5_1 => dequantize_blocks::<BlockQ5_1>(cast(bytes), out),
        GgmlType::Q8_0 => dequantize_blocks::<BlockQ8_0>(cast(bytes), out),
        GgmlType::Q4K => dequantize_blocks::<BlockQ4K>(cast(bytes), out),
        GgmlType::Q5K => dequantize_blocks::<BlockQ5K>(cast(bytes), out),
        GgmlType::Q6K => dequantize_blocks::<BlockQ6K>(cast(bytes), out),
    }
    Ok(())
}

/// Dequantizes `n_elems` elements of type `ty` held in `bytes` into a new vector.
pub fn dequantize_to_vec(
    ty: GgmlType,
    bytes: &[u8],
    n_elems: usize,
) -> Result<Vec<f32>, QuantError> {
    // Check before allocating, so a bad `n_elems` cannot ask for huge memory.
    let expected = byte_len(ty, n_elems)?;
    if bytes.len() != expected {
        return Err(QuantError::LengthMismatch {
            ty,
            n_elems,
            expected,
            actual: bytes.len(),
        });
    }
    let mut out = vec![0.0; n_elems];
    dequantize(ty, bytes, &mut out)?;
    Ok(out)
}

/// Dequantizes one row of a 2-D tensor of type `ty`: row `row` of a tensor whose
/// rows hold `row_elems` elements each, stored contiguously in `tensor_bytes`.
/// Writes `row_elems` values to `out`.
pub fn dequantize_row(
    ty: GgmlType,
    tensor_bytes: &[u8],
    row_elems: usize,
    row: usize,
    out: &mut [f32],
) -> Result<(), QuantError> {
    let row_bytes = byte_len(ty, row_elems)?;
    let n_elems = row_elems.saturating_mul(row.saturating_add(1));
    let start = row
        .checked_mul(row_bytes)
        .ok_or(QuantError::TooLarge { ty, n_elems })?;
    let end = start
        .checked_add(row_bytes)
        .ok_or(QuantError::TooLarge { ty, n_elems })?;
    let bytes = tensor_bytes
        .get(start..end)
        .ok_or(QuantError::LengthMismatch {
            ty,
            n_elems,
            expected: end,
            actual: tensor_bytes.len(),
        })?;
    if out.len() != row_elems {
        return Err(QuantError::LengthMismatch {
            ty,
            n_elems: out.len(),
            expected: byte_len(ty, out.len())?,
            actual: row_bytes,
        });
    }
    dequantize(ty, bytes, out)
}

/// Dequantizes whole blocks: `out` must hold exactly `blocks.len() * B::ELEMS`
/// values, else a [`QuantError::LengthMismatch`].
pub fn dequantize_blocks_checked<B: QuantBlock>(
    blocks: &[B],
    out: &mut [f32],
) -> Result<(), QuantError> {
    if blocks.len().checked_mul(B::ELEMS) != Some(out.len()) {
        return Err(QuantError::LengthMismatch {
            ty: B::TYPE,
            n_elems: out.len(),
            expected: byte_len(B::TYPE, out.len())?,
            actual: std::mem::size_of_val(blocks),
        });
    }
    dequantize_blocks(blocks, out);
    Ok(())
}

/// Views bytes as blocks in place; the struct has alignment 1, and callers
/// have checked that the length is a whole number of blocks.
fn cast<B: QuantBlock>(bytes: &[u8]) -> &[B] {
    bytemuck::cast_slice(bytes)
}

fn dequantize_blocks<B: QuantBlock>(blocks: &[B], out: &mut [f32]) {
    debug_assert_eq!(blocks.len() * B::ELEMS, out.len());
    for (b, y) in blocks.iter().zip(out.chunks_exact_mut(B::ELEMS)) {
        b.dequantize_into(y);
    }
}

#[cfg(test)]
mod tests;
