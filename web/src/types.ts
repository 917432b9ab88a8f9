/**
 * Public types of `codellama-webgpu`.
 *
 * One interface, {@link CodeLlamaEngine}, is implemented twice: in the page by `createEngine()`
 * and hosted in a Web Worker by `createWorkerEngine()`. Everything is async so the two are
 * interchangeable.
 *
 * @packageDocumentation
 */

// ---------------------------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------------------------

/**
 * Where the GGUF weights come from.
 *
 * - `string` / `URL`: fetched with a streaming `fetch` (relative strings resolve against the
 *   page or worker location). A dropped connection is resumed with an HTTP `Range` request.
 *   With `cache: true` (the default) the file is also kept in the Origin Private File System
 *   and the next `load` of the same URL reads it from there without any network request.
 * - `Blob` / `File`: read in slices (≤ 8 MiB), never whole.
 * - `ReadableStream<Uint8Array>`: consumed as it arrives (re-chunked to ≤ 8 MiB).
 * - `ArrayBuffer` / typed array / `DataView`: fed in ≤ 8 MiB slices. In a Worker engine an
 *   `ArrayBuffer` is *transferred* (it is detached in the caller afterwards).
 */
export type ModelSource =
  | string
  | URL
  | Blob
  | ReadableStream<Uint8Array>
  | ArrayBuffer
  | ArrayBufferView;

/**
 * KV cache element type: `'f16'` (2 bytes per value) or `'q8'` (8-bit blocks, ~half the memory).
 * The JSON spelling of the engine's one KV format type (Rust `model::KvFormat`, the CLI's `--kv-cache`).
 */
export type KvCacheType = 'f16' | 'q8';

/** Options of {@link CodeLlamaEngine.load}. */
export interface LoadOptions {
  /** Called after every chunk is consumed (and once at the end). Never called after `load` settles. */
  onProgress?: (progress: LoadProgress) => void;
  /**
   * Aborting rejects `load` with the signal's `reason` when it has one (`AbortSignal.timeout()`:
   * `TimeoutError`), else `AbortError`; the partial model's GPU memory is freed.
   */
  signal?: AbortSignal;
  /** KV cache capacity in tokens. Default: the model's trained context, capped by the engine. */
  contextLength?: number;
  /** KV cache type. Default `'f16'`. */
  kvCache?: KvCacheType;
  /**
   * Persist URL sources in the Origin Private File System and reuse them on later loads
   * (even offline). Only applies to `string` / `URL` sources. Default `true`: the cache is
   * skipped (and `ModelInfo.cache` says why) where OPFS is unavailable, where
   * `navigator.storage.estimate()` leaves too little room, or when writing fails (quota).
   * `'required'`: those storage failures reject with `StorageQuotaError` (OPFS missing:
   * `InvalidRequestError`) instead. `navigator.storage.persist()` is requested once a model is
   * stored.
   */
  cache?: boolean | 'required';
}

/**
 * Phase of a running load: `'open'` (the source is open, nothing read yet), `'stream'` (reading
 * the GGUF file and uploading its tensors to the GPU as they arrive), `'finish'` (the file is
 * read; the decoder, its KV cache and pipelines are being made), `'ready'` (the model is loaded:
 * the last event).
 */
export type LoadPhase = 'open' | 'stream' | 'finish' | 'ready';

/** Progress of a running {@link CodeLlamaEngine.load}. */
export interface LoadProgress {
  phase: LoadPhase;
  /**
   * Share of the load done, 0 to 1, never decreasing: bytes read / file size when the size is
   * known, else tensors uploaded / tensor count once the header is read; below 1 until `'ready'`.
   */
  fraction: number;
  /** Bytes of the GGUF file consumed so far. */
  bytesDone: number;
  /** File size, when known (Content-Length, Blob size, buffer length, or OPFS entry). */
  bytesTotal: number | null;
  /** Name of the tensor uploaded last (e.g. `"blk.3.ffn_up.weight"`), `null` before the first. */
  tensor: string | null;
  /** Tensors fully uploaded to the GPU. */
  tensorsDone: number;
  /** Tensor count, once the GGUF header has been read. */
  tensorsTotal: number | null;
  /** `true` when the bytes come from the OPFS cache rather than the network. */
  fromCache: boolean;
  /** Average throughput since the load began, in bytes per second. */
  bytesPerSecond: number;
}

