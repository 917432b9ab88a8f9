/**
 * OpenAI-shaped adapters over a {@link CodeLlamaEngine}, so code written for an OpenAI-compatible
 * server works unchanged:
 *
 * ```ts
 * const openai = createOpenAI(engine);
 * const r = await openai.completions.create({ prompt: 'def add(a, b):', max_tokens: 32 });
 * r.choices[0].text;
 * const stream = await openai.chat.completions.create({ messages, stream: true });
 * for await (const chunk of stream) out += chunk.choices[0]?.delta?.content ?? '';
 * ```
 *
 * `completions.create` with `suffix` runs fill-in-the-middle (prompt = text before the cursor).
 * A field the engine does not implement (`response_format`, `logit_bias`, `tools`, `n > 1`, …)
 * rejects with `InvalidRequestError` naming it, rather than being ignored.
 *
 * Log-probabilities (computed on the GPU, natural log of the model's softmax at temperature 1):
 * completions take `logprobs: k` (0 to 20 most likely tokens per step) and answer in the legacy
 * shape `{ tokens, token_logprobs, top_logprobs, text_offset }`; chat takes `logprobs: true` and
 * `top_logprobs: k` and answers `{ content: [{ token, logprob, bytes, top_logprobs }] }`. There is
 * one entry per generated token, the stop token (EOS/EOT) included. Streams carry them in the
 * last chunk (the one with `finish_reason`), all at once.
 */

import { InvalidRequestError } from './errors.js';
import type { ChatMessage, CodeLlamaEngine, GenerateOptions, Generation, GenerationStats, TokenLogprob } from './types.js';

/** Sampling parameters shared by both endpoints (OpenAI names, plus llama.cpp-server extras). */
export interface OpenAISamplingParams {
  /** Ignored (the loaded model answers); echoed in responses. */
  model?: string;
  /** Accepted and ignored (it only identifies the caller). */
  user?: string;
  max_tokens?: number | null;
  temperature?: number | null;
  top_p?: number | null;
  stop?: string | string[] | null;
  seed?: number | null;
  /** Only 1 is supported. */
  n?: number | null;
  /** Extras (llama.cpp server names). */
  top_k?: number;
  min_p?: number;
  repeat_penalty?: number;
  repeat_last_n?: number;
  /** `{ include_usage: true }` adds a last chunk with `usage` and no choices. */
  stream_options?: { include_usage?: boolean } | null;
}

export interface CompletionCreateParams extends OpenAISamplingParams {
  /** The text before the cursor (or the whole prompt). A one-element array is accepted. */
  prompt: string | string[];
  /** Report log-probabilities with the `logprobs` (0 to 20) most likely tokens per step. */
  logprobs?: number | null;
  /** Text after the cursor: turns the request into fill-in-the-middle. */
  suffix?: string | null;
  stream?: boolean | null;
}

export interface ChatCompletionMessageParam {
  role: 'system' | 'user' | 'assistant' | 'developer';
  content: string | Array<{ type: 'text'; text: string }> | null;
  name?: string;
}

export interface ChatCompletionCreateParams extends OpenAISamplingParams {
  messages: ChatCompletionMessageParam[];
  /** Report each generated token's log-probability. */
  logprobs?: boolean | null;
  /** With `logprobs`: also the `top_logprobs` (0 to 20) most likely tokens per step. */
  top_logprobs?: number | null;
  max_completion_tokens?: number | null;
  stream?: boolean | null;
}

/** Second argument of `create`, as in the OpenAI SDK. */
export interface RequestOptions {
  signal?: AbortSignal;
}

export type FinishReason = 'stop' | 'length';

export interface CompletionUsage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  /**
   * OpenAI's predicted-output counts, here for prompt-lookup speculative decoding: drafted tokens
   * the model confirmed (`accepted_prediction_tokens`) and rejected.
   */
  completion_tokens_details: { accepted_prediction_tokens: number; rejected_prediction_tokens: number };
}

