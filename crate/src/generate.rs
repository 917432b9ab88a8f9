//! The generation loop: prompt in, streamed text out, stopping at the mode's
//! stop tokens, at user stop strings (also when one spans tokens; the stop
//! string itself is never emitted), at `max_tokens`, at the context limit, or
//! when the caller's cancel flag is raised; optionally also at a deadline
//! ([`GenerateOptions::max_time`]), at the end of the first line
//! ([`GenerateOptions::single_line`]) or at a line indented less than
//! [`GenerateOptions::min_indent`] (the text rules of [`LineRules`]).
//!
//! With [`GenerateOptions::speculative`], steps whose continuation a
//! prompt-lookup draft guesses ([`crate::speculative`]) feed the draft with
//! the last token and take every sample up to the first one that differs
//! from it ([`Backend::verify`]); each taken token then goes through the same
//! stop rules as a plainly decoded one, so the tokens are those of plain
//! decoding, fewer forward passes apart.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::cpu::CpuDecoder;
use crate::error::Error;
use crate::logprobs::TokenLogprobs;
use crate::sampler::{Sampler, SamplerConfig};
use crate::speculative::cost::PassCosts;
use crate::speculative::{Drafter, SpeculativeConfig, SpeculativeError};
use crate::tokenizer::{StreamDecoder, Tokenizer};

/// Why generation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// A stop token of the mode (EOS; EOT for infill).
    StopToken,
    /// A user stop string.
    StopString,
    /// `max_tokens` were generated.
    MaxTokens,
    /// The context is full (before `max_tokens`; OpenAI's `finish_reason`
    /// reports both as `"length"`).
    ContextFull,
    /// The caller's cancel flag was raised ([`GenerateOptions::cancel`]).
    Aborted,
    /// [`GenerateOptions::max_time`] passed (the text so far is the result).
    Deadline,
    /// [`GenerateOptions::single_line`]: the first line ended.
    LineEnd,
    /// [`GenerateOptions::min_indent`]: a line was indented less.
    Indent,
}

/// What a generation request asks for.
#[derive(Clone, Debug, Default)]
pub struct GenerateOptions {
    pub sampler: SamplerConfig,
    pub max_tokens: usize,
    /// Text that ends generation; it is not emitted.
    pub stop: Vec<String>,
    /// Token ids that end generation (from the prompt mode).
    pub stop_ids: Vec<u32>,
    /// Whether the text continues the prompt's text (completion, infill: every
    /// space kept) or starts afresh (a chat reply: the first piece's space
    /// prefix dropped, as Meta's decoding does).
    pub continuation: bool,
    /// Checked before each token: once raised, generation stops with
    /// [`StopReason::Aborted`] (the text so far stays emitted).
    pub cancel: Option<Arc<AtomicBool>>,
    /// Per-token log-probabilities: `None` off (nothing computed or read
    /// back); `Some(k)`: each generated token's and the `k` (0..=20) most
    /// likely tokens' ([`crate::logprobs`]), in [`GenerateStats::logprobs`].
    pub logprobs: Option<usize>,
    /// Seconds from the start of [`Session::generate_events`] (before the
    /// prompt is computed) after which generation stops with
    /// [`StopReason::Deadline`]. Checked before each token after the first:
    /// the first token always comes, however long the prompt took.
    pub max_time: Option<f64>,
    /// End at the first line break that follows generated non-whitespace
    /// text; the break is not emitted ([`StopReason::LineEnd`]).
    pub single_line: bool,
    /// End when a generated line after the first one starts with fewer than
    /// this many columns of indentation (space and tab count one each); that
    /// line and the line breaks before it are not emitted
    /// ([`StopReason::Indent`]). Whitespace-only lines do not count.
    pub min_indent: Option<usize>,
    /// Prompt-lookup speculative decoding ([`crate::speculative`]): `None`
    /// or `max_draft` 0 is off. Ignored when [`GenerateOptions::logprobs`]
    /// asks for log-probabilities (those come from one position at a time).
    pub speculative: Option<SpeculativeConfig>,
}

impl GenerateOptions {
    fn cancelled(&self) -> bool {
        self.cancel
            .as_ref()
            .is_some_and(|c| c.load(Ordering::Relaxed))
    }
}

/// What [`Session::generate_events`] reports as it goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GenerateEvent<'a> {
    /// The prompt is in the cache (computed, not only queued); `computed` of
    /// its tokens were computed.
    Prefilled { computed: usize },
    /// A token was sampled (its text, if any, follows as [`GenerateEvent::Text`]
    /// unless held back by a stop string prefix or an incomplete character).
    Token(u32),
    /// New text.
    Text(&'a str),
}

