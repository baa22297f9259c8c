#!/usr/bin/env bash
# Runs every test: unit, integration (on SQLite and on PostgreSQL) and end-to-end (Playwright in Debian's
# Chromium). Installs what the tests need first, skipping what is there.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$VIGIL_ROOT"
STARTED=$SECONDS
LAST=$SECONDS
# Each step says what it does and, when the next begins, how long the last one took.
step() {
  [ "$LAST" != "$SECONDS" ] && printf '\033[1;36m[test]\033[0m   (%d s)\n' $((SECONDS - LAST))
  printf '\033[1;36m[test]\033[0m %s\n' "$*"
  LAST=$SECONDS
}

server/scripts/setup.sh rust
# PyTorch downloads while the test tools install and the browser bundle compiles (neither needs it).
server/scripts/setup.sh python &
PYTHON_SETUP=$!
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_install() {
  step "installing Debian packages: $*"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null ||
    { as_root apt-get update -q >/dev/null && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null; }
}

command -v chromium >/dev/null || apt_install chromium
if [ ! -x end2end/node_modules/.bin/wasm-opt ] || [ ! -x end2end/node_modules/.bin/playwright ] ||
   [ end2end/package-lock.json -nt end2end/node_modules/.package-lock.json ]; then
  step "installing npm packages in end2end/ (Playwright without browsers, wasm-opt; about a minute)"
  (cd end2end && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
fi

# A real S3-compatible server that checks signatures (s3s-fs 0.14.1; 0.15 needs a newer rustc).
if ! s3s-fs --version 2>/dev/null | grep -q "0.14.1"; then
  step "installing s3s-fs 0.14.1 (S3-compatible test server; about 3 minutes, once)"
  cargo install --locked s3s-fs --version 0.14.1 --features binary
fi
export VIGIL_REQUIRE_S3=1

# PostgreSQL: use one on loopback if it answers, otherwise start a private one on port 55432.
PG_TMP=""
cleanup() {
  [ -n "${SERVER_PID:-}" ] && kill "$SERVER_PID" 2>/dev/null || true
  if [ -n "$PG_TMP" ]; then
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_TMP/data" -m fast stop >/dev/null 2>&1 || true
    else "$PG_BIN/pg_ctl" -D "$PG_TMP/data" -m fast stop >/dev/null 2>&1 || true; fi
    rm -rf "$PG_TMP"
  fi
}
trap cleanup EXIT
if [ -z "${VIGIL_TEST_POSTGRES:-}" ]; then
  if command -v psql >/dev/null && psql "postgres://postgres@127.0.0.1:5432/postgres" -Atqc 'select 1' >/dev/null 2>&1; then
    export VIGIL_TEST_POSTGRES="postgres://postgres@127.0.0.1:5432/postgres"
  else
    ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || apt_install postgresql
    PG_BIN=$(dirname "$(ls /usr/lib/postgresql/*/bin/initdb | sort -V | tail -n 1)")
    PG_TMP=$(mktemp -d /tmp/vigil-pg.XXXXXX)
    step "starting a private PostgreSQL in $PG_TMP on port 55432"
    run_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
    [ "$(id -u)" = 0 ] && chown postgres "$PG_TMP"
    run_pg "$PG_BIN/initdb" -D "$PG_TMP/data" -U postgres -A trust >/dev/null
    run_pg "$PG_BIN/pg_ctl" -D "$PG_TMP/data" -l "$PG_TMP/log" -w \
      -o "-p 55432 -k $PG_TMP -c listen_addresses=127.0.0.1" start >/dev/null
    export VIGIL_TEST_POSTGRES="postgres://postgres@127.0.0.1:55432/postgres"
  fi
fi
export VIGIL_REQUIRE_POSTGRES=1

step "building the console's browser bundle (cargo run -p site; 2 minutes the first time)"
cargo run -q -p site
step "waiting for the Python set-up (PyTorch, weights, backbone)"
wait "$PYTHON_SETUP" || { echo "the Python set-up failed (see above); run server/scripts/setup.sh python to retry it" >&2; exit 1; }
# The venv may be new: take its libtorch into LD_LIBRARY_PATH now.
source server/scripts/env.sh

step "set-up is idempotent: a second run installs nothing and says so; an unchanged site is not rebuilt"
AGAIN=$(server/scripts/setup.sh 2>&1) || { echo "$AGAIN"; exit 1; }
echo "$AGAIN"
if ! grep -q "nothing to do" <<<"$AGAIN" || grep -Eq "installing|exporting|adding" <<<"$AGAIN"; then
  echo "a second set-up run did work it should have skipped (above)" >&2; exit 1
fi
AGAIN=$(cargo run -q -p site 2>&1) || { echo "$AGAIN"; exit 1; }
grep -q "has not changed since the last build" <<<"$AGAIN" || { echo "$AGAIN"; echo "an unchanged site was built again" >&2; exit 1; }

step "layers: no import cycles, no file over 600 lines (server/scripts/check_layers.py)"
python3 server/scripts/check_layers.py

step "unit and integration tests (SQLite and PostgreSQL at $VIGIL_TEST_POSTGRES)"
cargo test -p app -p server

# The edge agent's gRPC client is generated from server/proto at test time (grpcio-tools); Pillow decodes images.
if ! .venv/bin/python -c "import grpc, grpc_tools, PIL" 2>/dev/null; then
  step "installing grpcio 1.85.4, grpcio-tools 1.85.4 and Pillow 13.0.0 into .venv"
  .venv/bin/pip install --quiet --disable-pip-version-check "grpcio==1.85.4" "grpcio-tools==1.85.4" "pillow==13.0.0"
fi
step "edge agent through Python's grpcio (target/debug/vigil edge serve on a Unix socket)"
.venv/bin/python end2end/edge_agent_test.py --vigil target/debug/vigil
# The folder watch publishes to MQTT: the test starts its own Mosquitto (Debian's) on a free port.
command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || apt_install mosquitto
if ! .venv/bin/python -c "import paho.mqtt, sys; sys.exit(paho.mqtt.__version__ != '2.2.0')" 2>/dev/null; then
  step "installing paho-mqtt 2.2.0 into .venv"
  .venv/bin/pip install --quiet --disable-pip-version-check "paho-mqtt==2.2.0"
fi
step "edge agent on the line: a watched folder to MQTT and a webhook, through a broker restart and a SIGKILL"
.venv/bin/python end2end/edge_watch_test.py target/debug/vigil

E2E_DIR=$(mktemp -d /tmp/vigil-e2e.XXXXXX)
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# The API's bootstrap key (boto3 signs with it), the console's admin password (Playwright signs in with it)
# the folder disk imports may read (the MVTec test writes under the system's temporary folder), and one S3
# endpoint a console import may name (a closed port: the import is refused up front as unreachable).
export VIGIL_E2E_ACCESS_KEY_ID="AKIDVIGILE2E" VIGIL_E2E_SECRET_ACCESS_KEY="vigil-e2e-secret-$RANDOM$RANDOM"
export VIGIL_E2E_ADMIN_PASSWORD="vigil-e2e-admin-$RANDOM$RANDOM"
VIGIL_ADDR="127.0.0.1:$PORT" DATABASE_URL="sqlite://$E2E_DIR/vigil.db" VIGIL_DATA_DIR="$E2E_DIR/data" \
  VIGIL_ACCESS_KEY_ID="$VIGIL_E2E_ACCESS_KEY_ID" VIGIL_SECRET_ACCESS_KEY="$VIGIL_E2E_SECRET_ACCESS_KEY" \
  VIGIL_ADMIN_PASSWORD="$VIGIL_E2E_ADMIN_PASSWORD" VIGIL_IMPORT_ROOT="${TMPDIR:-/tmp}" \
  VIGIL_S3_ALLOWED_ENDPOINTS="http://127.0.0.1:9" \
  VIGIL_TORCH_THREADS=1 target/debug/vigil serve >"$E2E_DIR/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 120); do
  curl -fsS "http://127.0.0.1:$PORT/signin" >/dev/null 2>&1 && break
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$E2E_DIR/server.log"; exit 1; }
  sleep 0.5
done
# The browser tests first: 00-first-run.spec.ts meets the fresh server's empty projects page, as a new user does.
step "browser tests against http://127.0.0.1:$PORT"
(cd end2end && VIGIL_E2E_URL="http://127.0.0.1:$PORT" npx playwright test) || { tail -n 50 "$E2E_DIR/server.log"; exit 1; }
# boto3 pinned with its botocore: botocore releases after 1.40.60 no longer carry the lookoutvision model.
if ! .venv/bin/python -c "import boto3, botocore, sys; sys.exit(botocore.__version__ != '1.40.60')" 2>/dev/null; then
  step "installing boto3 1.40.60 with botocore 1.40.60 into .venv"
  .venv/bin/pip install --quiet --disable-pip-version-check "boto3==1.40.60" "botocore==1.40.60"
fi
step "LFV API through boto3 against http://127.0.0.1:$PORT"
VIGIL_E2E_URL="http://127.0.0.1:$PORT" .venv/bin/python end2end/boto3_smoke.py || { tail -n 50 "$E2E_DIR/server.log"; exit 1; }

step "all tests passed in $((SECONDS - STARTED)) s"
