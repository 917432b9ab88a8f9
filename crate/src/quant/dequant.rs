//! Per-block dequantization, exactly as ggml's `dequantize_row_*`.
//!
//! Every value is computed in f32 with the same operations, in the same order,
//! as gguf-py's numpy `gguf.quants` (the bit-exact reference, see
//! `tests/quant_vectors.rs`) and ggml's C code. For these formats the order
//! does not actually matter: every product is of an f16 (11 significant bits)
//! with integers of at most 12 significant bits in all (Q6_K: i8 scale times
//! 6-bit quant; results stay far from f32 underflow), so it is exact in f32, and
//! the only rounding is the final `+ m` / `- m` of Q4_1, Q5_1, Q4_K and Q5_K,
//! which a fused multiply-add rounds identically.

use super::blocks::*;

impl QuantBlock for BlockQ4_0 {
    const TYPE: crate::GgmlType = crate::GgmlType::Q4_0;
    const ELEMS: usize = QK;

    #[inline]
    fn dequantize_into(&self, out: &mut [f32]) {
        let out = &mut out[..QK];
        let d = self.d();
        let (lo, hi) = out.split_at_mut(QK / 2);
        for ((&q, y0), y1) in self.qs.iter().zip(lo).zip(hi) {
            *y0 = d * ((q & 0x0f) as i32 - 8) as f32;
            *y1 = d * ((q >> 4) as i32 - 8) as f32;
        }
    }
}

impl QuantBlock for BlockQ4_1 {
    const TYPE: crate::GgmlType = crate::GgmlType::Q4_1;
    const ELEMS: usize = QK;

    #[inline]
    fn dequantize_into(&self, out: &mut [f32]) {
        let out = &mut out[..QK];
        let (d, m) = (self.d(), self.m());
        let (lo, hi) = out.split_at_mut(QK / 2);
        for ((&q, y0), y1) in self.qs.iter().zip(lo).zip(hi) {
            *y0 = d * (q & 0x0f) as f32 + m;
            *y1 = d * (q >> 4) as f32 + m;
        }
    }
}

impl QuantBlock for BlockQ5_0 {
    const TYPE: crate::GgmlType = crate::GgmlType::Q5_0;
    const ELEMS: usize = QK;

    #[inline]
    fn dequantize_into(&self, out: &mut [f32]) {
        let out = &mut out[..QK];
        let d = self.d();
        let qh = self.qh();
        let (lo, hi) = out.split_at_mut(QK / 2);
        for (j, ((&q, y0), y1)) in self.qs.iter().zip(lo).zip(hi).enumerate() {
            let h0 = ((qh >> j) & 1) << 4;
            let h1 = ((qh >> (j + QK / 2)) & 1) << 4;
            *y0 = d * (((q & 0x0f) as u32 | h0) as i32 - 16) as f32;
            *y1 = d * (((q >> 4) as u32 | h1) as i32 - 16) as f32;
        }
    }
}

impl QuantBlock for BlockQ5_1 {
    const TYPE: crate::GgmlType = crate::GgmlType::Q5_1;
    const ELEMS: usize = QK;

    #[inline]
    fn dequantize_into(&self, out: &mut [f32]) {
        let out = &mut out[..QK];
        let (d, m) = (self.d(), self.m());
        let qh = self.qh();
        let (lo, hi) = out.split_at_mut(QK / 2);
        for (j, ((&q, y0), y1)) in self.qs.iter().zip(lo).zip(hi).enumerate() {
            let h0 = ((qh >> j) & 1) << 4;
            let h1 = ((qh >> (j + QK / 2)) & 1) << 4;
            *y0 = d * ((q & 0x0f) as u32 | h0) as f32 + m;
            *y1 = d * ((q >> 4) as u32 | h1) as f32 + m;
        }
    }
}

impl QuantBlock for BlockQ8_0 {
    const TYPE: crate::GgmlType = crate::GgmlType::Q8_0;
    const ELEMS: usize = QK;

    #[inline]
    fn dequantize_into(&self, out: &mut [f32]) {
        let out = &mut out[..QK];
        let d = self.d();
        for (&q, y) in self.qs.iter().zip(out) {
            *y = q as f32 * d;
        }
    }
}

