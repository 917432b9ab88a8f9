// Page side of the browser tests: imports the package as built (web/dist, served at /pkg/) and
// exposes it and a few helpers to the test runner (window.CL, window.T).
try {
  const CL = await import('/pkg/index.js');
  window.CL = CL;

  const out = document.getElementById('out');
  const params = new URLSearchParams(location.search);
  if (params.get('title')) document.getElementById('title').textContent = `codellama-webgpu — ${params.get('title')}`;

  /** An error as plain data (Playwright only carries messages across). */
  function errInfo(e) {
    if (e === null || typeof e !== 'object') return { name: typeof e, message: String(e), isError: false };
    const info = {
      name: e.name,
      message: e.message,
      isError: e instanceof Error,
      isCodeLlamaError: typeof CL.CodeLlamaError === 'function' && e instanceof CL.CodeLlamaError,
      ctor: e.constructor?.name ?? null,
      stack: typeof e.stack === 'string' ? e.stack.split('\n').slice(0, 6).join('\n') : null,
    };
    const cls = CL[e.name];
    info.isOwnClass = typeof cls === 'function' && e instanceof cls;
    if (e.cause !== undefined) info.cause = String(e.cause?.message ?? e.cause);
    return info;
  }

  window.T = {
    /** Appends a titled block of text to the page (what the screenshots show). */
    show(title, text, cls = '') {
      const s = document.createElement('section');
      if (cls) s.className = cls;
      const h = document.createElement('h2');
      h.textContent = title;
      const p = document.createElement('pre');
      p.textContent = typeof text === 'string' ? text : JSON.stringify(text, null, 1);
      s.append(h, p);
      out.append(s);
      return p;
    },
    errInfo,
    /** { ok: true, value } or { ok: false, error: errInfo(e) }. */
    async capture(fn) {
      try {
        return { ok: true, value: await fn() };
      } catch (e) {
        return { ok: false, error: errInfo(e) };
      }
    },
    /** Iterates a Generation by hand: the chunks (with times) and the iterator's return value. */
    async drain(gen, { onChunk } = {}) {
      const t0 = performance.now();
      const chunks = [];
      const it = gen[Symbol.asyncIterator]();
      let r;
      try {
        while (!(r = await it.next()).done) {
          chunks.push({ text: r.value, ms: performance.now() - t0 });
          if (onChunk) onChunk(r.value, chunks.length);
        }
      } catch (e) {
        return { chunks, error: errInfo(e), ms: performance.now() - t0 };
      }
      return { chunks, returned: r.value, ms: performance.now() - t0 };
    },
    /** Loads the fixture model into a new engine (in-page, or a Worker engine). */
    async engine({ worker = false, model = null, load = {} } = {}) {
      const engine = worker ? await CL.createWorkerEngine() : await CL.createEngine();
      if (model) {
        const progress = [];
        const info = await engine.load(model, { cache: false, ...load, onProgress: (p) => progress.push({ ...p }) });
        return { engine, info, progress };
      }
      return { engine };
    },
    /** Largest gap between setTimeout(0) ticks while `promise` runs (main-thread responsiveness). */
    async maxTickGap(promise) {
      let last = performance.now();
      let max = 0;
      let on = true;
      const tick = () => {
        const now = performance.now();
        max = Math.max(max, now - last);
        last = now;
        if (on) setTimeout(tick, 0);
      };
      setTimeout(tick, 0);
      try {
        const value = await promise;
        return { value, maxGapMs: max };
      } finally {
        on = false;
      }
    },
    engines: {},
  };
  window.READY = true;
} catch (e) {
  window.READY_ERROR = `${e?.name ?? 'Error'}: ${e?.message ?? e}`;
  console.error('test page failed to start', e);
}
