//! Model-level checks of a GGUF header: architecture, required keys and
//! tensors, shapes and hyperparameters, each with its typed error.

use codellama_webgpu::gguf::{read_bytes, string_array, GgufWriter, Value};
use codellama_webgpu::model::{Config, ModelError};
use codellama_webgpu::GgmlType;

const DIM: u64 = 8;
const FFN: u64 = 16;
const VOCAB: u64 = 5;

/// A valid tiny llama header (2 heads, 1 kv head, 1 layer) with zero weights.
fn tiny(edit: impl FnOnce(&mut Vec<(String, Value)>, &mut Vec<(String, Vec<u64>)>)) -> Vec<u8> {
    let mut kv: Vec<(String, Value)> = vec![
        ("general.architecture".into(), Value::String("llama".into())),
        ("llama.embedding_length".into(), Value::U32(DIM as u32)),
        ("llama.block_count".into(), Value::U32(1)),
        ("llama.attention.head_count".into(), Value::U32(2)),
        ("llama.attention.head_count_kv".into(), Value::U32(1)),
        ("llama.feed_forward_length".into(), Value::U32(FFN as u32)),
        ("llama.context_length".into(), Value::U32(64)),
        ("llama.rope.freq_base".into(), Value::F32(1e6)),
        (
            "llama.attention.layer_norm_rms_epsilon".into(),
            Value::F32(1e-5),
        ),
        (
            "tokenizer.ggml.tokens".into(),
            string_array(&["<unk>", "<s>", "</s>", "a", "b"]),
        ),
    ];
    let kv_dim = DIM / 2;
    let mut tensors: Vec<(String, Vec<u64>)> = vec![
        ("token_embd.weight".into(), vec![DIM, VOCAB]),
        ("blk.0.attn_norm.weight".into(), vec![DIM]),
        ("blk.0.attn_q.weight".into(), vec![DIM, DIM]),
        ("blk.0.attn_k.weight".into(), vec![DIM, kv_dim]),
        ("blk.0.attn_v.weight".into(), vec![DIM, kv_dim]),
        ("blk.0.attn_output.weight".into(), vec![DIM, DIM]),
        ("blk.0.ffn_norm.weight".into(), vec![DIM]),
        ("blk.0.ffn_gate.weight".into(), vec![DIM, FFN]),
        ("blk.0.ffn_up.weight".into(), vec![DIM, FFN]),
        ("blk.0.ffn_down.weight".into(), vec![FFN, DIM]),
        ("output_norm.weight".into(), vec![DIM]),
        ("output.weight".into(), vec![DIM, VOCAB]),
    ];
    edit(&mut kv, &mut tensors);
    let mut w = GgufWriter::new();
    for (k, v) in kv {
        w.kv(&k, v);
    }
    for (name, dims) in tensors {
        let n: u64 = dims.iter().product();
        w.tensor(&name, &dims, GgmlType::F32, vec![0; 4 * n as usize]);
    }
    w.to_bytes()
}

fn config(bytes: &[u8]) -> Result<Config, ModelError> {
    Config::from_header(&read_bytes(bytes).unwrap().header)
}

fn set(kv: &mut [(String, Value)], key: &str, v: Value) {
    kv.iter_mut().find(|(k, _)| k == key).unwrap().1 = v;
}

#[test]
fn a_valid_header_reads_every_hyperparameter() {
    let c = config(&tiny(|_, _| {})).unwrap();
    assert_eq!(
        (
            c.dim,
            c.n_layers,
            c.n_heads,
            c.n_kv_heads,
            c.ffn_dim,
            c.vocab_size
        ),
        (8, 1, 2, 1, 16, 5)
    );
    assert_eq!((c.head_dim(), c.kv_dim(), c.context_length), (4, 4, 64));
    assert_eq!(c.rope_theta, 1e6);
    assert_eq!(c.rms_eps, 1e-5);
}

#[test]
fn missing_rope_base_means_10000_and_output_may_be_tied() {
    let c = config(&tiny(|kv, t| {
        kv.retain(|(k, _)| k != "llama.rope.freq_base");
        t.retain(|(n, _)| n != "output.weight");
    }))
    .unwrap();
    assert_eq!(c.rope_theta, 10000.0);
}

#[test]
fn wrong_architecture() {
    let b = tiny(|kv, _| set(kv, "general.architecture", Value::String("gpt2".into())));
    assert_eq!(
        config(&b),
        Err(ModelError::WrongArchitecture("gpt2".into()))
    );
}

#[test]
fn missing_keys() {
    for key in [
        "general.architecture",
        "llama.embedding_length",
        "llama.block_count",
        "llama.attention.head_count",
        "llama.feed_forward_length",
        "llama.context_length",
        "llama.attention.layer_norm_rms_epsilon",
    ] {
        let b = tiny(|kv, _| kv.retain(|(k, _)| k != key));
        assert_eq!(config(&b), Err(ModelError::MissingKey(key.into())), "{key}");
    }
}

#[test]
fn bad_hyperparameters() {
    let cases: [(&str, Value); 6] = [
        ("llama.attention.head_count", Value::U32(3)), // does not divide 8
        ("llama.attention.head_count_kv", Value::U32(3)), // does not divide 2
        ("llama.embedding_length", Value::I32(-8)),
        ("llama.block_count", Value::U64(u64::MAX)),
        ("llama.rope.freq_base", Value::F32(f32::NAN)),
        ("llama.embedding_length", Value::String("4096".into())),
    ];
    for (key, v) in cases {
        let b = tiny(|kv, _| set(kv, key, v.clone()));
        match config(&b) {
            Err(ModelError::BadHyperparameter { key: k, .. }) => assert_eq!(k, key),
            other => panic!("{key} = {v:?}: {other:?}"),
        }
    }
    let b = tiny(|kv, _| kv.push(("llama.rope.dimension_count".into(), Value::U32(2))));
    assert!(matches!(
        config(&b),
        Err(ModelError::BadHyperparameter { .. })
    ));
}

#[test]
fn missing_tensors() {
    for name in [
        "token_embd.weight",
        "blk.0.attn_k.weight",
        "output_norm.weight",
    ] {
        let b = tiny(|_, t| t.retain(|(n, _)| n != name));
        assert_eq!(config(&b), Err(ModelError::MissingTensor(name.into())));
    }
}

#[test]
fn tensor_shapes_and_vocab_size() {
    let b = tiny(|_, t| {
        t.iter_mut()
            .find(|(n, _)| n == "blk.0.attn_k.weight")
            .unwrap()
            .1 = vec![DIM, DIM]
    });
    assert!(
        matches!(config(&b), Err(ModelError::TensorShape { name, .. }) if name == "blk.0.attn_k.weight")
    );
    let b = tiny(|_, t| t.iter_mut().find(|(n, _)| n == "output.weight").unwrap().1 = vec![DIM, 7]);
    assert_eq!(
        config(&b),
        Err(ModelError::VocabMismatch {
            vocab: 5,
            tensor: "output.weight".into(),
            rows: 7
        })
    );
}
