#!/usr/bin/env bash
# Build a connector binary for AWS Glue 5 (Amazon Linux 2023, glibc 2.34) with the Lambda
# runner's glibc-targeted build (runners/lambda/package.sh: cargo-zigbuild, strip, GLIBC_
# symbol check), and put it beside the job script, ready to upload.
#
# Usage:  runners/glue/package.sh <package> <bin>
#   GLUE_PROFILE=release (default), dev or unoptimized (see runners/lambda/package.sh)
# Output: target/glue/<bin>/<bin> and target/glue/<bin>/connector_glue_job.py
set -euo pipefail
if [ $# -ne 2 ]; then
  echo "usage: $0 <package> <bin>" >&2
  exit 2
fi
package=$1
bin=$2
root=$(cd "$(dirname "$0")/../.." && pwd)
target_dir=${CARGO_TARGET_DIR:-$root/target}
LAMBDA_PROFILE=${GLUE_PROFILE:-release} bash "$root/runners/lambda/package.sh" "$package" "$bin" >/dev/null
out="$target_dir/glue/$bin"
mkdir -p "$out"
cp "$target_dir/lambda/$bin/bootstrap" "$out/$bin"
cp "$root/runners/glue/job/connector_glue_job.py" "$out/"
bash "$root/runners/lambda/check-glibc.sh" "$out/$bin" 2.34
echo "glue: $out/$bin and $out/connector_glue_job.py (upload both; see runners/glue/README.md)"
