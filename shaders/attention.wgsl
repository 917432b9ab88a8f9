// Causal grouped-query attention over the chunked KV cache
// (crate/src/gpu/attention.rs). Three entry points, run in this order for one
// layer, each dispatch bound to ONE chunk (256 positions) of the cache:
//
//   kv_write  for every chunk that positions pos..pos+tokens fall in:
//             quantizes k, v of the batch into the chunk.
//             Dispatch (tokens in this chunk, n_kv_heads, 1).
//   attend    for every chunk 0..=(kv_len-1)/CHUNK: the scores of the chunk's
//             positions for each (token, head), the chunk-local softmax
//             (max m_c, sum l_c) and accumulator acc_c = sum_j e^(s_j - m_c) v_j,
//             merged into the running (m, l, acc) in `state` with the stable
//             online-softmax rule (chunk 0 initialises it).
//             Dispatch (n_heads, tokens from the first one reaching the chunk, 1).
//   finalize  out = acc / l. Dispatch (x, y, 1) with x * y * FINAL_WG >= tokens * n_heads * head_dim.
//
// Query token t sits at position pos + t and attends positions 0..=pos+t.
// KV head of query head h: h / (n_heads / n_kv_heads). All arithmetic is f32;
// f16 values stay packed two per u32 (pack2x16float / unpack2x16float, no
// shader-f16), Q8 values four per u32 (i8, low byte first), no subgroups.

// 0 F16, 1 Q8 (KvFormat in attention.rs).
override FORMAT: u32 = 0u;

// Positions per chunk (KV_CHUNK in attention.rs).
const CHUNK: u32 = 256u;
// attend: one invocation per position of the chunk, and per value of a head.
const WG: u32 = 256u;
const MAX_HD: u32 = 256u;
const WRITE_WG: u32 = 64u;
const FINAL_WG: u32 = 256u;

struct Step {
    tokens: u32,       // tokens in this batch (1 when decoding)
    pos: u32,          // position of the batch's first token
    kv_len: u32,       // pos + tokens
    sample_step: u32,
}

