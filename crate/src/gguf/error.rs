//! Typed errors for malformed or hostile GGUF input.

use thiserror::Error;

/// Everything that can be wrong with GGUF bytes. Each variant names the place it
/// happened so that a user can tell a truncated download from a corrupt file.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum GgufError {
    #[error("not a GGUF file: magic bytes are {0:02x?}, expected \"GGUF\"")]
    BadMagic([u8; 4]),
    #[error("unsupported GGUF version {0} (versions 2 and 3 are supported)")]
    UnsupportedVersion(u32),
    #[error("the file ends early: {context} needs bytes past offset {offset}")]
    Truncated { offset: u64, context: String },
    #[error("{what} count {count} at offset {offset} cannot fit in the {remaining} bytes left")]
    CountTooLarge {
        what: &'static str,
        count: u64,
        offset: u64,
        remaining: u64,
    },
    #[error("string of {len} bytes at offset {offset} is longer than the limit of {limit} bytes")]
    StringTooLong { len: u64, offset: u64, limit: u64 },
    #[error("string at offset {offset} is not valid UTF-8")]
    InvalidUtf8 { offset: u64 },
    #[error("unknown metadata value type {ty} for key {key:?}")]
    UnknownValueType { key: String, ty: u32 },
    #[error("metadata arrays nest deeper than {0} levels")]
    NestingTooDeep(usize),
    #[error("metadata key {0:?} appears twice")]
    DuplicateKey(String),
    #[error("the header is larger than the limit of {limit} bytes")]
    HeaderTooLarge { limit: u64 },
    #[error("general.alignment must be a non-zero power of two, got {0}")]
    BadAlignment(u64),
    #[error("tensor {name:?} has unknown ggml type {ty}")]
    UnknownTensorType { name: String, ty: u32 },
    #[error("tensor {name:?} has {n_dims} dimensions (1 to 4 are allowed)")]
    BadDimCount { name: String, n_dims: u32 },
    #[error("tensor {name:?}: dims {dims:?} do not form whole {ty} blocks of {block} elements along the first dimension")]
    DimsNotBlockAligned {
        name: String,
        dims: Vec<u64>,
        ty: &'static str,
        block: usize,
    },
    #[error("tensor {name:?}: dims {dims:?} are zero or too large")]
    BadDims { name: String, dims: Vec<u64> },
    #[error("tensor name {0:?} appears twice")]
    DuplicateTensor(String),
    #[error("tensor {name:?}: offset {offset} is not a multiple of the alignment {alignment}")]
    MisalignedOffset {
        name: String,
        offset: u64,
        alignment: u64,
    },
    #[error("tensor {name:?} at offset {offset} starts before the previous tensor ends at {prev_end} (overlap)")]
    OverlappingTensors {
        name: String,
        offset: u64,
        prev_end: u64,
    },
    #[error("tensor {name:?} at offset {offset} comes before the previous tensor's offset {prev_offset} (tensor infos are out of order)")]
    TensorsOutOfOrder {
        name: String,
        offset: u64,
        prev_offset: u64,
    },
    #[error("tensor {name:?} spans bytes {start}..{end} of the data section, past the end of the file ({data_len} bytes of data)")]
    TensorOutOfRange {
        name: String,
        start: u64,
        end: u64,
        data_len: u64,
    },
    #[error("reading stopped because the consumer of the tensors failed")]
    ConsumerFailed,
    #[error("an earlier error stopped this reader: {0}")]
    Poisoned(Box<GgufError>),
}
