//! Compute pipelines, created once per kernel variant ([`KernelKey`]) and
//! cached.
//!
//! Each kernel family is one WGSL file under `shaders/`; variants are selected
//! through WGSL `override` constants passed as pipeline constants, never by
//! editing shader text; a kernel that uses an optional device feature
//! (subgroups) comes from a module of its own, the family's file after a
//! prelude of that flavor ([`ModuleKey`]).

use std::collections::HashMap;
use std::sync::{Condvar, Mutex};
use std::thread::ThreadId;

use super::context::GpuContext;
use super::error::GpuError;
use super::keys::{Binding, KernelKey, ModuleKey};

/// Shader modules and pipelines per key, created on first use.
///
/// Single flight: a pipeline being compiled is marked, and another thread
/// asking for it waits for that compile instead of compiling it again (on
/// lavapipe creating one takes 0.3-3.7 s; test threads sharing a device ask
/// for the same pipelines at once). The same thread never waits (two futures of one
/// thread may interleave at the compile's `await`; on wasm there is one
/// thread): it compiles again, and the last one stored wins (equal pipelines).
#[derive(Default)]
pub(crate) struct PipelineCache {
    modules: Mutex<HashMap<ModuleKey, wgpu::ShaderModule>>,
    pipelines: Mutex<HashMap<KernelKey, Slot>>,
    /// Signalled whenever a compile ends (stored or failed).
    compiled: Condvar,
}

enum Slot {
    Ready(wgpu::ComputePipeline),
    /// Being compiled by this thread.
    Compiling(ThreadId),
}

/// Marks a key as being compiled; clears the mark and wakes the waiters when
/// dropped (the compile finished, failed or its future was dropped).
struct CompileMark<'a> {
    cache: &'a PipelineCache,
    key: KernelKey,
}

impl Drop for CompileMark<'_> {
    fn drop(&mut self) {
        if let Ok(mut map) = self.cache.pipelines.lock() {
            if matches!(map.get(&self.key), Some(Slot::Compiling(_))) {
                map.remove(&self.key);
            }
        }
        self.cache.compiled.notify_all();
    }
}

/// What [`PipelineCache::lookup`] found.
enum Lookup<'a> {
    Cached(wgpu::ComputePipeline),
    /// Not cached: this thread compiles it.
    Compile(CompileMark<'a>),
}

impl PipelineCache {
    /// The cached pipeline, or a mark saying this thread compiles it; waits
    /// while another thread compiles it.
    fn lookup(&self, key: KernelKey) -> Result<Lookup<'_>, GpuError> {
        let me = std::thread::current().id();
        let mut map = lock(&self.pipelines)?;
        loop {
            match map.get(&key) {
                Some(Slot::Ready(p)) => return Ok(Lookup::Cached(p.clone())),
                Some(&Slot::Compiling(other)) if waits(me, other) => {
                    map = self.compiled.wait(map).map_err(|_| poisoned())?;
                }
                _ => {
                    map.insert(key, Slot::Compiling(me));
                    return Ok(Lookup::Compile(CompileMark { cache: self, key }));
                }
            }
        }
    }
}

/// Whether thread `me` waits for a compile by `other` (never on wasm: one
/// thread, and no blocking wait).
fn waits(me: ThreadId, other: ThreadId) -> bool {
    !cfg!(target_arch = "wasm32") && me != other
}

impl GpuContext {
    /// The pipeline for `key`, created (inside error scopes, so a shader or
    /// pipeline error becomes a [`GpuError`]) the first time it is asked for.
    pub async fn pipeline(&self, key: KernelKey) -> Result<wgpu::ComputePipeline, GpuError> {
        let mark = match self.pipelines.lookup(key)? {
            Lookup::Cached(p) => return Ok(p),
            Lookup::Compile(mark) => mark,
        };
        let module = self.shader_module(key.module()).await?;
        let constants = key.constants();
        let label = key.label();
        let layout = key.bindings().map(|b| self.fixed_layout(&label, &b));
        let pipeline = self
            .scoped(|| {
                self.device
                    .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                        label: Some(&label),
                        layout: layout.as_ref(),
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
        lock(&self.pipelines.pipelines)?.insert(key, Slot::Ready(pipeline.clone()));
        drop(mark);
        Ok(pipeline)
    }

    /// A pipeline layout of one bind group with `bindings`.
    fn fixed_layout(&self, label: &str, bindings: &[(u32, Binding)]) -> wgpu::PipelineLayout {
        let entries: Vec<wgpu::BindGroupLayoutEntry> = bindings
            .iter()
            .map(|&(binding, kind)| wgpu::BindGroupLayoutEntry {
                binding,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty: match kind {
                        Binding::Uniform => wgpu::BufferBindingType::Uniform,
                        Binding::ReadOnly => wgpu::BufferBindingType::Storage { read_only: true },
                        Binding::ReadWrite => wgpu::BufferBindingType::Storage { read_only: false },
                    },
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                count: None,
            })
            .collect();
        let group = self
            .device
            .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                label: Some(label),
                entries: &entries,
            });
        self.device
            .create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some(label),
                bind_group_layouts: &[Some(&group)],
                immediate_size: 0,
            })
    }

    /// Creates the pipelines for `keys` now (e.g. before a decode loop).
    pub async fn prepare(&self, keys: &[KernelKey]) -> Result<(), GpuError> {
        for &k in keys {
            self.pipeline(k).await?;
        }
        Ok(())
    }

    async fn shader_module(&self, key: ModuleKey) -> Result<wgpu::ShaderModule, GpuError> {
        if let Some(m) = lock(&self.pipelines.modules)?.get(&key) {
            return Ok(m.clone());
        }
        let module = self
            .scoped(|| {
                self.device
                    .create_shader_module(wgpu::ShaderModuleDescriptor {
                        label: Some(key.family.name()),
                        source: wgpu::ShaderSource::Wgsl(key.source().into()),
                    })
            })
            .await?;
        lock(&self.pipelines.modules)?.insert(key, module.clone());
        Ok(module)
    }
}

fn lock<T>(m: &Mutex<T>) -> Result<std::sync::MutexGuard<'_, T>, GpuError> {
    m.lock().map_err(|_| poisoned())
}

fn poisoned() -> GpuError {
    GpuError::Internal("pipeline cache lock poisoned".into())
}
