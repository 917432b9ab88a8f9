// Live statistics of a running generation: tokens, tokens/s and context use while it streams,
// then the engine's exact figures.
import type { GenerationStats } from 'codellama-webgpu';

export class LiveStats {
  #start = performance.now();
  #first = 0;
  #tokens = 0;

  constructor(
    private readonly out: HTMLElement,
    /** Known before the generation starts (completion), or null (shown at the end). */
    private readonly promptTokens: number | null,
    private readonly contextLength: number,
  ) {
    this.out.textContent = promptTokens === null ? 'waiting for the first token…' : `prompt ${promptTokens} tokens · waiting for the first token…`;
  }

  /** One streamed piece (about one token). */
  piece(): void {
    const now = performance.now();
    if (this.#tokens === 0) this.#first = now;
    this.#tokens++;
    const secs = (now - this.#first) / 1000;
    const rate = this.#tokens > 1 && secs > 0 ? (this.#tokens - 1) / secs : 0;
    const ttft = this.#first - this.#start;
    this.out.textContent =
      `${this.#tokens} tokens · ${rate.toFixed(1)} tok/s · first token ${ms(ttft)}` +
      (this.promptTokens === null ? '' : ` · context ${this.promptTokens + this.#tokens} / ${this.contextLength}`);
  }

  done(s: GenerationStats, note = ''): void {
    this.out.textContent =
      `${s.generatedTokens} tokens · ${s.tokensPerSecond.toFixed(1)} tok/s · first token ${ms(s.timeToFirstTokenMs)} · ` +
      `prompt ${s.promptTokens} (${s.promptTokensComputed} computed) · context ${s.promptTokens + s.generatedTokens} / ` +
      `${this.contextLength} · ${stopText(s.stopReason)}${note}`;
  }

  failed(message: string): void {
    this.out.textContent = message;
  }
}

function ms(v: number): string {
  return v >= 1000 ? `${(v / 1000).toFixed(1)} s` : `${Math.round(v)} ms`;
}

function stopText(r: GenerationStats['stopReason']): string {
  return {
    stop_token: 'ended by the model',
    stop_string: 'stop string',
    max_tokens: 'max tokens',
    context_full: 'context full',
    deadline: 'deadline',
    line_end: 'end of line',
    indent: 'indentation',
  }[r];
}