/// Counts for one request.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct GenerateStats {
    pub prompt_tokens: usize,
    /// Prompt tokens actually computed (the rest came from the cache).
    pub prompt_tokens_computed: usize,
    pub generated_tokens: usize,
    pub stop_reason: StopReason,
    /// Tokens drafted by speculative decoding (0 when it is off).
    pub drafted_tokens: usize,
    /// Drafted tokens that were accepted (each one a forward pass saved).
    pub accepted_tokens: usize,
    /// Forward passes whose logits were sampled: the prompt's, one per
    /// decoding step, one per verification. Without speculation it equals
    /// `generated_tokens`.
    pub forward_passes: usize,
    /// One per generated token when [`GenerateOptions::logprobs`] asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<Vec<TokenLogprobs>>,
}

/// The context a prompt did not fit in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the prompt has {prompt} tokens but the context holds {context}")]
pub struct ContextOverflow {
    pub prompt: usize,
    pub context: usize,
}

/// What a generation loop needs from a decoder (the CPU reference or the GPU
/// engine): feed tokens, pick the next one, forget a suffix.
#[allow(async_fn_in_trait)]
pub trait Backend {
    /// Positions the KV cache can hold.
    fn max_len(&self) -> usize;
    /// Keeps the first `n` positions of the cache.
    fn truncate(&mut self, n: usize);
    /// Feeds `tokens` at the next positions; afterwards the distribution of the
    /// token after the last one is ready for [`Backend::sample`].
    async fn feed(&mut self, tokens: &[u32]) -> Result<(), Error>;
    /// Waits until the tokens fed so far are computed (a GPU backend queues
    /// work and returns); for timings only.
    async fn sync(&mut self) -> Result<(), Error> {
        Ok(())
    }

    /// Picks the next token. `recent` holds the tokens so far (prompt and
    /// generated); `step` is the sampler's draw index.
    async fn sample(
        &mut self,
        cfg: &SamplerConfig,
        recent: &[u32],
        step: u32,
    ) -> Result<u32, Error>;
    /// Feeds `token`, then samples the one after it (a backend may do both in
    /// one device round trip).
    async fn step_and_sample(
        &mut self,
        token: u32,
        cfg: &SamplerConfig,
        recent: &[u32],
        step: u32,
    ) -> Result<u32, Error> {
        self.feed(&[token]).await?;
        self.sample(cfg, recent, step).await
    }

    /// Speculative verification. Feeds `tokens` (the token sampled last, not
    /// yet fed, then the drafted ones) at the next positions and samples
    /// after each: `out[i]` is the token that follows `tokens[..=i]`, drawn
    /// with index `step + i` from the sampler `cfg`, its repetition window
    /// seeing `recent` followed by `tokens[1..=i]` (`recent` already ends with
    /// `tokens[0]`). May return early, after the first `i` where
    /// `out[i] != tokens[i + 1]` (that sample is included); never returns more
    /// than `tokens.len()` samples. The cache afterwards holds at least the
    /// positions of `tokens[..out.len()]`; the caller truncates what it
    /// rejects.
    ///
    /// The default runs [`Backend::step_and_sample`] once per position and
    /// stops at the first mismatch: each sample is the very one plain
    /// decoding would draw at that step, so it is exact by construction (a
    /// backend overrides it to compute the positions as one batch).
    async fn verify(
        &mut self,
        tokens: &[u32],
        cfg: &SamplerConfig,
        recent: &[u32],
        step: u32,
    ) -> Result<Vec<u32>, Error> {
        let mut out = Vec::with_capacity(tokens.len());
        let mut window: Vec<u32> = Vec::new();
        for (i, &token) in tokens.iter().enumerate() {
            let seen = if i == 0 {
                recent
            } else {
                if window.is_empty() {
                    window.extend_from_slice(recent);
                }
                window.push(token);
                &window
            };
            let id = self
                .step_and_sample(token, cfg, seen, step + i as u32)
                .await?;
            out.push(id);
            if tokens.get(i + 1) != Some(&id) {
                break;
            }
        }
        Ok(out)
    }

    /// Makes ready what [`Backend::verify`] needs, so that the first
    /// verification's time is a verification's (a GPU backend binds its
    /// verification kernels, compiling their pipelines). [`Backend::verify`]
    /// works without it; the default has nothing to make.
    async fn prepare_verify(&mut self) -> Result<(), Error> {
        Ok(())
    }

