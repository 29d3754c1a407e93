"""The issue's split test at full size: the s3-files table of a large object read in byte
ranges (deltalake reads the table: only committed files) equals the object read whole by
pyarrow (CSV) or DuckDB (JSON Lines), value for value in id order.
Usage: check_whole.py csv|jsonl OBJECT_PATH TABLE_PATH  (paths in the server's directory)"""
import sys

import deltalake
import duckdb
import pyarrow as pa
import pyarrow.csv as pcsv

fmt, object_path, table_path = sys.argv[1:4]
schema = pa.schema([("id", pa.int64()), ("customer", pa.string()), ("amount", pa.float64()),
                    ("day", pa.date32()), ("placed_at", pa.timestamp("us", tz="UTC")), ("shipped", pa.bool_())])
if fmt == "csv":
    whole = pcsv.read_csv(object_path, convert_options=pcsv.ConvertOptions(column_types=schema))
else:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    columns = "{'id': 'BIGINT', 'customer': 'VARCHAR', 'amount': 'DOUBLE', 'day': 'DATE', 'placed_at': 'TIMESTAMPTZ', 'shipped': 'BOOLEAN'}"
    whole = con.execute(f"SELECT * FROM read_json('{object_path}', format = 'newline_delimited', columns = {columns})").fetch_arrow_table()
whole = whole.cast(schema).sort_by("id")
table = deltalake.DeltaTable(table_path).to_pyarrow_table().select(schema.names).cast(schema).sort_by("id")
if whole.num_rows != table.num_rows:
    sys.exit(f"FAIL: the object has {whole.num_rows} rows, the table {table.num_rows}")
for name in schema.names:
    if not whole.column(name).equals(table.column(name)):
        a, b = whole.column(name).combine_chunks(), table.column(name).combine_chunks()
        first = next(i for i in range(len(a)) if a[i] != b[i])
        sys.exit(f"FAIL: column {name} differs first at id {whole.column('id')[first]}: {a[first]} vs {b[first]}")
print(f"exact: {table.num_rows:,} rows read in ranges equal the object read whole ({fmt})")
