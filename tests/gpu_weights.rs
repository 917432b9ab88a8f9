//! Streaming weights into GPU buffers: a synthetic model written to disk and
//! read back tensor by tensor uploads every matrix intact (checked through a
//! matrix-vector product against the CPU's copy), and formats without a GPU
//! kernel are widened to F16 with a note.

use std::path::Path;

use codellama_webgpu::cpu::CpuWeights;
use codellama_webgpu::gpu::weights::{GpuWeights, Stack};
use codellama_webgpu::gpu::{GpuContext, GpuOptions};
use codellama_webgpu::model::{Config, SyntheticModel, SyntheticQuant};

fn context() -> GpuContext {
    GpuContext::new(&GpuOptions::default())
        .unwrap_or_else(|e| panic!("these tests need a wgpu adapter (lavapipe in CI): {e}"))
}

fn small(quant: SyntheticQuant) -> SyntheticModel {
    SyntheticModel::new(
        Config {
            dim: 256,
            n_layers: 9,
            n_heads: 4,
            n_kv_heads: 2,
            ffn_dim: 768,
            vocab_size: 300,
            context_length: 512,
            rope_theta: 1e6,
            rms_eps: 1e-5,
        },
        quant,
        3,
    )
}

#[test]
fn synthetic_files_stream_into_gpu_buffers_intact() {
    let ctx = context();
    let dir = std::env::temp_dir().join(format!("codellama-weights-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for quant in [SyntheticQuant::Q4_0, SyntheticQuant::Q4KM] {
        let model = small(quant);
        let path = dir.join(format!("{}.gguf", quant.name()));
        let written = model.write(&path).unwrap();
        assert_eq!(written, std::fs::metadata(&path).unwrap().len());

        let cpu = CpuWeights::load(&path).expect("the file reads back");
        assert_eq!(cpu.config, model.config);
        let mut events = 0;
        let gpu = GpuWeights::load(&ctx, &path, |p| {
            events += 1;
            assert!(p.bytes_done <= p.bytes_total);
        })
        .expect("upload");
        assert_eq!(events, model.tensor_infos().len());
        assert!(gpu.notes.is_empty(), "{:?}", gpu.notes);
        let types: Vec<_> = model.tensor_infos().iter().map(|t| t.ty).collect();
        eprintln!(
            "{}: {} tensors, {} bytes on the GPU, types {:?}",
            quant.name(),
            events,
            gpu.gpu_bytes,
            {
                let mut t = types.clone();
                t.dedup();
                t
            }
        );
        // Every matrix of two layers, and the output, through a matvec.
        let x: Vec<f32> = (0..768)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0)
            .collect();
        for l in [0, 8] {
            let (c, g) = (&cpu.layers[l], &gpu.layers[l]);
            let tag = |name: &str| format!("{} blk.{l}.{name}", quant.name());
            check(&ctx, &tag("w2"), &[&c.w2], &g.w2, &x, 1e-4);
            check_stack(&ctx, &tag("q|k|v"), &[&c.wq, &c.wk, &c.wv], &g.qkv, &x);
            check_stack(&ctx, &tag("gate|up"), &[&c.w1, &c.w3], &g.gate_up, &x);
        }
        check(&ctx, "output", &[cpu.output()], gpu.output(), &x, 1e-4);
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// The matrices of a stack, each alone or as one matrix of their rows.
fn check_stack(
    ctx: &GpuContext,
    what: &str,
    cpu: &[&codellama_webgpu::cpu::QMatrix],
    gpu: &Stack,
    x: &[f32],
) {
    match gpu {
        Stack::One(m) => check(ctx, &format!("{what} (one matrix)"), cpu, m, x, 1e-4),
        Stack::Apart(ms) => {
            assert_eq!(ms.len(), cpu.len(), "{what}");
            for (c, m) in cpu.iter().zip(ms) {
                check(ctx, &format!("{what} (apart)"), &[c], m, x, 1e-4);
            }
        }
    }
}

/// `gm` against the CPU matrices `cm` stacked by rows.
fn check(
    ctx: &GpuContext,
    what: &str,
    cm: &[&codellama_webgpu::cpu::QMatrix],
    gm: &codellama_webgpu::gpu::matvec::GpuMatrix,
    x: &[f32],
    tol: f32,
) {
    let x = &x[..gm.cols()];
    let mut want = Vec::new();
    for m in cm {
        let mut part = vec![0.0; m.rows];
        m.matvec(x, &mut part);
        want.extend(part);
    }
    assert_eq!(want.len(), gm.rows(), "{what}: rows");
    let got = gm.matvec_host(ctx, x).expect("matvec");
    let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-6);
    let (err, at) = got
        .iter()
        .zip(&want)
        .enumerate()
        .map(|(i, (g, w))| ((g - w).abs() / scale, i))
        .fold((0.0f32, 0), |b, e| if e.0 > b.0 { e } else { b });
    eprintln!("{what}: max error {err:.2e} (of the largest |y|) at row {at}");
    assert!(err < tol, "{what}: error {err} at row {at}");
}

#[test]
fn formats_without_a_kernel_are_widened_to_f16_with_a_note() {
    let ctx = context();
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/models/tiny-cov-v512-q4_1.gguf");
    let gpu = GpuWeights::load(&ctx, &path, |_| {}).expect("upload");
    eprintln!("{} notes, first: {:?}", gpu.notes.len(), gpu.notes.first());
    assert!(!gpu.notes.is_empty());
    assert!(
        gpu.notes.iter().all(|n| n.contains("F16")),
        "{:?}",
        gpu.notes
    );
    let cpu = CpuWeights::load(&path).unwrap();
    let x: Vec<f32> = (0..1024).map(|i| (i as f32 * 0.37).sin()).collect();
    // Widening to F16 rounds each weight to 11 significant bits.
    let l = &cpu.layers[0];
    let Stack::One(qkv) = &gpu.layers[0].qkv else {
        panic!("q4_1 blk.0: q, k, v share a type: one matrix");
    };
    check(
        &ctx,
        "q4_1 blk.0 q|k|v",
        &[&l.wq, &l.wk, &l.wv],
        qkv,
        &x,
        2e-3,
    );
}
