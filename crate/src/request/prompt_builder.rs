//! The prompt side of a model without its weights, for the remote engine:
//! the tokenizer and the header facts of a GGUF file, read from the file's
//! first bytes only ([`GgufHeaderFeed`]), or a Hugging Face `tokenizer.json`;
//! then the same requests as the local engine turned into token ids and a
//! server body ([`PromptBuilder`]). The wasm class `WasmPromptBuilder` wraps
//! these; natively they are what the tests drive.
//!
//! The header feed runs the streaming [`GgufReader`] in piece mode until its
//! header event, then drops it: tensor bytes that arrive in the same chunk
//! are handed out as slices of that chunk and ignored (never buffered), and
//! nothing after the header is read, so a Range request for the first few
//! MiB of a multi-GB file is all the remote engine downloads.

use serde::Serialize;

use super::remote::{prepare_remote, RemoteRequest, ServerFlavor};
use crate::error::Error;
use crate::gguf::{Event, GgufReader, Header, Metadata, ReaderOptions};
use crate::tokenizer::Tokenizer;

/// Where the tokenizer came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum TokenizerSource {
    #[serde(rename = "gguf")]
    Gguf,
    #[serde(rename = "tokenizer.json")]
    TokenizerJson,
}

/// What is known of the model without its weights (`infoJson`). The shape
/// fields are `None` for a `tokenizer.json` (it has none) and for a GGUF
/// header that lacks the key.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PromptBuilderInfo {
    pub vocab_size: usize,
    /// `{arch}.context_length`: the training context.
    pub context_length: Option<u64>,
    /// `general.name` ("" when absent).
    pub name: String,
    /// `general.architecture` ("" when absent).
    pub architecture: String,
    pub n_layers: Option<u64>,
    pub dim: Option<u64>,
    pub n_heads: Option<u64>,
    pub n_kv_heads: Option<u64>,
    pub source: TokenizerSource,
}

impl PromptBuilderInfo {
    fn from_metadata(md: &Metadata, vocab_size: usize) -> PromptBuilderInfo {
        let text = |k: &str| md.get_str(k).unwrap_or_default().to_string();
        let architecture = text("general.architecture");
        let num = |k: &str| md.get(&format!("{architecture}.{k}"))?.as_u64();
        PromptBuilderInfo {
            vocab_size,
            context_length: num("context_length"),
            name: text("general.name"),
            n_layers: num("block_count"),
            dim: num("embedding_length"),
            n_heads: num("attention.head_count"),
            n_kv_heads: num("attention.head_count_kv").or_else(|| num("attention.head_count")),
            architecture,
            source: TokenizerSource::Gguf,
        }
    }
}

/// A GGUF file's first bytes, fed in chunks of any size until its header
/// (metadata and tensor infos) is complete.
pub struct GgufHeaderFeed {
    reader: GgufReader,
}

impl Default for GgufHeaderFeed {
    fn default() -> Self {
        Self::new()
    }
}

impl GgufHeaderFeed {
    pub fn new() -> GgufHeaderFeed {
        GgufHeaderFeed {
            reader: GgufReader::new(ReaderOptions {
                pieces: true,
                ..Default::default()
            }),
        }
    }

    /// Bytes fed so far.
    pub fn bytes_read(&self) -> u64 {
        self.reader.bytes_read()
    }

    /// Feeds the next chunk. Returns the builder once the header is complete
    /// (the rest of the chunk is not looked at), `None` while it needs more
    /// bytes. A malformed header is `Error::Gguf`, a vocabulary the tokenizer
    /// cannot be built from `Error::Tokenizer`; the feed is unusable after
    /// an error.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<Option<PromptBuilder>, Error> {
        let mut built: Option<PromptBuilder> = None;
        self.reader.feed(chunk, |ev| -> Result<(), Error> {
            if let Event::Header(h) = ev {
                if built.is_none() {
                    built = Some(PromptBuilder::from_header(h)?);
                }
            }
            Ok(())
        })?;
        Ok(built)
    }
}

/// A tokenizer and the header facts: requests to prompt ids and server bodies.
pub struct PromptBuilder {
    tok: Tokenizer,
    info: PromptBuilderInfo,
    /// GGUF: the bytes the header takes (up to the data section).
    header_bytes: Option<u64>,
}

impl PromptBuilder {
    /// From a parsed GGUF header.
    pub fn from_header(h: &Header) -> Result<PromptBuilder, Error> {
        let tok = Tokenizer::from_metadata(&h.metadata)?;
        let info = PromptBuilderInfo::from_metadata(&h.metadata, tok.vocab_size());
        Ok(PromptBuilder {
            tok,
            info,
            header_bytes: Some(h.data_offset),
        })
    }

    /// From a Hugging Face `tokenizer.json` document.
    pub fn from_tokenizer_json(json: &str) -> Result<PromptBuilder, Error> {
        let tok = Tokenizer::from_json(json)?;
        let info = PromptBuilderInfo {
            vocab_size: tok.vocab_size(),
            context_length: None,
            name: String::new(),
            architecture: String::new(),
            n_layers: None,
            dim: None,
            n_heads: None,
            n_kv_heads: None,
            source: TokenizerSource::TokenizerJson,
        };
        Ok(PromptBuilder {
            tok,
            info,
            header_bytes: None,
        })
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tok
    }

    pub fn info(&self) -> &PromptBuilderInfo {
        &self.info
    }

    /// GGUF: the header's length up to the (aligned) start of the tensor
    /// data, the most a Range request for it needs.
    pub fn header_bytes(&self) -> Option<u64> {
        self.header_bytes
    }

    /// The exact prompt tokens of a request (JSON as the local engine takes
    /// it) in a context of `context_len` positions.
    pub fn count_tokens(&self, request_json: &str, context_len: usize) -> Result<usize, Error> {
        let req = super::parse(request_json)?;
        Ok(super::prepare(&self.tok, req, context_len)?.prompt.len())
    }

    /// The request as a `/v1/completions` body for `flavor`, with what the
    /// client applies itself ([`RemoteRequest`]).
    pub fn prepare(
        &self,
        request_json: &str,
        context_len: usize,
        flavor: ServerFlavor,
        model: Option<&str>,
    ) -> Result<RemoteRequest, Error> {
        let req = super::parse(request_json)?;
        prepare_remote(&self.tok, req, context_len, flavor, model)
    }
}
