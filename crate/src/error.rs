//! The crate's error type: one enum over each part's typed errors.

use thiserror::Error;

use crate::gguf::GgufError;
use crate::quant::QuantError;

#[derive(Debug, Error)]
pub enum Error {
    #[error(transparent)]
    Gguf(#[from] GgufError),
    #[error(transparent)]
    Quant(#[from] QuantError),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
