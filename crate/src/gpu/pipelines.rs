//! Compute pipelines, created once per kernel variant and cached.
//!
//! Each kernel family is one WGSL file under `shaders/`; variants are selected
//! through WGSL `override` constants passed as pipeline constants, never by
//! editing shader text.

use std::collections::HashMap;
use std::sync::Mutex;

use super::attention::KvFormat;
use super::context::GpuContext;
use super::error::GpuError;
use super::qmatmul::{qmatmul_constants, MatvecShape, QEntry, QFormat};

/// A WGSL kernel family: one file under `shaders/`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ShaderFamily {
    Norm,
    Rope,
    Elementwise,
    /// Quantized matrix products and embedding lookup (`gpu::qmatmul`).
    QMatmul,
    /// Memory-bandwidth probes for the benchmark.
    Bandwidth,
    /// Attention over the chunked KV cache (`gpu::attention`).
    Attention,
    /// Token sampling (`gpu::sample`).
    Sample,
}

impl ShaderFamily {
    /// Every family, one per file under `shaders/`.
    pub const ALL: [ShaderFamily; 7] = [
        ShaderFamily::Norm,
        ShaderFamily::Rope,
        ShaderFamily::Elementwise,
        ShaderFamily::QMatmul,
        ShaderFamily::Bandwidth,
        ShaderFamily::Attention,
        ShaderFamily::Sample,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ShaderFamily::Norm => "norm.wgsl",
            ShaderFamily::Rope => "rope.wgsl",
            ShaderFamily::Elementwise => "elementwise.wgsl",
            ShaderFamily::QMatmul => "qmatmul.wgsl",
            ShaderFamily::Bandwidth => "bandwidth.wgsl",
            ShaderFamily::Attention => "attention.wgsl",
            ShaderFamily::Sample => "sample.wgsl",
        }
    }

    pub fn source(self) -> &'static str {
        match self {
            ShaderFamily::Norm => include_str!("../../../shaders/norm.wgsl"),
            ShaderFamily::Rope => include_str!("../../../shaders/rope.wgsl"),
            ShaderFamily::Elementwise => include_str!("../../../shaders/elementwise.wgsl"),
            ShaderFamily::QMatmul => include_str!("../../../shaders/qmatmul.wgsl"),
            ShaderFamily::Bandwidth => include_str!("../../../shaders/bandwidth.wgsl"),
            ShaderFamily::Attention => include_str!("../../../shaders/attention.wgsl"),
            ShaderFamily::Sample => include_str!("../../../shaders/sample.wgsl"),
        }
    }
}

/// Elementwise operations of `shaders/elementwise.wgsl` (its `OP` constant).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ElementwiseOp {
    /// `out = a + b` (residual add).
    Add,
    /// `out = silu(a) * b` (SwiGLU).
    SwiGlu,
}

impl ElementwiseOp {
    pub const ALL: [ElementwiseOp; 2] = [ElementwiseOp::Add, ElementwiseOp::SwiGlu];

    fn code(self) -> u32 {
        match self {
            ElementwiseOp::Add => 0,
            ElementwiseOp::SwiGlu => 1,
        }
    }
}

/// One compute pipeline: a kernel family, its entry point and the values of
/// its `override` constants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KernelKey {
    /// `shaders/norm.wgsl`: RMSNorm, one workgroup per row.
    RmsNorm,
    /// `shaders/rope.wgsl`: RoPE on adjacent pairs.
    Rope,
    /// `shaders/elementwise.wgsl` with `OP` selecting the operation.
    Elementwise(ElementwiseOp),
    /// `shaders/bandwidth.wgsl`: `copy` (true) or `read` (false).
    Bandwidth { copy: bool },
    /// `shaders/attention.wgsl` `kv_write`: k, v of a batch into one KV chunk.
    KvWrite(KvFormat),
    /// `shaders/attention.wgsl` `attend`: one chunk's scores merged into the
    /// running online-softmax state.
    AttendChunk(KvFormat),
    /// `shaders/attention.wgsl` `finalize`: `out = acc / l`.
    AttendFinalize,
    /// `shaders/sample.wgsl`: token sampling, one workgroup.
    Sample,
    /// `shaders/qmatmul.wgsl`: entry point `entry` for weights in `format`,
    /// adding to its output when `accumulate` (never for [`QEntry::Embed`]);
    /// `shape` is matvec's workgroup shape ([`MatvecShape::GPU`] for the
    /// other entries).
    QMatmul {
        entry: QEntry,
        format: QFormat,
        accumulate: bool,
        shape: MatvecShape,
    },
}

