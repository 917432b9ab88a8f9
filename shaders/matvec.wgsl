// Quantized matrix-vector product for decode: y[row_base + r] = sum_c W[r, c] * x[c].
//
// W is (rows, cols), row = output index, in the u32 streams of
// crate/src/gpu/repack.rs (GGUF dims [cols, rows]). One kernel for every
// format: FORMAT picks the per-format helper. All arithmetic is f32; f16 values
// stay packed in u32 and are widened with unpack2x16float (no shader-f16, no
// subgroups).
//
// Work split: a workgroup of WG threads computes ROWS consecutive rows. Each
// row is cut into units (4 values of F32, 8 of F16, 32 of the block formats:
// a Q8_0/Q4_0 block, a Q4_K sub-block, a Q6_K quarter of a half-block); thread
// t sums units t, t + WG, ... and the workgroup adds the WG partial sums of
// each row in a tree reduction through workgroup memory.
// Dispatch: ceil(rows / ROWS) workgroups, laid out as (x, y) with
// index = x + y * num_workgroups.x when more than the per-dimension limit.

// 0 F32, 1 F16, 2 Q8_0, 3 Q4_0, 4 Q4_K, 5 Q6_K (GpuMatrix's MatvecFormat).
override FORMAT: u32 = 0u;
// Threads per workgroup: a power of two, at most MAX_WG.
override WG: u32 = 64u;
// Rows per workgroup, at most MAX_ROWS.
override ROWS: u32 = 4u;

const MAX_WG: u32 = 256u;
const MAX_ROWS: u32 = 4u;

