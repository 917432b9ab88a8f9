// Quantized matrix products and embedding lookup over one weight matrix W.
//
// W is (rows, cols), row = output index, in the u32 streams of
// crate/src/gpu/repack.rs (GGUF dims [cols, rows]). FORMAT picks the
// per-format dequantization helpers, which every entry point shares. All
// arithmetic is f32; f16 values stay packed in u32 and are widened with
// unpack2x16float (no shader-f16, no subgroups).
//
// Entry points (each a pipeline of its own, crate/src/gpu/qmatmul.rs):
// - matvec (decode):  y[row_base + r] (+)= sum_c W[r, c] * x[c]
// - matmul (prefill): Y[t, row_base + r] (+)= sum_c X[t, c] * W[r, c], t < step.tokens
// - embed:            out[t, :] = W[ids[t], :], t < step.tokens
// `(+)=` is `+=` when ACCUMULATE is set (fused residual adds), `=` otherwise.
//
// A matrix over the storage-binding limit is split by rows into parts, each
// bound and dispatched on its own: `p.rows` rows starting at `p.row_base` of
// `p.total_rows`.
//
// Units: every row is read in units of 32 columns (a Q8_0/Q4_0 block, a Q4_K
// sub-block, a Q6_K quarter of a half-block; for F32 and F16 32 columns, the
// last one cut at cols), each unit in 8 quads of 4 columns. `unit_scale`
// decodes a unit's scales once, `unit_quad` dequantizes one quad with them.

// 0 F32, 1 F16, 2 Q8_0, 3 Q4_0, 4 Q4_K, 5 Q6_K (QFormat::code in qmatmul.rs).
override FORMAT: u32 = 0u;
// matvec, matmul: add to y instead of overwriting it.
override ACCUMULATE: bool = false;
// matvec: threads per workgroup, a power of two, at most MAX_WG.
override WG: u32 = 64u;
// matvec: rows per workgroup, at most MAX_ROWS.
override ROWS: u32 = 4u;

const MAX_WG: u32 = 256u;
const MAX_ROWS: u32 = 4u;

struct Params {
    // Rows of this part of W.
    rows: u32,
    // Elements per row (the length of x; the embedding dim).
    cols: u32,
    // This part's first row in the whole matrix (and in y).
    row_base: u32,
    // Rows of the whole matrix (y's row stride in matmul; the vocabulary in embed).
    total_rows: u32,
}

