//! Bit-exact scalar conversions from the 16-bit float formats to `f32`.
//!
//! Both conversions are exact (every f16 and bf16 value is an f32 value), so the
//! only freedom is in NaNs: these functions keep the sign and payload bits of a
//! NaN and never set the quiet bit, like numpy's (software) `float16 -> float32`
//! cast that gguf-py uses. Hardware converters (x86 F16C, which ggml uses when
//! built for it) set the quiet bit of a signalling NaN instead; no real model
//! stores NaN weights.

/// IEEE binary16 bits to `f32`, exactly.
#[inline]
pub const fn f16_bits_to_f32(h: u16) -> f32 {
    let sign = ((h as u32) & 0x8000) << 16;
    let exp = ((h >> 10) & 0x1f) as u32;
    let man = (h & 0x3ff) as u32;
    let bits = if exp == 0x1f {
        // Infinity or NaN: all exponent bits set, mantissa kept.
        sign | 0x7f80_0000 | (man << 13)
    } else if exp != 0 {
        // Normal: rebias the exponent from 15 to 127.
        sign | ((exp + 112) << 23) | (man << 13)
    } else if man == 0 {
        sign
    } else {
        // Subnormal f16 (man * 2^-24): normalise into an f32 normal.
        let shift = man.leading_zeros() - 21; // moves the top set bit to bit 10
        let man = (man << shift) & 0x3ff;
        let exp = 113 - shift; // 2^-14 has f32 biased exponent 113
        sign | (exp << 23) | (man << 13)
    };
    f32::from_bits(bits)
}

/// bfloat16 bits to `f32`: they are the upper half of the f32's bits.
#[inline]
pub const fn bf16_bits_to_f32(h: u16) -> f32 {
    f32::from_bits((h as u32) << 16)
}

/// Reads a little-endian f16 and widens it.
#[inline]
pub const fn f16_le_to_f32(b: [u8; 2]) -> f32 {
    f16_bits_to_f32(u16::from_le_bytes(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_matches_half_for_every_non_nan() {
        for h in 0..=u16::MAX {
            let want = half::f16::from_bits(h);
            if want.is_nan() {
                continue;
            }
            assert_eq!(
                f16_bits_to_f32(h).to_bits(),
                want.to_f32().to_bits(),
                "f16 bits {h:#06x}"
            );
        }
    }

    #[test]
    fn f16_known_values() {
        assert_eq!(f16_bits_to_f32(0x3c00), 1.0);
        assert_eq!(f16_bits_to_f32(0xc000), -2.0);
        assert_eq!(f16_bits_to_f32(0x7bff), 65504.0);
        assert_eq!(f16_bits_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(f16_bits_to_f32(0x03ff), 1023.0 * 2f32.powi(-24));
        assert_eq!(f16_bits_to_f32(0x0400), 2f32.powi(-14));
        assert_eq!(f16_bits_to_f32(0x8000).to_bits(), 0x8000_0000);
        assert_eq!(f16_bits_to_f32(0xfc00), f32::NEG_INFINITY);
    }

    #[test]
    fn nan_payloads_are_kept() {
        // Quiet NaN with a payload, and a signalling one: no bit is added.
        assert_eq!(f16_bits_to_f32(0x7e01).to_bits(), 0x7fc0_2000);
        assert_eq!(f16_bits_to_f32(0xfc01).to_bits(), 0xff80_2000);
        assert_eq!(bf16_bits_to_f32(0x7f81).to_bits(), 0x7f81_0000);
    }

    #[test]
    fn bf16_is_upper_half() {
        assert_eq!(bf16_bits_to_f32(0x3f80), 1.0);
        assert_eq!(bf16_bits_to_f32(0xc040), -3.0);
        assert_eq!(bf16_bits_to_f32(0x0001).to_bits(), 0x0001_0000);
    }
}
