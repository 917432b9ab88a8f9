// Small DOM and formatting helpers. Model output is only ever set as text (textContent), never
// parsed as HTML.

export function $<T extends HTMLElement = HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (!el) throw new Error(`#${id} is missing from the page`);
  return el as T;
}

export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className?: string,
  text?: string,
): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined) e.textContent = text;
  return e;
}

export function formatBytes(n: number): string {
  if (!Number.isFinite(n)) return '?';
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) {
    n /= 1000;
    i++;
  }
  return `${n.toFixed(i === 0 ? 0 : n < 10 ? 2 : 1)} ${units[i]}`;
}

export function formatRate(bytesPerSecond: number): string {
  return `${formatBytes(bytesPerSecond)}/s`;
}

/**
 * A short human message for an engine error (its `name` is stable: see the package README).
 * `during`: what failed — a model load or generation on this machine (the default), connecting
 * to a server (its URL or the tokenizer URL), or a generation on a server.
 */
export function describeError(e: unknown, during: 'local' | 'connect' | 'server' = 'local'): string {
  const err = e as { name?: string; message?: string };
  const name = err?.name ?? 'Error';
  const msg = err?.message ?? String(e);
  switch (name) {
    case 'WebGpuUnavailableError':
      return 'WebGPU is not available in this browser. Use a current Chrome or Edge (113 or later) on a desktop, on an https:// page or localhost; on Linux, start Chrome with --enable-unsafe-webgpu.';
    case 'GpuOutOfMemoryError':
      return `The GPU does not have enough memory for this model (${msg}). The bundled demo model needs about 12 MB; Code Llama 7B Q4_K_M needs about 4.5 GB — try a smaller quantization or a machine with a larger GPU.`;
    case 'InvalidModelError':
      return `This is not a valid GGUF model file: ${msg}`;
    case 'UnsupportedModelError':
      return `This model is not supported: ${msg}. The playground runs Llama-architecture GGUF files (Code Llama) in F32, F16, Q8_0, Q4_0, Q4_K, Q6_K and related formats.`;
    case 'NetworkError':
      if (during === 'connect') return `Could not connect (the server or the tokenizer URL did not answer, or failed): ${msg}`;
      if (during === 'server') return `The server did not answer, or failed: ${msg}`;
      return `The model could not be downloaded: ${msg}`;
    case 'DeviceLostError':
      return `The GPU device was lost (${msg}). Load the model again.`;
    case 'ContextOverflowError':
      return `The prompt does not fit in the context: ${msg}`;
    default:
      return `${name}: ${msg}`;
  }
}
