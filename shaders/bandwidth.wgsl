// Memory-bandwidth probes for `codellama bench`: what the adapter can stream,
// the ceiling a decode step (which reads every weight once) is measured
// against.
//   stream_copy: dst[i] = src[i] over n vec4<u32> (bytes moved = 2 * 16 * n)
//   stream_read: each invocation XORs a grid-strided run of src and writes one word
//         (bytes moved ~ 16 * n), the access pattern of a matrix-vector
//         product's weight stream.
// Dispatch: (min(groups, max_x), ceil(groups / max_x), 1), groups = ceil(n / WG)
// for copy, a fixed grid for read.

const WG: u32 = 256u;

struct Params {
    n: u32,         // vec4<u32> elements
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<vec4<u32>>;         // (n) vec4<u32>
@group(0) @binding(2) var<storage, read_write> dst: array<vec4<u32>>;   // (n) vec4<u32> for copy; one per invocation for read

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
