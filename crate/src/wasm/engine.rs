//! `WasmEngine`: the raw JSON-in/JSON-out engine the TypeScript package wraps
//! (the contract is the package API of `web/README.md`, typed in `web/src/types.ts`).
//!
//! State lives in an `Rc<Inner>` that every async method clones into its
//! future; what an operation works on (the load in progress, the session) is
//! taken out of the `RefCell` before the first await and put back after the
//! last, so no borrow is ever held across an await. While an async operation
//! runs, `busy` names it: a second one is refused with `EngineBusyError`
//! (the TS layer queues requests; this is the backstop). One sequence does
//! this for every operation: [`Inner::start`] checks and sets `busy` and
//! notes the epoch, [`Op::finish`] clears it and says whether the epoch is
//! unchanged. Dropping a model or a load bumps `epoch`, so an operation in
//! flight can tell that what it works on is gone when it resumes.
//!
//! A load keeps the loaded model aside (its buffers out of the recorded list)
//! until the new one is ready, when the two fit [`KEEP_PREVIOUS_MAX_BYTES`]:
//! a failed or aborted load then puts it back, untouched. Otherwise (or when
//! the new file's size is unknown) the old model is dropped when the load
//! begins, and the new model's `notes` say so.
//!
//! The device can be lost (a driver reset, `GPUDevice.destroy()`, the browser
//! reclaiming the GPU): every operation then fails with `DeviceLostError`,
//! and `recoverDevice` drops the model and opens a new device in place, so
//! the same engine loads again without a page reload (the TS layer re-loads
//! the last model by itself on the next call).

use std::cell::{RefCell, RefMut};
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

/// The most bytes the loaded model's GPU buffers and the new file may take
/// together for the loaded model to be kept while a new one loads (WebGPU
/// does not tell how much memory a device has; 4 GiB is within what a
/// laptop GPU holds, and one 7B Q4 model alone is 3.8 GB).
pub const KEEP_PREVIOUS_MAX_BYTES: u64 = 4 << 30;

/// A loaded model set aside while a new load runs; its buffers are out of
/// the recorded list, so that a failed load destroys only its own.
struct Kept {
    model: Loaded,
    buffers: Vec<wgpu::Buffer>,
}

struct State {
    /// The async operation running, if any.
    busy: Option<&'static str>,
    epoch: u64,
    load: LoadSlot,
    model: Option<Loaded>,
    /// The model loaded before the load in progress, put back if it fails.
    previous: Option<Kept>,
    /// Said in the new model's notes (the previous model was dropped first).
    load_note: Option<String>,
}

/// An operation holding the engine (`busy` names it) from [`Inner::start`]
/// to [`Op::finish`]; dropped unfinished, it frees the engine.
struct Op {
    inner: Rc<Inner>,
    epoch: u64,
    done: bool,
}

impl Op {
    /// Clears `busy`. Returns the state and whether what the operation works
    /// on is still there (no unload, abort or device loss bumped the epoch).
    fn finish(&mut self) -> (RefMut<'_, State>, bool) {
        self.done = true;
        let mut st = self.inner.state.borrow_mut();
        st.busy = None;
        let current = st.epoch == self.epoch;
        (st, current)
    }

    /// Clears `busy` before the operation started (its input was refused).
    fn refuse(&mut self, st: &mut State) {
        self.done = true;
        st.busy = None;
    }
}

impl Drop for Op {
    fn drop(&mut self) {
        if !self.done {
            if let Ok(mut st) = self.inner.state.try_borrow_mut() {
                st.busy = None;
            }
        }
    }
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

    /// The start of every async operation: `EngineBusyError` while another
    /// runs, else `busy` names this one until [`Op::finish`].
    fn start(self: &Rc<Self>, st: &mut State, name: &'static str) -> WasmResult<Op> {
        if let Some(running) = st.busy {
            return Err(WasmError::busy(running));
        }
        st.busy = Some(name);
        Ok(Op {
            inner: Rc::clone(self),
            epoch: st.epoch,
            done: false,
        })
    }

