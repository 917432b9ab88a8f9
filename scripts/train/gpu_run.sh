#!/usr/bin/env bash
# Issue 19's larger demo model in one call of a lent GPU machine (scripts/train/README.md,
# "Training on a lent GPU"): unpack the work folder `gpu_pack.py pack` made, train from scratch
# for $MINUTES minutes, export Q8_0, and leave the GGUF in $OUT as pieces of at most 15 MiB with
# the training log. Runs under the machine's own python3 (PyTorch, numpy, sentencepiece there);
# gguf comes from the pack's wheel.
#
#   on the device:  bash scripts/train/gpu_run.sh        (carry: build/gpu-pack)
#   back here, AT the reply's files_at folder:
#     mkdir -p build/gpu && cat "$AT"/model.gguf.part* > build/gpu/model.gguf \
#       && (cd build/gpu && sha256sum -c "$AT"/model.sha256)
#
# TRAIN_DEVICE=cpu MINUTES=0.5 SHAPE="--dim 64 --ffn 128 --heads 2 --kv-heads 1 --layers 1"
# EXTRA="--batch 2 --workers 2 --eval-every 5" OUT=build/gpu-smoke runs the same steps here, small.
set -euo pipefail
cd "$(dirname "$0")/../.."
PACK=${PACK:-build/gpu-pack}
WORK=${WORK:-build/gpu-work}
OUT=${OUT:?set OUT to the folder that comes back}
MINUTES=${MINUTES:-6.5}
DEVICE=${TRAIN_DEVICE:-cuda}
PY=${PY:-python3}
# 21.1M parameters: Q8_0 22.5 MB, under issue 19's 24 MB (dim 512, 6 layers, 8 heads over 2 KV
# heads of 64, FFN 1408; vocabulary 4,096 with untied output).
read -r -a SHAPE <<<"${SHAPE:---dim 512 --ffn 1408 --heads 8 --kv-heads 2 --layers 6}"
# run.sh's data flags, and phase 4's mixture (snippet FIM, def split, snippets as files) from
# the first step.
DATA=(--line-fim 0.75 --short-fim 0.8 --one-line 0.75 --spm-top-start 1 --dedent 1
      --code-fim 0.7 --nonblank-mid --space-split 0.15 --fim 0.7 --psm 0.5 --snippet-fim 0.6
      --def-split 0.5 --snippet-lm 0.3)
read -r -a EXTRA <<<"${EXTRA:---batch 64 --workers 12 --threads 4 --bf16 --lr 1e-3 --warmup 100 --eval-every 500}"

mkdir -p "$OUT" /tmp/site
$PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
  "$PACK"/whl/*.whl
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1
$PY scripts/train/gpu_pack.py unpack --pack "$PACK" --work "$WORK"
{ nvidia-smi -L 2>/dev/null || true; $PY -c 'import torch; print("torch", torch.__version__)'; } \
  | tee "$OUT/machine.txt"
# --minutes sets the step count from the speed of steps 3..13, which the workers' prefetched
# batches can flatter; past MINUTES + 1.5 the run is interrupted and the last checkpoint (saved
# at every evaluation) is exported instead, so the call ends inside the device's 10 minutes.
LIMIT=${LIMIT:-$(awk -v m="$MINUTES" 'BEGIN { print int(m * 60 + 90) }')}
rc=0
timeout -s INT "$LIMIT" $PY scripts/train/train.py --work "$WORK" --device "$DEVICE" \
  "${SHAPE[@]}" "${DATA[@]}" "${EXTRA[@]}" --minutes "$MINUTES" --seed 1250 || rc=$?
cp "$WORK/train.log" "$OUT/"
if [ "$rc" -ne 0 ]; then
  echo "train.py stopped (exit $rc; 124: the $LIMIT s limit): exporting the last checkpoint" \
    | tee -a "$OUT/train.log"
  [ -f "$WORK/ckpt.pt" ] || exit 1
fi
$PY scripts/train/export.py --work "$WORK" --out "$WORK/model.gguf" --type Q8_0
(cd "$WORK" && sha256sum model.gguf) >"$OUT/model.sha256"
split -b 15M -d "$WORK/model.gguf" "$OUT/model.gguf.part"
ls -l "$OUT"
