//! `WasmEngine`: the raw JSON-in/JSON-out engine the TypeScript package wraps
//! (the contract is the package API of `web/README.md`, typed in `web/src/types.ts`).
//!
//! State lives in an `Rc<Inner>` that every async method clones into its
//! future; what an operation works on (the load in progress, the session) is
//! taken out of the `RefCell` before the first await and put back after the
//! last, so no borrow is ever held across an await. While an async operation
//! runs, `busy` names it: a second one is refused with `EngineBusyError`
//! (the TS layer queues requests; this is the backstop). Dropping a model or
//! a load bumps `epoch`, so an operation in flight can tell that what it works
//! on is gone when it resumes.
//!
//! The device can be lost (a driver reset, `GPUDevice.destroy()`, the browser
//! reclaiming the GPU): every operation then fails with `DeviceLostError`,
//! and `recoverDevice` drops the model and opens a new device in place, so
//! the same engine loads again without a page reload (the TS layer re-loads
//! the last model by itself on the next call).

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use js_sys::{Function, Promise};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

use super::bench::{self, BenchRequest};
use super::errors::{ErrorName, WasmError, WasmResult};
use super::generate;
use super::json::{parse, to_json, AdapterJson, LoadOptions};
use super::load::{Loaded, Loading};
use super::platform;
use crate::gpu::{GpuContext, GpuOptions};

/// The load slot: nothing, a load waiting for its next chunk, or a load an
/// operation has taken out.
enum LoadSlot {
    Idle,
    Ready(Box<Loading>),
    InFlight,
}

struct State {
    /// The async operation running, if any.
    busy: Option<&'static str>,
    epoch: u64,
    load: LoadSlot,
    model: Option<Loaded>,
}

struct Inner {
    /// The device; replaced by `recoverDevice` once lost.
    ctx: RefCell<Arc<GpuContext>>,
    adapter: RefCell<AdapterJson>,
    /// The running generation's cancel flag (raised by `cancel`, `unload`).
    cancel: Arc<AtomicBool>,
    state: RefCell<State>,
}

impl Inner {
    fn ctx(&self) -> Arc<GpuContext> {
        Arc::clone(&self.ctx.borrow())
    }

    /// Drops the model and any load, and destroys their GPU buffers (every
    /// buffer recorded since the engine was created belongs to them: there is
    /// one model or load at a time).
    fn drop_all(&self, st: &mut State) {
        st.epoch += 1;
        if let LoadSlot::Ready(_) = st.load {
            st.load = LoadSlot::Idle;
        }
        if matches!(st.load, LoadSlot::InFlight) {
            // The operation holding it finds out through the epoch.
            st.load = LoadSlot::Idle;
        }
        st.model = None;
        self.cancel.store(true, Ordering::Relaxed);
        self.ctx().destroy_recorded_buffers();
    }
}

/// Code Llama on WebGPU, driven from JavaScript.
#[wasm_bindgen]
pub struct WasmEngine {
    inner: Rc<Inner>,
}

fn reject(e: WasmError) -> Promise {
    Promise::reject(&e.into())
}

fn device_type(t: wgpu::DeviceType) -> &'static str {
    match t {
        wgpu::DeviceType::Other => "other",
        wgpu::DeviceType::IntegratedGpu => "integrated",
        wgpu::DeviceType::DiscreteGpu => "discrete",
        wgpu::DeviceType::VirtualGpu => "virtual",
        wgpu::DeviceType::Cpu => "cpu",
    }
}

