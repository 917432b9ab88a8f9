//! The streaming GGUF reader: round trips, arbitrary chunking (whole tensors
//! and piece mode), and a corpus of malformed and hostile files, each with its
//! specific typed error.

use codellama_webgpu::gguf::{
    read_bytes, string_array, Event, GgufError, GgufReader, GgufWriter, Header, PutLe,
    ReaderOptions, Value, ValueType,
};
use codellama_webgpu::GgmlType;

fn every_value_kind() -> GgufWriter {
    let mut w = GgufWriter::new();
    w.kv("general.architecture", Value::String("llama".into()))
        .kv("u8", Value::U8(200))
        .kv("i8", Value::I8(-5))
        .kv("u16", Value::U16(65000))
        .kv("i16", Value::I16(-30000))
        .kv("u32", Value::U32(4_000_000_000))
        .kv("i32", Value::I32(-2_000_000_000))
        .kv("f32", Value::F32(1.5))
        .kv("bool", Value::Bool(true))
        .kv("u64", Value::U64(u64::MAX))
        .kv("i64", Value::I64(i64::MIN))
        .kv("f64", Value::F64(-0.25))
        .kv("strings", string_array(&["a", "", "▁<PRE>", "日本"]))
        .kv(
            "nested",
            Value::Array(
                ValueType::Array,
                vec![
                    Value::Array(ValueType::I32, vec![Value::I32(1), Value::I32(2)]),
                    Value::Array(ValueType::I32, vec![]),
                    Value::Array(ValueType::String, vec![Value::String("x".into())]),
                ],
            ),
        )
        .kv("empty", Value::Array(ValueType::F32, vec![]));
    let q: Vec<u8> = (0..36u32).map(|i| (i * 7) as u8).collect();
    w.tensor("a", &[64], GgmlType::Q4_0, q);
    w.tensor_f32("b", &[3, 2], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    w.tensor("c", &[256], GgmlType::Q6K, vec![9u8; 210]);
    w
}

/// Tensors by name, and the most bytes the reader buffered at once.
type Fed = (Vec<(String, Vec<u8>)>, usize);

/// Feeds `bytes` in chunks of the given sizes (cycled), collecting tensors.
fn feed_chunked(bytes: &[u8], sizes: &[usize], opts: ReaderOptions) -> Result<Fed, GgufError> {
    let mut r = GgufReader::new(opts);
    let mut out = Vec::new();
    let mut headers = 0;
    let mut max_cap = 0;
    let mut pos = 0;
    let mut i = 0;
    while pos < bytes.len() {
        let n = sizes[i % sizes.len()].min(bytes.len() - pos);
        i += 1;
        r.feed(&bytes[pos..pos + n], |ev| {
            match ev {
                Event::Header(_) => headers += 1,
                Event::Tensor(t) => out.push((t.info.name.clone(), t.bytes.to_vec())),
                Event::TensorPiece(p) => panic!("a piece in whole mode: {p:?}"),
            }
            Ok::<(), GgufError>(())
        })?;
        max_cap = max_cap.max(r.buffered_capacity());
        pos += n;
    }
    r.finish()?;
    assert_eq!(headers, 1);
    Ok((out, max_cap))
}

#[test]
fn round_trip_every_value_type() {
    let w = every_value_kind();
    let bytes = w.to_bytes();
    let f = read_bytes(&bytes).unwrap();
    assert_eq!(f.header.version, 3);
    for (k, v) in w.metadata.iter() {
        assert_eq!(f.header.metadata.get(k), Some(v), "key {k}");
    }
    assert_eq!(f.header.tensors.len(), 3);
    assert_eq!(f.header.tensors[1].dims, vec![3, 2]);
    assert_eq!(f.header.tensors[2].ty, GgmlType::Q6K);
    for (t, data) in w.tensors.iter().zip(&f.data) {
        assert_eq!(&t.bytes, data, "tensor {}", t.name);
    }
}

#[test]
fn any_chunking_gives_the_same_result_with_bounded_buffering() {
    let w = every_value_kind();
    let bytes = w.to_bytes();
    let whole = read_bytes(&bytes).unwrap();
    let biggest_item = 256; // the largest tensor (210 B) or header string
    for sizes in [
        &[1usize][..],
        &[2],
        &[3, 5, 7],
        &[17],
        &[4096],
        &[1, 1000, 2],
    ] {
        for total in [None, Some(bytes.len() as u64)] {
            let opts = ReaderOptions {
                total_len: total,
                ..Default::default()
            };
            let (tensors, max_cap) = feed_chunked(&bytes, sizes, opts).unwrap();
            assert_eq!(tensors.len(), 3);
            for ((name, data), (info, expect)) in tensors
                .iter()
                .zip(whole.header.tensors.iter().zip(&whole.data))
            {
                assert_eq!(name, &info.name);
                assert_eq!(data, expect);
            }
            assert!(
                max_cap <= 2 * biggest_item,
                "chunks {sizes:?}: buffered {max_cap} bytes"
            );
        }
    }
}

/// A header that claims a huge tensor and then trickles in a few bytes at a time (the length
/// of the file untold, as over a stream): the buffer grows with the bytes that arrived, not by
/// doubling on every chunk (found by the `gguf_reader` fuzz target: 4 GB reserved for a
/// 2 KB input).
#[test]
fn a_claimed_huge_tensor_buffers_only_what_arrived() {
    let mut w = GgufWriter::new();
    w.tensor("huge", &[1 << 34], GgmlType::F32, Vec::new());
    let (header, _) = w.header_bytes_with_sizes(&[4 << 34]);
    let mut r = GgufReader::new(ReaderOptions::default());
    let ignore = |_: Event<'_>| Ok::<(), GgufError>(());
    r.feed(&header, ignore).unwrap();
    let chunk = [7u8; 7];
    for n in 1..=2000 {
        r.feed(&chunk, ignore).unwrap();
        let cap = r.buffered_capacity();
        assert!(
            cap <= 2 * 7 * n,
            "after {} bytes the reader holds {cap}",
            7 * n
        );
    }
    assert!(r.finish().is_err(), "the tensor never arrived whole");
}

/// `every_value_kind` plus tensors of a few KiB, so chunks split them.
fn larger_tensors() -> GgufWriter {
    let mut w = every_value_kind();
    let v: Vec<f32> = (0..1000).map(|i| i as f32 * 0.5 - 7.0).collect();
    w.tensor_f32("d", &[250, 4], &v);
    let q: Vec<u8> = (0..34 * 40u32).map(|i| (i * 13 + 5) as u8).collect();
    w.tensor("e", &[32, 40], GgmlType::Q8_0, q);
    w.tensor_f32("f", &[1], &[42.0]);
    w
}

/// What piece mode handed out: the header, each tensor reassembled from its
/// pieces (in order), the number of pieces, and the most bytes buffered.
struct Pieces {
    header: Header,
    tensors: Vec<(String, Vec<u8>)>,
    n_pieces: usize,
    max_cap: usize,
}

/// Feeds `bytes` in piece mode in chunks of the given sizes (cycled),
/// checking every piece against the module's invariants on the way.
fn feed_pieces(bytes: &[u8], sizes: &[usize], total: Option<u64>) -> Result<Pieces, GgufError> {
    let mut r = GgufReader::new(ReaderOptions {
        total_len: total,
        pieces: true,
        ..Default::default()
    });
    let mut header = None;
    let mut tensors: Vec<(String, Vec<u8>)> = Vec::new();
    let mut n_pieces = 0;
    let mut max_cap = 0;
    let (mut pos, mut i) = (0, 0);
    while pos < bytes.len() {
        let n = sizes[i % sizes.len()].min(bytes.len() - pos);
        let chunk = &bytes[pos..pos + n];
        i += 1;
        r.feed(chunk, |ev| {
            match ev {
                Event::Header(h) => {
                    assert!(header.is_none(), "two headers");
                    header = Some(h.clone());
                }
                Event::Tensor(t) => panic!("a whole tensor in piece mode: {}", t.info.name),
                Event::TensorPiece(p) => {
                    let h = header.as_ref().expect("pieces after the header");
                    assert!(!p.bytes.is_empty(), "an empty piece");
                    // A slice of the chunk, not a copy.
                    let range = chunk.as_ptr_range();
                    assert!(range.contains(&p.bytes.as_ptr()));
                    assert_eq!(p.info, &h.tensors[p.index]);
                    if p.is_first() {
                        if let Some((name, data)) = tensors.last() {
                            let prev = &h.tensors[tensors.len() - 1];
                            assert_eq!(name, &prev.name);
                            assert_eq!(data.len() as u64, prev.n_bytes, "{name} incomplete");
                        }
                        assert_eq!(p.index, tensors.len(), "tensors in order");
                        tensors.push((p.info.name.clone(), Vec::new()));
                    }
                    assert_eq!(p.index + 1, tensors.len(), "pieces of one tensor together");
                    let data = &mut tensors.last_mut().unwrap().1;
                    assert_eq!(p.offset, data.len() as u64, "contiguous pieces");
                    data.extend_from_slice(p.bytes);
                    assert!(data.len() as u64 <= p.info.n_bytes);
                    assert_eq!(p.is_last(), data.len() as u64 == p.info.n_bytes);
                    n_pieces += 1;
                }
            }
            Ok::<(), GgufError>(())
        })?;
        max_cap = max_cap.max(r.buffered_capacity());
        pos += n;
    }
    let end = r.finish()?.clone();
    let header = header.expect("a header");
    assert_eq!(end, header);
    Ok(Pieces {
        header,
        tensors,
        n_pieces,
        max_cap,
    })
}

/// xorshift64*: reproducible random chunk sizes.
fn random_sizes(seed: u64, n: usize, max: u64) -> Vec<usize> {
    let mut x = seed;
    (0..n)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            1 + (x.wrapping_mul(0x2545_f491_4f6c_dd1d) % max) as usize
        })
        .collect()
}

