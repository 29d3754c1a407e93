"""ConnectorX (partition_num=2) -> pyarrow -> Parquet (ZSTD) on the local S3 endpoint."""
import os
import sys

import connectorx as cx
import pyarrow.fs as pafs
import pyarrow.parquet as pq

conn, table, endpoint, key = sys.argv[1:5]
s3 = pafs.S3FileSystem(
    access_key=os.environ["AWS_ACCESS_KEY_ID"],
    secret_key=os.environ["AWS_SECRET_ACCESS_KEY"],
    endpoint_override=endpoint,
    scheme="http",
    region="us-east-1",
)
query = f"SELECT * FROM {table}"
rows = 0
try:
    # Streaming (bounded memory) where this connectorx version supports it.
    reader = cx.read_sql(conn, query, return_type="arrow_stream", partition_on="l_orderkey",
                         partition_num=2, batch_size=65536)
    writer = None
    for batch in reader:
        if writer is None:
            writer = pq.ParquetWriter(key, batch.schema, filesystem=s3, compression="zstd")
        writer.write_batch(batch)
        rows += batch.num_rows
    if writer is not None:
        writer.close()
    mode = "arrow_stream"
except (TypeError, ValueError) as e:  # older connectorx: no arrow_stream
    print(f"arrow_stream unavailable ({e}); using return_type=arrow", file=sys.stderr)
    t = cx.read_sql(conn, query, return_type="arrow", partition_on="l_orderkey", partition_num=2)
    pq.write_table(t, key, filesystem=s3, compression="zstd")
    rows = t.num_rows
    mode = "arrow"
print(f"rows={rows} mode={mode}")
