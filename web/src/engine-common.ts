/**
 * What the in-page and the Worker engine share: the convenience methods of
 * {@link CodeLlamaEngine} (`complete` / `infill` / `chat` built and validated here, their `…Text`
 * forms, argument checks of `tokenize` / `detokenize`, load option checks) over the one method
 * each engine implements, {@link EngineBase.runRequest}. Also {@link LoadSlot}: a `load()` while
 * another runs replaces it.
 */

import { AbortError, InvalidRequestError } from './errors.js';
import { chatRequest, completeRequest, failedGeneration, infillRequest } from './generation.js';
import type {
  ChatMessage,
  GenerateOptions,
  Generation,
  GenerationResult,
  InfillInput,
  LoadOptions,
  WasmGenerateRequest,
} from './types.js';

/** The shared part of both engines; subclasses run built requests. */
export abstract class EngineBase {
  /**
   * Runs a validated raw request. Called with the request built (argument errors never reach it:
   * they become a failed Generation).
   */
  protected abstract runRequest(request: WasmGenerateRequest, opts?: GenerateOptions): Generation;

  /** Throws when the engine was disposed. */
  protected abstract checkAlive(): void;

  complete(prompt: string, opts?: GenerateOptions): Generation {
    return this.#generate(() => completeRequest(prompt, opts), opts);
  }

  infill(input: InfillInput, opts?: GenerateOptions): Generation {
    return this.#generate(() => infillRequest(input, opts), opts);
  }

  chat(messages: ChatMessage[], opts?: GenerateOptions): Generation {
    return this.#generate(() => chatRequest(messages, opts), opts);
  }

  completeText(prompt: string, opts?: GenerateOptions): Promise<GenerationResult> {
    return this.complete(prompt, opts).result();
  }

  infillText(input: InfillInput, opts?: GenerateOptions): Promise<GenerationResult> {
    return this.infill(input, opts).result();
  }

  chatText(messages: ChatMessage[], opts?: GenerateOptions): Promise<GenerationResult> {
    return this.chat(messages, opts).result();
  }

  #generate(build: () => WasmGenerateRequest, opts?: GenerateOptions): Generation {
    let request: WasmGenerateRequest;
    try {
      this.checkAlive();
      request = build();
    } catch (e) {
      return failedGeneration(e);
    }
    return this.runRequest(request, opts);
  }
}

/** `tokenize`'s argument check. */
export function checkTokenizeText(text: unknown): string {
  if (typeof text !== 'string') throw new InvalidRequestError('tokenize needs a string');
  return text;
}

/** `detokenize`'s argument check and conversion. */
export function toIds(ids: Uint32Array | readonly number[]): Uint32Array {
  if (ids instanceof Uint32Array) return ids;
  if (!Array.isArray(ids) || ids.some((v) => !Number.isInteger(v) || v < 0 || v > 0xffffffff)) {
    throw new InvalidRequestError('detokenize needs a Uint32Array or an array of non-negative integers');
  }
  return Uint32Array.from(ids);
}

/** `load`'s option checks (both engines, before anything is sent or queued). */
export function checkLoadOptions(opts: LoadOptions): void {
  if (opts.kvCache !== undefined && opts.kvCache !== 'f16' && opts.kvCache !== 'q8') {
    throw new InvalidRequestError(`kvCache must be "f16" or "q8", got ${JSON.stringify(opts.kvCache)}`);
  }
  if (opts.contextLength !== undefined && !(Number.isInteger(opts.contextLength) && opts.contextLength > 0)) {
    throw new InvalidRequestError(`contextLength must be a positive integer, got ${String(opts.contextLength)}`);
  }
  if (opts.cache !== undefined && opts.cache !== true && opts.cache !== false && opts.cache !== 'required') {
    throw new InvalidRequestError(`cache must be true, false or "required", got ${JSON.stringify(opts.cache)}`);
  }
}

/**
 * The running `load()`: a newer `load()` aborts it (its promise rejects with `AbortError`, and
 * what it loaded so far is dropped) and then runs, as peers' `reload` does.
 */
export class LoadSlot {
  #current: AbortController | null = null;

  /**
   * Aborts the load running (if any) and returns the signal of the new one, aborted in turn by
   * a later `replace()`. Call {@link release} with it when the load settles.
   */
  replace(): AbortController {
    this.#current?.abort(new AbortError('this load was replaced by a newer load() call'));
    const ctl = new AbortController();
    this.#current = ctl;
    return ctl;
  }

  release(ctl: AbortController): void {
    if (this.#current === ctl) this.#current = null;
  }
}
