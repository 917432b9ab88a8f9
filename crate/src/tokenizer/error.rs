//! Typed errors of the tokenizer.

use thiserror::Error;

#[derive(Debug, Error, Clone, PartialEq)]
pub enum TokenizerError {
    #[error("unsupported tokenizer model {found:?} (expected \"llama\", SentencePiece BPE)")]
    WrongModel { found: String },
    #[error("missing metadata key {0}")]
    MissingKey(&'static str),
    #[error("metadata key {key} has the wrong type (expected {expected})")]
    WrongType {
        key: &'static str,
        expected: &'static str,
    },
    #[error("metadata array {key} has {found} entries, but there are {expected} tokens")]
    LengthMismatch {
        key: &'static str,
        expected: usize,
        found: usize,
    },
    #[error("the vocabulary is empty")]
    EmptyVocab,
    #[error("the vocabulary has {0} pieces, more than token ids can address")]
    VocabTooLarge(usize),
    #[error("token {id} has invalid token type {value}")]
    InvalidTokenType { id: usize, value: i64 },
    #[error("token {id} is typed as a byte but its piece {piece:?} is not <0xNN>")]
    InvalidBytePiece { id: usize, piece: String },
    #[error("the vocabulary has no byte-fallback piece <0x{0:02X}>")]
    MissingBytePiece(u8),
    #[error("{key} = {id} is out of range for a vocabulary of {vocab_size} pieces")]
    SpecialIdOutOfRange {
        key: &'static str,
        id: i64,
        vocab_size: usize,
    },
    #[error("no {0} token in this vocabulary")]
    MissingSpecial(&'static str),
    #[error("this model has no infill tokens ({0} is missing); infilling needs Code Llama 7B/13B")]
    NoInfillTokens(&'static str),
    #[error("token id {id} is out of range for a vocabulary of {vocab_size} pieces")]
    IdOutOfRange { id: u32, vocab_size: usize },
    #[error("encoding produced token {id}, which may not come from user text")]
    ForbiddenToken { id: u32 },
    #[error("this tokenizer cannot encode without the space prefix")]
    NoPrefixUnsupported,
    #[error("building the tokenizer failed: {0}")]
    Build(String),
    #[error("encoding failed: {0}")]
    Encode(String),
    #[error("tokenizer.json: {0}")]
    Json(String),
}
