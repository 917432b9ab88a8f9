/**
 * {@link CodeLlamaEngine} hosted in a Web Worker: every call becomes a typed message to the
 * worker (`worker.ts`), so loading and generation never block the page.
 *
 * An abort by the caller's signal rejects with the signal's own `reason` here in the page (the
 * worker only learns that the request was aborted); a `load()` while another runs replaces it in
 * the worker's engine (the first rejects with `AbortError`).
 */

import { AbortError, InternalError, InvalidRequestError, abortErrorFor, deserializeError, throwIfAborted } from './errors.js';
import { EngineBase, checkLoadOptions, checkTokenizeText, toIds } from './engine-common.js';
import { createGeneration, promptRequest, type RawGenerationStats } from './generation.js';
import { isUrlSource, resolveUrl } from './sources.js';
import { packageFileUrl } from './package-url.js';
import type {
  AdapterInfo,
  BenchOptions,
  BenchReport,
  CodeLlamaEngine,
  GenerateOptions,
  Generation,
  KvCacheType,
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
  WorkerEngineOptions,
  WorkerRequest,
  WorkerResponse,
  WorkerResultMap,
  WorkerSource,
} from './types.js';

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
type RequestBody = DistributiveOmit<WorkerRequest, 'id'>;

interface Pending {
  resolve(value: unknown): void;
  reject(error: Error): void;
  onProgress?: (p: LoadProgress) => void;
  onText?: (text: string) => void;
}

/**
 * Starts a worker hosting the engine and waits until its wasm and WebGPU device are ready
 * (rejects with `WebGpuUnavailableError` where WebGPU is missing in workers).
 */
export async function createWorkerEngine(opts: WorkerEngineOptions = {}): Promise<WorkerEngine> {
  const worker = opts.worker ?? defaultWorker();
  const engine = new WorkerEngine(worker);
  try {
    const init: RequestBody = { type: 'init' };
    if (opts.wasmUrl !== undefined) init.wasmUrl = resolveUrl(opts.wasmUrl);
    await engine.call<'init'>(init);
  } catch (e) {
    worker.terminate();
    throw e;
  }
  return engine;
}

function defaultWorker(): Worker {
  const devUrl = packageFileUrl('worker.js');
  if (devUrl !== undefined) return new Worker(devUrl, { type: 'module' });
  return new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
}

/** The Worker-hosted {@link CodeLlamaEngine}. Create it with {@link createWorkerEngine}. */
export class WorkerEngine extends EngineBase implements CodeLlamaEngine {
  #worker: Worker | null;
  #nextId = 1;
  #pending = new Map<number, Pending>();

  /** Wraps a worker that runs `codellama-webgpu/worker` (prefer {@link createWorkerEngine}). */
  constructor(worker: Worker) {
    super();
    this.#worker = worker;
    worker.addEventListener('message', (ev: MessageEvent<WorkerResponse>) => this.#onMessage(ev.data));
    worker.addEventListener('error', (ev: ErrorEvent) => {
      ev.preventDefault?.();
      this.#failAll(new InternalError(`the engine worker failed: ${ev.message || 'script error (could not load the worker module?)'}`));
    });
    worker.addEventListener('messageerror', () => {
      this.#failAll(new InternalError('a message from the engine worker could not be deserialised'));
    });
  }

  /** The underlying Worker (terminated by {@link dispose}). */
  get worker(): Worker | null {
    return this.#worker;
  }

  #onMessage(msg: WorkerResponse): void {
    const p = this.#pending.get(msg.id);
    if (p === undefined) return;
    switch (msg.type) {
      case 'progress':
        try {
          p.onProgress?.(msg.progress);
        } catch (e) {
          console.error('codellama-webgpu: onProgress threw', e);
        }
        return;
      case 'text':
        p.onText?.(msg.text);
        return;
      case 'result':
        this.#pending.delete(msg.id);
        p.resolve(msg.value);
        return;
      case 'error':
        this.#pending.delete(msg.id);
        p.reject(deserializeError(msg.error));
        return;
    }
  }

