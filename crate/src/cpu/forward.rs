//! The CPU reference decoder: a plain f32 llama forward pass, one token at a
//! time over a growing KV cache. Every GPU kernel is checked against it.

use super::attention::{attention_with, AttentionShape};
use super::weights::CpuWeights;
use crate::model::{Config, KvFormat};

/// A decode step that cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("the context is full ({len} positions)")]
    ContextFull { len: usize },
    #[error("token id {token} is out of range for a vocabulary of {vocab}")]
    TokenOutOfRange { token: u32, vocab: usize },
}

/// Keys and values of every layer for positions `0..len`.
#[derive(Clone, Debug, Default)]
struct KvCache {
    k: Vec<Vec<f32>>, // per layer: (len, kv_dim)
    v: Vec<Vec<f32>>, // per layer: (len, kv_dim)
    len: usize,
}

/// Runs the model on the CPU. Holds the KV cache of one sequence.
pub struct CpuDecoder<'w> {
    w: &'w CpuWeights,
    cache: KvCache,
    /// The largest number of positions this decoder accepts.
    max_len: usize,
    // Scratch buffers, allocated once.
    x: Vec<f32>,      // (dim) residual stream
    xb: Vec<f32>,     // (dim) normed input / attention output
    q: Vec<f32>,      // (dim)
    k: Vec<f32>,      // (kv_dim)
    v: Vec<f32>,      // (kv_dim)
    att: Vec<f32>,    // (max_len) attention scores of one head
    proj: Vec<f32>,   // (dim)
    h1: Vec<f32>,     // (ffn)
    h3: Vec<f32>,     // (ffn)
    logits: Vec<f32>, // (vocab)
    /// Whether `logits` belong to the last position fed.
    fresh: bool,
    /// How cached keys and values are rounded: not at all (`None`, f32, the
    /// default), or as the GPU's KV cache in that format stores them, so that
    /// a comparison with the GPU isolates the arithmetic from the storage.
    kv_rounding: Option<KvFormat>,
}

impl<'w> CpuDecoder<'w> {
    /// A decoder for up to `max_len` positions (at most the model's context).
    pub fn new(w: &'w CpuWeights, max_len: usize) -> Self {
        let c = &w.config;
        let max_len = max_len.min(c.context_length).max(1);
        CpuDecoder {
            w,
            cache: KvCache {
                k: vec![Vec::new(); c.n_layers],
                v: vec![Vec::new(); c.n_layers],
                len: 0,
            },
            max_len,
            x: vec![0.0; c.dim],
            xb: vec![0.0; c.dim],
            q: vec![0.0; c.dim],
            k: vec![0.0; c.kv_dim()],
            v: vec![0.0; c.kv_dim()],
            att: vec![0.0; max_len],
            proj: vec![0.0; c.dim],
            h1: vec![0.0; c.ffn_dim],
            h3: vec![0.0; c.ffn_dim],
            logits: vec![0.0; c.vocab_size],
            fresh: false,
            kv_rounding: None,
        }
    }

    /// Rounds cached keys and values as a GPU cache of format `r` stores
    /// them (`None`: kept as f32).
    pub fn with_kv_rounding(mut self, r: Option<KvFormat>) -> Self {
        self.kv_rounding = r;
        self
    }

    pub fn config(&self) -> &Config {
        &self.w.config
    }

    /// Positions held in the KV cache.
    pub fn len(&self) -> usize {
        self.cache.len
    }

    pub fn is_empty(&self) -> bool {
        self.cache.len == 0
    }

    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Keeps the first `n` positions (to reuse a shared prompt prefix).
    pub fn truncate(&mut self, n: usize) {
        let n = n.min(self.cache.len);
        let kv = self.w.config.kv_dim();
        for l in 0..self.w.config.n_layers {
            self.cache.k[l].truncate(n * kv);
            self.cache.v[l].truncate(n * kv);
        }
        self.cache.len = n;
        self.fresh = false;
    }

    /// The logits after the last token fed, unless the cache was truncated
    /// since.
    pub fn last_logits(&self) -> Option<&[f32]> {
        self.fresh.then_some(&self.logits[..])
    }

