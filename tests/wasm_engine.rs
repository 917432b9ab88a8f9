//! `WasmEngine` driven exactly as the TypeScript package drives it: through
//! its `#[wasm_bindgen]` methods, with JSON strings, `Uint8Array` chunks,
//! promises and a JS `onText` callback, in headless Chromium (WebGPU on
//! SwiftShader):
//!
//! `CHROMEDRIVER=/usr/bin/chromedriver cargo test -p codellama-webgpu
//! --no-default-features --target wasm32-unknown-unknown --test wasm_engine -- --nocapture`
//!
//! Natively this file compiles to nothing (the engine is wasm32 only).
#![cfg(target_arch = "wasm32")]

use std::cell::RefCell;
use std::rc::Rc;

use codellama_webgpu::cpu::{CpuDecoder, CpuWeights};
use codellama_webgpu::generate::{GenerateOptions, Session};
use codellama_webgpu::gguf::{self, GgufWriter, Value};
use codellama_webgpu::model::KvFormat;
use codellama_webgpu::prompt::{self, PromptKind};
use codellama_webgpu::sampler::SamplerConfig;
use codellama_webgpu::tokenizer::Tokenizer;
use codellama_webgpu::wasm::WasmEngine;
use js_sys::{Function, Promise};
use serde_json::{json, Value as Json};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::convert::TryFromJsValue;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::{console_log, wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

/// Q4_0 matrices (Q6_K output), dim 256, 2 layers, 4 / 2 heads, a 512-piece
/// vocabulary (no infill pieces), trained context 512.
const MODEL: &[u8] = include_bytes!("fixtures/models/tiny-cov-v512-q4_0.gguf");
/// Q4_K_M, the full 32016-piece Code Llama vocabulary (infill pieces).
const MODEL_FULL_VOCAB: &[u8] = include_bytes!("fixtures/models/tiny-gqa-q4_k_m.gguf");

async fn engine() -> WasmEngine {
    let v = JsFuture::from(WasmEngine::create())
        .await
        .unwrap_or_else(|e| panic!("create: {}", describe(&e)));
    WasmEngine::try_from_js_value(v).expect("create resolves to a WasmEngine")
}

/// "Name: message" of a thrown value.
fn describe(v: &JsValue) -> String {
    match v.dyn_ref::<js_sys::Error>() {
        Some(e) => format!("{}: {}", String::from(e.name()), String::from(e.message())),
        None => format!("{v:?}"),
    }
}

fn error_name(v: &JsValue) -> String {
    v.dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.name()))
        .unwrap_or_else(|| format!("not an Error: {v:?}"))
}

/// Awaits `p`, expecting a rejection named `name`; returns the message.
async fn rejects(p: Promise, name: &str, what: &str) -> String {
    match JsFuture::from(p).await {
        Ok(v) => panic!("{what}: resolved to {v:?}, want {name}"),
        Err(e) => {
            assert_eq!(error_name(&e), name, "{what}: {}", describe(&e));
            console_log!("{what}: {}", describe(&e));
            String::from(e.unchecked_ref::<js_sys::Error>().message())
        }
    }
}

/// Expects a synchronous throw named `name`.
fn throws<T: std::fmt::Debug>(r: Result<T, JsValue>, name: &str, what: &str) {
    match r {
        Ok(v) => panic!("{what}: returned {v:?}, want {name}"),
        Err(e) => {
            assert_eq!(error_name(&e), name, "{what}: {}", describe(&e));
            console_log!("{what}: {}", describe(&e));
        }
    }
}

fn parse(v: &JsValue, what: &str) -> Json {
    let s = v
        .as_string()
        .unwrap_or_else(|| panic!("{what}: {v:?} is not a string"));
    serde_json::from_str(&s).unwrap_or_else(|e| panic!("{what}: {e}: {s}"))
}

