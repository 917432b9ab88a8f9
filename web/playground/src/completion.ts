// Completion: a prompt, streamed output, stop, live stats.
import { $, describeError, el } from './dom';
import type { Host } from './host';
import { LiveStats } from './live-stats';
import { samplingOptions } from './sampling';

export function setupCompletion(host: Host): void {
  const prompt = $<HTMLTextAreaElement>('prompt');
  const out = $('complete-out');
  const go = $<HTMLButtonElement>('complete-btn');
  const stop = $<HTMLButtonElement>('complete-stop');
  const stats = $('complete-stats');

  const run = async () => {
    if (go.disabled) return;
    const text = prompt.value;
    go.disabled = true;
    stop.disabled = false;
    out.replaceChildren(el('span', 'prompt-echo', text));
    const generated = el('span', 'generated');
    out.append(generated);
    out.dataset.state = 'running';
    try {
      const engine = await host.engine();
      const promptTokens = host.info ? (await engine.tokenize(text)).length : 0;
      const live = new LiveStats(stats, promptTokens, host.info?.contextLength ?? 0);
      const s = await host.generate(
        (e) => e.complete(text, samplingOptions()),
        (piece) => {
          generated.append(piece);
          live.piece();
        },
      );
      if (s) live.done(s);
      else stats.textContent += ' · stopped';
      out.dataset.state = s ? 'done' : 'stopped';
    } catch (e) {
      stats.textContent = describeError(e, host.server ? 'server' : 'local');
      out.dataset.state = 'error';
    } finally {
      go.disabled = false;
      stop.disabled = true;
    }
  };
  go.addEventListener('click', () => void run());
  stop.addEventListener('click', () => host.cancel());
  prompt.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      void run();
    }
  });
}
