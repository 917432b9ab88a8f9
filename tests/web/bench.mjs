// `codellama bench` in the browser: runs `engine.bench()` of the npm package (web/dist) in
// headless Chromium (Debian's /usr/bin/chromium through playwright-core; WebGPU on SwiftShader)
// and prints the report, the JSON object `codellama bench --json` prints natively, so the two
// can be set side by side on one machine.
//
//   node tests/web/bench.mjs [--shape 7b|small] [--layers N] [--quant q4_0|q4_k_m] [--prompt-tokens N]
//                            [--decode-tokens N] [--prefill-chunk N] [--worker] [--native]
//
// Defaults are `codellama bench`'s (32 layers, 512 prompt tokens, 128 decoded, batches of 128).
// --worker runs it in the Worker engine; --native also runs `codellama bench --json` with the
// same options (CODELLAMA_BIN, else target/release or target/debug) after the browser and prints
// both as one JSON object `{ "browser": ..., "native": ... }`. The phases' log lines go to
// stderr, the JSON to stdout. Needs web/dist (bash scripts/build-web.sh).

import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { Browser, inPage } from './harness.mjs';
import { startServer } from './server.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, '../..');
const DIST = join(ROOT, 'web/dist');

const FLAGS = {
  '--shape': ['shape', String],
  '--layers': ['layers', Number],
  '--quant': ['quant', String],
  '--prompt-tokens': ['promptTokens', Number],
  '--decode-tokens': ['decodeTokens', Number],
  '--prefill-chunk': ['prefillChunk', Number],
};

function parseArgs(argv) {
  const opts = {};
  let worker = false;
  let native = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--worker') worker = true;
    else if (a === '--native') native = true;
    else if (a === '-h' || a === '--help') {
      console.log('usage: node tests/web/bench.mjs [--shape 7b|small] [--layers N] [--quant q4_0|q4_k_m] [--prompt-tokens N] [--decode-tokens N] [--prefill-chunk N] [--worker] [--native]');
      process.exit(0);
    } else if (a in FLAGS) {
      const [key, conv] = FLAGS[a];
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      opts[key] = conv(argv[++i]);
      if (conv === Number && !(Number.isInteger(opts[key]) && opts[key] > 0)) throw new Error(`${a} needs a positive integer`);
    } else throw new Error(`unknown argument ${a}`);
  }
  return { opts, worker, native };
}

/** `codellama bench --json` with the same options (the CLI's flag names); its log lines go to
 *  this process's stderr unless `quiet`. */
export function nativeBench(bin, opts, { quiet = false } = {}) {
  const args = ['bench', '--json'];
  for (const [flag, [key]] of Object.entries(FLAGS)) if (opts[key] !== undefined) args.push(flag, String(opts[key]));
  const out = execFileSync(bin, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', quiet ? 'pipe' : 'inherit'], maxBuffer: 16 << 20 });
  return JSON.parse(out.trim());
}

export function findCodellamaBin() {
  const cands = [process.env.CODELLAMA_BIN, join(ROOT, 'target/release/codellama'), join(ROOT, 'target/debug/codellama')].filter(Boolean);
  return cands.find((p) => existsSync(p)) ?? null;
}

async function main() {
  const { opts, worker, native } = parseArgs(process.argv.slice(2));
  if (!existsSync(join(DIST, 'index.js'))) throw new Error(`${DIST}/index.js is missing: run bash scripts/build-web.sh`);
  if (!process.env.XDG_RUNTIME_DIR) process.env.XDG_RUNTIME_DIR = '/tmp';
  const server = await startServer({ mounts: { '/': join(HERE, 'pages'), '/pkg/': DIST } });
  const browser = await Browser.launch({ name: 'bench' });
  let browserReport;
  try {
    const page = await browser.open(`${server.url}/index.html?title=bench`);
    page.on('console', (m) => {
      if (m.text().startsWith('bench: ')) console.error(m.text());
    });
    browserReport = await inPage(
      page,
      async ({ opts, worker }) => {
        const engine = worker ? await CL.createWorkerEngine() : await CL.createEngine();
        try {
          const t0 = performance.now();
          const at = () => `${((performance.now() - t0) / 1000).toFixed(1)} s`;
          return await engine.bench({ ...opts, onLog: (line) => console.log(`bench: [${at()}] ${line}`) });
        } finally {
          await engine.dispose();
        }
      },
      { opts, worker },
      3_600_000,
    );
  } catch (e) {
    for (const l of browser.logs.slice(-40)) console.error(`  ${l}`);
    throw e;
  } finally {
    await browser.close().catch(() => {});
    await server.close();
  }
  if (!native) {
    console.log(JSON.stringify(browserReport));
    return;
  }
  const bin = findCodellamaBin();
  if (bin === null) throw new Error('--native needs the codellama CLI (CODELLAMA_BIN, or cargo build --release --bin codellama)');
  console.error(`native: ${bin}`);
  console.log(JSON.stringify({ browser: browserReport, native: nativeBench(bin, opts) }));
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((e) => {
    console.error(e?.stack ?? String(e));
    process.exit(1);
  });
}
