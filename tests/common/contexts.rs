//! The GPU contexts a native GPU test binary shares, made once per binary on
//! one device ([`GpuContext::sibling`]) so that each pipeline is compiled once
//! per binary: one per kernel preset (GPU and CPU-adapter shapes and
//! kernels), on whatever adapter there is (lavapipe in CI), each reducing its
//! matvec lanes with subgroups where the adapter allows it; and, for the
//! kernel tests, the same presets again with subgroups turned off where they
//! were on, so that both reductions are tested on one adapter.

use std::sync::{Arc, OnceLock};

use codellama_webgpu::gpu::{GpuContext, GpuOptions, KernelPreset};

/// The one device of the binary (the first preset's context); every context
/// of [`contexts`] and [`contexts_both_reductions`] is a sibling on it.
fn base() -> &'static GpuContext {
    static BASE: OnceLock<GpuContext> = OnceLock::new();
    BASE.get_or_init(|| {
        GpuContext::new(&GpuOptions {
            preset: Some(KernelPreset::ALL[0]),
            ..Default::default()
        })
        .unwrap_or_else(|e| {
            panic!(
                "no GPU adapter for the GPU tests: {e}. Install a Vulkan driver \
                 (lavapipe: apt-get install mesa-vulkan-drivers libvulkan1)"
            )
        })
    })
}

/// A context of `opts`' kernel choices on the binary's one device.
#[allow(dead_code)]
pub fn sibling(opts: &GpuOptions) -> Arc<GpuContext> {
    Arc::new(base().sibling(opts))
}

fn make(preset: KernelPreset, no_subgroups: bool) -> Arc<GpuContext> {
    sibling(&GpuOptions {
        preset: Some(preset),
        no_subgroups,
        ..Default::default()
    })
}

/// One context per preset.
#[allow(dead_code)]
pub fn contexts() -> &'static [Arc<GpuContext>] {
    static CONTEXTS: OnceLock<Vec<Arc<GpuContext>>> = OnceLock::new();
    CONTEXTS.get_or_init(|| {
        KernelPreset::ALL
            .into_iter()
            .map(|p| make(p, false))
            .collect()
    })
}

/// [`contexts`], then each preset whose decode or batch matvec reduces with
/// subgroups again without them.
#[allow(dead_code)]
pub fn contexts_both_reductions() -> &'static [Arc<GpuContext>] {
    static CONTEXTS: OnceLock<Vec<Arc<GpuContext>>> = OnceLock::new();
    CONTEXTS.get_or_init(|| {
        let mut v: Vec<Arc<GpuContext>> = contexts().to_vec();
        for ctx in contexts() {
            let batch_subgroup = matches!(
                ctx.batch_kernel(),
                codellama_webgpu::gpu::qmatmul::BatchKernel::Lanes(s) if s.subgroup
            );
            if ctx.matvec_shape().subgroup || batch_subgroup {
                v.push(make(ctx.preset(), true));
            }
        }
        v
    })
}
