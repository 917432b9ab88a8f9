/**
 * The framework-free core of the editor adapters: one suggestion at a time from an engine.
 *
 * - Debounce: a request waits `debounceMs` after it is asked for; asking again restarts the wait.
 * - Latest wins: a new request, or {@link InlineCompleter.cancel}, aborts the one in flight
 *   through its `AbortSignal` (the engine stops at the next token, or never starts it).
 * - Reuse: {@link InlineCompleter.lookup} finds the suggestion for the cursor without a request:
 *   the one shown or still streaming when the user typed its first characters, or one from the
 *   cache of recent suggestions (typing through one, undoing back to one).
 * - Events and counters for telemetry (requests, hits, cancellations, prompt tokens computed).
 */

import type { GenerationStats } from '../types.js';
import { SuggestionCache } from './cache.js';
import {
  INLINE_COMPLETION_DEFAULTS,
  buildInfillRequest,
  type CancelReason,
  type CursorContext,
  type EngineSource,
  type InlineCompletionCounters,
  type InlineCompletionEvent,
  type InlineCompletionOptions,
} from './options.js';

/** A suggestion that fits the cursor, found without a request. */
export interface Lookup {
  /** What is left to show (may be empty while the request is still running). */
  text: string;
  /** Characters of the suggestion the user has typed already. */
  typed: number;
  source: 'active' | 'cache';
  /** The request is still running: more text may come. */
  pending: boolean;
}

interface Active {
  id: number;
  ctx: CursorContext;
  text: string;
  /** Sent to the engine (the debounce is over). */
  sent: boolean;
  done: boolean;
  controller: AbortController;
  /** Resolves when the request ends, however it ends. */
  finished: Promise<void>;
}

export class InlineCompleter {
  readonly options: InlineCompletionOptions;
  readonly counters: InlineCompletionCounters = {
    requests: 0,
    completed: 0,
    cancelled: 0,
    errors: 0,
    hits: 0,
    cacheHits: 0,
    promptTokensComputed: 0,
    generatedTokens: 0,
  };
  #engine: EngineSource;
  #cache: SuggestionCache;
  #active: Active | null = null;
  #seq = 0;
  #disposed = false;

