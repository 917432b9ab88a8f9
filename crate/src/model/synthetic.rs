//! Synthetic llama models with random quantized weights and real shapes: the
//! benchmark's 7B-shaped model (no 4 GB download needed) and the multi-GB file
//! the streaming-load measurement reads. Tensors are produced one at a time,
//! deterministically from a seed, so neither needs the whole model in memory.
//!
//! The weights are random blocks with small scales, so activations stay
//! finite through every layer; the text such a model writes is noise.

use std::io::Write;
use std::path::Path;

use crate::ggml_type::GgmlType;
use crate::gguf::{GgufWriter, Header, TensorInfo, Value, ValueType};
use crate::model::Config;

/// The quantization mix of a synthetic model, after llama.cpp's file types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyntheticQuant {
    /// `Q4_0` files: every matrix Q4_0, the output projection Q6_K.
    Q4_0,
    /// `Q4_K_M` files: Q4_K, with Q6_K for the output projection and for
    /// `attn_v` / `ffn_down` in the layers llama.cpp gives more bits.
    Q4KM,
}

impl SyntheticQuant {
    pub fn parse(s: &str) -> Option<SyntheticQuant> {
        match s.to_ascii_lowercase().as_str() {
            "q4_0" => Some(SyntheticQuant::Q4_0),
            "q4_k_m" | "q4_k" => Some(SyntheticQuant::Q4KM),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            SyntheticQuant::Q4_0 => "q4_0",
            SyntheticQuant::Q4KM => "q4_k_m",
        }
    }
}

/// A synthetic model: shape, quantization mix and seed.
#[derive(Clone, Debug)]
pub struct SyntheticModel {
    pub config: Config,
    pub quant: SyntheticQuant,
    pub seed: u64,
    tensors: Vec<(String, Vec<u64>, GgmlType)>,
}

impl SyntheticModel {
    /// Code Llama 7B's shape (dim 4096, 32 heads, FFN 11008, vocab 32016,
    /// context 16384, theta 1e6) with `layers` blocks.
    pub fn codellama_7b(layers: usize, quant: SyntheticQuant) -> SyntheticModel {
        Self::new(
            Config {
                dim: 4096,
                n_layers: layers,
                n_heads: 32,
                n_kv_heads: 32,
                ffn_dim: 11008,
                vocab_size: 32016,
                context_length: 16384,
                rope_theta: 1_000_000.0,
                rms_eps: 1e-5,
            },
            quant,
            7,
        )
    }

    pub fn new(config: Config, quant: SyntheticQuant, seed: u64) -> SyntheticModel {
        let n = config.n_layers;
        // llama.cpp's `use_more_bits`: the first and last eighth of the
        // layers, and every third one in between.
        let more_bits = |l: usize| l < n / 8 || l >= 7 * n / 8 || (l - n / 8) % 3 == 2;
        let tensors = config
            .expected_tensors()
            .into_iter()
            .map(|(name, dims)| {
                let ty = if dims.len() == 1 {
                    GgmlType::F32
                } else if name == super::tensors::OUTPUT {
                    GgmlType::Q6K
                } else {
                    match quant {
                        SyntheticQuant::Q4_0 => GgmlType::Q4_0,
                        SyntheticQuant::Q4KM => {
                            let layer = name
                                .strip_prefix("blk.")
                                .and_then(|r| r.split('.').next())
                                .and_then(|l| l.parse::<usize>().ok());
                            let wide = name.ends_with("attn_v.weight")
                                || name.ends_with("ffn_down.weight");
                            match layer {
                                Some(l) if wide && more_bits(l) => GgmlType::Q6K,
                                _ => GgmlType::Q4K,
                            }
                        }
                    }
                };
                (name, dims, ty)
            })
            .collect();
        SyntheticModel {
            config,
            quant,
            seed,
            tensors,
        }
    }

