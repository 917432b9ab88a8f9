//! The cost of speculative verification (`codellama bench --verify-draft K`):
//! one verification of `K` drafted tokens (a batch of `K + 1` positions, every
//! row sampled on the GPU, the ids read back) against one decode step (one
//! position, its token read back), both synchronous, at the same cache
//! length. Decoding is memory-bound: a batch reads each weight once for all
//! its columns, so the ratio tells how much a draft may cost before it pays.
//!
//! The two are interleaved, each followed by a truncation back to the same
//! length, so that drift of the machine (clocks, other load) falls on both;
//! the figure of each is the median of its rounds. With random weights the
//! draft's acceptance is meaningless: only the cost is measured.

use super::super::decoder::GpuDecoder;
use crate::clock;
use crate::error::Error;
use crate::sampler::SamplerConfig;

/// What [`measure`] found.
#[derive(Clone, Debug, serde::Serialize)]
pub struct VerifyCost {
    /// Drafted tokens per verification (`K`: the batch holds `K + 1`).
    pub draft: usize,
    pub rounds: usize,
    /// Median milliseconds of one decode step (submit to token read).
    pub decode_ms: f64,
    /// Median milliseconds of one verification of `draft` tokens.
    pub verify_ms: f64,
    /// `verify_ms / decode_ms`.
    pub ratio: f64,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Measures with the cache holding `recent` but `token` (the next to feed):
/// `rounds` decode steps and verifications of `draft` tokens (ids taken from
/// `recent`), the cache cut back after each. The first round of each warms
/// its pipelines up and is not counted.
pub async fn measure(
    dec: &mut GpuDecoder,
    recent: &[u32],
    token: u32,
    draft: usize,
    rounds: usize,
) -> Result<VerifyCost, Error> {
    let greedy = SamplerConfig::greedy();
    let len = dec.len();
    let draft = draft.clamp(1, dec.verify_rows() - 1);
    let fed: Vec<u32> = std::iter::once(token)
        .chain(recent.iter().rev().take(draft).copied())
        .collect();
    let step = recent.len() as u32;
    let (mut one, mut many) = (Vec::new(), Vec::new());
    for round in 0..=rounds.max(1) {
        let start = clock::now();
        dec.step_and_sample(token, &greedy, recent, step).await?;
        let t1 = clock::now() - start;
        dec.truncate(len);
        let start = clock::now();
        dec.verify(&fed, &greedy, recent, step).await?;
        let tk = clock::now() - start;
        dec.truncate(len);
        if round > 0 {
            one.push(t1);
            many.push(tk);
        }
    }
    let rounds = one.len();
    let (decode_ms, verify_ms) = (median(one) * 1e3, median(many) * 1e3);
    Ok(VerifyCost {
        draft,
        rounds,
        decode_ms,
        verify_ms,
        ratio: verify_ms / decode_ms,
    })
}
