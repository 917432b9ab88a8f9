// Token sampling on the GPU: greedy, temperature, top-k, top-p, min-p and the
// repetition penalty, picking exactly the token `sampler::Sampler::sample`
// picks on the CPU (the design, and why the two agree bit for bit, is in the
// docs of crate/src/sampler.rs and crate/src/gpu/sample.rs).
//
// One workgroup of WG invocations does everything for one row of logits;
// dispatch (rows, 1, 1) samples `rows` rows at once (speculative
// verification: row r is the vocab logits at logits[r * vocab..], its own
// step, recent ids and scratch; gpu::sample::GpuSampler::new_rows).
// Integer arithmetic decides: u32 keys order the logits, integer weights come
// from an exp table, sums are 64-bit integers (two u32 words, atomics with an
// explicit carry), and prefixes of the (key desc, id asc) order are found with
// a radix select over the 64-bit (key, !id). The only f32 operations are
// correctly rounded products and differences that cannot overflow.
//
// Output: token[r] = row r's chosen id, or 0xffffffff when its logits hold NaN
// or +inf or are all -inf (the ids first, so that one read-back of `rows` u32
// gets them all); token[rows + 6 r..][..6] = its trace (sampler::SampleTrace):
// candidates, total (lo, hi), drawn total (lo, hi); 0 when greedy. With one
// row: token[0] the id, token[1..7] the trace.

// WG (SAMPLE_WG): from the generated prelude (crate/src/gpu/keys.rs).
const NONE: u32 = 0xffffffffu;
const NEG_INF_KEY: u32 = 0x007fffffu;
const NEG_INF_BITS: u32 = 0xff800000u;
const TOP_P_ONE: u32 = 0x01000000u;
// Offsets into exp_table: exp(-a), exp(-b/256), exp(-c/65536).
const EXP_B: u32 = 32u;
const EXP_C: u32 = 288u;

