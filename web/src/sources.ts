/**
 * Model sources → async streams of bounded `Uint8Array` chunks.
 *
 * Every reader honours an `AbortSignal` (rejecting with `AbortError`) and yields chunks of at most
 * {@link MAX_CHUNK_BYTES}, so the wasm side never needs more than one chunk of memory.
 */

import { NetworkError, InvalidRequestError, abortErrorFor, throwIfAborted, toCodeLlamaError } from './errors.js';
import type { ModelSource } from './types.js';

/** Upper bound of a chunk handed to the engine. */
export const MAX_CHUNK_BYTES = 8 * 1024 * 1024;
/** Slice size for Blobs and buffers. */
export const SLICE_BYTES = 4 * 1024 * 1024;
/** Small network/stream pieces are coalesced up to this size before being handed on. */
export const COALESCE_BYTES = 1024 * 1024;

/** An opened source: its size when known, and its bytes. */
export interface OpenedSource {
  /** Total bytes, when known. */
  totalBytes: number | null;
  /** The bytes, in order, in chunks of ≤ {@link MAX_CHUNK_BYTES}. Iterate once. */
  chunks: AsyncIterable<Uint8Array>;
  /** Validators of a URL response (for the OPFS cache). */
  etag?: string | null;
  lastModified?: string | null;
  /** The response's Content-Type (URL sources), to explain a file that is not a model. */
  contentType?: string | null;
  /** Releases the source when its chunks will not be (fully) read. Idempotent. */
  close?: () => Promise<void>;
}

/** Options of {@link openUrl}. */
export interface FetchOptions {
  signal?: AbortSignal;
  /**
   * Retries after a failure that can succeed on another try (a network error, a premature end,
   * HTTP 408 / 429 / 5xx), with exponential backoff. Default 4.
   */
  retries?: number;
  /** First backoff delay in ms, doubled on each retry. Default 500. */
  backoffMs?: number;
  /** `fetch` to use (tests). */
  fetch?: typeof fetch;
  /** HTTP cache mode of the requests (default: the browser's default). */
  requestCache?: RequestCache;
}

/** Is `source` a URL-like source (`string` or `URL`)? */
export function isUrlSource(source: ModelSource): source is string | URL {
  return typeof source === 'string' || source instanceof URL;
}

/** Absolute URL of a string/URL source, resolved against the current location. */
export function resolveUrl(source: string | URL): string {
  const base = (globalThis as { location?: { href: string } }).location?.href;
  try {
    return base === undefined ? new URL(String(source)).href : new URL(String(source), base).href;
  } catch {
    throw new InvalidRequestError(`invalid model URL: ${String(source)}`);
  }
}

/** Opens any {@link ModelSource} (URLs without the OPFS cache; see `opfs.ts`). */
export async function openSource(source: ModelSource, opts: FetchOptions = {}): Promise<OpenedSource> {
  throwIfAborted(opts.signal);
  if (isUrlSource(source)) return openUrl(resolveUrl(source), opts);
  if (typeof Blob !== 'undefined' && source instanceof Blob) {
    return { totalBytes: source.size, chunks: readBlob(source, opts.signal) };
  }
  if (typeof ReadableStream !== 'undefined' && source instanceof ReadableStream) {
    return { totalBytes: null, chunks: readStream(source, opts.signal) };
  }
  if (source instanceof ArrayBuffer) {
    return { totalBytes: source.byteLength, chunks: readBytes(new Uint8Array(source), opts.signal) };
  }
  if (ArrayBuffer.isView(source)) {
    const bytes = new Uint8Array(source.buffer, source.byteOffset, source.byteLength);
    return { totalBytes: bytes.byteLength, chunks: readBytes(bytes, opts.signal) };
  }
  throw new InvalidRequestError(
    'unsupported model source: expected a URL string, URL, Blob/File, ReadableStream, ArrayBuffer or typed array',
  );
}

/** Views of ≤ {@link SLICE_BYTES} over `bytes` (no copies). */
export async function* readBytes(bytes: Uint8Array, signal?: AbortSignal): AsyncGenerator<Uint8Array> {
  for (let off = 0; off < bytes.byteLength; off += SLICE_BYTES) {
    throwIfAborted(signal);
    yield bytes.subarray(off, Math.min(off + SLICE_BYTES, bytes.byteLength));
  }
}

