//! The `matvec` entry of `shaders/qmatmul.wgsl` through `gpu::qmatmul::GpuMatrix` against the CPU
//! reference `cpu::QMatrix::matvec`, per format, on odd shapes. Needs a GPU
//! adapter (lavapipe in CI): without one every GPU test fails and says so.
//! The naga test at the end needs none.

#[path = "common/contexts.rs"]
mod shared_contexts;
use codellama_webgpu::cpu::QMatrix;
use codellama_webgpu::gguf::TensorInfo;
use codellama_webgpu::gpu::qmatmul::GpuMatrix;
use codellama_webgpu::gpu::{GpuContext, GpuError, KernelPreset};
use codellama_webgpu::gpu::{KernelKey, ShaderFamily};
use codellama_webgpu::GgmlType;
use shared_contexts::contexts_both_reductions;

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

/// Max abs error, its row, and the output's scale (max |y|).
struct Report {
    max_err: f32,
    at: usize,
    scale: f32,
}

fn compare(gpu: &[f32], cpu: &[f32]) -> Report {
    assert_eq!(gpu.len(), cpu.len());
    let mut r = Report {
        max_err: 0.0,
        at: 0,
        scale: 0.0,
    };
    for (i, (&g, &c)) in gpu.iter().zip(cpu).enumerate() {
        assert!(g.is_finite(), "row {i}: GPU gave {g}, CPU {c}");
        let e = (g - c).abs();
        if e > r.max_err {
            r.max_err = e;
            r.at = i;
        }
        r.scale = r.scale.max(c.abs());
    }
    r
}

/// Runs one shape on the GPU and the CPU; fails past `tol` relative to the
/// output's scale, or past `tol * sqrt(cols)` of an f32 sum's rounding.
fn check(ctx: &GpuContext, ty: GgmlType, rows: usize, cols: usize, part_bytes: Option<u64>) {
    let mut rng = Rng(0x9e37_79b9 ^ (rows * 7919 + cols) as u64 ^ (ty as u64) << 40);
    let (info, bytes) = random_tensor(ty, rows, cols, &mut rng);
    let x: Vec<f32> = (0..cols).map(|_| rng.unit()).collect();
    let cpu = QMatrix::new(&info, bytes.clone()).expect("cpu matrix");
    let mut want = vec![0f32; rows];
    cpu.matvec(&x, &mut want);
    let m = match part_bytes {
        None => GpuMatrix::upload(ctx, &info, &bytes),
        Some(p) => ctx.block_on(GpuMatrix::upload_with_part_limit_async(
            ctx, &info, &bytes, p,
        )),
    }
    .unwrap_or_else(|e| panic!("{}: upload: {e}", info.name));
    assert_eq!((m.rows(), m.cols()), (rows, cols));
    let got = m
        .matvec_host(ctx, &x)
        .unwrap_or_else(|e| panic!("{}: matvec: {e}", info.name));
    let r = compare(&got, &want);
    let rel = r.max_err / r.scale.max(f32::MIN_POSITIVE);
    eprintln!(
        "{ty:?} ({rows}, {cols}) in {} part(s): max abs err {:.3e} at row {} (gpu {}, cpu {}), output scale {:.3e}, relative {:.3e}",
        m.parts(),
        r.max_err,
        r.at,
        got[r.at],
        want[r.at],
        r.scale,
        rel
    );
    // Both sides sum `cols` f32 products in different orders: allow a few
    // ulps of the scale per sqrt(cols).
    let tol = 8.0 * f32::EPSILON * (cols as f32).sqrt();
    assert!(
        rel <= tol,
        "{ty:?} ({rows}, {cols}): max abs err {} at row {} (gpu {}, cpu {}) is {rel:.3e} of the output scale {}, over {tol:.3e}",
        r.max_err,
        r.at,
        got[r.at],
        want[r.at],
        r.scale
    );
}

const ROWS: [usize; 4] = [1, 7, 333, 4096];

fn run_format(ty: GgmlType, cols: &[usize]) {
    for ctx in contexts_both_reductions() {
        eprintln!("adapter: {}", ctx.adapter_summary());
        for &rows in &ROWS {
            for &c in cols {
                check(ctx, ty, rows, c, None);
            }
        }
    }
}

#[test]
fn f32_matches_cpu() {
    run_format(GgmlType::F32, &[32, 96, 4096, 33]);
}

#[test]
fn f16_matches_cpu() {
    run_format(GgmlType::F16, &[32, 96, 4096, 33]);
}

#[test]
fn q8_0_matches_cpu() {
    run_format(GgmlType::Q8_0, &[32, 96, 4096]);
}

#[test]
fn q4_0_matches_cpu() {
    run_format(GgmlType::Q4_0, &[32, 96, 4096]);
}

#[test]
fn q4_k_matches_cpu() {
    run_format(GgmlType::Q4K, &[256, 768]);
}

#[test]
fn q6_k_matches_cpu() {
    run_format(GgmlType::Q6K, &[256, 768]);
}

/// Matrices split by rows into parts (as over the storage-binding limit) give
/// the same products; odd-width F16 parts start mid-word in the file.
#[test]
fn split_matrices_match_cpu() {
    for ctx in contexts_both_reductions() {
        for ty in [
            GgmlType::F32,
            GgmlType::F16,
            GgmlType::Q8_0,
            GgmlType::Q4_0,
            GgmlType::Q4K,
            GgmlType::Q6K,
        ] {
            let cols = if ty.block_elems() == 256 { 512 } else { 96 };
            let cols = if ty == GgmlType::F16 { 33 } else { cols };
            // Parts of about 10 rows.
            let row_bytes = (cols / ty.block_elems() * ty.block_bytes()) as u64;
            check(ctx, ty, 103, cols, Some(10 * row_bytes + 4));
        }
    }
}

