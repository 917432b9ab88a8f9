#!/usr/bin/env bash
# Fuzzes the GGUF reader (whole and chunked feeding, whole and piece mode, compared), the
# tokenizer (encode/decode round trip, arbitrary ids) and the prompt builders with cargo-fuzz
# (libFuzzer, nightly toolchain). Not part of scripts/test.sh: it runs for as long as asked.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET (default 3600)] [TARGET ...]
#   FUZZ_JOBS=N      libFuzzer -fork=N: N worker processes per target (default 1)
#
# Corpora: crate/fuzz/corpus/<target>/: the committed seeds (`seed-*`: small GGUF files from
# scripts/make_fuzz_seeds.py, hand-written texts, and a coverage-minimised corpus of earlier
# runs, `seed-fz-*`); what a run adds is git-ignored. Crashes, timeouts and out-of-memory inputs
# land in crate/fuzz/artifacts/<target>/ and make the script fail. Prints, per target, the
# executions, the wall time and libFuzzer's final line.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-3600}
shift || true
TARGETS=("$@")
[[ ${#TARGETS[@]} -gt 0 ]] || TARGETS=(gguf_reader tokenizer prompts)
JOBS=${FUZZ_JOBS:-1}

rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked

cd crate
cargo +nightly fuzz build -O
bin=fuzz/target/x86_64-unknown-linux-gnu/release
status=0
for t in "${TARGETS[@]}"; do
  maxlen=4096
  [[ $t == gguf_reader ]] && maxlen=65536
  echo "== $t (${SECS} s, ${JOBS} job(s))"
  mkdir -p "fuzz/artifacts/$t" "fuzz/corpus/$t"
  log=fuzz/artifacts/$t.log
  start=$(date +%s)
  fork=()
  [[ $JOBS -gt 1 ]] && fork=(-fork="$JOBS")
  "$bin/$t" "fuzz/corpus/$t" "${fork[@]}" -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 \
    -malloc_limit_mb=2048 -max_len=$maxlen -print_final_stats=1 -artifact_prefix="fuzz/artifacts/$t/" \
    >"$log" 2>&1 || status=1
  echo "wall $(( $(date +%s) - start )) s"
  grep -E '^#[0-9]+' "$log" | tail -1 || true
  grep -E 'stat::number_of_executed_units' "$log" || true
  if ls "fuzz/artifacts/$t" | grep -qE '^(crash|timeout|oom|leak|slow-unit)-'; then
    echo "fuzz: $t found a problem: $(ls "fuzz/artifacts/$t")"
    status=1
  fi
done
exit $status