    /// Positions [`Backend::verify`] computes together: one returning `s`
    /// samples of `n` positions fed computed `min(n, ⌈s / b⌉ · b)` of them
    /// (what the time of a pass is a time of). 1 for the default, which
    /// steps position by position.
    fn verify_width(&self) -> usize {
        1
    }

    /// Whether steps with `cfg` can be launched before the previous token is
    /// read ([`Backend::launch`]); backends without it say no.
    fn can_pipeline(&self, _cfg: &SamplerConfig) -> bool {
        false
    }

    /// Starts feeding `token` (`None`: the token the previous launched step
    /// sampled, left on the device) and sampling the next one, without
    /// waiting; [`Backend::finish`] returns the tokens in launch order. Only
    /// called where [`Backend::can_pipeline`] says yes.
    async fn launch(
        &mut self,
        _token: Option<u32>,
        _cfg: &SamplerConfig,
        _recent: &[u32],
        _step: u32,
    ) -> Result<(), Error> {
        Err(crate::gpu::GpuError::Internal("this backend does not pipeline".into()).into())
    }

    /// The token of the oldest launched step.
    async fn finish(&mut self) -> Result<u32, Error> {
        Err(crate::gpu::GpuError::Internal("this backend does not pipeline".into()).into())
    }

    /// [`Backend::sample`], with the chosen token's log-probability and the
    /// `top` most likely tokens' ([`crate::logprobs`]).
    async fn sample_logprobs(
        &mut self,
        _cfg: &SamplerConfig,
        _recent: &[u32],
        _step: u32,
        _top: usize,
    ) -> Result<TokenLogprobs, Error> {
        Err(crate::gpu::GpuError::Internal(
            "this backend does not compute log-probabilities".into(),
        )
        .into())
    }

    /// Feeds `token`, then [`Backend::sample_logprobs`].
    async fn step_and_sample_logprobs(
        &mut self,
        token: u32,
        cfg: &SamplerConfig,
        recent: &[u32],
        step: u32,
        top: usize,
    ) -> Result<TokenLogprobs, Error> {
        self.feed(&[token]).await?;
        self.sample_logprobs(cfg, recent, step, top).await
    }
}

impl Backend for CpuDecoder<'_> {
    fn max_len(&self) -> usize {
        CpuDecoder::max_len(self)
    }

    fn truncate(&mut self, n: usize) {
        CpuDecoder::truncate(self, n)
    }

    async fn feed(&mut self, tokens: &[u32]) -> Result<(), Error> {
        for &t in tokens {
            self.step(t)?;
        }
        Ok(())
    }

    async fn sample(
        &mut self,
        cfg: &SamplerConfig,
        recent: &[u32],
        step: u32,
    ) -> Result<u32, Error> {
        let logits = self.last_logits().ok_or_else(|| ContextOverflow {
            prompt: 0,
            context: CpuDecoder::max_len(self),
        })?;
        Ok(Sampler::new(cfg.clone())?.sample(logits, recent, step)?)
    }

    async fn sample_logprobs(
        &mut self,
        cfg: &SamplerConfig,
        recent: &[u32],
        step: u32,
        top: usize,
    ) -> Result<TokenLogprobs, Error> {
        let id = Backend::sample(self, cfg, recent, step).await?;
        let logits = self.last_logits().ok_or_else(|| ContextOverflow {
            prompt: 0,
            context: CpuDecoder::max_len(self),
        })?;
        Ok(crate::logprobs::token_logprobs(logits, id, top)?)
    }
}

/// A decoder with the tokens its KV cache holds, so that a new prompt sharing
/// a prefix with the last one only computes the new tail.
pub struct Session<B: Backend> {
    pub decoder: B,
    tokens: Vec<u32>,
    /// Wall times of plain steps and verification passes while drafting,
    /// kept across requests (cost-aware speculative decoding).
    pass_costs: PassCosts,
}

impl<B: Backend> Session<B> {
    pub fn new(decoder: B) -> Self {
        Session {
            decoder,
            tokens: Vec::new(),
            pass_costs: PassCosts::default(),
        }
    }

    /// Tokens in the cache.
    pub fn tokens(&self) -> &[u32] {
        &self.tokens
    }

    /// Forgets the cache: the next prompt is computed from scratch.
    pub fn reset(&mut self) {
        self.decoder.truncate(0);
        self.tokens.clear();
    }