#[test]
fn piece_mode_reassembles_every_tensor_for_any_chunking() {
    let w = larger_tensors();
    let bytes = w.to_bytes();
    let whole = read_bytes(&bytes).unwrap();
    assert_eq!(whole.data.len(), 6);
    let mut chunkings: Vec<Vec<usize>> = vec![
        vec![1],
        vec![2],
        vec![3, 5, 7],
        vec![17],
        vec![4096],
        vec![1, 1000, 2],
        vec![bytes.len()],
    ];
    for seed in 1..=8 {
        chunkings.push(random_sizes(seed, 64, 1 << seed));
        chunkings.push(random_sizes(seed * 7919, 64, 3000));
    }
    for sizes in &chunkings {
        for total in [None, Some(bytes.len() as u64)] {
            let got = feed_pieces(&bytes, sizes, total).unwrap();
            assert_eq!(got.header, whole.header, "chunks {sizes:?}: header");
            assert_eq!(got.tensors.len(), whole.data.len());
            for ((name, data), (info, expect)) in got
                .tensors
                .iter()
                .zip(whole.header.tensors.iter().zip(&whole.data))
            {
                assert_eq!(name, &info.name);
                assert!(data == expect, "chunks {sizes:?}: tensor {name} differs");
            }
            // Only header items are ever buffered.
            assert!(got.max_cap <= 256, "chunks {sizes:?}: {}", got.max_cap);
            if sizes == &[bytes.len()] {
                assert_eq!(got.n_pieces, 6, "one piece per tensor from one chunk");
            }
            if sizes == &[1] {
                let data: usize = whole.data.iter().map(Vec::len).sum();
                assert_eq!(got.n_pieces, data, "one piece per byte");
            }
        }
    }
}

