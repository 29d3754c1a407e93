#!/usr/bin/env bash
# PostgreSQL server binaries for the postgres connector's tests (they initdb a throwaway
# cluster as a non-root user on a free port). Idempotent.
set -euo pipefail
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "PostgreSQL is not installed and this is not root: run 'apt-get install -y postgresql'" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq postgresql >/dev/null
fi
# The tests run the server as this user when they run as root (initdb refuses root).
if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
  useradd --system --no-create-home --shell /usr/sbin/nologin postgres
fi
ls -d /usr/lib/postgresql/*/bin | tail -n 1
