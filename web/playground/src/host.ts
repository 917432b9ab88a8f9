// The one engine of the page (hosted in a Web Worker so the UI never blocks), the loaded model,
// and the one generation that runs at a time: starting another cancels it.
import { createWorkerEngine, hasWebGpu } from 'codellama-webgpu';
import type { CodeLlamaEngine, Generation, GenerationStats, ModelInfo, ModelSource, LoadProgress } from 'codellama-webgpu';

type Listener = (info: ModelInfo | null) => void;

export class Host {
  #engine: Promise<CodeLlamaEngine> | null = null;
  #info: ModelInfo | null = null;
  #current: Generation | null = null;
  #listeners: Listener[] = [];

  get info(): ModelInfo | null {
    return this.#info;
  }

  onModel(l: Listener): void {
    this.#listeners.push(l);
  }

  engine(): Promise<CodeLlamaEngine> {
    if (!hasWebGpu()) return Promise.reject(Object.assign(new Error('navigator.gpu is missing'), { name: 'WebGpuUnavailableError' }));
    this.#engine ??= createWorkerEngine().catch((e) => {
      this.#engine = null;
      throw e;
    });
    return this.#engine;
  }

  async load(source: ModelSource, onProgress: (p: LoadProgress) => void, signal: AbortSignal): Promise<ModelInfo> {
    this.cancel();
    const engine = await this.engine();
    this.#setInfo(null);
    try {
      const info = await engine.load(source, { onProgress, signal, cache: typeof source === 'string' });
      this.#setInfo(info);
      return info;
    } catch (e) {
      // A failed or aborted load keeps the previous model where memory allowed: show what the
      // engine has (after a newer load that replaced this one, that load's model).
      this.#setInfo(await engine.info().catch(() => null));
      throw e;
    }
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
