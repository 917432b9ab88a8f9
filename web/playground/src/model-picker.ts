// Model source (bundled demo, local file, URL, server), load progress, and the models this
// browser keeps in its Origin Private File System.
import { deleteCachedModel, listCachedModels } from 'codellama-webgpu';
import type { LoadProgress, ModelInfo, ModelSource } from 'codellama-webgpu';
import { $, describeError, el, formatBytes, formatRate } from './dom';
import type { Host } from './host';
import { showBanner } from './banner';
import { rememberServerActive, serverFields, serverOptions, serverWasActive } from './server-source';
import { showServerInfo, serverSummary } from './server-info';

/** The bundled model, next to the page (copied there by scripts/build-playground.sh). */
export const DEMO_MODEL_URL = new URL('./models/codellama-demo.gguf', document.baseURI).href;

export class ModelPicker {
  #abort: AbortController | null = null;
  #file: File | null = null;
  /** The status line of what is in use (kept on screen when a later load or connect fails). */
  #inUse: string | null = null;

  constructor(private readonly host: Host) {
    for (const r of document.querySelectorAll<HTMLInputElement>('input[name=source]')) {
      r.addEventListener('change', () => this.#showRows());
    }
    $('load-btn').addEventListener('click', () => void this.loadSelected());
    $('cancel-load-btn').addEventListener('click', () => this.#abort?.abort());
    const input = $<HTMLInputElement>('file-input');
    input.addEventListener('change', () => {
      this.#file = input.files?.[0] ?? null;
      if (this.#file) void this.load(this.#file, this.#file.name);
    });
    const drop = $('drop');
    drop.addEventListener('dragover', (e) => {
      e.preventDefault();
      drop.classList.add('over');
    });
    drop.addEventListener('dragleave', () => drop.classList.remove('over'));
    drop.addEventListener('drop', (e) => {
      e.preventDefault();
      drop.classList.remove('over');
      const f = e.dataTransfer?.files?.[0];
      if (f) {
        this.#file = f;
        void this.load(f, f.name);
      }
    });
    $('cached').addEventListener('toggle', () => void this.refreshCached());
    if (serverWasActive()) $<HTMLInputElement>('source-server').checked = true;
    this.#showRows();
  }

  /** Whether the page should start by connecting to a server rather than loading a model here. */
  get serverSelected(): boolean {
    return this.#source() === 'server';
  }

  #source(): string {
    return document.querySelector<HTMLInputElement>('input[name=source]:checked')?.value ?? 'demo';
  }

  #showRows(): void {
    const s = this.#source();
    $('file-row').hidden = s !== 'file';
    $('url-row').hidden = s !== 'url';
    $('server-row').hidden = s !== 'server';
    $('load-btn').textContent = s === 'server' ? 'Connect' : 'Load';
  }

  async loadSelected(): Promise<void> {
    const s = this.#source();
    if (s === 'demo') return this.load(DEMO_MODEL_URL, 'the bundled demo model');
    if (s === 'url') {
      const url = $<HTMLInputElement>('url-input').value.trim();
      if (!url) return showBanner('Enter a model URL.');
      return this.load(url, url);
    }
    if (s === 'server') return this.connect();
    if (!this.#file) {
      $<HTMLInputElement>('file-input').click();
      return;
    }
    return this.load(this.#file, this.#file.name);
  }

  async load(source: ModelSource, label: string): Promise<void> {
    this.#abort?.abort();
    const abort = new AbortController();
    this.#abort = abort;
    showBanner(null);
    const status = $('model-status');
    status.textContent = `Loading ${label}…`;
    document.body.dataset.model = 'loading';
    $('progress').hidden = false;
    $('cancel-load-btn').hidden = false;
    $<HTMLButtonElement>('load-btn').disabled = true;
    this.#progress({ phase: 'open', fraction: 0, bytesDone: 0, bytesTotal: null, tensor: null, tensorsDone: 0, tensorsTotal: null, fromCache: false, bytesPerSecond: 0 });
    try {
      const info = await this.host.load(source, (p) => this.#progress(p), abort.signal);
      this.#inUse = summary(label, info);
      status.textContent = this.#inUse;
      document.body.dataset.model = 'ready';
      document.body.dataset.engine = 'local';
      void showServerInfo(null);
      rememberServerActive(false);
    } catch (e) {
      document.body.dataset.model = 'error';
      status.textContent = this.#keptStatus();
      if ((e as Error)?.name !== 'AbortError') showBanner(describeError(e));
    } finally {
      if (this.#abort === abort) this.#abort = null;
      $('progress').hidden = document.body.dataset.model === 'ready' ? false : true;
      $('cancel-load-btn').hidden = true;
      $<HTMLButtonElement>('load-btn').disabled = false;
      if ($<HTMLDetailsElement>('cached').open) void this.refreshCached();
    }
  }

  /**
   * Connects to the server of the "Server" fields. Only the server URL and the tokenizer URL
   * typed there are contacted (the default tokenizer is the bundled model, on this origin).
   */
  async connect(): Promise<void> {
    const opts = serverOptions(serverFields(), DEMO_MODEL_URL);
    if (typeof opts === 'string') return showBanner(opts);
    this.#abort?.abort();
    const abort = new AbortController();
    this.#abort = abort;
    showBanner(null);
    const status = $('model-status');
    status.textContent = `Connecting to ${opts.baseUrl}…`;
    document.body.dataset.model = 'loading';
    $('progress').hidden = true;
    $('cancel-load-btn').hidden = false;
    $<HTMLButtonElement>('load-btn').disabled = true;
    try {
      await this.host.connect(opts, abort.signal);
      const server = this.host.server!;
      const info = await showServerInfo(server);
      this.#inUse = serverSummary(server, info);
      status.textContent = this.#inUse;
      document.body.dataset.model = 'ready';
      document.body.dataset.engine = 'remote';
      rememberServerActive(true);
    } catch (e) {
      document.body.dataset.model = 'error';
      status.textContent = this.#keptStatus();
      if ((e as Error)?.name !== 'AbortError') showBanner(describeError(e, 'connect'));
    } finally {
      if (this.#abort === abort) this.#abort = null;
      $('cancel-load-btn').hidden = true;
      $<HTMLButtonElement>('load-btn').disabled = false;
    }
  }

  /** The status line after a failed load or connect: what is still in use, if anything. */
  #keptStatus(): string {
    if (!this.host.info || !this.#inUse) return 'No model loaded';
    return `${this.#inUse} (still in use)`;
  }

  #progress(p: LoadProgress): void {
    $('progress-fill').style.width = `${(p.fraction * 100).toFixed(1)}%`;
    const total = p.bytesTotal ? ` of ${formatBytes(p.bytesTotal)}` : '';
    const tensors = p.tensorsTotal ? ` · ${p.tensorsDone}/${p.tensorsTotal} tensors on the GPU` : '';
    const from = p.fromCache ? ' (from browser storage)' : '';
    const finishing = p.phase === 'finish' ? ' · preparing the GPU kernels' : '';
    $('progress-text').textContent = `${formatBytes(p.bytesDone)}${total} · ${formatRate(p.bytesPerSecond)}${tensors}${from}${finishing}`;
  }

  async refreshCached(): Promise<void> {
    const list = $('cached-list');
    let models: Awaited<ReturnType<typeof listCachedModels>> = [];
    try {
      models = await listCachedModels();
    } catch {
      models = [];
    }
    list.replaceChildren();
    if (models.length === 0) list.append(el('li', 'muted small', 'None yet: models loaded from a URL are kept here.'));
    for (const m of models) {
      const li = el('li');
      li.append(el('span', 'cached-name', m.url), el('span', 'muted small', ` ${formatBytes(m.bytes)}`));
      const del = el('button', 'small', 'Delete');
      del.type = 'button';
      del.setAttribute('aria-label', `Delete ${m.url} from browser storage`);
      del.addEventListener('click', async () => {
        await deleteCachedModel(m.url);
        await this.refreshCached();
      });
      li.append(del);
      list.append(li);
    }
  }
}

function summary(label: string, i: ModelInfo): string {
  const params = i.nLayers + ' layers, dim ' + i.dim;
  return `${label} · ${params} · context ${i.contextLength} · ${formatBytes(i.gpuBytes)} on the GPU (${i.adapter.name || i.adapter.backend}) · loaded in ${(i.loadMs / 1000).toFixed(1)} s${i.fromCache ? ' from browser storage' : ''}`;
}
