/**
 * Loads the wasm module once per realm (page or worker).
 *
 * With no `wasmUrl`, wasm-bindgen's glue resolves `new URL('codellama_webgpu_bg.wasm',
 * import.meta.url)` itself: the pattern bundlers (Vite, webpack 5, Parcel, esbuild with the
 * file loader) recognise, so the `.wasm` is emitted and found with no configuration.
 */

import init, { WasmEngine, WasmLineRules, WasmPromptBuilder } from './wasm/codellama_webgpu.js';
import { WebGpuUnavailableError, toCodeLlamaError } from './errors.js';
import { packageFileUrl } from './package-url.js';

let ready: Promise<void> | null = null;
/** The module's linear memory, once instantiated (for `memoryUsage()` of engines without a `WasmEngine`). */
let memory: WebAssembly.Memory | null = null;

/** Instantiates the wasm module (idempotent; a failed attempt can be retried). */
export function initWasm(wasmUrl?: string | URL): Promise<void> {
  const url = wasmUrl ?? packageFileUrl('wasm/codellama_webgpu_bg.wasm');
  ready ??= init(url === undefined ? undefined : { module_or_path: url }).then(
    (out) => {
      memory = out.memory;
    },
    (e: unknown) => {
      ready = null;
      throw toCodeLlamaError(e);
    },
  );
  return ready;
}

/** `true` when `navigator.gpu` exists (an adapter may still be unavailable). */
export function hasWebGpu(): boolean {
  return typeof navigator !== 'undefined' && 'gpu' in navigator && (navigator as { gpu?: unknown }).gpu != null;
}

/** Creates a raw engine on a new WebGPU device. */
export async function createWasmEngine(wasmUrl?: string | URL): Promise<WasmEngine> {
  if (!hasWebGpu()) {
    throw new WebGpuUnavailableError(
      'WebGPU is not available in this browser (navigator.gpu is missing); a WebGPU-capable browser on a secure (https or localhost) page is needed',
    );
  }
  await initWasm(wasmUrl);
  try {
    return (await WasmEngine.create()) as WasmEngine;
  } catch (e) {
    throw toCodeLlamaError(e);
  }
}

/** Bytes of the wasm linear memory now (0 before the module is instantiated). */
export function wasmMemoryBytes(): number {
  return memory === null ? 0 : memory.buffer.byteLength;
}

export type { WasmEngine };
/** The tokenizer and prompt builders without a model or a GPU (the remote engine's half). */
export { WasmPromptBuilder, WasmLineRules };