/** The WebGPU adapter the engine runs on. */
export interface AdapterInfo {
  name: string;
  backend: string;
  deviceType: string;
  /** `shader-f16` available. */
  f16: boolean;
  /** Subgroup operations available. */
  subgroups: boolean;
  maxBufferSize: number;
  maxStorageBindingSize: number;
}

/** What is loaded: hyperparameters, quantization and memory. */
export interface ModelInfo {
  /** GGUF `general.architecture` (`"llama"`). */
  architecture: string;
  /** GGUF `general.name` (may be empty). */
  name: string;
  vocabSize: number;
  dim: number;
  nLayers: number;
  nHeads: number;
  nKvHeads: number;
  ffnDim: number;
  headDim: number;
  ropeTheta: number;
  /** Context the model was trained with (GGUF `llama.context_length`). */
  trainedContext: number;
  /** KV cache capacity in tokens of this load. */
  contextLength: number;
  kvCache: KvCacheType;
  /** Tensor count per GGUF type name, e.g. `{ "Q4_K": 193, "Q6_K": 33, "F32": 65 }`. */
  tensorTypes: Record<string, number>;
  /** Size of the GGUF file in bytes. */
  fileBytes: number;
  /** GPU memory held by the weights, in bytes. */
  gpuBytes: number;
  /** KV cache bytes per token of context (all layers). */
  kvBytesPerToken: number;
  /** KV cache bytes allocated now (grows with the context in use). */
  kvBytes: number;
  /** Load-time remarks (e.g. tensors widened to F16). */
  notes: string[];
  adapter: AdapterInfo;
  /** Added by the JS layer: whether the bytes came from the OPFS cache. */
  fromCache: boolean;
  /** Added by the JS layer: wall time of the load in milliseconds. */
  loadMs: number;
  /** Added by the JS layer: what the OPFS cache did for this load. */
  cache: CacheReport;
}

/** What the OPFS model cache did for one load ({@link ModelInfo.cache}). */
export interface CacheReport {
  /**
   * `'hit'`: read from the cache; `'stored'`: downloaded and written to it; `'skipped'`: caching
   * was asked for but did not happen (`note` says why); `'off'`: `cache: false`, or not a URL.
   */
  status: 'hit' | 'stored' | 'skipped' | 'off';
  /** Why the cache was skipped (OPFS unavailable, quota estimate, a failed write), else `null`. */
  note: string | null;
  /**
   * The answer of `navigator.storage.persist()`, requested when a model was stored (`true`: the
   * browser will not evict the cache under storage pressure); `null` when not asked or unavailable.
   */
  persisted: boolean | null;
}

// ---------------------------------------------------------------------------------------------
// Generation
// ---------------------------------------------------------------------------------------------

