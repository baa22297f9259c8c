#!/usr/bin/env bash
# Builds the edge agent's own AWS IoT Greengrass V2 component, `vigil.EdgeAgent` (the component every model
# package depends on, as LFV's depended on aws.iot.lookoutvision.EdgeAgent):
#   OUT/vigil-edge-agent.zip                  the `vigil` binary, the libtorch libraries it loads (found with ldd
#                                             under .venv), the backbone file, and bin/vigil-edge, a wrapper
#                                             that points the binary at them
#   OUT/recipe.json, OUT/recipe.yaml          the component's recipe: the archive by S3 URI, unpacked; Run starts
#                                             `vigil-edge edge serve` on LFV's socket, models in its work folder
# Usage: server/scripts/package_agent.sh [--debug] [--version 0.1.0] [--out dist/edge-agent]
#                                        [--artifact-uri s3://BUCKET/PREFIX/]
# Upload the archive to the artifact URI, then create the component from the recipe (Greengrass console or
# `aws greengrassv2 create-component-version --inline-recipe fileb://OUT/recipe.json`), or copy the archive to a
# device and run bin/vigil-edge by hand. --debug packages target/debug/vigil instead of a release build.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$VIGIL_ROOT"

VERSION=0.1.0
OUT=dist/edge-agent
URI=""
PROFILE=release
while [ $# -gt 0 ]; do
  case "$1" in
    --debug) PROFILE=debug ;;
    --version) VERSION="$2"; shift ;;
    --out) OUT="$2"; shift ;;
    --artifact-uri) URI="$2"; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
step() { printf '\033[1;36m[agent]\033[0m %s\n' "$*"; }
ARCH=$(uname -m)
# Greengrass unpacks an archive into a folder named after it, so the name stays the same across versions and
# architectures (the model components' recipes find the agent at {vigil.EdgeAgent:artifacts:decompressedPath}/
# vigil-edge-agent/bin/vigil-edge): put each version under its own --artifact-uri prefix.
NAME="vigil-edge-agent"
BACKBONE=.venv/share/vigil/efficientnet-lite0-s8s16.pt
[ -s "$BACKBONE" ] || { echo "no backbone at $BACKBONE: run server/scripts/setup.sh first" >&2; exit 1; }

if [ "$PROFILE" = release ]; then
  step "building vigil (release; the first time takes a while)"
  cargo build --release -p server --bin vigil
fi
BIN=target/$PROFILE/vigil
[ -x "$BIN" ] || { echo "$BIN is missing: cargo build -p server --bin vigil" >&2; exit 1; }

STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
ROOT="$STAGE/vigil-edge-agent"
mkdir -p "$ROOT/bin" "$ROOT/lib" "$ROOT/share"
cp "$BIN" "$ROOT/bin/vigil"
strip "$ROOT/bin/vigil" 2>/dev/null || true
# The shared libraries the binary loads from the venv's PyTorch (libtorch_cpu, libc10, libgomp, ...): the
# system's own (libc, libstdc++) stay the device's.
ldd "$BIN" | awk '$3 ~ /\.venv/ { print $3 }' | while read -r lib; do cp -L "$lib" "$ROOT/lib/"; done
cp "$BACKBONE" "$ROOT/share/"
cat > "$ROOT/bin/vigil-edge" <<'EOF'
#!/bin/sh
# The edge agent with its own libraries and backbone (see vigil edge --help).
HERE=$(dirname "$(readlink -f "$0")")
export LD_LIBRARY_PATH="$HERE/../lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export VIGIL_BACKBONE="${VIGIL_BACKBONE:-$HERE/../share/efficientnet-lite0-s8s16.pt}"
exec "$HERE/vigil" "$@"
EOF
chmod +x "$ROOT/bin/vigil-edge"
# It must start with nothing but what it carries.
env -i PATH=/usr/bin:/bin "$ROOT/bin/vigil-edge" edge --help >/dev/null

mkdir -p "$OUT"
[ -n "$URI" ] || URI="s3://YOUR-BUCKET/vigil/"
case "$URI" in */) ;; *) URI="$URI/" ;; esac
GG_ARCH=$([ "$ARCH" = aarch64 ] && echo aarch64 || echo amd64)
# Greengrass unpacks ZIP archives (Unarchive: ZIP), keeping the files' modes.
python3 - "$STAGE" "$OUT" "$NAME" "$VERSION" "$URI" "$GG_ARCH" <<'PY'
import json, os, sys, zipfile
stage, out, name, version, uri, arch = sys.argv[1:]
with zipfile.ZipFile(os.path.join(out, name + ".zip"), "w", zipfile.ZIP_DEFLATED) as z:
    for d, _, files in os.walk(os.path.join(stage, "vigil-edge-agent")):
        for f in sorted(files):
            p = os.path.join(d, f)
            z.write(p, os.path.relpath(p, os.path.join(stage, "vigil-edge-agent")))
recipe = {
    "RecipeFormatVersion": "2020-01-25",
    "ComponentName": "vigil.EdgeAgent",
    "ComponentVersion": version,
    "ComponentType": "aws.greengrass.generic",
    "ComponentDescription": "Vigil's edge agent: LFV's edge agent gRPC API on unix:///tmp/aws.iot.lookoutvision.EdgeAgent.sock "
                            "for the installed Vigil model components.",
    "ComponentPublisher": "Vigil",
    "Manifests": [{
        "Platform": {"os": "linux", "architecture": arch},
        "Lifecycle": {"Run": {"Script": "{artifacts:decompressedPath}/" + name + "/bin/vigil-edge edge serve --dir {work:path}",
                              "RequiresPrivilege": False}},
        "Artifacts": [{"URI": uri + name + ".zip", "Unarchive": "ZIP", "Permission": {"Read": "OWNER", "Execute": "OWNER"}}],
    }],
}
json.dump(recipe, open(os.path.join(out, "recipe.json"), "w"), indent=2)
def yaml(v, ind=0):
    pad = "  " * ind
    lines = []
    items = v.items() if isinstance(v, dict) else ((None, x) for x in v)
    for k, x in items:
        head = f"{pad}{k}:" if k is not None else f"{pad}-"
        lines.append(head + ("\n" + yaml(x, ind + 1) if isinstance(x, (dict, list)) else f" {json.dumps(x)}\n"))
    return "".join(lines)
open(os.path.join(out, "recipe.yaml"), "w").write(yaml(recipe))
PY
step "wrote $OUT/$NAME.zip ($(du -h "$OUT/$NAME.zip" | cut -f1)), $OUT/recipe.json and $OUT/recipe.yaml"
