// The "Server" model source: an OpenAI-compatible server (llama.cpp's llama-server, vLLM) that
// runs the model, and the tokenizer source the page builds the exact prompt token ids with.
//
// What is kept where, and why:
// - the server URL, the tokenizer URL and whether the server was the last source in use:
//   localStorage, so the next visit comes back to the same server;
// - the API key: sessionStorage only (this tab, until it is closed). A key in localStorage would
//   outlive the session on a shared machine and be readable by anything that ever runs on this
//   origin; a key typed once per session is the smaller risk.
import type { RemoteEngineOptions } from 'codellama-webgpu';
import { $ } from './dom';

/** The form's fields, as the user typed them. */
export interface ServerFields {
  url: string;
  apiKey: string;
  /** Empty: the bundled demo model's GGUF (its header only). */
  tokenizer: string;
}

const KEY = 'codellama-playground-server-v1';
const KEY_SECRET = 'codellama-playground-server-key';

interface Saved {
  url?: string;
  tokenizer?: string;
  /** The server was the source of the last successful load or connect. */
  active?: boolean;
}

function readSaved(): Saved {
  try {
    const v = JSON.parse(localStorage.getItem(KEY) ?? '{}') as unknown;
    return v && typeof v === 'object' ? (v as Saved) : {};
  } catch {
    return {};
  }
}

function writeSaved(patch: Saved): void {
  try {
    localStorage.setItem(KEY, JSON.stringify({ ...readSaved(), ...patch }));
  } catch {
    // Storage disabled or full: the fields just are not remembered.
  }
}

/** Restores the fields from the last visit (and the key from this tab's session) and saves every edit. */
export function persistServerFields(): void {
  const saved = readSaved();
  const url = $<HTMLInputElement>('server-url');
  const tokenizer = $<HTMLInputElement>('server-tokenizer');
  const key = $<HTMLInputElement>('server-key');
  if (typeof saved.url === 'string') url.value = saved.url;
  if (typeof saved.tokenizer === 'string') tokenizer.value = saved.tokenizer;
  try {
    key.value = sessionStorage.getItem(KEY_SECRET) ?? '';
  } catch {
    key.value = '';
  }
  url.addEventListener('input', () => writeSaved({ url: url.value }));
  tokenizer.addEventListener('input', () => writeSaved({ tokenizer: tokenizer.value }));
  key.addEventListener('input', () => {
    try {
      if (key.value) sessionStorage.setItem(KEY_SECRET, key.value);
      else sessionStorage.removeItem(KEY_SECRET);
    } catch {
      // Session storage disabled: the key lives in the field only.
    }
  });
}

/** Whether the server was the source in use at the end of the last visit. */
export function serverWasActive(): boolean {
  return readSaved().active === true;
}

/** Records which kind of source is in use, for the next visit. */
export function rememberServerActive(active: boolean): void {
  writeSaved({ active });
}

export function serverFields(): ServerFields {
  return {
    url: $<HTMLInputElement>('server-url').value.trim(),
    apiKey: $<HTMLInputElement>('server-key').value.trim(),
    tokenizer: $<HTMLInputElement>('server-tokenizer').value.trim(),
  };
}

/**
 * The engine options for the fields, or a sentence saying what is wrong with them. Only the URLs
 * typed here are contacted (plus the page's own origin for the default tokenizer).
 */
export function serverOptions(f: ServerFields, defaultTokenizer: string): RemoteEngineOptions | string {
  if (!f.url) return 'Enter the server URL (for example http://127.0.0.1:8081).';
  let base: URL;
  try {
    base = new URL(f.url);
  } catch {
    return `The server URL is not a URL: ${f.url}`;
  }
  if (base.protocol !== 'http:' && base.protocol !== 'https:') return `The server URL must be http:// or https://: ${f.url}`;
  const tokenizer = f.tokenizer || defaultTokenizer;
  try {
    new URL(tokenizer, document.baseURI);
  } catch {
    return `The tokenizer URL is not a URL: ${tokenizer}`;
  }
  // The engine appends /v1/completions, /v1/models: the root is wanted, and an OpenAI-style base
  // URL ending in /v1 (as client libraries take it) means the same server.
  const root = (base.origin + base.pathname).replace(/\/+$/, '').replace(/\/v1$/, '');
  return {
    baseUrl: root,
    tokenizer: new URL(tokenizer, document.baseURI).href,
    ...(f.apiKey ? { apiKey: f.apiKey } : {}),
  };
}