/** Sampler settings and limits shared by `complete`, `infill` and `chat`. */
export interface GenerateOptions {
  /** Maximum new tokens. Default 256. */
  maxTokens?: number;
  /** Stop strings; generation ends before the first occurrence, which is not returned. */
  stop?: string | string[];
  /** RNG seed: same seed, same prompt, same settings → same tokens. */
  seed?: number;
  /** 0 = greedy. Default: 0.2 complete, 0 infill, 0.6 chat (Meta's, see {@link RequestDefaults}). */
  temperature?: number;
  /** Keep the k most likely tokens (0 = off). */
  topK?: number;
  /** Nucleus sampling mass (1 = off). Default 0.9. */
  topP?: number;
  /** Drop tokens below `minP` × the top probability (0 = off). */
  minP?: number;
  /** Penalty for recently seen tokens (1 = off). */
  repetitionPenalty?: number;
  /** How many recent tokens the penalty looks at. */
  repetitionWindow?: number;
  /**
   * Aborting ends the generation: the iterator throws / the promises reject with the signal's
   * `reason` when it has one (`AbortSignal.timeout()` keeps its `TimeoutError`), else `AbortError`.
   */
  signal?: AbortSignal;
  /**
   * Deadline in milliseconds from the moment the request starts running (after queueing): when it
   * passes, generation stops before the next token and resolves with what it has
   * (`stopReason: 'deadline'`). Unlike `signal`, it never rejects.
   */
  maxTimeMs?: number;
  /**
   * Ghost-text stop: end at the first line break that follows generated non-whitespace text (the
   * break is not returned; `stopReason: 'line_end'`). Default `false`.
   */
  singleLine?: boolean;
  /**
   * Indentation stop (llama.vim's `n_indent`): end when a generated line after the first one
   * starts with fewer than `minIndent` columns of indentation (a tab counts as one column); that
   * line and the line break before it are not returned (`stopReason: 'indent'`). Lines holding
   * only whitespace do not count. Editors pass the cursor line's indentation. Default: off.
   */
  minIndent?: number;
  /** Report each generated token's log-probability (computed on the GPU). Default `false`. */
  logprobs?: boolean;
  /** With `logprobs`: also the `k` most likely tokens at each step (0 to 20). Default 0. */
  topLogprobs?: number;
  /**
   * Prompt-lookup speculative decoding: after each token the engine looks up the longest recent
   * n-gram (up to `ngram` tokens, default 4) earlier in the prompt and the text so far, drafts up
   * to `maxDraft` (default 8) of the tokens that followed it, and checks them all in one forward
   * pass; the tokens are the ones decoding without it gives (greedy: the same argmax; sampling:
   * the same draw per position, so the same seed gives the same text). `true` uses the defaults;
   * `maxDraft` is 0 to 15 (0: off), `ngram` 1 to 16. `costAware: true` sizes each draft (0 to
   * `maxDraft`) from the engine's measured time of a pass per positions fed and the acceptance
   * rate of drafts found by matches of the same length, drafting only where a pass is expected to
   * pay for itself (the costs are learned across requests of one engine). Default: off in every
   * mode (`requestDefaults()`): it pays where a pass over K+1 positions costs little more than
   * one (a memory-bound model, a 7B on a GPU); on a CPU-emulated GPU only cost-aware drafting
   * does. Off whenever `logprobs` is asked. The remote engine ignores it (the server decides).
   */
  speculative?: boolean | SpeculativeOptions;
}

/** `GenerateOptions.speculative`'s settings. */
export interface SpeculativeOptions {
  /** Most tokens drafted per pass, 0 to 15 (0: off). Default 8. */
  maxDraft?: number;
  /** Longest n-gram looked up, 1 to 16. Default 4. */
  ngram?: number;
  /** Each draft's length from measured pass costs and acceptance rates. Default false. */
  costAware?: boolean;
}

/**
 * Meta's per-mode defaults, applied by the engine when a request leaves them out: temperature 0.2
 * for completion, 0 (greedy) for infill, 0.6 for chat; top-p 0.9 for all three.
 */
export interface RequestDefaults {
  temperature: number;
  topP: number;
  maxTokens: number;
  /** Most tokens drafted per step by speculative decoding (0: off, the default in every mode). */
  maxDraft: number;
}

/** The three kinds of prompt. */
export type PromptKind = 'complete' | 'infill' | 'chat';

/** A prompt as {@link CodeLlamaEngine.countTokens} takes it. */
export type PromptRequest =
  | { kind: 'complete'; prompt: string }
  | ({ kind: 'infill' } & InfillInput)
  | { kind: 'chat'; messages: ChatMessage[] };

/**
 * Why a generation ended: a stop token of the mode, a stop string, `maxTokens` generated, or the
 * context filled up first (`'context_full'`). OpenAI's `finish_reason` is `'length'` for the last two.
 */
export type StopReason =
  | 'stop_token'
  | 'stop_string'
  | 'max_tokens'
  | 'context_full'
  /** `maxTimeMs` passed. */
  | 'deadline'
  /** `singleLine`: the line ended. */
  | 'line_end'
  /** `minIndent`: a line was indented less. */
  | 'indent';

