#!/usr/bin/env bash
# Builds the playground (web/playground/) into web/playground/dist/: static files only.
#   1. the npm package: scripts/build-web.sh (SKIP_WEB=1 reuses web/dist; SKIP_WASM=1 is passed on),
#   2. npm ci in web/playground/ (CodeMirror, Vite, TypeScript; pinned by package-lock.json),
#   3. tsc --noEmit + vite build,
#   4. the bundled demo model → dist/models/codellama-demo.gguf,
#   5. dist/precache.json: every file with its sha256, and a version hashed from them all (the
#      service worker caches exactly these for offline use).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
APP=$ROOT/web/playground

if [[ ${SKIP_WEB:-0} != 1 ]]; then
  bash scripts/build-web.sh
fi
[[ -f web/dist/index.js ]] || { echo "build-playground: web/dist is missing (scripts/build-web.sh)" >&2; exit 1; }

if [[ ! -d $APP/node_modules/vite || $APP/package-lock.json -nt $APP/node_modules/.package-lock.json ]]; then
  echo "== npm ci (web/playground/)"
  npm ci --prefix "$APP" --no-audit --no-fund
fi

echo "== playground: tsc + vite build"
(cd "$APP" && ./node_modules/.bin/tsc --noEmit -p . && ./node_modules/.bin/vite build --logLevel warn)

echo "== bundled model"
mkdir -p "$APP/dist/models"
cp models/codellama-demo.gguf "$APP/dist/models/"

echo "== precache.json"
node - "$APP/dist" <<'JS'
const { createHash } = require('node:crypto');
const { readdirSync, readFileSync, statSync, writeFileSync } = require('node:fs');
const { join, relative } = require('node:path');
const dist = process.argv[2];
const files = [];
const walk = (d) => {
  for (const n of readdirSync(d).sort()) {
    const p = join(d, n);
    if (statSync(p).isDirectory()) walk(p);
    else if (n !== 'precache.json' && n !== 'sw.js') files.push(p);
  }
};
walk(dist);
const entries = files.map((p) => ({ url: './' + relative(dist, p).split('\\').join('/'), sha256: createHash('sha256').update(readFileSync(p)).digest('hex'), bytes: statSync(p).size }));
const version = createHash('sha256').update(JSON.stringify(entries)).digest('hex').slice(0, 16);
writeFileSync(join(dist, 'precache.json'), JSON.stringify({ version, files: ['./', ...entries.map((e) => e.url)], entries }, null, 1));
console.log(`${entries.length} files, ${entries.reduce((a, e) => a + e.bytes, 0)} bytes, version ${version}`);
JS
echo "playground built: $APP/dist"
