//! The remote engine's request builder (`request::remote`,
//! `request::prompt_builder`): the `/v1/completions` body per server flavor
//! is checked against the fields each server documents, carries the exact
//! prompt ids of `request::prepare` (infill with the real `▁<PRE>`/`▁<SUF>`/
//! `▁<MID>` ids), Meta's per-mode defaults and every sampler setting at its
//! "off" value; what a flavor cannot express is refused by name; the
//! tokenizer is built from a GGUF header fed in odd-sized chunks without the
//! tensor data. No server runs here (vLLM cannot on this machine); the
//! browser test `remote` drives a real llama.cpp server.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use codellama_webgpu::gguf;
use codellama_webgpu::request::prompt_builder::{GgufHeaderFeed, PromptBuilder, TokenizerSource};
use codellama_webgpu::request::remote::{completion_body, ServerFlavor, LLAMA_CPP_SAMPLERS};
use codellama_webgpu::request::{self, RequestError};
use codellama_webgpu::tokenizer::Tokenizer;
use codellama_webgpu::Error;
use serde_json::{json, Value};

/// The field names of vLLM's `CompletionRequest` (the OpenAI fields it
/// lists first, then its "completion-sampling-params" and
/// "completion-extra-params" blocks), as read in vllm-project/vllm,
/// `vllm/entrypoints/openai/completion/protocol.py` (2025/2026 main; older
/// releases had the same class in `vllm/entrypoints/openai/protocol.py`).
/// A field the body sends that is not here is a field vLLM does not document.
const VLLM_COMPLETION_FIELDS: &[&str] = &[
    // OpenAI's fields, in OpenAI's order.
    "model",
    "prompt",
    "echo",
    "frequency_penalty",
    "logit_bias",
    "logprobs",
    "max_tokens",
    "n",
    "presence_penalty",
    "seed",
    "stop",
    "stream",
    "stream_options",
    "suffix",
    "temperature",
    "top_p",
    "user",
    // completion-sampling-params
    "use_beam_search",
    "top_k",
    "min_p",
    "repetition_penalty",
    "length_penalty",
    "stop_token_ids",
    "include_stop_str_in_output",
    "ignore_eos",
    "min_tokens",
    "skip_special_tokens",
    "spaces_between_special_tokens",
    "truncate_prompt_tokens",
    "allowed_token_ids",
    "prompt_logprobs",
    "bad_words",
    // completion-extra-params (those a text-generation client could use)
    "add_special_tokens",
    "response_format",
    "priority",
    "request_id",
    "return_tokens_as_token_ids",
    "return_token_ids",
    "cache_salt",
    "kv_transfer_params",
    "vllm_xargs",
];

/// OpenAI's documented `POST /v1/completions` request fields
/// (platform.openai.com, API reference, Completions → Create completion).
const OPENAI_COMPLETION_FIELDS: &[&str] = &[
    "model",
    "prompt",
    "best_of",
    "echo",
    "frequency_penalty",
    "logit_bias",
    "logprobs",
    "max_tokens",
    "n",
    "presence_penalty",
    "seed",
    "stop",
    "stream",
    "stream_options",
    "suffix",
    "temperature",
    "top_p",
    "user",
];

