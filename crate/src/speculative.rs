//! Prompt-lookup speculative decoding: the drafter.
//!
//! Code completion and infill mostly write text that already stands nearby
//! (a renamed identifier, a repeated call, the other half of a block), and
//! decoding is memory-bound, so checking several guessed tokens in one
//! forward pass costs about as much as decoding one. The guesses come from
//! the sequence itself, no draft model: the longest recent n-gram of the
//! prompt + generated tokens that occurred earlier proposes the tokens that
//! followed it there (prompt-lookup decoding).
//!
//! # Layout
//!
//! - [`SpeculativeConfig`]: the settings ([`crate::generate::GenerateOptions::speculative`]);
//! - [`Drafter`]: [`Drafter::draft`] looks the n-gram up and proposes up to
//!   K tokens; [`Drafter::record`] adapts K to how many were accepted;
//! - [`lookup`]: the n-gram search alone.
//!
//! The generation loop ([`crate::generate::Session::generate_events`]) feeds
//! the token sampled last and the draft through
//! [`crate::generate::Backend::verify`] and keeps the longest prefix of the
//! draft that equals the samples, plus the first sample that differs (or
//! the one after a fully accepted draft).
//!
//! # Exactness
//!
//! Verification samples position `i` of the draft with the very inputs plain
//! decoding would use at that step: the same logits (the prefix fed is the
//! tokens decoding would have produced, since every draft token before `i`
//! was accepted, i.e. equals the sample), the draw index `step + i` and the
//! repetition window of the tokens so far. A draft token is accepted iff it
//! equals that sample (the standard rule for a deterministic draft), so the
//! tokens kept are exactly the tokens plain decoding produces, greedy or
//! sampled with the same seed; the draft only decides how many of them one
//! forward pass yields. (A backend that computes the positions as one batch
//! must give each row its one-token path's logits bit for bit: the GPU's
//! does, `crate::gpu::decoder::verify`.)
//!
//! # K adaptation
//!
//! K starts at `max_draft`; a fully accepted draft grows it by one (up to
//! `max_draft`), a draft rejected at its first token halves it (down to 1),
//! a partly accepted one leaves it. Each draft is also cut to the caller's
//! limit (what `max_tokens` and the context leave).

/// Most tokens one verification may draft (so it feeds at most
/// `MAX_DRAFT + 1` positions).
pub const MAX_DRAFT: usize = 15;

/// Longest n-gram looked up.
pub const MAX_NGRAM: usize = 16;

/// `max_draft` when a request turns speculation on without saying how much.
pub const DEFAULT_MAX_DRAFT: usize = 8;

/// `ngram_max` by default.
pub const DEFAULT_NGRAM: usize = 4;

/// Prompt-lookup speculative decoding settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpeculativeConfig {
    /// Most tokens drafted per verification (1..=[`MAX_DRAFT`]); 0 is off.
    pub max_draft: usize,
    /// Longest n-gram looked up (at most [`MAX_NGRAM`]).
    pub ngram_max: usize,
    /// Shortest n-gram looked up (≥ 1, ≤ `ngram_max`).
    pub ngram_min: usize,
}

impl Default for SpeculativeConfig {
    fn default() -> Self {
        SpeculativeConfig {
            max_draft: DEFAULT_MAX_DRAFT,
            ngram_max: DEFAULT_NGRAM,
            ngram_min: 1,
        }
    }
}

/// Settings the drafter cannot run with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpeculativeError {
    #[error("speculative decoding drafts at most {MAX_DRAFT} tokens per step, got {0}")]
    MaxDraft(usize),
    #[error("speculative decoding n-gram lengths must satisfy 1 ≤ min ≤ max ≤ {MAX_NGRAM}, got min {min}, max {max}")]
    Ngram { min: usize, max: usize },
    /// A backend's [`crate::generate::Backend::verify`] broke its contract.
    #[error("speculative verification of {fed} tokens returned {returned} samples, {accepted} of them matching the draft")]
    Verify {
        fed: usize,
        returned: usize,
        accepted: usize,
    },
}

