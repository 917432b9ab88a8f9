//! Adapter, device and queue: the adapter's own limits, optional features,
//! device loss and error scopes turned into [`GpuError`]s.

use std::sync::{Arc, Mutex};

use super::error::GpuError;
use super::keys::{KernelPreset, MatvecShape};
use super::pipelines::PipelineCache;

/// How to pick the adapter.
#[derive(Clone, Debug, Default)]
pub struct GpuOptions {
    /// Backends to consider; `None` takes wgpu's defaults (and `WGPU_BACKEND`).
    pub backends: Option<wgpu::Backends>,
    pub power_preference: wgpu::PowerPreference,
    /// Ask for a fallback (software) adapter only.
    pub force_fallback_adapter: bool,
    /// The kernel preset; `None` picks it from the adapter (CPU adapters get
    /// [`KernelPreset::Cpu`]). Tests run every preset on every adapter.
    pub preset: Option<KernelPreset>,
    /// Never reduce with subgroup operations, even where the adapter allows
    /// them (for comparisons; see [`GpuContext::subgroup_lanes`]).
    pub no_subgroups: bool,
    /// Prefill (the GPU preset's tiled `matmul`) with f16 workgroup tiles
    /// where the device has `shader-f16` ([`super::QEntry::MatmulF16`]):
    /// x and the dequantized weights rounded to f16 once, all arithmetic in
    /// f32. Off by default: not yet measured faster on any GPU.
    pub f16_prefill: bool,
}

/// Optional features the device was created with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GpuFeatures {
    /// `shader-f16`: `f16` arithmetic in WGSL.
    pub f16: bool,
    /// Subgroup operations.
    pub subgroups: bool,
    /// Timestamps written inside compute passes (per-kernel profiles).
    pub timestamps_in_passes: bool,
}

/// One device and its queue, with everything kernels need to run on it.
pub struct GpuContext {
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    adapter_info: wgpu::AdapterInfo,
    limits: wgpu::Limits,
    features: GpuFeatures,
    kernels: KernelChoices,
    lost: Arc<Mutex<Option<String>>>,
    uncaptured: Arc<Mutex<Vec<String>>>,
    /// Buffers created by the helpers since recording began; `None`: not
    /// recording (see [`GpuContext::record_buffers`]).
    recorded: Mutex<Option<Vec<wgpu::Buffer>>>,
    /// Shared with the contexts made by [`GpuContext::sibling`] (one device:
    /// a pipeline depends on its [`KernelKey`](super::KernelKey) alone).
    pub(crate) pipelines: Arc<PipelineCache>,
}

/// What a context's options choose on a given device: the kernel preset and
/// the shapes and flavors that follow from it.
struct KernelChoices {
    preset: KernelPreset,
    matvec_shape: MatvecShape,
    batch_shape: Option<MatvecShape>,
    f16_prefill: bool,
    subgroup_lanes: Option<u32>,
}

impl KernelChoices {
    fn new(
        opts: &GpuOptions,
        adapter_info: &wgpu::AdapterInfo,
        limits: &wgpu::Limits,
        features: GpuFeatures,
    ) -> KernelChoices {
        let preset = opts.preset.unwrap_or(if is_cpu_adapter(adapter_info) {
            KernelPreset::Cpu
        } else {
            KernelPreset::Gpu
        });
        // A matvec workgroup sums its lanes with subgroupAdd when it is
        // exactly one subgroup: the adapter's subgroup size is fixed and is
        // the shape's lane count.
        let subgroup_lanes = (features.subgroups
            && !opts.no_subgroups
            && adapter_info.subgroup_min_size == adapter_info.subgroup_max_size)
            .then_some(adapter_info.subgroup_min_size);
        let with_subgroups = |s: MatvecShape| MatvecShape {
            subgroup: subgroup_lanes == Some(s.lanes),
            ..s
        };
        KernelChoices {
            preset,
            matvec_shape: with_subgroups(choose_matvec_shape(preset, limits)),
            batch_shape: preset.batch().map(with_subgroups),
            f16_prefill: opts.f16_prefill && features.f16,
            subgroup_lanes,
        }
    }
}

