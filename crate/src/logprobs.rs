//! Per-token log-probabilities: the CPU reference.
//!
//! The log-probability of a token is its entry of the log-softmax of the raw
//! logits (temperature 1, no repetition penalty): the model's own
//! distribution, whatever the sampler settings that picked the token. With
//! it come the `top` most likely tokens and theirs, most likely first, ties
//! by lower id.
//!
//! The reference computes in f64: `m` = the largest logit, `S = Σ exp(x - m)`,
//! `logprob(x) = (x - m) - ln S`; a `-inf` logit has logprob `-inf`. The logits
//! are read as the sampler reads them (`crate::sampler`): subnormals and `-0`
//! count as `+0` (so a GPU that flushes subnormals orders them the same), and
//! NaN, `+inf` or all `-inf` is [`SamplerError::NoFiniteLogits`].
//!
//! The GPU computes the same values in f32 (`shaders/sample.wgsl`, entry
//! point `logprobs`, [`crate::gpu::sample::GpuLogprobs`]) from the logits
//! buffer the sampler just read, in the same submit; `tests/gpu_logprobs.rs`
//! holds it to this reference.

use crate::sampler::SamplerError;

/// The most `top` alternatives one token may report (OpenAI's limit).
pub const MAX_TOP_LOGPROBS: usize = 20;

/// One alternative at a step.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct TopLogprob {
    pub id: u32,
    pub logprob: f32,
}

/// One generated token's log-probability and the step's most likely tokens.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct TokenLogprobs {
    /// The token generated.
    pub id: u32,
    /// Its natural-log probability (`<= 0`).
    pub logprob: f32,
    /// The most likely tokens, most likely first, ties by lower id.
    pub top: Vec<TopLogprob>,
}

/// `Err(BadSetting)` unless `top <= MAX_TOP_LOGPROBS`.
pub fn check_top(top: usize) -> Result<(), SamplerError> {
    if top > MAX_TOP_LOGPROBS {
        return Err(SamplerError::BadSetting {
            name: "top_logprobs",
            value: top as f32,
        });
    }
    Ok(())
}

/// The logit as the sampler reads it: subnormals and `-0` become `+0`.
fn canonical(x: f32) -> f32 {
    if x.to_bits() & 0x7f80_0000 == 0 {
        0.0
    } else {
        x
    }
}

/// The log-softmax of `logits` in f64 (`-inf` for `-inf` logits).
pub fn log_softmax(logits: &[f32]) -> Result<Vec<f64>, SamplerError> {
    if logits.iter().any(|x| x.is_nan() || *x == f32::INFINITY) {
        return Err(SamplerError::NoFiniteLogits);
    }
    let m = logits
        .iter()
        .map(|&x| f64::from(canonical(x)))
        .fold(f64::NEG_INFINITY, f64::max);
    if m == f64::NEG_INFINITY {
        return Err(SamplerError::NoFiniteLogits);
    }
    let s: f64 = logits
        .iter()
        .map(|&x| (f64::from(canonical(x)) - m).exp())
        .sum();
    let ln_s = s.ln();
    Ok(logits
        .iter()
        .map(|&x| {
            let x = f64::from(canonical(x));
            if x == f64::NEG_INFINITY {
                x
            } else {
                (x - m) - ln_s
            }
        })
        .collect())
}

/// The ids of the `k` largest logits (at most the vocabulary), largest
/// first, ties by lower id.
pub fn top_ids(logits: &[f32], k: usize) -> Vec<u32> {
    let mut ids: Vec<u32> = (0..logits.len() as u32).collect();
    ids.sort_by(|&a, &b| {
        let (x, y) = (canonical(logits[a as usize]), canonical(logits[b as usize]));
        y.total_cmp(&x).then(a.cmp(&b))
    });
    ids.truncate(k);
    ids
}

/// The reference for token `id` and the `top` most likely tokens (f64,
/// rounded to f32).
pub fn token_logprobs(logits: &[f32], id: u32, top: usize) -> Result<TokenLogprobs, SamplerError> {
    check_top(top)?;
    let lp = log_softmax(logits)?;
    let logprob = lp
        .get(id as usize)
        .copied()
        .ok_or(SamplerError::BadSetting {
            name: "token",
            value: id as f32,
        })?;
    Ok(TokenLogprobs {
        id,
        logprob: logprob as f32,
        top: top_ids(logits, top)
            .into_iter()
            .map(|t| TopLogprob {
                id: t,
                logprob: lp[t as usize] as f32,
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_sums_to_one_orders_ties_by_id_and_handles_minus_inf() {
        let logits = [1.0f32, 3.0, f32::NEG_INFINITY, 3.0, -0.0, 1e-40];
        let lp = log_softmax(&logits).unwrap();
        let total: f64 = lp.iter().map(|v| v.exp()).sum();
        assert!((total - 1.0).abs() < 1e-12);
        assert_eq!(lp[2], f64::NEG_INFINITY);
        assert_eq!(lp[1], lp[3]);
        // -0 and the subnormal read as +0: a tie, lower id first.
        assert_eq!(top_ids(&logits, 6), vec![1, 3, 0, 4, 5, 2]);
        let t = token_logprobs(&logits, 0, 2).unwrap();
        assert_eq!(t.top.iter().map(|e| e.id).collect::<Vec<_>>(), vec![1, 3]);
        assert!(t.logprob < 0.0);
        assert_eq!(top_ids(&logits, 20).len(), 6);
    }

    #[test]
    fn unusable_logits_and_settings_are_errors() {
        assert_eq!(
            log_softmax(&[1.0, f32::NAN]),
            Err(SamplerError::NoFiniteLogits)
        );
        assert_eq!(
            log_softmax(&[f32::INFINITY]),
            Err(SamplerError::NoFiniteLogits)
        );
        assert_eq!(
            log_softmax(&[f32::NEG_INFINITY]),
            Err(SamplerError::NoFiniteLogits)
        );
        assert!(check_top(20).is_ok());
        assert!(matches!(
            check_top(21),
            Err(SamplerError::BadSetting { .. })
        ));
    }
}