/// beginLoad, `file` pushed in odd-sized chunks (each progress checked),
/// finishLoad: the ModelInfo JSON, or the first rejection.
async fn load(e: &WasmEngine, file: &[u8], opts: Json) -> Result<Json, JsValue> {
    e.begin_load(&opts.to_string())?;
    let total = opts.get("totalBytes").and_then(Json::as_u64);
    let sizes = [65_537usize, 1_000, 7, 262_147];
    let (mut at, mut i, mut last_done) = (0usize, 0usize, 0u64);
    while at < file.len() {
        let end = (at + sizes[i % sizes.len()]).min(file.len());
        let p = parse(
            &JsFuture::from(e.push(file[at..end].to_vec())).await?,
            "progress",
        );
        let done = p["bytesDone"].as_u64().expect("bytesDone");
        assert_eq!(done, end as u64, "bytesDone after {end} bytes: {p}");
        assert_eq!(p["bytesTotal"].as_u64(), total, "{p}");
        let tensors = p["tensorsDone"].as_u64().expect("tensorsDone");
        assert!(tensors >= last_done, "{p}");
        last_done = tensors;
        if let Some(t) = p["tensorsTotal"].as_u64() {
            assert!(tensors <= t, "{p}");
        }
        at = end;
        i += 1;
    }
    let info = parse(&JsFuture::from(e.finish_load()).await?, "info");
    Ok(info)
}

/// The pieces `generate` streams, and its stats.
async fn generate(e: &WasmEngine, request: Json) -> Result<(Vec<String>, Json), JsValue> {
    let pieces = Rc::new(RefCell::new(Vec::new()));
    let sink = Rc::clone(&pieces);
    let on_text = Closure::<dyn FnMut(String)>::new(move |s: String| sink.borrow_mut().push(s));
    let f: &Function = on_text.as_ref().unchecked_ref();
    let stats = JsFuture::from(e.generate(&request.to_string(), f.clone())).await?;
    drop(on_text);
    let pieces = pieces.borrow().clone();
    Ok((pieces, parse(&stats, "stats")))
}

/// The text the CPU reference generates for a request (greedy; f16-rounded
/// KV cache like the GPU's).
fn cpu_text(file: &[u8], prompt_text: &str, max_tokens: usize) -> (String, usize) {
    let f = gguf::read_bytes(file).unwrap();
    let w = CpuWeights::from_file(&f).unwrap();
    let tok = Tokenizer::from_metadata(&w.header.metadata).unwrap();
    let p = prompt::completion(&tok, prompt_text).unwrap();
    let mut s = Session::new(CpuDecoder::new(&w, 512).with_kv_rounding(Some(KvFormat::F16)));
    let opts = GenerateOptions {
        sampler: SamplerConfig::greedy(),
        max_tokens,
        stop: vec![],
        stop_ids: prompt::stop_ids(&tok, PromptKind::Completion).unwrap(),
        continuation: true,
        cancel: None,
        ..Default::default()
    };
    let mut text = String::new();
    let st = pollster_free_block_on(s.generate_async(&tok, &p, &opts, &mut |t| text.push_str(t)));
    (text, st.unwrap().generated_tokens)
}

/// Runs a future that never waits on anything external (the CPU backend's
/// futures are ready at once).
fn pollster_free_block_on<F: std::future::Future>(f: F) -> F::Output {
    use std::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};
    fn noop(_: *const ()) {}
    fn clone(p: *const ()) -> RawWaker {
        RawWaker::new(p, &VTABLE)
    }
    static VTABLE: RawWakerVTable = RawWakerVTable::new(clone, noop, noop, noop);
    // SAFETY: the vtable's functions do nothing with the data pointer.
    let waker = unsafe { Waker::from_raw(RawWaker::new(std::ptr::null(), &VTABLE)) };
    let mut cx = Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

