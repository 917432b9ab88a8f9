//! The chunked KV cache and attention (`gpu::attention`) against the CPU
//! reference (`cpu::attention` over a cache rounded as the GPU stores it:
//! f16 round trip or q8 quantize-dequantize), on the default adapter
//! (lavapipe here and in CI): MHA and GQA, head_dim 48/64/128, decode across
//! chunk boundaries and decode-split edges, prefill batches crossing a
//! chunk, both formats, several layers, truncate-and-rewrite, growth and the
//! max_len error. Each check
//! prints its max abs error and where it occurred. Without an adapter these
//! tests fail: they never skip.

use codellama_webgpu::cpu::{self, AttentionShape};
use codellama_webgpu::gpu::kernels::QkvLayout;
use codellama_webgpu::gpu::{
    AttentionConfig, AttentionIo, GpuContext, GpuError, GpuOptions, KvAttention, KvFormat,
    StepParams, StepUniform, KV_CHUNK,
};

/// f32 attention on the GPU vs f32 on the CPU over the same rounded cache.
const TOL: f32 = 2e-5;

fn context() -> GpuContext {
    match GpuContext::new(&GpuOptions::default()) {
        Ok(ctx) => {
            eprintln!("adapter: {}", ctx.adapter_summary());
            ctx
        }
        Err(e) => panic!(
            "the GPU attention tests need a wgpu adapter and found none ({e}); \
             install lavapipe (apt-get install mesa-vulkan-drivers libvulkan1)"
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

/// A KV attention with its io buffers, and the CPU mirror of its cache.
struct Harness<'c> {
    ctx: &'c GpuContext,
    cfg: AttentionConfig,
    att: KvAttention,
    /// Per layer: `(len, n_kv_heads, head_dim)` f32, rounded as stored.
    k: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
    seed: u64,
    /// Scale of q (larger: peakier softmax).
    q_scale: f32,
    /// Max abs error allowed.
    tol: f32,
    worst: (f32, String),
}

impl<'c> Harness<'c> {
    fn new(ctx: &'c GpuContext, cfg: AttentionConfig) -> Harness<'c> {
        let q_bytes = (cfg.max_tokens * cfg.n_heads * cfg.head_dim * 4) as u64;
        // Each token's q | k | v row, as the decoder lays them out.
        let layout = QkvLayout::packed(cfg.n_heads, cfg.n_kv_heads, cfg.head_dim);
        let qkv_bytes = (cfg.max_tokens * layout.stride * 4) as u64;
        let att = ctx
            .block_on(async {
                let qkv = ctx.storage_zeroed("qkv", qkv_bytes).await?;
                let out = ctx.storage_zeroed("out", q_bytes).await?;
                let step = StepUniform::new(ctx);
                let io = AttentionIo {
                    qkv: &qkv,
                    layout,
                    out: &out,
                    step: &step,
                    rope: None,
                };
                KvAttention::new_async(ctx, cfg, io).await
            })
            .expect("KvAttention::new");
        Harness {
            ctx,
            cfg,
            att,
            k: vec![Vec::new(); cfg.n_layers],
            v: vec![Vec::new(); cfg.n_layers],
            seed: 1,
            q_scale: 2.0,
            tol: TOL,
            worst: (0.0, String::new()),
        }
    }

    fn name(&self) -> String {
        let c = &self.cfg;
        format!(
            "{:?} layers {} heads {}/{} head_dim {}",
            c.format, c.n_layers, c.n_heads, c.n_kv_heads, c.head_dim
        )
    }

    /// Feeds `tokens` new tokens at position `len()` through every layer and
    /// checks each layer's output; returns the max abs error.
    fn batch(&mut self, tokens: usize) -> f32 {
        let c = self.cfg;
        let pos = self.att.len();
        self.att.reserve(self.ctx, pos + tokens).expect("reserve");
        let (hd, q_row, kv_row) = (
            c.head_dim,
            c.n_heads * c.head_dim,
            c.n_kv_heads * c.head_dim,
        );
        let shape = AttentionShape {
            n_heads: c.n_heads,
            n_kv_heads: c.n_kv_heads,
            head_dim: hd,
        };
        let mut worst = 0.0f32;
        for layer in 0..c.n_layers {
            self.seed += 3;
            let q = values(tokens * q_row, self.seed, self.q_scale);
            let k = values(tokens * kv_row, self.seed + 1, 1.0);
            let v = values(tokens * kv_row, self.seed + 2, 1.0);
            let got = self
                .att
                .attention_host(self.ctx, layer, pos, &q, &k, &v)
                .unwrap_or_else(|e| panic!("{}: layer {layer} pos {pos}: {e}", self.name()));

            let (mut kr, mut vr) = (k.clone(), v.clone());
            c.format.round_trip(&mut kr, hd);
            c.format.round_trip(&mut vr, hd);
            self.k[layer].truncate(pos * kv_row);
            self.v[layer].truncate(pos * kv_row);
            self.k[layer].extend_from_slice(&kr);
            self.v[layer].extend_from_slice(&vr);
            let mut want = vec![0.0; tokens * q_row];
            cpu::attention(&mut want, &q, &self.k[layer], &self.v[layer], shape, pos);

            let (mut err, mut at) = (0.0f32, 0);
            for (i, (&g, &w)) in got.iter().zip(&want).enumerate() {
                assert!(g.is_finite(), "{}: value {i} is {g}", self.name());
                let e = (g - w).abs();
                if e > err {
                    (err, at) = (e, i);
                }
            }
            let (t, h, d) = (at / q_row, at % q_row / hd, at % hd);
            let place = format!(
                "{} layer {layer} pos {pos} tokens {tokens}: max abs error {err:.3e} at token {t} \
                 (position {}) head {h} dim {d} (gpu {} cpu {})",
                self.name(),
                pos + t,
                got[at],
                want[at]
            );
            eprintln!("{place}");
            assert!(err < self.tol, "{place}");
            if err >= self.worst.0 {
                self.worst = (err, place);
            }
            worst = worst.max(err);
        }
        self.att.advance(tokens).expect("advance");
        worst
    }

    fn truncate(&mut self, n: usize) {
        self.att.truncate(n);
        assert_eq!(self.att.len(), n);
        let kv_row = self.cfg.n_kv_heads * self.cfg.head_dim;
        for l in 0..self.cfg.n_layers {
            self.k[l].truncate(n * kv_row);
            self.v[l].truncate(n * kv_row);
        }
    }
}

fn config(
    n_layers: usize,
    n_heads: usize,
    n_kv_heads: usize,
    head_dim: usize,
    format: KvFormat,
) -> AttentionConfig {
    AttentionConfig {
        n_layers,
        n_heads,
        n_kv_heads,
        head_dim,
        max_len: 1000,
        max_tokens: 512,
        format,
    }
}

/// Decode at positions 0, 1, 255, 256, 257, 700 (the gaps filled by prefill
/// batches, also checked), MHA and GQA, head_dim 64 and 128, both formats.
#[test]
fn decode_across_chunk_boundaries() {
    let ctx = context();
    for format in KvFormat::ALL {
        for (heads, kv_heads, hd) in [(4, 4, 64), (8, 2, 128)] {
            let mut h = Harness::new(&ctx, config(2, heads, kv_heads, hd, format));
            h.batch(1); // position 0
            h.batch(1); // 1
            h.batch(253); // 2..255
            assert_eq!(h.att.chunks(), 1);
            h.batch(1); // 255
            h.batch(1); // 256: the second chunk
            assert_eq!(h.att.chunks(), 2);
            h.batch(1); // 257
            h.batch(442); // 258..700
            h.batch(1); // 700
            h.batch(1); // 701
            assert_eq!(h.att.len(), 702);
            assert_eq!(h.att.chunks(), 3);
            eprintln!("WORST {}", h.worst.1);
        }
    }
}

/// Prefill batches of 1, 5 and 300 tokens from position 0 and from 250
/// (crossing the first chunk boundary), after truncating a longer sequence:
/// the rewritten positions must replace the old ones in every layer.
#[test]
fn prefill_and_truncate_rewrite() {
    let ctx = context();
    for format in KvFormat::ALL {
        for (layers, heads, kv_heads, hd) in [(3, 8, 2, 128), (2, 6, 6, 48)] {
            let mut h = Harness::new(&ctx, config(layers, heads, kv_heads, hd, format));
            for tokens in [1, 5, 300] {
                h.truncate(0);
                h.batch(tokens); // from position 0
                h.truncate(0);
                h.batch(300); // 0..300, then rewrite from 250
                h.truncate(250);
                h.batch(tokens);
                h.batch(1); // decode after the rewrite reads it back
            }
            // Truncation keeps the chunks.
            let chunks = h.att.chunks();
            h.truncate(3);
            assert_eq!(h.att.chunks(), chunks);
            h.batch(2);
            eprintln!("WORST {}", h.worst.1);
        }
    }
}

/// Decode and small batches at the edges of the 64-position decode splits
/// (contexts of exactly 64, 65, 128, 256 positions, a batch of 4 crossing a
/// split), over four chunks, for grouped-query shapes whose row tiles hold
/// several heads and tokens (groups 8, 2 and 3, the last tiling rows across
/// tokens unevenly), and a head_dim (42) that pads its last quad. Batches of
/// up to `decode_tokens` tokens take the split path, larger ones the
/// prefill path; both are checked.
#[test]
fn split_edges_over_many_chunks() {
    let ctx = context();
    for format in KvFormat::ALL {
        for (heads, kv_heads, hd) in [(16, 2, 64), (6, 3, 42), (6, 2, 128)] {
            let mut h = Harness::new(&ctx, config(1, heads, kv_heads, hd, format));
            assert_eq!(h.att.decode_tokens(), 4);
            h.batch(2); // 0..2: one split, written by attend itself
            h.batch(61); // 2..63
            h.batch(1); // 63: kv_len 64, still one split
            h.batch(1); // 64: the second split, combined
            h.batch(4); // 65..69
            h.batch(57); // 69..126
            h.batch(4); // 126..130: a batch of 4 across a split edge
            h.batch(125); // 130..255
            h.batch(1); // 255: kv_len 256, the whole first chunk
            h.batch(4); // 256..260: the second chunk
            h.batch(500); // 260..760
            h.batch(9); // 760..769: the fourth chunk, prefill path
            h.batch(3); // 769..772
            h.batch(1); // 772
            assert_eq!(h.att.chunks(), 4);
            eprintln!("WORST {}", h.worst.1);
        }
    }
}

/// Dispatches recorded per layer: `kv_write` per chunk touched, `attend` per
/// chunk, `combine` only for decode-path steps past one split.
#[test]
fn dispatches_per_step() {
    let ctx = context();
    let mut h = Harness::new(&ctx, config(2, 4, 4, 64, KvFormat::F16));
    h.att.reserve(&ctx, 1000).expect("reserve");
    h.att.set_len(1000).expect("set_len");
    let mut encoder = ctx.encoder("t");
    let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
    for (pos, tokens, want) in [
        (0, 1, 2),     // write, attend
        (63, 1, 2),    // kv_len 64: one split
        (64, 1, 3),    // + combine
        (255, 1, 3),   // one chunk
        (256, 1, 4),   // two chunks
        (254, 4, 5),   // the batch's positions in two chunks
        (700, 1, 5),   // three chunks
        (0, 5, 2),     // prefill path: no combine
        (250, 300, 6), // writes to chunks 0..=2, attends 0..=2
    ] {
        let got = h
            .att
            .encode(&mut pass, 1, &StepParams::batch(pos, tokens, 0))
            .expect("encode");
        eprintln!("pos {pos} tokens {tokens}: {got} dispatches");
        assert_eq!(got, want, "pos {pos} tokens {tokens}");
    }
}

/// Large scores (|q.k|/sqrt(d) in the hundreds) across chunks: the online
/// softmax must rescale without overflow. A score near 500 carries ~500 * 2^-24
/// of rounding on either side (the Q8 dot also scales after summing), so the
/// tolerance is looser.
#[test]
fn peaky_scores_stay_stable() {
    let ctx = context();
    for format in KvFormat::ALL {
        let mut h = Harness::new(&ctx, config(1, 4, 2, 64, format));
        h.q_scale = 60.0;
        h.tol = 1e-4;
        h.batch(300);
        h.batch(1);
        h.batch(250);
        h.batch(1);
        eprintln!("WORST {}", h.worst.1);
    }
}

/// Growth, accounting and the typed errors.
#[test]
fn capacity_accounting_and_errors() {
    let ctx = context();
    let cfg = AttentionConfig {
        max_len: 300,
        max_tokens: 64,
        ..config(2, 4, 2, 64, KvFormat::F16)
    };
    let mut h = Harness::new(&ctx, cfg);
    assert_eq!(h.att.chunks(), 0);
    assert_eq!(h.att.allocated_bytes(), 0);
    // 2 layers * 2 (K, V) * 2 kv heads * 64 values * 2 bytes.
    assert_eq!(h.att.bytes_per_token(), 2 * 2 * 2 * 64 * 2);
    h.batch(64);
    assert_eq!(h.att.chunks(), 1);
    let one = h.att.allocated_bytes();
    assert!(one >= (KV_CHUNK as u64) * h.att.bytes_per_token());
    eprintln!("one chunk: {one} bytes");

    // Encoding past the reserved chunks is a shape error, not UB.
    let mut encoder = ctx.encoder("t");
    let mut enc = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
    let past = StepParams::batch(250, 10, 0);
    match h.att.encode(&mut enc, 0, &past) {
        Err(GpuError::Shape { detail, .. }) => eprintln!("unreserved: {detail}"),
        other => panic!("expected a shape error, got {other:?}"),
    }
    // A gap after len is refused.
    match h.att.encode(&mut enc, 0, &StepParams::batch(65, 1, 0)) {
        Err(GpuError::Shape { detail, .. }) => eprintln!("gap: {detail}"),
        other => panic!("expected a shape error, got {other:?}"),
    }
    // Past max_len: ContextFull from reserve, encode and advance.
    match h.att.reserve(&ctx, 301) {
        Err(GpuError::ContextFull { len: 301, max: 300 }) => {}
        other => panic!("expected ContextFull, got {other:?}"),
    }
    h.att.reserve(&ctx, 300).expect("reserve to max_len");
    assert_eq!(h.att.chunks(), 2);
    assert_eq!(h.att.reserved(), 300);
    match h.att.encode(&mut enc, 0, &StepParams::batch(290, 11, 0)) {
        Err(GpuError::ContextFull { len: 301, max: 300 }) => {}
        other => panic!("expected ContextFull, got {other:?}"),
    }
    let e = h.att.advance(1000).unwrap_err();
    eprintln!("advance: {e}");
    assert!(matches!(e, GpuError::ContextFull { .. }));
    // Bad shapes.
    assert!(matches!(
        h.att.encode(&mut enc, 2, &StepParams::batch(64, 1, 0)),
        Err(GpuError::Shape { .. })
    ));
    assert!(matches!(
        h.att.encode(&mut enc, 0, &StepParams::batch(0, 65, 0)),
        Err(GpuError::Shape { .. })
    ));
    drop(enc);
    drop(encoder);
    // Fill exactly to max_len.
    h.batch(64);
    h.batch(64);
    h.batch(64);
    h.batch(44);
    assert_eq!(h.att.len(), 300);
    match h.att.attention_host(
        &ctx,
        0,
        300,
        &vec![0.0; 4 * 64],
        &vec![0.0; 2 * 64],
        &vec![0.0; 2 * 64],
    ) {
        Err(GpuError::ContextFull { len: 301, max: 300 }) => {}
        other => panic!("expected ContextFull, got {other:?}"),
    }
    for bad in [
        AttentionConfig {
            head_dim: 63,
            ..cfg
        },
        AttentionConfig {
            head_dim: 258,
            ..cfg
        },
        AttentionConfig {
            n_kv_heads: 3,
            ..cfg
        },
        AttentionConfig { max_len: 0, ..cfg },
    ] {
        let e = bad.validate().unwrap_err();
        eprintln!("{bad:?}: {e}");
    }
}

/// Bytes per token of a 7B-shaped cache (32 layers, 32 KV heads, head_dim
/// 128), per format.
#[test]
fn bytes_per_token_7b() {
    for format in KvFormat::ALL {
        let cfg = AttentionConfig {
            n_layers: 32,
            n_heads: 32,
            n_kv_heads: 32,
            head_dim: 128,
            max_len: 16384,
            max_tokens: 512,
            format,
        };
        let b = cfg.bytes_per_token();
        eprintln!(
            "7B {format:?}: {b} bytes per token, {:.1} MiB per 256-position chunk, {:.2} GiB at 16384",
            (b * KV_CHUNK as u64) as f64 / (1 << 20) as f64,
            (b * 16384) as f64 / (1u64 << 30) as f64
        );
        let want = match format {
            KvFormat::F16 => 32 * 2 * 32 * 128 * 2,
            KvFormat::Q8 => 32 * 2 * 32 * (128 + 4),
        };
        assert_eq!(b, want);
    }
}
