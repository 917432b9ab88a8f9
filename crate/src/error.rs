//! The crate's error type: one enum over each part's typed errors.

use thiserror::Error;

use crate::gguf::GgufError;
use crate::prompt::PromptError;
use crate::tokenizer::TokenizerError;

#[derive(Debug, Error)]
pub enum Error {
    #[error(transparent)]
    Gguf(#[from] GgufError),
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    #[error(transparent)]
    Prompt(#[from] PromptError),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
