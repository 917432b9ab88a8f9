/**
 * The in-page engine: {@link CodeLlamaEngine} over the raw wasm `WasmEngine`.
 *
 * Requests run one at a time in call order. Read-only calls (`tokenize`, `detokenize`, `info`,
 * `adapterInfo`, `memoryUsage`) answer at once unless a `load`/`unload`/`resetCache` is pending,
 * in which case they wait for it.
 *
 * Device loss (a GPU reset, the browser reclaiming the device, `GPUDevice.destroy()`): the request
 * running fails with `DeviceLostError`; the next request re-creates the device and loads the last
 * model again (from the OPFS cache for URLs, or from the same Blob / buffer) before it runs, so
 * the page goes on without a reload. A model that came from a `ReadableStream` cannot be read
 * twice: that request fails with `DeviceLostError` until `load()` is called again.
 *
 * A `load()` while another runs aborts it (its promise rejects with `AbortError`) and runs next.
 * A load keeps the model loaded before it until the new one is ready (see `WasmEngine.beginLoad`):
 * when it fails or is aborted, that model answers again as before.
 */

import {
  AbortError,
  DeviceLostError,
  GpuOutOfMemoryError,
  InvalidModelError,
  InvalidRequestError,
  NotLoadedError,
  abortErrorFor,
  throwIfAborted,
  toCodeLlamaError,
} from './errors.js';
import { EngineBase, LoadSlot, checkLoadOptions, checkTokenizeText, toIds } from './engine-common.js';
import { createGeneration, failedGeneration, promptRequest, type RawGenerationStats } from './generation.js';
import { openLoadSource } from './load-source.js';
import { TaskQueue } from './queue.js';
import { createWasmEngine, type WasmEngine } from './wasm-loader.js';
import type {
  AdapterInfo,
  BenchOptions,
  BenchReport,
  CodeLlamaEngine,
  EngineOptions,
  GenerateOptions,
  Generation,
  LoadOptions,
  LoadProgress,
  MemoryUsage,
  ModelInfo,
  ModelSource,
  PromptKind,
  PromptRequest,
  RequestDefaults,
  TokenizeOptions,
  WasmGenerateRequest,
} from './types.js';

type WasmModelInfo = Omit<ModelInfo, 'fromCache' | 'loadMs' | 'cache'>;
/**
 * Whether a load that failed as not-a-model read an HTML page: the response said so, or its
 * first bytes are markup. (A development server answers a path it does not have with the app's
 * index.html and status 200.)
 */
function servedHtml(head: Uint8Array | null, contentType: string | null): boolean {
  if (contentType !== null && /html/i.test(contentType)) return true;
  if (head === null) return false;
  const text = new TextDecoder().decode(head).replace(/^\uFEFF/, '').trimStart().toLowerCase();
  return text.startsWith('<!doctype html') || text.startsWith('<html') || text.startsWith('<!--') || text.startsWith('<head');
}

type WasmProgress = Omit<LoadProgress, 'fromCache' | 'bytesPerSecond' | 'phase' | 'fraction'>;

/** LoadProgress.fraction of a `'stream'` or `'finish'` event (below 1: only `'ready'` is done). */
function loadFraction(p: Pick<LoadProgress, 'bytesDone' | 'bytesTotal' | 'tensorsDone' | 'tensorsTotal'>, before: number): number {
  let f = 0;
  if (p.bytesTotal !== null && p.bytesTotal > 0) f = p.bytesDone / p.bytesTotal;
  else if (p.tensorsTotal !== null && p.tensorsTotal > 0) f = p.tensorsDone / p.tensorsTotal;
  return Math.max(before, Math.min(f, 0.999));
}

const now = (): number => (typeof performance !== 'undefined' ? performance.now() : Date.now());

/** Creates an in-page engine (instantiates the wasm and a WebGPU device). */
export async function createEngine(opts: EngineOptions = {}): Promise<Engine> {
  return Engine.create(opts);
}

