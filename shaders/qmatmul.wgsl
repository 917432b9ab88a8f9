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
// matvec: lanes per workgroup (along K).
override WG: u32 = 32u;
// matvec: rows per workgroup, at most MAX_ROWS, WG * ROWS at most MAX_PARTIALS.
override ROWS: u32 = 4u;

const MAX_ROWS: u32 = 16u;
const MAX_PARTIALS: u32 = 1024u;

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
//   Q4_K (rows, nb, 5) u32: d | dmin << 16, then the 8 scales and the 8 mins, a byte each
@group(0) @binding(4) var<storage, read> ws: array<u32>;
// matmul, embed: the per-submit Step uniform.
@group(0) @binding(5) var<uniform> step: Step;
// embed: (>= step.tokens) u32 token ids; an id >= total_rows gives a row of zeros.
@group(0) @binding(6) var<storage, read> ids: array<u32>;
// matvec: the quants stream of binding 3 read as 16-byte words; every row is
// a whole number of them (crate/src/gpu/repack.rs).
@group(0) @binding(7) var<storage, read> wq4: array<vec4<u32>>;
// matvec: x of binding 1 read as vec4 (cols / 4 of them when cols % 4 == 0).
@group(0) @binding(8) var<storage, read> x4: array<vec4<f32>>;

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

