//! Speculative verification on the GPU ([`GpuDecoder::verify`]: the drafted
//! tokens as one batch, every row sampled on the GPU, the ids read back
//! once), on every fixture model and the demo model, with each kernel preset
//! (lavapipe in CI; without an adapter these tests fail, they never skip):
//!
//! - verify's ids equal those of sequential decode steps (`step_and_sample`)
//!   for drafts fully right, half right and wrong at the first token, greedy
//!   and sampled (seeded, with and without a repetition penalty), and
//!   decoding after the rejected positions are cut goes on as plain decoding;
//! - generation with speculation on (the grow-and-halve rule, and
//!   cost-aware) gives the tokens of generation with it off, greedy and
//!   sampled, and on the demo model drafts are accepted on its edit-like
//!   prompt;
//! - a verification batch's logits equal the decode steps' bit for bit.

#[path = "common/fixture_models.rs"]
mod fixture_models;
#[path = "common/contexts.rs"]
mod shared_contexts;
#[path = "common/spec_samplers.rs"]
mod spec_samplers;

use spec_samplers::samplers;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use codellama_webgpu::cpu::CpuWeights;
use codellama_webgpu::generate::{GenerateEvent, GenerateOptions, GenerateStats, Session};
use codellama_webgpu::gpu::decoder::{DecoderOptions, GpuDecoder, MAX_VERIFY};
use codellama_webgpu::gpu::weights::GpuWeights;
use codellama_webgpu::gpu::GpuContext;
use codellama_webgpu::prompt::{self, InfillMode, PromptKind};
use codellama_webgpu::sampler::SamplerConfig;
use codellama_webgpu::speculative::SpeculativeConfig;
use codellama_webgpu::tokenizer::Tokenizer;
use shared_contexts::contexts;

fn demo_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/codellama-demo.gguf")
}

/// Every fixture model, then the demo model.
fn all_models() -> Vec<PathBuf> {
    let mut v = fixture_models::models();
    v.push(demo_path());
    v
}

fn name(path: &Path) -> String {
    path.file_stem().unwrap().to_string_lossy().to_string()
}

fn decoder(ctx: &Arc<GpuContext>, path: &Path, all_logits: bool) -> GpuDecoder {
    let weights = GpuWeights::load(ctx, path, |_| {}).expect("upload");
    let opts = DecoderOptions {
        max_len: 256,
        prefill_chunk: 32,
        all_logits,
        ..Default::default()
    };
    ctx.block_on(GpuDecoder::new(Arc::clone(ctx), weights, opts))
        .expect("GPU decoder")
}

/// A reproducible prompt: BOS, then ids spread over the vocabulary.
fn prompt_ids(vocab: usize, n: usize) -> Vec<u32> {
    std::iter::once(1)
        .chain((1..n as u64).map(|i| (3 + (i * 7919 + i * i) % (vocab as u64 - 3)) as u32))
        .collect()
}

/// Plain decoding from a decoder holding `prompt` but its last token `last`:
/// `n` tokens by `step_and_sample`, starting with draw index `step0`.
fn plain(
    ctx: &GpuContext,
    dec: &mut GpuDecoder,
    recent: &[u32],
    last: u32,
    cfg: &SamplerConfig,
    step0: u32,
    n: usize,
) -> Vec<u32> {
    let mut recent = recent.to_vec();
    let mut token = last;
    let mut out = Vec::new();
    for i in 0..n as u32 {
        token = ctx
            .block_on(dec.step_and_sample(token, cfg, &recent, step0 + i))
            .unwrap();
        out.push(token);
        recent.push(token);
    }
    out
}

