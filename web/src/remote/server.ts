/**
 * The OpenAI-compatible server behind the remote engine: its base URL, requests to it (with the
 * API key), what it says about itself (`GET /v1/models`, llama.cpp's `GET /props`), and its HTTP
 * errors turned into the package's typed errors.
 *
 * Error bodies differ by server: llama.cpp answers `{"error": {"code", "message", "type"}}`
 * (a prompt over the context: `type: "exceed_context_size_error"`), vLLM `{"error": {"message",
 * "type", "code"}}` or, in older releases, `{"object": "error", "message", "type", "code"}`
 * (a prompt over the context: "This model's maximum context length is …"), and FastAPI's request
 * validation (vLLM, HTTP 422) `{"detail": [{"loc", "msg"}]}`; all of them are read here.
 */

import {
  ContextOverflowError,
  InvalidRequestError,
  NetworkError,
  abortErrorFor,
  throwIfAborted,
  type CodeLlamaError,
} from '../errors.js';
import type { ServerFlavor } from '../types.js';

/** The server's base URL, normalized: absolute http(s), no trailing `/`, no trailing `/v1`. */
export function normalizeBaseUrl(baseUrl: string | URL): string {
  const base = (globalThis as { location?: { href: string } }).location?.href;
  let url: URL;
  try {
    url = base === undefined ? new URL(String(baseUrl)) : new URL(String(baseUrl), base);
  } catch {
    throw new InvalidRequestError(`baseUrl is not a URL: ${String(baseUrl)}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new InvalidRequestError(`baseUrl must be an http(s) URL, got ${url.href}`);
  }
  url.hash = '';
  url.search = '';
  const path = url.pathname.replace(/\/+$/, '').replace(/\/v1$/, '');
  return `${url.origin}${path}`;
}

/** Requests to one server: `${baseUrl}${path}` with `Authorization: Bearer` when there is a key. */
export class ServerClient {
  readonly baseUrl: string;
  readonly #apiKey: string | undefined;
  readonly #fetch: typeof fetch;

  constructor(baseUrl: string | URL, apiKey: string | undefined, doFetch: typeof fetch | undefined) {
    this.baseUrl = normalizeBaseUrl(baseUrl);
    if (apiKey !== undefined && typeof apiKey !== 'string') throw new InvalidRequestError('apiKey must be a string');
    this.#apiKey = apiKey === '' ? undefined : apiKey;
    this.#fetch = doFetch ?? globalThis.fetch.bind(globalThis);
  }

  url(path: string): string {
    return `${this.baseUrl}${path}`;
  }

  /**
   * Sends a request. A failure without a response is a {@link NetworkError} naming the URL (an
   * abort: the signal's reason, see `abortErrorFor`); any response, error statuses included, is
   * returned as it is.
   */
  async send(path: string, init: { method: 'GET' | 'POST'; body?: unknown; signal?: AbortSignal }): Promise<Response> {
    const url = this.url(path);
    throwIfAborted(init.signal);
    const headers: Record<string, string> = { Accept: init.body === undefined ? 'application/json' : 'text/event-stream, application/json' };
    if (init.body !== undefined) headers['Content-Type'] = 'application/json';
    if (this.#apiKey !== undefined) headers['Authorization'] = `Bearer ${this.#apiKey}`;
    const req: RequestInit = { method: init.method, headers, cache: 'no-store' };
    if (init.body !== undefined) req.body = JSON.stringify(init.body);
    if (init.signal !== undefined) req.signal = init.signal;
    try {
      return await this.#fetch(url, req);
    } catch (e) {
      if (init.signal?.aborted) throw abortErrorFor(init.signal);
      const why = (e as { message?: unknown })?.message ?? String(e);
      throw new NetworkError(
        `${init.method} ${url} failed: ${String(why)} (the server is down or unreachable, or it does not allow this page's origin: CORS)`,
        { cause: e },
      );
    }
  }

  /** `GET path` as JSON; an error status becomes the typed error of {@link errorFromResponse}. */
  async getJson(path: string, signal?: AbortSignal): Promise<unknown> {
    const res = await this.send(path, { method: 'GET', signal });
    if (!res.ok) throw await errorFromResponse(res, this.url(path), this.baseUrl, this.#apiKey !== undefined);
    let text: string;
    try {
      text = await res.text();
    } catch (e) {
      if (signal?.aborted) throw abortErrorFor(signal);
      throw new NetworkError(`GET ${this.url(path)}: reading the answer failed: ${String((e as Error)?.message ?? e)}`, { cause: e });
    }
    try {
      return JSON.parse(text) as unknown;
    } catch {
      const type = res.headers.get('Content-Type');
      throw new InvalidRequestError(
        `${this.baseUrl} is not an OpenAI-compatible server: GET ${path} answered with something that is not JSON` +
          `${type === null ? '' : ` (Content-Type: ${type})`}: ${snippet(text)}`,
      );
    }
  }

  get hasApiKey(): boolean {
    return this.#apiKey !== undefined;
  }
}

/** The first 200 characters of a body, on one line. */
function snippet(text: string): string {
  const one = text.replace(/\s+/g, ' ').trim();
  return one.length > 200 ? `${one.slice(0, 200)}…` : one;
}

/** What an error body says: its message and, where the server gives one, its type or code. */
export function serverMessage(payload: unknown): { message: string | null; type: string | null } {
  if (payload === null || typeof payload !== 'object') {
    return { message: typeof payload === 'string' && payload.trim() !== '' ? snippet(payload) : null, type: null };
  }
  const p = payload as Record<string, unknown>;
  const err = p['error'];
  if (typeof err === 'string') return { message: err, type: typeof p['type'] === 'string' ? p['type'] : null };
  if (err !== null && typeof err === 'object') {
    const e = err as Record<string, unknown>;
    const type = typeof e['type'] === 'string' ? e['type'] : typeof e['code'] === 'string' ? e['code'] : null;
    if (typeof e['message'] === 'string') return { message: e['message'], type };
  }
  const type = typeof p['type'] === 'string' ? p['type'] : typeof p['code'] === 'string' ? p['code'] : null;
  if (typeof p['message'] === 'string') return { message: p['message'], type };
  const detail = p['detail'];
  if (typeof detail === 'string') return { message: detail, type };
  if (Array.isArray(detail)) {
    const parts = detail.map((d) => {
      if (d === null || typeof d !== 'object') return String(d);
      const o = d as Record<string, unknown>;
      const loc = Array.isArray(o['loc']) ? o['loc'].join('.') : null;
      const msg = typeof o['msg'] === 'string' ? o['msg'] : JSON.stringify(o);
      return loc === null ? msg : `${loc}: ${msg}`;
    });
    return { message: parts.join('; '), type };
  }
  return { message: null, type };
}

/** Whether the server's error says that the prompt (plus the tokens asked for) exceeds its context. */
function isContextOverflow(message: string | null, type: string | null): boolean {
  if (type === 'exceed_context_size_error' || type === 'context_length_exceeded') return true;
  return message !== null && /maximum context length|context length exceeded|exceeds? the (available )?context/i.test(message);
}

/**
 * The typed error of an error payload (an HTTP error body, or an `{"error": …}` event in a
 * stream): a context overflow → {@link ContextOverflowError}; 401/403 → {@link InvalidRequestError}
 * (the API key); 404 for a route the server lacks → not an OpenAI server; other 4xx (400, 422, …) →
 * {@link InvalidRequestError} with the server's message; 5xx and the rest → {@link NetworkError}.
 */
export function errorFromPayload(
  status: number,
  statusText: string,
  payload: unknown,
  url: string,
  baseUrl: string,
  hasApiKey: boolean,
): CodeLlamaError {
  const { message, type } = serverMessage(payload);
  const said = message === null ? '' : `: ${message}`;
  const http = `HTTP ${status}${statusText === '' ? '' : ` ${statusText}`}`;
  if (isContextOverflow(message, type)) {
    return new ContextOverflowError(`the server at ${baseUrl} says the prompt does not fit its context (${http})${said}`);
  }
  if (status === 401 || status === 403) {
    return new InvalidRequestError(
      hasApiKey
        ? `the server at ${baseUrl} refused the API key (${http})${said}`
        : `the server at ${baseUrl} needs an API key (${http}; pass apiKey)${said}`,
    );
  }
  // A route the server does not have (FastAPI: "Not Found", llama.cpp: "File Not Found"), not a
  // missing model (vLLM: "The model `x` does not exist.").
  if (status === 404 && (message === null || typeof payload !== 'object' || /^(file )?not found\.?$/i.test(message.trim()))) {
    return new InvalidRequestError(
      `${baseUrl} is not an OpenAI-compatible server: ${url} answered ${http} (check the base URL: requests go to <baseUrl>/v1/completions)`,
    );
  }
  if (status >= 400 && status < 500 && status !== 408 && status !== 429) {
    return new InvalidRequestError(`the server at ${baseUrl} rejected the request (${http})${said}`);
  }
  return new NetworkError(`${url}: ${http}${said}`);
}

/** {@link errorFromPayload} of an error response (its body read as JSON where it is JSON). */
export async function errorFromResponse(res: Response, url: string, baseUrl: string, hasApiKey: boolean): Promise<CodeLlamaError> {
  let payload: unknown = null;
  try {
    const text = await res.text();
    try {
      payload = JSON.parse(text) as unknown;
    } catch {
      payload = text;
    }
  } catch {
    /* no body */
  }
  return errorFromPayload(res.status, res.statusText, payload, url, baseUrl, hasApiKey);
}

/** What the server says about itself. */
export interface ServerFacts {
  flavor: ServerFlavor;
  /** The ids `/v1/models` lists (and llama.cpp's aliases). */
  models: string[];
  /** The model requests name. */
  model: string;
  /** The context of the server's model, when it says (llama.cpp: per slot; vLLM: `max_model_len`). */
  contextLength: number | null;
  /** The vocabulary size of the server's model, when it says (llama.cpp: `meta.n_vocab`). */
  vocabSize: number | null;
}

interface ModelEntry {
  id: string;
  ownedBy: string | null;
  aliases: string[];
  /** vLLM's `max_model_len`, llama.cpp's `meta.n_ctx`. */
  context: number | null;
  /** llama.cpp's `meta.n_vocab`. */
  vocab: number | null;
}

function positiveInt(v: unknown): number | null {
  return typeof v === 'number' && Number.isInteger(v) && v > 0 ? v : null;
}

function modelEntries(json: unknown, baseUrl: string): ModelEntry[] {
  const data = json !== null && typeof json === 'object' ? (json as { data?: unknown }).data : undefined;
  if (!Array.isArray(data)) {
    throw new InvalidRequestError(`${baseUrl} is not an OpenAI-compatible server: GET /v1/models has no "data" list`);
  }
  return data.flatMap((m): ModelEntry[] => {
    if (m === null || typeof m !== 'object' || typeof (m as { id?: unknown }).id !== 'string') return [];
    const o = m as Record<string, unknown>;
    const meta = o['meta'] !== null && typeof o['meta'] === 'object' ? (o['meta'] as Record<string, unknown>) : {};
    return [
      {
        id: o['id'] as string,
        ownedBy: typeof o['owned_by'] === 'string' ? o['owned_by'] : null,
        aliases: Array.isArray(o['aliases']) ? o['aliases'].filter((a): a is string => typeof a === 'string') : [],
        context: positiveInt(o['max_model_len']) ?? positiveInt(meta['n_ctx']),
        vocab: positiveInt(meta['n_vocab']),
      },
    ];
  });
}

/** The flavor `owned_by` names: llama.cpp's server says `"llamacpp"`, vLLM `"vllm"`. */
function detectFlavor(entries: ModelEntry[]): ServerFlavor {
  if (entries.some((e) => e.ownedBy === 'llamacpp')) return 'llama.cpp';
  if (entries.some((e) => e.ownedBy === 'vllm')) return 'vllm';
  return 'openai';
}

/**
 * Asks the server what it serves: `GET /v1/models` (the flavor from `owned_by` unless given, the
 * model, its context) and, for llama.cpp when `/v1/models` does not say the context, `GET /props`
 * (`default_generation_settings.n_ctx`). A given `model` must be listed (`InvalidRequestError`
 * naming what the server has).
 */
export async function probeServer(
  client: ServerClient,
  opts: { flavor?: ServerFlavor; model?: string; signal?: AbortSignal },
): Promise<ServerFacts> {
  const entries = modelEntries(await client.getJson('/v1/models', opts.signal), client.baseUrl);
  const flavor = opts.flavor ?? detectFlavor(entries);
  const models = entries.map((e) => e.id);
  let entry: ModelEntry | undefined;
  if (opts.model !== undefined) {
    entry = entries.find((e) => e.id === opts.model || e.aliases.includes(opts.model as string));
    if (entry === undefined) {
      throw new InvalidRequestError(
        `the server at ${client.baseUrl} has no model ${JSON.stringify(opts.model)}; it lists ` +
          (models.length === 0 ? 'none' : models.map((m) => JSON.stringify(m)).join(', ')),
      );
    }
  } else {
    entry = entries[0];
    if (entry === undefined) throw new InvalidRequestError(`the server at ${client.baseUrl} lists no model (GET /v1/models)`);
  }
  let contextLength = entry.context;
  if (contextLength === null && flavor === 'llama.cpp') contextLength = await llamaCppContext(client, opts.signal);
  return { flavor, models, model: opts.model ?? entry.id, contextLength, vocabSize: entry.vocab };
}

/** llama.cpp's `GET /props` context (per slot), or `null` when it does not answer it. */
async function llamaCppContext(client: ServerClient, signal?: AbortSignal): Promise<number | null> {
  let props: unknown;
  try {
    props = await client.getJson('/props', signal);
  } catch (e) {
    if (signal?.aborted) throw abortErrorFor(signal);
    return null;
  }
  if (props === null || typeof props !== 'object') return null;
  const p = props as Record<string, unknown>;
  const dgs = p['default_generation_settings'];
  const fromDgs = dgs !== null && typeof dgs === 'object' ? positiveInt((dgs as Record<string, unknown>)['n_ctx']) : null;
  return fromDgs ?? positiveInt(p['n_ctx']);
}