  constructor(engine: EngineSource, options: InlineCompletionOptions = {}) {
    this.#engine = engine;
    this.options = options;
    this.#cache = new SuggestionCache(
      options.cacheSize ?? INLINE_COMPLETION_DEFAULTS.cacheSize,
      options.cacheKeyChars ?? INLINE_COMPLETION_DEFAULTS.cacheKeyChars,
    );
  }

  /** The cache of recent suggestions. */
  get cache(): SuggestionCache {
    return this.#cache;
  }

  /** A request is waiting for its debounce or running. */
  get busy(): boolean {
    return this.#active !== null && !this.#active.done;
  }

  /**
   * The suggestion for `ctx` without a request, or null. With `emit`, a found suggestion is
   * reported as a `'hit'` event (adapters pass it when the user's action made it show).
   * An exact cache entry with no text is found too (it was asked for here and was empty).
   */
  lookup(ctx: CursorContext, emit = false): Lookup | null {
    const a = this.#active;
    if (a && ctx.suffix === a.ctx.suffix && ctx.prefix.length >= a.ctx.prefix.length && ctx.prefix.startsWith(a.ctx.prefix)) {
      const typed = ctx.prefix.slice(a.ctx.prefix.length);
      // All of a finished suggestion typed (or accepted): an empty hit, no new request until the next edit.
      if (a.text.startsWith(typed)) {
        const hit: Lookup = { text: a.text.slice(typed.length), typed: typed.length, source: 'active', pending: !a.done };
        if (emit && typed.length > 0) this.#hit(hit);
        return hit;
      }
    }
    const c = this.#cache.get(ctx);
    if (c && (c.text.length > 0 || c.typed === 0)) {
      const hit: Lookup = { text: c.text, typed: c.typed, source: 'cache', pending: false };
      if (emit) this.#hit(hit);
      return hit;
    }
    return null;
  }

  /**
   * Asks the engine for a suggestion at `ctx` after `debounceMs` (default: the options'),
   * aborting the request in flight. `onText` is called with all the text so far as it streams.
   * Resolves with the suggestion, or null when it was cancelled, failed (an `'error'` event)
   * or no engine was available.
   */
  async request(
    ctx: CursorContext,
    { debounceMs, onText }: { debounceMs?: number; onText?: (text: string) => void } = {},
  ): Promise<{ text: string; stats: GenerationStats } | null> {
    if (this.#disposed) return null;
    this.cancel('superseded');
    const controller = new AbortController();
    let finish!: () => void;
    const a: Active = {
      id: ++this.#seq,
      ctx,
      text: '',
      sent: false,
      done: false,
      controller,
      finished: new Promise<void>((r) => (finish = r)),
    };
    this.#active = a;
    const signal = controller.signal;
    try {
      const wait = debounceMs ?? this.options.debounceMs ?? INLINE_COMPLETION_DEFAULTS.debounceMs;
      if (wait > 0) await sleep(wait, signal);
      if (signal.aborted) return null;
      const engine = typeof this.#engine === 'function' ? await this.#engine() : this.#engine;
      if (!engine || signal.aborted) {
        if (this.#active === a) this.#active = null;
        return null;
      }
      const { input, opts } = await buildInfillRequest(ctx, this.options, signal);
      if (signal.aborted) return null;
      a.sent = true;
      this.counters.requests++;
      this.#emit({ type: 'request', id: a.id, prefixChars: ctx.prefix.length, suffixChars: ctx.suffix.length });
      const gen = engine.infill(input, opts);
      for await (const piece of gen) {
        if (signal.aborted) break;
        a.text += piece;
        this.#emit({ type: 'text', id: a.id, text: a.text });
        onText?.(a.text);
      }
      const stats = await gen.stats;
      if (signal.aborted) return null;
      a.done = true;
      this.#cache.put(ctx, a.text);
      this.counters.completed++;
      this.counters.promptTokensComputed += stats.promptTokensComputed;
      this.counters.generatedTokens += stats.generatedTokens;
      this.#emit({ type: 'done', id: a.id, text: a.text, stats });
      return { text: a.text, stats };
    } catch (error) {
      if (signal.aborted) return null;
      a.done = true;
      if (this.#active === a) this.#active = null;
      this.counters.errors++;
      this.#emit({ type: 'error', id: a.id, error });
      return null;
    } finally {
      finish();
    }
  }

  /**
   * Waits until the request in flight ends (or `signal` aborts), then looks `ctx` up again:
   * for an adapter that cannot stream (Monaco) and found a pending suggestion.
   */
  async settle(ctx: CursorContext, signal?: AbortSignal): Promise<Lookup | null> {
    const a = this.#active;
    if (a && !a.done) {
      await Promise.race([a.finished, new Promise<void>((r) => signal?.addEventListener('abort', () => r(), { once: true }))]);
    }
    if (signal?.aborted) return null;
    return this.lookup(ctx);
  }

  /**
   * Whether the request in flight still fits a document whose whole text is `doc` (the user
   * typed only characters it has produced so far): Monaco cancels a provider call on every
   * keystroke, and such a request is kept for the next call to pick up.
   */
  activeFits(doc: string): boolean {
    const a = this.#active;
    if (!a || a.done) return false;
    const { prefix, suffix } = a.ctx;
    if (doc.length < prefix.length + suffix.length || !doc.startsWith(prefix) || !doc.endsWith(suffix)) return false;
    return a.text.startsWith(doc.slice(prefix.length, doc.length - suffix.length));
  }

  /** Aborts the request in flight (or waiting for its debounce), if any. */
  cancel(reason: CancelReason): void {
    const a = this.#active;
    if (!a || a.done) return;
    this.#active = null;
    if (a.controller.signal.aborted) return;
    a.controller.abort();
    if (a.sent) {
      this.counters.cancelled++;
      this.#emit({ type: 'cancel', id: a.id, reason });
    }
  }

  /** Cancels and forgets the suggestion shown (it stays in the cache). */
  dismiss(): void {
    this.cancel('dismissed');
    this.#active = null;
    this.#emit({ type: 'dismiss' });
  }

  /** Reports an accepted suggestion (or part of one). */
  accepted(part: 'all' | 'word' | 'line', text: string): void {
    this.#emit({ type: 'accept', part, text });
  }

  dispose(): void {
    this.cancel('disposed');
    this.#disposed = true;
    this.#cache.clear();
  }

  #hit(hit: Lookup): void {
    this.counters.hits++;
    if (hit.source === 'cache') this.counters.cacheHits++;
    this.#emit({ type: 'hit', source: hit.source, text: hit.text, typed: hit.typed });
  }

  #emit(e: InlineCompletionEvent): void {
    try {
      this.options.onEvent?.(e);
    } catch (err) {
      // A listener's bug must not break the editor.
      console.error(err);
    }
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
  });
}
