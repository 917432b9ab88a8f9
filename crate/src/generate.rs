//! The generation loop: prompt in, streamed text out, stopping at the mode's
//! stop tokens, at user stop strings (also when one spans tokens; the stop
//! string itself is never emitted), at `max_tokens`, or at the context limit.

use crate::cpu::CpuDecoder;
use crate::error::Error;
use crate::sampler::{Sampler, SamplerConfig};
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
    /// The context is full.
    Length,
}

/// What a generation request asks for.
#[derive(Clone, Debug)]
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
}

/// Counts for one request.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct GenerateStats {
    pub prompt_tokens: usize,
    /// Prompt tokens actually computed (the rest came from the cache).
    pub prompt_tokens_computed: usize,
    pub generated_tokens: usize,
    pub stop_reason: StopReason,
}

/// The context a prompt did not fit in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the prompt has {prompt} tokens but the context holds {context}")]
pub struct ContextOverflow {
    pub prompt: usize,
    pub context: usize,
}

/// A decoder with the tokens its KV cache holds, so that a new prompt sharing
/// a prefix with the last one only computes the new tail.
pub struct Session<'w> {
    pub decoder: CpuDecoder<'w>,
    tokens: Vec<u32>,
}

impl<'w> Session<'w> {
    pub fn new(decoder: CpuDecoder<'w>) -> Self {
        Session {
            decoder,
            tokens: Vec::new(),
        }
    }

    /// Tokens in the cache.
    pub fn tokens(&self) -> &[u32] {
        &self.tokens
    }

    /// Computes `prompt`, reusing the longest cached prefix; returns the logits
    /// after its last token and how many tokens were computed.
    pub fn prefill(&mut self, prompt: &[u32]) -> Result<(Vec<f32>, usize), Error> {
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
        let mut logits = Vec::new();
        for &t in &prompt[shared..] {
            logits = self.decoder.step(t)?.to_vec();
            self.tokens.push(t);
        }
        Ok((logits, prompt.len() - shared))
    }

    /// Appends one token and returns the next logits.
    pub fn step(&mut self, token: u32) -> Result<&[f32], Error> {
        let logits = self.decoder.step(token)?;
        self.tokens.push(token);
        Ok(logits)
    }

    /// Generates from `prompt`, calling `on_text` with each piece of new text.
    pub fn generate(
        &mut self,
        tok: &Tokenizer,
        prompt: &[u32],
        opts: &GenerateOptions,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<GenerateStats, Error> {
        let mut sampler = Sampler::new(opts.sampler.clone())?;
        let (mut logits, computed) = self.prefill(prompt)?;
        let mut stream = if opts.continuation {
            StreamDecoder::continuation(tok)
        } else {
            StreamDecoder::new(tok)
        };
        let mut stops = StopMatcher::new(&opts.stop);
        let mut generated = 0usize;
        let reason = loop {
            if generated >= opts.max_tokens {
                break StopReason::MaxTokens;
            }
            let token = sampler.sample(&logits, &self.tokens, generated as u32)?;
            generated += 1;
            if opts.stop_ids.contains(&token) {
                break StopReason::StopToken;
            }
            let text = stream.push(token)?;
            if stops.push(&text, on_text) {
                break StopReason::StopString;
            }
            if self.tokens.len() >= self.decoder.max_len() {
                break StopReason::Length;
            }
            logits = self.step(token)?.to_vec();
        };
        if reason != StopReason::StopString {
            let tail = stream.finish();
            if !stops.push(&tail, on_text) {
                stops.flush(on_text);
            }
        }
        Ok(GenerateStats {
            prompt_tokens: prompt.len(),
            prompt_tokens_computed: computed,
            generated_tokens: generated,
            stop_reason: reason,
        })
    }
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
}
