//! Typed errors for models whose header or tensors do not describe a usable
//! llama-architecture model.

use thiserror::Error;

#[derive(Debug, Error, Clone, PartialEq)]
pub enum ModelError {
    #[error(
        "unsupported architecture {0:?}: only \"llama\" (Code Llama, Llama 2) models are supported"
    )]
    WrongArchitecture(String),
    #[error("required metadata key {0:?} is missing")]
    MissingKey(String),
    #[error("metadata key {key:?} has a value of the wrong type or out of range: {reason}")]
    BadHyperparameter { key: String, reason: String },
    #[error("required tensor {0:?} is missing")]
    MissingTensor(String),
    #[error("tensor {name:?} has dims {found:?}, expected {expected:?}")]
    TensorShape {
        name: String,
        expected: Vec<u64>,
        found: Vec<u64>,
    },
    #[error("the vocabulary has {vocab} pieces but tensor {tensor:?} has {rows} rows")]
    VocabMismatch {
        vocab: u64,
        tensor: String,
        rows: u64,
    },
    #[error("tensor {name:?} has {got} bytes, expected {expected}")]
    TensorBytes {
        name: String,
        expected: u64,
        got: u64,
    },
}
