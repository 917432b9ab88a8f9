//! Prompt-lookup speculative decoding on the CPU reference: the tokens are
//! those of plain decoding, token for token, greedy and sampled (same seed),
//! on every fixture model and on the demo model, with prompts that repeat
//! (drafts accepted) and prompts that do not; every stop rule cuts a
//! verified batch where plain decoding stops; the cache afterwards holds what
//! plain decoding leaves; [`Backend::verify`]'s default equals sequential
//! steps for drafts fully right, half right and wrong at the first token.

#[path = "common/fixture_models.rs"]
mod fixture_models;
#[path = "common/spec_samplers.rs"]
mod spec_samplers;

use spec_samplers::samplers;
use std::path::{Path, PathBuf};

use codellama_webgpu::cpu::{CpuDecoder, CpuWeights};
use codellama_webgpu::generate::{
    Backend, GenerateEvent, GenerateOptions, GenerateStats, Session, StopReason,
};
use codellama_webgpu::prompt::{self, InfillMode, PromptKind};
use codellama_webgpu::sampler::SamplerConfig;
use codellama_webgpu::speculative::SpeculativeConfig;
use codellama_webgpu::tokenizer::Tokenizer;

fn demo_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/codellama-demo.gguf")
}

/// An edit-like infill: the second method mirrors the first, so the text to
/// write largely stands in the prompt.
const EDIT_PREFIX: &str = "class Vector:\n    def __init__(self, x, y):\n        self.x = x\n        self.y = y\n\n    def add(self, other):\n        return Vector(self.x + other.x, self.y + other.y)\n\n    def sub(self, other):\n";
const EDIT_SUFFIX: &str =
    "\n\n    def mul(self, other):\n        return Vector(self.x * other.x, self.y * other.y)\n";

/// A prompt without repetition.
const PLAIN: &str = "import os\ndef main(";

/// Repetition inside a completion prompt.
const REPEATED: &str = "x = compute(a, b)\ny = compute(a, b)\nz = compute(a, b)\nw = compute(";

struct Run {
    tokens: Vec<u32>,
    text: String,
    stats: GenerateStats,
    /// What the session's cache holds afterwards.
    cached: Vec<u32>,
}

fn run_on(s: &mut Session<CpuDecoder>, tok: &Tokenizer, p: &[u32], o: &GenerateOptions) -> Run {
    let mut tokens = Vec::new();
    let mut text = String::new();
    let stats = pollster::block_on(s.generate_events(tok, p, o, &mut |ev| match ev {
        GenerateEvent::Token(t) => tokens.push(t),
        GenerateEvent::Text(t) => text.push_str(t),
        GenerateEvent::Prefilled { .. } => {}
    }))
    .unwrap();
    Run {
        tokens,
        text,
        stats,
        cached: s.tokens().to_vec(),
    }
}

fn run(w: &CpuWeights, ctx: usize, tok: &Tokenizer, p: &[u32], o: &GenerateOptions) -> Run {
    let mut s = Session::new(CpuDecoder::new(w, ctx));
    run_on(&mut s, tok, p, o)
}

fn spec(max_draft: usize, cost_aware: bool) -> Option<SpeculativeConfig> {
    Some(SpeculativeConfig {
        max_draft,
        cost_aware,
        ..Default::default()
    })
}

