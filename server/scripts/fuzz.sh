#!/usr/bin/env bash
# Fuzzes the parsers that read what strangers send (server/fuzz: the SigV4 Authorization header with the
# canonical request, and a Ground Truth manifest line) for SECONDS each (default 60) and prints what each run
# did. A benchmark, not a test: it needs the nightly toolchain and cargo-fuzz, which it installs when missing.
# The corpus it grows stays in server/fuzz/corpus (the committed seeds are the start); a crash leaves its input
# in server/fuzz/artifacts and stops with the failing target's name.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$VIGIL_ROOT/server/fuzz"
SECONDS_EACH=${1:-60}
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
cargo +nightly fuzz build
for target in sigv4 manifest_line; do
  echo "[fuzz] $target for ${SECONDS_EACH} s"
  log=$(mktemp)
  if ! cargo +nightly fuzz run "$target" -- -max_total_time="$SECONDS_EACH" -print_final_stats=1 >"$log" 2>&1; then
    tail -n 40 "$log"
    echo "[fuzz] $target: a crash (input under server/fuzz/artifacts/$target/)"
    exit 1
  fi
  grep -E "stat::number_of_executed_units|stat::peak_rss_mb|cov:" "$log" | tail -n 3
  echo "[fuzz] $target: no crash; corpus $(ls "corpus/$target" | wc -l) inputs"
done
