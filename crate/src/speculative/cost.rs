//! Cost-aware draft lengths ([`SpeculativeConfig::cost_aware`]): each draft
//! is as long as maximises the tokens expected per unit of time, and empty
//! where no length beats a plain decode step.
//!
//! # Model
//!
//! - **Cost.** A forward pass feeding `n` positions (the token sampled last
//!   and `n - 1` drafted ones; `n = 1` is a plain decode step) takes
//!   `c(n)` plain steps. [`PassCosts`] keeps the last [`KEPT`] wall times
//!   of each `n` and gives `c(n)` as the ratio of their medians — medians,
//!   robust to a warm-up or a busy moment either way, and the same
//!   statistic for every `n` (a fastest-of-all would favour the plain step,
//!   timed far more often) — taking the largest such ratio at or below `n`
//!   (feeding more positions is never assumed cheaper), 1 where nothing is
//!   measured yet (so an unmeasured length is tried, then known). A memory-bound GPU
//!   should measure `c(n)` near 1; lavapipe, where arithmetic per weight
//!   limits, measures about 1.7 for 2 positions and 2 for 4.
//! - **Acceptance.** A draft found by an n-gram of length `m` has each of
//!   its tokens accepted, given the ones before were, with probability
//!   `a(m, f)`, `f` telling whether the draft before it was accepted in
//!   full: [`Acceptance`] counts, per `(m, f)`, the tokens accepted and the
//!   drafts cut short (the geometric model's maximum-likelihood estimate),
//!   starting from an optimistic prior ([`PRIOR_ACCEPTED`] of
//!   [`PRIOR_ACCEPTED`] + [`PRIOR_REJECTED`]) so that every case gets
//!   drafted before its rate is known. A longer match predicts its
//!   continuation better, and a copy under way tends to go on (acceptance
//!   is bimodal: a repeated line is taken whole or left at once): this is
//!   what lets a draft run long after a 4-token match inside a copy where
//!   one after a 1-token match is not worth its pass. The counts live as
//!   long as the request (the [`super::Drafter`]); the costs as long as the
//!   session (`crate::generate::Session`).
//! - **Choice.** A draft of `k` tokens yields `E(k) = 1 + a + … + a^k`
//!   tokens in expectation for `c(k + 1)`; [`best_draft`] takes the `k` of
//!   largest `E(k) / c(k + 1)`, and 0 (a plain step) unless that exceeds 1.
//!
//! Exactness does not depend on any of it: the draft only decides how many
//! of plain decoding's own tokens one pass yields (`crate::speculative`).
//!
//! [`SpeculativeConfig::cost_aware`]: super::SpeculativeConfig::cost_aware

use super::{MAX_DRAFT, MAX_NGRAM};

/// Prior accepted tokens of every match length's acceptance rate.
pub const PRIOR_ACCEPTED: f64 = 3.0;
/// Prior cut-short drafts (a prior rate of 3 / 4).
pub const PRIOR_REJECTED: f64 = 1.0;

/// Wall times kept per positions fed.
pub const KEPT: usize = 8;

/// The last [`KEPT`] wall times of a forward pass per positions fed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PassCosts {
    /// Index `n - 1` for `n` positions (1..=MAX_DRAFT + 1).
    times: [Times; MAX_DRAFT + 1],
}

/// A ring of the last [`KEPT`] times (seconds) and their median.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Times {
    seconds: [f64; KEPT],
    /// Times recorded in all (the next goes to `count % KEPT`).
    count: usize,
    /// The median of the ring, kept as times are recorded (a draft reads
    /// it for every length it weighs).
    median: Option<f64>,
}

impl Times {
    fn push(&mut self, seconds: f64) {
        self.seconds[self.count % KEPT] = seconds;
        self.count += 1;
        let n = self.count.min(KEPT);
        let mut v = self.seconds;
        let v = &mut v[..n];
        v.sort_by(f64::total_cmp);
        self.median = Some(if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        });
    }
}

impl PassCosts {
    /// A pass that fed `n` positions took `seconds`.
    pub fn record(&mut self, n: usize, seconds: f64) {
        if n == 0 || n > MAX_DRAFT + 1 || !seconds.is_finite() || seconds <= 0.0 {
            return;
        }
        self.times[n - 1].push(seconds);
    }