#[test]
fn verify_equals_sequential_steps() {
    for path in all_models() {
        let name = name(&path);
        for ctx in contexts() {
            let mut dec = decoder(ctx, &path, false);
            let vocab = dec.config().vocab_size;
            let p = prompt_ids(vocab, 20);
            let (head, last) = (&p[..p.len() - 1], p[p.len() - 1]);
            let k = MAX_VERIFY.min(dec.verify_rows()) - 1;
            // Every sampler on the demo model; on the fixtures the two with
            // a repetition window (greedy and sampled), which take every
            // path the plain ones take and the window's too.
            let demo = path == demo_path();
            let chosen = samplers()
                .into_iter()
                .filter(|(label, _)| demo || label.ends_with("penalized"));
            for (label, cfg) in chosen {
                let what = format!("{name} {:?} {label}", ctx.preset());
                let step0 = 5;
                dec.truncate(0);
                ctx.block_on(dec.feed(head)).unwrap();
                // The reference: K + 1 plain steps, and 8 more after them.
                let want = plain(ctx, &mut dec, &p, last, &cfg, step0, k + 1 + 8);
                let right = &want[..k];
                let mut half = right.to_vec();
                half[k / 2] = (half[k / 2] + 1) % vocab as u32;
                let mut wrong = right.to_vec();
                wrong[0] = (wrong[0] + 1) % vocab as u32;
                for (case, draft, accepted) in [
                    ("right", right, k),
                    ("half", &half[..], k / 2),
                    ("wrong", &wrong[..], 0),
                ] {
                    dec.truncate(head.len());
                    let fed: Vec<u32> =
                        std::iter::once(last).chain(draft.iter().copied()).collect();
                    let got = ctx.block_on(dec.verify(&fed, &cfg, &p, step0)).unwrap();
                    assert_eq!(
                        got,
                        want[..=accepted],
                        "{what} {case}: verify vs sequential steps"
                    );
                    // At least the positions of the samples' inputs; at most
                    // all of `fed` (a batch feeds them all).
                    let cached = dec.len() - head.len();
                    assert!(
                        (got.len()..=fed.len()).contains(&cached),
                        "{what} {case}: cache holds {cached} of {} fed",
                        fed.len()
                    );
                    // Cut the rejected positions; plain decoding goes on from
                    // the last sample as it would have.
                    dec.truncate(head.len() + accepted + 1);
                    let mut recent = p.clone();
                    recent.extend_from_slice(&want[..=accepted]);
                    let next = plain(
                        ctx,
                        &mut dec,
                        &recent,
                        want[accepted],
                        &cfg,
                        step0 + accepted as u32 + 1,
                        8,
                    );
                    assert_eq!(
                        next,
                        want[accepted + 1..accepted + 9],
                        "{what} {case}: decoding after the verification"
                    );
                }
                // A draft longer than one batch runs as several.
                dec.truncate(head.len());
                let long = plain(ctx, &mut dec, &p, last, &cfg, step0, 2 * k + 3);
                dec.truncate(head.len());
                let fed: Vec<u32> = std::iter::once(last)
                    .chain(long[..2 * k + 2].iter().copied())
                    .collect();
                let got = ctx.block_on(dec.verify(&fed, &cfg, &p, step0)).unwrap();
                assert_eq!(got, long, "{what}: a draft of {} tokens", fed.len() - 1);
            }
            // One token is a decode step.
            dec.truncate(head.len());
            let g = SamplerConfig::greedy();
            let one = ctx.block_on(dec.verify(&[last], &g, &p, 0)).unwrap();
            dec.truncate(head.len());
            assert_eq!(one, plain(ctx, &mut dec, &p, last, &g, 0, 1), "{name}");
        }
    }
}

struct Run {
    tokens: Vec<u32>,
    stats: GenerateStats,
}

fn generate(
    s: &mut Session<GpuDecoder>,
    ctx: &GpuContext,
    tok: &Tokenizer,
    p: &[u32],
    o: &GenerateOptions,
) -> Run {
    let mut tokens = Vec::new();
    let stats = ctx
        .block_on(s.generate_events(tok, p, o, &mut |ev| {
            if let GenerateEvent::Token(t) = ev {
                tokens.push(t)
            }
        }))
        .unwrap();
    Run { tokens, stats }
}

/// An edit-like infill: the second method mirrors the first.
const EDIT_PREFIX: &str = "class Vector:\n    def __init__(self, x, y):\n        self.x = x\n        self.y = y\n\n    def add(self, other):\n        return Vector(self.x + other.x, self.y + other.y)\n\n    def sub(self, other):\n";
const EDIT_SUFFIX: &str =
    "\n\n    def mul(self, other):\n        return Vector(self.x * other.x, self.y * other.y)\n";
const PLAIN: &str = "import os\ndef main(";
const REPEATED: &str = "x = compute(a, b)\ny = compute(a, b)\nz = compute(a, b)\nw = compute(";

