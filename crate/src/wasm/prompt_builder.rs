//! The remote engine's Rust half (no GPU): [`WasmPromptBuilder`] builds the
//! tokenizer from a GGUF header fed in chunks (or a `tokenizer.json`) and
//! turns the same JSON requests as `WasmEngine::generate` into token ids and
//! an OpenAI `/v1/completions` body ([`crate::request::remote`]);
//! [`WasmLineRules`] applies `singleLine` / `minIndent` to the streamed text
//! exactly as the local generation loop does ([`LineRules`]). The logic is
//! [`crate::request::prompt_builder`]'s, shared with the native tests.

use serde::Serialize;
use wasm_bindgen::prelude::*;

use super::errors::{ErrorName, WasmError, WasmResult};
use super::json::to_json;
use super::platform;
use crate::generate::{LineRules, StopReason};
use crate::request::prompt_builder::{GgufHeaderFeed, PromptBuilder};
use crate::request::remote::ServerFlavor;

enum State {
    /// Waiting for the rest of a GGUF header.
    Reading(Box<GgufHeaderFeed>),
    Ready(Box<PromptBuilder>),
    /// The GGUF bytes were refused: the error, again on every call.
    Failed(ErrorName, String),
}

/// Tokenizer and prompt builder of a model served elsewhere.
#[wasm_bindgen]
pub struct WasmPromptBuilder {
    state: State,
    /// Bytes read: everything fed while reading, the header's length once ready.
    bytes: u64,
}

impl Default for WasmPromptBuilder {
    fn default() -> Self {
        Self::new()
    }
}

fn context(n: u32) -> WasmResult<usize> {
    match n {
        0 => Err(WasmError::invalid_request(
            "contextLength must be at least 1",
        )),
        n => Ok(n as usize),
    }
}

impl WasmPromptBuilder {
    fn ready(&self) -> WasmResult<&PromptBuilder> {
        match &self.state {
            State::Ready(b) => Ok(b),
            State::Reading(_) => Err(WasmError::new(
                ErrorName::NotLoaded,
                "the tokenizer is not built yet (feed the GGUF header first)",
            )),
            State::Failed(name, why) => Err(WasmError::new(*name, why.clone())),
        }
    }
}

#[wasm_bindgen]
impl WasmPromptBuilder {
    /// A builder waiting for a GGUF file's first bytes (`feedGguf`).
    #[wasm_bindgen(constructor)]
    pub fn new() -> WasmPromptBuilder {
        platform::install_panic_hook();
        WasmPromptBuilder {
            state: State::Reading(Box::default()),
            bytes: 0,
        }
    }

    /// Feeds the next bytes of the GGUF file. `true` once the header
    /// (metadata and tensor infos) is parsed and the tokenizer built; bytes
    /// fed after that are ignored. A malformed header is an
    /// `InvalidModelError`, a vocabulary without a usable tokenizer an
    /// `UnsupportedModelError`; the builder then refuses everything.
    #[wasm_bindgen(js_name = feedGguf)]
    pub fn feed_gguf(&mut self, chunk: &[u8]) -> Result<bool, JsValue> {
        let feed = match &mut self.state {
            State::Reading(feed) => feed,
            State::Ready(_) => return Ok(true),
            State::Failed(name, why) => return Err(WasmError::new(*name, why.clone()).into()),
        };
        match feed.feed(chunk) {
            Ok(Some(builder)) => {
                let read = feed.bytes_read();
                self.bytes = builder.header_bytes().map_or(read, |h| h.min(read));
                self.state = State::Ready(Box::new(builder));
                Ok(true)
            }
            Ok(None) => {
                self.bytes = feed.bytes_read();
                Ok(false)
            }
            Err(e) => {
                let e = WasmError::from(e);
                if let WasmError::Named { name, message } = &e {
                    self.state = State::Failed(*name, message.clone());
                }
                Err(e.into())
            }
        }
    }

    /// Bytes of the GGUF file read so far (once ready: the header's length,
    /// up to the aligned start of the tensor data).
    #[wasm_bindgen(js_name = bytesNeeded)]
    pub fn bytes_needed(&self) -> f64 {
        self.bytes as f64
    }

    /// A ready builder from a Hugging Face `tokenizer.json` text.
    #[wasm_bindgen(js_name = fromTokenizerJson)]
    pub fn from_tokenizer_json(json: &str) -> Result<WasmPromptBuilder, JsValue> {
        platform::install_panic_hook();
        let builder = PromptBuilder::from_tokenizer_json(json).map_err(WasmError::from)?;
        Ok(WasmPromptBuilder {
            state: State::Ready(Box::new(builder)),
            bytes: 0,
        })
    }

    #[wasm_bindgen(js_name = isReady)]
    pub fn is_ready(&self) -> bool {
        matches!(self.state, State::Ready(_))
    }

