/**
 * The remote engine: {@link CodeLlamaEngine} over an OpenAI-compatible server (llama.cpp's
 * `llama-server`, vLLM, …) instead of this device's GPU.
 *
 * Prompts are token-exact: the engine builds Meta's completion, infill (PSM/SPM) and chat token
 * ids itself with the package's own tokenizer and prompt builders (wasm `WasmPromptBuilder`, the
 * code the local engine runs), from the server's model's tokenizer (its GGUF header or a
 * `tokenizer.json`), and sends them as a token-id prompt, so infill uses the real
 * `▁<PRE>`/`▁<SUF>`/`▁<MID>` ids whatever the server's own text handling. The engine talks to
 * `baseUrl` and to the tokenizer URL, and to nothing else.
 *
 * Requests run one at a time in call order, as in the local engine (a server serves other
 * clients besides; one editor's requests are sequential). `load()` reads a tokenizer again (a
 * GGUF or tokenizer.json URL, or GGUF bytes: a Blob, buffer or stream, read only up to the end of
 * its header) and asks the server again what it serves.
 */

import { AbortError, InvalidRequestError, NotLoadedError, abortErrorFor, throwIfAborted, toCodeLlamaError } from '../errors.js';
import { EngineBase, LoadSlot, checkLoadOptions, checkTokenizeText, toIds } from '../engine-common.js';
import { anySignal } from '../engine.js';
import { createGeneration, promptRequest } from '../generation.js';
import { TaskQueue } from '../queue.js';
import { isUrlSource, openSource } from '../sources.js';
import { WasmPromptBuilder, initWasm, wasmMemoryBytes } from '../wasm-loader.js';
import type {
  AdapterInfo,
  BenchReport,
  CodeLlamaEngine,
  GenerateOptions,
  Generation,
  LoadOptions,
  LoadProgress,
  MemoryUsage,
  ModelInfo,
  ModelSource,
  PromptKind,
  PromptRequest,
  RemoteEngineOptions,
  RemoteServerInfo,
  RemoteTokenizerSource,
  RequestDefaults,
  ServerFlavor,
  TokenizeOptions,
  WasmGenerateRequest,
} from '../types.js';
import { runCompletion, type PreparedRequest } from './completion-stream.js';
import { ServerClient, probeServer, type ServerFacts } from './server.js';
import { loadTokenizer, tokenizerFromChunks, tokenizerSpec, type LoadedTokenizer } from './tokenizer-source.js';

/** `WasmPromptBuilder.infoJson()`. */
interface TokenizerInfo {
  vocabSize: number;
  contextLength: number | null;
  name: string;
  architecture: string;
  nLayers: number | null;
  dim: number | null;
  nHeads: number | null;
  nKvHeads: number | null;
  source: 'gguf' | 'tokenizer.json';
}

interface Loaded {
  builder: WasmPromptBuilder;
  server: RemoteServerInfo;
  info: ModelInfo;
  /** Stop token id → its text inside a sequence (see {@link stopPiece}). */
  stopPieces: Map<number, string>;
}

/**
 * The text of token `id` as a server renders it after other text (SentencePiece's `▁` as a space,
 * which a decode from the sequence start drops): the decode of `a` + id minus the decode of `a`.
 */
function stopPiece(builder: WasmPromptBuilder, id: number): string {
  const a = Array.from(builder.tokenize('a', false));
  const base = builder.detokenize(a);
  const full = builder.detokenize([...a, id]);
  return full.startsWith(base) ? full.slice(base.length) : '';
}

const FLAVORS: readonly ServerFlavor[] = ['llama.cpp', 'vllm', 'openai'];
/** Body fields the engine owns: the token-id prompt and the event stream it parses. */
const RESERVED_BODY_FIELDS = ['prompt', 'stream'];

const now = (): number => (typeof performance !== 'undefined' ? performance.now() : Date.now());

/**
 * Creates a remote engine: instantiates the wasm (no WebGPU needed), asks the server what it
 * serves (`GET /v1/models`, and llama.cpp's `GET /props` for the context) and reads the tokenizer.
 * Rejects with `NetworkError` (server or tokenizer URL unreachable), `InvalidRequestError` (not an
 * OpenAI-compatible server, API key refused, unknown model, bad options) or `InvalidModelError`
 * (the tokenizer URL is not a GGUF / tokenizer.json).
 */
