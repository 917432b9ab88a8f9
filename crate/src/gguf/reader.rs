//! A push-style GGUF reader.
//!
//! The reader is fed the file as byte chunks of any size (one byte to many MiB,
//! as a browser `ReadableStream` or `File` slices deliver them) and reports, in
//! file order, the parsed header (metadata and tensor infos) and then each
//! tensor's bytes. It keeps at most one partial header item or one tensor in
//! memory; a tensor that lies wholly inside a fed chunk is handed out without a
//! copy. Every malformed input gives a [`GgufError`]; nothing allocates more
//! than the input could justify.

use std::borrow::Cow;
use std::collections::HashSet;

use super::error::GgufError;
use super::value::{Metadata, Value, ValueType};
use crate::ggml_type::GgmlType;

const MAGIC: [u8; 4] = *b"GGUF";
/// The default `general.alignment`.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// ggml's `GGML_MAX_DIMS`.
const MAX_DIMS: u32 = 4;

/// Limits that bound what a hostile file can make the reader allocate.
#[derive(Clone, Debug)]
pub struct ReaderOptions {
    /// Total file size when known (a `File`, a `Content-Length`): counts, lengths
    /// and tensor extents are then checked against it up front.
    pub total_len: Option<u64>,
    /// The most bytes metadata and tensor infos together may take.
    pub max_header_bytes: u64,
    /// The longest single string.
    pub max_string_bytes: u64,
    /// The deepest nesting of arrays.
    pub max_array_depth: usize,
}

impl Default for ReaderOptions {
    fn default() -> Self {
        ReaderOptions {
            total_len: None,
            max_header_bytes: 256 << 20,
            max_string_bytes: 64 << 20,
            max_array_depth: 8,
        }
    }
}

/// One tensor's description from the header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    pub name: String,
    /// Dimensions, innermost first: a `[out, in]` matrix is `[in, out]` here.
    pub dims: Vec<u64>,
    pub ty: GgmlType,
    /// Offset of the tensor's bytes from the start of the data section.
    pub offset: u64,
    /// Bytes the tensor takes.
    pub n_bytes: u64,
}

impl TensorInfo {
    pub fn n_elements(&self) -> u64 {
        self.dims.iter().product()
    }
}

/// Everything before the tensor data.
#[derive(Clone, Debug, PartialEq)]
pub struct Header {
    pub version: u32,
    pub metadata: Metadata,
    pub tensors: Vec<TensorInfo>,
    pub alignment: u64,
    /// Absolute file offset of the data section.
    pub data_offset: u64,
}

impl Header {
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// Absolute end of the last tensor: the least size a complete file has.
    pub fn min_file_len(&self) -> u64 {
        self.data_offset
            + self
                .tensors
                .iter()
                .map(|t| t.offset + t.n_bytes)
                .max()
                .unwrap_or(0)
    }
}

/// A tensor's bytes, handed to the consumer once complete.
#[derive(Debug)]
pub struct TensorData<'a> {
    pub index: usize,
    pub info: &'a TensorInfo,
    pub bytes: &'a [u8],
}