    /// `{vocabSize, contextLength, name, architecture, nLayers, dim, nHeads,
    /// nKvHeads, source: "gguf"|"tokenizer.json"}` (unknown numbers `null`).
    #[wasm_bindgen(js_name = infoJson)]
    pub fn info_json(&self) -> Result<String, JsValue> {
        Ok(to_json(self.ready()?.info()))
    }

    /// Token ids of `text` (SentencePiece space prefix; BOS first when
    /// `addBos`).
    pub fn tokenize(
        &self,
        text: &str,
        #[wasm_bindgen(js_name = addBos)] add_bos: bool,
    ) -> Result<Vec<u32>, JsValue> {
        let tok = self.ready()?.tokenizer();
        Ok(tok.encode(text, add_bos).map_err(WasmError::from)?)
    }

    /// Text of `ids` (the leading space of the prefix removed, control pieces
    /// dropped).
    pub fn detokenize(&self, ids: &[u32]) -> Result<String, JsValue> {
        let tok = self.ready()?.tokenizer();
        Ok(tok.decode(ids).map_err(WasmError::from)?)
    }

    /// The exact prompt tokens of a request (the JSON of `generate`) in a
    /// context of `contextLength` positions; the same count as
    /// `WasmEngine::countTokens` for the same model.
    #[wasm_bindgen(js_name = countTokens)]
    pub fn count_tokens(
        &self,
        #[wasm_bindgen(js_name = requestJson)] request_json: &str,
        #[wasm_bindgen(js_name = contextLength)] context_length: u32,
    ) -> Result<u32, JsValue> {
        let n = self
            .ready()?
            .count_tokens(request_json, context(context_length)?)
            .map_err(WasmError::from)?;
        Ok(n as u32)
    }

    /// The request for a server of `flavor` ("llama.cpp", "vllm", "openai"):
    /// `{body, promptTokens, context, maxTokens, maxTimeMs, singleLine,
    /// minIndent, stopIds}` (see `crate::request::remote`). A setting the
    /// flavor cannot express is an `InvalidRequestError` naming it.
    #[wasm_bindgen(js_name = prepareJson)]
    pub fn prepare_json(
        &self,
        #[wasm_bindgen(js_name = requestJson)] request_json: &str,
        #[wasm_bindgen(js_name = contextLength)] context_length: u32,
        flavor: &str,
        model: Option<String>,
    ) -> Result<String, JsValue> {
        let builder = self.ready()?;
        let flavor =
            ServerFlavor::parse(flavor).map_err(|e| WasmError::from(crate::Error::from(e)))?;
        let req = builder
            .prepare(
                request_json,
                context(context_length)?,
                flavor,
                model.as_deref(),
            )
            .map_err(WasmError::from)?;
        Ok(to_json(&req))
    }

    /// Meta's per-mode defaults, the JSON of `WasmEngine::requestDefaultsJson`.
    #[wasm_bindgen(js_name = requestDefaultsJson)]
    pub fn request_defaults_json() -> String {
        to_json(&crate::request::table())
    }
}

/// What `WasmLineRules::push` returns.
#[derive(Serialize)]
struct Pushed {
    emit: String,
    stop: Option<StopReason>,
}

/// The local engine's line rules ([`LineRules`]) for text streamed from a
/// server: what to show, and whether a rule ended the completion (the
/// client then aborts the HTTP stream).
#[wasm_bindgen]
pub struct WasmLineRules {
    rules: LineRules,
    stopped: Option<StopReason>,
}

#[wasm_bindgen]
impl WasmLineRules {
    #[wasm_bindgen(constructor)]
    pub fn new(
        #[wasm_bindgen(js_name = singleLine)] single_line: bool,
        #[wasm_bindgen(js_name = minIndent)] min_indent: Option<u32>,
    ) -> WasmLineRules {
        WasmLineRules {
            rules: LineRules::new(single_line, min_indent.map(|n| n as usize)),
            stopped: None,
        }
    }

    /// Adds streamed text: JSON `{"emit": text to show now, "stop": null |
    /// "line_end" | "indent"}`. Once a rule stopped, nothing more is emitted
    /// and every call reports the same stop.
    pub fn push(&mut self, text: &str) -> String {
        let mut emit = String::new();
        if self.stopped.is_none() {
            self.stopped = self.rules.push(text, &mut |t| emit.push_str(t));
        }
        to_json(&Pushed {
            emit,
            stop: self.stopped,
        })
    }

    /// At the end of the stream: the text still held (trailing line breaks
    /// and indentation), "" after a rule stopped.
    pub fn finish(&mut self) -> String {
        let mut out = String::new();
        if self.stopped.is_none() {
            self.rules.flush(&mut |t| out.push_str(t));
        }
        out
    }
}
