//! The GPU engine's typed errors: wgpu validation, memory and device-loss
//! failures, limits and shape mismatches, never a panic.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum GpuError {
    #[error("no GPU adapter available: {0}")]
    NoAdapter(String),
    #[error("cannot create a GPU device: {0}")]
    RequestDevice(String),
    #[error("GPU validation error: {0}")]
    Validation(String),
    #[error("GPU out of memory")]
    OutOfMemory,
    #[error("GPU internal error: {0}")]
    Internal(String),
    #[error("GPU device lost: {0}")]
    DeviceLost(String),
    #[error("{what}: {size} bytes exceed the device's {limit_name} of {limit} bytes")]
    BufferTooLarge {
        what: String,
        size: u64,
        limit_name: &'static str,
        limit: u64,
    },
    #[error("{kernel}: {detail}")]
    Shape {
        kernel: &'static str,
        detail: String,
    },
    /// The KV cache was asked to hold `len` positions, over its `max`.
    #[error("the KV cache holds at most {max} positions, {len} asked for")]
    ContextFull { len: usize, max: usize },
    #[error("cannot read a GPU buffer back: {0}")]
    ReadBack(String),
    /// A streaming upload was given more or fewer bytes than its tensor holds
    /// (`got` counts every byte given, the extra ones included).
    #[error("{tensor}: the tensor takes {expected} bytes, {got} were given")]
    UploadLength {
        tensor: String,
        expected: u64,
        got: u64,
    },
    /// A piece of a tensor did not start where the bytes given so far end.
    #[error("{tensor}: a piece at byte {offset}, but {expected} bytes were given so far (pieces must come in order, without gaps)")]
    UploadOrder {
        tensor: String,
        expected: u64,
        offset: u64,
    },
    /// The GPU sampler's verdict (e.g. no finite logits) or a bad setting.
    #[error(transparent)]
    Sampler(#[from] crate::sampler::SamplerError),
}

impl GpuError {
    /// A shape error for `kernel`.
    pub fn shape(kernel: &'static str, detail: impl Into<String>) -> GpuError {
        GpuError::Shape {
            kernel,
            detail: detail.into(),
        }
    }
}

impl From<wgpu::Error> for GpuError {
    fn from(e: wgpu::Error) -> GpuError {
        match e {
            wgpu::Error::OutOfMemory { .. } => GpuError::OutOfMemory,
            wgpu::Error::Validation { description, .. } => GpuError::Validation(description),
            wgpu::Error::Internal { description, .. } => GpuError::Internal(description),
        }
    }
}
