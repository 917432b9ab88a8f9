//! The CPU reference decoder against an independent float64 numpy forward pass
//! (`scripts/reference_forward.py`, over PyPI `gguf` dequantization) on the
//! generated tiny Code Llama-shaped models listed in
//! `tests/fixtures/generated/manifest.json` (made by `scripts/make_fixtures.py`).

use std::path::{Path, PathBuf};

use codellama_webgpu::cpu::{CpuDecoder, CpuWeights};
use codellama_webgpu::npy;

fn generated() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/generated")
}

fn manifest() -> serde_json::Value {
    let path = generated().join("manifest.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}\nGenerate the fixtures first: scripts/test.sh does, or run \
             `python scripts/make_fixtures.py` in the project venv.",
            path.display()
        )
    });
    serde_json::from_str(&text).expect("manifest is JSON")
}

struct Compared {
    min_cos: f64,
    min_cos_at: usize,
    max_abs: f64,
    max_abs_at: (usize, usize),
    argmax_checked: usize,
}

fn compare(ours: &[Vec<f32>], reference: &[f32], vocab: usize) -> Compared {
    let mut c = Compared {
        min_cos: 1.0,
        min_cos_at: 0,
        max_abs: 0.0,
        max_abs_at: (0, 0),
        argmax_checked: 0,
    };
    for (pos, row) in ours.iter().enumerate() {
        let r = &reference[pos * vocab..(pos + 1) * vocab];
        let (mut dot, mut na, mut nb) = (0f64, 0f64, 0f64);
        for (i, (&a, &b)) in row.iter().zip(r).enumerate() {
            let (a, b) = (a as f64, b as f64);
            dot += a * b;
            na += a * a;
            nb += b * b;
            if (a - b).abs() > c.max_abs {
                c.max_abs = (a - b).abs();
                c.max_abs_at = (pos, i);
            }
        }
        let cos = dot / (na.sqrt() * nb.sqrt());
        if cos < c.min_cos {
            c.min_cos = cos;
            c.min_cos_at = pos;
        }
        // Identical argmax wherever the reference's top-2 gap exceeds 1e-3.
        let mut idx: Vec<usize> = (0..vocab).collect();
        idx.sort_by(|&x, &y| r[y].total_cmp(&r[x]));
        if r[idx[0]] - r[idx[1]] > 1e-3 {
            let ours_arg = (0..vocab)
                .max_by(|&x, &y| row[x].total_cmp(&row[y]).then(y.cmp(&x)))
                .unwrap();
            assert_eq!(
                ours_arg,
                idx[0],
                "argmax differs at position {pos} (reference gap {})",
                r[idx[0]] - r[idx[1]]
            );
            c.argmax_checked += 1;
        }
    }
    c
}

#[test]
fn cpu_decoder_matches_numpy_float64_reference() {
    let m = manifest();
    let models = m["models"].as_array().expect("models list");
    assert!(models.len() >= 6, "expected at least 6 fixture models");
    // Small-vocabulary files quantized by llama.cpp, one per remaining format.
    let extra = m["extra_models"].as_array().expect("extra_models list");
    let mut kinds = std::collections::BTreeSet::new();
    let mut all_types = std::collections::BTreeSet::new();
    for (i, model) in models.iter().chain(extra).enumerate() {
        let name = model["name"].as_str().unwrap();
        let file = generated().join(model["file"].as_str().unwrap());
        let tokens: Vec<u32> = model["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_u64().unwrap() as u32)
            .collect();
        let weights = CpuWeights::load(&file).unwrap_or_else(|e| panic!("{name}: {e}"));
        let cfg = &weights.config;
        if i < models.len() {
            assert_eq!(
                cfg.vocab_size, 32016,
                "{name}: the real Code Llama vocabulary"
            );
        }
        kinds.insert(if cfg.n_kv_heads == cfg.n_heads {
            "mha"
        } else {
            "gqa"
        });
        let mut dec = CpuDecoder::new(&weights, tokens.len());
        let ours = dec.logits_for(&tokens).unwrap();
        let (shape, reference) = npy::read_f32(
            std::fs::File::open(generated().join(model["logits"].as_str().unwrap())).unwrap(),
        )
        .unwrap();
        assert_eq!(
            shape,
            vec![tokens.len(), cfg.vocab_size],
            "{name}: reference shape"
        );
        let c = compare(&ours, &reference, cfg.vocab_size);
        let types: std::collections::BTreeSet<&str> =
            weights.header.tensors.iter().map(|t| t.ty.name()).collect();
        all_types.extend(types.iter().map(|t| t.to_string()));
        println!(
            "{name:<26} {types:?} {} tokens: 1 - min cosine {:.2e} (pos {}), max |diff| {:.3e} at (pos {}, id {}), argmax identical at {} positions with gap > 1e-3",
            tokens.len(),
            1.0 - c.min_cos,
            c.min_cos_at,
            c.max_abs,
            c.max_abs_at.0,
            c.max_abs_at.1,
            c.argmax_checked
        );
        assert!(
            c.min_cos >= 0.99999,
            "{name}: cosine {} at position {}",
            c.min_cos,
            c.min_cos_at
        );
        assert!(
            c.argmax_checked * 2 >= tokens.len(),
            "{name}: too few decisive positions to check argmax"
        );
    }
    assert!(
        kinds.contains("mha") && kinds.contains("gqa"),
        "both attention kinds covered"
    );
    for ty in [
        "F32", "F16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q4_K", "Q5_K", "Q6_K",
    ] {
        assert!(all_types.contains(ty), "no fixture model uses {ty}");
    }
}
