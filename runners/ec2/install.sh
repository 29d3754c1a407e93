#!/usr/bin/env bash
# Install a connector binary as a systemd service (EC2 runner). Idempotent.
#
#   sudo runners/ec2/install.sh /path/to/<connector-binary> [daemon.toml] [--no-start]
#
# - binary  -> /usr/local/bin/<name>
# - unit    -> /etc/systemd/system/connector@.service (template; instance = <name>)
# - config  -> /etc/<name>/daemon.toml (copied if given, never overwritten otherwise;
#              validated with `<name> daemon --check` before the service is (re)started)
# - state   -> /var/lib/<name>/ (created by systemd: StateDirectory=, DynamicUser=)
#
# AWS credentials: nothing to install. The daemon uses the AWS SDK default chain; on EC2
# that is the instance profile through IMDSv2 (give the instance role s3:PutObject,
# s3:GetObject, s3:ListBucket, s3:DeleteObject, s3:AbortMultipartUpload on the output
# prefix). Keep IMDSv2 required (HttpTokens=required) and the hop limit at 1.
set -euo pipefail

usage() { echo "usage: $0 <connector-binary> [daemon.toml] [--no-start]" >&2; exit 2; }
[ $# -ge 1 ] || usage
binary=$1; shift
config=""; start=1
for arg in "$@"; do
  case "$arg" in
    --no-start) start=0 ;;
    -*) usage ;;
    *) config=$arg ;;
  esac
done
[ -x "$binary" ] || { echo "error: $binary is not an executable file" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || { echo "error: run as root (installs into /usr/local/bin and /etc)" >&2; exit 2; }

here=$(cd "$(dirname "$0")" && pwd)
name=$(basename "$binary")
case "$name" in
  *[!a-z0-9-]*|"") echo "error: binary name '$name' must be kebab-case (it names the unit instance)" >&2; exit 2 ;;
esac

install -D -m 0755 "$binary" "/usr/local/bin/$name"
install -D -m 0644 "$here/connector@.service" /etc/systemd/system/connector@.service
# The service runs as a dynamic user: the config must be world-readable (0644) in a
# root-owned directory. Put secrets in a source the connector reads at run time
# (e.g. AWS Secrets Manager), not in this file.
install -d -m 0755 "/etc/$name"
if [ -n "$config" ]; then
  install -m 0644 "$config" "/etc/$name/daemon.toml"
elif [ ! -e "/etc/$name/daemon.toml" ]; then
  echo "note: /etc/$name/daemon.toml does not exist; write it (schema: $name daemon --print-schema) and re-run" >&2
  start=0
fi
"/usr/local/bin/$name" daemon --print-schema > "/etc/$name/daemon.schema.json"

if [ -e "/etc/$name/daemon.toml" ]; then
  "/usr/local/bin/$name" daemon --check --config "/etc/$name/daemon.toml"
fi
if command -v systemd-analyze >/dev/null; then
  systemd-analyze verify "/etc/systemd/system/connector@$name.service"
  systemd-analyze security --offline=yes --no-pager "/etc/systemd/system/connector@$name.service" | tail -1
fi

if [ "$start" -eq 1 ] && [ -d /run/systemd/system ]; then
  systemctl daemon-reload
  systemctl enable "connector@$name.service"
  # restart: picks up a new binary and config; running jobs checkpoint and commit first.
  # (For a config change alone, `systemctl reload` is enough: SIGHUP, no restart.)
  systemctl restart "connector@$name.service"
  systemctl --no-pager status "connector@$name.service" | head -5
else
  echo "installed; start with: systemctl daemon-reload && systemctl enable --now connector@$name"
fi
