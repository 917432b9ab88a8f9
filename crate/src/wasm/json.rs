//! The JSON shapes of the contract (camelCase): what JavaScript passes in
//! (load options; generation requests are the library's
//! [`crate::request::Request`]) and what it gets back (adapter, load
//! progress, model info, generation stats).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::errors::{WasmError, WasmResult};
use crate::model::KvFormat;

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
    /// Speculative decoding: tokens drafted, drafted tokens accepted, and
    /// forward passes whose logits were sampled (`generatedTokens` over it is
    /// the tokens per pass; equal to `generatedTokens` without speculation).
    pub drafted_tokens: usize,
    pub accepted_tokens: usize,
    pub forward_passes: usize,
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
    /// Infill only: what fit the prompt budget.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context: Option<crate::request::InfillContext>,
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
