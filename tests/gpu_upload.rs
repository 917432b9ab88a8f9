//! Streaming matrix uploads (`gpu::upload::MatrixUpload`) on lavapipe:
//!
//! - pushed in random pieces (1 byte to several rows), every format's streams
//!   read back equal, word for word, both the one-shot upload and an
//!   independent `repack` of each part's rows, and matvec outputs are equal
//!   bit for bit; odd shapes where rows are not whole words (F16 with odd
//!   columns, Q8_0 / Q4_0 / Q6_K with odd blocks per row), matrices split into
//!   several parts, and formats widened to F16 (Q5_0, Q4_1, Q5_K, BF16);
//! - missing, extra and out-of-order bytes are typed errors;
//! - a fixture model loaded through the reader's piece mode in random chunks
//!   gives the same weights (bit for bit) and logits as whole-tensor uploads.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use codellama_webgpu::cpu::{CpuDecoder, CpuWeights};
use codellama_webgpu::gguf::{Event, GgufFile, GgufReader, ReaderOptions, TensorInfo};
use codellama_webgpu::gpu::decoder::{DecoderOptions, GpuDecoder};
use codellama_webgpu::gpu::qmatmul::GpuMatrix;
use codellama_webgpu::gpu::repack::{repack, Repacked};
use codellama_webgpu::gpu::upload::{MatrixUpload, UploadOptions};
use codellama_webgpu::gpu::weights::{GpuWeights, WeightLoader};
use codellama_webgpu::gpu::{GpuContext, GpuError, GpuOptions};
use codellama_webgpu::{Error, GgmlType};

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
    /// Uniform in `1..=max`.
    fn size(&mut self, max: usize) -> usize {
        1 + (self.next() % max as u64) as usize
    }
}

fn context() -> GpuContext {
    GpuContext::new(&GpuOptions::default())
        .unwrap_or_else(|e| panic!("these tests need a wgpu adapter (lavapipe in CI): {e}"))
}