impl GpuContext {
    /// Picks an adapter and creates a device with the adapter's own limits and
    /// `shader-f16` / subgroups where the adapter has them.
    pub async fn new_async(opts: &GpuOptions) -> Result<GpuContext, GpuError> {
        let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
        if let Some(backends) = opts.backends {
            desc.backends = backends;
        }
        let instance = wgpu::Instance::new(desc);
        let adapter = instance
            .request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: opts.power_preference,
                force_fallback_adapter: opts.force_fallback_adapter,
                compatible_surface: None,
                ..Default::default()
            })
            .await
            .map_err(|e| GpuError::NoAdapter(e.to_string()))?;
        let adapter_info = adapter.get_info();
        let available = adapter.features();
        let timestamps =
            wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES;
        let features = GpuFeatures {
            f16: available.contains(wgpu::Features::SHADER_F16),
            subgroups: available.contains(wgpu::Features::SUBGROUP),
            timestamps_in_passes: available.contains(timestamps),
        };
        let mut required_features = wgpu::Features::empty();
        if features.f16 {
            required_features |= wgpu::Features::SHADER_F16;
        }
        if features.subgroups {
            required_features |= wgpu::Features::SUBGROUP;
        }
        if features.timestamps_in_passes {
            required_features |= timestamps;
        }
        let limits = adapter.limits();
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("codellama-webgpu"),
                required_features,
                required_limits: limits.clone(),
                experimental_features: wgpu::ExperimentalFeatures::disabled(),
                memory_hints: wgpu::MemoryHints::Performance,
                trace: wgpu::Trace::Off,
            })
            .await
            .map_err(|e| GpuError::RequestDevice(e.to_string()))?;
        let limits = device.limits();

        let lost = Arc::new(Mutex::new(None));
        let lost_cb = Arc::clone(&lost);
        device.set_device_lost_callback(move |reason, message| {
            if let Ok(mut slot) = lost_cb.lock() {
                *slot = Some(format!("{reason:?}: {message}"));
            }
        });
        // Errors outside any scope would otherwise panic inside wgpu: record
        // them and report them at the next checked operation.
        let uncaptured = Arc::new(Mutex::new(Vec::new()));
        let uncaptured_cb = Arc::clone(&uncaptured);
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            if let Ok(mut errors) = uncaptured_cb.lock() {
                errors.push(e.to_string());
            }
        }));

        let kernels = KernelChoices::new(opts, &adapter_info, &limits, features);
        Ok(GpuContext {
            device,
            queue,
            adapter_info,
            limits,
            features,
            kernels,
            lost,
            uncaptured,
            recorded: Mutex::new(None),
            pipelines: Arc::default(),
        })
    }

    /// A context on this one's device with the kernel choices of `opts`
    /// (preset, subgroups, f16 prefill; its adapter choices are ignored). The
    /// device, its queue, its loss and error state and the compiled pipelines
    /// are shared, so a pipeline both contexts use is compiled once (the
    /// device's features do not depend on the options). The tests run every
    /// preset this way on one device.
    pub fn sibling(&self, opts: &GpuOptions) -> GpuContext {
        GpuContext {
            device: self.device.clone(),
            queue: self.queue.clone(),
            adapter_info: self.adapter_info.clone(),
            limits: self.limits.clone(),
            features: self.features,
            kernels: KernelChoices::new(opts, &self.adapter_info, &self.limits, self.features),
            lost: Arc::clone(&self.lost),
            uncaptured: Arc::clone(&self.uncaptured),
            recorded: Mutex::new(None),
            pipelines: Arc::clone(&self.pipelines),
        }
    }

    /// [`GpuContext::new_async`], blocking (native only).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn new(opts: &GpuOptions) -> Result<GpuContext, GpuError> {
        pollster::block_on(Self::new_async(opts))
    }

    pub fn device(&self) -> &wgpu::Device {
        &self.device
    }

    pub fn queue(&self) -> &wgpu::Queue {
        &self.queue
    }

    pub fn adapter_info(&self) -> &wgpu::AdapterInfo {
        &self.adapter_info
    }

    /// One line naming the adapter: name, backend, device type.
    pub fn adapter_summary(&self) -> String {
        let i = &self.adapter_info;
        format!("{} ({:?}, {:?})", i.name, i.backend, i.device_type)
    }

    /// The device's limits (the adapter's own).
    pub fn limits(&self) -> &wgpu::Limits {
        &self.limits
    }

    pub fn features(&self) -> GpuFeatures {
        self.features
    }

    /// Whether the adapter runs shaders on the CPU (llvmpipe, SwiftShader).
    pub fn is_cpu_adapter(&self) -> bool {
        is_cpu_adapter(&self.adapter_info)
    }

    /// The kernel preset of this device.
    pub fn preset(&self) -> KernelPreset {
        self.kernels.preset
    }

    /// How this device multiplies a batch of tokens (the preset's kernel).
    pub fn batch_kernel(&self) -> super::qmatmul::BatchKernel {
        match self.kernels.batch_shape {
            Some(shape) => super::qmatmul::BatchKernel::Lanes(shape),
            None => super::qmatmul::BatchKernel::Tiled {
                f16: self.kernels.f16_prefill,
            },
        }
    }

    /// How this device multiplies a speculative verification batch, fewest
    /// tokens per workgroup first: the decode shape's
    /// [`MatvecShape::verify_shapes`], whose every column is bit-identical
    /// to a decode step's product of the same vector.
    pub fn verify_kernels(&self) -> Vec<super::qmatmul::BatchKernel> {
        self.kernels
            .matvec_shape
            .verify_shapes()
            .into_iter()
            .map(super::qmatmul::BatchKernel::Lanes)
            .collect()
    }

    /// The decode matvec's workgroup shape on this device (the preset's,
    /// unless `CODELLAMA_MATVEC` overrides it; reducing with subgroups where
    /// [`GpuContext::subgroup_lanes`] is its lane count).
    pub fn matvec_shape(&self) -> MatvecShape {
        self.kernels.matvec_shape
    }

    /// The lane count of a `matvec` workgroup that is exactly one subgroup,
    /// so that it may sum its lanes with `subgroupAdd`: the adapter's
    /// subgroup size where the device has subgroups and that size is fixed
    /// (`None` otherwise, or with [`GpuOptions::no_subgroups`]).
    pub fn subgroup_lanes(&self) -> Option<u32> {
        self.kernels.subgroup_lanes
    }

    /// Why the device was lost, once it is (`None` while it works).
    pub fn lost_reason(&self) -> Option<String> {
        self.lost.lock().ok().and_then(|l| l.clone())
    }

    /// `DeviceLost` if the device is lost (the cause of any failure then),
    /// else `e`.
    pub fn lost_or(&self, e: GpuError) -> GpuError {
        match self.lost_reason() {
            Some(msg) => GpuError::DeviceLost(msg),
            None => e,
        }
    }

    /// [`GpuContext::lost_or`] for a failure seen by an asynchronous callback
    /// (a mapping that failed): in the browser the device's `lost` promise
    /// settles in a task of its own, which may run after the failed mapping's,
    /// so the event loop is given a few turns (up to ~50 ms) for the loss to be
    /// recorded before `e` is taken as the cause. Natively the loss callback
    /// has run by the time a mapping fails.
    pub async fn lost_or_settled(&self, e: GpuError) -> GpuError {
        #[cfg(target_arch = "wasm32")]
        for _ in 0..5 {
            if self.lost_reason().is_some() {
                break;
            }
            next_task(10).await;
        }
        self.lost_or(e)
    }

    /// `Err(DeviceLost)` once the device is lost; `Err` with the first error
    /// that escaped every error scope since the last check.
    pub fn check(&self) -> Result<(), GpuError> {
        if let Some(msg) = self.lost_reason() {
            return Err(GpuError::DeviceLost(msg));
        }
        if let Ok(mut errors) = self.uncaptured.lock() {
            if !errors.is_empty() {
                let all = errors.join("; ");
                errors.clear();
                return Err(GpuError::Validation(all));
            }
        }
        Ok(())
    }

    /// Runs `f` inside validation, out-of-memory and internal error scopes and
    /// returns its value, or the first error any scope caught.
    pub async fn scoped<T>(&self, f: impl FnOnce() -> T) -> Result<T, GpuError> {
        self.check()?;
        let internal = self.device.push_error_scope(wgpu::ErrorFilter::Internal);
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let value = f();
        let validation = validation.pop();
        let oom = oom.pop();
        let internal = internal.pop();
        first_error([validation.await, oom.await, internal.await])?;
        self.check()?;
        Ok(value)
    }

    /// Finishes `encoder` and submits it, inside error scopes.
    pub async fn submit(
        &self,
        encoder: wgpu::CommandEncoder,
    ) -> Result<wgpu::SubmissionIndex, GpuError> {
        self.scoped(|| self.queue.submit([encoder.finish()])).await
    }

    /// A new command encoder.
    pub fn encoder(&self, label: &str) -> wgpu::CommandEncoder {
        self.device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(label) })
    }

    /// Starts (or stops) recording every buffer the helpers create (storage,
    /// uniform; not the short-lived read-back staging buffers, which are
    /// destroyed after use), so that [`GpuContext::destroy_recorded_buffers`]
    /// can free them all at once. The browser engine records while a model is
    /// loaded: WebGPU frees a buffer's memory on `destroy()`, not when wgpu's
    /// handle is dropped (dropping is a no-op on the WebGPU backend; natively
    /// wgpu-core frees on drop, so nothing records by default).
    pub fn record_buffers(&self, on: bool) {
        if let Ok(mut r) = self.recorded.lock() {
            match (on, r.is_some()) {
                (true, false) => *r = Some(Vec::new()),
                (false, _) => *r = None,
                _ => {}
            }
        }
    }

    /// Adds `buffer` to the recorded ones (for buffers created without the
    /// helpers); nothing unless recording.
    pub fn record_buffer(&self, buffer: &wgpu::Buffer) {
        if let Ok(mut r) = self.recorded.lock() {
            if let Some(list) = r.as_mut() {
                list.push(buffer.clone());
            }
        }
    }

    /// Buffers recorded and not destroyed yet: (count, bytes).
    pub fn recorded_buffers(&self) -> (usize, u64) {
        match self.recorded.lock() {
            Ok(r) => r.as_ref().map_or((0, 0), |l| {
                (l.len(), l.iter().map(wgpu::Buffer::size).sum())
            }),
            Err(_) => (0, 0),
        }
    }

    /// Destroys every recorded buffer (recording goes on, with an empty
    /// list); returns (count, bytes) destroyed. Whatever still holds them must
    /// not be used again.
    pub fn destroy_recorded_buffers(&self) -> (usize, u64) {
        let taken = match self.recorded.lock() {
            Ok(mut r) => r.as_mut().map(std::mem::take).unwrap_or_default(),
            Err(_) => Vec::new(),
        };
        let bytes = taken.iter().map(wgpu::Buffer::size).sum();
        for b in &taken {
            b.destroy();
        }
        (taken.len(), bytes)
    }

    /// Takes the recorded buffers out of the list without destroying them
    /// (recording goes on, with an empty list): the browser engine sets a
    /// loaded model's buffers aside while a new load records its own.
    pub fn take_recorded_buffers(&self) -> Vec<wgpu::Buffer> {
        match self.recorded.lock() {
            Ok(mut r) => r.as_mut().map(std::mem::take).unwrap_or_default(),
            Err(_) => Vec::new(),
        }
    }

    /// Puts buffers taken by [`GpuContext::take_recorded_buffers`] back in
    /// the list (nothing unless recording).
    pub fn restore_recorded_buffers(&self, buffers: Vec<wgpu::Buffer>) {
        if let Ok(mut r) = self.recorded.lock() {
            if let Some(list) = r.as_mut() {
                list.extend(buffers);
            }
        }
    }

    /// Blocks on a future (native only): the blocking form of every async
    /// method here.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        pollster::block_on(f)
    }
}

