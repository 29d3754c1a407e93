#!/usr/bin/env bash
# Delta commit benchmark (a benchmark, not a test): bash bench/delta/run.sh [COMMITS ...]
# Planning and one-row-run times after 1, 100 and 1000 commits of one table.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release -p orders-demo -p local-s3 --bins
python3 bench/delta/commits.py "$@"
