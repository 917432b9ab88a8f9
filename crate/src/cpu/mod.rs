//! The CPU reference backend: weights as stored, dequantized row by row, and a
//! plain f32 forward pass.

mod forward;
mod matrix;
mod weights;

pub use forward::{rmsnorm, rope, silu, softmax, CpuDecoder, DecodeError};
pub use matrix::{dot, QMatrix};
pub use weights::{CpuWeights, LayerWeights};
