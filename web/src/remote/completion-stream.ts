/**
 * One generation on the server: `POST /v1/completions` with `stream: true`, its server-sent
 * events turned into text pieces and {@link GenerationStats}.
 *
 * Client-side rules (the server knows nothing of them): `maxTimeMs` (after the first token, the
 * stream is closed once the deadline passes: `'deadline'`), `singleLine` / `minIndent` (the
 * text goes through the same line rules as the local engine, `WasmLineRules`; when one ends the
 * text, the stream is closed: `'line_end'` / `'indent'`). Closing the HTTP stream is what makes
 * llama.cpp and vLLM stop generating; an abort of the caller's signal closes it the same way.
 *
 * Why it stopped, when the server ended the stream:
 * - `finish_reason: "length"` → `'max_tokens'` when `maxTokens` tokens were generated, else
 *   `'context_full'` (the server stopped at its context).
 * - `finish_reason: "stop"` → `'stop_string'` or `'stop_token'` as the server says: llama.cpp's
 *   `__verbose.stop_type` (`"word"` / `"eos"`; the engine asks for `verbose: true`), vLLM's
 *   `stop_reason` (a string: a stop string; a token id or `null`: a stop token). A server that
 *   says neither (the plain `'openai'` flavor) is reported as `'stop_token'`.
 * - A stop token's own text is never returned: llama.cpp sends the text of a stop token that its
 *   GGUF does not type as a control token (Code Llama's `▁<EOT>` ends infill as " <EOT>"); the
 *   event's `__verbose.tokens` names the token and its text is cut from the event's end.
 *
 * Figures: the server's `usage` (prompt and completion tokens, `prompt_tokens_details.cached_tokens`)
 * and llama.cpp's `timings` (`prompt_n`, `prompt_ms`, `predicted_ms`, `predicted_per_second`) where
 * present. When the client closed the stream (deadline, line rules) there is no `usage`: the
 * generated count is llama.cpp's `__verbose.tokens_predicted` of the last event, else the number of
 * events that carried text (one per token, except tokens held back by the server as part of a
 * UTF-8 character or a possible stop string), and the times are measured here.
 */

import { AbortError, CodeLlamaError, NetworkError, abortErrorFor } from '../errors.js';
import type { GenerationSink, RawGenerationStats } from '../generation.js';
import type { InfillContext, StopReason } from '../types.js';
import { WasmLineRules } from '../wasm-loader.js';
import { errorFromPayload, errorFromResponse, type ServerClient } from './server.js';
import { sseEvents } from './sse.js';

/** What `WasmPromptBuilder.prepareJson` returns. */
export interface PreparedRequest {
  /** The `/v1/completions` body (prompt as token ids). */
  body: Record<string, unknown>;
  promptTokens: number;
  context: InfillContext | null;
  maxTokens: number;
  maxTimeMs: number | null;
  singleLine: boolean;
  minIndent: number | null;
  stopIds: number[];
}

const now = (): number => (typeof performance !== 'undefined' ? performance.now() : Date.now());

/** The parts of a completion chunk read here (llama.cpp's and vLLM's streams share them). */
interface Chunk {
  choices?: { text?: unknown; finish_reason?: unknown; stop_reason?: unknown; index?: unknown }[];
  usage?: {
    prompt_tokens?: unknown;
    completion_tokens?: unknown;
    prompt_tokens_details?: { cached_tokens?: unknown } | null;
  } | null;
  timings?: {
    prompt_n?: unknown;
    prompt_ms?: unknown;
    predicted_n?: unknown;
    predicted_ms?: unknown;
    predicted_per_second?: unknown;
    draft_n?: unknown;
    draft_n_accepted?: unknown;
  };
  __verbose?: { stop_type?: unknown; tokens_predicted?: unknown; tokens?: unknown };
  error?: unknown;
}

const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);

