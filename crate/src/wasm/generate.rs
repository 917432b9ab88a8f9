//! A generation request: JSON to prompt tokens and options, then the session's
//! generation loop with `onText` called per piece and the timings measured.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use js_sys::Function;
use wasm_bindgen::JsValue;

use super::errors::{WasmError, WasmResult};
use super::json::{
    parse, GenerationStats, PromptSpec, RawRequest, TokenLogprobJson, TopLogprobJson,
};
use super::platform::now_ms;
use crate::error::Error;
use crate::generate::{GenerateEvent, GenerateOptions, Session};
use crate::gpu::decoder::GpuDecoder;
use crate::logprobs::{TokenLogprobs, MAX_TOP_LOGPROBS};
use crate::prompt::{self, InfillMode, PromptKind};
use crate::sampler::SamplerConfig;
use crate::tokenizer::Tokenizer;

/// `maxTokens` when the request has none.
pub const DEFAULT_MAX_TOKENS: usize = 256;

/// A checked request.
pub struct Prepared {
    pub prompt: Vec<u32>,
    pub opts: GenerateOptions,
}

fn count(v: u64) -> usize {
    usize::try_from(v).unwrap_or(usize::MAX)
}

/// Parses and checks `json`, builds the prompt (InvalidRequestError for
/// anything wrong with it).
pub fn prepare(tok: &Tokenizer, json: &str, cancel: Arc<AtomicBool>) -> WasmResult<Prepared> {
    let mut raw: RawRequest = parse("request", json)?;
    let (prompt, kind) = match raw.prompt_spec()? {
        PromptSpec::Complete(text) => (
            prompt::completion(tok, &text).map_err(Error::from)?,
            PromptKind::Completion,
        ),
        PromptSpec::Infill {
            prefix,
            suffix,
            suffix_first,
        } => {
            let mode = match suffix_first {
                true => InfillMode::SuffixPrefixMiddle,
                false => InfillMode::PrefixSuffixMiddle,
            };
            let ids = prompt::infill(tok, &prefix, &suffix, mode).map_err(Error::from)?;
            (ids, PromptKind::Infill)
        }
        PromptSpec::Chat(messages) => {
            if prompt::contains_special_tags(&messages) {
                return Err(WasmError::invalid_request(format!(
                    "a chat message contains one of the reserved tags {:?}",
                    prompt::SPECIAL_TAGS
                )));
            }
            let ids = prompt::chat(tok, &messages).map_err(Error::from)?;
            (ids, PromptKind::Chat)
        }
    };
    let d = SamplerConfig::default();
    let sampler = SamplerConfig {
        temperature: raw.temperature.unwrap_or(d.temperature),
        top_k: raw.top_k.map_or(d.top_k, count),
        top_p: raw.top_p.unwrap_or(d.top_p),
        min_p: raw.min_p.unwrap_or(d.min_p),
        repetition_penalty: raw.repetition_penalty.unwrap_or(d.repetition_penalty),
        repetition_window: raw.repetition_window.map_or(d.repetition_window, count),
        seed: raw.seed.unwrap_or(d.seed),
    };
    sampler.validate().map_err(Error::from)?;
    let logprobs = logprobs_option(raw.logprobs, raw.top_logprobs)?;
    Ok(Prepared {
        prompt,
        opts: GenerateOptions {
            sampler,
            max_tokens: raw.max_tokens.map_or(DEFAULT_MAX_TOKENS, count),
            stop: raw.stop.unwrap_or_default(),
            stop_ids: prompt::stop_ids(tok, kind).map_err(Error::from)?,
            continuation: kind != PromptKind::Chat,
            cancel: Some(cancel),
            logprobs,
        },
    })
}

/// `logprobs` / `topLogprobs` as [`GenerateOptions::logprobs`]: `topLogprobs`
/// (0..=20) needs `logprobs: true`.
fn logprobs_option(on: Option<bool>, top: Option<u64>) -> WasmResult<Option<usize>> {
    let top = top.map(count);
    if let Some(k) = top {
        if k > MAX_TOP_LOGPROBS {
            return Err(WasmError::invalid_request(format!(
                "request: topLogprobs is {k}, at most {MAX_TOP_LOGPROBS}"
            )));
        }
        if k > 0 && on != Some(true) {
            return Err(WasmError::invalid_request(
                "request: topLogprobs needs logprobs: true",
            ));
        }
    }
    Ok(match on {
        Some(true) => Some(top.unwrap_or(0)),
        _ => None,
    })
}

/// The JSON form of a token's log-probabilities, with the tokens' text.
fn logprobs_json(tok: &Tokenizer, lp: &TokenLogprobs) -> TokenLogprobJson {
    let text = |id: u32| tok.decode_continuation(&[id]).unwrap_or_default();
    TokenLogprobJson {
        id: lp.id,
        token: text(lp.id),
        logprob: lp.logprob,
        top: lp
            .top
            .iter()
            .map(|t| TopLogprobJson {
                id: t.id,
                token: text(t.id),
                logprob: t.logprob,
            })
            .collect(),
    }
}

/// Runs `p`, calling `on_text(piece)` for each piece of text. An exception
/// thrown by `on_text` stops the generation and is passed back as it is.
pub async fn run(
    session: &mut Session<GpuDecoder>,
    tok: &Tokenizer,
    p: &Prepared,
    on_text: &Function,
) -> WasmResult<GenerationStats> {
    let start = now_ms();
    let mut prefilled: Option<f64> = None;
    let mut first_token: Option<f64> = None;
    let mut thrown: Option<JsValue> = None;
    let cancel = p.opts.cancel.clone();
    let result = session
        .generate_events(tok, &p.prompt, &p.opts, &mut |ev| match ev {
            GenerateEvent::Prefilled { .. } => prefilled = Some(now_ms()),
            GenerateEvent::Token(_) => {
                first_token.get_or_insert_with(now_ms);
            }
            GenerateEvent::Text(t) => {
                if thrown.is_none() {
                    if let Err(e) = on_text.call1(&JsValue::NULL, &JsValue::from_str(t)) {
                        thrown = Some(e);
                        if let Some(c) = &cancel {
                            c.store(true, Ordering::Relaxed);
                        }
                    }
                }
            }
        })
        .await;
    let end = now_ms();
    if let Some(e) = thrown {
        return Err(WasmError::Js(e));
    }
    let stats = result?;
    let prefilled = prefilled.unwrap_or(end);
    let decode_ms = end - prefilled;
    Ok(GenerationStats {
        prompt_tokens: stats.prompt_tokens,
        prompt_tokens_computed: stats.prompt_tokens_computed,
        generated_tokens: stats.generated_tokens,
        stop_reason: stats.stop_reason,
        time_to_first_token_ms: first_token.unwrap_or(end) - start,
        prefill_ms: prefilled - start,
        decode_ms,
        tokens_per_second: if decode_ms > 0.0 {
            stats.generated_tokens as f64 * 1000.0 / decode_ms
        } else {
            0.0
        },
        logprobs: stats
            .logprobs
            .map(|l| l.iter().map(|t| logprobs_json(tok, t)).collect()),
    })
}