// The scales of unit u of (part) row `row`, per FORMAT:
//   F32, F16: unused; Q8_0, Q4_0: (d, 0); Q4_K: (d * scale, dmin * min) of
//   the sub-block; Q6_K: d * the two i8 scales of the unit's 16-value halves.
fn unit_scale(row: u32, u: u32) -> vec2<f32> {
    if FORMAT == 2u || FORMAT == 3u {
        return vec2<f32>(scale_at(row * (p.cols / 32u) + u), 0.0);
    }
    if FORMAT == 4u {
        // Unit u: sub-block j of super-block g (scales unpacked at load).
        let j = u % 8u;
        let g = row * (p.cols / 256u) + u / 8u;
        let dm = unpack2x16float(ws[5u * g]);
        let sc = (ws[5u * g + 1u + j / 4u] >> (8u * (j % 4u))) & 0xffu;
        let m = (ws[5u * g + 3u + j / 4u] >> (8u * (j % 4u))) & 0xffu;
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
        let e = row * ((p.cols + 3u) & ~3u) + c;
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
        let e = row * ((p.cols + 7u) & ~7u) + c;
        if c + 4u <= p.cols {
            let a = unpack2x16float(wq[e >> 1u]);
            let b = unpack2x16float(wq[(e >> 1u) + 1u]);
            return vec4<f32>(a, b);
        }
        // The row's tail.
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
// matvec (decode): y[row_base + r] (+)= sum_c W[r, c] * x[c].
//
// Lanes run along K: a workgroup of WG lanes computes ROWS rows; lane l takes
// units l, l + WG, l + 2 WG, ... of the row (a unit is UNIT consecutive
// columns: one Q8_0/Q4_0 block or 32 F32/F16 values, half a Q4_K/Q6_K
// super-block's worth of a lane's bytes). Per unit the lane reads its x values
// once as vec4<f32> (unit_x) and keeps them in registers for all ROWS rows;
// each row's weights come as 16-byte vec4<u32> loads from the wq4 view
// (consecutive lanes read consecutive 16-byte pieces of a row, so a warp's
// loads are contiguous), are dequantized with whole-word bit operations
// (nibble/byte lanes of a u32 widened as vec4, scales applied once per block
// or sub-block, Q4_0's and Q6_K's offsets folded into one product with the
// unit's sum of x), and multiply-add into one f32 accumulator per row. The
// WG partial sums of each row meet in workgroup memory: one barrier, then
// lane r adds row r's WG partials in order.
//
// The order of the f32 additions differs from the CPU reference (which sums
// the dequantized products left to right): both are sums of the same f32
// products of exactly dequantized weights, so the results differ by f32
// rounding of a sum of cols terms, which the tests bound by a few ulps of
// the output's scale times sqrt(cols).
//
// Dispatch: ceil(rows / ROWS) workgroups, as (x, y) with
// index = x + y * num_workgroups.x when more than the per-dimension limit.

// Bytes of a row of wq4, in vec4<u32> (16 bytes), per FORMAT.
fn row_vec4s() -> u32 {
    switch FORMAT {
        case 0u: { return (p.cols + 3u) / 4u; }            // F32, padded to 4 values
        case 1u: { return (p.cols + 7u) / 8u; }            // F16, padded to 8 values
        case 2u: { return p.cols / 32u * 2u; }             // Q8_0: 32 bytes per block
        case 3u: { return p.cols / 32u; }                  // Q4_0: 16 bytes per block
        case 4u: { return p.cols / 256u * 8u; }            // Q4_K: 128 bytes per super-block
        default: { return p.cols / 256u * 13u; }           // Q6_K: 208 bytes per super-block
    }
}

// Columns per lane unit.
fn unit_cols() -> u32 {
    if FORMAT == 4u || FORMAT == 5u {
        return 64u;
    }
    return 32u;
}

// The x values lane unit u multiplies, as vec4s (entries past the unit
// unused): columns u * unit_cols() .. in order, except Q6_K, whose unit is
// four runs of 16 columns 32 apart (see unit_dot). Columns at or past cols
// read as 0.
fn unit_x(u: u32) -> array<vec4<f32>, 16> {
    var v: array<vec4<f32>, 16>;
    if FORMAT == 5u {
        let c0 = 256u * (u / 4u) + 128u * ((u % 4u) / 2u) + 16u * (u % 2u);
        for (var i = 0u; i < 16u; i++) {
            v[i] = x4[(c0 + 32u * (i / 4u)) / 4u + i % 4u];
        }
        return v;
    }
    let n = unit_cols() / 4u;
    let c0 = u * unit_cols();
    if (p.cols & 3u) == 0u {
        let i0 = c0 / 4u;
        let end = p.cols / 4u;
        for (var i = 0u; i < n; i++) {
            if i0 + i < end {
                v[i] = x4[i0 + i];
            } else {
                v[i] = vec4<f32>(0.0);
            }
        }
    } else {
        // Odd widths (F32 and F16 only): scalar loads.
        for (var i = 0u; i < n; i++) {
            v[i] = x_quad(0u, c0 + 4u * i);
        }
    }
    return v;
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

// The unit's sums of x that the formats' offsets need: Q4_0: sum over the
// block (s[0]); Q4_K: over each 32-column half (s[0], s[1]); Q6_K: over each
// 16-column quarter (s[0..4]).
fn unit_sums(xv: array<vec4<f32>, 16>) -> vec4<f32> {
    if FORMAT == 3u {
        var t = vec4<f32>(0.0);
        for (var i = 0u; i < 8u; i++) {
            t += xv[i];
        }
        return vec4<f32>(hsum(t), 0.0, 0.0, 0.0);
    }
    if FORMAT == 4u {
        let a = (xv[0] + xv[1]) + (xv[2] + xv[3]) + ((xv[4] + xv[5]) + (xv[6] + xv[7]));
        let b = (xv[8] + xv[9]) + (xv[10] + xv[11]) + ((xv[12] + xv[13]) + (xv[14] + xv[15]));
        return vec4<f32>(hsum(a), hsum(b), 0.0, 0.0);
    }
    if FORMAT == 5u {
        var q: vec4<f32>;
        for (var k = 0u; k < 4u; k++) {
            q[k] = hsum((xv[4u * k] + xv[4u * k + 1u]) + (xv[4u * k + 2u] + xv[4u * k + 3u]));
        }
        return q;
    }
    return vec4<f32>(0.0);
}

// sum over the unit u of (part) row `row` of W[row, c] * x[c], with x given
// as unit_x(u * unit_cols()) and its unit_sums.
fn unit_dot(row: u32, u: u32, xv: array<vec4<f32>, 16>, xs: vec4<f32>) -> f32 {
    let base = row * row_vec4s();
    if FORMAT == 0u {
        // 8 vec4s of f32 bits; the padded tail of a row holds zeros.
        let v0 = base + 8u * u;
        let end = base + row_vec4s();
        var a = vec4<f32>(0.0);
        for (var i = 0u; i < 8u; i++) {
            if v0 + i < end {
                a += bitcast<vec4<f32>>(wq4[v0 + i]) * xv[i];
            }
        }
        return hsum(a);
    }
    if FORMAT == 1u {
        // 4 vec4s of 8 halves each.
        let v0 = base + 4u * u;
        let end = base + row_vec4s();
        var a = vec4<f32>(0.0);
        for (var i = 0u; i < 4u; i++) {
            if v0 + i < end {
                let w = wq4[v0 + i];
                a += vec4<f32>(unpack2x16float(w.x), unpack2x16float(w.y)) * xv[2u * i];
                a += vec4<f32>(unpack2x16float(w.z), unpack2x16float(w.w)) * xv[2u * i + 1u];
            }
        }
        return hsum(a);
    }
    if FORMAT == 2u {
        // Q8_0: 32 i8 in two vec4s, scale d.
        let g = row * (p.cols / 32u) + u;
        let w0 = wq4[2u * g];
        let w1 = wq4[2u * g + 1u];
        var a = i8x4(w0.x) * xv[0] + i8x4(w0.y) * xv[1];
        a += i8x4(w0.z) * xv[2] + i8x4(w0.w) * xv[3];
        a += i8x4(w1.x) * xv[4] + i8x4(w1.y) * xv[5];
        a += i8x4(w1.z) * xv[6] + i8x4(w1.w) * xv[7];
        return scale_at(g) * hsum(a);
    }
    if FORMAT == 3u {
        // Q4_0: value j < 16 is the low nibble of byte j, j >= 16 the high
        // nibble of byte j - 16; d * sum((q - 8) x) = d * (sum(q x) - 8 sum(x)).
        let g = row * (p.cols / 32u) + u;
        let w = wq4[g];
        var a = nib4(w.x, 0u) * xv[0] + nib4(w.x, 4u) * xv[4];
        a += nib4(w.y, 0u) * xv[1] + nib4(w.y, 4u) * xv[5];
        a += nib4(w.z, 0u) * xv[2] + nib4(w.z, 4u) * xv[6];
        a += nib4(w.w, 0u) * xv[3] + nib4(w.w, 4u) * xv[7];
        return scale_at(g) * (hsum(a) - 8.0 * xs.x);
    }
    if FORMAT == 4u {
        // Q4_K unit u: sub-blocks 2j and 2j + 1 (j = u % 4) of super-block
        // u / 4: the 32 qs bytes 32 j .. (low nibbles: 2j, high: 2j + 1);
        // value = d * sc * q - dmin * m per sub-block.
        let j = u % 4u;
        let g = row * (p.cols / 256u) + u / 4u;
        let w0 = wq4[8u * g + 2u * j];
        let w1 = wq4[8u * g + 2u * j + 1u];
        var lo = nib4(w0.x, 0u) * xv[0] + nib4(w0.y, 0u) * xv[1];
        lo += nib4(w0.z, 0u) * xv[2] + nib4(w0.w, 0u) * xv[3];
        lo += nib4(w1.x, 0u) * xv[4] + nib4(w1.y, 0u) * xv[5];
        lo += nib4(w1.z, 0u) * xv[6] + nib4(w1.w, 0u) * xv[7];
        var hi = nib4(w0.x, 4u) * xv[8] + nib4(w0.y, 4u) * xv[9];
        hi += nib4(w0.z, 4u) * xv[10] + nib4(w0.w, 4u) * xv[11];
        hi += nib4(w1.x, 4u) * xv[12] + nib4(w1.y, 4u) * xv[13];
        hi += nib4(w1.z, 4u) * xv[14] + nib4(w1.w, 4u) * xv[15];
        // Sub-blocks 2j, 2j + 1: bytes 2 (j % 2), + 1 of scale word j / 2
        // and of min word j / 2 (crate/src/gpu/repack.rs).
        let dm = unpack2x16float(ws[5u * g]);
        let sh = 16u * (j % 2u);
        let scw = ws[5u * g + 1u + j / 2u] >> sh;
        let mw = ws[5u * g + 3u + j / 2u] >> sh;
        let sa = dm * vec2<f32>(f32(scw & 0xffu), f32(mw & 0xffu));
        let sb = dm * vec2<f32>(f32((scw >> 8u) & 0xffu), f32((mw >> 8u) & 0xffu));
        return (sa.x * hsum(lo) - sa.y * xs.x) + (sb.x * hsum(hi) - sb.y * xs.y);
    }
    // Q6_K unit u: half h = (u % 4) / 2 of super-block u / 4, positions
    // l = 16 m .. 16 m + 16 (m = u % 2) of its four 32-value quarters k:
    // q = (nibble k / 2 of ql[64 h + 32 (k % 2) + l]) | (bits 2k of qh[32 h + l]) << 4,
    // value = d * sc[8 h + 2 k + m] * (q - 32).
    let h = (u % 4u) / 2u;
    let m = u % 2u;
    let sb = row * (p.cols / 256u) + u / 4u;
    let b = 13u * sb;
    let qa = wq4[b + 4u * h + m];        // ql bytes 64 h + 16 m ..: quarters 0 (low), 2 (high)
    let qb = wq4[b + 4u * h + 2u + m];   // ql bytes 64 h + 32 + 16 m ..: quarters 1, 3
    let qh = wq4[b + 8u + 2u * h + m];   // qh bytes 32 h + 16 m ..
    let sc = wq4[b + 12u];               // the 16 i8 scales
    // Quarter k, word i: 4 values (q6x4), times x vec4 4 k + i.
    let t0 = q6x4(qa.x, qh.x, 0u, 0u) * xv[0] + q6x4(qa.y, qh.y, 0u, 0u) * xv[1]
        + q6x4(qa.z, qh.z, 0u, 0u) * xv[2] + q6x4(qa.w, qh.w, 0u, 0u) * xv[3];
    let t1 = q6x4(qb.x, qh.x, 0u, 2u) * xv[4] + q6x4(qb.y, qh.y, 0u, 2u) * xv[5]
        + q6x4(qb.z, qh.z, 0u, 2u) * xv[6] + q6x4(qb.w, qh.w, 0u, 2u) * xv[7];
    let t2 = q6x4(qa.x, qh.x, 4u, 4u) * xv[8] + q6x4(qa.y, qh.y, 4u, 4u) * xv[9]
        + q6x4(qa.z, qh.z, 4u, 4u) * xv[10] + q6x4(qa.w, qh.w, 4u, 4u) * xv[11];
    let t3 = q6x4(qb.x, qh.x, 4u, 6u) * xv[12] + q6x4(qb.y, qh.y, 4u, 6u) * xv[13]
        + q6x4(qb.z, qh.z, 4u, 6u) * xv[14] + q6x4(qb.w, qh.w, 4u, 6u) * xv[15];
    let t = vec4<f32>(hsum(t0), hsum(t1), hsum(t2), hsum(t3)) - 32.0 * xs;
    // Scale 8 h + 2 k + m: byte 2 (k % 2) + m of word 2 h + k / 2 of the
    // 16 scale bytes.
    let s01 = bitcast<i32>(select(sc.x, sc.z, h == 1u));
    let s23 = bitcast<i32>(select(sc.y, sc.w, h == 1u));
    let scl = vec4<f32>(
        f32(extractBits(s01, 8u * m, 8u)),
        f32(extractBits(s01, 8u * (2u + m), 8u)),
        f32(extractBits(s23, 8u * m, 8u)),
        f32(extractBits(s23, 8u * (2u + m), 8u)),
    );
    return scale_at(sb) * dot(scl, t);
}

// Q6_K: the 4 six-bit codes of byte lanes of ql word `l` (nibble at bit
// `ls`) and qh word `h` (2 bits at bit `hs`), as floats 0..63.
fn q6x4(l: u32, h: u32, ls: u32, hs: u32) -> vec4<f32> {
    let sh = vec4<u32>(0u, 8u, 16u, 24u);
    let lo = (vec4<u32>(l) >> (sh + vec4<u32>(ls))) & vec4<u32>(0xfu);
    let hi = (vec4<u32>(h) >> (sh + vec4<u32>(hs))) & vec4<u32>(3u);
    return vec4<f32>(lo | (hi << vec4<u32>(4u)));
}

var<workgroup> partial: array<f32, MAX_PARTIALS>; // (ROWS, WG)

@compute @workgroup_size(WG)
fn matvec(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
) {
    let first = (wid.x + wid.y * nwg.x) * ROWS;
    let uc = unit_cols();
    let units = (p.cols + uc - 1u) / uc;
    var acc: array<f32, MAX_ROWS>;
    for (var r = 0u; r < ROWS; r++) {
        acc[r] = 0.0;
    }
    let live = min(ROWS, p.rows - min(first, p.rows));
    for (var u = t; u < units; u += WG) {
        let xv = unit_x(u);
        let xs = unit_sums(xv);
        for (var r = 0u; r < ROWS; r++) {
            if r < live {
                acc[r] += unit_dot(first + r, u, xv, xs);
            }
        }
    }
    for (var r = 0u; r < ROWS; r++) {
        partial[r * WG + t] = acc[r];
    }
    workgroupBarrier();
    for (var r = t; r < live; r += WG) {
        var s = 0.0;
        for (var i = 0u; i < WG; i++) {
            s += partial[r * WG + i];
        }
        store_y(p.row_base + first + r, s);
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