#[test]
fn piece_mode_reports_truncation_and_consumer_errors() {
    let bytes = larger_tensors().to_bytes();
    let data_offset = read_bytes(&bytes).unwrap().header.data_offset as usize;
    let last_end = read_bytes(&bytes).unwrap().header.min_file_len() as usize;
    for cut in (0..bytes.len())
        .step_by(7)
        .chain([last_end - 1, data_offset])
    {
        let part = &bytes[..cut];
        for sizes in [&[1usize][..], &[3], &[1000]] {
            match feed_pieces(part, sizes, None) {
                Err(GgufError::Truncated { offset, .. }) => assert_eq!(offset, cut as u64),
                Err(e) => panic!("cut at {cut}: {e}"),
                Ok(_) => panic!("cut at {cut} accepted"),
            }
        }
        assert!(feed_pieces(part, &[64], Some(cut as u64)).is_err());
    }
    // The whole file, and trailing bytes after the last tensor, are fine.
    let mut padded = bytes.clone();
    padded.extend_from_slice(&[0; 40]);
    assert_eq!(feed_pieces(&padded, &[5], None).unwrap().tensors.len(), 6);

    // An error from the consumer stops the reader.
    let mut r = GgufReader::new(ReaderOptions {
        pieces: true,
        ..Default::default()
    });
    let res = r.feed(&bytes, |ev| match ev {
        Event::TensorPiece(p) if p.index == 3 => Err(GgufError::ConsumerFailed),
        _ => Ok(()),
    });
    assert_eq!(res, Err(GgufError::ConsumerFailed));
    assert!(matches!(r.finish(), Err(GgufError::Poisoned(_))));
}

