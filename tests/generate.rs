//! The generation loop on a fixture model: every stop reason, stop strings
//! spanning tokens, prefix reuse, seeded determinism and context overflow.

use std::path::{Path, PathBuf};

use codellama_webgpu::cpu::{CpuDecoder, CpuWeights};
use codellama_webgpu::generate::{GenerateOptions, GenerateStats, Session, StopReason};
use codellama_webgpu::prompt::{self, PromptKind};
use codellama_webgpu::sampler::SamplerConfig;
use codellama_webgpu::tokenizer::Tokenizer;
use codellama_webgpu::Error;

fn model() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/generated/tiny-gqa-q8_0.gguf");
    assert!(
        p.exists(),
        "{}: run scripts/make_fixtures.py first",
        p.display()
    );
    p
}

fn opts(sampler: SamplerConfig, max_tokens: usize) -> GenerateOptions {
    GenerateOptions {
        sampler,
        max_tokens,
        stop: vec![],
        stop_ids: vec![2],
        continuation: true,
        cancel: None,
        ..Default::default()
    }
}

fn run(
    s: &mut Session<CpuDecoder>,
    tok: &Tokenizer,
    prompt: &[u32],
    o: &GenerateOptions,
) -> (String, GenerateStats) {
    let mut text = String::new();
    let stats = s
        .generate(tok, prompt, o, &mut |t| text.push_str(t))
        .unwrap();
    (text, stats)
}

#[test]
fn stop_reasons_stop_strings_and_prefix_reuse() {
    let w = CpuWeights::load(&model()).unwrap();
    let tok = Tokenizer::from_metadata(&w.header.metadata).unwrap();
    let mut s = Session::new(CpuDecoder::new(&w, 512));
    let p = prompt::completion(&tok, "import os\ndef main(").unwrap();

    // max_tokens
    let (text, st) = run(&mut s, &tok, &p, &opts(SamplerConfig::greedy(), 16));
    assert_eq!(st.stop_reason, StopReason::MaxTokens);
    assert_eq!(st.generated_tokens, 16);
    assert_eq!(st.prompt_tokens_computed, p.len());
    assert!(text.chars().count() >= 4, "{text:?}");

    // The same prompt again: only its last token is recomputed, same text.
    let (again, st2) = run(&mut s, &tok, &p, &opts(SamplerConfig::greedy(), 16));
    assert_eq!(again, text);
    assert_eq!(st2.prompt_tokens_computed, 1);

    // A longer prompt sharing the prefix computes only the new tail.
    let longer = prompt::completion(&tok, "import os\ndef main(argv").unwrap();
    let shared = p.iter().zip(&longer).take_while(|(a, b)| a == b).count();
    let (_, st3) = run(&mut s, &tok, &longer, &opts(SamplerConfig::greedy(), 2));
    assert_eq!(st3.prompt_tokens_computed, longer.len() - shared);

    // A stop token: the first greedy token itself.
    let first = {
        let mut d = CpuDecoder::new(&w, 512);
        let mut l = Vec::new();
        for &t in &p {
            l = d.step(t).unwrap().to_vec();
        }
        (0..l.len())
            .max_by(|&a, &b| l[a].total_cmp(&l[b]).then(b.cmp(&a)))
            .unwrap() as u32
    };
    let mut o = opts(SamplerConfig::greedy(), 16);
    o.stop_ids = vec![first];
    let (t, st) = run(&mut s, &tok, &p, &o);
    assert_eq!(
        (t.as_str(), st.stop_reason, st.generated_tokens),
        ("", StopReason::StopToken, 1)
    );

    // A stop string from the middle of the greedy text: output is what came before it.
    let chars: Vec<char> = text.chars().collect();
    let stop: String = chars[chars.len() / 2..chars.len() / 2 + 2].iter().collect();
    let before = &text[..text.find(&stop).unwrap()];
    let mut o = opts(SamplerConfig::greedy(), 16);
    o.stop = vec![stop.clone()];
    let (t, st) = run(&mut s, &tok, &p, &o);
    assert_eq!(st.stop_reason, StopReason::StopString, "stop {stop:?}");
    assert_eq!(t, before);

    // Cancelled from the text callback after the first piece: generation
    // stops before the next token, with the text so far emitted.
    let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut o = opts(SamplerConfig::greedy(), 16);
    o.cancel = Some(flag.clone());
    let mut out = String::new();
    let st = s
        .generate(&tok, &p, &o, &mut |t| {
            out.push_str(t);
            flag.store(true, std::sync::atomic::Ordering::Relaxed);
        })
        .unwrap();
    assert_eq!(st.stop_reason, StopReason::Aborted);
    assert!(st.generated_tokens < 16, "{st:?}");
    assert!(
        !out.is_empty() && text.starts_with(&out),
        "{out:?} vs {text:?}"
    );
    // Raised before the start: no token at all.
    let (t, st) = run(&mut s, &tok, &p, &o);
    assert_eq!(
        (t.as_str(), st.generated_tokens, st.stop_reason),
        ("", 0, StopReason::Aborted)
    );
    assert_eq!(
        serde_json::to_string(&st.stop_reason).unwrap(),
        "\"aborted\""
    );
    // The cache stays consistent: the same prompt still reproduces the text.
    let (again, _) = run(&mut s, &tok, &p, &opts(SamplerConfig::greedy(), 16));
    assert_eq!(again, text);

    // The context limit.
    let mut small = Session::new(CpuDecoder::new(&w, p.len() + 3));
    let (_, st) = run(&mut small, &tok, &p, &opts(SamplerConfig::greedy(), 100));
    assert_eq!(st.stop_reason, StopReason::ContextFull);
    assert_eq!(st.generated_tokens, 4);

    // A prompt longer than the context is a typed error.
    let mut tiny = Session::new(CpuDecoder::new(&w, 3));
    let err = tiny.generate(&tok, &p, &opts(SamplerConfig::greedy(), 4), &mut |_| {});
    assert!(matches!(err, Err(Error::ContextOverflow(c)) if c.prompt == p.len() && c.context == 3));
}

#[test]
fn seeded_sampling_is_reproducible_and_infill_stops_at_eot() {
    let w = CpuWeights::load(&model()).unwrap();
    let tok = Tokenizer::from_metadata(&w.header.metadata).unwrap();
    let mut s = Session::new(CpuDecoder::new(&w, 512));
    let p = prompt::completion(&tok, "class Stack:").unwrap();
    let sampled = |s: &mut Session<CpuDecoder>, seed| {
        let cfg = SamplerConfig {
            temperature: 0.9,
            top_k: 40,
            top_p: 0.95,
            min_p: 0.02,
            repetition_penalty: 1.1,
            repetition_window: 32,
            seed,
        };
        run(s, &tok, &p, &opts(cfg, 24)).0
    };
    let a = sampled(&mut s, 11);
    assert_eq!(a, sampled(&mut s, 11));
    assert!((12..16).any(|seed| sampled(&mut s, seed) != a));

    let o = GenerateOptions {
        stop_ids: prompt::stop_ids(&tok, PromptKind::Infill).unwrap(),
        ..opts(SamplerConfig::greedy(), 8)
    };
    assert_eq!(o.stop_ids, vec![32010, 2]);
    let ip = prompt::infill(
        &tok,
        "def f(x):\n    ",
        "\n    return y\n",
        Default::default(),
    )
    .unwrap();
    let (_, st) = run(&mut s, &tok, &ip, &o);
    assert!(st.generated_tokens <= 8);
}