/**
 * What an infill prompt kept of its inputs under the token budget (trimmed at line boundaries:
 * the prefix from its start, the suffix from its end, extra files first and from the last one).
 */
export interface InfillContext {
  /** The prompt's token budget (`maxPromptTokens`, default: context length − `maxTokens`). */
  budget: number;
  /** Whether anything was dropped. */
  trimmed: boolean;
  /** Characters dropped from the start of the prefix. */
  prefixDroppedChars: number;
  /** Characters dropped from the end of the suffix. */
  suffixDroppedChars: number;
  /** Extra files kept (whole or in part) / given. */
  extraFilesKept: number;
  /** Characters of the extra files dropped. */
  extraDroppedChars: number;
}

/** One generated token's log-probability (natural log of the model's softmax, temperature 1). */
export interface TokenLogprob {
  id: number;
  /** The token's text (a partial UTF-8 character shows as U+FFFD). */
  token: string;
  logprob: number;
  /** The `topLogprobs` most likely tokens at this step, most likely first. */
  top: { id: number; token: string; logprob: number }[];
}

/** Figures of one finished generation. */
export interface GenerationStats {
  /** Tokens in the prompt (after templating). */
  promptTokens: number;
  /** Prompt tokens actually computed; the rest were reused from the KV cache (shared prefix). */
  promptTokensComputed: number;
  generatedTokens: number;
  stopReason: StopReason;
  /** From the start of the request (after queueing) to the first generated token. */
  timeToFirstTokenMs: number;
  prefillMs: number;
  decodeMs: number;
  /** Decode speed: generated tokens per second. */
  tokensPerSecond: number;
  /** Infill only: what fit the prompt budget. */
  context?: InfillContext;
  /** Speculative decoding: tokens drafted from the context (0 when off or nothing was found). */
  draftedTokens: number;
  /** Of those, how many the model confirmed (they cost no forward pass of their own). */
  acceptedTokens: number;
  /**
   * Forward passes over the generated tokens (one per token without speculation; a pass that
   * verifies a draft yields the accepted tokens plus one). `generatedTokens / forwardPasses` is
   * the tokens per pass.
   */
  forwardPasses: number;
}

/** Text and figures of a finished generation. */
export interface GenerationResult {
  text: string;
  stats: GenerationStats;
  /** Per generated token, when the request asked for `logprobs`. */
  logprobs?: TokenLogprob[];
}

/**
 * A running generation. It starts at once (queued behind earlier requests) whether or not it
 * is iterated; text that arrives before iteration is buffered.
 *
 * ```ts
 * const gen = engine.complete('def fib(n):', { maxTokens: 64 });
 * for await (const piece of gen) out.textContent += piece;
 * console.log(await gen.stats);
 * ```
 *
 * - Iterate it (once) for text chunks; the iterator's return value is the {@link GenerationStats}.
 * - Leaving a `for await` early (break/throw) cancels the generation.
 * - On abort (signal or {@link Generation.cancel}) the iterator yields what was produced, then
 *   throws `AbortError` (or the signal's own `reason`); `stats` and `result()` reject with it.
 * - A Generation dropped before anyone iterated it, read `stats`, called `result()` or `cancel()`
 *   is cancelled when it is garbage-collected (it does not keep the GPU busy to `maxTokens`);
 *   until the collector runs it goes on. Keep a reference, or cancel it, to be in control.
 */
export interface Generation extends AsyncIterable<string> {
  [Symbol.asyncIterator](): AsyncIterator<string, GenerationStats, undefined>;
  /** Resolves when the generation ends. */
  readonly stats: Promise<GenerationStats>;
  /** The whole text and the stats (works whether or not the generation is iterated). */
  result(): Promise<GenerationResult>;
  /** Stops the generation (same effect as aborting its signal). */
  cancel(): void;
}

