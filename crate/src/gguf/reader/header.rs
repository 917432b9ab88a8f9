//! The header half of [`GgufReader`]: magic, version, metadata key/value
//! pairs and tensor infos, parsed one fixed-size item at a time, with every
//! declared count and length checked before anything is allocated for it.

use std::borrow::Cow;
use std::collections::HashSet;

use super::{Event, GgufReader, Header, Phase, Stop, TensorInfo, MAX_DIMS};
use crate::ggml_type::GgmlType;
use crate::gguf::error::GgufError;
use crate::gguf::value::{Value, ValueType};

const MAGIC: [u8; 4] = *b"GGUF";

/// The next item the header parser waits for.
#[derive(Clone, Debug)]
pub(super) enum Want {
    Magic,
    Version,
    TensorCount,
    KvCount,
    KeyLen,
    Key(u64),
    ValueTypeTag,
    /// A value of this type (scalar, string length or array header).
    Value(ValueType),
    StrBytes(u64),
    InfoNameLen,
    InfoName(u64),
    InfoNDims,
    InfoDims(u32),
    InfoType,
    InfoOffset,
}

pub(super) struct ArrayFrame {
    elem: ValueType,
    remaining: u64,
    items: Vec<Value>,
}

/// Partly parsed tensor info.
#[derive(Default)]
pub(super) struct InfoDraft {
    name: String,
    dims: Vec<u64>,
    ty: Option<GgmlType>,
}

fn le_u32(b: &[u8]) -> u32 {
    u32::from_le_bytes(b[..4].try_into().unwrap())
}

fn le_u64(b: &[u8]) -> u64 {
    u64::from_le_bytes(b[..8].try_into().unwrap())
}

fn scalar(ty: ValueType, b: &[u8]) -> Value {
    match ty {
        ValueType::U8 => Value::U8(b[0]),
        ValueType::I8 => Value::I8(b[0] as i8),
        ValueType::Bool => Value::Bool(b[0] != 0),
        ValueType::U16 => Value::U16(u16::from_le_bytes([b[0], b[1]])),
        ValueType::I16 => Value::I16(i16::from_le_bytes([b[0], b[1]])),
        ValueType::U32 => Value::U32(le_u32(b)),
        ValueType::I32 => Value::I32(le_u32(b) as i32),
        ValueType::F32 => Value::F32(f32::from_bits(le_u32(b))),
        ValueType::U64 => Value::U64(le_u64(b)),
        ValueType::I64 => Value::I64(le_u64(b) as i64),
        ValueType::F64 => Value::F64(f64::from_bits(le_u64(b))),
        ValueType::String | ValueType::Array => unreachable!("not a scalar"),
    }
}

