//! GPU failure modes that cannot run in the browser harness (they destroy
//! the device or need the native limits): oversized buffers and device loss
//! as typed errors. The kernels themselves (RMSNorm, RoPE, SwiGLU/add, shape
//! and validation errors) are checked against the CPU reference by the shared
//! test bodies of `tests/common/gpu_cases.rs`, run natively by
//! `tests/gpu_portable.rs` and in headless Chromium by the same file compiled
//! to wasm32. Without an adapter these tests fail: they never skip.

use codellama_webgpu::gpu::{GpuContext, GpuError, GpuOptions};

fn context() -> GpuContext {
    match GpuContext::new(&GpuOptions::default()) {
        Ok(ctx) => {
            eprintln!(
                "adapter: {} features: {:?} max_buffer_size {} max_storage_binding {}",
                ctx.adapter_summary(),
                ctx.features(),
                ctx.limits().max_buffer_size,
                ctx.limits().max_storage_buffer_binding_size
            );
            ctx
        }
        Err(e) => panic!(
            "the GPU kernel tests need a wgpu adapter and found none ({e}); \
             install lavapipe (apt-get install mesa-vulkan-drivers libvulkan1, \
             as scripts/setup.sh does)"
        ),
    }
}

#[test]
fn oversized_buffers_are_typed_errors() {
    let ctx = context();
    let too_big = ctx.limits().max_buffer_size + 4;
    let r = ctx.block_on(ctx.storage_zeroed("huge", too_big));
    assert!(matches!(r, Err(GpuError::BufferTooLarge { .. })), "{r:?}");
}

#[test]
fn device_loss_is_a_typed_error() {
    let ctx = context();
    ctx.device().destroy();
    let _ = ctx.device().poll(wgpu::PollType::Poll);
    let r = ctx.block_on(ctx.storage_f32("after loss", &[1.0; 4]));
    eprintln!("after destroy: {r:?}");
    assert!(matches!(r, Err(GpuError::DeviceLost(_))), "{r:?}");
}
