// Causal grouped-query attention over the chunked KV cache
// (crate/src/gpu/attention.rs, whose module docs hold the whole argument).
// Each dispatch binds ONE chunk (CHUNK positions) of one layer's cache:
//
//   kv_write  for every chunk that positions pos..pos+tokens fall in:
//             rounds k, v of the batch to the cache format and stores them.
//             Dispatch (tokens in this chunk, n_kv_heads, 1).
//             kv_write_rope (the decoder's): RoPE in place on the batch's q
//             and k first, in the same workgroups.
//   attend    for every chunk 0..=(kv_len-1)/CHUNK. A workgroup serves ROWS
//             query rows (token, head) that share one KV head, so each K and
//             V value it loads is used ROWS times, over a range of the
//             chunk's positions taken in blocks of WG (one position per lane
//             for the scores, lanes along head_dim for V, online softmax
//             across blocks). Dispatch (ranges, row tiles, n_kv_heads).
//             MODE 0 (decode, few tokens): the range is split wg.x (SPLIT
//             positions) of the chunk and the workgroup writes that split's
//             partial (m, l, acc) to its own slot of `scratch`: no workgroup
//             reads another's result, so the chunk dispatches are independent
//             and a decode step has (chunk splits x row tiles x kv heads)
//             workgroups per chunk. When kv_len <= SPLIT (one split in all)
//             it writes out = acc / l itself.
//             MODE 1 (prefill): the range is the whole chunk; the rows' state
//             carried from the previous chunk in `scratch` is merged in, and
//             the chunk that holds a row's last position writes its out row
//             instead of the state.
//   combine   MODE 0 only, when kv_len > SPLIT: merges the partials of every
//             split a row reaches with the stable rule (M = max m_s, weights
//             exp(m_s - M)) and writes out. Dispatch (n_heads, tokens, 1).
//
// Query token t sits at position pos + t and attends positions 0..=pos+t.
// KV head of query head h: h / (n_heads / n_kv_heads); row R of a dispatch
// (counted from the chunk's first token, t_first) is token t_first + R / group,
// head g * group + R % group. All arithmetic is f32; f16 values stay packed
// two per u32 (pack2x16float / unpack2x16float, no shader-f16), Q8 values four
// per u32 (i8, low byte first), no subgroups.
//
// The cache slice of one layer in one chunk (a = n_kv_heads, nq = quads per
// block, a quad = 4 u32 = 8 f16 or 16 i8 values of one (position, KV head),
// zero past head_dim):
//   K quants  (a, nq, CHUNK) quads at quad 0: quad w of every position of a
//             head contiguous, so lanes = positions read consecutive quads.
//   V quants  (a, CHUNK, nq) quads at quad v_base: a position's block
//             contiguous, so lanes along head_dim read consecutive quads.
//   Q8 only: K scales (a, CHUNK) f32 at word ks_base, V scales at vs_base.
// F16: value i of a block in half i % 2 of word i / 2. Q8: value i in byte
// i % 4 of word i / 4 (i8), x = q * scale.

// KV_F16 or KV_Q8 (KvFormat::code). Every override is set by
// crate/src/gpu/keys.rs (KernelKey::constants); none has a default here.
override FORMAT: u32;
// Positions per chunk (KV_CHUNK).
override CHUNK: u32;
// Positions per decode split (ATTN_SPLIT); a multiple of WG dividing CHUNK.
override SPLIT: u32;
// Query rows per attend workgroup (AttendMode rows), 1 ..= MAX_ROWS.
override ROWS: u32;
// MODE_DECODE (split partials) or MODE_PREFILL (running state)
// (AttendMode::code).
override MODE: u32;

// From the generated prelude (crate/src/gpu/keys.rs ShaderFamily::prelude):
// KV_F16, KV_Q8 (KvFormat codes), MODE_DECODE, MODE_PREFILL (AttendMode codes),
// WG (ATTN_WG: lanes of attend and combine, positions per attend block),
// MAX_ROWS (ATTN_MAX_ROWS), MAX_HD (MAX_HEAD_DIM: the largest head_dim, sizes
// the arrays below), WRITE_WG (KV_WRITE_WG: lanes of kv_write).
// vec4<f32> per q row in `qs`.
const QV: u32 = MAX_HD / 4u;
// The score of a masked position.
const NEG: f32 = -3.0e38;