/// Speculative runs (each `max_draft` of `ks`, then the last one
/// cost-aware, whose draft lengths follow measured times) against the plain
/// one: same tokens, text, stop reason and cache; consistent counts. Returns
/// the stats of the last run with the grow-and-halve rule.
fn assert_exact(
    w: &CpuWeights,
    ctx: usize,
    tok: &Tokenizer,
    p: &[u32],
    o: &GenerateOptions,
    ks: &[usize],
    what: &str,
) -> GenerateStats {
    let plain = run(w, ctx, tok, p, o);
    assert_eq!(plain.stats.drafted_tokens, 0, "{what}");
    assert_eq!(
        plain.stats.forward_passes, plain.stats.generated_tokens,
        "{what}"
    );
    let mut last = None;
    let runs = ks.iter().map(|&k| (k, false));
    for (k, cost_aware) in runs.chain(ks.last().map(|&k| (k, true))) {
        let what = &format!("{what}{}", if cost_aware { ", cost-aware" } else { "" });
        let o = GenerateOptions {
            speculative: spec(k, cost_aware),
            ..o.clone()
        };
        let r = run(w, ctx, tok, p, &o);
        let st = &r.stats;
        assert_eq!(r.tokens, plain.tokens, "{what}, max_draft {k}: tokens");
        assert_eq!(r.text, plain.text, "{what}, max_draft {k}: text");
        assert_eq!(
            st.stop_reason, plain.stats.stop_reason,
            "{what}, max_draft {k}"
        );
        assert_eq!(st.generated_tokens, plain.stats.generated_tokens, "{what}");
        assert_eq!(r.cached, plain.cached, "{what}, max_draft {k}: cache");
        assert!(st.accepted_tokens <= st.drafted_tokens, "{what}: {st:?}");
        // Each verification yields its accepted tokens and one more, unless a
        // stop cut it short.
        assert!(
            st.generated_tokens <= st.forward_passes + st.accepted_tokens,
            "{what}: {st:?}"
        );
        if st.stop_reason == StopReason::MaxTokens {
            assert_eq!(
                st.generated_tokens,
                st.forward_passes + st.accepted_tokens,
                "{what}: {st:?}"
            );
        }
        if !cost_aware {
            last = Some(r.stats);
        }
    }
    last.unwrap()
}

fn opts(
    sampler: SamplerConfig,
    max_tokens: usize,
    tok: &Tokenizer,
    kind: PromptKind,
) -> GenerateOptions {
    GenerateOptions {
        sampler,
        max_tokens,
        stop_ids: prompt::stop_ids(tok, kind).unwrap(),
        continuation: true,
        ..Default::default()
    }
}

#[test]
fn speculative_equals_plain_decoding_on_every_fixture_model() {
    for path in fixture_models::models() {
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        let w = CpuWeights::load(&path).unwrap();
        let tok = Tokenizer::from_metadata(&w.header.metadata).unwrap();
        let mut accepted = 0;
        for text in [PLAIN, REPEATED] {
            let p = prompt::completion(&tok, text).unwrap();
            for (label, sampler) in samplers() {
                let o = opts(sampler, 32, &tok, PromptKind::Completion);
                let what = format!("{name} {label} {text:?}");
                let st = assert_exact(&w, 256, &tok, &p, &o, &[2, 8], &what);
                accepted += st.accepted_tokens;
            }
        }
        eprintln!("{name}: {accepted} drafted tokens accepted");
    }
}

#[test]
fn speculative_equals_plain_decoding_on_the_demo_model() {
    let w = CpuWeights::load(&demo_path()).unwrap();
    let tok = Tokenizer::from_metadata(&w.header.metadata).unwrap();
    let edit = prompt::infill(
        &tok,
        EDIT_PREFIX,
        EDIT_SUFFIX,
        InfillMode::PrefixSuffixMiddle,
    )
    .unwrap();
    let cases = [
        ("edit", edit, PromptKind::Infill),
        (
            "repeated",
            prompt::completion(&tok, REPEATED).unwrap(),
            PromptKind::Completion,
        ),
        (
            "plain",
            prompt::completion(&tok, PLAIN).unwrap(),
            PromptKind::Completion,
        ),
    ];
    for (case, p, kind) in &cases {
        for (label, sampler) in samplers() {
            let o = opts(sampler, 64, &tok, *kind);
            let what = format!("demo {case} {label}");
            let st = assert_exact(&w, 512, &tok, p, &o, &[1, 3, 15, 8], &what);
            eprintln!(
                "demo {case} {label}: {} tokens, {} forward passes ({:.2} per pass), {} drafted, {} accepted",
                st.generated_tokens,
                st.forward_passes,
                st.generated_tokens as f64 / st.forward_passes.max(1) as f64,
                st.drafted_tokens,
                st.accepted_tokens
            );
            if *case == "edit" && label == "greedy" {
                assert!(
                    st.accepted_tokens > 0,
                    "drafts accepted on the edit: {st:?}"
                );
                assert!(st.forward_passes < st.generated_tokens, "{st:?}");
            }
        }
    }
}

