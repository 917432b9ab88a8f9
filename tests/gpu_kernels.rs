//! Every GPU kernel against its CPU reference on the default adapter
//! (lavapipe here and in CI), on shapes that are not multiples of the
//! workgroup sizes. Each check prints its max abs error and where it occurred.
//! Without an adapter these tests fail: they never skip.

use codellama_webgpu::cpu;
use codellama_webgpu::gpu::kernels::{self, NormShape, RopeShape};
use codellama_webgpu::gpu::{ElementwiseOp, GpuContext, GpuError, GpuOptions};

fn context() -> GpuContext {
    match GpuContext::new(&GpuOptions::default()) {
        Ok(ctx) => {
            eprintln!(
                "adapter: {} features: {:?} max_buffer_size {} max_storage_binding {}",
                ctx.adapter_summary(),
                ctx.features(),
                ctx.limits().max_buffer_size,
                ctx.limits().max_storage_buffer_binding_size
            );
            ctx
        }
        Err(e) => panic!(
            "the GPU kernel tests need a wgpu adapter and found none ({e}); \
             install lavapipe (apt-get install mesa-vulkan-drivers libvulkan1, \
             as scripts/setup.sh does)"
        ),
    }
}

/// Deterministic values in `[-scale, scale)`.
fn values(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
        })
        .collect()
}

/// Max of `|got - want| / (1 + |want|)` and its index; panics on a length
/// mismatch or a non-finite value.
fn max_error(got: &[f32], want: &[f32]) -> (f32, usize) {
    assert_eq!(got.len(), want.len());
    let mut worst = (0.0f32, 0usize);
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(g.is_finite(), "value {i} is {g}, want {w}");
        let e = (g - w).abs() / (1.0 + w.abs());
        if e > worst.0 {
            worst = (e, i);
        }
    }
    worst
}

#[test]
fn rmsnorm_matches_cpu() {
    let ctx = context();
    for (rows, dim, seed) in [(1, 257, 1), (3, 1000, 2), (2, 4096, 3), (5, 1, 4), (1, 11008, 5)] {
        let x = values(rows * dim, seed, 3.0);
        let w = values(dim, seed + 100, 1.5);
        let eps = 1e-5;
        let mut want = vec![0.0; rows * dim];
        for (o, xr) in want.chunks_exact_mut(dim).zip(x.chunks_exact(dim)) {
            cpu::rmsnorm(o, xr, &w, eps);
        }
        let got = ctx.block_on(async {
            let xb = ctx.storage_f32("x", &x).await?;
            let wb = ctx.storage_f32("w", &w).await?;
            let ob = ctx.storage_zeroed("out", (rows * dim * 4) as u64).await?;
            let mut enc = ctx.encoder("rmsnorm");
            kernels::rmsnorm(&ctx, &mut enc, &xb, &wb, &ob, NormShape { rows, dim }, eps).await?;
            ctx.submit(enc).await?;
            ctx.read_back_f32(&ob, rows * dim).await
        });
        let got = got.expect("rmsnorm on the GPU");
        let (err, at) = max_error(&got, &want);
        eprintln!(
            "rmsnorm ({rows}, {dim}): max rel error {err:.3e} at row {} col {} (gpu {} cpu {})",
            at / dim,
            at % dim,
            got[at],
            want[at]
        );
        assert!(err < 1e-5, "rmsnorm ({rows}, {dim}) error {err} at {at}");
    }
}

#[test]
fn rope_matches_cpu() {
    let ctx = context();
    let cases: [(&[u32], usize, usize, f32); 5] = [
        (&[0, 1, 2], 4, 128, 1_000_000.0),
        (&[5, 17, 1023], 3, 64, 1_000_000.0),
        (&[7, 300, 2047], 32, 128, 10_000.0),
        (&[4095, 9000, 16383], 5, 128, 1_000_000.0),
        (&[65_535, 100_000, 131_071], 2, 128, 1_000_000.0),
    ];
    for (case, &(positions, heads, head_dim, theta)) in cases.iter().enumerate() {
        let tokens = positions.len();
        let row = heads * head_dim;
        let x = values(tokens * row, 10 + case as u64, 1.0);
        let mut want = x.clone();
        for (t, v) in want.chunks_exact_mut(row).enumerate() {
            cpu::rope(v, head_dim, positions[t] as usize, theta);
        }
        let got = ctx.block_on(async {
            let xb = ctx.storage_f32("x", &x).await?;
            let pb = ctx.storage_u32("positions", positions).await?;
            let mut enc = ctx.encoder("rope");
            let shape = RopeShape {
                tokens,
                heads,
                head_dim,
            };
            kernels::rope(&ctx, &mut enc, &xb, &pb, shape, theta).await?;
            ctx.submit(enc).await?;
            ctx.read_back_f32(&xb, tokens * row).await
        });
        let got = got.expect("rope on the GPU");
        let (err, at) = max_error(&got, &want);
        let (t, h, d) = (at / row, at % row / head_dim, at % head_dim);
        eprintln!(
            "rope tokens {tokens} heads {heads} head_dim {head_dim} theta {theta} positions {positions:?}: \
             max rel error {err:.3e} at token {t} (pos {}) head {h} dim {d} (gpu {} cpu {})",
            positions[t], got[at], want[at]
        );
        // f32 angles: the frequency carries a few ulp of relative error, so
        // the angle error grows with the position.
        let max_pos = *positions.iter().max().unwrap() as f32;
        let tol = 2e-6 + max_pos * 2e-7;
        assert!(err < tol, "rope case {case}: error {err} (tolerance {tol}) at {at}");
    }
}