/** A completion's log-probabilities (OpenAI's legacy shape). */
export interface CompletionLogprobs {
  tokens: string[];
  token_logprobs: number[];
  /** Per step, token text to logprob of the most likely tokens (tokens with the same text collapse). */
  top_logprobs: Array<Record<string, number>>;
  /** Each token's offset in prompt + completion text (UTF-16 code units, from the token texts). */
  text_offset: number[];
}

/** One token of a chat completion's log-probabilities. */
export interface ChatCompletionTokenLogprob {
  token: string;
  logprob: number;
  /** The UTF-8 bytes of `token`. */
  bytes: number[];
  top_logprobs: Array<{ token: string; logprob: number; bytes: number[] }>;
}

export interface ChatCompletionLogprobs {
  content: ChatCompletionTokenLogprob[];
  refusal: null;
}

export interface Completion {
  id: string;
  object: 'text_completion';
  created: number;
  model: string;
  choices: Array<{ index: number; text: string; logprobs: CompletionLogprobs | null; finish_reason: FinishReason | null }>;
  usage?: CompletionUsage;
  /** Non-OpenAI: the engine's figures. */
  stats?: GenerationStats;
}

export interface ChatCompletion {
  id: string;
  object: 'chat.completion';
  created: number;
  model: string;
  choices: Array<{
    index: number;
    message: { role: 'assistant'; content: string; refusal: null };
    logprobs: ChatCompletionLogprobs | null;
    finish_reason: FinishReason;
  }>;
  usage: CompletionUsage;
  stats?: GenerationStats;
}

export interface ChatCompletionChunk {
  id: string;
  object: 'chat.completion.chunk';
  created: number;
  model: string;
  choices: Array<{
    index: number;
    delta: { role?: 'assistant'; content?: string };
    logprobs: ChatCompletionLogprobs | null;
    finish_reason: FinishReason | null;
  }>;
  usage?: CompletionUsage | null;
}

/** A stream of chunks; `controller.abort()` (or leaving the loop) stops the generation. */
export interface ChunkStream<T> extends AsyncIterable<T> {
  controller: AbortController;
}

/** The adapter returned by {@link createOpenAI}. */
export interface OpenAICompat {
  completions: {
    create(params: CompletionCreateParams & { stream: true }, options?: RequestOptions): Promise<ChunkStream<Completion>>;
    create(params: CompletionCreateParams & { stream?: false | null }, options?: RequestOptions): Promise<Completion>;
    create(params: CompletionCreateParams, options?: RequestOptions): Promise<Completion | ChunkStream<Completion>>;
  };
  chat: {
    completions: {
      create(params: ChatCompletionCreateParams & { stream: true }, options?: RequestOptions): Promise<ChunkStream<ChatCompletionChunk>>;
      create(params: ChatCompletionCreateParams & { stream?: false | null }, options?: RequestOptions): Promise<ChatCompletion>;
      create(params: ChatCompletionCreateParams, options?: RequestOptions): Promise<ChatCompletion | ChunkStream<ChatCompletionChunk>>;
    };
  };
}

/**
 * Maps an engine stop reason to OpenAI's `finish_reason`: `'length'` when the output was cut short
 * (the token limit, or the context filling up first, as OpenAI and llama.cpp's server report it;
 * also `maxTimeMs` passing: cut short by a limit, not ended by the model), else `'stop'` (the
 * `singleLine` and `minIndent` stops included, as stop sequences are). `stats.stopReason` tells
 * them apart.
 */
export function finishReason(stats: GenerationStats): FinishReason {
  const r = stats.stopReason;
  return r === 'max_tokens' || r === 'context_full' || r === 'deadline' ? 'length' : 'stop';
}

function usage(stats: GenerationStats): CompletionUsage {
  return {
    prompt_tokens: stats.promptTokens,
    completion_tokens: stats.generatedTokens,
    total_tokens: stats.promptTokens + stats.generatedTokens,
    completion_tokens_details: {
      accepted_prediction_tokens: stats.acceptedTokens,
      rejected_prediction_tokens: stats.draftedTokens - stats.acceptedTokens,
    },
  };
}

