// Model source (bundled demo, local file, URL), load progress, and the models this browser keeps
// in its Origin Private File System.
import { deleteCachedModel, listCachedModels } from 'codellama-webgpu';
import type { LoadProgress, ModelInfo, ModelSource } from 'codellama-webgpu';
import { $, describeError, el, formatBytes, formatRate } from './dom';
import type { Host } from './host';
import { showBanner } from './banner';

/** The bundled model, next to the page (copied there by scripts/build-playground.sh). */
export const DEMO_MODEL_URL = new URL('./models/codellama-demo.gguf', document.baseURI).href;

export class ModelPicker {
  #abort: AbortController | null = null;
  #file: File | null = null;

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
    this.#showRows();
  }

  #source(): string {
    return document.querySelector<HTMLInputElement>('input[name=source]:checked')?.value ?? 'demo';
  }

  #showRows(): void {
    const s = this.#source();
    $('file-row').hidden = s !== 'file';
    $('url-row').hidden = s !== 'url';
  }

  async loadSelected(): Promise<void> {
    const s = this.#source();
    if (s === 'demo') return this.load(DEMO_MODEL_URL, 'the bundled demo model');
    if (s === 'url') {
      const url = $<HTMLInputElement>('url-input').value.trim();
      if (!url) return showBanner('Enter a model URL.');
      return this.load(url, url);
    }
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
      status.textContent = summary(label, info);
      document.body.dataset.model = 'ready';
    } catch (e) {
      document.body.dataset.model = 'error';
      status.textContent = 'No model loaded';
      if ((e as Error)?.name !== 'AbortError') showBanner(describeError(e));
    } finally {
      if (this.#abort === abort) this.#abort = null;
      $('progress').hidden = document.body.dataset.model === 'ready' ? false : true;
      $('cancel-load-btn').hidden = true;
      $<HTMLButtonElement>('load-btn').disabled = false;
      if ($<HTMLDetailsElement>('cached').open) void this.refreshCached();
    }
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
