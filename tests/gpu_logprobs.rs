//! Per-token log-probabilities on the GPU (`shaders/sample.wgsl` entry point
//! `logprobs`) against the CPU reference (`logprobs::log_softmax`, f64):
//!
//! - the kernel alone, on vocabulary sizes 1, 7, 513 and 32016 with
//!   adversarial logits (exact ties, -inf entries, subnormals and signed
//!   zeros, huge and large magnitudes, a peaked distribution), greedy and
//!   sampled, top 0, 1, 3 and 20: the chosen id is the sampler's, the top ids
//!   are exactly the reference's order (ties by lower id), every value within
//!   1e-4 + 1e-6 |ref| of the reference (f32 cannot hold more than ~6e-8
//!   relative), -inf exactly where the reference has it; NaN is an error;
//! - end to end on every fixture model: each decode step's logprobs within
//!   1e-4 of the log-softmax of the logits the GPU decoder computed, through
//!   `sample_logprobs` and `step_and_sample_logprobs`; generation with
//!   `logprobs` gives the same tokens as without, one entry per token, and
//!   stays close to the CPU backend's;
//! - nothing of the kernel exists (so nothing is dispatched or read back)
//!   until a request asks for log-probabilities.
//!
//! Without an adapter these tests fail: they never skip.

#[path = "common/fixture_models.rs"]
mod fixture_models;
#[path = "common/rng.rs"]
mod rng;
#[path = "common/contexts.rs"]
mod shared_contexts;
use fixture_models::{fixtures, models};
use rng::Rng;
use shared_contexts::contexts;

use std::path::Path;
use std::sync::Arc;

use codellama_webgpu::cpu::{CpuDecoder, CpuWeights};
use codellama_webgpu::error::Error;
use codellama_webgpu::generate::{Backend, GenerateOptions, Session};
use codellama_webgpu::gpu::decoder::{DecoderOptions, GpuDecoder};
use codellama_webgpu::gpu::sample::logprobs_host;
use codellama_webgpu::gpu::weights::GpuWeights;
use codellama_webgpu::gpu::{GpuContext, GpuError};
use codellama_webgpu::logprobs::{log_softmax, top_ids, TokenLogprobs};
use codellama_webgpu::model::KvFormat;
use codellama_webgpu::sampler::{Sampler, SamplerConfig, SamplerError};
use codellama_webgpu::tokenizer::Tokenizer;

const KINDS: [&str; 8] = [
    "normal", "ties", "neg-inf", "peaked", "tiny", "huge", "large", "flat",
];

/// Logits of kind `kind` (never all -inf).
fn logits(rng: &mut Rng, vocab: usize, kind: &str) -> Vec<f32> {
    let mut l: Vec<f32> = (0..vocab).map(|_| rng.normal() * 3.0).collect();
    match kind {
        "ties" => {
            for x in l.iter_mut() {
                *x = rng.below(3) as f32 * 2.5;
            }
        }
        "neg-inf" => {
            for x in l.iter_mut() {
                if rng.below(3) != 0 {
                    *x = f32::NEG_INFINITY;
                }
            }
            l[rng.below(vocab)] = 1.5;
        }
        "peaked" => {
            let t = rng.below(vocab);
            l[t] += 60.0;
        }
        "tiny" => {
            for x in l.iter_mut() {
                *x = match rng.below(4) {
                    0 => f32::from_bits(rng.below(0x0080_0000) as u32 + 1),
                    1 => -0.0,
                    2 => 0.0,
                    _ => f32::MIN_POSITIVE * rng.normal(),
                };
            }
        }
        "huge" => {
            for x in l.iter_mut() {
                if rng.below(4) == 0 {
                    *x = rng.normal() * 1e30;
                }
            }
        }
        "large" => {
            for x in l.iter_mut() {
                *x = rng.normal() * 1e4;
            }
        }
        "flat" => {
            for x in l.iter_mut() {
                *x = -1e3 + rng.normal() * 1e-3;
            }
        }
        _ => {}
    }
    l
}

fn tolerance(reference: f64) -> f64 {
    1e-4 + 1e-6 * reference.abs()
}

/// Largest errors seen: (absolute where |ref| <= 100, relative beyond).
#[derive(Default, Debug)]
struct Worst {
    abs: f64,
    rel: f64,
    checked: usize,
}

impl Worst {
    fn check(&mut self, what: &str, got: f32, reference: f64) {
        self.checked += 1;
        if reference == f64::NEG_INFINITY {
            assert_eq!(got, f32::NEG_INFINITY, "{what}: -inf expected, got {got}");
            return;
        }
        assert!(got <= 0.0, "{what}: logprob {got} > 0");
        let err = (f64::from(got) - reference).abs();
        assert!(
            err <= tolerance(reference),
            "{what}: GPU {got} vs reference {reference} (error {err:e})"
        );
        if reference.abs() <= 100.0 {
            self.abs = self.abs.max(err);
        } else {
            self.rel = self.rel.max(err / reference.abs());
        }
    }
}

