//! Hyperparameters of a llama-architecture model, read from GGUF metadata and
//! checked against the tensors the file declares.

use super::error::ModelError;
use super::tensors::{self, LayerTensor};
use crate::gguf::{Header, Metadata, ValueType};

/// Upper bounds that reject absurd hyperparameters before anything is allocated.
const MAX_DIM: u64 = 1 << 16;
const MAX_LAYERS: u64 = 1 << 10;
const MAX_VOCAB: u64 = 1 << 22;
const MAX_CONTEXT: u64 = 1 << 24;

/// The shape of a llama model: everything the forward pass needs besides weights.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Model width (`llama.embedding_length`): 4096 for 7B.
    pub dim: usize,
    pub n_layers: usize,
    pub n_heads: usize,
    /// Key/value heads (`< n_heads` for grouped-query attention).
    pub n_kv_heads: usize,
    /// SwiGLU hidden width (`llama.feed_forward_length`): 11008 for 7B.
    pub ffn_dim: usize,
    pub vocab_size: usize,
    /// Training context (`llama.context_length`).
    pub context_length: usize,
    /// RoPE base (`llama.rope.freq_base`, 10000 when absent; Code Llama: 1e6).
    pub rope_theta: f32,
    pub rms_eps: f32,
}

impl Config {
    pub fn head_dim(&self) -> usize {
        self.dim / self.n_heads
    }

    /// Width of the key and value projections.
    pub fn kv_dim(&self) -> usize {
        self.n_kv_heads * self.head_dim()
    }

    /// Reads and validates the hyperparameters of a llama model.
    pub fn from_metadata(md: &Metadata) -> Result<Config, ModelError> {
        let arch = md
            .get_str("general.architecture")
            .ok_or_else(|| ModelError::MissingKey("general.architecture".into()))?;
        if arch != "llama" {
            return Err(ModelError::WrongArchitecture(arch.to_string()));
        }
        let int = |key: &str, max: u64| -> Result<Option<u64>, ModelError> {
            match md.get(key) {
                None => Ok(None),
                Some(v) => match v.as_u64() {
                    Some(n) if n >= 1 && n <= max => Ok(Some(n)),
                    _ => Err(ModelError::BadHyperparameter {
                        key: key.into(),
                        reason: format!("expected an integer in 1..={max}, got {v:?}"),
                    }),
                },
            }
        };
        let need = |key: &str, max: u64| -> Result<u64, ModelError> {
            int(key, max)?.ok_or_else(|| ModelError::MissingKey(key.into()))
        };
        let float = |key: &str| -> Result<Option<f64>, ModelError> {
            match md.get(key) {
                None => Ok(None),
                Some(v) => match v.as_f64() {
                    Some(x) if x.is_finite() && x > 0.0 => Ok(Some(x)),
                    _ => Err(ModelError::BadHyperparameter {
                        key: key.into(),
                        reason: format!("expected a positive finite number, got {v:?}"),
                    }),
                },
            }
        };
        let bad = |key: &str, reason: String| ModelError::BadHyperparameter {
            key: key.into(),
            reason,
        };

        let dim = need("llama.embedding_length", MAX_DIM)?;
        let n_layers = need("llama.block_count", MAX_LAYERS)?;
        let n_heads = need("llama.attention.head_count", MAX_DIM)?;
        let n_kv_heads = int("llama.attention.head_count_kv", MAX_DIM)?.unwrap_or(n_heads);
        let ffn_dim = need("llama.feed_forward_length", 8 * MAX_DIM)?;
        let context_length = need("llama.context_length", MAX_CONTEXT)?;
        let rope_theta = float("llama.rope.freq_base")?.unwrap_or(10000.0);
        let rms_eps = float("llama.attention.layer_norm_rms_epsilon")?.ok_or_else(|| {
            ModelError::MissingKey("llama.attention.layer_norm_rms_epsilon".into())
        })?;

        if dim % n_heads != 0 {
            return Err(bad(
                "llama.attention.head_count",
                format!("{n_heads} heads do not divide the width {dim}"),
            ));
        }
        if n_heads % n_kv_heads != 0 {
            return Err(bad(
                "llama.attention.head_count_kv",
                format!("{n_kv_heads} key/value heads do not divide {n_heads} heads"),
            ));
        }
        let head_dim = dim / n_heads;
        if head_dim % 2 != 0 {
            return Err(bad(
                "llama.attention.head_count",
                format!("head size {head_dim} is odd; RoPE needs pairs"),
            ));
        }
        if let Some(rd) = int("llama.rope.dimension_count", MAX_DIM)? {
            if rd != head_dim {
                return Err(bad(
                    "llama.rope.dimension_count",
                    format!("partial rotary embeddings ({rd} of {head_dim}) are not supported"),
                ));
            }
        }
        let vocab_size = match md.get_array("tokenizer.ggml.tokens") {
            Some((ValueType::String, toks)) => toks.len() as u64,
            Some(_) => {
                return Err(bad(
                    "tokenizer.ggml.tokens",
                    "expected an array of strings".into(),
                ))
            }
            None => int("llama.vocab_size", MAX_VOCAB)?
                .ok_or_else(|| ModelError::MissingKey("tokenizer.ggml.tokens".into()))?,
        };
        if vocab_size == 0 || vocab_size > MAX_VOCAB {
            return Err(bad(
                "tokenizer.ggml.tokens",
                format!("{vocab_size} pieces is out of range"),
            ));
        }
        Ok(Config {
            dim: dim as usize,
            n_layers: n_layers as usize,
            n_heads: n_heads as usize,
            n_kv_heads: n_kv_heads as usize,
            ffn_dim: ffn_dim as usize,
            vocab_size: vocab_size as usize,
            context_length: context_length as usize,
            rope_theta: rope_theta as f32,
            rms_eps: rms_eps as f32,
        })
    }

