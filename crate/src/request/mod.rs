//! The request layer: one place that turns a generation request (a prompt
//! kind, its prompt fields and the generation settings, as the JSON boundary
//! and the CLI give them) into prompt tokens and [`GenerateOptions`], with
//! Meta's per-mode defaults ([`defaults`]) for what the request leaves out.
//! The wasm engine parses its JSON into a [`Request`] (camelCase, unknown
//! fields rejected); the CLI fills one from its arguments. Infill prompts are
//! fitted to a token budget ([`budget`]). For a model served elsewhere,
//! [`remote`] turns the prepared request into an OpenAI `/v1/completions`
//! body, and [`prompt_builder`] builds the tokenizer from a GGUF header or a
//! `tokenizer.json` without the weights.
//!
//! `speculative` (`false`, `true`, or `{maxDraft?, ngram?, costAware?}`) sets
//! prompt-lookup speculative decoding ([`crate::speculative`]); left out, the
//! kind's default ([`defaults`]: on for completion and infill, off for chat).
//! It never changes the tokens, only their cost; a request asking for
//! `logprobs` is decoded without it.

pub mod budget;
pub mod defaults;
pub mod prompt_builder;
pub mod remote;

use serde::{Deserialize, Deserializer};
use thiserror::Error;

pub use budget::{file_comment, infill_within, ExtraFile, InfillContext};
pub use defaults::{defaults, table, DefaultsTable, RequestDefaults};

use crate::error::Error;
use crate::generate::GenerateOptions;
use crate::logprobs::MAX_TOP_LOGPROBS;
use crate::prompt::{self, InfillMode, Message, PromptKind};
use crate::sampler::SamplerConfig;
use crate::speculative::{SpeculativeConfig, DEFAULT_NGRAM, MAX_DRAFT, MAX_NGRAM};
use crate::tokenizer::Tokenizer;

/// A request that cannot be run as it is.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RequestError {
    /// Malformed, a field that does not fit the kind, a value out of range.
    #[error("{0}")]
    Invalid(String),
    /// The infill budget cannot hold even the template.
    #[error("the infill prompt budget of {budget} tokens is too small: the template alone needs {needed} (raise maxPromptTokens or lower maxTokens)")]
    BudgetTooSmall { budget: usize, needed: usize },
}

/// The prompt kinds of a request (`"complete"`, `"infill"`, `"chat"`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RequestKind {
    #[default]
    Complete,
    Infill,
    Chat,
}

impl RequestKind {
    pub fn prompt_kind(self) -> PromptKind {
        match self {
            RequestKind::Complete => PromptKind::Completion,
            RequestKind::Infill => PromptKind::Infill,
            RequestKind::Chat => PromptKind::Chat,
        }
    }

    fn name(self) -> &'static str {
        match self {
            RequestKind::Complete => "complete",
            RequestKind::Infill => "infill",
            RequestKind::Chat => "chat",
        }
    }
}

/// A generation request: `kind` decides which of the prompt fields are
/// required (and allowed); every setting left out takes the kind's default.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Request {
    pub kind: RequestKind,
    pub prompt: Option<String>,
    pub prefix: Option<String>,
    pub suffix: Option<String>,
    pub suffix_first: Option<bool>,
    /// Infill: other open files, before the prefix.
    pub extra: Option<Vec<ExtraFile>>,
    /// Infill: the prompt's token budget (default: context − max tokens).
    pub max_prompt_tokens: Option<u64>,
    pub messages: Option<Vec<Message>>,
    pub max_tokens: Option<u64>,
    pub max_time_ms: Option<f64>,
    pub single_line: Option<bool>,
    pub min_indent: Option<u64>,
    pub stop: Option<Vec<String>>,
    pub temperature: Option<f32>,
    pub top_k: Option<u64>,
    pub top_p: Option<f32>,
    pub min_p: Option<f32>,
    pub repetition_penalty: Option<f32>,
    pub repetition_window: Option<u64>,
    pub seed: Option<u64>,
    /// Per-token log-probabilities ([`crate::logprobs`]).
    pub logprobs: Option<bool>,
    /// With `logprobs`: the k (0..=20) most likely tokens too.
    pub top_logprobs: Option<u64>,
    /// Prompt-lookup speculative decoding (default: the kind's).
    pub speculative: Option<SpeculativeRequest>,
}

/// The `speculative` field: `false` (off), `true` (on, default settings) or
/// `{maxDraft?, ngram?, costAware?}` (on, `maxDraft` 0 meaning off).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpeculativeRequest {
    Switch(bool),
    Settings(SpeculativeSettings),
}

