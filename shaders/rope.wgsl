// RoPE on adjacent pairs (Meta's layout, used by GGUF `llama` tensors), in
// place: for token t at position pos[t], each head's pair (2i, 2i+1) is
// rotated by angle pos * theta^(-2i / head_dim).
// The angle is computed in f32 and reduced to [-pi, pi] (in turns) before
// sin/cos, whose accuracy is only specified on that range.
// Dispatch: (ceil(heads * head_dim / 2 / WG), tokens, 1).

const WG: u32 = 64u;
const TWO_PI: f32 = 6.283185307179586;

struct Params {
    tokens: u32,
    heads: u32,
    head_dim: u32,
    theta: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;   // (tokens, heads, head_dim) f32
@group(0) @binding(2) var<storage, read> pos: array<u32>;       // (tokens) u32

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let half = p.head_dim / 2u;
    let pair = gid.x;            // over heads * half
    let t = gid.y;
    if (pair >= p.heads * half || t >= p.tokens) {
        return;
    }
    let i = pair % half;
    let freq = exp2(-f32(2u * i) / f32(p.head_dim) * log2(p.theta));
    let turns = f32(pos[t]) * (freq / TWO_PI);
    let angle = (turns - round(turns)) * TWO_PI;
    let s = sin(angle);
    let c = cos(angle);
    let k = (t * p.heads * half + pair) * 2u;
    let a = x[k];
    let b = x[k + 1u];
    x[k] = a * c - b * s;
    x[k + 1u] = a * s + b * c;
}
