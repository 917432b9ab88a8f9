//! The per-submit uniform every kernel of a forward pass may read.
//!
//! A forward pass over `tokens` new tokens at positions `pos..pos + tokens` is
//! one command encoder and one submit. Values that change between submits
//! live in one small uniform buffer, written with `queue.write_buffer` just
//! before the submit; everything else (shapes, weights, bind groups, static
//! uniforms) is created once. In WGSL:
//!
//! ```wgsl
//! struct Step {
//!     tokens: u32,       // tokens in this batch (1 when decoding)
//!     pos: u32,          // position of the batch's first token
//!     kv_len: u32,       // positions in the KV cache once the batch is written: pos + tokens
//!     sample_step: u32,  // the sampler's step counter (its RNG draw index)
//! }
//! ```

/// Host copy of the WGSL `Step` uniform (16 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct StepParams {
    pub tokens: u32,
    pub pos: u32,
    pub kv_len: u32,
    pub sample_step: u32,
}

const _: () = assert!(std::mem::size_of::<StepParams>() == 16);

impl StepParams {
    /// A batch of `tokens` tokens starting at position `pos`.
    pub fn batch(pos: usize, tokens: usize, sample_step: u32) -> StepParams {
        StepParams {
            tokens: tokens as u32,
            pos: pos as u32,
            kv_len: (pos + tokens) as u32,
            sample_step,
        }
    }
}

/// The uniform buffer holding a [`StepParams`], created once per decoder.
#[derive(Debug)]
pub struct StepUniform {
    buffer: wgpu::Buffer,
}

impl StepUniform {
    pub fn new(ctx: &super::GpuContext) -> StepUniform {
        StepUniform {
            buffer: ctx.uniform("step", &StepParams::default()),
        }
    }

    /// Writes `step`; it takes effect at the next submit.
    pub fn write(&self, ctx: &super::GpuContext, step: &StepParams) {
        ctx.queue()
            .write_buffer(&self.buffer, 0, bytemuck::bytes_of(step));
    }

    pub fn buffer(&self) -> &wgpu::Buffer {
        &self.buffer
    }
}
