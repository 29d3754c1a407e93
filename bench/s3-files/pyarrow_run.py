"""pyarrow: the S3 object streamed through pyarrow.csv.open_csv (CSV) or read with
pyarrow.json (JSON Lines, which has no streaming reader) -> ParquetWriter (ZSTD) to S3
through S3FileSystem. Usage: pyarrow_run.py csv|jsonl SOURCE DEST"""
import json
import os
import sys
import time

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.json as pjson
import pyarrow.parquet as pq
from pyarrow import fs

fmt, source, dest = sys.argv[1:4]
t0 = time.perf_counter()
s3 = fs.S3FileSystem(endpoint_override=os.environ["AWS_ENDPOINT_URL"], scheme="http",
                     access_key=os.environ["AWS_ACCESS_KEY_ID"], secret_key=os.environ["AWS_SECRET_ACCESS_KEY"],
                     region="us-east-1")
schema = pa.schema([("id", pa.int64()), ("customer", pa.string()), ("amount", pa.float64()),
                    ("day", pa.date32()), ("placed_at", pa.timestamp("us", tz="UTC")), ("shipped", pa.bool_())])
with s3.open_input_stream(source) as src:
    with pq.ParquetWriter(dest, schema, compression="zstd", filesystem=s3) as out:
        if fmt == "csv":
            reader = pcsv.open_csv(src, convert_options=pcsv.ConvertOptions(column_types=schema))
            for batch in reader:
                out.write_batch(batch.cast(schema) if batch.schema != schema else batch)
        else:
            # pyarrow's JSON reader parses dates only from numbers: read `day` as text, cast.
            as_read = schema.set(schema.get_field_index("day"), pa.field("day", pa.string()))
            table = pjson.read_json(src, parse_options=pjson.ParseOptions(explicit_schema=as_read))
            out.write_table(table.cast(schema))
print(json.dumps({"work_s": time.perf_counter() - t0}))