function randomId(prefix: string): string {
  const c = (globalThis as { crypto?: Crypto }).crypto;
  const raw = typeof c?.randomUUID === 'function' ? c.randomUUID().replace(/-/g, '') : Math.random().toString(36).slice(2);
  return `${prefix}-${raw.slice(0, 24)}`;
}

/** Request fields both endpoints read. `user` is accepted and ignored (it only identifies the caller). */
const COMMON_FIELDS = [
  'model', 'max_tokens', 'temperature', 'top_p', 'stop', 'seed', 'n', 'stream', 'stream_options',
  'top_k', 'min_p', 'repeat_penalty', 'repeat_last_n', 'user',
];
const COMPLETION_FIELDS = new Set([...COMMON_FIELDS, 'prompt', 'suffix', 'logprobs']);
const CHAT_FIELDS = new Set([...COMMON_FIELDS, 'messages', 'max_completion_tokens', 'logprobs', 'top_logprobs']);

/** OpenAI fields this engine does not implement, accepted only at the value that turns them off. */
const NEUTRAL: Partial<Record<string, (v: unknown) => boolean>> = {
  frequency_penalty: (v) => v === 0,
  presence_penalty: (v) => v === 0,
  top_logprobs: (v) => v === 0,
  logit_bias: (v) => typeof v === 'object' && v !== null && Object.keys(v).length === 0,
  echo: (v) => v === false,
  best_of: (v) => v === 1,
};

/**
 * Rejects a request that sets a field the engine would otherwise ignore (`response_format`,
 * `logit_bias`, `tools`, …): an `InvalidRequestError` naming the field, as a server answers 400.
 * `null` and `undefined` count as unset.
 */
function checkFields(params: object, known: Set<string>): void {
  for (const [key, value] of Object.entries(params)) {
    if (value === undefined || value === null || known.has(key)) continue;
    const neutral = Object.hasOwn(NEUTRAL, key) ? NEUTRAL[key] : undefined;
    if (neutral?.(value)) continue;
    throw new InvalidRequestError(
      neutral
        ? `${key} = ${JSON.stringify(value)} is not supported by codellama-webgpu (leave it unset)`
        : `${key} is not supported by codellama-webgpu`,
    );
  }
}

function samplingOptions(p: OpenAISamplingParams, maxTokens: number | null | undefined, signal?: AbortSignal): GenerateOptions {
  if (p.n !== undefined && p.n !== null && p.n !== 1) throw new InvalidRequestError('n: only n = 1 is supported');
  const o: GenerateOptions = {};
  if (maxTokens !== undefined && maxTokens !== null) o.maxTokens = maxTokens;
  if (p.temperature !== undefined && p.temperature !== null) o.temperature = p.temperature;
  if (p.top_p !== undefined && p.top_p !== null) o.topP = p.top_p;
  if (p.stop !== undefined && p.stop !== null) o.stop = p.stop;
  if (p.seed !== undefined && p.seed !== null) o.seed = p.seed;
  if (p.top_k !== undefined) o.topK = p.top_k;
  if (p.min_p !== undefined) o.minP = p.min_p;
  if (p.repeat_penalty !== undefined) o.repetitionPenalty = p.repeat_penalty;
  if (p.repeat_last_n !== undefined) o.repetitionWindow = p.repeat_last_n;
  if (signal !== undefined) o.signal = signal;
  return o;
}

/** The most likely tokens a request may ask for per step. */
const MAX_TOP_LOGPROBS = 20;

function topCount(name: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > MAX_TOP_LOGPROBS) {
    throw new InvalidRequestError(`${name} must be an integer from 0 to ${MAX_TOP_LOGPROBS}, got ${JSON.stringify(v)}`);
  }
  return v;
}

/** Completions' `logprobs: k` as engine options. */
function completionLogprobOptions(p: CompletionCreateParams, o: GenerateOptions): void {
  if (p.logprobs === undefined || p.logprobs === null) return;
  o.logprobs = true;
  o.topLogprobs = topCount('logprobs', p.logprobs);
}

