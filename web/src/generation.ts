/**
 * The {@link Generation} object shared by the in-page and the Worker engine: an async queue of
 * text pieces fed by a producer, plus the stats promise and cancellation plumbing.
 */

import { AbortError, InvalidRequestError, abortErrorFor, toCodeLlamaError } from './errors.js';
import type {
  ChatMessage,
  ExtraFile,
  Generation,
  GenerationResult,
  GenerationStats,
  GenerateOptions,
  InfillInput,
  PromptRequest,
  SpeculativeOptions,
  StopReason,
  TokenLogprob,
  WasmGenerateRequest,
} from './types.js';

/** What a producer gets to feed a {@link Generation}. */
export interface GenerationSink {
  /** Appends a text piece. Ignored after the generation settled. */
  push(text: string): void;
  /** Aborted when the generation is cancelled (signal, `cancel()`, early `return()` of the iterator). */
  readonly signal: AbortSignal;
}

/**
 * Raw stats as reported by the wasm layer (stopReason may be `"aborted"`), with the per-token
 * log-probabilities when the request asked for them (JSON writes a `-inf` logprob as `null`).
 */
export type RawGenerationStats = Omit<GenerationStats, 'stopReason'> & {
  stopReason: StopReason | 'aborted';
  logprobs?: RawTokenLogprob[];
};

/** {@link TokenLogprob} as JSON carries it (`null` for `-inf`). */
export type RawTokenLogprob = Omit<TokenLogprob, 'logprob' | 'top'> & {
  logprob: number | null;
  top: { id: number; token: string; logprob: number | null }[];
};

/** Splits the log-probabilities off raw stats (`null` logprobs become `-Infinity`). */
export function takeLogprobs(raw: RawGenerationStats): TokenLogprob[] | undefined {
  const lps = raw.logprobs;
  delete raw.logprobs;
  if (lps === undefined || lps === null) return undefined;
  const lp = (v: number | null) => (v === null ? -Infinity : v);
  return lps.map((t) => ({
    id: t.id,
    token: t.token,
    logprob: lp(t.logprob),
    top: t.top.map((e) => ({ id: e.id, token: e.token, logprob: lp(e.logprob) })),
  }));
}

const STOP_REASONS: readonly string[] = [
  'stop_token',
  'stop_string',
  'max_tokens',
  'context_full',
  'deadline',
  'line_end',
  'indent',
];

/** Validates raw stats: `"aborted"` becomes an {@link AbortError}. */
export function finishStats(raw: RawGenerationStats, signal?: AbortSignal): GenerationStats {
  if (raw.stopReason === 'aborted') throw abortErrorFor(signal);
  if (!STOP_REASONS.includes(raw.stopReason)) {
    throw new InvalidRequestError(`unknown stop reason ${JSON.stringify(raw.stopReason)}`);
  }
  return raw as GenerationStats;
}

/**
 * Creates a {@link Generation}. `produce` runs at once; it pushes text into the sink and resolves
 * with the raw stats (or rejects). `opts.signal` and `cancel()` abort `sink.signal`, and so does
 * garbage collection of a Generation nobody iterated, awaited or cancelled (see {@link GenerationHandle}).
 */
export function createGeneration(
  produce: (sink: GenerationSink) => Promise<RawGenerationStats>,
  signal?: AbortSignal,
): Generation {
  return new GenerationHandle(new GenerationImpl(produce, signal));
}

/**
 * Cancels the generation of a {@link GenerationHandle} that was garbage-collected unobserved.
 * It holds the producer side (`GenerationImpl`), which holds no reference to the handle.
 */
const unobserved: FinalizationRegistry<GenerationImpl> | null =
  typeof FinalizationRegistry === 'function' ? new FinalizationRegistry((core) => core.dropped()) : null;

/**
 * The public {@link Generation}: a handle on the producer side. A handle dropped before anyone
 * iterated it, read `stats`, called `result()` or `cancel()` is cancelled when the garbage
 * collector frees it, so it does not keep the engine busy until `maxTokens` (the engine's queue
 * holds only the producer side). Once observed it runs to its end as usual.
 */
class GenerationHandle implements Generation {
  #core: GenerationImpl;

  constructor(core: GenerationImpl) {
    this.#core = core;
    unobserved?.register(this, core, this);
  }