impl KernelKey {
    /// Every kernel variant the engine can ask for (each is validated by
    /// `naga` in the tests with its constants applied).
    pub fn all() -> Vec<KernelKey> {
        let mut keys = vec![KernelKey::RmsNorm, KernelKey::Rope];
        keys.extend(ElementwiseOp::ALL.map(KernelKey::Elementwise));
        keys.extend([true, false].map(|copy| KernelKey::Bandwidth { copy }));
        keys.extend(KvFormat::ALL.map(KernelKey::KvWrite));
        keys.extend(KvFormat::ALL.map(KernelKey::AttendChunk));
        keys.push(KernelKey::AttendFinalize);
        keys.push(KernelKey::Sample);
        for entry in QEntry::ALL {
            for format in QFormat::ALL {
                for accumulate in [false, true] {
                    if accumulate && !entry.accumulates() {
                        continue;
                    }
                    let shapes: &[MatvecShape] = match entry {
                        QEntry::Matvec => &MatvecShape::ALL,
                        _ => &[MatvecShape::GPU],
                    };
                    for &shape in shapes {
                        keys.push(KernelKey::QMatmul {
                            entry,
                            format,
                            accumulate,
                            shape,
                        });
                    }
                }
            }
        }
        keys
    }

    pub fn family(self) -> ShaderFamily {
        match self {
            KernelKey::RmsNorm => ShaderFamily::Norm,
            KernelKey::Rope => ShaderFamily::Rope,
            KernelKey::Elementwise(_) => ShaderFamily::Elementwise,
            KernelKey::Bandwidth { .. } => ShaderFamily::Bandwidth,
            KernelKey::KvWrite(_) | KernelKey::AttendChunk(_) | KernelKey::AttendFinalize => {
                ShaderFamily::Attention
            }
            KernelKey::Sample => ShaderFamily::Sample,
            KernelKey::QMatmul { .. } => ShaderFamily::QMatmul,
        }
    }

    pub fn entry_point(self) -> &'static str {
        match self {
            KernelKey::Bandwidth { copy: true } => "stream_copy",
            KernelKey::Bandwidth { copy: false } => "stream_read",
            KernelKey::KvWrite(_) => "kv_write",
            KernelKey::AttendChunk(_) => "attend",
            KernelKey::AttendFinalize => "finalize",
            KernelKey::QMatmul { entry, .. } => entry.name(),
            _ => "main",
        }
    }

    /// Values for the shader's `override` constants.
    pub fn constants(self) -> Vec<(&'static str, f64)> {
        match self {
            KernelKey::RmsNorm
            | KernelKey::Rope
            | KernelKey::Bandwidth { .. }
            | KernelKey::AttendFinalize
            | KernelKey::Sample => Vec::new(),
            KernelKey::Elementwise(op) => vec![("OP", f64::from(op.code()))],
            KernelKey::KvWrite(f) | KernelKey::AttendChunk(f) => {
                vec![("FORMAT", f64::from(f.code()))]
            }
            KernelKey::QMatmul {
                format,
                accumulate,
                shape,
                ..
            } => qmatmul_constants(format, accumulate, shape),
        }
    }

    fn label(self) -> String {
        format!("{self:?}")
    }
}

/// Shader modules per family and pipelines per key, created on first use.
#[derive(Default)]
pub(crate) struct PipelineCache {
    modules: Mutex<HashMap<ShaderFamily, wgpu::ShaderModule>>,
    pipelines: Mutex<HashMap<KernelKey, wgpu::ComputePipeline>>,
}

impl GpuContext {
    /// The pipeline for `key`, created (inside error scopes, so a shader or
    /// pipeline error becomes a [`GpuError`]) the first time it is asked for.
    pub async fn pipeline(&self, key: KernelKey) -> Result<wgpu::ComputePipeline, GpuError> {
        if let Some(p) = lock(&self.pipelines.pipelines)?.get(&key) {
            return Ok(p.clone());
        }
        let module = self.shader_module(key.family()).await?;
        let constants = key.constants();
        let label = key.label();
        let pipeline = self
            .scoped(|| {
                self.device
                    .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                        label: Some(&label),
                        layout: None,
                        module: &module,
                        entry_point: Some(key.entry_point()),
                        compilation_options: wgpu::PipelineCompilationOptions {
                            constants: &constants,
                            zero_initialize_workgroup_memory: false,
                        },
                        cache: None,
                    })
            })
            .await?;
        lock(&self.pipelines.pipelines)?.insert(key, pipeline.clone());
        Ok(pipeline)
    }

    /// Creates the pipelines for `keys` now (e.g. before a decode loop).
    pub async fn prepare(&self, keys: &[KernelKey]) -> Result<(), GpuError> {
        for &k in keys {
            self.pipeline(k).await?;
        }
        Ok(())
    }

    async fn shader_module(&self, family: ShaderFamily) -> Result<wgpu::ShaderModule, GpuError> {
        if let Some(m) = lock(&self.pipelines.modules)?.get(&family) {
            return Ok(m.clone());
        }
        let module = self
            .scoped(|| {
                self.device
                    .create_shader_module(wgpu::ShaderModuleDescriptor {
                        label: Some(family.name()),
                        source: wgpu::ShaderSource::Wgsl(family.source().into()),
                    })
            })
            .await?;
        lock(&self.pipelines.modules)?.insert(family, module.clone());
        Ok(module)
    }
}

fn lock<T>(m: &Mutex<T>) -> Result<std::sync::MutexGuard<'_, T>, GpuError> {
    m.lock()
        .map_err(|_| GpuError::Internal("pipeline cache lock poisoned".into()))
}
