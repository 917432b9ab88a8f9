/**
 * Options of the editor adapters (`codellama-webgpu/codemirror`, `codellama-webgpu/monaco`) and
 * how they become an engine request. Framework-free: shared by both adapters.
 *
 * The editor-grade request options (`singleLine`, `indentStop`, `maxTimeMs`, `maxPromptTokens`,
 * `extra`) are sent to the engine only when set (a `false` / `0` / `null` / unset option sends
 * nothing), so an app can turn any of them off.
 */

import type { CodeLlamaEngine, ExtraFile, GenerateOptions, GenerationStats, InfillInput } from '../types.js';

/**
 * The engine suggestions come from: an engine, or a function returning the engine to use now
 * (`null` while no model is loaded: no request is made). Only the public {@link CodeLlamaEngine}
 * interface is used, so the in-page (`createEngine()`) and the Worker (`createWorkerEngine()`)
 * engines both work.
 */
export type EngineSource =
  | CodeLlamaEngine
  | (() => CodeLlamaEngine | null | undefined | Promise<CodeLlamaEngine | null | undefined>);

/** The text before and after the cursor. */
export interface CursorContext {
  prefix: string;
  suffix: string;
}

/** Why a request in flight was cancelled. */
export type CancelReason = 'typed' | 'moved' | 'superseded' | 'dismissed' | 'disposed' | 'editor';

/** What the adapters report to {@link InlineCompletionOptions.onEvent} (telemetry, tests, UIs). */
export type InlineCompletionEvent =
  /** A request was sent to the engine (after the debounce). */
  | { type: 'request'; id: number; prefixChars: number; suffixChars: number }
  /** A request streamed more text; `text` is all of it so far. */
  | { type: 'text'; id: number; text: string }
  /** A request finished; its suggestion is cached. */
  | { type: 'done'; id: number; text: string; stats: GenerationStats }
  /** A request in flight was aborted (its engine work stops at the next token). */
  | { type: 'cancel'; id: number; reason: CancelReason }
  | { type: 'error'; id: number; error: unknown }
  /**
   * A suggestion was shown without a request: from the suggestion shown or in flight (`'active'`:
   * the user typed `typed` characters of it) or from the cache of recent suggestions (`'cache'`).
   */
  | { type: 'hit'; source: 'active' | 'cache'; text: string; typed: number }
  /** The user accepted all of the suggestion, its next word or its next line. */
  | { type: 'accept'; part: 'all' | 'word' | 'line'; text: string }
  /** The user dismissed the suggestion (Esc). */
  | { type: 'dismiss' };

/** Running totals of the events (see {@link InlineCompleter.counters}). */
export interface InlineCompletionCounters {
  /** Requests sent to the engine. */
  requests: number;
  /** Requests that finished. */
  completed: number;
  /** Requests aborted in flight. */
  cancelled: number;
  errors: number;
  /** Suggestions shown without a request (`'hit'` events, active or cache). */
  hits: number;
  /** Of those, from the cache. */
  cacheHits: number;
  /** Sum of `promptTokensComputed` of the finished requests. */
  promptTokensComputed: number;
  /** Sum of `generatedTokens` of the finished requests. */
  generatedTokens: number;
}

/** Options shared by both editor adapters. Every field is optional; defaults in brackets. */
export interface InlineCompletionOptions {
  /** Pause after the last keystroke before a request is sent, in ms. [300] */
  debounceMs?: number;
  /** Most tokens of a suggestion. [64] */
  maxTokens?: number;
  /**
   * Suffix-first (SPM) prompt order: the text before the cursor comes last, so typing at the
   * cursor keeps the engine's KV cache and recomputes only the last few tokens. [true]
   */
  suffixFirst?: boolean | (() => boolean);
  /** Stop the suggestion at the end of its first line (`singleLine`). [false] */
  singleLine?: boolean;
  /**
   * Stop the suggestion at a line indented less than the cursor's line (the engine's `minIndent`
   * set to the cursor line's indentation; sent only when that is above 0). [true]
   */
  indentStop?: boolean;
  /** Deadline of a request in ms (`maxTimeMs`): the suggestion is what came by then. `0`/`null`: none. [2000] */
  maxTimeMs?: number | null;
  /** Token budget of the prompt (`maxPromptTokens`). [unset: the engine's default, context − maxTokens] */
  maxPromptTokens?: number;
  /** Other open files to give as context (`extra`), asked for at each request. [unset] */
  extra?: () => ExtraFile[] | Promise<ExtraFile[]>;
  /** Sampling and other engine options (temperature, stop, …) merged into each request. [engine defaults: greedy for infill] */
  generateOptions?: GenerateOptions | (() => GenerateOptions);
  /** Suggestions kept for reuse (typing through one, undoing back to one). [32] */
  cacheSize?: number;
  /** Characters of the text before / after the cursor that key the cache. [{ prefix: 512, suffix: 256 }] */
  cacheKeyChars?: { prefix: number; suffix: number };
  /** Called with every event. */
  onEvent?: (event: InlineCompletionEvent) => void;
}

/** The defaults of {@link InlineCompletionOptions}. */
export const INLINE_COMPLETION_DEFAULTS = {
  debounceMs: 300,
  maxTokens: 64,
  suffixFirst: true,
  singleLine: false,
  indentStop: true,
  maxTimeMs: 2000,
  cacheSize: 32,
  cacheKeyChars: { prefix: 512, suffix: 256 },
} as const;

/** Columns of indentation of the line holding the cursor (a tab counts as one, as `minIndent` counts). */
export function cursorLineIndent(ctx: CursorContext): number {
  const start = ctx.prefix.lastIndexOf('\n') + 1;
  const nl = ctx.suffix.indexOf('\n');
  const line = ctx.prefix.slice(start) + (nl < 0 ? ctx.suffix : ctx.suffix.slice(0, nl));
  return line.length - line.trimStart().length;
}

/** The infill input and options of a request at `ctx`. */
export async function buildInfillRequest(
  ctx: CursorContext,
  o: InlineCompletionOptions,
  signal: AbortSignal,
): Promise<{ input: InfillInput; opts: GenerateOptions }> {
  const suffixFirst = typeof o.suffixFirst === 'function' ? o.suffixFirst() : o.suffixFirst ?? INLINE_COMPLETION_DEFAULTS.suffixFirst;
  const input: InfillInput = { prefix: ctx.prefix, suffix: ctx.suffix, suffixFirst };
  if (o.maxPromptTokens) input.maxPromptTokens = o.maxPromptTokens;
  if (o.extra) {
    const files = await o.extra();
    if (files.length > 0) input.extra = files;
  }
  const base = typeof o.generateOptions === 'function' ? o.generateOptions() : o.generateOptions ?? {};
  const opts: GenerateOptions = { maxTokens: o.maxTokens ?? INLINE_COMPLETION_DEFAULTS.maxTokens, ...base, signal };
  if (o.singleLine ?? INLINE_COMPLETION_DEFAULTS.singleLine) opts.singleLine = true;
  if (o.indentStop ?? INLINE_COMPLETION_DEFAULTS.indentStop) {
    const indent = cursorLineIndent(ctx);
    if (indent > 0) opts.minIndent = indent;
  }
  const deadline = o.maxTimeMs === undefined ? INLINE_COMPLETION_DEFAULTS.maxTimeMs : o.maxTimeMs;
  if (deadline) opts.maxTimeMs = deadline;
  return { input, opts };
}
