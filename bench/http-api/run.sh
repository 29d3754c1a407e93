#!/usr/bin/env bash
# REST API extraction benchmark against json-server (npm) serving RECORDS records, read in
# pages of PAGE (`_page`/`_limit`), everything writing Parquet (ZSTD) to the local S3:
#   - floor: every page fetched with one keep-alive client and discarded (Python
#     http.client), the server's own cost
#   - http-api (release build)
#   - a plain Python `requests` loop decoding each page with pyarrow into a ParquetWriter
# Reports work time, records/s, CPU, peak RSS (bench/fair.py rules); the toolkit's
# overhead per page is (http-api - floor) / pages.
#
# SERVER=json-server (default) is the real REST server; it filters and sorts the whole
# collection on every request, so it bounds everyone. SERVER=pages serves the same
# answers from pages encoded once (bench/http-api/page_server.py), so the clients' own
# cost shows.
#
# Usage: [ROUNDS=3] [SERVER=json-server|pages] bash bench/http-api/run.sh [RECORDS] [PAGE]
set -euo pipefail
RECORDS=${1:-200000}
PAGE=${2:-1000}
ROUNDS=${ROUNDS:-3}
SERVER=${SERVER:-json-server}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
WORK=$HERE/work
rm -rf "$WORK"
mkdir -p "$WORK/s3/bench" "$WORK/api"
PY=$HERE/.venv/bin/python
if [ ! -x "$PY" ]; then python3 -m venv "$HERE/.venv"; fi
"$PY" -m pip install -q pyarrow==21.0.0 requests
bash "$ROOT/scripts/setup.d/90-json-server.sh" >/dev/null
(cd "$ROOT" && cargo build --quiet --release -p http-api --bin http-api -p local-s3 --bin local-s3)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}/release

"$PY" - "$RECORDS" "$WORK/api/db.json" <<'PYEOF'
import json, sys
n = int(sys.argv[1])
items = [{"id": i, "customer": f"customer-{i % 65536}", "amount": i * 37 / 100,
          "placed_at": f"2024-01-{1 + i % 28:02d}T{i % 24:02d}:{i % 60:02d}:{(i * 7) % 60:02d}Z",
          "shipped": i % 2 == 0, "note": None if i % 5 else "gift"} for i in range(1, n + 1)]
json.dump({"orders": items}, open(sys.argv[2], "w"))
PYEOF

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
APIPORT=$(free_port)
S3PORT=$(free_port)
case $SERVER in
  json-server) (cd "$WORK/api" && exec "$ROOT/.tools/json-server/node_modules/.bin/json-server" --host 127.0.0.1 --port "$APIPORT" --quiet db.json) >"$WORK/api.log" 2>&1 & ;;
  pages) "$PY" "$HERE/page_server.py" "$WORK/api/db.json" "$APIPORT" >"$WORK/api.log" 2>&1 & ;;
  *) echo "SERVER must be json-server or pages, not $SERVER" >&2; exit 2 ;;
esac
APIPID=$!
"$TARGET/local-s3" --root "$WORK/s3" --port "$S3PORT" --bucket bench >"$WORK/s3.log" 2>&1 &
S3PID=$!
trap 'kill $APIPID $S3PID 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$APIPORT/orders?_limit=1" && break; sleep 0.1; done
export AWS_ACCESS_KEY_ID=local-access-key AWS_SECRET_ACCESS_KEY=local-secret-key AWS_REGION=us-east-1
export AWS_ENDPOINT_URL=http://127.0.0.1:$S3PORT AWS_EC2_METADATA_DISABLED=true RUST_LOG=warn

cat > "$WORK/connector.json" <<JSON
{"base_url": "http://127.0.0.1:$APIPORT/",
 "streams": [{"name": "orders", "path": "orders", "query": {"_sort": "id"},
   "pagination": {"style": "page_number", "page_param": "_page", "size_param": "_limit", "size": $PAGE},
   "schema": [{"name": "id", "type": "int64", "nullable": false}, {"name": "customer", "type": "string"},
              {"name": "amount", "type": "float64"}, {"name": "placed_at", "type": "timestamp"},
              {"name": "shipped", "type": "boolean"}, {"name": "note", "type": "string"}]}]}
JSON

WORK=$WORK TARGET=$TARGET PY=$PY API=http://127.0.0.1:$APIPORT PAGE=$PAGE \
  "$PY" "$HERE/bench.py" "$ROUNDS" "$RECORDS" | tee "$WORK/results.md"
echo "server: $SERVER" | tee -a "$WORK/results.md"
