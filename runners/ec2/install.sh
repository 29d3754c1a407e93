#!/usr/bin/env bash
# Install a connector binary as a systemd service (EC2 runner). Idempotent.
#
#   sudo runners/ec2/install.sh /path/to/<connector-binary> [daemon.toml]
#        [--credential NAME=FILE]... [--no-start]
#
# - binary  -> /usr/local/bin/<name>
# - unit    -> /etc/systemd/system/connector@.service (template; instance = <name>)
# - config  -> /etc/<name>/daemon.toml, root-only (0600 in a 0700 directory; copied if
#              given, never overwritten otherwise; validated with `<name> daemon --check`
#              before the service is (re)started). The service reads it as the systemd
#              credential `daemon.toml` (LoadCredential=): its dynamic user cannot read
#              root-only files, and nothing else on the machine can read this one.
# - secrets -> each --credential NAME=FILE (a root-only file, e.g. a database password)
#              becomes LoadCredential=NAME:FILE in
#              /etc/systemd/system/connector@<name>.service.d/credentials.conf; the config
#              names it as {"credential": "NAME"} ($CREDENTIALS_DIRECTORY/NAME at run time)
# - state   -> /var/lib/<name>/ (created by systemd: StateDirectory=, DynamicUser=)
#
# DESTDIR=<dir> installs under <dir> instead of / (packaging, tests); nothing is started.
#
# AWS credentials: nothing to install. The daemon uses the AWS SDK default chain; on EC2
# that is the instance profile through IMDSv2 (give the instance role s3:PutObject,
# s3:GetObject, s3:ListBucket, s3:DeleteObject, s3:AbortMultipartUpload on the output
# prefix). Keep IMDSv2 required (HttpTokens=required) and the hop limit at 1.
set -euo pipefail

usage() { echo "usage: $0 <connector-binary> [daemon.toml] [--credential NAME=FILE]... [--no-start]" >&2; exit 2; }
[ $# -ge 1 ] || usage
binary=$1; shift
config=""; start=1; credentials=()
while [ $# -gt 0 ]; do
  case "$1" in
    --no-start) start=0 ;;
    --credential)
      [ $# -ge 2 ] || usage
      credentials+=("$2"); shift ;;
    --credential=*) credentials+=("${1#--credential=}") ;;
    -*) usage ;;
    *) config=$1 ;;
  esac
  shift
done
[ -x "$binary" ] || { echo "error: $binary is not an executable file" >&2; exit 2; }
root=${DESTDIR:-}
if [ -n "$root" ]; then
  start=0
else
  [ "$(id -u)" -eq 0 ] || { echo "error: run as root (installs into /usr/local/bin and /etc)" >&2; exit 2; }
fi
for c in ${credentials[@]+"${credentials[@]}"}; do
  cname=${c%%=*}; cfile=${c#*=}
  case "$cname" in
    ""|*[!A-Za-z0-9._-]*|.|..) echo "error: --credential $c: the name must be a file name of [A-Za-z0-9._-] (it is \$CREDENTIALS_DIRECTORY/<name>)" >&2; exit 2 ;;
  esac
  case "$cfile" in
    /*) ;;
    *) echo "error: --credential $c: the file must be an absolute path (systemd reads it at each start)" >&2; exit 2 ;;
  esac
  [ "$cname" != "daemon.toml" ] || { echo "error: --credential daemon.toml: that name is the config's" >&2; exit 2; }
  [ -r "$root$cfile" ] || echo "warning: --credential $c: $root$cfile does not exist yet; the service will not start until it does" >&2
done

here=$(cd "$(dirname "$0")" && pwd)
name=$(basename "$binary")
case "$name" in
  *[!a-z0-9-]*|"") echo "error: binary name '$name' must be kebab-case (it names the unit instance)" >&2; exit 2 ;;
esac

install -D -m 0755 "$binary" "$root/usr/local/bin/$name"
install -D -m 0644 "$here/connector@.service" "$root/etc/systemd/system/connector@.service"
# Root-only: the service gets the config (and each secret) as a systemd credential.
umask 077
install -d -m 0700 "$root/etc/$name"
if [ -n "$config" ]; then
  install -m 0600 "$config" "$root/etc/$name/daemon.toml"
elif [ ! -e "$root/etc/$name/daemon.toml" ]; then
  echo "note: $root/etc/$name/daemon.toml does not exist; write it (schema: $name daemon --print-schema) and re-run" >&2
  start=0
else
  chmod 0600 "$root/etc/$name/daemon.toml"
fi
dropin="$root/etc/systemd/system/connector@$name.service.d"
if [ ${#credentials[@]} -gt 0 ]; then
  install -d -m 0755 "$dropin"
  {
    echo "# Secrets handed to connector@$name as systemd credentials (install.sh --credential)."
    echo "[Service]"
    for c in ${credentials[@]+"${credentials[@]}"}; do echo "LoadCredential=${c%%=*}:${c#*=}"; done
  } > "$dropin/credentials.conf.tmp"
  chmod 0644 "$dropin/credentials.conf.tmp"
  mv "$dropin/credentials.conf.tmp" "$dropin/credentials.conf"
fi
"$root/usr/local/bin/$name" daemon --print-schema > "$root/etc/$name/daemon.schema.json"

if [ -e "$root/etc/$name/daemon.toml" ]; then
  "$root/usr/local/bin/$name" daemon --check --config "$root/etc/$name/daemon.toml"
fi
if [ -z "$root" ] && command -v systemd-analyze >/dev/null; then
  systemd-analyze verify "/etc/systemd/system/connector@$name.service"
  systemd-analyze security --offline=yes --no-pager "/etc/systemd/system/connector@$name.service" | tail -1
fi

if [ "$start" -eq 1 ] && [ -d /run/systemd/system ]; then
  systemctl daemon-reload
  systemctl enable "connector@$name.service"
  # restart: picks up a new binary, config and credentials (systemd copies credentials at
  # start); running jobs checkpoint and commit first.
  systemctl restart "connector@$name.service"
  systemctl --no-pager status "connector@$name.service" | head -5
else
  echo "installed; start with: systemctl daemon-reload && systemctl enable --now connector@$name"
fi
