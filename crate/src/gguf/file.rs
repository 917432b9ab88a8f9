//! Conveniences over [`GgufReader`]: reading a native file in chunks, and
//! collecting a small file's tensors in memory (tests, tools).

use std::io::Read;
use std::path::Path;

use thiserror::Error;

use super::error::GgufError;
use super::reader::{Event, GgufReader, Header, ReaderOptions};

/// Reading a file failed: either the OS or the content.
#[derive(Debug, Error)]
pub enum ReadFileError<E = GgufError> {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Content { path: String, source: E },
}

/// The chunk size used for native files.
const CHUNK: usize = 4 << 20;

/// How [`stream_file`] reads.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Until the header is complete.
    HeaderOnly,
    /// Every tensor, whole.
    Whole,
    /// Every tensor, in pieces.
    Pieces,
}

/// Feeds a native file to a reader in chunks until the end (or, with
/// `Mode::HeaderOnly`, until the header is complete), then returns the header.
fn stream_file<E, F>(path: &Path, mode: Mode, mut on_event: F) -> Result<Header, ReadFileError<E>>
where
    E: From<GgufError>,
    F: FnMut(Event<'_>) -> Result<(), E>,
{
    let shown = path.display().to_string();
    let io = |source| ReadFileError::Io {
        path: shown.clone(),
        source,
    };
    let content = |source| ReadFileError::Content {
        path: shown.clone(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let total = file.metadata().map_err(io)?.len();
    let header_only = mode == Mode::HeaderOnly;
    let mut reader = GgufReader::new(ReaderOptions {
        total_len: Some(total),
        pieces: mode == Mode::Pieces,
        ..Default::default()
    });
    let mut buf = vec![0u8; if header_only { 1 << 20 } else { CHUNK }];
    loop {
        if header_only {
            if let Some(h) = reader.header() {
                return Ok(h.clone());
            }
        }
        let n = file.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        reader.feed(&buf[..n], &mut on_event).map_err(content)?;
    }
    reader.finish().cloned().map_err(|e| content(e.into()))
}

/// Streams a native file through a [`GgufReader`], calling `on_event` for the
/// header and each whole tensor. Memory use stays around one tensor.
pub fn read_path<E, F>(path: &Path, on_event: F) -> Result<Header, ReadFileError<E>>
where
    E: From<GgufError>,
    F: FnMut(Event<'_>) -> Result<(), E>,
{
    stream_file(path, Mode::Whole, on_event)
}

/// Streams a native file through a [`GgufReader`] in piece mode, calling
/// `on_event` for the header and each [`Event::TensorPiece`]. Memory use stays
/// around one read chunk (4 MiB), whatever the tensor sizes.
pub fn read_path_pieces<E, F>(path: &Path, on_event: F) -> Result<Header, ReadFileError<E>>
where
    E: From<GgufError>,
    F: FnMut(Event<'_>) -> Result<(), E>,
{
    stream_file(path, Mode::Pieces, on_event)
}

/// Reads only the header of a native file (stops reading once it is complete;
/// tensors completed in the last chunk read are skipped).
pub fn read_header(path: &Path) -> Result<Header, ReadFileError> {
    stream_file(path, Mode::HeaderOnly, |_| Ok(()))
}

/// A whole GGUF file in memory: the header and every tensor's bytes.
#[derive(Clone, Debug)]
pub struct GgufFile {
    pub header: Header,
    /// Tensor bytes, in the order of `header.tensors`.
    pub data: Vec<Vec<u8>>,
}

impl GgufFile {
    /// The bytes of the tensor named `name`.
    pub fn tensor_bytes(&self, name: &str) -> Option<&[u8]> {
        let i = self.header.tensors.iter().position(|t| t.name == name)?;
        Some(&self.data[i])
    }

    /// Reads a whole file into memory. For small models and tools.
    pub fn open(path: &Path) -> Result<GgufFile, ReadFileError> {
        let mut data = Vec::new();
        let header = read_path(path, |ev| {
            if let Event::Tensor(t) = ev {
                data.push(t.bytes.to_vec());
            }
            Ok::<(), GgufError>(())
        })?;
        Ok(GgufFile { header, data })
    }
}

/// Parses a complete file held in memory.
pub fn read_bytes(bytes: &[u8]) -> Result<GgufFile, GgufError> {
    let mut reader = GgufReader::new(ReaderOptions {
        total_len: Some(bytes.len() as u64),
        ..Default::default()
    });
    let mut data = Vec::new();
    reader.feed(bytes, |ev| {
        if let Event::Tensor(t) = ev {
            data.push(t.bytes.to_vec());
        }
        Ok::<(), GgufError>(())
    })?;
    let header = reader.finish()?.clone();
    Ok(GgufFile { header, data })
}
