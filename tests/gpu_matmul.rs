//! The `matmul` and `embed` entries of `shaders/qmatmul.wgsl` (and `matvec`
//! with `ACCUMULATE`) through `gpu::qmatmul::GpuMatrix` against the CPU
//! reference (`cpu::QMatrix::row` dequantization, products summed in f64),
//! per format, on odd shapes: token counts and rows that are not multiples of
//! the 32 x 64 tiles, F32/F16 widths that are not multiples of the 32-column
//! unit, row parts, accumulation, and embedding ids at 0, vocab - 1 and past
//! the vocabulary. Needs a GPU adapter (lavapipe in CI).

#[path = "common/contexts.rs"]
mod shared_contexts;
use codellama_webgpu::cpu::QMatrix;
use codellama_webgpu::gguf::TensorInfo;
use codellama_webgpu::gpu::qmatmul::{BatchKernel, GpuMatrix};
use codellama_webgpu::gpu::{GpuContext, GpuError, StepParams, StepUniform};
use codellama_webgpu::GgmlType;
use shared_contexts::contexts;

/// xorshift64*: reproducible random data without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Uniform in [-1, 1).
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
}

const FORMATS: [GgmlType; 6] = [
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::Q8_0,
    GgmlType::Q4_0,
    GgmlType::Q4K,
    GgmlType::Q6K,
];

/// A random `(rows, cols)` tensor of type `ty` in file bytes. Quantized
/// formats get random quants and small finite f16 scales, floats random
/// values in [-1, 1).
fn random_tensor(ty: GgmlType, rows: usize, cols: usize, rng: &mut Rng) -> (TensorInfo, Vec<u8>) {
    let n_blocks = rows * cols / ty.block_elems();
    let mut bytes = Vec::with_capacity(n_blocks * ty.block_bytes());
    let half = |v: f32| half::f16::from_f32(v).to_le_bytes();
    for _ in 0..n_blocks {
        let mut block: Vec<u8> = (0..ty.block_bytes()).map(|_| rng.next() as u8).collect();
        match ty {
            GgmlType::F32 => block.copy_from_slice(&rng.unit().to_le_bytes()),
            GgmlType::F16 => block.copy_from_slice(&half(rng.unit())),
            GgmlType::Q8_0 | GgmlType::Q4_0 => block[..2].copy_from_slice(&half(rng.unit() / 64.0)),
            GgmlType::Q4K => {
                block[..2].copy_from_slice(&half(rng.unit() / 256.0));
                block[2..4].copy_from_slice(&half(rng.unit() / 256.0));
            }
            GgmlType::Q6K => {
                let n = block.len();
                block[n - 2..].copy_from_slice(&half(rng.unit() / 1024.0));
            }
            _ => unreachable!("formats under test"),
        }
        bytes.extend(block);
    }
    let info = TensorInfo {
        name: format!("w_{ty:?}_{rows}x{cols}"),
        dims: vec![cols as u64, rows as u64],
        ty,
        offset: 0,
        n_bytes: bytes.len() as u64,
    };
    (info, bytes)
}

/// Widths to test per format: block multiples; for F32 and F16 also widths
/// that cut the kernels' 32-column unit (and odd ones, whose F16 rows start
/// mid-word).
fn widths(ty: GgmlType) -> &'static [usize] {
    match ty {
        GgmlType::F32 | GgmlType::F16 => &[33, 96, 100],
        GgmlType::Q8_0 | GgmlType::Q4_0 => &[32, 96, 288],
        _ => &[256, 768],
    }
}

/// The matrix as f32 rows, through the CPU dequantization.
fn dequantized(info: &TensorInfo, bytes: &[u8]) -> (QMatrix, Vec<f32>) {
    let cpu = QMatrix::new(info, bytes.to_vec()).expect("cpu matrix");
    let w = cpu.to_f32();
    (cpu, w)
}

/// `base + X Wᵀ` summed in f64, `(tokens, rows)`, and each output's
/// magnitude `|base| + sum_c |W[r, c] X[t, c]|` (what its rounding scales with).
struct Reference {
    y: Vec<f32>,
    magnitude: Vec<f32>,
}