/// A random `(rows, cols)` tensor of type `ty` in file bytes: random quants,
/// small finite scales (the f16 fields of each block), floats in [-1, 1).
fn random_tensor(ty: GgmlType, rows: usize, cols: usize, rng: &mut Rng) -> (TensorInfo, Vec<u8>) {
    let n_blocks = rows * cols / ty.block_elems();
    let mut bytes = Vec::with_capacity(n_blocks * ty.block_bytes());
    let half = |v: f32| half::f16::from_f32(v).to_le_bytes();
    for _ in 0..n_blocks {
        let mut block: Vec<u8> = (0..ty.block_bytes()).map(|_| rng.next() as u8).collect();
        let n = block.len();
        match ty {
            GgmlType::F32 => block.copy_from_slice(&rng.unit().to_le_bytes()),
            GgmlType::F16 => block.copy_from_slice(&half(rng.unit())),
            GgmlType::BF16 => block.copy_from_slice(&rng.unit().to_bits().to_le_bytes()[2..]),
            GgmlType::Q8_0 | GgmlType::Q4_0 | GgmlType::Q5_0 => {
                block[..2].copy_from_slice(&half(rng.unit() / 64.0))
            }
            GgmlType::Q4_1 | GgmlType::Q5_1 | GgmlType::Q4K | GgmlType::Q5K => {
                block[..2].copy_from_slice(&half(rng.unit() / 256.0));
                block[2..4].copy_from_slice(&half(rng.unit() / 256.0));
            }
            GgmlType::Q6K => block[n - 2..].copy_from_slice(&half(rng.unit() / 1024.0)),
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

/// Splits `len` bytes into random piece sizes of 1..=`max` bytes.
fn pieces(len: usize, max: usize, rng: &mut Rng) -> Vec<usize> {
    let mut out = Vec::new();
    let mut left = len;
    while left > 0 {
        let n = rng.size(max).min(left);
        out.push(n);
        left -= n;
    }
    out
}

fn upload_in_pieces(
    ctx: &GpuContext,
    info: &TensorInfo,
    bytes: &[u8],
    sizes: &[usize],
    opts: UploadOptions,
) -> GpuMatrix {
    let mut up = ctx
        .block_on(MatrixUpload::begin_with(ctx, info, opts))
        .unwrap_or_else(|e| panic!("{}: begin: {e}", info.name));
    let mut at = 0;
    for &n in sizes {
        up.push(ctx, &bytes[at..at + n])
            .unwrap_or_else(|e| panic!("{}: push at {at}: {e}", info.name));
        at += n;
        // Never more than one row group (two rows) of the source held.
        let src_row = bytes.len() / (info.n_elements() / info.dims[0]) as usize;
        assert!(
            up.bytes_received() - (up.rows_written() * src_row) as u64 <= 2 * src_row as u64,
            "{}: {} bytes received, {} rows written",
            info.name,
            up.bytes_received(),
            up.rows_written()
        );
    }
    up.finish(ctx)
        .unwrap_or_else(|e| panic!("{}: finish: {e}", info.name))
}

/// What a one-shot `repack` of each part's rows gives (widened formats: of
/// their values rounded to F16).
fn reference(info: &TensorInfo, bytes: &[u8], parts: &[Repacked]) -> Vec<Repacked> {
    let cols = info.dims[0] as usize;
    let rows = parts.iter().map(|p| p.rows).sum::<usize>();
    let row_bytes = bytes.len() / rows;
    let mut out = Vec::new();
    let mut row = 0;
    for p in parts {
        let src = &bytes[row * row_bytes..(row + p.rows) * row_bytes];
        let packed = if p.ty == info.ty {
            repack(info.ty, p.rows, cols, src)
        } else {
            let values = codellama_webgpu::quant::dequantize_to_vec(info.ty, src, p.rows * cols)
                .expect("dequantize");
            let halves: Vec<u8> = values
                .iter()
                .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
                .collect();
            repack(GgmlType::F16, p.rows, cols, &halves)
        };
        out.push(packed.expect("repack"));
        row += p.rows;
    }
    out
}

/// Streams `ty (rows, cols)` in random pieces (several splits) and checks it
/// against the one-shot upload and the reference repack.
fn check(ctx: &GpuContext, ty: GgmlType, rows: usize, cols: usize, part_rows: Option<usize>) {
    let mut rng = Rng(0x9e37_79b9 ^ (rows * 7919 + cols) as u64 ^ (ty as u64) << 40);
    let (info, bytes) = random_tensor(ty, rows, cols, &mut rng);
    let widen = codellama_webgpu::gpu::qmatmul::QFormat::of(ty).is_none();
    // Parts of `part_rows` rows: the limit applies to the larger stream,
    // `quants` (plus up to 4 bytes of rounding to words).
    let part_bytes = part_rows.map(|n| {
        let gpu_ty = if widen { GgmlType::F16 } else { ty };
        let q_row = match gpu_ty {
            GgmlType::F32 => 4 * cols,
            GgmlType::F16 => 2 * cols,
            GgmlType::Q8_0 => cols,
            GgmlType::Q4_0 => cols / 2,
            GgmlType::Q4K => cols / 2,
            GgmlType::Q6K => cols / 256 * 208,
            t => unreachable!("{t:?} has no kernel"),
        };
        (n * q_row + 4) as u64
    });
    let opts = UploadOptions { part_bytes, widen };
    let whole = upload_in_pieces(ctx, &info, &bytes, &[bytes.len()], opts.clone());
    let want = whole.read_back_streams(ctx).expect("read back");
    if let Some(n) = part_rows {
        assert_eq!(whole.parts(), rows.div_ceil(n), "{}: parts", info.name);
    }
    let reference = reference(&info, &bytes, &want);
    assert!(
        want == reference,
        "{}: the one-shot upload differs from repack",
        info.name
    );
    let x: Vec<f32> = (0..cols).map(|_| rng.unit()).collect();
    let y_whole = whole.matvec_host(ctx, &x).expect("matvec");
    let row_bytes = bytes.len() / rows;
    for max in [1, 7, row_bytes / 3 + 1, row_bytes + 5, 3 * row_bytes + 1] {
        let sizes = pieces(bytes.len(), max, &mut rng);
        let m = upload_in_pieces(ctx, &info, &bytes, &sizes, opts.clone());
        assert_eq!((m.rows(), m.cols(), m.parts()), (rows, cols, whole.parts()));
        assert_eq!(m.format(), whole.format());
        let got = m.read_back_streams(ctx).expect("read back");
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            let first = |a: &[u32], b: &[u32]| a.iter().zip(b).position(|(x, y)| x != y);
            assert!(
                g == w,
                "{}: pieces of <= {max} bytes: part {i} differs (quants word {:?}, scales word {:?})",
                info.name,
                first(&g.quants, &w.quants),
                first(&g.scales, &w.scales)
            );
        }
        let y = m.matvec_host(ctx, &x).expect("matvec");
        assert!(
            y.iter()
                .zip(&y_whole)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "{}: matvec differs",
            info.name
        );
    }
    eprintln!(
        "{ty:?} ({rows}, {cols}) as {:?} in {} part(s): {} words, pieces of 1 byte to 3 rows equal",
        whole.format(),
        whole.parts(),
        want.iter()
            .map(|p| p.quants.len() + p.scales.len())
            .sum::<usize>()
    );
}

#[test]
fn pieces_equal_the_one_shot_upload_for_every_format() {
    let ctx = context();
    check(&ctx, GgmlType::F32, 7, 45, None);
    check(&ctx, GgmlType::F16, 9, 33, None); // odd cols: groups of 2 rows
    check(&ctx, GgmlType::F16, 6, 40, None);
    check(&ctx, GgmlType::Q8_0, 11, 96, None); // 3 blocks per row
    check(&ctx, GgmlType::Q4_0, 13, 160, None); // 5 blocks per row
    check(&ctx, GgmlType::Q4_0, 4, 64, None);
    check(&ctx, GgmlType::Q4K, 7, 512, None);
    check(&ctx, GgmlType::Q6K, 9, 256, None); // 1 block per row
    check(&ctx, GgmlType::Q6K, 5, 512, None);
}

#[test]
fn formats_without_a_kernel_are_widened_in_pieces() {
    let ctx = context();
    check(&ctx, GgmlType::Q5_0, 9, 96, None);
    check(&ctx, GgmlType::Q4_1, 5, 64, None);
    check(&ctx, GgmlType::Q5_1, 3, 32, None);
    check(&ctx, GgmlType::Q5K, 5, 256, None);
    check(&ctx, GgmlType::BF16, 7, 33, None); // F16 with odd cols
}

#[test]
fn matrices_split_into_parts_stream_into_each_part() {
    let ctx = context();
    // Parts of an odd number of rows: each part's last group is short.
    check(&ctx, GgmlType::Q4_0, 103, 96, Some(7));
    check(&ctx, GgmlType::F16, 31, 33, Some(5));
    check(&ctx, GgmlType::Q6K, 20, 256, Some(3));
    check(&ctx, GgmlType::Q4K, 9, 256, Some(4));
    check(&ctx, GgmlType::Q5_0, 17, 96, Some(5));
}

#[test]
fn missing_extra_and_misplaced_bytes_are_typed_errors() {
    let ctx = context();
    let mut rng = Rng(11);
    let (info, bytes) = random_tensor(GgmlType::Q4_0, 3, 96, &mut rng);
    let n = bytes.len() as u64;
    let begin = || ctx.block_on(MatrixUpload::begin(&ctx, &info)).unwrap();

    // Missing bytes: finish says how many came.
    let mut up = begin();
    up.push(&ctx, &bytes[..100]).unwrap();
    match up.finish(&ctx) {
        Err(GpuError::UploadLength { expected, got, .. }) => assert_eq!((expected, got), (n, 100)),
        other => panic!("expected UploadLength, got {other:?}"),
    }
    // Extra bytes: the push that overflows is refused, the upload goes on.
    let mut up = begin();
    up.push(&ctx, &bytes[..100]).unwrap();
    let mut long = bytes[100..].to_vec();
    long.push(0);
    match up.push(&ctx, &long) {
        Err(GpuError::UploadLength { expected, got, .. }) => {
            assert_eq!((expected, got), (n, n + 1))
        }
        other => panic!("expected UploadLength, got {other:?}"),
    }
    up.push(&ctx, &bytes[100..]).unwrap();
    up.finish(&ctx).expect("complete after the refused push");
    // A format without a kernel, unless widening.
    let (q41, q41_bytes) = random_tensor(GgmlType::Q4_1, 2, 32, &mut rng);
    let e = ctx.block_on(MatrixUpload::begin(&ctx, &q41)).unwrap_err();
    assert!(matches!(e, GpuError::Shape { .. }), "{e}");
    // Dims that disagree with n_bytes.
    let bad = TensorInfo {
        n_bytes: n - 18,
        ..info.clone()
    };
    let e = ctx.block_on(MatrixUpload::begin(&ctx, &bad)).unwrap_err();
    assert!(matches!(e, GpuError::Shape { .. }), "{e}");

    // Through the weight loader: pieces out of order, a tensor left
    // incomplete, a whole tensor of the wrong size.
    let model = fixture_models()[0].clone();
    let header = GgufFile::open(&model).unwrap().header;
    let named = |name: &str, src: &TensorInfo| TensorInfo {
        name: name.into(),
        ..src.clone()
    };
    let wq = named("blk.0.attn_q.weight", &info);
    let wk = named("blk.0.attn_k.weight", &q41);
    let mut loader = WeightLoader::new(&header).unwrap();
    let e = ctx
        .block_on(loader.add_piece(&ctx, &wq, 18, &bytes[18..36]))
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::Gpu(GpuError::UploadOrder {
                expected: 0,
                offset: 18,
                ..
            })
        ),
        "{e}"
    );
    ctx.block_on(loader.add_piece(&ctx, &wq, 0, &bytes[..36]))
        .unwrap();
    assert_eq!(loader.in_flight(), Some("blk.0.attn_q.weight"));
    let e = ctx
        .block_on(loader.add_piece(&ctx, &wq, 72, &bytes[72..90]))
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::Gpu(GpuError::UploadOrder {
                expected: 36,
                offset: 72,
                ..
            })
        ),
        "{e}"
    );
    let e = ctx
        .block_on(loader.add_piece(&ctx, &wk, 0, &q41_bytes))
        .unwrap_err();
    assert!(
        matches!(e, Error::Gpu(GpuError::UploadLength { ref tensor, got: 36, .. }) if tensor == "blk.0.attn_q.weight"),
        "{e}"
    );
    let e = ctx
        .block_on(loader.add(&ctx, &wk, &q41_bytes[1..]))
        .unwrap_err();
    assert!(
        matches!(e, Error::Gpu(GpuError::UploadLength { .. })),
        "{e}"
    );
    // Q4_1 is widened by the loader, with a note.
    ctx.block_on(loader.add(&ctx, &wk, &q41_bytes)).unwrap();
    // Incomplete at the end.
    ctx.block_on(loader.add_piece(&ctx, &wq, 0, &bytes[..5]))
        .unwrap();
    match loader.finish() {
        Err(Error::Gpu(GpuError::UploadLength { got: 5, .. })) => {}
        Err(e) => panic!("expected UploadLength, got {e}"),
        Ok(_) => panic!("incomplete weights accepted"),
    }
}

