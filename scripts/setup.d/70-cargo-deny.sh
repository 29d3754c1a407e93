#!/usr/bin/env bash
# cargo-deny, for the supply-chain check (deny.toml) in the test command. Built from
# crates.io (~4 min on 2 cores) once; later runs find it in ~/.cargo/bin. (The PyPI wheel
# is 0.14.2, whose krates panics on today's `cargo metadata`.)
set -euo pipefail
want=0.20.2
have=$( (cargo deny --version 2>/dev/null || true) | awk '{print $2}')
if [ "$have" != "$want" ]; then
  # Without the test command's RUSTFLAGS / clippy wrapper: a third-party tool's build.
  env -u RUSTFLAGS -u RUSTC_WORKSPACE_WRAPPER -u CARGO_TARGET_DIR \
    cargo install --locked --quiet "cargo-deny@$want"
fi
cargo deny --version