    /// The GGUF metadata: llama hyperparameters and a synthetic vocabulary of
    /// `vocab_size` pieces laid out like Code Llama's (`<unk>`, `<s>`, `</s>`,
    /// the 256 byte pieces, single-character pieces, the four infill pieces at
    /// ids 32007..=32010 when the vocabulary is large enough), so engines that
    /// need a tokenizer load it like a published file.
    pub fn writer(&self) -> GgufWriter {
        let c = &self.config;
        let mut w = GgufWriter::new();
        w.kv("general.architecture", Value::String("llama".into()))
            .kv(
                "general.name",
                Value::String(format!("synthetic-{}-{}", c.n_layers, self.quant.name())),
            )
            .kv("llama.context_length", Value::U32(c.context_length as u32))
            .kv("llama.embedding_length", Value::U32(c.dim as u32))
            .kv("llama.block_count", Value::U32(c.n_layers as u32))
            .kv("llama.feed_forward_length", Value::U32(c.ffn_dim as u32))
            .kv("llama.attention.head_count", Value::U32(c.n_heads as u32))
            .kv(
                "llama.attention.head_count_kv",
                Value::U32(c.n_kv_heads as u32),
            )
            .kv("llama.rope.freq_base", Value::F32(c.rope_theta))
            .kv(
                "llama.attention.layer_norm_rms_epsilon",
                Value::F32(c.rms_eps),
            )
            .kv("llama.vocab_size", Value::U32(c.vocab_size as u32));
        let (tokens, types) = synthetic_vocab(c.vocab_size);
        let n = tokens.len();
        w.kv("tokenizer.ggml.model", Value::String("llama".into()))
            .kv(
                "tokenizer.ggml.tokens",
                Value::Array(
                    ValueType::String,
                    tokens.into_iter().map(Value::String).collect(),
                ),
            )
            .kv(
                "tokenizer.ggml.scores",
                Value::Array(
                    ValueType::F32,
                    (0..n).map(|i| Value::F32(-(i as f32))).collect(),
                ),
            )
            .kv(
                "tokenizer.ggml.token_type",
                Value::Array(ValueType::I32, types.into_iter().map(Value::I32).collect()),
            )
            .kv("tokenizer.ggml.bos_token_id", Value::U32(1))
            .kv("tokenizer.ggml.eos_token_id", Value::U32(2))
            .kv("tokenizer.ggml.unknown_token_id", Value::U32(0));
        for (name, dims, ty) in &self.tensors {
            w.tensor(name, dims, *ty, Vec::new());
        }
        w
    }

    /// The tensors in file order, with their sizes.
    pub fn tensor_infos(&self) -> Vec<TensorInfo> {
        let mut off = 0;
        self.tensors
            .iter()
            .map(|(name, dims, ty)| {
                let n: u64 = dims.iter().product();
                let n_bytes = ty.bytes_for(n).expect("whole blocks");
                let info = TensorInfo {
                    name: name.clone(),
                    dims: dims.clone(),
                    ty: *ty,
                    offset: off,
                    n_bytes,
                };
                off = (off + n_bytes).div_ceil(32) * 32;
                info
            })
            .collect()
    }

    /// The header a reader would see for this model.
    pub fn header(&self) -> Header {
        Header {
            version: 3,
            metadata: self.writer().metadata,
            tensors: self.tensor_infos(),
            alignment: 32,
            data_offset: 0,
        }
    }

    /// Bytes of all tensors.
    pub fn total_bytes(&self) -> u64 {
        self.tensor_infos().iter().map(|t| t.n_bytes).sum()
    }

    /// The bytes of tensor `index` (described by `info`, entry `index` of
    /// [`SyntheticModel::tensor_infos`]): random blocks, small scales.
    pub fn tensor_bytes(&self, index: usize, info: &TensorInfo) -> Vec<u8> {
        random_tensor(info, self.seed ^ (index as u64).wrapping_mul(0x9E37_79B9))
    }

    /// Calls `f` with each tensor in file order; only one tensor's bytes are
    /// alive at a time.
    pub fn for_each_tensor<E>(
        &self,
        mut f: impl FnMut(&TensorInfo, &[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        for (i, info) in self.tensor_infos().iter().enumerate() {
            f(info, &self.tensor_bytes(i, info))?;
        }
        Ok(())
    }

    /// Writes the model as a GGUF file, one tensor at a time.
    pub fn write(&self, path: &Path) -> std::io::Result<u64> {
        let writer = self.writer();
        let infos = self.tensor_infos();
        let sizes: Vec<u64> = infos.iter().map(|t| t.n_bytes).collect();
        let (header, offsets) = writer.header_bytes_with_sizes(&sizes);
        let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
        out.write_all(&header)?;
        let mut written = 0u64;
        for (i, (info, &offset)) in infos.iter().zip(&offsets).enumerate() {
            let bytes = self.tensor_bytes(i, info);
            out.write_all(&vec![0u8; (offset - written) as usize])?;
            out.write_all(&bytes)?;
            written = offset + bytes.len() as u64;
        }
        out.flush()?;
        Ok(header.len() as u64 + written)
    }
}

/// splitmix64: fast, reproducible bytes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn fill(&mut self, out: &mut [u8]) {
        for c in out.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            c.copy_from_slice(&v[..c.len()]);
        }
    }
}

