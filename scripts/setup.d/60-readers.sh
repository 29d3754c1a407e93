#!/usr/bin/env bash
# Readers that are not ours, for the tests that read committed data back with another
# library than the one that wrote it: pyarrow (Parquet, Arrow logical types), deltalake
# (delta-rs) and DuckDB with its delta extension as a wheel (no download at test time) for
# the committed Delta tables, into the repository's .venv. Idempotent: installs only what
# is missing.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ -x .venv/bin/python ] || python3 -m venv .venv
for want in pyarrow==21.0.0 deltalake==1.6.6 duckdb==1.4.4 duckdb-ext-delta==1.4.4.20260205; do
  have=$( (.venv/bin/python -m pip show "${want%%==*}" 2>/dev/null || true) | sed -n 's/^Version: //p')
  if [ "$have" != "${want##*==}" ]; then
    .venv/bin/python -m pip install -q "$want"
  fi
done
.venv/bin/python -c "import pyarrow.parquet, deltalake, duckdb" || { echo "error: pyarrow, deltalake or duckdb does not import" >&2; exit 1; }
