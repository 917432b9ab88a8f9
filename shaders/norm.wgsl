// RMSNorm over rows: out[r, :] = x[r, :] / sqrt(mean(x[r, :]^2) + eps) * w.
// One workgroup per row; each invocation sums a strided slice of squares,
// then a tree reduction in workgroup memory. f32 arithmetic throughout.
// Dispatch: (rows, 1, 1); the row count is the dispatch size.

const WG: u32 = 256u;

struct Params {
    dim: u32,
    eps: f32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;          // (rows, dim) f32
@group(0) @binding(2) var<storage, read> w: array<f32>;          // (dim) f32
@group(0) @binding(3) var<storage, read_write> out: array<f32>;  // (rows, dim) f32

var<workgroup> partial: array<f32, WG>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let row = wg.x;
    let base = row * p.dim;
    var ss = 0.0;
    for (var i = lid; i < p.dim; i += WG) {
        let v = x[base + i];
        ss += v * v;
    }
    partial[lid] = ss;
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
        if (lid < stride) {
            partial[lid] += partial[lid + stride];
        }
        workgroupBarrier();
    }
    let inv = 1.0 / sqrt(partial[0] / f32(p.dim) + p.eps);
    for (var i = lid; i < p.dim; i += WG) {
        out[base + i] = x[base + i] * inv * w[i];
    }
}
