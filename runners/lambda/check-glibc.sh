#!/usr/bin/env bash
# Fail unless the highest GLIBC_ symbol version <binary> needs is <= <max> (default 2.34,
# Amazon Linux 2023's glibc).  Usage: runners/lambda/check-glibc.sh <binary> [max]
set -euo pipefail
binary=$1
max=${2:-2.34}
if ! readelf -h "$binary" | grep -q 'Machine:.*X86-64'; then
  echo "error: $binary is not an x86-64 ELF binary" >&2
  exit 1
fi
needed=$(objdump -T "$binary" | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/^GLIBC_//' | sort -uV | tail -n 1)
if [ -z "$needed" ]; then
  echo "error: $binary needs no GLIBC_ symbols (not dynamically linked against glibc?)" >&2
  exit 1
fi
highest=$(printf '%s\n%s\n' "$needed" "$max" | sort -V | tail -n 1)
if [ "$highest" != "$max" ] && [ "$needed" != "$max" ]; then
  echo "error: $binary needs GLIBC_$needed, newer than $max" >&2
  objdump -T "$binary" | grep "GLIBC_$needed" >&2 || true
  exit 1
fi
echo "glibc: highest GLIBC_ version needed by $(basename "$binary") is $needed (<= $max)"