export async function createRemoteEngine(opts: RemoteEngineOptions): Promise<RemoteEngine> {
  return RemoteEngine.create(opts);
}

/** The remote {@link CodeLlamaEngine}. Create it with {@link createRemoteEngine}. */
export class RemoteEngine extends EngineBase implements CodeLlamaEngine {
  readonly #client: ServerClient;
  readonly #flavor: ServerFlavor | undefined;
  readonly #model: string | undefined;
  readonly #contextLength: number | undefined;
  readonly #extraBody: Record<string, unknown>;
  readonly #fetch: typeof fetch | undefined;
  #loaded: Loaded | null = null;
  #queue = new TaskQueue();
  #loads = new LoadSlot();
  #lifetime = new AbortController();
  #disposed = false;

  private constructor(client: ServerClient, opts: RemoteEngineOptions) {
    super();
    this.#client = client;
    this.#flavor = opts.flavor;
    this.#model = opts.model;
    this.#contextLength = opts.contextLength;
    this.#extraBody = { ...(opts.extraBody ?? {}) };
    this.#fetch = opts.fetch;
  }

  /** Same as {@link createRemoteEngine}. */
  static async create(opts: RemoteEngineOptions): Promise<RemoteEngine> {
    checkOptions(opts);
    throwIfAborted(opts.signal);
    const client = new ServerClient(opts.baseUrl, opts.apiKey, opts.fetch);
    await initWasm(opts.wasmUrl);
    const engine = new RemoteEngine(client, opts);
    await engine.#mutation(() => engine.#runLoad(opts.tokenizer, {}, anySignal([opts.signal, engine.#lifetime.signal])));
    return engine;
  }

  /** The server, model and context requests use (`null` after `unload()` or `dispose()`). */
  server(): RemoteServerInfo | null {
    return this.#loaded === null ? null : { ...this.#loaded.server, models: [...this.#loaded.server.models] };
  }

  protected checkAlive(): void {
    if (this.#disposed) throw new InvalidRequestError('the engine was disposed');
  }

  #require(): Loaded {
    this.checkAlive();
    if (this.#loaded === null) throw new NotLoadedError('no tokenizer is loaded (unload() was called); call load() with the tokenizer URL');
    return this.#loaded;
  }

  async #mutation<T>(task: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    this.checkAlive();
    return this.#queue.mutate(task, signal);
  }

