//! What the browser provides: a clock (`std::time::Instant` panics on
//! wasm32), the panic hook, the adapter's description, memory size.

use std::sync::Once;

use js_sys::{Function, Reflect};
use wasm_bindgen::{JsCast, JsValue};

/// Milliseconds from `performance.now()` (pages and workers alike), or
/// `Date.now()` where there is no `performance`.
pub fn now_ms() -> f64 {
    let perf = Reflect::get(&js_sys::global(), &"performance".into()).ok();
    if let Some(perf) = perf.filter(|p| p.is_object()) {
        if let Ok(now) = Reflect::get(&perf, &"now".into()) {
            if let Some(f) = now.dyn_ref::<Function>() {
                if let Some(t) = f.call0(&perf).ok().and_then(|v| v.as_f64()) {
                    return t;
                }
            }
        }
    }
    js_sys::Date::now()
}

/// Sends panics to `console.error` with their message and location (once per
/// module instance).
pub fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            // "panicked at file:line:col:\nmessage"
            let text = format!("codellama-webgpu {info}");
            web_sys::console::error_1(&JsValue::from_str(&text));
        }));
    });
}

/// Current size of the wasm linear memory in bytes.
pub fn wasm_memory_bytes() -> f64 {
    (core::arch::wasm32::memory_size(0) as f64) * 65536.0
}

/// `globalThis.navigator.gpu`, if there is one.
pub fn navigator_gpu() -> Option<JsValue> {
    let nav = Reflect::get(&js_sys::global(), &"navigator".into()).ok()?;
    if !nav.is_object() {
        return None;
    }
    let gpu = Reflect::get(&nav, &"gpu".into()).ok()?;
    gpu.is_object().then_some(gpu)
}

/// What the browser says about its default adapter (`GPUAdapter.info`):
/// (description, whether it is a fallback adapter). wgpu's own adapter info
/// is mostly empty on the WebGPU backend.
pub async fn adapter_description() -> (String, bool) {
    let Some(gpu) = navigator_gpu() else {
        return (String::new(), false);
    };
    let adapter = async {
        let request = Reflect::get(&gpu, &"requestAdapter".into()).ok()?;
        let promise = request.dyn_ref::<Function>()?.call0(&gpu).ok()?;
        let promise = js_sys::Promise::resolve(&promise);
        let adapter = wasm_bindgen_futures::JsFuture::from(promise).await.ok()?;
        adapter.is_object().then_some(adapter)
    }
    .await;
    let Some(adapter) = adapter else {
        return (String::new(), false);
    };
    let info = Reflect::get(&adapter, &"info".into()).unwrap_or(JsValue::UNDEFINED);
    let field = |name: &str| {
        Reflect::get(&info, &name.into())
            .ok()
            .and_then(|v| v.as_string())
            .unwrap_or_default()
    };
    let description = field("description");
    let name = if description.is_empty() {
        [field("vendor"), field("architecture"), field("device")]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    } else {
        description
    };
    let fallback = Reflect::get(&info, &"isFallbackAdapter".into())
        .ok()
        .and_then(|v| v.as_bool())
        .or_else(|| {
            Reflect::get(&adapter, &"isFallbackAdapter".into())
                .ok()
                .and_then(|v| v.as_bool())
        })
        .unwrap_or(false);
    (name, fallback)
}
