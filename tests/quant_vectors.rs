//! Bit-exactness of `quant::dequantize` against gguf-py's `gguf.quants.dequantize`,
//! on the pseudo-random blocks of `tests/fixtures/quant/<TYPE>.bin` whose expected
//! values are `<TYPE>.f32` (made by `scripts/gen_quant_vectors.py`).

use std::path::PathBuf;

use codellama_webgpu::quant::{dequantize, dequantize_to_vec};
use codellama_webgpu::GgmlType;

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/quant")
}

fn read(name: &str) -> Vec<u8> {
    let p = fixture_dir().join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Compares bit patterns (so NaNs compare by payload) and describes the first
/// difference, or how many values were compared.
fn compare(ty: GgmlType, expected: &[f32], got: &[f32]) -> Result<usize, String> {
    if expected.len() != got.len() {
        return Err(format!(
            "{ty}: expected {} values, got {}",
            expected.len(),
            got.len()
        ));
    }
    let n_bad = expected
        .iter()
        .zip(got)
        .filter(|(e, g)| e.to_bits() != g.to_bits())
        .count();
    match expected
        .iter()
        .zip(got)
        .position(|(e, g)| e.to_bits() != g.to_bits())
    {
        None => Ok(expected.len()),
        Some(i) => Err(format!(
            "{ty}: {n_bad} of {} values differ; first at index {i} (block {}, element {} of it): \
             expected {:e} ({:#010x}), got {:e} ({:#010x})",
            expected.len(),
            i / ty.block_elems(),
            i % ty.block_elems(),
            expected[i],
            expected[i].to_bits(),
            got[i],
            got[i].to_bits(),
        )),
    }
}

#[test]
fn every_type_is_bit_exact_with_gguf_py() {
    let mut failures = Vec::new();
    for ty in GgmlType::ALL {
        let blocks = read(&format!("{}.bin", ty.name()));
        let expected: Vec<f32> = read(&format!("{}.f32", ty.name()))
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        assert!(!expected.is_empty(), "{ty}: empty fixture");
        let got = match dequantize_to_vec(ty, &blocks, expected.len()) {
            Ok(v) => v,
            Err(e) => {
                failures.push(format!("{ty}: {e}"));
                continue;
            }
        };
        match compare(ty, &expected, &got) {
            Ok(n) => println!(
                "{ty}: {n} values in {} blocks bit-exact",
                n / ty.block_elems()
            ),
            Err(msg) => failures.push(msg),
        }

        // The same bytes at an odd address.
        let mut shifted = vec![0u8; 1];
        shifted.extend_from_slice(&blocks);
        let mut out = vec![0.0f32; expected.len()];
        match dequantize(ty, &shifted[1..], &mut out) {
            Ok(()) => {
                if let Err(msg) = compare(ty, &expected, &out) {
                    failures.push(format!("unaligned {msg}"));
                }
            }
            Err(e) => failures.push(format!("unaligned {ty}: {e}")),
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn fixtures_reject_wrong_lengths() {
    for ty in GgmlType::ALL {
        let blocks = read(&format!("{}.bin", ty.name()));
        let n = blocks.len() / ty.block_bytes() * ty.block_elems();
        assert!(dequantize_to_vec(ty, &blocks[..blocks.len() - 1], n).is_err());
        assert!(dequantize_to_vec(ty, &blocks, n + ty.block_elems()).is_err());
    }
}
