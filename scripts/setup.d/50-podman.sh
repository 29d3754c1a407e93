#!/usr/bin/env bash
# Podman (Fargate runner image tests): the package, runc as its runtime, lowered default
# ulimits (DESIGN.md: the settings these machines need). Idempotent.
set -euo pipefail
if ! command -v podman >/dev/null 2>&1 || ! command -v runc >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q podman runc >/dev/null
fi
conf=/etc/containers/containers.conf
mkdir -p /etc/containers
if ! grep -q '^runtime = "runc"' "$conf" 2>/dev/null; then
  cat > "$conf" <<'CONF'
# Written by scripts/setup.d/50-podman.sh (see DESIGN.md).
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]

[engine]
runtime = "runc"
CONF
fi
podman --version
