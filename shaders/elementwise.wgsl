// Elementwise kernels, in place on `a` over step.tokens rows of `width`
// values, the operation chosen by `OP`:
//   OP_ADD:    residual add   a = a + b
//   OP_SWIGLU: SwiGLU         a = silu(a) * b,  silu(v) = v / (1 + exp(-v))
// f32 arithmetic. Dispatch: (min(groups, max_x), ceil(groups / max_x), 1)
// with groups = ceil(tokens * width / WG); the 2-D grid covers n beyond one
// dimension.

override OP: u32;
// WG (ELEMENTWISE_WG), OP_ADD, OP_SWIGLU (ElementwiseOp codes): from the
// generated prelude (crate/src/gpu/keys.rs).

struct Step {
    tokens: u32,
    pos: u32,
    kv_len: u32,
    sample_step: u32,
}

struct Params {
    width: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> step: Step;
@group(0) @binding(1) var<uniform> p: Params;
@group(0) @binding(2) var<storage, read_write> a: array<f32>;  // (tokens, width) f32
@group(0) @binding(3) var<storage, read> b: array<f32>;        // (tokens, width) f32

fn silu(v: f32) -> f32 {
    return v / (1.0 + exp(-v));
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if (i >= step.tokens * p.width) {
        return;
    }
    if (OP == OP_ADD) {
        a[i] = a[i] + b[i];
    } else {
        a[i] = silu(a[i]) * b[i];
    }
}