fn fixture_models() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/models");
    ["tiny-cov-v512-q5_k_m", "tiny-cov-v512-q4_0"]
        .iter()
        .map(|n| dir.join(format!("{n}.gguf")))
        .collect()
}

/// Loads `path` through a piece-mode reader fed in random chunks of
/// 1..=`max` bytes.
fn load_in_chunks(ctx: &GpuContext, path: &Path, max: usize, seed: u64) -> GpuWeights {
    let bytes = std::fs::read(path).unwrap();
    let mut reader = GgufReader::new(ReaderOptions {
        total_len: Some(bytes.len() as u64),
        pieces: true,
        ..Default::default()
    });
    let mut loader: Option<WeightLoader> = None;
    let mut rng = Rng(seed);
    let mut at = 0;
    let mut n_pieces = 0;
    while at < bytes.len() {
        let n = rng.size(max).min(bytes.len() - at);
        reader
            .feed(&bytes[at..at + n], |ev| -> Result<(), Error> {
                match ev {
                    Event::Header(h) => loader = Some(WeightLoader::new(h)?),
                    Event::TensorPiece(p) => {
                        n_pieces += 1;
                        let l = loader.as_mut().unwrap();
                        ctx.block_on(l.add_piece(ctx, p.info, p.offset, p.bytes))?;
                    }
                    Event::Tensor(_) => panic!("a whole tensor in piece mode"),
                }
                Ok(())
            })
            .expect("feed");
        // The reader never holds tensor bytes in piece mode.
        assert!(reader.buffered_capacity() <= 1 << 10);
        at += n;
    }
    reader.finish().expect("complete");
    eprintln!(
        "{}: {n_pieces} pieces in chunks of <= {max} bytes",
        path.display()
    );
    loader.unwrap().finish().expect("weights")
}

