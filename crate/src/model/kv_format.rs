//! [`KvFormat`]: how a KV cache stores keys and values. The one type for it,
//! from the model layer through the GPU engine, the CPU reference's rounding,
//! the CLI's `--kv-cache` and the JSON boundary (`"f16"` / `"q8"`, TypeScript's
//! `KvCacheType`).

use serde::{Deserialize, Serialize};

/// How the KV cache stores keys and values.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum KvFormat {
    /// f16, two per 32-bit word (`pack2x16float`, round to nearest even); no
    /// `shader-f16` needed.
    #[default]
    F16,
    /// Symmetric 8-bit per (position, KV head) block of `head_dim` values with
    /// an f32 scale `absmax / 127` ([`crate::cpu::q8_quantize`]): about half the
    /// memory of f16.
    Q8,
}

impl KvFormat {
    pub const ALL: [KvFormat; 2] = [KvFormat::F16, KvFormat::Q8];

    /// The JSON / command-line spelling.
    pub fn name(self) -> &'static str {
        match self {
            KvFormat::F16 => "f16",
            KvFormat::Q8 => "q8",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::KvFormat;

    #[test]
    fn json_spelling_is_the_name() {
        for f in KvFormat::ALL {
            let json = serde_json::to_string(&f).unwrap();
            assert_eq!(json, format!("\"{}\"", f.name()));
            assert_eq!(serde_json::from_str::<KvFormat>(&json).unwrap(), f);
        }
        assert!(serde_json::from_str::<KvFormat>("\"f32\"").is_err());
    }
}
