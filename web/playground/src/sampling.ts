// The sampling controls shared by the three modes.
import type { CodeLlamaEngine, GenerateOptions, PromptKind } from 'codellama-webgpu';
import { $ } from './dom';

function num(id: string): number | undefined {
  const v = $<HTMLInputElement>(id).value.trim();
  if (v === '') return undefined;
  const n = Number(v);
  return Number.isFinite(n) ? n : undefined;
}

/** Stop strings: comma separated; `\n` and `\t` are escapes for newline and tab. */
export function parseStops(text: string): string[] {
  return text
    .split(',')
    .map((s) => s.trim().replace(/\\n/g, '\n').replace(/\\t/g, '\t'))
    .filter((s) => s.length > 0);
}

const IDS = ['s-temperature', 's-topk', 's-topp', 's-minp', 's-rep', 's-max', 's-seed', 's-stop'];
// v2: temperature, top-p and max tokens start empty (the engine's per-mode defaults).
const KEY = 'codellama-playground-sampling-v2';

/** Restores the controls from the last visit and saves every change (localStorage). */
export function persistSampling(): void {
  let saved: Record<string, string> = {};
  try {
    saved = JSON.parse(localStorage.getItem(KEY) ?? '{}') as Record<string, string>;
  } catch {
    saved = {};
  }
  for (const id of IDS) {
    const input = $<HTMLInputElement>(id);
    if (typeof saved[id] === 'string') input.value = saved[id];
    input.addEventListener('input', () => {
      const now: Record<string, string> = {};
      for (const k of IDS) now[k] = $<HTMLInputElement>(k).value;
      localStorage.setItem(KEY, JSON.stringify(now));
    });
  }
}

export function samplingOptions(overrides: GenerateOptions = {}): GenerateOptions {
  const o: GenerateOptions = {
    temperature: num('s-temperature'),
    topK: num('s-topk'),
    topP: num('s-topp'),
    minP: num('s-minp'),
    repetitionPenalty: num('s-rep'),
    maxTokens: num('s-max'),
    seed: num('s-seed'),
    stop: parseStops($<HTMLInputElement>('s-stop').value),
  };
  for (const k of Object.keys(o) as (keyof GenerateOptions)[]) if (o[k] === undefined) delete o[k];
  return { ...o, ...overrides };
}

/** The prompt kind of a mode tab. */
export function tabKind(tabId: string): PromptKind {
  return tabId === 'tab-infill' ? 'infill' : tabId === 'tab-chat' ? 'chat' : 'complete';
}

/**
 * The initial controls are the engine's per-mode defaults (`engine.requestDefaults()`, Meta's
 * temperature 0.2 completion, 0 infill, 0.6 chat; top-p 0.9): temperature, top-p and max tokens
 * start empty, which sends nothing and lets the engine apply the mode's default, and show that
 * default as their placeholder for the mode on screen.
 */
export async function showModeDefaults(engine: Promise<CodeLlamaEngine>, kind: PromptKind): Promise<void> {
  const d = (await (await engine).requestDefaults())[kind];
  const show = (id: string, v: number) => {
    const input = $<HTMLInputElement>(id);
    input.placeholder = String(v);
    input.title = `empty: the ${kind} default, ${v}`;
  };
  show('s-temperature', d.temperature);
  show('s-topp', d.topP);
  show('s-max', d.maxTokens);
}