impl SpeculativeConfig {
    /// Whether it drafts at all.
    pub fn enabled(&self) -> bool {
        self.max_draft > 0
    }

    pub fn validate(&self) -> Result<(), SpeculativeError> {
        if self.max_draft > MAX_DRAFT {
            return Err(SpeculativeError::MaxDraft(self.max_draft));
        }
        if self.ngram_min == 0 || self.ngram_min > self.ngram_max || self.ngram_max > MAX_NGRAM {
            return Err(SpeculativeError::Ngram {
                min: self.ngram_min,
                max: self.ngram_max,
            });
        }
        Ok(())
    }
}

/// Where the longest suffix n-gram of `seq` (at most `ngram_max` tokens, at
/// least `ngram_min`) occurred last before the end: the index just past that
/// earlier occurrence, so that `seq[at..]` are the tokens that followed it
/// (never empty). Among equally long matches the latest wins. `None` when no
/// suffix of `ngram_min` tokens or more occurred earlier.
pub fn lookup(seq: &[u32], ngram_min: usize, ngram_max: usize) -> Option<usize> {
    let len = seq.len();
    if ngram_min == 0 || len < ngram_min + 1 {
        return None;
    }
    let last = seq[len - 1];
    let mut best: Option<(usize, usize)> = None; // (n, at)
                                                 // `end` is the index of the candidate occurrence's last token, latest first.
    for end in (0..len - 1).rev() {
        if seq[end] != last {
            continue;
        }
        // Length of the common run ending at `end` and at the sequence's end.
        let limit = ngram_max.min(end + 1);
        let n = (0..limit)
            .take_while(|&k| seq[end - k] == seq[len - 1 - k])
            .count();
        if n >= ngram_min && best.is_none_or(|(b, _)| n > b) {
            best = Some((n, end + 1));
            if n == ngram_max {
                break;
            }
        }
    }
    best.map(|(_, at)| at)
}

/// Proposes draft tokens and adapts how many.
#[derive(Clone, Debug)]
pub struct Drafter {
    cfg: SpeculativeConfig,
    /// Tokens the next draft may hold (1..=max_draft).
    k: usize,
}

impl Drafter {
    /// A drafter for `cfg` (which must be [enabled](SpeculativeConfig::enabled)).
    pub fn new(cfg: SpeculativeConfig) -> Self {
        Drafter {
            cfg,
            k: cfg.max_draft.max(1),
        }
    }

    /// Tokens the next draft may hold.
    pub fn k(&self) -> usize {
        self.k
    }

    /// Up to `min(K, limit)` tokens that followed the last occurrence of the
    /// longest suffix n-gram of `seq` (prompt and generated tokens, the token
    /// sampled last included); empty when none occurred or `limit` is 0.
    pub fn draft(&self, seq: &[u32], limit: usize) -> Vec<u32> {
        let n = self.k.min(limit);
        if n == 0 {
            return Vec::new();
        }
        match lookup(seq, self.cfg.ngram_min, self.cfg.ngram_max) {
            Some(at) => seq[at..].iter().take(n).copied().collect(),
            None => Vec::new(),
        }
    }

