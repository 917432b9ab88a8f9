/**
 * Worker entry (`codellama-webgpu/worker`): hosts an in-page {@link Engine} inside a dedicated
 * Web Worker and answers the typed messages of `types.ts` (`WorkerRequest` → `WorkerResponse`).
 *
 * `createWorkerEngine()` starts it by default; to host it in your own worker module, import it
 * there: `import 'codellama-webgpu/worker';`. Importing it outside a worker does nothing.
 */

import { Engine } from './engine.js';
import { InvalidRequestError, serializeError } from './errors.js';
import type { GenerationStats, ModelSource, TokenLogprob, WorkerRequest, WorkerResponse, WorkerResultMap } from './types.js';

/** The parts of `DedicatedWorkerGlobalScope` used here (keeps this file on the DOM lib). */
interface WorkerScope {
  postMessage(message: WorkerResponse, transfer?: Transferable[]): void;
  addEventListener(type: 'message', listener: (ev: MessageEvent<WorkerRequest>) => void): void;
  close(): void;
}

function isDedicatedWorker(): boolean {
  const g = globalThis as { WorkerGlobalScope?: unknown; DedicatedWorkerGlobalScope?: { new (): unknown } };
  return typeof g.DedicatedWorkerGlobalScope === 'function' && globalThis instanceof g.DedicatedWorkerGlobalScope;
}

/** Starts answering engine requests on `scope` (done automatically when loaded in a worker). */
export function hostEngine(scope: WorkerScope = globalThis as unknown as WorkerScope): void {
  let engine: Engine | null = null;
  let creating: Promise<Engine> | null = null;
  const controllers = new Map<number, AbortController>();

  const post = (msg: WorkerResponse, transfer: Transferable[] = []) => scope.postMessage(msg, transfer);
  const ok = <K extends keyof WorkerResultMap>(id: number, value: WorkerResultMap[K], transfer: Transferable[] = []) =>
    post({ type: 'result', id, value }, transfer);

  const getEngine = async (): Promise<Engine> => {
    if (engine !== null) return engine;
    if (creating === null) creating = Engine.create();
    try {
      engine = await creating;
      return engine;
    } catch (e) {
      creating = null;
      throw e;
    }
  };

  const handle = async (msg: WorkerRequest): Promise<void> => {
    switch (msg.type) {
      case 'init': {
        if (creating === null) creating = Engine.create(msg.wasmUrl === undefined ? {} : { wasmUrl: msg.wasmUrl });
        const e = await getEngine();
        return ok<'init'>(msg.id, await e.adapterInfo());
      }
      case 'abort':
        controllers.get(msg.target)?.abort();
        return;
      case 'load': {
        const ctl = new AbortController();
        controllers.set(msg.id, ctl);
        try {
          const e = await getEngine();
          let source: ModelSource;
          const s = msg.source;
          if (s.kind === 'url') source = s.url;
          else if (s.kind === 'blob') source = s.blob;
          else if (s.kind === 'stream') source = s.stream;
          else source = new Uint8Array(s.buffer, s.byteOffset, s.byteLength);
          const opts: Parameters<Engine['load']>[1] = {
            signal: ctl.signal,
            onProgress: (progress) => post({ type: 'progress', id: msg.id, progress }),
          };
          if (msg.opts.contextLength !== undefined) opts.contextLength = msg.opts.contextLength;
          if (msg.opts.kvCache !== undefined) opts.kvCache = msg.opts.kvCache;
          if (msg.opts.cache !== undefined) opts.cache = msg.opts.cache;
          return ok<'load'>(msg.id, await e.load(source, opts));
        } finally {
          controllers.delete(msg.id);
        }
      }
      case 'generate': {
        const ctl = new AbortController();
        controllers.set(msg.id, ctl);
        try {
          const e = await getEngine();
          const gen = e.generateRaw(msg.request, ctl.signal);
          const it = gen[Symbol.asyncIterator]();
          for (;;) {
            const r = await it.next();
            if (r.done) {
              // The log-probabilities ride back with the stats (raw form: see takeLogprobs).
              const { logprobs } = await gen.result();
              const stats: GenerationStats & { logprobs?: TokenLogprob[] } = logprobs === undefined ? r.value : { ...r.value, logprobs };
              return ok<'generate'>(msg.id, stats);
            }
            post({ type: 'text', id: msg.id, text: r.value });
          }
        } finally {
          controllers.delete(msg.id);
        }
      }
      case 'tokenize': {
        const ids = await (await getEngine()).tokenize(msg.text, { addBos: msg.addBos });
        return ok<'tokenize'>(msg.id, ids, [ids.buffer as ArrayBuffer]);
      }
      case 'detokenize':
        return ok<'detokenize'>(msg.id, await (await getEngine()).detokenize(msg.ids));
      case 'countTokens':
        return ok<'countTokens'>(msg.id, await (await getEngine()).countTokensRaw(msg.request));
      case 'requestDefaults':
        return ok<'requestDefaults'>(msg.id, await (await getEngine()).requestDefaults());
      case 'info':
        return ok<'info'>(msg.id, await (await getEngine()).info());
      case 'adapterInfo':
        return ok<'adapterInfo'>(msg.id, await (await getEngine()).adapterInfo());
      case 'memoryUsage':
        return ok<'memoryUsage'>(msg.id, await (await getEngine()).memoryUsage());
      case 'resetCache':
        return ok<'resetCache'>(msg.id, await (await getEngine()).resetCache());
      case 'unload':
        return ok<'unload'>(msg.id, await (await getEngine()).unload());
      case 'bench':
        return ok<'bench'>(
          msg.id,
          await (await getEngine()).bench({ ...msg.opts, onLog: (text) => post({ type: 'text', id: msg.id, text }) }),
        );
      case 'dispose': {
        for (const c of controllers.values()) c.abort();
        if (engine !== null) await engine.dispose();
        engine = null;
        ok<'dispose'>(msg.id, undefined);
        scope.close();
        return;
      }
      default: {
        const unknown = msg as { id?: unknown; type?: unknown };
        throw new InvalidRequestError(`unknown worker request type ${JSON.stringify(unknown.type)}`);
      }
    }
  };

  scope.addEventListener('message', (ev) => {
    const msg = ev.data;
    handle(msg).catch((e: unknown) => {
      post({ type: 'error', id: typeof msg?.id === 'number' ? msg.id : -1, error: serializeError(e) });
    });
  });
}

if (isDedicatedWorker()) hostEngine();
