// llama.cpp's own `llama-server` for the remote-engine test: found or built by
// scripts/llama-server.sh (LLAMA_SERVER_BIN overrides), started on 127.0.0.1 with a GGUF model,
// ready once GET /health answers 200; requests sent straight to it (no page in between) for the
// comparisons; stopped with the test.

import { execFileSync, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/** The llama-server binary: LLAMA_SERVER_BIN, else built (or found) by scripts/llama-server.sh. */
export function llamaServerBin() {
  if (process.env.LLAMA_SERVER_BIN) return process.env.LLAMA_SERVER_BIN;
  return execFileSync('bash', [resolve(ROOT, 'scripts/llama-server.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim();
}

/** A port nobody listens on right now (the OS picks it). */
export function freePort() {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.once('error', fail);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });
}

/**
 * Starts llama-server with `model` on 127.0.0.1. One slot (`-np 1`) so `/slots` describes the
 * one request in flight; `--slots` exposes that endpoint; the context is `ctx` tokens; `args`
 * are added to the command line.
 */
export async function startLlamaServer({ model, ctx = 2048, args: extra = [], log = () => {} }) {
  const bin = llamaServerBin();
  const port = await freePort();
  const args = ['-m', model, '--host', '127.0.0.1', '--port', String(port), '-c', String(ctx), '-np', '1',
    '--slots', '--no-webui', '-t', '2', '--seed', '1', ...extra];
  const proc = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines = [];
  const keep = (chunk) => {
    for (const l of String(chunk).split('\n')) if (l.trim()) lines.push(l);
    if (lines.length > 4000) lines.splice(0, lines.length - 4000);
  };
  proc.stdout.on('data', keep);
  proc.stderr.on('data', keep);
  let exited = null;
  proc.on('exit', (code, signal) => { exited = { code, signal }; });
  const url = `http://127.0.0.1:${port}`;
  const t0 = Date.now();
  for (;;) {
    if (exited) throw new Error(`llama-server exited (${JSON.stringify(exited)}):\n${lines.slice(-30).join('\n')}`);
    if (Date.now() - t0 > 120_000) {
      proc.kill('SIGKILL');
      throw new Error(`llama-server did not become ready in 120 s:\n${lines.slice(-30).join('\n')}`);
    }
    try {
      const r = await fetch(`${url}/health`);
      if (r.ok) break;
    } catch {
      /* not listening yet */
    }
    await new Promise((ok) => setTimeout(ok, 200));
  }
  log(`llama-server ready at ${url} in ${Date.now() - t0} ms (${bin} ${args.join(' ')})`);
  return {
    url,
    port,
    lines,
    async json(path, body) {
      const r = await fetch(`${url}${path}`, body === undefined ? {} : {
        method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body),
      });
      const text = await r.text();
      let value;
      try {
        value = JSON.parse(text);
      } catch {
        value = text;
      }
      return { status: r.status, value };
    },
    async stop() {
      if (exited) return;
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 5000);
      await new Promise((ok) => (exited ? ok() : proc.once('exit', ok)));
      clearTimeout(t);
    },
  };
}