/** The in-page {@link CodeLlamaEngine}. Create it with {@link createEngine}. */
export class Engine extends EngineBase implements CodeLlamaEngine {
  #raw: WasmEngine | null;
  #queue = new TaskQueue();
  #loads = new LoadSlot();
  #info: ModelInfo | null = null;
  /** What to load again after a device loss (`null`: nothing, or a stream that cannot be re-read). */
  #reloadable: { source: ModelSource; opts: LoadOptions } | null = null;
  /** True from a device loss until the next load; `#reloadable` is what that load will be. */
  #lostModel = false;
  #deviceRecoveries = 0;
  #lifetime = new AbortController();

  private constructor(raw: WasmEngine) {
    super();
    this.#raw = raw;
  }

  /** Same as {@link createEngine}. */
  static async create(opts: EngineOptions = {}): Promise<Engine> {
    return new Engine(await createWasmEngine(opts.wasmUrl));
  }

  #engine(): WasmEngine {
    if (this.#raw === null) throw new InvalidRequestError('the engine was disposed');
    return this.#raw;
  }

  protected checkAlive(): void {
    this.#engine();
  }

  /** Runs a state-changing task in the queue; read-only calls wait for it. */
  async #mutation<T>(task: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    this.#engine();
    return this.#queue.mutate(task, signal);
  }

  /** Runs a read-only synchronous call, after pending mutations. */
  async #read<T>(fn: (raw: WasmEngine) => T): Promise<T> {
    this.#engine();
    return this.#queue.read(() => fn(this.#engine()));
  }

  // ------------------------------------------------------------------------------------------
  // Loading
  // ------------------------------------------------------------------------------------------

  async load(source: ModelSource, opts: LoadOptions = {}): Promise<ModelInfo> {
    this.#engine();
    throwIfAborted(opts.signal);
    checkLoadOptions(opts);
    // A load running (or queued) is replaced: it rejects with AbortError, this one runs next.
    const slot = this.#loads.replace();
    const signal = anySignal([opts.signal, slot.signal]);
    try {
      return await this.#mutation(() => this.#runLoad(source, { ...opts, signal }), signal);
    } finally {
      this.#loads.release(slot);
    }
  }

  /** `reload`: the model again after a device loss (kept for another try if this one fails). */
  async #runLoad(source: ModelSource, opts: LoadOptions, reload = false): Promise<ModelInfo> {
    const signal = anySignal([opts.signal, this.#lifetime.signal]);
    const raw = this.#engine();
    const t0 = now();
    throwIfAborted(signal);
    await this.#recoverDevice();
    if (!reload) this.#lostModel = false;
    const src = await openLoadSource(source, { signal, cache: opts.cache ?? true }).catch((e: unknown) => {
      throw signal.aborted ? abortErrorFor(signal) : toCodeLlamaError(e);
    });
    const wontFit = src.totalBytes === null ? null : sizeProblem(src.totalBytes, JSON.parse(raw.adapterJson()) as AdapterInfo);
    if (wontFit !== null) {
      await src.discard({ badCache: false });
      throw new GpuOutOfMemoryError(wontFit);
    }
    const beginOpts: Record<string, unknown> = {};
    if (src.totalBytes !== null) beginOpts['totalBytes'] = src.totalBytes;
    if (opts.contextLength !== undefined) beginOpts['contextLength'] = opts.contextLength;
    if (opts.kvCache !== undefined) beginOpts['kvCache'] = opts.kvCache;

    // Kept by the wasm engine until the new model is ready, and put back if this load fails.
    const before = this.#info;
    this.#info = null;
    let begun = false;
    // The file's first bytes, to explain a page that came back instead of a model.
    let head: Uint8Array | null = null;
    let last: LoadProgress = {
      phase: 'open',
      fraction: 0,
      bytesDone: 0,
      bytesTotal: src.totalBytes,
      tensor: null,
      tensorsDone: 0,
      tensorsTotal: null,
      fromCache: src.fromCache,
      bytesPerSecond: 0,
    };
    const report = (p: LoadProgress) => {
      last = p;
      if (opts.onProgress === undefined) return;
      try {
        opts.onProgress(p);
      } catch (e) {
        console.error('codellama-webgpu: onProgress threw', e);
      }
    };
    try {
      raw.beginLoad(JSON.stringify(beginOpts));
      begun = true;
      report(last);
      let fed = 0;
      for await (const chunk of src.chunks) {
        throwIfAborted(signal);
        if (head === null) head = chunk.slice(0, 64);
        const p = JSON.parse(await raw.push(chunk)) as WasmProgress;
        fed += chunk.byteLength;
        throwIfAborted(signal);
        const secs = (now() - t0) / 1000;
        const counts = {
          bytesDone: p.bytesDone ?? fed,
          bytesTotal: p.bytesTotal ?? src.totalBytes,
          tensorsDone: p.tensorsDone ?? 0,
          tensorsTotal: p.tensorsTotal ?? null,
        };
        report({
          phase: 'stream',
          fraction: loadFraction(counts, last.fraction),
          ...counts,
          tensor: p.tensor ?? null,
          fromCache: src.fromCache,
          bytesPerSecond: secs > 0 ? fed / secs : 0,
        });
      }
      throwIfAborted(signal);
      report({ ...last, phase: 'finish', fraction: loadFraction(last, last.fraction) });
      const wasmInfo = JSON.parse(await raw.finishLoad()) as WasmModelInfo;
      begun = false;
      const loadMs = now() - t0;
      const cache = await src.commit();
      const info: ModelInfo = { ...wasmInfo, fromCache: src.fromCache, loadMs, cache };
      this.#info = info;
      this.#lostModel = false;
      this.#reloadable = source instanceof ReadableStream ? null : { source, opts: { ...opts, signal: undefined, onProgress: undefined } };
      report({
        ...last,
        phase: 'ready',
        fraction: 1,
        bytesDone: wasmInfo.fileBytes ?? last.bytesDone,
        bytesTotal: wasmInfo.fileBytes ?? last.bytesTotal,
        tensorsDone: last.tensorsTotal ?? last.tensorsDone,
        bytesPerSecond: loadMs > 0 ? ((wasmInfo.fileBytes ?? last.bytesDone) * 1000) / loadMs : 0,
      });
      return info;
    } catch (e) {
      if (begun) {
        try {
          raw.abortLoad();
        } catch {
          /* already dropped */
        }
      }
      // The wasm engine put the previous model back, unless it had to drop it to make room.
      this.#info = before !== null && hasModel(raw) ? before : null;
      let err = signal.aborted ? abortErrorFor(signal) : toCodeLlamaError(e);
      if (err instanceof InvalidModelError && servedHtml(head, src.contentType)) {
        const type = src.contentType === null ? '' : ` (Content-Type: ${src.contentType})`;
        err = new InvalidModelError(
          `not a GGUF file: an HTML page came back${type} instead of the model. Check the model URL: ` +
            'a development server (Vite, webpack) answers a path it does not have with its index.html and status 200.',
          { cause: err },
        );
      }
      await src.discard({ badCache: src.fromCache && err instanceof InvalidModelError });
      throw err;
    }
  }

  // ------------------------------------------------------------------------------------------
  // Generation
  // ------------------------------------------------------------------------------------------

  /** Runs a raw wasm request (used by the Worker host). */
  generateRaw(request: WasmGenerateRequest, signal?: AbortSignal): Generation {
    try {
      this.#engine();
    } catch (e) {
      return failedGeneration(e);
    }
    return this.runRequest(request, signal === undefined ? undefined : { signal });
  }

  protected runRequest(request: WasmGenerateRequest, opts?: GenerateOptions): Generation {
    const json = JSON.stringify(request);
    return createGeneration(async (sink) => {
      const signal = anySignal([sink.signal, this.#lifetime.signal]);
      return this.#queue.run(async () => {
        throwIfAborted(signal);
        const raw = this.#engine();
        await this.#reloadAfterDeviceLoss(signal);
        if (this.#info === null) throw new NotLoadedError('no model is loaded; call load() first');
        const onAbort = () => {
          try {
            raw.cancel();
          } catch {
            /* not running */
          }
        };
        signal.addEventListener('abort', onAbort, { once: true });
        try {
          const statsJson = await raw.generate(json, (piece: string) => sink.push(piece));
          const stats = JSON.parse(statsJson) as RawGenerationStats;
          if (stats.stopReason === 'aborted' && !signal.aborted) {
            throw new AbortError('The generation was aborted');
          }
          return stats;
        } catch (e) {
          throw signal.aborted ? abortErrorFor(signal) : toCodeLlamaError(e);
        } finally {
          signal.removeEventListener('abort', onAbort);
          this.#refreshKv();
        }
      }, signal);
    }, opts?.signal);
  }

  /** Opens a new device if the old one was lost (the model is gone with it). */
  async #recoverDevice(): Promise<void> {
    const raw = this.#engine();
    if (!raw.deviceLost()) return;
    const hadModel = this.#info !== null;
    try {
      await raw.recoverDevice();
    } catch (e) {
      throw toCodeLlamaError(e);
    }
    this.#deviceRecoveries++;
    this.#info = null;
    if (hadModel) this.#lostModel = true;
  }

  /**
   * Before a generation: after a device loss, a new device and the last model loaded again
   * (progress is not reported; `info().loadMs` and `fromCache` describe the reload).
   */
  async #reloadAfterDeviceLoss(signal: AbortSignal): Promise<void> {
    await this.#recoverDevice();
    if (!this.#lostModel) return;
    const again = this.#reloadable;
    if (again === null) {
      throw new DeviceLostError('the GPU device was lost and the model came from a stream that cannot be read again; call load() again');
    }
    await this.#runLoad(again.source, { ...again.opts, signal }, true);
  }

  /** Keeps `info().kvBytes` current after generations (the KV cache grows with use). */
  #refreshKv(): void {
    if (this.#info === null || this.#raw === null) return;
    try {
      const w = JSON.parse(this.#raw.infoJson()) as WasmModelInfo;
      this.#info = { ...this.#info, kvBytes: w.kvBytes };
    } catch {
      /* keep the old figure */
    }
  }

  // ------------------------------------------------------------------------------------------
  // Tokenizer, info, lifetime
  // ------------------------------------------------------------------------------------------

  tokenize(text: string, opts: TokenizeOptions = {}): Promise<Uint32Array> {
    try {
      checkTokenizeText(text);
    } catch (e) {
      return Promise.reject(e);
    }
    return this.#read((raw) => {
      if (this.#info === null) throw new NotLoadedError('no model is loaded; call load() first');
      return raw.tokenize(text, opts.addBos ?? true);
    });
  }

  detokenize(ids: Uint32Array | readonly number[]): Promise<string> {
    let arr: Uint32Array;
    try {
      arr = toIds(ids);
    } catch (e) {
      return Promise.reject(e);
    }
    return this.#read((raw) => {
      if (this.#info === null) throw new NotLoadedError('no model is loaded; call load() first');
      return raw.detokenize(arr);
    });
  }

  countTokens(request: PromptRequest, opts?: GenerateOptions): Promise<number> {
    let raw: WasmGenerateRequest;
    try {
      raw = promptRequest(request, opts);
    } catch (e) {
      return Promise.reject(e);
    }
    return this.countTokensRaw(raw);
  }

  /** `countTokens` of a raw wasm request (used by the Worker host). */
  countTokensRaw(request: WasmGenerateRequest): Promise<number> {
    const json = JSON.stringify(request);
    return this.#read((raw) => {
      if (this.#info === null) throw new NotLoadedError('no model is loaded; call load() first');
      return raw.countTokens(json);
    });
  }

  requestDefaults(): Promise<Record<PromptKind, RequestDefaults>> {
    return this.#read((raw) => JSON.parse(raw.requestDefaultsJson()) as Record<PromptKind, RequestDefaults>);
  }

  info(): Promise<ModelInfo | null> {
    if (this.#raw === null) return Promise.resolve(null);
    return this.#read(() => {
      this.#refreshKv();
      return this.#info === null ? null : { ...this.#info };
    });
  }

  adapterInfo(): Promise<AdapterInfo> {
    return this.#read((raw) => JSON.parse(raw.adapterJson()) as AdapterInfo);
  }

  memoryUsage(): Promise<MemoryUsage> {
    return this.#read((raw) => {
      this.#refreshKv();
      return {
        wasmBytes: raw.wasmMemoryBytes(),
        wasmHeapBytes: raw.wasmHeapBytes(),
        deviceRecoveries: this.#deviceRecoveries,
        gpuBytes: this.#info?.gpuBytes ?? 0,
        kvBytes: this.#info?.kvBytes ?? 0,
      };
    });
  }

  resetCache(): Promise<void> {
    return this.#mutation(async () => {
      this.#engine().resetCache();
    });
  }

  unload(): Promise<void> {
    return this.#mutation(async () => {
      this.#engine().unload();
      this.#info = null;
      this.#reloadable = null;
      this.#lostModel = false;
    });
  }

  bench(opts: BenchOptions = {}): Promise<BenchReport> {
    const { onLog, ...rest } = opts;
    let json: string;
    try {
      this.#engine();
      json = JSON.stringify(rest);
    } catch (e) {
      return Promise.reject(toCodeLlamaError(e));
    }
    const log = (line: string) => {
      if (onLog === undefined) return;
      try {
        onLog(line);
      } catch (e) {
        console.error('codellama-webgpu: onLog threw', e);
      }
    };
    return this.#queue.run(async () => {
      try {
        return JSON.parse(await this.#engine().bench(json, log)) as BenchReport;
      } catch (e) {
        throw toCodeLlamaError(e);
      }
    });
  }

  /** Cancels queued and running work, frees GPU memory and the wasm object. Idempotent. */
  async dispose(): Promise<void> {
    if (this.#raw === null) return;
    const raw = this.#raw;
    this.#raw = null;
    this.#info = null;
    this.#lifetime.abort(new AbortError('the engine was disposed'));
    await this.#queue.run(async () => {
      try {
        raw.unload();
      } catch {
        /* nothing loaded */
      }
      raw.free();
    });
  }
}

