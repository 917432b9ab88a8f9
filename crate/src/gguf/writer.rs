//! Writes GGUF files (v3): used to build test models and the in-memory
//! 7B-shaped benchmark model, and by tests that craft malformed files.

use super::value::{Metadata, Value, ValueType};
use crate::ggml_type::GgmlType;

/// A tensor to be written: name, dims (innermost first), type and raw bytes.
#[derive(Clone, Debug)]
pub struct WriterTensor {
    pub name: String,
    pub dims: Vec<u64>,
    pub ty: GgmlType,
    pub bytes: Vec<u8>,
}

/// Builds a GGUF file in memory.
#[derive(Clone, Debug, Default)]
pub struct GgufWriter {
    pub metadata: Metadata,
    pub tensors: Vec<WriterTensor>,
    pub alignment: Option<u64>,
}

/// Appends little-endian encodings of GGUF primitives to a byte vector.
pub trait PutLe {
    fn put_u32(&mut self, v: u32);
    fn put_u64(&mut self, v: u64);
    fn put_str(&mut self, s: &str);
    fn put_value(&mut self, v: &Value);
}

impl PutLe for Vec<u8> {
    fn put_u32(&mut self, v: u32) {
        self.extend_from_slice(&v.to_le_bytes());
    }

    fn put_u64(&mut self, v: u64) {
        self.extend_from_slice(&v.to_le_bytes());
    }

    fn put_str(&mut self, s: &str) {
        self.put_u64(s.len() as u64);
        self.extend_from_slice(s.as_bytes());
    }

    /// The value's payload (without its type tag).
    fn put_value(&mut self, v: &Value) {
        match v {
            Value::U8(x) => self.push(*x),
            Value::I8(x) => self.push(*x as u8),
            Value::U16(x) => self.extend_from_slice(&x.to_le_bytes()),
            Value::I16(x) => self.extend_from_slice(&x.to_le_bytes()),
            Value::U32(x) => self.put_u32(*x),
            Value::I32(x) => self.extend_from_slice(&x.to_le_bytes()),
            Value::F32(x) => self.extend_from_slice(&x.to_le_bytes()),
            Value::Bool(x) => self.push(*x as u8),
            Value::String(s) => self.put_str(s),
            Value::Array(t, items) => {
                self.put_u32(*t as u32);
                self.put_u64(items.len() as u64);
                for it in items {
                    self.put_value(it);
                }
            }
            Value::U64(x) => self.put_u64(*x),
            Value::I64(x) => self.extend_from_slice(&x.to_le_bytes()),
            Value::F64(x) => self.extend_from_slice(&x.to_le_bytes()),
        }
    }
}

impl GgufWriter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets a metadata key (replacing is not supported: keys are unique).
    pub fn kv(&mut self, key: &str, value: Value) -> &mut Self {
        assert!(
            self.metadata.insert(key.to_string(), value),
            "duplicate metadata key {key}"
        );
        self
    }

    pub fn tensor(&mut self, name: &str, dims: &[u64], ty: GgmlType, bytes: Vec<u8>) -> &mut Self {
        self.tensors.push(WriterTensor {
            name: name.to_string(),
            dims: dims.to_vec(),
            ty,
            bytes,
        });
        self
    }

    /// Adds an F32 tensor from values.
    pub fn tensor_f32(&mut self, name: &str, dims: &[u64], values: &[f32]) -> &mut Self {
        let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.tensor(name, dims, GgmlType::F32, bytes)
    }

    fn align(&self) -> u64 {
        self.alignment
            .or_else(|| self.metadata.get_u64("general.alignment"))
            .unwrap_or(super::DEFAULT_ALIGNMENT)
    }

    /// The header bytes (up to and including the padding before the data
    /// section) and each tensor's offset within the data section.
    pub fn header_bytes(&self) -> (Vec<u8>, Vec<u64>) {
        let sizes: Vec<u64> = self.tensors.iter().map(|t| t.bytes.len() as u64).collect();
        self.header_bytes_with_sizes(&sizes)
    }

    /// [`GgufWriter::header_bytes`] for tensors of `sizes[i]` bytes each, so a
    /// file can be streamed tensor by tensor without holding the data (the
    /// tensors' own `bytes` are ignored and may be empty).
    pub fn header_bytes_with_sizes(&self, sizes: &[u64]) -> (Vec<u8>, Vec<u64>) {
        assert_eq!(sizes.len(), self.tensors.len(), "one size per tensor");
        let align = self.align();
        let mut out = Vec::new();
        out.extend_from_slice(b"GGUF");
        out.put_u32(3);
        out.put_u64(self.tensors.len() as u64);
        out.put_u64(self.metadata.len() as u64);
        for (k, v) in self.metadata.iter() {
            out.put_str(k);
            out.put_u32(v.value_type() as u32);
            out.put_value(v);
        }
        let mut offsets = Vec::with_capacity(self.tensors.len());
        let mut off = 0u64;
        for (t, &size) in self.tensors.iter().zip(sizes) {
            out.put_str(&t.name);
            out.put_u32(t.dims.len() as u32);
            for d in &t.dims {
                out.put_u64(*d);
            }
            out.put_u32(t.ty.id());
            out.put_u64(off);
            offsets.push(off);
            off = (off + size).div_ceil(align) * align;
        }
        let padded = (out.len() as u64).div_ceil(align) * align;
        out.resize(padded as usize, 0);
        (out, offsets)
    }

    /// The whole file.
    pub fn to_bytes(&self) -> Vec<u8> {
        let (mut out, offsets) = self.header_bytes();
        let data_start = out.len() as u64;
        for (t, off) in self.tensors.iter().zip(offsets) {
            out.resize((data_start + off) as usize, 0);
            out.extend_from_slice(&t.bytes);
        }
        out
    }
}

/// Shorthand for a string-array metadata value.
pub fn string_array<S: AsRef<str>>(items: &[S]) -> Value {
    Value::Array(
        ValueType::String,
        items
            .iter()
            .map(|s| Value::String(s.as_ref().to_string()))
            .collect(),
    )
}
