//! Minimal `.npy` (NumPy format 1.0) reading and writing for 2-D f32 arrays:
//! logits files for the CLI and reference checks.

use std::io::{self, Read, Write};

/// Writes a C-order `float32` array of shape `(rows, cols)`.
pub fn write_f32(mut w: impl Write, rows: usize, cols: usize, data: &[f32]) -> io::Result<()> {
    assert_eq!(data.len(), rows * cols, "npy data does not match its shape");
    let mut header =
        format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    // Magic (6) + version (2) + length (2) + header + '\n' is a multiple of 64.
    let total = 10 + header.len() + 1;
    header.push_str(&" ".repeat(total.div_ceil(64) * 64 - total));
    header.push('\n');
    w.write_all(b"\x93NUMPY\x01\x00")?;
    w.write_all(&(header.len() as u16).to_le_bytes())?;
    w.write_all(header.as_bytes())?;
    let bytes: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    w.write_all(&bytes)
}

/// Reads a C-order 2-D `<f4` or `<f8` array as f32 values, with its shape.
pub fn read_f32(mut r: impl Read) -> io::Result<(Vec<usize>, Vec<f32>)> {
    let bad = |m: &str| io::Error::new(io::ErrorKind::InvalidData, m.to_string());
    let mut pre = [0u8; 10];
    r.read_exact(&mut pre)?;
    if &pre[..6] != b"\x93NUMPY" {
        return Err(bad("not a .npy file"));
    }
    let hlen = match pre[6] {
        1 => u16::from_le_bytes([pre[8], pre[9]]) as usize,
        2 | 3 => {
            let mut more = [0u8; 2];
            r.read_exact(&mut more)?;
            u32::from_le_bytes([pre[8], pre[9], more[0], more[1]]) as usize
        }
        _ => return Err(bad("unsupported .npy version")),
    };
    let mut h = vec![0u8; hlen];
    r.read_exact(&mut h)?;
    let h = String::from_utf8(h).map_err(|_| bad("header is not text"))?;
    if h.contains("'fortran_order': True") {
        return Err(bad("Fortran order is not supported"));
    }
    let f8 = if h.contains("'<f4'") {
        false
    } else if h.contains("'<f8'") {
        true
    } else {
        return Err(bad(
            "only little-endian float32/float64 arrays are supported",
        ));
    };
    let shape_src = h
        .split("'shape':")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .ok_or_else(|| bad("no shape"))?;
    let shape: Vec<usize> = shape_src
        .trim()
        .trim_start_matches('(')
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().parse().map_err(|_| bad("bad shape")))
        .collect::<io::Result<_>>()?;
    let n: usize = shape.iter().product();
    let mut raw = Vec::new();
    r.read_to_end(&mut raw)?;
    let width = if f8 { 8 } else { 4 };
    if raw.len() != n * width {
        return Err(bad("data length does not match the shape"));
    }
    let data = if f8 {
        raw.chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap()) as f32)
            .collect()
    } else {
        raw.chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect()
    };
    Ok((shape, data))
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trip() {
        let data: Vec<f32> = (0..6).map(|i| i as f32 * 0.5 - 1.0).collect();
        let mut buf = Vec::new();
        super::write_f32(&mut buf, 2, 3, &data).unwrap();
        assert_eq!((buf.len() - data.len() * 4) % 64, 0);
        let (shape, back) = super::read_f32(&buf[..]).unwrap();
        assert_eq!(shape, vec![2, 3]);
        assert_eq!(back, data);
    }
}
