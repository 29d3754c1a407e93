#!/usr/bin/env bash
# The linters of rendered CloudFormation stacks (`cargo xtask govern`): cfn-lint (PyPI,
# into the repository's .venv) and cfn-guard (crates.io; built once, ~2.5 min on 2 cores,
# later runs find it in ~/.cargo/bin). Idempotent: installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ -x .venv/bin/python ] || python3 -m venv .venv
want_lint=1.58.0
have=$( (.venv/bin/python -m pip show cfn-lint 2>/dev/null || true) | sed -n 's/^Version: //p')
if [ "$have" != "$want_lint" ]; then
  .venv/bin/python -m pip install -q "cfn-lint==$want_lint"
fi
.venv/bin/cfn-lint --version
want_guard=3.2.1
have=$( (cfn-guard --version 2>/dev/null || true) | awk '{print $2}')
if [ "$have" != "$want_guard" ]; then
  # Without the test command's RUSTFLAGS / clippy wrapper: a third-party tool's build.
  env -u RUSTFLAGS -u RUSTC_WORKSPACE_WRAPPER -u CARGO_TARGET_DIR \
    cargo install --locked --quiet "cfn-guard@$want_guard"
fi
cfn-guard --version
