//! Token selection: greedy, temperature, top-k, top-p, min-p and a repetition
//! penalty, with seeded randomness that is a pure function of (seed, step), so
//! the same seed gives the same tokens on every platform, and the GPU sampler
//! (`gpu::sample`, `shaders/sample.wgsl`) picks exactly the same token.
//!
//! # Exact arithmetic
//!
//! Every decision is made on values both sides compute bit for bit, in a way
//! that does not depend on the order of any sum:
//!
//! 1. **Keys.** A logit's f32 bits are canonicalised (subnormals and `-0` become
//!    `+0`, so a GPU that flushes subnormals agrees) and mapped to a monotonic
//!    u32 [`key`]: larger logit, larger key; `-inf` has the smallest key of all,
//!    [`NEG_INF_KEY`]. NaN or `+inf` anywhere is [`SamplerError::NoFiniteLogits`],
//!    as are all-`-inf` logits. The candidate order is *descending key, then
//!    ascending id*: a strict total order, the same on both sides.
//! 2. **Penalty.** For each distinct id among the last `repetition_window`
//!    tokens, a finite logit `x` is clamped to `±2^100` and multiplied by
//!    `1/penalty` (f32, computed once on the host) when `x > 0`, by `penalty`
//!    otherwise: one correctly rounded f32 product (WGSL guarantees that for
//!    `*`, not for `/`, hence the reciprocal), canonicalised again. The clamp
//!    and the penalty range `[1e-6, 1e6]` rule out overflow.
//! 3. **Greedy** (`temperature <= 0`): the largest key, lowest id on ties.
//! 4. **Weights.** With `m` the largest logit and `T` the temperature (at least
//!    `1e-20`), `h = m*0.5 - x*0.5` and `y = h * (2/T)` are f32 operations that
//!    are correctly rounded everywhere (the halves are exact, so an FMA
//!    contraction cannot change them, and nothing overflows). If `h >= hcut`
//!    (`16 T`) the weight is 0; otherwise `q = trunc(y * 65536)` is a 16.16
//!    fixed-point `-ln(w)`, and the weight is the integer
//!    `w = 2^31 exp(-q/65536)` from three tables of [`exp_table`]
//!    (`exp(-a)`, `exp(-b/256)`, `exp(-c/65536)` for `q = a.b.c` in base
//!    256/65536, each entry `round(2^31 exp(..))` from `libm::exp`), chained
//!    with `floor(x*y / 2^31)` integer products. The most likely token has
//!    `w = 2^31` exactly; `w = 0` below `exp(-22)`. No transcendental function
//!    runs on the GPU: the table travels with the sampler.
//! 5. **Sums are integers** (u64): exact and associative, so the GPU's
//!    atomic, unordered workgroup sums equal the CPU's sequential ones.
//! 6. **Top-k / top-p / the draw** keep or pick a *prefix* of the candidate
//!    order: the shortest prefix whose count reaches `top_k`, whose weight
//!    reaches `thr_p = max(1, floor(P * total / 2^24))` with
//!    `P = round(top_p * 2^24)`, and for the draw the first candidate whose
//!    running weight exceeds `floor(U * total / 2^24)` with `U` the 24 bits of
//!    [`uniform`]. The CPU sorts and scans; the GPU finds the same element
//!    with a radix select over the 64-bit `(key, !id)` (histograms of counts
//!    or integer weights per byte) — the same integers, so the same element.
//! 7. **Min-p** keeps the candidates with `w >= ceil(min_p * 2^31)`, i.e.
//!    `w >= min_p * w_max` exactly (a filter, applied after top-p as before).
//!
//! Candidates with weight 0 are dropped after top-k: they add nothing to any
//! sum and can never end a prefix that reaches a positive threshold. The
//! semantics are those of the classic float sampler with sums made exact: a
//! probability is `w / total`, quantised to `2^-31` of the top token's weight.

use serde::{Deserialize, Serialize};

