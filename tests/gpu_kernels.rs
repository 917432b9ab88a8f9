//! Every GPU kernel against its CPU reference on the default adapter
//! (lavapipe here and in CI), on shapes that are not multiples of the
//! workgroup sizes. Each check prints its max abs error and where it occurred.
//! Without an adapter these tests fail: they never skip.

use codellama_webgpu::cpu;
use codellama_webgpu::gpu::kernels::{Elementwise, RmsNorm, Rope, RopeShape, RopeTable};
use codellama_webgpu::gpu::{
    ElementwiseOp, GpuContext, GpuError, GpuOptions, StepParams, StepUniform,
};

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

/// Runs `record` in one compute pass and submits it, after writing `step`.
async fn run_pass(
    ctx: &GpuContext,
    step: &StepUniform,
    params: StepParams,
    record: impl FnOnce(&mut wgpu::ComputePass<'_>) -> Result<(), GpuError>,
) -> Result<(), GpuError> {
    step.write(ctx, &params);
    let mut enc = ctx.encoder("test");
    {
        let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
        record(&mut pass)?;
    }
    ctx.submit(enc).await?;
    Ok(())
}

#[test]
fn rmsnorm_matches_cpu() {
    let ctx = context();
    let step = StepUniform::new(&ctx);
    for (rows, bound_rows, dim, seed) in [
        (1, 1, 257, 1),
        (3, 3, 1000, 2),
        (2, 7, 4096, 3),
        (5, 5, 1, 4),
        (1, 4, 11008, 5),
    ] {
        let x = values(bound_rows * dim, seed, 3.0);
        let w = values(dim, seed + 100, 1.5);
        let eps = 1e-5;
        let mut want = vec![0.0; rows * dim];
        for (o, xr) in want.chunks_exact_mut(dim).zip(x.chunks_exact(dim)) {
            cpu::rmsnorm(o, xr, &w, eps);
        }
        let got = ctx.block_on(async {
            let xb = ctx.storage_f32("x", &x).await?;
            let wb = ctx.storage_f32("w", &w).await?;
            let ob = ctx
                .storage_zeroed("out", (bound_rows * dim * 4) as u64)
                .await?;
            let norm = RmsNorm::new(&ctx, &xb, &wb, &ob, bound_rows, dim, eps).await?;
            run_pass(&ctx, &step, StepParams::batch(0, rows, 0), |p| {
                norm.encode(p, rows)
            })
            .await?;
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
    let step = StepUniform::new(&ctx);
    // (first position, tokens, n_heads, n_kv_heads, head_dim, theta, table length)
    let cases = [
        (0, 3, 4, 4, 128, 1_000_000.0f32, 16),
        (5, 17, 3, 1, 64, 1_000_000.0, 600),
        (250, 9, 32, 8, 128, 10_000.0, 2048),
        (16_370, 14, 5, 5, 128, 1_000_000.0, 16_384),
        (131_060, 11, 2, 1, 128, 1_000_000.0, 131_072),
        (0, 1, 1, 1, 2, 10_000.0, 1),
    ];
    for (case, &(pos, tokens, n_heads, n_kv, head_dim, theta, max_len)) in cases.iter().enumerate()
    {
        let (qrow, krow) = (n_heads * head_dim, n_kv * head_dim);
        let q = values(tokens * qrow, 10 + case as u64, 1.0);
        let k = values(tokens * krow, 20 + case as u64, 1.0);
        let (mut want_q, mut want_k) = (q.clone(), k.clone());
        for t in 0..tokens {
            cpu::rope(&mut want_q[t * qrow..][..qrow], head_dim, pos + t, theta);
            cpu::rope(&mut want_k[t * krow..][..krow], head_dim, pos + t, theta);
        }
        let got = ctx.block_on(async {
            let qb = ctx.storage_f32("q", &q).await?;
            let kb = ctx.storage_f32("k", &k).await?;
            let table = RopeTable::new(&ctx, head_dim, theta, max_len).await?;
            let shape = RopeShape {
                max_tokens: tokens,
                n_heads,
                n_kv_heads: n_kv,
                head_dim,
            };
            let rope = Rope::new(&ctx, &step, &table, &qb, &kb, shape).await?;
            run_pass(&ctx, &step, StepParams::batch(pos, tokens, 0), |p| {
                rope.encode(p, tokens)
            })
            .await?;
            Ok::<_, GpuError>((
                ctx.read_back_f32(&qb, q.len()).await?,
                ctx.read_back_f32(&kb, k.len()).await?,
            ))
        });
        let (got_q, got_k) = got.expect("rope on the GPU");
        for (what, got, want, row) in [("q", &got_q, &want_q, qrow), ("k", &got_k, &want_k, krow)] {
            let (err, at) = max_error(got, want);
            let (t, h, d) = (at / row, at % row / head_dim, at % head_dim);
            eprintln!(
                "rope {what} case {case}: positions {pos}..{} heads {n_heads}/{n_kv} head_dim {head_dim} \
                 theta {theta}: max rel error {err:.3e} at token {t} head {h} dim {d} (gpu {} cpu {})",
                pos + tokens,
                got[at],
                want[at]
            );
            // The angles come from the same f64 table as the CPU's: only the
            // final rotation's rounding (and FMA contraction) may differ.
            assert!(err < 1e-6, "rope {what} case {case}: error {err} at {at}");
        }
    }
}

#[test]
fn elementwise_matches_cpu() {
    let ctx = context();
    let step = StepUniform::new(&ctx);
    let max_x = ctx.limits().max_compute_workgroups_per_dimension as usize;
    // (tokens, bound tokens, width); the last needs a second row of workgroups.
    for (tokens, bound, width, seed) in [
        (1, 1, 1, 1),
        (1, 3, 257, 2),
        (4, 4, 1000, 3),
        (3, 5, 4096 + 5, 4),
        (1, 1, 11008, 5),
        (1, 1, max_x * 256 + 77, 6),
    ] {
        let n = tokens * width;
        let a = values(bound * width, seed, 12.0);
        let b = values(bound * width, seed + 50, 2.0);
        for op in [ElementwiseOp::Add, ElementwiseOp::SwiGlu] {
            let mut want: Vec<f32> = match op {
                ElementwiseOp::Add => a.iter().zip(&b).map(|(x, y)| x + y).collect(),
                ElementwiseOp::SwiGlu => a.iter().zip(&b).map(|(x, y)| cpu::silu(*x) * y).collect(),
            };
            // Rows past `tokens` are left alone.
            want[n..].copy_from_slice(&a[n..]);
            let got = ctx.block_on(async {
                let ab = ctx.storage_f32("a", &a).await?;
                let bb = ctx.storage_f32("b", &b).await?;
                let k = Elementwise::new(&ctx, op, &step, &ab, &bb, bound, width).await?;
                run_pass(&ctx, &step, StepParams::batch(0, tokens, 0), |p| {
                    k.encode(p, tokens)
                })
                .await?;
                ctx.read_back_f32(&ab, a.len()).await
            });
            let got = got.expect("elementwise on the GPU");
            let (err, at) = max_error(&got, &want);
            eprintln!(
                "{op:?} ({tokens} of {bound}, {width}): max rel error {err:.3e} at {at} \
                 (a {} b {} gpu {} cpu {})",
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
    let step = StepUniform::new(&ctx);
    let r: Result<RmsNorm, GpuError> = ctx.block_on(async {
        let xb = ctx.storage_f32("x", &[1.0; 10]).await?;
        let wb = ctx.storage_f32("w", &[1.0; 5]).await?;
        let ob = ctx.storage_f32("out", &[1.0; 15]).await?;
        // x holds 10 values, the shape asks for 3 x 5.
        RmsNorm::new(&ctx, &xb, &wb, &ob, 3, 5, 1e-5).await
    });
    assert!(
        matches!(
            r,
            Err(GpuError::Shape {
                kernel: "rmsnorm",
                ..
            })
        ),
        "{r:?}"
    );

    let r = ctx.block_on(RopeTable::new(&ctx, 3, 1e4, 8));
    assert!(
        matches!(r, Err(GpuError::Shape { kernel: "rope", .. })),
        "{r:?}"
    );

    // Encoding more rows than were bound is refused before anything runs.
    let r = ctx.block_on(async {
        let xb = ctx.storage_f32("x", &[1.0; 8]).await?;
        let wb = ctx.storage_f32("w", &[1.0; 8]).await?;
        let ob = ctx.storage_f32("out", &[1.0; 8]).await?;
        let norm = RmsNorm::new(&ctx, &xb, &wb, &ob, 1, 8, 1e-5).await?;
        run_pass(&ctx, &step, StepParams::batch(0, 2, 0), |p| {
            norm.encode(p, 2)
        })
        .await
    });
    assert!(
        matches!(
            r,
            Err(GpuError::Shape {
                kernel: "rmsnorm",
                ..
            })
        ),
        "{r:?}"
    );

    // The same buffer as read-only input and read-write output of one
    // dispatch is a usage conflict: wgpu's validation error comes back typed.
    let r = ctx.block_on(async {
        let xb = ctx.storage_f32("x", &[1.0; 8]).await?;
        let wb = ctx.storage_f32("w", &[1.0; 8]).await?;
        let norm = RmsNorm::new(&ctx, &xb, &wb, &xb, 1, 8, 1e-5).await?;
        run_pass(&ctx, &step, StepParams::batch(0, 1, 0), |p| {
            norm.encode(p, 1)
        })
        .await
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

#[test]
fn device_loss_is_a_typed_error() {
    let ctx = context();
    ctx.device().destroy();
    let _ = ctx.device().poll(wgpu::PollType::Poll);
    let r = ctx.block_on(ctx.storage_f32("after loss", &[1.0; 4]));
    eprintln!("after destroy: {r:?}");
    assert!(matches!(r, Err(GpuError::DeviceLost(_))), "{r:?}");
}