/** Fill-in-the-middle input: the text before and after the cursor. */
export interface InfillInput {
  prefix: string;
  suffix: string;
  /**
   * Suffix-prefix-middle order (`<PRE><SUF>suffix<MID>prefix`): the text before the cursor comes
   * last, so typing at the cursor keeps the KV cache prefix and recomputes only a few tokens.
   * Default `false` (prefix-suffix-middle, Code Llama's trained default).
   */
  suffixFirst?: boolean;
  /**
   * Other open files (llama.cpp's `input_extra`): each is placed before the prefix as a comment
   * line naming the file, then its text. Inside the same budget; trimmed first.
   */
  extra?: ExtraFile[];
  /**
   * Token budget of the whole prompt. Default: the context length minus `maxTokens`. A prompt
   * over it is trimmed at line boundaries (see {@link InfillContext}), never rejected.
   */
  maxPromptTokens?: number;
}

/** Another file given to infill as context. */
export interface ExtraFile {
  filename: string;
  text: string;
}

export type ChatRole = 'system' | 'user' | 'assistant';

/** One chat turn (Code Llama Instruct `[INST]` template, applied by the engine). */
export interface ChatMessage {
  role: ChatRole;
  content: string;
}

/** Options of {@link CodeLlamaEngine.tokenize}. */
export interface TokenizeOptions {
  /** Prepend BOS (id 1). Default `true`. */
  addBos?: boolean;
}

/** Memory figures for diagnostics. */
export interface MemoryUsage {
  /**
   * Current size of the wasm linear memory, in bytes: a high-water mark (linear memory grows,
   * it never shrinks).
   */
  wasmBytes: number;
  /** Heap bytes the wasm module has allocated now (live allocations): what a leak would grow. */
  wasmHeapBytes: number;
  /** How many times this engine re-created its GPU device after a device loss. */
  deviceRecoveries: number;
  /** GPU bytes held by the weights (0 when nothing is loaded). */
  gpuBytes: number;
  /** GPU bytes held by the KV cache now. */
  kvBytes: number;
}

// ---------------------------------------------------------------------------------------------
// Benchmark
// ---------------------------------------------------------------------------------------------

/** Options of {@link CodeLlamaEngine.bench}: `codellama bench`'s flags, with the same defaults. */
export interface BenchOptions {
  /**
   * The synthetic model's shape: `'7b'` (Code Llama 7B's: dim 4096, 32 heads, FFN 11008, vocab
   * 32016) or `'small'` (dim 512, 4 heads, FFN 1536, vocab 32016: quick runs on software
   * adapters). Default `'7b'`.
   */
  shape?: '7b' | 'small';
  /** Transformer blocks of the synthetic model (32: the real 7B). Default 32. */
  layers?: number;
  /** Quantization mix. Default `'q4_0'`. */
  quant?: 'q4_0' | 'q4_k_m';
  /** Prompt tokens of the prefill measurement. Default 512. */
  promptTokens?: number;
  /** Tokens of the decode measurement. Default 128. */
  decodeTokens?: number;
  /** Tokens per prefill batch. Default 128. */
  prefillChunk?: number;
  /** Called with a line of text after each phase (what `codellama bench` prints). */
  onLog?: (line: string) => void;
}

/** One kernel class's share of a decode step (from timestamps; empty where the adapter has none). */
export interface BenchKernelTime {
  class: string;
  ms: number;
  bytes: number;
  gbps: number;
  efficiency: number;
}

/**
 * What {@link CodeLlamaEngine.bench} resolves to: the object `codellama bench --json` prints,
 * with the same (snake_case) field names, so browser and native figures compare field by field.
 */
