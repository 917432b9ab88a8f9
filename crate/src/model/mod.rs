//! A llama-architecture model: its hyperparameters ([`Config`]), its tensor layout
//! ([`tensors`]), the KV cache format ([`KvFormat`]) and typed errors.

mod config;
mod error;
mod kv_format;
pub mod synthetic;
pub mod tensors;

pub use config::Config;
pub use error::ModelError;
pub use kv_format::KvFormat;
pub use synthetic::{SyntheticModel, SyntheticQuant};