// Mirrors gpu::sample::Params (the settings, written by configure).
struct Params {
    vocab: u32,
    greedy: u32,     // 1: greedy
    top_k: u32,      // 0: off
    top_p_q: u32,    // round(top_p * 2^24); >= 2^24: off
    floor_w: u32,    // min-p: keep weights >= floor_w
    seed_lo: u32,
    seed_hi: u32,
    penalize: u32,   // 1: apply the repetition penalty to recent[..n_recent]
    pen_pos: f32,    // multiplier of positive penalised logits (1 / penalty)
    pen_neg: f32,    // multiplier of the others (penalty)
    inv2t: f32,      // 2 / temperature
    hcut: f32,       // h >= hcut: weight 0
    rows: u32,       // rows the buffers hold (token: rows ids, then the traces)
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

// Mirrors gpu::sample::RowStep (written by prepare, before each submit).
struct RowStep {
    step: u32,       // the sampler's step (its RNG draw index)
    n_recent: u32,   // distinct ids in the row's recent list
    recent_at: u32,  // where that list starts in `recent`
    _pad: u32,
}

// Mirrors gpu::sample::StepData: one RowStep per row (SAMPLE_ROWS at most).
struct StepData {
    rows: array<RowStep, ROWS>,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<uniform> sd: StepData;
@group(0) @binding(2) var<storage, read> logits: array<u32>;          // (rows, vocab) f32 bits
@group(0) @binding(3) var<storage, read> recent: array<u32>;          // per row: distinct token ids
@group(0) @binding(4) var<storage, read> exp_table: array<u32>;       // (32 + 256 + 256) u32
@group(0) @binding(5) var<storage, read_write> scratch: array<u32>;   // (rows, 4, vocab) u32: keys, cand key, cand !id, cand weight
@group(0) @binding(6) var<storage, read_write> token: array<u32>;     // (rows) ids, then (rows, 6) traces

// This workgroup's row, and where its logits and scratch start.
var<private> row: u32;
var<private> lb: u32;
var<private> sb: u32;

var<workgroup> bin_lo: array<atomic<u32>, WG>;
var<workgroup> bin_hi: array<atomic<u32>, WG>;
var<workgroup> bin_n: array<atomic<u32>, WG>;
var<workgroup> a_max: atomic<u32>;
var<workgroup> a_bad: atomic<u32>;
var<workgroup> a_min_id: atomic<u32>;
var<workgroup> a_ncand: atomic<u32>;
var<workgroup> a_tot_lo: atomic<u32>;
var<workgroup> a_tot_hi: atomic<u32>;
var<workgroup> a_tot2_lo: atomic<u32>;
var<workgroup> a_tot2_hi: atomic<u32>;
// Uniform copies (read with workgroupUniformLoad).
var<workgroup> u_max: u32;
var<workgroup> u_bad: u32;
var<workgroup> u_ncand: u32;
var<workgroup> u_tot: vec2<u32>;
// Radix select state.
var<workgroup> sel_key: u32;
var<workgroup> sel_nid: u32;
var<workgroup> sel_rem: vec2<u32>;
var<workgroup> sel_done: u32;
var<workgroup> sel_level: u32;
var<workgroup> res_key: u32;
var<workgroup> res_nid: u32;

// ---- integers ---------------------------------------------------------------

// a * b as (lo, hi).
fn mul_wide(a: u32, b: u32) -> vec2<u32> {
    let a0 = a & 0xffffu;
    let a1 = a >> 16u;
    let b0 = b & 0xffffu;
    let b1 = b >> 16u;
    let p00 = a0 * b0;
    let p01 = a0 * b1;
    let p10 = a1 * b0;
    let p11 = a1 * b1;
    let mid = (p00 >> 16u) + (p01 & 0xffffu) + (p10 & 0xffffu);
    return vec2<u32>((p00 & 0xffffu) | (mid << 16u), p11 + (p01 >> 16u) + (p10 >> 16u) + (mid >> 16u));
}

// floor(x * y / 2^31) for x, y <= 2^31.
fn mul_shr31(x: u32, y: u32) -> u32 {
    let w = mul_wide(x, y);
    return (w.y << 1u) | (w.x >> 31u);
}

fn add64(a: vec2<u32>, b: vec2<u32>) -> vec2<u32> {
    let lo = a.x + b.x;
    return vec2<u32>(lo, a.y + b.y + select(0u, 1u, lo < a.x));
}

fn sub64(a: vec2<u32>, b: vec2<u32>) -> vec2<u32> {
    return vec2<u32>(a.x - b.x, a.y - b.y - select(0u, 1u, a.x < b.x));
}

fn ge64(a: vec2<u32>, b: vec2<u32>) -> bool {
    return a.y > b.y || (a.y == b.y && a.x >= b.x);
}

// floor(x * f / 2^24) for f <= 2^24.
fn scale24(x: vec2<u32>, f: u32) -> vec2<u32> {
    let a = mul_wide(x.x, f);
    let b = mul_wide(x.y, f);
    let w1 = a.y + b.x;
    let w2 = b.y + select(0u, 1u, w1 < a.y);
    return vec2<u32>((a.x >> 24u) | (w1 << 8u), (w1 >> 24u) | (w2 << 8u));
}

// 64-bit sums in pairs of atomics: the carry out of the low word goes to the
// high word, so the sum is exact whatever the order of the additions.
fn carry(old: u32, add: u32) -> u32 {
    return select(0u, 1u, old + add < old);
}

// Adds weight w to bin d.
fn bin_add(d: u32, w: u32) {
    let c = carry(atomicAdd(&bin_lo[d], w), w);
    if (c != 0u) {
        atomicAdd(&bin_hi[d], c);
    }
    atomicAdd(&bin_n[d], 1u);
}

fn pcg_hash(v: u32) -> u32 {
    let state = v * 747796405u + 2891336453u;
    let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
    return (word >> 22u) ^ word;
}

// ---- keys and weights -------------------------------------------------------

// Subnormals and -0 become +0.
fn canonical(bits: u32) -> u32 {
    return select(bits, 0u, (bits & 0x7f800000u) == 0u);
}

fn key_of(bits: u32) -> u32 {
    return select(bits | 0x80000000u, ~bits, (bits & 0x80000000u) != 0u);
}

fn key_value(k: u32) -> u32 {
    return select(~k, k & 0x7fffffffu, (k & 0x80000000u) != 0u);
}

// The canonical bits of the penalised finite logit `bits`.
fn penalize(bits: u32) -> u32 {
    let lim = bitcast<f32>(0x71800000u); // 2^100
    let x = clamp(bitcast<f32>(bits), -lim, lim);
    var r: f32;
    if (x > 0.0) {
        r = x * p.pen_pos;
    } else {
        r = x * p.pen_neg;
    }
    return canonical(bitcast<u32>(r));
}

fn weight(k: u32, m_half: f32) -> u32 {
    if (k <= NEG_INF_KEY) {
        return 0u;
    }
    let x = bitcast<f32>(key_value(k));
    let h = m_half - x * 0.5;
    if (h >= p.hcut) {
        return 0u;
    }
    let y = h * p.inv2t;
    let q = u32(y * 65536.0);
    let a = q >> 16u;
    if (a >= 32u) {
        return 0u;
    }
    let ab = mul_shr31(exp_table[a], exp_table[EXP_B + ((q >> 8u) & 255u)]);
    return mul_shr31(ab, exp_table[EXP_C + (q & 255u)]);
}

// ---- radix select -----------------------------------------------------------

// Element i: (key, !id, weight). Mode 0: keys[i] of the whole vocab, weight 1;
// mode 1: candidate i.
fn element(mode: u32, i: u32) -> vec3<u32> {
    if (mode == 0u) {
        return vec3<u32>(scratch[sb + i], ~i, 1u);
    }
    let v = p.vocab;
    return vec3<u32>(scratch[sb + v + i], scratch[sb + 2u * v + i], scratch[sb + 3u * v + i]);
}

// (key, nid) >= (bk, bn) in the 64-bit order, and weight >= floor_w.
fn passes(e: vec3<u32>, bk: u32, bn: u32, floor_w: u32) -> bool {
    return (e.x > bk || (e.x == bk && e.y >= bn)) && e.z >= floor_w;
}

// The top `bits` bits set.
fn top_mask(bits: u32) -> u32 {
    if (bits == 0u) {
        return 0u;
    }
    if (bits >= 32u) {
        return 0xffffffffu;
    }
    return ~(0xffffffffu >> bits);
}

// Whether e's top 8 * level bits of (key, nid) equal those of (pk, pn).
fn matches(e: vec3<u32>, level: u32, pk: u32, pn: u32) -> bool {
    let kbits = min(8u * level, 32u);
    let km = top_mask(kbits);
    let nm = top_mask(8u * level - kbits);
    return (e.x & km) == (pk & km) && (e.y & nm) == (pn & nm);
}

fn digit(e: vec3<u32>, level: u32) -> u32 {
    if (level < 4u) {
        return (e.x >> (24u - 8u * level)) & 255u;
    }
    return (e.y >> (24u - 8u * (level - 4u))) & 255u;
}

// The (key, nid) of the element that ends the shortest prefix, in descending
// (key, nid) order, of the elements passing (bk, bn, floor_w) whose weights
// sum to at least `thr` (1 <= thr <= their total). One byte per level, most
// significant first; stops early once the chosen bin holds one element.
fn select_prefix(lid: u32, mode: u32, n: u32, thr: vec2<u32>, bk: u32, bn: u32, floor_w: u32) -> vec2<u32> {
    if (lid == 0u) {
        sel_key = 0u;
        sel_nid = 0u;
        sel_rem = thr;
        sel_done = 0u;
        sel_level = 8u;
    }
    for (var level = 0u; level < 8u; level++) {
        atomicStore(&bin_lo[lid], 0u);
        atomicStore(&bin_hi[lid], 0u);
        atomicStore(&bin_n[lid], 0u);
        workgroupBarrier();
        let pk = sel_key;
        let pn = sel_nid;
        for (var i = lid; i < n; i += WG) {
            let e = element(mode, i);
            if (passes(e, bk, bn, floor_w) && matches(e, level, pk, pn)) {
                let d = digit(e, level);
                bin_add(d, e.z);
            }
        }
        workgroupBarrier();
        if (lid == 0u) {
            let rem = sel_rem;
            var acc = vec2<u32>(0u, 0u);
            for (var b = WG; b > 0u; b--) {
                let d = b - 1u;
                let s = add64(acc, vec2<u32>(atomicLoad(&bin_lo[d]), atomicLoad(&bin_hi[d])));
                if (ge64(s, rem)) {
                    sel_rem = sub64(rem, acc);
                    if (level < 4u) {
                        sel_key = pk | (d << (24u - 8u * level));
                    } else {
                        sel_nid = pn | (d << (24u - 8u * (level - 4u)));
                    }
                    if (atomicLoad(&bin_n[d]) == 1u) {
                        sel_done = 1u;
                        sel_level = level + 1u;
                    }
                    break;
                }
                acc = s;
            }
        }
        if (workgroupUniformLoad(&sel_done) == 1u) {
            break;
        }
    }
    let level = workgroupUniformLoad(&sel_level);
    if (level == 8u) {
        return vec2<u32>(workgroupUniformLoad(&sel_key), workgroupUniformLoad(&sel_nid));
    }
    // One element matches the digits chosen so far: find it.
    let pk = sel_key;
    let pn = sel_nid;
    for (var i = lid; i < n; i += WG) {
        let e = element(mode, i);
        if (passes(e, bk, bn, floor_w) && matches(e, level, pk, pn)) {
            res_key = e.x;
            res_nid = e.y;
        }
    }
    return vec2<u32>(workgroupUniformLoad(&res_key), workgroupUniformLoad(&res_nid));
}

// ---- the sampler ------------------------------------------------------------

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
    let v = p.vocab;
    row = wid.x;
    lb = row * v;
    sb = 4u * row * v;
    let rs = sd.rows[row];
    let trace = p.rows + 6u * row;
    if (lid == 0u) {
        atomicStore(&a_max, 0u);
        atomicStore(&a_bad, 0u);
        atomicStore(&a_min_id, NONE);
        atomicStore(&a_ncand, 0u);
        atomicStore(&a_tot_lo, 0u);
        atomicStore(&a_tot_hi, 0u);
        atomicStore(&a_tot2_lo, 0u);
        atomicStore(&a_tot2_hi, 0u);
    }
    if (lid < 6u) {
        token[trace + lid] = 0u;
    }
    workgroupBarrier();

