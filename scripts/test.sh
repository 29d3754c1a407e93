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

# 2. Lints, and the one build of every binary and test the tests run.
step "cargo fmt --check"
cargo fmt --all -- --check
step "cargo deny check licenses bans sources (deny.toml)"
cargo deny --log-level error check licenses bans sources
step "cargo build with clippy, warnings denied (binaries and tests)"
# Clippy without a second compilation: `cargo clippy` is `cargo check` with clippy-driver
# as the workspace crates' rustc, so it type-checks all ~540 dependencies once more in
# check mode (8 min in a 2-core rehearsal). Here clippy-driver (a drop-in rustc that also
# runs clippy's lints, as `cargo clippy` uses it) compiles the workspace crates in the
# build itself, and `-D warnings` denies rustc's and clippy's warnings alike; registry
# dependencies are built with `--cap-lints allow`, as under `cargo clippy`. Same targets
# as `cargo clippy --workspace --all-targets` (the workspace has no benches or examples).
# Exported: every later cargo run (nextest, doctests) must see the same wrapper and flags,
# or it would rebuild. (The Lambda packaging test's cross-build drops both: it cannot reuse
# this build.) `-D warnings` also reaches dependencies' build-script probes, which only
# turns off optional cfgs whose probe code has a warning (rustix's), never a build.
RUSTC_WORKSPACE_WRAPPER=$(rustup which clippy-driver 2>/dev/null || command -v clippy-driver || true)
if [ -z "$RUSTC_WORKSPACE_WRAPPER" ]; then
  echo "error: clippy-driver not found; install clippy (rustup component add clippy)" >&2
  exit 1
fi
export RUSTC_WORKSPACE_WRAPPER
export RUSTFLAGS="-D warnings"
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
# 3. The runner matrix: every connector on every runner its manifest declares (and the
#    refusal of the others), datasets compared with a one-shot extract; the CI workflow
#    must match the manifests.
# (target/debug/xtask is `cargo xtask` built above; `cargo run -p xtask` alone would
#  resolve features for xtask only and rebuild shared crates.)
step "governance: every connector's stacks rendered, linted (cfn-lint, cfn-guard) and checked against governance/policy.toml"
target/debug/xtask govern
step "runner matrix workflow check"
target/debug/xtask workflow --check
step "runner matrix"
target/debug/xtask matrix --junit target/matrix/junit.xml
step "done"