fn reference(
    w: &[f32],
    x: &[f32],
    tokens: usize,
    rows: usize,
    cols: usize,
    base: &[f32],
) -> Reference {
    let mut y = vec![0f32; tokens * rows];
    let mut magnitude = vec![0f32; tokens * rows];
    for t in 0..tokens {
        let xt = &x[t * cols..(t + 1) * cols];
        for r in 0..rows {
            let wr = &w[r * cols..(r + 1) * cols];
            let b = base.get(t * rows + r).copied().unwrap_or(0.0) as f64;
            let (s, m) = wr.iter().zip(xt).fold((b, b.abs()), |(s, m), (&a, &v)| {
                let p = a as f64 * v as f64;
                (s + p, m + p.abs())
            });
            y[t * rows + r] = s as f32;
            magnitude[t * rows + r] = m as f32;
        }
    }
    Reference { y, magnitude }
}

/// The worst error of a `(tokens, rows)` result relative to the output's
/// magnitude (see [`Reference`]).
#[derive(Default, Debug)]
struct Report {
    rel: f32,
    abs: f32,
    token: usize,
    row: usize,
    gpu: f32,
    cpu: f32,
}

fn compare(gpu: &[f32], want: &Reference, rows: usize) -> Report {
    assert_eq!(gpu.len(), want.y.len());
    let mut rep = Report::default();
    for (i, ((&g, &c), &m)) in gpu.iter().zip(&want.y).zip(&want.magnitude).enumerate() {
        let (t, r) = (i / rows, i % rows);
        assert!(g.is_finite(), "token {t} row {r}: GPU gave {g}, CPU {c}");
        let e = (g - c).abs();
        let rel = e / m.max(f32::MIN_POSITIVE);
        if rel > rep.rel || (rep.rel == 0.0 && e > rep.abs) {
            rep = Report {
                rel,
                abs: e,
                token: t,
                row: r,
                gpu: g,
                cpu: c,
            };
        }
    }
    rep
}

/// The GPU sums `cols` f32 products: allow a few ulps of the magnitude per
/// sqrt(cols) (the bound of `tests/gpu_matvec.rs`, there relative to max |y|).
fn tolerance(cols: usize) -> f32 {
    8.0 * f32::EPSILON * (cols as f32).sqrt()
}

fn assert_close(what: &str, rep: &Report, cols: usize) {
    let tol = tolerance(cols);
    eprintln!(
        "{what}: max abs err {:.3e} (relative {:.3e}) at token {} row {} (gpu {}, cpu {})",
        rep.abs, rep.rel, rep.token, rep.row, rep.gpu, rep.cpu
    );
    assert!(
        rep.rel <= tol,
        "{what}: relative error {:.3e} over {tol:.3e}: {rep:?}",
        rep.rel
    );
}

fn upload(
    ctx: &GpuContext,
    info: &TensorInfo,
    bytes: &[u8],
    part_rows: Option<usize>,
) -> GpuMatrix {
    match part_rows {
        None => GpuMatrix::upload(ctx, info, bytes),
        Some(n) => {
            let cols = info.dims[0] as usize;
            let row_bytes = (cols / info.ty.block_elems() * info.ty.block_bytes()) as u64;
            ctx.block_on(GpuMatrix::upload_with_part_limit_async(
                ctx,
                info,
                bytes,
                n as u64 * row_bytes + 4,
            ))
        }
    }
    .unwrap_or_else(|e| panic!("{}: upload: {e}", info.name))
}

