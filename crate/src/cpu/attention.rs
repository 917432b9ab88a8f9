//! Reference causal grouped-query attention in f32, and the roundings the GPU
//! KV cache applies to keys and values (`gpu::attention`), so the GPU can be
//! compared with exact attention over the values it actually stores.

use super::forward::softmax;
use super::matrix::dot;

/// Heads of an attention layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttentionShape {
    pub n_heads: usize,
    /// Divides `n_heads`; query head `h` reads KV head `h / (n_heads / n_kv_heads)`.
    pub n_kv_heads: usize,
    pub head_dim: usize,
}

/// Llama attention of a batch of query tokens over a KV cache, exactly in
/// f32 (the same arithmetic as [`super::CpuDecoder`]'s single-token step):
/// token `t` sits at position `pos + t` and attends positions `0..=pos + t`,
/// scores `q·k / sqrt(head_dim)`, softmax, weighted sum of values.
///
/// - `q`: `(tokens, n_heads, head_dim)` f32
/// - `k_cache`, `v_cache`: `(>= pos + tokens, n_kv_heads, head_dim)` f32
/// - `out`: `(tokens, n_heads * head_dim)` f32
///
/// Panics when the slices do not have these shapes.
pub fn attention(
    out: &mut [f32],
    q: &[f32],
    k_cache: &[f32],
    v_cache: &[f32],
    shape: AttentionShape,
    pos: usize,
) {
    let tokens = q.len() / (shape.n_heads * shape.head_dim).max(1);
    let mut att = vec![0.0f32; pos + tokens];
    attention_with(out, q, k_cache, v_cache, shape, pos, &mut att);
}

/// [`attention`] with a caller's scratch for one head's scores
/// (`>= pos + tokens` values): the CPU decoder's step uses it.
pub(crate) fn attention_with(
    out: &mut [f32],
    q: &[f32],
    k_cache: &[f32],
    v_cache: &[f32],
    shape: AttentionShape,
    pos: usize,
    att: &mut [f32],
) {
    let AttentionShape {
        n_heads,
        n_kv_heads,
        head_dim: hd,
    } = shape;
    assert!(n_heads > 0 && n_kv_heads > 0 && hd > 0 && n_heads.is_multiple_of(n_kv_heads));
    let row = n_heads * hd;
    let kv_dim = n_kv_heads * hd;
    assert!(
        q.len().is_multiple_of(row),
        "q is not (tokens, {n_heads}, {hd})"
    );
    let tokens = q.len() / row;
    assert_eq!(
        out.len(),
        q.len(),
        "out must be (tokens, n_heads * head_dim)"
    );
    assert!(
        k_cache.len() >= (pos + tokens) * kv_dim && v_cache.len() >= (pos + tokens) * kv_dim,
        "the cache must hold positions 0..{}",
        pos + tokens
    );
    assert!(att.len() >= pos + tokens, "the score scratch is too short");
    let group = n_heads / n_kv_heads;
    let scale = 1.0 / (hd as f32).sqrt();
    for t in 0..tokens {
        let len = pos + t + 1;
        for h in 0..n_heads {
            let kvh = h / group;
            let qh = &q[t * row + h * hd..][..hd];
            let att = &mut att[..len];
            for (j, a) in att.iter_mut().enumerate() {
                let kj = &k_cache[j * kv_dim + kvh * hd..][..hd];
                *a = dot(qh, kj) * scale;
            }
            softmax(att);
            let o = &mut out[t * row + h * hd..][..hd];
            o.fill(0.0);
            for (j, &a) in att.iter().enumerate() {
                let vj = &v_cache[j * kv_dim + kvh * hd..][..hd];
                for (o, &v) in o.iter_mut().zip(vj) {
                    *o += a * v;
                }
            }
        }
    }
}

/// Rounds every value to the nearest f16 (ties to even) and back: what the
/// F16 KV cache stores.
pub fn f16_round_trip(values: &mut [f32]) {
    for v in values {
        *v = half::f16::from_f32(*v).to_f32();
    }
}

/// Quantizes one block to symmetric 8 bits and returns `(quants, scale)`:
/// `scale = absmax / 127`, `q` = the integer nearest to `x * 127 / absmax` (ties
/// to even) clamped to `-127..=127` (all zero, scale 0, for an all-zero block).
/// The GPU's `kv_write` (`q8_code` in shaders/attention.wgsl) decides `q` the
/// same way: a first guess from `127 / absmax`, settled by comparing correctly
/// rounded products, since GPU division is not correctly rounded.
pub fn q8_quantize(block: &[f32]) -> (Vec<i8>, f32) {
    let amax = block.iter().fold(0.0f32, |m, &x| m.max(x.abs()));
    let inv = if amax > 0.0 { 127.0 / amax } else { 0.0 };
    let quants = block
        .iter()
        .map(|&x| q8_code(x, amax, inv).clamp(-127.0, 127.0) as i8)
        .collect();
    (quants, amax / 127.0)
}

/// See [`q8_quantize`]; the same expressions as `q8_code` in shaders/attention.wgsl.
fn q8_code(x: f32, m: f32, inv: f32) -> f32 {
    let t = x * 127.0;
    let mut q = (x * inv).round_ties_even();
    let (hi, lo) = ((q + 0.5) * m, (q - 0.5) * m);
    let odd = (q as i32) & 1 != 0;
    if t > hi || (t == hi && odd) {
        q += 1.0;
    } else if t < lo || (t == lo && odd) {
        q -= 1.0;
    }
    q
}

/// Quantizes each `block`-sized run of `values` with [`q8_quantize`] and
/// replaces it with its dequantized values `q * scale`: what the Q8 KV cache
/// stores (one block per position and KV head, `block = head_dim`).
pub fn q8_round_trip(values: &mut [f32], block: usize) {
    assert!(block > 0 && values.len().is_multiple_of(block));
    for b in values.chunks_exact_mut(block) {
        let (quants, scale) = q8_quantize(b);
        for (v, q) in b.iter_mut().zip(quants) {
            *v = f32::from(q) * scale;
        }
    }
}
