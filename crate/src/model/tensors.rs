//! The GGUF tensor layout of a llama model: every tensor's name and dims, in
//! one table that the shape check ([`Config::expected_tensors`]), the CPU
//! reference's weights and the GPU loader all read (llama.cpp's names; dims
//! innermost first, as GGUF stores them).

use super::Config;

/// The token embedding, `(dim, vocab)`.
pub const TOKEN_EMBD: &str = "token_embd.weight";
/// The final RMSNorm weight, `(dim)`.
pub const OUTPUT_NORM: &str = "output_norm.weight";
/// The output projection, `(dim, vocab)`; optional: without it the embedding
/// is reused (tied), as llama.cpp does.
pub const OUTPUT: &str = "output.weight";

/// A tensor of transformer block `l`: `blk.{l}.{suffix}.weight`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LayerTensor {
    AttnNorm,
    AttnQ,
    AttnK,
    AttnV,
    AttnOutput,
    FfnNorm,
    FfnGate,
    FfnUp,
    FfnDown,
}

/// Q | K | V: the rows the GPU uploads as one matrix where the three share a
/// type and width (one product per step instead of three).
pub const QKV: [LayerTensor; 3] = [LayerTensor::AttnQ, LayerTensor::AttnK, LayerTensor::AttnV];
/// gate | up: uploaded as one matrix (SwiGLU pairs rows across it).
pub const GATE_UP: [LayerTensor; 2] = [LayerTensor::FfnGate, LayerTensor::FfnUp];

impl LayerTensor {
    /// In file order.
    pub const ALL: [LayerTensor; 9] = [
        LayerTensor::AttnNorm,
        LayerTensor::AttnQ,
        LayerTensor::AttnK,
        LayerTensor::AttnV,
        LayerTensor::AttnOutput,
        LayerTensor::FfnNorm,
        LayerTensor::FfnGate,
        LayerTensor::FfnUp,
        LayerTensor::FfnDown,
    ];

    /// The name's middle part (`attn_q`).
    pub fn suffix(self) -> &'static str {
        match self {
            LayerTensor::AttnNorm => "attn_norm",
            LayerTensor::AttnQ => "attn_q",
            LayerTensor::AttnK => "attn_k",
            LayerTensor::AttnV => "attn_v",
            LayerTensor::AttnOutput => "attn_output",
            LayerTensor::FfnNorm => "ffn_norm",
            LayerTensor::FfnGate => "ffn_gate",
            LayerTensor::FfnUp => "ffn_up",
            LayerTensor::FfnDown => "ffn_down",
        }
    }

    /// The GGUF name in block `layer`.
    pub fn name(self, layer: usize) -> String {
        layer_name(layer, self.suffix())
    }

    /// GGUF dims (innermost first): `(in, out)` for a matrix.
    pub fn dims(self, c: &Config) -> Vec<u64> {
        let (d, kv, f) = (c.dim as u64, c.kv_dim() as u64, c.ffn_dim as u64);
        match self {
            LayerTensor::AttnNorm | LayerTensor::FfnNorm => vec![d],
            LayerTensor::AttnQ | LayerTensor::AttnOutput => vec![d, d],
            LayerTensor::AttnK | LayerTensor::AttnV => vec![d, kv],
            LayerTensor::FfnGate | LayerTensor::FfnUp => vec![d, f],
            LayerTensor::FfnDown => vec![f, d],
        }
    }
}

/// `blk.{layer}.{suffix}.weight` (also the GPU's stacked matrices,
/// `attn_qkv` and `ffn_gate_up`).
pub fn layer_name(layer: usize, suffix: &str) -> String {
    format!("blk.{layer}.{suffix}.weight")
}

/// Whether the forward pass reads a tensor of this name (others, such as
/// `rope_freqs.weight`, are skipped by the loaders).
pub fn is_model_tensor(name: &str) -> bool {
    name == TOKEN_EMBD || name == OUTPUT_NORM || name == OUTPUT || name.starts_with("blk.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_llama_cpp() {
        assert_eq!(LayerTensor::AttnQ.name(3), "blk.3.attn_q.weight");
        assert_eq!(LayerTensor::FfnDown.name(0), "blk.0.ffn_down.weight");
        assert_eq!(layer_name(7, "attn_qkv"), "blk.7.attn_qkv.weight");
        assert!(is_model_tensor("blk.0.ffn_up.weight"));
        assert!(is_model_tensor(OUTPUT));
        assert!(!is_model_tensor("rope_freqs.weight"));
    }
}
