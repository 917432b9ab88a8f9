/**
 * The remote engine's tokenizer: the server's model's own, built in wasm (`WasmPromptBuilder`)
 * from the header of the model's GGUF file or from a Hugging Face `tokenizer.json`.
 *
 * A GGUF is read with HTTP `Range` requests of {@link RANGE_BYTES} until the builder has the
 * whole header (metadata and tensor infos: about 1 MiB for Code Llama's 32016-token vocabulary);
 * the tensor data (gigabytes) is never requested. A server that ignores `Range` answers `200`
 * with the whole file: its body is read only until the header is parsed, then cancelled.
 */

import { InvalidModelError, InvalidRequestError, NetworkError, abortErrorFor, throwIfAborted, toCodeLlamaError } from '../errors.js';
import { parseContentRange, resolveUrl } from '../sources.js';
import { WasmPromptBuilder } from '../wasm-loader.js';
import type { RemoteTokenizerSource } from '../types.js';

/** Bytes asked for by each `Range` request. */
export const RANGE_BYTES = 1024 * 1024;

/** A tokenizer source resolved: its kind and absolute URL. */
export interface TokenizerSpec {
  kind: 'gguf' | 'tokenizer.json';
  url: string;
}

/** What was read. */
export interface LoadedTokenizer {
  builder: WasmPromptBuilder;
  kind: 'gguf' | 'tokenizer.json';
  /** The file's size when the server said it (`Content-Range` / `Content-Length`). */
  fileBytes: number | null;
  /** Bytes read from it. */
  bytesRead: number;
}

/** Resolves {@link RemoteTokenizerSource}: a plain string or URL whose path ends in `.json` is a tokenizer.json. */
export function tokenizerSpec(source: RemoteTokenizerSource): TokenizerSpec {
  if (typeof source === 'string' || source instanceof URL) {
    const url = resolveUrl(source);
    return { kind: new URL(url).pathname.toLowerCase().endsWith('.json') ? 'tokenizer.json' : 'gguf', url };
  }
  if (source !== null && typeof source === 'object') {
    if ('gguf' in source && source.gguf !== undefined) return { kind: 'gguf', url: resolveUrl(source.gguf) };
    if ('tokenizerJson' in source && source.tokenizerJson !== undefined) {
      return { kind: 'tokenizer.json', url: resolveUrl(source.tokenizerJson) };
    }
  }
  throw new InvalidRequestError('tokenizer must be a URL (string or URL), { gguf: url } or { tokenizerJson: url }');
}

/** Whether a response or its first bytes are an HTML page (a dev server's index.html for a missing path). */
function looksHtml(contentType: string | null, head: Uint8Array | null): boolean {
  if (contentType !== null && /html/i.test(contentType)) return true;
  if (head === null) return false;
  const text = new TextDecoder().decode(head.subarray(0, 64)).replace(/^\uFEFF/, '').trimStart().toLowerCase();
  return text.startsWith('<!doctype html') || text.startsWith('<html') || text.startsWith('<!--') || text.startsWith('<head');
}

function htmlError(url: string, contentType: string | null, what: string): InvalidModelError {
  const type = contentType === null ? '' : ` (Content-Type: ${contentType})`;
  return new InvalidModelError(
    `not a ${what}: an HTML page came back from ${url}${type}. Check the tokenizer URL: a development server ` +
      '(Vite, webpack) answers a path it does not have with its index.html and status 200.',
  );
}

/** GET with the given headers; a failure without a response or an error status → NetworkError naming the URL. */
async function get(url: string, headers: Record<string, string>, doFetch: typeof fetch, signal?: AbortSignal): Promise<Response> {
  throwIfAborted(signal);
  let res: Response;
  try {
    const init: RequestInit = { headers };
    if (signal !== undefined) init.signal = signal;
    res = await doFetch(url, init);
  } catch (e) {
    if (signal?.aborted) throw abortErrorFor(signal);
    throw new NetworkError(`fetch ${url} failed: ${String((e as Error)?.message ?? e)}`, { cause: e });
  }
  if (!res.ok && res.status !== 416) {
    void res.body?.cancel().catch(() => {});
    throw new NetworkError(`fetch ${url}: HTTP ${res.status} ${res.statusText}`.trim());
  }
  return res;
}

/** Reads the tokenizer of `spec`; `onBytes` is called with the bytes read so far. */
export async function loadTokenizer(
  spec: TokenizerSpec,
  opts: { fetch?: typeof fetch; signal?: AbortSignal; onBytes?: (bytesRead: number, fileBytes: number | null) => void },
): Promise<LoadedTokenizer> {
  const doFetch = opts.fetch ?? globalThis.fetch.bind(globalThis);
  if (spec.kind === 'tokenizer.json') return tokenizerJson(spec.url, doFetch, opts.signal);
  return ggufHeader(spec.url, doFetch, opts.signal, opts.onBytes);
}

async function tokenizerJson(url: string, doFetch: typeof fetch, signal?: AbortSignal): Promise<LoadedTokenizer> {
  const res = await get(url, {}, doFetch, signal);
  if (res.status === 416) throw new NetworkError(`fetch ${url}: HTTP 416`);
  let text: string;
  try {
    text = await res.text();
  } catch (e) {
    if (signal?.aborted) throw abortErrorFor(signal);
    throw new NetworkError(`fetch ${url}: reading the body failed: ${String((e as Error)?.message ?? e)}`, { cause: e });
  }
  const contentType = res.headers.get('Content-Type');
  if (looksHtml(contentType, new TextEncoder().encode(text.slice(0, 64)))) throw htmlError(url, contentType, 'tokenizer.json');
  try {
    const builder = WasmPromptBuilder.fromTokenizerJson(text);
    return { builder, kind: 'tokenizer.json', fileBytes: text.length, bytesRead: text.length };
  } catch (e) {
    throw toCodeLlamaError(e);
  }
}

