//! Device loss natively (issue 7): the device is destroyed (`wgpu::Device::destroy`, the native
//! counterpart of `GPUDevice.destroy()`) in the middle of a generation. The generation fails
//! with the typed `GpuError::DeviceLost`, not a panic or another error; every later call on the
//! old device says the same; a new device with the weights uploaded again from the file (what
//! the CLI's interactive chat does on the next message) gives the reference text. The browser
//! side (recovery inside the engine, from OPFS / a Blob): `tests/web/run.mjs`, `device-loss`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use codellama_webgpu::generate::{GenerateOptions, Session};
use codellama_webgpu::gguf;
use codellama_webgpu::gpu::decoder::{DecoderOptions, GpuDecoder};
use codellama_webgpu::gpu::weights::GpuWeights;
use codellama_webgpu::gpu::{GpuContext, GpuError, GpuOptions};
use codellama_webgpu::prompt;
use codellama_webgpu::sampler::SamplerConfig;
use codellama_webgpu::tokenizer::Tokenizer;
use codellama_webgpu::Error;

fn model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/models/tiny-cov-v512-q4_0.gguf")
}

/// A new device with the model's weights streamed onto it from the file.
fn open(path: &Path) -> Session<GpuDecoder> {
    let ctx = Arc::new(GpuContext::new(&GpuOptions::default()).unwrap_or_else(|e| {
        panic!("the device-loss test needs a wgpu adapter (lavapipe in CI): {e}")
    }));
    let weights = GpuWeights::load(&ctx, path, |_| {}).unwrap();
    let opts = DecoderOptions {
        max_len: 256,
        ..Default::default()
    };
    Session::new(
        ctx.block_on(GpuDecoder::new(Arc::clone(&ctx), weights, opts))
            .unwrap(),
    )
}

fn greedy(max_tokens: usize) -> GenerateOptions {
    GenerateOptions {
        sampler: SamplerConfig::greedy(),
        max_tokens,
        stop: vec![],
        stop_ids: vec![],
        continuation: true,
        cancel: None,
        ..Default::default()
    }
}

fn is_lost(e: &Error) -> bool {
    matches!(e, Error::Gpu(GpuError::DeviceLost(_)))
}

#[test]
fn a_device_lost_mid_generation_is_a_typed_error_and_a_new_device_recovers() {
    let path = model();
    let tok = Tokenizer::from_metadata(&gguf::read_header(&path).unwrap().metadata).unwrap();
    let ids = prompt::completion(&tok, "def fibonacci(n):\n    ").unwrap();

    let mut s = open(&path);
    let reference = s.generate(&tok, &ids, &greedy(24), &mut |_| {}).unwrap();
    assert_eq!(reference.generated_tokens, 24);
    let mut reference_text = String::new();
    s.reset();
    s.generate(&tok, &ids, &greedy(24), &mut |t| reference_text.push_str(t))
        .unwrap();

    // Destroyed after the second piece of text: the generation must stop with DeviceLost.
    s.reset();
    let ctx = Arc::clone(s.decoder.context());
    let mut pieces = 0;
    let lost = s
        .generate(&tok, &ids, &greedy(100), &mut |_| {
            pieces += 1;
            if pieces == 2 {
                ctx.device().destroy();
            }
        })
        .expect_err("a generation on a destroyed device must fail");
    println!("the generation after {pieces} pieces: {lost}");
    assert!(
        is_lost(&lost),
        "expected GpuError::DeviceLost, got {lost:?}"
    );
    assert!(ctx.lost_reason().is_some());
    // The old device stays lost: the next call says so at once.
    let again = s
        .generate(&tok, &ids, &greedy(4), &mut |_| {})
        .expect_err("the old device is gone");
    assert!(is_lost(&again), "the call after the loss: {again:?}");
    drop(s);
    drop(ctx);

    // Recovery: a new device, the weights uploaded again from the file, the same text.
    let mut s = open(&path);
    let mut text = String::new();
    s.generate(&tok, &ids, &greedy(24), &mut |t| text.push_str(t))
        .unwrap();
    assert_eq!(text, reference_text, "greedy text on the new device");
    println!("after recovery: {:?} (the reference)", text);
}
