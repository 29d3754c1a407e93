#!/usr/bin/env bash
# Lambda runner: cargo-zigbuild + ziglang (build the provided.al2023 `bootstrap` against
# glibc 2.34) and cargo-lambda (its Runtime API emulator, `cargo lambda watch`), from
# PyPI into the repository's .venv; zip and binutils (objdump) from Debian. Idempotent:
# installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/../.."
missing=()
command -v zip >/dev/null 2>&1 || missing+=(zip)
command -v unzip >/dev/null 2>&1 || missing+=(unzip)
command -v objdump >/dev/null 2>&1 || missing+=(binutils)
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
want=(cargo-zigbuild==0.24.0 ziglang==0.17.0 cargo-lambda==1.9.2)
need=()
for spec in "${want[@]}"; do
  name=${spec%%==*}
  version=${spec##*==}
  have=$( (.venv/bin/python -m pip show "$name" 2>/dev/null || true) | sed -n 's/^Version: //p')
  [ "$have" = "$version" ] || need+=("$spec")
done
if [ ${#need[@]} -gt 0 ]; then
  .venv/bin/python -m pip install -q "${need[@]}"
fi
.venv/bin/cargo-zigbuild --version
.venv/bin/cargo-lambda lambda --version
.venv/bin/python -m ziglang version