  /** A synchronous read of the tokenizer, after pending loads/unloads. */
  async #read<T>(fn: (loaded: Loaded) => T): Promise<T> {
    this.checkAlive();
    return this.#queue.read(() => fn(this.#require()));
  }

  // ------------------------------------------------------------------------------------------
  // Loading: the tokenizer and the server's facts
  // ------------------------------------------------------------------------------------------

  /**
   * Reads a tokenizer again and asks the server again what it serves. `source`: a tokenizer URL
   * (GGUF or `.json`, as `createRemoteEngine`'s `tokenizer`), or GGUF bytes (Blob, buffer,
   * stream: read up to the end of the header). `contextLength` caps the context prompts are built
   * for; `kvCache` and `cache` do not apply (the server holds the model and its cache).
   */
  async load(source: ModelSource, opts: LoadOptions = {}): Promise<ModelInfo> {
    this.checkAlive();
    throwIfAborted(opts.signal);
    checkLoadOptions(opts);
    const slot = this.#loads.replace();
    const signal = anySignal([opts.signal, slot.signal, this.#lifetime.signal]);
    try {
      return await this.#mutation(() => this.#runLoad(source, opts, signal), signal);
    } finally {
      this.#loads.release(slot);
    }
  }

  async #runLoad(source: ModelSource | RemoteTokenizerSource, opts: LoadOptions, signal: AbortSignal): Promise<ModelInfo> {
    const t0 = now();
    throwIfAborted(signal);
    let last: LoadProgress = {
      phase: 'open',
      fraction: 0,
      bytesDone: 0,
      bytesTotal: null,
      tensor: null,
      tensorsDone: 0,
      tensorsTotal: null,
      fromCache: false,
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
    report(last);
    const onBytes = (bytesDone: number, bytesTotal: number | null) => {
      const secs = (now() - t0) / 1000;
      // The header's size is known only once it is read: the fraction creeps towards 0.9.
      const fraction = Math.max(last.fraction, Math.min(0.9, bytesDone / (bytesDone + 1024 * 1024)));
      report({ ...last, phase: 'stream', fraction, bytesDone, bytesTotal, bytesPerSecond: secs > 0 ? bytesDone / secs : 0 });
    };

    const [facts, tok] = await Promise.allSettled([
      probeServer(this.#client, { flavor: this.#flavor, model: this.#model, signal }),
      this.#readTokenizer(source, signal, onBytes),
    ]);
    if (tok.status === 'fulfilled' && facts.status === 'rejected') tok.value.builder.free();
    if (signal.aborted) {
      if (tok.status === 'fulfilled' && facts.status === 'fulfilled') tok.value.builder.free();
      throw abortErrorFor(signal);
    }
    if (facts.status === 'rejected') throw toCodeLlamaError(facts.reason);
    if (tok.status === 'rejected') throw toCodeLlamaError(tok.reason);
    const loaded = tok.value;
    try {
      report({ ...last, phase: 'finish', fraction: Math.max(last.fraction, 0.95) });
      const next = this.#describe(loaded, facts.value, opts.contextLength, now() - t0);
      this.#loaded?.builder.free();
      this.#loaded = next;
      report({ ...last, phase: 'ready', fraction: 1 });
      return { ...next.info };
    } catch (e) {
      loaded.builder.free();
      throw toCodeLlamaError(e);
    }
  }

  #readTokenizer(
    source: ModelSource | RemoteTokenizerSource,
    signal: AbortSignal,
    onBytes: (bytesDone: number, bytesTotal: number | null) => void,
  ): Promise<LoadedTokenizer> {
    const plainObject = source !== null && typeof source === 'object' && ('gguf' in source || 'tokenizerJson' in source);
    if (isUrlSource(source as ModelSource) || plainObject) {
      const spec = tokenizerSpec(source as RemoteTokenizerSource);
      return loadTokenizer(spec, { fetch: this.#fetch, signal, onBytes });
    }
    return (async () => {
      const opened = await openSource(source as ModelSource, { signal });
      try {
        return await tokenizerFromChunks(opened.chunks, opened.totalBytes, signal, onBytes);
      } finally {
        await opened.close?.();
      }
    })();
  }

  /** The loaded state: context length, the server's facts, the {@link ModelInfo} it can fill. */
  #describe(tok: LoadedTokenizer, facts: ServerFacts, loadContext: number | undefined, loadMs: number): Loaded {
    const t = JSON.parse(tok.builder.infoJson()) as TokenizerInfo;
    if (facts.vocabSize !== null && facts.vocabSize !== t.vocabSize) {
      throw new InvalidRequestError(
        `the tokenizer has ${t.vocabSize} tokens but the server's model "${facts.model}" has ${facts.vocabSize}: ` +
          'it is not that model\'s tokenizer (prompts would not be token-exact)',
      );
    }
    const given = loadContext ?? this.#contextLength;
    let contextLength: number;
    let contextSource: RemoteServerInfo['contextSource'];
    const known = facts.contextLength ?? t.contextLength;
    if (known !== null) {
      contextLength = given !== undefined ? Math.min(known, given) : known;
      contextSource = given !== undefined && given < known ? 'option' : facts.contextLength !== null ? 'server' : 'gguf';
    } else if (given !== undefined) {
      contextLength = given;
      contextSource = 'option';
    } else {
      throw new InvalidRequestError(
        `the context length is unknown: the server at ${this.#client.baseUrl} does not say it and a tokenizer.json does not hold it; pass contextLength`,
      );
    }
    const server: RemoteServerInfo = {
      baseUrl: this.#client.baseUrl,
      flavor: facts.flavor,
      model: facts.model,
      models: facts.models,
      contextLength,
      contextSource,
    };
    const dim = t.dim ?? 0;
    const nHeads = t.nHeads ?? 0;
    const info: ModelInfo = {
      architecture: t.architecture,
      name: t.name !== '' ? t.name : facts.model,
      vocabSize: t.vocabSize,
      dim,
      nLayers: t.nLayers ?? 0,
      nHeads,
      nKvHeads: t.nKvHeads ?? 0,
      ffnDim: 0,
      headDim: dim > 0 && nHeads > 0 ? dim / nHeads : 0,
      ropeTheta: 0,
      trainedContext: t.contextLength ?? 0,
      contextLength,
      kvCache: 'f16',
      tensorTypes: {},
      fileBytes: tok.fileBytes ?? 0,
      gpuBytes: 0,
      kvBytesPerToken: 0,
      kvBytes: 0,
      notes: [
        `remote: ${facts.flavor} server at ${this.#client.baseUrl}, model "${facts.model}"`,
        `tokenizer from a ${tok.kind === 'gguf' ? 'GGUF header' : 'tokenizer.json'} (${tok.bytesRead} bytes read)`,
        `context ${contextLength} tokens (${contextSource === 'server' ? 'the server\'s' : contextSource === 'gguf' ? 'the GGUF\'s trained context' : 'contextLength option'})`,
        'the weights, KV cache and GPU figures are the server\'s: 0 here',
      ],
      adapter: this.#adapter(facts.flavor),
      fromCache: false,
      loadMs,
      cache: { status: 'off', note: null, persisted: null },
    };
    return { builder: tok.builder, server, info, stopPieces: new Map() };
  }

  #adapter(flavor: ServerFlavor): AdapterInfo {
    return {
      name: `${flavor} server at ${this.#client.baseUrl}`,
      backend: 'http',
      deviceType: 'remote',
      f16: false,
      subgroups: false,
      maxBufferSize: 0,
      maxStorageBindingSize: 0,
    };
  }

  // ------------------------------------------------------------------------------------------
  // Generation
  // ------------------------------------------------------------------------------------------

  protected runRequest(request: WasmGenerateRequest, opts?: GenerateOptions): Generation {
    const json = JSON.stringify(request);
    return createGeneration(async (sink) => {
      const signal = anySignal([sink.signal, this.#lifetime.signal]);
      return this.#queue.run(async () => {
        throwIfAborted(signal);
        const loaded = this.#require();
        const { flavor, model, contextLength } = loaded.server;
        let prepared: PreparedRequest;
        try {
          prepared = JSON.parse(loaded.builder.prepareJson(json, contextLength, flavor, model)) as PreparedRequest;
        } catch (e) {
          throw toCodeLlamaError(e);
        }
        // llama.cpp's `verbose` adds `__verbose.stop_type` (stop token or stop string) and the
        // exact generated count to its events; `extraBody` comes last and may turn it off.
        const body = { ...prepared.body, ...(flavor === 'llama.cpp' ? { verbose: true } : {}), ...this.#extraBody };
        for (const id of prepared.stopIds) {
          if (!loaded.stopPieces.has(id)) loaded.stopPieces.set(id, stopPiece(loaded.builder, id));
        }
        return runCompletion(this.#client, body, prepared, sink, signal, loaded.stopPieces);
      }, signal);
    }, opts?.signal);
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
    return this.#read((l) => Uint32Array.from(l.builder.tokenize(text, opts.addBos ?? true)));
  }

  detokenize(ids: Uint32Array | readonly number[]): Promise<string> {
    let arr: Uint32Array;
    try {
      arr = toIds(ids);
    } catch (e) {
      return Promise.reject(e);
    }
    return this.#read((l) => l.builder.detokenize(arr));
  }

  countTokens(request: PromptRequest, opts?: GenerateOptions): Promise<number> {
    let json: string;
    try {
      json = JSON.stringify(promptRequest(request, opts));
    } catch (e) {
      return Promise.reject(e);
    }
    return this.#read((l) => l.builder.countTokens(json, l.server.contextLength));
  }

  requestDefaults(): Promise<Record<PromptKind, RequestDefaults>> {
    try {
      this.checkAlive();
      return Promise.resolve(JSON.parse(WasmPromptBuilder.requestDefaultsJson()) as Record<PromptKind, RequestDefaults>);
    } catch (e) {
      return Promise.reject(toCodeLlamaError(e));
    }
  }

  /**
   * The server's model as far as the tokenizer and the server tell: architecture, name, vocabulary,
   * dim / layers / heads (GGUF only; 0 from a tokenizer.json), trained and used context, the
   * GGUF's size. `ffnDim`, `ropeTheta`, `tensorTypes`, `gpuBytes`, `kvBytes`, `kvBytesPerToken` are
   * 0 / empty (the server holds the weights); `kvCache` is `'f16'` and means nothing here.
   */
  info(): Promise<ModelInfo | null> {
    if (this.#disposed) return Promise.resolve(null);
    const get = () => (this.#loaded === null ? null : { ...this.#loaded.info });
    return this.#queue.read(get);
  }

  /** Describes the server: `backend: 'http'`, `deviceType: 'remote'`, its flavor and base URL in `name`. */
  adapterInfo(): Promise<AdapterInfo> {
    try {
      this.checkAlive();
    } catch (e) {
      return Promise.reject(e);
    }
    return Promise.resolve(this.#adapter(this.#loaded?.server.flavor ?? this.#flavor ?? 'openai'));
  }

  /** This page's wasm memory; the model's memory is the server's (GPU and KV figures are 0). */
  memoryUsage(): Promise<MemoryUsage> {
    try {
      this.checkAlive();
    } catch (e) {
      return Promise.reject(e);
    }
    const bytes = wasmMemoryBytes();
    return Promise.resolve({ wasmBytes: bytes, wasmHeapBytes: 0, deviceRecoveries: 0, gpuBytes: 0, kvBytes: 0 });
  }

  /** Nothing to forget here: the server keeps (and reuses) its own prompt cache. Resolves after queued requests. */
  resetCache(): Promise<void> {
    return this.#mutation(async () => {});
  }

  /** Drops the tokenizer (requests then reject with `NotLoadedError` until `load()`). */
  unload(): Promise<void> {
    return this.#mutation(async () => {
      this.#loaded?.builder.free();
      this.#loaded = null;
    });
  }

  /** Rejects with `InvalidRequestError`: `bench()` measures this device's WebGPU, which a remote engine does not use. */
  bench(): Promise<BenchReport> {
    return Promise.reject(
      new InvalidRequestError(
        "bench() measures this device's WebGPU and the remote engine does not use it; benchmark the server itself (llama.cpp's llama-bench, vLLM's benchmark scripts)",
      ),
    );
  }

  /** Closes running streams, drops queued requests and frees the tokenizer. Idempotent. */
  async dispose(): Promise<void> {
    if (this.#disposed) return;
    this.#disposed = true;
    this.#lifetime.abort(new AbortError('the engine was disposed'));
    await this.#queue.run(async () => {
      this.#loaded?.builder.free();
      this.#loaded = null;
    });
  }
}

function checkOptions(opts: RemoteEngineOptions): void {
  if (opts === null || typeof opts !== 'object') throw new InvalidRequestError('createRemoteEngine needs { baseUrl, tokenizer, ... }');
  if (opts.baseUrl === undefined || opts.baseUrl === null) throw new InvalidRequestError('baseUrl is required');
  if (opts.tokenizer === undefined || opts.tokenizer === null) {
    throw new InvalidRequestError('tokenizer is required: the URL of the model\'s GGUF file (only its header is read) or of its tokenizer.json');
  }
  if (opts.flavor !== undefined && !FLAVORS.includes(opts.flavor)) {
    throw new InvalidRequestError(`flavor must be "llama.cpp", "vllm" or "openai", got ${JSON.stringify(opts.flavor)}`);
  }
  if (opts.model !== undefined && (typeof opts.model !== 'string' || opts.model === '')) {
    throw new InvalidRequestError('model must be a non-empty string');
  }
  if (opts.contextLength !== undefined && !(Number.isInteger(opts.contextLength) && opts.contextLength > 0)) {
    throw new InvalidRequestError(`contextLength must be a positive integer, got ${String(opts.contextLength)}`);
  }
  if (opts.extraBody !== undefined) {
    if (opts.extraBody === null || typeof opts.extraBody !== 'object' || Array.isArray(opts.extraBody)) {
      throw new InvalidRequestError('extraBody must be an object');
    }
    const reserved = RESERVED_BODY_FIELDS.filter((k) => k in (opts.extraBody as object));
    if (reserved.length > 0) {
      throw new InvalidRequestError(`extraBody cannot set ${reserved.join(', ')}: the engine sends the token-id prompt and parses the event stream`);
    }
  }
  if (opts.fetch !== undefined && typeof opts.fetch !== 'function') throw new InvalidRequestError('fetch must be a function');
}