    /// Every tensor the forward pass reads, with its GGUF dims (innermost
    /// first). `output.weight` is optional: without it the embedding is reused
    /// (tied), as llama.cpp does.
    pub fn expected_tensors(&self) -> Vec<(String, Vec<u64>)> {
        let (d, v) = (self.dim as u64, self.vocab_size as u64);
        let mut out = vec![(tensors::TOKEN_EMBD.to_string(), vec![d, v])];
        for l in 0..self.n_layers {
            out.extend(LayerTensor::ALL.map(|t| (t.name(l), t.dims(self))));
        }
        out.push((tensors::OUTPUT_NORM.into(), vec![d]));
        out.push((tensors::OUTPUT.into(), vec![d, v]));
        out
    }

    /// Reads the config from a header and checks every required tensor is
    /// present with the right dims.
    pub fn from_header(header: &Header) -> Result<Config, ModelError> {
        let cfg = Config::from_metadata(&header.metadata)?;
        for (name, dims) in cfg.expected_tensors() {
            let Some(t) = header.tensor(&name) else {
                if name == tensors::OUTPUT {
                    continue;
                }
                return Err(ModelError::MissingTensor(name));
            };
            // A 2-D tensor may carry trailing unit dims.
            let mut found = t.dims.clone();
            while found.len() > dims.len() && found.last() == Some(&1) {
                found.pop();
            }
            if found != dims {
                let vocab_rows = (name == tensors::TOKEN_EMBD || name == tensors::OUTPUT)
                    && found.len() == 2
                    && found[0] == dims[0];
                if vocab_rows {
                    return Err(ModelError::VocabMismatch {
                        vocab: cfg.vocab_size as u64,
                        tensor: name,
                        rows: found[1],
                    });
                }
                return Err(ModelError::TensorShape {
                    name,
                    expected: dims,
                    found: t.dims.clone(),
                });
            }
        }
        Ok(cfg)
    }
}