/// Runs `Y (+)= X Wᵀ` for `tokens` tokens through the bind-once API, with
/// buffers for `max_tokens` tokens and `y` starting as `y0`.
#[allow(clippy::too_many_arguments)]
fn run_matmul(
    ctx: &GpuContext,
    m: &GpuMatrix,
    x: &[f32],
    tokens: usize,
    max_tokens: usize,
    y0: &[f32],
    accumulate: bool,
) -> Vec<f32> {
    let (rows, cols) = (m.rows(), m.cols());
    let step = StepUniform::new(ctx);
    step.write(ctx, &StepParams::batch(7, tokens, 0));
    let mut xs = x.to_vec();
    xs.resize(max_tokens * cols, f32::NAN);
    let xb = ctx.block_on(ctx.storage_f32("x", &xs)).unwrap();
    let mut ys = y0.to_vec();
    ys.resize(max_tokens * rows, -7.0);
    let yb = ctx.block_on(ctx.storage_f32("y", &ys)).unwrap();
    let binding = ctx
        .block_on(m.bind_matmul(ctx, &step, &xb, &yb, max_tokens, accumulate))
        .unwrap_or_else(|e| panic!("{}: bind_matmul: {e}", m.name()));
    let mut encoder = ctx.encoder("test matmul");
    {
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: None,
            timestamp_writes: None,
        });
        binding.encode(&mut pass, tokens).unwrap();
    }
    ctx.block_on(ctx.submit(encoder)).unwrap();
    let all = ctx
        .block_on(ctx.read_back_f32(&yb, max_tokens * rows))
        .unwrap();
    // Tokens past `tokens` are untouched.
    for (i, &v) in all[tokens * rows..].iter().enumerate() {
        assert_eq!(
            v,
            -7.0,
            "{}: y[{}] past the tokens written",
            m.name(),
            tokens * rows + i
        );
    }
    all[..tokens * rows].to_vec()
}

fn matmul_case(ctx: &GpuContext, ty: GgmlType, tokens: usize, rows: usize, cols: usize) -> Report {
    matmul_case_with(ctx, ty, tokens, rows, cols, None)
}

/// `Y = X Wᵀ` of a random `(rows, cols)` matrix of type `ty` through
/// `kernel` (`None`: the device's own batch kernel) against the f64
/// reference. With f16 tiles the reference multiplies W (as dequantized) and
/// X rounded to f16, and X spans several magnitudes, so that the rounding is
/// exercised at every exponent.
fn matmul_case_with(
    ctx: &GpuContext,
    ty: GgmlType,
    tokens: usize,
    rows: usize,
    cols: usize,
    kernel: Option<BatchKernel>,
) -> Report {
    let f16 = matches!(kernel, Some(BatchKernel::Tiled { f16: true }));
    let mut rng =
        Rng(0x51_7cc1_b727 ^ (tokens * 1_000_003 + rows * 7919 + cols) as u64 ^ (ty as u64) << 48);
    let (info, bytes) = random_tensor(ty, rows, cols, &mut rng);
    let scale = |i: usize| if f16 { [1.0, 37.5, 0.013][i % 3] } else { 1.0 };
    let x: Vec<f32> = (0..tokens * cols).map(|i| rng.unit() * scale(i)).collect();
    let (_, w) = dequantized(&info, &bytes);
    let round = |v: &[f32]| -> Vec<f32> {
        v.iter()
            .map(|&a| {
                if f16 {
                    half::f16::from_f32(a).to_f32()
                } else {
                    a
                }
            })
            .collect()
    };
    let want = reference(&round(&w), &round(&x), tokens, rows, cols, &[]);
    let m = upload(ctx, &info, &bytes, None);
    let got = match kernel {
        None => m.matmul_host(ctx, &x, tokens),
        Some(k) => ctx.block_on(m.matmul_host_with_async(ctx, &x, tokens, k)),
    }
    .unwrap_or_else(|e| panic!("{}: matmul {kernel:?}: {e}", info.name));
    let rep = compare(&got, &want, rows);
    let what = if f16 { "matmul f16 tiles" } else { "matmul" };
    assert_close(
        &format!("{what} {ty:?} tokens {tokens} ({rows}, {cols})"),
        &rep,
        cols,
    );
    rep
}

fn run_format(ty: GgmlType) {
    for ctx in contexts() {
        eprintln!("adapter: {}", ctx.adapter_summary());
        let mut worst = Report::default();
        for &tokens in &[1, 3, 17, 69] {
            for &rows in &[1, 7, 300] {
                for &cols in widths(ty) {
                    let rep = matmul_case(ctx, ty, tokens, rows, cols);
                    if rep.rel >= worst.rel {
                        worst = rep;
                    }
                }
            }
        }
        eprintln!("matmul {ty:?} worst: {worst:?}");
    }
}

