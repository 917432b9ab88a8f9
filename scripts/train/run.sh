#!/usr/bin/env bash
# The whole demo-model pipeline as committed: venv, corpus, tokenizer, two training phases with
# the recorded step counts, GGUF export, engine checks. CPU only; heavy steps under nice -n 19.
# See scripts/train/README.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV=${TRAIN_VENV:-.venv-train}
WORK=${TRAIN_WORK:-build/demo-train}
[ -x "$VENV/bin/python" ] || { python3 -m venv "$VENV"; "$VENV/bin/pip" install -r scripts/train/requirements.txt; }
PY="nice -n 19 $VENV/bin/python"
SHAPE=(--dim 192 --ffn 512 --heads 3 --kv-heads 1)
DATA=(--line-fim 0.75 --short-fim 0.8 --one-line 0.75 --spm-top-start 1 --dedent 1
      --code-fim 0.7 --nonblank-mid --space-split 0.15)
$PY scripts/train/corpus.py --src /usr/lib/python3.11 --work "$WORK"
$PY scripts/train/tokenizer.py --work "$WORK" --vocab 4096
# phase 1: next-token + FIM (80% of rows) + instruct, from scratch
$PY scripts/train/train.py --work "$WORK" "${SHAPE[@]}" "${DATA[@]}" --fim 0.8 --psm 0.3 \
  --steps 4350 --seed 1234
cp "$WORK/ckpt.pt" "$WORK/ckpt-phase1.pt"
# phase 2: fresh AdamW from phase 1's weights; 60% of the FIM rows are whole-snippet examples
$PY scripts/train/train.py --work "$WORK" "${SHAPE[@]}" "${DATA[@]}" --fim 0.7 --psm 0.5 \
  --snippet-fim 0.6 --init "$WORK/ckpt-phase1.pt" --lr 1e-3 --warmup 20 --steps 2400 \
  --seed 1235 --eval-every 300
$PY scripts/train/export.py --work "$WORK" --out models/codellama-demo.gguf --type Q8_0
nice -n 19 cargo build --release -p codellama-webgpu --bin codellama
$PY scripts/train/check.py --work "$WORK" --cli "${CARGO_TARGET_DIR:-target}/release/codellama" \
  --model models/codellama-demo.gguf --json "$WORK/check.json"
