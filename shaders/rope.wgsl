// RoPE on adjacent pairs (Meta's layout, used by GGUF `llama` tensors), in
// place on the queries and keys of a batch: token t sits at position
// step.pos + t, and pair (2i, 2i+1) of every head is rotated by the angle
// pos * theta^(-2i / head_dim). q and k live in one buffer (the decoder's
// q | k | v rows): token t's q at t * stride + q_off, its k at
// t * stride + k_off (crate/src/gpu/attention.rs QkvLayout).
// The (cos, sin) of every (position, pair) come from a table the host fills
// once in f64 (crate/src/gpu/kernels.rs `RopeTable`, the same arithmetic as
// the CPU reference `cpu::rope`), so no angle is ever formed in f32: at
// position 16383 an f32 angle would already be off by ~1e-3 rad.
// Dispatch: (ceil((n_heads + n_kv_heads) * head_dim / 2 / WG), tokens, 1).

// WG: from the generated prelude (crate/src/gpu/keys.rs ROPE_WG).

struct Step {
    tokens: u32,
    pos: u32,
    kv_len: u32,
    sample_step: u32,
}

struct Params {
    n_heads: u32,
    n_kv_heads: u32,
    head_dim: u32,
    max_len: u32,    // rows of the table
    stride: u32,     // elements between tokens
    q_off: u32,
    k_off: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> step: Step;
@group(0) @binding(1) var<uniform> p: Params;
@group(0) @binding(2) var<storage, read_write> qk: array<f32>;     // (tokens, stride) f32: q (n_heads, head_dim) at q_off, k (n_kv_heads, head_dim) at k_off
@group(0) @binding(3) var<storage, read> table: array<vec2<f32>>;  // (max_len, head_dim / 2) (cos, sin)

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let half = p.head_dim / 2u;
    let pair = gid.x;            // over (n_heads + n_kv_heads) * half
    let t = gid.y;
    let pos = step.pos + t;
    if (pair >= (p.n_heads + p.n_kv_heads) * half || t >= step.tokens || pos >= p.max_len) {
        return;
    }
    let cs = table[pos * half + pair % half];
    var i: u32;
    if (pair < p.n_heads * half) {
        i = t * p.stride + p.q_off + 2u * pair;
    } else {
        i = t * p.stride + p.k_off + 2u * (pair - p.n_heads * half);
    }
    let a = qk[i];
    let b = qk[i + 1u];
    qk[i] = a * cs.x - b * cs.y;
    qk[i + 1u] = a * cs.y + b * cs.x;
}
