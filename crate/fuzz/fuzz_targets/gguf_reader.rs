//! The GGUF reader on arbitrary bytes, fed whole and in chunks, in whole and piece mode.
//! Beyond "no panic, no hang, no huge allocation", the modes must agree: the same result
//! (header or error kind) however the input is chunked, pieces contiguous and covering each
//! tensor exactly once with the bytes whole mode hands out.
//!
//! Input: byte 0 picks the chunk size (1..=256, or 0 = whole input), byte 1 whether the total
//! length is told to the reader; the rest is the file.
#![no_main]

use codellama_webgpu::gguf::{Event, GgufError, GgufReader, ReaderOptions};
use libfuzzer_sys::fuzz_target;

/// What a run produced: the header (Debug form: NaN-safe) and each tensor's bytes, or the error.
type Outcome = Result<(String, Vec<Vec<u8>>), String>;

/// The error's variant name (where it was found may differ between chunkings).
fn kind(e: &GgufError) -> String {
    let s = format!("{e:?}");
    s.split(['(', ' ', '{']).next().unwrap_or("").to_string()
}

fn run(file: &[u8], chunk: usize, pieces: bool, told: bool) -> Outcome {
    let mut r = GgufReader::new(ReaderOptions {
        total_len: told.then_some(file.len() as u64),
        // Small limits keep the fuzzer's allocations small; the checks are the same.
        max_header_bytes: 1 << 20,
        max_string_bytes: 1 << 16,
        pieces,
        ..Default::default()
    });
    let mut header_seen = false;
    let mut tensors: Vec<Vec<u8>> = Vec::new();
    let chunk = if chunk == 0 { file.len().max(1) } else { chunk };
    for c in file.chunks(chunk) {
        r.feed(c, |ev| -> Result<(), GgufError> {
            match ev {
                Event::Header(_) => {
                    assert!(!header_seen, "header twice");
                    header_seen = true;
                }
                Event::Tensor(t) => {
                    assert!(
                        header_seen && t.index == tensors.len(),
                        "tensor out of order"
                    );
                    assert_eq!(t.bytes.len() as u64, t.info.n_bytes);
                    tensors.push(t.bytes.to_vec());
                }
                Event::TensorPiece(p) => {
                    assert!(header_seen && !p.bytes.is_empty(), "empty piece");
                    if p.is_first() {
                        assert_eq!(p.index, tensors.len(), "piece of a later tensor");
                        tensors.push(Vec::new());
                    }
                    assert_eq!(p.index + 1, tensors.len());
                    let cur = tensors.last_mut().expect("a first piece came before");
                    assert_eq!(p.offset, cur.len() as u64, "pieces not contiguous");
                    cur.extend_from_slice(p.bytes);
                    assert!(cur.len() as u64 <= p.info.n_bytes);
                }
            }
            Ok(())
        })
        .map_err(|e| kind(&e))?;
    }
    let h = r.finish().map_err(|e| kind(&e))?;
    assert_eq!(h.tensors.len(), tensors.len());
    for (t, b) in h.tensors.iter().zip(&tensors) {
        assert_eq!(t.n_bytes, b.len() as u64, "tensor {} incomplete", t.name);
    }
    Ok((format!("{h:?}"), tensors))
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let chunk = data[0] as usize;
    let told = data[1] & 1 == 1;
    let file = &data[2..];
    let reference = run(file, 0, false, told);
    let whole_chunked = run(file, chunk, false, told);
    let pieces = run(file, chunk, true, told);
    match (&reference, &whole_chunked, &pieces) {
        (Ok(a), Ok(b), Ok(c)) => {
            assert!(a == b, "chunking changed the result");
            assert!(a == c, "piece mode changed the result");
        }
        // Errors may be found at different points, but success must not depend on chunking.
        (Ok(_), _, _) | (_, Ok(_), _) | (_, _, Ok(_)) => {
            panic!("ok in one mode only: {reference:?} / {whole_chunked:?} / {pieces:?}")
        }
        _ => {}
    }
});