/// Checks `got` against the reference for `logits`; `expect_id` is the
/// sampler's token.
fn check(
    w: &mut Worst,
    what: &str,
    logits: &[f32],
    got: &TokenLogprobs,
    expect_id: u32,
    top: usize,
) {
    let lp = log_softmax(logits).expect("usable logits");
    assert_eq!(got.id, expect_id, "{what}: chosen id");
    w.check(&format!("{what} chosen"), got.logprob, lp[got.id as usize]);
    let ids: Vec<u32> = got.top.iter().map(|t| t.id).collect();
    assert_eq!(ids, top_ids(logits, top), "{what}: top ids");
    for (j, t) in got.top.iter().enumerate() {
        w.check(&format!("{what} top[{j}]"), t.logprob, lp[t.id as usize]);
    }
}

fn context() -> Arc<GpuContext> {
    Arc::clone(&contexts()[0])
}

#[test]
fn kernel_matches_the_f64_reference_on_adversarial_logits() {
    let ctx = context();
    eprintln!("adapter: {}", ctx.adapter_summary());
    let mut rng = Rng::new(16);
    let mut worst = Worst::default();
    let sampled = SamplerConfig {
        temperature: 0.7,
        top_p: 0.95,
        seed: 5,
        ..Default::default()
    };
    for vocab in [1usize, 7, 513, 32016] {
        for kind in KINDS {
            for (ci, cfg) in [SamplerConfig::greedy(), sampled.clone()]
                .iter()
                .enumerate()
            {
                for top in [0usize, 1, 3, 20] {
                    let l = logits(&mut rng, vocab, kind);
                    let step = rng.below(100) as u32;
                    let got = ctx
                        .block_on(logprobs_host(&ctx, &l, cfg, &[], step, top))
                        .unwrap_or_else(|e| panic!("vocab {vocab} {kind}: {e}"));
                    let expect = Sampler::new(cfg.clone())
                        .unwrap()
                        .sample(&l, &[], step)
                        .unwrap();
                    let what = format!("vocab {vocab} {kind} cfg {ci} top {top}");
                    check(&mut worst, &what, &l, &got, expect, top);
                    if ci == 0 && !got.top.is_empty() {
                        // Greedy: the chosen token is the most likely one.
                        assert_eq!(got.id, got.top[0].id, "{what}");
                        assert_eq!(got.logprob, got.top[0].logprob, "{what}");
                    }
                }
            }
        }
    }
    eprintln!(
        "kernel: {} values, max abs error {:e} (|ref| <= 100), max rel error {:e} (beyond)",
        worst.checked, worst.abs, worst.rel
    );
}

#[test]
fn unusable_logits_and_settings_are_typed_errors() {
    let ctx = context();
    let greedy = SamplerConfig::greedy();
    let got = ctx.block_on(logprobs_host(
        &ctx,
        &[0.0, f32::NAN, 1.0],
        &greedy,
        &[],
        0,
        3,
    ));
    assert!(
        matches!(got, Err(GpuError::Sampler(SamplerError::NoFiniteLogits))),
        "{got:?}"
    );
    let got = ctx.block_on(logprobs_host(&ctx, &[0.0, 1.0], &greedy, &[], 0, 21));
    assert!(
        matches!(got, Err(GpuError::Sampler(SamplerError::BadSetting { .. }))),
        "{got:?}"
    );
}

fn gpu(ctx: &Arc<GpuContext>, path: &Path) -> GpuDecoder {
    let weights = GpuWeights::load(ctx, path, |_| {}).expect("upload");
    let opts = DecoderOptions {
        max_len: 96,
        prefill_chunk: 16,
        ..Default::default()
    };
    ctx.block_on(GpuDecoder::new(Arc::clone(ctx), weights, opts))
        .expect("GPU decoder")
}

fn prompt(vocab: usize, n: usize) -> Vec<u32> {
    std::iter::once(1)
        .chain((1..n as u64).map(|i| (3 + (i * 7919 + i * i) % (vocab as u64 - 3)) as u32))
        .collect()
}