/// Sampling settings. The defaults are Meta's chat defaults (temperature 0.6, top-p 0.9).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SamplerConfig {
    /// 0 (or below) means greedy; positive values below `1e-20` act as `1e-20`.
    pub temperature: f32,
    /// Keep only the `top_k` most likely tokens; 0 keeps all.
    pub top_k: usize,
    /// Keep the smallest set of most likely tokens whose probability reaches `top_p`; 1 keeps all.
    pub top_p: f32,
    /// Drop tokens less likely than `min_p` times the most likely one; 0 keeps all.
    pub min_p: f32,
    /// Divides positive (multiplies negative) logits of recent tokens; 1 disables.
    /// In `[1e-6, 1e6]`; positive logits are multiplied by the f32 reciprocal.
    pub repetition_penalty: f32,
    /// How many of the most recent tokens the penalty looks at.
    pub repetition_window: usize,
    pub seed: u64,
}

impl Default for SamplerConfig {
    fn default() -> Self {
        SamplerConfig {
            temperature: 0.6,
            top_k: 0,
            top_p: 0.9,
            min_p: 0.0,
            repetition_penalty: 1.0,
            repetition_window: 64,
            seed: 0,
        }
    }
}

impl SamplerConfig {
    /// Greedy decoding (Meta's infill example uses temperature 0).
    pub fn greedy() -> Self {
        SamplerConfig {
            temperature: 0.0,
            ..Default::default()
        }
    }

    /// Checks the settings are usable.
    pub fn validate(&self) -> Result<(), SamplerError> {
        let bad = |name: &'static str, value: f32| SamplerError::BadSetting { name, value };
        if !self.temperature.is_finite() {
            return Err(bad("temperature", self.temperature));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(bad("top_p", self.top_p));
        }
        if !(0.0..=1.0).contains(&self.min_p) {
            return Err(bad("min_p", self.min_p));
        }
        if !(MIN_PENALTY..=MAX_PENALTY).contains(&self.repetition_penalty) {
            return Err(bad("repetition_penalty", self.repetition_penalty));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SamplerError {
    #[error("sampler setting {name} = {value} is out of range")]
    BadSetting { name: &'static str, value: f32 },
    #[error(
        "the logits contain NaN or +infinity, or are all -infinity: the model produced no usable distribution"
    )]
    NoFiniteLogits,
}

/// One step of a 32-bit PCG hash (Jarzynski & Olano, "Hash Functions for GPU
/// Rendering"), chosen because WGSL has no 64-bit integers.
pub fn pcg_hash(v: u32) -> u32 {
    let state = v.wrapping_mul(747_796_405).wrapping_add(2_891_336_453);
    let word = ((state >> ((state >> 28) + 4)) ^ state).wrapping_mul(277_803_737);
    (word >> 22) ^ word
}

/// The uniform number in [0, 1) used at generation step `step` for `seed`:
/// [`uniform_bits`] / 2^24.
pub fn uniform(seed: u64, step: u32) -> f32 {
    uniform_bits(seed, step) as f32 * (1.0 / 16_777_216.0)
}

/// The 24 random bits drawn at generation step `step` for `seed`.
pub fn uniform_bits(seed: u64, step: u32) -> u32 {
    pcg_hash((seed as u32) ^ pcg_hash(((seed >> 32) as u32) ^ pcg_hash(step))) >> 8
}

/// Smallest and largest repetition penalty ([`SamplerConfig::validate`]).
pub const MIN_PENALTY: f32 = 1e-6;
pub const MAX_PENALTY: f32 = 1e6;
/// Positive temperatures below this act as this.
pub const MIN_TEMPERATURE: f32 = 1e-20;
/// Penalised logits are clamped to `±2^100` first, so the product never overflows.
pub const PENALTY_CLAMP: f32 = f32::from_bits(0x7180_0000);
/// The key of `-inf`, the smallest key (finite logits have larger ones).
pub const NEG_INF_KEY: u32 = 0x007f_ffff;
/// `top_p` in units of 2^-24 that means "off".
pub const TOP_P_ONE: u32 = 1 << 24;
/// Entries of [`exp_table`]: 32 for `exp(-a)`, 256 for `exp(-b/256)`, 256 for `exp(-c/65536)`.
pub const EXP_TABLE_LEN: usize = 32 + 256 + 256;
/// The weight of the most likely candidate.
pub const WEIGHT_ONE: u32 = 1 << 31;

/// `bits` of an f32 with subnormals and `-0` turned into `+0`.
pub fn canonical(bits: u32) -> u32 {
    if bits & 0x7f80_0000 == 0 {
        0
    } else {
        bits
    }
}

/// The monotonic u32 key of canonical f32 bits (larger value, larger key).
pub fn key(bits: u32) -> u32 {
    if bits & 0x8000_0000 != 0 {
        !bits
    } else {
        bits | 0x8000_0000
    }
}

/// The f32 bits of a key (the inverse of [`key`]).
pub fn key_value(key: u32) -> u32 {
    if key & 0x8000_0000 != 0 {
        key & 0x7fff_ffff
    } else {
        !key
    }
}

/// NaN or +inf: logits the sampler refuses.
pub fn is_bad_logit(bits: u32) -> bool {
    bits & 0x7f80_0000 == 0x7f80_0000 && bits != 0xff80_0000
}

/// `floor(x * y / 2^31)` for `x, y <= 2^31`.
pub fn mul_shr31(x: u32, y: u32) -> u32 {
    ((u64::from(x) * u64::from(y)) >> 31) as u32
}

/// `floor(x * f / 2^24)` (f <= 2^24).
pub fn scale24(x: u64, f: u32) -> u64 {
    ((u128::from(x) * u128::from(f)) >> 24) as u64
}

/// The fixed-point exponential tables (see the module docs): `round(2^31
/// exp(-a))` for `a < 32`, `round(2^31 exp(-b/256))` and `round(2^31
/// exp(-c/65536))` for `b, c < 256`, from `libm::exp` (the same on every
/// platform).
pub fn exp_table() -> &'static [u32; EXP_TABLE_LEN] {
    static TABLE: std::sync::OnceLock<[u32; EXP_TABLE_LEN]> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        let mut t = [0u32; EXP_TABLE_LEN];
        let one = f64::from(WEIGHT_ONE);
        for (i, v) in t.iter_mut().enumerate() {
            let x = match i {
                0..32 => i as f64,
                32..288 => (i - 32) as f64 / 256.0,
                _ => (i - 288) as f64 / 65536.0,
            };
            *v = (one * libm::exp(-x)).round() as u32;
        }
        t
    })
}

