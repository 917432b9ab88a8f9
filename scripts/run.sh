#!/usr/bin/env bash
# Builds everything and serves the playground (web/playground/) with the bundled demo model on
# http://127.0.0.1:$PORT/ (default 8080); open it in Chrome or Edge (WebGPU). Ctrl+C stops it.
#
#   scripts/run.sh          the playground
#   scripts/run.sh --cli    instead: the `codellama` CLI on the bundled model (completion,
#                           infill, chat on the GPU engine; lavapipe where there is no GPU)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
MODEL=models/codellama-demo.gguf

if [[ ${1:-} == --cli ]]; then
  cargo build --release --bin codellama
  CL=${CARGO_TARGET_DIR:-target}/release/codellama
  # Vulkan's window-system probing wants a runtime dir (else lavapipe prints an error per device).
  [[ -n ${XDG_RUNTIME_DIR:-} && -d ${XDG_RUNTIME_DIR} ]] || export XDG_RUNTIME_DIR="$(mktemp -d)"
  set -x
  "$CL" info "$MODEL" | head -12
  "$CL" complete -m "$MODEL" --temperature 0 --max-tokens 48 --stats "def fibonacci(n):"
  "$CL" infill -m "$MODEL" --max-tokens 32 --stats \
    --prefix $'def maximum(values):\n    best = values[0]\n    for v in values:\n        if v > best:\n' \
    --suffix $'    return best\n'
  "$CL" chat -m "$MODEL" --temperature 0 --max-tokens 96 --stats \
    "Write a Python function that returns the sum of a list of numbers."
  exit
fi

bash scripts/build-playground.sh
echo
echo "The playground: open the URL below in Chrome or Edge 113+ (WebGPU). Ctrl+C stops the server."
exec node tests/web/server.mjs --port "${PORT:-8080}" web/playground/dist