#[test]
fn decode_steps_match_the_log_softmax_of_the_gpu_logits_on_every_fixture_model() {
    let ctx = context();
    let mut worst = Worst::default();
    for path in models() {
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        let mut dec = gpu(&ctx, &path);
        assert!(!dec.logprobs_ready());
        let vocab = dec.config().vocab_size;
        let mut recent = prompt(vocab, 12);
        ctx.block_on(Backend::feed(&mut dec, &recent)).unwrap();
        for (ci, cfg) in [
            SamplerConfig::greedy(),
            SamplerConfig {
                temperature: 0.8,
                seed: 3,
                ..Default::default()
            },
        ]
        .iter()
        .enumerate()
        {
            let top = [5, 20][ci];
            let mut last: Option<u32> = None;
            for step in 0..6u32 {
                let got = ctx
                    .block_on(async {
                        match last {
                            None => dec.sample_logprobs(cfg, &recent, step, top).await,
                            Some(t) => {
                                dec.step_and_sample_logprobs(t, cfg, &recent, step, top)
                                    .await
                            }
                        }
                    })
                    .unwrap();
                let logits = ctx.block_on(dec.logits()).unwrap();
                let expect = Sampler::new(cfg.clone())
                    .unwrap()
                    .sample(&logits, &recent, step)
                    .unwrap();
                let what = format!("{name} cfg {ci} step {step}");
                check(&mut worst, &what, &logits, &got, expect, top);
                recent.push(got.id);
                last = Some(got.id);
            }
        }
        assert!(dec.logprobs_ready());
    }
    eprintln!(
        "fixture models: {} values, max abs error {:e}",
        worst.checked, worst.abs
    );
}

fn opts(sampler: SamplerConfig, logprobs: Option<usize>) -> GenerateOptions {
    GenerateOptions {
        sampler,
        max_tokens: 10,
        stop: vec![],
        stop_ids: vec![],
        continuation: true,
        cancel: None,
        logprobs,
        ..Default::default()
    }
}

#[test]
fn generation_reports_one_entry_per_token_and_computes_nothing_when_off() {
    let ctx = context();
    let path = fixtures().join("generated/tiny-mha-f32.gguf");
    let w = CpuWeights::load(&path).unwrap();
    let tok = Tokenizer::from_metadata(&w.header.metadata).unwrap();
    let ids = prompt(w.config.vocab_size, 8);
    let sampled = SamplerConfig {
        temperature: 0.7,
        seed: 9,
        ..Default::default()
    };
    let mut s = Session::new(gpu(&ctx, &path));
    let mut max_vs_cpu = 0f64;
    for (round, cfg) in [SamplerConfig::greedy(), sampled].into_iter().enumerate() {
        let mut plain = Vec::new();
        let off = ctx
            .block_on(
                s.generate_events(&tok, &ids, &opts(cfg.clone(), None), &mut |e| {
                    if let codellama_webgpu::generate::GenerateEvent::Token(t) = e {
                        plain.push(t)
                    }
                }),
            )
            .unwrap();
        assert_eq!(off.logprobs, None);
        // Pipelined decoding ran, and no log-probabilities kernel exists
        // before the first request for them.
        assert_eq!(
            s.decoder.logprobs_ready(),
            round > 0,
            "made without being asked"
        );
        let on = ctx
            .block_on(s.generate_async(&tok, &ids, &opts(cfg.clone(), Some(2)), &mut |_| {}))
            .unwrap();
        let lps = on.logprobs.expect("asked for");
        assert_eq!(lps.len(), on.generated_tokens);
        assert_eq!(
            lps.iter().map(|l| l.id).collect::<Vec<_>>(),
            plain,
            "same tokens"
        );
        for l in &lps {
            assert!(l.logprob <= 0.0 && l.top.len() == 2);
            assert!(l.top[0].logprob >= l.top[1].logprob);
        }
        assert!(s.decoder.logprobs_ready());

        // The CPU backend (f64 reference on its own logits) agrees closely.
        let mut cpu = Session::new(CpuDecoder::new(&w, 96).with_kv_rounding(Some(KvFormat::F16)));
        let c = cpu
            .generate(&tok, &ids, &opts(cfg.clone(), Some(2)), &mut |_| {})
            .unwrap();
        let clp = c.logprobs.unwrap();
        assert_eq!(clp.len(), lps.len());
        for (a, b) in lps.iter().zip(&clp) {
            assert_eq!(a.id, b.id);
            max_vs_cpu = max_vs_cpu.max(f64::from((a.logprob - b.logprob).abs()));
        }
    }
    eprintln!("GPU vs CPU backend logprobs: max diff {max_vs_cpu:e}");
    assert!(max_vs_cpu < 1e-2, "{max_vs_cpu}");
    let bad = ctx.block_on(s.generate_async(
        &tok,
        &ids,
        &opts(SamplerConfig::greedy(), Some(21)),
        &mut |_| {},
    ));
    assert!(
        matches!(bad, Err(Error::Sampler(SamplerError::BadSetting { .. }))),
        "{bad:?}"
    );
}
