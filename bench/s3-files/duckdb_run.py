"""DuckDB: read_csv / read_json of an S3 object -> COPY TO Parquet (ZSTD) on S3, 2 threads.
Usage: duckdb_run.py csv|jsonl SOURCE DEST"""
import json
import os
import sys
import time

import site

import duckdb

fmt, source, dest = sys.argv[1:4]
t0 = time.perf_counter()
# The httpfs extension from the duckdb-ext-httpfs wheel: no download at run time.
extensions = os.path.join(site.getsitepackages()[0], "duckdb_ext", "extensions")
con = duckdb.connect(config={"extension_directory": extensions, "autoinstall_known_extensions": False})
con.execute("SET threads = 2")
con.execute("LOAD httpfs")
endpoint = os.environ["AWS_ENDPOINT_URL"].removeprefix("http://")
con.execute(f"""CREATE SECRET (TYPE s3, KEY_ID '{os.environ["AWS_ACCESS_KEY_ID"]}',
    SECRET '{os.environ["AWS_SECRET_ACCESS_KEY"]}', REGION 'us-east-1', ENDPOINT '{endpoint}',
    URL_STYLE 'path', USE_SSL false)""")
columns = "{'id': 'BIGINT', 'customer': 'VARCHAR', 'amount': 'DOUBLE', 'day': 'DATE', 'placed_at': 'TIMESTAMPTZ', 'shipped': 'BOOLEAN'}"
reader = f"read_csv('{source}', header = true, columns = {columns})" if fmt == "csv" else \
    f"read_json('{source}', format = 'newline_delimited', columns = {columns})"
con.execute(f"COPY (SELECT * FROM {reader}) TO '{dest}' (FORMAT parquet, COMPRESSION zstd)")
print(json.dumps({"work_s": time.perf_counter() - t0}))
