#!/usr/bin/env bash
# JS-level tests of the npm package `codellama-webgpu` in headless Chromium (Debian's
# /usr/bin/chromium driven by playwright-core; WebGPU on SwiftShader; no browser download):
#   1. npm ci in tests/web/ (playwright-core, vite; pinned, with a lockfile),
#   2. the package: scripts/build-web.sh (SKIP_BUILD=1 reuses web/dist as it is),
#   3. the `codellama` CLI (release) for the ≥ 1 GiB synthetic model of the memory test and the
#      native report the bench test compares field names with,
#   4. llama.cpp's llama-server (scripts/llama-server.sh) for the remote-engine test,
#   5. node tests/web/run.mjs: streaming, OpenAI adapter, abort, Worker host, OPFS offline
#      reload, Range resume, every error name, prefix reuse, engine.bench(), memory, Vite app,
#      the remote engine against llama-server;
#   6. the playground: scripts/build-playground.sh, node tests/web/playground.mjs (every mode,
#      stop, ghost text + Tab, multi-turn chat, local and invalid files, offline reload, no
#      request to another origin, no CSP violation; skipped with CODELLAMA_WEB_SKIP=playground).
# Arguments are passed to run.mjs (test names or prefixes). Environment:
#   CODELLAMA_WEB_SKIP=memory,vite   skip tests by name (CODELLAMA_WEB_SKIP_MEMORY=1: the memory test)
#   CODELLAMA_WEB_MEMORY_GENERATE=1  also generate a token with the synthetic model (slow)
#   CODELLAMA_WEB_VERBOSE=1          print the browser console of passing tests too
# Exit status non-zero when anything fails. Output (screenshots, results.json, generated models)
# in tests/web/out/.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
step() { printf '\n== %s\n' "$*"; }

[[ -x ${CHROMIUM:-/usr/bin/chromium} ]] || { echo "test-web: ${CHROMIUM:-/usr/bin/chromium} is missing (scripts/setup.sh installs Debian's chromium)" >&2; exit 1; }

if [[ ! -d tests/web/node_modules/playwright-core || ! -d tests/web/node_modules/vite \
      || tests/web/package-lock.json -nt tests/web/node_modules/.package-lock.json ]]; then
  step "npm ci (tests/web/)"
  npm ci --prefix tests/web --no-audit --no-fund
fi

if [[ ${SKIP_BUILD:-0} != 1 ]]; then
  step "package (scripts/build-web.sh)"
  bash scripts/build-web.sh
fi
[[ -f web/dist/index.js ]] || { echo "test-web: web/dist/index.js is missing (scripts/build-web.sh)" >&2; exit 1; }

skip=",${CODELLAMA_WEB_SKIP:-},"
need_cli=0
[[ $skip != *,memory,* && ${CODELLAMA_WEB_SKIP_MEMORY:-0} != 1 ]] && need_cli=1
[[ $skip != *,bench,* ]] && need_cli=1
[[ $skip != *,defaults,* ]] && need_cli=1
[[ $skip != *,remote,* ]] && need_cli=1
if [[ $need_cli == 1 && -z ${CODELLAMA_BIN:-} ]]; then
  step "codellama CLI (the memory test's synthetic model, the bench test's native report)"
  cargo build --release -p codellama-webgpu --bin codellama
  export CODELLAMA_BIN=$ROOT/target/release/codellama
fi

# llama.cpp's llama-server for the remote-engine test (built once into .cache/llama-cpp/, ~10-15
# minutes cold on 2 cores; later runs reuse the binary).
if [[ $skip != *,remote,* && ( $# -eq 0 || " $* " == *" remote"* ) && -z ${LLAMA_SERVER_BIN:-} ]]; then
  step "llama-server (scripts/llama-server.sh)"
  LLAMA_SERVER_BIN=$(bash scripts/llama-server.sh)
  export LLAMA_SERVER_BIN
fi

# Vulkan's window-system probing in Chromium's GPU process wants a runtime dir.
if [[ -z ${XDG_RUNTIME_DIR:-} || ! -d ${XDG_RUNTIME_DIR} ]]; then
  export XDG_RUNTIME_DIR="$(mktemp -d)"
fi

step "browser tests (tests/web/run.mjs)"
status=0
node tests/web/run.mjs "$@" || status=$?

# The playground end to end (tests/web/playground.mjs), unless tests were named or it is skipped.
if [[ $# -eq 0 && $skip != *,playground,* ]]; then
  step "playground (scripts/build-playground.sh, tests/web/playground.mjs)"
  SKIP_WEB=1 bash scripts/build-playground.sh
  node tests/web/playground.mjs || status=$?
fi
exit $status