/** A Blob/File read in slices with `slice().arrayBuffer()`. */
export async function* readBlob(blob: Blob, signal?: AbortSignal): AsyncGenerator<Uint8Array> {
  for (let off = 0; off < blob.size; off += SLICE_BYTES) {
    throwIfAborted(signal);
    let buf: ArrayBuffer;
    try {
      buf = await blob.slice(off, Math.min(off + SLICE_BYTES, blob.size)).arrayBuffer();
    } catch (e) {
      throw toCodeLlamaError(e);
    }
    throwIfAborted(signal);
    yield new Uint8Array(buf);
  }
}

/** A `ReadableStream`, coalesced/split to bounded chunks. Cancelled when abandoned or aborted. */
export async function* readStream(
  stream: ReadableStream<Uint8Array>,
  signal?: AbortSignal,
): AsyncGenerator<Uint8Array> {
  const reader = stream.getReader();
  const onAbort = () => void reader.cancel(abortErrorFor(signal)).catch(() => {});
  signal?.addEventListener('abort', onAbort, { once: true });
  let finished = false;
  try {
    throwIfAborted(signal);
    yield* rechunk(readerPieces(reader, signal));
    finished = true;
  } finally {
    signal?.removeEventListener('abort', onAbort);
    if (!finished) await reader.cancel().catch(() => {});
    reader.releaseLock();
  }
}

async function* readerPieces(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  signal?: AbortSignal,
): AsyncGenerator<Uint8Array> {
  for (;;) {
    let r: ReadableStreamReadResult<Uint8Array>;
    try {
      r = await reader.read();
    } catch (e) {
      if (signal?.aborted) throw abortErrorFor(signal);
      throw e;
    }
    throwIfAborted(signal);
    if (r.done) return;
    yield toBytes(r.value);
  }
}

function toBytes(v: unknown): Uint8Array {
  if (v instanceof Uint8Array) return v;
  if (v instanceof ArrayBuffer) return new Uint8Array(v);
  if (ArrayBuffer.isView(v)) return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
  throw new InvalidRequestError('the model stream must yield Uint8Array chunks');
}

/** Coalesces small pieces to ≥ {@link COALESCE_BYTES} and splits big ones to ≤ {@link MAX_CHUNK_BYTES}. */
export async function* rechunk(pieces: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  let buf: Uint8Array | null = null;
  let fill = 0;
  for await (const piece of pieces) {
    let p = piece;
    if (fill === 0 && p.byteLength >= COALESCE_BYTES) {
      for (let off = 0; off < p.byteLength; off += MAX_CHUNK_BYTES) {
        yield p.subarray(off, Math.min(off + MAX_CHUNK_BYTES, p.byteLength));
      }
      continue;
    }
    while (p.byteLength > 0) {
      buf ??= new Uint8Array(COALESCE_BYTES);
      const n = Math.min(p.byteLength, COALESCE_BYTES - fill);
      buf.set(p.subarray(0, n), fill);
      fill += n;
      p = p.subarray(n);
      if (fill === COALESCE_BYTES) {
        yield buf;
        buf = null; // the consumer may keep the chunk: never reuse it
        fill = 0;
      }
    }
  }
  if (buf !== null && fill > 0) yield buf.subarray(0, fill);
}

// ---------------------------------------------------------------------------------------------
// URLs: streaming fetch with Range resume
// ---------------------------------------------------------------------------------------------

/** An HTTP status or a refusal another try cannot change (404, 403, other 4xx, CORS). */
class HttpStatusError extends NetworkError {}

/** HTTP statuses worth another try: timeouts, rate limits, server errors. */
export function isRetryableStatus(status: number): boolean {
  return status === 408 || status === 429 || status >= 500;
}

/** `Retry-After` in milliseconds (seconds or an HTTP date), capped at 30 s; `null` without one. */
function retryAfterMs(res: Response): number | null {
  const v = res.headers.get('Retry-After');
  if (v === null) return null;
  const secs = /^\s*\d+\s*$/.test(v) ? Number(v) : (Date.parse(v) - Date.now()) / 1000;
  return Number.isFinite(secs) ? Math.min(Math.max(secs, 0), 30) * 1000 : null;
}