// crate/src/gpu/step.rs
struct Step {
    tokens: u32,
    pos: u32,
    kv_len: u32,
    sample_step: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
// matvec: (cols) f32; matmul: (>= step.tokens, cols) f32
@group(0) @binding(1) var<storage, read> x: array<f32>;
// matvec: (>= total_rows) f32; matmul: (>= step.tokens, total_rows) f32;
// embed: (>= step.tokens, cols) f32
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
// quants, per FORMAT (nb = cols / block elements, g = r * nb + b):
//   F32 (rows, cols) f32 bits; F16 (rows * cols / 2) u32, two halves each;
//   Q8_0 (rows, nb, 8) u32 of i8; Q4_0 (rows, nb, 4) u32 of nibble bytes;
//   Q4_K (rows, nb, 32) u32 of nibble bytes; Q6_K (rows, nb, 52) u32: ql[128] qh[64] scales[16]
@group(0) @binding(3) var<storage, read> wq: array<u32>;
// scales, per FORMAT: F32, F16 unused (one word);
//   Q8_0, Q4_0, Q6_K (rows * nb / 2) u32: f16 d of block g in half g % 2 of word g / 2;
//   Q4_K (rows, nb, 4) u32: d | dmin << 16, then 12 bytes of 6-bit scales and mins
@group(0) @binding(4) var<storage, read> ws: array<u32>;
// matmul, embed: the per-submit Step uniform.
@group(0) @binding(5) var<uniform> step: Step;
// embed: (>= step.tokens) u32 token ids; an id >= total_rows gives a row of zeros.
@group(0) @binding(6) var<storage, read> ids: array<u32>;

// ---------------------------------------------------------------------------
// Dequantization helpers (shared by every entry point)

// Half i of the packed-f16 scales stream: half i % 2 of word i / 2.
fn scale_at(i: u32) -> f32 {
    let pair = unpack2x16float(ws[i >> 1u]);
    return select(pair.x, pair.y, (i & 1u) == 1u);
}

// Units of 32 columns per row (the last one partial for F32 and F16).
fn n_units() -> u32 {
    return (p.cols + 31u) / 32u;
}

// Byte i of the Q4_K head of block g (bytes 0..4 are d and dmin).
fn q4k_head_byte(g: u32, i: u32) -> u32 {
    return (ws[g * 4u + i / 4u] >> (8u * (i % 4u))) & 0xffu;
}

// The scales of unit u of (part) row `row`, per FORMAT:
//   F32, F16: unused; Q8_0, Q4_0: (d, 0); Q4_K: (d * scale, dmin * min) of
//   the sub-block; Q6_K: d * the two i8 scales of the unit's 16-value halves.
fn unit_scale(row: u32, u: u32) -> vec2<f32> {
    if FORMAT == 2u || FORMAT == 3u {
        return vec2<f32>(scale_at(row * (p.cols / 32u) + u), 0.0);
    }
    if FORMAT == 4u {
        // Unit u: sub-block j of super-block b; get_scale_min_k4 over the 12
        // scale bytes at head bytes 4..16.
        let j = u % 8u;
        let g = row * (p.cols / 256u) + u / 8u;
        let dm = unpack2x16float(ws[g * 4u]);
        var sc: u32;
        var m: u32;
        if j < 4u {
            sc = q4k_head_byte(g, 4u + j) & 63u;
            m = q4k_head_byte(g, 8u + j) & 63u;
        } else {
            sc = (q4k_head_byte(g, 8u + j) & 0xfu) | ((q4k_head_byte(g, j) >> 6u) << 4u);
            m = (q4k_head_byte(g, 8u + j) >> 4u) | ((q4k_head_byte(g, 4u + j) >> 6u) << 4u);
        }
        return vec2<f32>(dm.x * f32(sc), dm.y * f32(m));
    }
    if FORMAT == 5u {
        // Unit u: quarter k of half h of super-block b; its values 0..16 and
        // 16..32 take i8 scales 8h + 2k and 8h + 2k + 1 (one word: 2k is even).
        let t = u % 8u;
        let h = t / 4u;
        let k = t % 4u;
        let g = row * (p.cols / 256u) + u / 8u;
        let si = 8u * h + 2u * k;
        let sw = bitcast<i32>(wq[g * 52u + 48u + si / 4u]);
        let d = scale_at(g);
        return d * vec2<f32>(
            f32(extractBits(sw, 8u * (si % 4u), 8u)),
            f32(extractBits(sw, 8u * (si % 4u) + 8u, 8u)),
        );
    }
    return vec2<f32>(1.0, 0.0);
}

// Columns 32u + 4q .. 32u + 4q + 4 of (part) row `row`, dequantized with the
// unit's scales `s`; columns at or past cols (F32, F16 tails) read as 0.
fn unit_quad(row: u32, u: u32, q: u32, s: vec2<f32>) -> vec4<f32> {
    let c = 32u * u + 4u * q;
    if FORMAT == 0u {
        let e = row * p.cols + c;
        if c + 4u <= p.cols {
            return vec4<f32>(
                bitcast<f32>(wq[e]),
                bitcast<f32>(wq[e + 1u]),
                bitcast<f32>(wq[e + 2u]),
                bitcast<f32>(wq[e + 3u]),
            );
        }
        var v = vec4<f32>(0.0);
        for (var i = 0u; i < 4u; i++) {
            if c + i < p.cols {
                v[i] = bitcast<f32>(wq[e + i]);
            }
        }
        return v;
    }
    if FORMAT == 1u {
        let e = row * p.cols + c;
        if (e & 1u) == 0u && c + 4u <= p.cols {
            let a = unpack2x16float(wq[e >> 1u]);
            let b = unpack2x16float(wq[(e >> 1u) + 1u]);
            return vec4<f32>(a, b);
        }
        // A row that starts mid-word (odd cols) or the row's tail.
        var v = vec4<f32>(0.0);
        for (var i = 0u; i < 4u; i++) {
            if c + i < p.cols {
                let h = unpack2x16float(wq[(e + i) >> 1u]);
                v[i] = select(h.x, h.y, ((e + i) & 1u) == 1u);
            }
        }
        return v;
    }
    if FORMAT == 2u {
        let g = row * (p.cols / 32u) + u;
        let w = bitcast<i32>(wq[g * 8u + q]);
        return s.x * vec4<f32>(
            f32(extractBits(w, 0u, 8u)),
            f32(extractBits(w, 8u, 8u)),
            f32(extractBits(w, 16u, 8u)),
            f32(extractBits(w, 24u, 8u)),
        );
    }
    if FORMAT == 3u {
        // Value j < 16: low nibble of byte j; j >= 16: high nibble of byte j - 16.
        let g = row * (p.cols / 32u) + u;
        let w = wq[g * 4u + q % 4u] >> (4u * (q / 4u));
        let n = vec4<u32>(w, w >> 8u, w >> 16u, w >> 24u) & vec4<u32>(0xfu);
        return s.x * (vec4<f32>(n) - 8.0);
    }
    if FORMAT == 4u {
        // Sub-block j: nibble j % 2 of qs bytes 32 * (j / 2) ..
        let j = u % 8u;
        let g = row * (p.cols / 256u) + u / 8u;
        let w = wq[g * 32u + 8u * (j / 2u) + q] >> (4u * (j % 2u));
        let n = vec4<u32>(w, w >> 8u, w >> 16u, w >> 24u) & vec4<u32>(0xfu);
        return s.x * vec4<f32>(n) - s.y;
    }
    // Q6_K: value l < 32 of quarter k of half h is nibble k / 2 of
    // ql[64h + 32(k % 2) + l] and bits 2k.. of qh[32h + l].
    let t = u % 8u;
    let h = t / 4u;
    let k = t % 4u;
    let base = (row * (p.cols / 256u) + u / 8u) * 52u;
    let lo = wq[base + 16u * h + 8u * (k % 2u) + q] >> (4u * (k / 2u));
    let hi = wq[base + 32u + 8u * h + q] >> (2u * k);
    let sh = vec4<u32>(0u, 8u, 16u, 24u);
    let v = ((vec4<u32>(lo) >> sh) & vec4<u32>(0xfu)) | (((vec4<u32>(hi) >> sh) & vec4<u32>(3u)) << vec4<u32>(4u));
    return select(s.x, s.y, q >= 4u) * (vec4<f32>(v) - 32.0);
}

// x[off + c .. off + c + 4], 0 at or past cols.
fn x_quad(off: u32, c: u32) -> vec4<f32> {
    if c + 4u <= p.cols {
        return vec4<f32>(x[off + c], x[off + c + 1u], x[off + c + 2u], x[off + c + 3u]);
    }
    var v = vec4<f32>(0.0);
    for (var i = 0u; i < 4u; i++) {
        if c + i < p.cols {
            v[i] = x[off + c + i];
        }
    }
    return v;
}

// y[i] = v, or y[i] += v with ACCUMULATE.
fn store_y(i: u32, v: f32) {
    if ACCUMULATE {
        y[i] += v;
    } else {
        y[i] = v;
    }
}

// ---------------------------------------------------------------------------
// matvec: a workgroup of WG threads computes ROWS consecutive rows; thread t
// sums units t, t + WG, ... of each and the workgroup adds the WG partial
// sums of each row in a tree reduction through workgroup memory.
// Dispatch: ceil(rows / ROWS) workgroups, laid out as (x, y) with
// index = x + y * num_workgroups.x when more than the per-dimension limit.

var<workgroup> partial: array<f32, 1024>; // (MAX_ROWS, MAX_WG)

@compute @workgroup_size(WG)
fn matvec(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
) {
    let first = (wid.x + wid.y * nwg.x) * ROWS;
    let units = n_units();
    for (var r = 0u; r < ROWS; r++) {
        let row = first + r;
        var acc = vec4<f32>(0.0);
        if row < p.rows {
            for (var u = t; u < units; u += WG) {
                let s = unit_scale(row, u);
                for (var q = 0u; q < 8u; q++) {
                    acc += unit_quad(row, u, q, s) * x_quad(0u, 32u * u + 4u * q);
                }
            }
        }
        partial[r * WG + t] = (acc.x + acc.y) + (acc.z + acc.w);
    }
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride >>= 1u) {
        if t < stride {
            for (var r = 0u; r < ROWS; r++) {
                partial[r * WG + t] += partial[r * WG + t + stride];
            }
        }
        workgroupBarrier();
    }
    if t < ROWS {
        let row = first + t;
        if row < p.rows {
            store_y(p.row_base + row, partial[t * WG]);
        }
    }
}