    /// The median of the last [`KEPT`] passes measured feeding `n`
    /// positions.
    pub fn median(&self, n: usize) -> Option<f64> {
        self.times.get(n.checked_sub(1)?)?.median
    }

    /// `c(n)`: a pass feeding `n` positions in plain steps (≥ 1; 1 until a
    /// plain step and a pass of at most `n` positions are measured).
    pub fn relative(&self, n: usize) -> f64 {
        self.relative_upto(n).last().unwrap_or(1.0)
    }

    /// `c(1), c(2), …, c(n)` in one pass (each the running maximum of the
    /// median ratios up to it).
    fn relative_upto(&self, n: usize) -> impl Iterator<Item = f64> + '_ {
        let step = self.median(1);
        (1..=n.clamp(1, MAX_DRAFT + 1)).scan(1.0f64, move |c, i| {
            if let (Some(step), Some(s), true) = (step, self.median(i), i > 1) {
                *c = c.max(s / step);
            }
            Some(*c)
        })
    }
}

/// Per match length and whether the draft before was accepted in full,
/// the drafted tokens accepted and the drafts cut short.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Acceptance {
    /// (accepted tokens, drafts with a rejected token), index
    /// `[m - 1][after_full as usize]`.
    counts: [[(u64, u64); 2]; MAX_NGRAM],
}

impl Acceptance {
    /// A draft found by a match of `m` tokens, `after_full` when the draft
    /// before it was accepted in full: `drafted` tokens, `accepted` of them.
    pub fn record(&mut self, m: usize, after_full: bool, drafted: usize, accepted: usize) {
        if drafted == 0 || m == 0 || m > MAX_NGRAM {
            return;
        }
        let c = &mut self.counts[m - 1][usize::from(after_full)];
        c.0 += accepted.min(drafted) as u64;
        c.1 += u64::from(accepted < drafted);
    }

    /// `a(m, after_full)`: the chance that a token drafted after a match of
    /// `m` tokens is accepted, given the ones before it were.
    pub fn rate(&self, m: usize, after_full: bool) -> f64 {
        let (a, r) = match m.checked_sub(1).and_then(|i| self.counts.get(i)) {
            Some(c) => (
                c[usize::from(after_full)].0 as f64,
                c[usize::from(after_full)].1 as f64,
            ),
            None => (0.0, 0.0),
        };
        (a + PRIOR_ACCEPTED) / (a + r + PRIOR_ACCEPTED + PRIOR_REJECTED)
    }
}