  #failAll(err: Error): void {
    const all = [...this.#pending.values()];
    this.#pending.clear();
    for (const p of all) p.reject(err);
  }

  #post(msg: WorkerRequest, transfer: Transferable[] = []): void {
    if (this.#worker === null) throw new InvalidRequestError('the engine was disposed');
    try {
      this.#worker.postMessage(msg, transfer);
    } catch (e) {
      const name = (e as { name?: string })?.name;
      if (name === 'DataCloneError') {
        throw new InvalidRequestError(
          `this value cannot be sent to the engine worker (${(e as Error).message}); pass a URL, Blob or ArrayBuffer`,
        );
      }
      throw e;
    }
  }

  /** Sends one request and resolves with its result. @internal */
  call<K extends keyof WorkerResultMap>(
    body: RequestBody & { type: K },
    hooks: Omit<Pending, 'resolve' | 'reject'> & { signal?: AbortSignal; transfer?: Transferable[] } = {},
  ): Promise<WorkerResultMap[K]> {
    const id = this.#nextId++;
    return new Promise<WorkerResultMap[K]>((resolve, reject) => {
      const { signal, transfer, ...rest } = hooks;
      const onAbort = () => {
        try {
          this.#post({ type: 'abort', id: this.#nextId++, target: id });
        } catch {
          /* disposed */
        }
      };
      const cleanup = () => signal?.removeEventListener('abort', onAbort);
      this.#pending.set(id, {
        ...rest,
        resolve: (v) => {
          cleanup();
          resolve(v as WorkerResultMap[K]);
        },
        reject: (e) => {
          cleanup();
          reject(e);
        },
      });
      try {
        this.#post({ ...body, id } as WorkerRequest, transfer ?? []);
      } catch (e) {
        this.#pending.delete(id);
        reject(e instanceof Error ? e : new InternalError(String(e)));
        return;
      }
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  // ------------------------------------------------------------------------------------------

  protected checkAlive(): void {
    if (this.#worker === null) throw new InvalidRequestError('the engine was disposed');
  }

  async load(source: ModelSource, opts: LoadOptions = {}): Promise<ModelInfo> {
    throwIfAborted(opts.signal);
    checkLoadOptions(opts);
    const { source: s, transfer } = toWorkerSource(source);
    const o: { contextLength?: number; kvCache?: KvCacheType; cache?: boolean | 'required' } = {};
    if (opts.contextLength !== undefined) o.contextLength = opts.contextLength;
    if (opts.kvCache !== undefined) o.kvCache = opts.kvCache;
    if (opts.cache !== undefined) o.cache = opts.cache;
    const hooks: Parameters<WorkerEngine['call']>[1] = { transfer };
    if (opts.signal !== undefined) hooks.signal = opts.signal;
    if (opts.onProgress !== undefined) hooks.onProgress = opts.onProgress;
    try {
      return await this.call<'load'>({ type: 'load', source: s, opts: o }, hooks);
    } catch (e) {
      if (e instanceof AbortError && opts.signal?.aborted) throw abortErrorFor(opts.signal);
      throw e;
    }
  }

  protected runRequest(request: WasmGenerateRequest, opts?: GenerateOptions): Generation {
    return createGeneration(
      (sink) =>
        this.call<'generate'>(
          { type: 'generate', request },
          { signal: sink.signal, onText: (t) => sink.push(t) },
        ) as Promise<RawGenerationStats>,
      opts?.signal,
    );
  }

  tokenize(text: string, opts: TokenizeOptions = {}): Promise<Uint32Array> {
    return this.#safe(() => this.call<'tokenize'>({ type: 'tokenize', text: checkTokenizeText(text), addBos: opts.addBos ?? true }));
  }

  detokenize(ids: Uint32Array | readonly number[]): Promise<string> {
    return this.#safe(() => this.call<'detokenize'>({ type: 'detokenize', ids: toIds(ids) }));
  }

  countTokens(request: PromptRequest, opts?: GenerateOptions): Promise<number> {
    return this.#safe(() => this.call<'countTokens'>({ type: 'countTokens', request: promptRequest(request, opts) }));
  }

  requestDefaults(): Promise<Record<PromptKind, RequestDefaults>> {
    return this.#safe(() => this.call<'requestDefaults'>({ type: 'requestDefaults' }));
  }

  info(): Promise<ModelInfo | null> {
    if (this.#worker === null) return Promise.resolve(null);
    return this.#safe(() => this.call<'info'>({ type: 'info' }));
  }

  adapterInfo(): Promise<AdapterInfo> {
    return this.#safe(() => this.call<'adapterInfo'>({ type: 'adapterInfo' }));
  }

  memoryUsage(): Promise<MemoryUsage> {
    return this.#safe(() => this.call<'memoryUsage'>({ type: 'memoryUsage' }));
  }

  resetCache(): Promise<void> {
    return this.#safe(() => this.call<'resetCache'>({ type: 'resetCache' }));
  }

  unload(): Promise<void> {
    return this.#safe(() => this.call<'unload'>({ type: 'unload' }));
  }

  bench(opts: BenchOptions = {}): Promise<BenchReport> {
    const { onLog, ...rest } = opts;
    const onText = (line: string) => {
      try {
        onLog?.(line);
      } catch (e) {
        console.error('codellama-webgpu: onLog threw', e);
      }
    };
    return this.#safe(() => this.call<'bench'>({ type: 'bench', opts: rest }, { onText }));
  }

  /** Disposes the worker's engine and terminates the worker. Idempotent. */
  async dispose(): Promise<void> {
    const worker = this.#worker;
    if (worker === null) return;
    try {
      await Promise.race([
        this.call<'dispose'>({ type: 'dispose' }),
        new Promise((resolve) => setTimeout(resolve, 5000)),
      ]);
    } catch {
      /* terminate anyway */
    }
    this.#worker = null;
    worker.terminate();
    this.#failAll(new InvalidRequestError('the engine was disposed'));
  }

  /** Runs `fn`, turning a synchronous throw into a rejection. */
  async #safe<T>(fn: () => Promise<T>): Promise<T> {
    return fn();
  }
}

/** Converts a source for `postMessage` (ArrayBuffers and streams are transferred). */
function toWorkerSource(source: ModelSource): { source: WorkerSource; transfer: Transferable[] } {
  if (isUrlSource(source)) return { source: { kind: 'url', url: resolveUrl(source) }, transfer: [] };
  if (typeof Blob !== 'undefined' && source instanceof Blob) return { source: { kind: 'blob', blob: source }, transfer: [] };
  if (typeof ReadableStream !== 'undefined' && source instanceof ReadableStream) {
    return { source: { kind: 'stream', stream: source }, transfer: [source as unknown as Transferable] };
  }
  if (source instanceof ArrayBuffer) {
    return { source: { kind: 'buffer', buffer: source, byteOffset: 0, byteLength: source.byteLength }, transfer: [source] };
  }
  if (ArrayBuffer.isView(source)) {
    const buf = source.buffer;
    if (buf instanceof ArrayBuffer) {
      return {
        source: { kind: 'buffer', buffer: buf, byteOffset: source.byteOffset, byteLength: source.byteLength },
        transfer: [buf],
      };
    }
    // SharedArrayBuffer: shared, not transferred.
    return {
      source: { kind: 'buffer', buffer: buf as unknown as ArrayBuffer, byteOffset: source.byteOffset, byteLength: source.byteLength },
      transfer: [],
    };
  }
  throw new InvalidRequestError(
    'unsupported model source: expected a URL string, URL, Blob/File, ReadableStream, ArrayBuffer or typed array',
  );
}
