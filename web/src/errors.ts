/**
 * Error classes. Every error the package throws is a {@link CodeLlamaError} whose `name` is one of
 * {@link ERROR_NAMES} (stable across versions) and whose `message` says what went wrong.
 * `instanceof` works for each subclass, also for errors that crossed from a Worker.
 */

import type { SerializedError } from './types.js';

/** Base class of every error this package throws. */
export class CodeLlamaError extends Error {
  override name: string = 'CodeLlamaError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    // Keep the prototype chain when compiled to targets without native class extension.
    Object.setPrototypeOf(this, new.target.prototype);
  }
}

/** No `navigator.gpu`, no adapter, or no device could be created. */
export class WebGpuUnavailableError extends CodeLlamaError {
  override name = 'WebGpuUnavailableError' as const;
}
/** Malformed or truncated GGUF. */
export class InvalidModelError extends CodeLlamaError {
  override name = 'InvalidModelError' as const;
}
/** Wrong architecture, unsupported tensor type, missing tensor/key, vocab mismatch. */
export class UnsupportedModelError extends CodeLlamaError {
  override name = 'UnsupportedModelError' as const;
}
/** A GPU allocation failed. */
export class GpuOutOfMemoryError extends CodeLlamaError {
  override name = 'GpuOutOfMemoryError' as const;
}
/**
 * The GPU device was lost during the request. The engine re-creates the device and loads the
 * last model again on the next request (no new engine, no page reload).
 */
export class DeviceLostError extends CodeLlamaError {
  override name = 'DeviceLostError' as const;
}
/** The prompt (plus generation) does not fit the context. */
export class ContextOverflowError extends CodeLlamaError {
  override name = 'ContextOverflowError' as const;
}
/** Bad sampler settings, bad arguments, special tags in chat content, a disposed engine. */
export class InvalidRequestError extends CodeLlamaError {
  override name = 'InvalidRequestError' as const;
}
/** A generation / tokenizer call with no model loaded. */
export class NotLoadedError extends CodeLlamaError {
  override name = 'NotLoadedError' as const;
}
/** The request was aborted (AbortSignal, `cancel()`, or leaving a `for await` early). */
export class AbortError extends CodeLlamaError {
  override name = 'AbortError' as const;
}
/**
 * Fetching the model failed: the server answered with an HTTP error status (named in the
 * message; 404, 403 and other 4xx fail at once), a CORS refusal, or a network failure / 5xx /
 * 408 / 429 that went on through every retry (see "Retries" in web/README.md).
 */
export class NetworkError extends CodeLlamaError {
  override name = 'NetworkError' as const;
}
/** The engine's raw layer refused an operation while another one ran (the engines queue requests, so this is rare). */
export class EngineBusyError extends CodeLlamaError {
  override name = 'EngineBusyError' as const;
}
/**
 * The browser's storage quota is too small for the model's OPFS cache copy, or writing it failed
 * for lack of space. Only with `load(url, { cache: 'required' })`; with `cache: true` the load goes
 * on without the cache and `ModelInfo.cache` says why.
 */
export class StorageQuotaError extends CodeLlamaError {
  override name = 'StorageQuotaError' as const;
}
/** Anything else (a bug): please report it with the message. */
export class InternalError extends CodeLlamaError {
  override name = 'InternalError' as const;
}

const CLASSES = {
  WebGpuUnavailableError,
  InvalidModelError,
  UnsupportedModelError,
  GpuOutOfMemoryError,
  DeviceLostError,
  ContextOverflowError,
  InvalidRequestError,
  NotLoadedError,
  AbortError,
  NetworkError,
  EngineBusyError,
  StorageQuotaError,
  InternalError,
} as const;

/** The stable error names. */
export type CodeLlamaErrorName = keyof typeof CLASSES;

/** All stable error names. */
export const ERROR_NAMES = Object.keys(CLASSES) as CodeLlamaErrorName[];

/** `true` when `e` is a {@link CodeLlamaError} (optionally with the given `name`). */
export function isCodeLlamaError(e: unknown, name?: CodeLlamaErrorName): e is CodeLlamaError {
  return e instanceof CodeLlamaError && (name === undefined || e.name === name);
}

/** Creates the error class for `name` (unknown names become {@link InternalError}). */
export function createError(name: string, message: string, cause?: unknown): CodeLlamaError {
  const Cls = (CLASSES as Record<string, typeof CodeLlamaError>)[name] ?? InternalError;
  const err = new Cls(message, cause === undefined ? undefined : { cause });
  return err;
}

/**
 * Maps anything thrown (wasm errors with a contract `name`, DOMException `AbortError`,
 * `TypeError` from fetch, strings…) to a {@link CodeLlamaError}. Already-mapped errors pass through.
 */
export function toCodeLlamaError(e: unknown): CodeLlamaError {
  if (e instanceof CodeLlamaError) return e;
  if (e !== null && typeof e === 'object') {
    const name = String((e as { name?: unknown }).name ?? '');
    const message = String((e as { message?: unknown }).message ?? e);
    if (name === 'AbortError' || name === 'TimeoutError') {
      return new AbortError(message || 'The operation was aborted', { cause: e });
    }
    if (name in CLASSES) return createError(name, message, e);
    if (name === 'QuotaExceededError') return new StorageQuotaError(`storage quota exceeded: ${message}`, { cause: e });
    return new InternalError(name && name !== 'Error' ? `${name}: ${message}` : message, { cause: e });
  }
  return new InternalError(String(e), { cause: e });
}

/**
 * What an operation aborted by `signal` rejects with: the signal's `reason` as it is when the
 * caller gave one (`controller.abort(reason)`, `AbortSignal.timeout()`'s `TimeoutError`), else
 * (no reason, or the browser's default `DOMException` named `AbortError`) an {@link AbortError}.
 */
export function abortErrorFor(signal?: AbortSignal): unknown {
  const reason: unknown = signal?.reason;
  if (reason === undefined || isDefaultAbortReason(reason)) {
    return new AbortError('The operation was aborted', reason === undefined ? undefined : { cause: reason });
  }
  return reason;
}

/** The reason `AbortController.abort()` gives without an argument (a DOMException `AbortError`). */
function isDefaultAbortReason(reason: unknown): boolean {
  return (
    typeof DOMException !== 'undefined' && reason instanceof DOMException && reason.name === 'AbortError'
  );
}

/** Throws an {@link AbortError} when `signal` is aborted. */
export function throwIfAborted(signal?: AbortSignal): void {
  if (signal?.aborted) throw abortErrorFor(signal);
}

/** Turns an error into a structured-clone-safe object for `postMessage`. */
export function serializeError(e: unknown): SerializedError {
  const err = toCodeLlamaError(e);
  const out: SerializedError = { name: err.name, message: err.message };
  if (err.stack !== undefined) out.stack = err.stack;
  return out;
}

/** Re-creates the error class from {@link serializeError} output. */
export function deserializeError(s: SerializedError): CodeLlamaError {
  const err = createError(s.name, s.message);
  if (s.stack) {
    err.stack = `${err.name}: ${err.message}\n    (in worker)\n${s.stack.split('\n').slice(1).join('\n')}`;
  }
  return err;
}
