"""ConnectorX -> pyarrow -> Parquet (ZSTD) on the local S3 endpoint, as parallel as the
connector: the key range split into THREADS ranges (the connector's partitions), each read
by ConnectorX and written by its own pyarrow ParquetWriter in its own thread.

Usage: cx_pyarrow.py CONN TABLE KEY ENDPOINT BUCKET/PREFIX [THREADS]
Prints one JSON line: rows and work_s (imports excluded).
"""
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import connectorx as cx
import pyarrow.fs as pafs
import pyarrow.parquet as pq

conn, table, key, endpoint, prefix = sys.argv[1:6]
threads = int(sys.argv[6]) if len(sys.argv) > 6 else 2
start = time.perf_counter()
s3 = pafs.S3FileSystem(
    access_key=os.environ["AWS_ACCESS_KEY_ID"],
    secret_key=os.environ["AWS_SECRET_ACCESS_KEY"],
    endpoint_override=endpoint,
    scheme="http",
    region="us-east-1",
)
bounds = cx.read_sql(conn, f"SELECT min({key}) AS lo, max({key}) AS hi FROM {table}", return_type="arrow")
lo, hi = bounds.column("lo")[0].as_py(), bounds.column("hi")[0].as_py()
step = (hi - lo) // threads + 1


def part(i):
    a, b = lo + i * step, lo + (i + 1) * step
    query = f"SELECT * FROM {table} WHERE {key} >= {a} AND {key} < {b}"
    reader = cx.read_sql(conn, query, return_type="arrow_stream", batch_size=65536)
    writer, rows = None, 0
    for batch in reader:
        if writer is None:
            writer = pq.ParquetWriter(f"{prefix}/part-{i}.parquet", batch.schema, filesystem=s3, compression="zstd",
                                      compression_level=1)
        writer.write_batch(batch)
        rows += batch.num_rows
    if writer is not None:
        writer.close()
    return rows


with ThreadPoolExecutor(max_workers=threads) as pool:
    rows = sum(pool.map(part, range(threads)))
print(json.dumps({"rows": rows, "work_s": time.perf_counter() - start}))