struct Step {
    tokens: u32,       // tokens in this batch (1 when decoding)
    pos: u32,          // position of the batch's first token
    kv_len: u32,       // pos + tokens
    sample_step: u32,
}

struct Params {
    n_heads: u32,
    n_kv_heads: u32,
    head_dim: u32,
    chunk: u32,        // this chunk's index: positions chunk * CHUNK ..
    quads: u32,        // nq: quads per block
    v_base: u32,       // quads
    ks_base: u32,      // words
    vs_base: u32,      // words
    scale: f32,        // 1 / sqrt(head_dim)
    // q, k, v of token t in the qkv binding: at t * stride + q_off (k_off,
    // v_off) (crate/src/gpu/kernels.rs QkvLayout).
    stride: u32,
    q_off: u32,
    k_off: u32,
    v_off: u32,
    max_splits: u32,   // MODE 0 partial slots per row
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> step: Step;
@group(0) @binding(1) var<uniform> p: Params;
// attend: (tokens, stride) f32 rows holding q (n_heads, head_dim), k and v
// (n_kv_heads, head_dim) at q_off, k_off, v_off
@group(0) @binding(2) var<storage, read> qkv: array<f32>;
// kv_write, kv_write_rope: the same rows, written by kv_write_rope (RoPE in
// place on q and k)
@group(0) @binding(5) var<storage, read_write> qkv_rw: array<f32>;
// kv_write_rope: (max_len, head_dim / 2) (cos, sin) of every (position,
// pair), computed on the host in f64 (crate/src/gpu/kernels.rs RopeTable)
@group(0) @binding(3) var<storage, read> rope: array<vec2<f32>>;
// kv_write: one layer's slice of one chunk (see above), as words
@group(0) @binding(4) var<storage, read_write> cache_w: array<u32>;
// attend: the same slice, as quads
@group(0) @binding(6) var<storage, read> cache: array<vec4<u32>>;
// attend, combine: MODE 0 partials (tokens, n_heads, max_splits, 2 + head_dim)
// f32 (m, l, acc); MODE 1 the running state (tokens, n_heads, 2 + head_dim)
@group(0) @binding(7) var<storage, read_write> scratch: array<f32>;
// attend, combine: (tokens, n_heads * head_dim) f32
@group(0) @binding(8) var<storage, read_write> out: array<f32>;

// The first batch token whose position reaches chunk c (host: first_token).
fn first_token(c: u32) -> u32 {
    return max(c * CHUNK, step.pos) - step.pos;
}

// ---------------------------------------------------------------- kv_write

var<workgroup> wred: array<f32, WRITE_WG>;

// Value i of token t's k (part 0) or v (part 1) rows.
fn in_val(part: u32, t: u32, i: u32) -> f32 {
    return qkv_rw[t * p.stride + select(p.k_off, p.v_off, part == 1u) + i];
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

// Word index of word i (of nq * 4) of the K (part 0) or V (part 1) block of
// KV head g at chunk position j.
fn block_word(part: u32, g: u32, j: u32, i: u32) -> u32 {
    let nq = p.quads;
    if (part == 0u) {
        return ((g * nq + i / 4u) * CHUNK + j) * 4u + i % 4u;
    }
    return (p.v_base + (g * CHUNK + j) * nq) * 4u + i;
}

// The (token, KV head) of a kv_write workgroup of chunk p.chunk, or none
// (x = 0xffffffff) when the workgroup has no position of this chunk.
fn write_target(wg: vec3<u32>) -> vec2<u32> {
    let t = first_token(p.chunk) + wg.x;
    if (t >= step.tokens || step.pos + t >= (p.chunk + 1u) * CHUNK || wg.y >= p.n_kv_heads) {
        return vec2<u32>(0xffffffffu, 0u);
    }
    return vec2<u32>(t, wg.y);
}

@compute @workgroup_size(WRITE_WG)
fn kv_write(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let tg = write_target(wg);
    if (tg.x == 0xffffffffu) {
        return;
    }
    store_kv(tg.x, tg.y, lid);
}

// RoPE on adjacent pairs (Meta's layout, used by GGUF `llama` tensors), then
// kv_write: token t (position pos + t) gets pair (2i, 2i+1) of its key head g
// and of the query heads g * group .. (g + 1) * group rotated in place by the
// angle (pos + t) * theta^(-2i / head_dim), whose (cos, sin) the table holds
// (no angle is formed in f32: at position 16383 it would already be off by
// ~1e-3 rad); every query head belongs to one KV head and every token to one
// chunk, so each value is rotated once. The rotated k is what goes to the
// cache, the rotated q what `attend` reads.
@compute @workgroup_size(WRITE_WG)
fn kv_write_rope(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let tg = write_target(wg);
    if (tg.x == 0xffffffffu) {
        return;
    }
    let t = tg.x;
    let g = tg.y;
    let half = p.head_dim / 2u;
    let group = p.n_heads / p.n_kv_heads;
    let row = (step.pos + t) * half;
    // Pairs of the group's query heads, then of the key head.
    for (var i = lid; i < (group + 1u) * half; i += WRITE_WG) {
        let head = i / half;
        let pair = i % half;
        var at = t * p.stride + p.k_off + g * p.head_dim + 2u * pair;
        if (head < group) {
            at = t * p.stride + p.q_off + (g * group + head) * p.head_dim + 2u * pair;
        }
        let cs = rope[row + pair];
        let a = qkv_rw[at];
        let b = qkv_rw[at + 1u];
        qkv_rw[at] = a * cs.x - b * cs.y;
        qkv_rw[at + 1u] = a * cs.y + b * cs.x;
    }
    storageBarrier();
    store_kv(t, g, lid);
}

// Token t's k and v of KV head g, rounded to the cache format, into its
// position of the chunk.
fn store_kv(t: u32, g: u32, lid: u32) {
    let c0 = p.chunk * CHUNK;
    let hd = p.head_dim;
    let words = 4u * p.quads;
    let src = g * hd;
    let j = step.pos + t - c0;
    if (FORMAT == KV_F16) {
        // Values past head_dim (the last quad's padding) are stored as 0.
        for (var w = lid; w < words; w += WRITE_WG) {
            let i = 2u * w;
            var kp = vec2<f32>(0.0);
            var vp = vec2<f32>(0.0);
            if (i < hd) {
                kp = vec2<f32>(in_val(0u, t, src + i), in_val(0u, t, src + i + 1u));
                vp = vec2<f32>(in_val(1u, t, src + i), in_val(1u, t, src + i + 1u));
            }
            cache_w[block_word(0u, g, j, w)] = pack2x16float(kp);
            cache_w[block_word(1u, g, j, w)] = pack2x16float(vp);
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
        for (var w = lid; w < words; w += WRITE_WG) {
            var word = 0u;
            for (var b = 0u; b < 4u; b++) {
                let i = 4u * w + b;
                if (i < hd) {
                    let qv = i32(clamp(q8_code(in_val(part, t, src + i), m, inv), -127.0, 127.0));
                    word |= (bitcast<u32>(qv) & 0xffu) << (8u * b);
                }
            }
            cache_w[block_word(part, g, j, w)] = word;
        }
        if (lid == 0u) {
            cache_w[select(p.ks_base, p.vs_base, part == 1u) + g * CHUNK + j] = bitcast<u32>(m / 127.0);
        }
    }
}

// ------------------------------------------------------------------ attend

// The tile's query rows, zero past head_dim up to whole quads; after the last
// block, the V lane groups' partial sums (groups 1..G-1).
var<workgroup> qs: array<vec4<f32>, MAX_ROWS * QV>;
// (ROWS, WG): a block's scores, then its weights e^(s - m).
var<workgroup> probs: array<f32, MAX_ROWS * WG>;
// Block maxima (lane sub * ROWS + r), then the lane groups' sums of weights.
var<workgroup> red: array<f32, WG>;
// MODE 1: each row's (m, l) carried from the previous chunk.
var<workgroup> carried: array<vec2<f32>, MAX_ROWS>;

// Four i8 of a word (low byte first) as f32.
fn i8x4(w: u32) -> vec4<f32> {
    let x = vec4<i32>(bitcast<i32>(w));
    return vec4<f32>((x << vec4<u32>(24u, 16u, 8u, 0u)) >> vec4<u32>(24u));
}

// The f32 values of one quad: 8 (F16: x[0], x[1]) or 16 (Q8: x[0..4]).
fn unpack_quad(q: vec4<u32>) -> array<vec4<f32>, 4> {
    var x: array<vec4<f32>, 4>;
    if (FORMAT == KV_F16) {
        x[0] = vec4<f32>(unpack2x16float(q.x), unpack2x16float(q.y));
        x[1] = vec4<f32>(unpack2x16float(q.z), unpack2x16float(q.w));
    } else {
        x[0] = i8x4(q.x);
        x[1] = i8x4(q.y);
        x[2] = i8x4(q.z);
        x[3] = i8x4(q.w);
    }
    return x;
}

// vec4<f32> per quad: 2 (F16) or 4 (Q8).
fn quad_vecs() -> u32 {
    return select(2u, 4u, FORMAT == KV_Q8);
}

// Word `i` of the slice (the Q8 scales).
fn cache_word(i: u32) -> u32 {
    return cache[i / 4u][i % 4u];
}

@compute @workgroup_size(WG)
fn attend(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let g = wg.z;
    let group = p.n_heads / p.n_kv_heads;
    let c0 = p.chunk * CHUNK;
    let t_first = first_token(p.chunk);
    if (g >= p.n_kv_heads || t_first >= step.tokens) {
        return;
    }
    let total_rows = (step.tokens - t_first) * group;
    let r0 = wg.y * ROWS;
    if (r0 >= total_rows) {
        return;
    }
    let nrows = min(ROWS, total_rows - r0);
    let t_last = t_first + (r0 + nrows - 1u) / group;
    var start = c0;
    var end = c0 + CHUNK;
    if (MODE == MODE_DECODE) {
        start = c0 + wg.x * SPLIT;
        end = start + SPLIT;
    }
    // Causal: nothing past the tile's last position.
    end = min(end, step.pos + t_last + 1u);
    if (start >= end) {
        return;
    }
    let hd = p.head_dim;
    let nq = p.quads;
    let qv = quad_vecs();

    // Each row's token, head and last position (rows past nrows repeat the
    // last one; they are computed and never written).
    var tok: array<u32, MAX_ROWS>;
    var head: array<u32, MAX_ROWS>;
    var lim: array<u32, MAX_ROWS>;
    for (var r = 0u; r < ROWS; r++) {
        let rr = r0 + min(r, nrows - 1u);
        tok[r] = t_first + rr / group;
        head[r] = g * group + rr % group;
        lim[r] = step.pos + tok[r];
    }

    for (var i = lid; i < ROWS * nq * qv; i += WG) {
        let r = i / (nq * qv);
        let k = i % (nq * qv);
        let rr = r0 + min(r, nrows - 1u);
        let base = (t_first + rr / group) * p.stride + p.q_off + (g * group + rr % group) * hd;
        var x = vec4<f32>(0.0);
        for (var c = 0u; c < 4u; c++) {
            if (4u * k + c < hd) {
                x[c] = qkv[base + 4u * k + c];
            }
        }
        qs[r * QV + k] = x;
    }
    if (MODE == MODE_PREFILL && lid == 0u && p.chunk > 0u) {
        for (var r = 0u; r < ROWS; r++) {
            let sb = (tok[r] * p.n_heads + head[r]) * (hd + 2u);
            carried[r] = vec2<f32>(scratch[sb], scratch[sb + 1u]);
        }
    }

    // V lanes: lane = quad w of lane group jg; G groups share the positions.
    let w = lid % nq;
    let jg = lid / nq;
    let vg = min(min(WG / nq, 8u), 1u + (MAX_ROWS * QV) / (ROWS * nq * qv));
    let vlane = jg < vg;
    var m_run: array<f32, MAX_ROWS>;
    var l_run: array<f32, MAX_ROWS>;
    var acc: array<vec4<f32>, 32>;  // (MAX_ROWS, 4): row r's values of quad w
    for (var r = 0u; r < MAX_ROWS; r++) {
        m_run[r] = NEG;
        l_run[r] = 0.0;
    }
    for (var i = 0u; i < 32u; i++) {
        acc[i] = vec4<f32>(0.0);
    }
    workgroupBarrier();

    let kbase = g * nq * CHUNK;
    for (var b = start; b < end; b += WG) {
        let n = min(WG, end - b);
        // Scores: lane = position b + lid.
        let j = b - c0 + lid;
        var s: array<f32, MAX_ROWS>;
        for (var r = 0u; r < ROWS; r++) {
            s[r] = 0.0;
        }
        if (lid < n) {
            for (var k = 0u; k < nq; k++) {
                let x = unpack_quad(cache[kbase + k * CHUNK + j]);
                for (var r = 0u; r < ROWS; r++) {
                    let q = r * QV + k * qv;
                    var d = dot(qs[q], x[0]) + dot(qs[q + 1u], x[1]);
                    if (FORMAT == KV_Q8) {
                        d += dot(qs[q + 2u], x[2]) + dot(qs[q + 3u], x[3]);
                    }
                    s[r] += d;
                }
            }
            if (FORMAT == KV_Q8) {
                let ks = bitcast<f32>(cache_word(p.ks_base + g * CHUNK + j));
                for (var r = 0u; r < ROWS; r++) {
                    s[r] *= ks;
                }
            }
        }
        for (var r = 0u; r < ROWS; r++) {
            var x = NEG;
            if (lid < n && b + lid <= lim[r]) {
                x = s[r] * p.scale;
            }
            s[r] = x;
            probs[r * WG + lid] = x;
        }
        workgroupBarrier();

        // Block max per row: lane (sub, r) over positions sub, sub + S, ...
        let rr = lid % ROWS;
        let sub = lid / ROWS;
        let subs = WG / ROWS;
        var mx = NEG;
        for (var jj = sub; jj < n; jj += subs) {
            mx = max(mx, probs[rr * WG + jj]);
        }
        red[lid] = mx;
        workgroupBarrier();
        for (var k = subs / 2u; k > 0u; k /= 2u) {
            if (sub < k) {
                red[lid] = max(red[lid], red[lid + k * ROWS]);
            }
            workgroupBarrier();
        }
        var alpha: array<f32, MAX_ROWS>;
        for (var r = 0u; r < ROWS; r++) {
            let m_new = max(m_run[r], red[r]);
            alpha[r] = exp(m_run[r] - m_new);
            m_run[r] = m_new;
        }
        for (var r = 0u; r < ROWS; r++) {
            var e = 0.0;
            if (s[r] > NEG) {
                e = exp(s[r] - m_run[r]);
            }
            probs[r * WG + lid] = e;
        }
        workgroupBarrier();

        // acc = acc * alpha + sum_j e_j v_j, lanes along head_dim.
        if (vlane) {
            for (var r = 0u; r < ROWS; r++) {
                l_run[r] *= alpha[r];
                for (var k = 0u; k < qv; k++) {
                    acc[r * 4u + k] *= alpha[r];
                }
            }
            for (var jj = jg; jj < n; jj += vg) {
                let pj = b - c0 + jj;
                var x = unpack_quad(cache[p.v_base + (g * CHUNK + pj) * nq + w]);
                if (FORMAT == KV_Q8) {
                    let vs = bitcast<f32>(cache_word(p.vs_base + g * CHUNK + pj));
                    for (var k = 0u; k < 4u; k++) {
                        x[k] *= vs;
                    }
                }
                for (var r = 0u; r < ROWS; r++) {
                    let e = probs[r * WG + jj];
                    l_run[r] += e;
                    for (var k = 0u; k < qv; k++) {
                        acc[r * 4u + k] += e * x[k];
                    }
                }
            }
        }
        workgroupBarrier();
    }

    // Lane groups 1..G-1 hand their sums to group 0 (qs is free now).
    if (vlane && jg > 0u) {
        for (var r = 0u; r < ROWS; r++) {
            for (var k = 0u; k < qv; k++) {
                qs[(((jg - 1u) * ROWS + r) * nq + w) * qv + k] = acc[r * 4u + k];
            }
            if (w == 0u) {
                red[jg * ROWS + r] = l_run[r];
            }
        }
    }
    workgroupBarrier();
    if (!vlane || jg > 0u) {
        return;
    }
    for (var gg = 1u; gg < vg; gg++) {
        for (var r = 0u; r < ROWS; r++) {
            for (var k = 0u; k < qv; k++) {
                acc[r * 4u + k] += qs[(((gg - 1u) * ROWS + r) * nq + w) * qv + k];
            }
            l_run[r] += red[gg * ROWS + r];
        }
    }

    // Lanes w of group 0 write values 4k.. of quad w (k < qv) of each row.
    for (var r = 0u; r < ROWS; r++) {
        if (r >= nrows || lim[r] < start) {
            continue;
        }
        var m = m_run[r];
        var l = l_run[r];
        var a = 0.0;
        var bb = 1.0;
        let sb = (tok[r] * p.n_heads + head[r]) * (hd + 2u);
        if (MODE == MODE_PREFILL && p.chunk > 0u) {
            let prev = carried[r];
            let m_new = max(prev.x, m);
            a = exp(prev.x - m_new);
            bb = exp(m - m_new);
            m = m_new;
            l = prev.y * a + l * bb;
        }
        let last = lim[r] / CHUNK == p.chunk;
        var dst = 0u;
        var to_out = true;
        if (MODE == MODE_DECODE) {
            to_out = step.kv_len <= SPLIT;
            if (!to_out) {
                let slot = (tok[r] * p.n_heads + head[r]) * p.max_splits + start / SPLIT;
                dst = slot * (hd + 2u);
            }
        } else {
            to_out = last;
            dst = sb;
        }
        if (!to_out && w == 0u) {
            scratch[dst] = m;
            scratch[dst + 1u] = l;
        }
        for (var k = 0u; k < qv; k++) {
            let v = acc[r * 4u + k];
            for (var c = 0u; c < 4u; c++) {
                let d = (w * qv + k) * 4u + c;
                if (d < hd) {
                    var x = v[c];
                    if (MODE == MODE_PREFILL && p.chunk > 0u) {
                        x = scratch[sb + 2u + d] * a + x * bb;
                    }
                    if (to_out) {
                        out[tok[r] * p.n_heads * hd + head[r] * hd + d] = x / l;
                    } else {
                        scratch[dst + 2u + d] = x;
                    }
                }
            }
        }
    }
}

// ----------------------------------------------------------------- combine

@compute @workgroup_size(WG)
fn combine(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let h = wg.x;
    let t = wg.y;
    if (h >= p.n_heads || t >= step.tokens) {
        return;
    }
    let hd = p.head_dim;
    let ns = (step.pos + t) / SPLIT + 1u;
    let base = (t * p.n_heads + h) * p.max_splits * (hd + 2u);
    var m = NEG;
    for (var s = 0u; s < ns; s++) {
        m = max(m, scratch[base + s * (hd + 2u)]);
    }
    var l = 0.0;
    for (var s = 0u; s < ns; s++) {
        let o = base + s * (hd + 2u);
        l += exp(scratch[o] - m) * scratch[o + 1u];
    }
    for (var d = lid; d < hd; d += WG) {
        var a = 0.0;
        for (var s = 0u; s < ns; s++) {
            let o = base + s * (hd + 2u);
            a += exp(scratch[o] - m) * scratch[o + 2u + d];
        }
        out[t * p.n_heads * hd + h * hd + d] = a / l;
    }
}