    /// Computes `prompt`, reusing the longest cached prefix; returns how many
    /// tokens were computed.
    pub async fn prefill(&mut self, prompt: &[u32]) -> Result<usize, Error> {
        if prompt.is_empty() || prompt.len() > self.decoder.max_len() {
            return Err(ContextOverflow {
                prompt: prompt.len(),
                context: self.decoder.max_len(),
            }
            .into());
        }
        let shared = self
            .tokens
            .iter()
            .zip(prompt)
            .take_while(|(a, b)| a == b)
            .count()
            // The last prompt token is always run again to get its logits.
            .min(prompt.len() - 1);
        self.decoder.truncate(shared);
        self.tokens.truncate(shared);
        let tail = &prompt[shared..];
        let fed = self.decoder.feed(tail).await;
        if fed.is_err() {
            // What the cache holds is unknown: forget it.
            self.decoder.truncate(0);
            self.tokens.clear();
        }
        fed?;
        self.tokens.extend_from_slice(tail);
        Ok(tail.len())
    }

    /// Generates from `prompt`, calling `on_text` with each piece of new text.
    pub async fn generate_async(
        &mut self,
        tok: &Tokenizer,
        prompt: &[u32],
        opts: &GenerateOptions,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<GenerateStats, Error> {
        self.generate_events(tok, prompt, opts, &mut |ev| {
            if let GenerateEvent::Text(t) = ev {
                on_text(t)
            }
        })
        .await
    }

    /// [`Session::generate_async`], reporting also when the prompt is in the
    /// cache and each sampled token (for timings).
    pub async fn generate_events(
        &mut self,
        tok: &Tokenizer,
        prompt: &[u32],
        opts: &GenerateOptions,
        on_event: &mut dyn FnMut(GenerateEvent<'_>),
    ) -> Result<GenerateStats, Error> {
        opts.sampler.validate()?;
        if let Some(top) = opts.logprobs {
            crate::logprobs::check_top(top)?;
        }
        if let Some(s) = &opts.speculative {
            s.validate()?;
        }
        // Speculative decoding (not with log-probabilities: those are read
        // per sampled position); what verification needs is made before the
        // clock starts (the first time: pipelines to compile).
        let mut drafter = opts
            .speculative
            .filter(|s| s.enabled() && opts.logprobs.is_none())
            .map(Drafter::new);
        if drafter.is_some() {
            self.decoder.prepare_verify().await?;
        }
        let start = crate::clock::now();
        let computed = self.prefill(prompt).await?;
        self.decoder.sync().await?;
        on_event(GenerateEvent::Prefilled { computed });
        let deadline = opts.max_time.map(|s| start + s);
        let mut out = TextOut {
            stream: if opts.continuation {
                StreamDecoder::continuation(tok)
            } else {
                StreamDecoder::new(tok)
            },
            stops: StopMatcher::new(&opts.stop),
            rules: LineRules::new(opts.single_line, opts.min_indent),
            rule_stop: None,
            generated: 0,
        };
        let mut pending: Option<u32> = None;
        let (mut drafted, mut accepted, mut forward_passes) = (0usize, 0usize, 0usize);
        // Pipelined decoding (GPU backends, samplers that do not look at the
        // recent tokens; not with speculation, which needs each token before
        // the next step): the step after the one whose token is awaited is
        // already launched, fed by the token still on the device; the cache
        // then holds up to two positions past `self.tokens`, cut back below.
        let pipelined = drafter.is_none()
            && self.decoder.can_pipeline(&opts.sampler)
            && opts.logprobs.is_none();
        let mut logprobs = Vec::new();
        let mut in_flight = 0usize;
        let result: Result<StopReason, Error> = async {
            Ok(loop {
                if let Some(r) = before_token(opts, out.generated, deadline) {
                    break r;
                }
                let step = out.generated as u32;
                if let (Some(d), Some(last)) = (drafter.as_mut(), pending) {
                    // The cache holds `self.tokens` but `last`; a verification
                    // feeds `last` and the draft, yielding up to one token more
                    // than the draft holds.
                    let limit = (opts.max_tokens - out.generated - 1)
                        .min(self.decoder.max_len() - self.tokens.len());
                    let draft = d.draft(&self.tokens, limit, &self.pass_costs);
                    if !draft.is_empty() {
                        pending = None;
                        let mut fed = Vec::with_capacity(draft.len() + 1);
                        fed.push(last);
                        fed.extend_from_slice(&draft);
                        let started = crate::clock::now();
                        let samples = self
                            .decoder
                            .verify(&fed, &opts.sampler, &self.tokens, step)
                            .await?;
                        // The time of the positions computed (a backend
                        // that stops at the first rejection ran fewer).
                        let b = self.decoder.verify_width().max(1);
                        let computed = fed.len().min(samples.len().div_ceil(b) * b);
                        self.pass_costs
                            .record(computed, crate::clock::now() - started);
                        let a = samples
                            .iter()
                            .zip(&draft)
                            .take_while(|(s, d)| s == d)
                            .count();
                        // Every sample up to the first mismatch, that one
                        // included (or the one after a fully accepted draft).
                        if samples.len() > fed.len() || samples.len() <= a {
                            return Err(SpeculativeError::Verify {
                                fed: fed.len(),
                                returned: samples.len(),
                                accepted: a,
                            }
                            .into());
                        }
                        d.record(draft.len(), a);
                        drafted += draft.len();
                        accepted += a;
                        forward_passes += 1;
                        // Each token as plain decoding would take it; the ones
                        // after a stop are dropped.
                        for (i, &token) in samples[..=a].iter().enumerate() {
                            let stop = match i {
                                0 => None,
                                _ => before_token(opts, out.generated, deadline),
                            };
                            let stop = match stop {
                                Some(r) => Some(r),
                                None => self.take_token(token, opts, &mut out, on_event)?,
                            };
                            if let Some(r) = stop {
                                // Every token taken so far is in the cache (the
                                // drafted ones were fed); rejected positions are
                                // cut at the end.
                                return Ok(r);
                            }
                        }
                        // `samples[a]` joins the cache with the next step; the
                        // rejected draft positions go now.
                        pending = Some(samples[a]);
                        self.decoder.truncate(self.tokens.len() - 1);
                        continue;
                    }
                }
                let token = match (pending.take(), opts.logprobs) {
                    (None, Some(top)) => {
                        let lp = self
                            .decoder
                            .sample_logprobs(&opts.sampler, &self.tokens, step, top)
                            .await?;
                        let id = lp.id;
                        logprobs.push(lp);
                        id
                    }
                    (Some(last), Some(top)) => {
                        let lp = self
                            .decoder
                            .step_and_sample_logprobs(last, &opts.sampler, &self.tokens, step, top)
                            .await?;
                        let id = lp.id;
                        logprobs.push(lp);
                        id
                    }
                    (None, None) => {
                        self.decoder
                            .sample(&opts.sampler, &self.tokens, step)
                            .await?
                    }
                    (Some(last), None) if pipelined => {
                        if in_flight == 0 {
                            self.decoder
                                .launch(Some(last), &opts.sampler, &self.tokens, step)
                                .await?;
                            in_flight += 1;
                        }
                        // The step after this one, if it may be needed.
                        let more = out.generated + 1 < opts.max_tokens
                            && self.tokens.len() + 1 < self.decoder.max_len();
                        if more && in_flight == 1 {
                            self.decoder
                                .launch(None, &opts.sampler, &self.tokens, step + 1)
                                .await?;
                            in_flight += 1;
                        }
                        in_flight -= 1;
                        self.decoder.finish().await?
                    }
                    (Some(last), None) => {
                        let started = crate::clock::now();
                        let t = self
                            .decoder
                            .step_and_sample(last, &opts.sampler, &self.tokens, step)
                            .await?;
                        if drafter.is_some() {
                            self.pass_costs.record(1, crate::clock::now() - started);
                        }
                        t
                    }
                };
                forward_passes += 1;
                if let Some(r) = self.take_token(token, opts, &mut out, on_event)? {
                    break r;
                }
                // The token joins the cache with the next step; `recent` for its
                // sampling already includes it.
                pending = Some(token);
            })
        }
        .await;
        // Steps launched ahead and not needed: wait for them, drop their tokens.
        let mut drained = Ok(());
        while in_flight > 0 {
            in_flight -= 1;
            if let Err(e) = self.decoder.finish().await {
                drained = Err(e);
            }
        }
        let reason = match result.and_then(|r| drained.map(|_| r)) {
            Ok(r) => r,
            Err(e) => {
                // What the cache holds is unknown: forget it.
                self.decoder.truncate(0);
                self.tokens.clear();
                return Err(e);
            }
        };
        if let Some(t) = pending {
            // Sampled and emitted; fed only by a step launched ahead.
            debug_assert_eq!(self.tokens.last(), Some(&t));
            self.tokens.pop();
        }
        // The cache holds exactly `self.tokens` (steps launched ahead and
        // rejected draft positions fed tokens past them).
        self.decoder.truncate(self.tokens.len());
        let TextOut {
            mut stream,
            mut stops,
            mut rules,
            mut rule_stop,
            generated,
        } = out;
        let mut reason = reason;
        if !matches!(
            reason,
            StopReason::StopString | StopReason::LineEnd | StopReason::Indent
        ) {
            let tail = stream.finish();
            let mut on_text = |t: &str| {
                if rule_stop.is_none() {
                    rule_stop = rules.push(t, &mut |t| on_event(GenerateEvent::Text(t)));
                }
            };
            if !stops.push(&tail, &mut on_text) {
                stops.flush(&mut on_text);
            }
            if let Some(r) = rule_stop {
                reason = r;
            }
        }
        if rule_stop.is_none() {
            // A line still undecided (blank so far) is text like any other.
            rules.flush(&mut |t| on_event(GenerateEvent::Text(t)));
        }
        Ok(GenerateStats {
            prompt_tokens: prompt.len(),
            prompt_tokens_computed: computed,
            generated_tokens: generated,
            stop_reason: reason,
            drafted_tokens: drafted,
            accepted_tokens: accepted,
            forward_passes,
            logprobs: opts.logprobs.map(|_| logprobs),
        })
    }

    /// Takes a sampled token as generated: reports it, applies the stop
    /// tokens, stop strings, line rules and the context limit; `Some` ends
    /// generation (the token is then not in `self.tokens`), else the token is
    /// pushed to `self.tokens`.
    fn take_token(
        &mut self,
        token: u32,
        opts: &GenerateOptions,
        out: &mut TextOut<'_>,
        on_event: &mut dyn FnMut(GenerateEvent<'_>),
    ) -> Result<Option<StopReason>, Error> {
        out.generated += 1;
        on_event(GenerateEvent::Token(token));
        if opts.stop_ids.contains(&token) {
            return Ok(Some(StopReason::StopToken));
        }
        let text = out.stream.push(token)?;
        let (rules, rule_stop) = (&mut out.rules, &mut out.rule_stop);
        let hit = out.stops.push(&text, &mut |t| {
            if rule_stop.is_none() {
                *rule_stop = rules.push(t, &mut |t| on_event(GenerateEvent::Text(t)));
            }
        });
        if let Some(r) = out.rule_stop {
            return Ok(Some(r));
        }
        if hit {
            return Ok(Some(StopReason::StopString));
        }
        if self.tokens.len() >= self.decoder.max_len() {
            return Ok(Some(StopReason::ContextFull));
        }
        self.tokens.push(token);
        Ok(None)
    }

    /// [`Session::generate_async`], blocking (native only).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn generate(
        &mut self,
        tok: &Tokenizer,
        prompt: &[u32],
        opts: &GenerateOptions,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<GenerateStats, Error> {
        pollster::block_on(self.generate_async(tok, prompt, opts, on_text))
    }
}

/// The text side of a generation: sampled tokens to text, held back while a
/// stop string or line rule may still retract it.
struct TextOut<'a> {
    stream: StreamDecoder<'a>,
    stops: StopMatcher<'a>,
    rules: LineRules,
    /// The line rule that ended the text, once one did.
    rule_stop: Option<StopReason>,
    /// Tokens taken.
    generated: usize,
}

/// The checks before each token: cancel flag, `max_tokens`, deadline (after
/// the first token).
fn before_token(
    opts: &GenerateOptions,
    generated: usize,
    deadline: Option<f64>,
) -> Option<StopReason> {
    if opts.cancelled() {
        return Some(StopReason::Aborted);
    }
    if generated >= opts.max_tokens {
        return Some(StopReason::MaxTokens);
    }
    if generated > 0 && deadline.is_some_and(|d| crate::clock::now() >= d) {
        return Some(StopReason::Deadline);
    }
    None
}

/// Holds back text that could be the start of a stop string.
pub struct StopMatcher<'a> {
    stops: &'a [String],
    held: String,
}

impl<'a> StopMatcher<'a> {
    pub fn new(stops: &'a [String]) -> Self {
        StopMatcher {
            stops,
            held: String::new(),
        }
    }

