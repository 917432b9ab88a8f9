#!/usr/bin/env bash
# Builds the npm package `codellama-webgpu` into web/dist/:
#   1. npm ci in web/ (only when node_modules is missing or older than package-lock.json),
#   2. scripts/build-wasm.sh (cargo → wasm-bindgen → wasm-opt → web/src/wasm/),
#   3. tsc -p web (ES2022 modules + .d.ts → web/dist/),
#   4. copies the wasm-bindgen glue and the .wasm to web/dist/wasm/, and the two license
#      files to web/.
# Idempotent; downloads nothing but npm packages. SKIP_WASM=1 reuses web/src/wasm/ as it is.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WEB=$ROOT/web

if [[ ! -d $WEB/node_modules/typescript || $WEB/package-lock.json -nt $WEB/node_modules/.package-lock.json ]]; then
  echo "== npm ci (web/)"
  npm ci --prefix "$WEB" --no-audit --no-fund
fi

if [[ ${SKIP_WASM:-0} != 1 ]]; then
  echo "== wasm (scripts/build-wasm.sh)"
  bash "$ROOT/scripts/build-wasm.sh"
fi
for f in codellama_webgpu.js codellama_webgpu.d.ts codellama_webgpu_bg.wasm; do
  [[ -f $WEB/src/wasm/$f ]] || { echo "build-web: missing web/src/wasm/$f (run scripts/build-wasm.sh)" >&2; exit 1; }
done

echo "== tsc"
rm -rf "$WEB/dist"
"$WEB/node_modules/.bin/tsc" -p "$WEB"

echo "== wasm → dist/wasm"
mkdir -p "$WEB/dist/wasm"
cp "$WEB"/src/wasm/codellama_webgpu.js "$WEB"/src/wasm/codellama_webgpu_bg.wasm "$WEB/dist/wasm/"
cp "$WEB"/src/wasm/*.d.ts "$WEB/dist/wasm/"
# wasm-bindgen may emit JS snippets (inline_js / module imports) next to the glue.
[[ -d $WEB/src/wasm/snippets ]] && cp -r "$WEB/src/wasm/snippets" "$WEB/dist/wasm/"
# wasm-bindgen declares `[Symbol.dispose](): void` on its classes, which a consumer's
# `tsc --strict` without `skipLibCheck` rejects unless its lib has esnext.disposable: the
# published typings leave that member out (the method is still there at run time; the
# package never uses it).
sed -i '/\[Symbol\.dispose\]()/d' "$WEB"/dist/wasm/*.d.ts
# The licenses the package declares (package.json "license"), from the repository root.
cp "$ROOT/LICENSE-MIT" "$ROOT/LICENSE-APACHE" "$WEB/"

wasm=$WEB/dist/wasm/codellama_webgpu_bg.wasm
raw=$(stat -c %s "$wasm")
gz=$(gzip -9 -c "$wasm" | wc -c)
js=$(find "$WEB/dist" -name '*.js' -not -path '*/wasm/*' -exec cat {} + | wc -c)
total=$(du -sb "$WEB/dist" | cut -f1)
printf 'dist: %s bytes total; wasm %s bytes (%s gzipped, %.2f MiB); package JS %s bytes\n' \
  "$total" "$raw" "$gz" "$(awk -v g="$gz" 'BEGIN { print g / 1048576 }')" "$js"