/** A failure that may go away: the request is tried again after `delayMs` (or the backoff). */
class RetryableError extends NetworkError {
  constructor(message: string, readonly delayMs: number | null = null, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/**
 * After `fetch` rejected without a response (a TypeError) for a URL of another origin: a CORS
 * refusal (the server answers, but without `Access-Control-Allow-Origin`) cannot succeed on
 * another try, a network failure can. A `no-cors` HEAD request tells them apart: it resolves
 * (with an opaque response) when the server is reachable.
 */
async function isCorsRefusal(url: string, doFetch: typeof fetch, signal?: AbortSignal): Promise<boolean> {
  const origin = (globalThis as { location?: { origin?: string } }).location?.origin;
  let target: URL;
  try {
    target = new URL(url);
  } catch {
    return false;
  }
  if (origin === undefined || target.origin === origin || !/^https?:$/.test(target.protocol)) return false;
  try {
    const init: RequestInit = { method: 'HEAD', mode: 'no-cors', cache: 'no-store' };
    if (signal !== undefined) init.signal = signal;
    await doFetch(url, init);
    return true;
  } catch {
    return false;
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortErrorFor(signal));
    const onAbort = () => {
      clearTimeout(t);
      reject(abortErrorFor(signal));
    };
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Parses `Content-Range: bytes start-end/total` (total may be `*`). */
export function parseContentRange(v: string | null): { start: number; end: number; total: number | null } | null {
  const m = v === null ? null : /^\s*bytes\s+(\d+)-(\d+)\/(\d+|\*)\s*$/i.exec(v);
  if (!m) return null;
  return { start: Number(m[1]), end: Number(m[2]), total: m[3] === '*' ? null : Number(m[3]) };
}

function isEncoded(res: Response): boolean {
  const enc = res.headers.get('Content-Encoding');
  return enc !== null && enc.trim().toLowerCase() !== 'identity' && enc.trim() !== '';
}

/**
 * Fetches `url` as a stream. When the body fails or ends early, it is resumed with
 * `Range: bytes=<done>-` (and `If-Range` with the strong ETag or Last-Modified): a `206` whose
 * `Content-Range` starts at `done` continues the stream; a `200` restarts it and the bytes already
 * read are skipped. What can succeed on another try (a network error, HTTP 408 / 429 / 5xx,
 * an early end) is retried `retries` times in a row with exponential backoff (at least the
 * server's `Retry-After`), then rejects with `NetworkError`; other HTTP statuses (404, 403, …),
 * a CORS refusal and an abort fail at once.
 */
export async function openUrl(url: string, opts: FetchOptions = {}): Promise<OpenedSource> {
  const { signal } = opts;
  const retries = opts.retries ?? 4;
  const backoffMs = opts.backoffMs ?? 500;
  const doFetch = opts.fetch ?? globalThis.fetch.bind(globalThis);

  const request = async (headers: Record<string, string>): Promise<Response> => {
    throwIfAborted(signal);
    let res: Response;
    try {
      const init: RequestInit = { headers };
      if (signal !== undefined) init.signal = signal;
      if (opts.requestCache !== undefined) init.cache = opts.requestCache;
      res = await doFetch(url, init);
    } catch (e) {
      if (signal?.aborted) throw abortErrorFor(signal);
      const why = (e as Error)?.message ?? String(e);
      if (await isCorsRefusal(url, doFetch, signal)) {
        throw new HttpStatusError(
          `fetch ${url} failed: ${why}; the server answers but not to this origin (CORS: it must send Access-Control-Allow-Origin)`,
          { cause: e },
        );
      }
      throw new RetryableError(`fetch ${url} failed: ${why}`, null, { cause: e });
    }
    if (!res.ok) {
      void res.body?.cancel().catch(() => {});
      const what = `fetch ${url}: HTTP ${res.status} ${res.statusText}`.trim();
      if (isRetryableStatus(res.status)) throw new RetryableError(what, retryAfterMs(res));
      throw new HttpStatusError(what);
    }
    return res;
  };
  /** Waits before retry `attempt` (0-based): the backoff, or the server's Retry-After. */
  const pause = (attempt: number, e: unknown) =>
    sleep(Math.max(backoffMs * 2 ** attempt, (e instanceof RetryableError ? e.delayMs : null) ?? 0), signal);

  // First request, with retries for what can succeed (not 4xx, CORS or an abort).
  let first: Response | null = null;
  for (let attempt = 0; first === null; attempt++) {
    try {
      first = await request({});
    } catch (e) {
      if (signal?.aborted || !(e instanceof RetryableError)) throw e;
      if (attempt >= retries) {
        throw new NetworkError(`${e.message} (after ${retries} retries)`, { cause: e });
      }
      await pause(attempt, e);
    }
  }

  const encoded = isEncoded(first);
  const lenHeader = first.headers.get('Content-Length');
  const totalBytes = !encoded && lenHeader !== null && /^\d+$/.test(lenHeader) ? Number(lenHeader) : null;
  const etag = first.headers.get('ETag');
  const lastModified = first.headers.get('Last-Modified');
  const contentType = first.headers.get('Content-Type');
  const validator = etag !== null && !etag.startsWith('W/') ? etag : lastModified;

  async function* bytes(): AsyncGenerator<Uint8Array> {
    let res: Response | null = first;
    first = null;
    let done = 0;
    let failures = 0;
    for (;;) {
      // `skip`: bytes at the start of this response that were already handed out.
      let skip = 0;
      if (res === null) {
        try {
          const headers: Record<string, string> = {};
          if (!encoded) {
            headers['Range'] = `bytes=${done}-`;
            if (validator !== null) headers['If-Range'] = validator;
          }
          res = await request(headers);
          if (res.status === 206) {
            const cr = parseContentRange(res.headers.get('Content-Range'));
            if (cr === null || cr.start > done || (totalBytes !== null && cr.total !== null && cr.total !== totalBytes)) {
              void res.body?.cancel().catch(() => {});
              throw new NetworkError(`fetch ${url}: unexpected Content-Range ${res.headers.get('Content-Range')}`);
            }
            skip = done - cr.start;
          } else {
            const len = res.headers.get('Content-Length');
            if (totalBytes !== null && !isEncoded(res) && len !== null && Number(len) !== totalBytes) {
              void res.body?.cancel().catch(() => {});
              throw new HttpStatusError(`fetch ${url}: the file changed while downloading (${len} ≠ ${totalBytes} bytes)`);
            }
            skip = done;
          }
        } catch (e) {
          res = null;
          if (signal?.aborted || e instanceof HttpStatusError || !(e instanceof NetworkError) || ++failures > retries) throw e;
          await pause(failures - 1, e);
          continue;
        }
      }
      if (res.body === null) throw new NetworkError(`fetch ${url}: response has no body`);
      const reader = res.body.getReader();
      const onAbort = () => void reader.cancel().catch(() => {});
      signal?.addEventListener('abort', onAbort, { once: true });
      let failure: unknown = null;
      let completed = false;
      try {
        for (;;) {
          let r: ReadableStreamReadResult<Uint8Array>;
          try {
            r = await reader.read();
          } catch (e) {
            failure = e;
            break;
          }
          throwIfAborted(signal);
          if (r.done) {
            completed = true;
            break;
          }
          let piece = r.value;
          if (skip > 0) {
            const n = Math.min(skip, piece.byteLength);
            skip -= n;
            piece = piece.subarray(n);
            if (piece.byteLength === 0) continue;
          }
          if (totalBytes !== null && done + piece.byteLength > totalBytes) {
            piece = piece.subarray(0, totalBytes - done);
          }
          done += piece.byteLength;
          failures = 0;
          yield piece;
        }
      } finally {
        signal?.removeEventListener('abort', onAbort);
        if (!completed) await reader.cancel().catch(() => {});
        reader.releaseLock();
      }
      throwIfAborted(signal);
      res = null;
      if (completed && (totalBytes === null || done >= totalBytes) && skip === 0) return;
      // Dropped connection or early end: resume.
      if (++failures > retries) {
        const why = failure === null ? `ended after ${done} of ${totalBytes} bytes` : String((failure as Error)?.message ?? failure);
        throw new NetworkError(`fetch ${url} failed after ${retries} retries: ${why}`, { cause: failure ?? undefined });
      }
      await sleep(backoffMs * 2 ** (failures - 1), signal);
    }
  }

  const chunks = rechunk(bytes());
  const close = async (): Promise<void> => {
    const unread = first;
    first = null;
    if (unread !== null) await unread.body?.cancel().catch(() => {});
    await chunks.return(undefined).catch(() => {});
  };
  return { totalBytes, etag, lastModified, contentType, chunks, close };
}