/// Shapes and formats the kernel cannot take are typed errors.
#[test]
fn bad_shapes_are_errors() {
    for ctx in contexts_both_reductions() {
        let mut rng = Rng(5);
        let (info, bytes) = random_tensor(GgmlType::Q8_0, 3, 64, &mut rng);
        let m = GpuMatrix::upload(ctx, &info, &bytes).expect("upload");
        let e = m.matvec_host(ctx, &[0.0; 63]).unwrap_err();
        assert!(matches!(e, GpuError::Shape { .. }), "{e}");
        let short = GpuMatrix::upload(ctx, &info, &bytes[1..]).unwrap_err();
        assert!(matches!(short, GpuError::Shape { .. }), "{short}");
        let q41 = TensorInfo {
            ty: GgmlType::Q4_1,
            n_bytes: 3 * 2 * 20,
            ..info.clone()
        };
        let e = GpuMatrix::upload(ctx, &q41, &[0; 120]).unwrap_err();
        assert!(matches!(e, GpuError::Shape { .. }), "{e}");
        // y too small for the rows.
        let x = ctx.block_on(ctx.storage_f32("x", &[0.0; 64])).unwrap();
        let y = ctx.block_on(ctx.storage_zeroed("y", 8)).unwrap();
        let e = ctx.block_on(m.bind_matvec(ctx, &x, &y, false)).unwrap_err();
        assert!(matches!(e, GpuError::Shape { .. }), "{e}");
        // x too small for the columns; x and y one buffer.
        let y = ctx.block_on(ctx.storage_zeroed("y", 12)).unwrap();
        let e = ctx.block_on(m.bind_matvec(ctx, &y, &y, false)).unwrap_err();
        assert!(matches!(e, GpuError::Shape { .. }), "{e}");
        let e = ctx.block_on(m.bind_matvec(ctx, &x, &x, true)).unwrap_err();
        assert!(matches!(e, GpuError::Shape { .. }), "{e}");
    }
}

/// Every `qmatmul.wgsl` variant validates with naga and compiles to SPIR-V,
/// with the constants the engine passes, each override given a value (no GPU
/// needed; `tests/shaders_naga.rs` checks the same for every family).
#[test]
fn every_format_variant_validates() {
    use naga::valid::{Capabilities, ValidationFlags, Validator};
    // Each key's own module (with or without subgroups), validated with the
    // capabilities its flavor may use: unpack2x16float needs
    // SHADER_FLOAT16_IN_FLOAT32, which wgpu grants wherever WebGPU runs (it
    // is not the `shader-f16` feature).
    let parse = |key: KernelKey| {
        let m = key.module();
        let source = m.source();
        let module = naga::front::wgsl::parse_str(&source)
            .unwrap_or_else(|e| panic!("{}", e.emit_to_string(&source)));
        let mut caps = Capabilities::default() | Capabilities::SHADER_FLOAT16_IN_FLOAT32;
        if m.features.subgroups {
            caps |= Capabilities::SUBGROUP;
        }
        if m.features.f16 {
            caps |= Capabilities::SHADER_FLOAT16;
        }
        let info = Validator::new(ValidationFlags::all(), caps)
            .validate(&module)
            .unwrap_or_else(|e| panic!("{}", e.emit_to_string(&source)));
        (module, info)
    };
    let keys: Vec<KernelKey> = KernelKey::all()
        .into_iter()
        .filter(|k| k.family() == ShaderFamily::QMatmul)
        .collect();
    // matvec: per format, every epilogue (store, accumulate, SwiGLU) in
    // every workgroup shape; matmul: every epilogue, f32 and f16 tiles; embed.
    let mut shapes: Vec<_> = KernelPreset::ALL
        .iter()
        .flat_map(|p| p.matvec_shapes())
        .collect();
    shapes.dedup();
    assert_eq!(keys.len(), 6 * 3 * shapes.len() + 2 * 6 * 3 + 6, "{keys:?}");
    for key in keys {
        let (module, info) = parse(key);
        let mut constants = naga::back::PipelineConstants::default();
        for (name, value) in key.constants() {
            constants.insert(name.to_string(), value);
        }
        for (_, o) in module.overrides.iter() {
            let name = o.name.as_deref().unwrap_or("?");
            assert!(
                constants.contains_key(name),
                "{key:?}: override {name} left at its default"
            );
        }
        let (m, i) = naga::back::pipeline_constants::process_overrides(
            &module,
            &info,
            Some((naga::ShaderStage::Compute, key.entry_point())),
            &constants,
        )
        .unwrap_or_else(|e| panic!("{key:?}: {e}"));
        let spv = naga::back::spv::write_vec(
            &m,
            &i,
            &naga::back::spv::Options::default(),
            Some(&naga::back::spv::PipelineOptions {
                shader_stage: naga::ShaderStage::Compute,
                entry_point: key.entry_point().to_string(),
            }),
        )
        .unwrap_or_else(|e| panic!("{key:?}: SPIR-V: {e}"));
        eprintln!("{key:?}: ok ({} SPIR-V words)", spv.len());
    }
}