    // Keys of the canonical logits; NaN or +inf is an error.
    for (var i = lid; i < v; i += WG) {
        let b = logits[lb + i];
        if ((b & 0x7f800000u) == 0x7f800000u && b != NEG_INF_BITS) {
            atomicOr(&a_bad, 1u);
        }
        scratch[sb + i] = key_of(canonical(b));
    }
    storageBarrier();

    // The repetition penalty, once per distinct recent id (the host dedups).
    if (p.penalize != 0u) {
        for (var j = lid; j < rs.n_recent; j += WG) {
            let id = recent[rs.recent_at + j];
            if (id < v) {
                let b = canonical(logits[lb + id]);
                if ((b & 0x7f800000u) != 0x7f800000u) {
                    scratch[sb + id] = key_of(penalize(b));
                }
            }
        }
    }
    storageBarrier();

    var mk = 0u;
    for (var i = lid; i < v; i += WG) {
        mk = max(mk, scratch[sb + i]);
    }
    atomicMax(&a_max, mk);
    workgroupBarrier();
    if (lid == 0u) {
        u_max = atomicLoad(&a_max);
        u_bad = atomicLoad(&a_bad);
    }
    let maxk = workgroupUniformLoad(&u_max);
    let bad = workgroupUniformLoad(&u_bad);
    if (bad != 0u || maxk <= NEG_INF_KEY) {
        if (lid == 0u) {
            token[row] = NONE;
        }
        return;
    }

