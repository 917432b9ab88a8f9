// RMSNorm's parallel half, over rows of `dim` values:
//   xw[r, c] = x[r, c] * w[c]
//   ss[r, g] = sum of x[r, c]^2 over the columns c of group g (GROUP columns each)
// The consumer finishes the norm: out = xw / sqrt(sum_g ss[r, g] / dim + eps)
// (qmatmul.wgsl's norm_scale, where the norm feeds a matrix product:
// W (x * w * s) = s * W (x * w)). Every (group, row) is a workgroup, so a
// row of 4096 values is 16 workgroups, never one.
//
// LAST: only the batch's last row (step.tokens - 1), written as row 0 (the
// final norm before the logits).
// Dispatch: (ceil(dim / GROUP), rows, 1) (rows = 1 with LAST).

override LAST: bool;
// Columns per group and invocations per workgroup (crate/src/gpu/keys.rs
// NORM_GROUP), at most MAX_GROUP. Every override is set by KernelKey::constants.
override GROUP: u32;
// MAX_GROUP: from the generated prelude (crate/src/gpu/keys.rs NORM_GROUP).

struct Step {
    tokens: u32,
    pos: u32,
    kv_len: u32,
    sample_step: u32,
}

struct Params {
    dim: u32,
    groups: u32,   // ceil(dim / GROUP)
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> step: Step;
@group(0) @binding(1) var<uniform> p: Params;
@group(0) @binding(2) var<storage, read> x: array<f32>;          // (rows, dim) f32
@group(0) @binding(3) var<storage, read> w: array<f32>;          // (dim) f32
@group(0) @binding(4) var<storage, read_write> xw: array<f32>;   // (rows, dim) f32
@group(0) @binding(5) var<storage, read_write> ss: array<f32>;   // (rows, groups) f32

var<workgroup> partial: array<f32, MAX_GROUP>;

@compute @workgroup_size(GROUP)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let g = wg.x;
    var row = wg.y;
    var out_row = wg.y;
    if LAST {
        row = step.tokens - 1u;
        out_row = 0u;
    }
    let c = g * GROUP + lid;
    var sq = 0.0;
    if c < p.dim {
        let v = x[row * p.dim + c];
        xw[out_row * p.dim + c] = v * w[c];
        sq = v * v;
    }
    partial[lid] = sq;
    workgroupBarrier();
    for (var stride = GROUP / 2u; stride > 0u; stride /= 2u) {
        if lid < stride {
            partial[lid] += partial[lid + stride];
        }
        workgroupBarrier();
    }
    if lid == 0u {
        ss[out_row * p.groups + g] = partial[0];
    }
}