#[wasm_bindgen_test]
async fn loads_reports_and_frees() {
    let e = engine().await;
    let adapter: Json = serde_json::from_str(&e.adapter_json()).unwrap();
    console_log!("adapter {adapter}");
    assert_eq!(adapter["backend"], "webgpu", "{adapter}");
    for k in ["name", "deviceType"] {
        assert!(adapter[k].is_string(), "{k}: {adapter}");
    }
    for k in ["f16", "subgroups"] {
        assert!(adapter[k].is_boolean(), "{k}: {adapter}");
    }
    for k in ["maxBufferSize", "maxStorageBindingSize"] {
        assert!(adapter[k].as_u64().unwrap_or(0) > 0, "{k}: {adapter}");
    }
    throws(e.info_json(), "NotLoadedError", "infoJson before load");

    let mem_before = e.wasm_memory_bytes();
    let info = load(
        &e,
        MODEL,
        json!({"totalBytes": MODEL.len(), "contextLength": 1000, "kvCache": "q8"}),
    )
    .await
    .unwrap_or_else(|v| panic!("load: {}", describe(&v)));
    console_log!("info {info}");
    let expect = [
        ("architecture", json!("llama")),
        ("vocabSize", json!(512)),
        ("dim", json!(256)),
        ("nLayers", json!(2)),
        ("nHeads", json!(4)),
        ("nKvHeads", json!(2)),
        ("ffnDim", json!(256)),
        ("headDim", json!(64)),
        ("trainedContext", json!(512)),
        ("contextLength", json!(1000)),
        ("kvCache", json!("q8")),
        ("fileBytes", json!(MODEL.len())),
        ("tensorTypes", json!({"F32": 5, "Q4_0": 15, "Q6_K": 1})),
        ("adapter", adapter.clone()),
    ];
    for (k, v) in expect {
        assert_eq!(info[k], v, "{k}: {info}");
    }
    assert!(info["name"].is_string(), "{info}");
    assert!(info["ropeTheta"].as_f64().unwrap() > 0.0, "{info}");
    let gpu_bytes = info["gpuBytes"].as_u64().unwrap();
    assert!(gpu_bytes > 400_000, "{info}");
    // Q8 cache: per layer, keys and values, 2 KV heads x 64 bytes + a scale each.
    let per_token = info["kvBytesPerToken"].as_u64().unwrap();
    assert!(
        (2 * 2 * 2 * 64..=2 * 2 * 2 * (64 + 8)).contains(&per_token),
        "{info}"
    );
    assert!(info["kvBytes"].as_u64().unwrap() >= per_token, "{info}");
    let notes = info["notes"].as_array().unwrap();
    assert!(
        notes.iter().any(|n| n.as_str().unwrap().contains("1000")),
        "a note on the context past the trained one: {info}"
    );
    assert_eq!(
        parse(&JsValue::from_str(&e.info_json().unwrap()), "infoJson")["gpuBytes"],
        gpu_bytes
    );
    let (buffers, held) = e.gpu_buffers();
    console_log!(
        "{buffers} GPU buffers, {held} bytes; wasm memory {} -> {} bytes",
        mem_before,
        e.wasm_memory_bytes()
    );
    assert!(held >= gpu_bytes, "{held} < {gpu_bytes}");

    // The q8 cache generates.
    let (pieces, stats) = generate(
        &e,
        json!({"kind": "complete", "prompt": "def f(x):", "maxTokens": 5, "temperature": 0}),
    )
    .await
    .unwrap_or_else(|v| panic!("generate: {}", describe(&v)));
    console_log!("q8 cache: {pieces:?} {stats}");
    let n = stats["generatedTokens"].as_u64().unwrap();
    assert!((1..=5).contains(&n), "{stats}");

    e.unload();
    assert_eq!(e.gpu_buffers(), (0, 0), "unload destroys every buffer");
    throws(e.info_json(), "NotLoadedError", "infoJson after unload");
    throws(
        e.tokenize("x", true),
        "NotLoadedError",
        "tokenize after unload",
    );
    rejects(
        e.generate(
            &json!({"kind": "complete", "prompt": "x"}).to_string(),
            Function::new_no_args(""),
        ),
        "NotLoadedError",
        "generate after unload",
    )
    .await;

    // The engine loads again after an unload.
    let info = load(&e, MODEL, json!({})).await.unwrap();
    assert_eq!(info["contextLength"], 512, "default: the trained context");
    assert_eq!(info["kvCache"], "f16");
    assert_eq!(info["notes"], json!([]));
    e.unload();
    assert_eq!(e.gpu_buffers(), (0, 0));
}