#[test]
fn elementwise_matches_cpu() {
    let ctx = context();
    let max_x = ctx.limits().max_compute_workgroups_per_dimension as usize;
    // The last size needs a second row of workgroups.
    for (n, seed) in [(1, 1), (257, 2), (1000, 3), (4096 * 3 + 5, 4), (11008, 5), (max_x * 256 + 77, 6)] {
        let a = values(n, seed, 12.0);
        let b = values(n, seed + 50, 2.0);
        for op in [ElementwiseOp::Add, ElementwiseOp::SwiGlu] {
            let want: Vec<f32> = match op {
                ElementwiseOp::Add => a.iter().zip(&b).map(|(x, y)| x + y).collect(),
                ElementwiseOp::SwiGlu => a.iter().zip(&b).map(|(x, y)| cpu::silu(*x) * y).collect(),
            };
            let got = ctx.block_on(async {
                let ab = ctx.storage_f32("a", &a).await?;
                let bb = ctx.storage_f32("b", &b).await?;
                let ob = ctx.storage_zeroed("out", (n * 4) as u64).await?;
                let mut enc = ctx.encoder("elementwise");
                kernels::elementwise(&ctx, &mut enc, op, &ab, &bb, &ob, n).await?;
                ctx.submit(enc).await?;
                ctx.read_back_f32(&ob, n).await
            });
            let got = got.expect("elementwise on the GPU");
            let (err, at) = max_error(&got, &want);
            eprintln!(
                "{op:?} n {n}: max rel error {err:.3e} at {at} (a {} b {} gpu {} cpu {})",
                a[at], b[at], got[at], want[at]
            );
            let tol = match op {
                ElementwiseOp::Add => 0.0,
                ElementwiseOp::SwiGlu => 2e-6,
            };
            assert!(err <= tol, "{op:?} n {n}: error {err} at {at}");
        }
    }
}

#[test]
fn shape_and_validation_errors_are_typed() {
    let ctx = context();
    let r: Result<(), GpuError> = ctx.block_on(async {
        let xb = ctx.storage_f32("x", &[1.0; 10]).await?;
        let wb = ctx.storage_f32("w", &[1.0; 5]).await?;
        let mut enc = ctx.encoder("bad shapes");
        // x holds 10 values, the shape asks for 3 x 5.
        kernels::rmsnorm(&ctx, &mut enc, &xb, &wb, &xb, NormShape { rows: 3, dim: 5 }, 1e-5).await
    });
    assert!(matches!(r, Err(GpuError::Shape { kernel: "rmsnorm", .. })), "{r:?}");

    let r = ctx.block_on(async {
        let mut enc = ctx.encoder("rope");
        let xb = ctx.storage_f32("x", &[1.0; 6]).await?;
        let pb = ctx.storage_u32("positions", &[0]).await?;
        let shape = RopeShape { tokens: 1, heads: 2, head_dim: 3 };
        kernels::rope(&ctx, &mut enc, &xb, &pb, shape, 1e4).await
    });
    assert!(matches!(r, Err(GpuError::Shape { kernel: "rope", .. })), "{r:?}");

    // The same buffer as read-only input and read-write output of one
    // dispatch is a usage conflict: wgpu's validation error comes back typed.
    let r = ctx.block_on(async {
        let xb = ctx.storage_f32("x", &[1.0; 8]).await?;
        let wb = ctx.storage_f32("w", &[1.0; 8]).await?;
        let mut enc = ctx.encoder("aliased");
        kernels::rmsnorm(&ctx, &mut enc, &xb, &wb, &xb, NormShape { rows: 1, dim: 8 }, 1e-5).await?;
        ctx.submit(enc).await.map(|_| ())
    });
    eprintln!("aliased bindings: {r:?}");
    assert!(matches!(r, Err(GpuError::Validation(_))), "{r:?}");

    // The context is still usable after a caught error.
    let v = ctx.block_on(async {
        let b = ctx.storage_u32("ok", &[7, 8, 9]).await?;
        ctx.read_back_u32(&b, 3).await
    });
    assert_eq!(v.expect("read back after an error"), vec![7, 8, 9]);
}

#[test]
fn oversized_buffers_are_typed_errors() {
    let ctx = context();
    let too_big = ctx.limits().max_buffer_size + 4;
    let r = ctx.block_on(ctx.storage_zeroed("huge", too_big));
    assert!(matches!(r, Err(GpuError::BufferTooLarge { .. })), "{r:?}");
}