/// Stop strings, stop tokens, line rules, `max_tokens` and a full context
/// that fall inside a verified batch end it where plain decoding ends.
#[test]
fn stops_inside_a_verified_batch_end_it_where_plain_decoding_does() {
    let w = CpuWeights::load(&demo_path()).unwrap();
    let tok = Tokenizer::from_metadata(&w.header.metadata).unwrap();
    let edit = prompt::infill(
        &tok,
        EDIT_PREFIX,
        EDIT_SUFFIX,
        InfillMode::PrefixSuffixMiddle,
    )
    .unwrap();
    let base = opts(SamplerConfig::greedy(), 64, &tok, PromptKind::Infill);
    let full = run(&w, 512, &tok, &edit, &base);
    assert!(full.text.len() > 8, "{:?}", full.text);
    // A stop string from the middle of the plain text.
    let mid = full
        .text
        .char_indices()
        .map(|(i, _)| i)
        .nth(full.text.chars().count() / 2)
        .unwrap();
    let stop: String = full.text[mid..].chars().take(3).collect();
    let mut variants = vec![
        (
            "stop string",
            GenerateOptions {
                stop: vec![stop],
                ..base.clone()
            },
        ),
        (
            "single line",
            GenerateOptions {
                single_line: true,
                ..base.clone()
            },
        ),
        (
            "min indent",
            GenerateOptions {
                min_indent: Some(8),
                ..base.clone()
            },
        ),
    ];
    for n in [1, 2, 3, 5, 8, 13] {
        variants.push((
            "max tokens",
            GenerateOptions {
                max_tokens: n,
                ..base.clone()
            },
        ));
    }
    // A stop id: the plain run's tokens one by one.
    for &t in full.tokens.iter().take(6) {
        let mut stop_ids = base.stop_ids.clone();
        stop_ids.push(t);
        variants.push((
            "stop id",
            GenerateOptions {
                stop_ids,
                ..base.clone()
            },
        ));
    }
    for (what, o) in &variants {
        assert_exact(
            &w,
            512,
            &tok,
            &edit,
            o,
            &[3, 8],
            &format!("demo edit, {what}"),
        );
    }
    // The context fills up inside a batch.
    for spare in [1, 2, 3, 5, 8, 12] {
        let ctx = edit.len() + spare;
        let what = format!("context +{spare}");
        let st = assert_exact(&w, ctx, &tok, &edit, &base, &[3, 8], &what);
        if full.tokens.len() > spare {
            assert_eq!(st.stop_reason, StopReason::ContextFull, "context +{spare}");
        }
    }
}

/// The cache a speculative run leaves serves the next request as the plain
/// run's does (rejected positions were truncated).
#[test]
fn a_session_continues_after_speculation_as_after_plain_decoding() {
    let w = CpuWeights::load(&demo_path()).unwrap();
    let tok = Tokenizer::from_metadata(&w.header.metadata).unwrap();
    let first = prompt::completion(&tok, REPEATED).unwrap();
    let base = opts(SamplerConfig::greedy(), 24, &tok, PromptKind::Completion);
    let on = GenerateOptions {
        speculative: spec(8, false),
        ..base.clone()
    };
    let mut s = Session::new(CpuDecoder::new(&w, 512));
    let a = run_on(&mut s, &tok, &first, &on);
    assert!(a.stats.drafted_tokens > 0, "{:?}", a.stats);
    // The next prompt extends the first one and what was generated.
    let mut next = first.clone();
    next.extend_from_slice(&a.tokens);
    next.extend(tok.encode("\nv = compute(", false).unwrap());
    let b = run_on(&mut s, &tok, &next, &on);
    assert!(b.stats.prompt_tokens_computed < next.len(), "{:?}", b.stats);
    let fresh = run(&w, 512, &tok, &next, &base);
    assert_eq!(b.tokens, fresh.tokens);
    assert_eq!(b.text, fresh.text);
}