#[wasm_bindgen_test]
async fn tokenizes_generates_streams_reuses_and_cancels() {
    let e = engine().await;
    load(&e, MODEL, json!({"totalBytes": MODEL.len()}))
        .await
        .unwrap_or_else(|v| panic!("load: {}", describe(&v)));

    // The tokenizer is the native one's. (This 512-piece vocabulary has no
    // "▁" piece, so spaces go through byte pieces and come back as "▁": the
    // exact round trip is checked on the full vocabulary below.)
    let text = "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n";
    let native = {
        let f = gguf::read_bytes(MODEL).unwrap();
        Tokenizer::from_metadata(&f.header.metadata).unwrap()
    };
    let ids = e.tokenize(text, true).unwrap();
    assert_eq!(ids, native.encode(text, true).unwrap());
    assert_eq!(ids[0], 1, "BOS");
    assert_eq!(e.tokenize(text, false).unwrap(), ids[1..].to_vec());
    assert_eq!(
        e.detokenize(ids.clone()).unwrap(),
        native.decode(&ids).unwrap()
    );
    console_log!("{} tokens, as natively", ids.len());
    throws(
        e.detokenize(vec![1, 100_000]),
        "InvalidRequestError",
        "detokenize out of range",
    );

    // Greedy generation: the streamed pieces are the reference's text.
    let prompt = "import numpy as np\n\ndef";
    let (pieces, stats) = generate(
        &e,
        json!({"kind": "complete", "prompt": prompt, "maxTokens": 24, "temperature": 0}),
    )
    .await
    .unwrap_or_else(|v| panic!("generate: {}", describe(&v)));
    let streamed: String = pieces.concat();
    console_log!("greedy: {} pieces {pieces:?}; stats {stats}", pieces.len());
    let (want, want_tokens) = cpu_text(MODEL, prompt, 24);
    assert_eq!(streamed, want, "streamed text vs the CPU reference's");
    assert_eq!(stats["generatedTokens"], want_tokens, "{stats}");
    let n_prompt = e.tokenize(prompt, true).unwrap().len();
    assert_eq!(stats["promptTokens"], n_prompt, "{stats}");
    assert_eq!(stats["promptTokensComputed"], n_prompt, "{stats}");
    for k in [
        "timeToFirstTokenMs",
        "prefillMs",
        "decodeMs",
        "tokensPerSecond",
    ] {
        assert!(stats[k].as_f64().is_some_and(|v| v >= 0.0), "{k}: {stats}");
    }
    let ttft = stats["timeToFirstTokenMs"].as_f64().unwrap();
    assert!(ttft >= stats["prefillMs"].as_f64().unwrap(), "{stats}");
    assert!(pieces.len() > 1, "the text comes in pieces");

    // Prefix reuse: a longer prompt sharing the first one computes its tail.
    let longer = format!("{prompt} main():");
    let (_, st2) = generate(
        &e,
        json!({"kind": "complete", "prompt": longer, "maxTokens": 2, "temperature": 0}),
    )
    .await
    .unwrap();
    console_log!("prefix reuse: {st2}");
    let (total, computed) = (
        st2["promptTokens"].as_u64().unwrap(),
        st2["promptTokensComputed"].as_u64().unwrap(),
    );
    assert!(computed < total && computed >= 1, "{st2}");
    assert!(total - computed >= n_prompt as u64 - 2, "{st2}");
    e.reset_cache().unwrap();
    let (_, st3) = generate(
        &e,
        json!({"kind": "complete", "prompt": longer, "maxTokens": 1}),
    )
    .await
    .unwrap();
    assert_eq!(
        st3["promptTokensComputed"], st3["promptTokens"],
        "after resetCache: {st3}"
    );

    // Stop strings are not emitted.
    let cut = want
        .char_indices()
        .nth(want.chars().count() / 2)
        .map(|(i, _)| i);
    if let Some(cut) = cut.filter(|&c| c > 0 && want[c..].chars().count() >= 2) {
        let stop: String = want[cut..].chars().take(2).collect();
        let (pieces, st) = generate(
            &e,
            json!({"kind": "complete", "prompt": prompt, "maxTokens": 24, "temperature": 0,
                   "stop": [stop]}),
        )
        .await
        .unwrap();
        let first = want.find(&stop).unwrap();
        assert_eq!(pieces.concat(), want[..first], "stop {stop:?}: {st}");
        assert_eq!(st["stopReason"], "stop_string", "{st}");
    }

    // Cancel from the callback: generation stops before the next token.
    let engine = Rc::new(e);
    let seen = Rc::new(RefCell::new(0usize));
    let on_text = {
        let (engine, seen) = (Rc::clone(&engine), Rc::clone(&seen));
        Closure::<dyn FnMut(String)>::new(move |_s: String| {
            *seen.borrow_mut() += 1;
            if *seen.borrow() == 2 {
                engine.cancel();
            }
        })
    };
    let req = json!({"kind": "complete", "prompt": prompt, "maxTokens": 200, "temperature": 0.8,
                     "seed": 7});
    let stats = JsFuture::from(engine.generate(
        &req.to_string(),
        on_text.as_ref().unchecked_ref::<Function>().clone(),
    ))
    .await
    .unwrap_or_else(|v| panic!("cancelled generate: {}", describe(&v)));
    let stats = parse(&stats, "stats");
    console_log!("cancelled after {} pieces: {stats}", seen.borrow());
    assert_eq!(stats["stopReason"], "aborted", "{stats}");
    assert!(stats["generatedTokens"].as_u64().unwrap() < 200, "{stats}");
    // A new request runs normally after a cancelled one.
    let (_, st) = generate(
        &engine,
        json!({"kind": "complete", "prompt": prompt, "maxTokens": 3, "temperature": 0}),
    )
    .await
    .unwrap();
    assert_eq!(st["stopReason"], "max_tokens", "{st}");

    // An exception from onText rejects the generation with that exception.
    let thrower = Function::new_with_args("s", "throw new TypeError('from onText')");
    let err = JsFuture::from(engine.generate(
        &json!({"kind": "complete", "prompt": prompt, "maxTokens": 8}).to_string(),
        thrower,
    ))
    .await
    .expect_err("onText throws");
    assert_eq!(error_name(&err), "TypeError", "{}", describe(&err));

    // Two generations at once: the second is refused, the first completes.
    let slow = engine.generate(
        &json!({"kind": "complete", "prompt": prompt, "maxTokens": 4}).to_string(),
        Function::new_no_args(""),
    );
    rejects(
        engine.generate(
            &json!({"kind": "complete", "prompt": prompt}).to_string(),
            Function::new_no_args(""),
        ),
        "EngineBusyError",
        "generate during generate",
    )
    .await;
    throws(
        engine.begin_load("{}"),
        "EngineBusyError",
        "beginLoad during generate",
    );
    JsFuture::from(slow).await.unwrap();

    // The context fills up: stopReason "context_full".
    let mut long_prompt = String::new();
    while engine.tokenize(&long_prompt, true).unwrap().len() < 500 {
        long_prompt.push_str("for ");
    }
    let n = engine.tokenize(&long_prompt, true).unwrap().len();
    assert!(n < 512, "{n}");
    let (_, st) = generate(
        &engine,
        json!({"kind": "complete", "prompt": long_prompt, "maxTokens": 1000, "temperature": 0}),
    )
    .await
    .unwrap();
    console_log!("{n}-token prompt, 512 context: {st}");
    if st["stopReason"] == "stop_token" {
        console_log!("(the model chose EOS before the context filled up)");
    } else {
        assert_eq!(st["stopReason"], "context_full", "{st}");
        assert_eq!(
            st["generatedTokens"].as_u64().unwrap() as usize,
            512 - n + 1,
            "{st}"
        );
    }
}

