//! A prepared request as the JSON body of an OpenAI-style `POST /v1/completions`
//! for a serving engine that runs the model elsewhere (the remote engine of
//! the JS package): llama.cpp's `llama-server`, vLLM, or any server that only
//! implements OpenAI's documented Completions API.
//!
//! # Layout
//!
//! The prompt is always the exact token ids [`super::prepare`] built (an
//! array of integers, which all three accept as `prompt`), so completion,
//! infill (PSM and SPM, with the vocabulary's real `▁<PRE>`/`▁<SUF>`/`▁<MID>`
//! ids) and chat reach the server token for token as the local engine would
//! run them, whatever the server's own text handling. Every sampling setting
//! is sent explicitly, also at its "off" value: a server's defaults are not
//! ours (llama.cpp's `top_k` is 40 and its `min_p` 0.05 unless its operator
//! says otherwise; vLLM reads per-model `generation_config.json` defaults),
//! and an omitted field would silently change the distribution.
//!
//! | request setting     | llama.cpp            | vLLM                      | openai                    |
//! |---------------------|----------------------|---------------------------|---------------------------|
//! | (model)             | `model` when given   | `model` when given        | `model` when given        |
//! | prompt ids          | `prompt: [int]`      | `prompt: [int]`           | `prompt: [int]`           |
//! | `maxTokens`         | `max_tokens`         | `max_tokens`              | `max_tokens`              |
//! | `temperature`       | `temperature` (≥ 0)  | `temperature` (≥ 0)       | `temperature` (≥ 0)       |
//! | `topP`              | `top_p`              | `top_p`                   | `top_p`                   |
//! | `topK` (0 = off)    | `top_k`, 0 = off     | `top_k`, −1 = off         | only 0: omitted           |
//! | `minP` (0 = off)    | `min_p`              | `min_p`                   | only 0: omitted           |
//! | `repetitionPenalty` | `repeat_penalty`     | `repetition_penalty`      | only 1: omitted           |
//! | `repetitionWindow`  | `repeat_last_n`      | only the default (64)     | only the default (64)     |
//! | `seed`              | `seed` (< 2³²−1)     | `seed` (≤ 2⁶³−1)          | `seed` (≤ 2⁶³−1)          |
//! | `stop`              | `stop` when any      | `stop` when any           | `stop` when any           |
//! | mode's stop ids     | —                    | `stop_token_ids`          | —                         |
//! | (sampler order)     | `samplers`           | —                         | —                         |
//! | (special tokens)    | —                    | `skip_special_tokens`     | —                         |
//! | (streaming)         | `stream`, `stream_options` | `stream`, `stream_options` | `stream`, `stream_options` |
//! | `logprobs`          | refused              | refused                   | refused                   |
//! | `speculative`       | —                    | —                         | —                         |
//!
//! A value the flavor cannot express is a [`RequestError::Invalid`] naming the
//! request field, before anything is sent. `maxTimeMs`, `singleLine` and
//! `minIndent` are not sent at all: the client applies them to the streamed
//! text ([`RemoteRequest`] carries them; the line rules are
//! [`crate::generate::LineRules`]), so they behave as in the local engine
//! whatever the server (llama.cpp's `n_indent` and `t_max_predict_ms` have
//! other semantics: the deadline counts from the first token and only fires
//! after a newline).
//!
//! # Rationale per field
//!
//! - **`top_k` "off".** llama.cpp documents `top_k` 0 as disabled (its
//!   server clamps negative values to 0). vLLM's `SamplingParams` documents
//!   "0 (or −1)" as "consider all tokens" in current releases, but releases
//!   before that rejected 0 ("top_k must be −1 (disable), or at least 1"):
//!   −1 means "off" in every vLLM release, so it is what we send.
//! - **`min_p`.** Both servers document 0 as disabled and take a value in
//!   [0, 1], as ours. OpenAI does not have it.
//! - **Repetition.** llama.cpp's `repeat_penalty` over the last
//!   `repeat_last_n` tokens is our penalty and window exactly (CTRL-style:
//!   positive logits divided, negative multiplied; its default window, 64, is
//!   ours too). vLLM's `repetition_penalty` is the same formula but over the
//!   whole prompt and output, with no window: a window other than the default
//!   cannot be expressed and is refused; with the default window and a
//!   penalty other than 1, vLLM's outputs can differ from the local engine's
//!   (documented, not refused: the penalty is what the user asked for).
//! - **`seed`.** Always sent (ours defaults to 0, so a request without one
//!   is reproducible on the server too, as it is locally). llama.cpp's seed is
//!   a u32 whose all-ones value means "random"; vLLM's and OpenAI's a signed
//!   64-bit integer. The server's random numbers are not ours, so only greedy
//!   decoding (temperature 0, infill's default) gives the local engine's
//!   tokens.
//! - **`samplers` (llama.cpp).** Its default chain applies the temperature
//!   last (top-k, top-p and min-p see the untempered distribution) and adds
//!   DRY, top-n-sigma, typical-p and XTC, which an operator may switch on by
//!   default. We send the chain of our sampler, `penalties, top_k,
//!   temperature, top_p, min_p` (then llama.cpp's draw), so top-p and min-p
//!   cut the tempered distribution as the local engine does, and nothing else
//!   runs. vLLM's order is fixed (penalties, temperature, min-p, then
//!   top-k/top-p), so a request combining `minP` with `topP` can keep a
//!   slightly different candidate set there.
//! - **`stop_token_ids` (vLLM).** The mode's stop ids (EOS; infill also
//!   `▁<EOT>`), so vLLM stops where the local engine does even if the model's
//!   `generation_config.json` names other ids. llama.cpp stops at every
//!   end-of-generation token of its vocabulary and has no such field;
//!   OpenAI neither. [`RemoteRequest::stop_ids`] gives them to the client too.
//! - **`skip_special_tokens: true` (vLLM).** vLLM's default, sent so the
//!   contract does not rest on a server default: the local decoder turns
//!   control pieces (`</s>`, `▁<EOT>`, ...) into no text, and `false` would
//!   stream their text instead.
//! - **Streaming.** `stream: true` with `stream_options.include_usage`, which
//!   all three document: the last event then carries `usage`
//!   (`prompt_tokens`, `completion_tokens`) for the generation stats.
//! - **`logprobs`.** Refused for now: the servers' logprob shapes differ (an
//!   integer k in vLLM and OpenAI, `n_probs` with other fields in llama.cpp)
//!   and the remote engine does not map them back yet.
//! - **`speculative`.** Not sent: prompt-lookup drafting changes how many
//!   tokens one forward pass yields, never which tokens, and a server
//!   configures its own speculative decoding.
//! - **`temperature`.** Ours treats anything ≤ 0 as greedy; vLLM rejects a
//!   negative temperature, so the body carries `max(temperature, 0)`.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::{InfillContext, Prepared, Request, RequestError};
use crate::error::Error;
use crate::sampler::SamplerConfig;
use crate::tokenizer::Tokenizer;