/// The settings as the exact sampler uses them, computed once on the host and
/// shared by the CPU and GPU samplers (the GPU reads them from a uniform).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SamplingConstants {
    pub greedy: bool,
    /// 0: off (also when `top_k >= vocab`, checked per call).
    pub top_k: u32,
    /// `round(top_p * 2^24)`; [`TOP_P_ONE`] (or more): off.
    pub top_p_q: u32,
    /// Min-p: keep weights `>= floor_w`; 0: off.
    pub floor_w: u32,
    /// The penalty applies (penalty != 1 and window > 0).
    pub penalize: bool,
    /// Multiplier of positive penalised logits (`1/penalty`).
    pub pen_pos: f32,
    /// Multiplier of the other penalised logits (`penalty`).
    pub pen_neg: f32,
    /// `2 / temperature`.
    pub inv2t: f32,
    /// `h >= hcut` gives weight 0.
    pub hcut: f32,
}

impl SamplerConfig {
    /// The constants of the exact sampler (see the module docs).
    pub fn constants(&self) -> SamplingConstants {
        let t = self.temperature.max(MIN_TEMPERATURE);
        let inv_t = 1.0 / t;
        SamplingConstants {
            greedy: self.temperature <= 0.0,
            top_k: u32::try_from(self.top_k).unwrap_or(0),
            top_p_q: (f64::from(self.top_p) * f64::from(TOP_P_ONE))
                .round()
                .clamp(0.0, f64::from(TOP_P_ONE)) as u32,
            floor_w: (f64::from(self.min_p) * f64::from(WEIGHT_ONE))
                .ceil()
                .clamp(0.0, f64::from(WEIGHT_ONE)) as u32,
            penalize: self.repetition_penalty != 1.0 && self.repetition_window > 0,
            pen_pos: 1.0 / self.repetition_penalty,
            pen_neg: self.repetition_penalty,
            inv2t: inv_t * 2.0,
            hcut: (16.0 * f64::from(t)).min(f64::from(f32::MAX)) as f32,
        }
    }
}

