//! Weight matrices kept in their file format; the CPU reference dequantizes a
//! row at a time, so memory stays at the file's size.

use crate::ggml_type::GgmlType;
use crate::gguf::TensorInfo;
use crate::model::ModelError;
use crate::quant::dequantize;

/// A `(rows, cols)` matrix (GGUF dims `[cols, rows]`), row-major, in `ty` blocks.
#[derive(Clone, Debug)]
pub struct QMatrix {
    pub ty: GgmlType,
    pub rows: usize,
    pub cols: usize,
    row_bytes: usize,
    bytes: Vec<u8>,
}

impl QMatrix {
    /// Wraps a tensor's bytes; 1-D tensors become a single row.
    pub fn new(info: &TensorInfo, bytes: Vec<u8>) -> Result<QMatrix, ModelError> {
        let cols = info.dims[0] as usize;
        let rows = (info.n_elements() / info.dims[0]) as usize;
        if bytes.len() as u64 != info.n_bytes {
            return Err(ModelError::TensorBytes {
                name: info.name.clone(),
                expected: info.n_bytes,
                got: bytes.len() as u64,
            });
        }
        let row_bytes = info
            .ty
            .bytes_for(cols as u64)
            .expect("reader checked blocks") as usize;
        Ok(QMatrix {
            ty: info.ty,
            rows,
            cols,
            row_bytes,
            bytes,
        })
    }

    /// Dequantizes row `r` into `out` (`cols` values).
    pub fn row(&self, r: usize, out: &mut [f32]) {
        let b = &self.bytes[r * self.row_bytes..(r + 1) * self.row_bytes];
        dequantize(self.ty, b, &mut out[..self.cols]).expect("row length is whole blocks");
    }

    /// The whole matrix as f32 (for vectors such as norm weights).
    pub fn to_f32(&self) -> Vec<f32> {
        let mut out = vec![0.0; self.rows * self.cols];
        for (r, chunk) in out.chunks_exact_mut(self.cols).enumerate() {
            self.row(r, chunk);
        }
        out
    }

    /// `out = W x`: `x` has `cols` values, `out` has `rows`.
    pub fn matvec(&self, x: &[f32], out: &mut [f32]) {
        assert_eq!(x.len(), self.cols, "matvec input width");
        assert_eq!(out.len(), self.rows, "matvec output height");
        let threads = if self.rows * self.cols >= 1 << 20 {
            std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .min(8)
        } else {
            1
        };
        let per = self.rows.div_ceil(threads);
        let work = |first: usize, out: &mut [f32]| {
            let mut row = vec![0f32; self.cols];
            for (i, o) in out.iter_mut().enumerate() {
                self.row(first + i, &mut row);
                *o = dot(&row, x);
            }
        };
        if threads == 1 {
            work(0, out);
            return;
        }
        std::thread::scope(|s| {
            for (i, chunk) in out.chunks_mut(per).enumerate() {
                let work = &work;
                s.spawn(move || work(i * per, chunk));
            }
        });
    }
}

/// A plain f32 dot product, summed left to right.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}
