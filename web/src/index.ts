/**
 * `codellama-webgpu`: Code Llama (GGUF) on WebGPU, in the page or in a Web Worker.
 *
 * ```ts
 * import { createEngine } from 'codellama-webgpu';
 * const engine = await createEngine();
 * await engine.load('/models/codellama-7b.Q4_K_M.gguf', { onProgress: console.log });
 * for await (const piece of engine.complete('def fib(n):')) console.log(piece);
 * ```
 */

export type * from './types.js';
export { Engine, createEngine } from './engine.js';
export { WorkerEngine, createWorkerEngine } from './worker-engine.js';
export { RemoteEngine, createRemoteEngine } from './remote/engine.js';
export { hasWebGpu } from './wasm-loader.js';
export {
  createOpenAI,
  finishReason,
  type OpenAICompat,
  type OpenAISamplingParams,
  type CompletionCreateParams,
  type ChatCompletionCreateParams,
  type ChatCompletionMessageParam,
  type RequestOptions,
  type Completion,
  type ChatCompletion,
  type ChatCompletionChunk,
  type CompletionUsage,
  type ChunkStream,
  type FinishReason,
  type CompletionLogprobs,
  type ChatCompletionLogprobs,
  type ChatCompletionTokenLogprob,
} from './openai.js';
export {
  CodeLlamaError,
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
  ERROR_NAMES,
  isCodeLlamaError,
  toCodeLlamaError,
  serializeError,
  deserializeError,
  type CodeLlamaErrorName,
} from './errors.js';
export {
  listCachedModels,
  deleteCachedModel,
  clearModelCache,
  isCacheAvailable,
  type CachedModel,
} from './opfs.js';