    /// Adds text; emits what can no longer be part of a stop string. Returns
    /// true when a stop string has appeared (the text before it is emitted).
    pub fn push(&mut self, text: &str, emit: &mut dyn FnMut(&str)) -> bool {
        self.held.push_str(text);
        let first = self
            .stops
            .iter()
            .filter(|s| !s.is_empty())
            .filter_map(|s| self.held.find(s.as_str()))
            .min();
        if let Some(at) = first {
            if at > 0 {
                emit(&self.held[..at]);
            }
            self.held.clear();
            return true;
        }
        // Keep the longest suffix that is a proper prefix of some stop string.
        let keep = self
            .stops
            .iter()
            .map(|s| longest_suffix_prefix(&self.held, s))
            .max()
            .unwrap_or(0);
        let cut = self.held.len() - keep;
        if cut > 0 {
            emit(&self.held[..cut]);
            self.held.drain(..cut);
        }
        false
    }

    /// Emits whatever is still held (at the end of generation).
    pub fn flush(&mut self, emit: &mut dyn FnMut(&str)) {
        if !self.held.is_empty() {
            emit(&self.held);
            self.held.clear();
        }
    }
}

/// The line rules of ghost text ([`GenerateOptions::single_line`],
/// [`GenerateOptions::min_indent`]) applied to the text stream: text is
/// emitted once no rule can retract it (a line break and the indentation
/// after it are held until the line's first non-whitespace character).
pub struct LineRules {
    single_line: bool,
    min_indent: Option<usize>,
    /// Non-whitespace text was emitted.
    seen_text: bool,
    /// Held back: line breaks and the indentation of the line being decided.
    held: String,
}

impl LineRules {
    pub fn new(single_line: bool, min_indent: Option<usize>) -> Self {
        LineRules {
            single_line,
            min_indent,
            seen_text: false,
            held: String::new(),
        }
    }

