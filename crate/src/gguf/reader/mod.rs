//! A push-style GGUF reader.
//!
//! The reader is fed the file as byte chunks of any size (one byte to many MiB,
//! as a browser `ReadableStream` or `File` slices deliver them) and reports, in
//! file order, the parsed header (metadata and tensor infos) and then the
//! tensors' bytes. Every malformed input gives a [`GgufError`]; nothing
//! allocates more than the input could justify.
//!
//! Tensor bytes come out in one of two modes ([`ReaderOptions::pieces`]):
//!
//! - **whole** (the default): one [`Event::Tensor`] per tensor with all of its
//!   bytes. A tensor that lies wholly inside a fed chunk is handed out without
//!   a copy; one that spans chunks is collected in an internal buffer first, so
//!   the reader may hold up to one tensor.
//! - **pieces**: [`Event::TensorPiece`]s, slices of the fed chunk (never a
//!   copy, never buffered), so the reader holds at most one partial header item
//!   whatever the tensor sizes.
//!
//! Invariants, whatever the chunking:
//!
//! - [`Event::Header`] comes exactly once, before any tensor event; its header
//!   is the same in both modes, and every header check (counts, lengths,
//!   alignment, offsets, extents against [`ReaderOptions::total_len`]) runs
//!   before it.
//! - Tensors come in header order (which is file order: offsets ascend and
//!   never overlap). Padding between tensors and after the last is skipped.
//! - In piece mode the pieces of tensor `index` come in order, contiguous:
//!   the first has `offset == 0`, each next one starts where the last ended,
//!   and together they cover its `info.n_bytes` bytes exactly once. No piece is
//!   empty, and every piece of one tensor comes before any of the next. The last
//!   piece is the one with `offset + bytes.len() == info.n_bytes`
//!   ([`TensorPiece::is_last`]). One chunk may yield pieces of several tensors,
//!   and one tensor may span many chunks.
//! - [`GgufReader::finish`] fails with [`GgufError::Truncated`] unless every
//!   tensor was handed out completely; after any error the reader is poisoned
//!   (every later call fails with [`GgufError::Poisoned`]), and an error from
//!   the consumer's callback stops it the same way.
//!
//! The header half of the parser lives in `header.rs`, the data half in
//! `data.rs`.

mod data;
mod header;

use std::collections::HashSet;

use self::header::{ArrayFrame, InfoDraft, Want};
use super::error::GgufError;
use super::value::Metadata;
use crate::ggml_type::GgmlType;

/// The default `general.alignment`.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// ggml's `GGML_MAX_DIMS`.
const MAX_DIMS: u32 = 4;

/// Limits that bound what a hostile file can make the reader allocate, and
/// how tensor bytes are handed out.
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
    /// Hand tensors out as [`Event::TensorPiece`]s (slices of each fed chunk)
    /// instead of whole [`Event::Tensor`]s (see the module docs).
    pub pieces: bool,
}

impl Default for ReaderOptions {
    fn default() -> Self {
        ReaderOptions {
            total_len: None,
            max_header_bytes: 256 << 20,
            max_string_bytes: 64 << 20,
            max_array_depth: 8,
            pieces: false,
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

/// A tensor's bytes, handed to the consumer once complete (whole mode).
#[derive(Debug)]
pub struct TensorData<'a> {
    pub index: usize,
    pub info: &'a TensorInfo,
    pub bytes: &'a [u8],
}

/// A contiguous, non-empty run of a tensor's bytes (piece mode): a slice of
/// the chunk being fed.
#[derive(Debug)]
pub struct TensorPiece<'a> {
    /// The tensor's position in [`Header::tensors`].
    pub index: usize,
    pub info: &'a TensorInfo,
    /// Where `bytes` start within the tensor (0 for its first piece).
    pub offset: u64,
    pub bytes: &'a [u8],
}

impl TensorPiece<'_> {
    /// Whether this is the tensor's first piece.
    pub fn is_first(&self) -> bool {
        self.offset == 0
    }

    /// Whether this piece completes the tensor.
    pub fn is_last(&self) -> bool {
        self.offset + self.bytes.len() as u64 == self.info.n_bytes
    }
}

/// What the reader reports, in file order.
#[derive(Debug)]
pub enum Event<'a> {
    /// The header is complete; comes once, before any tensor.
    Header(&'a Header),
    /// One complete tensor (whole mode).
    Tensor(TensorData<'a>),
    /// Part of a tensor (piece mode).
    TensorPiece(TensorPiece<'a>),
}

enum Phase {
    Header(Want),
    /// Header done; waiting for the rest of tensor `next` (or the end), of
    /// which `done` bytes were handed out as pieces (always 0 in whole mode).
    Data {
        next: usize,
        done: u64,
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
            (Phase::Data { next, .. }, Some(h)) => *next == h.tensors.len(),
            _ => false,
        }
    }

    /// Capacity of the internal buffer holding an incomplete item or tensor:
    /// bounded by the largest header item or (in whole mode) tensor, whatever
    /// the chunking.
    pub fn buffered_capacity(&self) -> usize {
        self.pending.capacity()
    }

    /// Bytes consumed so far (including any partial item held).
    pub fn bytes_read(&self) -> u64 {
        self.pos + self.pending.len() as u64
    }

    /// Feeds the next chunk. `on_event` is called for the header and for each
    /// tensor completed by this chunk (whole mode) or each piece of a tensor it
    /// holds (piece mode); an error from it stops the reader.
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
            Phase::Data { next, .. } => {
                match self.header.as_ref().and_then(|h| h.tensors.get(*next)) {
                    Some(t) => format!("the data of tensor {:?}", t.name),
                    None => "the end of the file".into(),
                }
            }
            Phase::Failed(_) => "nothing (the reader failed)".into(),
        }
    }

    fn remaining_in_file(&self) -> Option<u64> {
        self.opts
            .total_len
            .map(|t| t.saturating_sub(self.bytes_read()))
    }

    fn run<E>(
        &mut self,
        input: &mut &[u8],
        on_event: &mut dyn FnMut(Event<'_>) -> Result<(), E>,
    ) -> Result<(), Stop<E>> {
        loop {
            let more = match &self.phase {
                Phase::Header(w) => {
                    let w = w.clone();
                    self.header_step(w, input, on_event)?
                }
                &Phase::Data { next, done } => {
                    if self.opts.pieces {
                        self.piece_step(next, done, input, on_event)?
                    } else {
                        self.whole_step(next, input, on_event)?
                    }
                }
                Phase::Failed(_) => unreachable!("checked in feed"),
            };
            if !more {
                return Ok(());
            }
        }
    }
}

enum Stop<E> {
    Gguf(GgufError),
    Sink(E),
}
