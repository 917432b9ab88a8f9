// End-to-end tests of the playground (web/playground/dist, built by scripts/build-playground.sh)
// in Debian's headless Chromium (playwright-core; WebGPU on SwiftShader), on the bundled demo
// model. The model is small and trained here, so the texts are never compared with fixed
// strings: the tests check that text streams in, stop works, stats update, the ghost text is
// what Tab inserts, chat keeps a multi-turn exchange, errors are shown and the page stays
// usable, the page works offline after one visit, and no request leaves the page's origin but
// the model URL the user chose (loaded from a second origin, its URL shown as text) and the
// OpenAI-compatible server the user typed (the "Server" source, against a real llama-server).
//
//   node tests/web/playground.mjs [step-name-prefix ...]
//
// Screenshots: tests/web/out/screenshots/playground-*.png (look at them).
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Browser } from './harness.mjs';
import { startServer } from './server.mjs';
import { startLlamaServer } from './llama-server.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = join(HERE, '../..');
const DIST = join(ROOT, 'web/playground/dist');
const SHOTS = join(HERE, 'out/screenshots');
const MODEL_TIMEOUT = 180_000;
const GEN_TIMEOUT = 300_000;

class Failure extends Error {}
const check = (ok, msg) => {
  if (!ok) throw new Failure(msg);
};
const log = (...a) => console.log(' ', ...a);

/** Sets an input's value as a user would (so listeners see an input event). */
async function setValue(page, selector, value) {
  await page.fill(selector, String(value));
}

async function waitModel(page, state = 'ready') {
  await page.waitForFunction((s) => document.body.dataset.model === s || document.body.dataset.model === 'error', state, { timeout: MODEL_TIMEOUT });
  const got = await page.evaluate(() => document.body.dataset.model);
  const banner = await page.locator('#banner').textContent();
  check(got === state, `model state ${got}, banner: ${banner}`);
}