    /// Adapts K to a verification of `drafted` tokens that accepted
    /// `accepted` of them.
    pub fn record(&mut self, drafted: usize, accepted: usize) {
        if drafted == 0 {
            return;
        }
        if accepted >= drafted {
            self.k = (self.k + 1).min(self.cfg.max_draft.max(1));
        } else if accepted == 0 {
            self.k = (self.k / 2).max(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_prefers_the_longest_then_the_latest_match() {
        // Suffix [1, 2, 3]: a 3-gram at 0..3 (followed by 9), a 1-gram (3) later.
        let seq = [1, 2, 3, 9, 5, 3, 7, 1, 2, 3];
        assert_eq!(lookup(&seq, 1, 4), Some(3));
        // Only 1-grams allowed: the latest earlier 3 (at 5, followed by 7).
        assert_eq!(lookup(&seq, 1, 1), Some(6));
        // Two 2-gram matches [2, 3]: the latest one wins.
        let seq = [2, 3, 4, 2, 3, 5, 2, 3];
        assert_eq!(lookup(&seq, 2, 4), Some(5));
        // Nothing long enough.
        assert_eq!(lookup(&seq, 3, 4), None);
        assert_eq!(lookup(&[1, 2, 3], 1, 4), None);
        assert_eq!(lookup(&[7], 1, 4), None);
        assert_eq!(lookup(&[], 1, 4), None);
    }

    #[test]
    fn lookup_stops_at_ngram_max_and_handles_runs() {
        // A run of one token: the suffix matches itself shifted by one.
        let seq = [5, 5, 5, 5];
        assert_eq!(lookup(&seq, 1, 2), Some(3));
        assert_eq!(lookup(&seq, 1, 4), Some(3));
        // With ngram_max 1 the latest single-token match wins over a longer one.
        let seq = [1, 2, 8, 0, 2, 6, 1, 2];
        assert_eq!(lookup(&seq, 1, 1), Some(5));
        assert_eq!(lookup(&seq, 1, 2), Some(2));
    }

    #[test]
    fn draft_is_cut_to_k_and_the_limit() {
        let seq = [1, 2, 3, 4, 5, 6, 7, 8, 1, 2];
        let cfg = SpeculativeConfig {
            max_draft: 4,
            ..Default::default()
        };
        let d = Drafter::new(cfg);
        assert_eq!(d.k(), 4);
        assert_eq!(d.draft(&seq, 100), vec![3, 4, 5, 6]);
        assert_eq!(d.draft(&seq, 2), vec![3, 4]);
        assert!(d.draft(&seq, 0).is_empty());
        // Near the end of the sequence: only what follows the match.
        let seq = [1, 2, 3, 1, 2];
        assert_eq!(d.draft(&seq, 100), vec![3, 1, 2]);
        assert!(d.draft(&[1, 2, 3], 100).is_empty());
    }

    #[test]
    fn k_grows_on_full_acceptance_and_halves_on_a_first_token_rejection() {
        let mut d = Drafter::new(SpeculativeConfig {
            max_draft: 8,
            ..Default::default()
        });
        assert_eq!(d.k(), 8);
        d.record(8, 8);
        assert_eq!(d.k(), 8, "never above max_draft");
        d.record(8, 0);
        assert_eq!(d.k(), 4);
        d.record(4, 2);
        assert_eq!(d.k(), 4, "partial acceptance keeps K");
        d.record(4, 0);
        d.record(2, 0);
        d.record(1, 0);
        assert_eq!(d.k(), 1, "never below 1");
        d.record(1, 1);
        assert_eq!(d.k(), 2);
        // A draft cut short by the limit and fully accepted still grows K.
        d.record(1, 1);
        assert_eq!(d.k(), 3);
        d.record(0, 0);
        assert_eq!(d.k(), 3, "no draft, no change");
    }

    #[test]
    fn config_limits() {
        assert_eq!(SpeculativeConfig::default().validate(), Ok(()));
        let off = SpeculativeConfig {
            max_draft: 0,
            ..Default::default()
        };
        assert!(!off.enabled());
        assert_eq!(off.validate(), Ok(()));
        let big = SpeculativeConfig {
            max_draft: MAX_DRAFT + 1,
            ..Default::default()
        };
        assert_eq!(
            big.validate(),
            Err(SpeculativeError::MaxDraft(MAX_DRAFT + 1))
        );
        for (min, max) in [(0, 4), (5, 4), (1, MAX_NGRAM + 1)] {
            let c = SpeculativeConfig {
                ngram_min: min,
                ngram_max: max,
                ..Default::default()
            };
            assert_eq!(c.validate(), Err(SpeculativeError::Ngram { min, max }));
        }
    }
}
