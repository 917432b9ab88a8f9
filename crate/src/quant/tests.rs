//! Hand-made blocks with known values, and malformed inputs.

use super::*;

const F16_ONE: [u8; 2] = 0x3c00u16.to_le_bytes();
const F16_HALF: [u8; 2] = 0x3800u16.to_le_bytes();
const F16_QUARTER: [u8; 2] = 0x3400u16.to_le_bytes();
const F16_TWO: [u8; 2] = 0x4000u16.to_le_bytes();
const F16_MINUS_ONE: [u8; 2] = 0xbc00u16.to_le_bytes();

fn deq(ty: GgmlType, bytes: &[u8]) -> Vec<f32> {
    let n = bytes.len() / ty.block_bytes() * ty.block_elems();
    dequantize_to_vec(ty, bytes, n).unwrap()
}

#[test]
fn q4_0_known_block() {
    let mut qs = [0u8; 16];
    for (j, q) in qs.iter_mut().enumerate() {
        *q = j as u8 | ((15 - j as u8) << 4);
    }
    let b = BlockQ4_0 { d: F16_HALF, qs };
    let y = deq(GgmlType::Q4_0, bytemuck::bytes_of(&b));
    for j in 0..16 {
        assert_eq!(y[j], (j as f32 - 8.0) * 0.5, "element {j}");
        assert_eq!(y[j + 16], (7.0 - j as f32) * 0.5, "element {}", j + 16);
    }
}

#[test]
fn q4_1_known_block() {
    let qs: [u8; 16] = std::array::from_fn(|j| (j as u8) << 4 | (15 - j as u8));
    let b = BlockQ4_1 {
        d: F16_QUARTER,
        m: F16_MINUS_ONE,
        qs,
    };
    let y = deq(GgmlType::Q4_1, bytemuck::bytes_of(&b));
    for j in 0..16 {
        assert_eq!(y[j], (15 - j) as f32 * 0.25 - 1.0);
        assert_eq!(y[j + 16], j as f32 * 0.25 - 1.0);
    }
}

#[test]
fn q5_0_and_q5_1_fifth_bit() {
    // Bit j of qh is the fifth bit of element j; all nibbles 3.
    let qh = 0xa5c3_0f81u32;
    let b0 = BlockQ5_0 {
        d: F16_TWO,
        qh: qh.to_le_bytes(),
        qs: [0x33; 16],
    };
    let b1 = BlockQ5_1 {
        d: F16_TWO,
        m: F16_HALF,
        qh: qh.to_le_bytes(),
        qs: [0x33; 16],
    };
    let y0 = deq(GgmlType::Q5_0, bytemuck::bytes_of(&b0));
    let y1 = deq(GgmlType::Q5_1, bytemuck::bytes_of(&b1));
    for j in 0..32 {
        let q = 3 + 16 * ((qh >> j) & 1) as i32;
        assert_eq!(y0[j], (q - 16) as f32 * 2.0, "q5_0 element {j}");
        assert_eq!(y1[j], q as f32 * 2.0 + 0.5, "q5_1 element {j}");
    }
}

#[test]
fn q8_0_known_block() {
    let qs: [i8; 32] = std::array::from_fn(|j| (j as i8 - 16) * 8);
    let b = BlockQ8_0 { d: F16_TWO, qs };
    let y = deq(GgmlType::Q8_0, bytemuck::bytes_of(&b));
    for j in 0..32 {
        assert_eq!(y[j], qs[j] as f32 * 2.0);
    }
    assert_eq!(y[0], -256.0);
}

/// Packs 6-bit scales and mins the way ggml's Q4_K / Q5_K quantizer does.
fn pack_scales(sc: [u8; 8], m: [u8; 8]) -> [u8; 12] {
    let mut s = [0u8; 12];
    for j in 0..8 {
        if j < 4 {
            s[j] = sc[j];
            s[j + 4] = m[j];
        } else {
            s[j + 4] = (sc[j] & 0x0f) | ((m[j] & 0x0f) << 4);
            s[j - 4] |= (sc[j] >> 4) << 6;
            s[j] |= (m[j] >> 4) << 6;
        }
    }
    s
}

#[test]
fn scale_min_k4_round_trips() {
    for a in 0..64u8 {
        let sc: [u8; 8] = std::array::from_fn(|j| (a + 7 * j as u8) % 64);
        let m: [u8; 8] = std::array::from_fn(|j| (63 - a + 11 * j as u8) % 64);
        let packed = pack_scales(sc, m);
        for j in 0..8 {
            assert_eq!(get_scale_min_k4(j, &packed), (sc[j], m[j]), "a={a} j={j}");
        }
    }
}