/// Loads `path` one whole tensor at a time (`WeightLoader::add`).
fn load_whole(ctx: &GpuContext, path: &Path) -> GpuWeights {
    let file = GgufFile::open(path).unwrap();
    let mut loader = WeightLoader::new(&file.header).unwrap();
    for (info, bytes) in file.header.tensors.iter().zip(&file.data) {
        ctx.block_on(loader.add(ctx, info, bytes)).unwrap();
    }
    loader.finish().unwrap()
}

fn matrices(w: &GpuWeights) -> Vec<&GpuMatrix> {
    let mut out = vec![&w.token_embd, w.output()];
    for l in &w.layers {
        out.extend(l.qkv.matrices());
        out.extend(l.gate_up.matrices());
        out.extend([&l.wo, &l.w2]);
    }
    out
}

fn last_logits(ctx: &Arc<GpuContext>, w: GpuWeights, tokens: &[u32]) -> Vec<f32> {
    let opts = DecoderOptions {
        max_len: 64,
        prefill_chunk: 8,
        ..Default::default()
    };
    let mut dec = ctx
        .block_on(GpuDecoder::new(Arc::clone(ctx), w, opts))
        .expect("decoder");
    ctx.block_on(dec.feed(tokens)).expect("feed");
    ctx.block_on(dec.logits()).expect("logits")
}