export interface BenchReport {
  adapter: string;
  /** `'7b'` or `'small'`. */
  shape: string;
  layers: number;
  quant: string;
  /** Copy kernel: bytes read + written per second, GB/s (1e9). */
  copy_gbps: number;
  /** Read kernel: bytes read per second, GB/s. */
  read_gbps: number;
  /** f32 multiply-add peak (2 flops per FMA), GFLOP/s. */
  fma_gflops: number;
  /** The device has subgroup operations (as wgpu reports them). */
  subgroups: boolean;
  /** The device has `shader-f16`. */
  shader_f16: boolean;
  /** Decode matvec shape and lane reduction, e.g. `"8x16 subgroup"`, `"32x4 workgroup"`. */
  matvec_kernel: string;
  /** Prefill product: `"tiled f32"`, `"tiled f16"` or `"lanes 8x16x4 workgroup"`. */
  prefill_kernel: string;
  load_seconds: number;
  /** The untimed warm-up (one prefill batch, one sample, one decode step): every first-use cost. */
  warmup_seconds: number;
  weights_bytes: number;
  kv_bytes_per_token: number;
  prompt_tokens: number;
  prefill_chunk: number;
  prefill_tok_s: number;
  /** FLOPs of the measured prefill (projections, output projection per batch, attention). */
  prefill_flops: number;
  prefill_gflops: number;
  /** prefill_gflops / fma_gflops. */
  prefill_flops_efficiency: number;
  decode_tokens: number;
  decode_tok_s: number;
  /** Weight bytes one decode step reads. */
  decode_bytes_per_token: number;
  decode_gbps: number;
  /** decode_gbps / copy_gbps. */
  decode_efficiency: number;
  /** decode_gbps / read_gbps. */
  decode_read_efficiency: number;
  dispatches_per_step: number;
  compute_passes_per_step: number;
  encode_ms_per_step: number;
  kernels: BenchKernelTime[];
  /** GPU time of a decode step by timestamps (`null` where the adapter has none inside passes). */
  gpu_ms_per_step: number | null;
}

// ---------------------------------------------------------------------------------------------
// The engine
// ---------------------------------------------------------------------------------------------

/**
 * A Code Llama engine on WebGPU. Requests run one at a time in call order (FIFO); a `load`
 * while another `load` is running replaces it: the first one's promise rejects with `AbortError`.
 *
 * All methods reject with subclasses of `CodeLlamaError` (see `errors.ts`) whose `name` is stable.
 */
export interface CodeLlamaEngine {
  /**
   * Streams a GGUF model to the GPU, replacing any loaded model. The loaded model stays until the
   * new one is ready (a failed or aborted load leaves it loaded) when both fit 4 GiB of GPU memory
   * together; otherwise it is unloaded first and the new model's `notes` say so.
   */
  load(source: ModelSource, opts?: LoadOptions): Promise<ModelInfo>;

  /** Plain completion of `prompt` (BOS is added). */
  complete(prompt: string, opts?: GenerateOptions): Generation;
  /** Fill-in-the-middle between `prefix` and `suffix`. */
  infill(input: InfillInput, opts?: GenerateOptions): Generation;
  /** Instruct chat; the reply to the last user message. */
  chat(messages: ChatMessage[], opts?: GenerateOptions): Generation;

  /** Non-streaming `complete`. */
  completeText(prompt: string, opts?: GenerateOptions): Promise<GenerationResult>;
  /** Non-streaming `infill`. */
  infillText(input: InfillInput, opts?: GenerateOptions): Promise<GenerationResult>;
  /** Non-streaming `chat`. */
  chatText(messages: ChatMessage[], opts?: GenerateOptions): Promise<GenerationResult>;

  /**
   * The exact number of prompt tokens the request would have (after templating and, for infill,
   * trimming to the budget), without running it. `opts.maxTokens` counts for the infill budget.
   */
  countTokens(request: PromptRequest, opts?: GenerateOptions): Promise<number>;
  /** Meta's per-mode defaults the engine applies (see {@link RequestDefaults}). */
  requestDefaults(): Promise<Record<PromptKind, RequestDefaults>>;

  /** Token ids of `text` with the loaded model's tokenizer. */
  tokenize(text: string, opts?: TokenizeOptions): Promise<Uint32Array>;
  /** Text of token ids. */
  detokenize(ids: Uint32Array | readonly number[]): Promise<string>;

