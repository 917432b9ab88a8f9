//! codellama-webgpu: Code Llama inference on WebGPU.
//!
//! The pieces, in the order a request flows through them:
//! - [`gguf`]: a streaming GGUF reader (push bytes in, get tensors out);
//! - [`quant`]: ggml block formats and their CPU dequantization;
//! - [`model`]: hyperparameters and tensors of a llama-architecture model;
//! - [`tokenizer`]: SentencePiece BPE built from the GGUF vocabulary;
//! - [`prompt`]: Meta's completion, infill and instruct-chat formats;
//! - [`request`]: a generation request to prompt tokens and options (per-mode defaults, infill budget);
//! - [`cpu`]: the plain f32 reference decoder every GPU kernel is checked against;
//! - [`gpu`]: the GPU engine (wgpu natively, WebGPU in the browser): device, pipelines, kernels;
//! - [`sampler`] and [`generate`]: token selection and the generation loop;
//! - [`speculative`]: prompt-lookup drafts the generation loop verifies several at a time;
//! - `wasm` (wasm32 only): `WasmEngine`, the JSON API the browser package wraps.

pub mod alloc;
pub mod clock;
pub mod cpu;
pub mod error;
pub mod generate;
pub mod ggml_type;
pub mod gguf;
pub mod gpu;
pub mod logprobs;
pub mod model;
pub mod npy;
pub mod prompt;
pub mod quant;
pub mod request;
pub mod sampler;
pub mod speculative;
pub mod tokenizer;
#[cfg(target_arch = "wasm32")]
pub mod wasm;

pub use error::Error;
pub use ggml_type::GgmlType;