/// The draft length (0..=`most`) of most tokens expected per plain step's
/// time, for per-token acceptance `rate` and pass costs `costs`: 0 unless
/// some length beats a plain step (expected tokens per cost above 1). Ties
/// go to the shorter draft.
pub fn best_draft(most: usize, rate: f64, costs: &PassCosts) -> usize {
    let (mut best, mut best_gain) = (0, 1.0);
    let (mut expected, mut term) = (1.0, 1.0);
    let most = most.min(MAX_DRAFT);
    // c(k + 1) for k = 1..=most.
    for (k, cost) in (1..=most).zip(costs.relative_upto(most + 1).skip(1)) {
        term *= rate;
        expected += term;
        let gain = expected / cost;
        if gain > best_gain * (1.0 + 1e-9) {
            (best, best_gain) = (k, gain);
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn costs_are_median_ratios_that_never_fall_with_more_positions() {
        let mut c = PassCosts::default();
        assert_eq!(c.relative(1), 1.0);
        assert_eq!(c.relative(9), 1.0, "nothing measured: optimistic");
        c.record(5, 0.030);
        assert_eq!(c.relative(5), 1.0, "no plain step measured yet");
        c.record(1, 0.012);
        c.record(1, 0.010);
        c.record(1, 0.009);
        assert_eq!(c.median(1), Some(0.010));
        c.record(1, 0.040);
        assert_eq!(c.median(1), Some(0.011), "even count: the middle two");
        assert!((c.relative(5) - 30.0 / 11.0).abs() < 1e-12);
        assert!(
            (c.relative(9) - 30.0 / 11.0).abs() < 1e-12,
            "unmeasured 9: as 5"
        );
        assert_eq!(c.relative(4), 1.0, "unmeasured 4: nothing below");
        // A longer pass that came out faster does not lower c(9) below c(5).
        c.record(9, 0.020);
        assert!((c.relative(9) - 30.0 / 11.0).abs() < 1e-12);
        c.record(3, 0.0165);
        assert!((c.relative(4) - 1.5).abs() < 1e-12);
        // Only the last KEPT times count: a slow start is forgotten.
        for _ in 0..KEPT {
            c.record(3, 0.022);
        }
        assert!((c.relative(3) - 2.0).abs() < 1e-12);
        // Out of range or nonsense times are ignored.
        c.record(0, 1.0);
        c.record(MAX_DRAFT + 2, 1.0);
        c.record(2, f64::NAN);
        c.record(2, -1.0);
        c.record(2, f64::INFINITY);
        assert_eq!(c.median(2), None);
        assert_eq!(c.median(0), None);
        assert_eq!(c.median(MAX_DRAFT + 2), None);
    }

    #[test]
    fn acceptance_starts_optimistic_and_follows_the_counts() {
        let mut a = Acceptance::default();
        assert_eq!(a.rate(1, false), 0.75);
        assert_eq!(a.rate(MAX_NGRAM + 1, true), 0.75);
        // Four drafts after 1-token matches, each rejected at once.
        for _ in 0..4 {
            a.record(1, false, 3, 0);
        }
        assert!((a.rate(1, false) - 3.0 / 8.0).abs() < 1e-12);
        assert_eq!(a.rate(1, true), 0.75, "after a full draft: apart");
        // 4-token matches after full drafts: 12 of 13 accepted, one cut short.
        a.record(4, true, 8, 8);
        a.record(4, true, 5, 4);
        assert!((a.rate(4, true) - 15.0 / 17.0).abs() < 1e-12);
        assert_eq!(a.rate(4, false), 0.75);
        assert_eq!(a.rate(2, true), 0.75, "other lengths untouched");
        a.record(0, true, 3, 3);
        a.record(2, true, 0, 0);
        assert_eq!(a.rate(2, true), 0.75);
    }

    #[test]
    fn best_draft_weighs_expected_tokens_against_pass_cost() {
        // Nothing measured: every length costs one step, the longest wins.
        let free = PassCosts::default();
        assert_eq!(best_draft(8, 0.5, &free), 8);
        assert_eq!(best_draft(0, 0.9, &free), 0);
        assert_eq!(best_draft(3, 0.0, &free), 0, "nothing accepted: no gain");
        // lavapipe-like costs: 2 positions 1.7 steps, 4 two, 5 three, 9 3.6
        // (3 taken as 2, 6 to 8 as 5: an unmeasured length costs what the
        // longest measured one below it does).
        let mut c = PassCosts::default();
        c.record(1, 0.010);
        c.record(2, 0.017);
        c.record(4, 0.020);
        c.record(5, 0.030);
        c.record(9, 0.036);
        // Rate 0.4: E(k) < 1.7, never worth a pass.
        assert_eq!(best_draft(8, 0.4, &c), 0);
        // Rate 0.75: E(3) = 2.73 in 2 steps beats E(1) = 1.75 in 1.7,
        // E(4) = 3.05 in 3 and E(8) = 3.70 in 3.6.
        assert_eq!(best_draft(8, 0.75, &c), 3);
        // Rate 0.97: E(7) = 7.21 in 3 steps beats E(8) = 7.99 in 3.6.
        assert_eq!(best_draft(8, 0.97, &c), 7);
        // Cut to what is available.
        assert_eq!(best_draft(2, 0.97, &c), 2);
        // A memory-bound GPU: every pass about one step; at rate 0.5 the
        // longest draft, at 0.02 none (E(1) = 1.02 in 1.05 steps).
        let mut g = PassCosts::default();
        g.record(1, 0.010);
        for n in 2..=16 {
            g.record(n, 0.0105);
        }
        assert_eq!(best_draft(15, 0.5, &g), 15);
        assert_eq!(best_draft(15, 0.02, &g), 0);
    }
}
