//! One test body, two platforms (the idea of wgpu's `#[gpu_test]`): each case
//! in `common/gpu_cases.rs` is an `async fn(&GpuContext) -> Result<(), String>`
//! (or `&Arc<GpuContext>` for a case that builds a decoder)
//! written once; [`gpu_tests!`] wraps it
//!
//! - natively in a `#[test]` on the default adapter (lavapipe here and in CI):
//!   `cargo test -p codellama-webgpu --no-default-features --test gpu_portable`
//! - compiled to wasm32 in a `#[wasm_bindgen_test]` that runs in a real
//!   browser (headless Chromium, WebGPU on SwiftShader; the runner and the
//!   browser flags are in `.cargo/config.toml` and `crate/webdriver.json`):
//!   `CHROMEDRIVER=/usr/bin/chromedriver cargo test -p codellama-webgpu
//!   --no-default-features --target wasm32-unknown-unknown --test gpu_portable`
//!
//! so the kernels and the sampler are checked against the same CPU references
//! on both, with the same inputs and tolerances. Each case logs its max errors
//! (`eprintln!` natively, the browser console in wasm, which the runner
//! prints). Without an adapter these tests fail: they never skip.

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

/// `eprintln!` natively, `console.log` in the browser.
macro_rules! log {
    ($($t:tt)*) => {{
        #[cfg(target_arch = "wasm32")]
        wasm_bindgen_test::console_log!($($t)*);
        #[cfg(not(target_arch = "wasm32"))]
        eprintln!($($t)*);
    }};
}

/// `Err(format!(..))` out of the case unless `cond` holds (false for NaN
/// comparisons, like `assert!`).
macro_rules! ensure {
    ($cond:expr, $($t:tt)*) => {
        let holds: bool = $cond;
        if !holds {
            return Err(format!($($t)*));
        }
    };
}

/// What differs between the platforms: the context and the clock.
mod platform {
    use std::sync::Arc;

    use codellama_webgpu::gpu::{GpuContext, GpuOptions};

    /// The default adapter's context; logs the adapter.
    pub async fn context() -> GpuContext {
        match GpuContext::new_async(&GpuOptions::default()).await {
            Ok(ctx) => {
                let info = ctx.adapter_info();
                log!(
                    "adapter: {} (vendor {:?}, driver {:?} {:?}) features {:?} \
                     max_buffer_size {} max_storage_binding {}",
                    ctx.adapter_summary(),
                    info.vendor,
                    info.driver,
                    info.driver_info,
                    ctx.features(),
                    ctx.limits().max_buffer_size,
                    ctx.limits().max_storage_buffer_binding_size
                );
                ctx
            }
            Err(e) => panic!(
                "the GPU tests need a wgpu adapter and found none ({e}); natively install \
                 lavapipe, in the browser run headless Chromium with --enable-unsafe-webgpu \
                 (scripts/setup.sh, crate/webdriver.json)"
            ),
        }
    }

    /// The context every case of the binary shares (natively across the test
    /// threads, in the browser across the cases of the page), so that each
    /// pipeline is compiled once.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn shared_context() -> Arc<GpuContext> {
        static CTX: std::sync::OnceLock<Arc<GpuContext>> = std::sync::OnceLock::new();
        Arc::clone(CTX.get_or_init(|| Arc::new(pollster::block_on(context()))))
    }

    #[cfg(target_arch = "wasm32")]
    pub async fn shared_context() -> Arc<GpuContext> {
        thread_local! {
            static CTX: std::cell::RefCell<Option<Arc<GpuContext>>> = const { std::cell::RefCell::new(None) };
        }
        if let Some(ctx) = CTX.with(|c| c.borrow().clone()) {
            return ctx;
        }
        let ctx = Arc::new(context().await);
        CTX.with(|c| *c.borrow_mut() = Some(Arc::clone(&ctx)));
        ctx
    }

    /// What the platform says about the adapter beyond wgpu's `AdapterInfo`:
    /// in the browser `GPUAdapter.info` and features as Chromium reports them
    /// (wgpu's name is empty there).
    #[cfg(not(target_arch = "wasm32"))]
    pub async fn adapter_details(ctx: &GpuContext) -> String {
        let i = ctx.adapter_info();
        format!(
            "native: {:?} driver {:?} {:?}",
            i.name, i.driver, i.driver_info
        )
    }

    #[cfg(target_arch = "wasm32")]
    pub async fn adapter_details(_ctx: &GpuContext) -> String {
        const JS: &str = "navigator.gpu.requestAdapter().then(a => a === null ? 'no adapter' : \
            JSON.stringify({vendor: a.info.vendor, architecture: a.info.architecture, \
            device: a.info.device, description: a.info.description, \
            isFallbackAdapter: a.info.isFallbackAdapter, features: [...a.features].sort(), \
            userAgent: navigator.userAgent}))";
        let promise = match js_sys::eval(JS) {
            Ok(p) => js_sys::Promise::resolve(&p),
            Err(e) => return format!("eval: {e:?}"),
        };
        match wasm_bindgen_futures::JsFuture::from(promise).await {
            Ok(v) => format!("browser: {}", v.as_string().unwrap_or_default()),
            Err(e) => format!("requestAdapter: {e:?}"),
        }
    }

    /// Milliseconds since an arbitrary origin (`Instant` panics in the
    /// browser).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn now_ms() -> f64 {
        use std::sync::OnceLock;
        use std::time::Instant;
        static START: OnceLock<Instant> = OnceLock::new();
        START.get_or_init(Instant::now).elapsed().as_secs_f64() * 1e3
    }

    #[cfg(target_arch = "wasm32")]
    pub fn now_ms() -> f64 {
        js_sys::Date::now()
    }
}

#[path = "common/logit_stats.rs"]
mod logit_stats;

#[path = "common/rng.rs"]
mod rng;

#[path = "common/gpu_cases.rs"]
mod cases;

/// A native `#[test]` and a browser `#[wasm_bindgen_test]` for each case.
macro_rules! gpu_tests {
    ($($name:ident),* $(,)?) => {$(
        #[cfg(not(target_arch = "wasm32"))]
        #[test]
        fn $name() {
            let ctx = platform::shared_context();
            let start = platform::now_ms();
            let r = ctx.block_on(cases::$name(&ctx));
            log!("{}: {:.0} ms", stringify!($name), platform::now_ms() - start);
            if let Err(e) = r {
                panic!("{}: {e}", stringify!($name));
            }
        }

        #[cfg(target_arch = "wasm32")]
        #[wasm_bindgen_test::wasm_bindgen_test]
        async fn $name() {
            let ctx = platform::shared_context().await;
            let start = platform::now_ms();
            let r = cases::$name(&ctx).await;
            log!("{}: {:.0} ms", stringify!($name), platform::now_ms() - start);
            if let Err(e) = r {
                panic!("{}: {e}", stringify!($name));
            }
        }
    )*};
}

gpu_tests!(
    adapter_is_usable,
    rmsnorm_matches_cpu,
    rope_matches_cpu,
    elementwise_matches_cpu,
    errors_are_typed,
    sampler_matches_cpu,
    same_seed_same_tokens,
    decoder_matches_cpu,
    logprobs_match_reference,
    verify_logits_equal_decode_steps,
);