impl SamplingConstants {
    /// The canonical bits of the penalised logit `bits` (finite, canonical).
    pub fn penalize(&self, bits: u32) -> u32 {
        let x = f32::from_bits(bits).clamp(-PENALTY_CLAMP, PENALTY_CLAMP);
        let r = if x > 0.0 {
            x * self.pen_pos
        } else {
            x * self.pen_neg
        };
        canonical(r.to_bits())
    }

    /// The integer weight of a candidate with key `k`, given `m_half`, half
    /// the largest logit.
    pub fn weight(&self, k: u32, m_half: f32) -> u32 {
        if k <= NEG_INF_KEY {
            return 0;
        }
        let x = f32::from_bits(key_value(k));
        let h = m_half - x * 0.5;
        if h >= self.hcut {
            return 0;
        }
        let y = h * self.inv2t;
        let q = (y * 65536.0) as u32;
        let a = (q >> 16) as usize;
        if a >= 32 {
            return 0;
        }
        let t = exp_table();
        let b = 32 + ((q >> 8) & 255) as usize;
        let c = 288 + (q & 255) as usize;
        mul_shr31(mul_shr31(t[a], t[b]), t[c])
    }
}

/// The distinct ids among the last `window` of `recent`, ascending: the
/// tokens the repetition penalty applies to.
pub fn penalized_ids(recent: &[u32], window: usize) -> Vec<u32> {
    let start = recent.len().saturating_sub(window);
    let mut seen: Vec<u32> = recent[start..].to_vec();
    seen.sort_unstable();
    seen.dedup();
    seen
}

/// Picks tokens from logits. Stateless apart from its settings: the caller
/// passes the step number and the recent tokens.
#[derive(Clone, Debug)]
pub struct Sampler {
    pub config: SamplerConfig,
    /// Keys of the (penalised) logits, reused between calls.
    keys: Vec<u32>,
    /// (key, id, weight) candidates, reused between calls.
    cand: Vec<(u32, u32, u32)>,
}

impl Sampler {
    pub fn new(config: SamplerConfig) -> Result<Sampler, SamplerError> {
        config.validate()?;
        Ok(Sampler {
            config,
            keys: Vec::new(),
            cand: Vec::new(),
        })
    }

    /// Chooses the next token. `recent` holds the tokens seen so far (prompt
    /// and generated); the penalty looks at its last `repetition_window`.
    pub fn sample(
        &mut self,
        logits: &[f32],
        recent: &[u32],
        step: u32,
    ) -> Result<u32, SamplerError> {
        self.sample_traced(logits, recent, step).map(|t| t.token)
    }

