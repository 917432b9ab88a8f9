//! `WasmEngine::bench`: `codellama bench` in the browser, on a WebGPU device
//! of its own that is destroyed afterwards (the synthetic model's buffers
//! first, then the device with its pipelines and staging buffers), so the
//! engine's device and model are untouched and no GPU memory outlives the
//! call.

use std::sync::Arc;

use js_sys::Function;
use serde::Deserialize;
use wasm_bindgen::JsValue;

use super::errors::{WasmError, WasmResult};
use super::platform;
use crate::gpu::bench::{self, BenchOptions, BenchReport, BenchShape};
use crate::gpu::{GpuContext, GpuOptions};
use crate::model::SyntheticQuant;

/// `bench`'s options: `codellama bench`'s flags in camelCase, each
/// defaulting as there.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BenchRequest {
    /// `"7b"` or `"small"`.
    pub shape: Option<String>,
    pub layers: Option<usize>,
    /// `"q4_0"` or `"q4_k_m"`.
    pub quant: Option<String>,
    pub prompt_tokens: Option<usize>,
    pub decode_tokens: Option<usize>,
    pub prefill_chunk: Option<usize>,
}

impl BenchRequest {
    /// The options, once every count is positive and the quantization known.
    pub fn options(&self) -> WasmResult<BenchOptions> {
        let mut opts = BenchOptions::default();
        if let Some(s) = &self.shape {
            opts.shape = BenchShape::parse(s).ok_or_else(|| {
                WasmError::invalid_request(format!(
                    "bench options: unknown shape {s:?} (7b or small)"
                ))
            })?;
        }
        if let Some(q) = &self.quant {
            opts.quant = SyntheticQuant::parse(q).ok_or_else(|| {
                WasmError::invalid_request(format!(
                    "bench options: unknown quant {q:?} (q4_0 or q4_k_m)"
                ))
            })?;
        }
        for (name, value, slot) in [
            ("layers", self.layers, &mut opts.layers),
            ("promptTokens", self.prompt_tokens, &mut opts.prompt_tokens),
            ("decodeTokens", self.decode_tokens, &mut opts.decode_tokens),
            ("prefillChunk", self.prefill_chunk, &mut opts.prefill_chunk),
        ] {
            match value {
                Some(0) => {
                    return Err(WasmError::invalid_request(format!(
                        "bench options: {name} must be at least 1"
                    )))
                }
                Some(v) => *slot = v,
                None => {}
            }
        }
        Ok(opts)
    }
}

/// Runs the benchmark on a new device, calling `on_log(line)` per phase
/// (exceptions it throws are ignored), and frees everything it made.
pub async fn run(opts: &BenchOptions, on_log: &Function) -> WasmResult<BenchReport> {
    let ctx = GpuContext::new_async(&GpuOptions::default()).await?;
    // WebGPU frees a buffer's memory on `destroy()`, not when wgpu's handle
    // is dropped: record every buffer the bench makes.
    ctx.record_buffers(true);
    // The bench takes an Arc; on the browser's single thread the WebGPU
    // handles are neither Send nor Sync, which is fine.
    #[allow(clippy::arc_with_non_send_sync)]
    let ctx = Arc::new(ctx);
    let mut log = |line: &str| {
        let _ = on_log.call1(&JsValue::NULL, &JsValue::from_str(line));
    };
    let result = bench::run(Arc::clone(&ctx), opts, &mut log).await;
    // The model, decoder and probes are dropped by now.
    ctx.destroy_recorded_buffers();
    ctx.device().destroy();
    let mut report = result?;
    // wgpu's adapter name is empty on the WebGPU backend: the browser's own
    // description instead.
    let (description, _) = platform::adapter_description().await;
    if !description.is_empty() {
        let info = ctx.adapter_info();
        report.adapter = format!("{description} ({:?}, {:?})", info.backend, info.device_type);
    }
    Ok(report)
}