  /** The loaded model, or `null`. */
  info(): Promise<ModelInfo | null>;
  /** The WebGPU adapter in use. */
  adapterInfo(): Promise<AdapterInfo>;
  /** wasm / GPU memory in use. */
  memoryUsage(): Promise<MemoryUsage>;
  /** Forgets the KV cache (the next prompt is computed from scratch). */
  resetCache(): Promise<void>;
  /** Frees the model and KV cache GPU memory. The engine stays usable for another `load`. */
  unload(): Promise<void>;
  /**
   * Runs the `codellama bench` benchmark (bandwidth, FMA peak, prefill and decode of a synthetic
   * 7B-shaped model) on a WebGPU device of its own, destroyed before the promise settles: a
   * loaded model stays loaded and no GPU memory is left behind. Queued like a generation.
   */
  bench(opts?: BenchOptions): Promise<BenchReport>;
  /** Frees everything (and terminates the Worker of a Worker engine). The engine is unusable afterwards. */
  dispose(): Promise<void>;
}

/** Options of `createEngine()`. */
export interface EngineOptions {
  /**
   * Where the `.wasm` file is. Default: `new URL('./wasm/codellama_webgpu_bg.wasm', import.meta.url)`,
   * which bundlers (Vite, webpack, …) resolve with no configuration.
   */
  wasmUrl?: string | URL;
}

/** Options of `createWorkerEngine()`. */
export interface WorkerEngineOptions extends EngineOptions {
  /**
   * A Worker running `codellama-webgpu/worker`. Default:
   * `new Worker(new URL('./worker.js', import.meta.url), { type: 'module' })`.
   */
  worker?: Worker;
}

// ---------------------------------------------------------------------------------------------
// Remote engine (an OpenAI-compatible server)
// ---------------------------------------------------------------------------------------------

/**
 * The serving engine behind `baseUrl`: `'llama.cpp'` (its `llama-server`), `'vllm'`, or
 * `'openai'` (any other server of OpenAI's completions API: only OpenAI's documented fields are sent).
 */
export type ServerFlavor = 'llama.cpp' | 'vllm' | 'openai';

/**
 * Where the remote engine's tokenizer comes from (the server's model's own, so prompts are token-exact):
 *
 * - `{ gguf: url }`: the model's GGUF file; only its header (metadata and tensor infos) is read,
 *   with HTTP `Range` requests of 1 MiB; the tensor data is never downloaded.
 * - `{ tokenizerJson: url }`: a Hugging Face `tokenizer.json`.
 * - a `string` / `URL`: a path ending in `.json` is a `tokenizer.json`, anything else a GGUF.
 */
export type RemoteTokenizerSource = string | URL | { gguf: string | URL } | { tokenizerJson: string | URL };

/** Options of `createRemoteEngine()`. */
export interface RemoteEngineOptions {
  /**
   * The server's base URL, e.g. `http://127.0.0.1:8080` (a trailing `/v1` is accepted and
   * dropped: requests go to `${baseUrl}/v1/completions`, `${baseUrl}/v1/models`).
   */
  baseUrl: string | URL;
  /** Sent as `Authorization: Bearer <apiKey>` to `baseUrl` (never to the tokenizer URL). */
  apiKey?: string;
  /** The server's model id. Default: the first one `GET /v1/models` lists. */
  model?: string;
  /** The model's tokenizer (see {@link RemoteTokenizerSource}). */
  tokenizer: RemoteTokenizerSource;
  /** The server kind. Default: detected from `GET /v1/models` (`owned_by`). */
  flavor?: ServerFlavor;
  /**
   * The context (tokens) prompts are built for (the infill budget, the overflow check). Default:
   * what the server says (llama.cpp: its slot's `n_ctx`; vLLM: `max_model_len`), else the GGUF's
   * trained context. Given, it is the fallback when neither says, and a cap when one does.
   */
  contextLength?: number;
  /**
   * Fields merged into every `/v1/completions` body (after the engine's own, so they override
   * them; `prompt` and `stream` cannot be set). A field the server rejects makes the request
   * fail with `InvalidRequestError` carrying the server's message.
   */
  extraBody?: Record<string, unknown>;
  /** Where the `.wasm` file is (see {@link EngineOptions.wasmUrl}). */
  wasmUrl?: string | URL;
  /** The `fetch` used for every request (a custom transport, a proxy, added headers). Default: the global one. */
  fetch?: typeof fetch;
  /** Aborts `createRemoteEngine()` (the server checks and the tokenizer download). */
  signal?: AbortSignal;
}