/// 256 4- or 5-bit quants, packed in ggml's K layout: per 64 outputs, 32 bytes
/// of low nibbles (first 32) and high nibbles (next 32); fifth bits in `qh`.
fn pack_k_quants(l: &[u8; 256]) -> ([u8; 128], [u8; 32]) {
    let mut qs = [0u8; 128];
    let mut qh = [0u8; 32];
    for c in 0..4 {
        for i in 0..32 {
            let (a, b) = (l[64 * c + i], l[64 * c + 32 + i]);
            qs[32 * c + i] = (a & 0x0f) | ((b & 0x0f) << 4);
            qh[i] |= ((a >> 4) & 1) << (2 * c) | ((b >> 4) & 1) << (2 * c + 1);
        }
    }
    (qs, qh)
}

#[test]
fn q4_k_and_q5_k_known_blocks() {
    let sc: [u8; 8] = [1, 2, 3, 4, 40, 50, 60, 63];
    let mn: [u8; 8] = [0, 5, 10, 63, 17, 33, 48, 1];
    let l: [u8; 256] = std::array::from_fn(|i| ((i * 7 + i / 13) % 32) as u8);
    let (qs, qh) = pack_k_quants(&l);
    let scales = pack_scales(sc, mn);
    let b4 = BlockQ4K {
        d: F16_HALF,
        dmin: F16_QUARTER,
        scales,
        qs,
    };
    let b5 = BlockQ5K {
        d: F16_HALF,
        dmin: F16_QUARTER,
        scales,
        qh,
        qs,
    };
    let y4 = deq(GgmlType::Q4K, bytemuck::bytes_of(&b4));
    let y5 = deq(GgmlType::Q5K, bytemuck::bytes_of(&b5));
    for i in 0..256 {
        let s = i / 32;
        let (d, m) = (0.5 * sc[s] as f32, 0.25 * mn[s] as f32);
        assert_eq!(y4[i], d * (l[i] & 0x0f) as f32 - m, "q4_k element {i}");
        assert_eq!(y5[i], d * l[i] as f32 - m, "q5_k element {i}");
    }
}

#[test]
fn q6_k_known_block() {
    // Pack 6-bit quants the way ggml's Q6_K quantizer does.
    let l: [u8; 256] = std::array::from_fn(|i| ((i * 37 + 5) % 64) as u8);
    let mut ql = [0u8; 128];
    let mut qh = [0u8; 64];
    for h in 0..2 {
        let (l, ql, qh) = (&l[128 * h..], &mut ql[64 * h..], &mut qh[32 * h..]);
        for i in 0..32 {
            ql[i] = (l[i] & 0x0f) | ((l[i + 64] & 0x0f) << 4);
            ql[i + 32] = (l[i + 32] & 0x0f) | ((l[i + 96] & 0x0f) << 4);
            qh[i] = (l[i] >> 4)
                | ((l[i + 32] >> 4) << 2)
                | ((l[i + 64] >> 4) << 4)
                | ((l[i + 96] >> 4) << 6);
        }
    }
    let scales: [i8; 16] = std::array::from_fn(|k| (k as i8 - 8) * 15);
    let b = BlockQ6K {
        ql,
        qh,
        scales,
        d: F16_ONE,
    };
    let bytes = bytemuck::bytes_of(&b);
    assert_eq!(&bytes[208..], &F16_ONE, "d is the last field");
    let y = deq(GgmlType::Q6K, bytes);
    for i in 0..256 {
        let want = scales[i / 16] as f32 * (l[i] as i32 - 32) as f32;
        assert_eq!(y[i], want, "element {i}");
    }
}

#[test]
fn float_types() {
    let f32s = [1.5f32, -0.0, f32::INFINITY, 3.25e-40];
    let bytes: Vec<u8> = f32s.iter().flat_map(|v| v.to_le_bytes()).collect();
    let y = deq(GgmlType::F32, &bytes);
    assert_eq!(
        y.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        f32s.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
    );
    let y = deq(GgmlType::F16, &[0x00, 0x3c, 0x00, 0xc0, 0x01, 0x00]);
    assert_eq!(y, [1.0, -2.0, 2f32.powi(-24)]);
    let y = deq(GgmlType::BF16, &[0x80, 0x3f, 0x40, 0xc0]);
    assert_eq!(y, [1.0, -3.0]);
}