// One layer's slice of one chunk, in u32 words (a = n_kv_heads, bw = block_words):
//   K quants (CHUNK, a, bw) at 0, V quants (CHUNK, a, bw) at v_base,
//   Q8 only: K scales (CHUNK, a) f32 at ks_base, V scales (CHUNK, a) f32 at vs_base.
// F16: bw = head_dim / 2, value i of a block in half i % 2 of word i / 2.
// Q8:  bw = ceil(head_dim / 4), value i in byte i % 4 of word i / 4 (i8), x = q * scale.
struct Params {
    n_heads: u32,
    n_kv_heads: u32,
    head_dim: u32,
    chunk: u32,        // this chunk's index: positions chunk * CHUNK ..
    block_words: u32,
    v_base: u32,
    ks_base: u32,
    vs_base: u32,
    scale: f32,        // 1 / sqrt(head_dim)
    // q, k, v of token t in the qkv binding: at t * stride + q_off (k_off,
    // v_off) (crate/src/gpu/kernels.rs QkvLayout).
    stride: u32,
    q_off: u32,
    k_off: u32,
    v_off: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> step: Step;
@group(0) @binding(1) var<uniform> p: Params;
// kv_write, attend: (tokens, stride) f32 rows holding q (n_heads, head_dim),
// k and v (n_kv_heads, head_dim) at q_off, k_off, v_off
@group(0) @binding(2) var<storage, read> qkv: array<f32>;
// kv_write
@group(0) @binding(4) var<storage, read_write> cache_w: array<u32>;  // one layer's slice of one chunk (see Params)
@group(0) @binding(6) var<storage, read> cache: array<u32>;          // one layer's slice of one chunk (see Params)
// attend, finalize
@group(0) @binding(7) var<storage, read_write> state: array<f32>;    // (tokens, n_heads, 2 + head_dim): m, l, acc
// finalize
@group(0) @binding(8) var<storage, read_write> out: array<f32>;      // (tokens, n_heads * head_dim) f32

// The first batch token whose position reaches chunk c (host: first_token).
fn first_token(c: u32) -> u32 {
    return max(c * CHUNK, step.pos) - step.pos;
}

// ---------------------------------------------------------------- kv_write

var<workgroup> wred: array<f32, WRITE_WG>;

// Value i of token t's k (part 0) or v (part 1) rows.
fn in_val(part: u32, t: u32, i: u32) -> f32 {
    return qkv[t * p.stride + select(p.k_off, p.v_off, part == 1u) + i];
}

// The Q8 code of x in a block of absmax m (inv = 127 / m, 0 when m is 0): the integer nearest
// to x * 127 / m, ties to even, as crate/src/cpu/attention.rs `q8_quantize` computes it. WGSL
// division may be off by 2.5 ULP, so round(t * inv) alone can land one step off near a
// half-way point on some GPUs (seen on NVIDIA); the final choice compares correctly rounded
// products only, which every conforming GPU computes alike.
fn q8_code(x: f32, m: f32, inv: f32) -> f32 {
    let t = x * 127.0;
    var q = round(x * inv);
    let hi = (q + 0.5) * m;
    let lo = (q - 0.5) * m;
    let odd = (i32(q) & 1) != 0;
    if (t > hi || (t == hi && odd)) {
        q += 1.0;
    } else if (t < lo || (t == lo && odd)) {
        q -= 1.0;
    }
    return q;
}

@compute @workgroup_size(WRITE_WG)
fn kv_write(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let c0 = p.chunk * CHUNK;
    let t = first_token(p.chunk) + wg.x;
    let g = wg.y;
    if (t >= step.tokens || step.pos + t >= c0 + CHUNK || g >= p.n_kv_heads) {
        return;
    }
    let hd = p.head_dim;
    let bw = p.block_words;
    let src = g * hd;
    let blk = (step.pos + t - c0) * p.n_kv_heads + g;
    if (FORMAT == 0u) {
        for (var w = lid; w < bw; w += WRITE_WG) {
            let i = src + 2u * w;
            cache_w[blk * bw + w] = pack2x16float(vec2<f32>(in_val(0u, t, i), in_val(0u, t, i + 1u)));
            cache_w[p.v_base + blk * bw + w] = pack2x16float(vec2<f32>(in_val(1u, t, i), in_val(1u, t, i + 1u)));
        }
        return;
    }
    // Q8: symmetric, scale = absmax / 127, q = q8_code(x): x * 127 / absmax to the nearest.
    for (var part = 0u; part < 2u; part++) {
        var amax = 0.0;
        for (var i = lid; i < hd; i += WRITE_WG) {
            amax = max(amax, abs(in_val(part, t, src + i)));
        }
        wred[lid] = amax;
        workgroupBarrier();
        for (var s = WRITE_WG / 2u; s > 0u; s /= 2u) {
            if (lid < s) {
                wred[lid] = max(wred[lid], wred[lid + s]);
            }
            workgroupBarrier();
        }
        let m = wred[0];
        workgroupBarrier();
        var inv = 0.0;
        if (m > 0.0) {
            inv = 127.0 / m;
        }
        let qbase = select(0u, p.v_base, part == 1u) + blk * bw;
        for (var w = lid; w < bw; w += WRITE_WG) {
            var word = 0u;
            for (var b = 0u; b < 4u; b++) {
                let i = 4u * w + b;
                if (i < hd) {
                    let qv = i32(clamp(q8_code(in_val(part, t, src + i), m, inv), -127.0, 127.0));
                    word |= (bitcast<u32>(qv) & 0xffu) << (8u * b);
                }
            }
            cache_w[qbase + w] = word;
        }
        if (lid == 0u) {
            cache_w[select(p.ks_base, p.vs_base, part == 1u) + blk] = bitcast<u32>(m / 127.0);
        }
    }
}

// ------------------------------------------------------------------ attend

var<workgroup> qs: array<f32, MAX_HD>;   // the query row, zero-padded
var<workgroup> probs: array<f32, WG>;    // e^(s_j - m_c)
var<workgroup> red: array<f32, WG>;
var<workgroup> prev: vec2<f32>;          // running (m, l) before this chunk

fn q8_byte(w: u32, b: u32) -> f32 {
    return f32((bitcast<i32>(w) << (24u - 8u * b)) >> 24u);
}

// q . k of block `blk` (unscaled by 1/sqrt(head_dim)).
fn dot_k(blk: u32) -> f32 {
    let bw = p.block_words;
    let base = blk * bw;
    var acc = 0.0;
    if (FORMAT == 0u) {
        for (var w = 0u; w < bw; w++) {
            let kv = unpack2x16float(cache[base + w]);
            acc += qs[2u * w] * kv.x + qs[2u * w + 1u] * kv.y;
        }
        return acc;
    }
    for (var w = 0u; w < bw; w++) {
        let word = cache[base + w];
        let kv = vec4<f32>(q8_byte(word, 0u), q8_byte(word, 1u), q8_byte(word, 2u), q8_byte(word, 3u));
        acc += dot(vec4<f32>(qs[4u * w], qs[4u * w + 1u], qs[4u * w + 2u], qs[4u * w + 3u]), kv);
    }
    return acc * bitcast<f32>(cache[p.ks_base + blk]);
}

// Value d of V block `blk`.
fn v_at(blk: u32, d: u32) -> f32 {
    let bw = p.block_words;
    if (FORMAT == 0u) {
        let pair = unpack2x16float(cache[p.v_base + blk * bw + d / 2u]);
        return select(pair.x, pair.y, (d & 1u) == 1u);
    }
    let word = cache[p.v_base + blk * bw + d / 4u];
    return q8_byte(word, d & 3u) * bitcast<f32>(cache[p.vs_base + blk]);
}

@compute @workgroup_size(WG)
fn attend(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let h = wg.x;
    let c0 = p.chunk * CHUNK;
    let t = first_token(p.chunk) + wg.y;
    if (h >= p.n_heads || t >= step.tokens || step.pos + t < c0) {
        return;
    }
    // Causal: positions c0..=pos+t of this chunk.
    let n = min(CHUNK, step.pos + t + 1u - c0);
    let hd = p.head_dim;
    let g = h / (p.n_heads / p.n_kv_heads);
    let row = t * p.n_heads + h;
    let sbase = row * (hd + 2u);
    let first = p.chunk == 0u;

    for (var i = lid; i < MAX_HD; i += WG) {
        var x = 0.0;
        if (i < hd) {
            x = qkv[t * p.stride + p.q_off + h * hd + i];
        }
        qs[i] = x;
    }
    if (lid == 0u && !first) {
        prev = vec2<f32>(state[sbase], state[sbase + 1u]);
    }
    workgroupBarrier();

    // Scores, one position per invocation.
    var s = -3.0e38;
    if (lid < n) {
        s = dot_k(lid * p.n_kv_heads + g) * p.scale;
    }
    red[lid] = s;
    workgroupBarrier();
    for (var k = WG / 2u; k > 0u; k /= 2u) {
        if (lid < k) {
            red[lid] = max(red[lid], red[lid + k]);
        }
        workgroupBarrier();
    }
    let m_c = red[0];
    workgroupBarrier();
    var e = 0.0;
    if (lid < n) {
        e = exp(s - m_c);
    }
    probs[lid] = e;
    red[lid] = e;
    workgroupBarrier();
    for (var k = WG / 2u; k > 0u; k /= 2u) {
        if (lid < k) {
            red[lid] += red[lid + k];
        }
        workgroupBarrier();
    }
    let l_c = red[0];

    // Merge weights: new = old * a + chunk * b.
    var m_new = m_c;
    var a = 0.0;
    var b = 1.0;
    if (!first) {
        m_new = max(prev.x, m_c);
        a = exp(prev.x - m_new);
        b = exp(m_c - m_new);
    }
    for (var d = lid; d < hd; d += WG) {
        var acc = 0.0;
        for (var j = 0u; j < n; j++) {
            acc += probs[j] * v_at(j * p.n_kv_heads + g, d);
        }
        let i = sbase + 2u + d;
        if (first) {
            state[i] = acc;
        } else {
            state[i] = state[i] * a + acc * b;
        }
    }
    if (lid == 0u) {
        state[sbase] = m_new;
        if (first) {
            state[sbase + 1u] = l_c;
        } else {
            state[sbase + 1u] = prev.y * a + l_c * b;
        }
    }
}

// ---------------------------------------------------------------- finalize

@compute @workgroup_size(FINAL_WG)
fn finalize(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = (wg.x + wg.y * nwg.x) * FINAL_WG + lid;
    let hd = p.head_dim;
    if (i >= step.tokens * p.n_heads * hd) {
        return;
    }
    let row = i / hd;
    let sbase = row * (hd + 2u);
    out[i] = state[sbase + 2u + i % hd] / state[sbase + 1u];
}
