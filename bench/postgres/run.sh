#!/usr/bin/env bash
# Side-by-side extract benchmark on one lineitem-like table (16 columns: int8, numeric(15,2),
# date, char, varchar), everything writing Parquet (ZSTD) to the same local S3 endpoint:
#   - postgres-connector (release build, 2 partitions, --concurrency 2)
#   - ConnectorX + pyarrow ParquetWriter to S3 (2 key ranges, each in its own thread)
#   - dlt sql_table -> filesystem (parquet): default backend, backend="pyarrow", backend="connectorx"
#   - the floor: COPY (SELECT * FROM lineitem) TO STDOUT (FORMAT binary) discarded (psql)
# Reports work time (median, min-max), rows/s, start-up, client CPU seconds (user+sys of the
# process and its children; the PostgreSQL server's CPU is not included), peak RSS, and
# what each contender wrote (files, MB, codec, and whether rows and types match ours).
#
# Usage (from anywhere):  [ROUNDS=3] bash bench/postgres/run.sh [ROWS] [CONTENDERS...]
#   Rules (bench/fair.py): ROUNDS interleaved rounds (median and min-max), work time apart
#   from start-up, every contender's files checked (rows, codec, column types) against the
#   connector's; every contender as parallel as the connector (2).
#   ROWS defaults to 10000000; CONTENDERS default to all of:
#   copy_floor postgres_connector connectorx_pyarrow dlt_pyarrow dlt_connectorx dlt_default
# Needs: PostgreSQL server binaries (scripts/setup.d/20-postgres.sh installs them), python3,
# PyPI access for the venv (bench/postgres/.venv), cargo. Work files: bench/postgres/work/.
set -euo pipefail
ROWS=${1:-10000000}
ROUNDS=${ROUNDS:-3}
shift || true
CONTENDERS=${*:-copy_floor postgres_connector connectorx_pyarrow dlt_pyarrow dlt_connectorx dlt_default}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
WORK=$HERE/work
rm -rf "$WORK"
mkdir -p "$WORK"

bash "$ROOT/scripts/setup.d/20-postgres.sh" >/dev/null
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
PY=$HERE/.venv/bin/python
if [ ! -x "$PY" ]; then python3 -m venv "$HERE/.venv"; fi
"$PY" -m pip install -q connectorx pyarrow "dlt[filesystem,parquet,sql_database]" psycopg2-binary "psycopg[binary]" sqlalchemy s3fs

(cd "$ROOT" && cargo build --quiet --release -p postgres-connector --bin postgres-connector -p local-s3 --bin local-s3)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}/release

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# --- a throwaway PostgreSQL cluster, as a non-root user ---
PGDIR=$WORK/pg
mkdir -p "$PGDIR"
export PGPASSWORD=bench-password
echo "$PGPASSWORD" > "$PGDIR/pw"
if [ "$(id -u)" -eq 0 ]; then
  chown -R postgres "$PGDIR"
  as_pg() { runuser -u postgres -- "$@"; }
else
  as_pg() { "$@"; }
fi
PGPORT=$(free_port)
as_pg "$PGBIN/initdb" -D "$PGDIR/data" -U postgres --pwfile="$PGDIR/pw" --auth-host=scram-sha-256 \
  --auth-local=trust -E UTF8 --no-locale --no-sync >/dev/null
as_pg "$PGBIN/pg_ctl" -D "$PGDIR/data" -l "$PGDIR/server.log" -w -o "-p $PGPORT -k $PGDIR \
  -c listen_addresses=127.0.0.1 -c shared_buffers=1GB -c max_wal_size=8GB -c fsync=off \
  -c synchronous_commit=off -c full_page_writes=off -c maintenance_work_mem=512MB" start >/dev/null
