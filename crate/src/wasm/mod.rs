//! The browser engine (wasm32 only): [`WasmEngine`], the JSON-in/JSON-out
//! API the TypeScript package (`web/`) wraps. The contract (names, JSON
//! shapes, error names) is `web/README.md` (types in `web/src/types.ts`).
//!
//! - [`engine`]: the `#[wasm_bindgen]` type, its state and busy handling;
//! - [`bench`]: `codellama bench` on a device of its own;
//! - [`load`]: streaming a GGUF file onto the GPU chunk by chunk;
//! - [`prompt_builder`]: the remote engine's half (no GPU): `WasmPromptBuilder`
//!   (tokenizer from a GGUF header or `tokenizer.json`, server request bodies)
//!   and `WasmLineRules`;
//! - [`generate`]: a request to prompt tokens, options and timings;
//! - [`json`]: the JSON shapes;
//! - [`errors`]: error names and the one conversion into a JS `Error`;
//! - [`platform`]: clock, panic hook, adapter description.

pub mod bench;
pub mod engine;
pub mod errors;
pub mod generate;
pub mod json;
pub mod load;
pub mod platform;
pub mod prompt_builder;

pub use engine::WasmEngine;
pub use prompt_builder::{WasmLineRules, WasmPromptBuilder};

/// Counts the heap bytes in use (`WasmEngine::wasmHeapBytes`).
#[global_allocator]
static ALLOC: crate::alloc::Counting = crate::alloc::Counting;
pub use errors::{ErrorName, WasmError};
