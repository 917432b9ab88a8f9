//! The crate's error type: one enum over each part's typed errors.

use thiserror::Error;

use crate::cpu::DecodeError;
use crate::generate::ContextOverflow;
use crate::gguf::GgufError;
use crate::gpu::GpuError;
use crate::model::ModelError;
use crate::prompt::PromptError;
use crate::quant::QuantError;
use crate::request::RequestError;
use crate::sampler::SamplerError;
use crate::speculative::SpeculativeError;
use crate::tokenizer::TokenizerError;

#[derive(Debug, Error)]
pub enum Error {
    #[error(transparent)]
    Gguf(#[from] GgufError),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Quant(#[from] QuantError),
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    #[error(transparent)]
    Prompt(#[from] PromptError),
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error(transparent)]
    Sampler(#[from] SamplerError),
    #[error(transparent)]
    Speculative(#[from] SpeculativeError),
    #[error(transparent)]
    Gpu(#[from] GpuError),
    #[error(transparent)]
    ContextOverflow(#[from] ContextOverflow),
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
