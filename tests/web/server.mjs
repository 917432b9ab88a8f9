// A tiny static HTTP server for the browser tests (node:http, no dependencies).
//
// - serves directories under URL prefixes ("mounts") with the right MIME types
//   (.wasm → application/wasm, .js/.mjs → text/javascript, .gguf → application/octet-stream)
// - single-range `Range` requests: 206 + Content-Range, 416 when unsatisfiable; strong ETag,
//   Last-Modified, Accept-Ranges, If-Range; HEAD
// - `Cache-Control: no-store` on everything, so the browser's HTTP cache never answers for us
//   (the OPFS test must see that no request reached the server)
// - test hooks: drop the connection once after N body bytes for a path; fail a path with a
//   status; an "offline" switch that destroys every socket on arrival; a slow mode (bytes per
//   tick) per path; virtual files (a header followed by zeros up to a size, never on disk);
//   a log of every request.
//
// Library use:   const s = await startServer({ mounts: { '/': dir, '/pkg/': dist } }); s.url ...
// Command line:  node server.mjs [--port N] [--host H] /prefix/=dir ...  (or just a dir for "/")

import { createServer } from 'node:http';
import { createReadStream, promises as fsp } from 'node:fs';
import { extname, join, resolve, sep } from 'node:path';
import { pathToFileURL } from 'node:url';

export const MIME = {
  '.html': 'text/html; charset=utf-8',
  '.htm': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.cjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.wasm': 'application/wasm',
  '.gguf': 'application/octet-stream',
  '.bin': 'application/octet-stream',
  '.txt': 'text/plain; charset=utf-8',
  '.md': 'text/plain; charset=utf-8',
  '.ts': 'text/plain; charset=utf-8',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
  '.ico': 'image/x-icon',
};

export function mimeOf(path) {
  return MIME[extname(path).toLowerCase()] ?? 'application/octet-stream';
}