/** Chat's `logprobs` / `top_logprobs` as engine options. */
function chatLogprobOptions(p: ChatCompletionCreateParams, o: GenerateOptions): void {
  const on = p.logprobs;
  const top = p.top_logprobs;
  if (on !== undefined && on !== null && typeof on !== 'boolean') throw new InvalidRequestError('logprobs must be a boolean');
  if (top !== undefined && top !== null) {
    const k = topCount('top_logprobs', top);
    if (on !== true) throw new InvalidRequestError('top_logprobs needs logprobs: true');
    o.topLogprobs = k;
  }
  if (on === true) o.logprobs = true;
}

/** The legacy completions shape; offsets count from the start of `prompt`. */
export function completionLogprobs(lps: TokenLogprob[], prompt: string): CompletionLogprobs {
  let offset = prompt.length;
  const text_offset: number[] = [];
  for (const t of lps) {
    text_offset.push(offset);
    offset += t.token.length;
  }
  return {
    tokens: lps.map((t) => t.token),
    token_logprobs: lps.map((t) => t.logprob),
    top_logprobs: lps.map((t) => Object.fromEntries(t.top.map((e) => [e.token, e.logprob]))),
    text_offset,
  };
}

/** The chat shape. */
export function chatLogprobs(lps: TokenLogprob[]): ChatCompletionLogprobs {
  const enc = new TextEncoder();
  const bytes = (s: string) => Array.from(enc.encode(s));
  return {
    content: lps.map((t) => ({
      token: t.token,
      logprob: t.logprob,
      bytes: bytes(t.token),
      top_logprobs: t.top.map((e) => ({ token: e.token, logprob: e.logprob, bytes: bytes(e.token) })),
    })),
    refusal: null,
  };
}

function chatMessages(messages: ChatCompletionMessageParam[]): ChatMessage[] {
  if (!Array.isArray(messages)) throw new InvalidRequestError('messages must be an array');
  return messages.map((m, i) => {
    let content: string;
    if (typeof m.content === 'string') content = m.content;
    else if (m.content === null || m.content === undefined) content = '';
    else if (Array.isArray(m.content)) {
      content = m.content
        .map((part) => {
          if (part?.type !== 'text') throw new InvalidRequestError(`messages[${i}]: only text content parts are supported`);
          return part.text;
        })
        .join('');
    } else throw new InvalidRequestError(`messages[${i}].content must be a string`);
    const role = m.role === 'developer' ? 'system' : m.role;
    return { role, content } as ChatMessage;
  });
}

/** Combines a request signal with the stream's own controller. */
function streamSignal(options?: RequestOptions): AbortController {
  const controller = new AbortController();
  const s = options?.signal;
  if (s?.aborted) controller.abort(s.reason);
  else s?.addEventListener('abort', () => controller.abort(s.reason), { once: true });
  return controller;
}

function makeStream<T>(
  controller: AbortController,
  gen: Generation,
  chunks: (gen: Generation) => AsyncGenerator<T>,
): ChunkStream<T> {
  return { controller, [Symbol.asyncIterator]: () => chunks(gen) };
}