/// `matmul` with f16 workgroup tiles ([`BatchKernel::Tiled`] `f16`, where
/// the device has `shader-f16`) rounds each dequantized weight and each x
/// value to f16 (to nearest even) once and does everything else in f32: it
/// matches the f64 reference over the same rounded values within the f32
/// kernels' tolerance.
#[test]
fn matmul_f16_tiles_match_rounded_reference() {
    let mut ran = false;
    for ctx in contexts() {
        if !ctx.features().f16 {
            eprintln!("{}: no shader-f16, no f16 tiles", ctx.adapter_summary());
            continue;
        }
        ran = true;
        for ty in FORMATS {
            let mut worst = Report::default();
            for &tokens in &[1, 17, 69] {
                for &rows in &[7, 300] {
                    for &cols in widths(ty) {
                        let kernel = Some(BatchKernel::Tiled { f16: true });
                        let rep = matmul_case_with(ctx, ty, tokens, rows, cols, kernel);
                        if rep.rel >= worst.rel {
                            worst = rep;
                        }
                    }
                }
            }
            eprintln!("matmul f16 tiles {ty:?} worst: {worst:?}");
        }
    }
    if !ran {
        eprintln!("no adapter with shader-f16: the f16 tiles were not run");
    }
}

#[test]
fn matmul_f32_matches_cpu() {
    run_format(GgmlType::F32);
}

#[test]
fn matmul_f16_matches_cpu() {
    run_format(GgmlType::F16);
}

#[test]
fn matmul_q8_0_matches_cpu() {
    run_format(GgmlType::Q8_0);
}

#[test]
fn matmul_q4_0_matches_cpu() {
    run_format(GgmlType::Q4_0);
}

#[test]
fn matmul_q4_k_matches_cpu() {
    run_format(GgmlType::Q4K);
}

#[test]
fn matmul_q6_k_matches_cpu() {
    run_format(GgmlType::Q6K);
}

/// A larger product: several row and token tiles at a model-like width.
#[test]
fn matmul_large_matches_cpu() {
    for ctx in contexts() {
        matmul_case(ctx, GgmlType::Q4K, 69, 333, 4096);
        matmul_case(ctx, GgmlType::Q8_0, 64 + 5, 1000, 1024);
    }
}

/// `ACCUMULATE`: `y += W x` (matvec) and `Y += X Wᵀ` (matmul), with buffers
/// larger than the tokens written; and matmul on a matrix split into row
/// parts.
#[test]
fn accumulate_and_parts_match_cpu() {
    for ctx in contexts() {
        for ty in FORMATS {
            let cols = *widths(ty).last().unwrap();
            let rows = 103;
            let tokens = 37;
            let mut rng = Rng(0xacc ^ (ty as u64) << 32);
            let (info, bytes) = random_tensor(ty, rows, cols, &mut rng);
            let x: Vec<f32> = (0..tokens * cols).map(|_| rng.unit()).collect();
            let y0: Vec<f32> = (0..tokens * rows).map(|_| 4.0 * rng.unit()).collect();
            let (_, w) = dequantized(&info, &bytes);
            for part_rows in [None, Some(10)] {
                let m = upload(ctx, &info, &bytes, part_rows);
                let tag = format!("{ty:?} ({rows}, {cols}) in {} part(s)", m.parts());
                // matmul, overwrite and accumulate.
                let got = run_matmul(ctx, &m, &x, tokens, tokens + 6, &y0, false);
                let want = reference(&w, &x, tokens, rows, cols, &[]);
                assert_close(&format!("matmul {tag}"), &compare(&got, &want, rows), cols);
                let got = run_matmul(ctx, &m, &x, tokens, tokens + 6, &y0, true);
                let want = reference(&w, &x, tokens, rows, cols, &y0);
                assert_close(
                    &format!("matmul += {tag}"),
                    &compare(&got, &want, rows),
                    cols,
                );
                // matvec, overwrite and accumulate.
                let x1 = &x[..cols];
                let want = reference(&w, x1, 1, rows, cols, &[]);
                let got = m.matvec_host(ctx, x1).unwrap();
                assert_close(&format!("matvec {tag}"), &compare(&got, &want, rows), cols);
                let xb = ctx.block_on(ctx.storage_f32("x", x1)).unwrap();
                let yb = ctx.block_on(ctx.storage_f32("y", &y0[..rows + 5])).unwrap();
                let binding = ctx.block_on(m.bind_matvec(ctx, &xb, &yb, true)).unwrap();
                let mut encoder = ctx.encoder("matvec +=");
                {
                    let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                        label: None,
                        timestamp_writes: None,
                    });
                    binding.encode(&mut pass);
                }
                ctx.block_on(ctx.submit(encoder)).unwrap();
                let all = ctx.block_on(ctx.read_back_f32(&yb, rows + 5)).unwrap();
                assert_eq!(&all[rows..], &y0[rows..rows + 5], "matvec wrote past rows");
                let want = reference(&w, x1, 1, rows, cols, &y0[..rows]);
                assert_close(
                    &format!("matvec += {tag}"),
                    &compare(&all[..rows], &want, rows),
                    cols,
                );
            }
        }
    }
}