fn f16(v: f32) -> [u8; 2] {
    half::f16::from_f32(v).to_le_bytes()
}

/// Random blocks of `info.ty` whose values have a standard deviation of about
/// `0.5 / sqrt(cols)`, so each matrix-vector product keeps its input's scale;
/// norm weights are 1.
fn random_tensor(info: &TensorInfo, seed: u64) -> Vec<u8> {
    let mut rng = Rng(seed);
    let n = info.n_elements();
    let cols = info.dims[0] as f32;
    let mut bytes = vec![0u8; info.n_bytes as usize];
    match info.ty {
        GgmlType::F32 => {
            for c in bytes.chunks_exact_mut(4) {
                c.copy_from_slice(&1.0f32.to_le_bytes());
            }
        }
        GgmlType::Q4_0 => {
            // Values d * (q - 8), q uniform in 0..16: std 4.6 d.
            let d = f16(0.5 / 4.6 / cols.sqrt());
            rng.fill(&mut bytes);
            for b in bytes.chunks_exact_mut(18) {
                b[..2].copy_from_slice(&d);
            }
        }
        GgmlType::Q4K => {
            // d * sc * q - dmin * m with 6-bit sc, m and 4-bit q.
            let d = f16(0.5 / 4.6 / 32.0 / cols.sqrt());
            let dmin = f16(0.5 * 7.5 / 4.6 / 32.0 / cols.sqrt());
            rng.fill(&mut bytes);
            for b in bytes.chunks_exact_mut(144) {
                b[..2].copy_from_slice(&d);
                b[2..4].copy_from_slice(&dmin);
            }
        }
        GgmlType::Q6K => {
            // d * sc * (q - 32), i8 sc, 6-bit q: std ~ 18.5 |sc| d.
            let d = f16(0.5 / 18.5 / 16.0 / cols.sqrt());
            rng.fill(&mut bytes);
            for b in bytes.chunks_exact_mut(210) {
                for s in &mut b[192..208] {
                    *s = 16 + (*s % 16);
                }
                b[208..].copy_from_slice(&d);
            }
        }
        other => unreachable!("synthetic models hold no {other:?} tensors ({n} elements)"),
    }
    bytes
}

/// Pieces and piece types (GGUF `token_type`) of a synthetic Llama-style
/// vocabulary of `n` pieces.
fn synthetic_vocab(n: usize) -> (Vec<String>, Vec<i32>) {
    const INFILL: [(usize, &str); 4] = [
        (32007, "▁<PRE>"),
        (32008, "▁<SUF>"),
        (32009, "▁<MID>"),
        (32010, "▁<EOT>"),
    ];
    let mut tokens = Vec::with_capacity(n);
    let mut types = Vec::with_capacity(n);
    // Single characters from U+4E00 on: distinct, no merges needed, and
    // below the surrogates for any vocabulary up to ~40k pieces.
    let mut next_char = 0x4E00u32;
    for id in 0..n {
        let (piece, ty) = match id {
            0 => ("<unk>".to_string(), 2),
            1 => ("<s>".to_string(), 3),
            2 => ("</s>".to_string(), 3),
            3..=258 => (format!("<0x{:02X}>", id - 3), 6),
            _ => match INFILL.iter().find(|(i, _)| *i == id) {
                Some((_, p)) => (p.to_string(), 1),
                None => {
                    let c = char::from_u32(next_char).unwrap_or('?');
                    next_char += 1;
                    if id == 259 {
                        ("▁".to_string(), 1)
                    } else {
                        (c.to_string(), 1)
                    }
                }
            },
        };
        tokens.push(piece);
        types.push(ty);
    }
    (tokens, types)
}
