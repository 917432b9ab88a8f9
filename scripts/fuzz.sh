#!/usr/bin/env bash
# Fuzzes the GGUF reader (whole and chunked feeding, whole and piece mode, compared), the
# tokenizer (encode/decode round trip, arbitrary ids) and the prompt builders with cargo-fuzz
# (libFuzzer, nightly toolchain). Not part of scripts/test.sh: it runs for as long as asked.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET (default 3600)] [TARGET ...]
#
# Corpora: crate/fuzz/corpus/<target>/ (seeds committed; the fuzzer adds what it finds, and
# `git status` shows them); crashes: crate/fuzz/artifacts/<target>/. Prints, per target, the
# executions, the wall time and libFuzzer's final line.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-3600}
shift || true
TARGETS=("$@")
[[ ${#TARGETS[@]} -gt 0 ]] || TARGETS=(gguf_reader tokenizer prompts)

rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
mkdir -p crate/fuzz/corpus/gguf_reader
# Seeds for the reader: the small committed fixture models, each prefixed with the two control
# bytes the target reads (chunk size, total length told or not).
for f in tests/fixtures/models/*.gguf tests/fixtures/vocab/*.gguf; do
  s=crate/fuzz/corpus/gguf_reader/seed-$(basename "$f")
  [[ -f $s || $(stat -c %s "$f") -gt 1048576 ]] && continue
  { printf '\x07\x01'; cat "$f"; } > "$s"
done

cd crate
for t in "${TARGETS[@]}"; do
  echo "== $t (${SECS} s)"
  log=fuzz/artifacts/$t.log
  mkdir -p fuzz/artifacts
  start=$(date +%s)
  cargo +nightly fuzz run "$t" "fuzz/corpus/$t" -- -max_total_time="$SECS" -timeout=10 \
    -rss_limit_mb=2048 -max_len=1048576 -print_final_stats=1 2>&1 | tee "$log" | grep -E '^#[0-9]+.*(DONE|pulse)' | tail -1 || true
  echo "wall $(( $(date +%s) - start )) s; $(grep -E 'stat::number_of_executed_units' "$log" || true)"
  grep -E 'ERROR|crash-|timeout-|oom-' "$log" && { echo "fuzz: $t found a problem (see $log)"; exit 1; }
done
