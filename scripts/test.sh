#!/usr/bin/env bash
# The test command: installs what the tests need, then fmt, clippy and every test.
# Usage: bash scripts/test.sh        (from the repository root; also what .ci/run calls)
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
# A clean build each time: incremental caches only cost disk and time here.
export CARGO_INCREMENTAL=0
step() { echo; echo "==> $* ($(( $(date +%s) - start ))s)"; }

# 1. Installs. Each script in scripts/setup.d/ installs one thing if it is missing
#    (apt, pip, cargo install) and is idempotent.
for setup in scripts/setup.d/*.sh; do
  [ -e "$setup" ] || continue
  step "setup: $setup"
  bash "$setup"
done
[ -f .venv/bin/activate ] && . .venv/bin/activate

# 2. Lints.
step "cargo fmt --check"
cargo fmt --all -- --check
step "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

# 3. Build every binary the tests run as processes, then every test.
step "cargo build (binaries and tests)"
# Binaries and tests in one build: the same feature unification as the test run below
# (dev-dependencies turn on features of shared crates), so nextest rebuilds nothing and
# the binaries the tests start are the ones built here.
cargo build --workspace --bins --tests
# Tests run these binaries as processes; they need not (and must not) rebuild them.
export INTEGRATION_TESTS_PREBUILT=1
step "tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast --test-threads 2
  # nextest does not run doctests
  cargo test --workspace --doc
else
  cargo test --workspace --no-fail-fast -- --test-threads 2
fi
# 4. The runner matrix: every connector on every runner its manifest declares (and the
#    refusal of the others), datasets compared with a one-shot extract; the CI workflow
#    must match the manifests.
# (target/debug/xtask is `cargo xtask` built above; `cargo run -p xtask` alone would
#  resolve features for xtask only and rebuild shared crates.)
step "runner matrix workflow check"
target/debug/xtask workflow --check
step "runner matrix"
target/debug/xtask matrix --junit target/matrix/junit.xml
step "done"
