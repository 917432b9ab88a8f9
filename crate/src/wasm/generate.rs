//! A generation request: JSON to prompt tokens and options, then the session's
//! generation loop with `onText` called per piece and the timings measured.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use js_sys::Function;
use wasm_bindgen::JsValue;

use super::errors::{WasmError, WasmResult};
use super::json::{GenerationStats, TokenLogprobJson, TopLogprobJson};
use super::platform::now_ms;
use crate::error::Error;
use crate::generate::{GenerateEvent, Session};
use crate::gpu::decoder::GpuDecoder;
use crate::logprobs::TokenLogprobs;
use crate::request::{self, Prepared};
use crate::tokenizer::Tokenizer;

/// Parses and checks `json` (the library's [`request::Request`], camelCase)
/// and builds the prompt for a context of `context_len` positions
/// (InvalidRequestError for anything wrong with it).
pub fn prepare(
    tok: &Tokenizer,
    json: &str,
    cancel: Arc<AtomicBool>,
    context_len: usize,
) -> WasmResult<Prepared> {
    let req = request::parse(json).map_err(Error::from)?;
    let mut p = request::prepare(tok, req, context_len)?;
    p.opts.cancel = Some(cancel);
    Ok(p)
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
        drafted_tokens: stats.drafted_tokens,
        accepted_tokens: stats.accepted_tokens,
        forward_passes: stats.forward_passes,
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
        context: p.context.clone(),
    })
}