/// `speculative: {maxDraft?, ngram?, costAware?}`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SpeculativeSettings {
    /// Most tokens drafted per step (0..=15; 0 is off; default 8).
    pub max_draft: Option<u64>,
    /// Longest n-gram looked up (1..=16; default 4).
    pub ngram: Option<u64>,
    /// Each draft's length from measured pass costs and acceptance rates
    /// (`crate::speculative::cost`; default false).
    pub cost_aware: Option<bool>,
}

impl<'de> Deserialize<'de> for SpeculativeRequest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::Bool(b) => Ok(SpeculativeRequest::Switch(b)),
            v @ serde_json::Value::Object(_) => serde_json::from_value(v)
                .map(SpeculativeRequest::Settings)
                .map_err(|e| D::Error::custom(format!("speculative: {e}"))),
            v => Err(D::Error::custom(format!(
                "speculative must be false, true or {{maxDraft?, ngram?, costAware?}}, got {v}"
            ))),
        }
    }
}

/// The prompt of a checked request.
#[derive(Clone, Debug, PartialEq)]
pub enum PromptSpec {
    Complete(String),
    Infill {
        prefix: String,
        suffix: String,
        suffix_first: bool,
        extra: Vec<ExtraFile>,
    },
    Chat(Vec<Message>),
}

/// A request turned into what the generation loop takes.
#[derive(Clone, Debug)]
pub struct Prepared {
    pub kind: PromptKind,
    pub prompt: Vec<u32>,
    pub opts: GenerateOptions,
    /// Infill: what fit the budget.
    pub context: Option<InfillContext>,
}

/// Parses request JSON (an empty string counts as `{}`).
pub fn parse(json: &str) -> Result<Request, RequestError> {
    let json = if json.trim().is_empty() { "{}" } else { json };
    serde_json::from_str(json).map_err(|e| RequestError::Invalid(format!("request: {e}")))
}

fn count(v: u64) -> usize {
    usize::try_from(v).unwrap_or(usize::MAX)
}

impl Request {
    /// The prompt, once the fields fit the kind.
    pub fn prompt_spec(&mut self) -> Result<PromptSpec, RequestError> {
        let kind = self.kind.name();
        let not = |k: RequestKind| self.kind != k;
        let stray = [
            (
                "prompt",
                self.prompt.is_some() && not(RequestKind::Complete),
            ),
            ("prefix", self.prefix.is_some() && not(RequestKind::Infill)),
            ("suffix", self.suffix.is_some() && not(RequestKind::Infill)),
            (
                "suffixFirst",
                self.suffix_first.is_some() && not(RequestKind::Infill),
            ),
            ("extra", self.extra.is_some() && not(RequestKind::Infill)),
            (
                "maxPromptTokens",
                self.max_prompt_tokens.is_some() && not(RequestKind::Infill),
            ),
            (
                "messages",
                self.messages.is_some() && not(RequestKind::Chat),
            ),
        ];
        if let Some((field, _)) = stray.iter().find(|(_, bad)| *bad) {
            return Err(RequestError::Invalid(format!(
                "request: field {field:?} does not apply to kind {kind:?}"
            )));
        }
        let missing = |field: &str| {
            RequestError::Invalid(format!("request: kind {kind:?} needs field {field:?}"))
        };
        Ok(match self.kind {
            RequestKind::Complete => {
                PromptSpec::Complete(self.prompt.take().ok_or_else(|| missing("prompt"))?)
            }
            RequestKind::Infill => PromptSpec::Infill {
                prefix: self.prefix.take().ok_or_else(|| missing("prefix"))?,
                suffix: self.suffix.take().ok_or_else(|| missing("suffix"))?,
                suffix_first: self.suffix_first.unwrap_or(false),
                extra: self.extra.take().unwrap_or_default(),
            },
            RequestKind::Chat => {
                PromptSpec::Chat(self.messages.take().ok_or_else(|| missing("messages"))?)
            }
        })
    }

