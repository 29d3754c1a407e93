"""ROWS rows of orders as CSV (header; written by pyarrow) and JSON Lines (the same rows,
converted by DuckDB: both fast, so 10 M rows take seconds, not a per-row Python loop).
Usage: generate.py ROWS CSV JSONL"""
import sys

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

rows, csv_path, jsonl_path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
chunk = 1_000_000
writer = None
for start in range(0, rows, chunk):
    n = min(chunk, rows - start)
    ids = pa.array(range(start + 1, start + n + 1), pa.int64())
    t = pa.table({
        "id": ids,
        "customer": pc.binary_join_element_wise("customer-", pc.cast(pc.bit_wise_and(ids, 65535), pa.string()), ""),
        "amount": pc.divide(pc.cast(pc.multiply(ids, 37), pa.float64()), 100.0),
        "day": pc.cast(pc.add(pc.cast(pc.bit_wise_and(ids, 4095), pa.int32()), pa.scalar(18000, pa.int32())), pa.date32()),
        "placed_at": pc.cast(pc.add(pc.multiply(ids, 1_000_003), 1_704_067_200_000_000), pa.timestamp("us", tz="UTC")),
        "shipped": pc.equal(pc.bit_wise_and(ids, 1), 0),
    })
    if writer is None:
        writer = pcsv.CSVWriter(csv_path, t.schema, write_options=pcsv.WriteOptions(quoting_style="none"))
    writer.write_table(t)
writer.close()

con = duckdb.connect()
con.execute("SET TimeZone = 'UTC'")
columns = "{'id': 'BIGINT', 'customer': 'VARCHAR', 'amount': 'DOUBLE', 'day': 'DATE', 'placed_at': 'TIMESTAMPTZ', 'shipped': 'BOOLEAN'}"
con.execute(f"""COPY (SELECT id, customer, amount, day,
                         strftime(placed_at, '%Y-%m-%dT%H:%M:%S.%fZ') AS placed_at, shipped
                  FROM read_csv('{csv_path}', header = true, columns = {columns}) ORDER BY id)
                TO '{jsonl_path}' (FORMAT json)""")