#[test]
fn unaligned_bytes_are_fine() {
    let b = BlockQ8_0 {
        d: F16_ONE,
        qs: std::array::from_fn(|j| j as i8),
    };
    let mut buf = vec![0u8; 1];
    for _ in 0..3 {
        buf.extend_from_slice(bytemuck::bytes_of(&b));
    }
    let y = deq(GgmlType::Q8_0, &buf[1..]);
    for (i, v) in y.iter().enumerate() {
        assert_eq!(*v, (i % 32) as f32);
    }
    let y = deq(GgmlType::F32, &[0, 0, 0, 0x80, 0x3f][1..]);
    assert_eq!(y, [1.0]);
}

#[test]
fn malformed_lengths_are_typed_errors() {
    let mut out = vec![0.0f32; 32];
    assert_eq!(
        dequantize(GgmlType::Q4_0, &[0; 17], &mut out),
        Err(QuantError::LengthMismatch {
            ty: GgmlType::Q4_0,
            n_elems: 32,
            expected: 18,
            actual: 17
        })
    );
    assert_eq!(
        dequantize(GgmlType::Q4_0, &[0; 36], &mut out),
        Err(QuantError::LengthMismatch {
            ty: GgmlType::Q4_0,
            n_elems: 32,
            expected: 18,
            actual: 36
        })
    );
    assert_eq!(
        dequantize(GgmlType::Q6K, &[0; 210], &mut out),
        Err(QuantError::NotWholeBlocks {
            ty: GgmlType::Q6K,
            n_elems: 32,
            block_elems: 256
        })
    );
    assert!(matches!(
        dequantize(GgmlType::F32, &[0; 3], &mut out[..1]),
        Err(QuantError::LengthMismatch { .. })
    ));
    // Nothing was written on error.
    assert!(out.iter().all(|v| *v == 0.0));
    // A huge element count fails before any allocation.
    assert_eq!(
        dequantize_to_vec(GgmlType::F32, &[], usize::MAX),
        Err(QuantError::TooLarge {
            ty: GgmlType::F32,
            n_elems: usize::MAX
        })
    );
    assert!(matches!(
        dequantize_to_vec(GgmlType::Q8_0, &[0; 34], usize::MAX / 2 + 1),
        Err(QuantError::LengthMismatch { .. })
    ));
    assert!(dequantize_to_vec(GgmlType::Q8_0, &[0; 34], 33).is_err());
    // The error converts into the crate's error.
    let e: crate::Error = QuantError::TooLarge {
        ty: GgmlType::F16,
        n_elems: 1,
    }
    .into();
    assert!(e.to_string().contains("F16"));
}

#[test]
fn byte_len_agrees_with_ggml_type() {
    for ty in GgmlType::ALL {
        for n in [0usize, 1, 32, 33, 256, 512, 4096] {
            assert_eq!(
                byte_len(ty, n).ok(),
                ty.bytes_for(n as u64).map(|b| b as usize),
                "{ty} {n}"
            );
        }
    }
}

#[test]
fn rows_of_a_tensor() {
    // Two rows of 64 Q8_0 elements; row 1 holds 50 + j.
    let blocks: Vec<BlockQ8_0> = (0..4)
        .map(|b| BlockQ8_0 {
            d: F16_ONE,
            qs: std::array::from_fn(|j| (50 * (b / 2) + 32 * (b % 2) + j) as i8),
        })
        .collect();
    let bytes: &[u8] = bytemuck::cast_slice(&blocks);
    let mut row = vec![0.0; 64];
    dequantize_row(GgmlType::Q8_0, bytes, 64, 1, &mut row).unwrap();
    let want: Vec<f32> = (0..64).map(|j| (50 + j) as f32).collect();
    assert_eq!(row, want);
    assert!(dequantize_row(GgmlType::Q8_0, bytes, 64, 2, &mut row).is_err());
    assert!(dequantize_row(GgmlType::Q8_0, bytes, 64, 0, &mut row[..32]).is_err());
    let mut out = vec![0.0; 64];
    dequantize_blocks_checked(&blocks[2..], &mut out).unwrap();
    assert_eq!(out, want);
    assert!(dequantize_blocks_checked(&blocks, &mut out).is_err());
}
