// Memory-bandwidth and arithmetic probes for `codellama bench`: what the
// adapter can stream, the ceiling a decode step (which reads every weight
// once) is measured against, and its f32 multiply-add peak, the ceiling of
// prefill (a batch of tokens reuses each weight it reads).
//   stream_copy: dst[i] = src[i] over n vec4<u32> (bytes moved = 2 * 16 * n)
//   stream_read: each invocation XORs a grid-strided run of src and writes one word
//         (bytes moved ~ 16 * n), the access pattern of a matrix-vector
//         product's weight stream.
//   fma_peak: each invocation runs `iters` rounds of 16 steps of two independent
//         vec4 chains a = fma(a, mul, add) (32 vec4 FMAs = 256 flops per round)
//         and writes their sum to dst[its index], so no chain is dead code; mul
//         and add come from the uniform (no constant folding), |a| stays near
//         add / (1 - mul).
// Dispatch: (min(groups, max_x), ceil(groups / max_x), 1), groups = ceil(n / WG)
// for copy, a fixed grid for read and fma_peak.

// WG: from the generated prelude (crate/src/gpu/keys.rs BANDWIDTH_WG).

struct Params {
    n: u32,         // vec4<u32> elements (copy, read); unused by fma_peak
    iters: u32,     // fma_peak: rounds per invocation
    mul: f32,       // fma_peak: the multiplier (< 1)
    add: f32,       // fma_peak: the addend
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<vec4<u32>>;         // (n) vec4<u32>
@group(0) @binding(2) var<storage, read_write> dst: array<vec4<u32>>;   // (n) vec4<u32> for copy; one per invocation for read, fma_peak

@compute @workgroup_size(WG)
fn stream_copy(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if (i < p.n) {
        dst[i] = src[i];
    }
}

@compute @workgroup_size(WG)
fn stream_read(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let threads = nwg.x * nwg.y * WG;
    let t = gid.x + gid.y * nwg.x * WG;
    var acc = vec4<u32>(0u);
    for (var i = t; i < p.n; i += threads) {
        acc ^= src[i];
    }
    dst[t] = acc;
}

@compute @workgroup_size(WG)
fn fma_peak(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = gid.x + gid.y * nwg.x * WG;
    let m = vec4<f32>(p.mul);
    let c = vec4<f32>(p.add);
    // Distinct starting values per invocation and chain (src, zeros, is read
    // once so that the three kernels share one bind group layout).
    let s = vec4<f32>(0.0, 0.25, 0.5, 0.75) + f32((t & 1023u) + (src[0].x & 1u)) * (1.0 / 1024.0);
    // Two vec4 accumulators: 8 independent chains per invocation, plenty
    // beside a GPU's thousands of resident invocations, and few enough
    // registers that CPU adapters (llvmpipe, SwiftShader: 8 or 4 invocations
    // per SIMD register, a vec4 in 4 registers) do not spill. The round is
    // written out (32 FMAs) so that loop overhead is negligible without
    // relying on the compiler to unroll.
    var a0 = s;
    var a1 = s + 0.125;
    for (var i = 0u; i < p.iters; i++) {
        a0 = fma(a0, m, c); a1 = fma(a1, m, c);
        a0 = fma(a0, m, c); a1 = fma(a1, m, c);
        a0 = fma(a0, m, c); a1 = fma(a1, m, c);
        a0 = fma(a0, m, c); a1 = fma(a1, m, c);
        a0 = fma(a0, m, c); a1 = fma(a1, m, c);
        a0 = fma(a0, m, c); a1 = fma(a1, m, c);
        a0 = fma(a0, m, c); a1 = fma(a1, m, c);
        a0 = fma(a0, m, c); a1 = fma(a1, m, c);
        a0 = fma(a0, m, c); a1 = fma(a1, m, c);
        a0 = fma(a0, m, c); a1 = fma(a1, m, c);
        a0 = fma(a0, m, c); a1 = fma(a1, m, c);
        a0 = fma(a0, m, c); a1 = fma(a1, m, c);
        a0 = fma(a0, m, c); a1 = fma(a1, m, c);
        a0 = fma(a0, m, c); a1 = fma(a1, m, c);
        a0 = fma(a0, m, c); a1 = fma(a1, m, c);
        a0 = fma(a0, m, c); a1 = fma(a1, m, c);
    }
    dst[t] = bitcast<vec4<u32>>(a0 + a1);
}
