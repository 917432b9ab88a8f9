#!/usr/bin/env bash
# Builds the CLI and runs the bundled demo model (models/codellama-demo.gguf: a small Code Llama
# trained by scripts/train/ on CPython's standard library) on the GPU engine (lavapipe where
# there is no GPU): a completion, an infill and an instruct chat answer, with timings.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release --bin codellama
CL=${CARGO_TARGET_DIR:-target}/release/codellama
MODEL=models/codellama-demo.gguf
set -x
"$CL" info "$MODEL" | head -12
"$CL" complete -m "$MODEL" --temperature 0 --max-tokens 48 --stats "def fibonacci(n):"
"$CL" infill -m "$MODEL" --max-tokens 32 --stats \
  --prefix $'def maximum(values):\n    best = values[0]\n    for v in values:\n        if v > best:\n' \
  --suffix $'    return best\n'
"$CL" chat -m "$MODEL" --temperature 0 --max-tokens 96 --stats \
  "Write a Python function that returns the sum of a list of numbers."
