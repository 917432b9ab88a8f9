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
//! - [`lookup`]: the n-gram search alone;
//! - [`cost`]: the cost-aware choice of each draft's length
//!   ([`SpeculativeConfig::cost_aware`]).
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
//! # Draft length
//!
//! By default K starts at `max_draft`; a fully accepted draft grows it by
//! one (up to `max_draft`), a draft rejected at its first token halves it
//! (down to 1), a partly accepted one leaves it. With
//! [`SpeculativeConfig::cost_aware`] each draft instead takes the length
//! (0..=`max_draft`) that maximises the tokens expected per unit of time,
//! from the acceptance rate of drafts found by matches of the same length
//! (and after a draft accepted in full or not) and the measured cost of a
//! pass feeding that many positions ([`cost`]):
//! where a pass costs several decode steps (lavapipe) only confident drafts
//! are verified. Each draft is also cut to the caller's limit (what
//! `max_tokens` and the context leave).

pub mod cost;

use cost::{Acceptance, PassCosts};

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
    /// Each draft's length from measured pass costs and acceptance rates
    /// ([`cost`]) instead of the grow-and-halve rule.
    pub cost_aware: bool,
}

impl Default for SpeculativeConfig {
    fn default() -> Self {
        SpeculativeConfig {
            max_draft: DEFAULT_MAX_DRAFT,
            ngram_max: DEFAULT_NGRAM,
            ngram_min: 1,
            cost_aware: false,
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
    lookup_match(seq, ngram_min, ngram_max).map(|(at, _)| at)
}

/// [`lookup`] with the match's length: `(at, n)`.
pub fn lookup_match(seq: &[u32], ngram_min: usize, ngram_max: usize) -> Option<(usize, usize)> {
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
    best.map(|(n, at)| (at, n))
}

/// Proposes draft tokens and adapts how many.
#[derive(Clone, Debug)]
pub struct Drafter {
    cfg: SpeculativeConfig,
    /// Tokens the next draft may hold (1..=max_draft; grow-and-halve rule).
    k: usize,
    /// Acceptance per match length (cost-aware drafts).
    acceptance: Acceptance,
    /// The length of the match that found the last draft.
    last_match: usize,
    /// Whether the last verification accepted its whole draft (only
    /// [`Drafter::record`] changes it, so it is also what the draft being
    /// verified was made after).
    full: bool,
}

impl Drafter {
    /// A drafter for `cfg` (which must be [enabled](SpeculativeConfig::enabled)).
    pub fn new(cfg: SpeculativeConfig) -> Self {
        Drafter {
            cfg,
            k: cfg.max_draft.max(1),
            acceptance: Acceptance::default(),
            last_match: 0,
            full: false,
        }
    }

    /// Tokens the next draft may hold.
    pub fn k(&self) -> usize {
        self.k
    }

    /// Up to `min(K, limit)` tokens that followed the last occurrence of the
    /// longest suffix n-gram of `seq` (prompt and generated tokens, the token
    /// sampled last included); empty when none occurred or `limit` is 0.
    /// Cost-aware, K is [`cost::best_draft`]'s for the match's acceptance
    /// rate and `costs` (the session's measured passes), and may be 0.
    pub fn draft(&mut self, seq: &[u32], limit: usize, costs: &PassCosts) -> Vec<u32> {
        let n = self.k.min(limit);
        if n == 0 {
            return Vec::new();
        }
        let Some((at, m)) = lookup_match(seq, self.cfg.ngram_min, self.cfg.ngram_max) else {
            return Vec::new();
        };
        let n = if self.cfg.cost_aware {
            let found = seq.len() - at;
            let most = self.cfg.max_draft.min(limit).min(found);
            cost::best_draft(most, self.acceptance.rate(m, self.full), costs)
        } else {
            n
        };
        self.last_match = m;
        seq[at..].iter().take(n).copied().collect()
    }

    /// Adapts K to a verification of `drafted` tokens that accepted
    /// `accepted` of them.
    pub fn record(&mut self, drafted: usize, accepted: usize) {
        if drafted == 0 {
            return;
        }
        self.acceptance
            .record(self.last_match, self.full, drafted, accepted);
        self.full = accepted >= drafted;
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
        let mut d = Drafter::new(cfg);
        let costs = PassCosts::default();
        assert_eq!(d.k(), 4);
        assert_eq!(d.draft(&seq, 100, &costs), vec![3, 4, 5, 6]);
        assert_eq!(d.draft(&seq, 2, &costs), vec![3, 4]);
        assert!(d.draft(&seq, 0, &costs).is_empty());
        // Near the end of the sequence: only what follows the match.
        let seq = [1, 2, 3, 1, 2];
        assert_eq!(d.draft(&seq, 100, &costs), vec![3, 1, 2]);
        assert!(d.draft(&[1, 2, 3], 100, &costs).is_empty());
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
    fn cost_aware_drafts_only_what_pays_for_its_pass() {
        let mut d = Drafter::new(SpeculativeConfig {
            max_draft: 8,
            cost_aware: true,
            ..Default::default()
        });
        // Nothing measured: every pass costs a step, the whole match drafts.
        let seq = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 1, 2, 3, 4];
        let free = PassCosts::default();
        assert_eq!(d.draft(&seq, 100, &free), vec![5, 6, 7, 8, 9, 10, 11, 12]);
        assert_eq!(d.draft(&seq, 3, &free), vec![5, 6, 7], "the limit");
        // Passes of 2 positions cost 1.7 steps, of 4 two, of 9 3.6.
        let mut costs = PassCosts::default();
        for (n, s) in [(1, 0.010), (2, 0.017), (4, 0.020), (5, 0.030), (9, 0.036)] {
            costs.record(n, s);
        }
        // A 4-token match at the prior rate 0.75: 3 tokens.
        assert_eq!(d.draft(&seq, 100, &costs), vec![5, 6, 7]);
        // 1-token matches rejected at once: after three the rate is 3/7 and
        // no length pays (E(2) = 1.61 in 1.7 steps, E(3) = 1.69 in 2).
        let one = [7, 1, 2, 3, 4, 5, 6, 8, 9, 7];
        for want in [3, 2, 2] {
            let k = d.draft(&one, 100, &costs).len();
            assert_eq!(k, want);
            d.record(k, 0);
        }
        assert!(d.draft(&one, 100, &costs).is_empty());
        // 4-token matches keep drafting, longer once drafts after a full
        // acceptance are known to go on: 7 (8 positions cost what 5 do, 9
        // more). The first two drafts are each the first of their case
        // (after a rejection, after a full acceptance): the prior's 3.
        for want in [3, 3, 7, 7] {
            let k = d.draft(&seq, 100, &costs).len();
            assert_eq!(k, want);
            d.record(k, k);
        }
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