#[test]
fn version_2_and_custom_alignment() {
    let mut w = every_value_kind();
    w.kv("general.alignment", Value::U32(64));
    let mut bytes = w.to_bytes();
    bytes[4..8].copy_from_slice(&2u32.to_le_bytes());
    let f = read_bytes(&bytes).unwrap();
    assert_eq!(f.header.version, 2);
    assert_eq!(f.header.alignment, 64);
    assert_eq!(f.header.data_offset % 64, 0);
    assert_eq!(f.data[1], w.tensors[1].bytes);
}

#[test]
fn truncation_at_every_byte_is_an_error() {
    let bytes = every_value_kind().to_bytes();
    for cut in 0..bytes.len() {
        let part = &bytes[..cut];
        // The size is known (a File) ...
        let known = read_bytes(part);
        assert!(known.is_err(), "cut at {cut} accepted");
        // ... or unknown (a stream without Content-Length), fed in small chunks.
        let unknown = feed_chunked(part, &[3], ReaderOptions::default());
        match unknown {
            Err(_) => {}
            Ok(_) if cut == 0 => panic!("empty input accepted"),
            Ok(_) => panic!("cut at {cut} accepted without a size"),
        }
    }
}

// ---- the malformed corpus -------------------------------------------------

/// Raw header builder for crafting invalid files.
struct Raw(Vec<u8>);

impl Raw {
    fn new(version: u32, n_tensors: u64, n_kv: u64) -> Raw {
        let mut v = b"GGUF".to_vec();
        v.put_u32(version);
        v.put_u64(n_tensors);
        v.put_u64(n_kv);
        Raw(v)
    }
    fn kv(mut self, key: &str, v: Value) -> Raw {
        self.0.put_str(key);
        self.0.put_u32(v.value_type() as u32);
        self.0.put_value(&v);
        self
    }
    fn info(mut self, name: &str, dims: &[u64], ty: u32, offset: u64) -> Raw {
        self.0.put_str(name);
        self.0.put_u32(dims.len() as u32);
        for d in dims {
            self.0.put_u64(*d);
        }
        self.0.put_u32(ty);
        self.0.put_u64(offset);
        self
    }
    /// Pads to 32 and appends `data_len` bytes of data.
    fn data(mut self, data_len: usize) -> Vec<u8> {
        let padded = self.0.len().div_ceil(32) * 32;
        self.0.resize(padded + data_len, 0x11);
        self.0
    }
}

fn err(bytes: &[u8]) -> GgufError {
    read_bytes(bytes).expect_err("malformed file accepted")
}

#[test]
fn bad_magic() {
    let mut b = Raw::new(3, 0, 0).data(0);
    b[0..4].copy_from_slice(b"GGML");
    assert_eq!(err(&b), GgufError::BadMagic(*b"GGML"));
}

#[test]
fn unsupported_versions() {
    assert_eq!(
        err(&Raw::new(1, 0, 0).data(0)),
        GgufError::UnsupportedVersion(1)
    );
    assert_eq!(
        err(&Raw::new(4, 0, 0).data(0)),
        GgufError::UnsupportedVersion(4)
    );
}

