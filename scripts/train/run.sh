#!/usr/bin/env bash
# The whole demo-model pipeline as committed: venv, corpus, tokenizer, two training phases with
# the recorded step counts, GGUF export, engine checks. CPU only; heavy steps under nice -n 19.
# See scripts/train/README.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV=${TRAIN_VENV:-/work/tools/train-venv}
WORK=${TRAIN_WORK:-build/demo-train}
[ -x "$VENV/bin/python" ] || { python3 -m venv "$VENV"; "$VENV/bin/pip" install -r scripts/train/requirements.txt; }
PY="nice -n 19 $VENV/bin/python"
$PY scripts/train/corpus.py --src /usr/lib/python3.11 --work "$WORK"
$PY scripts/train/tokenizer.py --work "$WORK" --vocab 4096
$PY scripts/train/train.py --work "$WORK" --steps 155
cp "$WORK/ckpt.pt" "$WORK/ckpt-phase1.pt"
$PY scripts/train/train.py --work "$WORK" --init "$WORK/ckpt-phase1.pt" --steps 159 \
  --lr 1.5e-3 --warmup 10 --seed 1235 --space-split 0.15
cp "$WORK/ckpt.pt" "$WORK/ckpt-phase2.pt"
$PY scripts/train/train.py --work "$WORK" --init "$WORK/ckpt-phase2.pt" --steps 1904 \
  --lr 1.5e-3 --warmup 20 --seed 1236 --space-split 0.15 --eval-every 100
$PY scripts/train/export.py --work "$WORK" --out models/codellama-demo.gguf --type Q8_0
nice -n 19 cargo build --release -p codellama-webgpu --bin codellama
$PY scripts/train/check.py --work "$WORK" --cli "${CARGO_TARGET_DIR:-target}/release/codellama" \
  --model models/codellama-demo.gguf --json "$WORK/check.json"
