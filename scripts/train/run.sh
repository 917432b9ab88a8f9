#!/usr/bin/env bash
# The whole demo-model pipeline as committed: venv, corpus, tokenizer, four training phases with
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
$PY scripts/train/export.py --work "$WORK" --out "$WORK/phase2.gguf" --type Q8_0
# phase 3: the standard library + 70 PyPI sdists (pypi_corpus.py: permissive licences only), from
# phase 2's Q8_0 file read back (from_gguf.py; how the recorded run started), the same tokenizer;
# 3,500 steps of a 5,000-step schedule
PWORK=${TRAIN_PYPI_WORK:-build/demo-train-pypi}
$PY scripts/train/pypi_corpus.py --work "$WORK"
$PY scripts/train/corpus.py --src /usr/lib/python3.11 --work "$PWORK" --pypi "$WORK/pypi"
cp "$WORK/spm.model" "$PWORK/"
$PY scripts/train/from_gguf.py --gguf "$WORK/phase2.gguf" --spm "$WORK/spm.model" --out "$PWORK/ckpt-phase2.pt"
$PY scripts/train/train.py --work "$PWORK" "${SHAPE[@]}" "${DATA[@]}" --fim 0.7 --psm 0.5 \
  --snippet-fim 0.6 --init "$PWORK/ckpt-phase2.pt" --lr 1e-3 --warmup 50 --steps 5000 --stop-at 3500 \
  --seed 1236 --eval-every 500
cp "$PWORK/ckpt.pt" "$PWORK/ckpt-phase3.pt"
# phase 4: the names after "def"/"class" split as the prompt "def " ends, and snippets as files
$PY scripts/train/train.py --work "$PWORK" "${SHAPE[@]}" "${DATA[@]}" --fim 0.5 --psm 0.5 \
  --snippet-fim 0.6 --def-split 0.5 --snippet-lm 0.3 --init "$PWORK/ckpt-phase3.pt" --lr 3e-4 \
  --warmup 10 --steps 600 --seed 1240 --eval-every 200
$PY scripts/train/export.py --work "$PWORK" --out models/codellama-demo.gguf --type Q8_0
nice -n 19 cargo build --release -p codellama-webgpu --bin codellama
$PY scripts/train/check.py --work "$PWORK" --cli "${CARGO_TARGET_DIR:-target}/release/codellama" \
  --model models/codellama-demo.gguf --json "$PWORK/check.json"