/** What the remote engine knows of its server (`RemoteEngine.server()`). */
export interface RemoteServerInfo {
  /** The base URL requests go to (normalized: no trailing `/` or `/v1`). */
  baseUrl: string;
  flavor: ServerFlavor;
  /** The model id sent with every request. */
  model: string;
  /** The ids `GET /v1/models` listed. */
  models: string[];
  /** The context prompts are built for (see {@link RemoteEngineOptions.contextLength}). */
  contextLength: number;
  /** Where that context length came from. */
  contextSource: 'server' | 'gguf' | 'option';
}

// ---------------------------------------------------------------------------------------------
// Worker protocol (page ⇄ worker). Internal but typed and exported for custom hosts.
// ---------------------------------------------------------------------------------------------

/** The raw request the wasm `generate` takes (camelCase JSON). */
export type WasmGenerateRequest = (
  | { kind: 'complete'; prompt: string }
  | { kind: 'infill'; prefix: string; suffix: string; suffixFirst?: boolean; extra?: ExtraFile[]; maxPromptTokens?: number }
  | { kind: 'chat'; messages: ChatMessage[] }
) & {
  maxTokens?: number;
  maxTimeMs?: number;
  singleLine?: boolean;
  minIndent?: number;
  logprobs?: boolean;
  topLogprobs?: number;
  speculative?: boolean | SpeculativeOptions;
  stop?: string[];
  seed?: number;
  temperature?: number;
  topK?: number;
  topP?: number;
  minP?: number;
  repetitionPenalty?: number;
  repetitionWindow?: number;
};

/** A source as it crosses `postMessage`. */
export type WorkerSource =
  | { kind: 'url'; url: string }
  | { kind: 'blob'; blob: Blob }
  | { kind: 'stream'; stream: ReadableStream<Uint8Array> }
  | { kind: 'buffer'; buffer: ArrayBuffer; byteOffset: number; byteLength: number };

/** An error as it crosses `postMessage`. */
export interface SerializedError {
  name: string;
  message: string;
  stack?: string;
}

/** Page → worker. Every request carries an `id`; `abort` names the request to abort. */
export type WorkerRequest =
  | { type: 'init'; id: number; wasmUrl?: string }
  | {
      type: 'load';
      id: number;
      source: WorkerSource;
      opts: { contextLength?: number; kvCache?: KvCacheType; cache?: boolean | 'required' };
    }
  | { type: 'generate'; id: number; request: WasmGenerateRequest }
  | { type: 'abort'; id: number; target: number }
  | { type: 'countTokens'; id: number; request: WasmGenerateRequest }
  | { type: 'requestDefaults'; id: number }
  | { type: 'tokenize'; id: number; text: string; addBos: boolean }
  | { type: 'detokenize'; id: number; ids: Uint32Array }
  | { type: 'info'; id: number }
  | { type: 'adapterInfo'; id: number }
  | { type: 'memoryUsage'; id: number }
  | { type: 'resetCache'; id: number }
  | { type: 'unload'; id: number }
  | { type: 'bench'; id: number; opts: Omit<BenchOptions, 'onLog'> }
  | { type: 'dispose'; id: number };

/** What each request type resolves to. */
export interface WorkerResultMap {
  init: AdapterInfo;
  load: ModelInfo;
  generate: GenerationStats;
  abort: void;
  countTokens: number;
  requestDefaults: Record<PromptKind, RequestDefaults>;
  tokenize: Uint32Array;
  detokenize: string;
  info: ModelInfo | null;
  adapterInfo: AdapterInfo;
  memoryUsage: MemoryUsage;
  resetCache: void;
  unload: void;
  bench: BenchReport;
  dispose: void;
}

/** Worker → page. */
export type WorkerResponse =
  | { type: 'progress'; id: number; progress: LoadProgress }
  /** A generation's text, or a bench's log line. */
  | { type: 'text'; id: number; text: string }
  | { type: 'result'; id: number; value: WorkerResultMap[keyof WorkerResultMap] }
  | { type: 'error'; id: number; error: SerializedError };