    /// Adds text; emits what is decided. Returns the rule that ended the
    /// text, if one did (nothing after it is emitted).
    pub fn push(&mut self, text: &str, emit: &mut dyn FnMut(&str)) -> Option<StopReason> {
        let mut out = String::new();
        let mut stop = None;
        for c in text.chars() {
            if c == '\n' {
                if self.single_line && self.seen_text {
                    stop = Some(StopReason::LineEnd);
                    break;
                }
                if self.min_indent.is_some() {
                    // Whitespace-only lines stay held with the next one.
                    self.held.push(c);
                } else {
                    out.push(c);
                }
            } else if !self.held.is_empty() {
                if c == ' ' || c == '\t' {
                    self.held.push(c);
                } else if c.is_whitespace() {
                    // '\r' and other blanks: part of the held line, no column.
                    self.held.push(c);
                } else {
                    let line = &self.held[self.held.rfind('\n').map_or(0, |i| i + 1)..];
                    let cols = line.chars().filter(|&c| c == ' ' || c == '\t').count();
                    if self.min_indent.is_some_and(|n| cols < n) {
                        stop = Some(StopReason::Indent);
                        break;
                    }
                    out.push_str(&self.held);
                    self.held.clear();
                    out.push(c);
                    self.seen_text = true;
                }
            } else {
                out.push(c);
                if !c.is_whitespace() {
                    self.seen_text = true;
                }
            }
        }
        if stop.is_some() {
            self.held.clear();
        }
        if !out.is_empty() {
            emit(&out);
        }
        stop
    }

