#!/usr/bin/env bash
# Installs what building and testing need on a fresh Debian machine that has
# only Rust (rustup), Python 3 and Node: Rust components and the wasm target,
# lavapipe (Vulkan on the CPU) for the GPU tests, Chromium + chromedriver and
# wasm-bindgen-cli for the browser tests, and a Python venv (.venv) with the
# fixture/reference tools. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[setup] %s\n' "$*"; }

if command -v rustup >/dev/null 2>&1; then
  have=$(rustup component list --installed 2>/dev/null || true)
  for c in rustfmt clippy; do
    grep -q "^$c" <<<"$have" || { log "rustup component add $c"; rustup component add "$c"; }
  done
  rustup target list --installed | grep -qx wasm32-unknown-unknown ||
    { log "rustup target add wasm32-unknown-unknown"; rustup target add wasm32-unknown-unknown; }
fi

apt_install() {
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  log "apt-get install $*"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}

# lavapipe (Mesa's Vulkan CPU driver): the adapter the GPU tests run on
# where no GPU is present.
if ! compgen -G '/usr/share/vulkan/icd.d/lvp_icd*.json' >/dev/null; then
  apt_install mesa-vulkan-drivers libvulkan1
fi

# Headless Chromium (WebGPU on SwiftShader) and its WebDriver: the browser the
# wasm32 tests run in (Debian's packages; never a downloaded browser).
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  apt_install chromium chromium-driver
fi

# wasm-bindgen-test-runner, the cargo runner of the wasm32 target
# (.cargo/config.toml): its version must equal the `wasm-bindgen` crate's in
# Cargo.lock.
wb_version=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
if [ -n "$wb_version" ] && ! wasm-bindgen --version 2>/dev/null | grep -qx "wasm-bindgen $wb_version"; then
  log "cargo install wasm-bindgen-cli --version $wb_version"
  cargo install wasm-bindgen-cli --version "$wb_version"
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  if ! "$PY" -m venv .venv >/dev/null 2>&1; then
    rm -rf .venv
    apt_install python3-venv
    "$PY" -m venv .venv
  fi
fi
if ! .venv/bin/python -c 'import gguf, numpy' >/dev/null 2>&1 ||
   [ scripts/requirements.txt -nt .venv/.installed ]; then
  log "pip install -r scripts/requirements.txt"
  .venv/bin/python -m pip install -q --disable-pip-version-check -r scripts/requirements.txt
  touch .venv/.installed
fi
log "ready"