    // Greedy: the largest key, lowest id.
    if (p.greedy != 0u) {
        var best = NONE;
        for (var i = lid; i < v; i += WG) {
            if (scratch[sb + i] == maxk) {
                best = min(best, i);
            }
        }
        atomicMin(&a_min_id, best);
        workgroupBarrier();
        if (lid == 0u) {
            token[row] = atomicLoad(&a_min_id);
        }
        return;
    }

    // Top-k: the k-th element of the order bounds the candidates.
    var bk = 0u;
    var bn = 0u;
    if (p.top_k != 0u && p.top_k < v) {
        let r = select_prefix(lid, 0u, v, vec2<u32>(p.top_k, 0u), 0u, 0u, 0u);
        bk = r.x;
        bn = r.y;
    }

    // Weights; the candidates with a positive weight, in any order.
    let m_half = bitcast<f32>(key_value(maxk)) * 0.5;
    var tot = vec2<u32>(0u, 0u);
    for (var i = lid; i < v; i += WG) {
        let k = scratch[sb + i];
        let nid = ~i;
        if (k > bk || (k == bk && nid >= bn)) {
            let w = weight(k, m_half);
            if (w > 0u) {
                let slot = atomicAdd(&a_ncand, 1u);
                scratch[sb + v + slot] = k;
                scratch[sb + 2u * v + slot] = nid;
                scratch[sb + 3u * v + slot] = w;
                tot = add64(tot, vec2<u32>(w, 0u));
            }
        }
    }
    atomicAdd(&a_tot_hi, tot.y + carry(atomicAdd(&a_tot_lo, tot.x), tot.x));
    storageBarrier();
    workgroupBarrier();
    if (lid == 0u) {
        u_ncand = atomicLoad(&a_ncand);
        u_tot = vec2<u32>(atomicLoad(&a_tot_lo), atomicLoad(&a_tot_hi));
    }
    let n = workgroupUniformLoad(&u_ncand);
    let total = workgroupUniformLoad(&u_tot);