/// Which server the body is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServerFlavor {
    /// llama.cpp's `llama-server`.
    #[serde(rename = "llama.cpp")]
    LlamaCpp,
    #[serde(rename = "vllm")]
    Vllm,
    /// Only OpenAI's documented Completions fields.
    #[serde(rename = "openai")]
    OpenAi,
}

impl ServerFlavor {
    pub const ALL: [ServerFlavor; 3] = [
        ServerFlavor::LlamaCpp,
        ServerFlavor::Vllm,
        ServerFlavor::OpenAi,
    ];

    /// The name JavaScript uses (`"llama.cpp"`, `"vllm"`, `"openai"`).
    pub fn as_str(self) -> &'static str {
        match self {
            ServerFlavor::LlamaCpp => "llama.cpp",
            ServerFlavor::Vllm => "vllm",
            ServerFlavor::OpenAi => "openai",
        }
    }

    /// The flavor named `name` (an `Invalid` error naming the three otherwise).
    pub fn parse(name: &str) -> Result<ServerFlavor, RequestError> {
        Self::ALL
            .into_iter()
            .find(|f| f.as_str() == name)
            .ok_or_else(|| {
                RequestError::Invalid(format!(
                    "unknown server flavor {name:?} (expected \"llama.cpp\", \"vllm\" or \"openai\")"
                ))
            })
    }
}

/// llama.cpp's sampler chain for our sampler's order (see the module docs).
pub const LLAMA_CPP_SAMPLERS: [&str; 5] = ["penalties", "top_k", "temperature", "top_p", "min_p"];

/// llama.cpp's seed value meaning "a random seed" (`LLAMA_DEFAULT_SEED`).
const LLAMA_CPP_RANDOM_SEED: u64 = u32::MAX as u64;

fn refuse(flavor: ServerFlavor, field: &str, why: &str) -> RequestError {
    RequestError::Invalid(format!(
        "request: {field} {why} with a {} server",
        flavor.as_str()
    ))
}