#[test]
fn counts_larger_than_the_input() {
    assert!(matches!(
        err(&Raw::new(3, u64::MAX, 0).data(0)),
        GgufError::CountTooLarge { what: "tensor", .. }
    ));
    assert!(matches!(
        err(&Raw::new(3, 0, 1 << 40).data(0)),
        GgufError::CountTooLarge {
            what: "metadata key/value",
            ..
        }
    ));
    // An array claiming 2^60 u32 elements.
    let mut b = Raw::new(3, 0, 1).0;
    b.put_str("arr");
    b.put_u32(ValueType::Array as u32);
    b.put_u32(ValueType::U32 as u32);
    b.put_u64(1 << 60);
    b.extend_from_slice(&[0; 64]);
    assert!(matches!(
        err(&b),
        GgufError::CountTooLarge { what: "array element", count, .. } if count == 1 << 60
    ));
    // Without a known size the reader never preallocates: the stream just ends.
    let mut r = GgufReader::default();
    r.feed(&b, |_| Ok::<(), GgufError>(())).unwrap();
    assert!(r.buffered_capacity() < 1024);
    assert!(matches!(r.finish(), Err(GgufError::Truncated { .. })));
}

#[test]
fn string_lengths() {
    let mut b = Raw::new(3, 0, 1).0;
    b.put_u64(u64::MAX - 3); // key length
    b.extend_from_slice(&[b'k'; 64]);
    assert!(matches!(err(&b), GgufError::StringTooLong { .. }));
    let mut b = Raw::new(3, 0, 1).0;
    b.put_u64(1000); // longer than the file
    b.extend_from_slice(&[b'k'; 64]);
    assert!(matches!(
        err(&b),
        GgufError::CountTooLarge {
            what: "string byte",
            count: 1000,
            ..
        }
    ));
}

#[test]
fn invalid_utf8_key() {
    let mut b = Raw::new(3, 0, 1).0;
    b.put_u64(2);
    b.extend_from_slice(&[0xff, 0xfe]);
    b.put_u32(ValueType::U8 as u32);
    b.push(1);
    assert!(matches!(err(&b), GgufError::InvalidUtf8 { offset: 32 }));
}

#[test]
fn unknown_value_type() {
    let mut b = Raw::new(3, 0, 1).0;
    b.put_str("k");
    b.put_u32(13);
    b.extend_from_slice(&[0; 8]);
    assert_eq!(
        err(&b),
        GgufError::UnknownValueType {
            key: "k".into(),
            ty: 13
        }
    );
}

#[test]
fn arrays_nested_too_deep() {
    let mut b = Raw::new(3, 0, 1).0;
    b.put_str("deep");
    b.put_u32(ValueType::Array as u32);
    for _ in 0..20 {
        b.put_u32(ValueType::Array as u32);
        b.put_u64(1);
    }
    b.extend_from_slice(&[0; 64]);
    assert_eq!(err(&b), GgufError::NestingTooDeep(8));
}

#[test]
fn duplicate_key() {
    let b = Raw::new(3, 0, 2)
        .kv("a", Value::U8(1))
        .kv("a", Value::U8(2))
        .data(0);
    assert_eq!(err(&b), GgufError::DuplicateKey("a".into()));
}

#[test]
fn bad_alignment() {
    let b = Raw::new(3, 0, 1)
        .kv("general.alignment", Value::U32(48))
        .data(0);
    assert_eq!(err(&b), GgufError::BadAlignment(48));
    let b = Raw::new(3, 0, 1)
        .kv("general.alignment", Value::U32(0))
        .data(0);
    assert_eq!(err(&b), GgufError::BadAlignment(0));
}

#[test]
fn unknown_tensor_type() {
    let b = Raw::new(3, 1, 0).info("t", &[32], 4, 0).data(32);
    assert_eq!(
        err(&b),
        GgufError::UnknownTensorType {
            name: "t".into(),
            ty: 4
        }
    );
}

