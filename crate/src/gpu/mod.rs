//! The GPU engine (wgpu natively, WebGPU in the browser).
//!
//! - [`GpuContext`]: adapter, device and queue with the adapter's own limits,
//!   detected features, typed errors from error scopes and device loss;
//! - buffer helpers: storage and uniform buffers from slices, read-back;
//! - [`keys`]: [`KernelKey`] and what it is made of (families, formats,
//!   workgroup shapes, presets), a leaf module; the pipeline cache makes one
//!   compute pipeline per key, variants through WGSL `override` constants;
//! - [`kernels`]: thin shape-checked wrappers that record dispatches;
//! - [`attention`]: the chunked KV cache and causal attention over it.
//! - [`sample`]: token sampling on the GPU, the same token as the CPU sampler.
//! - [`qmatmul`]: quantized weight matrices and their matvec, matmul and
//!   embedding kernels, bound once.
//! - [`upload`]: streaming a matrix into its GPU buffers row group by row
//!   group as its bytes arrive; [`weights`]: a whole model's tensors.

pub mod attention;
pub mod bench;
mod buffers;
mod context;
pub mod decoder;
mod error;
pub mod kernels;
pub mod keys;
mod pipelines;
pub mod profile;
pub mod qmatmul;
pub mod repack;
pub mod sample;
pub mod step;
pub mod upload;
pub mod weights;

pub use attention::{AttentionConfig, AttentionIo, KvAttention, KvFormat, KV_CHUNK};
pub use context::{GpuContext, GpuFeatures, GpuOptions};
pub use error::GpuError;
pub use keys::{
    ElementwiseOp, Epilogue, KernelKey, KernelPreset, MatvecShape, ModuleKey, QEntry, QFormat,
    ShaderFamily, ShaderFeatures,
};
/// The former name of [`qmatmul`].
pub use qmatmul as matvec;
pub use sample::GpuSampler;
pub use step::{StepParams, StepUniform};