/// Embedding rows of every format, whole and in row parts, against
/// `QMatrix::row`; ids past the vocabulary give zeros.
#[test]
fn embed_matches_cpu() {
    for ctx in contexts() {
        for ty in FORMATS {
            let dim = match ty {
                GgmlType::F32 | GgmlType::F16 => 33,
                GgmlType::Q8_0 | GgmlType::Q4_0 => 96,
                _ => 512,
            };
            let vocab = 101;
            let mut rng = Rng(0xe3b ^ (ty as u64) << 32);
            let (info, bytes) = random_tensor(ty, vocab, dim, &mut rng);
            let (cpu, _) = dequantized(&info, &bytes);
            let mut ids: Vec<u32> = vec![0, vocab as u32 - 1, vocab as u32, u32::MAX, 5, 5];
            ids.extend((0..13).map(|_| (rng.next() % vocab as u64) as u32));
            for part_rows in [None, Some(10)] {
                let m = upload(ctx, &info, &bytes, part_rows);
                let got = m.embed_host(ctx, &ids).unwrap();
                let mut worst = (0f32, 0usize, 0usize);
                let mut row = vec![0f32; dim];
                for (t, &id) in ids.iter().enumerate() {
                    if (id as usize) < vocab {
                        cpu.row(id as usize, &mut row);
                    } else {
                        row.fill(0.0);
                    }
                    let scale = row.iter().fold(0f32, |m, v| m.max(v.abs()));
                    for (c, (&g, &w)) in got[t * dim..(t + 1) * dim].iter().zip(&row).enumerate() {
                        let e = (g - w).abs();
                        assert!(
                            e <= 2.0 * f32::EPSILON * scale,
                            "embed {ty:?} id {id} (token {t}) col {c}: gpu {g}, cpu {w}"
                        );
                        if e >= worst.0 {
                            worst = (e, t, c);
                        }
                    }
                }
                eprintln!(
                    "embed {ty:?} ({vocab}, {dim}) in {} part(s): max abs err {:.3e} at token {} (id {}) col {}",
                    m.parts(),
                    worst.0,
                    worst.1,
                    ids[worst.1],
                    worst.2
                );
            }
        }
    }
}

/// Token counts outside `1..=max_tokens` and buffers too small are typed
/// errors.
#[test]
fn bad_shapes_are_errors() {
    for ctx in contexts() {
        let mut rng = Rng(9);
        let (info, bytes) = random_tensor(GgmlType::Q4_0, 5, 64, &mut rng);
        let m = GpuMatrix::upload(ctx, &info, &bytes).unwrap();
        let step = StepUniform::new(ctx);
        let x = ctx.block_on(ctx.storage_zeroed("x", 4 * 4 * 64)).unwrap();
        let y = ctx.block_on(ctx.storage_zeroed("y", 4 * 4 * 5)).unwrap();
        let shape = |r: Result<_, GpuError>| match r {
            Err(e @ GpuError::Shape { .. }) => eprintln!("{e}"),
            Err(e) => panic!("not a shape error: {e}"),
            Ok(_) => panic!("accepted"),
        };
        // y holds 4 tokens of 5 rows, not 5.
        shape(
            ctx.block_on(m.bind_matmul(ctx, &step, &x, &y, 5, false))
                .map(|_| ()),
        );
        shape(
            ctx.block_on(m.bind_matmul(ctx, &step, &x, &y, 0, false))
                .map(|_| ()),
        );
        shape(
            ctx.block_on(m.bind_matmul(ctx, &step, &x, &x, 4, false))
                .map(|_| ()),
        );
        let b = ctx
            .block_on(m.bind_matmul(ctx, &step, &x, &y, 4, true))
            .unwrap();
        assert_eq!(b.max_tokens(), 4);
        let mut encoder = ctx.encoder("bad");
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: None,
                timestamp_writes: None,
            });
            shape(b.encode(&mut pass, 0).map(|_| ()));
            shape(b.encode(&mut pass, 5).map(|_| ()));
        }
        shape(m.matmul_host(ctx, &[0.0; 63], 1).map(|_| ()));
        shape(m.embed_host(ctx, &[]).map(|_| ()));
        // Embedding output too small for max_tokens rows of 64.
        let ids = ctx.block_on(ctx.storage_zeroed("ids", 16)).unwrap();
        shape(
            ctx.block_on(m.bind_embed(ctx, &step, &ids, &y, 4))
                .map(|_| ()),
        );
    }
}