/** Runs `prepared` on the server, pushing text into `sink`; resolves with the raw stats. */
export async function runCompletion(
  client: ServerClient,
  body: Record<string, unknown>,
  prepared: PreparedRequest,
  sink: GenerationSink,
  signal: AbortSignal,
  stopPieces: ReadonlyMap<number, string>,
): Promise<RawGenerationStats> {
  const t0 = now();
  const url = client.url('/v1/completions');
  // Closes the HTTP request: the caller's abort, the deadline, a line rule.
  const close = new AbortController();
  let clientStop: StopReason | null = null;
  const onAbort = () => close.abort(signal.reason);
  if (signal.aborted) onAbort();
  else signal.addEventListener('abort', onAbort, { once: true });

  const rules = prepared.singleLine || prepared.minIndent !== null ? new WasmLineRules(prepared.singleLine, prepared.minIndent ?? undefined) : null;
  let timer: ReturnType<typeof setTimeout> | null = null;
  let reader: ReadableStreamDefaultReader<Uint8Array> | null = null;
  const stopStream = (reason: StopReason) => {
    if (clientStop !== null) return;
    clientStop = reason;
    close.abort(new AbortError(`the stream was closed by the client (${reason})`));
    void reader?.cancel().catch(() => {});
  };
  let firstTokenAt: number | null = null;
  let deadlinePassed = false;
  if (prepared.maxTimeMs !== null) {
    timer = setTimeout(() => {
      deadlinePassed = true;
      // The first token always comes (as in the local engine), however long the prompt took.
      if (firstTokenAt !== null) stopStream('deadline');
    }, Math.max(0, prepared.maxTimeMs - (now() - t0)));
  }

  let finish: string | null = null;
  let vllmStopReason: unknown = undefined;
  let stopType: string | null = null;
  let usage: Chunk['usage'] = null;
  let timings: Chunk['timings'] | null = null;
  let tokensPredicted: number | null = null;
  let textEvents = 0;
  let done = false;
  const emit = (text: string) => {
    if (text.length > 0) sink.push(text);
  };

  try {
    let res: Response;
    try {
      res = await client.send('/v1/completions', { method: 'POST', body, signal: close.signal });
    } catch (e) {
      if (signal.aborted) throw abortErrorFor(signal);
      throw e;
    }
    if (!res.ok) throw await errorFromResponse(res, url, client.baseUrl, client.hasApiKey);
    if (res.body === null) throw new NetworkError(`POST ${url}: the response has no body`);
    reader = res.body.getReader();
    if (close.signal.aborted) void reader.cancel().catch(() => {});
    try {
      for await (const ev of sseEvents(reader)) {
        if (clientStop !== null) break;
        const data = ev.data.trim();
        if (data === '[DONE]') {
          done = true;
          break;
        }
        if (data === '') continue;
        let chunk: Chunk;
        try {
          chunk = JSON.parse(data) as Chunk;
        } catch {
          throw new NetworkError(`POST ${url}: the server sent an event that is not JSON: ${data.slice(0, 200)}`);
        }
        if (ev.event === 'error' || (chunk.error !== undefined && chunk.error !== null)) {
          const payload = chunk.error !== undefined ? chunk : { error: chunk };
          const code = num((chunk.error as { code?: unknown } | null)?.code ?? null) ?? 500;
          throw errorFromPayload(code, '', payload, url, client.baseUrl, client.hasApiKey);
        }
        if (chunk.usage) usage = chunk.usage;
        if (chunk.timings) timings = chunk.timings;
        if (chunk.__verbose) {
          const v = chunk.__verbose;
          if (typeof v.stop_type === 'string' && v.stop_type !== 'none') stopType = v.stop_type;
          tokensPredicted = num(v.tokens_predicted) ?? tokensPredicted;
        }
        const choice = chunk.choices?.find((c) => c.index === undefined || c.index === 0);
        if (choice === undefined) continue;
        if (typeof choice.finish_reason === 'string') finish = choice.finish_reason;
        if ('stop_reason' in choice) vllmStopReason = choice.stop_reason;
        let text = typeof choice.text === 'string' ? choice.text : '';
        // llama.cpp renders a stop token that is not control-typed in its GGUF (Code Llama's
        // `▁<EOT>`) as text; the local engine never returns a stop token's text, nor does this one.
        const toks = chunk.__verbose?.tokens;
        const last = Array.isArray(toks) && toks.length > 0 ? toks[toks.length - 1] : undefined;
        const piece = typeof last === 'number' ? stopPieces.get(last) : undefined;
        if (piece !== undefined && piece !== '' && text.endsWith(piece)) text = text.slice(0, -piece.length);
        if (text.length === 0) continue;
        textEvents++;
        firstTokenAt ??= now();
        if (rules !== null) {
          const r = JSON.parse(rules.push(text)) as { emit: string; stop: 'line_end' | 'indent' | null };
          emit(r.emit);
          if (r.stop !== null) {
            stopStream(r.stop);
            break;
          }
        } else {
          emit(text);
        }
        if (deadlinePassed) {
          stopStream('deadline');
          break;
        }
      }
    } catch (e) {
      if (signal.aborted) throw abortErrorFor(signal);
      if (clientStop === null) {
        if (e instanceof CodeLlamaError) throw e;
        throw new NetworkError(`POST ${url}: the stream broke during the generation: ${String((e as Error)?.message ?? e)}`, { cause: e });
      }
    }
    if (signal.aborted) throw abortErrorFor(signal);
    const end = now();
    if (clientStop === null && finish === null) {
      throw new NetworkError(
        `POST ${url}: the stream ended before the generation did${done ? ' ([DONE] without a finish_reason)' : ' (the connection closed)'}`,
      );
    }
    // Text the line rules still hold is text like any other, unless a rule ended the generation.
    if (rules !== null && clientStop !== 'line_end' && clientStop !== 'indent') emit(rules.finish());

    const generated = num(usage?.completion_tokens) ?? tokensPredicted ?? num(timings?.predicted_n) ?? textEvents;
    const promptTokens = num(usage?.prompt_tokens) ?? prepared.promptTokens;
    const cached = num(usage?.prompt_tokens_details?.cached_tokens ?? null);
    const promptTokensComputed = num(timings?.prompt_n) ?? (cached !== null ? Math.max(0, promptTokens - cached) : promptTokens);
    const ttft = (firstTokenAt ?? end) - t0;
    const prefillMs = num(timings?.prompt_ms) ?? ttft;
    const decodeMs = num(timings?.predicted_ms) ?? (firstTokenAt === null ? 0 : end - firstTokenAt);
    const tokensPerSecond = num(timings?.predicted_per_second) ?? (decodeMs > 0 ? (Math.max(generated - 1, 0) * 1000) / decodeMs : 0);
    const drafted = num(timings?.draft_n ?? null) ?? 0;
    const accepted = Math.min(num(timings?.draft_n_accepted ?? null) ?? 0, drafted);
    const stopReason: StopReason = clientStop ?? serverStopReason(finish as string, generated, prepared, stopType, vllmStopReason, url);
    const stats: RawGenerationStats = {
      promptTokens,
      promptTokensComputed,
      generatedTokens: generated,
      stopReason,
      timeToFirstTokenMs: ttft,
      prefillMs,
      decodeMs,
      tokensPerSecond,
      // The server's own speculative decoding, where it says (llama.cpp's timings with a draft
      // model or n-gram drafting configured); a pass per token otherwise.
      draftedTokens: drafted,
      acceptedTokens: accepted,
      forwardPasses: Math.max(0, generated - accepted),
    };
    if (prepared.context !== null) stats.context = prepared.context;
    return stats;
  } finally {
    if (timer !== null) clearTimeout(timer);
    signal.removeEventListener('abort', onAbort);
    if (reader !== null && !done) void reader.cancel().catch(() => {});
    rules?.free();
  }
}

/** The stop reason of a stream the server ended (see the module comment). */
function serverStopReason(
  finish: string,
  generated: number,
  prepared: PreparedRequest,
  stopType: string | null,
  vllmStopReason: unknown,
  url: string,
): StopReason {
  if (finish === 'length') return generated >= prepared.maxTokens ? 'max_tokens' : 'context_full';
  if (finish === 'stop') {
    if (stopType === 'word') return 'stop_string';
    if (stopType === 'eos') return 'stop_token';
    if (typeof vllmStopReason === 'string') return 'stop_string';
    return 'stop_token';
  }
  throw new NetworkError(`POST ${url}: the server ended the generation with finish_reason ${JSON.stringify(finish)}`);
}
