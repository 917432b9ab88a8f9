// What the page shows about the server in use: its URL, flavor and model id, the context, the
// tokenizer. All of it is set as text (the server's answers and the URLs are never markup).
import { $, el } from './dom';
import type { ServerInUse } from './host';

/** The facts shown, for the panel and the status line. */
export interface ServerFacts {
  server: string;
  flavor: string;
  model: string;
  contextLength: number;
  tokenizer: string;
  vocabSize: number;
}

/** Fills the server panel (`#server-info`) from the engine in use, or hides it (null). */
export async function showServerInfo(s: ServerInUse | null): Promise<ServerFacts | null> {
  const dl = $('server-info');
  dl.replaceChildren();
  dl.hidden = s === null;
  if (!s) return null;
  const facts = await serverFacts(s);
  const rows: [string, string, string][] = [
    ['server', 'Server', facts.server],
    ['flavor', 'Flavor', facts.flavor],
    ['model', 'Model', facts.model],
    ['context', 'Context', `${facts.contextLength} tokens`],
    ['tokenizer', 'Tokenizer', `${facts.tokenizer} (${facts.vocabSize} tokens)`],
  ];
  for (const [key, label, value] of rows) {
    const dd = el('dd', undefined, value);
    dd.dataset.key = key;
    dl.append(el('dt', undefined, label), dd);
  }
  return facts;
}

/** The status line of a connected server. */
export function serverSummary(s: ServerInUse, f: ServerFacts | null): string {
  const what = f ? ` · ${f.flavor} · model ${f.model} · context ${f.contextLength}` : '';
  return `Server ${f?.server ?? s.baseUrl}${what} · tokenizer from ${s.tokenizer} · connected in ${(s.connectMs / 1000).toFixed(1)} s`;
}

async function serverFacts(s: ServerInUse): Promise<ServerFacts> {
  const server = s.engine.server();
  const info = await s.engine.info();
  return {
    server: server?.baseUrl ?? s.baseUrl,
    flavor: server?.flavor ?? '?',
    model: server?.model ?? '?',
    contextLength: server?.contextLength ?? info?.contextLength ?? 0,
    tokenizer: s.tokenizer,
    vocabSize: info?.vocabSize ?? 0,
  };
}