/** Feeds the builder; its errors (not a GGUF, an unsupported vocabulary) become typed errors. */
function feed(builder: WasmPromptBuilder, bytes: Uint8Array): boolean {
  try {
    return builder.feedGguf(bytes);
  } catch (e) {
    throw toCodeLlamaError(e);
  }
}

function endedEarly(url: string, bytes: number): InvalidModelError {
  return new InvalidModelError(`${url} ended after ${bytes} bytes, before the end of its GGUF header (a truncated or not a GGUF file)`);
}

async function ggufHeader(
  url: string,
  doFetch: typeof fetch,
  signal: AbortSignal | undefined,
  onBytes: ((bytesRead: number, fileBytes: number | null) => void) | undefined,
): Promise<LoadedTokenizer> {
  const builder = new WasmPromptBuilder();
  let offset = 0;
  let total: number | null = null;
  const fed = (bytes: Uint8Array, contentType: string | null): boolean => {
    if (offset === 0 && looksHtml(contentType, bytes)) throw htmlError(url, contentType, 'GGUF file');
    const done = feed(builder, bytes);
    offset += bytes.byteLength;
    onBytes?.(offset, total);
    return done;
  };
  try {
    for (;;) {
      const res = await get(url, { Range: `bytes=${offset}-${offset + RANGE_BYTES - 1}` }, doFetch, signal);
      const contentType = res.headers.get('Content-Type');
      if (res.status === 416) throw endedEarly(url, offset);
      if (res.status === 206) {
        const cr = parseContentRange(res.headers.get('Content-Range'));
        if (cr === null || cr.start !== offset) {
          void res.body?.cancel().catch(() => {});
          throw new NetworkError(`fetch ${url}: unexpected Content-Range ${String(res.headers.get('Content-Range'))} for bytes ${offset}-`);
        }
        total = cr.total;
        let bytes: Uint8Array;
        try {
          bytes = new Uint8Array(await res.arrayBuffer());
        } catch (e) {
          if (signal?.aborted) throw abortErrorFor(signal);
          throw new NetworkError(`fetch ${url}: reading bytes ${offset}- failed: ${String((e as Error)?.message ?? e)}`, { cause: e });
        }
        throwIfAborted(signal);
        if (bytes.byteLength === 0) throw endedEarly(url, offset);
        if (fed(bytes, contentType)) break;
        if (total !== null && offset >= total) throw endedEarly(url, offset);
        continue;
      }
      // 200: the server ignored Range and sends the whole file; read until the header is parsed.
      const len = res.headers.get('Content-Length');
      const enc = res.headers.get('Content-Encoding');
      total = len !== null && /^\d+$/.test(len) && (enc === null || enc === 'identity') ? Number(len) : null;
      await readUntilParsed(res, url, offset, fed, contentType, signal);
      break;
    }
    return { builder, kind: 'gguf', fileBytes: total, bytesRead: offset };
  } catch (e) {
    builder.free();
    throw e;
  }
}

/** A whole-file body: skips `skip` bytes already fed, feeds the rest until the header is done, cancels the rest. */
async function readUntilParsed(
  res: Response,
  url: string,
  skip: number,
  fed: (bytes: Uint8Array, contentType: string | null) => boolean,
  contentType: string | null,
  signal: AbortSignal | undefined,
): Promise<void> {
  if (res.body === null) throw new NetworkError(`fetch ${url}: the response has no body`);
  const reader = res.body.getReader();
  const onAbort = () => void reader.cancel().catch(() => {});
  signal?.addEventListener('abort', onAbort, { once: true });
  let seen = 0;
  try {
    for (;;) {
      let r: ReadableStreamReadResult<Uint8Array>;
      try {
        r = await reader.read();
      } catch (e) {
        if (signal?.aborted) throw abortErrorFor(signal);
        throw new NetworkError(`fetch ${url}: reading the body failed: ${String((e as Error)?.message ?? e)}`, { cause: e });
      }
      throwIfAborted(signal);
      if (r.done) throw endedEarly(url, seen);
      let piece = r.value;
      seen += piece.byteLength;
      if (skip > 0) {
        const n = Math.min(skip, piece.byteLength);
        skip -= n;
        piece = piece.subarray(n);
        if (piece.byteLength === 0) continue;
      }
      if (fed(piece, contentType)) return;
    }
  } finally {
    signal?.removeEventListener('abort', onAbort);
    await reader.cancel().catch(() => {});
    reader.releaseLock();
  }
}

/** A tokenizer from GGUF bytes the caller already has (a Blob, a buffer, a stream): fed until the header is parsed. */
export async function tokenizerFromChunks(
  chunks: AsyncIterable<Uint8Array>,
  fileBytes: number | null,
  signal?: AbortSignal,
  onBytes?: (bytesRead: number, fileBytes: number | null) => void,
): Promise<LoadedTokenizer> {
  const builder = new WasmPromptBuilder();
  let read = 0;
  try {
    for await (const chunk of chunks) {
      throwIfAborted(signal);
      if (read === 0 && looksHtml(null, chunk)) throw htmlError('the source', null, 'GGUF file');
      const done = feed(builder, chunk);
      read += chunk.byteLength;
      onBytes?.(read, fileBytes);
      if (done) return { builder, kind: 'gguf', fileBytes, bytesRead: read };
    }
    throw new InvalidModelError(`the GGUF source ended after ${read} bytes, before the end of its header`);
  } catch (e) {
    builder.free();
    throw e;
  }
}
