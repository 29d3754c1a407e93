#!/usr/bin/env bash
# EC2 runner tests: systemd-analyze (verify + security --offline) from the `systemd`
# package, and `kill` (procps) to signal the daemon. Installs only what is missing.
set -euo pipefail
missing=()
[ -x /usr/bin/systemd-analyze ] || missing+=(systemd)
command -v kill >/dev/null 2>&1 || missing+=(procps)
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
/usr/bin/systemd-analyze --version | head -1
