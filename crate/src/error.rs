//! The crate's error type: one enum over each part's typed errors.

use thiserror::Error;

use crate::gguf::GgufError;

#[derive(Debug, Error)]
pub enum Error {
    #[error(transparent)]
    Gguf(#[from] GgufError),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