    /// Feeds `token` at the next position and returns the logits that predict
    /// the one after it.
    pub fn step(&mut self, token: u32) -> Result<&[f32], DecodeError> {
        let c = self.w.config.clone();
        let pos = self.cache.len;
        if pos >= self.max_len {
            return Err(DecodeError::ContextFull { len: self.max_len });
        }
        if token as usize >= c.vocab_size {
            return Err(DecodeError::TokenOutOfRange {
                token,
                vocab: c.vocab_size,
            });
        }
        let hd = c.head_dim();
        let shape = AttentionShape {
            n_heads: c.n_heads,
            n_kv_heads: c.n_kv_heads,
            head_dim: hd,
        };

        // x = embedding[token]                                    (dim)
        self.w.token_embd.row(token as usize, &mut self.x);

        for (l, lw) in self.w.layers.iter().enumerate() {
            // Attention block: xb = rmsnorm(x) * attn_norm           (dim)
            rmsnorm(&mut self.xb, &self.x, &lw.attn_norm, c.rms_eps);
            lw.wq.matvec(&self.xb, &mut self.q); // q (n_heads, hd)
            lw.wk.matvec(&self.xb, &mut self.k); // k (n_kv_heads, hd)
            lw.wv.matvec(&self.xb, &mut self.v); // v (n_kv_heads, hd)
            rope(&mut self.q, hd, pos, c.rope_theta);
            rope(&mut self.k, hd, pos, c.rope_theta);
            match self.kv_rounding {
                None => {}
                Some(KvFormat::F16) => {
                    super::attention::f16_round_trip(&mut self.k);
                    super::attention::f16_round_trip(&mut self.v);
                }
                Some(KvFormat::Q8) => {
                    super::attention::q8_round_trip(&mut self.k, hd);
                    super::attention::q8_round_trip(&mut self.v, hd);
                }
            }
            self.cache.k[l].extend_from_slice(&self.k);
            self.cache.v[l].extend_from_slice(&self.v);

            // Per head: softmax(q k^T / sqrt(hd)) v over positions 0..=pos.
            attention_with(
                &mut self.xb,
                &self.q,
                &self.cache.k[l],
                &self.cache.v[l],
                shape,
                pos,
                &mut self.att,
            );
            // x += Wo · attention                                     (dim)
            lw.wo.matvec(&self.xb, &mut self.proj);
            add(&mut self.x, &self.proj);

            // Feed-forward block: x += W2 (silu(W1 xb) * W3 xb)
            rmsnorm(&mut self.xb, &self.x, &lw.ffn_norm, c.rms_eps);
            lw.w1.matvec(&self.xb, &mut self.h1); // (ffn)
            lw.w3.matvec(&self.xb, &mut self.h3); // (ffn)
            for (a, &b) in self.h1.iter_mut().zip(&self.h3) {
                *a = silu(*a) * b;
            }
            lw.w2.matvec(&self.h1, &mut self.proj); // (dim)
            add(&mut self.x, &self.proj);
        }
        self.cache.len = pos + 1;

        // logits = Wout · rmsnorm(x) * output_norm                  (vocab)
        rmsnorm(&mut self.xb, &self.x, &self.w.output_norm, c.rms_eps);
        self.w.output().matvec(&self.xb, &mut self.logits);
        self.fresh = true;
        Ok(&self.logits)
    }

    /// Teacher-forced logits for every position of `tokens`, from an empty
    /// cache: row `i` predicts token `i + 1`.           (tokens, vocab)
    pub fn logits_for(&mut self, tokens: &[u32]) -> Result<Vec<Vec<f32>>, DecodeError> {
        self.truncate(0);
        tokens
            .iter()
            .map(|&t| self.step(t).map(<[f32]>::to_vec))
            .collect()
    }
}

/// `out = x / rms(x) * weight`, with the mean of squares in f32 plus `eps`.
pub fn rmsnorm(out: &mut [f32], x: &[f32], weight: &[f32], eps: f32) {
    let ss: f32 = x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32;
    let inv = 1.0 / (ss + eps).sqrt();
    for ((o, &v), &w) in out.iter_mut().zip(x).zip(weight) {
        *o = v * inv * w;
    }
}

/// Rotates adjacent pairs `(2i, 2i+1)` of each head by `pos * theta^(-2i/hd)`
/// (Meta's layout, used by GGUF `llama` tensors).
pub fn rope(v: &mut [f32], head_dim: usize, pos: usize, theta: f32) {
    for head in v.chunks_exact_mut(head_dim) {
        for (i, pair) in head.chunks_exact_mut(2).enumerate() {
            let freq = libm::pow(theta as f64, -((2 * i) as f64) / head_dim as f64);
            let angle = pos as f64 * freq;
            let (s, c) = (libm::sin(angle) as f32, libm::cos(angle) as f32);
            let (a, b) = (pair[0], pair[1]);
            pair[0] = a * c - b * s;
            pair[1] = a * s + b * c;
        }
    }
}

/// In-place softmax, stable (max subtracted).
pub fn softmax(x: &mut [f32]) {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for v in x.iter_mut() {
        *v = libm::expf(*v - max);
        sum += *v;
    }
    for v in x.iter_mut() {
        *v /= sum;
    }
}

pub fn silu(x: f32) -> f32 {
    x / (1.0 + libm::expf(-x))
}

fn add(x: &mut [f32], y: &[f32]) {
    for (a, b) in x.iter_mut().zip(y) {
        *a += b;
    }
}