/// Whether `info` names an adapter that runs shaders on the CPU: Vulkan's
/// `CPU` device type (lavapipe), or SwiftShader (which browsers report
/// without a device type).
fn is_cpu_adapter(info: &wgpu::AdapterInfo) -> bool {
    let named = |s: &str| {
        let s = s.to_ascii_lowercase();
        s.contains("swiftshader") || s.contains("llvmpipe") || s.contains("lavapipe")
    };
    info.device_type == wgpu::DeviceType::Cpu
        || named(&info.name)
        || named(&info.driver)
        || named(&info.driver_info)
}

/// The preset's decode shape; natively `CODELLAMA_MATVEC=lanes,rows`
/// overrides it (for tuning on a new GPU) when the shape fits the device.
fn choose_matvec_shape(preset: KernelPreset, limits: &wgpu::Limits) -> MatvecShape {
    #[cfg(not(target_arch = "wasm32"))]
    if let Ok(v) = std::env::var("CODELLAMA_MATVEC") {
        let parsed = v
            .split_once(',')
            .and_then(|(a, b)| Some((a.trim().parse().ok()?, b.trim().parse().ok()?)));
        if let Some((lanes, rows)) = parsed {
            let shape = MatvecShape {
                lanes,
                rows,
                tokens: 1,
                subgroup: false,
                runs: preset == KernelPreset::Cpu,
            };
            if shape.fits(limits) {
                return shape;
            }
        }
    }
    let shape = preset.matvec();
    if shape.fits(limits) {
        shape
    } else {
        MatvecShape {
            lanes: 1,
            rows: 2,
            tokens: 1,
            subgroup: false,
            runs: false,
        }
    }
}

fn first_error(errors: [Option<wgpu::Error>; 3]) -> Result<(), GpuError> {
    match errors.into_iter().flatten().next() {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}

impl std::fmt::Debug for GpuContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuContext")
            .field("adapter", &self.adapter_summary())
            .field("features", &self.features)
            .finish_non_exhaustive()
    }
}

/// Resolves after a `setTimeout` of `ms` milliseconds (in a page or a Worker:
/// the global's own `setTimeout`), giving the event loop a turn.
#[cfg(target_arch = "wasm32")]
async fn next_task(ms: i32) {
    use wasm_bindgen::{JsCast, JsValue};
    let promise = js_sys::Promise::new(&mut |resolve, _reject| {
        let set_timeout = js_sys::Reflect::get(&js_sys::global(), &JsValue::from_str("setTimeout"))
            .ok()
            .and_then(|f| f.dyn_into::<js_sys::Function>().ok());
        match set_timeout {
            Some(f) => {
                let _ = f.call2(&JsValue::NULL, &resolve, &JsValue::from(ms));
            }
            None => {
                let _ = resolve.call0(&JsValue::NULL);
            }
        }
    });
    let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
}
