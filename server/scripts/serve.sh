#!/usr/bin/env bash
# Builds Vigil (release) and serves the console and the API on http://localhost:3000, with SQLite and a
# local data directory. Settings come from .env (see .env.sample) or the environment.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$VIGIL_ROOT"
"$VIGIL_ROOT/server/scripts/setup.sh"
if [ -f .env ]; then
  set -a
  # shellcheck disable=SC1091
  source .env
  set +a
fi
printf '\033[1;36m[serve]\033[0m building (release)\n'
cargo leptos build --release
exec target/release/vigil serve "$@"
