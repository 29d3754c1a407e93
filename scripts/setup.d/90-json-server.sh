#!/usr/bin/env bash
# json-server (npm), the REST API the http-api connector's tests and the runner matrix read
# from: a real server no one here wrote, with its own pagination (Link headers, _page,
# _start/_limit), filters (id_gte, id_lte) and writes (POST, PATCH) for sources that
# change between runs. Installed once into .tools/json-server (Node.js from apt if
# missing). Idempotent: installs only when the wanted version is not there.
set -euo pipefail
cd "$(dirname "$0")/../.."
want=0.17.4
dir=.tools/json-server
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "node or npm is missing and this is not root: run 'apt-get install -y nodejs npm'" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq nodejs npm >/dev/null
fi
have=$(node -p "require('./$dir/node_modules/json-server/package.json').version" 2>/dev/null || true)
if [ "$have" != "$want" ]; then
  mkdir -p "$dir"
  npm install --prefix "$dir" --no-audit --no-fund --loglevel=error "json-server@$want" >/dev/null
fi
echo "json-server $("$dir/node_modules/.bin/json-server" --version)"