impl QuantBlock for BlockQ4K {
    const TYPE: crate::GgmlType = crate::GgmlType::Q4K;
    const ELEMS: usize = QK_K;

    #[inline]
    fn dequantize_into(&self, out: &mut [f32]) {
        let out = &mut out[..QK_K];
        let (d, dmin) = (self.d(), self.dmin());
        // Each 64 outputs read 32 bytes: low nibbles, then high nibbles, each
        // half with its own sub-block scale and min.
        for (c, (q, y)) in self
            .qs
            .chunks_exact(32)
            .zip(out.chunks_exact_mut(64))
            .enumerate()
        {
            let (sc0, m0) = get_scale_min_k4(2 * c, &self.scales);
            let (sc1, m1) = get_scale_min_k4(2 * c + 1, &self.scales);
            let (d0, m0) = (d * sc0 as f32, dmin * m0 as f32);
            let (d1, m1) = (d * sc1 as f32, dmin * m1 as f32);
            let (lo, hi) = y.split_at_mut(32);
            for ((&q, y0), y1) in q.iter().zip(lo).zip(hi) {
                *y0 = d0 * (q & 0x0f) as f32 - m0;
                *y1 = d1 * (q >> 4) as f32 - m1;
            }
        }
    }
}

impl QuantBlock for BlockQ5K {
    const TYPE: crate::GgmlType = crate::GgmlType::Q5K;
    const ELEMS: usize = QK_K;

    #[inline]
    fn dequantize_into(&self, out: &mut [f32]) {
        let out = &mut out[..QK_K];
        let (d, dmin) = (self.d(), self.dmin());
        // As Q4_K; the fifth bit of sub-block `s` is bit `s` of `qh[l]`.
        for (c, (q, y)) in self
            .qs
            .chunks_exact(32)
            .zip(out.chunks_exact_mut(64))
            .enumerate()
        {
            let (sc0, m0) = get_scale_min_k4(2 * c, &self.scales);
            let (sc1, m1) = get_scale_min_k4(2 * c + 1, &self.scales);
            let (d0, m0) = (d * sc0 as f32, dmin * m0 as f32);
            let (d1, m1) = (d * sc1 as f32, dmin * m1 as f32);
            let (u0, u1) = (1u8 << (2 * c), 1u8 << (2 * c + 1));
            let (lo, hi) = y.split_at_mut(32);
            for (((&q, &h), y0), y1) in q.iter().zip(&self.qh).zip(lo).zip(hi) {
                let q0 = (q & 0x0f) + if h & u0 != 0 { 16 } else { 0 };
                let q1 = (q >> 4) + if h & u1 != 0 { 16 } else { 0 };
                *y0 = d0 * q0 as f32 - m0;
                *y1 = d1 * q1 as f32 - m1;
            }
        }
    }
}

impl QuantBlock for BlockQ6K {
    const TYPE: crate::GgmlType = crate::GgmlType::Q6K;
    const ELEMS: usize = QK_K;

    #[inline]
    fn dequantize_into(&self, out: &mut [f32]) {
        let out = &mut out[..QK_K];
        let d = self.d();
        // Each half of 128 outputs reads 64 bytes of `ql`, 32 of `qh` and 8
        // scales; output `32 * k + l` (k < 4, l < 32) takes nibble `k / 2` of
        // `ql[l + 32 * (k % 2)]`, bits `2k..2k+2` of `qh[l]`, scale `2k + l / 16`.
        for (half, y) in out.chunks_exact_mut(128).enumerate() {
            let ql = &self.ql[64 * half..64 * half + 64];
            let qh = &self.qh[32 * half..32 * half + 32];
            let sc = &self.scales[8 * half..8 * half + 8];
            for (k, y) in y.chunks_exact_mut(32).enumerate() {
                let shift_l = 4 * (k / 2);
                let ql = &ql[32 * (k % 2)..32 * (k % 2) + 32];
                for (l, y) in y.iter_mut().enumerate() {
                    let lo = (ql[l] >> shift_l) & 0x0f;
                    let hi = (qh[l] >> (2 * k)) & 0x03;
                    let q = (lo | (hi << 4)) as i32 - 32;
                    let scale = d * sc[2 * k + l / 16] as f32;
                    *y = scale * q as f32;
                }
            }
        }
    }
}