  #observe(): GenerationImpl {
    unobserved?.unregister(this);
    return this.#core;
  }

  get stats(): Promise<GenerationStats> {
    return this.#observe().stats;
  }

  result(): Promise<GenerationResult> {
    return this.#observe().result();
  }

  cancel(): void {
    this.#observe().cancel();
  }

  [Symbol.asyncIterator](): AsyncIterator<string, GenerationStats, undefined> {
    return this.#observe()[Symbol.asyncIterator]();
  }
}

class GenerationImpl implements Generation {
  readonly stats: Promise<GenerationStats>;
  #pieces: string[] = [];
  #text = '';
  #settled = false;
  #outcome: { ok: true; stats: GenerationStats } | { ok: false; error: Error } | null = null;
  #logprobs: TokenLogprob[] | undefined;
  #wake: (() => void) | null = null;
  #iterated = false;
  #controller = new AbortController();
  #external: AbortSignal | undefined;

  constructor(produce: (sink: GenerationSink) => Promise<RawGenerationStats>, signal?: AbortSignal) {
    this.#external = signal;
    const onAbort = () => this.#abort(abortErrorFor(signal));
    if (signal?.aborted) this.#abort(abortErrorFor(signal));
    else signal?.addEventListener('abort', onAbort, { once: true });

    const sink: GenerationSink = {
      push: (text) => {
        if (this.#settled || text.length === 0) return;
        this.#pieces.push(text);
        this.#text += text;
        this.#notify();
      },
      signal: this.#controller.signal,
    };

    let started: Promise<RawGenerationStats>;
    try {
      started = this.#controller.signal.aborted
        ? Promise.reject(this.#controller.signal.reason)
        : produce(sink);
    } catch (e) {
      started = Promise.reject(e);
    }
    this.stats = started.then(
      (raw) => {
        if (this.#controller.signal.aborted && raw.stopReason === 'aborted') throw this.#abortReason();
        this.#logprobs = takeLogprobs(raw);
        return finishStats(raw, this.#external);
      },
      (e: unknown) => {
        if (this.#controller.signal.aborted) throw this.#abortReason();
        throw toCodeLlamaError(e);
      },
    );
    // Handled here (no unhandled-rejection noise); callers awaiting `stats` still see the rejection.
    this.stats.then(
      (stats) => this.#settle({ ok: true, stats }),
      (error: Error) => this.#settle({ ok: false, error }),
    ).finally(() => signal?.removeEventListener('abort', onAbort));
  }

  /** The signal's reason as it is (see `abortErrorFor`), `cancel()`'s AbortError, or AbortError. */
  #abortReason(): unknown {
    const r: unknown = this.#controller.signal.reason;
    return r === undefined ? new AbortError('The generation was aborted') : r;
  }

  #abort(reason: unknown): void {
    if (!this.#settled && !this.#controller.signal.aborted) this.#controller.abort(reason);
  }

  /** Its handle was garbage-collected unobserved: stop producing. */
  dropped(): void {
    this.#abort(new AbortError('the Generation was garbage-collected before it was iterated, awaited or cancelled'));
  }

  #settle(outcome: { ok: true; stats: GenerationStats } | { ok: false; error: Error }): void {
    this.#settled = true;
    this.#outcome = outcome;
    this.#notify();
  }

  #notify(): void {
    const w = this.#wake;
    this.#wake = null;
    w?.();
  }

  cancel(): void {
    this.#abort(new AbortError('The generation was cancelled'));
  }

  async result(): Promise<GenerationResult> {
    const stats = await this.stats;
    const logprobs = this.#logprobs;
    return logprobs === undefined ? { text: this.#text, stats } : { text: this.#text, stats, logprobs };
  }

  [Symbol.asyncIterator](): AsyncIterator<string, GenerationStats, undefined> {
    if (this.#iterated) throw new InvalidRequestError('a Generation can be iterated only once');
    this.#iterated = true;
    let finished = false;
    const next = async (): Promise<IteratorResult<string, GenerationStats>> => {
      for (;;) {
        const piece = this.#pieces.shift();
        if (piece !== undefined) return { done: false, value: piece };
        const outcome = this.#outcome;
        if (outcome !== null) {
          if (finished) return { done: true, value: undefined as unknown as GenerationStats };
          finished = true;
          if (outcome.ok) return { done: true, value: outcome.stats };
          throw outcome.error;
        }
        await new Promise<void>((resolve) => (this.#wake = resolve));
      }
    };
    const ret = async (): Promise<IteratorResult<string, GenerationStats>> => {
      finished = true;
      this.#pieces.length = 0;
      if (!this.#settled) {
        this.cancel();
        await this.stats.catch(() => {});
      }
      const o = this.#outcome;
      return { done: true, value: (o?.ok ? o.stats : undefined) as GenerationStats };
    };
    return { next, return: ret };
  }
}

/** Builds the raw wasm request from a kind-specific part and {@link GenerateOptions}. */
export function buildRequest(
  base:
    | { kind: 'complete'; prompt: string }
    | { kind: 'infill'; prefix: string; suffix: string; suffixFirst?: boolean; extra?: ExtraFile[]; maxPromptTokens?: number }
    | { kind: 'chat'; messages: ChatMessage[] },
  opts: GenerateOptions = {},
): WasmGenerateRequest {
  const req: Record<string, unknown> = { ...base };
  const num = (k: keyof GenerateOptions, integer: boolean) => {
    const v = opts[k];
    if (v === undefined || v === null) return;
    if (typeof v !== 'number' || !Number.isFinite(v) || (integer && !Number.isInteger(v))) {
      throw new InvalidRequestError(`${k} must be a finite ${integer ? 'integer' : 'number'}, got ${String(v)}`);
    }
    req[k] = v;
  };
  num('maxTokens', true);
  num('seed', true);
  num('temperature', false);
  num('topK', true);
  num('topP', false);
  num('minP', false);
  num('repetitionPenalty', false);
  num('repetitionWindow', true);
  num('maxTimeMs', false);
  num('minIndent', true);
  if (typeof req['maxTimeMs'] === 'number' && req['maxTimeMs'] < 0) {
    throw new InvalidRequestError(`maxTimeMs must be ≥ 0, got ${String(req['maxTimeMs'])}`);
  }
  if (typeof req['minIndent'] === 'number' && req['minIndent'] < 0) {
    throw new InvalidRequestError(`minIndent must be ≥ 0, got ${String(req['minIndent'])}`);
  }
  if (opts.singleLine !== undefined && opts.singleLine !== null) {
    if (typeof opts.singleLine !== 'boolean') throw new InvalidRequestError('singleLine must be a boolean');
    if (opts.singleLine) req['singleLine'] = true;
  }
  if (opts.stop !== undefined && opts.stop !== null) {
    const stop = typeof opts.stop === 'string' ? [opts.stop] : opts.stop;
    if (!Array.isArray(stop) || stop.some((s) => typeof s !== 'string')) {
      throw new InvalidRequestError('stop must be a string or an array of strings');
    }
    const nonEmpty = stop.filter((s) => s.length > 0);
    if (nonEmpty.length > 0) req['stop'] = nonEmpty;
  }
  if (opts.logprobs !== undefined && opts.logprobs !== null) {
    if (typeof opts.logprobs !== 'boolean') throw new InvalidRequestError('logprobs must be a boolean');
    req['logprobs'] = opts.logprobs;
  }
  if (opts.topLogprobs !== undefined && opts.topLogprobs !== null) {
    const k = opts.topLogprobs;
    if (typeof k !== 'number' || !Number.isInteger(k) || k < 0 || k > 20) {
      throw new InvalidRequestError(`topLogprobs must be an integer from 0 to 20, got ${String(k)}`);
    }
    if (k > 0 && opts.logprobs !== true) throw new InvalidRequestError('topLogprobs needs logprobs: true');
    req['topLogprobs'] = k;
  }
  if (opts.speculative !== undefined && opts.speculative !== null) {
    req['speculative'] = speculativeOption(opts.speculative);
  }
  return req as WasmGenerateRequest;
}

/**
 * `speculative`'s shape check: a boolean, or `{ maxDraft?, ngram?, costAware? }` with integers
 * and a boolean (the engine checks the ranges: maxDraft 0 to 15, ngram 1 to 16).
 */
function speculativeOption(v: unknown): boolean | SpeculativeOptions {
  if (typeof v === 'boolean') return v;
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    throw new InvalidRequestError('speculative must be a boolean or { maxDraft?, ngram?, costAware? }');
  }
  const out: SpeculativeOptions = {};
  for (const [k, x] of Object.entries(v)) {
    if (k === 'costAware') {
      if (x === undefined) continue;
      if (typeof x !== 'boolean') throw new InvalidRequestError(`speculative.costAware must be a boolean, got ${String(x)}`);
      out.costAware = x;
      continue;
    }
    if (k !== 'maxDraft' && k !== 'ngram') throw new InvalidRequestError(`speculative has no field ${JSON.stringify(k)} (maxDraft, ngram, costAware)`);
    if (x === undefined) continue;
    const min = k === 'ngram' ? 1 : 0;
    if (typeof x !== 'number' || !Number.isInteger(x) || x < min) {
      throw new InvalidRequestError(`speculative.${k} must be an integer ≥ ${min}, got ${String(x)}`);
    }
    out[k] = x;
  }
  return out;
}

/** Validates the inputs of `complete` / `infill` / `chat` and builds the request. */
export function completeRequest(prompt: string, opts?: GenerateOptions): WasmGenerateRequest {
  if (typeof prompt !== 'string') throw new InvalidRequestError('prompt must be a string');
  return buildRequest({ kind: 'complete', prompt }, opts);
}

export function infillRequest(input: InfillInput, opts?: GenerateOptions): WasmGenerateRequest {
  if (input === null || typeof input !== 'object' || typeof input.prefix !== 'string' || typeof input.suffix !== 'string') {
    throw new InvalidRequestError('infill needs { prefix: string, suffix: string }');
  }
  const base: { kind: 'infill'; prefix: string; suffix: string; suffixFirst?: boolean; extra?: ExtraFile[]; maxPromptTokens?: number } = {
    kind: 'infill',
    prefix: input.prefix,
    suffix: input.suffix,
  };
  if (input.suffixFirst !== undefined) base.suffixFirst = Boolean(input.suffixFirst);
  if (input.extra !== undefined && input.extra !== null) {
    if (!Array.isArray(input.extra)) throw new InvalidRequestError('extra must be an array of { filename, text }');
    base.extra = input.extra.map((f, i) => {
      if (f === null || typeof f !== 'object' || typeof f.filename !== 'string' || typeof f.text !== 'string') {
        throw new InvalidRequestError(`extra[${i}] must be { filename: string, text: string }`);
      }
      return { filename: f.filename, text: f.text };
    });
  }
  if (input.maxPromptTokens !== undefined && input.maxPromptTokens !== null) {
    const n = input.maxPromptTokens;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 0) {
      throw new InvalidRequestError(`maxPromptTokens must be a non-negative integer, got ${String(n)}`);
    }
    base.maxPromptTokens = n;
  }
  return buildRequest(base, opts);
}

/** The request of a {@link PromptRequest} (for `countTokens`), checked like the generating calls. */
export function promptRequest(request: PromptRequest, opts?: GenerateOptions): WasmGenerateRequest {
  if (request === null || typeof request !== 'object') {
    throw new InvalidRequestError('countTokens needs { kind: "complete" | "infill" | "chat", ... }');
  }
  switch (request.kind) {
    case 'complete':
      return completeRequest(request.prompt, opts);
    case 'infill':
      return infillRequest(request, opts);
    case 'chat':
      return chatRequest(request.messages, opts);
    default:
      throw new InvalidRequestError(
        `kind must be "complete", "infill" or "chat", got ${JSON.stringify((request as { kind?: unknown }).kind)}`,
      );
  }
}

export function chatRequest(
  messages: ReadonlyArray<{ role: string; content: string }>,
  opts?: GenerateOptions,
): WasmGenerateRequest {
  if (!Array.isArray(messages) || messages.length === 0) {
    throw new InvalidRequestError('chat needs a non-empty array of messages');
  }
  const clean = messages.map((m, i) => {
    if (m === null || typeof m !== 'object' || typeof m.content !== 'string') {
      throw new InvalidRequestError(`messages[${i}] must be { role, content: string }`);
    }
    if (m.role !== 'system' && m.role !== 'user' && m.role !== 'assistant') {
      throw new InvalidRequestError(`messages[${i}].role must be "system", "user" or "assistant"`);
    }
    return { role: m.role, content: m.content };
  });
  return buildRequest({ kind: 'chat', messages: clean }, opts);
}

/**
 * A {@link Generation} that fails at once with `error` (for argument errors, so `complete()` etc.
 * never throw synchronously).
 */
export function failedGeneration(error: unknown): Generation {
  return createGeneration(() => Promise.reject(toCodeLlamaError(error)));
}