    /// Emits what is still held (at the end of generation: trailing blank
    /// lines are text like any other).
    pub fn flush(&mut self, emit: &mut dyn FnMut(&str)) {
        if !self.held.is_empty() {
            emit(&self.held);
            self.held.clear();
        }
    }
}

/// Length of the longest suffix of `text` that is a proper prefix of `stop`,
/// on character boundaries.
fn longest_suffix_prefix(text: &str, stop: &str) -> usize {
    let max = stop.len().saturating_sub(1).min(text.len());
    (1..=max)
        .rev()
        .find(|&n| {
            text.is_char_boundary(text.len() - n) && stop.starts_with(&text[text.len() - n..])
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(stops: &[&str], pieces: &[&str]) -> (String, bool) {
        let stops: Vec<String> = stops.iter().map(|s| s.to_string()).collect();
        let mut m = StopMatcher::new(&stops);
        let mut out = String::new();
        let mut emit = |s: &str| out.push_str(s);
        for p in pieces {
            if m.push(p, &mut emit) {
                return (out, true);
            }
        }
        m.flush(&mut emit);
        (out, false)
    }

    #[test]
    fn stop_strings_spanning_pieces_are_not_emitted() {
        assert_eq!(run(&["\n\n"], &["a", "b\n", "\nc"]), ("ab".into(), true));
        assert_eq!(run(&["END"], &["xE", "N", "D!"]), ("x".into(), true));
        assert_eq!(run(&["END"], &["xE", "N", "d"]), ("xENd".into(), false));
        assert_eq!(run(&["ab", "b"], &["xab"]), ("x".into(), true));
        assert_eq!(run(&[], &["é", "ü"]), ("éü".into(), false));
        assert_eq!(run(&["日本"], &["x日", "本"]), ("x".into(), true));
    }

    /// Feeds `pieces` through the line rules; returns the text and the rule that stopped.
    fn lines(single: bool, indent: Option<usize>, pieces: &[&str]) -> (String, Option<StopReason>) {
        let mut r = LineRules::new(single, indent);
        let mut out = String::new();
        let mut emit = |s: &str| out.push_str(s);
        for p in pieces {
            if let Some(stop) = r.push(p, &mut emit) {
                return (out, Some(stop));
            }
        }
        r.flush(&mut emit);
        (out, None)
    }

    /// Every way of cutting `text` into two and three pieces gives the same result.
    fn all_splits(single: bool, indent: Option<usize>, text: &str) -> (String, Option<StopReason>) {
        let whole = lines(single, indent, &[text]);
        let bounds: Vec<usize> = (0..=text.len())
            .filter(|&i| text.is_char_boundary(i))
            .collect();
        for &a in &bounds {
            for &b in bounds.iter().filter(|&&b| b >= a) {
                let got = lines(single, indent, &[&text[..a], &text[a..b], &text[b..]]);
                assert_eq!(got, whole, "{text:?} cut at {a}, {b}");
            }
        }
        whole
    }

    #[test]
    fn single_line_ends_at_the_first_break_after_text() {
        use StopReason::LineEnd;
        assert_eq!(
            all_splits(true, None, "x = 1\ny = 2"),
            ("x = 1".into(), Some(LineEnd))
        );
        // Leading breaks and blanks come before any text: kept.
        assert_eq!(
            all_splits(true, None, "\n  \n    ret\nz"),
            ("\n  \n    ret".into(), Some(LineEnd))
        );
        assert_eq!(all_splits(true, None, "abc"), ("abc".into(), None));
        assert_eq!(all_splits(false, None, "a\nb"), ("a\nb".into(), None));
    }

    #[test]
    fn indentation_stop_drops_the_less_indented_line() {
        use StopReason::Indent;
        let body = "x = 1\n    y = 2\n\n    return y\nprint(f())\n";
        assert_eq!(
            all_splits(false, Some(4), body),
            ("x = 1\n    y = 2\n\n    return y".into(), Some(Indent))
        );
        // The first line is never judged; tabs count one column each.
        assert_eq!(
            all_splits(false, Some(2), "a\n\t\tb\n\tc"),
            ("a\n\t\tb".into(), Some(Indent))
        );
        // Whitespace-only lines do not count, and end as they are.
        assert_eq!(
            all_splits(false, Some(4), "a\n  \n      b\n  "),
            ("a\n  \n      b\n  ".into(), None)
        );
        assert_eq!(
            all_splits(false, Some(0), "a\nb\n"),
            ("a\nb\n".into(), None)
        );
        // Both rules: whichever comes first.
        assert_eq!(
            all_splits(true, Some(4), "\n    x\ny"),
            ("\n    x".into(), Some(StopReason::LineEnd))
        );
        assert_eq!(all_splits(true, Some(4), "\nx"), ("".into(), Some(Indent)));
    }

    #[test]
    fn line_rules_compose_with_stop_strings() {
        let stops = vec!["END".to_string()];
        let run = |pieces: &[&str]| {
            let mut m = StopMatcher::new(&stops);
            let mut r = LineRules::new(false, Some(2));
            let mut out = String::new();
            let mut rule = None;
            for p in pieces {
                let hit = m.push(p, &mut |t| {
                    if rule.is_none() {
                        rule = r.push(t, &mut |t| out.push_str(t));
                    }
                });
                if rule.is_some() || hit {
                    return (out, rule, hit);
                }
            }
            (out, rule, false)
        };
        assert_eq!(run(&["a\n  bE", "ND\nc"]), ("a\n  b".into(), None, true));
        assert_eq!(
            run(&["a\n  bE", "N\nc"]),
            ("a\n  bEN".into(), Some(StopReason::Indent), false)
        );
    }
}
