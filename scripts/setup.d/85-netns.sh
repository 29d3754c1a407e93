#!/usr/bin/env bash
# iproute2 (`ip netns`) and nftables, for the deny-by-default egress test of the
# governance check (connectors/postgres/tests/governance.rs creates a network namespace
# whose nftables output policy drops everything but the declared endpoints). Idempotent.
set -euo pipefail
if ! command -v ip >/dev/null || ! command -v nft >/dev/null; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "ip or nft is missing and this is not root: run 'apt-get install -y iproute2 nftables'" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq iproute2 nftables >/dev/null
fi
ip -V
nft --version
