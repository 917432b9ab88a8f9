//! The JSON shapes of the contract (camelCase): what JavaScript passes in
//! (load options, generation requests) and what it gets back (adapter, load
//! progress, model info, generation stats).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::errors::{WasmError, WasmResult};
use crate::model::KvFormat;
use crate::prompt::Message;

/// Parses `json` (an empty string counts as `{}`); anything malformed or
/// unknown is an `InvalidRequestError`.
pub fn parse<T: serde::de::DeserializeOwned>(what: &str, json: &str) -> WasmResult<T> {
    let json = if json.trim().is_empty() { "{}" } else { json };
    serde_json::from_str(json).map_err(|e| WasmError::invalid_request(format!("{what}: {e}")))
}

pub fn to_json<T: Serialize>(value: &T) -> String {
    // Plain structs of strings and numbers: serializing cannot fail.
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}

/// `beginLoad`'s options.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoadOptions {
    pub total_bytes: Option<u64>,
    pub context_length: Option<u64>,
    pub kv_cache: Option<KvFormat>,
}

/// `adapterJson()`, also `ModelInfo.adapter`.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AdapterJson {
    pub name: String,
    pub backend: String,
    pub device_type: String,
    pub f16: bool,
    pub subgroups: bool,
    pub max_buffer_size: u64,
    pub max_storage_binding_size: u64,
}

/// What `push` resolves to.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LoadProgress {
    pub bytes_done: u64,
    pub bytes_total: Option<u64>,
    /// The tensor uploaded last.
    pub tensor: Option<String>,
    pub tensors_done: usize,
    pub tensors_total: Option<usize>,
}

/// `finishLoad()` and `infoJson()`.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelInfo {
    pub architecture: String,
    pub name: String,
    pub vocab_size: usize,
    pub dim: usize,
    pub n_layers: usize,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub ffn_dim: usize,
    pub head_dim: usize,
    pub rope_theta: f32,
    pub trained_context: usize,
    pub context_length: usize,
    pub kv_cache: KvFormat,
    pub tensor_types: BTreeMap<String, usize>,
    pub file_bytes: u64,
    pub gpu_bytes: u64,
    pub kv_bytes_per_token: u64,
    pub kv_bytes: u64,
    pub notes: Vec<String>,
    pub adapter: AdapterJson,
}

/// What `generate` resolves to.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GenerationStats {
    pub prompt_tokens: usize,
    pub prompt_tokens_computed: usize,
    pub generated_tokens: usize,
    pub stop_reason: crate::generate::StopReason,
    /// Request start to the first sampled token (to the end when none was).
    pub time_to_first_token_ms: f64,
    /// Request start to the prompt being in the KV cache.
    pub prefill_ms: f64,
    /// Prompt in the cache to the end.
    pub decode_ms: f64,
    /// `generated_tokens` over `decode_ms`.
    pub tokens_per_second: f64,
    /// One per generated token when the request asked for `logprobs`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<Vec<TokenLogprobJson>>,
}

/// One generated token's log-probability (`TokenLogprob` in TypeScript).
/// A `-inf` logprob serializes as `null`.
#[derive(Clone, Debug, Serialize)]
pub struct TokenLogprobJson {
    pub id: u32,
    /// The token's text (a partial UTF-8 character shows as U+FFFD).
    pub token: String,
    pub logprob: f32,
    pub top: Vec<TopLogprobJson>,
}

/// One of the most likely tokens at a step.
#[derive(Clone, Debug, Serialize)]
pub struct TopLogprobJson {
    pub id: u32,
    pub token: String,
    pub logprob: f32,
}

/// The prompt kinds of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RequestKind {
    Complete,
    Infill,
    Chat,
}

/// A generation request as JSON has it: `kind` decides which of the prompt
/// fields are required (and allowed).
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawRequest {
    pub kind: RequestKind,
    pub prompt: Option<String>,
    pub prefix: Option<String>,
    pub suffix: Option<String>,
    pub suffix_first: Option<bool>,
    pub messages: Option<Vec<Message>>,
    pub max_tokens: Option<u64>,
    pub stop: Option<Vec<String>>,
    pub temperature: Option<f32>,
    pub top_k: Option<u64>,
    pub top_p: Option<f32>,
    pub min_p: Option<f32>,
    pub repetition_penalty: Option<f32>,
    pub repetition_window: Option<u64>,
    pub seed: Option<u64>,
    pub logprobs: Option<bool>,
    pub top_logprobs: Option<u64>,
}

/// The prompt of a checked request.
#[derive(Clone, Debug, PartialEq)]
pub enum PromptSpec {
    Complete(String),
    Infill {
        prefix: String,
        suffix: String,
        suffix_first: bool,
    },
    Chat(Vec<Message>),
}

impl RawRequest {
    /// The prompt, once the fields fit the kind.
    pub fn prompt_spec(&mut self) -> WasmResult<PromptSpec> {
        let kind = match self.kind {
            RequestKind::Complete => "complete",
            RequestKind::Infill => "infill",
            RequestKind::Chat => "chat",
        };
        let stray = [
            (
                "prompt",
                self.prompt.is_some() && self.kind != RequestKind::Complete,
            ),
            (
                "prefix",
                self.prefix.is_some() && self.kind != RequestKind::Infill,
            ),
            (
                "suffix",
                self.suffix.is_some() && self.kind != RequestKind::Infill,
            ),
            (
                "suffixFirst",
                self.suffix_first.is_some() && self.kind != RequestKind::Infill,
            ),
            (
                "messages",
                self.messages.is_some() && self.kind != RequestKind::Chat,
            ),
        ];
        if let Some((field, _)) = stray.iter().find(|(_, bad)| *bad) {
            return Err(WasmError::invalid_request(format!(
                "request: field {field:?} does not apply to kind {kind:?}"
            )));
        }
        let missing = |field: &str| {
            WasmError::invalid_request(format!("request: kind {kind:?} needs field {field:?}"))
        };
        Ok(match self.kind {
            RequestKind::Complete => {
                PromptSpec::Complete(self.prompt.take().ok_or_else(|| missing("prompt"))?)
            }
            RequestKind::Infill => PromptSpec::Infill {
                prefix: self.prefix.take().ok_or_else(|| missing("prefix"))?,
                suffix: self.suffix.take().ok_or_else(|| missing("suffix"))?,
                suffix_first: self.suffix_first.unwrap_or(false),
            },
            RequestKind::Chat => {
                PromptSpec::Chat(self.messages.take().ok_or_else(|| missing("messages"))?)
            }
        })
    }
}