/**
 * Before a download: why a file of `bytes` cannot fit the adapter, or `null` when it may (or
 * nothing can be known). WebGPU does not say how much memory a device has; an adapter that runs
 * on the CPU (SwiftShader, llvmpipe) holds its buffers in the machine's memory, of which
 * `navigator.deviceMemory` gives a lower bound (GiB, rounded down to a power of two, capped at
 * 8): a file over it, below the cap, does not fit. The weights take at least the file's bytes on
 * the GPU (the tensors are uploaded as they are, none shrinks).
 */
export function sizeProblem(bytes: number, adapter: AdapterInfo): string | null {
  if (adapter.deviceType !== 'cpu') return null;
  const mem = (globalThis as { navigator?: { deviceMemory?: unknown } }).navigator?.deviceMemory;
  if (typeof mem !== 'number' || !(mem > 0) || mem >= 8) return null;
  const limit = mem * 2 ** 30;
  if (bytes <= limit) return null;
  const gb = (n: number) => `${(n / 1e9).toFixed(2)} GB`;
  return (
    `the model (${gb(bytes)}) will not fit: the adapter "${adapter.name}" runs on the CPU and this machine has about ` +
    `${mem} GiB of memory (navigator.deviceMemory), so it was not loaded (a URL's download stops at its response headers). Use a smaller model (a lower quantization) or a device with more memory.`
  );
}

/** Whether the wasm engine has a model loaded now. */
function hasModel(raw: WasmEngine): boolean {
  try {
    raw.infoJson();
    return true;
  } catch {
    return false;
  }
}

/** An AbortSignal aborted when any of `signals` is (AbortSignal.any where available). */
export function anySignal(signals: ReadonlyArray<AbortSignal | undefined>): AbortSignal {
  const list = signals.filter((s): s is AbortSignal => s !== undefined);
  const any = (AbortSignal as { any?: (s: AbortSignal[]) => AbortSignal }).any;
  if (typeof any === 'function') return any.call(AbortSignal, list);
  const ctl = new AbortController();
  for (const s of list) {
    if (s.aborted) {
      ctl.abort(s.reason);
      break;
    }
    s.addEventListener('abort', () => ctl.abort(s.reason), { once: true });
  }
  return ctl.signal;
}
