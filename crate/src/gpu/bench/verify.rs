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
//! draft's acceptance is meaningless: only the cost is measured. Where the
//! adapter writes timestamps inside passes, [`profile`] splits both by
//! kernel class (GPU time), to show which kernels the extra positions cost.

use super::super::decoder::GpuDecoder;
use super::super::profile::{add_by_class, Interval, Profiler};
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
    /// GPU time per kernel class of both, where the adapter has timestamps.
    pub kernels: Vec<VerifyKernel>,
}

/// One kernel class's GPU time in a decode step and in a verification.
#[derive(Clone, Debug, serde::Serialize)]
pub struct VerifyKernel {
    pub class: String,
    /// Mean GPU milliseconds per decode step.
    pub decode_ms: f64,
    /// Mean GPU milliseconds per verification.
    pub verify_ms: f64,
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
    let kernels = match Profiler::new(dec.context(), 4096) {
        Some(mut p) => profile(dec, recent, &fed, &mut p).await?,
        None => Vec::new(),
    };
    Ok(VerifyCost {
        draft,
        rounds,
        decode_ms,
        verify_ms,
        ratio: verify_ms / decode_ms,
        kernels,
    })
}

/// Profiled rounds per kind in [`profile`].
const PROFILED: usize = 3;

/// GPU time per kernel class of a decode step feeding `fed[0]` and of a
/// verification feeding `fed`, each the mean of [`PROFILED`] rounds at the
/// decoder's current length (cut back after each), classes in the decode
/// step's order of cost.
pub async fn profile(
    dec: &mut GpuDecoder,
    recent: &[u32],
    fed: &[u32],
    profiler: &mut Profiler,
) -> Result<Vec<VerifyKernel>, Error> {
    let greedy = SamplerConfig::greedy();
    let len = dec.len();
    let step = recent.len() as u32;
    let (mut decode, mut verify): (Vec<Interval>, Vec<Interval>) = (Vec::new(), Vec::new());
    for _ in 0..PROFILED {
        let (_, one) = dec
            .step_profiled(fed[0], &greedy, recent, step, profiler)
            .await?;
        dec.truncate(len);
        add_by_class(&mut decode, one);
        let (_, many) = dec
            .verify_profiled(fed, &greedy, recent, step, profiler)
            .await?;
        dec.truncate(len);
        add_by_class(&mut verify, many);
    }
    let ms = |total: &[Interval], class| {
        total
            .iter()
            .find(|t| t.class == class)
            .map_or(0.0, |t| t.seconds * 1e3 / PROFILED as f64)
    };
    // Every class of either, once (the decode step's first).
    let mut classes: Vec<Interval> = Vec::new();
    add_by_class(&mut classes, decode.iter().chain(&verify).copied());
    let mut rows: Vec<VerifyKernel> = classes
        .into_iter()
        .map(|Interval { class, .. }| VerifyKernel {
            class: class.name(),
            decode_ms: ms(&decode, class),
            verify_ms: ms(&verify, class),
        })
        .collect();
    rows.sort_by(|a, b| b.decode_ms.total_cmp(&a.decode_ms));
    Ok(rows)
}