S3PID=
cleanup() {
  [ -n "$S3PID" ] && kill "$S3PID" 2>/dev/null || true
  as_pg "$PGBIN/pg_ctl" -D "$PGDIR/data" -m fast -w stop >/dev/null 2>&1 || true
}
trap cleanup EXIT
PSQL=(psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PGPORT" -U postgres -d postgres)

echo "generating lineitem with $ROWS rows..." >&2
t0=$(date +%s)
"${PSQL[@]}" <<SQL
CREATE TABLE lineitem AS
SELECT (g / 4 + 1)::int8 AS l_orderkey,
       (g % 200000 + 1)::int8 AS l_partkey,
       (g % 10000 + 1)::int8 AS l_suppkey,
       (g % 4 + 1)::int8 AS l_linenumber,
       ((g % 50) + 1)::numeric(15,2) AS l_quantity,
       ((g % 100000) * 1.37 + 900)::numeric(15,2) AS l_extendedprice,
       ((g % 11) / 100.0)::numeric(15,2) AS l_discount,
       ((g % 9) / 100.0)::numeric(15,2) AS l_tax,
       (ARRAY['A','N','R'])[g % 3 + 1]::char(1) AS l_returnflag,
       (ARRAY['F','O'])[g % 2 + 1]::char(1) AS l_linestatus,
       DATE '1992-01-02' + (g % 2500)::int4 AS l_shipdate,
       DATE '1992-01-31' + (g % 2450)::int4 AS l_commitdate,
       DATE '1992-01-03' + (g % 2520)::int4 AS l_receiptdate,
       (ARRAY['DELIVER IN PERSON','COLLECT COD','NONE','TAKE BACK RETURN'])[g % 4 + 1]::char(25) AS l_shipinstruct,
       (ARRAY['TRUCK','MAIL','REG AIR','AIR','FOB','RAIL','SHIP'])[g % 7 + 1]::char(10) AS l_shipmode,
       substr(md5(g::text) || md5((g * 7)::text), 1, 10 + (g % 34))::varchar(44) AS l_comment
FROM generate_series(0, $ROWS - 1) AS g;
ALTER TABLE lineitem ADD PRIMARY KEY (l_orderkey, l_linenumber);
VACUUM ANALYZE lineitem;
SELECT count(*) FROM lineitem;
SQL
echo "generated in $(( $(date +%s) - t0 ))s; table size: $("${PSQL[@]}" -Atc "SELECT pg_size_pretty(pg_table_size('lineitem'))")" >&2

# --- the local S3 server ---
S3PORT=$(free_port)
"$TARGET/local-s3" --root "$WORK/s3" --port "$S3PORT" --bucket bench >"$WORK/s3.log" 2>&1 &
S3PID=$!
ENDPOINT=http://127.0.0.1:$S3PORT
for _ in $(seq 50); do curl -s -o /dev/null "$ENDPOINT" && break; sleep 0.1; done
export AWS_ACCESS_KEY_ID=local-access-key AWS_SECRET_ACCESS_KEY=local-secret-key AWS_REGION=us-east-1
export AWS_ENDPOINT_URL=$ENDPOINT AWS_EC2_METADATA_DISABLED=true RUST_LOG=warn
export DLT_PIPELINES_DIR=$WORK/dlt DLT_DATA_DIR=$WORK/dlt RUNTIME__LOG_LEVEL=WARNING
CONN="postgresql://postgres:$PGPASSWORD@127.0.0.1:$PGPORT/postgres"

cat > "$WORK/connector.json" <<JSON
{"host": "127.0.0.1", "port": $PGPORT, "database": "postgres", "user": "postgres",
 "password": {"env": "PGPASSWORD"}, "sslmode": "disable",
 "streams": [{"table": "lineitem", "partition_column": "l_orderkey", "partitions": 2}]}
JSON

# Warm the cache once so no contender pays for the first read.
"${PSQL[@]}" -c "COPY (SELECT * FROM lineitem) TO STDOUT (FORMAT binary)" >/dev/null

# The contenders, interleaved over $ROUNDS rounds, outputs checked (bench/fair.py).
WORK=$WORK TARGET=$TARGET PY=$PY CONN=$CONN ENDPOINT=$ENDPOINT CONCURRENCY=2 \
  PSQL_ARGS="${PSQL[*]}" "$PY" "$HERE/bench.py" "$ROUNDS" "$ROWS" $CONTENDERS | tee "$WORK/results.md"
echo "rows=$ROWS; outputs and logs in $WORK"