/** OpenAI-shaped `completions` and `chat.completions` over `engine`. */
export function createOpenAI(engine: CodeLlamaEngine, defaults: { model?: string } = {}): OpenAICompat {
  const modelName = async (requested?: string): Promise<string> => {
    if (requested) return requested;
    if (defaults.model) return defaults.model;
    const info = await engine.info().catch(() => null);
    return info?.name || 'codellama';
  };

  async function createCompletion(params: CompletionCreateParams, options?: RequestOptions): Promise<Completion | ChunkStream<Completion>> {
    if (params === null || typeof params !== 'object') throw new InvalidRequestError('params must be an object');
    checkFields(params, COMPLETION_FIELDS);
    let prompt = params.prompt;
    if (Array.isArray(prompt)) {
      if (prompt.length !== 1) throw new InvalidRequestError('only a single prompt is supported');
      prompt = prompt[0] as string;
    }
    if (typeof prompt !== 'string') throw new InvalidRequestError('prompt must be a string');
    const model = await modelName(params.model);
    const id = randomId('cmpl');
    const created = Math.floor(Date.now() / 1000);
    const controller = params.stream ? streamSignal(options) : null;
    const opts = samplingOptions(params, params.max_tokens, controller?.signal ?? options?.signal);
    completionLogprobOptions(params, opts);
    const lpShape = (lps: TokenLogprob[] | undefined) => (lps === undefined ? null : completionLogprobs(lps, prompt as string));
    const suffix = params.suffix;
    const gen =
      suffix !== undefined && suffix !== null
        ? engine.infill({ prefix: prompt, suffix }, opts)
        : engine.complete(prompt, opts);
    const base = { id, object: 'text_completion' as const, created, model };

    if (controller === null) {
      const { text, stats, logprobs } = await gen.result();
      return { ...base, choices: [{ index: 0, text, logprobs: lpShape(logprobs), finish_reason: finishReason(stats) }], usage: usage(stats), stats };
    }
    const includeUsage = params.stream_options?.include_usage === true;
    return makeStream(controller, gen, async function* (g) {
      const it = g[Symbol.asyncIterator]();
      try {
        for (;;) {
          const r = await it.next();
          if (r.done) {
            const stats = r.value;
            const lps = lpShape((await g.result()).logprobs);
            yield { ...base, choices: [{ index: 0, text: '', logprobs: lps, finish_reason: finishReason(stats) }] };
            if (includeUsage) yield { ...base, choices: [], usage: usage(stats) };
            return;
          }
          yield { ...base, choices: [{ index: 0, text: r.value, logprobs: null, finish_reason: null }] };
        }
      } finally {
        await it.return?.();
      }
    });
  }

  async function createChat(
    params: ChatCompletionCreateParams,
    options?: RequestOptions,
  ): Promise<ChatCompletion | ChunkStream<ChatCompletionChunk>> {
    if (params === null || typeof params !== 'object') throw new InvalidRequestError('params must be an object');
    checkFields(params, CHAT_FIELDS);
    const messages = chatMessages(params.messages);
    const model = await modelName(params.model);
    const id = randomId('chatcmpl');
    const created = Math.floor(Date.now() / 1000);
    const controller = params.stream ? streamSignal(options) : null;
    const opts = samplingOptions(params, params.max_completion_tokens ?? params.max_tokens, controller?.signal ?? options?.signal);
    chatLogprobOptions(params, opts);
    const lpShape = (lps: TokenLogprob[] | undefined) => (lps === undefined ? null : chatLogprobs(lps));
    const gen = engine.chat(messages, opts);

    if (controller === null) {
      const { text, stats, logprobs } = await gen.result();
      return {
        id,
        object: 'chat.completion',
        created,
        model,
        choices: [{ index: 0, message: { role: 'assistant', content: text, refusal: null }, logprobs: lpShape(logprobs), finish_reason: finishReason(stats) }],
        usage: usage(stats),
        stats,
      };
    }
    const base = { id, object: 'chat.completion.chunk' as const, created, model };
    const includeUsage = params.stream_options?.include_usage === true;
    return makeStream(controller, gen, async function* (g) {
      const it = g[Symbol.asyncIterator]();
      try {
        yield { ...base, choices: [{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }] };
        for (;;) {
          const r = await it.next();
          if (r.done) {
            const stats = r.value;
            const lps = lpShape((await g.result()).logprobs);
            yield { ...base, choices: [{ index: 0, delta: {}, logprobs: lps, finish_reason: finishReason(stats) }] };
            if (includeUsage) yield { ...base, choices: [], usage: usage(stats) };
            return;
          }
          yield { ...base, choices: [{ index: 0, delta: { content: r.value }, logprobs: null, finish_reason: null }] };
        }
      } finally {
        await it.return?.();
      }
    });
  }

  return {
    completions: { create: createCompletion as OpenAICompat['completions']['create'] },
    chat: { completions: { create: createChat as OpenAICompat['chat']['completions']['create'] } },
  };
}