#[test]
fn a_model_loaded_in_pieces_gives_the_same_weights_and_logits() {
    let ctx = Arc::new(context());
    for path in fixture_models() {
        let whole = load_whole(&ctx, &path);
        let native = GpuWeights::load(&ctx, &path, |_| {}).expect("load");
        let chunked = load_in_chunks(&ctx, &path, 5000, 7);
        assert_eq!(whole.notes, chunked.notes);
        assert_eq!(whole.notes, native.notes);
        assert_eq!(whole.gpu_bytes, chunked.gpu_bytes);
        for (a, b) in matrices(&whole).into_iter().zip(matrices(&chunked)) {
            assert_eq!(a.name(), b.name());
            let (sa, sb) = (a.read_back_streams(&ctx), b.read_back_streams(&ctx));
            assert!(sa.unwrap() == sb.unwrap(), "{}: streams differ", a.name());
        }
        let cpu = CpuWeights::load(&path).unwrap();
        let vocab = cpu.config.vocab_size as u64;
        let tokens: Vec<u32> = std::iter::once(1)
            .chain((1..12u64).map(|i| (3 + (i * 7919) % (vocab - 3)) as u32))
            .collect();
        let want = CpuDecoder::new(&cpu, tokens.len())
            .logits_for(&tokens)
            .expect("CPU logits");
        let want = want.last().unwrap();
        let a = last_logits(&ctx, whole, &tokens);
        let b = last_logits(&ctx, native, &tokens);
        let c = last_logits(&ctx, chunked, &tokens);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&a), bits(&b), "{}: GpuWeights::load", path.display());
        assert_eq!(bits(&a), bits(&c), "{}: random chunks", path.display());
        let dot: f64 = a.iter().zip(want).map(|(x, y)| *x as f64 * *y as f64).sum();
        let norm = |v: &[f32]| v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
        let cos = dot / (norm(&a) * norm(want));
        eprintln!(
            "{}: logits identical (whole, pieces, random chunks); cosine to the CPU {cos:.7}",
            path.display()
        );
        assert!(cos > 0.9999, "cosine {cos}");
    }
}
