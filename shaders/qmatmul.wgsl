// Quantized matrix products and embedding lookup over one weight matrix W.
//
// W is (rows, cols), row = output index, in the word streams of
// crate/src/gpu/repack.rs (GGUF dims [cols, rows]). FORMAT picks the
// per-format dequantization, which every entry point shares. All arithmetic
// is f32; f16 values stay packed in u32 and are widened with
// unpack2x16float (no shader-f16, no subgroups).
//
// Entry points (each a pipeline of its own, crate/src/gpu/qmatmul/):
// - matvec (decode, and small batches): Y[t, r] = s(t) * sum_c W[r, c] * X[t, c]
//   for t < step.tokens, a workgroup per (ROWS rows, TT tokens), lanes along K;
// - matmul (prefill on GPUs): the same product in 64 x 64 register-blocked tiles;
// - embed:  out[t, :] = W[ids[t], :], t < step.tokens.
//
// Output (EPILOGUE): 0 stores Y[t, r] at y[t * y_stride + y_offset + r];
// 1 adds to it (fused residual adds); 2 is SwiGLU over a matrix whose rows
// are the gate rows then the up rows (gate | up, 2 n rows): it stores
// silu(Y[t, i]) * Y[t, n + i] at y[t * y_stride + y_offset + i], i < n.
//
// RMSNorm finish: with norm_groups > 0, X holds x * w (norm.wgsl) and `ss`
// the (tokens, norm_groups) partial sums of x^2, and s(t) = 1 / sqrt(sum /
// cols + eps): the product of the normalized row, since
// W (x * w * s) = s * W (x * w). Else s(t) = 1.
//
// A matrix over the storage-binding limit is split by rows into parts, each
// bound and dispatched on its own: `p.rows` rows starting at `p.row_base` of
// the matrix (never with SwiGLU).

// Every override is set by crate/src/gpu/keys.rs (KernelKey::constants).
// F32, F16, Q8_0, Q4_0, Q4_K or Q6_K (QFormat codes, from the prelude).
override FORMAT: u32;
// matvec, matmul: EPILOGUE_STORE, EPILOGUE_ACCUMULATE or EPILOGUE_SWIGLU.
override EPILOGUE: u32;
// matvec: lanes per workgroup (along K).
override WG: u32;
// matvec: rows per workgroup; ROWS * TT at most MAX_ACC, WG * ROWS * TT at
// most MAX_PARTIALS.
override ROWS: u32;
// matvec: tokens per workgroup (1 when decoding).
override TT: u32;
// matvec: each lane takes whole Q6_K super-blocks (its 8 units in a row)
// instead of every WG-th unit, so that a row's 16 scales and d are loaded
// once per super-block, not once per unit (CPU adapters, where every load
// is a loop over the lanes; on a GPU it would spread a warp's loads over 32
// super-blocks). No effect on other formats.
override RUNS: bool;

// From the generated prelude (crate/src/gpu/keys.rs ShaderFamily::prelude):
// the FORMAT codes F32, F16, Q8_0, Q4_0, Q4_K, Q6_K; the EPILOGUE codes
// EPILOGUE_STORE, EPILOGUE_ACCUMULATE, EPILOGUE_SWIGLU; MAX_ROWS (rows per
// workgroup), MAX_ACC (rows x tokens), MAX_PARTIALS (lanes x rows x tokens);
// matmul's tile TM x TN x TK; EMBED_WG.

struct Params {
    // Rows of this part of W.
    rows: u32,
    // Elements per row (the length of x; the embedding dim).
    cols: u32,
    // This part's first row in the whole matrix.
    row_base: u32,
    // Rows of the whole matrix (the vocabulary in embed).
    total_rows: u32,
    // Y[t, r] (of the whole matrix) lives at y[t * y_stride + y_offset + r].
    y_stride: u32,
    y_offset: u32,
    // RMSNorm finish: partial sums per token (0: none) and epsilon.
    norm_groups: u32,
    eps: f32,
}

