//! Helpers shared by the tokenizer and prompt tests (included with `#[path]`).
#![allow(dead_code)]

use std::path::PathBuf;

use codellama_webgpu::gguf::{self, Metadata, Value, ValueType};
use codellama_webgpu::tokenizer::Tokenizer;

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("crate/ has a parent")
        .to_path_buf()
}

pub fn vocab_dir() -> PathBuf {
    repo_root().join("tests/fixtures/vocab")
}

/// The metadata of llama.cpp's Llama vocabulary fixture.
pub fn llama_metadata() -> Metadata {
    let path = vocab_dir().join("ggml-vocab-llama-spm.gguf");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    gguf::read_bytes(&bytes)
        .expect("fixture parses")
        .header
        .metadata
}

pub fn llama_tokenizer() -> Tokenizer {
    Tokenizer::from_metadata(&llama_metadata()).expect("Llama vocab builds")
}

/// llama.cpp's test vectors, split exactly as `tests/test-tokenizer-0.cpp` splits them.
pub fn llama_vectors() -> Vec<(String, Vec<u32>)> {
    let inp = std::fs::read_to_string(vocab_dir().join("ggml-vocab-llama-spm.gguf.inp")).unwrap();
    let out = std::fs::read_to_string(vocab_dir().join("ggml-vocab-llama-spm.gguf.out")).unwrap();
    let sep = "\n__ggml_vocab_test__\n";
    let mut inputs = Vec::new();
    let mut pos = 0;
    while pos < inp.len() {
        match inp[pos..].find(sep) {
            None => {
                inputs.push(inp[pos..].to_string());
                break;
            }
            Some(k) => {
                inputs.push(inp[pos..pos + k].to_string());
                pos += k + sep.len();
            }
        }
    }
    let outputs: Vec<Vec<u32>> = out
        .lines()
        .map(|l| l.split_whitespace().map(|t| t.parse().unwrap()).collect())
        .collect();
    assert_eq!(inputs.len(), outputs.len(), "inputs vs outputs");
    inputs.into_iter().zip(outputs).collect()
}

/// Code Llama's 16 extra pieces (ids 32000..32015); see scripts/make_codellama_vocab.py for the
/// sources.
pub const CODELLAMA_EXTRA_PIECES: [&str; 16] = [
    "▁<SU",
    "▁<SUF",
    "▁<PRE",
    "▁<M",
    "▁<MID",
    "▁<E",
    "▁<EOT",
    "▁<PRE>",
    "▁<SUF>",
    "▁<MID>",
    "▁<EOT>",
    "▁<EOT><EOT>",
    "▁<EOT><EOT><EOT>",
    "▁<EOT><EOT><EOT><EOT>",
    "▁<EOT><EOT><EOT><EOT><EOT>",
    "▁<EOT><EOT><EOT><EOT><EOT><EOT>",
];

/// A copy of `meta` with `key` replaced (`Some`) or removed (`None`).
pub fn with_key(meta: &Metadata, key: &str, value: Option<Value>) -> Metadata {
    let mut out = Metadata::new();
    let mut value = value;
    for (k, v) in meta.iter() {
        if k == key {
            if let Some(nv) = value.take() {
                out.insert(k.to_string(), nv);
            }
        } else {
            out.insert(k.to_string(), v.clone());
        }
    }
    if let Some(nv) = value {
        out.insert(key.to_string(), nv);
    }
    out
}

/// The Code Llama 32016-piece metadata: the Llama fixture plus the 16 pieces (type normal,
/// scores continuing Llama's -(id - 259)).
pub fn codellama_metadata() -> Metadata {
    let meta = llama_metadata();
    let append = |key: &str, extra: Vec<Value>| -> Value {
        let (t, items) = meta.get_array(key).expect("array");
        let mut items = items.to_vec();
        items.extend(extra);
        Value::Array(t, items)
    };
    let tokens = append(
        "tokenizer.ggml.tokens",
        CODELLAMA_EXTRA_PIECES
            .iter()
            .map(|p| Value::String(p.to_string()))
            .collect(),
    );
    let scores = append(
        "tokenizer.ggml.scores",
        (32000..32016)
            .map(|id| Value::F32(-((id - 259) as f32)))
            .collect(),
    );
    let types = append(
        "tokenizer.ggml.token_type",
        (0..16).map(|_| Value::I32(1)).collect(),
    );
    let m = with_key(&meta, "tokenizer.ggml.tokens", Some(tokens));
    let m = with_key(&m, "tokenizer.ggml.scores", Some(scores));
    let m = with_key(&m, "tokenizer.ggml.token_type", Some(types));
    with_key(&m, "llama.vocab_size", Some(Value::U32(32016)))
}

pub fn codellama_tokenizer() -> Tokenizer {
    Tokenizer::from_metadata(&codellama_metadata()).expect("Code Llama vocab builds")
}

pub fn string_array(items: &[&str]) -> Value {
    Value::Array(
        ValueType::String,
        items.iter().map(|s| Value::String(s.to_string())).collect(),
    )
}

/// A small deterministic generator (xorshift64*) for property tests.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}
