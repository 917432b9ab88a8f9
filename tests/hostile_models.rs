//! The hostile GGUF corpus (issue 7; `tests/fixtures/hostile/`, made by
//! `scripts/make_hostile_ggufs.py`): every malformed or hostile file gives a typed error of the
//! expected kind on the CPU backend and on the GPU backend (lavapipe in CI), and the GPU engine
//! loads and runs the valid model afterwards on the same device. The same files are loaded in
//! Chromium by `tests/web/run.mjs` (the `hostile` step), where the JS error class is checked.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use codellama_webgpu::cpu::{CpuDecoder, CpuWeights};
use codellama_webgpu::generate::{GenerateOptions, Session};
use codellama_webgpu::gguf;
use codellama_webgpu::gpu::decoder::{DecoderOptions, GpuDecoder};
use codellama_webgpu::gpu::weights::GpuWeights;
use codellama_webgpu::gpu::{GpuContext, GpuError, GpuOptions};
use codellama_webgpu::prompt;
use codellama_webgpu::sampler::{SamplerConfig, SamplerError};
use codellama_webgpu::tokenizer::Tokenizer;
use codellama_webgpu::Error;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/hostile")
}

/// The JS class the wasm boundary gives each kind (crate/src/wasm/errors.rs maps them; the
/// browser test checks that mapping itself).
fn class(e: &Error) -> &'static str {
    match e {
        Error::Gguf(_) => "InvalidModelError",
        Error::Gpu(GpuError::UploadLength { .. } | GpuError::UploadOrder { .. }) => {
            "InvalidModelError"
        }
        Error::Model(_) | Error::Quant(_) | Error::Tokenizer(_) => "UnsupportedModelError",
        Error::Sampler(SamplerError::NoFiniteLogits)
        | Error::Gpu(GpuError::Sampler(SamplerError::NoFiniteLogits)) => "InternalError",
        _ => "other",
    }
}

fn opts() -> GenerateOptions {
    GenerateOptions {
        sampler: SamplerConfig::greedy(),
        max_tokens: 4,
        stop: vec![],
        stop_ids: vec![2],
        continuation: true,
        cancel: None,
        ..Default::default()
    }
}

/// Loads and (when the load succeeds) generates 4 tokens on the CPU backend.
fn cpu(path: &Path) -> Result<String, Error> {
    let w = CpuWeights::load(path)?;
    let tok = Tokenizer::from_metadata(&w.header.metadata)?;
    let ids = prompt::completion(&tok, "a b")?;
    let mut text = String::new();
    Session::new(CpuDecoder::new(&w, 32))
        .generate(&tok, &ids, &opts(), &mut |t| text.push_str(t))?;
    Ok(text)
}

/// The same on the GPU backend; the tokenizer comes from the file's header.
fn gpu(ctx: &Arc<GpuContext>, path: &Path) -> Result<String, Error> {
    let weights = GpuWeights::load(ctx, path, |_| {})?;
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        path: path.display().to_string(),
        source,
    })?;
    let tok = Tokenizer::from_metadata(&gguf::read_bytes(&bytes)?.header.metadata)?;
    let ids = prompt::completion(&tok, "a b")?;
    let dec = ctx.block_on(GpuDecoder::new(
        Arc::clone(ctx),
        weights,
        DecoderOptions {
            max_len: 32,
            ..Default::default()
        },
    ))?;
    let mut s = Session::new(dec);
    let mut text = String::new();
    ctx.block_on(s.generate_async(&tok, &ids, &opts(), &mut |t| text.push_str(t)))?;
    Ok(text)
}

#[test]
fn every_hostile_file_is_a_typed_error_and_the_engine_stays_usable() {
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir().join("manifest.json")).unwrap())
            .unwrap();
    let cases = manifest.as_array().unwrap();
    assert!(cases.len() >= 30, "the corpus has {} files", cases.len());
    let ctx = Arc::new(GpuContext::new(&GpuOptions::default()).unwrap_or_else(|e| {
        panic!("the hostile-model test needs a wgpu adapter (lavapipe in CI): {e}")
    }));
    let mut bad = Vec::new();
    for c in cases {
        let file = c["file"].as_str().unwrap();
        let expect = c["expect"].as_str().unwrap();
        let want = expect.trim_start_matches("generate:");
        let path = dir().join(file);
        for (backend, got) in [("cpu", cpu(&path)), ("gpu", gpu(&ctx, &path))] {
            let seen = match &got {
                Ok(_) => "ok",
                Err(e) => class(e),
            };
            let msg = match &got {
                Ok(text) => format!("generated {text:?}"),
                Err(e) => e.to_string(),
            };
            println!("{file:28} {backend} {seen:22} {msg}");
            if seen != want {
                bad.push(format!(
                    "{file} ({backend}): expected {expect}, got {seen}: {msg}"
                ));
            }
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
    // The device that saw every failed load still loads and runs the valid model.
    let after = gpu(&ctx, &dir().join("valid.gguf")).expect("the valid model after the corpus");
    assert!(!after.is_empty());
}