// ---------------------------------------------------------------------------
// matmul: Y (tokens, total_rows) = X (tokens, cols) . W^T over this part's rows.
//
// A workgroup of 256 threads computes a tile of TM tokens x TN rows. For each
// unit of TK = 32 columns it dequantizes the (TN, TK) tile of W once into
// workgroup memory (thread i: row i / 4, quads 2 (i % 4) and 2 (i % 4) + 1 of
// its unit, scales decoded once) and loads the (TM, TK) tile of X (thread i:
// token i / 8, quad i % 8), both stored k-major; then thread (tx, ty) =
// (i % 16, i / 16) accumulates rows tx + 16 a (a < 4) for tokens ty + 16 b
// (b < 2): 8 outputs, 6 workgroup reads per 8 multiply-adds.
// Workgroup memory: (TK * TN + TK * TM) * 4 = 12 KiB.
// Dispatch: (ceil(rows / TN), ceil(tokens / TM)); tiles past step.tokens return.

const TM: u32 = 32u;
const TN: u32 = 64u;
const TK: u32 = 32u;

var<workgroup> w_tile: array<f32, 2048>; // (TK, TN)
var<workgroup> x_tile: array<f32, 1024>; // (TK, TM)

@compute @workgroup_size(256)
fn matmul(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) i: u32,
) {
    let row0 = wid.x * TN;
    let tok0 = wid.y * TM;
    let tokens = step.tokens;
    if tok0 >= tokens {
        return;
    }
    let tx = i % 16u;
    let ty = i / 16u;
    // Loader roles.
    let w_row = i / 4u;
    let w_q = 2u * (i % 4u);
    let x_tok = i / 8u;
    let x_q = i % 8u;
    let x_off = (tok0 + x_tok) * p.cols;

    var acc0 = vec4<f32>(0.0); // token ty, rows tx + 16 a
    var acc1 = vec4<f32>(0.0); // token ty + 16
    let units = n_units();
    for (var u = 0u; u < units; u++) {
        var w0 = vec4<f32>(0.0);
        var w1 = vec4<f32>(0.0);
        let r = row0 + w_row;
        if r < p.rows {
            let s = unit_scale(r, u);
            w0 = unit_quad(r, u, w_q, s);
            w1 = unit_quad(r, u, w_q + 1u, s);
        }
        var xv = vec4<f32>(0.0);
        if tok0 + x_tok < tokens {
            xv = x_quad(x_off, 32u * u + 4u * x_q);
        }
        for (var e = 0u; e < 4u; e++) {
            w_tile[(4u * w_q + e) * TN + w_row] = w0[e];
            w_tile[(4u * w_q + 4u + e) * TN + w_row] = w1[e];
            x_tile[(4u * x_q + e) * TM + x_tok] = xv[e];
        }
        workgroupBarrier();
        for (var k = 0u; k < TK; k++) {
            let wk = k * TN + tx;
            let a = vec4<f32>(w_tile[wk], w_tile[wk + 16u], w_tile[wk + 32u], w_tile[wk + 48u]);
            acc0 += a * x_tile[k * TM + ty];
            acc1 += a * x_tile[k * TM + ty + 16u];
        }
        workgroupBarrier();
    }
    for (var a = 0u; a < 4u; a++) {
        let r = row0 + tx + 16u * a;
        if r < p.rows {
            let t0 = tok0 + ty;
            if t0 < tokens {
                store_y(t0 * p.total_rows + p.row_base + r, acc0[a]);
            }
            if t0 + 16u < tokens {
                store_y((t0 + 16u) * p.total_rows + p.row_base + r, acc1[a]);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// embed: out[t, :] = W[ids[t], :] for t < step.tokens (out is binding y,
// (tokens, cols) f32). Thread (gx, t) writes columns 4 gx .. 4 gx + 4 of
// token t. The part holding row ids[t] writes it; an id past the whole
// matrix (>= total_rows) gives zeros, written by the part at row_base 0.
// Dispatch: (ceil(cols / (4 * 64)), tokens).

@compute @workgroup_size(64)
fn embed(@builtin(global_invocation_id) gid: vec3<u32>) {
    let t = gid.y;
    let c = 4u * gid.x;
    if t >= step.tokens || c >= p.cols {
        return;
    }
    let id = ids[t];
    var v = vec4<f32>(0.0);
    if id >= p.row_base && id - p.row_base < p.rows {
        let r = id - p.row_base;
        let u = c / 32u;
        v = unit_quad(r, u, (c % 32u) / 4u, unit_scale(r, u));
    } else if id < p.total_rows || p.row_base != 0u {
        // Another part's row.
        return;
    }
    let o = t * p.cols + c;
    for (var e = 0u; e < 4u; e++) {
        if c + e < p.cols {
            y[o + e] = v[e];
        }
    }
}
