// The page's engine — the local one (hosted in a Web Worker so the UI never blocks) or a remote
// one (an OpenAI-compatible server) — the loaded model, and the one generation that runs at a
// time: starting another cancels it. The modes only ever see `engine()`, so completion, infill
// (the editor extension included) and chat work the same on either.
import { createRemoteEngine, createWorkerEngine, hasWebGpu } from 'codellama-webgpu';
import type {
  CodeLlamaEngine,
  Generation,
  GenerationStats,
  LoadProgress,
  ModelInfo,
  ModelSource,
  RemoteEngineOptions,
} from 'codellama-webgpu';

type Listener = (info: ModelInfo | null) => void;
export type RemoteEngine = Awaited<ReturnType<typeof createRemoteEngine>>;

/** The server in use, as the page shows it. */
export interface ServerInUse {
  engine: RemoteEngine;
  /** The base URL passed to the engine. */
  baseUrl: string;
  /** The tokenizer URL passed to the engine. */
  tokenizer: string;
  connectMs: number;
}

export class Host {
  #local: Promise<CodeLlamaEngine> | null = null;
  #server: ServerInUse | null = null;
  #info: ModelInfo | null = null;
  #current: Generation | null = null;
  #listeners: Listener[] = [];

  get info(): ModelInfo | null {
    return this.#info;
  }

  /** The server the modes run on, or null when they run on the local engine. */
  get server(): ServerInUse | null {
    return this.#server;
  }

  onModel(l: Listener): void {
    this.#listeners.push(l);
  }

  /** The engine the modes use now. */
  engine(): Promise<CodeLlamaEngine> {
    if (this.#server) return Promise.resolve(this.#server.engine);
    return this.#localEngine();
  }

  #localEngine(): Promise<CodeLlamaEngine> {
    if (!hasWebGpu()) return Promise.reject(Object.assign(new Error('navigator.gpu is missing'), { name: 'WebGpuUnavailableError' }));
    this.#local ??= createWorkerEngine().catch((e) => {
      this.#local = null;
      throw e;
    });
    return this.#local;
  }

  /** Loads a model into the local engine; once it is loaded, the modes run on it (and a server in use is let go). */
  async load(source: ModelSource, onProgress: (p: LoadProgress) => void, signal: AbortSignal): Promise<ModelInfo> {
    this.cancel();
    const engine = await this.#localEngine();
    this.#setInfo(null);
    try {
      const info = await engine.load(source, { onProgress, signal, cache: typeof source === 'string' });
      this.#dropServer();
      this.#setInfo(info);
      return info;
    } catch (e) {
      // A failed or aborted load keeps what was in use where memory allowed: the server, or the
      // model the local engine kept (after a newer load that replaced this one, that load's model).
      this.#setInfo(this.#server ? await this.#server.engine.info().catch(() => null) : await engine.info().catch(() => null));
      throw e;
    }
  }

  /**
   * Connects to a server (reads the tokenizer, checks the server); once connected, the modes run
   * on it. A failed or aborted connect keeps the engine in use before.
   */
  async connect(opts: RemoteEngineOptions, signal: AbortSignal): Promise<ModelInfo> {
    this.cancel();
    const t0 = performance.now();
    const engine = await createRemoteEngine({ ...opts, signal });
    let info: ModelInfo | null;
    try {
      if (signal.aborted) throw signal.reason ?? Object.assign(new Error('aborted'), { name: 'AbortError' });
      info = await engine.info();
      if (!info) throw Object.assign(new Error('the server engine has no model'), { name: 'NotLoadedError' });
    } catch (e) {
      void engine.dispose().catch(() => {});
      throw e;
    }
    this.cancel();
    this.#dropServer();
    this.#server = { engine, baseUrl: String(opts.baseUrl), tokenizer: String(opts.tokenizer), connectMs: performance.now() - t0 };
    this.#setInfo(info);
    return info;
  }

  #dropServer(): void {
    const old = this.#server;
    this.#server = null;
    if (old) void old.engine.dispose().catch(() => {});
  }

  /** Cancels the running generation, if any. */
  cancel(): void {
    this.#current?.cancel();
    this.#current = null;
  }

  /**
   * Runs `start(engine)`, streaming its pieces to `onPiece`. Resolves with the stats, or null when
   * it was cancelled (by `cancel()` or a newer `generate`).
   */
  async generate(start: (e: CodeLlamaEngine) => Generation, onPiece: (text: string) => void): Promise<GenerationStats | null> {
    this.cancel();
    const engine = await this.engine();
    if (!this.#info) throw Object.assign(new Error('load a model first'), { name: 'NotLoadedError' });
    const gen = start(engine);
    this.#current = gen;
    try {
      for await (const piece of gen) onPiece(piece);
      return await gen.stats;
    } catch (e) {
      if ((e as Error)?.name === 'AbortError') return null;
      throw e;
    } finally {
      if (this.#current === gen) this.#current = null;
    }
  }

  #setInfo(info: ModelInfo | null): void {
    this.#info = info;
    for (const l of this.#listeners) l(info);
  }
}