/// Opens the default adapter's device (recording the buffers made on it, so
/// that `unload` can destroy them) and describes the adapter.
async fn open_device() -> WasmResult<(Arc<GpuContext>, AdapterJson)> {
    if platform::navigator_gpu().is_none() {
        return Err(WasmError::new(
            ErrorName::WebGpuUnavailable,
            "WebGPU is not available here (navigator.gpu is missing)",
        ));
    }
    let ctx = GpuContext::new_async(&GpuOptions::default()).await?;
    ctx.record_buffers(true);
    let (description, fallback) = platform::adapter_description().await;
    let info = ctx.adapter_info();
    let adapter = AdapterJson {
        name: if description.is_empty() {
            info.name.clone()
        } else {
            description
        },
        backend: info.backend.to_str().to_string(),
        device_type: if fallback {
            "cpu"
        } else {
            device_type(info.device_type)
        }
        .to_string(),
        f16: ctx.features().f16,
        subgroups: ctx.features().subgroups,
        max_buffer_size: ctx.limits().max_buffer_size,
        max_storage_binding_size: ctx.limits().max_storage_buffer_binding_size,
    };
    // GpuDecoder takes an Arc; on the browser's single thread the WebGPU
    // handles are neither Send nor Sync, which is fine.
    #[allow(clippy::arc_with_non_send_sync)]
    let ctx = Arc::new(ctx);
    Ok((ctx, adapter))
}

impl WasmEngine {
    /// [`WasmEngine::create`] as a Rust future.
    pub async fn create_async() -> WasmResult<WasmEngine> {
        platform::install_panic_hook();
        let (ctx, adapter) = open_device().await?;
        Ok(WasmEngine {
            inner: Rc::new(Inner {
                ctx: RefCell::new(ctx),
                adapter: RefCell::new(adapter),
                cancel: Arc::new(AtomicBool::new(false)),
                state: RefCell::new(State {
                    busy: None,
                    epoch: 0,
                    load: LoadSlot::Idle,
                    model: None,
                }),
            }),
        })
    }

    /// GPU buffers the engine holds now: (count, bytes) (for tests: 0 after
    /// `unload` / `abortLoad`).
    pub fn gpu_buffers(&self) -> (usize, u64) {
        self.inner.ctx().recorded_buffers()
    }

    fn with_model<T>(&self, f: impl FnOnce(&mut Loaded) -> WasmResult<T>) -> WasmResult<T> {
        let mut st = self.inner.state.borrow_mut();
        match st.model.as_mut() {
            Some(m) => f(m),
            None => Err(WasmError::not_loaded()),
        }
    }
}

#[wasm_bindgen]
impl WasmEngine {
    /// Opens the default WebGPU adapter (`WebGpuUnavailableError` without
    /// one). Resolves to the engine.
    #[wasm_bindgen(unchecked_return_type = "Promise<WasmEngine>")]
    pub fn create() -> Promise {
        future_to_promise(async {
            let engine = WasmEngine::create_async().await?;
            Ok(engine.into())
        })
    }

    /// `{name, backend, deviceType, f16, subgroups, maxBufferSize, maxStorageBindingSize}`.
    #[wasm_bindgen(js_name = adapterJson)]
    pub fn adapter_json(&self) -> String {
        to_json(&*self.inner.adapter.borrow())
    }

    /// Starts a load (`{totalBytes?, contextLength?, kvCache?: "f16"|"q8"}`),
    /// dropping any loaded model. `EngineBusyError` while another load or an
    /// operation runs.
    #[wasm_bindgen(js_name = beginLoad)]
    pub fn begin_load(
        &self,
        #[wasm_bindgen(js_name = optsJson)] opts_json: &str,
    ) -> Result<(), JsValue> {
        let opts: LoadOptions = parse("load options", opts_json)?;
        let loading = Loading::new(opts)?;
        let mut st = self.inner.state.borrow_mut();
        if let Some(running) = st.busy {
            return Err(WasmError::busy(running).into());
        }
        if !matches!(st.load, LoadSlot::Idle) {
            return Err(WasmError::busy("a load").into());
        }
        self.inner.drop_all(&mut st);
        st.load = LoadSlot::Ready(Box::new(loading));
        Ok(())
    }