/// What the reader reports, in file order.
#[derive(Debug)]
pub enum Event<'a> {
    /// The header is complete; comes once, before any tensor.
    Header(&'a Header),
    /// One complete tensor.
    Tensor(TensorData<'a>),
}

/// The next item the header parser waits for.
#[derive(Clone, Debug)]
enum Want {
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

struct ArrayFrame {
    elem: ValueType,
    remaining: u64,
    items: Vec<Value>,
}

/// Partly parsed tensor info.
#[derive(Default)]
struct InfoDraft {
    name: String,
    dims: Vec<u64>,
    ty: Option<GgmlType>,
}

enum Phase {
    Header(Want),
    /// Header done; waiting for tensor `next` (or the end).
    Data {
        next: usize,
    },
    Failed(GgufError),
}

/// The push-style reader. See the module docs.
pub struct GgufReader {
    opts: ReaderOptions,
    phase: Phase,
    /// Absolute offset of the next byte not yet consumed (`pending` not counted).
    pos: u64,
    /// Bytes of an incomplete header item or tensor.
    pending: Vec<u8>,
    // Header under construction.
    version: u32,
    tensor_count: u64,
    kv_count: u64,
    metadata: Metadata,
    key: String,
    stack: Vec<ArrayFrame>,
    infos: Vec<TensorInfo>,
    names: HashSet<String>,
    draft: InfoDraft,
    alignment: u64,
    header: Option<Header>,
}

impl Default for GgufReader {
    fn default() -> Self {
        Self::new(ReaderOptions::default())
    }
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
    pub fn new(opts: ReaderOptions) -> Self {
        GgufReader {
            opts,
            phase: Phase::Header(Want::Magic),
            pos: 0,
            pending: Vec::new(),
            version: 0,
            tensor_count: 0,
            kv_count: 0,
            metadata: Metadata::new(),
            key: String::new(),
            stack: Vec::new(),
            infos: Vec::new(),
            names: HashSet::new(),
            draft: InfoDraft::default(),
            alignment: DEFAULT_ALIGNMENT,
            header: None,
        }
    }

    /// The header, once it has been read.
    pub fn header(&self) -> Option<&Header> {
        self.header.as_ref()
    }

    /// True once every tensor has been handed out.
    pub fn is_done(&self) -> bool {
        match (&self.phase, &self.header) {
            (Phase::Data { next }, Some(h)) => *next == h.tensors.len(),
            _ => false,
        }
    }

    /// Capacity of the internal buffer holding an incomplete item or tensor:
    /// bounded by the largest header item or tensor, whatever the chunking.
    pub fn buffered_capacity(&self) -> usize {
        self.pending.capacity()
    }

    /// Bytes consumed so far (including any partial item held).
    pub fn bytes_read(&self) -> u64 {
        self.pos + self.pending.len() as u64
    }

    /// Feeds the next chunk. `on_event` is called for the header and for each
    /// tensor completed by this chunk; an error from it stops the reader.
    pub fn feed<E, F>(&mut self, chunk: &[u8], mut on_event: F) -> Result<(), E>
    where
        E: From<GgufError>,
        F: FnMut(Event<'_>) -> Result<(), E>,
    {
        if let Phase::Failed(e) = &self.phase {
            return Err(GgufError::Poisoned(Box::new(e.clone())).into());
        }
        let mut input = chunk;
        match self.run(&mut input, &mut on_event) {
            Ok(()) => Ok(()),
            Err(Stop::Gguf(e)) => {
                self.phase = Phase::Failed(e.clone());
                Err(e.into())
            }
            Err(Stop::Sink(e)) => {
                self.phase = Phase::Failed(GgufError::ConsumerFailed);
                Err(e)
            }
        }
    }

    /// Declares the end of input: an error unless the header and every tensor were read.
    pub fn finish(&mut self) -> Result<&Header, GgufError> {
        if let Phase::Failed(e) = &self.phase {
            return Err(GgufError::Poisoned(Box::new(e.clone())));
        }
        if !self.is_done() {
            let e = GgufError::Truncated {
                offset: self.bytes_read(),
                context: self.context(),
            };
            self.phase = Phase::Failed(e.clone());
            return Err(e);
        }
        Ok(self.header.as_ref().expect("done implies header"))
    }

    /// Describes what the reader is waiting for, for error messages.
    fn context(&self) -> String {
        match &self.phase {
            Phase::Header(w) => match w {
                Want::Magic | Want::Version | Want::TensorCount | Want::KvCount => {
                    "the file header".into()
                }
                Want::KeyLen | Want::Key(_) => {
                    format!(
                        "metadata key {} of {}",
                        self.metadata.len() + 1,
                        self.kv_count
                    )
                }
                Want::ValueTypeTag | Want::Value(_) | Want::StrBytes(_) => {
                    format!("the value of metadata key {:?}", self.key)
                }
                _ => format!(
                    "tensor info {} of {}",
                    self.infos.len() + 1,
                    self.tensor_count
                ),
            },
            Phase::Data { next } => match self.header.as_ref().and_then(|h| h.tensors.get(*next)) {
                Some(t) => format!("the data of tensor {:?}", t.name),
                None => "the end of the file".into(),
            },
            Phase::Failed(_) => "nothing (the reader failed)".into(),
        }
    }

    fn remaining_in_file(&self) -> Option<u64> {
        self.opts
            .total_len
            .map(|t| t.saturating_sub(self.bytes_read()))
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

    fn run<E>(
        &mut self,
        input: &mut &[u8],
        on_event: &mut dyn FnMut(Event<'_>) -> Result<(), E>,
    ) -> Result<(), Stop<E>> {
        loop {
            match &self.phase {
                Phase::Header(w) => {
                    let w = w.clone();
                    let n = self.want_size(&w);
                    let Some(unit) = self.take(input, n) else {
                        if self.bytes_read() > self.opts.max_header_bytes {
                            return Err(Stop::Gguf(GgufError::HeaderTooLarge {
                                limit: self.opts.max_header_bytes,
                            }));
                        }
                        return Ok(());
                    };
                    let next = self.header_item(w, &unit).map_err(Stop::Gguf)?;
                    if let Some(next) = next {
                        self.phase = Phase::Header(next);
                    } else {
                        self.complete_header().map_err(Stop::Gguf)?;
                        let header = self.header.as_ref().unwrap();
                        on_event(Event::Header(header)).map_err(Stop::Sink)?;
                        self.phase = Phase::Data { next: 0 };
                    }
                    if self.pos > self.opts.max_header_bytes && self.header.is_none() {
                        return Err(Stop::Gguf(GgufError::HeaderTooLarge {
                            limit: self.opts.max_header_bytes,
                        }));
                    }
                }
                Phase::Data { next } => {
                    let next = *next;
                    let header = self.header.as_ref().unwrap();
                    let Some(info) = header.tensors.get(next) else {
                        // Trailing padding after the last tensor is ignored.
                        self.pos += input.len() as u64;
                        *input = &[];
                        return Ok(());
                    };
                    let start = header.data_offset + info.offset;
                    let n_bytes = info.n_bytes;
                    // Skip the padding before this tensor without buffering it.
                    if self.pending.is_empty() && self.pos < start {
                        let skip = (start - self.pos).min(input.len() as u64);
                        *input = &input[skip as usize..];
                        self.pos += skip;
                        if self.pos < start {
                            return Ok(());
                        }
                    }
                    if self.pending.is_empty() && (input.len() as u64) >= n_bytes {
                        let (bytes, rest) = input.split_at(n_bytes as usize);
                        *input = rest;
                        self.pos += n_bytes;
                        let header = self.header.as_ref().unwrap();
                        let ev = TensorData {
                            index: next,
                            info: &header.tensors[next],
                            bytes,
                        };
                        on_event(Event::Tensor(ev)).map_err(Stop::Sink)?;
                    } else {
                        let need = n_bytes - self.pending.len() as u64;
                        let part = need.min(input.len() as u64) as usize;
                        if self.pending.capacity() < n_bytes as usize {
                            // Grow with the data that has arrived, never ahead of it.
                            let want = (self.pending.len() + part).max(self.pending.capacity() * 2);
                            self.pending
                                .reserve_exact(want.min(n_bytes as usize) - self.pending.len());
                        }
                        self.pending.extend_from_slice(&input[..part]);
                        *input = &input[part..];
                        if (self.pending.len() as u64) < n_bytes {
                            return Ok(());
                        }
                        self.pos += n_bytes;
                        let bytes = std::mem::take(&mut self.pending);
                        let header = self.header.as_ref().unwrap();
                        let ev = TensorData {
                            index: next,
                            info: &header.tensors[next],
                            bytes: &bytes,
                        };
                        on_event(Event::Tensor(ev)).map_err(Stop::Sink)?;
                    }
                    self.phase = Phase::Data { next: next + 1 };
                }
                Phase::Failed(_) => unreachable!("checked in feed"),
            }
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

enum Stop<E> {
    Gguf(GgufError),
    Sink(E),
}