/// Log-probabilities are read per sampled position: such requests decode
/// plainly.
#[test]
fn logprobs_requests_decode_without_speculation() {
    let w = CpuWeights::load(&demo_path()).unwrap();
    let tok = Tokenizer::from_metadata(&w.header.metadata).unwrap();
    let p = prompt::completion(&tok, REPEATED).unwrap();
    let o = GenerateOptions {
        logprobs: Some(2),
        speculative: spec(8, false),
        ..opts(SamplerConfig::greedy(), 16, &tok, PromptKind::Completion)
    };
    let r = run(&w, 512, &tok, &p, &o);
    assert_eq!(r.stats.drafted_tokens, 0);
    assert_eq!(r.stats.forward_passes, r.stats.generated_tokens);
    assert_eq!(r.stats.logprobs.unwrap().len(), r.stats.generated_tokens);
}

/// The default [`Backend::verify`] returns what sequential steps sample, up
/// to and including the first sample that differs from the draft.
#[test]
fn default_verify_equals_sequential_steps() {
    let w = CpuWeights::load(&demo_path()).unwrap();
    let tok = Tokenizer::from_metadata(&w.header.metadata).unwrap();
    let p = prompt::completion(&tok, REPEATED).unwrap();
    for (label, cfg) in samplers() {
        // Sequential reference: the first sample after the prompt, then 9 steps.
        let mut d = CpuDecoder::new(&w, 256);
        pollster::block_on(d.feed(&p)).unwrap();
        let mut recent = p.clone();
        let first = pollster::block_on(Backend::sample(&mut d, &cfg, &recent, 0)).unwrap();
        recent.push(first);
        let mut seq = vec![first];
        for step in 1..10u32 {
            let last = *seq.last().unwrap();
            let t = pollster::block_on(d.step_and_sample(last, &cfg, &recent, step)).unwrap();
            recent.push(t);
            seq.push(t);
        }
        // seq[0] is pending; seq[1..] are the right drafts.
        let verify = |fed: &[u32]| {
            let mut d = CpuDecoder::new(&w, 256);
            pollster::block_on(d.feed(&p)).unwrap();
            let mut recent = p.clone();
            recent.push(seq[0]);
            let out = pollster::block_on(d.verify(fed, &cfg, &recent, 1)).unwrap();
            (out, d.len())
        };
        let wrong = |t: u32| (t + 1) % tok.vocab_size() as u32;
        // Fully right: every sample, one past the draft.
        let (out, len) = verify(&seq[..9]);
        assert_eq!(out, seq[1..10].to_vec(), "{label}: fully right");
        assert_eq!(
            len,
            p.len() + 9,
            "{label}: the cache holds every fed position"
        );
        // Half right: the right half, then the true token.
        let mut half = seq[..5].to_vec();
        half.extend(seq[5..9].iter().map(|&t| wrong(t)));
        let (out, len) = verify(&half);
        assert_eq!(out, seq[1..6].to_vec(), "{label}: half right");
        assert!(len >= p.len() + out.len(), "{label}");
        // Wrong at the first drafted token: one sample.
        let mut bad = vec![seq[0]];
        bad.extend(seq[1..9].iter().map(|&t| wrong(t)));
        let (out, _) = verify(&bad);
        assert_eq!(out, vec![seq[1]], "{label}: wrong at the first token");
        // Nothing drafted: one step.
        let (out, _) = verify(&seq[..1]);
        assert_eq!(out, vec![seq[1]], "{label}: no draft");
    }
}
