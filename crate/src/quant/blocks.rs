//! ggml's quantized block layouts, byte for byte (`ggml-common.h`).
//!
//! Every field is a byte array (f16 values are kept as their two little-endian
//! bytes), so each struct has alignment 1 and no padding: a slice of blocks can
//! be viewed in place over any byte slice of the right length with
//! [`bytemuck::cast_slice`], whatever its address.

use bytemuck::{Pod, Zeroable};

use super::float::f16_le_to_f32;
use crate::GgmlType;

/// Elements in a "K" super-block.
pub const QK_K: usize = 256;
/// Elements in a Q4_0 / Q4_1 / Q5_0 / Q5_1 / Q8_0 block.
pub const QK: usize = 32;
/// Bytes of packed 6-bit scales and mins in Q4_K and Q5_K.
pub const K_SCALE_SIZE: usize = 12;

/// A ggml quantization block: its type, and how to expand it to f32.
pub trait QuantBlock: Pod {
    /// The ggml type whose blocks these are.
    const TYPE: GgmlType;
    /// Elements in one block.
    const ELEMS: usize;
    /// Writes the block's `Self::ELEMS` values to `out[..Self::ELEMS]`.
    ///
    /// # Panics
    /// If `out` is shorter than `Self::ELEMS`.
    fn dequantize_into(&self, out: &mut [f32]);
}

/// Q4_0: `y = (q - 8) * d`, 4-bit `q`. Low nibbles hold elements 0..16,
/// high nibbles 16..32.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
#[repr(C)]
pub struct BlockQ4_0 {
    pub d: [u8; 2],
    pub qs: [u8; QK / 2],
}

/// Q4_1: `y = q * d + m`, 4-bit `q`, nibbles as in Q4_0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
#[repr(C)]
pub struct BlockQ4_1 {
    pub d: [u8; 2],
    pub m: [u8; 2],
    pub qs: [u8; QK / 2],
}

/// Q5_0: `y = (q - 16) * d`, 5-bit `q`: low 4 bits as in Q4_0, bit 4 of
/// element `j` is bit `j` of the little-endian u32 `qh`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
#[repr(C)]
pub struct BlockQ5_0 {
    pub d: [u8; 2],
    pub qh: [u8; 4],
    pub qs: [u8; QK / 2],
}

/// Q5_1: `y = q * d + m`, 5-bit `q` packed as in Q5_0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
#[repr(C)]
pub struct BlockQ5_1 {
    pub d: [u8; 2],
    pub m: [u8; 2],
    pub qh: [u8; 4],
    pub qs: [u8; QK / 2],
}

/// Q8_0: `y = q * d`, `q` an i8.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
#[repr(C)]
pub struct BlockQ8_0 {
    pub d: [u8; 2],
    pub qs: [i8; QK],
}

/// Q4_K: eight sub-blocks of 32, `y = (d * sc) * q - (dmin * m)` with 6-bit
/// `sc` and `m` packed in `scales` (see [`get_scale_min_k4`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
#[repr(C)]
pub struct BlockQ4K {
    pub d: [u8; 2],
    pub dmin: [u8; 2],
    pub scales: [u8; K_SCALE_SIZE],
    pub qs: [u8; QK_K / 2],
}

/// Q5_K: Q4_K plus a fifth bit per element in `qh`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
#[repr(C)]
pub struct BlockQ5K {
    pub d: [u8; 2],
    pub dmin: [u8; 2],
    pub scales: [u8; K_SCALE_SIZE],
    pub qh: [u8; QK_K / 8],
    pub qs: [u8; QK_K / 2],
}

/// Q6_K: sixteen sub-blocks of 16, `y = (d * sc) * (q - 32)`, 6-bit `q`
/// split over `ql` (low 4 bits) and `qh` (high 2 bits), i8 `sc`; `d` comes last.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
#[repr(C)]
pub struct BlockQ6K {
    pub ql: [u8; QK_K / 2],
    pub qh: [u8; QK_K / 4],
    pub scales: [i8; QK_K / 16],
    pub d: [u8; 2],
}

// Sizes: ggml's, and the crate's own table, must agree byte for byte.
const _: () = assert!(std::mem::size_of::<BlockQ4_0>() == 18);
const _: () = assert!(std::mem::size_of::<BlockQ4_1>() == 20);
const _: () = assert!(std::mem::size_of::<BlockQ5_0>() == 22);
const _: () = assert!(std::mem::size_of::<BlockQ5_1>() == 24);
const _: () = assert!(std::mem::size_of::<BlockQ8_0>() == 34);
const _: () = assert!(std::mem::size_of::<BlockQ4K>() == 144);
const _: () = assert!(std::mem::size_of::<BlockQ5K>() == 176);
const _: () = assert!(std::mem::size_of::<BlockQ6K>() == 210);

/// Checks a block type against [`GgmlType`]'s geometry at compile time.
macro_rules! check_geometry {
    ($($block:ty),* $(,)?) => {$(
        const _: () = {
            assert!(std::mem::size_of::<$block>() == <$block as QuantBlock>::TYPE.block_bytes());
            assert!(<$block as QuantBlock>::ELEMS == <$block as QuantBlock>::TYPE.block_elems());
            assert!(std::mem::align_of::<$block>() == 1);
        };
    )*};
}
check_geometry!(
    BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ5_1, BlockQ8_0, BlockQ4K, BlockQ5K, BlockQ6K
);

/// The 6-bit scale and min of sub-block `j` (0..8) of a Q4_K / Q5_K block.
///
/// Bytes 0..4 hold scales 0..4 in their low 6 bits, bytes 4..8 mins 0..4; bytes
/// 8..12 hold the low 4 bits of scale (low nibble) and min (high nibble) 4..8,
/// whose top 2 bits are the top 2 bits of bytes 0..4 (scales) and 4..8 (mins).
#[inline]
pub const fn get_scale_min_k4(j: usize, q: &[u8; K_SCALE_SIZE]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

impl BlockQ4_0 {
    pub fn d(&self) -> f32 {
        f16_le_to_f32(self.d)
    }
}

impl BlockQ4_1 {
    pub fn d(&self) -> f32 {
        f16_le_to_f32(self.d)
    }
    pub fn m(&self) -> f32 {
        f16_le_to_f32(self.m)
    }
}

impl BlockQ5_0 {
    pub fn d(&self) -> f32 {
        f16_le_to_f32(self.d)
    }
    /// The fifth bits, element `j` at bit `j`.
    pub fn qh(&self) -> u32 {
        u32::from_le_bytes(self.qh)
    }
}

impl BlockQ5_1 {
    pub fn d(&self) -> f32 {
        f16_le_to_f32(self.d)
    }
    pub fn m(&self) -> f32 {
        f16_le_to_f32(self.m)
    }
    /// The fifth bits, element `j` at bit `j`.
    pub fn qh(&self) -> u32 {
        u32::from_le_bytes(self.qh)
    }
}

impl BlockQ8_0 {
    pub fn d(&self) -> f32 {
        f16_le_to_f32(self.d)
    }
}

impl BlockQ4K {
    pub fn d(&self) -> f32 {
        f16_le_to_f32(self.d)
    }
    pub fn dmin(&self) -> f32 {
        f16_le_to_f32(self.dmin)
    }
}

impl BlockQ5K {
    pub fn d(&self) -> f32 {
        f16_le_to_f32(self.d)
    }
    pub fn dmin(&self) -> f32 {
        f16_le_to_f32(self.dmin)
    }
}

impl BlockQ6K {
    pub fn d(&self) -> f32 {
        f16_le_to_f32(self.d)
    }
}