    /// [`Sampler::sample`], with the integers it decided on (the GPU sampler
    /// reports the same ones, so tests compare them exactly).
    pub fn sample_traced(
        &mut self,
        logits: &[f32],
        recent: &[u32],
        step: u32,
    ) -> Result<SampleTrace, SamplerError> {
        let cfg = &self.config;
        let c = cfg.constants();
        if logits.iter().any(|l| is_bad_logit(l.to_bits())) {
            return Err(SamplerError::NoFiniteLogits);
        }
        self.keys.clear();
        self.keys
            .extend(logits.iter().map(|l| key(canonical(l.to_bits()))));

        // Repetition penalty, once per distinct recent token.
        if c.penalize {
            for id in penalized_ids(recent, cfg.repetition_window) {
                if let Some(k) = self.keys.get_mut(id as usize) {
                    if *k > NEG_INF_KEY {
                        *k = key(c.penalize(key_value(*k)));
                    }
                }
            }
        }
        let max = self.keys.iter().copied().max().unwrap_or(0);
        if max <= NEG_INF_KEY {
            return Err(SamplerError::NoFiniteLogits);
        }

        // Greedy: the highest logit, lowest id on ties.
        if c.greedy {
            let best = self.keys.iter().position(|&k| k == max);
            return Ok(SampleTrace {
                token: best.expect("the maximum is in the keys") as u32,
                ..Default::default()
            });
        }

        // Most likely first; ties by id so the order is total.
        let mut order: Vec<(u32, u32)> = self
            .keys
            .iter()
            .enumerate()
            .map(|(i, &k)| (k, i as u32))
            .collect();
        order.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        if c.top_k > 0 && (c.top_k as usize) < order.len() {
            order.truncate(c.top_k as usize);
        }

        // Integer weights relative to the most likely token (2^31); zero
        // weights can never be drawn nor end a top-p prefix.
        let m_half = f32::from_bits(key_value(max)) * 0.5;
        self.cand.clear();
        self.cand.extend(
            order
                .iter()
                .map(|&(k, id)| (k, id, c.weight(k, m_half)))
                .filter(|x| x.2 > 0),
        );
        let total: u64 = self.cand.iter().map(|x| u64::from(x.2)).sum();
        let candidates = self.cand.len() as u32;

        // Top-p: the shortest prefix whose mass reaches top_p.
        if c.top_p_q < TOP_P_ONE {
            let thr = scale24(total, c.top_p_q).max(1);
            let keep = prefix_reaching(&self.cand, thr);
            self.cand.truncate(keep + 1);
        }

        // Min-p: relative to the most likely token (weight 2^31).
        if c.floor_w > 0 {
            self.cand.retain(|x| x.2 >= c.floor_w);
        }

        // Inverse CDF over what is left: the first candidate whose running
        // weight exceeds U/2^24 of the total.
        let drawn_total: u64 = self.cand.iter().map(|x| u64::from(x.2)).sum();
        let target = scale24(drawn_total, uniform_bits(cfg.seed, step));
        let pick = prefix_reaching(&self.cand, target + 1);
        Ok(SampleTrace {
            token: self.cand[pick].1,
            candidates,
            total,
            drawn_total,
        })
    }
}

/// What [`Sampler::sample_traced`] decided on (all 0 but `token` when greedy).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SampleTrace {
    pub token: u32,
    /// Candidates with a positive weight after top-k.
    pub candidates: u32,
    /// Their total weight.
    pub total: u64,
    /// The total weight after top-p and min-p, which the draw divides.
    pub drawn_total: u64,
}