#[wasm_bindgen_test]
async fn errors_have_their_names() {
    let e = engine().await;

    // Not loaded.
    rejects(
        e.generate(
            &json!({"kind": "complete", "prompt": "x"}).to_string(),
            Function::new_no_args(""),
        ),
        "NotLoadedError",
        "generate before load",
    )
    .await;
    throws(
        e.detokenize(vec![1]),
        "NotLoadedError",
        "detokenize before load",
    );
    throws(e.reset_cache(), "NotLoadedError", "resetCache before load");
    rejects(
        e.push(vec![0; 4]),
        "InvalidRequestError",
        "push before beginLoad",
    )
    .await;
    rejects(
        e.finish_load(),
        "InvalidRequestError",
        "finishLoad before beginLoad",
    )
    .await;

    // Bad load options.
    throws(
        e.begin_load("{"),
        "InvalidRequestError",
        "beginLoad: bad JSON",
    );
    throws(
        e.begin_load(r#"{"kvCache": "q4"}"#),
        "InvalidRequestError",
        "beginLoad: kvCache q4",
    );
    throws(
        e.begin_load(r#"{"contextLength": 0}"#),
        "InvalidRequestError",
        "beginLoad: contextLength 0",
    );
    throws(
        e.begin_load(r#"{"contextLenght": 10}"#),
        "InvalidRequestError",
        "beginLoad: unknown option",
    );

    // Garbage bytes.
    e.begin_load("{}").unwrap();
    rejects(
        e.push(b"this is not a GGUF file at all".to_vec()),
        "InvalidModelError",
        "garbage bytes",
    )
    .await;
    assert_eq!(e.gpu_buffers(), (0, 0));

    // A truncated file: every push succeeds, finishLoad says it is cut short.
    e.begin_load("{}").unwrap();
    let half = MODEL.len() / 2;
    JsFuture::from(e.push(MODEL[..half].to_vec()))
        .await
        .unwrap();
    throws(
        e.begin_load("{}"),
        "EngineBusyError",
        "beginLoad during a load",
    );
    let msg = rejects(e.finish_load(), "InvalidModelError", "truncated file").await;
    assert!(msg.contains("ends early"), "{msg}");
    assert_eq!(e.gpu_buffers(), (0, 0), "a failed load frees its buffers");

    // A declared size the tensors do not fit in.
    let r = load(&e, MODEL, json!({"totalBytes": half})).await;
    throws(r, "InvalidModelError", "totalBytes smaller than the file");

    // Another architecture (built with the GGUF writer).
    let mut w = GgufWriter::new();
    w.kv("general.architecture", Value::String("gptneox".into()))
        .kv("gptneox.context_length", Value::U32(2048))
        .tensor_f32("token_embd.weight", &[4, 2], &[0.0; 8]);
    let r = load(&e, &w.to_bytes(), json!({})).await;
    throws(r, "UnsupportedModelError", "gptneox architecture");

    // A llama file missing a tensor.
    let f = gguf::read_bytes(MODEL).unwrap();
    let mut w = GgufWriter::new();
    for (k, v) in f.header.metadata.iter() {
        w.kv(k, v.clone());
    }
    for t in f
        .header
        .tensors
        .iter()
        .filter(|t| t.name != "blk.1.ffn_up.weight")
    {
        let bytes = f.tensor_bytes(&t.name).unwrap().to_vec();
        w.tensor(&t.name, &t.dims, t.ty, bytes);
    }
    let r = load(&e, &w.to_bytes(), json!({})).await;
    throws(r, "UnsupportedModelError", "missing tensor");
    assert_eq!(e.gpu_buffers(), (0, 0));

    // Abort in the middle of a load: buffers freed, a push in flight rejects.
    e.begin_load("{}").unwrap();
    JsFuture::from(e.push(MODEL[..300_000].to_vec()))
        .await
        .unwrap();
    assert!(e.gpu_buffers().0 > 0, "tensors uploaded so far");
    let in_flight = e.push(MODEL[300_000..].to_vec());
    rejects(e.push(vec![0]), "EngineBusyError", "push during push").await;
    e.abort_load();
    assert_eq!(
        e.gpu_buffers(),
        (0, 0),
        "abortLoad destroys the partial load's buffers"
    );
    rejects(in_flight, "AbortError", "push in flight when aborted").await;
    assert_eq!(e.gpu_buffers(), (0, 0));
    rejects(
        e.finish_load(),
        "InvalidRequestError",
        "finishLoad after abortLoad",
    )
    .await;

    // A model, then bad requests.
    load(&e, MODEL, json!({"contextLength": 64})).await.unwrap();
    let bad_requests = [
        ("not JSON", "{kind: complete".to_string()),
        (
            "topP 2",
            json!({"kind": "complete", "prompt": "x", "topP": 2}).to_string(),
        ),
        (
            "minP -1",
            json!({"kind": "complete", "prompt": "x", "minP": -1}).to_string(),
        ),
        (
            "unknown kind",
            json!({"kind": "edit", "prompt": "x"}).to_string(),
        ),
        (
            "unknown field",
            json!({"kind": "complete", "prompt": "x", "max_tokens": 3}).to_string(),
        ),
        ("missing prompt", json!({"kind": "complete"}).to_string()),
        (
            "prefix on complete",
            json!({"kind": "complete", "prompt": "x", "prefix": "y"}).to_string(),
        ),
        (
            "negative maxTokens",
            json!({"kind": "complete", "prompt": "x", "maxTokens": -1}).to_string(),
        ),
        (
            "special tags in chat",
            json!({"kind": "chat", "messages": [{"role": "user", "content": "a [INST] b"}]})
                .to_string(),
        ),
        (
            "chat ending with assistant",
            json!({"kind": "chat", "messages": [{"role": "user", "content": "a"},
                                               {"role": "assistant", "content": "b"}]})
            .to_string(),
        ),
        (
            "infill without infill pieces",
            json!({"kind": "infill", "prefix": "a", "suffix": "b"}).to_string(),
        ),
    ];
    for (what, req) in bad_requests {
        rejects(
            e.generate(&req, Function::new_no_args("")),
            "InvalidRequestError",
            what,
        )
        .await;
    }

    // A prompt longer than the context.
    let long = "x = 1\n".repeat(40);
    assert!(e.tokenize(&long, true).unwrap().len() > 64);
    let msg = rejects(
        e.generate(
            &json!({"kind": "complete", "prompt": long}).to_string(),
            Function::new_no_args(""),
        ),
        "ContextOverflowError",
        "prompt over the context",
    )
    .await;
    assert!(msg.contains("64"), "{msg}");

    // Still usable after all that.
    let (_, st) = generate(
        &e,
        json!({"kind": "chat", "messages": [{"role": "system", "content": "Be brief."},
                                            {"role": "user", "content": "hi"}],
               "maxTokens": 3}),
    )
    .await
    .unwrap_or_else(|v| panic!("chat: {}", describe(&v)));
    console_log!("chat after errors: {st}");
    e.unload();
    assert_eq!(e.gpu_buffers(), (0, 0));
}

#[wasm_bindgen_test]
async fn infill_and_chat_on_the_full_vocabulary() {
    let e = engine().await;
    let info = load(
        &e,
        MODEL_FULL_VOCAB,
        json!({"totalBytes": MODEL_FULL_VOCAB.len()}),
    )
    .await
    .unwrap_or_else(|v| panic!("load: {}", describe(&v)));
    console_log!("info {info}");
    assert_eq!(info["vocabSize"], 32016);
    assert_eq!(
        info["tensorTypes"],
        json!({"F32": 5, "Q4_K": 13, "Q6_K": 3})
    );

    // Tokenizer round trip (Code Llama's vocabulary).
    let text = "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)  # é 日本\n";
    let ids = e.tokenize(text, true).unwrap();
    assert_eq!(ids[0], 1, "BOS");
    assert_eq!(e.detokenize(ids.clone()).unwrap(), text);
    console_log!("round trip: {} tokens", ids.len());

    let prefix = "def add(a, b):\n    ";
    let suffix = "\n    return c\n";
    for suffix_first in [false, true] {
        let (pieces, st) = generate(
            &e,
            json!({"kind": "infill", "prefix": prefix, "suffix": suffix,
                   "suffixFirst": suffix_first, "maxTokens": 8, "temperature": 0}),
        )
        .await
        .unwrap_or_else(|v| panic!("infill: {}", describe(&v)));
        console_log!("infill (suffixFirst {suffix_first}): {pieces:?} {st}");
        assert!(st["generatedTokens"].as_u64().unwrap() >= 1, "{st}");
    }
    // SPM: typing at the cursor keeps the cached prefix (suffix + prefix so far).
    let (_, st) = generate(
        &e,
        json!({"kind": "infill", "prefix": format!("{prefix}c = a"), "suffix": suffix,
               "suffixFirst": true, "maxTokens": 2, "temperature": 0}),
    )
    .await
    .unwrap();
    console_log!("SPM after typing: {st}");
    assert!(
        st["promptTokensComputed"].as_u64().unwrap() < st["promptTokens"].as_u64().unwrap(),
        "{st}"
    );

    let (pieces, st) = generate(
        &e,
        json!({"kind": "chat", "messages": [
            {"role": "system", "content": "You write Python."},
            {"role": "user", "content": "Write a function that adds two numbers."},
            {"role": "assistant", "content": "def add(a, b): return a + b"},
            {"role": "user", "content": "Now subtract."}],
            "maxTokens": 6, "temperature": 0.7, "topK": 40, "topP": 0.95, "minP": 0.05,
            "repetitionPenalty": 1.1, "repetitionWindow": 32, "seed": 42}),
    )
    .await
    .unwrap_or_else(|v| panic!("chat: {}", describe(&v)));
    console_log!("chat: {pieces:?} {st}");
    e.unload();
    assert_eq!(e.gpu_buffers(), (0, 0));
}

/// A load keeps the model loaded before it (its buffers set aside) until the
/// new one is ready: a failed, aborted or aborted-in-flight load puts it back,
/// answering as before with the same buffers; a load of unknown size drops it
/// first and the new model's notes say so.
#[wasm_bindgen_test]
async fn a_failed_load_keeps_the_previous_model() {
    let e = engine().await;
    let sized = json!({"totalBytes": MODEL.len(), "contextLength": 64});
    load(&e, MODEL, sized.clone()).await.unwrap();
    let request =
        json!({"kind": "complete", "prompt": "def f(x):", "maxTokens": 6, "temperature": 0});
    let (want, _) = generate(&e, request.clone()).await.unwrap();
    let held = e.gpu_buffers();
    assert!(held.0 > 0, "{held:?}");
    let same = |what: &str, e: &WasmEngine| {
        assert_eq!(
            e.gpu_buffers(),
            held,
            "{what}: the previous model's buffers"
        );
        let info: Json = serde_json::from_str(&e.info_json().unwrap()).unwrap();
        assert_eq!(info["contextLength"], 64, "{what}: {info}");
    };

    // A file that is not a GGUF: rejected at its first chunk.
    e.begin_load(&json!({"totalBytes": 64}).to_string())
        .unwrap();
    throws(
        e.info_json(),
        "NotLoadedError",
        "infoJson while a load runs",
    );
    rejects(e.push(vec![7; 64]), "InvalidModelError", "garbage").await;
    same("after a failed push", &e);
    let (text, _) = generate(&e, request.clone()).await.unwrap();
    assert_eq!(text, want, "after a failed push");

    // A truncated file: finishLoad fails.
    let half = MODEL.len() / 2;
    e.begin_load(&sized.to_string()).unwrap();
    JsFuture::from(e.push(MODEL[..half].to_vec()))
        .await
        .unwrap();
    rejects(e.finish_load(), "InvalidModelError", "truncated").await;
    same("after a failed finishLoad", &e);

    // Aborted between chunks, then while a push runs.
    e.begin_load(&sized.to_string()).unwrap();
    JsFuture::from(e.push(MODEL[..300_000].to_vec()))
        .await
        .unwrap();
    e.abort_load();
    same("after abortLoad", &e);
    e.begin_load(&sized.to_string()).unwrap();
    let in_flight = e.push(MODEL[..300_000].to_vec());
    e.abort_load();
    rejects(in_flight, "AbortError", "push in flight when aborted").await;
    same("after abortLoad during a push", &e);
    let (text, _) = generate(&e, request.clone()).await.unwrap();
    assert_eq!(text, want, "after the aborted loads");

    // A successful load replaces it: only the new model's buffers remain.
    let info = load(
        &e,
        MODEL,
        json!({"totalBytes": MODEL.len(), "contextLength": 128}),
    )
    .await
    .unwrap();
    assert_eq!(info["contextLength"], 128, "{info}");
    assert!(info["notes"].as_array().unwrap().is_empty(), "{info}");
    let (text, _) = generate(&e, request.clone()).await.unwrap();
    assert_eq!(text, want, "the new model");

    // Size unknown: the loaded model is dropped when the load begins.
    e.begin_load("{}").unwrap();
    assert_eq!(
        e.gpu_buffers(),
        (0, 0),
        "a load of unknown size drops the model first"
    );
    rejects(e.push(vec![7; 64]), "InvalidModelError", "garbage").await;
    throws(
        e.info_json(),
        "NotLoadedError",
        "after a failed load of unknown size",
    );
    let info = load(&e, MODEL, json!({})).await.unwrap();
    assert_eq!(info["notes"].as_array().map(Vec::len), Some(0), "{info}");
    let info = load(&e, MODEL, json!({})).await.unwrap();
    let notes = info["notes"].to_string();
    assert!(
        notes.contains("previously loaded model was unloaded"),
        "{notes}"
    );
    e.unload();
    assert_eq!(e.gpu_buffers(), (0, 0));
}
