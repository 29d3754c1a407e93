#!/usr/bin/env bash
# Build a connector binary as a Lambda `provided.al2023` function zip: `bootstrap` at the
# root, linked with cargo-zigbuild against glibc 2.34 (Amazon Linux 2023), then check that
# the highest GLIBC_ symbol version it needs is <= 2.34.
#
# Usage:  runners/lambda/package.sh <package> <bin>
#   LAMBDA_PROFILE=lambda (default; the zip to deploy: release, size-optimised off the
#   hot path, see Cargo.toml), release, dev, or unoptimized (cheapest to compile; what
#   the packaging test uses). Every profile's bootstrap is stripped.
# Output: target/lambda/<bin>/bootstrap and target/lambda/<bin>/bootstrap.zip
# Needs:  cargo-zigbuild + ziglang (scripts/setup.d/30-lambda.sh installs them in .venv),
#         zip, objdump.
set -euo pipefail
if [ $# -ne 2 ]; then
  echo "usage: $0 <package> <bin>" >&2
  exit 2
fi
package=$1
bin=$2
profile=${LAMBDA_PROFILE:-lambda}
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
if [ -f .venv/bin/activate ]; then
  # shellcheck disable=SC1091
  . .venv/bin/activate
fi
if ! command -v cargo-zigbuild >/dev/null 2>&1; then
  echo "error: cargo-zigbuild is not installed; run scripts/setup.d/30-lambda.sh" >&2
  exit 1
fi
triple=x86_64-unknown-linux-gnu
glibc=2.34
case "$profile" in
  lambda | release | unoptimized) dir=$profile ;;
  dev) dir=debug ;;
  *) echo "error: LAMBDA_PROFILE must be lambda, release, dev or unoptimized, not $profile" >&2; exit 2 ;;
esac
target_dir=${CARGO_TARGET_DIR:-$root/target}
cargo zigbuild --quiet --profile "$profile" -p "$package" --bin "$bin" --target "$triple.$glibc"
built="$target_dir/$triple/$dir/$bin"
out="$target_dir/lambda/$bin"
rm -rf "$out"
mkdir -p "$out"
cp "$built" "$out/bootstrap"
# Debug info is of no use in the function and counts against the 250 MB unzipped limit.
strip "$out/bootstrap"
chmod 755 "$out/bootstrap"
(cd "$out" && zip -q -X -9 bootstrap.zip bootstrap)
bash "$root/runners/lambda/check-glibc.sh" "$out/bootstrap" "$glibc"
echo "zip: $out/bootstrap.zip ($(stat -c %s "$out/bootstrap.zip") bytes; bootstrap $(stat -c %s "$out/bootstrap") bytes)"