    /// Starts `name` on the load waiting for its next step.
    fn take_load(self: &Rc<Self>, name: &'static str) -> WasmResult<(Box<Loading>, Op)> {
        let mut st = self.state.borrow_mut();
        let mut op = self.start(&mut st, name)?;
        match std::mem::replace(&mut st.load, LoadSlot::InFlight) {
            LoadSlot::Ready(l) => Ok((l, op)),
            other => {
                st.load = other;
                op.refuse(&mut st);
                Err(WasmError::invalid_request(format!(
                    "{name}: no load in progress (call beginLoad first)"
                )))
            }
        }
    }

    /// Sets the loaded model aside for a new load of `new_bytes` (kept when
    /// both fit [`KEEP_PREVIOUS_MAX_BYTES`]; else dropped, and the returned
    /// note says so).
    fn set_aside(&self, st: &mut State, new_bytes: Option<u64>) -> Option<String> {
        st.epoch += 1;
        self.cancel.store(true, Ordering::Relaxed);
        let model = st.model.take()?;
        let ctx = self.ctx();
        let old = ctx.recorded_buffers().1;
        match new_bytes {
            Some(n) if old.saturating_add(n) <= KEEP_PREVIOUS_MAX_BYTES => {
                let buffers = ctx.take_recorded_buffers();
                st.previous = Some(Kept { model, buffers });
                None
            }
            _ => {
                drop(model);
                ctx.destroy_recorded_buffers();
                let why = match new_bytes {
                    Some(n) => format!(
                        "its {old} GPU bytes and this file's {n} bytes exceed the \
                         {KEEP_PREVIOUS_MAX_BYTES}-byte limit for keeping both"
                    ),
                    None => "this file's size was not known".to_string(),
                };
                Some(format!(
                    "the previously loaded model was unloaded when this load began ({why})"
                ))
            }
        }
    }

    /// After a failed or aborted load: destroys the load's buffers and puts
    /// the model set aside back (none of it after a device loss).
    fn load_failed(&self, st: &mut State) {
        st.epoch += 1;
        st.load = LoadSlot::Idle;
        st.load_note = None;
        let ctx = self.ctx();
        ctx.destroy_recorded_buffers();
        if let Some(kept) = st.previous.take() {
            if ctx.lost_reason().is_some() {
                kept.buffers.iter().for_each(wgpu::Buffer::destroy);
            } else {
                ctx.restore_recorded_buffers(kept.buffers);
                st.model = Some(kept.model);
            }
        }
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
        st.load_note = None;
        if let Some(kept) = st.previous.take() {
            kept.buffers.iter().for_each(wgpu::Buffer::destroy);
        }
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
                    previous: None,
                    load_note: None,
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

    /// Starts a load (`{totalBytes?, contextLength?, kvCache?: "f16"|"q8"}`).
    /// The loaded model is set aside until the new one is ready (put back if
    /// the load fails or is aborted) when both fit
    /// [`KEEP_PREVIOUS_MAX_BYTES`]; else it is dropped now. No model answers
    /// while the load runs. `EngineBusyError` while another load or an
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
        let total = loading.total_bytes();
        st.load_note = self.inner.set_aside(&mut st, total);
        st.load = LoadSlot::Ready(Box::new(loading));
        Ok(())
    }

