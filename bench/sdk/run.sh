#!/usr/bin/env bash
# Benchmark of the extract core (a benchmark, not a test): bash bench/sdk/run.sh [ROWS ...]
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release -p orders-demo -p local-s3 --bins
[ -d .venv ] || python3 -m venv .venv
. .venv/bin/activate
python -c "import pyarrow, numpy" 2>/dev/null || pip install --quiet pyarrow numpy
python bench/sdk/bench.py "$@"