#[test]
fn dims_that_disagree_with_the_type() {
    let b = Raw::new(3, 1, 0).info("t", &[33, 2], 2, 0).data(64);
    assert!(matches!(
        err(&b),
        GgufError::DimsNotBlockAligned { block: 32, .. }
    ));
    let b = Raw::new(3, 1, 0).info("t", &[255], 14, 0).data(256);
    assert!(matches!(
        err(&b),
        GgufError::DimsNotBlockAligned { block: 256, .. }
    ));
    let b = Raw::new(3, 1, 0).info("t", &[32, 0], 0, 0).data(0);
    assert!(matches!(err(&b), GgufError::BadDims { .. }));
    let b = Raw::new(3, 1, 0)
        .info("t", &[1 << 32, 1 << 32, 1 << 32], 0, 0)
        .data(0);
    assert!(matches!(err(&b), GgufError::BadDims { .. }));
    let b = Raw::new(3, 1, 0).info("t", &[1, 1, 1, 1, 1], 0, 0).data(4);
    assert!(matches!(err(&b), GgufError::BadDimCount { n_dims: 5, .. }));
}

#[test]
fn offsets_out_of_range() {
    // 32 f32 = 128 bytes, but only 64 are in the file.
    let b = Raw::new(3, 1, 0).info("t", &[32], 0, 0).data(64);
    assert!(matches!(
        err(&b),
        GgufError::TensorOutOfRange {
            end: 128,
            data_len: 64,
            ..
        }
    ));
    let b = Raw::new(3, 1, 0).info("t", &[8], 0, u64::MAX - 31).data(64);
    assert!(matches!(err(&b), GgufError::TensorOutOfRange { .. }));
}

#[test]
fn misaligned_offset() {
    let b = Raw::new(3, 2, 0)
        .info("a", &[8], 0, 0)
        .info("b", &[8], 0, 40)
        .data(128);
    assert!(matches!(
        err(&b),
        GgufError::MisalignedOffset {
            offset: 40,
            alignment: 32,
            ..
        }
    ));
}

#[test]
fn overlapping_tensors() {
    let b = Raw::new(3, 2, 0)
        .info("a", &[16], 0, 0) // 64 bytes
        .info("b", &[8], 0, 32)
        .data(128);
    assert!(matches!(
        err(&b),
        GgufError::OverlappingTensors {
            offset: 32,
            prev_end: 64,
            ..
        }
    ));
}

#[test]
fn tensors_out_of_order() {
    let b = Raw::new(3, 2, 0)
        .info("a", &[8], 0, 64)
        .info("b", &[8], 0, 0)
        .data(128);
    assert!(matches!(err(&b), GgufError::TensorsOutOfOrder { .. }));
}

#[test]
fn duplicate_tensor_names() {
    let b = Raw::new(3, 2, 0)
        .info("a", &[8], 0, 0)
        .info("a", &[8], 0, 32)
        .data(64);
    assert_eq!(err(&b), GgufError::DuplicateTensor("a".into()));
}

#[test]
fn header_larger_than_the_limit() {
    let bytes = every_value_kind().to_bytes();
    let opts = ReaderOptions {
        max_header_bytes: 100,
        ..Default::default()
    };
    for sizes in [&[1usize][..], &[1 << 20]] {
        match feed_chunked(&bytes, sizes, opts.clone()) {
            Err(GgufError::HeaderTooLarge { limit: 100 }) => {}
            other => panic!("expected HeaderTooLarge, got {other:?}"),
        }
    }
}

#[test]
fn reader_stays_failed_after_an_error() {
    let mut b = Raw::new(3, 0, 0).data(0);
    b[0] = b'X';
    let mut r = GgufReader::default();
    assert!(r.feed(&b, |_| Ok::<(), GgufError>(())).is_err());
    assert!(matches!(
        r.feed(b"more", |_| Ok::<(), GgufError>(())),
        Err(GgufError::Poisoned(_))
    ));
}

#[test]
fn consumer_errors_stop_the_reader() {
    #[derive(Debug)]
    enum MyErr {
        Gguf,
        Upload,
    }
    impl From<GgufError> for MyErr {
        fn from(_: GgufError) -> Self {
            MyErr::Gguf
        }
    }
    let bytes = every_value_kind().to_bytes();
    let mut r = GgufReader::default();
    let res = r.feed(&bytes, |ev| match ev {
        Event::Tensor(t) if t.index == 1 => Err(MyErr::Upload),
        _ => Ok(()),
    });
    assert!(matches!(res, Err(MyErr::Upload)));
    assert!(matches!(r.finish(), Err(GgufError::Poisoned(_))));
}