/** Polls `fn` in the page until it returns non-null; records the distinct values seen. */
async function watch(page, fn, done, timeoutMs = GEN_TIMEOUT) {
  const seen = [];
  const t0 = Date.now();
  for (;;) {
    const v = await page.evaluate(fn);
    if (seen[seen.length - 1] !== v) seen.push(v);
    if (await page.evaluate(done)) return seen;
    check(Date.now() - t0 < timeoutMs, `timed out; last value ${JSON.stringify(v)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const steps = [];
const step = (name, fn) => steps.push({ name, fn });

// ------------------------------------------------------------------------------------------------

step('load', async ({ page, shot }) => {
  await waitModel(page);
  const status = await page.locator('#model-status').textContent();
  log('status:', status);
  check(/demo model/.test(status) && /context \d+/.test(status), `status line: ${status}`);
  const progress = await page.locator('#progress-text').textContent();
  log('progress:', progress);
  check(/MB/.test(progress) && /tensors on the GPU/.test(progress), `progress line: ${progress}`);
  // The sampling controls start at the engine's per-mode defaults (engine.requestDefaults()):
  // empty, the default shown as the placeholder of the mode on screen.
  const placeholders = () => page.evaluate(() => ['s-temperature', 's-topp', 's-max'].map((id) => [document.getElementById(id).value, document.getElementById(id).placeholder]));
  await page.waitForFunction(() => document.getElementById('s-temperature').placeholder === '0.2', null, { timeout: 30_000 });
  const complete = await placeholders();
  await page.click('#tab-infill');
  await page.waitForFunction(() => document.getElementById('s-temperature').placeholder === '0', null, { timeout: 30_000 });
  const infill = await placeholders();
  await page.click('#tab-complete');
  log('sampling controls (value, placeholder): complete', JSON.stringify(complete), 'infill', JSON.stringify(infill));
  check(JSON.stringify(complete) === JSON.stringify([['', '0.2'], ['', '0.9'], ['', '256']]), `completion controls ${JSON.stringify(complete)}`);
  check(JSON.stringify(infill) === JSON.stringify([['', '0'], ['', '0.9'], ['', '256']]), `infill controls ${JSON.stringify(infill)}`);
  await shot('loaded');
});

step('completion', async ({ page, shot }) => {
  await setValue(page, '#s-temperature', 0);
  await setValue(page, '#s-max', 12);
  await setValue(page, '#prompt', 'def add(a, b):');
  await page.click('#complete-btn');
  const texts = await watch(
    page,
    () => document.querySelector('#complete-out .generated')?.textContent ?? '',
    () => ['done', 'error'].includes(document.querySelector('#complete-out').dataset.state),
  );
  const state = await page.evaluate(() => document.querySelector('#complete-out').dataset.state);
  const stats = await page.locator('#complete-stats').textContent();
  log('stream lengths:', texts.map((t) => t.length).join(' '), '| stats:', stats);
  check(state === 'done', `completion ended ${state}: ${stats}`);
  check(texts.filter((t) => t.length > 0).length >= 3, 'the text did not stream in (fewer than 3 distinct partial texts)');
  check(/12 tokens/.test(stats) && /tok\/s/.test(stats) && /context \d+ \/ \d+/.test(stats), `stats: ${stats}`);
  check(await page.locator('#complete-btn').isEnabled(), 'Generate is not enabled again');
  await shot('completion');
});

step('stop', async ({ page }) => {
  await setValue(page, '#s-max', 400);
  await page.click('#complete-btn');
  await page.waitForFunction(() => (document.querySelector('#complete-out .generated')?.textContent ?? '').length > 0, null, { timeout: GEN_TIMEOUT });
  await page.click('#complete-stop');
  await page.waitForFunction(() => document.querySelector('#complete-out').dataset.state === 'stopped', null, { timeout: 60_000 });
  const a = await page.locator('#complete-out .generated').textContent();
  await new Promise((r) => setTimeout(r, 2000));
  const b = await page.locator('#complete-out .generated').textContent();
  check(a === b, 'text kept growing after Stop');
  check(await page.locator('#complete-btn').isEnabled(), 'Generate is not enabled after Stop');
  log(`stopped after ${a.length} characters; stats: ${await page.locator('#complete-stats').textContent()}`);
  await setValue(page, '#s-max', 12);
});

step('infill', async ({ page, shot }) => {
  await page.click('#tab-infill');
  await setValue(page, '#s-max', 12);
  const docText = () => [...document.querySelectorAll('.cm-line')].map((l) => {
    const c = l.cloneNode(true);
    c.querySelectorAll('.cm-ghost').forEach((g) => g.remove());
    return c.textContent;
  }).join('\n');
  await page.click('.cm-content');
  // Put the cursor at the end of "        if v > best:" and open the empty line below it.
  await page.keyboard.press('Control+End');
  const before0 = await page.evaluate(docText);
  const line = before0.split('\n').findIndex((l) => l.trim() === 'if v > best:');
  check(line >= 0, 'sample code not in the editor');
  await page.locator('.cm-line').nth(line + 1).click();
  await page.keyboard.press('End');
  // The block's depth, as an auto-indenting editor gives it; typing starts a request after a pause.
  await page.keyboard.type(' '.repeat(12), { delay: 30 });
  const before = await page.evaluate(docText);
  const ghosts = await watch(
    page,
    () => document.querySelector('.cm-ghost')?.textContent ?? '',
    () => ['done', 'error'].includes(document.querySelector('.cm-editor').dataset.infill),
  );
  const ghost = (await page.locator('.cm-ghost').count()) ? await page.locator('.cm-ghost').textContent() : '';
  const stats = await page.locator('#infill-stats').textContent();
  log('ghost text:', JSON.stringify(ghost), '| partial ghosts:', ghosts.length, '| stats:', stats);
  check(ghost.length > 0, 'no ghost text');
  check(/tok\/s/.test(stats), `infill stats: ${stats}`);
  await shot('infill-ghost');
  await page.keyboard.press('Tab');
  await page.waitForFunction(() => document.querySelector('.cm-ghost') === null, null, { timeout: 10_000 });
  const after = await page.evaluate(docText);
  check(after.length === before.length + ghost.length, `Tab inserted ${after.length - before.length} characters, the ghost had ${ghost.length}`);
  check(after.includes(ghost.split('\n')[0]), 'the inserted text is not the ghost text');
  log('after Tab:', JSON.stringify(after.split('\n').slice(line, line + 3)));
  await shot('infill-accepted');
  // Back to where the first suggestion appeared (Ctrl+Z undoes the accepted text): after
  // `return None` a model may rightly suggest nothing (the line is complete), and the keys below
  // need a suggestion to act on.
  await page.keyboard.press('Control+z');
  // Esc dismisses a new suggestion; typing cancels the one in flight.
  await page.keyboard.press('Control+Space');
  await page.waitForSelector('.cm-ghost', { timeout: GEN_TIMEOUT });
  await page.keyboard.press('Escape');
  await page.waitForFunction(() => document.querySelector('.cm-ghost') === null, null, { timeout: 10_000 });
  // Typing while a suggestion streams cancels it (the ghost goes at once) and asks again later.
  await page.keyboard.press('Control+Space');
  await page.waitForSelector('.cm-ghost', { timeout: GEN_TIMEOUT });
  await page.keyboard.type('x');
  const gone = await page.evaluate(() => document.querySelector('.cm-ghost') === null);
  check(gone, 'the ghost text stayed after typing');
  await page.waitForFunction(() => document.querySelector('.cm-editor').dataset.infill === 'running', null, { timeout: 10_000 });
  await page.waitForFunction(() => ['done', 'error'].includes(document.querySelector('.cm-editor').dataset.infill), null, { timeout: GEN_TIMEOUT });
  const again = await page.locator('#infill-stats').textContent();
  log('after typing "x":', again);
  check(/computed\)/.test(again), `no new request after typing: ${again}`);
  await page.keyboard.press('Escape');
  const spm = await page.locator('#infill-order').inputValue();
  check(spm === 'spm', `default order ${spm}`);
});

step('chat', async ({ page, shot }) => {
  await page.click('#tab-chat');
  await setValue(page, '#s-max', 16);
  for (const [i, q] of ['Write a Python function that adds two numbers.', 'Now one that multiplies them.'].entries()) {
    await setValue(page, '#chat-input', q);
    await page.keyboard.press('Enter');
    await page.waitForFunction((n) => {
      const a = document.querySelectorAll('#messages .msg.assistant');
      return a.length === n && ['done', 'error'].includes(a[n - 1].dataset.state);
    }, i + 1, { timeout: GEN_TIMEOUT });
  }
  const msgs = await page.evaluate(() => [...document.querySelectorAll('#messages .msg')].map((m) => ({ cls: m.className, state: m.dataset.state ?? '', text: m.querySelector('.body').textContent })));
  log('chat:', JSON.stringify(msgs));
  check(msgs.length === 4, `${msgs.length} messages`);
  check(msgs.map((m) => m.cls).join(',') === 'msg user,msg assistant,msg user,msg assistant', `order ${msgs.map((m) => m.cls)}`);
  check(msgs.filter((m) => m.cls.includes('assistant')).every((m) => m.state === 'done' && m.text.length > 0), 'an answer is missing');
  // Model output is text: no element other than the renderer's own (p, pre, code) in a body.
  const tags = await page.evaluate(() => [...new Set([...document.querySelectorAll('#messages .body *')].map((e) => e.tagName))]);
  check(tags.every((t) => ['P', 'PRE', 'CODE'].includes(t)), `unexpected elements in messages: ${tags}`);
  await shot('chat');
});

step('invalid-file', async ({ page, shot }) => {
  await page.click('input[name=source][value=file]');
  await page.setInputFiles('#file-input', { name: 'not-a-model.gguf', mimeType: 'application/octet-stream', buffer: Buffer.from('GGUF this is not a model at all') });
  await page.waitForSelector('#banner:not([hidden])', { timeout: MODEL_TIMEOUT });
  const banner = await page.locator('#banner').textContent();
  log('banner:', banner);
  check(/not a valid GGUF/.test(banner), `banner: ${banner}`);
  await shot('invalid-file');
});

step('local-file', async ({ page }) => {
  await page.setInputFiles('#file-input', join(ROOT, 'models/codellama-demo.gguf'));
  await waitModel(page);
  const status = await page.locator('#model-status').textContent();
  check(status.startsWith('codellama-demo.gguf'), `status: ${status}`);
  check(await page.locator('#banner').isHidden(), 'the error banner is still shown');
  await page.click('#tab-complete');
  await page.click('#complete-btn');
  await page.waitForFunction(() => document.querySelector('#complete-out').dataset.state === 'done', null, { timeout: GEN_TIMEOUT });
  log('generated after the local load:', JSON.stringify(await page.locator('#complete-out .generated').textContent()));
});

step('offline', async ({ page, context, shot }) => {
  await page.evaluate(async () => {
    await navigator.serviceWorker.ready;
  });
  await context.setOffline(true);
  await page.reload({ waitUntil: 'load' });
  await waitModel(page);
  const max = await page.locator('#s-max').inputValue();
  check(max === '16', `sampling settings not restored after the reload (max tokens ${max})`);
  await page.click('#complete-btn');
  await page.waitForFunction(() => document.querySelector('#complete-out').dataset.state === 'done', null, { timeout: GEN_TIMEOUT });
  log('offline status:', await page.locator('#model-status').textContent());
  await shot('offline');
  await context.setOffline(false);
});

step('stored-models', async ({ page }) => {
  await page.click('#cached summary');
  await page.waitForSelector('#cached-list li button', { timeout: 10_000 });
  const items = await page.locator('#cached-list li').allTextContents();
  log('stored:', JSON.stringify(items));
  check(items.some((t) => t.includes('codellama-demo.gguf') && /3\.44 MB/.test(t)), `stored models: ${items}`);
  await page.locator('#cached-list li button').first().click();
  await page.waitForFunction(() => !document.querySelector('#cached-list li button'), null, { timeout: 10_000 });
  await page.click('#cached summary');
});

step('narrow', async ({ page, shot }) => {
  await page.setViewportSize({ width: 420, height: 900 });
  await page.click('#tab-chat');
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  check(overflow <= 0, `the page scrolls sideways by ${overflow}px at 420px`);
  await shot('narrow');
  await page.setViewportSize({ width: 1280, height: 800 });
});

step('model-url', async ({ page, shot, other }) => {
  // A model from another origin, by URL, with markup in the URL: it is shown as text, and the
  // final check allows exactly this URL as the one request to another origin.
  await page.click('input[name=source][value=url]');
  await setValue(page, '#url-input', other.modelUrl);
  await page.click('#load-btn');
  await waitModel(page);
  const status = await page.locator('#model-status').textContent();
  const markup = await page.locator('#model-status b, #model-status img').count();
  log('status after the URL load:', JSON.stringify(status));
  check(status.includes('<b>x</b>') && markup === 0, `the URL was not shown as plain text: ${status} (${markup} elements)`);
  await page.click('#tab-complete');
  await page.click('#complete-btn');
  await page.waitForFunction(() => document.querySelector('#complete-out').dataset.state === 'done', null, { timeout: GEN_TIMEOUT });
  await shot('model-url');
});

step('server', async ({ page, shot, other }) => {
  // The "Server" source against a real llama-server (llama.cpp's own, scripts/llama-server.sh)
  // serving the demo model; the tokenizer comes from the page's own copy of the demo model (its
  // GGUF header only). Last: the page reconnects to the server on later visits.
  other.llama = await startLlamaServer({ model: join(ROOT, 'models/codellama-demo.gguf'), ctx: 512, log });
  await page.click('#source-server');
  await setValue(page, '#server-url', `${other.llama.url}/v1`);
  await page.click('#load-btn');
  await page.waitForFunction(() => document.body.dataset.engine === 'remote' && document.body.dataset.model === 'ready', null, { timeout: MODEL_TIMEOUT });
  const info = await page.locator('#server-info').textContent();
  log('server info:', info.replace(/\s+/g, ' '));
  check(/llama\.cpp/.test(info), `the server panel names the flavor: ${info}`);
  await page.click('#tab-complete');
  await setValue(page, '#s-temperature', 0);
  await setValue(page, '#s-max', 12);
  await setValue(page, '#prompt', 'def add(a, b):');
  const bodies = [];
  const onRequest = (r) => r.url() === `${other.llama.url}/v1/completions` && bodies.push(JSON.parse(r.postData()));
  page.on('request', onRequest);
  await page.click('#complete-btn');
  await page.waitForFunction(() => ['done', 'error'].includes(document.querySelector('#complete-out').dataset.state), null, { timeout: GEN_TIMEOUT });
  page.off('request', onRequest);
  const stats = await page.locator('#complete-stats').textContent();
  const text = await page.locator('#complete-out .generated').textContent();
  log('server completion:', JSON.stringify(text), '|', stats);
  check(await page.evaluate(() => document.querySelector('#complete-out').dataset.state) === 'done', `completion via the server: ${stats}`);
  // The same request body (token ids) straight to the server gives the same greedy text.
  check(bodies.length === 1 && Array.isArray(bodies[0].prompt), `one /v1/completions request with token ids: ${JSON.stringify(bodies).slice(0, 200)}`);
  const direct = await other.llama.json('/v1/completions', { ...bodies[0], stream: false, stream_options: undefined });
  check(direct.status === 200, `direct request: ${direct.status}`);
  check(text === direct.value.choices[0].text, `playground text ${JSON.stringify(text)} vs the server's ${JSON.stringify(direct.value.choices[0].text)}`);
  await shot('server');
});

// ------------------------------------------------------------------------------------------------

async function main() {
  check(existsSync(join(DIST, 'index.html')), `${DIST}/index.html is missing: run scripts/build-playground.sh`);
  const wanted = process.argv.slice(2);
  const server = await startServer({ mounts: { '/': DIST } });
  const origin = server.url;
  // A second origin (another port) serving the demo model, for the model-url step.
  const server2 = await startServer({ mounts: { '/m/': join(ROOT, 'models') } });
  const other = { modelUrl: `${server2.url}/m/codellama-demo.gguf?name=<b>x</b>` };
  const browser = await Browser.launch({ outDir: SHOTS, name: 'playground', viewport: { width: 1280, height: 800 } });
  const context = browser.context;
  const requests = [];
  const csp = [];
  context.on('request', (r) => requests.push(r.url()));
  context.on('console', (m) => /Content Security Policy/i.test(m.text()) && csp.push(m.text()));
  const shot = (label) => browser.screenshot(page, label);
  let page;
  const results = [];
  try {
    // Without WebGPU: a clear message, no load attempt.
    const bare = await browser.open(`${origin}/`, { hideWebGpu: true, waitForReady: false });
    await bare.waitForSelector('#banner:not([hidden])', { timeout: 30_000 });
    const msg = await bare.locator('#banner').textContent();
    log('without WebGPU:', msg);
    check(/WebGPU is not available/.test(msg) && /Chrome or Edge/.test(msg), `banner without WebGPU: ${msg}`);
    await browser.screenshot(bare, 'no-webgpu');
    await bare.close();

    page = await browser.open(`${origin}/`, { waitForReady: false });
    for (const s of steps) {
      if (wanted.length && !wanted.some((w) => s.name.startsWith(w)) && s.name !== 'load') continue;
      const t0 = Date.now();
      console.log(`== ${s.name}`);
      try {
        await s.fn({ page, context, shot, other });
        results.push([s.name, 'pass', (Date.now() - t0) / 1000]);
      } catch (e) {
        results.push([s.name, 'FAIL', (Date.now() - t0) / 1000, e?.message ?? String(e)]);
        console.log(`  FAILED: ${e?.stack ?? e}`);
        await shot(`failure-${s.name}`);
        for (const l of browser.logs.slice(-60)) console.log(`    ${l}`);
        if (s.name === 'load') break;
      }
    }
    // Every request stays on the page's origin, but for the model URL the user chose.
    const chosen = (u) => u.startsWith(`${server2.url}/m/codellama-demo.gguf?`) || (other.llama && u.startsWith(`${other.llama.url}/`));
    const foreign = requests.filter((u) => !u.startsWith(origin + '/') && !u.startsWith('data:') && !u.startsWith('blob:') && !chosen(u));
    const toChosen = requests.filter(chosen).length;
    const urlStepRan = results.some(([n, st]) => n === 'model-url' && st === 'pass');
    log(`${requests.length} requests, ${toChosen} to the chosen model URL, ${foreign.length} to other origins`);
    results.push(['no-foreign-requests', foreign.length === 0 && (toChosen > 0 || !urlStepRan) ? 'pass' : 'FAIL', 0, foreign.slice(0, 5).join(' ')]);
    results.push(['csp-clean', csp.length === 0 ? 'pass' : 'FAIL', 0, csp.slice(0, 3).join(' | ')]);
  } finally {
    await browser.close().catch(() => {});
    await server.close();
    await server2.close();
    await other.llama?.stop();
  }
  console.log('\nSummary (playground)');
  for (const [name, status, secs, err] of results) console.log(`  ${name.padEnd(20)} ${status.padEnd(5)} ${secs.toFixed(1).padStart(6)} s${err ? '  ' + err : ''}`);
  console.log(`  screenshots: ${SHOTS}/playground-*.png`);
  process.exitCode = results.some((r) => r[1] === 'FAIL') ? 1 : 0;
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
