#!/usr/bin/env bash
# Glue runner: PySpark 3.5.x from PyPI into the repository's .venv — the local stand-in for
# AWS Glue 5 (Spark 3.5, Python 3.11, Java 17). Needs a Java 17 runtime (on the machine;
# installed from Debian if missing). Idempotent: installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/../.."
if ! command -v java >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends openjdk-17-jre-headless
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
want=pyspark==3.5.6
have=$( (.venv/bin/python -m pip show pyspark 2>/dev/null || true) | sed -n 's/^Version: //p')
if [ "$have" != "${want##*==}" ]; then
  .venv/bin/python -m pip install -q "$want"
fi
# spark-submit finds its home through $PYSPARK_PYTHON (default: python3 on PATH, which
# is not the virtualenv's when it is not activated).
version=$(PYSPARK_PYTHON="$PWD/.venv/bin/python" .venv/bin/spark-submit --version 2>&1 || true)
grep -m1 -o 'version 3\.5\.[0-9]*' <<<"$version" || { echo "error: spark-submit does not run: $version" >&2; exit 1; }