// crate/src/gpu/step.rs
struct Step {
    tokens: u32,
    pos: u32,
    kv_len: u32,
    sample_step: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
// matvec, matmul: X (>= step.tokens, cols) f32
@group(0) @binding(1) var<storage, read> x: array<f32>;
// matvec, matmul: Y (>= step.tokens, total_rows) f32; embed: (>= step.tokens, cols) f32
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
// quants, per FORMAT (nb = cols / block elements, g = r * nb + b):
//   F32 (rows, cols4) f32 bits; F16 (rows, cols8 / 2) u32, two halves each
//   (rows padded to 4 and 8 values); Q8_0 (rows, nb, 8) u32 of i8;
//   Q4_0 (rows, nb, 4) u32 of nibble bytes; Q4_K (rows, nb, 32) u32 of
//   nibble bytes; Q6_K (rows, nb, 52) u32: ql[128] qh[64] scales[16]
@group(0) @binding(3) var<storage, read> wq: array<u32>;
// scales, per FORMAT: F32, F16 unused (one word);
//   Q8_0, Q4_0, Q6_K (rows * nb / 2) u32: f16 d of block g in half g % 2 of word g / 2;
//   Q4_K (rows, nb, 5) u32: d | dmin << 16, then the 8 scales and the 8 mins, a byte each
@group(0) @binding(4) var<storage, read> ws: array<u32>;
// The per-submit Step uniform.
@group(0) @binding(5) var<uniform> step: Step;
// embed: (>= step.tokens) u32 token ids; an id >= total_rows gives a row of zeros.
@group(0) @binding(6) var<storage, read> ids: array<u32>;
// matvec: binding 3 read as 16-byte words; every row is a whole number of them.
@group(0) @binding(7) var<storage, read> wq4: array<vec4<u32>>;
// matvec: binding 1 read as vec4 (used when cols % 4 == 0).
@group(0) @binding(8) var<storage, read> x4: array<vec4<f32>>;
// matvec, matmul: (>= step.tokens, norm_groups) f32 partial sums of x^2
// (norm.wgsl), read when norm_groups > 0.
@group(0) @binding(9) var<storage, read> ss: array<f32>;

// ---------------------------------------------------------------------------
// Shared helpers

// Half i of the packed-f16 scales stream: half i % 2 of word i / 2.
fn scale_at(i: u32) -> f32 {
    let pair = unpack2x16float(ws[i >> 1u]);
    return select(pair.x, pair.y, (i & 1u) == 1u);
}

fn hsum(v: vec4<f32>) -> f32 {
    return (v.x + v.y) + (v.z + v.w);
}

// The 4 nibbles at bits s, s + 8, s + 16, s + 24 of w, as floats.
fn nib4(w: u32, s: u32) -> vec4<f32> {
    return vec4<f32>((vec4<u32>(w) >> vec4<u32>(s, s + 8u, s + 16u, s + 24u)) & vec4<u32>(0xfu));
}

// The 4 signed bytes of w (low first), as floats.
fn i8x4(w: u32) -> vec4<f32> {
    let v = bitcast<vec4<i32>>(vec4<u32>(w) << vec4<u32>(24u, 16u, 8u, 0u)) >> vec4<u32>(24u);
    return vec4<f32>(v);
}

// Q6_K: the 4 six-bit codes of the byte lanes of ql word `l` (nibble at bit
// `ls`) and qh word `h` (2 bits at bit `hs`), as floats 0..63.
fn q6x4(l: u32, h: u32, ls: u32, hs: u32) -> vec4<f32> {
    let q = ((l >> ls) & 0x0f0f0f0fu) | (((h >> hs) & 0x03030303u) << 4u);
    return vec4<f32>((vec4<u32>(q) >> vec4<u32>(0u, 8u, 16u, 24u)) & vec4<u32>(0xffu));
}

// The RMSNorm scale s(t) of token t (1 without a norm).
fn norm_scale(t: u32) -> f32 {
    if p.norm_groups == 0u {
        return 1.0;
    }
    var sum = 0.0;
    for (var g = 0u; g < p.norm_groups; g++) {
        sum += ss[t * p.norm_groups + g];
    }
    return 1.0 / sqrt(sum / f32(p.cols) + p.eps);
}

// Y[t, r] = v for row r of this part (stored, or added with EPILOGUE 1).
fn store_y(t: u32, r: u32, v: f32) {
    let i = t * p.y_stride + p.y_offset + p.row_base + r;
    if EPILOGUE == EPILOGUE_ACCUMULATE {
        y[i] += v;
    } else {
        y[i] = v;
    }
}

fn silu(v: f32) -> f32 {
    return v / (1.0 + exp(-v));
}

// SwiGLU: output i of token t from its gate and up values.
fn store_swiglu(t: u32, i: u32, gate: f32, up: f32) {
    y[t * p.y_stride + p.y_offset + i] = silu(gate) * up;
}

// ---------------------------------------------------------------------------
// matvec: Y[t, row_base + r] (+)= sum_c W[r, c] X[t, c], lanes along K.
//
// A workgroup of WG lanes computes ROWS rows for TT tokens. Lane l takes
// units l, l + WG, l + 2 WG, ... of the rows: a unit is unit_cols()
// consecutive columns (one Q8_0/Q4_0 block, 32 F32/F16 values, two Q4_K
// sub-blocks, a quarter of a Q6_K half-block's values). Per unit the lane
// loads each row's weights once (load_unit: 16-byte vec4<u32> loads from a
// 16-byte aligned row, consecutive lanes reading consecutive pieces of a
// row), then for each token its x values once as vec4s (unit_x) and their
// sums, and multiplies every row with them (unit_dot): nibbles and bytes are
// widened four at a time from whole words, scales applied once per block or
// sub-block, and Q4_0's and Q6_K's offsets (q - 8, q - 32) folded into one
// product with the unit's sum of x. Each (row, token) has one f32
// accumulator per lane; the WG partial sums meet in workgroup memory: one
// barrier, then each (row, token) is summed by one lane in lane order. In
// modules with subgroups (SUBGROUPS, where the workgroup is one subgroup)
// lanes_sum (subgroupAdd) adds them instead, in the adapter's order.
//
// Rounding: every weight is dequantized exactly as the CPU reference does
// (the same f32 products of the same factors), but sums run in another order
// (per lane, then across lanes) and d * (sum(q x) - 8 sum(x)) replaces
// sum(d (q - 8) x): the results differ from the reference by f32 rounding of
// sums of cols terms, which the tests bound by a few ulps of the output's
// scale times sqrt(cols).
//
// Dispatch: (gx, ceil(step.tokens / TT), gz) with row group wid.x + wid.z * gx
// (ceil(rows / ROWS) groups, or ceil(rows / 2 / (ROWS / 2)) with SwiGLU).

// The row length of wq4, in vec4<u32> (16 bytes), per FORMAT (F32 and F16
// rows are read through wq4 only when whole vec4s: cols % 4, cols % 8 == 0).
fn row_vec4s() -> u32 {
    switch FORMAT {
        case F32: { return p.cols / 4u; }
        case F16: { return p.cols / 8u; }
        case Q8_0: { return p.cols / 32u * 2u; }       // 32 bytes per block
        case Q4_0: { return p.cols / 32u; }            // 16 bytes per block
        case Q4_K: { return p.cols / 256u * 8u; }      // 128 bytes per super-block
        default: { return p.cols / 256u * 13u; }       // Q6_K: 208 bytes per super-block
    }
}

// F32 and F16 rows that are not whole vec4s: word i of (part) row `row`'s
// unit u as a vec4 of 4 words (F32: values 4i.., F16: 8i..; past the row: 0).
fn unaligned_words(row: u32, u: u32, i: u32) -> vec4<u32> {
    var v = vec4<u32>(0u);
    if FORMAT == F32 {
        let c = 32u * u + 4u * i;
        let e = row * p.cols + c;
        for (var k = 0u; k < 4u; k++) {
            if c + k < p.cols {
                v[k] = wq[e + k];
            }
        }
        return v;
    }
    // F16: halves c .. c + 8, two per word, the row starting mid-word when
    // row * cols is odd.
    let c = 32u * u + 8u * i;
    let e = row * p.cols + c;
    for (var k = 0u; k < 8u; k++) {
        if c + k < p.cols {
            let h = (wq[(e + k) >> 1u] >> (16u * ((e + k) & 1u))) & 0xffffu;
            v[k / 2u] |= h << (16u * (k % 2u));
        }
    }
    return v;
}

// Columns per lane unit.
fn unit_cols() -> u32 {
    if FORMAT == Q4_K {
        return 64u;
    }
    return 32u;
}

// One row's weights for one unit, as loaded: up to 8 vec4<u32> and the
// unit's scales (per FORMAT, see load_unit).
struct WUnit {
    q: array<vec4<u32>, 8>,
    s: vec4<f32>,
}

// The weights of unit u of (part) row `row`.
//   F32: q[0..8] the 32 values' bits (vec4s past the row: 0);
//   F16: q[0..4] the 32 halves (likewise);
//   Q8_0: q[0..2] the 32 i8, s.x = d;  Q4_0: q[0] the 16 nibble bytes, s.x = d;
//   Q4_K: q[0..2] the 32 qs bytes of sub-blocks 2j, 2j + 1 (j = u % 4),
//         s = (d sc_2j, dmin m_2j, d sc_2j+1, dmin m_2j+1);
//   Q6_K: q[0], q[1] ql bytes of quarters (0, 2) and (1, 3), q[2] qh bytes,
//         s = d * the i8 scales of the four quarters.
fn load_unit(row: u32, u: u32) -> WUnit {
    var w: WUnit;
    let base = row * row_vec4s();
    if FORMAT == F32 || FORMAT == F16 {
        let n = select(4u, 8u, FORMAT == F32);
        let aligned = select((p.cols & 7u) == 0u, (p.cols & 3u) == 0u, FORMAT == F32);
        if aligned {
            let v0 = n * u;
            let end = row_vec4s();
            for (var i = 0u; i < n; i++) {
                if v0 + i < end {
                    w.q[i] = wq4[base + v0 + i];
                }
            }
        } else {
            for (var i = 0u; i < n; i++) {
                w.q[i] = unaligned_words(row, u, i);
            }
        }
        return w;
    }
    if FORMAT == Q8_0 {
        let g = row * (p.cols / 32u) + u;
        w.q[0] = wq4[2u * g];
        w.q[1] = wq4[2u * g + 1u];
        w.s.x = scale_at(g);
        return w;
    }
    if FORMAT == Q4_0 {
        let g = row * (p.cols / 32u) + u;
        w.q[0] = wq4[g];
        w.s.x = scale_at(g);
        return w;
    }
    if FORMAT == Q4_K {
        // Sub-blocks 2j, 2j + 1 of super-block g: qs bytes 32 j ..; their
        // scales and mins are bytes 2 (j % 2), + 1 of scale and min word j / 2.
        let j = u % 4u;
        let g = row * (p.cols / 256u) + u / 4u;
        w.q[0] = wq4[8u * g + 2u * j];
        w.q[1] = wq4[8u * g + 2u * j + 1u];
        let dm = unpack2x16float(ws[5u * g]);
        let sh = 16u * (j % 2u);
        let scw = ws[5u * g + 1u + j / 2u] >> sh;
        let mw = ws[5u * g + 3u + j / 2u] >> sh;
        w.s = vec4<f32>(dm, dm) * vec4<f32>(
            f32(scw & 0xffu),
            f32(mw & 0xffu),
            f32((scw >> 8u) & 0xffu),
            f32((mw >> 8u) & 0xffu),
        );
        return w;
    }
    return q6k_unit(row, u, q6k_scales(row, u / 8u));
}

// The scales of one Q6_K super-block of a row: its 16 i8 scales (words
// 48..52 of the block) and d. With RUNS a lane keeps them for its run.
struct RunScales {
    q: vec4<u32>,
    d: f32,
}

// A lane's first unit and the one after unit u: every WG-th unit, or with
// RUNS (Q6_K) whole super-blocks, every WG-th one.
fn first_unit(lane: u32) -> u32 {
    return select(lane, 8u * lane, RUNS && FORMAT == Q6_K);
}

fn next_unit(u: u32) -> u32 {
    if RUNS && FORMAT == Q6_K {
        return select(u + 1u, u + 1u + 8u * (WG - 1u), u % 8u == 7u);
    }
    return u + WG;
}

// Row `row`'s scales of its super-block sb (Q6_K).
fn q6k_scales(row: u32, sb: u32) -> RunScales {
    let g = row * (p.cols / 256u) + sb;
    return RunScales(wq4[13u * g + 12u], scale_at(g));
}

// q6k_scales of super-block sb for every live row of group g, with RUNS
// (written out: the array is never indexed by a variable).
fn rows_run_scales(rs: ptr<function, array<RunScales, MAX_ROWS>>, g: u32, sb: u32, live: u32) {
    if 0u < ROWS && row_live(0u, live) { (*rs)[0] = q6k_scales(matvec_row(g, 0u), sb); }
    if 1u < ROWS && row_live(1u, live) { (*rs)[1] = q6k_scales(matvec_row(g, 1u), sb); }
    if 2u < ROWS && row_live(2u, live) { (*rs)[2] = q6k_scales(matvec_row(g, 2u), sb); }
    if 3u < ROWS && row_live(3u, live) { (*rs)[3] = q6k_scales(matvec_row(g, 3u), sb); }
    if 4u < ROWS && row_live(4u, live) { (*rs)[4] = q6k_scales(matvec_row(g, 4u), sb); }
    if 5u < ROWS && row_live(5u, live) { (*rs)[5] = q6k_scales(matvec_row(g, 5u), sb); }
    if 6u < ROWS && row_live(6u, live) { (*rs)[6] = q6k_scales(matvec_row(g, 6u), sb); }
    if 7u < ROWS && row_live(7u, live) { (*rs)[7] = q6k_scales(matvec_row(g, 7u), sb); }
    if 8u < ROWS && row_live(8u, live) { (*rs)[8] = q6k_scales(matvec_row(g, 8u), sb); }
    if 9u < ROWS && row_live(9u, live) { (*rs)[9] = q6k_scales(matvec_row(g, 9u), sb); }
    if 10u < ROWS && row_live(10u, live) { (*rs)[10] = q6k_scales(matvec_row(g, 10u), sb); }
    if 11u < ROWS && row_live(11u, live) { (*rs)[11] = q6k_scales(matvec_row(g, 11u), sb); }
    if 12u < ROWS && row_live(12u, live) { (*rs)[12] = q6k_scales(matvec_row(g, 12u), sb); }
    if 13u < ROWS && row_live(13u, live) { (*rs)[13] = q6k_scales(matvec_row(g, 13u), sb); }
    if 14u < ROWS && row_live(14u, live) { (*rs)[14] = q6k_scales(matvec_row(g, 14u), sb); }
    if 15u < ROWS && row_live(15u, live) { (*rs)[15] = q6k_scales(matvec_row(g, 15u), sb); }
}

// The weights of Q6_K unit u of row `row` (8 per super-block u / 8, v = u %
// 8), with the super-block's scales `rs`: half h = v / 4, positions l = 16 m
// .. 16 m + 16 (m = (v / 2) % 2) of quarters j and j + 2 (j = v % 2): the
// low and high nibbles of one 16-byte run of ql.
fn q6k_unit(row: u32, u: u32, rs: RunScales) -> WUnit {
    var w: WUnit;
    let v = u % 8u;
    let h = v / 4u;
    let m = (v / 2u) % 2u;
    let j = v % 2u;
    let b = 13u * (row * (p.cols / 256u) + u / 8u);
    w.q[0] = wq4[b + 4u * h + 2u * j + m];  // ql bytes 64 h + 32 j + 16 m ..
    w.q[1] = wq4[b + 8u + 2u * h + m];      // qh bytes 32 h + 16 m ..
    // Quarter k's scale is i8 scale 8 h + 2 k + m: byte 2 j + m of scale
    // word 2 h (k = j) and 2 h + 1 (k = j + 2).
    let s0 = bitcast<i32>(rs.q[2u * h]);
    let s1 = bitcast<i32>(rs.q[2u * h + 1u]);
    w.s = rs.d * vec4<f32>(
        f32(extractBits(s0, 8u * (2u * j + m), 8u)),
        f32(extractBits(s1, 8u * (2u * j + m), 8u)),
        0.0,
        0.0,
    );
    w.s.z = f32(j);
    return w;
}

// load_unit, with the scales of the run that holds unit u where runs are
// on (RUNS, Q6_K: rows_run_scales): one 16-byte load less per unit.
fn load_unit_in(row: u32, u: u32, rs: RunScales) -> WUnit {
    if RUNS && FORMAT == Q6_K {
        return q6k_unit(row, u, rs);
    }
    return load_unit(row, u);
}

// The x values of token row `t` that unit u multiplies, as vec4s (entries
// past the unit unused): columns u * unit_cols() .. in order, except Q6_K,
// whose unit is four runs of 16 columns 32 apart (see unit_dot). Columns at
// or past cols read as 0.
fn unit_x(t: u32, u: u32) -> array<vec4<f32>, 16> {
    var v: array<vec4<f32>, 16>;
    var vv: array<vec4<f32>, 16>;
    if FORMAT == Q6_K {
        // Runs of 16 columns at quarters j and j + 2 (see load_unit).
        let q = u % 8u;
        let c0 = t * p.cols + 256u * (u / 8u) + 128u * (q / 4u) + 16u * ((q / 2u) % 2u) + 32u * (q % 2u);
        for (var i = 0u; i < 8u; i++) {
            vv[i] = x4[(c0 + 64u * (i / 4u)) / 4u + i % 4u];
        }
        return vv;
    }
    let n = unit_cols() / 4u;
    let c0 = u * unit_cols();
    if FORMAT >= Q8_0 {
        let i0 = (t * p.cols + c0) / 4u;
        for (var i = 0u; i < n; i++) {
            v[i] = x4[i0 + i];
        }
    } else if (p.cols & 3u) == 0u {
        let i0 = (t * p.cols + c0) / 4u;
        let left = (p.cols - min(c0, p.cols)) / 4u;
        for (var i = 0u; i < n; i++) {
            if i < left {
                v[i] = x4[i0 + i];
            }
        }
    } else {
        // Odd widths (F32 and F16 only): scalar loads.
        for (var i = 0u; i < n; i++) {
            v[i] = x_quad(t * p.cols, c0 + 4u * i);
        }
    }
    return v;
}

// The sums of x that the formats' offsets need: Q4_0: over the block (.x);
// Q4_K: over each 32-column half (.x, .y); Q6_K: over each 16-column run
// (one per quarter k).
fn unit_sums(xv: array<vec4<f32>, 16>) -> vec4<f32> {
    if FORMAT == Q4_0 {
        let t = ((xv[0] + xv[1]) + (xv[2] + xv[3])) + ((xv[4] + xv[5]) + (xv[6] + xv[7]));
        return vec4<f32>(hsum(t), 0.0, 0.0, 0.0);
    }
    if FORMAT == Q4_K {
        let a = ((xv[0] + xv[1]) + (xv[2] + xv[3])) + ((xv[4] + xv[5]) + (xv[6] + xv[7]));
        let b = ((xv[8] + xv[9]) + (xv[10] + xv[11])) + ((xv[12] + xv[13]) + (xv[14] + xv[15]));
        return vec4<f32>(hsum(a), hsum(b), 0.0, 0.0);
    }
    if FORMAT == Q6_K {
        return vec4<f32>(
            hsum((xv[0] + xv[1]) + (xv[2] + xv[3])),
            hsum((xv[4] + xv[5]) + (xv[6] + xv[7])),
            0.0,
            0.0,
        );
    }
    return vec4<f32>(0.0);
}

// One row's unit dequantized up to its scales: v[i] multiplies x vec4 i of
// unit_x (entries past the unit 0), s the scales (per FORMAT, as in WUnit;
// Q6_K: s.x, s.y the scales of quarters j, j + 2). The offsets (Q4_0's 8,
// Q4_K's mins, Q6_K's 32) are left to deq_dot, which folds them into one
// product with the unit's sums of x.
struct DUnit {
    v: array<vec4<f32>, 16>,
    s: vec4<f32>,
}

fn unit_deq(w: WUnit) -> DUnit {
    // Written out as values: no array is built element by element.
    if FORMAT == F32 {
        return DUnit(array<vec4<f32>, 16>(
            bitcast<vec4<f32>>(w.q[0]),
            bitcast<vec4<f32>>(w.q[1]),
            bitcast<vec4<f32>>(w.q[2]),
            bitcast<vec4<f32>>(w.q[3]),
            bitcast<vec4<f32>>(w.q[4]),
            bitcast<vec4<f32>>(w.q[5]),
            bitcast<vec4<f32>>(w.q[6]),
            bitcast<vec4<f32>>(w.q[7]),
            vec4<f32>(0.0),
            vec4<f32>(0.0),
            vec4<f32>(0.0),
            vec4<f32>(0.0),
            vec4<f32>(0.0),
            vec4<f32>(0.0),
            vec4<f32>(0.0),
            vec4<f32>(0.0),
        ), w.s);
    }
    if FORMAT == F16 {
        return DUnit(array<vec4<f32>, 16>(
            vec4<f32>(unpack2x16float(w.q[0].x), unpack2x16float(w.q[0].y)),
            vec4<f32>(unpack2x16float(w.q[0].z), unpack2x16float(w.q[0].w)),
            vec4<f32>(unpack2x16float(w.q[1].x), unpack2x16float(w.q[1].y)),
            vec4<f32>(unpack2x16float(w.q[1].z), unpack2x16float(w.q[1].w)),
            vec4<f32>(unpack2x16float(w.q[2].x), unpack2x16float(w.q[2].y)),
            vec4<f32>(unpack2x16float(w.q[2].z), unpack2x16float(w.q[2].w)),
            vec4<f32>(unpack2x16float(w.q[3].x), unpack2x16float(w.q[3].y)),
            vec4<f32>(unpack2x16float(w.q[3].z), unpack2x16float(w.q[3].w)),
            vec4<f32>(0.0),
            vec4<f32>(0.0),
            vec4<f32>(0.0),
            vec4<f32>(0.0),
            vec4<f32>(0.0),
            vec4<f32>(0.0),
            vec4<f32>(0.0),
            vec4<f32>(0.0),
        ), w.s);
    }
    if FORMAT == Q8_0 {
        return DUnit(array<vec4<f32>, 16>(
            i8x4(w.q[0].x),
            i8x4(w.q[0].y),
            i8x4(w.q[0].z),
            i8x4(w.q[0].w),
            i8x4(w.q[1].x),
            i8x4(w.q[1].y),
            i8x4(w.q[1].z),
            i8x4(w.q[1].w),
            vec4<f32>(0.0),
            vec4<f32>(0.0),
            vec4<f32>(0.0),
            vec4<f32>(0.0),
            vec4<f32>(0.0),
            vec4<f32>(0.0),
            vec4<f32>(0.0),
            vec4<f32>(0.0),
        ), w.s);
    }
    if FORMAT == Q4_0 {
        // Value j < 16 is the low nibble of byte j, j >= 16 the high nibble
        // of byte j - 16.
        return DUnit(array<vec4<f32>, 16>(
            nib4(w.q[0].x, 0u),
            nib4(w.q[0].y, 0u),
            nib4(w.q[0].z, 0u),
            nib4(w.q[0].w, 0u),
            nib4(w.q[0].x, 4u),
            nib4(w.q[0].y, 4u),
            nib4(w.q[0].z, 4u),
            nib4(w.q[0].w, 4u),
            vec4<f32>(0.0),
            vec4<f32>(0.0),
            vec4<f32>(0.0),
            vec4<f32>(0.0),
            vec4<f32>(0.0),
            vec4<f32>(0.0),
            vec4<f32>(0.0),
            vec4<f32>(0.0),
        ), w.s);
    }
    if FORMAT == Q4_K {
        // Low nibbles: sub-block 2j (x vec4s 0..8); high: 2j + 1 (8..16).
        return DUnit(array<vec4<f32>, 16>(
            nib4(w.q[0].x, 0u),
            nib4(w.q[0].y, 0u),
            nib4(w.q[0].z, 0u),
            nib4(w.q[0].w, 0u),
            nib4(w.q[1].x, 0u),
            nib4(w.q[1].y, 0u),
            nib4(w.q[1].z, 0u),
            nib4(w.q[1].w, 0u),
            nib4(w.q[0].x, 4u),
            nib4(w.q[0].y, 4u),
            nib4(w.q[0].z, 4u),
            nib4(w.q[0].w, 4u),
            nib4(w.q[1].x, 4u),
            nib4(w.q[1].y, 4u),
            nib4(w.q[1].z, 4u),
            nib4(w.q[1].w, 4u),
        ), w.s);
    }
    // Q6_K: q = (nibble of ql) | (2 bits of qh) << 4: quarter j from the low
    // nibbles and qh bits 2j, quarter j + 2 from the high nibbles and bits
    // 2j + 4 (see load_unit).
    let hs = 2u * u32(w.s.z);
    return DUnit(array<vec4<f32>, 16>(
            q6x4(w.q[0].x, w.q[1].x, 0u, hs),
            q6x4(w.q[0].y, w.q[1].y, 0u, hs),
            q6x4(w.q[0].z, w.q[1].z, 0u, hs),
            q6x4(w.q[0].w, w.q[1].w, 0u, hs),
            q6x4(w.q[0].x, w.q[1].x, 4u, hs + 4u),
            q6x4(w.q[0].y, w.q[1].y, 4u, hs + 4u),
            q6x4(w.q[0].z, w.q[1].z, 4u, hs + 4u),
            q6x4(w.q[0].w, w.q[1].w, 4u, hs + 4u),
            vec4<f32>(0.0),
            vec4<f32>(0.0),
            vec4<f32>(0.0),
            vec4<f32>(0.0),
            vec4<f32>(0.0),
            vec4<f32>(0.0),
            vec4<f32>(0.0),
            vec4<f32>(0.0),
        ), w.s);
}

// sum over the unit of W[row, c] * x[c], with the row's dequantized unit
// `d` (unit_deq), the x values `xv` (unit_x) and their unit_sums `xs`.
fn deq_dot(d: DUnit, xv: array<vec4<f32>, 16>, xs: vec4<f32>) -> f32 {
    if FORMAT == F32 || FORMAT == F16 || FORMAT == Q8_0 {
        var a = d.v[0] * xv[0] + d.v[1] * xv[1];
        a += d.v[2] * xv[2] + d.v[3] * xv[3];
        a += d.v[4] * xv[4] + d.v[5] * xv[5];
        a += d.v[6] * xv[6] + d.v[7] * xv[7];
        if FORMAT == Q8_0 {
            return d.s.x * hsum(a);
        }
        return hsum(a);
    }
    if FORMAT == Q4_0 {
        // d * sum((q - 8) x) = d * (sum(q x) - 8 sum(x)).
        var a = d.v[0] * xv[0] + d.v[4] * xv[4];
        a += d.v[1] * xv[1] + d.v[5] * xv[5];
        a += d.v[2] * xv[2] + d.v[6] * xv[6];
        a += d.v[3] * xv[3] + d.v[7] * xv[7];
        return d.s.x * (hsum(a) - 8.0 * xs.x);
    }
    if FORMAT == Q4_K {
        // value = d sc q - dmin m per sub-block.
        var lo = d.v[0] * xv[0] + d.v[1] * xv[1];
        lo += d.v[2] * xv[2] + d.v[3] * xv[3];
        lo += d.v[4] * xv[4] + d.v[5] * xv[5];
        lo += d.v[6] * xv[6] + d.v[7] * xv[7];
        var hi = d.v[8] * xv[8] + d.v[9] * xv[9];
        hi += d.v[10] * xv[10] + d.v[11] * xv[11];
        hi += d.v[12] * xv[12] + d.v[13] * xv[13];
        hi += d.v[14] * xv[14] + d.v[15] * xv[15];
        return (d.s.x * hsum(lo) - d.s.y * xs.x) + (d.s.z * hsum(hi) - d.s.w * xs.y);
    }
    // Q6_K: value = d * sc * (q - 32).
    let t0 = d.v[0] * xv[0] + d.v[1] * xv[1] + d.v[2] * xv[2] + d.v[3] * xv[3];
    let t1 = d.v[4] * xv[4] + d.v[5] * xv[5] + d.v[6] * xv[6] + d.v[7] * xv[7];
    return d.s.x * (hsum(t0) - 32.0 * xs.x) + d.s.y * (hsum(t1) - 32.0 * xs.y);
}

// unit_dot of the decode path: the same products and sums as a batch's.
fn unit_dot(w: WUnit, xv: array<vec4<f32>, 16>, xs: vec4<f32>) -> f32 {
    return deq_dot(unit_deq(w), xv, xs);
}

var<workgroup> partial: array<f32, MAX_PARTIALS>; // (ROWS * TT, WG)

// Row r (< ROWS) of workgroup group `g`, in this part: consecutive rows, or
// with SwiGLU ROWS / 2 gate rows and the matching up rows (p.rows / 2 on).
fn matvec_row(g: u32, r: u32) -> u32 {
    if EPILOGUE == EPILOGUE_SWIGLU {
        let half = ROWS / 2u;
        return select(p.rows / 2u + g * half + r - half, g * half + r, r < half);
    }
    return g * ROWS + r;
}

// Whether row r (< ROWS) of a group with `live` rows (SwiGLU: pairs) exists.
fn row_live(r: u32, live: u32) -> bool {
    if EPILOGUE == EPILOGUE_SWIGLU {
        return r % (ROWS / 2u) < live;
    }
    return r < live;
}

@compute @workgroup_size(WG)
fn matvec(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lane: u32,
) {
    let g = wid.x + wid.z * nwg.x;
    let t0 = wid.y * TT;
    let tokens = min(TT, step.tokens - min(t0, step.tokens));
    // Rows (or SwiGLU pairs) of this group that exist.
    var live: u32;
    if EPILOGUE == EPILOGUE_SWIGLU {
        live = min(ROWS / 2u, p.rows / 2u - min(g * (ROWS / 2u), p.rows / 2u));
    } else {
        live = min(ROWS, p.rows - min(g * ROWS, p.rows));
    }
    let uc = unit_cols();
    let units = (p.cols + uc - 1u) / uc;
    if TT == 1u {
        // Decode: one token; each row's weights are loaded and used at once
        // with the unit's x values (loaded once for all rows). The row loop
        // is written out so that the accumulators are indexed by constants.
        if tokens == 1u {
            var acc: array<f32, MAX_ROWS>;
            // With RUNS (Q6_K): each row's scales of the lane's super-block.
            var rs: array<RunScales, MAX_ROWS>;
            for (var u = first_unit(lane); u < units; u = next_unit(u)) {
                if RUNS && FORMAT == Q6_K && u % 8u == 0u {
                    rows_run_scales(&rs, g, u / 8u, live);
                }
                let xv = unit_x(t0, u);
                let xs = unit_sums(xv);
                if 0u < ROWS && row_live(0u, live) { acc[0] += unit_dot(load_unit_in(matvec_row(g, 0u), u, rs[0]), xv, xs); }
                if 1u < ROWS && row_live(1u, live) { acc[1] += unit_dot(load_unit_in(matvec_row(g, 1u), u, rs[1]), xv, xs); }
                if 2u < ROWS && row_live(2u, live) { acc[2] += unit_dot(load_unit_in(matvec_row(g, 2u), u, rs[2]), xv, xs); }
                if 3u < ROWS && row_live(3u, live) { acc[3] += unit_dot(load_unit_in(matvec_row(g, 3u), u, rs[3]), xv, xs); }
                if 4u < ROWS && row_live(4u, live) { acc[4] += unit_dot(load_unit_in(matvec_row(g, 4u), u, rs[4]), xv, xs); }
                if 5u < ROWS && row_live(5u, live) { acc[5] += unit_dot(load_unit_in(matvec_row(g, 5u), u, rs[5]), xv, xs); }
                if 6u < ROWS && row_live(6u, live) { acc[6] += unit_dot(load_unit_in(matvec_row(g, 6u), u, rs[6]), xv, xs); }
                if 7u < ROWS && row_live(7u, live) { acc[7] += unit_dot(load_unit_in(matvec_row(g, 7u), u, rs[7]), xv, xs); }
                if 8u < ROWS && row_live(8u, live) { acc[8] += unit_dot(load_unit_in(matvec_row(g, 8u), u, rs[8]), xv, xs); }
                if 9u < ROWS && row_live(9u, live) { acc[9] += unit_dot(load_unit_in(matvec_row(g, 9u), u, rs[9]), xv, xs); }
                if 10u < ROWS && row_live(10u, live) { acc[10] += unit_dot(load_unit_in(matvec_row(g, 10u), u, rs[10]), xv, xs); }
                if 11u < ROWS && row_live(11u, live) { acc[11] += unit_dot(load_unit_in(matvec_row(g, 11u), u, rs[11]), xv, xs); }
                if 12u < ROWS && row_live(12u, live) { acc[12] += unit_dot(load_unit_in(matvec_row(g, 12u), u, rs[12]), xv, xs); }
                if 13u < ROWS && row_live(13u, live) { acc[13] += unit_dot(load_unit_in(matvec_row(g, 13u), u, rs[13]), xv, xs); }
                if 14u < ROWS && row_live(14u, live) { acc[14] += unit_dot(load_unit_in(matvec_row(g, 14u), u, rs[14]), xv, xs); }
                if 15u < ROWS && row_live(15u, live) { acc[15] += unit_dot(load_unit_in(matvec_row(g, 15u), u, rs[15]), xv, xs); }
            }
            reduce_store(&acc, lane, g, t0, live);
        }
    } else {
        // Tokens in groups of up to 4: per unit, each token's x values are
        // loaded once (for all rows), each row's weights loaded and dequantized
        // once (for all tokens) and multiplied with every token's x. Rows and
        // tokens are written out, so that the x values and accumulators are
        // indexed by constants and stay in registers (or cheap spill slots) on
        // every compiler. Absent tokens of a short last group are skipped (`n` is
        // uniform over the workgroup: no divergence; a GPU pays a branch, a CPU
        // adapter skips their products, which are most of a 2-token verify's).
        for (var tg = 0u; tg < tokens; tg += 4u) {
            var a0: array<f32, MAX_ROWS>;
            var a1: array<f32, MAX_ROWS>;
            var a2: array<f32, MAX_ROWS>;
            var a3: array<f32, MAX_ROWS>;
            let n = min(4u, tokens - tg);
            // With RUNS (Q6_K): each row's scales of the lane's super-block.
            var rs: array<RunScales, MAX_ROWS>;
            for (var u = first_unit(lane); u < units; u = next_unit(u)) {
                if RUNS && FORMAT == Q6_K && u % 8u == 0u {
                    rows_run_scales(&rs, g, u / 8u, live);
                }
                var x0: array<vec4<f32>, 16>;
                var s0: vec4<f32>;
                var x1: array<vec4<f32>, 16>;
                var s1: vec4<f32>;
                var x2: array<vec4<f32>, 16>;
                var s2: vec4<f32>;
                var x3: array<vec4<f32>, 16>;
                var s3: vec4<f32>;
                x0 = unit_x(t0 + tg, u);
                s0 = unit_sums(x0);
                if 1u < TT && 1u < n {
                    x1 = unit_x(t0 + tg + 1u, u);
                    s1 = unit_sums(x1);
                }
                if 2u < TT && 2u < n {
                    x2 = unit_x(t0 + tg + 2u, u);
                    s2 = unit_sums(x2);
                }
                if 3u < TT && 3u < n {
                    x3 = unit_x(t0 + tg + 3u, u);
                    s3 = unit_sums(x3);
                }
                if 0u < ROWS && row_live(0u, live) {
                    let d = unit_deq(load_unit_in(matvec_row(g, 0u), u, rs[0]));
                    a0[0] += deq_dot(d, x0, s0);
                    if 1u < TT && 1u < n { a1[0] += deq_dot(d, x1, s1); }
                    if 2u < TT && 2u < n { a2[0] += deq_dot(d, x2, s2); }
                    if 3u < TT && 3u < n { a3[0] += deq_dot(d, x3, s3); }
                }
                if 1u < ROWS && row_live(1u, live) {
                    let d = unit_deq(load_unit_in(matvec_row(g, 1u), u, rs[1]));
                    a0[1] += deq_dot(d, x0, s0);
                    if 1u < TT && 1u < n { a1[1] += deq_dot(d, x1, s1); }
                    if 2u < TT && 2u < n { a2[1] += deq_dot(d, x2, s2); }
                    if 3u < TT && 3u < n { a3[1] += deq_dot(d, x3, s3); }
                }
                if 2u < ROWS && row_live(2u, live) {
                    let d = unit_deq(load_unit_in(matvec_row(g, 2u), u, rs[2]));
                    a0[2] += deq_dot(d, x0, s0);
                    if 1u < TT && 1u < n { a1[2] += deq_dot(d, x1, s1); }
                    if 2u < TT && 2u < n { a2[2] += deq_dot(d, x2, s2); }
                    if 3u < TT && 3u < n { a3[2] += deq_dot(d, x3, s3); }
                }
                if 3u < ROWS && row_live(3u, live) {
                    let d = unit_deq(load_unit_in(matvec_row(g, 3u), u, rs[3]));
                    a0[3] += deq_dot(d, x0, s0);
                    if 1u < TT && 1u < n { a1[3] += deq_dot(d, x1, s1); }
                    if 2u < TT && 2u < n { a2[3] += deq_dot(d, x2, s2); }
                    if 3u < TT && 3u < n { a3[3] += deq_dot(d, x3, s3); }
                }
                if 4u < ROWS && row_live(4u, live) {
                    let d = unit_deq(load_unit_in(matvec_row(g, 4u), u, rs[4]));
                    a0[4] += deq_dot(d, x0, s0);
                    if 1u < TT && 1u < n { a1[4] += deq_dot(d, x1, s1); }
                    if 2u < TT && 2u < n { a2[4] += deq_dot(d, x2, s2); }
                    if 3u < TT && 3u < n { a3[4] += deq_dot(d, x3, s3); }
                }
                if 5u < ROWS && row_live(5u, live) {
                    let d = unit_deq(load_unit_in(matvec_row(g, 5u), u, rs[5]));
                    a0[5] += deq_dot(d, x0, s0);
                    if 1u < TT && 1u < n { a1[5] += deq_dot(d, x1, s1); }
                    if 2u < TT && 2u < n { a2[5] += deq_dot(d, x2, s2); }
                    if 3u < TT && 3u < n { a3[5] += deq_dot(d, x3, s3); }
                }
                if 6u < ROWS && row_live(6u, live) {
                    let d = unit_deq(load_unit_in(matvec_row(g, 6u), u, rs[6]));
                    a0[6] += deq_dot(d, x0, s0);
                    if 1u < TT && 1u < n { a1[6] += deq_dot(d, x1, s1); }
                    if 2u < TT && 2u < n { a2[6] += deq_dot(d, x2, s2); }
                    if 3u < TT && 3u < n { a3[6] += deq_dot(d, x3, s3); }
                }
                if 7u < ROWS && row_live(7u, live) {
                    let d = unit_deq(load_unit_in(matvec_row(g, 7u), u, rs[7]));
                    a0[7] += deq_dot(d, x0, s0);
                    if 1u < TT && 1u < n { a1[7] += deq_dot(d, x1, s1); }
                    if 2u < TT && 2u < n { a2[7] += deq_dot(d, x2, s2); }
                    if 3u < TT && 3u < n { a3[7] += deq_dot(d, x3, s3); }
                }
                if 8u < ROWS && row_live(8u, live) {
                    let d = unit_deq(load_unit_in(matvec_row(g, 8u), u, rs[8]));
                    a0[8] += deq_dot(d, x0, s0);
                    if 1u < TT && 1u < n { a1[8] += deq_dot(d, x1, s1); }
                    if 2u < TT && 2u < n { a2[8] += deq_dot(d, x2, s2); }
                    if 3u < TT && 3u < n { a3[8] += deq_dot(d, x3, s3); }
                }
                if 9u < ROWS && row_live(9u, live) {
                    let d = unit_deq(load_unit_in(matvec_row(g, 9u), u, rs[9]));
                    a0[9] += deq_dot(d, x0, s0);
                    if 1u < TT && 1u < n { a1[9] += deq_dot(d, x1, s1); }
                    if 2u < TT && 2u < n { a2[9] += deq_dot(d, x2, s2); }
                    if 3u < TT && 3u < n { a3[9] += deq_dot(d, x3, s3); }
                }
                if 10u < ROWS && row_live(10u, live) {
                    let d = unit_deq(load_unit_in(matvec_row(g, 10u), u, rs[10]));
                    a0[10] += deq_dot(d, x0, s0);
                    if 1u < TT && 1u < n { a1[10] += deq_dot(d, x1, s1); }
                    if 2u < TT && 2u < n { a2[10] += deq_dot(d, x2, s2); }
                    if 3u < TT && 3u < n { a3[10] += deq_dot(d, x3, s3); }
                }
                if 11u < ROWS && row_live(11u, live) {
                    let d = unit_deq(load_unit_in(matvec_row(g, 11u), u, rs[11]));
                    a0[11] += deq_dot(d, x0, s0);
                    if 1u < TT && 1u < n { a1[11] += deq_dot(d, x1, s1); }
                    if 2u < TT && 2u < n { a2[11] += deq_dot(d, x2, s2); }
                    if 3u < TT && 3u < n { a3[11] += deq_dot(d, x3, s3); }
                }
                if 12u < ROWS && row_live(12u, live) {
                    let d = unit_deq(load_unit_in(matvec_row(g, 12u), u, rs[12]));
                    a0[12] += deq_dot(d, x0, s0);
                    if 1u < TT && 1u < n { a1[12] += deq_dot(d, x1, s1); }
                    if 2u < TT && 2u < n { a2[12] += deq_dot(d, x2, s2); }
                    if 3u < TT && 3u < n { a3[12] += deq_dot(d, x3, s3); }
                }
                if 13u < ROWS && row_live(13u, live) {
                    let d = unit_deq(load_unit_in(matvec_row(g, 13u), u, rs[13]));
                    a0[13] += deq_dot(d, x0, s0);
                    if 1u < TT && 1u < n { a1[13] += deq_dot(d, x1, s1); }
                    if 2u < TT && 2u < n { a2[13] += deq_dot(d, x2, s2); }
                    if 3u < TT && 3u < n { a3[13] += deq_dot(d, x3, s3); }
                }
                if 14u < ROWS && row_live(14u, live) {
                    let d = unit_deq(load_unit_in(matvec_row(g, 14u), u, rs[14]));
                    a0[14] += deq_dot(d, x0, s0);
                    if 1u < TT && 1u < n { a1[14] += deq_dot(d, x1, s1); }
                    if 2u < TT && 2u < n { a2[14] += deq_dot(d, x2, s2); }
                    if 3u < TT && 3u < n { a3[14] += deq_dot(d, x3, s3); }
                }
                if 15u < ROWS && row_live(15u, live) {
                    let d = unit_deq(load_unit_in(matvec_row(g, 15u), u, rs[15]));
                    a0[15] += deq_dot(d, x0, s0);
                    if 1u < TT && 1u < n { a1[15] += deq_dot(d, x1, s1); }
                    if 2u < TT && 2u < n { a2[15] += deq_dot(d, x2, s2); }
                    if 3u < TT && 3u < n { a3[15] += deq_dot(d, x3, s3); }
                }
            }
            if 0u < TT && 0u < n {
                reduce_store(&a0, lane, g, t0 + tg + 0u, live);
            }
            if 1u < TT && 1u < n {
                reduce_store(&a1, lane, g, t0 + tg + 1u, live);
            }
            if 2u < TT && 2u < n {
                reduce_store(&a2, lane, g, t0 + tg + 2u, live);
            }
            if 3u < TT && 3u < n {
                reduce_store(&a3, lane, g, t0 + tg + 3u, live);
            }
        }
    }
}

// The sums of token t's rows (this lane's accumulators `acc`, every lane's
// in workgroup memory), finished by the norm and stored by one lane each:
// one barrier before, one after (the memory is reused).
fn reduce_store(acc: ptr<function, array<f32, MAX_ROWS>>, lane: u32, g: u32, t: u32, live: u32) {
    if SUBGROUPS {
        // The workgroup is one subgroup (ModuleKey::flavor_prelude's
        // lanes_sum is subgroupAdd; the engine builds this flavor only where
        // WG is the adapter's fixed subgroup size): every lane gets every
        // row's sum, no workgroup memory, no barrier.
        var sums: array<f32, MAX_ROWS>;
        if 0u < ROWS { sums[0] = lanes_sum((*acc)[0]); }
        if 1u < ROWS { sums[1] = lanes_sum((*acc)[1]); }
        if 2u < ROWS { sums[2] = lanes_sum((*acc)[2]); }
        if 3u < ROWS { sums[3] = lanes_sum((*acc)[3]); }
        if 4u < ROWS { sums[4] = lanes_sum((*acc)[4]); }
        if 5u < ROWS { sums[5] = lanes_sum((*acc)[5]); }
        if 6u < ROWS { sums[6] = lanes_sum((*acc)[6]); }
        if 7u < ROWS { sums[7] = lanes_sum((*acc)[7]); }
        if 8u < ROWS { sums[8] = lanes_sum((*acc)[8]); }
        if 9u < ROWS { sums[9] = lanes_sum((*acc)[9]); }
        if 10u < ROWS { sums[10] = lanes_sum((*acc)[10]); }
        if 11u < ROWS { sums[11] = lanes_sum((*acc)[11]); }
        if 12u < ROWS { sums[12] = lanes_sum((*acc)[12]); }
        if 13u < ROWS { sums[13] = lanes_sum((*acc)[13]); }
        if 14u < ROWS { sums[14] = lanes_sum((*acc)[14]); }
        if 15u < ROWS { sums[15] = lanes_sum((*acc)[15]); }
        store_rows(&sums, lane, g, t, live);
        return;
    }
    // Written out: the accumulators are never indexed by a variable.
    if 0u < ROWS { partial[0u * WG + lane] = (*acc)[0]; }
    if 1u < ROWS { partial[1u * WG + lane] = (*acc)[1]; }
    if 2u < ROWS { partial[2u * WG + lane] = (*acc)[2]; }
    if 3u < ROWS { partial[3u * WG + lane] = (*acc)[3]; }
    if 4u < ROWS { partial[4u * WG + lane] = (*acc)[4]; }
    if 5u < ROWS { partial[5u * WG + lane] = (*acc)[5]; }
    if 6u < ROWS { partial[6u * WG + lane] = (*acc)[6]; }
    if 7u < ROWS { partial[7u * WG + lane] = (*acc)[7]; }
    if 8u < ROWS { partial[8u * WG + lane] = (*acc)[8]; }
    if 9u < ROWS { partial[9u * WG + lane] = (*acc)[9]; }
    if 10u < ROWS { partial[10u * WG + lane] = (*acc)[10]; }
    if 11u < ROWS { partial[11u * WG + lane] = (*acc)[11]; }
    if 12u < ROWS { partial[12u * WG + lane] = (*acc)[12]; }
    if 13u < ROWS { partial[13u * WG + lane] = (*acc)[13]; }
    if 14u < ROWS { partial[14u * WG + lane] = (*acc)[14]; }
    if 15u < ROWS { partial[15u * WG + lane] = (*acc)[15]; }
    workgroupBarrier();
    let s = norm_scale(t);
    let n = min(store_rows_count(), live);
    for (var r = lane; r < n; r += WG) {
        if EPILOGUE == EPILOGUE_SWIGLU {
            let half = ROWS / 2u;
            store_swiglu(t, g * half + r, partial_sum(r) * s, partial_sum(r + half) * s);
        } else {
            store_y(t, g * ROWS + r, partial_sum(r) * s);
        }
    }
    workgroupBarrier();
}

// Row r's partial sums in workgroup memory, added in lane order.
fn partial_sum(r: u32) -> f32 {
    var a = 0.0;
    for (var l = 0u; l < WG; l++) {
        a += partial[r * WG + l];
    }
    return a;
}

// Stores (rows) or SwiGLU pairs (gate rows) per workgroup.
fn store_rows_count() -> u32 {
    return select(ROWS, ROWS / 2u, EPILOGUE == EPILOGUE_SWIGLU);
}

// Stores token t's row sums `sums` (rows lane, lane + WG, ... and, with
// SwiGLU, their up rows are read), times the norm's scale, as the epilogue
// says.
fn store_rows(sums: ptr<function, array<f32, MAX_ROWS>>, lane: u32, g: u32, t: u32, live: u32) {
    let s = norm_scale(t);
    let n = min(store_rows_count(), live);
    for (var r = lane; r < n; r += WG) {
        if EPILOGUE == EPILOGUE_SWIGLU {
            store_swiglu(t, g * (ROWS / 2u) + r, (*sums)[r] * s, (*sums)[r + ROWS / 2u] * s);
        } else {
            store_y(t, g * ROWS + r, (*sums)[r] * s);
        }
    }
}

// ---------------------------------------------------------------------------
// matmul and embed read W a quad of 4 columns at a time: every row is read in
// units of 32 columns (a Q8_0/Q4_0 block, a Q4_K sub-block, a Q6_K quarter
// of a half-block; for F32 and F16 32 columns, the last one cut at cols),
// each unit in 8 quads. `unit_scale` decodes a unit's scales once,
// `unit_quad` dequantizes one quad with them.

// Units of 32 columns per row (the last one partial for F32 and F16).
fn n_units() -> u32 {
    return (p.cols + 31u) / 32u;
}

// The scales of 32-column unit u of (part) row `row`, per FORMAT:
//   F32, F16: unused; Q8_0, Q4_0: (d, 0); Q4_K: (d * scale, dmin * min) of
//   the sub-block; Q6_K: d * the two i8 scales of the unit's 16-value halves.
fn unit_scale(row: u32, u: u32) -> vec2<f32> {
    if FORMAT == Q8_0 || FORMAT == Q4_0 {
        return vec2<f32>(scale_at(row * (p.cols / 32u) + u), 0.0);
    }
    if FORMAT == Q4_K {
        // Sub-block j of super-block g (scales unpacked at load).
        let j = u % 8u;
        let g = row * (p.cols / 256u) + u / 8u;
        let dm = unpack2x16float(ws[5u * g]);
        let sc = (ws[5u * g + 1u + j / 4u] >> (8u * (j % 4u))) & 0xffu;
        let m = (ws[5u * g + 3u + j / 4u] >> (8u * (j % 4u))) & 0xffu;
        return vec2<f32>(dm.x * f32(sc), dm.y * f32(m));
    }
    if FORMAT == Q6_K {
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
    if FORMAT == F32 {
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
    if FORMAT == F16 {
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
    if FORMAT == Q8_0 {
        let g = row * (p.cols / 32u) + u;
        return s.x * i8x4(wq[g * 8u + q]);
    }
    if FORMAT == Q4_0 {
        // Value j < 16: low nibble of byte j; j >= 16: high nibble of byte j - 16.
        let g = row * (p.cols / 32u) + u;
        return s.x * (nib4(wq[g * 4u + q % 4u], 4u * (q / 4u)) - 8.0);
    }
    if FORMAT == Q4_K {
        // Sub-block j: nibble j % 2 of qs bytes 32 * (j / 2) ..
        let j = u % 8u;
        let g = row * (p.cols / 256u) + u / 8u;
        return s.x * nib4(wq[g * 32u + 8u * (j / 2u) + q], 4u * (j % 2u)) - s.y;
    }
    // Q6_K: value l < 32 of quarter k of half h is nibble k / 2 of
    // ql[64h + 32(k % 2) + l] and bits 2k.. of qh[32h + l].
    let t = u % 8u;
    let h = t / 4u;
    let k = t % 4u;
    let base = (row * (p.cols / 256u) + u / 8u) * 52u;
    let lo = wq[base + 16u * h + 8u * (k % 2u) + q];
    let hi = wq[base + 32u + 8u * h + q];
    return select(s.x, s.y, q >= 4u) * (q6x4(lo, hi, 4u * (k / 2u), 2u * k) - 32.0);
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

// ---------------------------------------------------------------------------
// matmul: Y (tokens, total_rows) = X (tokens, cols) . W^T over this part's
// rows, in tiles of TM = 64 tokens x TN = 64 rows per workgroup of 256.
//
// For each unit of TK = 32 columns the workgroup dequantizes the (TN, TK)
// tile of W once into workgroup memory (thread i: row i / 4, quads
// 2 (i % 4) and 2 (i % 4) + 1 of its unit, scales decoded once) and loads
// the (TM, TK) tile of X (thread i: token i / 4, the same two quads), both
// stored k-major as vec4s; then thread (tx, ty) = (i % 16, i / 16)
// accumulates rows 4 tx .. 4 tx + 4 for tokens 4 ty .. 4 ty + 4: per k one
// vec4 read of W and one of X for 16 multiply-adds (register blocking).
// Rounding: every product is an exactly dequantized weight times x, summed
// over k in order per output. With f16 tiles (QEntry::MatmulF16: tile_t is
// f16) each dequantized weight and each x value is rounded to f16 once as it
// is stored (the f32 -> f16 conversion, to nearest even), then converted
// back exactly: the products and sums are the f32 kernel's over those
// rounded values (tests: against a CPU reference that rounds the same way).
// With SwiGLU each thread's four rows are two gate rows and their up rows
// (tile_pair), so the epilogue needs no exchange between threads.
// Workgroup memory: 2 * TK * 64 * sizeof(tile_t) bytes = 16 KiB (f16: 8).
// Dispatch: (gx, ceil(tokens / TM), gz) with row tile wid.x + wid.z * gx
// (ceil(rows / TN) tiles, or ceil(rows / 2 / (TN / 2)) with SwiGLU); tiles
// past step.tokens return.


// tile_t (f32, or f16 in modules with shader-f16: ModuleKey::flavor_prelude).
var<workgroup> w_tile: array<vec4<tile_t>, 512>; // (TK, TN / 4): row quads, k-major
var<workgroup> x_tile: array<vec4<tile_t>, 512>; // (TK, TM / 4): token quads, k-major

// The SwiGLU pair (gate row, up row p.rows / 2 later) at tile position n:
// position 4 s + a holds pair 2 s + a % 2, its gate row for a < 2 and its up
// row for a >= 2, so that the thread owning positions 4 s .. 4 s + 4 holds
// two gate rows and their up rows.
fn tile_pair(tile: u32, n: u32) -> u32 {
    return tile * (TN / 2u) + 2u * (n / 4u) + n % 2u;
}

// Row n (< TN) of row tile `tile`, in this part: consecutive rows, or with
// SwiGLU gate and up rows as tile_pair says.
fn tile_row(tile: u32, n: u32) -> u32 {
    if EPILOGUE == EPILOGUE_SWIGLU {
        let pair = tile_pair(tile, n);
        return select(pair, p.rows / 2u + pair, n % 4u >= 2u);
    }
    return tile * TN + n;
}

// Whether row n of row tile `tile` exists.
fn tile_row_live(tile: u32, n: u32) -> bool {
    if EPILOGUE == EPILOGUE_SWIGLU {
        return tile_pair(tile, n) < p.rows / 2u;
    }
    return tile * TN + n < p.rows;
}

@compute @workgroup_size(256)
fn matmul(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) i: u32,
) {
    let tile = wid.x + wid.z * nwg.x;
    let tok0 = wid.y * TM;
    let tokens = step.tokens;
    if tok0 >= tokens {
        return;
    }
    let tx = i % 16u;
    let ty = i / 16u;
    // Loader roles: row (or token) i / 4, quads q0, q0 + 1.
    let l_row = i / 4u;
    let q0 = 2u * (i % 4u);

    var acc: array<vec4<f32>, 4>; // acc[j]: rows 4 tx .. for token 4 ty + j
    let units = n_units();
    for (var u = 0u; u < units; u++) {
        var w0 = vec4<f32>(0.0);
        var w1 = vec4<f32>(0.0);
        if tile_row_live(tile, l_row) {
            let r = tile_row(tile, l_row);
            let s = unit_scale(r, u);
            w0 = unit_quad(r, u, q0, s);
            w1 = unit_quad(r, u, q0 + 1u, s);
        }
        var x0 = vec4<f32>(0.0);
        var x1 = vec4<f32>(0.0);
        let t = tok0 + l_row;
        if t < tokens {
            x0 = x_quad(t * p.cols, 32u * u + 4u * q0);
            x1 = x_quad(t * p.cols, 32u * u + 4u * q0 + 4u);
        }
        // Element (k, n) of a tile lives in vec4 k * 16 + n / 4, lane n % 4.
        for (var e = 0u; e < 4u; e++) {
            w_tile[(4u * q0 + e) * 16u + l_row / 4u][l_row % 4u] = tile_t(w0[e]);
            w_tile[(4u * q0 + 4u + e) * 16u + l_row / 4u][l_row % 4u] = tile_t(w1[e]);
            x_tile[(4u * q0 + e) * 16u + l_row / 4u][l_row % 4u] = tile_t(x0[e]);
            x_tile[(4u * q0 + 4u + e) * 16u + l_row / 4u][l_row % 4u] = tile_t(x1[e]);
        }
        workgroupBarrier();
        for (var k = 0u; k < TK; k++) {
            let a = vec4<f32>(w_tile[k * 16u + tx]);
            let b = vec4<f32>(x_tile[k * 16u + ty]);
            acc[0] += a * b.x;
            acc[1] += a * b.y;
            acc[2] += a * b.z;
            acc[3] += a * b.w;
        }
        workgroupBarrier();
    }
    if EPILOGUE == EPILOGUE_SWIGLU {
        // Rows 4 tx, 4 tx + 1 are gate rows of pairs 2 tx, 2 tx + 1 (of this
        // tile), rows 4 tx + 2, 4 tx + 3 their up rows (tile_pair).
        for (var j = 0u; j < 4u; j++) {
            let t = tok0 + 4u * ty + j;
            if t < tokens {
                let s = norm_scale(t);
                for (var a = 0u; a < 2u; a++) {
                    if tile_row_live(tile, 4u * tx + a) {
                        store_swiglu(t, tile * (TN / 2u) + 2u * tx + a, acc[j][a] * s, acc[j][a + 2u] * s);
                    }
                }
            }
        }
        return;
    }
    for (var j = 0u; j < 4u; j++) {
        let t = tok0 + 4u * ty + j;
        if t < tokens {
            let s = norm_scale(t);
            for (var a = 0u; a < 4u; a++) {
                let n = 4u * tx + a;
                if tile_row_live(tile, n) {
                    store_y(t, tile * TN + n, acc[j][a] * s);
                }
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

@compute @workgroup_size(EMBED_WG)
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
