#!/usr/bin/env bash
# Side-by-side file ingestion benchmark: one CSV object (and one JSON Lines object) of ROWS
# rows in the local S3 server, turned into Parquet (ZSTD) on the same server by:
#   - s3-files (release build; the object split into 128 MiB ranges, --concurrency 2)
#   - DuckDB 1.4.4 with httpfs: read_csv -> COPY ... TO 's3://...' (FORMAT parquet), 2 threads
#   - pyarrow: pyarrow.csv.open_csv / pyarrow.json (streamed) -> pq.ParquetWriter via S3FileSystem
# Reports work time (median, min-max), rows/s, CPU seconds, peak RSS and what each wrote
# (bench/fair.py: interleaved rounds, outputs checked against ours).
#
# Usage: [ROUNDS=3] bash bench/s3-files/run.sh [ROWS] [CONTENDERS...]
#   ROWS defaults to 10000000; CONTENDERS default to all of:
#   s3_files_csv duckdb_csv pyarrow_csv s3_files_jsonl duckdb_jsonl pyarrow_jsonl
set -euo pipefail
ROWS=${1:-10000000}
ROUNDS=${ROUNDS:-3}
shift || true
CONTENDERS=${*:-s3_files_csv duckdb_csv pyarrow_csv s3_files_jsonl duckdb_jsonl pyarrow_jsonl}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
WORK=$HERE/work
rm -rf "$WORK"
mkdir -p "$WORK/s3/bench"
PY=$HERE/.venv/bin/python
if [ ! -x "$PY" ]; then python3 -m venv "$HERE/.venv"; fi
"$PY" -m pip install -q pyarrow==21.0.0 duckdb==1.4.4 duckdb-ext-httpfs deltalake==1.6.6
(cd "$ROOT" && cargo build --quiet --release -p s3-files --bin s3-files -p local-s3 --bin local-s3)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}/release

echo "generating $ROWS rows of CSV and JSON Lines..." >&2
mkdir -p "$WORK/gen"
"$PY" "$HERE/generate.py" "$ROWS" "$WORK/gen/data.csv" "$WORK/gen/data.jsonl"
ls -la "$WORK/gen" >&2

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
S3PORT=$(free_port)
"$TARGET/local-s3" --root "$WORK/s3" --port "$S3PORT" --bucket bench >"$WORK/s3.log" 2>&1 &
S3PID=$!
trap 'kill $S3PID 2>/dev/null || true' EXIT
ENDPOINT=http://127.0.0.1:$S3PORT
for _ in $(seq 50); do curl -s -o /dev/null "$ENDPOINT" && break; sleep 0.1; done
export AWS_ACCESS_KEY_ID=local-access-key AWS_SECRET_ACCESS_KEY=local-secret-key AWS_REGION=us-east-1
export AWS_ENDPOINT_URL=$ENDPOINT AWS_EC2_METADATA_DISABLED=true RUST_LOG=warn
# Uploaded through S3 (multipart), not copied into the server's directory: the server then
# keeps each object's ETag as S3 does. A file put straight into the directory has none, and
# s3s-fs hashes the whole object again on every GET, which made pyarrow's 1 MiB ranged
# reads of a 760 MB object take hours.
"$PY" "$HERE/upload.py" "$WORK/gen" bench/src
rm -rf "$WORK/gen"

WORK=$WORK TARGET=$TARGET PY=$PY ENDPOINT=$ENDPOINT \
  "$PY" "$HERE/bench.py" "$ROUNDS" "$ROWS" $CONTENDERS | tee "$WORK/results.md"
# Exactness at full size: our table (the object read in ranges) against the object read
# whole by another reader.
for fmt in csv jsonl; do
  if [ -d "$WORK/s3/bench/sf-$fmt-0" ]; then
    "$PY" "$HERE/check_whole.py" $fmt "$WORK/s3/bench/src/data.$fmt" "$WORK/s3/bench/sf-$fmt-0/orders_$fmt" | tee -a "$WORK/results.md"
  fi
done
echo "rows=$ROWS; outputs and logs in $WORK"
