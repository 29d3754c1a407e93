"""A plain Python API extract: requests over one session, page by page (`_page`/`_limit`),
each page decoded with pyarrow and written to a ParquetWriter (ZSTD) on S3; with DEST
"-", pages are fetched and discarded (the floor). Usage: requests_run.py API PAGE DEST"""
import json
import os
import sys
import time

import pyarrow as pa
import pyarrow.parquet as pq
import requests
from pyarrow import fs

api, page, dest = sys.argv[1], int(sys.argv[2]), sys.argv[3]
t0 = time.perf_counter()
schema = pa.schema([("id", pa.int64()), ("customer", pa.string()), ("amount", pa.float64()),
                    ("placed_at", pa.timestamp("us", tz="UTC")), ("shipped", pa.bool_()), ("note", pa.string())])
writer = None
if dest != "-":
    s3 = fs.S3FileSystem(endpoint_override=os.environ["AWS_ENDPOINT_URL"], scheme="http",
                         access_key=os.environ["AWS_ACCESS_KEY_ID"], secret_key=os.environ["AWS_SECRET_ACCESS_KEY"],
                         region="us-east-1")
    writer = pq.ParquetWriter(dest, schema, compression="zstd", filesystem=s3)
session = requests.Session()
n = 1
while True:
    r = session.get(f"{api}/orders", params={"_sort": "id", "_page": n, "_limit": page}, timeout=30)
    r.raise_for_status()
    if writer is None:
        count = len(r.content) and len(json.loads(r.content))
    else:
        records = r.json()
        count = len(records)
        if count:
            cols = {f.name: [rec.get(f.name) for rec in records] for f in schema}
            cols["placed_at"] = pa.array(cols["placed_at"], pa.string()).cast(pa.timestamp("us", tz="UTC"))
            writer.write_table(pa.table(cols, schema=schema))
    if count < page:
        break
    n += 1
if writer is not None:
    writer.close()
print(json.dumps({"work_s": time.perf_counter() - t0}))