/// The fused forms the decoder uses, through every kernel (the decode
/// matvec, the preset's batch kernel, and the other batch kernel): an RMSNorm
/// finished by the product (`x * w` in, per-token partial sums of `x²`, the
/// scale `1 / sqrt(sum / cols + eps)` applied to the product), SwiGLU over a
/// gate | up matrix, and output rows placed at a stride and offset (as the
/// separate Q, K and V projections write into one `(tokens, q | k | v)`
/// buffer). The reference normalizes first, as the CPU decoder does
/// (`x * inv * w`), then multiplies in f64: the product of the GPU's
/// `inv * W (x * w)` differs by f32 rounding only, bounded like every product
/// here by a few ulps of its magnitude per sqrt(cols).
#[test]
fn fused_epilogues_match_cpu() {
    use codellama_webgpu::gpu::qmatmul::{BatchKernel, Norm, Output};
    use codellama_webgpu::gpu::{Epilogue, KernelPreset, MatvecShape};
    let groups_of = |cols: usize| cols.div_ceil(64);
    for ctx in contexts() {
        let mut kernels = vec![
            None,
            Some(BatchKernel::Tiled { f16: false }),
            Some(BatchKernel::Lanes(MatvecShape {
                lanes: 8,
                rows: 16,
                tokens: 8,
                subgroup: false,
                runs: true,
            })),
            Some(BatchKernel::Lanes(MatvecShape {
                lanes: 32,
                rows: 4,
                tokens: 3,
                subgroup: false,
                runs: false,
            })),
        ];
        // Both presets' verification shapes (2 and 4 tokens per workgroup)
        // but the CPU preset's 4-token one, its batch shape (8 x 16 x 4),
        // which the decoder tests run.
        for preset in KernelPreset::ALL {
            for shape in preset.matvec().verify_shapes() {
                let k = Some(BatchKernel::Lanes(shape));
                if !kernels.contains(&k) && preset.batch() != Some(shape) {
                    kernels.push(k);
                }
            }
        }
        // The subgroup reduction, where the adapter allows it (lavapipe: 8
        // lanes); the decode shape (None) uses it too where it applies.
        if let Some(lanes) = ctx.subgroup_lanes() {
            kernels.push(Some(BatchKernel::Lanes(MatvecShape {
                lanes,
                rows: 16,
                tokens: 3,
                subgroup: true,
                runs: true,
            })));
        }
        for ty in FORMATS {
            let cols = *widths(ty).last().unwrap();
            let ffn = 37;
            let mut rng = Rng(0xf05e ^ (ty as u64) << 32);
            let (info, bytes) = random_tensor(ty, 2 * ffn, cols, &mut rng);
            let (_, w) = dequantized(&info, &bytes);
            let m = upload(ctx, &info, &bytes, None);
            let eps = 1e-5f32;
            for &kernel in &kernels {
                let tokens = if kernel.is_some() { 11 } else { 1 };
                let x: Vec<f32> = (0..tokens * cols).map(|_| 3.0 * rng.unit()).collect();
                let nw: Vec<f32> = (0..cols).map(|_| 0.5 + rng.unit()).collect();
                // The norm's inputs as norm.wgsl makes them.
                let groups = groups_of(cols);
                let xw: Vec<f32> = x
                    .iter()
                    .enumerate()
                    .map(|(i, v)| v * nw[i % cols])
                    .collect();
                let ss: Vec<f32> = (0..tokens * groups)
                    .map(|i| {
                        let (t, g) = (i / groups, i % groups);
                        let row = &x[t * cols..(t + 1) * cols];
                        row[(g * 64).min(cols)..((g + 1) * 64).min(cols)]
                            .iter()
                            .map(|v| v * v)
                            .sum()
                    })
                    .collect();
                // The reference: normalized rows, then gate and up in f64.
                let mut xn = vec![0f32; tokens * cols];
                for t in 0..tokens {
                    codellama_webgpu::cpu::rmsnorm(
                        &mut xn[t * cols..(t + 1) * cols],
                        &x[t * cols..(t + 1) * cols],
                        &nw,
                        eps,
                    );
                }
                let full = reference(&w, &xn, tokens, 2 * ffn, cols, &[]);
                let silu = |v: f64| v / (1.0 + (-v).exp());
                // Output at stride 2 ffn + 3, offset 2, sentinel elsewhere.
                let stride = ffn + 5;
                let offset = 2;
                let xb = ctx.block_on(ctx.storage_f32("xw", &xw)).unwrap();
                let ssb = ctx.block_on(ctx.storage_f32("ss", &ss)).unwrap();
                let yb = ctx
                    .block_on(ctx.storage_f32("y", &vec![-7.0; tokens * stride]))
                    .unwrap();
                let out = Output {
                    y: &yb,
                    stride,
                    offset,
                    epilogue: Epilogue::SwiGlu,
                };
                let norm = Some(Norm {
                    ss: &ssb,
                    groups,
                    eps,
                });
                let step = StepUniform::new(ctx);
                step.write(ctx, &StepParams::batch(0, tokens, 0));
                let mut encoder = ctx.encoder("fused");
                match kernel {
                    None => {
                        let b = ctx
                            .block_on(m.bind_matvec_to(ctx, &xb, out, norm))
                            .unwrap_or_else(|e| panic!("{ty:?} matvec: {e}"));
                        let mut pass = encoder.begin_compute_pass(&Default::default());
                        b.encode(&mut pass);
                    }
                    Some(k) => {
                        let b = ctx
                            .block_on(m.bind_matmul_to(ctx, &step, &xb, out, norm, tokens, k))
                            .unwrap_or_else(|e| panic!("{ty:?} {k:?}: {e}"));
                        let mut pass = encoder.begin_compute_pass(&Default::default());
                        b.encode(&mut pass, tokens).unwrap();
                    }
                }
                ctx.block_on(ctx.submit(encoder)).unwrap();
                let all = ctx
                    .block_on(ctx.read_back_f32(&yb, tokens * stride))
                    .unwrap();
                let mut worst = (0f64, 0usize, 0usize);
                for t in 0..tokens {
                    for c in 0..stride {
                        let got = all[t * stride + c];
                        if c < offset || c >= offset + ffn {
                            assert_eq!(got, -7.0, "{ty:?} {kernel:?}: token {t} col {c} written");
                            continue;
                        }
                        let i = c - offset;
                        let (g, u) = (full.y[t * 2 * ffn + i], full.y[t * 2 * ffn + ffn + i]);
                        let want = silu(g as f64) * u as f64;
                        // The rounding of g and u scales with their magnitudes,
                        // and d(silu(g) u) = silu'(g) u dg + silu(g) du.
                        let (mg, mu) = (
                            full.magnitude[t * 2 * ffn + i] as f64,
                            full.magnitude[t * 2 * ffn + ffn + i] as f64,
                        );
                        let scale = 1.2 * mg * (u as f64).abs() + silu(g as f64).abs() * mu;
                        let rel = (got as f64 - want).abs() / scale.max(f64::MIN_POSITIVE);
                        if rel > worst.0 {
                            worst = (rel, t, i);
                        }
                    }
                }
                let tol = tolerance(cols) as f64;
                eprintln!(
                    "{ty:?} {kernel:?} SwiGLU + norm + stride: worst relative error {:.3e} at token {} output {}",
                    worst.0, worst.1, worst.2
                );
                assert!(
                    worst.0 <= tol,
                    "{ty:?} {kernel:?}: {worst:?} over {tol:.3e}"
                );
            }
        }
    }
}
