#!/usr/bin/env bash
# Builds the CLI, generates a small Code Llama-shaped fixture model (random
# weights, real Code Llama vocabulary) and runs a completion and an infill on
# it. (The playground with a bundled trained demo model replaces this.)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
.venv/bin/python scripts/make_fixtures.py
cargo build --release --bin codellama
MODEL=tests/fixtures/generated/tiny-gqa-f32.gguf
echo "Note: $MODEL has random weights, so the generated text is noise; the trained demo model"
echo "and the playground replace this demonstration (issues 5 and 6)."
set -x
target/release/codellama info "$MODEL" | head -20
target/release/codellama complete -m "$MODEL" --max-tokens 24 --stats "def fibonacci(n):"
target/release/codellama infill -m "$MODEL" --max-tokens 16 --stats \
  --prefix $'def add(a, b):\n    ' --suffix $'\n    return c\n'
