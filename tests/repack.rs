//! The kernels' u32-aligned layouts (`gpu::repack`): every row expanded from the
//! repacked streams equals `quant::dequantize` of the file's bytes, bit for bit.

use codellama_webgpu::gpu::repack::{repack, supported, RepackError, Repacked};
use codellama_webgpu::quant::dequantize;
use codellama_webgpu::GgmlType;

/// xorshift64*: reproducible random bytes without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
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

/// Same bits, or both NaN (random f16 scales include NaNs and infinities).
fn same(a: f32, b: f32) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

/// Checks every row; returns (NaN values, values).
fn check(ty: GgmlType, rows: usize, cols: usize, seed: u64) -> (usize, usize) {
    let mut rng = Rng(seed);
    let row_bytes = cols / ty.block_elems() * ty.block_bytes();
    let bytes = rng.bytes(rows * row_bytes);
    let packed = repack(ty, rows, cols, &bytes).unwrap();
    assert_eq!((packed.rows, packed.cols, packed.ty), (rows, cols, ty));
    let mut want = vec![0f32; cols];
    let mut got = vec![f32::NAN; cols];
    let mut nan = 0;
    for r in 0..rows {
        dequantize(ty, &bytes[r * row_bytes..(r + 1) * row_bytes], &mut want).unwrap();
        packed.dequantize_row(r, &mut got);
        for c in 0..cols {
            assert!(
                same(want[c], got[c]),
                "{ty:?} ({rows}, {cols}) row {r} col {c}: repacked {} ({:#010x}), file {} ({:#010x})",
                got[c],
                got[c].to_bits(),
                want[c],
                want[c].to_bits()
            );
            nan += want[c].is_nan() as usize;
        }
    }
    (nan, rows * cols)
}

/// Random scales are NaN only rarely: most of the values compared were numbers.
fn mostly_numbers(ty: GgmlType, (nan, total): (usize, usize)) {
    assert!(nan * 10 < total, "{ty:?}: {nan} NaNs in {total} values");
}

#[test]
fn every_row_matches_the_file_bit_for_bit() {
    for (i, ty) in FORMATS.into_iter().enumerate() {
        let unit = ty.block_elems().max(32);
        for rows in [1, 2, 3, 7, 33] {
            for mult in [1, 3, 5] {
                check(
                    ty,
                    rows,
                    unit * mult,
                    1 + (i * 1000 + rows * 10 + mult) as u64,
                );
            }
        }
    }
}

#[test]
fn float_formats_take_any_width() {
    for ty in [GgmlType::F32, GgmlType::F16] {
        let mut counts = (0, 0);
        for (rows, cols) in [(1, 1), (3, 1), (5, 7), (7, 33)] {
            let (n, t) = check(ty, rows, cols, (rows * 100 + cols) as u64);
            counts = (counts.0 + n, counts.1 + t);
        }
        mostly_numbers(ty, counts);
    }
}

#[test]
fn stream_sizes_are_as_documented() {
    let sizes = |ty: GgmlType, rows: usize, cols: usize| {
        let n = rows * cols / ty.block_elems() * ty.block_bytes();
        let p: Repacked = repack(ty, rows, cols, &vec![0u8; n]).unwrap();
        (p.quants.len(), p.scales.len())
    };
    // 3 rows of 3 blocks: 9 blocks, scales two per word rounded up; Q4_K: 5
    // words of scales per block.
    assert_eq!(sizes(GgmlType::F32, 3, 5), (15, 0));
    assert_eq!(sizes(GgmlType::F16, 3, 5), (8, 0));
    assert_eq!(sizes(GgmlType::Q8_0, 3, 96), (9 * 8, 5));
    assert_eq!(sizes(GgmlType::Q4_0, 3, 96), (9 * 4, 5));
    assert_eq!(sizes(GgmlType::Q4K, 3, 768), (9 * 32, 9 * 5));
    assert_eq!(sizes(GgmlType::Q6K, 3, 768), (9 * 52, 5));
}

#[test]
fn wrong_input_is_an_error() {
    assert_eq!(
        repack(GgmlType::Q4_1, 1, 32, &[0; 20]),
        Err(RepackError::Unsupported(GgmlType::Q4_1))
    );
    assert!(!supported(GgmlType::Q5K));
    assert!(matches!(
        repack(GgmlType::Q8_0, 1, 48, &[0; 51]),
        Err(RepackError::NotWholeBlocks { .. })
    ));
    assert!(matches!(
        repack(GgmlType::Q4_0, 2, 32, &[0; 18]),
        Err(RepackError::Length {
            expected: 36,
            actual: 18,
            ..
        })
    ));
}
