// Runs generation requests through the npm package in headless Chromium (WebGPU on SwiftShader
// here; the GPU's own adapter where Chromium has one): the engine of scripts/eval/humaneval.py
// --engine chromium.
//
//   node scripts/eval/browser.mjs --model GGUF REQUESTS.jsonl ANSWERS.jsonl
//
// REQUESTS: one request per line as `codellama batch` takes it ({kind: 'complete', prompt, ...}
// or {kind: 'infill', prefix, suffix, suffixFirst?, ...} and the generation settings). Each goes
// through the package's public API in one page and one engine: `completeText(prompt, settings)`
// or `infillText({prefix, suffix, suffixFirst}, settings)`. ANSWERS: one line per request,
// {text, stopReason, promptTokens, generatedTokens, ms} or {error: 'Name: message'}, the same
// shape as `codellama batch` writes. Needs web/dist (bash scripts/build-web.sh) and
// tests/web/node_modules (npm ci --prefix tests/web), which the browser tests install.

import { closeSync, existsSync, openSync, readFileSync, writeSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { Browser, inPage } from '../../tests/web/harness.mjs';
import { startServer } from '../../tests/web/server.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const CHUNK = 25; // requests per page call (progress and a bounded call time)

function usage(msg) {
  console.error(`browser.mjs: ${msg}\nusage: node scripts/eval/browser.mjs --model GGUF REQUESTS.jsonl ANSWERS.jsonl`);
  process.exit(2);
}

const argv = process.argv.slice(2);
let model = join(ROOT, 'models/codellama-demo.gguf');
const files = [];
for (let i = 0; i < argv.length; i++) {
  if (argv[i] === '--model') model = resolve(argv[++i] ?? usage('--model needs a file'));
  else files.push(argv[i]);
}
if (files.length !== 2) usage('two files expected');
if (!existsSync(join(ROOT, 'web/dist/index.js'))) usage('web/dist/index.js is missing: bash scripts/build-web.sh');
if (!existsSync(model)) usage(`no model at ${model}`);

const requests = readFileSync(files[0], 'utf8').split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l));
const server = await startServer({
  mounts: { '/': join(ROOT, 'tests/web/pages'), '/pkg/': join(ROOT, 'web/dist'), '/model/': dirname(model) },
});
const browser = await Browser.launch({ name: 'eval' });
const out = openSync(files[1], 'w');
let failed = false;
try {
  const page = await browser.open(`${server.url}/index.html?title=eval`);
  const info = await inPage(page, async (url) => {
    const engine = await CL.createEngine();
    const info = await engine.load(url, { cache: false });
    window.EVAL_ENGINE = engine;
    return { adapter: info.adapter?.name ?? null, backend: info.adapter?.backend ?? null };
  }, `/model/${encodeURIComponent(basename(model))}`);
  console.error(`[browser] model loaded on ${JSON.stringify(info)}`);
  const t0 = Date.now();
  for (let i = 0; i < requests.length; i += CHUNK) {
    const answers = await inPage(page, async (chunk) => {
      const engine = window.EVAL_ENGINE;
      const res = [];
      for (const req of chunk) {
        const { kind, prompt, prefix, suffix, suffixFirst, ...settings } = req;
        const t = performance.now();
        try {
          const r = kind === 'complete'
            ? await engine.completeText(prompt, settings)
            : kind === 'infill'
              ? await engine.infillText({ prefix, suffix, suffixFirst }, settings)
              : (() => { throw new TypeError(`kind ${JSON.stringify(kind)}: complete or infill`); })();
          res.push({
            text: r.text,
            stopReason: r.stats.stopReason,
            promptTokens: r.stats.promptTokens,
            generatedTokens: r.stats.generatedTokens,
            ms: Math.round((performance.now() - t) * 10) / 10,
          });
        } catch (e) {
          res.push({ error: `${e?.name ?? 'Error'}: ${e?.message ?? e}` });
        }
      }
      return res;
    }, requests.slice(i, i + CHUNK), 3_600_000);
    for (const a of answers) writeSync(out, `${JSON.stringify(a)}\n`);
    const done = Math.min(i + CHUNK, requests.length);
    console.error(`[browser] ${done}/${requests.length} requests, ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  }
  await inPage(page, async () => window.EVAL_ENGINE.dispose());
} catch (e) {
  failed = true;
  console.error(`browser.mjs: ${e?.stack ?? e}`);
  for (const line of browser.logs.slice(-20)) console.error(line);
} finally {
  closeSync(out);
  await browser.close();
  await server.close();
}
process.exit(failed ? 1 : 0);
