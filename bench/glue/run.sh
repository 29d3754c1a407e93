#!/usr/bin/env bash
# Benchmark of the Glue runner (a benchmark, not a test): the job script on a local
# PySpark with local[1] vs local[2], CPU-bound extract (orders-demo, zstd level 6).
# Reports the speed-up of the extract phase and the driver's overhead per partition.
#
# Usage: bash bench/glue/run.sh [ROWS] [PARTITIONS] [REPEATS]   (default 16000000 8 2)
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --quiet -p orders-demo -p local-s3 --bins
bash scripts/setup.d/50-glue.sh >/dev/null
.venv/bin/python bench/glue/bench.py "$@"