    // Top-p: the shortest prefix reaching max(1, floor(P * total / 2^24)).
    var pk = 0u;
    var pn = 0u;
    if (p.top_p_q < TOP_P_ONE) {
        var thr = scale24(total, p.top_p_q);
        if (thr.x == 0u && thr.y == 0u) {
            thr = vec2<u32>(1u, 0u);
        }
        let r = select_prefix(lid, 1u, n, thr, 0u, 0u, 0u);
        pk = r.x;
        pn = r.y;
    }

    // Min-p filters; the draw: the first candidate whose running weight
    // exceeds floor(U * total / 2^24).
    var tot2 = vec2<u32>(0u, 0u);
    for (var i = lid; i < n; i += WG) {
        let e = element(1u, i);
        if (passes(e, pk, pn, p.floor_w)) {
            tot2 = add64(tot2, vec2<u32>(e.z, 0u));
        }
    }
    atomicAdd(&a_tot2_hi, tot2.y + carry(atomicAdd(&a_tot2_lo, tot2.x), tot2.x));
    workgroupBarrier();
    if (lid == 0u) {
        u_tot = vec2<u32>(atomicLoad(&a_tot2_lo), atomicLoad(&a_tot2_hi));
    }
    let total2 = workgroupUniformLoad(&u_tot);
    let u = pcg_hash(p.seed_lo ^ pcg_hash(p.seed_hi ^ pcg_hash(rs.step))) >> 8u;
    let thr = add64(scale24(total2, u), vec2<u32>(1u, 0u));
    let r = select_prefix(lid, 1u, n, thr, pk, pn, p.floor_w);
    if (lid == 0u) {
        token[row] = ~r.y;
        token[trace] = n;
        token[trace + 1u] = total.x;
        token[trace + 2u] = total.y;
        token[trace + 3u] = total2.x;
        token[trace + 4u] = total2.y;
    }
}

// ---- log-probabilities (entry point `logprobs`) -----------------------------
//
// Dispatched after `main` in the same submit, and only when a request asks
// for log-probabilities (crate/src/logprobs.rs has the definition and the CPU
// reference). Reads the same logits (binding 2) and the chosen token
// (token[0], binding 6); temperature 1, no penalty. One workgroup; dispatch
// (1, 1, 1).
//
// f32: m = the largest canonical logit (by key, exact); S = sum of
// exp(x - m), each invocation summing its strided share, then a fixed tree
// (the same order every run); logprob(x) = (x - m) - log(S), with x - m taken
// as 2 * (x/2 - m/2) so that it cannot overflow; -inf logits (and values
// below m - 3.2e38) give -inf. The top entries: `top` rounds of an argmax of
// (key, !id) over the tokens after the previous pick in that order.
//
// Output lp_out: [0] the chosen id (NONE when `main` found no usable
// logits), [1] its logprob (f32 bits), [2] the number of top entries,
// [3] 0, then (id, logprob bits) per top entry, most likely first.

// Mirrors gpu::sample::logprobs::LpParams.
struct LpParams {
    vocab: u32,
    top: u32,        // 0..=20
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(7) var<uniform> lp: LpParams;
@group(0) @binding(8) var<storage, read_write> lp_out: array<u32>;   // (4 + 2 * 20) u32

var<workgroup> lp_sum: array<f32, WG>;
var<workgroup> lp_key: array<u32, WG>;
var<workgroup> lp_nid: array<u32, WG>;
var<workgroup> lp_max: atomic<u32>;
var<workgroup> u_lp_token: u32;
var<workgroup> u_lp_max: u32;
var<workgroup> u_lp_log_s: f32;

// The logprob bits of logit bits `b`, given m / 2 and log(S).
fn logprob_bits(b: u32, m_half: f32, log_s: f32) -> u32 {
    let c = canonical(b);
    if (key_of(c) <= NEG_INF_KEY) {
        return NEG_INF_BITS;
    }
    let hd = bitcast<f32>(c) * 0.5 - m_half;
    if (hd < -1.6e38) {
        return NEG_INF_BITS;
    }
    return bitcast<u32>(hd * 2.0 - log_s);
}

@compute @workgroup_size(WG)
fn logprobs(@builtin(local_invocation_index) lid: u32) {
    let v = lp.vocab;
    if (lid == 0u) {
        atomicStore(&lp_max, 0u);
        u_lp_token = token[0];
    }
    let t = workgroupUniformLoad(&u_lp_token);
    if (t == NONE || t >= v) {
        if (lid == 0u) {
            lp_out[0] = NONE;
            lp_out[1] = NEG_INF_BITS;
            lp_out[2] = 0u;
            lp_out[3] = 0u;
        }
        return;
    }

    // The largest key (main already rejected NaN and +inf).
    var mk = 0u;
    for (var i = lid; i < v; i += WG) {
        mk = max(mk, key_of(canonical(logits[i])));
    }
    atomicMax(&lp_max, mk);
    workgroupBarrier();
    if (lid == 0u) {
        u_lp_max = atomicLoad(&lp_max);
    }
    let m_half = bitcast<f32>(key_value(workgroupUniformLoad(&u_lp_max))) * 0.5;

    // S: strided partial sums, then a tree.
    var s = 0.0;
    for (var i = lid; i < v; i += WG) {
        let c = canonical(logits[i]);
        if (key_of(c) > NEG_INF_KEY) {
            let hd = bitcast<f32>(c) * 0.5 - m_half;
            if (hd > -64.0) {
                s += exp(hd * 2.0);
            }
        }
    }
    lp_sum[lid] = s;
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
        if (lid < stride) {
            lp_sum[lid] += lp_sum[lid + stride];
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        u_lp_log_s = log(lp_sum[0]);
    }
    let log_s = workgroupUniformLoad(&u_lp_log_s);

    let top = min(lp.top, v);
    if (lid == 0u) {
        lp_out[0] = t;
        lp_out[1] = logprob_bits(logits[t], m_half, log_s);
        lp_out[2] = top;
        lp_out[3] = 0u;
    }

    // Top entries: each round the largest (key, !id) below the previous pick.
    var pk = 0xffffffffu;
    var pn = 0xffffffffu;
    for (var r = 0u; r < top; r++) {
        // Every key is above 0 (NaN was rejected), so (0, 0) means none.
        var bk = 0u;
        var bn = 0u;
        for (var i = lid; i < v; i += WG) {
            let k = key_of(canonical(logits[i]));
            let n = ~i;
            let below = r == 0u || k < pk || (k == pk && n < pn);
            if (below && (k > bk || (k == bk && n > bn))) {
                bk = k;
                bn = n;
            }
        }
        lp_key[lid] = bk;
        lp_nid[lid] = bn;
        workgroupBarrier();
        for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
            if (lid < stride) {
                let ok = lp_key[lid + stride];
                let on = lp_nid[lid + stride];
                let k = lp_key[lid];
                if (ok > k || (ok == k && on > lp_nid[lid])) {
                    lp_key[lid] = ok;
                    lp_nid[lid] = on;
                }
            }
            workgroupBarrier();
        }
        pk = lp_key[0];
        pn = lp_nid[0];
        workgroupBarrier();
        if (lid == 0u) {
            let id = ~pn;
            lp_out[4u + 2u * r] = id;
            lp_out[5u + 2u * r] = logprob_bits(logits[id], m_half, log_s);
        }
    }
}