/** Parses a single-range `Range` header against `size`: {start, end} (inclusive), 'unsatisfiable', or null (ignore). */
export function parseRange(header, size) {
  if (!header) return null;
  const m = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header);
  if (!m) return null; // multi-range or malformed: serve the whole file (allowed by RFC 9110)
  let start;
  let end;
  if (m[1] === '' && m[2] === '') return null;
  if (m[1] === '') {
    const n = Number(m[2]);
    if (n === 0) return 'unsatisfiable';
    start = Math.max(0, size - n);
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
    if (m[2] !== '' && Number(m[2]) < start) return null;
  }
  if (start >= size || size === 0) return 'unsatisfiable';
  return { start, end };
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function startServer({ mounts = {}, port = 0, host = '127.0.0.1', quiet = true } = {}) {
  // Longest prefix first.
  const table = Object.entries(mounts)
    .map(([prefix, dir]) => [prefix.endsWith('/') ? prefix : prefix + '/', resolve(dir)])
    .sort((a, b) => b[0].length - a[0].length);
  const log = [];
  const drops = new Map(); // path → bytes to send before dropping (once)
  const failures = new Map(); // path → status
  const slow = new Map(); // path → { bytesPerTick, tickMs }
  const virtual = new Map(); // path → { header: Buffer, size, mtime }
  const sockets = new Set();
  const state = { offline: false };

  async function resolveFile(path) {
    if (virtual.has(path)) {
      const v = virtual.get(path);
      return { virtual: v, size: v.size, mtimeMs: v.mtime };
    }
    for (const [prefix, dir] of table) {
      if (!path.startsWith(prefix) && path + '/' !== prefix) continue;
      const rel = path.slice(prefix.length);
      let file = resolve(join(dir, rel));
      if (file !== dir && !file.startsWith(dir + sep)) return null; // path traversal
      try {
        let st = await fsp.stat(file);
        if (st.isDirectory()) {
          file = join(file, 'index.html');
          st = await fsp.stat(file);
        }
        if (!st.isFile()) return null;
        return { file, size: st.size, mtimeMs: st.mtimeMs };
      } catch {
        return null;
      }
    }
    return null;
  }

  function bodyStream(f, start, end) {
    if (f.file) return createReadStream(f.file, { start, end, highWaterMark: 256 * 1024 });
    // Virtual: header bytes, then zeros.
    const { header } = f.virtual;
    async function* gen() {
      const zeros = Buffer.alloc(1 << 20);
      let pos = start;
      while (pos <= end) {
        if (pos < header.length) {
          const stop = Math.min(header.length - 1, end);
          yield header.subarray(pos, stop + 1);
          pos = stop + 1;
        } else {
          const n = Math.min(zeros.length, end - pos + 1);
          yield n === zeros.length ? zeros : zeros.subarray(0, n);
          pos += n;
        }
      }
    }
    return gen();
  }

  const server = createServer(async (req, res) => {
    const t0 = Date.now();
    const url = new URL(req.url, 'http://x');
    let path;
    try {
      path = decodeURIComponent(url.pathname);
    } catch {
      path = url.pathname;
    }
    const entry = {
      t: t0,
      method: req.method,
      path,
      url: req.url,
      range: req.headers['range'] ?? null,
      ifRange: req.headers['if-range'] ?? null,
      status: 0,
      bytes: 0,
      dropped: false,
      ms: 0,
    };
    log.push(entry);
    if (!quiet) res.on('close', () => console.log(`[server] ${entry.method} ${entry.url} ${entry.status} ${entry.bytes}B${entry.range ? ' ' + entry.range : ''}${entry.dropped ? ' DROPPED' : ''}`));
    const done = () => {
      entry.ms = Date.now() - t0;
    };
    res.on('close', done);

    if (state.offline) {
      entry.status = -1;
      entry.dropped = true;
      req.socket.destroy();
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      entry.status = 405;
      res.writeHead(405, { Allow: 'GET, HEAD' }).end();
      return;
    }
    if (failures.has(path)) {
      const f = failures.get(path);
      entry.status = f.status;
      if (--f.left <= 0) failures.delete(path);
      res.writeHead(entry.status, { 'Content-Type': 'text/plain', 'Cache-Control': 'no-store' }).end(`test hook: status ${entry.status}\n`);
      return;
    }
    const f = await resolveFile(path);
    if (!f) {
      entry.status = 404;
      res.writeHead(404, { 'Content-Type': 'text/plain', 'Cache-Control': 'no-store' }).end('not found\n');
      return;
    }
    const etag = `"${f.size.toString(16)}-${Math.floor(f.mtimeMs).toString(16)}"`;
    const headers = {
      'Content-Type': mimeOf(f.file ?? path),
      'Accept-Ranges': 'bytes',
      ETag: etag,
      'Last-Modified': new Date(f.mtimeMs).toUTCString(),
      'Cache-Control': 'no-store',
      'Access-Control-Allow-Origin': '*',
      'Access-Control-Expose-Headers': 'Content-Length, Content-Range, ETag, Accept-Ranges, Last-Modified',
    };
    // Test hook: a file that refuses other origins (the CORS case of the retry policy).
    if (path.includes('/nocors-')) delete headers['Access-Control-Allow-Origin'];
    let range = parseRange(req.headers['range'], f.size);
    const ifRange = req.headers['if-range'];
    if (range && ifRange && ifRange !== etag && ifRange !== headers['Last-Modified']) range = null;
    if (range === 'unsatisfiable') {
      entry.status = 416;
      res.writeHead(416, { ...headers, 'Content-Range': `bytes */${f.size}` }).end();
      return;
    }
    let start = 0;
    let end = f.size - 1;
    if (range) {
      ({ start, end } = range);
      entry.status = 206;
      headers['Content-Range'] = `bytes ${start}-${end}/${f.size}`;
    } else {
      entry.status = 200;
    }
    headers['Content-Length'] = String(Math.max(0, end - start + 1));
    res.writeHead(entry.status, headers);
    if (req.method === 'HEAD' || f.size === 0) {
      res.end();
      return;
    }

    // Hooks on the body.
    let dropAfter = null;
    if (drops.has(path)) {
      dropAfter = drops.get(path);
      drops.delete(path);
    }
    const sl = slow.get(path);
    let aborted = false;
    res.on('close', () => {
      if (!res.writableFinished) aborted = true;
    });
    try {
      outer: for await (const chunk0 of bodyStream(f, start, end)) {
        let chunk = chunk0;
        while (chunk.length > 0) {
          if (aborted) break outer;
          const piece = sl ? chunk.subarray(0, sl.bytesPerTick) : chunk;
          chunk = chunk.subarray(piece.length);
          if (dropAfter !== null && entry.bytes + piece.length >= dropAfter) {
            const n = dropAfter - entry.bytes;
            if (n > 0) await write(res, piece.subarray(0, n));
            entry.bytes += Math.max(0, n);
            entry.dropped = true;
            // Let the bytes reach the client, then cut the connection mid-body.
            await sleep(50);
            req.socket.destroy();
            return;
          }
          if (!(await write(res, piece))) {
            aborted = true;
            break outer;
          }
          entry.bytes += piece.length;
          if (sl) await sleep(sl.tickMs);
        }
      }
      if (!aborted) res.end();
    } catch (e) {
      entry.error = String(e?.message ?? e);
      req.socket.destroy();
    }
  });

  function write(res, buf) {
    return new Promise((resolveW) => {
      if (res.destroyed) return resolveW(false);
      const ok = res.write(buf);
      if (ok) return resolveW(true);
      const onDrain = () => {
        res.off('close', onClose);
        resolveW(true);
      };
      const onClose = () => {
        res.off('drain', onDrain);
        resolveW(false);
      };
      res.once('drain', onDrain);
      res.once('close', onClose);
    });
  }

  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.keepAliveTimeout = 2000;
  await new Promise((r, j) => {
    server.once('error', j);
    server.listen(port, host, r);
  });
  const addr = server.address();
  const base = `http://${host}:${addr.port}`;

  return {
    url: base,
    port: addr.port,
    log,
    /** Requests whose path equals `path` (or matches a RegExp / predicate). */
    requests(match) {
      if (match === undefined) return log.slice();
      if (typeof match === 'string') return log.filter((e) => e.path === match);
      if (match instanceof RegExp) return log.filter((e) => match.test(e.path));
      return log.filter(match);
    },
    clearLog() {
      log.length = 0;
    },
    /** Next GET of `path` sends `afterBytes` body bytes, then the socket is destroyed (once). */
    dropOnce(path, afterBytes) {
      drops.set(path, afterBytes);
    },
    /** Every request for `path` (or the next `times` ones) gets `status` (null to stop). */
    fail(path, status, times = Infinity) {
      if (status == null) failures.delete(path);
      else failures.set(path, { status, left: times });
    },
    /** Sends `path` `bytesPerTick` bytes every `tickMs` ms (null to stop). */
    slow(path, opts) {
      if (opts == null) slow.delete(path);
      else slow.set(path, { bytesPerTick: opts.bytesPerTick ?? 65536, tickMs: opts.tickMs ?? 10 });
    },
    /** Serves `path` as `header` followed by zeros up to `size` bytes (nothing on disk). */
    virtualFile(path, header, size, mtime = Date.now()) {
      virtual.set(path, { header: Buffer.from(header), size: Math.max(size, header.length), mtime });
    },
    /** Offline: every new request has its socket destroyed (no response at all). */
    setOffline(on) {
      state.offline = !!on;
      if (on) for (const s of sockets) s.destroy();
    },
    get offline() {
      return state.offline;
    },
    resetHooks() {
      drops.clear();
      failures.clear();
      slow.clear();
      state.offline = false;
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}

// Command line.
if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const args = process.argv.slice(2);
  let port = 8080;
  let host = '127.0.0.1';
  const mounts = {};
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === '--port') port = Number(args[++i]);
    else if (a === '--host') host = args[++i];
    else if (a.includes('=')) {
      const [p, d] = a.split('=');
      mounts[p] = d;
    } else mounts['/'] = a;
  }
  if (Object.keys(mounts).length === 0) mounts['/'] = '.';
  const s = await startServer({ mounts, port, host, quiet: false });
  console.log(`serving ${JSON.stringify(mounts)} at ${s.url}`);
}
