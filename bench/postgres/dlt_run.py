"""dlt sql_table -> filesystem destination (parquet) on the local S3 endpoint."""
import os
import sys

import dlt
from dlt.sources.sql_database import sql_table

conn, table, endpoint, bucket_url, backend = sys.argv[1:6]
os.environ["DESTINATION__FILESYSTEM__BUCKET_URL"] = bucket_url
os.environ["DESTINATION__FILESYSTEM__CREDENTIALS__AWS_ACCESS_KEY_ID"] = os.environ["AWS_ACCESS_KEY_ID"]
os.environ["DESTINATION__FILESYSTEM__CREDENTIALS__AWS_SECRET_ACCESS_KEY"] = os.environ["AWS_SECRET_ACCESS_KEY"]
os.environ["DESTINATION__FILESYSTEM__CREDENTIALS__ENDPOINT_URL"] = endpoint
os.environ["DESTINATION__FILESYSTEM__CREDENTIALS__REGION_NAME"] = "us-east-1"
os.environ.setdefault("NORMALIZE__DATA_WRITER__COMPRESSION", "zstd")
kwargs = {} if backend == "default" else {"backend": backend}
if backend == "connectorx":
    kwargs["backend_kwargs"] = {"conn": conn}
resource = sql_table(credentials=conn, table=table, **kwargs)
pipeline = dlt.pipeline(
    pipeline_name=f"bench_{backend}",
    destination="filesystem",
    dataset_name=f"dlt_{backend}",
    pipelines_dir=os.environ.get("DLT_PIPELINES_DIR"),
)
info = pipeline.run(resource, loader_file_format="parquet", write_disposition="replace")
rows = pipeline.last_trace.last_normalize_info.row_counts.get(table, 0)
print(f"rows={rows}")
