#!/usr/bin/env bash
# Lambda cold-start proxy and package size for a connector binary.
#   1. builds the deployable zip (profile `lambda`) with runners/lambda/package.sh (cargo-zigbuild, glibc 2.34)
#   2. starts the packaged `bootstrap` 20 times against the Runtime API test server and
#      measures process start -> first GET /invocation/next (target: median <= 20 ms)
#   3. reports the zip size (target: <= 15 MB)
# Usage: bench/lambda/cold_start.sh [package] [bin] [runs]   (default: orders-demo orders-demo 20)
set -euo pipefail
cd "$(dirname "$0")/../.."
package=${1:-orders-demo}
bin=${2:-$package}
runs=${3:-20}
LAMBDA_PROFILE=lambda bash runners/lambda/package.sh "$package" "$bin"
target_dir=${CARGO_TARGET_DIR:-target}
zip="$target_dir/lambda/$bin/bootstrap.zip"
cargo build --quiet --release -p integration-tests --bin lambda_cold_start
result=$("$target_dir/release/lambda_cold_start" "$target_dir/lambda/$bin/bootstrap" "$runs" | tee /dev/stderr | tail -n 1)
zip_bytes=$(stat -c %s "$zip")
median=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["median_ms"])' "$result")
echo
echo "cold start (process start -> first /next), median of $runs: ${median} ms (target <= 20 ms)"
echo "zip: $zip = $zip_bytes bytes = $(python3 -c "print(round($zip_bytes/1e6, 2))") MB (target <= 15 MB)"
python3 - "$median" "$zip_bytes" <<'PY'
import sys
median, size = float(sys.argv[1]), int(sys.argv[2])
ok = median <= 20 and size <= 15_000_000
print("targets met" if ok else "TARGET MISSED")
sys.exit(0 if ok else 1)
PY