/// The llama.cpp server fields the body may use (its README's `/completion`
/// options and the OpenAI aliases its `/v1/completions` reads; the vendored
/// sources' `tools/server/server-schema.cpp` parses each of them).
const LLAMA_CPP_FIELDS: &[&str] = &[
    "model",
    "prompt",
    "max_tokens",
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "repeat_penalty",
    "repeat_last_n",
    "samplers",
    "seed",
    "stop",
    "stream",
    "stream_options",
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn demo_path() -> PathBuf {
    root().join("models/codellama-demo.gguf")
}

fn tok_of(path: &Path) -> Tokenizer {
    Tokenizer::from_metadata(&gguf::read_header(path).unwrap().metadata).unwrap()
}

fn demo_tok() -> Tokenizer {
    tok_of(&demo_path())
}

const CONTEXT: usize = 4096;

fn req(json: Value) -> request::Request {
    request::parse(&json.to_string()).unwrap()
}

fn body(tok: &Tokenizer, json: Value, flavor: ServerFlavor) -> Result<Value, RequestError> {
    let p = request::prepare(tok, req(json), CONTEXT).unwrap();
    completion_body(&p, flavor, Some("codellama"))
}

fn complete() -> Value {
    json!({"kind": "complete", "prompt": "def fib(n):"})
}

fn infill(suffix_first: bool) -> Value {
    json!({"kind": "infill", "prefix": "def f(x):\n    ", "suffix": "\n    return y\n",
           "suffixFirst": suffix_first})
}

fn chat() -> Value {
    json!({"kind": "chat", "messages": [{"role": "user", "content": "Sort a list in Python."}]})
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

fn invalid(r: Result<Value, RequestError>) -> String {
    match r {
        Err(RequestError::Invalid(m)) => m,
        other => panic!("expected RequestError::Invalid, got {other:?}"),
    }
}

#[test]
fn every_field_sent_is_one_the_server_documents() {
    let tok = demo_tok();
    let documented = [
        (ServerFlavor::Vllm, VLLM_COMPLETION_FIELDS),
        (ServerFlavor::OpenAi, OPENAI_COMPLETION_FIELDS),
        (ServerFlavor::LlamaCpp, LLAMA_CPP_FIELDS),
    ];
    for (flavor, fields) in documented {
        for r in [
            complete(),
            infill(false),
            infill(true),
            chat(),
            json!({"kind": "complete", "prompt": "x", "stop": ["\n\n"], "seed": 7,
                   "maxTokens": 9, "topP": 0.5}),
        ] {
            let b = body(&tok, r, flavor).unwrap();
            let stray: Vec<_> = keys(&b)
                .into_iter()
                .filter(|k| !fields.contains(&k.as_str()))
                .collect();
            assert!(
                stray.is_empty(),
                "{flavor:?} body has undocumented {stray:?}: {b}"
            );
            for always in [
                "model",
                "prompt",
                "max_tokens",
                "temperature",
                "top_p",
                "seed",
                "stream",
                "stream_options",
            ] {
                assert!(b.get(always).is_some(), "{flavor:?} body lacks {always}");
            }
            assert_eq!(b["stream"], json!(true));
            assert_eq!(b["stream_options"], json!({"include_usage": true}));
            assert_eq!(b["model"], json!("codellama"));
        }
    }
}

#[test]
fn the_prompt_is_prepare_s_token_ids_for_every_mode_and_flavor() {
    let tok = demo_tok();
    for r in [complete(), infill(false), infill(true), chat()] {
        let ids = request::prepare(&tok, req(r.clone()), CONTEXT)
            .unwrap()
            .prompt;
        assert!(!ids.is_empty());
        for flavor in ServerFlavor::ALL {
            let b = body(&tok, r.clone(), flavor).unwrap();
            let sent: Vec<u32> = serde_json::from_value(b["prompt"].clone())
                .unwrap_or_else(|e| panic!("prompt is not an array of ids: {e}: {b}"));
            assert_eq!(sent, ids, "{flavor:?} {r}");
            // The BOS id leads, as Meta's formats have it.
            assert_eq!(sent[0], tok.special().bos);
        }
    }
}

#[test]
fn infill_sends_the_real_pre_suf_mid_ids_in_psm_and_spm_order() {
    for tok in [
        demo_tok(),
        tok_of(&root().join("tests/fixtures/models/tiny-gqa-q4_k_m.gguf")),
    ] {
        let t = tok.infill_tokens().unwrap();
        let at = |ids: &[u32], id: u32| {
            let found: Vec<_> = (0..ids.len()).filter(|&i| ids[i] == id).collect();
            assert_eq!(found.len(), 1, "id {id} once in {ids:?}");
            found[0]
        };
        let ids = |suffix_first| -> Vec<u32> {
            serde_json::from_value(
                body(&tok, infill(suffix_first), ServerFlavor::LlamaCpp).unwrap()["prompt"].clone(),
            )
            .unwrap()
        };
        let psm = ids(false);
        let (pre, suf, mid) = (at(&psm, t.prefix), at(&psm, t.suffix), at(&psm, t.middle));
        assert!(
            pre < suf && suf < mid,
            "PSM: ▁<PRE> prefix ▁<SUF> suffix ▁<MID>"
        );
        assert_eq!(mid, psm.len() - 1);
        let spm = ids(true);
        let (pre, suf, mid) = (at(&spm, t.prefix), at(&spm, t.suffix), at(&spm, t.middle));
        assert!(
            pre < suf && suf < mid,
            "SPM: ▁<PRE> ▁<SUF> suffix ▁<MID> prefix"
        );
        assert_eq!(suf, pre + 1);
        assert!(mid < spm.len() - 1, "SPM: the prefix follows ▁<MID>");
    }
}

#[test]
fn meta_s_defaults_per_mode_reach_every_flavor() {
    let tok = demo_tok();
    for (r, temperature) in [(complete(), 0.2), (infill(false), 0.0), (chat(), 0.6)] {
        for flavor in ServerFlavor::ALL {
            let b = body(&tok, r.clone(), flavor).unwrap();
            let t = b["temperature"].as_f64().unwrap();
            assert!((t - temperature).abs() < 1e-6, "{flavor:?} {r}: {t}");
            assert!((b["top_p"].as_f64().unwrap() - 0.9).abs() < 1e-6);
            assert_eq!(b["max_tokens"], json!(256));
            assert_eq!(b["seed"], json!(0));
            assert!(
                b.get("stop").is_none(),
                "no user stop strings, no stop field"
            );
        }
    }
}

#[test]
fn sampler_settings_are_sent_at_their_off_values() {
    let tok = demo_tok();
    let ll = body(&tok, complete(), ServerFlavor::LlamaCpp).unwrap();
    // llama.cpp's own defaults are top_k 40 and min_p 0.05: both must be sent.
    assert_eq!(ll["top_k"], json!(0));
    assert_eq!(ll["min_p"], json!(0.0));
    assert_eq!(ll["repeat_penalty"], json!(1.0));
    assert_eq!(ll["repeat_last_n"], json!(64));
    assert_eq!(ll["samplers"], json!(LLAMA_CPP_SAMPLERS));
    let vl = body(&tok, complete(), ServerFlavor::Vllm).unwrap();
    assert_eq!(vl["top_k"], json!(-1), "-1 is off in every vLLM release");
    assert_eq!(vl["min_p"], json!(0.0));
    assert_eq!(vl["repetition_penalty"], json!(1.0));
    assert_eq!(vl["skip_special_tokens"], json!(true));
    assert_eq!(vl["stop_token_ids"], json!([tok.special().eos]));
    let vl_infill = body(&tok, infill(false), ServerFlavor::Vllm).unwrap();
    let eot = tok.infill_tokens().unwrap().eot;
    assert_eq!(vl_infill["stop_token_ids"], json!([eot, tok.special().eos]));
    let oa = body(&tok, complete(), ServerFlavor::OpenAi).unwrap();
    for absent in ["top_k", "min_p", "repetition_penalty", "repeat_penalty"] {
        assert!(oa.get(absent).is_none(), "openai body has {absent}");
    }
}

#[test]
fn settings_map_to_each_server_s_names() {
    let tok = demo_tok();
    let r = json!({"kind": "complete", "prompt": "x", "temperature": 0.7, "topK": 12,
                   "topP": 0.8, "minP": 0.05, "repetitionPenalty": 1.1, "repetitionWindow": 32,
                   "seed": 123, "maxTokens": 17, "stop": ["\n\n", "def "]});
    let ll = body(&tok, r.clone(), ServerFlavor::LlamaCpp).unwrap();
    assert_eq!(ll["top_k"], json!(12));
    assert_eq!(ll["repeat_last_n"], json!(32));
    assert!((ll["repeat_penalty"].as_f64().unwrap() - 1.1).abs() < 1e-6);
    assert!((ll["min_p"].as_f64().unwrap() - 0.05).abs() < 1e-6);
    assert_eq!(ll["seed"], json!(123));
    assert_eq!(ll["max_tokens"], json!(17));
    assert_eq!(ll["stop"], json!(["\n\n", "def "]));
    let mut default_window = r.clone();
    default_window["repetitionWindow"] = json!(64);
    let vl = body(&tok, default_window, ServerFlavor::Vllm).unwrap();
    assert_eq!(vl["top_k"], json!(12));
    assert!((vl["repetition_penalty"].as_f64().unwrap() - 1.1).abs() < 1e-6);
    assert_eq!(vl["stop"], json!(["\n\n", "def "]));
    // A negative temperature is greedy here; vLLM refuses negative values.
    let greedy = json!({"kind": "complete", "prompt": "x", "temperature": -1.0});
    assert_eq!(
        body(&tok, greedy, ServerFlavor::Vllm).unwrap()["temperature"],
        json!(0.0)
    );
}

#[test]
fn what_a_flavor_cannot_express_is_refused_by_name() {
    let tok = demo_tok();
    let with = |extra: Value| {
        let mut r = complete();
        r.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        r
    };
    let m = invalid(body(
        &tok,
        with(json!({"repetitionWindow": 32})),
        ServerFlavor::Vllm,
    ));
    assert!(m.contains("repetitionWindow") && m.contains("vllm"), "{m}");
    for (extra, field) in [
        (json!({"topK": 5}), "topK"),
        (json!({"minP": 0.1}), "minP"),
        (json!({"repetitionPenalty": 1.2}), "repetitionPenalty"),
        (json!({"repetitionWindow": 8}), "repetitionWindow"),
    ] {
        let m = invalid(body(&tok, with(extra), ServerFlavor::OpenAi));
        assert!(m.contains(field) && m.contains("openai"), "{m}");
    }
    // llama.cpp's seed is a u32 whose all-ones value means "random".
    let m = invalid(body(
        &tok,
        with(json!({"seed": 4_294_967_295u64})),
        ServerFlavor::LlamaCpp,
    ));
    assert!(m.contains("seed"), "{m}");
    assert!(body(
        &tok,
        with(json!({"seed": 4_294_967_294u64})),
        ServerFlavor::LlamaCpp
    )
    .is_ok());
    for flavor in [ServerFlavor::Vllm, ServerFlavor::OpenAi] {
        let m = invalid(body(&tok, with(json!({"seed": u64::MAX})), flavor));
        assert!(m.contains("seed"), "{m}");
    }
    // The default and explicit "off" values pass everywhere.
    let off = with(json!({"topK": 0, "minP": 0.0, "repetitionPenalty": 1.0,
                          "repetitionWindow": 64}));
    for flavor in ServerFlavor::ALL {
        assert!(body(&tok, off.clone(), flavor).is_ok(), "{flavor:?}");
    }
}

#[test]
fn logprobs_are_refused_for_every_flavor() {
    let tok = demo_tok();
    for flavor in ServerFlavor::ALL {
        let r = json!({"kind": "complete", "prompt": "x", "logprobs": true});
        assert_eq!(
            invalid(body(&tok, r, flavor)),
            "logprobs are not supported by the remote engine"
        );
        // logprobs: false is no request for them.
        let r = json!({"kind": "complete", "prompt": "x", "logprobs": false});
        assert!(body(&tok, r, flavor).is_ok());
    }
}

#[test]
fn flavors_parse_from_their_javascript_names() {
    for f in ServerFlavor::ALL {
        assert_eq!(ServerFlavor::parse(f.as_str()), Ok(f));
        assert_eq!(serde_json::to_value(f).unwrap(), json!(f.as_str()));
    }
    assert_eq!(
        serde_json::from_value::<ServerFlavor>(json!("llama.cpp")).unwrap(),
        ServerFlavor::LlamaCpp
    );
    assert!(ServerFlavor::parse("tgi").is_err());
}

/// Feeds `bytes` in chunks of the sizes given (cycled) until the builder
/// is ready; returns it and the bytes fed.
fn feed_until_ready(bytes: &[u8], sizes: &[usize]) -> (PromptBuilder, usize) {
    let mut feed = GgufHeaderFeed::new();
    let mut at = 0;
    for &n in sizes.iter().cycle() {
        assert!(
            at < bytes.len(),
            "the whole file was fed and no header came"
        );
        let end = (at + n).min(bytes.len());
        let ready = feed.feed(&bytes[at..end]).unwrap();
        at = end;
        assert_eq!(feed.bytes_read(), at as u64);
        if let Some(b) = ready {
            return (b, at);
        }
    }
    unreachable!()
}

#[test]
fn the_gguf_header_alone_builds_the_tokenizer() {
    let path = demo_path();
    let bytes = std::fs::read(&path).unwrap();
    let header = gguf::read_header(&path).unwrap();
    let reference = demo_tok();
    // The demo model's tensor data is larger than its header: stopping at the
    // header saves most of the file.
    assert!(header.data_offset * 2 < bytes.len() as u64);
    for sizes in [&[1usize << 20][..], &[7, 4093, 1], &[65_537]] {
        let (b, fed) = feed_until_ready(&bytes, sizes);
        assert!(
            (fed as u64) < bytes.len() as u64,
            "needed {fed} of {} bytes",
            bytes.len()
        );
        let chunk = sizes.iter().max().unwrap();
        assert!(fed as u64 <= header.data_offset + *chunk as u64);
        assert_eq!(b.header_bytes(), Some(header.data_offset));
        let tok = b.tokenizer();
        assert_eq!(tok.vocab_size(), reference.vocab_size());
        let text = "def quicksort(xs):\n    return sorted(xs)  # ✓ ünïcode";
        assert_eq!(
            tok.encode(text, true).unwrap(),
            reference.encode(text, true).unwrap()
        );
        let info = b.info();
        assert_eq!(info.source, TokenizerSource::Gguf);
        assert_eq!(info.architecture, "llama");
        assert_eq!(info.vocab_size, reference.vocab_size());
        let md = &header.metadata;
        assert_eq!(
            info.context_length,
            md.get("llama.context_length").and_then(|v| v.as_u64())
        );
        assert!(info.context_length.is_some() && info.n_layers.is_some() && info.dim.is_some());
        assert!(info.n_heads.is_some() && info.n_kv_heads.is_some());
        let v = serde_json::to_value(info).unwrap();
        let expected: BTreeSet<String> = [
            "vocabSize",
            "contextLength",
            "name",
            "architecture",
            "nLayers",
            "dim",
            "nHeads",
            "nKvHeads",
            "source",
        ]
        .map(String::from)
        .into();
        assert_eq!(keys(&v), expected);
        assert_eq!(v["source"], json!("gguf"));
    }
}

#[test]
fn a_malformed_header_is_an_error() {
    let mut feed = GgufHeaderFeed::new();
    let e = feed.feed(b"NOTAGGUF and more bytes").err().unwrap();
    assert!(matches!(e, Error::Gguf(_)), "{e:?}");
    // A header that parses but whose vocabulary is unusable: a tokenizer error.
    let bytes = std::fs::read(root().join("tests/fixtures/hostile/bos-out-of-range.gguf")).unwrap();
    let e = GgufHeaderFeed::new().feed(&bytes).err().unwrap();
    assert!(matches!(e, Error::Tokenizer(_)), "{e:?}");
}

#[test]
fn a_tokenizer_json_builds_the_same_prompts() {
    let reference = demo_tok();
    let b = PromptBuilder::from_tokenizer_json(&reference.to_json().unwrap()).unwrap();
    assert_eq!(b.info().source, TokenizerSource::TokenizerJson);
    assert_eq!(b.info().context_length, None);
    assert_eq!(
        serde_json::to_value(b.info()).unwrap()["source"],
        json!("tokenizer.json")
    );
    // Every kind: infill needs the no-prefix encoding, which the demo
    // vocabulary (no `☺` piece) spells with byte pieces.
    for r in [complete(), chat(), infill(false), infill(true)] {
        let ids = request::prepare(&reference, req(r.clone()), CONTEXT)
            .unwrap()
            .prompt;
        assert_eq!(b.count_tokens(&r.to_string(), CONTEXT).unwrap(), ids.len());
        let sent = b
            .prepare(&r.to_string(), CONTEXT, ServerFlavor::Vllm, None)
            .unwrap()
            .body["prompt"]
            .clone();
        assert_eq!(sent, json!(ids));
    }
}

#[test]
fn prepare_gives_the_body_and_what_the_client_applies() {
    let bytes = std::fs::read(demo_path()).unwrap();
    let (b, _) = feed_until_ready(&bytes, &[1 << 16]);
    let r = json!({"kind": "infill", "prefix": "def f(x):\n    ", "suffix": "\n    return y\n",
                   "maxTokens": 40, "maxTimeMs": 1500, "singleLine": true, "minIndent": 4});
    let out = b
        .prepare(&r.to_string(), 2048, ServerFlavor::LlamaCpp, None)
        .unwrap();
    let v = serde_json::to_value(&out).unwrap();
    let expected: BTreeSet<String> = [
        "body",
        "promptTokens",
        "context",
        "maxTokens",
        "maxTimeMs",
        "singleLine",
        "minIndent",
        "stopIds",
    ]
    .map(String::from)
    .into();
    assert_eq!(keys(&v), expected);
    assert_eq!(v["maxTokens"], json!(40));
    assert_eq!(v["maxTimeMs"], json!(1500.0));
    assert_eq!(v["singleLine"], json!(true));
    assert_eq!(v["minIndent"], json!(4));
    let tok = b.tokenizer();
    let eot = tok.infill_tokens().unwrap().eot;
    assert_eq!(v["stopIds"], json!([eot, tok.special().eos]));
    assert_eq!(v["context"]["budget"], json!(2048 - 40));
    assert_eq!(v["context"]["trimmed"], json!(false));
    assert_eq!(
        v["promptTokens"],
        json!(v["body"]["prompt"].as_array().unwrap().len())
    );
    assert!(
        v["body"].get("model").is_none(),
        "no model given, none sent"
    );
    for client_side in ["max_time", "single_line", "n_indent", "t_max_predict_ms"] {
        assert!(v["body"].get(client_side).is_none());
    }
    // The same request counts the same, and a completion has no context.
    assert_eq!(
        b.count_tokens(&r.to_string(), 2048).unwrap(),
        out.prompt_tokens
    );
    let c = b
        .prepare(&complete().to_string(), 2048, ServerFlavor::Vllm, Some("m"))
        .unwrap();
    let v = serde_json::to_value(&c).unwrap();
    assert_eq!(v["context"], Value::Null);
    assert_eq!(v["maxTimeMs"], Value::Null);
    assert_eq!(v["minIndent"], Value::Null);
    // Request errors are the local engine's.
    let e = b
        .prepare(
            r#"{"kind": "infill", "prefix": "x"}"#,
            2048,
            ServerFlavor::Vllm,
            None,
        )
        .err()
        .unwrap();
    assert!(
        matches!(e, Error::Request(RequestError::Invalid(_))),
        "{e:?}"
    );
    let e = b
        .prepare(
            r#"{"kind": "complete", "prompt": "x", "bogus": 1}"#,
            2048,
            ServerFlavor::Vllm,
            None,
        )
        .err()
        .unwrap();
    assert!(
        matches!(e, Error::Request(RequestError::Invalid(_))),
        "{e:?}"
    );
}