    /// Feeds the next chunk of the file; uploads the tensors it completes.
    /// Resolves to LoadProgress JSON.
    #[wasm_bindgen(unchecked_return_type = "Promise<string>")]
    pub fn push(&self, chunk: Vec<u8>) -> Promise {
        let inner = Rc::clone(&self.inner);
        let (mut loading, epoch) = {
            let mut st = inner.state.borrow_mut();
            if let Some(running) = st.busy {
                return reject(WasmError::busy(running));
            }
            match std::mem::replace(&mut st.load, LoadSlot::InFlight) {
                LoadSlot::Ready(l) => {
                    st.busy = Some("push");
                    (l, st.epoch)
                }
                other => {
                    st.load = other;
                    return reject(WasmError::invalid_request(
                        "push: no load in progress (call beginLoad first)",
                    ));
                }
            }
        };
        future_to_promise(async move {
            let aborted = || inner.state.borrow().epoch != epoch;
            let ctx = inner.ctx();
            let result = loading.push(&ctx, &chunk, &aborted).await;
            drop(chunk);
            let mut st = inner.state.borrow_mut();
            st.busy = None;
            if st.epoch != epoch {
                drop(loading);
                ctx.destroy_recorded_buffers();
                return Err(WasmError::new(ErrorName::Abort, "the load was aborted").into());
            }
            match result {
                Ok(progress) => {
                    st.load = LoadSlot::Ready(loading);
                    Ok(JsValue::from_str(&to_json(&progress)))
                }
                Err(e) => {
                    st.load = LoadSlot::Idle;
                    inner.drop_all(&mut st);
                    Err(WasmError::from(e).into())
                }
            }
        })
    }

    /// Ends the input: `InvalidModelError` if the file is incomplete.
    /// Resolves to ModelInfo JSON.
    #[wasm_bindgen(js_name = finishLoad, unchecked_return_type = "Promise<string>")]
    pub fn finish_load(&self) -> Promise {
        let inner = Rc::clone(&self.inner);
        let (loading, epoch) = {
            let mut st = inner.state.borrow_mut();
            if let Some(running) = st.busy {
                return reject(WasmError::busy(running));
            }
            match std::mem::replace(&mut st.load, LoadSlot::InFlight) {
                LoadSlot::Ready(l) => {
                    st.busy = Some("finishLoad");
                    (l, st.epoch)
                }
                other => {
                    st.load = other;
                    return reject(WasmError::invalid_request(
                        "finishLoad: no load in progress (call beginLoad first)",
                    ));
                }
            }
        };
        future_to_promise(async move {
            let ctx = inner.ctx();
            let adapter = inner.adapter.borrow().clone();
            let result = loading.finish(Arc::clone(&ctx), &adapter).await;
            let mut st = inner.state.borrow_mut();
            st.busy = None;
            if st.epoch != epoch {
                drop(result);
                ctx.destroy_recorded_buffers();
                return Err(WasmError::new(ErrorName::Abort, "the load was aborted").into());
            }
            st.load = LoadSlot::Idle;
            match result {
                Ok(mut loaded) => {
                    let json = to_json(loaded.info());
                    st.model = Some(loaded);
                    Ok(JsValue::from_str(&json))
                }
                Err(e) => {
                    inner.drop_all(&mut st);
                    Err(e.into())
                }
            }
        })
    }

    /// Drops the load in progress (a `push` or `finishLoad` running rejects
    /// with `AbortError`); its GPU buffers are destroyed.
    #[wasm_bindgen(js_name = abortLoad)]
    pub fn abort_load(&self) {
        let mut st = self.inner.state.borrow_mut();
        if !matches!(st.load, LoadSlot::Idle) {
            self.inner.drop_all(&mut st);
        }
    }

    /// Frees the model and its KV cache (their GPU buffers are destroyed), and
    /// any load in progress. A generation running stops (its promise rejects
    /// with `NotLoadedError` unless it ended cleanly).
    pub fn unload(&self) {
        let mut st = self.inner.state.borrow_mut();
        self.inner.drop_all(&mut st);
    }

    /// ModelInfo JSON; `NotLoadedError` when nothing is loaded.
    #[wasm_bindgen(js_name = infoJson)]
    pub fn info_json(&self) -> Result<String, JsValue> {
        Ok(self.with_model(|m| Ok(to_json(m.info())))?)
    }