struct Params {
    // Rows of this part of W (a matrix over the storage-binding limit is split by rows).
    rows: u32,
    // Elements per row; the length of x.
    cols: u32,
    // Where this part's first row goes in y.
    row_base: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
// (cols) f32
@group(0) @binding(1) var<storage, read> x: array<f32>;
// (>= row_base + rows) f32
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

var<workgroup> partial: array<f32, 1024>; // (MAX_ROWS, MAX_WG)

// Half h of a packed-f16 stream element: half i % 2 of word i / 2.
fn scale_at(i: u32) -> f32 {
    let pair = unpack2x16float(ws[i >> 1u]);
    return select(pair.x, pair.y, (i & 1u) == 1u);
}

fn units_per_row() -> u32 {
    if FORMAT == 0u {
        return (p.cols + 3u) / 4u;
    }
    if FORMAT == 1u {
        return (p.cols + 7u) / 8u;
    }
    return p.cols / 32u;
}

fn dot_f32(row: u32, u: u32) -> f32 {
    let c0 = u * 4u;
    let base = row * p.cols;
    var s = 0.0;
    for (var k = 0u; k < 4u; k++) {
        let c = c0 + k;
        if c < p.cols {
            s += bitcast<f32>(wq[base + c]) * x[c];
        }
    }
    return s;
}

fn dot_f16(row: u32, u: u32) -> f32 {
    let c0 = u * 8u;
    let e0 = row * p.cols + c0;
    var s = 0.0;
    if (e0 & 1u) == 0u && c0 + 8u <= p.cols {
        // Four whole words.
        for (var k = 0u; k < 4u; k++) {
            let v = unpack2x16float(wq[(e0 >> 1u) + k]);
            s += v.x * x[c0 + 2u * k] + v.y * x[c0 + 2u * k + 1u];
        }
        return s;
    }
    // A row that starts mid-word (odd cols) or the row's tail.
    for (var k = 0u; k < 8u; k++) {
        let c = c0 + k;
        if c < p.cols {
            let e = e0 + k;
            let v = unpack2x16float(wq[e >> 1u]);
            s += select(v.x, v.y, (e & 1u) == 1u) * x[c];
        }
    }
    return s;
}

fn dot_q8_0(row: u32, u: u32) -> f32 {
    let g = row * (p.cols / 32u) + u;
    let c0 = u * 32u;
    var s = 0.0;
    for (var w = 0u; w < 8u; w++) {
        let q = bitcast<i32>(wq[g * 8u + w]);
        let c = c0 + 4u * w;
        s += f32(extractBits(q, 0u, 8u)) * x[c]
            + f32(extractBits(q, 8u, 8u)) * x[c + 1u]
            + f32(extractBits(q, 16u, 8u)) * x[c + 2u]
            + f32(extractBits(q, 24u, 8u)) * x[c + 3u];
    }
    return scale_at(g) * s;
}

fn dot_q4_0(row: u32, u: u32) -> f32 {
    let g = row * (p.cols / 32u) + u;
    let c0 = u * 32u;
    var s = 0.0;
    for (var w = 0u; w < 4u; w++) {
        let q = wq[g * 4u + w];
        for (var i = 0u; i < 4u; i++) {
            let b = (q >> (8u * i)) & 0xffu;
            let j = c0 + 4u * w + i;
            s += (f32(b & 0xfu) - 8.0) * x[j] + (f32(b >> 4u) - 8.0) * x[j + 16u];
        }
    }
    return scale_at(g) * s;
}

// Byte i of the Q4_K head of block g (bytes 0..4 are d and dmin).
fn q4k_head_byte(g: u32, i: u32) -> u32 {
    return (ws[g * 4u + i / 4u] >> (8u * (i % 4u))) & 0xffu;
}

fn dot_q4_k(row: u32, u: u32) -> f32 {
    // Unit u: sub-block j of super-block b.
    let b = u / 8u;
    let j = u % 8u;
    let g = row * (p.cols / 256u) + b;
    let dm = unpack2x16float(ws[g * 4u]);
    // get_scale_min_k4 over the 12 scale bytes at head bytes 4..16.
    var sc: u32;
    var m: u32;
    if j < 4u {
        sc = q4k_head_byte(g, 4u + j) & 63u;
        m = q4k_head_byte(g, 8u + j) & 63u;
    } else {
        sc = (q4k_head_byte(g, 8u + j) & 0xfu) | ((q4k_head_byte(g, j) >> 6u) << 4u);
        m = (q4k_head_byte(g, 8u + j) >> 4u) | ((q4k_head_byte(g, 4u + j) >> 6u) << 4u);
    }
    // Its 32 values: nibble j % 2 of qs bytes 32 * (j / 2) ..
    let shift = 4u * (j % 2u);
    let qw = g * 32u + 8u * (j / 2u);
    let c0 = u * 32u;
    var sqx = 0.0;
    var sx = 0.0;
    for (var w = 0u; w < 8u; w++) {
        let q = wq[qw + w] >> shift;
        for (var i = 0u; i < 4u; i++) {
            let xv = x[c0 + 4u * w + i];
            sqx += f32((q >> (8u * i)) & 0xfu) * xv;
            sx += xv;
        }
    }
    return dm.x * f32(sc) * sqx - dm.y * f32(m) * sx;
}

fn dot_q6_k(row: u32, u: u32) -> f32 {
    // Unit u: quarter k of half h of super-block b; element l < 32 of it is
    // nibble k / 2 of ql[64h + 32(k % 2) + l], bits 2k.. of qh[32h + l], scale 8h + 2k + l / 16.
    let b = u / 8u;
    let t = u % 8u;
    let h = t / 4u;
    let k = t % 4u;
    let g = row * (p.cols / 256u) + b;
    let base = g * 52u;
    let ql = base + 16u * h + 8u * (k % 2u);
    let qh = base + 32u + 8u * h;
    let lshift = 4u * (k / 2u);
    let hshift = 2u * k;
    let si = 8u * h + 2u * k; // even: both scales sit in one word
    let sw = bitcast<i32>(wq[base + 48u + si / 4u]);
    let sc0 = f32(extractBits(sw, 8u * (si % 4u), 8u));
    let sc1 = f32(extractBits(sw, 8u * (si % 4u) + 8u, 8u));
    let c0 = u * 32u;
    var s0 = 0.0;
    var s1 = 0.0;
    for (var w = 0u; w < 8u; w++) {
        let lo = wq[ql + w] >> lshift;
        let hi = wq[qh + w] >> hshift;
        var s = 0.0;
        for (var i = 0u; i < 4u; i++) {
            let q = ((lo >> (8u * i)) & 0xfu) | (((hi >> (8u * i)) & 3u) << 4u);
            s += f32(i32(q) - 32) * x[c0 + 4u * w + i];
        }
        if w < 4u {
            s0 += s;
        } else {
            s1 += s;
        }
    }
    return scale_at(g) * (sc0 * s0 + sc1 * s1);
}

fn unit_dot(row: u32, u: u32) -> f32 {
    if FORMAT == 0u {
        return dot_f32(row, u);
    }
    if FORMAT == 1u {
        return dot_f16(row, u);
    }
    if FORMAT == 2u {
        return dot_q8_0(row, u);
    }
    if FORMAT == 3u {
        return dot_q4_0(row, u);
    }
    if FORMAT == 4u {
        return dot_q4_k(row, u);
    }
    return dot_q6_k(row, u);
}

@compute @workgroup_size(WG)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
) {
    let first = (wid.x + wid.y * nwg.x) * ROWS;
    let n_units = units_per_row();
    for (var r = 0u; r < ROWS; r++) {
        let row = first + r;
        var s = 0.0;
        if row < p.rows {
            for (var u = t; u < n_units; u += WG) {
                s += unit_dot(row, u);
            }
        }
        partial[r * WG + t] = s;
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
            y[p.row_base + row] = partial[t * WG];
        }
    }
}