/// The index of the candidate at which the running weight first reaches
/// `thr` (`1 <= thr <=` the total weight).
fn prefix_reaching(cand: &[(u32, u32, u32)], thr: u64) -> usize {
    let mut acc = 0u64;
    for (i, x) in cand.iter().enumerate() {
        acc += u64::from(x.2);
        if acc >= thr {
            return i;
        }
    }
    cand.len() - 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sampler(f: impl FnOnce(&mut SamplerConfig)) -> Sampler {
        let mut c = SamplerConfig::default();
        f(&mut c);
        Sampler::new(c).unwrap()
    }

    #[test]
    fn greedy_takes_the_first_maximum() {
        let mut s = Sampler::new(SamplerConfig::greedy()).unwrap();
        assert_eq!(s.sample(&[0.0, 3.0, 3.0, -1.0], &[], 0).unwrap(), 1);
    }

    #[test]
    fn repetition_penalty_changes_the_greedy_choice() {
        let mut s = sampler(|c| {
            c.temperature = 0.0;
            c.repetition_penalty = 2.0;
        });
        // 4.0 / 2 = 2.0 < 3.0
        assert_eq!(s.sample(&[4.0, 3.0], &[0], 0).unwrap(), 1);
        // negative logits are multiplied: -1 * 2 = -2 < -1.5
        assert_eq!(s.sample(&[-1.0, -1.5], &[0, 0, 0], 0).unwrap(), 1);
        // outside the window the penalty does not apply
        let mut s = sampler(|c| {
            c.temperature = 0.0;
            c.repetition_penalty = 2.0;
            c.repetition_window = 1;
        });
        assert_eq!(s.sample(&[4.0, 3.0], &[0, 1], 0).unwrap(), 0);
    }

    #[test]
    fn top_k_one_is_greedy() {
        let mut s = sampler(|c| {
            c.temperature = 1.5;
            c.top_k = 1;
            c.top_p = 1.0;
        });
        for step in 0..50 {
            assert_eq!(s.sample(&[0.1, 0.5, 0.4], &[], step).unwrap(), 1);
        }
    }

    #[test]
    fn top_p_and_min_p_cut_the_tail() {
        // probabilities ~ [0.64, 0.24, 0.09, 0.03]
        let logits = [2.0f32, 1.0, 0.0, -1.0];
        let mut s = sampler(|c| {
            c.temperature = 1.0;
            c.top_p = 0.7;
        });
        let mut s2 = sampler(|c| {
            c.temperature = 1.0;
            c.top_p = 1.0;
            c.min_p = 0.2;
        });
        for step in 0..500 {
            assert!(s.sample(&logits, &[], step).unwrap() <= 1);
            assert!(s2.sample(&logits, &[], step).unwrap() <= 1);
        }
    }

    #[test]
    fn seeded_sampling_follows_the_distribution_and_repeats() {
        let logits = [1.0f32, 0.0, 2.0];
        let mut s = sampler(|c| {
            c.temperature = 1.0;
            c.top_p = 1.0;
            c.seed = 42;
        });
        let n = 20_000;
        let mut counts = [0usize; 3];
        let first: Vec<u32> = (0..n).map(|i| s.sample(&logits, &[], i).unwrap()).collect();
        for &t in &first {
            counts[t as usize] += 1;
        }
        let z: f32 = logits.iter().map(|l| l.exp()).sum();
        for (i, &cnt) in counts.iter().enumerate() {
            let p = logits[i].exp() / z;
            let got = cnt as f32 / n as f32;
            assert!((got - p).abs() < 0.02, "token {i}: {got} vs {p}");
        }
        let again: Vec<u32> = (0..n).map(|i| s.sample(&logits, &[], i).unwrap()).collect();
        assert_eq!(first, again);
        let mut other = sampler(|c| {
            c.temperature = 1.0;
            c.top_p = 1.0;
            c.seed = 43;
        });
        let third: Vec<u32> = (0..n)
            .map(|i| other.sample(&logits, &[], i).unwrap())
            .collect();
        assert_ne!(first, third);
    }

    #[test]
    fn uniform_is_pinned() {
        // Fixed values (computed independently in Python): a change here
        // changes every seeded generation.
        let v: Vec<u32> = (0..4)
            .map(|i| (uniform(1234, i) * 16_777_216.0) as u32)
            .collect();
        assert_eq!(v, [927_481, 1_502_739, 3_961_669, 2_358_305]);
        assert_eq!(pcg_hash(0), 129_708_002);
        assert_eq!(pcg_hash(1), 2_831_084_092);
    }

    #[test]
    fn bad_settings_and_logits_are_errors() {
        let c = SamplerConfig {
            top_p: 0.0,
            ..Default::default()
        };
        assert!(Sampler::new(c).is_err());
        let mut s = Sampler::new(SamplerConfig::default()).unwrap();
        assert_eq!(
            s.sample(&[f32::NAN, 1.0], &[], 0),
            Err(SamplerError::NoFiniteLogits)
        );
        assert_eq!(
            s.sample(&[f32::NEG_INFINITY; 3], &[], 0),
            Err(SamplerError::NoFiniteLogits)
        );
    }
}
