//! The CPU reference backend: weights as stored, dequantized row by row, and a
//! plain f32 forward pass.

mod attention;
mod forward;
mod matrix;
mod weights;

pub use attention::{attention, f16_round_trip, q8_quantize, q8_round_trip, AttentionShape};
pub use forward::{rmsnorm, rope, silu, softmax, CpuDecoder, DecodeError};
pub use matrix::{dot, QMatrix};
pub use weights::{CpuWeights, LayerWeights};
