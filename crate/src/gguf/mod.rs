//! GGUF: the file format of llama.cpp models. A streaming reader
//! ([`GgufReader`]), metadata values, and helpers for whole files.

mod error;
mod file;
mod reader;
mod value;
mod writer;

pub use error::GgufError;
pub use file::{read_bytes, read_header, read_path, read_path_pieces, GgufFile, ReadFileError};
pub use reader::{
    Event, GgufReader, Header, ReaderOptions, TensorData, TensorInfo, TensorPiece,
    DEFAULT_ALIGNMENT,
};
pub use value::{Metadata, Value, ValueType};
pub use writer::{string_array, GgufWriter, PutLe, WriterTensor};