impl GgufReader {
    /// Reads the next header item from `input`. `Ok(false)` when `input` ran
    /// out first (what there was is kept in `pending`).
    pub(super) fn header_step<E>(
        &mut self,
        w: Want,
        input: &mut &[u8],
        on_event: &mut dyn FnMut(Event<'_>) -> Result<(), E>,
    ) -> Result<bool, Stop<E>> {
        let n = self.want_size(&w);
        let Some(unit) = self.take(input, n) else {
            if self.bytes_read() > self.opts.max_header_bytes {
                return Err(Stop::Gguf(GgufError::HeaderTooLarge {
                    limit: self.opts.max_header_bytes,
                }));
            }
            return Ok(false);
        };
        let next = self.header_item(w, &unit).map_err(Stop::Gguf)?;
        if let Some(next) = next {
            self.phase = Phase::Header(next);
        } else {
            self.complete_header().map_err(Stop::Gguf)?;
            let header = self.header.as_ref().expect("just completed");
            on_event(Event::Header(header)).map_err(Stop::Sink)?;
            self.phase = Phase::Data { next: 0, done: 0 };
        }
        if self.pos > self.opts.max_header_bytes && self.header.is_none() {
            return Err(Stop::Gguf(GgufError::HeaderTooLarge {
                limit: self.opts.max_header_bytes,
            }));
        }
        Ok(true)
    }

    /// Takes exactly `n` bytes of one item, from `pending` and `input`. `None`
    /// means `input` ran out; what there was is kept in `pending`.
    fn take<'i>(&mut self, input: &mut &'i [u8], n: u64) -> Option<Cow<'i, [u8]>> {
        let have = self.pending.len() as u64;
        if have == 0 && input.len() as u64 >= n {
            let (unit, rest) = input.split_at(n as usize);
            *input = rest;
            self.pos += n;
            return Some(Cow::Borrowed(unit));
        }
        let need = n - have;
        if (input.len() as u64) < need {
            self.pending.extend_from_slice(input);
            *input = &[];
            return None;
        }
        let (part, rest) = input.split_at(need as usize);
        self.pending.extend_from_slice(part);
        *input = rest;
        self.pos += n;
        Some(Cow::Owned(std::mem::take(&mut self.pending)))
    }

    fn want_size(&self, w: &Want) -> u64 {
        match w {
            Want::Magic | Want::Version | Want::ValueTypeTag | Want::InfoNDims | Want::InfoType => {
                4
            }
            Want::TensorCount
            | Want::KvCount
            | Want::KeyLen
            | Want::InfoNameLen
            | Want::InfoOffset => 8,
            Want::Key(n) | Want::StrBytes(n) | Want::InfoName(n) => *n,
            Want::Value(t) => match t {
                ValueType::String => 8,
                ValueType::Array => 12,
                t => t.scalar_size().unwrap() as u64,
            },
            Want::InfoDims(n) => 8 * *n as u64,
        }
    }

    /// Checks a declared count against the bytes left in the file.
    fn check_count(&self, what: &'static str, count: u64, min_each: u64) -> Result<(), GgufError> {
        if let Some(rem) = self.remaining_in_file() {
            if count.checked_mul(min_each).is_none_or(|need| need > rem) {
                return Err(GgufError::CountTooLarge {
                    what,
                    count,
                    offset: self.pos,
                    remaining: rem,
                });
            }
        }
        Ok(())
    }

    fn check_string_len(&self, len: u64) -> Result<(), GgufError> {
        let limit = self.opts.max_string_bytes;
        if len > limit {
            return Err(GgufError::StringTooLong {
                len,
                offset: self.pos - 8,
                limit,
            });
        }
        self.check_count("string byte", len, 1)
    }

    fn utf8(&self, bytes: &[u8]) -> Result<String, GgufError> {
        String::from_utf8(bytes.to_vec()).map_err(|_| GgufError::InvalidUtf8 {
            offset: self.pos - bytes.len() as u64,
        })
    }

    /// Consumes one header item. Returns the next item wanted, or `None` when
    /// the last tensor info has been read.
    fn header_item(&mut self, w: Want, b: &[u8]) -> Result<Option<Want>, GgufError> {
        let next = match w {
            Want::Magic => {
                let m: [u8; 4] = b.try_into().unwrap();
                if m != MAGIC {
                    return Err(GgufError::BadMagic(m));
                }
                Want::Version
            }
            Want::Version => {
                let v = le_u32(b);
                if v != 2 && v != 3 {
                    return Err(GgufError::UnsupportedVersion(v));
                }
                self.version = v;
                Want::TensorCount
            }
            Want::TensorCount => {
                self.tensor_count = le_u64(b);
                // name length, n_dims, one dim, type, offset
                self.check_count("tensor", self.tensor_count, 8 + 4 + 8 + 4 + 8)?;
                Want::KvCount
            }
            Want::KvCount => {
                self.kv_count = le_u64(b);
                // key length, value type, one byte of value
                self.check_count("metadata key/value", self.kv_count, 8 + 4 + 1)?;
                if self.kv_count == 0 {
                    return self.end_of_metadata();
                }
                Want::KeyLen
            }
            Want::KeyLen => {
                let len = le_u64(b);
                self.check_string_len(len)?;
                Want::Key(len)
            }
            Want::Key(_) => {
                self.key = self.utf8(b)?;
                Want::ValueTypeTag
            }
            Want::ValueTypeTag => {
                let id = le_u32(b);
                let ty = ValueType::from_id(id).ok_or_else(|| GgufError::UnknownValueType {
                    key: self.key.clone(),
                    ty: id,
                })?;
                Want::Value(ty)
            }
            Want::Value(ty) => match ty {
                ValueType::String => {
                    let len = le_u64(b);
                    self.check_string_len(len)?;
                    Want::StrBytes(len)
                }
                ValueType::Array => {
                    let id = le_u32(b);
                    let count = le_u64(&b[4..]);
                    let elem =
                        ValueType::from_id(id).ok_or_else(|| GgufError::UnknownValueType {
                            key: self.key.clone(),
                            ty: id,
                        })?;
                    if self.stack.len() >= self.opts.max_array_depth {
                        return Err(GgufError::NestingTooDeep(self.opts.max_array_depth));
                    }
                    self.check_count("array element", count, elem.min_size())?;
                    self.stack.push(ArrayFrame {
                        elem,
                        remaining: count,
                        // Never trust the count for an allocation.
                        items: Vec::with_capacity(count.min(1 << 16) as usize),
                    });
                    return self.value_done(None);
                }
                t => return self.value_done(Some(scalar(t, b))),
            },
            Want::StrBytes(_) => {
                let s = self.utf8(b)?;
                return self.value_done(Some(Value::String(s)));
            }
            Want::InfoNameLen => {
                let len = le_u64(b);
                self.check_string_len(len)?;
                Want::InfoName(len)
            }
            Want::InfoName(_) => {
                self.draft = InfoDraft {
                    name: self.utf8(b)?,
                    ..Default::default()
                };
                Want::InfoNDims
            }
            Want::InfoNDims => {
                let n = le_u32(b);
                if n == 0 || n > MAX_DIMS {
                    return Err(GgufError::BadDimCount {
                        name: self.draft.name.clone(),
                        n_dims: n,
                    });
                }
                Want::InfoDims(n)
            }
            Want::InfoDims(_) => {
                self.draft.dims = b.chunks_exact(8).map(le_u64).collect();
                Want::InfoType
            }
            Want::InfoType => {
                let id = le_u32(b);
                let ty = GgmlType::from_id(id).ok_or_else(|| GgufError::UnknownTensorType {
                    name: self.draft.name.clone(),
                    ty: id,
                })?;
                self.draft.ty = Some(ty);
                Want::InfoOffset
            }
            Want::InfoOffset => {
                self.push_info(le_u64(b))?;
                if (self.infos.len() as u64) < self.tensor_count {
                    Want::InfoNameLen
                } else {
                    return Ok(None);
                }
            }
        };
        Ok(Some(next))
    }

    /// A value (or, with `None`, an array header) has been read: attach it to
    /// its array or finish the metadata pair.
    fn value_done(&mut self, mut value: Option<Value>) -> Result<Option<Want>, GgufError> {
        loop {
            match (value.take(), self.stack.last_mut()) {
                (Some(v), Some(frame)) => {
                    frame.items.push(v);
                    frame.remaining -= 1;
                }
                (Some(v), None) => {
                    let key = std::mem::take(&mut self.key);
                    if key == "general.alignment" {
                        let a = v.as_u64().unwrap_or(0);
                        if a == 0 || !a.is_power_of_two() {
                            return Err(GgufError::BadAlignment(a));
                        }
                        self.alignment = a;
                    }
                    if !self.metadata.insert(key.clone(), v) {
                        return Err(GgufError::DuplicateKey(key));
                    }
                    if (self.metadata.len() as u64) < self.kv_count {
                        return Ok(Some(Want::KeyLen));
                    }
                    return self.end_of_metadata();
                }
                (None, Some(_)) => {}
                (None, None) => unreachable!("array header without a frame"),
            }
            let frame = self.stack.last().unwrap();
            if frame.remaining == 0 {
                let f = self.stack.pop().unwrap();
                value = Some(Value::Array(f.elem, f.items));
                continue;
            }
            return Ok(Some(Want::Value(frame.elem)));
        }
    }

    fn end_of_metadata(&mut self) -> Result<Option<Want>, GgufError> {
        if self.tensor_count == 0 {
            return Ok(None);
        }
        Ok(Some(Want::InfoNameLen))
    }

    fn push_info(&mut self, offset: u64) -> Result<(), GgufError> {
        let InfoDraft { name, dims, ty } = std::mem::take(&mut self.draft);
        let ty = ty.expect("type read before offset");
        let n_elems = dims.iter().try_fold(
            1u64,
            |acc, &d| if d == 0 { None } else { acc.checked_mul(d) },
        );
        let Some(n_elems) = n_elems.filter(|&n| n <= 1 << 48) else {
            return Err(GgufError::BadDims { name, dims });
        };
        if !dims[0].is_multiple_of(ty.block_elems() as u64) {
            return Err(GgufError::DimsNotBlockAligned {
                name,
                dims,
                ty: ty.name(),
                block: ty.block_elems(),
            });
        }
        let n_bytes = ty.bytes_for(n_elems).expect("whole blocks checked above");
        if !offset.is_multiple_of(self.alignment) {
            return Err(GgufError::MisalignedOffset {
                name,
                offset,
                alignment: self.alignment,
            });
        }
        if let Some(prev) = self.infos.last() {
            if offset < prev.offset {
                return Err(GgufError::TensorsOutOfOrder {
                    name,
                    offset,
                    prev_offset: prev.offset,
                });
            }
            let prev_end = prev.offset + prev.n_bytes;
            if offset < prev_end {
                return Err(GgufError::OverlappingTensors {
                    name,
                    offset,
                    prev_end,
                });
            }
        }
        if !self.names.insert(name.clone()) {
            return Err(GgufError::DuplicateTensor(name));
        }
        self.infos.push(TensorInfo {
            name,
            dims,
            ty,
            offset,
            n_bytes,
        });
        Ok(())
    }

    fn complete_header(&mut self) -> Result<(), GgufError> {
        let data_offset = self.pos.div_ceil(self.alignment) * self.alignment;
        if let Some(total) = self.opts.total_len {
            let data_len = total.saturating_sub(data_offset);
            for t in &self.infos {
                let end = t.offset.checked_add(t.n_bytes);
                if end.is_none_or(|e| e > data_len) {
                    return Err(GgufError::TensorOutOfRange {
                        name: t.name.clone(),
                        start: t.offset,
                        end: end.unwrap_or(u64::MAX),
                        data_len,
                    });
                }
            }
        }
        self.names = HashSet::new();
        self.header = Some(Header {
            version: self.version,
            metadata: std::mem::take(&mut self.metadata),
            tensors: std::mem::take(&mut self.infos),
            alignment: self.alignment,
            data_offset,
        });
        Ok(())
    }
}
