"""dlt sql_table -> filesystem destination (parquet) on the local S3 endpoint.

The codec is set through dlt's documented parquet writer settings (`compression` in the
[extract.data_writer] and [normalize.data_writer] sections, here as environment
variables); the harness checks it in the files. Parallelism: dlt's own pipeline, one sql_table reader, normalize and load with
as many workers as the connector's --concurrency.

Usage: dlt_run.py CONN TABLE ENDPOINT BUCKET_URL BACKEND [WORKERS]
Prints one JSON line: rows and work_s (the pipeline run; imports excluded).
"""
import json
import os
import sys
import time

import dlt
from dlt.sources.sql_database import sql_table

conn, table, endpoint, bucket_url, backend = sys.argv[1:6]
workers = sys.argv[6] if len(sys.argv) > 6 else "2"
os.environ["DESTINATION__FILESYSTEM__BUCKET_URL"] = bucket_url
os.environ["DESTINATION__FILESYSTEM__CREDENTIALS__AWS_ACCESS_KEY_ID"] = os.environ["AWS_ACCESS_KEY_ID"]
os.environ["DESTINATION__FILESYSTEM__CREDENTIALS__AWS_SECRET_ACCESS_KEY"] = os.environ["AWS_SECRET_ACCESS_KEY"]
os.environ["DESTINATION__FILESYSTEM__CREDENTIALS__ENDPOINT_URL"] = endpoint
os.environ["DESTINATION__FILESYSTEM__CREDENTIALS__REGION_NAME"] = "us-east-1"
# Arrow backends (pyarrow, connectorx) write their Parquet while extracting, the default
# backend while normalizing: set the writer's codec for both steps.
for step in ("EXTRACT", "NORMALIZE"):
    os.environ[f"{step}__DATA_WRITER__COMPRESSION"] = "zstd"
os.environ["NORMALIZE__WORKERS"] = workers
os.environ["LOAD__WORKERS"] = workers
kwargs = {} if backend == "default" else {"backend": backend}
if backend == "connectorx":
    kwargs["backend_kwargs"] = {"conn": conn}
start = time.perf_counter()
resource = sql_table(credentials=conn, table=table, **kwargs)
pipeline = dlt.pipeline(
    pipeline_name=f"bench_{backend}_{os.getpid()}",
    destination="filesystem",
    dataset_name="dlt",
    pipelines_dir=os.environ.get("DLT_PIPELINES_DIR"),
)
pipeline.run(resource, loader_file_format="parquet", write_disposition="replace")
rows = pipeline.last_trace.last_normalize_info.row_counts.get(table, 0)
print(json.dumps({"rows": rows, "work_s": time.perf_counter() - start}))