/// On the demo model: a trained vocabulary and weights, so that drafts are
/// made and accepted (on the random fixtures the prompt-lookup drafter finds
/// almost nothing to draft: `verify_equals_sequential_steps` drives their
/// verification with drafts of its own instead).
#[test]
fn speculative_generation_equals_plain_generation() {
    for path in [demo_path()] {
        let name = name(&path);
        let w = CpuWeights::load(&path).unwrap();
        let tok = Tokenizer::from_metadata(&w.header.metadata).unwrap();
        let mut cases = vec![
            (
                "plain",
                prompt::completion(&tok, PLAIN).unwrap(),
                PromptKind::Completion,
            ),
            (
                "repeated",
                prompt::completion(&tok, REPEATED).unwrap(),
                PromptKind::Completion,
            ),
        ];
        let demo = path == demo_path();
        if demo {
            let edit = prompt::infill(
                &tok,
                EDIT_PREFIX,
                EDIT_SUFFIX,
                InfillMode::PrefixSuffixMiddle,
            )
            .unwrap();
            cases.push(("edit", edit, PromptKind::Infill));
        }
        for ctx in contexts() {
            let mut s = Session::new(decoder(ctx, &path, false));
            for (case, p, kind) in &cases {
                for (label, sampler) in samplers() {
                    let what = format!("{name} {:?} {case} {label}", ctx.preset());
                    let o = GenerateOptions {
                        sampler,
                        max_tokens: 48,
                        stop_ids: prompt::stop_ids(&tok, *kind).unwrap(),
                        continuation: true,
                        ..Default::default()
                    };
                    s.reset();
                    let off = generate(&mut s, ctx, &tok, p, &o);
                    assert_eq!(off.stats.drafted_tokens, 0, "{what}");
                    let on_opts = GenerateOptions {
                        speculative: Some(SpeculativeConfig {
                            max_draft: 8,
                            ..Default::default()
                        }),
                        ..o.clone()
                    };
                    s.reset();
                    let on = generate(&mut s, ctx, &tok, p, &on_opts);
                    assert_eq!(on.tokens, off.tokens, "{what}: tokens with speculation");
                    let st = &on.stats;
                    eprintln!(
                        "{what}: {} tokens, {} forward passes, {}/{} drafted accepted",
                        st.generated_tokens,
                        st.forward_passes,
                        st.accepted_tokens,
                        st.drafted_tokens
                    );
                    if demo && *case == "edit" && label == "greedy" {
                        assert!(st.accepted_tokens > 0, "{what}: no draft accepted: {st:?}");
                        assert!(st.forward_passes < st.generated_tokens, "{what}: {st:?}");
                    }
                    // Cost-aware: draft lengths from this session's measured
                    // pass times (kept across these runs), the same tokens.
                    let cost_opts = GenerateOptions {
                        speculative: Some(SpeculativeConfig {
                            max_draft: 8,
                            cost_aware: true,
                            ..Default::default()
                        }),
                        ..o.clone()
                    };
                    s.reset();
                    let cost = generate(&mut s, ctx, &tok, p, &cost_opts);
                    assert_eq!(cost.tokens, off.tokens, "{what}: tokens, cost-aware");
                }
            }
        }
    }
}

/// The logits of a verification batch equal, bit for bit, those of the same
/// positions decoded one token per step after the same prefix: batches of 2
/// and 3 positions (the narrow and the wide verification shape, the latter
/// with a token slot absent) and a full batch across the attention's split
/// boundary at 64 (its rows before 64 need no `combine` as decode steps, the
/// batch does).
#[test]
fn verify_logits_equal_decode_steps_bit_for_bit() {
    for path in all_models() {
        let name = name(&path);
        for ctx in contexts() {
            let mut dec = decoder(ctx, &path, false);
            let vocab = dec.config().vocab_size;
            let rows_max = dec.verify_rows();
            for (head_len, n) in [(54, 2), (54, 3), (54, rows_max)] {
                let seq = prompt_ids(vocab, head_len + n);
                let (head, batch) = seq.split_at(head_len);
                dec.truncate(0);
                ctx.block_on(dec.feed(head)).unwrap();
                let rows = ctx.block_on(dec.verify_logits(batch)).unwrap();
                dec.truncate(head_len);
                let mut differing = 0;
                let mut max_diff = 0.0f32;
                for (&t, row) in batch.iter().zip(&rows) {
                    ctx.block_on(dec.feed(&[t])).unwrap();
                    let one = ctx.block_on(dec.logits()).unwrap();
                    for (a, b) in row.iter().zip(&one) {
                        if a.to_bits() != b.to_bits() {
                            differing += 1;
                            max_diff = max_diff.max((a - b).abs());
                        }
                    }
                }
                eprintln!(
                    "{name} {:?}: positions {head_len}..{}: {differing} of {} logits differ \
                     (max {max_diff:.2e})",
                    ctx.preset(),
                    head_len + n,
                    n * vocab
                );
                assert_eq!(
                    differing,
                    0,
                    "{name} {:?} at {head_len}: verification logits differ from decode steps' \
                     (max |diff| {max_diff:.2e})",
                    ctx.preset()
                );
            }
        }
    }
}