    /// The token ids of `text` (with BOS first when `add_bos`).
    pub fn tokenize(
        &self,
        text: &str,
        #[wasm_bindgen(js_name = addBos)] add_bos: bool,
    ) -> Result<Vec<u32>, JsValue> {
        let tok = self.with_model(|m| Ok(Rc::clone(&m.tok)))?;
        Ok(tok.encode(text, add_bos).map_err(WasmError::from)?)
    }

    /// The text of token ids (`InvalidRequestError` for ids out of range).
    pub fn detokenize(&self, ids: Vec<u32>) -> Result<String, JsValue> {
        let tok = self.with_model(|m| Ok(Rc::clone(&m.tok)))?;
        Ok(tok.decode(&ids).map_err(WasmError::from)?)
    }

    /// Runs a request (JSON, see the contract), calling `on_text(piece)` for
    /// each piece of text. Resolves to GenerationStats JSON.
    #[wasm_bindgen(unchecked_return_type = "Promise<string>")]
    pub fn generate(
        &self,
        #[wasm_bindgen(js_name = requestJson)] request_json: &str,
        #[wasm_bindgen(js_name = onText, unchecked_param_type = "(piece: string) => void")]
        on_text: Function,
    ) -> Promise {
        let inner = Rc::clone(&self.inner);
        let taken = {
            let mut guard = inner.state.borrow_mut();
            let st = &mut *guard;
            if let Some(running) = st.busy {
                return reject(WasmError::busy(running));
            }
            let epoch = st.epoch;
            let Some(model) = st.model.as_mut() else {
                return reject(WasmError::not_loaded());
            };
            inner.cancel.store(false, Ordering::Relaxed);
            let prepared = generate::prepare(
                &model.tok,
                request_json,
                Arc::clone(&inner.cancel),
                model.info.context_length,
            );
            match (prepared, model.session.take()) {
                (Err(e), session) => {
                    model.session = session;
                    return reject(e);
                }
                (Ok(_), None) => return reject(WasmError::busy("a generation")),
                (Ok(p), Some(session)) => {
                    st.busy = Some("generate");
                    (p, session, Rc::clone(&model.tok), epoch)
                }
            }
        };
        let (prepared, mut session, tok, epoch) = taken;
        future_to_promise(async move {
            let result = generate::run(&mut session, &tok, &prepared, &on_text).await;
            let mut st = inner.state.borrow_mut();
            st.busy = None;
            if st.epoch != epoch {
                drop(session);
                inner.ctx().destroy_recorded_buffers();
                return match result {
                    Ok(stats) => Ok(JsValue::from_str(&to_json(&stats))),
                    Err(_) => Err(WasmError::new(
                        ErrorName::NotLoaded,
                        "the model was unloaded during the generation",
                    )
                    .into()),
                };
            }
            if let Some(model) = st.model.as_mut() {
                model.session = Some(session);
            }
            match result {
                Ok(stats) => Ok(JsValue::from_str(&to_json(&stats))),
                Err(e) => Err(e.into()),
            }
        })
    }

    /// The exact prompt tokens of a request (JSON as `generate` takes it),
    /// after templating and, for infill, trimming to the budget; nothing runs.
    #[wasm_bindgen(js_name = countTokens)]
    pub fn count_tokens(
        &self,
        #[wasm_bindgen(js_name = requestJson)] request_json: &str,
    ) -> Result<u32, JsValue> {
        let (tok, context) = self.with_model(|m| Ok((Rc::clone(&m.tok), m.info.context_length)))?;
        let p = generate::prepare(
            &tok,
            request_json,
            Arc::new(AtomicBool::new(false)),
            context,
        )?;
        Ok(p.prompt.len() as u32)
    }

    /// Meta's per-mode defaults the engine applies, JSON
    /// `{complete, infill, chat}` of `{temperature, topP, maxTokens}`.
    #[wasm_bindgen(js_name = requestDefaultsJson)]
    pub fn request_defaults_json(&self) -> String {
        to_json(&crate::request::table())
    }

