#!/usr/bin/env bash
# Builds llama.cpp's own `llama-server` (the OpenAI-compatible server the remote-engine tests talk
# to) and prints the path of the binary. The sources are the llama.cpp tree that the PyPI sdist of
# `llama-cpp-python` vendors (PyPI is reachable from CI; GitHub is not), pinned by version and
# SHA-256 below. CMake and Ninja come from PyPI wheels in the project's venv (scripts/setup.sh).
#
# Everything lives in .cache/llama-cpp/ (ignored by git): the sdist, the build tree and
# bin/llama-server-<version>. A later run finds the binary and returns at once; a cold build
# takes ~10-15 minutes on 2 cores (only the llama-server target, CPU backend, static).
#
#   scripts/llama-server.sh            # build if needed, print the binary's path
#   scripts/llama-server.sh --version  # print the pinned llama-cpp-python version
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

VERSION=0.3.36
SHA256=832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e
SDIST=llama_cpp_python-$VERSION.tar.gz
CACHE=$ROOT/.cache/llama-cpp
BIN=$CACHE/bin/llama-server-$VERSION

if [[ ${1:-} == --version ]]; then echo "$VERSION"; exit 0; fi
log() { printf 'llama-server.sh: %s\n' "$*" >&2; }

if [[ -x $BIN ]]; then echo "$BIN"; exit 0; fi
mkdir -p "$CACHE/bin"
cd "$CACHE"

# 1. The sdist, located through PyPI's JSON API (`pip download --no-binary :all:` would also build
#    the sdist's build dependencies, CMake included, from source just to read its metadata).
if ! echo "$SHA256  $SDIST" | sha256sum -c --status 2>/dev/null; then
  log "downloading the llama-cpp-python $VERSION sdist from PyPI"
  url=$("$ROOT/.venv/bin/python" - "$VERSION" <<'PY'
import json, sys, urllib.parse, urllib.request
version = sys.argv[1]
api = "https://pypi.org/pypi/llama-cpp-python/json"
with urllib.request.urlopen(api, timeout=60) as r:
    meta = json.load(r)
sdists = [u for u in meta["releases"].get(version, []) if u["packagetype"] == "sdist"]
if not sdists:
    sys.exit(f"no sdist for llama-cpp-python {version}")
print(urllib.parse.urljoin(api, sdists[0]["url"]))
PY
)
  curl -fsSL --retry 3 -o "$SDIST.part" "$url"
  mv "$SDIST.part" "$SDIST"
  echo "$SHA256  $SDIST" | sha256sum -c --status || { log "$SDIST: SHA-256 mismatch"; exit 1; }
fi

# 2. The vendored llama.cpp tree.
SRC=$CACHE/llama_cpp_python-$VERSION/vendor/llama.cpp
if [[ ! -f $SRC/tools/server/server.cpp ]]; then
  log "unpacking $SDIST"
  tar -xzf "$SDIST"
fi

# 3. CMake and Ninja from the venv (PyPI wheels, scripts/requirements.txt).
export PATH=$ROOT/.venv/bin:$PATH
command -v cmake >/dev/null && command -v ninja >/dev/null ||
  { log "cmake/ninja missing from .venv (run scripts/setup.sh)"; exit 1; }

# 4. Only the server target: CPU backend, static libraries, no web UI, no TLS, no native -march
#    (the binary stays valid if the cache moves to another x86-64 machine).
log "building llama-server (llama.cpp from llama-cpp-python $VERSION; ~10-15 min on 2 cores)"
start=$(date +%s)
cmake -S "$SRC" -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_UI=OFF \
  -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_OPENSSL=OFF -DGGML_NATIVE=OFF >build-cmake.log 2>&1 ||
  { tail -n 30 build-cmake.log >&2; exit 1; }
nice cmake --build build --target llama-server -j "$(nproc)" >build.log 2>&1 ||
  { tail -n 40 build.log >&2; exit 1; }
cp build/bin/llama-server "$BIN.part"
mv "$BIN.part" "$BIN"
log "built in $(( $(date +%s) - start )) s: $BIN"
echo "$BIN"
