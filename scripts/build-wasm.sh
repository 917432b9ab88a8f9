#!/usr/bin/env bash
# Builds the browser module into web/src/wasm/ (gitignored):
#
#   1. cargo build of the library for wasm32-unknown-unknown with the size
#      profile (root Cargo.toml: [profile.wasm-release]);
#   2. wasm-bindgen --target web (the CLI must be the version of the
#      wasm-bindgen crate in Cargo.lock, or the glue does not match);
#   3. wasm-opt -Oz (binaryen from web/node_modules, `npm ci` there if missing);
#   4. prints the raw and gzip -9 sizes.
#
# Usage: scripts/build-wasm.sh [--profile NAME] [--out DIR] [--no-opt]
# Honours CARGO_TARGET_DIR. Idempotent; downloads nothing but npm packages.
set -euo pipefail
cd "$(dirname "$0")/.."

profile=wasm-release
out=web/src/wasm
opt=1
while [ $# -gt 0 ]; do
    case "$1" in
        --profile) profile="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        --no-opt) opt=0; shift ;;
        -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
        *) echo "build-wasm.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done

die() { echo "build-wasm.sh: $*" >&2; exit 1; }
size() { stat -c %s "$1"; }
gz() { gzip -9 -c "$1" | wc -c; }
human() { awk -v b="$1" 'BEGIN { printf "%.2f MiB (%d bytes)", b / 1048576, b }'; }

# The wasm-bindgen CLI must match the crate in Cargo.lock exactly.
lock_version=$(awk '$0 == "name = \"wasm-bindgen\"" { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
[ -n "$lock_version" ] || die "no wasm-bindgen package in Cargo.lock"
command -v wasm-bindgen >/dev/null ||
    die "wasm-bindgen CLI not found; install it with: cargo install wasm-bindgen-cli --version $lock_version --locked"
cli_version=$(wasm-bindgen --version | awk '{ print $2 }')
if [ "$cli_version" != "$lock_version" ]; then
    die "the wasm-bindgen CLI is $cli_version but Cargo.lock has wasm-bindgen $lock_version; install the matching CLI: cargo install wasm-bindgen-cli --version $lock_version --locked"
fi

wasm_opt=web/node_modules/.bin/wasm-opt
if [ "$opt" = 1 ] && [ ! -x "$wasm_opt" ]; then
    echo "== npm ci --prefix web (binaryen's wasm-opt)"
    npm ci --prefix web --no-audit --no-fund
    [ -x "$wasm_opt" ] || die "$wasm_opt is missing after npm ci (binaryen is a devDependency of web/package.json)"
fi

echo "== cargo build (wasm32-unknown-unknown, profile $profile)"
cargo build -p codellama-webgpu --lib --no-default-features \
    --target wasm32-unknown-unknown --profile "$profile"
target_dir=${CARGO_TARGET_DIR:-target}
wasm="$target_dir/wasm32-unknown-unknown/$profile/codellama_webgpu.wasm"
[ -f "$wasm" ] || die "cargo produced no $wasm"

echo "== wasm-bindgen $cli_version --target web -> $out"
rm -rf "$out"
mkdir -p "$out"
wasm-bindgen --target web --out-dir "$out" --out-name codellama_webgpu "$wasm"
bg="$out/codellama_webgpu_bg.wasm"
before=$(size "$bg")

if [ "$opt" = 1 ]; then
    echo "== wasm-opt -Oz ($($wasm_opt --version))"
    # The features rustc enables by default for wasm32-unknown-unknown.
    "$wasm_opt" -Oz \
        --enable-bulk-memory --enable-bulk-memory-opt --enable-mutable-globals \
        --enable-nontrapping-float-to-int --enable-sign-ext \
        --enable-reference-types --enable-multivalue \
        "$bg" -o "$bg.opt"
    mv "$bg.opt" "$bg"
fi

raw=$(size "$bg")
gzipped=$(gz "$bg")
js=$(size "$out/codellama_webgpu.js")
echo
echo "wasm (wasm-bindgen output): $(human "$before")"
echo "wasm (final):               $(human "$raw"), gzip -9 $(human "$gzipped")"
echo "JS glue:                    $(human "$js"), gzip -9 $(human "$(gz "$out/codellama_webgpu.js")")"
limit=$((3 * 1048576 / 2))
if [ "$gzipped" -gt "$limit" ]; then
    echo "build-wasm.sh: warning: the gzipped wasm is over the 1.5 MiB budget" >&2
fi