    /// Runs `codellama bench` (options JSON: `{layers?, quant?, promptTokens?,
    /// decodeTokens?, prefillChunk?}`, the CLI's defaults) on a WebGPU device
    /// of its own, calling `on_log(line)` per phase. Resolves to the report:
    /// the JSON object `codellama bench --json` prints, the same snake_case
    /// fields. Everything it allocates, device included, is destroyed before
    /// it resolves; a loaded model is untouched. `EngineBusyError` while
    /// another operation runs.
    #[wasm_bindgen(unchecked_return_type = "Promise<string>")]
    pub fn bench(
        &self,
        #[wasm_bindgen(js_name = optsJson)] opts_json: &str,
        #[wasm_bindgen(js_name = onLog, unchecked_param_type = "(line: string) => void")]
        on_log: Function,
    ) -> Promise {
        let opts = match parse::<BenchRequest>("bench options", opts_json).and_then(|r| r.options())
        {
            Ok(o) => o,
            Err(e) => return reject(e),
        };
        let inner = Rc::clone(&self.inner);
        {
            let mut st = inner.state.borrow_mut();
            if let Some(running) = st.busy {
                return reject(WasmError::busy(running));
            }
            st.busy = Some("bench");
        }
        future_to_promise(async move {
            let result = bench::run(&opts, &on_log).await;
            inner.state.borrow_mut().busy = None;
            Ok(JsValue::from_str(&to_json(&result?)))
        })
    }

    /// Stops the running generation before its next token (stopReason
    /// "aborted"); nothing when none runs.
    pub fn cancel(&self) {
        self.inner.cancel.store(true, Ordering::Relaxed);
    }

    /// Forgets the KV cache: the next prompt is computed from scratch.
    #[wasm_bindgen(js_name = resetCache)]
    pub fn reset_cache(&self) -> Result<(), JsValue> {
        Ok(self.with_model(|m| match m.session.as_mut() {
            Some(s) => {
                s.reset();
                Ok(())
            }
            None => Err(WasmError::busy("a generation")),
        })?)
    }

    /// Whether the device is lost (then every operation fails with
    /// `DeviceLostError` until `recoverDevice`).
    #[wasm_bindgen(js_name = deviceLost)]
    pub fn device_lost(&self) -> bool {
        self.inner.ctx().lost_reason().is_some()
    }

    /// After a device loss: drops the model and any load (their buffers died
    /// with the device) and opens a new device. Resolves to `true` when it
    /// did, `false` when the device was not lost (nothing changes then).
    /// `EngineBusyError` while an operation runs.
    #[wasm_bindgen(js_name = recoverDevice, unchecked_return_type = "Promise<boolean>")]
    pub fn recover_device(&self) -> Promise {
        let inner = Rc::clone(&self.inner);
        {
            let mut st = inner.state.borrow_mut();
            if let Some(running) = st.busy {
                return reject(WasmError::busy(running));
            }
            if inner.ctx().lost_reason().is_none() {
                return Promise::resolve(&JsValue::FALSE);
            }
            inner.drop_all(&mut st);
            st.busy = Some("recoverDevice");
        }
        future_to_promise(async move {
            let opened = open_device().await;
            inner.state.borrow_mut().busy = None;
            let (ctx, adapter) = opened?;
            *inner.ctx.borrow_mut() = ctx;
            *inner.adapter.borrow_mut() = adapter;
            Ok(JsValue::TRUE)
        })
    }

    /// Current size of the wasm linear memory in bytes.
    #[wasm_bindgen(js_name = wasmMemoryBytes)]
    pub fn wasm_memory_bytes(&self) -> f64 {
        platform::wasm_memory_bytes()
    }

    /// Heap bytes allocated now (live allocations, all engines in this module
    /// instance); unlike the linear memory it goes down when memory is freed.
    #[wasm_bindgen(js_name = wasmHeapBytes)]
    pub fn wasm_heap_bytes(&self) -> f64 {
        crate::alloc::current() as f64
    }
}
