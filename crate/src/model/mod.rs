//! A llama-architecture model: its hyperparameters ([`Config`]) and typed errors.

mod config;
mod error;
pub mod synthetic;

pub use config::Config;
pub use error::ModelError;
pub use synthetic::{SyntheticModel, SyntheticQuant};