/// The `/v1/completions` body of `p` for `flavor` (`model`: the server's
/// model name, when the caller has one). See the module docs for the mapping.
pub fn completion_body(
    p: &Prepared,
    flavor: ServerFlavor,
    model: Option<&str>,
) -> Result<Value, RequestError> {
    use ServerFlavor::*;
    let o = &p.opts;
    let s = &o.sampler;
    let default = SamplerConfig::default();
    if o.logprobs.is_some() {
        return Err(RequestError::Invalid(
            "logprobs are not supported by the remote engine".into(),
        ));
    }
    let seed_max = match flavor {
        LlamaCpp => LLAMA_CPP_RANDOM_SEED - 1,
        Vllm | OpenAi => i64::MAX as u64,
    };
    if s.seed > seed_max {
        return Err(refuse(
            flavor,
            "seed",
            &format!("{} is above {seed_max}, the largest fixed seed", s.seed),
        ));
    }
    let mut body = Map::new();
    if let Some(m) = model {
        body.insert("model".into(), json!(m));
    }
    body.insert("prompt".into(), json!(p.prompt));
    body.insert("max_tokens".into(), json!(o.max_tokens));
    body.insert("temperature".into(), json!(s.temperature.max(0.0)));
    body.insert("top_p".into(), json!(s.top_p));
    match flavor {
        LlamaCpp => {
            body.insert("top_k".into(), json!(s.top_k));
            body.insert("min_p".into(), json!(s.min_p));
            body.insert("repeat_penalty".into(), json!(s.repetition_penalty));
            body.insert("repeat_last_n".into(), json!(s.repetition_window));
            body.insert("samplers".into(), json!(LLAMA_CPP_SAMPLERS));
        }
        Vllm => {
            if s.repetition_window != default.repetition_window {
                return Err(refuse(
                    flavor,
                    "repetitionWindow",
                    &format!(
                        "cannot be set (vLLM's repetition_penalty covers the whole sequence; \
                         only the default {} is accepted)",
                        default.repetition_window
                    ),
                ));
            }
            let top_k = if s.top_k == 0 { -1 } else { s.top_k as i64 };
            body.insert("top_k".into(), json!(top_k));
            body.insert("min_p".into(), json!(s.min_p));
            body.insert("repetition_penalty".into(), json!(s.repetition_penalty));
            body.insert("stop_token_ids".into(), json!(o.stop_ids));
            body.insert("skip_special_tokens".into(), json!(true));
        }
        OpenAi => {
            let not_off = |field: &str, off: &str| {
                refuse(
                    flavor,
                    field,
                    &format!("is not part of OpenAI's Completions API: only {off} (off) works"),
                )
            };
            if s.top_k != 0 {
                return Err(not_off("topK", "0"));
            }
            if s.min_p != 0.0 {
                return Err(not_off("minP", "0"));
            }
            if s.repetition_penalty != 1.0 {
                return Err(not_off("repetitionPenalty", "1"));
            }
            if s.repetition_window != default.repetition_window {
                return Err(not_off(
                    "repetitionWindow",
                    &default.repetition_window.to_string(),
                ));
            }
        }
    }
    body.insert("seed".into(), json!(s.seed));
    if !o.stop.is_empty() {
        body.insert("stop".into(), json!(o.stop));
    }
    body.insert("stream".into(), json!(true));
    body.insert("stream_options".into(), json!({ "include_usage": true }));
    Ok(Value::Object(body))
}

/// What the remote engine needs to send one request and to treat its stream
/// as the local engine treats its own tokens (`prepareJson` of the wasm
/// `WasmPromptBuilder`).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RemoteRequest {
    /// The `/v1/completions` body ([`completion_body`]).
    pub body: Value,
    pub prompt_tokens: usize,
    /// Infill: what fit the budget (the local engine's `stats.context`).
    pub context: Option<InfillContext>,
    pub max_tokens: usize,
    /// Applied by the client: from the request's start.
    pub max_time_ms: Option<f64>,
    pub single_line: bool,
    pub min_indent: Option<usize>,
    /// The mode's stop ids (EOS; infill also EOT).
    pub stop_ids: Vec<u32>,
}

/// Builds the prompt of `req` for a context of `context_len` positions (as
/// [`super::prepare`] does for the local engine) and its body for `flavor`.
pub fn prepare_remote(
    tok: &Tokenizer,
    req: Request,
    context_len: usize,
    flavor: ServerFlavor,
    model: Option<&str>,
) -> Result<RemoteRequest, Error> {
    let p = super::prepare(tok, req, context_len)?;
    let body = completion_body(&p, flavor, model)?;
    Ok(RemoteRequest {
        body,
        prompt_tokens: p.prompt.len(),
        context: p.context,
        max_tokens: p.opts.max_tokens,
        max_time_ms: p.opts.max_time.map(|s| s * 1e3),
        single_line: p.opts.single_line,
        min_indent: p.opts.min_indent,
        stop_ids: p.opts.stop_ids,
    })
}