    /// The generation settings, the kind's defaults for what is left out.
    pub fn options(&self, tok: &Tokenizer) -> Result<GenerateOptions, Error> {
        let kind = self.kind.prompt_kind();
        let d = defaults(kind);
        let s = SamplerConfig::default();
        let sampler = SamplerConfig {
            temperature: self.temperature.unwrap_or(d.temperature),
            top_k: self.top_k.map_or(s.top_k, count),
            top_p: self.top_p.unwrap_or(d.top_p),
            min_p: self.min_p.unwrap_or(s.min_p),
            repetition_penalty: self.repetition_penalty.unwrap_or(s.repetition_penalty),
            repetition_window: self.repetition_window.map_or(s.repetition_window, count),
            seed: self.seed.unwrap_or(s.seed),
        };
        sampler.validate()?;
        let max_time = match self.max_time_ms {
            Some(ms) if !(ms.is_finite() && ms >= 0.0) => {
                return Err(RequestError::Invalid(format!(
                    "request: maxTimeMs must be a finite number ≥ 0, got {ms}"
                ))
                .into())
            }
            ms => ms.map(|ms| ms / 1e3),
        };
        Ok(GenerateOptions {
            sampler,
            max_tokens: self.max_tokens.map_or(d.max_tokens, count),
            stop: self.stop.clone().unwrap_or_default(),
            stop_ids: prompt::stop_ids(tok, kind)?,
            continuation: kind != PromptKind::Chat,
            cancel: None,
            max_time,
            single_line: self.single_line.unwrap_or(false),
            min_indent: self.min_indent.map(count),
            logprobs: self.logprobs_option()?,
            speculative: self.speculative_option(d.max_draft)?,
        })
    }

    /// `speculative` as [`GenerateOptions::speculative`] (`None`: off), the
    /// kind's `default_max_draft` when left out.
    fn speculative_option(
        &self,
        default_max_draft: usize,
    ) -> Result<Option<SpeculativeConfig>, RequestError> {
        let settings = match self.speculative {
            None => SpeculativeSettings {
                max_draft: Some(default_max_draft as u64),
                ngram: None,
                cost_aware: None,
            },
            Some(SpeculativeRequest::Switch(false)) => return Ok(None),
            Some(SpeculativeRequest::Switch(true)) => SpeculativeSettings::default(),
            Some(SpeculativeRequest::Settings(s)) => s,
        };
        let max_draft = settings
            .max_draft
            .map_or(SpeculativeConfig::default().max_draft, count);
        if max_draft > MAX_DRAFT {
            return Err(RequestError::Invalid(format!(
                "request: speculative.maxDraft is {max_draft}, at most {MAX_DRAFT}"
            )));
        }
        let ngram = settings.ngram.map_or(DEFAULT_NGRAM, count);
        if !(1..=MAX_NGRAM).contains(&ngram) {
            return Err(RequestError::Invalid(format!(
                "request: speculative.ngram is {ngram}, must be 1..={MAX_NGRAM}"
            )));
        }
        Ok((max_draft > 0).then_some(SpeculativeConfig {
            max_draft,
            ngram_max: ngram,
            ngram_min: 1,
            cost_aware: settings.cost_aware.unwrap_or(false),
        }))
    }

    /// `logprobs` / `topLogprobs` as [`GenerateOptions::logprobs`]:
    /// `topLogprobs` (0..=20) needs `logprobs: true`.
    fn logprobs_option(&self) -> Result<Option<usize>, RequestError> {
        let top = self.top_logprobs.map(count);
        if let Some(k) = top {
            if k > MAX_TOP_LOGPROBS {
                return Err(RequestError::Invalid(format!(
                    "request: topLogprobs is {k}, at most {MAX_TOP_LOGPROBS}"
                )));
            }
            if k > 0 && self.logprobs != Some(true) {
                return Err(RequestError::Invalid(
                    "request: topLogprobs needs logprobs: true".into(),
                ));
            }
        }
        Ok(match self.logprobs {
            Some(true) => Some(top.unwrap_or(0)),
            _ => None,
        })
    }
}

/// Builds the prompt and options of `req` for a model whose context holds
/// `context_len` positions.
pub fn prepare(tok: &Tokenizer, mut req: Request, context_len: usize) -> Result<Prepared, Error> {
    let spec = req.prompt_spec()?;
    let opts = req.options(tok)?;
    let kind = req.kind.prompt_kind();
    let mut context = None;
    let prompt = match spec {
        PromptSpec::Complete(text) => prompt::completion(tok, &text)?,
        PromptSpec::Infill {
            prefix,
            suffix,
            suffix_first,
            extra,
        } => {
            let mode = match suffix_first {
                true => InfillMode::SuffixPrefixMiddle,
                false => InfillMode::PrefixSuffixMiddle,
            };
            let budget = req
                .max_prompt_tokens
                .map_or(context_len.saturating_sub(opts.max_tokens), count)
                .min(context_len);
            let (ids, ctx) = infill_within(tok, &prefix, &suffix, &extra, mode, budget)?;
            context = Some(ctx);
            ids
        }
        PromptSpec::Chat(messages) => {
            if prompt::contains_special_tags(&messages) {
                return Err(RequestError::Invalid(format!(
                    "a chat message contains one of the reserved tags {:?}",
                    prompt::SPECIAL_TAGS
                ))
                .into());
            }
            prompt::chat(tok, &messages)?
        }
    };
    Ok(Prepared {
        kind,
        prompt,
        opts,
        context,
    })
}