    /// Feeds the next chunk of the file; uploads the tensors it completes.
    /// Resolves to LoadProgress JSON.
    #[wasm_bindgen(unchecked_return_type = "Promise<string>")]
    pub fn push(&self, chunk: Vec<u8>) -> Promise {
        let inner = Rc::clone(&self.inner);
        let (mut loading, mut op) = match inner.take_load("push") {
            Ok(taken) => taken,
            Err(e) => return reject(e),
        };
        future_to_promise(async move {
            let epoch = op.epoch;
            let aborted = || inner.state.borrow().epoch != epoch;
            let ctx = inner.ctx();
            let result = loading.push(&ctx, &chunk, &aborted).await;
            drop(chunk);
            let (mut st, current) = op.finish();
            if !current {
                drop(loading);
                inner.load_failed(&mut st);
                return Err(WasmError::new(ErrorName::Abort, "the load was aborted").into());
            }
            match result {
                Ok(progress) => {
                    st.load = LoadSlot::Ready(loading);
                    Ok(JsValue::from_str(&to_json(&progress)))
                }
                Err(e) => {
                    inner.load_failed(&mut st);
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
        let (loading, mut op) = match inner.take_load("finishLoad") {
            Ok(taken) => taken,
            Err(e) => return reject(e),
        };
        future_to_promise(async move {
            let ctx = inner.ctx();
            let adapter = inner.adapter.borrow().clone();
            let result = loading.finish(Arc::clone(&ctx), &adapter).await;
            let (mut st, current) = op.finish();
            if !current {
                drop(result);
                inner.load_failed(&mut st);
                return Err(WasmError::new(ErrorName::Abort, "the load was aborted").into());
            }
            match result {
                Ok(mut loaded) => {
                    st.load = LoadSlot::Idle;
                    if let Some(kept) = st.previous.take() {
                        kept.buffers.iter().for_each(wgpu::Buffer::destroy);
                    }
                    if let Some(note) = st.load_note.take() {
                        loaded.info.notes.push(note);
                    }
                    let json = to_json(loaded.info());
                    st.model = Some(loaded);
                    Ok(JsValue::from_str(&json))
                }
                Err(e) => {
                    inner.load_failed(&mut st);
                    Err(e.into())
                }
            }
        })
    }

    /// Drops the load in progress (a `push` or `finishLoad` running rejects
    /// with `AbortError`); its GPU buffers are destroyed and the model set
    /// aside when it began is loaded again (once the operation running, if
    /// any, has stopped).
    #[wasm_bindgen(js_name = abortLoad)]
    pub fn abort_load(&self) {
        let mut st = self.inner.state.borrow_mut();
        match st.load {
            LoadSlot::Idle => {}
            LoadSlot::Ready(_) => self.inner.load_failed(&mut st),
            LoadSlot::InFlight => {
                // The operation holding it finds out through the epoch and
                // puts the previous model back when it stops.
                st.epoch += 1;
                st.load = LoadSlot::Idle;
                self.inner.ctx().destroy_recorded_buffers();
            }
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
            let mut op = match inner.start(st, "generate") {
                Ok(op) => op,
                Err(e) => return reject(e),
            };
            let Some(model) = st.model.as_mut() else {
                op.refuse(st);
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
                    op.refuse(st);
                    return reject(e);
                }
                (Ok(_), None) => {
                    op.refuse(st);
                    return reject(WasmError::busy("a generation"));
                }
                (Ok(p), Some(session)) => (p, session, Rc::clone(&model.tok), op),
            }
        };
        let (prepared, mut session, tok, mut op) = taken;
        future_to_promise(async move {
            let result = generate::run(&mut session, &tok, &prepared, &on_text).await;
            let (mut st, current) = op.finish();
            if !current {
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
        let started = inner.start(&mut inner.state.borrow_mut(), "bench");
        let mut op = match started {
            Ok(op) => op,
            Err(e) => return reject(e),
        };
        future_to_promise(async move {
            let result = bench::run(&opts, &on_log).await;
            drop(op.finish());
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
        let mut op = {
            let mut st = inner.state.borrow_mut();
            if let Some(running) = st.busy {
                return reject(WasmError::busy(running));
            }
            if inner.ctx().lost_reason().is_none() {
                return Promise::resolve(&JsValue::FALSE);
            }
            inner.drop_all(&mut st);
            match inner.start(&mut st, "recoverDevice") {
                Ok(op) => op,
                Err(e) => return reject(e),
            }
        };
        future_to_promise(async move {
            let opened = open_device().await;
            drop(op.finish());
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
