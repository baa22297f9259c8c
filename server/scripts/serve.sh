#!/usr/bin/env bash
# Builds Vigil (release) and serves the console and the API on http://localhost:3000, with SQLite and a
# local data directory. Settings come from .env (see .env.sample) or the environment.
#
# The first run on a fresh 2-core machine takes about 20 minutes (README, "Quick start"): PyTorch
# downloads while the browser bundle compiles, then the server compiles. Later runs start in seconds.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$VIGIL_ROOT"
STARTED=$SECONDS
say() { printf '\033[1;36m[serve]\033[0m %s\n' "$*"; }
fail() { printf '\033[1;31m[serve]\033[0m %s\n' "$*" >&2; exit 1; }

server/scripts/setup.sh rust
# PyTorch (about 5 GB from PyPI) downloads while the browser bundle compiles: the bundle does not need it.
server/scripts/setup.sh python &
PYTHON_SETUP=$!

say "building the console's browser bundle (release; 3–5 minutes the first time, seconds after)"
cargo run -q -p site -- --release || fail "the browser bundle did not build (see above)."
wait "$PYTHON_SETUP" || fail "the Python set-up failed (see above); run server/scripts/setup.sh python to retry it alone."
# The venv may be new: take its libtorch into LD_LIBRARY_PATH now.
source server/scripts/env.sh

say "building the server (release; about 15 minutes the first time, seconds after)"
BUILD_STARTED=$SECONDS
cargo build --release -p server --bin vigil || fail "the server did not build (see above)."
say "  done in $((SECONDS - BUILD_STARTED)) s"

if [ -f .env ]; then
  set -a
  # shellcheck disable=SC1091
  source .env
  set +a
fi
say "built in $((SECONDS - STARTED)) s; starting on http://${VIGIL_ADDR:-127.0.0.1:3000} (Ctrl+C stops it)"
exec target/release/vigil serve "$@"
