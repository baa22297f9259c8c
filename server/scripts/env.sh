# Sourced by the other scripts: one build environment everywhere, because torch-sys rebuilds (minutes)
# whenever a variable it watches changes. Users never set these by hand.
VIGIL_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export VIGIL_ROOT
export PATH="$VIGIL_ROOT/.venv/bin:$VIGIL_ROOT/end2end/node_modules/.bin:$HOME/.cargo/bin:$PATH"
# torch-sys finds libtorch inside the venv's PyTorch (the version tch 0.26 expects: 2.13.0).
export LIBTORCH_USE_PYTORCH=1
# Before set-up has created the venv there is nothing to add (and this file is sourced under `set -e`).
for TORCH_LIB in "$VIGIL_ROOT"/.venv/lib/python3*/site-packages/torch/lib; do
  if [ -d "$TORCH_LIB" ]; then
    export LD_LIBRARY_PATH="$TORCH_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    break
  fi
done
